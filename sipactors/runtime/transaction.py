"""The transaction layer (RFC 3261 §17): transaction actors, each driven by its kind's table-built machine,
and the dispatcher that finds or creates them.

Flow (DESIGN §1): bytes from a transport → ``TransactionLayer.receive`` → ``parse`` → key (§17.1.3,
§17.2.3) → the transaction actor (created on demand for a request) → ``KindMachine.fire`` → effects,
which the actor carries out: Send through the transport, timers on the scheduler's clock, the transaction
user (TU) told, the actor stopped and forgotten when the machine says Terminated.

* A malformed request gets a stateless ``400`` whose reason phrase is the ``ParseError``'s (§21.4.1);
  a malformed response is dropped and logged; a request the RFCs refuse (416, 505, ...) is answered
  statelessly with that status.
* An actor that fails answers its request with ``500`` if it owns a server transaction that has sent no
  final response, and stops; every other transaction runs on.
* Every step is traced: one dict per message in or out and per transition (time, actor id, transaction,
  machine, state before and after, event, the RFC section of the table row). The actor id (``kind-N``,
  numbered by the layer in order of creation, so a seeded simulation names them the same every run) is
  on every record of a transaction actor and on every message in or out that one handles.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mypy_extensions import mypyc_attr

from sipactors.fsm import (
    CancelTimer,
    KindMachine,
    ProtocolError,
    Send,
    StartTimer,
    Terminated,
    ToTU,
    kind_machine,
)
from sipactors.fsm.keys import cancel_target, client_key, server_key
from sipactors.message import ParseError, Request, Response, Via, parse
from sipactors.message.build import ack_for, response_for
from sipactors.message.headers import parse_value, spec_for
from sipactors.message.message import HeaderField, split_head
from sipactors.runtime.scheduler import Scheduler
from sipactors.runtime.timers import TimedActor, TimerFired
from sipactors.transport import response_destination

__all__ = [
    "Address", "Received", "TimerFired", "TransactionActor", "TransactionLayer", "TransactionUser", "Transport",
]

log = logging.getLogger("sipactors.transaction")

Address = tuple[str, int]  # host, port


class Transport(Protocol):
    """A transport the layer sends through. A reliable one (RFC 3261 §18: TCP) takes ``failed`` as well: it
    is called, from any thread, when the bytes could not be delivered (no connection could be opened,
    or it broke): the sending client transaction's transport error (§17.1.4, §18.4)."""

    reliable: bool

    def send(self, data: bytes, destination: Address) -> None: ...


class TransactionUser(Protocol):
    """What the layer tells the TU. Server side: ``request`` (answer with ``layer.respond(key, ...)``);
    client side: ``response``; either side: ``timeout`` and ``transport_error``; and ``ack`` for an ACK that
    matches no transaction (the ACK for a 2xx, end to end: RFC 3261 §17.2.3, §13.2.2.4)."""

    def request(self, layer: TransactionLayer, key: Any, request: Request) -> None: ...

    def response(self, layer: TransactionLayer, key: Any, response: Response) -> None: ...

    def timeout(self, layer: TransactionLayer, key: Any) -> None: ...

    def transport_error(self, layer: TransactionLayer, key: Any) -> None: ...

    def ack(self, layer: TransactionLayer, request: Request, source: Address) -> None: ...


@dataclass(frozen=True, slots=True)
class Received:
    message: Request | Response
    source: Address


@dataclass(frozen=True, slots=True)
class FromTU:
    message: Request | Response


def _response_event(kind: str, status: int, prefix: str) -> str:
    if status < 200:
        return f"{prefix}_1xx"
    if kind.startswith("invite"):
        return f"{prefix}_2xx" if status < 300 else f"{prefix}_300_699"
    return f"{prefix}_200_699"


