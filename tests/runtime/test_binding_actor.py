"""Binding actors in simulation (a ManualScheduler's virtual clock, a memory or SQLite store): the lifecycle
of RFC 3261 §10.2-§10.3 as the store, the owner and the trace see it; a restart continues with the time
left; and a binding table with one row turned into an ignore is caught by these behaviours."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sipactors.fsm import BindingMachine
from sipactors.fsm.tables import load_machine, load_timers
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.runtime.binding import BindingActor, Outcome, Register, Restore, Unregister, wall_clock
from sipactors.store import Binding, MemoryLocationStore, open_store
from sipactors.store.model import LocationStore

SPEC = Path(__file__).resolve().parents[2] / "spec" / "machines"
AOR, CONTACT = "sip:alice@example.com", "sip:alice@192.0.2.4:5060"
EPOCH = 1_800_000_000.0  # the wall clock when the simulation's clock reads 0


class Registrar:
    """The owner, as the registrar role will be: actors in a dict by (AOR, contact), its view of each AOR."""

    def __init__(self) -> None:
        self.actors: dict[tuple[str, str], BindingActor] = {}
        self.view: dict[tuple[str, str], Binding] = {}
        self.ended: list[str] = []

    def binding_changed(self, actor: BindingActor, binding: Binding | None) -> None:
        if binding is None:
            self.view.pop((actor.aor, actor.contact), None)
        else:
            self.view[actor.aor, actor.contact] = binding

    def binding_ended(self, actor: BindingActor) -> None:
        self.ended.append(actor.actor_id)
        self.actors.pop((actor.aor, actor.contact), None)


class World:
    def __init__(self, scheduler: ManualScheduler, store: LocationStore, machine: BindingMachine | None = None) -> None:
        self.scheduler = scheduler
        self.store = store
        self.machine = machine
        self.registrar = Registrar()
        self.trace: list[dict[str, Any]] = []
        self.wall_now: Callable[[], float] = wall_clock(scheduler, EPOCH)

    def actor(self, contact: str = CONTACT) -> BindingActor:
        key = (AOR, contact)
        if key not in self.registrar.actors:
            self.registrar.actors[key] = BindingActor.spawn(
                self.registrar, AOR, contact, self.store, self.wall_now, trace=self.trace.append,
                machine=self.machine, actor_id=f"binding-{len(self.trace)}",
            )
        return self.registrar.actors[key]

    def ask(self, message: Any, contact: str = CONTACT) -> Outcome:
        return self.actor(contact).actor_ref.ask(message)  # type: ignore[no-any-return]

    def register(
        self, cseq: int, expires_in: float, call_id: str = "c1", contact: str = CONTACT, *, commit: bool = True,
    ) -> Outcome:
        """As the registrar does: commit the binding (the REGISTER's one transaction), then the actor adopts
        it. ``commit=False``: a registrar that skipped its own ordering check and committed nothing."""
        binding = Binding(AOR, contact, self.wall_now() + expires_in, call_id, cseq, updated=self.wall_now())
        if commit:
            self.store.put(binding)
        return self.ask(Register(binding), contact)

    def unregister(self, cseq: int, call_id: str = "c1", contact: str = CONTACT) -> Outcome:
        self.store.remove(AOR, contact)  # committed by the registrar first
        return self.ask(Unregister(call_id, cseq), contact)

    def stored(self) -> list[str]:
        return [b.contact for b in self.store.bindings(AOR, self.wall_now())]


@pytest.fixture
def scheduler() -> Iterator[ManualScheduler]:
    scheduler = ManualScheduler(seed=5)
    set_default_scheduler(scheduler)
    yield scheduler
    set_default_scheduler(None)


@pytest.fixture
def world(scheduler: ManualScheduler) -> World:
    return World(scheduler, MemoryLocationStore())


# ----------------------------------------------------------------------------------- behaviours
def register_makes_an_active_stored_binding(world: World) -> None:
    outcome = world.register(1, 3600)
    assert outcome.state == "active" and outcome.refused is None
    assert world.stored() == [CONTACT] and world.registrar.view[AOR, CONTACT] == outcome.binding


def refresh_extends_the_expiry(world: World) -> None:
    world.register(1, 60)
    world.scheduler.advance(50_000)
    world.register(2, 60)  # §10.2.4: a refresh before the binding expires
    world.scheduler.advance(50_000)  # 100 s after the first REGISTER: past its 60 s, within the refresh's
    assert world.stored() == [CONTACT]
    world.scheduler.advance(10_001)
    assert world.stored() == [] and world.registrar.actors == {}


def unregister_ends_the_binding(world: World) -> None:
    world.register(1, 3600)
    outcome = world.unregister(2)
    assert outcome.state == "removed" and outcome.binding is None
    assert world.stored() == [] and world.store.bindings(AOR, 0.0) == []  # gone, not merely expired
    assert world.registrar.view == {} and world.registrar.actors == {}
    world.scheduler.advance(3_600_000)  # its expiry was cancelled: nothing fires
    assert world.scheduler.failures == 0 and [r["event"] for r in world.trace] == ["register", "unregister"]


def expiry_fires_and_removes(world: World) -> None:
    world.register(1, 30)
    world.scheduler.advance(29_999)
    assert world.stored() == [CONTACT] and world.registrar.actors
    world.scheduler.advance(1)
    assert world.store.bindings(AOR, 0.0) == []  # removed from the store, not merely hidden by its expiry
    assert world.registrar.view == {} and world.registrar.actors == {}


def unregister_of_an_unknown_contact_changes_nothing(world: World) -> None:
    outcome = world.unregister(1)
    assert outcome == Outcome("removed", None) and world.stored() == [] and world.registrar.actors == {}


def restore_continues_with_the_time_left(world: World) -> None:
    binding = Binding(AOR, CONTACT, world.wall_now() + 40, "c1", 3)
    world.store.put(binding)
    outcome = world.ask(Restore(binding))
    assert outcome == Outcome("active", binding) and world.registrar.view[AOR, CONTACT] == binding
    world.scheduler.advance(39_999)
    assert world.stored() == [CONTACT]
    world.scheduler.advance(1)
    assert world.store.bindings(AOR, 0.0) == [] and world.registrar.actors == {}


BEHAVIOURS = [
    register_makes_an_active_stored_binding, refresh_extends_the_expiry, unregister_ends_the_binding,
    expiry_fires_and_removes, unregister_of_an_unknown_contact_changes_nothing, restore_continues_with_the_time_left,
]


@pytest.mark.parametrize("behaviour", BEHAVIOURS, ids=lambda f: f.__name__)
def test_binding_lifecycle_rfc3261_10_3(world: World, behaviour: Callable[[World], None]) -> None:
    behaviour(world)


def test_an_out_of_order_register_is_refused_and_changes_nothing_rfc3261_10_3_step_7(world: World) -> None:
    """The registrar checks the order before it commits; were an out-of-order update to reach the actor
    anyway, the table's guard refuses it and the binding stays as it was."""
    first = world.register(5, 3600).binding
    outcome = world.register(4, 60, commit=False)
    assert outcome.state == "active" and outcome.binding == first and "RFC 3261 §10.3 step 7" in (outcome.refused or "")
    assert world.store.bindings(AOR, world.wall_now()) == [first] and world.registrar.view[AOR, CONTACT] == first
    stale = world.ask(Unregister("c1", 5))
    assert stale.refused and stale.state == "active" and world.registrar.actors
    assert world.register(1, 60, call_id="another").refused is None  # another Call-ID: updated


def test_a_second_restore_is_a_table_error_and_the_binding_stays(world: World) -> None:
    binding = Binding(AOR, CONTACT, world.wall_now() + 40, "c1", 3)
    world.ask(Restore(binding))
    outcome = world.ask(Restore(binding))
    assert outcome.state == "active" and outcome.refused and "RFC 3261 §10.3" in outcome.refused
    assert [r["type"] for r in world.trace] == ["transition", "refused"]


def test_each_transition_is_traced_with_its_row(world: World) -> None:
    world.register(1, 30)
    world.scheduler.advance(30_000)
    steps = [(r["event"], r["before"], r["after"], r["rfc"].split(" (")[0]) for r in world.trace]
    assert steps == [("register", "init", "active", "RFC 3261 §10.3 step 7"),
                     ("timer_expiry", "active", "removed", "RFC 3261 §10.2.2")]
    first = world.trace[0]
    assert first["time"] == 0.0 and first["machine"] == "binding" and first["aor"] == AOR
    assert first["effects"] == ["StartTimer", "ToRegistrar"]  # adopted: the registrar committed it
    assert world.trace[1]["time"] == 30_000


def test_a_store_failing_at_expiry_ends_the_actor_and_its_owner_forgets_it_rfc3261_10_2_2(world: World) -> None:
    class Broken(MemoryLocationStore):
        def remove_expired(self, aor: str, contact: str, expires: float) -> int:
            raise OSError("disk full")

    world.store = Broken()
    world.register(1, 60)
    world.scheduler.advance(60_000)
    assert world.registrar.actors == {} and len(world.registrar.ended) == 1
    assert world.store.bindings(AOR, 0.0) != [] and world.stored() == []  # left behind, but expired: unseen
    world.scheduler.advance(120_000)  # nothing fires into a stopped actor
    assert world.scheduler.failures == 1


def test_expiry_spares_a_refresh_committed_after_the_timer_fired_rfc3261_10_2_4(world: World) -> None:
    """The registrar may commit a refresh while the expiry is already on its way to the actor: the
    actor removes only the binding whose interval ran out, and the refresh stays in the store."""
    world.register(1, 60)
    world.scheduler.advance(60_000)  # expired and removed
    world.store.put(Binding(AOR, CONTACT, world.wall_now() + 3600, "c2", 1))  # the registrar's next commit
    assert world.store.remove_expired(AOR, CONTACT, world.wall_now()) == 0
    assert world.stored() == [CONTACT]


def test_restart_from_sqlite_continues_with_the_remaining_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bindings.db'}"
    first = ManualScheduler(seed=1)
    set_default_scheduler(first)
    try:
        store = open_store(url)
        world = World(first, store.locations)
        world.register(1, 100)
        world.register(1, 300, contact="sip:alice@192.0.2.9")
        first.advance(60_000)
        store.close()  # the process stops: 40 s left on one binding, 240 s on the other

        # A new process: a new scheduler whose clock starts again at 0, the same wall clock, the same file.
        second = ManualScheduler(seed=2)
        set_default_scheduler(second)
        store = open_store(url)
        world = World(second, store.locations)
        world.wall_now = wall_clock(second, EPOCH + 60)
        for binding in store.locations.bindings(AOR, world.wall_now()):
            assert world.ask(Restore(binding), binding.contact).state == "active"
        assert sorted(world.registrar.view) == [(AOR, CONTACT), (AOR, "sip:alice@192.0.2.9")]
        second.advance(39_999)
        assert sorted(world.stored()) == [CONTACT, "sip:alice@192.0.2.9"]
        second.advance(1)
        assert world.stored() == ["sip:alice@192.0.2.9"] and list(world.registrar.actors) == [(AOR, "sip:alice@192.0.2.9")]
        second.advance(200_000)
        assert world.store.bindings(AOR, 0.0) == [] and world.registrar.actors == {}
        store.close()
    finally:
        set_default_scheduler(None)


# ------------------------------------------------------------------------------------- mutations
_ROWS = {  # the rows whose pair has no other row: (state, event) -> its text in binding.toml
    ("init", "register"): '{ state = "init", event = "register", ',
    ("init", "unregister"): '{ state = "init", event = "unregister", ',
    ("init", "restore"): '{ state = "init", event = "restore", ',
    ("active", "timer_expiry"): '{ state = "active", event = "timer_expiry", ',
}


def _mutant(tmp_path: Path, state: str, event: str) -> BindingMachine:
    """binding.toml with the row of (state, event) turned into an ignore entry."""
    lines = (SPEC / "binding.toml").read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not line.lstrip().startswith(_ROWS[state, event])]
    assert len(kept) == len(lines) - 1
    text = "".join(kept).replace(
        "ignore = [\n",
        f'ignore = [\n  {{ state = "{state}", events = ["{event}"], why = "mutant", rfc = "none" }},\n', 1,
    )
    (tmp_path / "binding.toml").write_text(text, encoding="utf-8")
    return BindingMachine(load_machine(tmp_path / "binding.toml", load_timers(SPEC / "timers.toml")))


@pytest.mark.parametrize(("state", "event"), list(_ROWS), ids=lambda pair: str(pair))
def test_a_row_turned_into_an_ignore_is_caught_by_a_behaviour(
    tmp_path: Path, scheduler: ManualScheduler, state: str, event: str,
) -> None:
    machine = _mutant(tmp_path, state, event)
    caught = []
    for behaviour in BEHAVIOURS:
        try:
            behaviour(World(scheduler, MemoryLocationStore(), machine))
        except AssertionError:
            caught.append(behaviour.__name__)
    assert caught, f"no behaviour notices ({state}, {event}) ignored"
