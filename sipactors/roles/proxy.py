"""The stateful proxy's decisions (RFC 3261 §16), pure: what to answer, where to fork, what to forward, and
which response goes upstream.

Sans-IO like the rest of ``roles/`` (DESIGN §1): the clock and the randomness are injected
(``ProxyRole(clock=..., entropy=...)``), the store is read through ``store.locations.bindings(aor, now)``,
and every function returns messages or decisions; the actors of ``sipactors.runtime.proxy`` send them.

The steps, in the RFC's order, each a function:

* §16.3 request validation (:func:`validate`): the Request-URI scheme (416), Max-Forwards (483), loop
  detection (482) with the loop hash of :func:`loop_hash`, Proxy-Require (420 with Unsupported);
* §16.4 route information preprocessing (:func:`preprocess_routes`): strict-route compatibility, maddr,
  our own Route popped;
* §16.5 the target set (:meth:`ProxyRole.decide`): the location service for a local domain, ordered by
  caller preferences (RFC 3841) and grouped by Request-Disposition and q; the Request-URI itself otherwise;
* §16.6 forwarding (:func:`forward_request`): copy, Request-URI, Max-Forwards, Record-Route, Route from
  Path (RFC 3327 §5.3), strict-route postprocessing, Via with a loop-detecting branch;
* §16.7 the response context (:class:`ResponseContext`): branch bookkeeping and the best response
  (6xx first, then the lowest class, 503 → 500, 401/407 challenges aggregated); the machine of
  spec/machines/proxy.toml decides *when* each of these happens;
* §16.10 CANCEL (:func:`cancel_for`), §16.11 stateless forwarding (:func:`stateless_branch`,
  :func:`pop_via`, :func:`response_hop`).

Decisions where the RFC leaves a choice (each is said again where it is made):

* **No open relay.** An in-dialog request that arrives with our own Route on top (we Record-Routed the
  dialog) is forwarded as routed. Any other request whose next hop is not one of our local domains (a
  non-local Request-URI, or a Route left after ours is popped) is forwarded only for a user authenticated
  with ``407`` (§22.3) in the realm of the From domain, which must be local; with no users at all (open
  mode) there is nobody to authenticate and it gets ``403 Relaying Forbidden``. ACK is never challenged
  (§22.1): an ACK that could only be relayed is dropped.
* **Local users calling local targets** are challenged (407) for ``auth_methods`` when users exist and the
  From URI claims a local domain: "requests from local users that the proxy forwards get 407" (issue 4).
  Callers from other domains reach local users unauthenticated, as a domain's proxy must let them.
* **Forking:** targets of equal q in parallel, q classes in sequence, highest first (§16.6 last
  paragraph, RFC 3841 §7.2.4); Request-Disposition ``parallel``, ``sequential``, ``no-fork`` and
  ``redirect`` (RFC 3841 §9.1) override that.
* **Transports.** A branch goes over the transport its next hop resolves to (RFC 3263 §4.1), over TCP
  when its binding was registered over TCP (:attr:`Target.flow`: RFC 5626 §5.3 flow reuse, the device's
  connection when it is still open); the top Via names that transport (§18.1.1). When the request came
  in over one transport and leaves over another, two Record-Route values go in, the outbound leg's on
  top (RFC 5658 §3.2 "double Record-Route"), so each side of the dialog reaches us over its own transport;
  a request arriving with both on top pops both (§16.4, RFC 5658 §3.3).
* **Loop hash** (§16.6 step 8): To tag, From tag, Call-ID, received Request-URI, CSeq number, Route,
  Proxy-Require and Proxy-Authorization, *not* the top Via that §16.6 step 8 lists as "a common way": on a
  loop the top Via is the previous hop's, never the same as on the first pass, so hashing it would make
  every loop look like a spiral (RFC 5393 §4.2 corrects this).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sipactors.message import (
    MAGIC_COOKIE,
    URI,
    CSeq,
    HeaderField,
    NameAddr,
    Params,
    Request,
    Response,
    SipURI,
    TelURI,
    Via,
    parse_uri,
)
from sipactors.message.build import response_for
from sipactors.roles.callerprefs import order_targets, request_disposition
from sipactors.roles.digest import PROXY_TO_USER, Authenticator, source_of, user_lookup
from sipactors.store.model import Binding, canonical_aor

__all__ = [
    "Answer", "Branch", "DEFAULT_AUTH_METHODS", "binding_target", "DialPlan", "Listener", "Plan", "ProxyPolicy", "ProxyRole",
    "ResponseContext", "TIMER_C_MS", "Target", "best_response", "cancel_for", "forward_request", "loop_hash",
    "record_routes", "via_over",
    "pop_via", "preprocess_routes", "response_hop", "stateless_branch", "validate",
]

#: §16.6 step 11: "Timer C MUST be set ... greater than 3 minutes" — strictly greater, so one second more.
TIMER_C_MS = 181_000
#: §16.6 step 3: "SHOULD be 70".
DEFAULT_MAX_FORWARDS = 70
#: The methods a local user's request is challenged for (issue 4: "which methods: config"). The requests
#: that start something at the callee or cost the domain: a call, a message, a subscription, a refer, a
#: publication. OPTIONS is left out: UAs and monitors use it as a keep-alive and capability probe that
#: creates no state, and challenging it breaks those probes. In-dialog methods (BYE, INFO, UPDATE, PRACK,
#: NOTIFY) arrive on the route set of a dialog whose INVITE or SUBSCRIBE was authenticated already.
DEFAULT_AUTH_METHODS = frozenset({"INVITE", "MESSAGE", "SUBSCRIBE", "REFER", "PUBLISH"})
#: Methods that create a dialog, and so the only ones whose Record-Route anybody reads (§12.1, §16.6
#: step 4; RFC 6665 §4.1 for SUBSCRIBE, RFC 3515 §2.4.2 for REFER).
_DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
#: §16.7 step 6: within the 4xx class, these are preferred (they tell the UAC how to retry).
_PREFERRED_4XX = (401, 407, 415, 420, 484)
#: The header fields whose values enter the loop hash after the To and From tags, Call-ID, Request-URI
#: and CSeq number (§16.6 step 8, §16.3 item 4): those that change how the request is routed.
_LOOP_FIELDS = ("Route", "Proxy-Require", "Proxy-Authorization")
#: Request-URI schemes this proxy routes (§16.3 item 2: any other gets 416).
_SCHEMES = frozenset({"sip", "sips", "tel"})


class DialPlan(Protocol):
    """A dial plan (RFC 3966 routing to gateways): the gateway URI for a tel or user=phone URI, or None."""

    def route(self, uri: URI) -> SipURI | None: ...


# ----------------------------------------------------------------------------------------- policy
@dataclass(frozen=True, slots=True)
class Listener:
    """One address this proxy listens on: what it writes in Via and Record-Route and recognises in Route."""

    transport: str  # a Via transport token, "UDP" or "TCP"
    host: str
    port: int


@dataclass(frozen=True)
class ProxyPolicy:
    """Local configuration of the proxy (RFC 3261 §16)."""

    domains: frozenset[str]  # the domains this proxy is responsible for (§16.5); the listeners' hosts among them
    listeners: tuple[Listener, ...]
    record_route: bool = True  # §16.6 step 4: stay on the path of the dialogs we set up
    recurse_on_3xx: bool = False  # §16.7 step 4: 3xx passed back unless configured to recurse
    timer_c_ms: int = TIMER_C_MS
    auth_methods: frozenset[str] = DEFAULT_AUTH_METHODS
    proxy_require: frozenset[str] = frozenset()  # option tags a Proxy-Require may name (§16.3 item 5): none
    max_recursion_targets: int = 16  # contacts taken from 3xx responses per request, at most

    def __post_init__(self) -> None:
        if not self.listeners:
            raise ValueError("a proxy needs at least one address to write in Via (RFC 3261 §16.6 step 8)")
        hosts = {listener.host.strip("[]").lower() for listener in self.listeners}
        object.__setattr__(self, "domains", frozenset(d.lower() for d in self.domains) | hosts)
        object.__setattr__(self, "auth_methods", frozenset(m.upper() for m in self.auth_methods))
        if self.timer_c_ms <= 180_000:
            raise ValueError("Timer C must be greater than 3 minutes (RFC 3261 §16.6 step 11)")

    # (cached: asked several times for every request, of a policy that never changes)
    @functools.cached_property
    def ports(self) -> frozenset[int]:
        return frozenset(listener.port for listener in self.listeners)

    @functools.cached_property
    def addresses(self) -> frozenset[tuple[str, int]]:
        """(host, port) of every listener, the host in lower case (a Via naming us, §16.3 item 4)."""
        return frozenset((listener.host.lower(), listener.port) for listener in self.listeners)

    def _our_port(self, uri: SipURI) -> bool:
        port = uri.port if uri.port is not None else (5061 if uri.secure else 5060)
        return port in self.ports

    def ours(self, uri: URI) -> bool:
        """Whether ``uri`` names this proxy itself (a Route or Record-Route value we wrote, §16.4): a host
        among our listeners' or our domains, at one of our ports."""
        if not isinstance(uri, SipURI):
            return False
        host = (uri.params.get("maddr") or uri.host).strip("[]").lower()
        return host in self.domains and self._our_port(uri)

    def local(self, uri: URI) -> bool:
        """Whether this proxy is responsible for ``uri``'s domain (§16.5): a local domain, and no port of
        somebody else (``sip:bob@127.0.0.1:5070`` is a device beside us, not our domain)."""
        return isinstance(uri, SipURI) and uri.host.strip("[]").lower() in self.domains and (
            uri.port is None or uri.port in self.ports
        )

    def listener(self, transport: str = "UDP") -> Listener:
        listener = self._listener_for.get(transport)
        if listener is None:
            listener = next((item for item in self.listeners if item.transport == transport), self.listeners[0])
            self._listener_for[transport] = listener
        return listener

    @functools.cached_property
    def _listener_for(self) -> dict[str, Listener]:
        return {}

    def record_route_value(self, transport: str = "UDP") -> NameAddr:
        """§16.6 step 4: ``<sip:ADDR:PORT;lr>``, with the transport when it is not UDP (RFC 3263 §4.1 would
        otherwise make the UAs use UDP to reach it). Made once per transport: it never changes."""
        value = self._record_route_for.get(transport)
        if value is None:
            value = self._record_route_for[transport] = self._record_route(transport)
        return value

    @functools.cached_property
    def _record_route_for(self) -> dict[str, NameAddr]:
        return {}

    def _record_route(self, transport: str) -> NameAddr:
        listener = self.listener(transport)
        params: list[tuple[str, str | None]] = [("lr", None)]
        if listener.transport != "UDP":
            params.insert(0, ("transport", listener.transport.lower()))
        host = f"[{listener.host}]" if ":" in listener.host else listener.host
        return NameAddr(SipURI("sip", host, port=listener.port, params=Params(params)))


