"""``sipactors serve``: UDP and TCP listeners, the transaction layer on a scheduler thread, and the core TU.

Start-up builds the parsers and tunes the garbage collector (``sipactors.message.prepare``), prints a
banner naming every listener, and runs until SIGINT or SIGTERM, then closes the sockets and stops the
scheduler. ``--trace FILE`` writes one JSON line per message in or out and per state transition.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sipactors import __version__
from sipactors.frozen import speed_up_all
from sipactors.message import NameAddr, SipURI, prepare
from sipactors.roles.authorization import WatcherRules
from sipactors.roles.core import Core
from sipactors.roles.digest import Authenticator, DigestPolicy
from sipactors.roles.events import Authorization, NotifierHandle
from sipactors.roles.messaging import MessagingPolicy
from sipactors.roles.presence import PresencePackage
from sipactors.roles.proxy import DEFAULT_AUTH_METHODS, TIMER_C_MS, Listener, ProxyPolicy, ProxyRole
from sipactors.roles.publish import PublishPolicy
from sipactors.roles.registrar import Registrar, RegistrarPolicy
from sipactors.roles.rls import (
    ListConfig,
    ListHandle,
    ListPackage,
    apply_lists,
    lists_from_config,
    local_domains,
)
from sipactors.roles.winfo import WatchedPackage, WatcherList, WinfoPackage
from sipactors.routing import apply_routing_config, build_dialplan, build_resolver, routing_banner
from sipactors.runtime import ThreadScheduler, set_default_scheduler
from sipactors.runtime.collector import pace_collector
from sipactors.runtime.messaging import Messaging
from sipactors.runtime.proxy import Proxy
from sipactors.runtime.rules import RulesPoller
from sipactors.runtime.subscription import Notifier
from sipactors.runtime.transaction import TransactionLayer, stateless_400
from sipactors.store import DEFAULT_STORE_URL, check_store_url, open_store
from sipactors.store.commit import committer_for
from sipactors.store.model import Binding, without_port
from sipactors.store.rules import Rule, RuleStore, canonical_presentity, canonical_watcher, parse_action
from sipactors.transport import Address, TcpTransport, UdpTransport

__all__ = [
    "PresenceService", "ServerConfig", "apply_presence_rules", "load_config", "presence_package", "presence_service", "serve",
    "watcher_rules",
]

log = logging.getLogger("sipactors.server")


@dataclass
class ServerConfig:
    """What ``serve`` needs; every field has a default so that no configuration file is needed."""

    listeners: list[tuple[str, str, int]] = field(default_factory=lambda: [("udp", "127.0.0.1", 5060), ("tcp", "127.0.0.1", 5060)])
    trace: str | None = None
    server_name: str = f"sipactors/{__version__}"
    store: str = DEFAULT_STORE_URL  # where registrations and users live (sipactors.store.open_store)
    domains: list[str] = field(default_factory=list)  # local domains beside localhost and the listening addresses
    min_expires: int = 60  # RFC 3261 §10.3 step 7: shorter registrations get 423 Interval Too Brief
    max_expires: int = 7200  # longer ones are shortened to this
    #: digest algorithms offered, in order of preference (RFC 7616 §3.7, RFC 8760 §2.4: SHA-256 first)
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    record_route: bool = True  # the proxy stays on the path of the dialogs it sets up (RFC 3261 §16.6 step 4)
    recurse: bool = False  # the proxy follows 3xx contacts itself rather than passing the 3xx back (§16.7 step 4)
    timer_c: float = TIMER_C_MS / 1000  # seconds an INVITE branch may stay unanswered (§16.6 step 11: > 180)
    auth_methods: tuple[str, ...] = tuple(sorted(DEFAULT_AUTH_METHODS))  # challenged (407) from local users
    # next hops and gateways (sipactors.routing: build_resolver, build_dialplan)
    dns_enabled: bool = True  # False: --no-dns; names outside ``hosts`` fail at once (404)
    dns_nameservers: list[str] = field(default_factory=list)  # empty: those of /etc/resolv.conf
    dns_timeout: float = 2.0  # seconds to wait for each answer
    dns_attempts: int = 2  # rounds over the nameservers before a lookup fails (503)
    hosts: dict[str, list[str]] = field(default_factory=dict)  # name -> ["address[:port]", ...], before DNS
    dialplan: list[dict[str, Any]] = field(default_factory=list)  # [[dialplan]] tables (roles/dialplan.py)
    # watcher authorization (roles/authorization.py): [[presence.rule]] (presentity, watcher, action), written
    # into the store at start; [presence] default_rule applies when no rule does (RFC 5025 §3.2.1 names)
    presence_rules: list[Rule] = field(default_factory=list)
    presence_default: Authorization = Authorization.PENDING
    presence_lists: list[ListConfig] = field(default_factory=list)  # [[presence.list]]: RFC 4662 lists, put in the store at start
    messaging: MessagingPolicy = field(default_factory=MessagingPolicy)  # [messaging]: 413 limit, store-and-forward


def load_config(
    path: Path | None, host: str | None, port: int | None, trace: str | None, store: str | None = None,
    no_dns: bool = False,
) -> ServerConfig:
    """The configuration file (TOML), then the command line: ``--host``/``--port`` bind both transports,
    ``--no-dns`` turns DNS off whatever ``[dns] enabled`` says."""
    config = ServerConfig()
    if path is not None:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        apply_routing_config(config, data, path)
        server = data.get("server", {})
        listeners = data.get("listen", [])
        if listeners:
            config.listeners = [(str(item.get("transport", "udp")).lower(), str(item.get("host", "127.0.0.1")), int(item.get("port", 5060))) for item in listeners]
        registrar = data.get("registrar", {})
        config.domains = [str(domain) for domain in registrar.get("domains", config.domains)]
        config.min_expires = int(registrar.get("min_expires", config.min_expires))
        config.max_expires = int(registrar.get("max_expires", config.max_expires))
        auth = data.get("auth", {})
        config.digest_algorithms = tuple(str(name) for name in auth.get("algorithms", config.digest_algorithms))
        try:
            DigestPolicy(algorithms=config.digest_algorithms)
        except (ValueError, KeyError) as error:
            raise SystemExit(f"sipactors serve: {path}: [auth] algorithms: {error}") from None
        proxy = data.get("proxy", {})
        config.record_route = bool(proxy.get("record_route", config.record_route))
        config.recurse = bool(proxy.get("recurse", config.recurse))
        config.timer_c = float(proxy.get("timer_c", config.timer_c))
        config.auth_methods = tuple(str(name).upper() for name in proxy.get("auth_methods", config.auth_methods))
        if config.timer_c <= 180:
            raise SystemExit(f"sipactors serve: {path}: [proxy] timer_c must be above 180 seconds (RFC 3261 §16.6 step 11)")
        if {"ACK", "CANCEL"} & set(config.auth_methods):
            raise SystemExit(f"sipactors serve: {path}: [proxy] auth_methods: ACK and CANCEL are never challenged (RFC 3261 §22.1)")
        _presence_config(config, data.get("presence", {}), path)
        try:
            config.presence_lists = lists_from_config(data)
        except ValueError as error:
            raise SystemExit(f"sipactors serve: {path}: {error}") from None
        messaging = data.get("messaging", {})
        try:
            config.messaging = MessagingPolicy(
                max_size=int(messaging.get("max_size", config.messaging.max_size)),
                max_stored=int(messaging.get("max_stored", config.messaging.max_stored)),
                stored_for=float(messaging.get("stored_for", config.messaging.stored_for)),
            )
        except ValueError as error:
            raise SystemExit(f"sipactors serve: {path}: [messaging]: {error}") from None
        config.trace = server.get("trace", config.trace)
        config.server_name = server.get("name", config.server_name)
        try:  # a bad URL is reported now, before any listener starts, not when the registrar first writes
            config.store = check_store_url(str(server.get("store", config.store)))
        except ValueError as error:
            raise SystemExit(f"sipactors serve: {path}: {error}") from None
    if host is not None or port is not None:
        config.listeners = [
            (transport, host if host is not None else old_host, port if port is not None else old_port)
            for transport, old_host, old_port in config.listeners
        ]
    if trace is not None:
        config.trace = trace
    if no_dns:
        config.dns_enabled = False
    if store is not None:
        try:
            config.store = check_store_url(store)
        except ValueError as error:
            raise SystemExit(f"sipactors serve: --store: {error}") from None
    return config


def _presence_config(config: ServerConfig, presence: dict[str, Any], path: Path) -> None:
    """``[presence] default_rule`` and the ``[[presence.rule]]`` tables; a bare name takes the one domain of
    ``[registrar] domains`` when there is exactly one (as ``sipactors presence`` takes the users' domain)."""
    default_domain = config.domains[0] if len(config.domains) == 1 else None
    try:
        config.presence_default = parse_action(str(presence.get("default_rule", config.presence_default.value)))
        for number, rule in enumerate(presence.get("rule", []), 1):
            missing = {"presentity", "watcher", "action"} - set(rule)
            if missing:
                raise ValueError(f"rule {number} lacks {', '.join(sorted(missing))}")
            try:
                config.presence_rules.append(Rule(
                    canonical_presentity(str(rule["presentity"]), default_domain),
                    canonical_watcher(str(rule["watcher"]), default_domain), parse_action(str(rule["action"])),
                ))
            except ValueError as error:
                raise ValueError(f"rule {number}: {error}") from None
    except ValueError as error:
        raise SystemExit(f"sipactors serve: {path}: [presence]: {error}") from None


def apply_presence_rules(config: ServerConfig, rules: RuleStore) -> int:
    """Write the configured rules into the store (where ``sipactors presence`` sees and may change them
    until the next start); only the ones that differ, so an unchanged file does not move the revision.
    The number written."""
    written = 0
    for rule in config.presence_rules:
        if rules.lookup(rule.presentity, (rule.watcher,)).get(rule.watcher) is not rule.action:
            rules.set(rule.presentity, rule.watcher, rule.action)
            written += 1
    return written


def watcher_rules(config: ServerConfig, rules: RuleStore) -> WatcherRules:
    """The decisions the presence package asks for (``WatcherRules.decide``), with the configured default."""
    return WatcherRules(rules, config.presence_default)


def _advertised(host: str, config: ServerConfig) -> str:
    """The address the proxy writes in Via and Record-Route for a listener (RFC 3261 §16.6 steps 4, 8): the
    bound one, unless it is a wildcard, which nobody can send to: then the first configured domain, or
    the loopback address."""
    if host in ("0.0.0.0", "::"):
        return config.domains[0] if config.domains else ("127.0.0.1" if host == "0.0.0.0" else "::1")
    return host


def presence_package(
    store: Any, registrar: Registrar, domains: frozenset[str], rules: WatcherRules | None = None,
    notifier: NotifierHandle | None = None, trace: Any = None, clock: Callable[[], float] = time.time,
    entropy: Callable[[int], bytes] = os.urandom, ports: Sequence[int] = (),
) -> PresencePackage:
    """The ``presence`` event package (RFC 3856) and its PUBLISH compositor (RFC 3903) for ``domains``: its
    publications in ``store``, registration state from ``registrar`` (which tells it of every change), the
    registrar's digest authenticator and users, the watcher ``rules``. The notifier (RFC 6665) runs it as
    an ``EventPackage``; the package reports changes to ``notifier`` (or the one given later to ``attach``;
    for resource lists, the ``ListHandle``)."""
    def bindings(presentity: str, now: float) -> list[Binding]:
        """The presentity's devices: bindings of its AOR as registered with or without one of our ports
        (the resource drops the port: ``store.model.without_port``)."""
        found = list(registrar.bindings(presentity, now))
        for port in ports:
            found.extend(registrar.bindings(f"{presentity}:{port}", now))
        return sorted(found, key=Binding.order_key)

    package = PresencePackage(
        store.publications, PublishPolicy(domains), bindings, clock, entropy,
        authenticator=registrar.authenticator, users=store.users, rules=rules, notifier=notifier, trace=trace,
    )
    registrar.observers.append(lambda aor: package.registration_changed(without_port(aor)))
    return package


@dataclass
class PresenceService:
    """What ``presence_service`` wired: the presence package (the core hands it PUBLISH), the watcher list
    (RFC 3857), the handle packages report changes to (RFC 4662 lists in front of the notifier), the rules
    and their poller."""

    presence: PresencePackage
    watchers: WatcherList
    lists: ListHandle
    rules: WatcherRules
    poller: RulesPoller


def presence_service(
    store: Any, registrar: Registrar, notifier: Notifier, domains: frozenset[str], scheduler: Any,
    rules: WatcherRules, *, trace: Any = None, clock: Callable[[], float] = time.time,
    entropy: Callable[[int], bytes] = os.urandom, ports: Sequence[int] = (),
) -> PresenceService:
    """Presence (RFC 3856) wired into ``notifier`` as ``serve`` runs it: PUBLISH for local presentities (RFC
    3903), publications restored (on ``scheduler``, before any request) with the time they have left;
    resource lists (RFC 4662) in front of it; watcher information (RFC 3857) beside it; the watcher
    ``rules`` of the store, re-read within a second of ``sipactors presence`` changing them. The
    simulation tests call it too, with a virtual ``clock``, so that they run this wiring."""
    presence = presence_package(store, registrar, domains, rules, trace=trace, clock=clock, entropy=entropy, ports=ports)
    scheduler.call_later(0, presence.restore)
    lists_handle = ListHandle()
    presence.attach(lists_handle)  # a presentity's change reaches its watchers and the lists holding it
    watchers = WatcherList(notifier, clock)
    notifier.register(ListPackage(WatchedPackage(presence, watchers), store.lists, lists_handle, local_domains(domains)))
    notifier.register(WinfoPackage(watchers, presence.resource_exists))
    lists_handle.attach(notifier)
    poller = RulesPoller(store.presence_rules, scheduler, lists_handle,
                         listeners=[lambda presentity: watchers.reconsider(presentity, rules.decide)])
    poller.start()
    return PresenceService(presence, watchers, lists_handle, rules, poller)


class _Trace:
    def __init__(self, out: TextIO | None) -> None:
        self.out = out

    def __call__(self, record: dict[str, Any]) -> None:
        if self.out is not None:
            self.out.write(json.dumps(record, default=str) + "\n")
            self.out.flush()


async def _run(config: ServerConfig, ready: asyncio.Event | None = None) -> None:
    loop = asyncio.get_running_loop()
    scheduler = ThreadScheduler()
    set_default_scheduler(scheduler)
    trace_file = open(config.trace, "a", encoding="utf-8") if config.trace else None  # noqa: SIM115 - closed below
    layer: TransactionLayer | None = None

    def soon(work: Callable[[], object]) -> None:  # first thing on the scheduler thread; its result is not needed
        def run() -> None:
            work()
        scheduler.call_later(0, run)

    def deliver(data: bytes, source: Address, transport: Any) -> None:  # TCP: from the loop's thread
        assert layer is not None
        receiving = layer
        scheduler.submit(lambda: receiving.receive(data, source, transport))

    def receive(data: bytes, source: Address, transport: Any) -> None:  # UDP: on the scheduler thread
        assert layer is not None
        layer.receive(data, source, transport)

    def too_large(data: bytes, source: Address, transport: Any) -> None:
        answer = stateless_400(data[: 64 * 1024], "Message Too Large", 513)
        if answer is not None:
            transport.send(answer, source)

    def refuse(head: bytes, reason: str) -> bytes | None:
        return stateless_400(head, reason) if head else None

    servers: list[Any] = []
    banner: list[str] = []
    udp: UdpTransport | None = None
    udp_listeners: list[UdpTransport] = []
    tcp: TcpTransport | None = None
    chosen_port: int | None = None
    listeners: list[Listener] = []
    for transport_name, host, port in sorted(config.listeners, key=lambda item: item[0] != "udp"):
        if port == 0 and chosen_port is not None:
            port = chosen_port  # --port 0: TCP takes the port the OS gave UDP
        if transport_name == "udp":
            protocol = UdpTransport(loop, receive, too_large)
            udp = udp or protocol  # the first UDP listener is the layer's default transport
            udp_listeners.append(protocol)
            def factory(made: UdpTransport = protocol) -> UdpTransport:
                return made

            endpoint, _ = await loop.create_datagram_endpoint(factory, local_addr=(host, port))
            servers.append(endpoint)
            bound = endpoint.get_extra_info("sockname")
        elif transport_name == "tcp":
            tcp = tcp or TcpTransport(loop, deliver, refuse)  # one set of connections for every TCP listener (RFC 5626 §5.3)
            server = await asyncio.start_server(tcp.handle, host, port, limit=16_384 * 2)
            servers.append(server)
            bound = server.sockets[0].getsockname()
        else:
            raise SystemExit(f"sipactors serve: unknown transport {transport_name!r} (udp or tcp)")
        chosen_port = chosen_port or bound[1]
        listeners.append(Listener(transport_name.upper(), _advertised(bound[0], config), bound[1]))
        banner.append(f"listening on {transport_name} {bound[0]}:{bound[1]}")
    if udp is None:
        raise SystemExit("sipactors serve: at least one UDP listener is needed (it is the layer's default)")
    store = open_store(config.store)
    apply_presence_rules(config, store.presence_rules)
    domains = frozenset(name.lower() for name in ["localhost", *config.domains, *(host for _, host, _ in config.listeners)])
    try:  # the configured presence lists, as written (RFC 4662: each list's members local presentities)
        apply_lists(store.lists, config.presence_lists, local_domains(domains))
    except ValueError as error:
        raise SystemExit(f"sipactors serve: [[presence.list]]: {error}") from None
    # REGISTERs are committed in groups on a writer thread, a group per turn of the scheduler's work; their
    # 200s go out from the scheduler thread.
    committer = committer_for(store, scheduler.submit, scheduler.at_turn_end)
    registrar = Registrar(
        store, RegistrarPolicy(domains, min_expires=config.min_expires, max_expires=config.max_expires),
        Authenticator(os.urandom(32), DigestPolicy(algorithms=config.digest_algorithms)), time.time, os.urandom,
        committer=committer, trace=_Trace(trace_file) if trace_file is not None else None,
    )
    soon(registrar.restore)  # one binding actor per stored binding, before any REGISTER
    proxy_policy = ProxyPolicy(
        domains, tuple(listeners), record_route=config.record_route, recurse_on_3xx=config.recurse,
        timer_c_ms=round(config.timer_c * 1000), auth_methods=frozenset(config.auth_methods),
    )
    # next hops per RFC 3263: the [hosts] table first, then DNS unless --no-dns; tel URIs by the dial plan
    resolver = build_resolver(config)
    proxy_role = ProxyRole(store, proxy_policy, registrar.authenticator, time.time, os.urandom, build_dialplan(config),
                           locations=registrar)  # the registrar's committed bindings, held in memory
    proxy = Proxy(proxy_role, resolver)
    # the notifier (RFC 6665) for local resources; no event package yet: every such SUBSCRIBE gets 489
    contact = next((item for item in listeners if item.transport == "UDP"), listeners[0])
    notifier = Notifier(
        store.subscriptions, NameAddr(SipURI("sip", contact.host, None, port=contact.port)), time.time,
        via_host=contact.host, via_port=contact.port, resolver=resolver, admit=proxy_role.admit_local,
        domain=proxy_policy, trace=_Trace(trace_file) if trace_file is not None else None,
    )
    # presence (RFC 3856), resource lists (RFC 4662), watcher information (RFC 3857), the rules poller
    stack = presence_service(store, registrar, notifier, domains, scheduler, watcher_rules(config, store.presence_rules),
                             trace=_Trace(trace_file) if trace_file is not None else None,
                             ports=sorted({listener.port for listener in listeners}))
    # MESSAGE: 413 over [messaging] max_size; stored (202) for a local user with no device, delivered on REGISTER
    messaging = Messaging(store, proxy, config.messaging, time.time)
    registrar.on_registered.append(messaging.registered)
    soon(messaging.restore)
    tu = Core(config.server_name, registrar, proxy, notifier, stack.presence, messaging)
    # no subscriber unless --trace: a record nobody reads still costs ~14 % of a call to build
    layer = TransactionLayer(udp, tu, scheduler, trace=_Trace(trace_file) if trace_file is not None else None)
    messaging.layer = layer
    if tcp is not None:  # the proxy forwards over TCP too (RFC 3263 §4.1 transport=tcp, bindings made over TCP)
        layer.transports[tcp.name] = tcp
    soon(lambda: notifier.restore(layer))  # the stored subscriptions, with the time they have left
    for protocol in udp_listeners:  # from now on the scheduler thread reads them (ThreadScheduler.watch)
        protocol.read_on(scheduler.watch)
    prepare()
    pace_collector(scheduler)  # brief young collections, not pauses of hundreds of ms under load
    speed_up_all()  # the frozen dataclasses' fast __init__ (sipactors/frozen.py)
    print(f"sipactors {__version__}: a SIP server (RFC 3261): OPTIONS, a registrar (RFC 3261 §10) and a stateful "
          f"forking proxy (RFC 3261 §16) for {', '.join(sorted(domains))}", flush=True)
    for line in banner:
        print(line, flush=True)
    print(f"store: {config.store}", flush=True)
    if registrar.open_mode:
        print("WARNING: no users in the store: the registrar is OPEN and accepts any registration for its "
              "domains. Add users with `sipactors users add USER@DOMAIN` to require digest authentication.",
              flush=True)
    else:
        print(f"registrar: digest authentication required (RFC 3261 §22; {', then '.join(config.digest_algorithms)})", flush=True)
    relay = ("forwarded for no one: no users, so no one can authenticate (403)" if registrar.open_mode else
             "forwarded only for authenticated local users (407)")
    print(f"proxy: record-route {'on' if config.record_route else 'off'}, 3xx {'recursed' if config.recurse else 'passed back'}, "
          f"Timer C {config.timer_c:g} s, 407 for local users' {', '.join(config.auth_methods)}; requests for other "
          f"domains {relay}", flush=True)
    print(routing_banner(config), flush=True)
    print(f"messaging: MESSAGE bodies up to {config.messaging.max_size} bytes (413 above); for a local user with no "
          f"device, stored (202, up to {config.messaging.max_stored} per user, {config.messaging.stored_for:g} s) and "
          "delivered when a device registers (RFC 3428 §7)", flush=True)
    # The handlers go in before the last banner line: whoever waits for it (a test, a script) may send
    # SIGTERM at once, and must find it handled (the default action would kill the process uncleanly).
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"allow: {', '.join(tu.allow)}; trace: {config.trace or 'off'}; stop with Ctrl-C or SIGTERM", flush=True)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        print("sipactors: stopping", flush=True)
        # What already arrived is handled first: a peer's last datagram before it went away (the 200 that
        # ends a stored MESSAGE's delivery, a REGISTER) is in the socket's buffer, not lost to the stop.
        if not scheduler.drain(timeout=2.0):  # bounded: a flood does not keep it from stopping
            log.warning("stopping with work still arriving 2 s after the stop began")
        for server in servers:
            server.close()
        scheduler.stop()  # no REGISTER is decided any more; then what was submitted is committed
        proxy.close()
        notifier.close()
        committer.close()
        set_default_scheduler(None)
        store.close()
        if trace_file is not None:
            trace_file.close()


def serve(config: ServerConfig) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # transitions logs every state change and callback at INFO: eight stderr lines per OPTIONS, which
    # cost a third of the server's CPU time per OPTIONS (measured under SIPp) and say less than --trace
    logging.getLogger("transitions").setLevel(logging.WARNING)
    try:
        asyncio.run(_run(config))
    except OSError as error:
        print(f"sipactors serve: {error}", file=sys.stderr)
        return 1
    return 0
