"""Caller-side group commit: how writers' batches are combined into calls and answered.

The transport here is a recording stand-in for the Ray call (the real actor is exercised
in tests/integration/persistence/test_persistence_actor.py); what is under test is the
pipe's own logic: who leaves with whom, in which order, and who gets which answer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from actors.write_pipe import SyncWritePipe, WritePipe
from persistence.records import AuditContext
from persistence.store import WriteOutcome, WriteRequest


def _writes(tag: str, n: int) -> list[WriteRequest]:
    return [WriteRequest(op="audit", ctx=AuditContext.system().with_request_id(f"{tag}:{i}"), args=(tag,))
            for i in range(n)]


def _answer(writes: list[WriteRequest]) -> list[WriteOutcome]:
    return [WriteOutcome.success(w, w.request_id) for w in writes]


class GatedTransport:
    """Holds every call until released; records what each call carried."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.gates: list[asyncio.Event] = []
        self.fail_on = fail_on

    async def write_many(self, writes: list[WriteRequest]) -> list[WriteOutcome]:
        self.calls.append([w.request_id or "" for w in writes])
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        if self.fail_on and any(w.request_id.startswith(self.fail_on) for w in writes):  # type: ignore[union-attr]
            raise TimeoutError("no answer")
        return _answer(writes)


def test_batches_that_arrive_while_the_pipe_is_full_leave_together_in_arrival_order() -> None:
    async def scenario() -> tuple[list[list[str]], list[list[Any]], WritePipe]:
        transport = GatedTransport()
        pipe = WritePipe(transport, max_in_flight=1)
        first = asyncio.create_task(pipe.write_many(_writes("a", 2)))
        await asyncio.sleep(0)
        others = [asyncio.create_task(pipe.write_many(_writes(tag, 1 + i))) for i, tag in enumerate("bcd")]
        await asyncio.sleep(0.01)
        assert len(transport.calls) == 1  # b, c, d wait: one call out at a time
        transport.gates[0].set()
        first_result = await first
        await asyncio.sleep(0.01)
        transport.gates[1].set()
        rest = await asyncio.gather(*others)
        return transport.calls, [[o.result for o in r] for r in [first_result, *rest]], pipe

    calls, answers, pipe = asyncio.run(scenario())
    assert calls == [["a:0", "a:1"], ["b:0", "c:0", "c:1", "d:0", "d:1", "d:2"]]
    # Each writer gets exactly its own outcomes, in its own order.
    assert answers == [["a:0", "a:1"], ["b:0"], ["c:0", "c:1"], ["d:0", "d:1", "d:2"]]
    assert (pipe.calls, pipe.batches) == (2, 4)


def test_a_lone_writer_is_sent_at_once_and_a_full_call_leaves_the_rest_for_the_next() -> None:
    async def scenario() -> list[list[str]]:
        transport = GatedTransport()
        pipe = WritePipe(transport, max_in_flight=2, max_writes_per_call=3)
        tasks = [asyncio.create_task(pipe.write_many(_writes(tag, 2))) for tag in "abcde"]
        await asyncio.sleep(0.01)
        assert len(transport.calls) == 2  # a and b each left alone, at once
        while not all(t.done() for t in tasks):
            for gate in transport.gates:
                gate.set()
            await asyncio.sleep(0.005)
        return transport.calls

    calls = asyncio.run(scenario())
    # 2 + 2 writes exceed max_writes_per_call=3, so c, d and e leave one call each.
    assert calls == [["a:0", "a:1"], ["b:0", "b:1"], ["c:0", "c:1"], ["d:0", "d:1"], ["e:0", "e:1"]]


def test_a_failed_call_fails_only_its_own_writers_and_a_cancelled_writers_batch_still_leaves() -> None:
    async def scenario() -> tuple[list[Any], list[list[str]]]:
        transport = GatedTransport(fail_on="b")
        pipe = WritePipe(transport, max_in_flight=1)
        a = asyncio.create_task(pipe.write_many(_writes("a", 1)))
        await asyncio.sleep(0)
        b = asyncio.create_task(pipe.write_many(_writes("b", 1)))
        c = asyncio.create_task(pipe.write_many(_writes("c", 1)))
        gone = asyncio.create_task(pipe.write_many(_writes("x", 1)))
        await asyncio.sleep(0.01)
        gone.cancel()
        d_later: asyncio.Task[Any] | None = None
        while len(transport.calls) < 3:
            for gate in transport.gates:
                gate.set()
            await asyncio.sleep(0.005)
            if d_later is None and b.done():
                d_later = asyncio.create_task(pipe.write_many(_writes("d", 1)))
        for gate in transport.gates:
            gate.set()
        results = await asyncio.gather(a, b, c, d_later, return_exceptions=True)  # type: ignore[arg-type]
        return results, transport.calls

    (a, b, c, d), calls = asyncio.run(scenario())
    assert [o.result for o in a] == ["a:0"]
    assert isinstance(b, TimeoutError) and isinstance(c, TimeoutError)  # b and c shared the failed call
    assert [o.result for o in d] == ["d:0"]  # the pipe goes on after a failure
    # x's writer was cancelled while its batch waited: the batch still left, with b and c.
    assert calls == [["a:0"], ["b:0", "c:0", "x:0"], ["d:0"]]


class SlowSyncTransport:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()

    def write_many_sync(self, writes: list[WriteRequest]) -> list[WriteOutcome]:
        with self.lock:
            self.calls.append([w.request_id or "" for w in writes])
        time.sleep(0.02)  # long enough for the other threads to queue behind this call
        if any(w.args == ("bad",) for w in writes):
            raise ConnectionError("actor gone")
        return _answer(writes)


def test_threads_share_calls_each_gets_its_own_outcomes_in_order() -> None:
    transport = SlowSyncTransport()
    pipe = SyncWritePipe(transport)
    threads, per_thread = 8, 5
    answers: dict[int, list[str]] = {}

    def writer(n: int) -> None:
        got = []
        for i in range(per_thread):
            got.extend(o.result for o in pipe.write_many(_writes(f"t{n}-{i}", 2)))
        answers[n] = got

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert sorted(answers) == list(range(threads))
    for n, got in answers.items():
        assert got == [f"t{n}-{i}:{j}" for i in range(per_thread) for j in range(2)]
    sent = [rid for call in transport.calls for rid in call]
    assert sorted(sent) == sorted(rid for got in answers.values() for rid in got)  # each write sent once
    assert pipe.batches == threads * per_thread
    assert pipe.calls < pipe.batches / 2  # threads shared calls


def test_a_sync_failure_reaches_every_thread_in_that_call_and_the_pipe_recovers() -> None:
    transport = SlowSyncTransport()
    pipe = SyncWritePipe(transport)
    with pytest.raises(ConnectionError, match="actor gone"):
        pipe.write_many([WriteRequest(op="audit", ctx=AuditContext.system().with_request_id("r"), args=("bad",))])
    assert [o.result for o in pipe.write_many(_writes("ok", 1))] == ["ok:0"]
