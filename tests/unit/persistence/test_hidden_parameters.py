"""A database error raised or logged by LTS's engines never carries the row's values."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from persistence.database import make_engine


def test_a_refused_statement_names_no_parameter(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY)"))
            conn.execute(text("INSERT INTO t VALUES (:k)"), {"k": "secret-hash-value"})
        with pytest.raises(IntegrityError) as info, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (:k)"), {"k": "secret-hash-value"})
        assert "secret-hash-value" not in str(info.value)
        assert "hidden due to hide_parameters" in str(info.value)
    finally:
        engine.dispose()