# ----------------------------------------------------------------------------------------- answers
@dataclass(frozen=True, slots=True)
class Answer:
    """The proxy answers the request itself (as a UAS, §16.3 "MUST behave as a user agent server")."""

    status: int
    reason: str | None = None
    headers: tuple[tuple[str, object], ...] = ()

    def response(self, request: Request, to_tag: str | None) -> Response:
        return response_for(request, self.status, self.reason, to_tag=to_tag, headers=list(self.headers))


# ----------------------------------------------------------------------------------- §16.3, §16.4
def loop_hash(request: Request) -> str:
    """The loop-detecting part of our branch (§16.6 step 8): a hash of the fields that decide how this
    proxy processes the request (see the module's decisions for why the top Via is not among them)."""
    to, from_, cseq = request.to, request.from_, request.cseq
    parts = [
        (to.tag or "") if to is not None else "", (from_.tag or "") if from_ is not None else "",
        request.call_id or "", request.uri.render(), str(cseq.seq) if cseq is not None else "",
    ]
    for name in _LOOP_FIELDS:
        for field_ in request.get_fields(name):
            parts.append(field_.value)
    text = "\x00".join(parts)
    return hashlib.md5(text.encode("latin-1", "replace"), usedforsecurity=False).hexdigest()[:16]


