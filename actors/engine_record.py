"""``<state_dir>/engine.json``: where the running ``lts run`` is (Ray address, dashboard,
API, pid), so ``lts status`` asks that cluster and no other one it happens to find.

Written 0600 by ``lts run`` once everything started, removed by it when it stops; a
record left by a killed engine names a pid that is gone, which ``lts status`` says.
It holds no secret (no database URL: a PostgreSQL URL may carry a password).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.errors import ConfigError

RECORD_NAME = "engine.json"
FILE_MODE = 0o600
DIR_MODE = 0o700


@dataclass(frozen=True, slots=True)
class EngineRecord:
    """One running engine, as ``lts run`` reports it."""

    address: str | None
    dashboard_url: str | None
    api_url: str | None
    namespace: str
    pid: int
    started_at: float

    def pid_alive(self) -> bool:
        """Whether the recording process still runs on this machine."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # runs, as another user
            return True
        return True


def record_path(state_dir: str | os.PathLike[str]) -> Path:
    """``<state_dir>/engine.json``."""
    return Path(os.path.abspath(os.path.expanduser(str(state_dir)))) / RECORD_NAME


def write_record(state_dir: str | os.PathLike[str], record: EngineRecord) -> Path:
    """Write ``record`` (0600, the folder 0700 when created) atomically; returns its path."""
    path = record_path(state_dir)
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    tmp = path.with_name(f".{RECORD_NAME}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(record), handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)
    return path


def read_record(state_dir: str | os.PathLike[str]) -> EngineRecord | None:
    """The record in ``state_dir`` (None when there is none); a file that is not one is a
    one-line ``ConfigError`` naming it."""
    path = record_path(state_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return EngineRecord(
            address=_opt_str(data.get("address")), dashboard_url=_opt_str(data.get("dashboard_url")),
            api_url=_opt_str(data.get("api_url")), namespace=str(data.get("namespace") or "lts"),
            pid=int(data["pid"]), started_at=float(data.get("started_at") or 0.0))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path} is not an engine record ({type(exc).__name__}); delete it "
                          "(lts run writes a new one)") from None


def remove_record(state_dir: str | os.PathLike[str], pid: int | None = None) -> None:
    """Remove the record (only one written by ``pid``, when given)."""
    path = record_path(state_dir)
    try:
        if pid is not None:
            current = read_record(state_dir)
            if current is None or current.pid != pid:
                return
        path.unlink()
    except (FileNotFoundError, ConfigError):
        pass


def new_record(*, address: str | None, dashboard_url: str | None, api_url: str | None,
               namespace: str) -> EngineRecord:
    """The record of this process, started now."""
    return EngineRecord(address=address, dashboard_url=dashboard_url, api_url=api_url,
                        namespace=namespace, pid=os.getpid(), started_at=time.time())


def _opt_str(value: object) -> str | None:
    return None if value in (None, "") else str(value)
