"""The notifier (RFC 6665 §4.2): one ``SubscriptionActor`` per subscription, driven by the subscription
and dialog machines (spec/machines/subscription.toml, dialog.toml), owned by a ``Notifier`` that hosts
the event packages and implements ``NotifierHandle`` for them (``sipactors.roles.events``).

Flow (DESIGN §1): the core hands a SUBSCRIBE to ``Notifier.request``. A dialog-creating one passes the
proxy's digest check (``admit``: 407 for a local user, as the proxy asks), the checks of
``roles/subscribe.py`` (489, 423, 406, 404) and the package's ``authorize``; then a new actor is told
``Subscribe`` → dialog ``create`` and subscription ``subscribe`` (or ``fetch`` for Expires 0) → effects:
the 200, the expiry timer, the record stored, the package told, the first NOTIFY (§4.2.1.2). An in-dialog
SUBSCRIBE goes to the actor of its subscription (key: dialog ID, Event type and id, §4.1.2), or gets 481.

* **NOTIFYs** go through ``layer.send_request(..., owner=notifier)``; the notifier passes each outcome
  to the actor whose NOTIFY it was. One is in flight per subscription at a time (§4.2.2, §5.4.10): a
  state change while one is in flight is queued, a later one replaces it, and its body is rendered when
  it is sent, so the subscriber gets the newest state. Each NOTIFY takes the next local CSeq (RFC 3261
  §12.2.1.1), which is written to the store **before** the NOTIFY is sent: a restarted notifier starts
  above every CSeq it ever used.
* **Next hop** of a NOTIFY: the first Route of the route set if there is one, else the remote target
  (RFC 3261 §12.2.1.1, §8.1.2), resolved with the resolver the proxy uses (RFC 3263); if it cannot be
  resolved, the address the SUBSCRIBE came from (its source: a subscriber behind NAT or with an
  unresolvable Contact is still reached, RFC 3581 in spirit).
* **Ending.** The machine says Terminated; a final NOTIFY it asked for first (§4.2.1.4) may still wait
  behind the one in flight, and the actor ends once that one is sent. The notifier forgets the actor.
* **Two clocks** as for bindings (docs/machines.md): expiries are wall-clock POSIX seconds, timers run on
  the scheduler's clock; ``wall_now`` gives the former.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sipactors.fsm import CancelTimer, ProtocolError, StartTimer, Terminated
from sipactors.fsm.effects import Answer, DeleteSubscription, NextNotify, Notify, SaveSubscription, ToPackage
from sipactors.fsm.subscription import (
    DialogRequest,
    Grant,
    SubscriptionMachine,
    dialog_machine,
    subscription_machine,
)
from sipactors.message import NameAddr, Request, Response, Via, parse_uri
from sipactors.message.build import response_for
from sipactors.message.params import Params
from sipactors.roles.events import Authorization, EventPackage, SubscriptionInfo
from sipactors.roles.subscribe import (
    Subscribe,
    SubscribePolicy,
    accepted,
    allow_events,
    check_subscribe,
    notify_request,
)
from sipactors.runtime.timers import TimedActor, TimerFired
from sipactors.store.model import canonical_aor, without_port
from sipactors.store.subscriptions import SubscriptionRecord, SubscriptionStore
from sipactors.transport.resolve import ResolutionError, Resolver

__all__ = ["GONE", "Notifier", "SubscriptionActor", "SubscriptionKey"]

log = logging.getLogger("sipactors.subscription")

Address = tuple[str, int]
#: (Call-ID, local tag, remote tag, Event type, Event id or ""): RFC 6665 §4.1.2.
SubscriptionKey = tuple[str, str, str, str, str]
#: NOTIFY responses after which the subscription is removed (RFC 6665 §4.2.2).
GONE = frozenset({404, 405, 410, 416, 480, 481, 482, 483, 484, 485, 489, 501, 604})
_SERIAL = itertools.count(1)
_ALLOWED = (Authorization.ALLOW, Authorization.POLITE_BLOCK)


@dataclass(frozen=True, slots=True)
class Start:
    """A dialog-creating SUBSCRIBE the checks accepted (``key``: its server transaction)."""

    request: Request
    key: Any
    subscribe: Subscribe
    authorization: Authorization


@dataclass(frozen=True, slots=True)
class InDialog:
    request: Request
    key: Any


@dataclass(frozen=True, slots=True)
class Restore:
    record: SubscriptionRecord


@dataclass(frozen=True, slots=True)
class Event:
    """A machine event with no data of its own (state_changed, deactivated, resource_gone) or a Grant."""

    name: str
    grant: Grant | None = None
    hint: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class NotifyOutcome:
    """How the NOTIFY in flight ended: its final status, or 0 for a timeout or transport error."""

    status: int


#: NOTIFY CSeqs reserved per store write: the store holds a ceiling the NOTIFYs sent stay under, so a
#: restart (which resumes from the ceiling) never reuses a CSeq (RFC 3261 §12.2.1.1), for one write per
#: CSEQ_RESERVE NOTIFYs rather than one per NOTIFY.
CSEQ_RESERVE = 100


def subscription_key(call_id: str, local_tag: str, remote_tag: str, event: str, event_id: str | None) -> SubscriptionKey:
    return (call_id, local_tag, remote_tag, event, event_id or "")


class SubscriptionActor(TimedActor):
    """One subscription at the notifier: its two machines' states, its expiry timer, its NOTIFY queue."""

    def __init__(self, notifier: Notifier, info: SubscriptionInfo, record: SubscriptionRecord,
                 machine: SubscriptionMachine | None = None, dialog: SubscriptionMachine | None = None) -> None:
        super().__init__()
        self.notifier = notifier
        self.info = info
        self.record = record  # the dialog's fixed part, watcher, resource; state fields refreshed on save
        self.machine = machine or subscription_machine()
        self.dialog_machine = dialog or dialog_machine()
        self.s = self.machine.new()
        self.d = self.dialog_machine.new_dialog(record.call_id, record.local_tag, record.remote_tag)
        self.actor_id = f"subscription-{next(_SERIAL)}"
        self.key = subscription_key(record.call_id, record.local_tag, record.remote_tag, record.event, record.event_id)
        self.in_flight: Any = None  # the client transaction key of the NOTIFY in flight
        self.queued: Notify | None = None
        self.hint: frozenset[str] = frozenset()  # the packages' hints since the last NOTIFY with state
        # the next NOTIFY with state carries full state: the first of a subscription and the first after each
        # SUBSCRIBE (RFC 4662 §5.2, RFC 3857 §4.3); later ones may be partial where the package's hint says so
        self.full_next = True
        self.reserved = record.local_cseq  # the CSeq ceiling the store holds (see ``_save``)
        self.flow: Any = None  # the reliable transport the SUBSCRIBE came over: NOTIFYs go back on it
        self.closing = False  # the machine ended; a final NOTIFY may still be queued
        self.sent_cseqs: list[int] = []  # every NOTIFY CSeq this actor sent (tests check they increase)
        self._request: tuple[Request, Any] | None = None  # the SUBSCRIBE being answered
        self._ended = False

    @property
    def state(self) -> str:
        return self.s.state

    # -- mail ---------------------------------------------------------------------------------------
    def on_receive(self, message: Any) -> None:
        kind = type(message)
        if kind is Start:
            self._start(message)
        elif kind is InDialog:
            self._in_dialog(message)
        elif kind is Restore:
            record = message.record
            self.dialog_step("restore", record)
            self.step("restore", Grant(Authorization(record.authorization), record.expires))
        elif kind is Event:
            self.hint |= message.hint
            self.step(message.name, message.grant)
        elif kind is NotifyOutcome:
            self._notify_done(message.status)
        elif kind is TimerFired:
            self.timers.pop(message.timer, None)
            self.step(f"timer_{message.timer}", None)
        else:
            raise TypeError(f"a subscription actor does not take {message!r}")

    def _start(self, start: Start) -> None:
        request, subscribe = start.request, start.subscribe
        self._request = (request, start.key)
        self.dialog_step("create", _dialog_request(request))
        event = "subscribe" if subscribe.expires > 0 else "fetch"
        self.step(event, Grant(start.authorization, self.notifier.wall_now() + subscribe.expires))
        if self.s.state == "terminated" and not self.closing:
            self._end()

    def _in_dialog(self, message: InDialog) -> None:
        request, key = message.request, message.key
        if self.closing:  # over, its final NOTIFY not yet sent: the subscription no longer exists (§4.1.3)
            self.notifier.layer.respond(key, response_for(request, 481, "Subscription Does Not Exist"))
            return
        effects = self.dialog_step("request", _dialog_request(request))
        if Answer(500) in effects:
            self.notifier.layer.respond(key, response_for(request, 500, "Server Internal Error"))
            return
        checked = check_subscribe(request, self.notifier.packages, self.notifier.policy, self.info.resource)
        if not isinstance(checked, Subscribe):  # e.g. 423: the subscription stays as it was (§4.2.1.4)
            self.notifier.layer.respond(key, checked.response(request, None))
            return
        self._request = (request, key)
        self.full_next = True
        event = "refresh" if checked.expires > 0 else "unsubscribe"
        self.step(event, Grant(None, self.notifier.wall_now() + checked.expires))

    # -- the machines -------------------------------------------------------------------------------
    def dialog_step(self, event: str, message: Any) -> list[Any]:
        before = self.d.state
        effects = self.dialog_machine.fire(self.d, event, message)
        self._trace(self.dialog_machine, event, before, self.d.state, effects)
        return effects

    def step(self, event: str, message: Any) -> None:
        before = self.s.state
        try:
            effects = self.machine.fire(self.s, event, message, self.notifier.wall_now())
        except ProtocolError as error:
            log.warning("subscription %s: %s", self.info.id, error)
            return
        self._trace(self.machine, event, before, self.s.state, effects)
        final = any(type(e) is Notify and e.state == "terminated" for e in effects)
        for effect in effects:
            _EFFECTS[type(effect)](self, effect)
        if self.s.state == "terminated" and not final:
            self.queued = None  # removed without a final NOTIFY (§4.2.2): nothing more is sent
            self._end()

    def _trace(self, machine: SubscriptionMachine, event: str, before: str, after: str, effects: list[Any]) -> None:
        trace = self.notifier.trace
        if trace is not None:
            trace({"time": self._scheduler.now(), "actor": self.actor_id, "machine": machine.name,
                   "subscription": self.info.id, "event": event, "before": before, "after": after,
                   "rfc": machine.rfc(before, event), "effects": [type(e).__name__ for e in effects]})

    # -- effects ------------------------------------------------------------------------------------
    def _answer(self, effect: Answer) -> None:
        assert self._request is not None  # the table answers only the SUBSCRIBE being handled
        request, key = self._request
        if effect.status == 200:
            left = max(0, round(self.s.expires - self.notifier.wall_now()))
            response = accepted(request, self.d.local_tag, left, self.notifier.contact)
        else:
            response = response_for(request, effect.status, to_tag=self.d.local_tag)
        self.notifier.layer.respond(key, response)

    def _notify(self, effect: Notify) -> None:
        if self.in_flight is not None:
            if self.queued is None or self.queued.state != "terminated":
                self.queued = effect  # the newest state replaces an older one waiting (§4.2.2)
            return
        self._send(effect)

    def _next_notify(self, effect: NextNotify) -> None:
        queued, self.queued = self.queued, None
        if queued is not None:
            self._send(queued)

    def _save(self, effect: SaveSubscription | None = None) -> None:
        store = self.notifier.store
        if store is None:
            return
        d, s = self.d, self.s
        if self.reserved <= d.local_cseq:  # the stored CSeq is a ceiling the NOTIFYs sent stay under
            self.reserved = d.local_cseq + CSEQ_RESERVE
        self.record = SubscriptionRecord(
            self.record.id, d.call_id, d.local_tag, d.remote_tag, self.record.local_uri, self.record.remote_uri,
            d.remote_target, d.route_set, self.reserved, d.remote_cseq, self.info.event, self.record.event_id,
            self.info.resource, self.info.watcher, self.info.accept, self.info.supported, s.expires, s.state,
            (s.authorization or Authorization.PENDING).value, self.record.destination,
        )
        store.save(self.record)

    def _delete(self, effect: DeleteSubscription) -> None:
        if self.notifier.store is not None:
            self.notifier.store.delete(self.record.id)

    def _to_package(self, effect: ToPackage) -> None:
        package = self.notifier.packages.get(self.info.event)
        if package is None:
            return
        if effect.what == "started":
            package.started(self.info, self.s.authorization or Authorization.PENDING)
        else:
            package.ended(self.info, effect.reason or "timeout")

    def _terminated(self, effect: Terminated) -> None:
        # the dialog ends with the actor, after the final NOTIFY that may still wait (it takes a CSeq)
        self._cancel_timers()
        self.closing = True

    # -- NOTIFY ------------------------------------------------------------------------------------
    def _send(self, notify: Notify) -> None:
        notifier, d, s = self.notifier, self.d, self.s
        self.dialog_step("send_request", None)
        if notify.state != "terminated" and d.local_cseq > self.reserved:
            self._save()  # a new CSeq ceiling is stored before the NOTIFY goes (a restart never reuses a CSeq)
        body = None
        authorized = s.authorization in _ALLOWED
        if notify.state == "active" or notify.state == "pending" or (notify.reason == "timeout" and authorized):
            package = notifier.packages.get(self.info.event)
            if package is not None and s.authorization is not None and (authorized or notify.state == "pending"):
                full = self.full_next or not self.hint
                body = package.body(self.info, s.authorization, full=full, changed=self.hint)
                self.hint = frozenset()
                self.full_next = False
        left = max(0, round(s.expires - notifier.wall_now()))
        request = notify_request(
            call_id=d.call_id, local_uri=self.record.local_uri, local_tag=d.local_tag,
            remote_uri=self.record.remote_uri, remote_tag=d.remote_tag, remote_target=d.remote_target,
            route_set=d.route_set, cseq=d.local_cseq, event=self.info.event, event_id=self.record.event_id,
            state=notify.state, expires_left=left, reason=notify.reason, contact=notifier.contact, body=body,
            via=notifier.via(getattr(self.flow, "name", "UDP") if self.flow is not None else "UDP"),
        )
        self.sent_cseqs.append(d.local_cseq)
        if self.flow is not None and self.record.destination is not None:
            # the SUBSCRIBE came over a connection: its NOTIFYs go back on it (RFC 5626 §5.3 flow reuse;
            # a TCP client need not listen on its Contact's port)
            key = notifier.send_notify(self, request, self.record.destination, self.flow)
        else:
            key = notifier.send_notify(self, request, self._destination())
        if notify.state == "terminated":
            self._end()  # the last NOTIFY has gone; its transaction finishes without us
        else:
            self.in_flight = key

    def _destination(self) -> Address:
        """RFC 3261 §12.2.1.1 / §8.1.2: the first Route, else the remote target; its address per RFC 3263,
        else where the SUBSCRIBE came from."""
        d = self.d
        text = d.route_set[0] if d.route_set else d.remote_target
        resolver = self.notifier.resolver
        if resolver is not None:
            try:
                uri = parse_uri(text)
                targets = [t for t in resolver.resolve(uri) if t.transport == "UDP"]
                if targets:
                    return (targets[0].host, targets[0].port)
            except (ResolutionError, ValueError):
                pass
        if self.record.destination is not None:
            return self.record.destination
        raise ValueError(f"subscription {self.info.id}: no address for {text}")

    def _notify_done(self, status: int) -> None:
        self.in_flight = None
        if self.closing:
            self._next_notify(NextNotify())
            if self.in_flight is None and not self._ended:
                self._end()
            return
        if 200 <= status < 300:
            self.step("notify_2xx", None)
        elif status in GONE:
            self.step("notify_gone", None)
        elif status == 0:
            self.step("notify_timeout", None)
        else:
            self.step("notify_failure", None)

    def _end(self) -> None:
        self._cancel_timers()
        if self.d.state != "terminated":
            self.dialog_step("end", None)
        if not self._ended:
            self._ended = True
            self.notifier.ended(self)
        self.stop_now()

    def on_failure(self, *exc_info: Any) -> None:
        self._cancel_timers()
        if not self._ended:
            self._ended = True
            self.notifier.ended(self)


