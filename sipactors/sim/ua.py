"""A simulated user agent: a small UA core (RFC 3261 §8) over its own transaction layer, on the virtual
network, answering by a script. Later simulations build callers, callees, registering clients and
subscribers from it.

* **UAC** (§8.1): ``send`` builds a request (§8.1.1: Request-URI, To, From with a tag, Call-ID, CSeq,
  Max-Forwards, Via with a fresh ``z9hG4bK`` branch, Contact), sends it through a client transaction to
  the next hop a ``Resolver`` names (§8.1.2, RFC 3263 §4: the first Route, else the Request-URI), and
  records every response and the request's one final outcome: a final response, a timeout, a transport
  error, or a name that cannot be resolved (then nothing is sent).
* **2xx to INVITE** (§13.2.2.4): the UA core, not the transaction, acknowledges it, end to end, and
  acknowledges each retransmission of it again; the dialog it creates (§12.1.2) is enough for ``bye``
  (§15.1.1).
* **UAS** (§8.2): a request that reaches the core through a server transaction is answered by the
  script: per method, a list of replies, each some milliseconds of virtual time after the one before
  (or a function of the request that returns such a list). A method without a script gets 405 with
  Allow (§8.2.1); a request inside a dialog this UA does not know gets 481 (§12.2.2). A 2xx to INVITE
  is retransmitted by the core until its ACK arrives (§13.3.1.4; RFC 6026 §7.1 lets it through the
  transaction), for at most 64*T1.

Everything random (tags, branches, Call-IDs) comes from a generator seeded per UA, so a run replays.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sipactors.message import URI, CSeq, NameAddr, Request, Response, SipURI, Via, parse_uri
from sipactors.message.build import response_for
from sipactors.message.params import Params
from sipactors.runtime.transaction import Address, TransactionLayer
from sipactors.sim import SimNetwork, SimTransport
from sipactors.transport.resolve import ResolutionError, Resolver, Target

__all__ = ["DEFAULT_SCRIPT", "ClientSubscription", "Dialog", "Outcome", "Reply", "Script", "SentRequest", "SimUA"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted response: its status and reason, ``after_ms`` of virtual time after the previous
    reply to the same request (or after the request), and extra header fields and a body."""

    status: int
    reason: str | None = None
    after_ms: float = 0.0
    headers: tuple[tuple[str, object], ...] = ()
    body: bytes = b""


Step = Reply | int | tuple[int, str] | tuple[int, str, float]
#: Per method, the replies to each request; or a function of the request that returns them.
Script = Mapping[str, Sequence[Step]] | Callable[[Request], Sequence[Step]]
DEFAULT_SCRIPT: Mapping[str, Sequence[Step]] = {"OPTIONS": [200], "BYE": [200]}


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a request ended for its UAC: ``response`` (a final one), ``timeout``, ``transport_error``, or
    ``unresolvable`` (no next hop: ``error`` says why, and nothing was sent)."""

    kind: str
    at: float
    response: Response | None = None
    error: ResolutionError | None = None

    @property
    def status(self) -> int | None:
        return self.response.status if self.response is not None else None


@dataclass
class Dialog:
    """Enough of a dialog (RFC 3261 §12) for a call: its ID, the remote target, the route set, CSeqs."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr  # without tag
    remote_uri: NameAddr  # without tag
    remote_target: URI
    route_set: list[NameAddr]
    local_seq: int
    confirmed: bool = False  # the ACK for the 2xx is sent (UAC) or has arrived (UAS)
    terminated: bool = False
    ack: Request | None = None  # the UAC's ACK, sent again for each 2xx retransmission

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)


@dataclass
class SentRequest:
    """A request this UA sent as a UAC, and what came of it."""

    request: Request
    target: Target | None
    key: Any = None
    responses: list[Response] = field(default_factory=list)
    finals: list[Outcome] = field(default_factory=list)  # one, once the request has ended
    dialog: Dialog | None = None

    @property
    def outcome(self) -> Outcome | None:
        return self.finals[0] if self.finals else None


@dataclass
class ClientSubscription:
    """A subscription this UA asked for (RFC 6665 §4.1): the SUBSCRIBE that started it, the dialog (made by
    the 2xx or by a NOTIFY that arrived first, §4.1.2.4), and every NOTIFY received, in order."""

    call_id: str
    local_tag: str
    event: str
    sent: SentRequest
    dialog: Dialog | None = None
    notifies: list[Request] = field(default_factory=list)
    terminated: bool = False

    @property
    def states(self) -> list[str]:
        """The Subscription-State values received, in order (e.g. "active;expires=3600")."""
        return [n.header_text("Subscription-State") or "" for n in self.notifies]


