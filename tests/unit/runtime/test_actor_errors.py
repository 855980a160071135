"""Ray's exceptions as clients see them (``actors.errors``): the domain message inside a
``RayTaskError``, a short phrase for Ray's own failures, never the remote traceback."""

from __future__ import annotations

from ray.exceptions import ActorDiedError, GetTimeoutError, RayTaskError

from actors.errors import public_reason_of, root_cause
from engine.errors import DataError

TRACEBACK = ('Traceback (most recent call last):\n  File "/srv/lts/actors/asset_actor.py", line 8, in start\n'
             "engine.errors.DataError: asset 3: bad")


def _task_error(cause: BaseException) -> RayTaskError:
    # As Ray raises it at the caller: an instance of both RayTaskError and the cause's class.
    return RayTaskError("AssetActor.start", TRACEBACK, cause, "ray::AssetActor", 4242, "10.0.0.7").as_instanceof_cause()


def test_a_remote_domain_error_gives_its_own_message_cleaned(tmp_path) -> None:
    exc = _task_error(DataError(f"asset 3: data file {tmp_path}/e.csv does not exist\nline two"))
    assert isinstance(exc, DataError)  # which is why str(exc) must never be shown
    assert "4242" in str(exc) or "Traceback" in str(exc) or "ray::" in str(exc)
    assert public_reason_of(exc, data_dir=tmp_path) == "asset 3: data file e.csv does not exist"


def test_nested_task_errors_are_unwrapped_to_the_original() -> None:
    inner = DataError("bad CSV")
    outer = RayTaskError("PortfolioSupervisor.step_asset", TRACEBACK, _task_error(inner), "ray::P", 1, "10.0.0.1")
    assert root_cause(outer) is inner
    assert public_reason_of(outer.as_instanceof_cause()) == "bad CSV"


def test_a_remote_bug_gives_only_its_class() -> None:
    assert public_reason_of(_task_error(ZeroDivisionError("division by zero"))) == "internal error (ZeroDivisionError)"


def test_rays_own_failures_are_short_phrases() -> None:
    assert public_reason_of(ActorDiedError(), what="asset actor") == "asset actor died"
    assert public_reason_of(GetTimeoutError("Get timed out: some object(s) not ready.")) == "actor: timed out"
