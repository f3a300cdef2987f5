"""What a machine asks its actor to do: effects, as frozen dataclasses (DESIGN §1).

The machine never sends, sleeps or reads a clock itself; it returns these and the actor carries them out.
``StartTimer``, ``CancelTimer`` and ``Terminated`` serve every family; ``Send`` and ``ToTU`` are the
transactions' (RFC 3261 §17), ``RemoveBinding``, ``ToRegistrar`` and ``Refused`` the
registration bindings' (RFC 3261 §10.3), ``Forward``, ``Upstream``, ``CancelBranch`` and ``ResetTimerC`` a
proxy response context's (RFC 3261 §16). The actions that produce them are listed by family in
``sipactors.fsm.families``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sipactors.store.model import Binding

__all__ = [
    "BindingEffect", "CancelBranch", "CancelTimer", "Effect", "Forward", "ProxyEffect", "Refused", "RemoveBinding",
    "ResetTimerC", "Send", "StartTimer", "Terminated", "ToRegistrar", "ToTU", "Upstream",
    "Answer", "DeleteSubscription", "NextNotify", "Notify", "SaveSubscription", "SubscriptionEffect", "ToPackage",
]


@dataclass(frozen=True, slots=True)
class Send:
    """Pass a message to the transport: ``what`` is "request", "ack" (for the final response in
    ``message``, RFC 3261 §17.1.1.3), "response" or "100" (a 100 Trying for the request)."""

    what: str
    message: Any = None


@dataclass(frozen=True, slots=True)
class StartTimer:
    """(Re)start timer ``timer`` (a transaction's: one letter, RFC 3261 Table 4; a binding's: "expiry") to
    fire after ``delay`` milliseconds; a timer of that name already running is replaced."""

    timer: str
    delay: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: str


@dataclass(frozen=True, slots=True)
class ToTU:
    """Tell the transaction user: "message" (``message`` is what arrived), "timeout" or "transport_error"."""

    what: str
    message: Any = None


@dataclass(frozen=True, slots=True)
class Terminated:
    """The machine is over (a transaction, RFC 3261 §17; a binding removed or expired, §10.2.2): its actor
    must stop and be forgotten."""


Effect = Send | StartTimer | CancelTimer | ToTU | Terminated


@dataclass(frozen=True, slots=True)
class RemoveBinding:
    """Remove the binding of ``contact`` from ``aor`` in the location store if its time is up at ``expires``
    (RFC 3261 §10.2.2: it expired): a refresh the registrar committed meanwhile has a later expiry and stays."""

    aor: str
    contact: str
    expires: float


@dataclass(frozen=True, slots=True)
class ToRegistrar:
    """Tell the registrar the binding of (``aor``, ``contact``) as it now is; None: there is none any more."""

    aor: str
    contact: str
    binding: Binding | None


@dataclass(frozen=True, slots=True)
class Refused:
    """The event was an out-of-order update and changed nothing: "the update MUST be aborted and the
    request fails" (RFC 3261 §10.3 steps 6-7)."""

    why: str


@dataclass(frozen=True, slots=True)
class Forward:
    """Send the branch's request (built by the response context, RFC 3261 §16.6) to its next hop, and
    start its Timer C if it is an INVITE (§16.6 steps 10-11)."""

    branch: Any


@dataclass(frozen=True, slots=True)
class Upstream:
    """Send ``response`` upstream through the server transaction (RFC 3261 §16.7 steps 5, 9, 10)."""

    response: Any


@dataclass(frozen=True, slots=True)
class CancelBranch:
    """Send a CANCEL for the branch's request (RFC 3261 §9.1, §16.10)."""

    branch: Any


@dataclass(frozen=True, slots=True)
class ResetTimerC:
    """Restart the branch's Timer C (RFC 3261 §16.7 step 2)."""

    branch: Any


ProxyEffect = Forward | Upstream | CancelBranch | ResetTimerC | Terminated

BindingEffect = RemoveBinding | ToRegistrar | Refused | StartTimer | CancelTimer | Terminated


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer the SUBSCRIBE being handled with ``status`` (200: RFC 6665 §4.2.1.1, with Expires and Contact;
    403: blocked, §4.2.1.3; 500: an in-dialog request out of CSeq order, RFC 3261 §12.2.2)."""

    status: int


@dataclass(frozen=True, slots=True)
class Notify:
    """Send a NOTIFY (RFC 6665 §4.2.2) whose Subscription-State is ``state`` ("active", "pending" or
    "terminated") with ``reason`` when terminated; queued behind the NOTIFY in flight, if any."""

    state: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class NextNotify:
    """The NOTIFY in flight is over: send the one queued behind it, if any (RFC 6665 §4.2.2)."""


@dataclass(frozen=True, slots=True)
class SaveSubscription:
    """Write the subscription and its dialog to the store."""


@dataclass(frozen=True, slots=True)
class DeleteSubscription:
    """Remove the subscription from the store."""


@dataclass(frozen=True, slots=True)
class ToPackage:
    """Tell the event package "started" (with the authorization the subscription holds) or "ended" (with
    ``reason``: RFC 6665 §4.1.3, or "unsubscribed")."""

    what: str
    reason: str | None = None


SubscriptionEffect = Answer | Notify | NextNotify | SaveSubscription | DeleteSubscription | ToPackage | StartTimer | CancelTimer | Terminated