def _branch_hash(branch: str | None) -> str | None:
    """The loop part of a branch we wrote: ``z9hG4bK`` + hash + ``.`` + branch number."""
    if branch is None or not branch.startswith(MAGIC_COOKIE) or "." not in branch:
        return None
    return branch[len(MAGIC_COOKIE):].partition(".")[0]


def _via_is_ours(via: Via, policy: ProxyPolicy) -> bool:
    port = via.port if via.port is not None else 5060
    return (via.host.strip("[]").lower(), port) in policy.addresses


def validate(request: Request, policy: ProxyPolicy) -> Answer | None:
    """§16.3 items 2-5 (item 1, syntax, is the transaction layer's; item 6, Proxy-Authorization, comes
    with the relay decision): the answer that refuses the request, or None."""
    if request.uri.scheme not in _SCHEMES:  # item 2
        return Answer(416, headers=())
    forwards = request.max_forwards
    if forwards is not None and forwards <= 0:  # item 3 (OPTIONS to us is answered by the core, §11)
        return Answer(483)
    own = [via for via in request.via if _via_is_ours(via, policy)]
    if own:  # item 4: we forwarded this request before; a loop if nothing that routes it changed
        mine = loop_hash(request)
        if any(_branch_hash(via.branch) == mine for via in own):
            return Answer(482)
    fields = request.get_fields("Proxy-Require")
    if fields:  # item 5
        required = [tag for f in fields for tag in f.value.replace(" ", "").split(",") if tag]
        unsupported = [tag for tag in required if tag.lower() not in policy.proxy_require]
        if unsupported:
            return Answer(420, headers=(("Unsupported", ", ".join(unsupported)),))
    return None


def preprocess_routes(request: Request, policy: ProxyPolicy) -> tuple[Request, bool]:
    """§16.4 on a copy of ``request``: the copy, and whether our own Route was on top (and popped).

    * The Request-URI is a value we put in Record-Route: the previous hop is a strict router, which put
      our Route in the Request-URI and the real target last in Route; restore it.
    * A ``maddr`` naming us is stripped with the port and transport that went with it.
    * A top Route naming us is removed.
    """
    copy = Request(request.method, request.uri, list(request.fields), request.body, request.version)
    routes = request.route  # (the received request's: its fields are indexed already, the copy's are not)
    if routes and isinstance(copy.uri, SipURI) and copy.uri.user is None and policy.ours(copy.uri):
        copy.uri = routes[-1].uri  # "replace the Request-URI ... with the last value from the Route"
        _set_routes(copy, routes[:-1])
        routes = routes[:-1]
    uri = copy.uri
    if isinstance(uri, SipURI) and "maddr" in uri.params and policy.ours(uri):
        params = uri.params.without("maddr").without("transport")
        copy.uri = SipURI(uri.scheme, uri.host, uri.user, uri.password, None, params, uri.headers)
    popped = 0
    while popped < len(routes) and policy.ours(routes[popped].uri):  # both values of a double Record-Route (RFC 5658 §3.3)
        popped += 1
    if popped:
        _set_routes(copy, routes[popped:])
    return copy, bool(popped)


