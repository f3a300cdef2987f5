"""What a transaction machine asks its actor to do: effects, as frozen dataclasses (DESIGN §1).

The machine never sends, sleeps or reads a clock itself; it returns these and the actor carries them out.
``ACTIONS`` is the action vocabulary of the spec tables (spec/machines/*.toml): the model compiler refuses
a table that names an action not listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ACTIONS", "TIMER_ACTIONS", "CancelTimer", "Effect", "Send", "StartTimer", "Terminated", "ToTU"]


@dataclass(frozen=True, slots=True)
class Send:
    """Pass a message to the transport: ``what`` is "request", "ack" (for the final response in
    ``message``, RFC 3261 §17.1.1.3), "response" or "100" (a 100 Trying for the request)."""

    what: str
    message: Any = None


@dataclass(frozen=True, slots=True)
class StartTimer:
    """(Re)start timer ``timer`` (one letter, RFC 3261 Table 4) to fire after ``delay`` milliseconds."""

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
    """The transaction is over and must be destroyed (RFC 3261 §17)."""


Effect = Send | StartTimer | CancelTimer | ToTU | Terminated

#: Actions without an argument.
ACTIONS: dict[str, str] = {
    "send_request": "send the request (again)",
    "send_ack": "send the ACK for the non-2xx final response just received (RFC 3261 §17.1.1.3)",
    "send_response": "send the response the TU passed, and remember it",
    "resend_response": "send the most recent response again (the 100 Trying if the TU sent none yet)",
    "send_100": "send a 100 Trying for the request (RFC 3261 §17.2.1)",
    "to_tu": "pass the message that arrived to the TU",
    "timeout_to_tu": "tell the TU the transaction timed out",
    "transport_error_to_tu": "tell the TU a transport error occurred",
    "terminate": "the transaction is destroyed (its running timers are cancelled)",
}

#: Actions on a timer, written ``name:X``.
TIMER_ACTIONS: dict[str, str] = {
    "start": "start X at its initial value for the transport in use (not at all if that value is none)",
    "cancel": "cancel X",
    "double": "restart X with twice its last interval (Timer A, RFC 3261 §17.1.1.2)",
    "double_capped": "restart X with MIN(2 * last interval, T2) (Timers E and G)",
    "set_t2": "restart X with T2 (Timer E in Proceeding, RFC 3261 §17.1.2.2)",
}
