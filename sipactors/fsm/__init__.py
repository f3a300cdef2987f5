"""The formal spine's state machines: spec tables (spec/machines/) → models (models/*.json, *.mmd) →
pure machines driven by events, answering with effects (RFC 3261 §17 as amended by RFC 6026).

* ``tables``: reads and checks the spec tables; ``compile``: writes the models (``python -m sipactors.fsm``);
* ``effects``: the effects a machine returns, and the action vocabulary of the tables;
* ``families``: the vocabulary (actions, guards, timers) of each family of tables;
* ``base``: ``TableMachine``, one shared ``transitions.Machine`` per model, which every family's machine extends;
* ``machine``: ``KindMachine``, the machine of a kind of transaction.
"""

from sipactors.fsm.effects import CancelTimer, Effect, Send, StartTimer, Terminated, ToTU
from sipactors.fsm.machine import KINDS, KindMachine, ProtocolError, TimerConfig, Transaction, kind_machine

__all__ = [
    "KINDS", "CancelTimer", "Effect", "KindMachine", "ProtocolError", "Send", "StartTimer", "Terminated",
    "TimerConfig", "ToTU", "Transaction", "kind_machine",
]
