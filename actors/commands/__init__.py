"""``lts`` subcommands, one module each (``actors/commands/<name>.py``).

The contract a command module implements (the dispatcher in ``actors.cli`` imports a
module only when its command is run):

``configure(parser: argparse.ArgumentParser) -> None``
    Add the command's own options and positionals. The global options
    (``--load_config``/``--config``, ``--save_config``) are already there; any other
    ``--key value`` pair on the command line becomes a config value.
``run(config: LTSConfig, args: argparse.Namespace) -> int``
    Do the work and return the exit code. ``config`` is merged, validated, and the
    configured plugin names are known to load. Raise an ``LTSError`` for a user-facing
    failure: the dispatcher prints its message as one line and exits 2.

Optional module attributes:

``REQUIRE_LOADABLE_PLUGINS: bool = True``
    ``False`` lets the command run when a configured plugin exists but fails to import
    (``lts plugins`` shows such failures). Unknown plugin names are refused regardless.
``extra_plugins(args: argparse.Namespace) -> list[tuple[str, str]]``
    More ``(group, name)`` plugins whose ``plugin_params`` join the merge (pass 2) and
    so become known config keys, e.g. a backtest's ``--strategy``.
"""

from __future__ import annotations

COMMANDS: dict[str, str] = {
    "run": "start (or join) Ray, the engine actors and the API gateway",
    "status": "show portfolios, assets, actor states, restarts and last steps",
    "backtest": "run backtests over CSV files in parallel and write a report",
    "db": "database tools (db init: create the schema and the first admin)",
    "plugins": "list every plugin group, its plugins and their parameters",
    "users": "account tools (users unlock NAME: lift an account's failed-login holds)",
}
"""Command name -> one-line help. Each name is a module in this package."""