def _set_routes(request: Request, routes: Sequence[NameAddr]) -> None:
    """Replace the Route header fields by ``routes`` (one field), keeping where the first one was."""
    fields = request.fields
    index = next((i for i, f in enumerate(fields) if f.key == "route"), len(fields))
    rest = [f for f in fields if f.key != "route"]
    if routes:
        rest.insert(min(index, len(rest)), HeaderField("Route", ", ".join(r.render() for r in routes), None, list(routes)))
    request.fields = rest
    request._index = None


# ----------------------------------------------------------------------------------------- §16.5
@dataclass(frozen=True, slots=True)
class Target:
    """One target of the target set (§16.5): the Request-URI it gets, and the Route it needs first."""

    uri: URI
    path: tuple[str, ...] = ()  # RFC 3327 §5.3: the binding's Path, as Route values
    q: float = 1.0
    #: the address of the TCP connection the binding was registered over (RFC 5626 §5.3, RFC 3261
    #: §18.2.2): the request goes on it while it is open, else over TCP to the contact; None: UDP or unknown
    flow: tuple[str, int] | None = None


@dataclass(frozen=True)
class Plan:
    """Forward: the request after §16.4, its targets in groups (each group forked in parallel, the groups
    one after another), and what §16.6 needs to know of the request as received."""

    request: Request
    groups: tuple[tuple[Target, ...], ...]
    loop: str  # loop_hash of the request as received
    in_dialog: bool  # arrived on our Record-Route with a To tag: no Record-Route again
    cancel_forks: bool = True  # Request-Disposition no-cancel (RFC 3841 §9.1) leaves the branches be
    recurse: bool | None = None  # Request-Disposition recurse / no-recurse (RFC 3841 §9.1); None: the policy's


def _groups(targets: Sequence[Target], parallel: str | None, fork: str | None) -> tuple[tuple[Target, ...], ...]:
    """Equal q in parallel, q classes in sequence (§16.6, RFC 3841 §7.2.4); or as the caller asked (§9.1)."""
    if len(targets) <= 1:  # no target, or one (the common case): whatever the caller asked for
        return (tuple(targets),) if targets else ()
    if fork == "no-fork":
        return ((targets[0],),)
    if parallel == "parallel":
        return (tuple(targets),)
    if parallel == "sequential":
        return tuple((target,) for target in targets)
    groups: list[list[Target]] = []
    for target in targets:
        if groups and groups[-1][0].q == target.q:
            groups[-1].append(target)
        else:
            groups.append([target])
    return tuple(tuple(group) for group in groups)


def _binding_target(binding: Binding) -> tuple[NameAddr, float, Binding]:
    uri = parse_uri(binding.contact, "Contact")
    return NameAddr(uri, params=Params(binding.params)), 1.0 if binding.q is None else binding.q, binding


