"""What every table-driven machine shares: one ``transitions.Machine`` built from a model, driven by many
objects, each step answered with effects (DESIGN §2).

Rules of this module:
 * a ``TableMachine`` subclass serves one family (``sipactors.fsm.families``): its ``family`` names it,
   its ``guards`` map the family's guard names to conditions, and each action ``name`` of the family is
   its method ``_do_name(obj, kwargs, timer)``, which appends effects to ``kwargs["effects"]``;
 * the objects it drives are plain state with a ``state`` attribute and an ``intervals`` dict (the
   running timers and their last delay in milliseconds), never a ``Machine`` of their own;
 * a pair is decided as the table says: a row runs the machine's own ``Transition`` objects for the pair
   (``_steps``, looked up once per (state, event); ``_execute`` checks their conditions, sets their target
   and calls their ``after`` callback's actions) instead of going through ``Event.trigger`` each time; an ``ignore`` entry answers no effects; an ``error`` entry raises
   ``ProtocolError`` naming the RFC rule (``_declined``). ``_trigger`` is the general path, which tests/fsm
   proves equal to ``_execute`` and to a stock ``transitions.Machine``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, cast

from mypy_extensions import mypyc_attr
from transitions.core import Condition, Event, EventData, Machine, State, Transition

from sipactors._resources import model_file
from sipactors.fsm.effects import CancelTimer, StartTimer, Terminated
from sipactors.fsm.families import FAMILIES, Family

__all__ = ["ProtocolError", "Run", "TableMachine", "load_model"]


@mypyc_attr(native_class=False)  # mypyc compiles no native subclass of RuntimeError
class ProtocolError(RuntimeError):
    """An event the table declares an error in the current state (the message names the RFC rule)."""


@mypyc_attr(native_class=False)  # a subclass of an interpreted class (transitions)
class _TableTransition(Transition):
    """A ``transitions`` Transition, executed as the tables configure it.

    transitions' own ``execute`` runs, in order: the ``prepare`` callbacks, the conditions, the machine's
    ``before_state_change`` and the transition's ``before`` callbacks, the source state's exit callbacks,
    ``Machine.set_state``, the destination's enter callbacks (and ``on_final``), then ``after`` and
    ``after_state_change``, logging at each stage. The tables configure only conditions (guards) and
    ``after`` (the row's actions) — ``TableMachine`` refuses a machine with any of the others — so this
    runs the same steps without walking the empty lists and formatting the log calls, which cost three
    quarters of a step (measured: 40 µs against 10 µs for a one-action row).
    """

    def execute(self, event_data: EventData) -> bool:
        for condition in self.conditions:
            # Condition.check, for a machine that sends the event (send_event) and a guard given as a
            # callable (the tables' guards are functions, never names to resolve on the model)
            if condition.func(event_data) != condition.target:  # type: ignore[operator]  # (a callable)
                return False
        if self.dest:  # None would be an internal transition; every table row names its target
            # Machine.set_state(dest, model) for the one model and the state named by a string that the
            # tables make: the model's ``state`` set to the state's value, which for a string state is its
            # name, without set_state's isinstance tests and its list of one model
            event_data.model.state = self.dest  # type: ignore[attr-defined]  # (the model has a state)
        for callback in self.after:
            callback(event_data)  # type: ignore[operator]  # the tables give callables, never names
        return True


@mypyc_attr(native_class=False)  # a subclass of an interpreted class whose __init__ reads transition_cls
class _TableMachine(Machine):
    transition_cls = _TableTransition


#: A row's actions as ``_execute`` calls them: each the machine's ``_do_name`` method and its timer argument.
Actions = tuple[tuple[Callable[[Any, dict[str, Any], str], None], str], ...]


@mypyc_attr(native_class=False)  # a callable with a __name__, as transitions' callbacks are
class _RowActions:
    """A row's ``after`` callback: its actions in the table's order (one callback rather than one per
    action: each costs transitions a resolve and a call). ``_execute`` runs ``actions`` itself, without
    the ``EventData`` the callback takes."""

    __slots__ = ("actions", "__name__")

    def __init__(self, actions: Actions, name: str) -> None:
        self.actions = actions
        self.__name__ = name

    def __call__(self, event: EventData) -> None:
        obj, kwargs = event.model, event.kwargs
        for run, timer in self.actions:
            run(obj, kwargs, timer)


@dataclass(frozen=True, slots=True)
class _Step:
    """The table's decision for one (state, event), resolved once: for rows, the machine's ``Transition``
    objects for that pair in the order ``Event._process`` tries them, and what ``_execute`` reads of each
    (``rows``: its conditions, its target and its actions)."""

    decision: dict[str, Any]
    kind: str  # "rows", "ignore" or "error"
    event: Event | None
    source: State
    transitions: tuple[Transition, ...]
    fired: str | None  # the timer whose firing this event (``timer_<name>``) is: it is no longer running
    rows: tuple[tuple[tuple[Condition, ...], str | None, Actions], ...]
    #: The target and actions of the pair's one row when it has no guard (most pairs): a ``fire`` runs it
    #: inline, without the call to ``_execute`` and its loop over the rows (a step per message and timer).
    plain: tuple[str, Actions] | None = None


#: How a step runs a row: ``TableMachine._execute`` (the fast path) or ``TableMachine._trigger``.
Run = Callable[[_Step, Any, dict[str, Any]], bool]


class TableMachine:
    """The machine of one model, shared by every object of that model.

    ``lean=False`` builds a stock ``transitions.Machine`` (its own ``Transition.execute``); the tests use it
    as the reference the lean one must equal.
    """

    family: ClassVar[Family]
    guards: ClassVar[Mapping[str, Callable[[EventData], bool]]]

    def __init__(self, model: dict[str, Any], lean: bool = True) -> None:
        if model.get("family") != self.family.name:
            raise ValueError(f"{model.get('name')}: a {model.get('family')} model, not a {self.family.name} one")
        self.model = model
        self.name: str = model["name"]
        self.decisions: dict[str, dict[str, Any]] = model["decisions"]
        transitions = [
            {
                "trigger": event, "source": state, "dest": row["target"],
                "conditions": [self.guards[row["guard"]]] if row["guard"] else [],
                "after": [self._row_callback(row["actions"])],
            }
            for state, by_event in self.decisions.items()
            for event, decision in by_event.items() if decision["kind"] == "rows"
            for row in decision["rows"]
        ]
        machine_cls = _TableMachine if lean else Machine
        self.machine = machine_cls(
            model=None, states=model["states"], transitions=transitions, initial=model["initial"],
            auto_transitions=False, send_event=True,
        )
        if lean:
            _check_lean(self.machine)
        # ``timer_x`` fires the timer the model names x, whatever its case (a transaction's "J", a binding's "expiry").
        self._timer_events = {f"timer_{timer.lower()}": timer for timer in model["timers"]}
        self._steps: dict[str, dict[str, _Step]] = {
            state: {event: self._resolve(state, event, decision) for event, decision in by_event.items()}
            for state, by_event in self.decisions.items()
        }

    def _resolve(self, state: str, event: str, decision: dict[str, Any]) -> _Step:
        machine_event = self.machine.events.get(event)
        found = machine_event.transitions.get(state, []) if machine_event is not None else []
        rows = tuple((tuple(t.conditions), t.dest, tuple(a for run in t.after for a in cast(_RowActions, run).actions))
                     for t in found)
        conditions, dest, actions = rows[0] if len(rows) == 1 else ((), None, ())
        plain = (dest, actions) if dest is not None and not conditions else None
        return _Step(decision, decision["kind"], machine_event, self.machine.get_state(state), tuple(found),
                     self._timer_events.get(event), rows, plain)

    def decision(self, state: str, event: str) -> dict[str, Any]:
        return self.decisions[state][event]

    def rfc(self, state: str, event: str) -> str:
        """The RFC section of the decision for (state, event): its first row's, or the entry's."""
        decision = self.decisions[state][event]
        return decision["rows"][0]["rfc"] if decision["kind"] == "rows" else decision["rfc"]  # type: ignore[no-any-return]

    def _declined(self, state: str, event: str, step: _Step | None) -> None:
        """A pair no row decides: nothing for an ignore entry; ``ProtocolError`` for an error entry or an
        unknown event. (A subclass's ``fire`` looks the step up itself and calls this only off its hot path.)"""
        if step is None:
            raise ProtocolError(f"{self.name}: unknown event {event!r}")
        if step.kind == "error":
            decision = step.decision
            raise ProtocolError(f"{self.name}: {event} in {state}: {decision['why']} ({decision['rfc']})")

    def _unguarded(self, state: str, event: str) -> ProtocolError:
        rfc = self.rfc(state, event)
        return ProtocolError(f"{self.name}: no guard of ({state}, {event}) holds ({rfc})")

    def _execute(self, step: _Step, obj: Any, kwargs: dict[str, Any]) -> bool:
        """Event._process and ``_TableTransition.execute``, for the pair's transitions found once: the first
        whose conditions hold sets the object's state and runs its actions. Only a guarded transition makes
        the ``EventData`` its guards read (most rows have none), and the actions are called straight from
        the row's ``_RowActions``: three calls fewer per step than through ``execute`` (a step per message
        and per timer)."""
        data = None
        for conditions, dest, actions in step.rows:
            if conditions:
                if data is None:
                    data = EventData(step.source, step.event, self.machine, obj, (), kwargs)
                held = True
                for condition in conditions:  # Condition.check (see _TableTransition.execute)
                    if condition.func(data) != condition.target:  # type: ignore[operator]  # (a callable)
                        held = False
                        break
                if not held:
                    continue
            obj.state = dest  # (see _TableTransition.execute)
            for run, timer in actions:
                run(obj, kwargs, timer)
            return True
        return False

    @staticmethod
    def _trigger(step: _Step, obj: Any, kwargs: dict[str, Any]) -> bool:
        assert step.event is not None  # a pair decided by rows has its event in the machine
        return bool(step.event.trigger(obj, **kwargs))

    def _row_callback(self, actions: list[str]) -> _RowActions:
        """One ``after`` callback per row, running its actions in the table's order."""
        steps = tuple((getattr(self, "_do_" + name), timer) for name, _, timer in (a.partition(":") for a in actions))
        return _RowActions(steps, "+".join(actions) or "no_action")

    @staticmethod
    def _stopped(intervals: dict[str, int], fired: str | None, effects: list[Any]) -> None:
        """A timer that fires is no longer running, unless its row restarted it."""
        if fired is not None:
            for effect in effects:  # (a loop, not any() over a generator: this runs at every timer's firing)
                if type(effect) is StartTimer and effect.timer == fired:
                    return
            intervals.pop(fired, None)

    # -- the actions every family that has them shares ----------------------------------------------
    def _do_cancel(self, obj: Any, kw: dict[str, Any], timer: str) -> None:
        if obj.intervals.pop(timer, None) is not None:
            kw["effects"].append(CancelTimer(timer))

    def _do_terminate(self, obj: Any, kw: dict[str, Any], timer: str) -> None:
        """The machine is over: cancel what still runs (not the timer whose firing this is), in name order."""
        effects, fired = kw["effects"], kw.get("fired")
        for running in sorted(obj.intervals):
            if running != fired:
                effects.append(CancelTimer(running))
        obj.intervals.clear()
        effects.append(Terminated())

    @classmethod
    def missing(cls) -> list[str]:
        """What the family's vocabulary names and this class does not implement (tests/fsm wants none)."""
        family = cls.family
        names = [*family.actions, *family.timer_actions]
        return [f"action {name}" for name in names if not callable(getattr(cls, "_do_" + name, None))] + [
            f"guard {name}" for name in family.guards if name not in cls.guards
        ] + [f"guard {name} (not in the family)" for name in cls.guards if name not in family.guards]


def _check_lean(machine: Machine) -> None:
    """``_TableTransition.execute`` skips the callbacks the tables never configure, calls guards as the
    tables give them and sets the model's ``state``: refuse a machine that has any such callback, a guard
    named by a string or another model attribute, rather than silently not run them."""
    hooks = (machine.prepare_event, machine.finalize_event, machine.before_state_change, machine.after_state_change,
             machine.on_exception, machine.on_final)
    states = [callback for state in machine.states.values() for callback in (*state.on_enter, *state.on_exit)]
    steps = [callback for event in machine.events.values() for ts in event.transitions.values() for t in ts
             for callback in (*t.prepare, *t.before)]
    if any(hooks) or states or steps or machine.has_queue:
        raise ValueError(f"{machine.name}: the lean transitions execute only conditions and after callbacks")
    named = [c.func for event in machine.events.values() for ts in event.transitions.values() for t in ts
             for c in t.conditions if not callable(c.func)]
    if named or not machine.send_event or machine.model_attribute != "state":
        raise ValueError(f"{machine.name}: the lean transitions call guards given as callables, with the event, "
                         "and set the model's state")
    if any(not isinstance(name, str) or state.value != name for name, state in machine.states.items()):
        raise ValueError(f"{machine.name}: the lean transitions take a state's name for its value")


@cache
def load_model(name: str) -> dict[str, Any]:
    """The generated model ``models/<name>.json`` (read once)."""
    model = json.loads(model_file(f"{name}.json").read_text(encoding="utf-8"))
    if model.get("family") not in FAMILIES:
        raise ValueError(f"models/{name}.json: unknown family {model.get('family')!r}")
    return model  # type: ignore[no-any-return]
