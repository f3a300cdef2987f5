"""The stored-message delivery machine: one shared ``transitions.Machine`` built from models/delivery.json
(spec/machines/delivery.toml), driving one ``DeliveryState`` per stored MESSAGE (RFC 3428 §4, §7, §8).

Rules of this module (DESIGN §1, §2):
 * ``fire(d, event)`` returns the effects of that step and nothing else happens: no socket, no clock, no
   store. The ``DeliveryActor`` (``sipactors.runtime.messaging``) carries them out;
 * the events carry nothing: the stored message is the state's; ``sipactors.roles.messaging.fate`` says
   which of ``accepted``, ``deferred`` or ``refused`` a final response is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

from sipactors.fsm.base import Run, TableMachine, load_model
from sipactors.fsm.families import DELIVERY
from sipactors.store.messages import StoredMessage

__all__ = [
    "DeleteStored", "DeliveryEffect", "DeliveryMachine", "DeliveryState", "Dropped", "Kept", "SendMessage",
    "delivery_machine",
]


@dataclass(frozen=True, slots=True)
class SendMessage:
    """Send the stored message to the device as a new MESSAGE (RFC 3428 §4)."""

    message: StoredMessage


@dataclass(frozen=True, slots=True)
class DeleteStored:
    """Delete the message from the store: delivered, refused or expired (RFC 3428 §7)."""

    message: StoredMessage


@dataclass(frozen=True, slots=True)
class Kept:
    """The message stays stored for the next registration (the device could not take it now)."""

    message: StoredMessage


@dataclass(frozen=True, slots=True)
class Dropped:
    """The message was refused by a final response and will never be delivered: log it."""

    message: StoredMessage


DeliveryEffect = SendMessage | DeleteStored | Kept | Dropped | Any


@dataclass(eq=False, slots=True)
class DeliveryState:
    """The state of one stored message's delivery, as the machine needs it."""

    message: StoredMessage
    state: str = "queued"
    intervals: dict[str, int] = field(default_factory=dict)  # the table runs no timer


class DeliveryMachine(TableMachine):
    """The machine of the delivery family, shared by every stored message."""

    family = DELIVERY
    guards: ClassVar[dict[str, Any]] = {}

    def new(self, message: StoredMessage) -> DeliveryState:
        return DeliveryState(message, self.model["initial"])

    def fire(self, d: DeliveryState, event: str) -> list[DeliveryEffect]:
        """One step: the effects of ``event`` in the message's current state."""
        return self._fire(d, event, self._execute)

    def trigger(self, d: DeliveryState, event: str) -> list[DeliveryEffect]:
        """``fire`` through the general path, ``machine.events[event].trigger``, for the tests to compare."""
        return self._fire(d, event, self._trigger)

    def _fire(self, d: DeliveryState, event: str, run: Run) -> list[DeliveryEffect]:
        step = self._steps[d.state].get(event)
        if step is None or step.kind != "rows":
            self._declined(d.state, event, step)
            return []
        effects: list[DeliveryEffect] = []
        if not run(step, d, {"effects": effects, "fired": None}):
            raise self._unguarded(d.state, event)
        return effects

    # -- actions ------------------------------------------------------------------------------------
    def _do_send_message(self, d: DeliveryState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(SendMessage(d.message))

    def _do_delete_stored(self, d: DeliveryState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(DeleteStored(d.message))

    def _do_keep(self, d: DeliveryState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(Kept(d.message))

    def _do_drop(self, d: DeliveryState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(Dropped(d.message))


@cache
def delivery_machine() -> DeliveryMachine:
    """The shared stored-message delivery machine (models/delivery.json)."""
    return DeliveryMachine(load_model("delivery"))
