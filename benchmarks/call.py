"""Calls through the stateful proxy as ``sipactors serve`` handles them, in one process: CPU time per call.

    python benchmarks/call.py [--count N] [--profile] [--message]

The bench harness's call (``../shared/bench/scenarios/uac_call.xml`` against ``uas.xml``): INVITE → 100,
180, 200 (Record-Route) → ACK → BYE → 200, every message through the server's wiring (transaction layer,
core, registrar holding the UAS's binding, proxy with Record-Route, the resolver of ``--no-dns``), with no
sockets. The UAS's answers are made from the bytes the proxy forwarded by copying header lines (cheap next to
the server's work); after the last call the virtual clock runs on until every transaction has ended (its
timers fire 32 s later in a server: part of what a call costs). The figure is process CPU time: what a
server pinned to one core spends on a call, without the sockets' system calls.

``--message`` times the bench's page-mode MESSAGE instead (``message.xml``: MESSAGE → 200 through the proxy,
with the server's messaging role in front of it, as ``sipactors serve`` has it).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sipactors.frozen import speed_up_all
from sipactors.message import prepare
from sipactors.roles.core import Core
from sipactors.roles.digest import Authenticator, DigestPolicy
from sipactors.roles.messaging import MessagingPolicy
from sipactors.roles.proxy import Listener, ProxyPolicy, ProxyRole
from sipactors.roles.registrar import Registrar, RegistrarPolicy
from sipactors.routing import build_dialplan, build_resolver
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.runtime.messaging import Messaging
from sipactors.runtime.proxy import Proxy
from sipactors.runtime.transaction import TransactionLayer
from sipactors.server import ServerConfig
from sipactors.store import open_store
from sipactors.store.commit import InlineCommitter

SERVER = ("127.0.0.1", 5080)
UAC = ("127.0.0.1", 5100)
UAS = ("127.0.0.1", 5090)
SDP = b"v=0\r\no=uac 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
INVITE = (
    "INVITE sip:uas@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5100;branch=z9hG4bK-1-{n}-0\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:c{n}@127.0.0.1>;tag=1c{n}\r\nTo: <sip:uas@127.0.0.1>\r\n"
    "Call-ID: {n}-1@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:c{n}@127.0.0.1:5100>\r\nSubject: bench\r\n"
    "Content-Type: application/sdp\r\nContent-Length: " + str(len(SDP)) + "\r\n\r\n"
)
IN_DIALOG = (
    "{method} sip:uas@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5100;branch=z9hG4bK-1-{n}-{seq}\r\n"
    "Route: <sip:127.0.0.1:5080;lr>\r\nMax-Forwards: 70\r\nFrom: <sip:c{n}@127.0.0.1>;tag=1c{n}\r\n"
    "To: <sip:uas@127.0.0.1>;tag=u{n}\r\nCall-ID: {n}-1@127.0.0.1\r\nCSeq: {seq} {method}\r\nContent-Length: 0\r\n\r\n"
)
MESSAGE = (
    "MESSAGE sip:uas@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5100;branch=z9hG4bK-1-{n}-0\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:m{n}@127.0.0.1>;tag=1m{n}\r\nTo: <sip:uas@127.0.0.1>\r\n"
    "Call-ID: {n}-1@127.0.0.1\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: {length}\r\n\r\n{text}"
)
_ANSWERED = (b"record-route:", b"from:", b"to:", b"call-id:", b"cseq:")


class Wire:
    reliable = False
    name = "UDP"

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def send(self, data: bytes, destination: Any) -> None:
        self.sent.append((data, destination))

    def take(self, destination: Any) -> list[bytes]:
        mine = [data for data, where in self.sent if where == destination]
        self.sent = [(data, where) for data, where in self.sent if where != destination]
        return mine


def answer(request: bytes, status: str, n: int, contact: bool = False, sdp: bool = False) -> bytes:
    """The UAS's response to a forwarded request as SIPp's ``uas.xml`` makes it: its Vias on one line
    (``[last_Via:]`` joins them with commas), Record-Route, From, To (tagged), Call-ID, CSeq, then
    Contact and the SDP where the scenario has them."""
    head = request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    vias = [line.split(b":", 1)[1].strip() for line in head if line[:4].lower() == b"via:"]
    lines = [b"SIP/2.0 " + status.encode(), b"Via: " + b", ".join(vias)]
    for line in head:
        lowered = line[:14].lower()
        if lowered.startswith(_ANSWERED):
            if lowered.startswith(b"to:") and b"tag=" not in line:
                line += b";tag=u%d" % n
            lines.append(line)
    if contact:
        lines.append(b"Contact: <sip:uas@127.0.0.1:5090>")
    if sdp:
        lines += [b"Content-Type: application/sdp", b"Content-Length:   %d" % len(SDP)]
        return b"\r\n".join(lines) + b"\r\n\r\n" + SDP
    lines.append(b"Content-Length: 0")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=100, help="calls in flight together")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    parser.add_argument("--trace", action="store_true", help="with a trace subscriber that drops every record")
    parser.add_argument("--message", action="store_true", help="page-mode MESSAGEs instead of calls")
    args = parser.parse_args()
    scheduler = ManualScheduler()
    set_default_scheduler(scheduler)
    config = ServerConfig(dns_enabled=False)
    domains = frozenset({"127.0.0.1", "localhost"})
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{Path(folder) / 'bench.db'}")
        registrar = Registrar(
            store, RegistrarPolicy(domains), Authenticator(b"k" * 32, DigestPolicy()), time.time,
            lambda n: b"\0" * n, committer=InlineCommitter(store.locations),
        )
        policy = ProxyPolicy(domains, (Listener("UDP", "127.0.0.1", 5080),), record_route=True)
        proxy = Proxy(
            ProxyRole(store, policy, registrar.authenticator, time.time, lambda n: b"\0" * n, build_dialplan(config),
                      locations=registrar),
            build_resolver(config),
        )
        wire = Wire()
        messaging = Messaging(store, proxy, MessagingPolicy(), time.time)
        registrar.on_registered.append(messaging.registered)
        layer = TransactionLayer(wire, Core("sipactors", registrar, proxy, messaging=messaging), scheduler)
        messaging.layer = layer
        if args.trace:
            layer.subscribe(lambda record: None)
        layer.receive(
            b"REGISTER sip:127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKreg\r\n"
            b"Max-Forwards: 70\r\nFrom: <sip:uas@127.0.0.1>;tag=r\r\nTo: <sip:uas@127.0.0.1>\r\nCall-ID: reg\r\n"
            b"CSeq: 1 REGISTER\r\nContact: <sip:uas@127.0.0.1:5090>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n",
            UAS, wire,
        )
        scheduler.run_until_idle()
        assert b"200 OK" in wire.take(UAS)[0], "the UAS did not register"
        if args.message:
            message_loop(args, layer, scheduler, wire)
            store.close()
            return
        invites = [INVITE.format(n=n).encode() + SDP for n in range(args.count)]
        acks = [IN_DIALOG.format(method="ACK", n=n, seq=1).encode() for n in range(args.count)]
        byes = [IN_DIALOG.format(method="BYE", n=n, seq=2).encode() for n in range(args.count)]

        def one_batch(first: int) -> int:
            calls = range(first, min(first + args.batch, args.count))
            for n in calls:
                layer.receive(invites[n], UAC, wire)
            scheduler.run_until_idle()
            forwarded = wire.take(UAS)
            for n, invite in zip(calls, forwarded, strict=True):
                layer.receive(answer(invite, "180 Ringing", n, contact=True), UAS, wire)
                layer.receive(answer(invite, "200 OK", n, contact=True, sdp=True), UAS, wire)
            scheduler.run_until_idle()
            for n in calls:
                layer.receive(acks[n], UAC, wire)
                layer.receive(byes[n], UAC, wire)
            scheduler.run_until_idle()
            for request in wire.take(UAS):
                if request.startswith(b"BYE"):
                    layer.receive(answer(request, "200 OK", int(request.split(b"Call-ID: ")[1].split(b"-")[0])), UAS, wire)
            scheduler.run_until_idle()
            return sum(1 for data in wire.take(UAC) if data.startswith(b"SIP/2.0 200") and b"BYE" in data)

        timed(args, scheduler, one_batch, "calls (INVITE/100/180/200/ACK/BYE/200 through the proxy)", "BYEs answered 200", "call")
        store.close()


#: Virtual time after the last batch in which every transaction ends: Timers J, L, M and D are 64*T1 = 32 s.
ENDING_MS = 40_000


def timed(
    args: argparse.Namespace, scheduler: ManualScheduler, one_batch: Callable[[int], int], what: str, done: str, unit: str,
) -> None:
    """Run ``one_batch(first)`` over the count in batches, then the virtual clock on until every transaction
    has ended (its timers fire, its actor stops: work a server does for every request, 32 s later), on the
    clock (and under cProfile with --profile), and print the CPU time per ``unit``, the ending apart;
    ``one_batch`` says how many it saw completed."""
    prepare()
    speed_up_all()
    profile = cProfile.Profile() if args.profile else None
    completed = 0
    started, cpu = time.perf_counter(), time.process_time()
    if profile is not None:
        profile.enable()
    for first in range(0, args.count, args.batch):
        completed += one_batch(first)
    handled = time.process_time()
    scheduler.advance(ENDING_MS)
    if profile is not None:
        profile.disable()
    elapsed, ending, cpu = time.perf_counter() - started, time.process_time() - handled, time.process_time() - cpu
    print(f"{args.count:,} {what}: {completed:,} {done}")
    print(f"{elapsed:.2f} s wall, {cpu:.2f} s CPU: {1e6 * cpu / args.count:.0f} µs CPU per {unit} "
          f"({args.count / cpu:,.0f} {unit}s/s on one core), of which {1e6 * ending / args.count:.0f} µs "
          f"ending its transactions")
    if profile is not None:
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(50)


def message_loop(args: argparse.Namespace, layer: TransactionLayer, scheduler: ManualScheduler, wire: Wire) -> None:
    texts = [f"Hello from sipp-bench, message {n}." for n in range(args.count)]
    messages = [MESSAGE.format(n=n, length=len(text), text=text).encode() for n, text in enumerate(texts)]

    def one_batch(first: int) -> int:
        batch = range(first, min(first + args.batch, args.count))
        for n in batch:
            layer.receive(messages[n], UAC, wire)
        scheduler.run_until_idle()
        for n, forwarded in zip(batch, wire.take(UAS), strict=True):
            layer.receive(answer(forwarded, "200 OK", n), UAS, wire)
        scheduler.run_until_idle()
        return sum(1 for data in wire.take(UAC) if data.startswith(b"SIP/2.0 200"))

    timed(args, scheduler, one_batch, "MESSAGEs through the proxy", "answered 200", "MESSAGE")


if __name__ == "__main__":
    main()