class SimUA:
    """A user agent with an address of record, a contact address on a ``SimNetwork``, its own transaction
    layer, and a script for the requests it receives."""

    max_forwards = 70  # RFC 3261 §8.1.1.6

    def __init__(
        self, network: SimNetwork, aor: SipURI | str, address: Address, resolver: Resolver, *,
        script: Script = DEFAULT_SCRIPT, proxy: SipURI | str | None = None, reliable: bool = False,
        seed: int = 0, trace: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.aor = _sip_uri(aor)
        self.address = address
        self.resolver = resolver
        self.script = script
        self.proxy = _sip_uri(proxy) if proxy is not None else None
        self.scheduler = network.scheduler
        self.transport = SimTransport(network, address, reliable)
        self.transport_name = "TCP" if reliable else "UDP"
        self.layer = TransactionLayer(self.transport, self, self.scheduler, trace=trace)
        self.random = random.Random(f"{seed}|{self.aor}|{address}")
        transport = Params((("transport", "tcp"),)) if reliable else Params()
        self.contact = NameAddr(SipURI("sip", address[0], self.aor.user, port=address[1], params=transport))
        timers = self.layer.machines["invite_server"].timers.base
        self.t1, self.t2 = timers["T1"], timers["T2"]
        self.sent: list[SentRequest] = []
        self.received: list[Request] = []  # requests that reached the core (no retransmissions)
        self.acks: list[Request] = []  # ACKs for 2xx, each copy that arrived
        self.dialogs: dict[tuple[str, str, str], Dialog] = {}
        self.server_errors: list[tuple[str, Any]] = []  # ("timeout" | "transport_error" | "no_ack", key)
        self._by_key: dict[Any, SentRequest] = {}
        self.subscriptions: dict[tuple[str, str], ClientSubscription] = {}  # (Call-ID, our tag)
        #: the status this UA answers a NOTIFY with (a function of the NOTIFY, or a number)
        self.notify_status: Callable[[Request], int] | int = 200
        network.attach(address, lambda data, source: self.layer.receive(data, source))

    # -- UAC (§8.1) ---------------------------------------------------------------------------------
    def send(
        self, method: str, uri: SipURI | str, *, to: SipURI | str | None = None, body: bytes = b"",
        content_type: str | None = None, headers: Sequence[tuple[str, object]] = (),
    ) -> SentRequest:
        """A new request outside any dialog, to ``uri`` (To is ``to``, else ``uri``), through the proxy
        if the UA has one (a preloaded Route, §8.1.2)."""
        target = _sip_uri(uri)
        route = [NameAddr(self.proxy.with_params(self.proxy.params.replace("lr", None)))] if self.proxy else []
        request = self._request(
            method, target, NameAddr(_sip_uri(to) if to is not None else target),
            NameAddr(self.aor).with_params(Params((("tag", self._token()),))), f"{self._token()}@{self.address[0]}",
            1, route, headers, body, content_type,
        )
        return self._start(request)

    def bye(self, dialog: Dialog | None = None) -> SentRequest:
        """End a call (RFC 3261 §15.1.1): BYE inside ``dialog`` (by default the one confirmed dialog)."""
        if dialog is None:
            (dialog,) = [d for d in self.dialogs.values() if d.confirmed and not d.terminated]
        dialog.local_seq += 1
        dialog.terminated = True  # §15.1.1: the session ends when the BYE is sent
        sent = self._start(self._in_dialog(dialog, "BYE", dialog.local_seq))
        sent.dialog = dialog
        return sent

    # -- subscriber (RFC 6665 §4.1) ------------------------------------------------------------------
    def subscribe(
        self, uri: SipURI | str, event: str = "presence", expires: int | None = 3600,
        accept: Sequence[str] = (), headers: Sequence[tuple[str, object]] = (),
    ) -> ClientSubscription:
        """A SUBSCRIBE creating a subscription (RFC 6665 §4.1.2.1) to ``uri`` for ``event``."""
        extra: list[tuple[str, object]] = [("Event", event)]
        if expires is not None:
            extra.append(("Expires", expires))
        if accept:
            extra.append(("Accept", ", ".join(accept)))
        sent = self.send("SUBSCRIBE", uri, headers=[*extra, *headers])
        request = sent.request
        assert request.from_ is not None and request.from_.tag is not None
        subscription = ClientSubscription(request.call_id or "", request.from_.tag, event, sent)
        self.subscriptions[(subscription.call_id, subscription.local_tag)] = subscription
        return subscription

    def refresh(self, subscription: ClientSubscription, expires: int) -> SentRequest:
        """An in-dialog SUBSCRIBE (RFC 6665 §4.1.2.2; Expires 0 unsubscribes, §4.1.2.3)."""
        dialog = subscription.dialog
        assert dialog is not None, "no dialog yet: neither the 2xx nor a NOTIFY has arrived"
        dialog.local_seq += 1
        request = self._in_dialog(dialog, "SUBSCRIBE", dialog.local_seq)
        request.add_header("Event", subscription.event)
        request.add_header("Expires", expires)
        sent = self._start(request)
        sent.dialog = dialog
        return sent

    def unsubscribe(self, subscription: ClientSubscription) -> SentRequest:
        return self.refresh(subscription, 0)

    def _subscription_dialog(self, subscription: ClientSubscription, remote_tag: str, message: Request | Response,
                             route_set: list[NameAddr]) -> Dialog:
        """The dialog of a subscription, made by the first of its 2xx and its NOTIFY (RFC 6665 §4.1.2.4)."""
        request = subscription.sent.request
        dialog_id = (subscription.call_id, subscription.local_tag, remote_tag)
        dialog = self.dialogs.get(dialog_id)
        if dialog is None:
            assert request.from_ is not None and request.to is not None
            contact = message.contact
            dialog = Dialog(
                *dialog_id, request.from_.with_params(Params()), request.to.with_params(Params()),
                contact[0].uri if contact and not isinstance(contact, str) else request.uri, route_set,
                request.cseq.seq if request.cseq else 1, confirmed=True,
            )
            self.dialogs[dialog_id] = dialog
        subscription.dialog = subscription.dialog or dialog
        return dialog

    def _notified(self, key: Any, request: Request) -> None:
        """A NOTIFY (RFC 6665 §4.1.3): matched to a subscription by Call-ID and our tag, or 481."""
        to, from_ = request.to, request.from_
        subscription = self.subscriptions.get((request.call_id or "", to.tag or "")) if to is not None else None
        if subscription is None or subscription.terminated or from_ is None or from_.tag is None:
            self.layer.respond(key, response_for(request, 481))
            return
        dialog = self._subscription_dialog(subscription, from_.tag, request, list(request.record_route))
        subscription.notifies.append(request)
        status = self.notify_status(request) if callable(self.notify_status) else self.notify_status
        if 200 <= status < 300 and (request.header_text("Subscription-State") or "").startswith("terminated"):
            subscription.terminated = dialog.terminated = True
        self.layer.respond(key, response_for(request, status))

    def _request(
        self, method: str, uri: URI, to: NameAddr, from_: NameAddr, call_id: str, seq: int,
        route: Sequence[NameAddr], headers: Sequence[tuple[str, object]] = (), body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """A request as §8.1.1 builds one; the Via is added when it is sent."""
        request = Request(method, uri)
        for name, value in (("Max-Forwards", self.max_forwards), ("To", to), ("From", from_),
                            ("Call-ID", call_id), ("CSeq", CSeq(seq, method))):
            request.add_header(name, value)
        if route:
            request.add_header("Route", list(route))
        if method not in ("ACK", "BYE", "CANCEL", "MESSAGE"):  # §8.1.1.8; RFC 3428 §4: never in a MESSAGE
            request.add_header("Contact", [self.contact])
        for name, value in headers:
            request.add_header(name, value)
        if content_type is not None:
            request.add_header("Content-Type", content_type)
        request.add_header("Content-Length", len(body))
        request.body = body
        return request

    def _in_dialog(self, dialog: Dialog, method: str, seq: int) -> Request:
        """A request inside ``dialog`` (RFC 3261 §12.2.1.1); loose routing only (every route has lr)."""
        return self._request(
            method, dialog.remote_target, dialog.remote_uri.with_params(Params((("tag", dialog.remote_tag),))),
            dialog.local_uri.with_params(Params((("tag", dialog.local_tag),))), dialog.call_id, seq,
            dialog.route_set,
        )

    def _start(self, request: Request) -> SentRequest:
        try:
            target = self._next_hop(request)
        except ResolutionError as error:
            sent = SentRequest(request, None)
            sent.finals.append(Outcome("unresolvable", self.scheduler.now(), error=error))
            self.sent.append(sent)
            return sent
        self._add_via(request)
        sent = SentRequest(request, target)
        self.sent.append(sent)
        sent.key = self.layer.send_request(request, target.address)
        self._by_key[sent.key] = sent
        return sent

    def _next_hop(self, request: Request) -> Target:
        """RFC 3261 §8.1.2: the first Route's URI, else the Request-URI, resolved per RFC 3263; the first
        target over this UA's transport."""
        route = request.route
        uri = route[0].uri if route else request.uri
        targets = [t for t in self.resolver.resolve(uri) if t.transport == self.transport_name]
        if not targets:
            raise ResolutionError(uri, f"no next hop over {self.transport_name}")
        return targets[0]

    def _add_via(self, request: Request) -> None:
        # RFC 3581 §3: rport asks for the response at the port the request came from.
        params = Params((("branch", "z9hG4bK" + self._token()), ("rport", None)))
        request.add_header("Via", [Via(self.transport_name, self.address[0], self.address[1], params)], first=True)

    def _token(self) -> str:
        return f"{self.random.getrandbits(64):016x}"  # §19.3: tags and Call-IDs need 32 bits and more

    # -- the TransactionUser protocol, client side --------------------------------------------------
    def response(self, layer: TransactionLayer, key: Any, response: Response) -> None:
        sent = self._by_key[key]
        sent.responses.append(response)
        if response.status < 200:
            return
        if sent.request.method == "INVITE" and response.status < 300:
            self._acknowledge_2xx(sent, response)
            if sent.finals:
                return  # a retransmission (or a forked 2xx): acknowledged, not a second outcome
        request = sent.request
        if request.method == "SUBSCRIBE" and response.status < 300 and response.to is not None and response.to.tag:
            assert request.from_ is not None
            subscription = self.subscriptions.get((request.call_id or "", request.from_.tag or ""))
            if subscription is not None:  # the UAC side of the dialog (RFC 3261 §12.1.2), unless a NOTIFY made it
                self._subscription_dialog(subscription, response.to.tag, response, list(reversed(response.record_route)))
        sent.finals.append(Outcome("response", self.scheduler.now(), response))

    def timeout(self, layer: TransactionLayer, key: Any) -> None:
        self._ended_without_response(key, "timeout")

    def transport_error(self, layer: TransactionLayer, key: Any) -> None:
        self._ended_without_response(key, "transport_error")

    def _ended_without_response(self, key: Any, kind: str) -> None:
        sent = self._by_key.get(key)
        if sent is None:  # a server transaction: its request was answered, the answer went nowhere
            self.server_errors.append((kind, key))
        else:
            sent.finals.append(Outcome(kind, self.scheduler.now()))

    def _acknowledge_2xx(self, sent: SentRequest, response: Response) -> None:
        """RFC 3261 §13.2.2.4: the ACK for a 2xx, built by the core, sent again for every retransmission;
        the dialog the 2xx creates (§12.1.2) on its first arrival."""
        request, to = sent.request, response.to
        assert request.from_ is not None and request.from_.tag is not None and to is not None
        dialog_id = (request.call_id or "", request.from_.tag, to.tag or "")
        dialog = self.dialogs.get(dialog_id)
        if dialog is None:
            contact = response.contact
            dialog = Dialog(
                *dialog_id, request.from_.with_params(Params()), to.with_params(Params()),
                contact[0].uri if contact and not isinstance(contact, str) else request.uri,
                list(reversed(response.record_route)), request.cseq.seq if request.cseq else 1,
            )
            dialog.ack = self._in_dialog(dialog, "ACK", dialog.local_seq)
            self._add_via(dialog.ack)
            dialog.confirmed = True
            self.dialogs[dialog.id] = dialog
            sent.dialog = sent.dialog or dialog
        ack = dialog.ack
        assert ack is not None  # every dialog this UA created as a UAC has its ACK
        try:
            target = self._next_hop(ack)
        except ResolutionError:
            return  # no way to the remote target: the UAS gives up after 64*T1 (§13.3.1.4)
        self.layer.send(ack, target.address)

    # -- the TransactionUser protocol, server side (§8.2) -------------------------------------------
    def request(self, layer: TransactionLayer, key: Any, request: Request) -> None:
        self.received.append(request)
        if request.method == "NOTIFY":
            self._notified(key, request)
            return
        to_tag = request.to.tag if request.to is not None else None
        dialog = self._dialog_of(request)
        if to_tag is not None and (dialog is None or dialog.terminated):
            layer.respond(key, response_for(request, 481))  # §12.2.2
            return
        replies = self._replies(request)
        tag = to_tag or self._token()
        delay = 0.0
        for reply in replies:
            delay += reply.after_ms
            if delay:
                self.scheduler.call_later(delay, lambda reply=reply: self._respond(key, request, reply, tag))
            else:
                self._respond(key, request, reply, tag)

    def _replies(self, request: Request) -> list[Reply]:
        script = self.script
        if callable(script):
            steps = script(request)
        elif request.method in script:
            steps = script[request.method]
        else:
            allow = ", ".join(sorted({*script, "ACK"}))
            steps = [Reply(405, headers=(("Allow", allow),))]  # §8.2.1
        return [_reply(step) for step in steps]

    def _respond(self, key: Any, request: Request, reply: Reply, tag: str) -> None:
        headers = list(reply.headers)
        if request.method == "INVITE" and reply.status > 100:
            # §12.1.1: a response that can create a dialog carries the UAS's Contact and the Record-Route.
            headers += [("Contact", [self.contact])]
            headers += [("Record-Route", f.value) for f in request.get_fields("Record-Route")]
        response = response_for(request, reply.status, reply.reason, to_tag=tag, headers=headers, body=reply.body)
        self.layer.respond(key, response)
        if request.method == "INVITE" and 200 <= reply.status < 300:
            dialog = self._accept(request, tag)
            self.scheduler.call_later(self.t1, lambda: self._retransmit_2xx(key, response, dialog, self.t1, 0.0))
        elif request.method == "BYE" and 200 <= reply.status < 300:
            dialog = self._dialog_of(request)
            if dialog is not None:
                dialog.terminated = True

    def _accept(self, request: Request, tag: str) -> Dialog:
        """The UAS side of the dialog a 2xx to INVITE creates (RFC 3261 §12.1.1)."""
        from_, to = request.from_, request.to
        assert from_ is not None and to is not None
        contact = request.contact
        dialog = Dialog(
            request.call_id or "", tag, from_.tag or "", to.with_params(Params()), from_.with_params(Params()),
            contact[0].uri if contact and not isinstance(contact, str) else from_.uri,
            list(request.record_route), self.random.randrange(1, 2**31),
        )
        dialog = self.dialogs.setdefault(dialog.id, dialog)
        dialog.confirmed = False  # until this 2xx's ACK arrives
        return dialog

    def _retransmit_2xx(self, key: Any, response: Response, dialog: Dialog, interval: float, waited: float) -> None:
        """RFC 3261 §13.3.1.4: T1, doubling up to T2, until the ACK; no ACK within 64*T1 is an error."""
        if dialog.confirmed:
            return
        waited += interval
        if waited >= 64 * self.t1:
            self.server_errors.append(("no_ack", dialog.id))
            return
        self.layer.respond(key, response)
        interval = min(2 * interval, self.t2)
        self.scheduler.call_later(interval, lambda: self._retransmit_2xx(key, response, dialog, interval, waited))

    def ack(self, layer: TransactionLayer, request: Request, source: Address) -> None:
        self.acks.append(request)
        dialog = self._dialog_of(request)
        if dialog is not None:
            dialog.confirmed = True

    def _dialog_of(self, request: Request) -> Dialog | None:
        """The dialog a request received belongs to (§12.2.2: Call-ID, To tag local, From tag remote)."""
        to, from_ = request.to, request.from_
        if to is None or from_ is None or to.tag is None:
            return None
        return self.dialogs.get((request.call_id or "", to.tag, from_.tag or ""))


def _sip_uri(uri: SipURI | str) -> SipURI:
    parsed = parse_uri(uri) if isinstance(uri, str) else uri
    if not isinstance(parsed, SipURI):
        raise ValueError(f"{uri}: a simulated UA speaks SIP and SIPS URIs only")
    return parsed


def _reply(step: Step) -> Reply:
    if isinstance(step, Reply):
        return step
    if isinstance(step, int):
        return Reply(step)
    return Reply(*step)
