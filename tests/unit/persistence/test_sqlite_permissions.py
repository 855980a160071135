"""The SQLite database holds password hashes: its file and the -wal/-shm files SQLite
creates beside it are 0600, a folder made for it 0700, whatever the process umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from persistence.database import make_engine, prepare_sqlite_file
from persistence.schema import make_sqlite_folder


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def loose_umask() -> Iterator[None]:
    """umask 000: every file the process creates would be world-readable by default."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_database_and_its_wal_and_shm_are_0600(tmp_path: Path, loose_umask: None) -> None:
    db = tmp_path / "new" / "folder" / "lts.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with engine.connect() as conn:  # WAL mode: -wal and -shm exist while connections are open
            assert conn.execute(text("SELECT x FROM t")).scalar() == 1
            companions = {p.name: mode(p) for p in db.parent.iterdir()}
    finally:
        engine.dispose()
    assert companions == {"lts.db": 0o600, "lts.db-wal": 0o600, "lts.db-shm": 0o600}
    assert mode(db.parent) == 0o700


def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    db = tmp_path / "old.db"
    older = make_engine(f"sqlite:///{db}")
    try:
        with older.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        with older.connect() as held:  # keeps -wal and -shm on disk
            held.execute(text("SELECT * FROM t")).all()
            for path in tmp_path.iterdir():
                os.chmod(path, 0o644)  # what older versions left (the umask's default)
            assert len(list(tmp_path.iterdir())) == 3
            engine = make_engine(f"sqlite:///{db}")
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT * FROM t")).all()
                    assert {p.name: mode(p) for p in tmp_path.iterdir()} == {
                        name: 0o600 for name in ("old.db", "old.db-wal", "old.db-shm")}
            finally:
                engine.dispose()
    finally:
        older.dispose()
    assert mode(tmp_path) == 0o755  # an existing folder is the operator's: left alone


def test_lts_run_folder_helper_creates_the_file_0600(tmp_path: Path, loose_umask: None) -> None:
    db = tmp_path / "var" / "lts.db"
    make_sqlite_folder(f"sqlite:///{db}")
    assert db.is_file() and db.stat().st_size == 0 and mode(db) == 0o600 and mode(db.parent) == 0o700
    db.write_bytes(b"keep")
    prepare_sqlite_file(f"sqlite:///{db}")  # never truncates an existing database
    assert db.read_bytes() == b"keep"


def test_other_urls_are_left_alone(tmp_path: Path) -> None:
    for url in ("sqlite:///:memory:", "sqlite://", "postgresql+psycopg://u@127.0.0.1/db"):
        prepare_sqlite_file(url)
    assert not list(tmp_path.iterdir())