@dataclass
class ProxyRole:
    """The proxy as the server core runs it: §16.3 to §16.5 for one request, with the location service,
    digest authentication (407, §22.3) and an optional dial plan.

    ``clock`` gives POSIX seconds (bindings and nonces outlive the process); ``entropy(n)`` n random
    octets for a challenge's nonce. ``store`` has ``locations`` and ``users`` (``sipactors.store``).
    ``locations``, when given, is what the location lookup reads instead of ``store.locations``: anything
    with ``bindings(aor, now)``, such as the server's ``Registrar``, whose committed view in memory spares
    the store a query per request.
    """

    store: Any
    policy: ProxyPolicy
    authenticator: Authenticator
    clock: Callable[[], float]
    entropy: Callable[[int], bytes]
    dialplan: DialPlan | None = None
    locations: Any = None

    def decide(self, request: Request) -> Answer | Plan:
        """What to do with ``request`` (not ACK or CANCEL: those are hop-by-hop or stateless)."""
        refusal = validate(request, self.policy)
        if refusal is not None:
            return refusal
        loop = loop_hash(request)
        routed, popped = preprocess_routes(request, self.policy)
        to = routed.to
        in_dialog = popped and to is not None and to.tag is not None
        if in_dialog:  # on a route set we are part of: the dialog was admitted at its start
            return Plan(routed, ((Target(routed.uri),),), loop, True)
        uri = routed.uri
        if self.dialplan is not None and (isinstance(uri, TelURI) or (isinstance(uri, SipURI) and uri.params.get("user") == "phone")):
            gateway = self.dialplan.route(uri)
            if gateway is None:
                return Answer(404, "No Route For Number")
            return self._relay(routed, loop, Target(gateway))
        if self.policy.local(uri) and not routed.route:
            return self._local(routed, loop)
        return self._relay(routed, loop, Target(uri))

    # -- authentication (§22.3) ---------------------------------------------------------------------
    def _open(self) -> bool:
        return not self.store.users.any()

    def _realm(self, request: Request) -> str | None:
        """The realm of the From domain, if it is local (the only users we can authenticate are ours)."""
        from_ = request.from_
        if from_ is None or not self.policy.local(from_.uri):
            return None
        assert isinstance(from_.uri, SipURI)  # local() holds only for SIP URIs
        return self.authenticator.policy.realm_for(from_.uri.host.strip("[]"))

    def _authenticate(self, request: Request, realm: str) -> Answer | None:
        """407 with challenges, or a refusal, or None: authenticated, and our credentials removed (§22.3:
        a proxy consumes the Proxy-Authorization of its own realm)."""
        decision = self.authenticator.authenticate(
            request, realm=realm, source=source_of(request), now=self.clock(), salt=self.entropy(16),
            lookup=user_lookup(self.store.users), exchange=PROXY_TO_USER,
        )
        if decision.status is not None:
            return Answer(decision.status, decision.reason, decision.headers)
        keep = [f for f in request.fields if f.key != "proxy-authorization" or not _for_realm(f, realm)]
        request.fields = keep
        request._index = None
        return None

    def _relay(self, request: Request, loop: str, target: Target) -> Answer | Plan:
        """A next hop outside our domains: only for an authenticated local user (no open relay)."""
        if request.method == "ACK":
            return Answer(403, "Relaying Forbidden")  # never challenged (§22.1); the caller drops it
        realm = self._realm(request)
        if self._open() or realm is None:
            return Answer(403, "Relaying Forbidden")
        refused = self._authenticate(request, realm)
        if refused is not None:
            return refused
        return Plan(request, ((target,),), loop, False)

    # -- the location service (§16.5, RFC 3327, RFC 3841) ---------------------------------------------
    def _bindings(self, uri: SipURI) -> list[Binding]:
        now = self.clock()
        for aor in _aors(uri.scheme, uri.host, uri.user, uri.port):
            bindings = (self.locations or self.store.locations).bindings(aor, now)
            if bindings:
                return list(bindings)
        return []

    def admit_local(self, request: Request) -> Answer | None:
        """The digest check for a request to a local target (issue 4): a local user's request of
        ``auth_methods`` is challenged (407) unless no users exist; None: go on. The notifier asks it for
        the SUBSCRIBEs it answers itself, so they pass the same check as the ones proxied."""
        if request.method != "ACK" and request.method in self.policy.auth_methods and not self._open():
            realm = self._realm(request)
            if realm is not None:  # a local user calling: 407 (issue 4)
                return self._authenticate(request, realm)
        return None

    def _local(self, request: Request, loop: str) -> Answer | Plan:
        refused = self.admit_local(request)
        if refused is not None:
            return refused
        uri = request.uri
        assert isinstance(uri, SipURI)  # local() holds only for SIP URIs
        bindings = self._bindings(uri)
        if not bindings:
            realm = self.authenticator.policy.realm_for(uri.host.strip("[]"))
            if not self._open() and (uri.user is None or self.store.users.get(uri.user, realm) is None):
                return Answer(404)  # users exist, and this is none of them (§21.4.5)
            return Answer(480)  # a user with no device registered now (§21.4.18)
        contacts = [_binding_target(binding) for binding in bindings]
        ordered = order_targets(request, [(contact, q) for contact, q, _ in contacts])
        # order_targets hands back the contacts it was given: each finds its binding by identity
        by_contact = {id(contact): binding for contact, _, binding in contacts}
        targets = [_target(t.contact.uri, by_contact[id(t.contact)], t.q) for t in ordered]
        if not targets:
            return Answer(480, "No Matching Device")  # RFC 3841 §7.2.4: the preferences left nobody
        wanted = request_disposition(request)
        if wanted.proxy == "redirect":  # RFC 3841 §9.1: the caller asked for the contacts, not the call
            contact = ", ".join(f"<{t.uri.render()}>;q={t.q:g}" for t in targets)
            return Answer(302, headers=(("Contact", contact),))
        recurse = None if wanted.recurse is None else wanted.recurse == "recurse"
        return Plan(request, _groups(targets, wanted.parallel, wanted.fork), loop, False, wanted.cancel != "no-cancel", recurse)


def binding_target(binding: Binding) -> Target:
    """The target a binding is reached at, as the location service gives it (§16.5): its contact, Path
    and flow (:func:`_target`), its q. For requests this server sends to a device itself (a stored
    MESSAGE delivered, RFC 3428 §7)."""
    contact, q, _ = _binding_target(binding)
    return _target(contact.uri, binding, q)


def _target(uri: URI, binding: Binding, q: float) -> Target:
    """A binding's target: its Path (RFC 3327 §5.3), and its flow when it was registered over TCP directly
    (RFC 5626 §5.3); a binding registered through an edge proxy (with a Path) is reached through that
    proxy, whose connection is not the device's."""
    source = binding.source
    flow = (source.host, source.port) if source is not None and source.transport == "tcp" and not binding.path else None
    return Target(uri, binding.path, q, flow)