_EFFECTS: dict[type, Callable[[SubscriptionActor, Any], None]] = {
    Answer: SubscriptionActor._answer, Notify: SubscriptionActor._notify, NextNotify: SubscriptionActor._next_notify,
    SaveSubscription: SubscriptionActor._save, DeleteSubscription: SubscriptionActor._delete,
    ToPackage: SubscriptionActor._to_package, StartTimer: SubscriptionActor._start_timer,
    CancelTimer: SubscriptionActor._cancel_timer, Terminated: SubscriptionActor._terminated,
}


def _dialog_request(request: Request) -> DialogRequest:
    cseq = request.cseq
    contact = request.contact
    target = contact[0].uri.render() if contact and not isinstance(contact, str) else None
    # the route set keeps the URIs (their lr parameter among them), RFC 3261 §12.1.1
    return DialogRequest(cseq.seq if cseq is not None else 0, target, tuple(r.uri.render() for r in request.record_route))


class Notifier:
    """The notifier of ``sipactors serve``: its subscription actors keyed the RFC 6665 §4.1.2 way, its event
    packages by event name, and the ``NotifierHandle`` they call.

    ``admit(request)`` is the proxy's digest check for a request from a local user (an answer such as 407,
    or None to go on); ``domain`` (the proxy's ``ProxyPolicy``) says by ``local(uri)`` whether a
    Request-URI is in our domains and by ``ours(uri)`` whether a Route names us; ``resolver`` finds a
    NOTIFY's next hop (RFC 3263); ``contact`` is our Contact (in the 200 and every NOTIFY), ``via_host``
    and ``via_port`` what our Via says; ``wall_now`` the wall clock (``time.time``)."""

    def __init__(
        self, store: SubscriptionStore | None, contact: NameAddr, wall_now: Callable[[], float], *,
        via_host: str, via_port: int, policy: SubscribePolicy | None = None, resolver: Resolver | None = None,
        admit: Callable[[Request], Any] | None = None, domain: Any = None,
        trace: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.store = store
        self.contact = contact
        self.wall_now = wall_now
        self.via_host, self.via_port = via_host, via_port
        self.policy = policy or SubscribePolicy()
        self.resolver = resolver
        self.admit = admit
        self.domain = domain
        self.trace = trace
        self.packages: dict[str, EventPackage] = {}
        self.subscriptions: dict[SubscriptionKey, SubscriptionActor] = {}
        # (event, resource) → its subscriptions' keys: a state change finds its watchers without a scan
        # (with watcher information on, every new subscription is a change of the winfo resource)
        self.by_resource: dict[tuple[str, str], set[SubscriptionKey]] = {}
        self.dialogs: dict[tuple[str, str, str], SubscriptionKey] = {}  # dialog ID → its one subscription
        self.notifies: dict[Any, SubscriptionActor] = {}  # NOTIFY client transaction → its subscription
        self.layer: Any = None

    # -- packages ------------------------------------------------------------------------------------
    def register(self, package: EventPackage) -> None:
        """Host ``package`` (RFC 6665 §7.2): SUBSCRIBEs for its event token come here from now on."""
        self.packages[package.event.lower()] = package

    @property
    def allow_events(self) -> str:
        return allow_events(self.packages)

    def via(self, transport: str = "UDP") -> Via:
        """Our Via for a NOTIFY sent over ``transport`` (RFC 3261 §18.1.1: it names the transport used)."""
        assert self.layer is not None
        branch = "z9hG4bK" + self.layer.new_tag() + self.layer.new_tag()
        return Via(transport, self.via_host, self.via_port, Params((("branch", branch), ("rport", None))))

    # -- which SUBSCRIBEs are ours (the core asks) ---------------------------------------------------
    def takes(self, request: Request) -> bool:
        """Whether the core hands ``request`` (a SUBSCRIBE) to the notifier: an in-dialog one for a dialog
        of ours (or sent to our Contact: ours or nobody's, 481); a dialog-creating one for a resource in a
        local domain, every Route it carries naming us. Any other goes to the proxy."""
        to, from_ = request.to, request.from_
        domain = self.domain
        if to is not None and to.tag is not None:
            dialog = (request.call_id or "", to.tag, from_.tag if from_ is not None and from_.tag else "")
            if dialog in self.dialogs:
                return True
            return domain is not None and not request.route and request.uri.render() == self.contact.uri.render()
        if domain is None or not all(domain.ours(route.uri) for route in request.route):
            return False
        return bool(domain.local(request.uri))

    # -- the TU side ---------------------------------------------------------------------------------
    def request(
        self, layer: Any, key: Any, request: Request, source: Address | None = None, transport: Any = None,
    ) -> None:
        """A SUBSCRIBE for us: answered here, or handed to its subscription's actor. ``source`` is where it
        came from, over ``transport``: a reliable one (TCP) carries the subscription's NOTIFYs back."""
        self.layer = layer
        to, from_ = request.to, request.from_
        assert to is not None and from_ is not None  # the message layer refuses a request without them
        if to.tag is not None:
            event = request.header("Event")
            subscription = self.subscriptions.get(subscription_key(
                request.call_id or "", to.tag, from_.tag or "", event.value.lower() if event is not None else "",
                event.params.get("id") if event is not None else None))
            if subscription is None:  # RFC 6665 §4.1.3 (the notifier's side), RFC 3261 §12.2.2
                layer.respond(key, response_for(request, 481, "Subscription Does Not Exist"))
                return
            subscription.tell(InDialog(request, key))
            return
        if self.admit is not None:
            refused = self.admit(request)
            if refused is not None:
                layer.respond(key, refused.response(request, layer.new_tag()))
                return
        checked = check_subscribe(request, self.packages, self.policy)
        if not isinstance(checked, Subscribe):
            layer.respond(key, checked.response(request, layer.new_tag()))
            return
        local_tag = layer.new_tag()
        event_id = checked.event_id
        info = SubscriptionInfo(
            id=";".join((request.call_id or "", local_tag, from_.tag or "", checked.event, event_id or "")),
            event=checked.event, resource=checked.resource, watcher=without_port(canonical_aor(from_.uri.render())),
            accept=checked.accept, supported=checked.supported,
        )
        record = SubscriptionRecord(
            info.id, request.call_id or "", local_tag, from_.tag or "", to.uri.render(), from_.uri.render(), "",
            (), 0, 0, checked.event, event_id, info.resource, info.watcher, info.accept, info.supported, 0.0,
            "init", Authorization.PENDING.value, source,
        )
        package = self.packages[checked.event]
        required = getattr(package, "required_extensions", None)  # e.g. a list URI needs eventlist (RFC 4662 §4)
        missing = sorted((required(info) if required is not None else frozenset()) - info.supported)
        if missing:  # RFC 3261 §21.4.15: 421 naming the extensions in Require
            layer.respond(key, response_for(request, 421, "Extension Required", to_tag=local_tag,
                                            headers=[("Require", ", ".join(missing))]))
            return
        authorization = package.authorize(info)
        actor = self._spawn(info, record)
        if transport is not None and getattr(transport, "reliable", False):
            actor.flow = transport
        actor.tell(Start(request, key, checked, authorization))

    def _spawn(self, info: SubscriptionInfo, record: SubscriptionRecord) -> SubscriptionActor:
        actor: SubscriptionActor = SubscriptionActor.spawn(self, info, record)
        self.subscriptions[actor.key] = actor
        self.by_resource.setdefault((actor.key[3], info.resource), set()).add(actor.key)
        self.dialogs[actor.key[:3]] = actor.key
        return actor

    def send_notify(self, actor: SubscriptionActor, request: Request, destination: Address, transport: Any = None) -> Any:
        key = self.layer.send_request(request, destination, transport, owner=self)
        self.notifies[key] = actor
        return key

    def ended(self, actor: SubscriptionActor) -> None:
        if self.subscriptions.get(actor.key) is actor:
            del self.subscriptions[actor.key]
            index = (actor.key[3], actor.info.resource)
            keys = self.by_resource.get(index)
            if keys is not None:
                keys.discard(actor.key)
                if not keys:
                    del self.by_resource[index]
            if self.dialogs.get(actor.key[:3]) == actor.key:
                del self.dialogs[actor.key[:3]]

    # NOTIFY outcomes (the owner of its client transactions: TransactionUser, client side)
    def response(self, layer: Any, key: Any, response: Response) -> None:
        if response.status >= 200:
            self._outcome(key, response.status)

    def timeout(self, layer: Any, key: Any) -> None:
        self._outcome(key, 0)

    def transport_error(self, layer: Any, key: Any) -> None:
        self._outcome(key, 0)

    def _outcome(self, key: Any, status: int) -> None:
        actor = self.notifies.pop(key, None)
        if actor is not None and not actor.actor_stopped.is_set():  # (it may have ended since: nobody to tell)
            actor.tell(NotifyOutcome(status))

    # -- NotifierHandle (sipactors.roles.events) -----------------------------------------------------
    def _matching(self, event: str, resource: str, watcher: str | None = None) -> list[SubscriptionActor]:
        keys = sorted(self.by_resource.get((event.lower(), resource), ()))  # sorted: a seeded run repeats
        actors = [self.subscriptions[key] for key in keys]
        return actors if watcher is None else [a for a in actors if a.info.watcher == watcher]

    def changed(self, event: str, resource: str, hint: frozenset[str] = frozenset()) -> None:
        """RFC 6665 §4.2.2: every subscription to ``resource`` gets a NOTIFY (active ones: the table says)."""
        for actor in self._matching(event, resource):
            actor.tell(Event("state_changed", None, hint))

    def reauthorize(self, event: str, resource: str, watcher: str | None = None) -> None:
        """RFC 6665 §4.2.1.3: ask the package again and move each subscription as its answer says."""
        package = self.packages.get(event.lower())
        if package is None:
            return
        for actor in self._matching(event, resource, watcher):
            actor.tell(Event("reauthorized", Grant(package.authorize(actor.info))))

    def deactivate(self, event: str, resource: str, *, gone: bool = False) -> None:
        """End every subscription to ``resource``: ``deactivated`` (the subscriber may re-subscribe at once),
        or ``noresource`` when the resource no longer exists (RFC 6665 §4.1.3)."""
        for actor in self._matching(event, resource):
            actor.tell(Event("resource_gone" if gone else "deactivated"))

    # -- restart -------------------------------------------------------------------------------------
    def restore(self, layer: Any) -> int:
        """Take up every live stored subscription (the expiry timer with the time left); how many. Those
        that expired while the server was down are removed (no NOTIFY: there is nobody to tell, §4.2.1.4)."""
        self.layer = layer
        if self.store is None:
            return 0
        self.store.purge(self.wall_now())
        count = 0
        for record in self.store.all():
            if record.event not in self.packages:
                continue  # its package is not hosted now: the record waits for it (or its expiry)
            info = SubscriptionInfo(record.id, record.event, record.resource, record.watcher, record.accept,
                                    record.supported)
            self._spawn(info, record).tell(Restore(record))
            count += 1
        return count

    def close(self) -> None:
        """At shutdown, once the scheduler has stopped: drop the actors (their records stay in the store for
        the next start) and their timers."""
        for actor in list(self.subscriptions.values()):
            actor._cancel_timers()
        self.subscriptions.clear()
        self.by_resource.clear()
        self.notifies.clear()
        self.dialogs.clear()
