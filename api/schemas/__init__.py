"""Request and response models of the REST API: ``XCreate`` / ``XUpdate`` / ``XPublic``
per resource. Request models refuse unknown fields (``extra="forbid"``), so a client
cannot smuggle ``owner_id`` or ``role`` into a write (no mass assignment)."""