@functools.lru_cache(maxsize=4096)
def _aors(scheme: str, host: str, user: str | None, port: int | None) -> tuple[str, ...]:
    """The AORs a local Request-URI (its scheme, host, user and port) may name: itself (RFC 3261 §10.3
    step 5: its canonical form, port kept), and, when it carries one of our ports, the same without it —
    the port names this server, and clients register ``sip:user@domain`` and call ``sip:user@domain:port``
    (SIPp's bench scenarios do). Memoised: a pure function of its arguments, asked for every request to a
    local user, mostly for the same few users."""
    aors = [canonical_aor(SipURI(scheme, host, user, port=port).render())]
    if port is not None:
        aors.append(canonical_aor(SipURI(scheme, host, user).render()))
    return tuple(aors)


def _for_realm(field: HeaderField, realm: str) -> bool:
    try:
        value = field.parsed
    except Exception:  # an unreadable value is not ours: forwarded untouched (§16.6 step 1)
        return False
    return bool(value.get("realm") == realm)


# ----------------------------------------------------------------------------------------- §16.6
def forward_request(plan: Plan, target: Target, policy: ProxyPolicy, index: int, transport: str = "UDP") -> Request:
    """The request for one target (§16.6 steps 1-8), to be sent over ``transport`` (a Via transport
    token): the next hop is :func:`next_hop_uri` of it."""
    source = plan.request
    request = Request(source.method, _request_uri(target.uri), list(source.fields), source.body, source.version)  # 1, 2
    _set_max_forwards(request, source.max_forwards)  # 3
    if policy.record_route and not plan.in_dialog and request.method in _DIALOG_CREATING:  # 4
        request.add_header("Record-Route", record_routes(policy, _arrived_over(source), transport), first=True)
    routes = source.route  # read from the request as received, whose fields are indexed already
    if target.path:  # 6 (RFC 3327 §5.3: Path first)
        routes = [NameAddr(parse_uri(_bare_uri(path), "Path")) for path in target.path] + routes
        _set_routes(request, routes)
    _strict_route_postprocess(request, routes)
    listener = policy.listener(transport)
    branch = f"{MAGIC_COOKIE}{plan.loop}.{index}"  # 8
    request.add_header("Via", [Via(listener.transport, _host(listener.host), listener.port, Params((("branch", branch),)))], first=True)
    return request


def record_routes(policy: ProxyPolicy, inbound: str, outbound: str) -> list[NameAddr]:
    """§16.6 step 4 for a request that came in over ``inbound`` and leaves over ``outbound``: our value for
    the outbound transport, and under it the inbound one when they differ and we listen on both (RFC 5658
    §3.2): the callee reads the list from the top, the caller from the bottom (§12.1.1, §12.1.2)."""
    values = [policy.record_route_value(outbound)]
    if inbound != outbound and {inbound, outbound} <= {listener.transport for listener in policy.listeners}:
        values.append(policy.record_route_value(inbound))
    return values


def _arrived_over(request: Request) -> str:
    """The transport the previous hop sent ``request`` over: its top Via's (RFC 3261 §18.2.1)."""
    vias = request.via
    return vias[0].transport.upper() if vias else "UDP"


def via_over(request: Request, policy: ProxyPolicy, transport: str) -> Request:
    """``request`` with its top Via (ours, §16.6 step 8) naming our listener for ``transport``, the branch
    kept (§18.1.1: the Via names the transport the request is sent over)."""
    top = request.top_via
    assert top is not None  # ours (§16.6 step 8)
    if top.transport.upper() == transport:
        return request
    listener = policy.listener(transport)
    copy = Request(request.method, request.uri, list(request.fields), request.body, request.version)
    fields = copy.get_fields("Via")
    vias = list(fields[0].parsed)
    vias[0] = Via(listener.transport, _host(listener.host), listener.port, top.params)
    copy.fields[copy.fields.index(fields[0])] = HeaderField("Via", ", ".join(via.render() for via in vias), None, vias)
    copy._index = None
    return copy


def _bare_uri(text: str) -> str:
    """A stored Path hop is its URI (the registrar keeps ``hop.uri.render()``); ``<uri>`` is read too."""
    text = text.strip()
    return text[1:-1] if text.startswith("<") and text.endswith(">") else text


def _set_max_forwards(request: Request, received: int | None) -> None:
    """§16.6 step 3 in place (step 1: the copy keeps the order of the header fields)."""
    value = received - 1 if received is not None else DEFAULT_MAX_FORWARDS
    for index, existing in enumerate(request.fields):
        if existing.key == "max-forwards":
            request.fields[index] = HeaderField("Max-Forwards", str(value), None, value, (existing.key, existing.spec))
            request._index = None
            return
    request.fields.append(HeaderField("Max-Forwards", str(value), None, value))
    request._index = None


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _request_uri(uri: URI) -> URI:
    """§16.6 step 2 and §19.1.1 Table 1: a Request-URI carries no ``method`` parameter and no headers."""
    if isinstance(uri, SipURI) and (uri.headers or "method" in uri.params):
        return SipURI(uri.scheme, uri.host, uri.user, uri.password, uri.port, uri.params.without("method"))
    return uri


