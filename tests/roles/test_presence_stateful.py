"""Hypothesis stateful conformance of the publications (RFC 3903 §6) and the composed state (RFC 3856 §7.3)
against a reference model: initial PUBLISH, refresh, modify and remove (with live, replaced and unknown
entity-tags), the virtual clock running publications out, and restarts from the SQLite file, interleaved.
After every step the store holds exactly the model's live publications, the composed document is the
model's, and the notifier was told exactly when that document changed."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sipactors.runtime import set_default_scheduler
from tests.roles.test_presence import EPOCH, World, pidf

DOCUMENTS = [(("pc", "open"),), (("pc", "closed"),), (("phone", "open"), ("pc", "open")), (("phone", "closed"),)]


class PublicationsVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="presence-"))
        self.url = f"sqlite:///{self.folder / 'p.db'}?synchronous=normal"  # no fsync wait: the file is thrown away
        self.world = World(self.url)
        self.live: dict[str, tuple[tuple[tuple[str, str], ...], float, float]] = {}  # tag → (doc, expires, updated)
        self.gone: list[str] = []  # tags replaced, removed or expired: a SIP-If-Match of one gets 412
        self.told = 0
        self.last = self.expected()

    def teardown(self) -> None:
        self.world.store.close()
        set_default_scheduler(None)
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- the reference model ---------------------------------------------------------------------
    def now(self) -> float:
        return self.world.clock()

    def expire(self) -> None:
        """What ran out, to the millisecond the timers keep (a publication ends when its time has come)."""
        now = self.now()
        for tag, (_, expires, _) in list(self.live.items()):
            if round((expires - now) * 1000) <= 0:
                del self.live[tag]
                self.gone.append(tag)

    def expected(self) -> list[tuple[str, str | None]]:
        merged: dict[str, str] = {}
        for _, (doc, _, _) in sorted(self.live.items(), key=lambda item: (item[1][2], item[0])):
            for tuple_id, basic in doc:
                merged[tuple_id] = basic
        return list(merged.items()) or [("offline", "closed")]

    def target(self, pick: int) -> tuple[str, bool]:
        """A live tag, a tag that is gone, or one never issued; and whether it is live."""
        tags = sorted(self.live) + self.gone + ["never-issued"]
        tag = tags[pick % len(tags)]
        return tag, tag in self.live

    def answered(self, tag: str, response_tag: str | None, doc: tuple[tuple[str, str], ...] | None, expires: int,
                 keep_updated: bool = False) -> None:
        old_doc, _, updated = self.live.pop(tag)
        self.gone.append(tag)
        assert response_tag is not None and response_tag not in self.live and response_tag not in self.gone
        if doc is not None or keep_updated:
            self.live[response_tag] = (doc or old_doc, self.now() + expires, updated if keep_updated else self.now())

    # -- rules -----------------------------------------------------------------------------------
    @rule(doc=st.sampled_from(DOCUMENTS), expires=st.sampled_from([60, 120, 300]))
    def publish(self, doc: tuple[tuple[str, str], ...], expires: int) -> None:
        response = self.world.publish(pidf(*doc), expires=expires)
        assert response.status == 200 and response.header("Expires") == expires
        tag = response.header("SIP-ETag")
        assert tag not in self.live and tag not in self.gone  # §6 step 6: never reused
        self.live[tag] = (doc, self.now() + expires, self.now())

    @rule(pick=st.integers(0, 10), expires=st.sampled_from([60, 300]))
    def refresh(self, pick: int, expires: int) -> None:
        tag, live = self.target(pick)
        response = self.world.publish(if_match=tag, expires=expires)
        assert response.status == (200 if live else 412)
        if live:
            self.answered(tag, response.header("SIP-ETag"), None, expires, keep_updated=True)

    @rule(pick=st.integers(0, 10), doc=st.sampled_from(DOCUMENTS), expires=st.sampled_from([60, 300]))
    def modify(self, pick: int, doc: tuple[tuple[str, str], ...], expires: int) -> None:
        tag, live = self.target(pick)
        response = self.world.publish(pidf(*doc), if_match=tag, expires=expires)
        assert response.status == (200 if live else 412)
        if live:
            self.answered(tag, response.header("SIP-ETag"), doc, expires)

    @rule(pick=st.integers(0, 10))
    def remove(self, pick: int) -> None:
        tag, live = self.target(pick)
        response = self.world.publish(if_match=tag, expires=0)
        assert response.status == (200 if live else 412)
        if live:
            self.live.pop(tag)
            self.gone.append(tag)

    @rule(ms=st.sampled_from([1_000, 30_000, 59_999, 60_000, 120_000, 240_000]))
    def advance(self, ms: int) -> None:
        """Run the clock ``ms`` on, stopping at each expiry on the way: each is a change of its own."""
        scheduler = self.world.scheduler
        target = scheduler.now() + ms
        for expires in sorted({expires for _, expires, _ in self.live.values()}):
            due = scheduler.now() + round((expires - self.now()) * 1000)
            if due > target:
                break
            scheduler.advance(max(0, due - scheduler.now()))
            self.expire()
            self.note_change()
        scheduler.advance(target - scheduler.now())
        self.expire()

    @rule(down_ms=st.sampled_from([0, 10_000, 90_000]))
    def restart(self, down_ms: int) -> None:
        """The server stops (its memory lost) and comes back ``down_ms`` later on the same file."""
        wall = self.now() + down_ms / 1000
        self.world.store.close()
        self.world = World(self.url, epoch=wall)
        self.expire()
        self.told = 0
        self.last = self.expected()
        assert self.world.restored == len(self.live)

    # -- invariants ------------------------------------------------------------------------------
    @invariant()
    def store_holds_the_live_publications(self) -> None:
        assert sorted(p.etag for p in self.world.store.publications.all(self.now())) == sorted(self.live)
        assert sorted(tag for _, tag in self.world.package.actors) == sorted(self.live)

    @invariant()
    def composed_state_is_the_models_and_the_notifier_heard_of_each_change(self) -> None:
        assert self.world.tuples() == self.expected()
        self.note_change()
        assert len(self.world.notifier.changes) == self.told

    def note_change(self) -> None:
        expected = self.expected()
        if expected != self.last:
            self.told += 1
            self.last = expected


PublicationsVersusModel.TestCase.settings = settings(max_examples=30, stateful_step_count=20, deadline=None)
test_publications_follow_the_reference_model = PublicationsVersusModel.TestCase


def test_the_reference_world_starts_empty() -> None:
    machine = PublicationsVersusModel()
    try:
        assert machine.world.tuples() == [("offline", "closed")] and machine.world.clock() == EPOCH
    finally:
        machine.teardown()