@mypyc_attr(native_class=False)  # a pykka actor (mypyc compiles its methods, not its class)
class TransactionActor(TimedActor):
    """One transaction: its state, its timers, and the machine of its kind."""

    def __init__(self, layer: TransactionLayer, kind: str, key: Any, peer: Address, transport: Transport) -> None:
        TimedActor.__init__(self)  # not super(): an actor per transaction, and super() costs an object
        self.layer = layer
        self.key = key
        self.peer = peer
        self.transport = transport
        self.machine: KindMachine = layer.machines[kind]
        self.tx = self.machine.new(transport.reliable)
        self.serial = next(layer.serial)
        self.owner: TransactionUser | None = None  # a client transaction's own TU; None: the layer's

    @property
    def actor_id(self) -> str:
        """Readable and reproducible, unlike ``actor_urn`` (a uuid4): the kind and the layer's serial
        number; formatted only when a trace record names it."""
        return f"{self.machine.name}-{self.serial}"

    # -- events ---------------------------------------------------------------------------------
    def on_receive(self, event: Any) -> None:
        handle = _EVENTS.get(type(event))
        if handle is not None:
            handle(self, event)
        elif event == "transport_error":
            self.step("transport_error", None)

    def _received(self, event: Received) -> None:
        message = event.message
        if isinstance(message, Request):
            kind = self.machine.name
            name = "recv_ack" if message.method == "ACK" else ("recv_invite" if kind == "invite_server" else "recv_request")
        else:
            name = _response_event(self.machine.name, message.status, "recv")
        self.step(name, message)

    def _timer_fired(self, event: TimerFired) -> None:
        timer = event.timer
        self.timers.pop(timer, None)
        self.step(_TIMER_EVENTS.get(timer) or _TIMER_EVENTS.setdefault(timer, f"timer_{timer.lower()}"), None)

    def _from_tu(self, event: FromTU) -> None:
        message = event.message
        if isinstance(message, Request):
            self.step("tu_request", message)
        else:
            self.step(_response_event(self.machine.name, message.status, "tu"), message)

    def step(self, event: str, message: Any) -> None:
        before = self.tx.state
        try:
            effects = self.machine.fire(self.tx, event, message)
        except ProtocolError as error:
            # The table declares this event an error here (a TU answering twice, say): the TU is at
            # fault, not the transaction, which goes on as the RFC says.
            log.warning("refused %s in %s for %r: %s", event, before, self.key, error)
            self.layer.emit({"type": "refused", "actor": self.actor_id, "transaction": repr(self.key),
                             "machine": self.machine.name, "event": event, "state": before, "why": str(error)})
            return
        if self.layer._subscribers:  # tracing: the record is built only for someone who reads it
            decision = self.machine.decision(before, event)
            rfc = decision["rows"][0]["rfc"] if decision["kind"] == "rows" else decision["rfc"]
            self.layer.emit(
                {"type": "transition", "actor": self.actor_id, "transaction": repr(self.key),
                 "machine": self.machine.name, "event": event, "before": before, "after": self.tx.state,
                 "decision": decision["kind"], "rfc": rfc, "effects": [type(effect).__name__ for effect in effects]}
            )
        for effect in effects:
            _EFFECTS[type(effect)](self, effect)

    @property
    def final_sent(self) -> bool:
        """Whether a server transaction has sent its final response: it has left the states in which a
        request waits for one (the tables' init, trying and proceeding)."""
        return self.tx.state not in _AWAITING_FINAL

    # -- effects --------------------------------------------------------------------------------
    def apply(self, effect: Any) -> None:
        _EFFECTS[type(effect)](self, effect)

    def _send(self, effect: Send) -> None:
        if effect.what == "ack":
            message: Any = ack_for(self.tx.request, effect.message)
        elif effect.what == "100":
            message = response_for(self.tx.request, 100)
        else:
            message = effect.message
        data = message if type(message) is bytes else message.to_bytes()
        if effect.what == "response" and self.machine.server:
            # A server transaction resends its last response as sent: keep the octets, not the
            # message, and once a final response is out the request is no longer needed.
            tx = self.tx
            tx.last_response = data
            if tx.state not in _AWAITING_FINAL:  # final_sent
                tx.request = None
        self.layer.send(data, self.peer, self.transport, self)

    def _to_tu(self, effect: ToTU) -> None:
        layer, tu = self.layer, self.owner or self.layer.tu
        if effect.what == "message":
            message = effect.message
            if type(message) is not Request:
                tu.response(layer, self.key, message)
            elif message.method == "ACK":
                tu.ack(layer, message, self.peer)
            else:
                tu.request(layer, self.key, message)
        elif effect.what == "timeout":
            tu.timeout(layer, self.key)
        else:
            tu.transport_error(layer, self.key)

    def _terminated(self, effect: Terminated) -> None:
        self._cancel_timers()
        self.layer.forget(self.key, self)
        self.stop_now()

    def on_failure(self, *exc_info: Any) -> None:
        """Contain the failure: answer 500 where a server transaction owes a final response (DESIGN §3); 400
        naming the header when the TU failed on a header field validated on first access (DESIGN §2: the
        request was malformed, not the server)."""
        request = self.tx.request
        if self.machine.server and isinstance(request, Request) and not self.final_sent:
            if request.method != "ACK":
                error = exc_info[1] if len(exc_info) > 1 else None
                answer = (response_for(request, 400, error.reason_phrase) if isinstance(error, ParseError)
                          else response_for(request, 500, "Server Internal Error"))
                self.layer.send(answer, self.peer, self.transport, self)
        self._cancel_timers()
        self.layer.forget(self.key, self)


