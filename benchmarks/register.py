"""REGISTER as ``sipactors serve`` handles it, in one process: CPU time per REGISTER, no sockets.

    python benchmarks/register.py [--count N] [--users N] [--profile]

The server's own wiring (transaction layer, core, registrar with its binding actors, the SQLite store and
its group committer on a writer thread) receives the bytes of the bench harness's REGISTER
(``../shared/bench/scenarios/register.xml``: one user per REGISTER, a fresh Call-ID each time, so after
the first round every REGISTER replaces a binding), then the virtual clock runs on until every
transaction has ended (Timer J). The figure is process CPU time (every thread), which is what a server
pinned to one core spends, without the sockets' system calls: the SIPp anchor's rate is below its inverse.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import queue
import tempfile
import time
from pathlib import Path
from typing import Any

from sipactors.frozen import speed_up_all
from sipactors.message import prepare
from sipactors.roles.core import Core
from sipactors.roles.digest import Authenticator, DigestPolicy
from sipactors.roles.registrar import Registrar, RegistrarPolicy
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.runtime.transaction import TransactionLayer
from sipactors.store import open_store
from sipactors.store.commit import committer_for

TEMPLATE = (
    "REGISTER sip:127.0.0.1:5080 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5100;branch=z9hG4bK-{pid}-{n}-0\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:u{user}@127.0.0.1>;tag={pid}r{n}\r\n"
    "To: <sip:u{user}@127.0.0.1>\r\n"
    "Call-ID: {n}-{pid}@127.0.0.1\r\n"
    "CSeq: 1 REGISTER\r\n"
    "Contact: <sip:u{user}@127.0.0.1:5100>\r\n"
    "Expires: 3600\r\n"
    "User-Agent: sipp-bench\r\n"
    "Content-Length: 0\r\n\r\n"
)


#: Virtual time after the last REGISTER in which every transaction ends (Timer J = 64*T1 = 32 s).
ENDING_MS = 40_000


class Wire:
    """The UDP transport's part the layer uses: counts what it would send."""

    reliable = False
    name = "UDP"

    def __init__(self) -> None:
        self.sent = 0

    def send(self, data: bytes, destination: Any) -> None:
        self.sent += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=200, help="REGISTERs received before the scheduler runs")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    args = parser.parse_args()
    scheduler = ManualScheduler()
    set_default_scheduler(scheduler)
    answers: queue.SimpleQueue[Any] = queue.SimpleQueue()  # the writer's batches, run as the scheduler thread would
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"sqlite:///{Path(folder) / 'bench.db'}")
        committer = committer_for(store, answers.put)
        registrar = Registrar(
            store, RegistrarPolicy(frozenset({"127.0.0.1", "localhost"})),
            Authenticator(b"k" * 32, DigestPolicy()), time.time, lambda n: b"\0" * n, committer=committer,
        )
        wire = Wire()
        layer = TransactionLayer(wire, Core("sipactors", registrar), scheduler)
        datagrams = [TEMPLATE.format(pid=4242, n=n, user=1 + n % args.users).encode() for n in range(args.count)]
        prepare()
        speed_up_all()
        source = ("127.0.0.1", 5100)
        profile = cProfile.Profile() if args.profile else None
        started, cpu = time.perf_counter(), time.process_time()
        if profile is not None:
            profile.enable()
        for first in range(0, len(datagrams), args.batch):
            for data in datagrams[first:first + args.batch]:
                layer.receive(data, source, wire)
            scheduler.run_until_idle()
            while wire.sent < first + args.batch and wire.sent < args.count:
                answers.get()()  # blocks, as the scheduler thread waits in select
                scheduler.run_until_idle()
        handled = time.process_time()
        scheduler.advance(ENDING_MS)  # every transaction ends (Timer J), as 32 s later in a server
        if profile is not None:
            profile.disable()
        elapsed, ending, cpu = time.perf_counter() - started, time.process_time() - handled, time.process_time() - cpu
        committer.close()
        store.close()
    print(f"{args.count:,} REGISTERs ({args.users:,} users) answered: {wire.sent:,} responses")
    print(f"{elapsed:.2f} s wall, {cpu:.2f} s CPU: {1e6 * cpu / args.count:.0f} µs CPU per REGISTER "
          f"({args.count / cpu:,.0f}/s on one core), of which {1e6 * ending / args.count:.0f} µs ending its transaction")
    if profile is not None:
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