def _strict_route_postprocess(request: Request, routes: list[NameAddr]) -> None:
    """§16.6 step 6 for ``request`` with Route ``routes``: a top Route without ``lr`` is a strict router:
    the Request-URI goes last in Route and that Route value becomes the Request-URI."""
    if routes and isinstance(routes[0].uri, SipURI) and "lr" not in routes[0].uri.params:
        first = routes[0]
        _set_routes(request, [*routes[1:], NameAddr(request.uri)])
        request.uri = first.uri


def next_hop_uri(request: Request) -> URI:
    """§16.6 step 7: the URI RFC 3263 resolves: the top Route's, else the Request-URI."""
    routes = request.route
    return routes[0].uri if routes else request.uri


# ----------------------------------------------------------------------------------------- §16.7
@dataclass(eq=False)
class Branch:
    """One client transaction of a response context (§16.7)."""

    index: int
    target: Target
    request: Request | None = None  # as forwarded; None until it is built
    provisional: bool = False  # a 1xx arrived (§9.1: only then may a CANCEL go)
    final: Response | None = None
    cancel_wanted: bool = False
    cancel_sent: bool = False

    @property
    def pending(self) -> bool:
        return self.final is None


@dataclass(eq=False)
class ResponseContext:
    """The response context of one proxied request (§16.7): its branches, the targets still to try, the
    final responses kept, and whether branches may still be created."""

    plan: Plan
    policy: ProxyPolicy
    branches: list[Branch] = field(default_factory=list)
    waiting: list[tuple[Target, ...]] = field(default_factory=list)  # groups not tried yet
    finals: list[Response] = field(default_factory=list)  # §16.7 step 4: the responses kept
    closed: bool = False  # §16.7 step 5/§16.10: no new branches (after a 2xx, a 6xx or a CANCEL)
    cancelled: bool = False  # the upstream CANCELed (§16.10)
    tried: set[str] = field(default_factory=set)
    recursed: int = 0

    def __post_init__(self) -> None:
        self.waiting = list(self.plan.groups)

    @property
    def invite(self) -> bool:
        return self.plan.request.method == "INVITE"

    def open_next_group(self) -> list[Branch]:
        """The branches of the next group with a target not tried yet (§16.6: sequential forking across
        groups; §16.5: "a target ... MUST NOT be added again" — each URI is tried once per context)."""
        while not self.closed and self.waiting:
            made = []
            for target in self.waiting.pop(0):
                key = target.uri.render()
                if key in self.tried:
                    continue
                self.tried.add(key)
                branch = Branch(len(self.branches) + 1, target)
                branch.request = forward_request(self.plan, target, self.policy, branch.index)
                self.branches.append(branch)
                made.append(branch)
            if made:
                return made
        return []

    def synthesize(self, branch: Branch, status: int) -> Response:
        """A response standing for one the branch did not get (§16.7 step 6, §16.8: 408 for a branch that
        timed out; §16.9: 503 for one the transport could not deliver), made from the forwarded request so
        it carries our Via like a received one."""
        assert branch.request is not None
        return response_for(branch.request, status, to_tag=f"{self.plan.loop}{branch.index}")

    def others_pending(self, branch: Branch) -> bool:
        for other in self.branches:  # (a loop: asked twice per response, of one branch most of the time)
            if other.final is None and other is not branch:
                return True
        return False

    def more_targets(self, response: Response) -> bool:
        """Whether a failure of the last pending branch leads to another target (§16.6, §16.7 step 4)."""
        if self.closed or not 300 <= response.status < 600:
            return False
        untried = any(t.uri.render() not in self.tried for group in self.waiting for t in group)
        return untried or bool(self._recursion_targets(response))

    def _recursion_targets(self, response: Response) -> list[Target]:
        """§16.7 step 4: with recursion configured (or asked for, RFC 3841 §9.1), the contacts of a 3xx
        not yet tried."""
        recurse = self.policy.recurse_on_3xx if self.plan.recurse is None else self.plan.recurse
        if not (recurse and 300 <= response.status < 400) or self.plan.in_dialog:
            return []
        contacts = response.contact
        if isinstance(contacts, str):
            return []
        room = self.policy.max_recursion_targets - self.recursed
        found = [Target(c.uri, (), float(c.params.get("q") or 1.0)) for c in contacts if c.uri.render() not in self.tried]
        return sorted(found, key=lambda t: -t.q)[:max(room, 0)]

    def record(self, branch: Branch, response: Response) -> None:
        """§16.7 step 4: keep a final response (a 3xx that recursion consumes is replaced by its targets)."""
        branch.final = response
        recursion = self._recursion_targets(response) if not self.closed else []
        if recursion:
            self.recursed += len(recursion)
            self.waiting.extend(_groups(recursion, None, None))
        else:
            self.finals.append(response)
        if 600 <= response.status < 700 or 200 <= response.status < 300:
            self.closed = True  # §16.7 steps 5, 10: no new branches after a 2xx or a 6xx

    def cancel_pending(self) -> list[Branch]:
        """§16.10, §16.7 step 10: every pending branch is to be cancelled; the ones that may be now (a 1xx
        came, §9.1) are returned, the rest are cancelled when their 1xx arrives."""
        self.closed = True
        if not self.invite:  # §9.1: a CANCEL of a non-INVITE request SHOULD NOT be sent
            return []
        now = []
        for branch in self.branches:
            if branch.pending and not branch.cancel_sent:
                branch.cancel_wanted = True
                if branch.provisional:
                    branch.cancel_sent = True
                    now.append(branch)
        return now

    def best(self, to_tag: str) -> Response:
        """The response sent upstream when every branch is done (§16.7 steps 6-7, 9), Via popped;
        ``to_tag`` for a response made here."""
        if self.cancelled:
            # §16.10 with §9.2: the UAC cancelled; the INVITE ends with 487 whatever the branches said.
            return response_for(self.plan.request, 487, to_tag=to_tag)
        if not self.finals:  # §16.7 step 6: "If no final response has been received ... 408"
            return response_for(self.plan.request, 408, to_tag=to_tag)
        return pop_via(best_response(self.finals))

    def upstream(self, response: Response) -> Response:
        """§16.7 step 9: the response as forwarded: our Via removed."""
        return pop_via(response)