_AWAITING_FINAL = frozenset({"init", "trying", "proceeding"})
_TIMER_EVENTS: dict[str, str] = {}  # a timer's name -> the event its firing is ("J" -> "timer_j"), made once

#: What an actor does with each kind of mail and of effect (dispatch by type, not an isinstance ladder).
_EVENTS: dict[type, Callable[[TransactionActor, Any], None]] = {
    Received: TransactionActor._received, TimerFired: TransactionActor._timer_fired, FromTU: TransactionActor._from_tu,
}
TransactionActor.handlers = _EVENTS  # the layer's own mail skips pykka's dispatch (see ScheduledActor.handlers)
_EFFECTS: dict[type, Callable[[TransactionActor, Any], None]] = {
    Send: TransactionActor._send, StartTimer: TransactionActor._start_timer, CancelTimer: TransactionActor._cancel_timer,
    ToTU: TransactionActor._to_tu, Terminated: TransactionActor._terminated,
}


@mypyc_attr(allow_interpreted_subclasses=True)  # tests put a fault of ours into a subclass
class TransactionLayer:
    """Dispatch by transaction key; the transaction actors are kept in this layer's dicts."""

    def __init__(
        self, transport: Transport, tu: TransactionUser, scheduler: Scheduler,
        machines: dict[str, KindMachine] | None = None, trace: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.transport = transport
        #: every transport a client transaction may use, by Via transport token (``send_request``)
        self.transports: dict[str, Transport] = {getattr(transport, "name", "UDP"): transport}
        self.tu = tu
        self.scheduler = scheduler
        self.machines = machines or {name: kind_machine(name) for name in
                                     ("invite_client", "non_invite_client", "invite_server", "non_invite_server")}
        self.server: dict[Any, TransactionActor] = {}
        self.client: dict[Any, TransactionActor] = {}
        self._subscribers: list[Callable[[dict[str, Any]], None]] = [trace] if trace is not None else []
        self.serial = itertools.count(1)  # numbers the actors' ids
        self._tag_pool, self._tag_at = "", 0  # hex digits of OS randomness, and the first not yet used (new_tag)
        # The "in" record of the message being dispatched, held back (only while someone subscribes) until
        # dispatch knows which transaction actor handles it; any other record first lets it out as it is.
        self._arrival: dict[str, Any] | None = None

    def subscribe(self, subscriber: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Receive every trace record from now on; returns the function that unsubscribes."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    @property
    def tracing(self) -> bool:
        """Whether anyone receives trace records (a caller may skip building one when not)."""
        return bool(self._subscribers)

    def emit(self, record: dict[str, Any]) -> None:
        if self._subscribers:
            if self._arrival is not None:  # the message in comes before anything it causes
                self._arrived(None)
            stamped = {"time": self.scheduler.now(), **record}
            for subscriber in list(self._subscribers):
                subscriber(stamped)

    def _arrived(self, actor: TransactionActor | None) -> None:
        """Emit the held-back "in" record, naming the transaction actor that handles the message, if one does."""
        record, self._arrival = self._arrival, None
        if record is not None:
            if actor is not None:
                record.update(actor=actor.actor_id, transaction=repr(actor.key))
            self.emit(record)

    def _hand(self, actor: TransactionActor, message: Request | Response, source: Address) -> None:
        """Give a received message to the transaction actor that handles it (its "in" record names it)."""
        if self._arrival is not None:
            self._arrived(actor)
        actor.tell(Received(message, source))

    # -- network side ---------------------------------------------------------------------------
    def receive(self, data: bytes, source: Address, transport: Transport | None = None) -> None:
        """A message from ``source`` over ``transport`` (the layer's default when None)."""
        transport = transport or self.transport
        if self._subscribers:
            self._arrival = {"type": "in", "source": list(source), "bytes": len(data)}
        try:
            message = parse(data, stream=transport.reliable)
        except ParseError as error:
            self._malformed(data, source, error, transport)
            return
        self.dispatch(message, source, transport)

    def dispatch(self, message: Request | Response, source: Address, transport: Transport | None = None) -> None:
        """A message already parsed (``receive`` without the parsing: benchmarks time the layer alone)."""
        transport = transport or self.transport
        try:
            if isinstance(message, Response):
                self._response(message, source)
            else:
                self._request(message, source, transport)
        except Exception:
            # A fault of ours, not the peer's: log it, and answer a request 500 where that is possible.
            log.exception("failed to dispatch a message from %s", source)
            if isinstance(message, Request) and message.method != "ACK" and message.via:
                self.send(response_for(message, 500, "Server Internal Error"), source, transport)
        if self._arrival is not None:  # handled without a transaction actor, and silently
            self._arrived(None)

    def _malformed(self, data: bytes, source: Address, error: ParseError, transport: Transport) -> None:
        if data[:4].upper() == b"SIP/":
            log.warning("dropped a malformed response from %s: %s", source, error.reason_phrase)
            return
        answer = stateless_400(data, error.reason_phrase)
        if answer is None:
            log.warning("dropped a malformed request from %s (no Via to answer to): %s", source, error.reason_phrase)
            return
        transport.send(answer, source)
        self.emit({"type": "out", "destination": list(source), "status": 400, "reason": error.reason_phrase})

    def _request(self, request: Request, source: Address, transport: Transport) -> None:
        top = request.top_via
        if top is None:  # RFC 3261 §18.2.2: a response goes where the top Via says; without one, nowhere
            log.warning("dropped a %s from %s without a Via header field: no response can be routed", request.method, source)
            return
        if request.refusal is not None and request.method != "ACK":
            refusal = request.refusal
            top = _stamp_via(request, top, source)
            peer = source if transport.reliable else response_destination(top, source)
            self.send(response_for(request, refusal.status, refusal.reason), peer, transport)
            return
        key = server_key(request, top)
        actor = self.server.get(key)
        if actor is not None:
            self._hand(actor, request, source)
            return
        if request.method == "ACK":
            self.tu.ack(self, request, source)  # the ACK for a 2xx: no transaction (§17.2.3)
            return
        kind = "invite_server" if request.method == "INVITE" else "non_invite_server"
        top = _stamp_via(request, top, source)
        peer = source if transport.reliable else response_destination(top, source)
        self.server[key] = actor = TransactionActor.spawn(self, kind, key, peer, transport)
        self._hand(actor, request, source)

    def _response(self, response: Response, source: Address) -> None:
        key = client_key(response)
        actor = self.client.get(key) if key is not None else None
        if actor is None:
            log.info("a response matching no transaction from %s: dropped (RFC 6026 §7.2)", source)
            self.emit({"type": "stray", "source": list(source), "status": response.status})
            return
        self._hand(actor, response, source)

    # -- TU side --------------------------------------------------------------------------------
    def respond(self, key: Any, response: Response) -> None:
        """The TU's response for the server transaction ``key``."""
        actor = self.server.get(key)
        if actor is not None:
            actor.tell(FromTU(response))

    def send_request(
        self, request: Request, destination: Address, transport: Transport | None = None,
        owner: TransactionUser | None = None,
    ) -> Any:
        """Start a client transaction for ``request`` (its top Via carries the branch) to ``destination``
        over ``transport`` (the layer's default when None; a reliable one runs the machines' reliable
        timers, §17.1.1.2, §17.1.2.2); its key. Its responses, timeout or transport error go to ``owner``
        when given (a notifier's NOTIFY, a stored MESSAGE delivered), else to the layer's TU."""
        key = client_key(request)
        kind = "invite_client" if request.method == "INVITE" else "non_invite_client"
        self.client[key] = actor = TransactionActor.spawn(self, kind, key, destination, transport or self.transport)
        actor.owner = owner
        actor.tell(FromTU(request))
        return key

    def peer(self, key: Any) -> tuple[Address, Transport] | None:
        """Where the server transaction ``key``'s request came from, and over which transport (what a
        registrar records as a binding's source, RFC 5626 §6), if it is still running."""
        actor = self.server.get(key)
        return None if actor is None else (actor.peer, actor.transport)

    def new_tag(self) -> str:
        """A To tag (RFC 3261 §19.3: at least 32 bits of randomness): 48 bits from the OS's
        cryptographic source, read 4 KiB at a time (a ``getrandom`` call per tag cost some 5 % of a
        REGISTER's CPU time); the scheduler thread is the only caller, so the pool needs no lock."""
        at = self._tag_at
        if at + 12 > len(self._tag_pool):  # 8,192 digits are not a whole number of tags
            self._tag_pool, at = os.urandom(4096).hex(), 0
        self._tag_at = at + 12
        return self._tag_pool[at : at + 12]

    def cancel_target(self, cancel: Request) -> Any:
        """The key of the INVITE server transaction a CANCEL refers to (§9.2), if it exists."""
        key = cancel_target(cancel)
        return key if key in self.server else None

    # -- plumbing -------------------------------------------------------------------------------
    def forget(self, key: Any, actor: TransactionActor) -> None:
        table = self.server if actor.machine.server else self.client  # (the one table the actor is kept in)
        if table.get(key) is actor:
            del table[key]

    def send(
        self, message: Request | Response | bytes, destination: Address, transport: Transport | None = None,
        actor: TransactionActor | None = None,
    ) -> None:
        """Send ``message``; ``actor`` is the transaction actor sending it, named in the trace."""
        data = message if type(message) is bytes else bytes(message)
        transport = transport or self.transport
        if actor is not None and transport.reliable and not actor.machine.server:
            # a connection may have to be opened: its failure is the client transaction's (§17.1.4)
            transport.send(data, destination, failed=lambda: self.scheduler.call_later(0, lambda: _transport_error(actor)))  # type: ignore[call-arg]
        else:
            transport.send(data, destination)
        if self._subscribers:
            record = {"type": "out", "destination": list(destination), "message": data[: data.find(b"\r\n")].decode("latin-1")}
            if actor is not None:
                record.update(actor=actor.actor_id, transaction=repr(actor.key))
            self.emit(record)


def _transport_error(actor: TransactionActor) -> None:
    """RFC 3261 §17.1.4: tell a client transaction its transport failed, unless it has ended meanwhile."""
    if actor.layer.client.get(actor.key) is actor:
        actor.tell("transport_error")


def _stamp_via(request: Request, top: Via, source: Address) -> Via:
    """RFC 3261 §18.2.1 and RFC 3581 §4: the top Via gets ``received`` when its sent-by is not the address
    the request came from, and ``rport`` the source port when the client asked for it. ``top`` is
    ``request.top_via``; the top Via as stamped is returned."""
    params = top.params
    if top.host.strip("[]").lower() != source[0].lower():
        params = params.replace("received", source[0])
    if "rport" in params and params.get("rport") is None:
        params = params.replace("rport", str(source[1]))
    if params is top.params:
        return top
    fields = request.get_fields("Via")
    vias = list(fields[0].parsed)
    vias[0] = top = top.with_params(params)
    stamped = HeaderField("Via", ", ".join(via.render() for via in vias), None, vias)
    request.fields[request.fields.index(fields[0])] = stamped
    request._index = None
    return top


def stateless_400(data: bytes, reason: str, status: int = 400) -> bytes | None:
    """A 400 for a request that does not parse, copying the lines a response needs as they came (§8.2.6.2:
    Via, From, To, Call-ID, CSeq); None when there is no Via line to answer along."""
    try:
        head = split_head(data)
    except ParseError:
        return None
    lines = []
    for name, value, raw in head.headers:
        spec = spec_for(name)
        if spec is None or spec.name not in ("Via", "From", "To", "Call-ID", "CSeq"):
            continue
        if spec.name != "Via":  # the Via lines go back as they came; the others only if well formed
            try:
                parse_value(spec, value)
            except ParseError:
                continue
        lines.append(raw)
    if not any(spec_for(raw.split(":", 1)[0].strip()) is spec_for("Via") for raw in lines):
        return None
    text = "\r\n".join([f"SIP/2.0 {status} {reason}", *lines, "Content-Length: 0", "", ""])
    return text.encode("latin-1", errors="replace")
