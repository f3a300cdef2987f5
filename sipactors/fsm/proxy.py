"""The proxy response context machine: one shared ``transitions.Machine`` built from models/proxy.json
(spec/machines/proxy.toml), driving one ``ContextState`` per proxied server transaction (RFC 3261 §16.6-§16.10).

Rules of this module (DESIGN §1, §2):
 * ``fire(c, event, message)`` returns the effects of that step and nothing else happens: no socket, no
   clock. The branch bookkeeping and the best-response rules are the pure ``ResponseContext`` of
   ``sipactors.roles.proxy``; the table decides when each is used;
 * the events and what they carry: ``start`` and ``cancel`` nothing; ``branch_provisional``,
   ``branch_2xx``, ``branch_final`` and ``branch_timeout`` a ``BranchEvent`` (the branch, and the response
   received or synthesized; none for ``branch_timeout``);
 * the guards read the context before the row's actions run: ``six_hundred_pending``, ``other_pending``,
   ``next_target`` and ``last_branch`` partition the final responses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from transitions import EventData

from sipactors.fsm.base import Run, TableMachine, load_model
from sipactors.fsm.effects import CancelBranch, Forward, ProxyEffect, ResetTimerC, Upstream
from sipactors.fsm.families import PROXY
from sipactors.roles.proxy import Branch, ResponseContext

__all__ = ["BranchEvent", "ContextState", "ProxyMachine", "proxy_machine"]


@dataclass(frozen=True, slots=True)
class BranchEvent:
    """Something that happened to one branch: a response (received, or standing for a timeout)."""

    branch: Branch
    response: Any = None


@dataclass(eq=False, slots=True)
class ContextState:
    """The state of one response context, as the machine needs it."""

    context: ResponseContext
    to_tag: str  # for a final response made here (408, 487): RFC 3261 §8.2.6.2
    state: str = "init"
    intervals: dict[str, int] = field(default_factory=dict)  # the table runs no timer of its own


def _final(event: EventData) -> tuple[ResponseContext, Branch, Any]:
    message: BranchEvent = event.kwargs["message"]
    model: ContextState = event.model  # type: ignore[assignment]  # the object the machine drives
    return model.context, message.branch, message.response


def _six_hundred_pending(event: EventData) -> bool:
    context, branch, response = _final(event)
    return bool(600 <= response.status < 700 and context.others_pending(branch))


def _other_pending(event: EventData) -> bool:
    context, branch, response = _final(event)
    return bool(not 600 <= response.status < 700 and context.others_pending(branch))


def _next_target(event: EventData) -> bool:
    context, branch, response = _final(event)
    return not context.others_pending(branch) and context.more_targets(response)


def _last_branch(event: EventData) -> bool:
    context, branch, response = _final(event)
    return not context.others_pending(branch) and not context.more_targets(response)


class ProxyMachine(TableMachine):
    """The machine of the proxy family, shared by every response context."""

    family = PROXY
    guards = {
        "six_hundred_pending": _six_hundred_pending, "other_pending": _other_pending,
        "next_target": _next_target, "last_branch": _last_branch,
    }

    def new(self, context: ResponseContext, to_tag: str) -> ContextState:
        return ContextState(context, to_tag, self.model["initial"])

    def fire(self, c: ContextState, event: str, message: Any = None) -> list[ProxyEffect]:
        """One step: the effects of ``event`` in the context's current state."""
        step = self._steps[c.state].get(event)
        plain = step.plain if step is not None else None
        if plain is None:  # guarded rows, an ignore or an error entry
            return self._fire(c, event, message, self._execute)
        # _fire and _execute for one unguarded row, inline (a step per message a context handles)
        effects: list[ProxyEffect] = []
        kwargs = {"message": message, "effects": effects, "fired": None}
        c.state = plain[0]
        for action, timer in plain[1]:
            action(c, kwargs, timer)
        return effects

    def trigger(self, c: ContextState, event: str, message: Any = None) -> list[ProxyEffect]:
        """``fire`` through the general path, ``machine.events[event].trigger``, for the tests to compare."""
        return self._fire(c, event, message, self._trigger)

    def _fire(self, c: ContextState, event: str, message: Any, run: Run) -> list[ProxyEffect]:
        step = self._steps[c.state].get(event)
        if step is None or step.kind != "rows":
            self._declined(c.state, event, step)
            return []
        effects: list[ProxyEffect] = []
        if not run(step, c, {"message": message, "effects": effects, "fired": None}):
            raise self._unguarded(c.state, event)
        return effects

    # -- actions ------------------------------------------------------------------------------------
    def _do_forward_next(self, c: ContextState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].extend([Forward(branch) for branch in c.context.open_next_group()])

    def _do_note_provisional(self, c: ContextState, kw: dict[str, Any], timer: str) -> None:
        kw["message"].branch.provisional = True

    def _do_reset_timer_c(self, c: ContextState, kw: dict[str, Any], timer: str) -> None:
        message: BranchEvent = kw["message"]
        if c.context.invite and message.response.status > 100:  # §16.7 step 2: 101-199 only
            kw["effects"].append(ResetTimerC(message.branch))

    def _do_forward_provisional(self, c: ContextState, kw: dict[str, Any], timer: str) -> None:
        response = kw["message"].response
        if response.status > 100:  # §16.7 step 5: a 100 is hop-by-hop, never forwarded
            kw["effects"].append(Upstream(c.context.upstream(response)))

    def _do_forward_response(self, c: ContextState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(Upstream(c.context.upstream(kw["message"].response)))

    def _do_record(self, c: ContextState, kw: dict[str, Any], timer: str) -> None:
        message: BranchEvent = kw["message"]
        c.context.record(message.branch, message.response)

    def _do_cancel_forks(self, c: ContextState, kw: dict[str, Any], timer: str) -> None:
        if c.context.plan.cancel_forks:
            kw["effects"].extend(CancelBranch(branch) for branch in c.context.cancel_pending())
        else:
            c.context.closed = True  # RFC 3841 §9.1 no-cancel: the branches run on; no new ones

    def _do_cancel_pending(self, c: ContextState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].extend(CancelBranch(branch) for branch in c.context.cancel_pending())

    def _do_cancel_deferred(self, c: ContextState, kw: dict[str, Any], timer: str) -> None:
        branch: Branch = kw["message"].branch
        if branch.cancel_wanted and not branch.cancel_sent and branch.pending:
            branch.cancel_sent = True
            kw["effects"].append(CancelBranch(branch))

    def _do_cancel_branch(self, c: ContextState, kw: dict[str, Any], timer: str) -> None:
        branch: Branch = kw["message"].branch
        if not branch.cancel_sent and branch.pending:
            branch.cancel_sent = branch.cancel_wanted = True
            kw["effects"].append(CancelBranch(branch))

    def _do_mark_cancelled(self, c: ContextState, kw: dict[str, Any], timer: str) -> None:
        c.context.cancelled = True

    def _do_send_best(self, c: ContextState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(Upstream(c.context.best(c.to_tag)))


@cache
def proxy_machine() -> ProxyMachine:
    """The shared proxy response context machine (models/proxy.json)."""
    return ProxyMachine(load_model("proxy"))