def best_response(finals: Sequence[Response]) -> Response:
    """§16.7 step 6 over the final responses kept (at least one): a 6xx if any, else the lowest class
    (within 4xx, 401/407/415/420/484 first); a chosen 503 becomes 500; step 7: a 401 or 407 carries every
    challenge of every 401 and 407 kept."""
    six = [r for r in finals if 600 <= r.status < 700]
    if six:
        chosen = six[0]
    else:
        lowest = min(r.status // 100 for r in finals)
        candidates = [r for r in finals if r.status // 100 == lowest]
        preferred = [r for r in candidates if r.status in _PREFERRED_4XX] if lowest == 4 else []
        chosen = (preferred or candidates)[0]
    if chosen.status == 503:  # step 6: "the proxy SHOULD generate a 500 (Server Error) response"
        return Response(500, "Server Internal Error", [f for f in chosen.fields if f.key != "retry-after"], b"")
    if chosen.status in (401, 407):
        challenges = [f for r in finals if r.status in (401, 407) for f in r.fields
                      if f.key in ("www-authenticate", "proxy-authenticate")]
        others = [f for f in chosen.fields if f.key not in ("www-authenticate", "proxy-authenticate")]
        insert = next((i for i, f in enumerate(others) if f.key == "content-length"), len(others))
        return Response(chosen.status, chosen.reason, others[:insert] + challenges + others[insert:], chosen.body)
    return chosen


def pop_via(message: Response) -> Response:
    """The response without its top Via value (§16.7 step 9, §16.11): the others stay as received."""
    fields = list(message.fields)
    for index, field_ in enumerate(fields):
        if field_.key == "via":
            rest = field_.parsed[1:]
            if rest:
                fields[index] = HeaderField("Via", ", ".join(v.render() for v in rest), None, rest, (field_.key, field_.spec))
            else:
                del fields[index]
            break
    return Response(message.status, message.reason, fields, message.body, message.version)


def response_hop(response: Response) -> tuple[str, int] | None:
    """Where a response goes (§18.2.2, RFC 3581 §4): the top Via's received/rport, else its sent-by."""
    vias = response.via
    if not vias:
        return None
    top = vias[0]
    host = top.params.get("maddr") or top.params.get("received") or top.host
    rport = top.params.get("rport")
    port = int(rport) if rport else (top.port or 5060)
    return host.strip("[]"), port


# ---------------------------------------------------------------------------------- §16.10, §16.11
def cancel_for(request: Request) -> Request:
    """The CANCEL of a forwarded INVITE (§9.1): its Request-URI, Call-ID, To, From, CSeq number and top
    Via (so it reaches the same transaction), its Route, Max-Forwards."""
    cseq = request.cseq
    assert cseq is not None
    fields = [HeaderField("Via", request.via[0].render(), None, [request.via[0]])]
    for key in ("max-forwards", "route", "to", "from", "call-id"):
        fields.extend(request.get_fields(key))
    fields.append(HeaderField("CSeq", f"{cseq.seq} CANCEL", None, CSeq(cseq.seq, "CANCEL")))
    fields.append(HeaderField("Content-Length", "0"))
    return Request("CANCEL", request.uri, fields, b"", request.version)


def stateless_branch(request: Request) -> str:
    """§16.11: a stateless proxy's branch is the same for every retransmission of a request: the loop
    hash (an ACK for a 2xx carries the To tag the INVITE lacked, so it differs from the INVITE's)."""
    return f"{MAGIC_COOKIE}{loop_hash(request)}.0"


def routed_ack(request: Request, policy: ProxyPolicy) -> Request | None:
    """§16.11 for the ACK of a 2xx: forwarded statelessly along the route set it carries, or None when
    it did not come on our Record-Route (an ACK is never challenged, so it is never relayed)."""
    if validate(request, policy) is not None:
        return None
    loop = loop_hash(request)
    routed, popped = preprocess_routes(request, policy)
    if not popped and not routed.route:
        return None
    plan = Plan(routed, ((Target(routed.uri),),), loop, True)
    return forward_request(plan, Target(routed.uri), policy, 0)

