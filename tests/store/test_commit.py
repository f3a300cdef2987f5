"""Committers (sipactors/store/commit.py): a REGISTER's changes committed whole before its answer (RFC 3261
§10.3 steps 7-8), inline or grouped on a writer thread with its own SQLite connection."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from sipactors.store import Binding, Change, MemoryLocationStore, Put, open_store
from sipactors.store.commit import GroupCommitter, InlineCommitter, committer_for

AOR = "sip:bob@biloxi.com"


def _put(contact: str, aor: str = AOR) -> list[Change]:
    return [Put(Binding(aor, contact, 3600.0, "c1", 1))]


class Owner:
    """The registrar's side: ``deliver`` queues the answers the writer hands back, ``run`` runs them here
    (as the scheduler thread would), and waits for the number expected."""

    def __init__(self) -> None:
        self.queued: list[Callable[[], None]] = []
        self.condition = threading.Condition()
        self.results: list[tuple[str, Exception | None]] = []

    def deliver(self, answers: Callable[[], None]) -> None:
        with self.condition:
            self.queued.append(answers)
            self.condition.notify()

    def done(self, name: str) -> Callable[[Exception | None], None]:
        return lambda error: self.results.append((name, error))

    def run(self, expected: int) -> None:
        while len(self.results) < expected:
            with self.condition:
                assert self.condition.wait_for(lambda: self.queued, timeout=10), "the writer delivered nothing"
                batch, self.queued = self.queued, []
            for answers in batch:
                answers()


def test_group_commit_answers_after_the_commit_and_a_bad_register_fails_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    writer = store.writer()  # type: ignore[union-attr]
    assert writer is not None
    owner = Owner()
    committer = GroupCommitter(writer.locations, owner.deliver, close_store=writer.close)
    try:
        for index in range(50):
            committer.submit(AOR if index % 2 else "sip:alice@atlanta.com",
                             _put(f"sip:ua{index}@192.0.2.1", AOR if index % 2 else "sip:alice@atlanta.com"),
                             owner.done(f"r{index}"))
        bad = [Put(replace(Binding(AOR, "sip:x@192.0.2.2", 3600.0, "c1", 1), aor="sip:carol@chicago.com"))]
        committer.submit(AOR, bad, owner.done("bad"))
        owner.run(51)
    finally:
        committer.close()
    assert [name for name, _ in owner.results] == [f"r{index}" for index in range(50)] + ["bad"]  # in order
    assert all(error is None for _, error in owner.results[:50]) and isinstance(owner.results[50][1], ValueError)
    assert 1 <= committer.batches <= 51 and committer.committed == 50
    # every acknowledged REGISTER is in the file, read through the server's own connection
    assert len(store.locations.bindings(AOR, 0.0)) == 25 and len(store.locations.bindings("sip:alice@atlanta.com", 0.0)) == 25
    store.close()


def test_a_failed_commit_fails_every_register_of_its_batch(tmp_path: Path) -> None:
    class Broken(MemoryLocationStore):
        def apply_batch(self, batch: Sequence[tuple[str, Sequence[Change]]]) -> list[Exception | None]:
            raise OSError("disk full")

    owner = Owner()
    committer = GroupCommitter(Broken(), owner.deliver)
    try:
        committer.submit(AOR, _put("sip:bob@192.0.2.4"), owner.done("a"))
        committer.submit(AOR, _put("sip:bob@192.0.2.5"), owner.done("b"))
        owner.run(2)
    finally:
        committer.close()
    assert [name for name, _ in owner.results] == ["a", "b"]
    assert all(isinstance(error, OSError) for _, error in owner.results)


def test_close_commits_what_waits(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    owner = Owner()
    committer = committer_for(store, owner.deliver)
    assert isinstance(committer, GroupCommitter)
    for index in range(20):
        committer.submit(AOR, _put(f"sip:ua{index}@192.0.2.1"), owner.done(str(index)))
    committer.close()
    assert len(store.locations.bindings(AOR, 0.0)) == 20
    owner.run(20)
    store.close()


def test_a_store_without_a_file_commits_inline() -> None:
    for url in ("memory:", "sqlite:///:memory:"):
        store = open_store(url)
        committer = committer_for(store, lambda answers: None)
        assert isinstance(committer, InlineCommitter)
        results: list[Exception | None] = []
        committer.submit(AOR, _put("sip:bob@192.0.2.4"), results.append)
        committer.submit(AOR, [Put(Binding("sip:other@x", "sip:bob@192.0.2.5", 1.0, "c", 1))], results.append)
        assert results[0] is None and isinstance(results[1], ValueError)  # answered before submit returned
        assert [b.contact for b in store.locations.bindings(AOR, 0.0)] == ["sip:bob@192.0.2.4"]
        committer.close()
        store.close()


def test_with_turn_end_a_burst_of_registers_is_one_transaction_handed_over_when_the_turn_ends(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    writer = store.writer()  # type: ignore[union-attr]
    assert writer is not None
    owner = Owner()
    ends: list[Callable[[], None]] = []
    committer = GroupCommitter(writer.locations, owner.deliver, close_store=writer.close, turn_end=ends.append)
    try:
        for index in range(30):  # one turn of the scheduler's work: thirty REGISTERs decided
            committer.submit(AOR, _put(f"sip:ua{index}@192.0.2.1"), owner.done(str(index)))
        assert len(ends) == 1  # asked once per turn, not per REGISTER
        assert store.locations.bindings(AOR, 0.0) == [] and owner.queued == []  # held: nothing committed yet
        ends.pop()()  # the turn ends
        owner.run(30)
        committer.submit(AOR, _put("sip:late@192.0.2.1"), owner.done("late"))  # the next turn asks again
        assert len(ends) == 1
    finally:
        committer.close()  # hands over what is still held, then commits it
    assert [name for name, _ in owner.results] == [str(index) for index in range(30)]
    assert all(error is None for _, error in owner.results)
    assert committer.batches == 2 and committer.committed == 31
    assert len(store.locations.bindings(AOR, 0.0)) == 31
    store.close()
