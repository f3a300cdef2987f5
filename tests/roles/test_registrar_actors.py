"""The server's registrar and its binding actors (RFC 3261 §10.2-§10.3) on a virtual clock: one actor per
binding, expiry by the actors' timers, restore after a restart, a REGISTER committed whole before the
actors adopt it, and REGISTERs of one AOR decided one after the other."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from sipactors.message import Response
from sipactors.roles.digest import Authenticator
from sipactors.roles.registrar import Registrar
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.runtime.binding import wall_clock
from sipactors.store import Change, open_store
from sipactors.store.commit import Done
from tests.roles.test_registrar import ALICE, POLICY, T0, request

BOB = "sip:bob@atlanta.com"


class HeldCommitter:
    """Commits only when the test says so (a writer thread, as seen from the scheduler thread)."""

    def __init__(self, locations: object) -> None:
        self.locations = locations
        self.waiting: list[tuple[str, Sequence[Change], Done]] = []

    def submit(self, aor: str, changes: Sequence[Change], done: Done) -> None:
        self.waiting.append((aor, changes, done))

    def release(self) -> None:
        batch, self.waiting = self.waiting, []
        results = self.locations.apply_batch([(aor, changes) for aor, changes, _ in batch])  # type: ignore[attr-defined]
        for (_, _, done), result in zip(batch, results, strict=True):
            done(result)

    def close(self) -> None:
        pass


class Server:
    def __init__(self, url: str, epoch: float, committer: str = "inline") -> None:
        self.scheduler = ManualScheduler(seed=3)
        set_default_scheduler(self.scheduler)
        self.store = open_store(url)
        self.clock = wall_clock(self.scheduler, epoch)
        self.trace: list[dict[str, object]] = []
        self.held = HeldCommitter(self.store.locations) if committer == "held" else None
        self.registrar = Registrar(self.store, POLICY, Authenticator(b"k" * 32), self.clock, lambda n: b"s" * n,
                                   committer=self.held, trace=self.trace.append)
        self.restored = self.registrar.restore()
        self.scheduler.run_until_idle()
        self.answers: list[tuple[str, int]] = []

    def register(self, name: str, *contacts: str, expires: int = 60, cseq: int = 1, to: str = ALICE) -> None:
        def reply(response: Response) -> None:
            self.answers.append((name, response.status))

        self.registrar.handle(request(list(contacts) or None, expires=expires, cseq=cseq, to=f"<{to}>",
                                      call_id=f"{name}@192.0.2.1"), "t", reply)
        self.scheduler.run_until_idle()

    def stored(self, aor: str = ALICE) -> list[str]:
        return [b.contact for b in self.store.locations.bindings(aor, 0.0)]  # everything, expired or not


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'registrar.db'}"
    set_default_scheduler(None)


def test_each_binding_is_an_actor_and_its_timer_removes_it_rfc3261_10_2_2(url: str) -> None:
    server = Server(url, T0)
    server.register("a", "<sip:alice@192.0.2.1>", "<sip:alice@192.0.2.2>;expires=120", expires=60)
    assert server.answers == [("a", 200)]
    assert sorted(contact for _, contact in server.registrar.actors) == ["sip:alice@192.0.2.1", "sip:alice@192.0.2.2"]
    server.scheduler.advance(59_999)
    assert len(server.stored()) == 2
    server.scheduler.advance(1)  # 60 s: the first binding's actor removes it from the file
    assert server.stored() == ["sip:alice@192.0.2.2"] and len(server.registrar.actors) == 1
    assert [b.contact for b in server.registrar.bindings(ALICE, server.clock())] == ["sip:alice@192.0.2.2"]
    server.scheduler.advance(60_000)
    assert server.stored() == [] and server.registrar.actors == {} and server.registrar.bindings(ALICE, 0) == []
    expiries = [(r["contact"], r["time"]) for r in server.trace if r.get("event") == "timer_expiry"]
    assert expiries == [("sip:alice@192.0.2.1", 60_000), ("sip:alice@192.0.2.2", 120_000)]
    server.store.close()


def test_a_restart_restores_one_actor_per_stored_binding_with_the_time_left_rfc3261_10_3(url: str) -> None:
    first = Server(url, T0)
    first.register("a", "<sip:alice@192.0.2.1>", expires=100)
    first.register("b", "<sip:bob@192.0.2.3>", expires=300, to=BOB)
    first.register("c", "<sip:alice@192.0.2.2>", expires=60)
    first.scheduler.advance(30_000)
    first.store.close()  # the process stops (kill -9: its actors and timers are gone)
    # Down for 40 s: alice's 60-s binding expires meanwhile, and is purged at start-up.
    second = Server(url, T0 + 70)
    assert second.restored == 2
    assert sorted(second.registrar.actors) == [(ALICE, "sip:alice@192.0.2.1"), (BOB, "sip:bob@192.0.2.3")]
    assert second.stored() == ["sip:alice@192.0.2.1"]
    second.scheduler.advance(29_999)  # alice's binding had 30 s left
    assert second.stored() == ["sip:alice@192.0.2.1"]
    second.scheduler.advance(1)
    assert second.stored() == [] and list(second.registrar.actors) == [(BOB, "sip:bob@192.0.2.3")]
    second.register("q", to=BOB, cseq=1)  # a query: the restored binding is listed with what is left
    assert second.answers == [("q", 200)]
    second.scheduler.advance(200_000)
    assert second.stored(BOB) == [] and second.registrar.actors == {}
    assert [r["event"] for r in second.trace if r.get("aor") == BOB] == ["restore", "timer_expiry"]
    second.store.close()


def test_register_waits_for_the_commit_and_one_aor_is_decided_in_turn_rfc3261_10_3_step_7(url: str) -> None:
    """Nothing is answered or adopted before the commit; a second REGISTER of the same AOR waits for the
    first to commit and is decided against its result, while another AOR goes ahead."""
    server = Server(url, T0, committer="held")
    assert server.held is not None
    server.register("a", "<sip:alice@192.0.2.1>", cseq=1)
    server.register("a", "<sip:alice@192.0.2.1>;expires=0", cseq=1)  # the same CSeq: out of order once a commits
    server.register("b", "<sip:bob@192.0.2.3>", to=BOB)
    assert server.answers == [] and server.registrar.actors == {} and len(server.held.waiting) == 2  # a and b
    server.held.release()
    server.scheduler.run_until_idle()
    assert server.answers == [("a", 200), ("a", 500), ("b", 200)]
    assert server.stored() == ["sip:alice@192.0.2.1"] and server.stored(BOB) == ["sip:bob@192.0.2.3"]
    assert len(server.registrar.actors) == 2
    server.store.close()


def test_a_failed_commit_is_a_500_and_no_actor_adopts_anything_rfc3261_10_3_step_7(url: str) -> None:
    server = Server(url, T0, committer="held")
    assert server.held is not None
    server.register("a", "<sip:alice@192.0.2.1>")
    server.store.locations.apply_batch = lambda batch: [OSError("disk full")] * len(batch)  # type: ignore[method-assign]
    server.held.release()
    server.scheduler.run_until_idle()
    assert server.answers == [("a", 500)] and server.registrar.actors == {} and server.registrar.bindings(ALICE, 0) == []
    server.store.close()


def test_a_refresh_committed_as_the_expiry_fires_keeps_its_binding_and_gets_an_actor_rfc3261_10_2_4(url: str) -> None:
    """The expiry timer has fired (its message is queued for the actor) when a refresh commits: the actor
    removes only what expired, and the registrar gives the refreshed binding a new actor."""
    server = Server(url, T0)
    server.register("a", "<sip:alice@192.0.2.1>", expires=60, cseq=1)
    (actor,) = server.registrar.actors.values()
    server.scheduler.advance(59_999)
    server.registrar.clock = lambda: T0 + 59.999  # the registrar decides a moment before the wall-clock expiry
    server.scheduler._now = 60_000  # the scheduler's clock has already reached the timer (clocks drift)
    server.scheduler._run_due_timers(60_000)  # TimerFired queued, not yet handled
    server.register("a", "<sip:alice@192.0.2.1>", expires=3600, cseq=2)
    assert server.answers == [("a", 200), ("a", 200)]
    ((_, contact),) = server.registrar.actors
    assert contact == "sip:alice@192.0.2.1" and server.registrar.actors[ALICE, contact] is not actor
    assert server.stored() == ["sip:alice@192.0.2.1"]
    assert [b.cseq for b in server.store.locations.bindings(ALICE, 0.0)] == [2]
    server.store.close()
