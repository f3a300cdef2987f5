"""The formal spine's state machines: spec tables (spec/machines/) → models (models/*.json, *.mmd) →
pure machines driven by events, answering with effects: transactions (RFC 3261 §17 as amended by RFC 6026)
and registration bindings (RFC 3261 §10.2, §10.3).

* ``tables``: reads and checks the spec tables; ``compile``: writes the models (``python -m sipactors.fsm``);
* ``effects``: the effects a machine returns;
* ``families``: the vocabulary (actions, guards, timers) of each family of tables;
* ``base``: ``TableMachine``, one shared ``transitions.Machine`` per model, which every family's machine extends;
* ``machine``: ``KindMachine``, the machine of a kind of transaction;
* ``binding``: ``BindingMachine``, the machine of a registration binding.
"""

from sipactors.fsm.binding import BindingMachine, BindingState, Removal, binding_machine
from sipactors.fsm.effects import (
    BindingEffect,
    CancelTimer,
    Effect,
    Refused,
    RemoveBinding,
    Send,
    StartTimer,
    Terminated,
    ToRegistrar,
    ToTU,
)
from sipactors.fsm.families import FAMILIES, Family
from sipactors.fsm.machine import KINDS, KindMachine, ProtocolError, TimerConfig, Transaction, kind_machine

__all__ = [
    "FAMILIES", "KINDS", "BindingEffect", "BindingMachine", "BindingState", "CancelTimer", "Effect", "Family",
    "KindMachine", "ProtocolError", "Refused", "Removal", "RemoveBinding", "Send", "StartTimer",
    "Terminated", "TimerConfig", "ToRegistrar", "ToTU", "Transaction", "binding_machine", "kind_machine",
]
