"""Reading the spec tables (spec/machines/*.toml) into models, and refusing a table with a hole in it.

A table declares its family (``[machine] family``, "transaction" by default; see ``families``), whose
vocabulary of actions, guards and timers its rows may use. It lists ``rows`` (state, event, optional
guard, target, actions, RFC section), and ``ignore`` and
``error`` entries that decide the pairs no row covers; ``events = "*"`` in such an entry means every event
of that state that no row and no other entry decides. The model is the table resolved into one decision per (state, event): the
h2 discipline, no pair is left to chance. Any fault is a ``TableError`` that names the table and the row.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sipactors.fsm.families import DEFAULT_FAMILY, FAMILIES, Family

__all__ = ["TableError", "TimerTable", "load_machine", "load_timers"]

_TIMER = re.compile(r"^[A-M]$")
_EXPRESSION = re.compile(r"^(?:none|\d+|(?:\d+\*)?T[124])$")


class TableError(ValueError):
    """A spec table that cannot become a model."""


@dataclass(frozen=True)
class TimerTable:
    """Base values (T1, T2, T4) and, per timer, its value expression per kind of transport."""

    base: dict[str, int]
    timers: dict[str, dict[str, str]]

    def value(self, timer: str, reliable: bool, base: dict[str, int] | None = None) -> int | None:
        """Milliseconds, or None when the timer is not used on this kind of transport."""
        expression = self.timers[timer]["reliable" if reliable else "unreliable"]
        return evaluate(expression, base or self.base)

    def to_model(self) -> dict[str, Any]:
        return {"base": self.base, "timers": self.timers}


def evaluate(expression: str, base: dict[str, int]) -> int | None:
    if expression == "none":
        return None
    factor, star, name = expression.rpartition("*")
    if not star:
        name, factor = expression, "1"
    return int(factor) * (base[name] if name in base else int(name))


def load_timers(path: Path) -> TimerTable:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    base = {name: int(value) for name, value in data["base"].items()}
    if set(base) != {"T1", "T2", "T4"}:
        raise TableError(f"{path.name}: [base] must define exactly T1, T2 and T4")
    timers: dict[str, dict[str, str]] = {}
    for name, entry in data["timer"].items():
        if not _TIMER.match(name):
            raise TableError(f"{path.name}: timer {name!r} is not one of A-M (RFC 3261 Table 4, RFC 6026)")
        for kind in ("unreliable", "reliable"):
            expression = str(entry.get(kind, ""))
            if not _EXPRESSION.match(expression):
                raise TableError(f"{path.name}: timer {name} {kind} = {expression!r} is not none, N, T1, T2, T4 or N*Tn")
        if not entry.get("rfc"):
            raise TableError(f"{path.name}: timer {name} names no RFC section")
        timers[name] = {"unreliable": str(entry["unreliable"]), "reliable": str(entry["reliable"]), "rfc": entry["rfc"]}
    return TimerTable(base, timers)


def _check_action(where: str, action: str, family: Family, timers: TimerTable) -> None:
    name, colon, timer = action.partition(":")
    if colon:
        if name not in family.timer_actions:
            raise TableError(f"{where}: action {action!r}: no timer action {name!r} in the {family.name} family "
                             f"(known: {', '.join(family.timer_actions)})")
        if family.timers is None and timer not in timers.timers:
            raise TableError(f"{where}: action {action!r} names timer {timer!r}, which timers.toml does not define")
        if family.timers is not None and timer not in family.timers:
            raise TableError(f"{where}: action {action!r} names timer {timer!r}, not one of the {family.name} "
                             f"family (known: {', '.join(family.timers)})")
    elif action not in family.actions:
        raise TableError(f"{where}: action {action!r} has no implementation in the {family.name} family "
                         f"(known: {', '.join(family.actions)})")


def load_machine(path: Path, timers: TimerTable) -> dict[str, Any]:
    """The model of one table: every (state, event) decided exactly once."""
    head = tomllib.loads(path.read_text(encoding="utf-8")).get("machine", {})
    data = head  # the rows and the ignore and error entries are arrays of the [machine] table
    name = path.stem
    for key in ("name", "title", "rfc", "initial", "final", "states", "events"):
        if key not in head:
            raise TableError(f"{path.name}: [machine] has no {key!r}")
    if head["name"] != name:
        raise TableError(f"{path.name}: [machine] name {head['name']!r} differs from the file name")
    states: list[str] = list(head["states"])
    events: list[str] = list(head["events"])
    family = FAMILIES.get(head.get("family", DEFAULT_FAMILY))
    if family is None:
        raise TableError(f"{path.name}: unknown family {head['family']!r} (known: {', '.join(FAMILIES)})")
    for key in ("initial", "final"):
        if head[key] not in states:
            raise TableError(f"{path.name}: {key} state {head[key]!r} is not among the states")
    decisions: dict[str, dict[str, Any]] = {state: {} for state in states}
    used_timers: set[str] = set()

    def decide(where: str, state: str, event: str, decision: dict[str, Any]) -> None:
        if state not in decisions:
            raise TableError(f"{where}: unknown state {state!r}")
        if event not in events:
            raise TableError(f"{where}: unknown event {event!r}")
        existing = decisions[state].get(event)
        if existing is None:
            decisions[state][event] = decision
            return
        if existing["kind"] == "rows" and decision["kind"] == "rows":
            existing["rows"].extend(decision["rows"])
            return
        raise TableError(f"{where}: ({state}, {event}) is already decided ({existing['kind']})")

    for index, row in enumerate(data.get("rows", []), 1):
        where = f"{path.name} row {index} ({row.get('state')}, {row.get('event')})"
        for key in ("state", "event", "target", "actions", "rfc"):
            if key not in row:
                raise TableError(f"{where}: no {key!r}")
        if row["target"] not in states:
            raise TableError(f"{where}: unknown target state {row['target']!r}")
        guard = row.get("guard", "")
        if guard and guard not in family.guards:
            raise TableError(f"{where}: unknown guard {guard!r} in the {family.name} family (known: {', '.join(family.guards)})")
        for action in row["actions"]:
            _check_action(where, action, family, timers)
            if ":" in action:
                used_timers.add(action.partition(":")[2])
        entry = {"guard": guard, "target": row["target"], "actions": list(row["actions"]), "rfc": row["rfc"]}
        decide(where, row["state"], row["event"], {"kind": "rows", "rows": [entry]})

    # Entries that name their events first, then the "*" entries, which take what is left of their state.
    entries = [(kind, index, entry) for kind in ("ignore", "error") for index, entry in enumerate(data.get(kind, []), 1)]
    for kind, index, entry in sorted(entries, key=lambda item: item[2].get("events") == "*"):
        state = entry.get("state")
        where = f"{path.name} {kind} entry {index} ({state})"
        if not entry.get("why") or not entry.get("rfc"):
            raise TableError(f"{where}: an {kind} entry says why and cites the RFC")
        if state not in decisions:
            raise TableError(f"{where}: unknown state {state!r}")
        named = entry.get("events")
        targets = [e for e in events if e not in decisions[state]] if named == "*" else list(named or [])
        for event in targets:
            decide(where, state, event, {"kind": kind, "why": entry["why"], "rfc": entry["rfc"]})

    for state in states:
        for event in events:
            decision = decisions[state].get(event)
            if decision is None:
                raise TableError(f"{path.name}: ({state}, {event}) is undecided: add a row, or an ignore or error entry")
            if decision["kind"] == "rows":
                guards = [row["guard"] for row in decision["rows"]]
                if len(guards) > 1 and ("" in guards or len(set(guards)) != len(guards)):
                    raise TableError(f"{path.name}: ({state}, {event}) has several rows without distinct guards")
    if decisions[head["final"]] and any(d["kind"] == "rows" for d in decisions[head["final"]].values()):
        raise TableError(f"{path.name}: the final state {head['final']!r} has rows; it must only ignore")

    return {
        "name": name,
        "family": family.name,
        "title": head["title"],
        "rfc": head["rfc"],
        "initial": head["initial"],
        "final": head["final"],
        "states": states,
        "events": events,
        "timers": sorted(used_timers),
        "decisions": {state: {event: decisions[state][event] for event in events} for state in states},
    }
