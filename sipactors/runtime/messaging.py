"""Instant messaging at run time (RFC 3428): the size limit, store-and-forward for local users with no
device registered, and one ``DeliveryActor`` per AOR that hands the stored MESSAGEs to a device when it
registers.

Flow (DESIGN §1): the server core hands every MESSAGE to ``Messaging.request`` → ``too_large`` (413) →
the stateful proxy, which forks it to every registered device (RFC 3428 §6, RFC 3261 §16) or answers it
itself; an answer of ``480`` for a local AOR with no live binding is taken over (``Messaging.offline``):
``accept`` (pure, ``sipactors.roles.messaging``) decides, the message is committed to the store, and only
then the ``202`` goes out (so an accepted message survives ``kill -9``, like a registration's 200).

Delivery: the registrar tells ``Messaging.registered(aor, bindings)`` after a REGISTER that added or
refreshed bindings is committed and answered (``Registrar.on_registered``). If messages wait for that AOR
and no delivery runs for it, a ``DeliveryActor`` starts: one machine per stored message
(spec/machines/delivery.toml), oldest first, one MESSAGE transaction at a time (RFC 3428 §8), to the
device that registered (the best of the REGISTER's bindings, ``Binding.order_key``). Each MESSAGE is
built by ``delivery_request`` and forwarded by the proxy's own rules (``forward_request``: Request-URI the
contact, Route from the Path, our Via; ``next_hop``: the registration's TCP flow, else RFC 3263) through
``layer.send_request(..., owner=actor)``. A 2xx deletes the message; a timeout, 408, 480 or 503 keeps it
and this one and every later one wait for the next registration; any other final response drops it (logged).

Every transition is a trace record (time, actor, machine, AOR, message id, event, before, after,
decision, RFC section, effects) given to the layer's subscribers.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sipactors.fsm import ProtocolError, Terminated
from sipactors.fsm.delivery import (
    DeleteStored,
    DeliveryMachine,
    DeliveryState,
    Dropped,
    Kept,
    SendMessage,
    delivery_machine,
)
from sipactors.message import Request, Response, SipURI
from sipactors.message.build import response_for
from sipactors.roles.messaging import (
    MessagingPolicy,
    accept,
    delivery_request,
    fate,
    recipient_aor,
    sender_of,
    too_large,
)
from sipactors.roles.proxy import Answer, Plan, binding_target, forward_request
from sipactors.runtime.actor import ScheduledActor
from sipactors.runtime.proxy import Proxy, Resolved, next_hop, reachable
from sipactors.store.model import Binding, without_port

__all__ = ["Answered", "DeliveryActor", "Messaging"]

log = logging.getLogger("sipactors.messaging")


@dataclass(frozen=True, slots=True)
class Answered:
    """The final outcome of a delivery's MESSAGE transaction ``key``: a response's status, 408 for a
    timeout (RFC 3261 §17.1.2.2 Timer F), 503 for a transport error or no next hop (§16.9)."""

    key: Any
    status: int


@dataclass(frozen=True, slots=True)
class _Start:
    """Begin with the oldest message (mail rather than ``on_start``: a failure is the actor's to contain)."""


class Messaging:
    """MESSAGE handling for the server core: the size limit, store-and-forward, and the delivery actors.

    ``store`` has ``messages`` (``sipactors.store.messages``); ``proxy`` is the server's ``Proxy`` (its
    role decides, its resolver and policy route deliveries); ``clock`` gives POSIX seconds. ``layer`` is
    the transaction layer deliveries are sent through: set it once the layer exists (``sipactors serve``
    does). Every method runs on the scheduler thread.
    """

    def __init__(self, store: Any, proxy: Proxy, policy: MessagingPolicy, clock: Callable[[], float]) -> None:
        self.store = store
        self.proxy = proxy
        self.policy = policy
        self.clock = clock
        self.layer: Any = None
        self.deliveries: dict[str, DeliveryActor] = {}
        #: The AORs that may have messages waiting: a REGISTER of any other AOR reads no store.
        self.waiting: set[str] = set()
        self._serial = itertools.count(1)

    def restore(self) -> int:
        """At start (before any REGISTER): forget the messages whose time ran out while the server was
        down, and note which AORs have messages waiting; how many were purged."""
        now = self.clock()
        purged = int(self.store.messages.purge(now))
        self.waiting = {message.aor for message in self.store.messages.all(now)}
        return purged

    # -- MESSAGE requests ---------------------------------------------------------------------------
    def request(self, layer: Any, key: Any, request: Request) -> None:
        """A MESSAGE for the server transaction ``key``: 413 if too large, else the proxy's, which gives
        the answers it would make itself to ``offline`` first."""
        refusal = too_large(request, self.policy)
        if refusal is not None:
            layer.respond(key, refusal.response(request, layer.new_tag()))
            return
        self.proxy.request(layer, key, request, offline=self.offline)

    def offline(self, layer: Any, key: Any, request: Request, answer: Answer) -> bool:
        """Store-and-forward (RFC 3428 §7): a MESSAGE the proxy answers 480 for a local AOR without a live
        binding (after its 407 and 404, which stand) is stored and answered 202 once committed, or refused
        by ``accept``. False for every other answer: the proxy sends it."""
        uri = request.uri
        role = self.proxy.role
        if (request.method != "MESSAGE" or answer.status != 480 or answer.reason is not None
                or not isinstance(uri, SipURI) or uri.user is None or not role.policy.local(uri)):
            return False
        now = self.clock()
        aor = recipient_aor(uri)
        messages = self.store.messages
        decision = accept(request, aor, messages.count(aor, now), now, self.policy, self._sender(request))
        if isinstance(decision, Answer):
            layer.respond(key, decision.response(request, layer.new_tag()))
            return True
        try:
            stored = messages.add(decision.message)
        except Exception:  # not committed: not accepted (RFC 3428 §7's 202 would be a promise we cannot keep)
            log.exception("MESSAGE for %s not stored", aor)
            layer.respond(key, response_for(request, 500, "Message Not Stored", to_tag=layer.new_tag()))
            return True
        self.waiting.add(aor)
        log.info("stored MESSAGE %s for %s (from %s)", stored.id, aor, stored.from_)
        layer.respond(key, decision.answer.response(request, layer.new_tag()))
        return True

    def _sender(self, request: Request) -> str | None:
        """The local user the proxy authenticated for this request (it challenged them, RFC 3261 §22.3),
        if any: users exist and the From domain is ours."""
        role = self.proxy.role
        from_ = request.from_
        if from_ is None or not role.policy.local(from_.uri) or not role.store.users.any():
            return None
        assert isinstance(from_.uri, SipURI)  # local() holds only for SIP URIs
        return sender_of(request, role.authenticator.policy.realm_for(from_.uri.host.strip("[]")))

    # -- registrations ------------------------------------------------------------------------------
    def registered(self, aor: str, bindings: list[Binding]) -> None:
        """``Registrar.on_registered``: a device of ``aor`` registered; deliver what waits for it. Messages
        wait under the AOR without a port (``recipient_aor``); a device may register with our port."""
        aor = without_port(aor)
        if self.layer is None or aor not in self.waiting or aor in self.deliveries or not bindings:
            return
        waiting = self.store.messages.waiting(aor, self.clock())
        if not waiting:  # they expired (the store hides them; the next start purges them)
            self.waiting.discard(aor)
            return
        device = min(bindings, key=Binding.order_key)
        actor: DeliveryActor = DeliveryActor.spawn(self, self.layer, aor, device, waiting, next(self._serial))
        self.deliveries[aor] = actor
        actor.tell(_Start())

    def ended(self, actor: DeliveryActor) -> None:
        if self.deliveries.get(actor.aor) is actor:
            del self.deliveries[actor.aor]
        if not actor.queue:  # every message delivered, refused or expired: nothing waits any more
            self.waiting.discard(actor.aor)


class DeliveryActor(ScheduledActor):
    """The delivery of the stored messages of one AOR to one device that registered: one delivery
    machine per message, run oldest first, one MESSAGE transaction at a time (RFC 3428 §8)."""

    def __init__(
        self, owner: Messaging, layer: Any, aor: str, device: Binding, messages: list[Any], serial: int,
        machine: DeliveryMachine | None = None,
    ) -> None:
        super().__init__()
        self.owner = owner
        self.layer = layer
        self.aor = aor
        self.device = device
        self.target = binding_target(device)
        self.machine = machine or delivery_machine()
        self.queue: list[DeliveryState] = [self.machine.new(message) for message in messages]
        self.serial = serial
        self.plan: Plan | None = None
        self.outgoing: Request | None = None
        self.key: Any = None  # the MESSAGE transaction under way
        self.delivered = 0

    @property
    def actor_id(self) -> str:
        return f"delivery-{self.serial}"

    # -- mail -----------------------------------------------------------------------------------------
    def on_receive(self, message: Any) -> None:
        kind = type(message)
        if kind is _Start:
            self._next()
        elif kind is Resolved:
            self._send(message)
        elif kind is Answered:
            if message.key == self.key and self.queue and self.queue[0].state == "sending":
                self.key = None
                self._outcome(fate(message.status))
        else:
            raise TypeError(f"a delivery does not take {message!r}")

    def _next(self) -> None:
        """Start the oldest message still queued; the actor ends when none is left."""
        now = self.owner.clock()
        while self.queue:
            head = self.queue[0]
            self.step(head, "expired" if head.message.expires <= now else "send")
            if head.state == "sending":
                return  # its MESSAGE is on its way
            self.queue.pop(0)
        self._end()

    def _outcome(self, event: str) -> None:
        head = self.queue[0]
        self.step(head, event)
        if head.state == "queued":  # deferred: the device cannot take messages now; all wait for the next registration
            self._end()
            return
        self.queue.pop(0)
        self._next()

    def step(self, d: DeliveryState, event: str) -> None:
        before = d.state
        try:
            effects = self.machine.fire(d, event)
        except ProtocolError as error:
            log.warning("refused %s in %s for %s: %s", event, before, self.actor_id, error)
            return
        if self.layer.tracing:
            self.layer.emit({
                "type": "transition", "actor": self.actor_id, "machine": self.machine.name, "aor": self.aor,
                "message": d.message.id, "event": event, "before": before, "after": d.state,
                "decision": self.machine.decision(before, event)["kind"], "rfc": self.machine.rfc(before, event),
                "effects": [type(effect).__name__ for effect in effects],
            })
        for effect in effects:
            self._apply(effect)

    # -- effects --------------------------------------------------------------------------------------
    def _apply(self, effect: Any) -> None:
        kind = type(effect)
        if kind is SendMessage:
            self._forward(effect.message)
        elif kind is DeleteStored:
            self.owner.store.messages.remove(effect.message.id)
            self.delivered += 1
        elif kind is Dropped:
            log.warning("stored MESSAGE %s for %s refused by %s: dropped", effect.message.id, self.aor, self.device.contact)
        elif kind is Kept:
            log.info("stored MESSAGE %s for %s kept for the next registration", effect.message.id, self.aor)
        elif kind is not Terminated:
            raise TypeError(f"unknown delivery effect {effect!r}")

    def _forward(self, message: Any) -> None:
        """The stored message as a new MESSAGE (RFC 3428 §4), forwarded to the device by the proxy's
        rules (RFC 3261 §16.6), its next hop found as a branch's is (``next_hop``)."""
        layer, policy = self.layer, self.owner.proxy.role.policy
        host = policy.listeners[0].host
        request = delivery_request(message, f"{layer.new_tag()}{layer.new_tag()}@{host}", layer.new_tag())
        self.plan = Plan(request, ((self.target,),), layer.new_tag(), False)
        self.outgoing = forward_request(self.plan, self.target, policy, 1)
        found = next_hop(layer, self.owner.proxy, self.target, self.outgoing, self.tell)
        if found is not None:
            self._send(found)

    def _send(self, found: Resolved) -> None:
        assert self.plan is not None and self.outgoing is not None
        if found.error is not None:
            log.info("delivery to %s: %s", self.device.contact, found.error)
        usable = reachable(list(found.targets), self.layer.transports, self.target)
        if not usable:  # §16.9: no next hop: the device cannot be reached now; a later registration may say better
            self.key = ("unreachable", self.serial)
            self.tell(Answered(self.key, 503))
            return
        transport = usable[0].transport
        if transport != self.outgoing.via[0].transport.upper():  # its Via names the transport it goes over
            self.outgoing = forward_request(self.plan, self.target, self.owner.proxy.role.policy, 1, transport)
        self.key = self.layer.send_request(self.outgoing, usable[0].address, self.layer.transports[transport], owner=self)

    def _end(self) -> None:
        self.owner.ended(self)
        self.stop_now()

    def on_failure(self, *exc_info: Any) -> None:
        """Contain the failure (DESIGN §3): what is still stored stays for the next registration."""
        log.error("delivery %s for %s failed", self.actor_id, self.aor)
        self.owner.ended(self)

    # -- the owner of its MESSAGE client transactions (``send_request(owner=...)``), called on the
    #    scheduler thread by the transaction actor: it only tells this actor ----------------------------
    def response(self, layer: Any, key: Any, response: Response) -> None:
        if response.status >= 200:
            self.tell(Answered(key, response.status))

    def timeout(self, layer: Any, key: Any) -> None:
        self.tell(Answered(key, 408))

    def transport_error(self, layer: Any, key: Any) -> None:
        self.tell(Answered(key, 503))
