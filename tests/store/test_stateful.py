"""The SQLite store behaves as the memory store under any sequence of changes, reopenings and clock steps."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sipactors.store import Binding, MemoryStore, Put, Remove, RemoveAll, SqliteStore

AORS = ["sip:alice@atlanta.com", "sip:bob@biloxi.com"]
# Contacts chosen so that some are §19.1.4-equal to others (case, escapes, an ignored parameter), some not.
CONTACTS = [
    "sip:alice@192.0.2.1", "sip:ALICE@192.0.2.1", "sip:%61lice@192.0.2.1", "sip:alice@192.0.2.1;ob",
    "sip:alice@192.0.2.1:5060", "sip:alice@192.0.2.1;transport=tcp", "sip:alice@192.0.2.1;security=on",
    "sip:alice@192.0.2.1;security=off", "sips:alice@192.0.2.1", "sip:alice@[2001:db8::1]",
    "sip:alice@[2001:db8:0::1]",
]


@st.composite
def bindings(draw: st.DrawFn, aor: str, now: float) -> Binding:
    return Binding(
        aor=aor, contact=draw(st.sampled_from(CONTACTS)), expires=now + draw(st.integers(-5, 60)),
        call_id=draw(st.sampled_from(["c1", "c2"])), cseq=draw(st.integers(1, 5)),
        q=draw(st.none() | st.sampled_from([0.0, 0.5, 1.0])), updated=now,
        instance=draw(st.none() | st.just('"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"')),
        params=draw(st.sampled_from([(), (("video", None),), (("expires", "60"),)])),
    )


class SqliteAgainstMemory(RuleBasedStateMachine):
    @initialize()
    def open(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="sipactors-store-"))
        self.sqlite = SqliteStore(self.folder / "sipactors.db", synchronous="normal")  # behaviour, not durability
        self.model = MemoryStore()
        self.now = 1_700_000_000.0

    def teardown(self) -> None:
        if hasattr(self, "sqlite"):
            self.sqlite.close()
            shutil.rmtree(self.folder)

    @rule(data=st.data(), aor=st.sampled_from(AORS))
    def put(self, data: st.DataObject, aor: str) -> None:
        binding = data.draw(bindings(aor, self.now))
        self.sqlite.locations.put(binding)
        self.model.locations.put(binding)

    @rule(aor=st.sampled_from(AORS), contact=st.sampled_from(CONTACTS))
    def remove(self, aor: str, contact: str) -> None:
        assert self.sqlite.locations.remove(aor, contact) == self.model.locations.remove(aor, contact)

    @rule(data=st.data(), aor=st.sampled_from(AORS), fail=st.booleans())
    def register(self, data: st.DataObject, aor: str, fail: bool) -> None:
        kinds = st.sampled_from(["put", "remove", "remove_all"])
        changes: list[Put | Remove | RemoveAll] = []
        for kind in data.draw(st.lists(kinds, min_size=1, max_size=4)):
            if kind == "put":
                changes.append(Put(data.draw(bindings(aor, self.now))))
            elif kind == "remove":
                changes.append(Remove(data.draw(st.sampled_from(CONTACTS))))
            else:
                changes.append(RemoveAll())
        if fail:  # a change for another AOR at the end: the whole REGISTER must be undone
            other = AORS[1 - AORS.index(aor)]
            changes.append(Put(data.draw(bindings(other, self.now))))
        for store in (self.sqlite, self.model):
            if fail:
                with pytest.raises(ValueError):
                    store.locations.apply(aor, changes)
            else:
                store.locations.apply(aor, changes)

    @rule(aor=st.sampled_from(AORS))
    def remove_all(self, aor: str) -> None:
        assert self.sqlite.locations.remove_all(aor) == self.model.locations.remove_all(aor)

    @rule()
    def purge(self) -> None:
        assert self.sqlite.locations.purge(self.now) == self.model.locations.purge(self.now)

    @rule(seconds=st.integers(0, 30))
    def advance_clock(self, seconds: int) -> None:
        self.now += seconds

    @precondition(lambda self: hasattr(self, "sqlite"))
    @rule()
    def reopen(self) -> None:
        self.sqlite.close()
        self.sqlite = SqliteStore(self.folder / "sipactors.db", synchronous="normal")  # behaviour, not durability

    @invariant()
    def same_bindings(self) -> None:
        if not hasattr(self, "sqlite"):
            return
        assert self.sqlite.locations.all_aors(self.now) == self.model.locations.all_aors(self.now)
        for aor in AORS:
            assert self.sqlite.locations.bindings(aor, self.now) == self.model.locations.bindings(aor, self.now)


SqliteAgainstMemory.TestCase.settings = settings(
    settings.default, max_examples=min(settings.default.max_examples, 60), stateful_step_count=25,
)
test_sqlite_store_behaves_as_the_memory_store = SqliteAgainstMemory.TestCase
