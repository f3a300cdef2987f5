"""The table as oracle: every traced step of a transaction actor must be what its row, or its ignore entry,
says (target state, and how many messages sent, TU notices and ends). Shared by the conformance tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sipactors.runtime import ManualScheduler

SENDS = {"send_request", "send_ack", "send_response", "resend_response", "send_100"}
TELLS = {"to_tu", "timeout_to_tu", "transport_error_to_tu"}


def check_steps(trace: list[dict[str, Any]], models: dict[str, dict[str, Any]], guard: str = "unreliable") -> None:
    """Assert every transition in ``trace`` against ``models`` (kind → model), then empty the trace."""
    for record in trace:
        if record["type"] != "transition":
            continue
        decision = models[record["machine"]]["decisions"][record["before"]][record["event"]]
        effects = record["effects"]
        if decision["kind"] == "ignore":
            assert record["after"] == record["before"] and effects == [], record
            continue
        assert decision["kind"] == "rows", record
        (row,) = [r for r in decision["rows"] if r["guard"] in ("", guard)]
        assert record["after"] == row["target"], record
        assert effects.count("Send") == sum(a in SENDS for a in row["actions"]), record
        assert effects.count("ToTU") == sum(a in TELLS for a in row["actions"]), record
        assert ("Terminated" in effects) == ("terminate" in row["actions"]), record
    trace.clear()


class TableConformance(RuleBasedStateMachine):
    """What both conformance machines share: the virtual clock moves, and every step is the table's.
    Subclasses set ``self.scheduler``, ``self.trace`` and the class attribute ``oracle``."""

    oracle: dict[str, dict[str, Any]] = {}
    scheduler: ManualScheduler
    trace: list[dict[str, Any]]

    @rule(ms=st.sampled_from([5, 300, 1000, 4000, 33_000]))
    def advance(self, ms: int) -> None:
        self.scheduler.advance(ms)

    @invariant()
    def every_step_is_the_tables(self) -> None:
        check_steps(self.trace, self.oracle)
