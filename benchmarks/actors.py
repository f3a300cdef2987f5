"""Live transaction actors: resident memory and creation rate (issue 3 target: 50,000 idle in Completed
under 300 MB in all, created at 10,000/s or more).

    python benchmarks/actors.py [--count N] [--parsed]

Each transaction is a real non-INVITE server transaction of the transaction layer, in simulation: the
request arrives, the TU answers 200, and the transaction sits in Completed with Timer J running.

The rate counts parsing each request and building and rendering its 200 as well as the layer's own work.
It is printed against wall time and against the process's CPU time: on a core shared with other work
the second is the steadier figure. All the datagrams are received before the scheduler runs, so the
resident memory is that burst's peak: every request parsed and waiting in its new actor's inbox (the
requests are freed once answered, but the allocator keeps their pages for what the transactions keep).

``--parsed`` parses every request before the clock starts and hands it to ``TransactionLayer.dispatch``:
the rate of the layer and its actors alone (creation, the TU's 200 built and rendered, Timer J started).
Its memory figure then also holds the parsed requests the benchmark keeps.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time
from typing import Any

from sipactors.message import parse, prepare
from sipactors.message.build import response_for
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.runtime.transaction import TransactionLayer


class Wire:
    reliable = False

    def send(self, data: bytes, destination: Any) -> None:
        pass


class Answer:
    def request(self, layer: TransactionLayer, key: Any, request: Any) -> None:
        layer.respond(key, response_for(request, 200, to_tag="t"))

    def response(self, *args: Any) -> None: ...
    def timeout(self, *args: Any) -> None: ...
    def transport_error(self, *args: Any) -> None: ...
    def ack(self, *args: Any) -> None: ...


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument(
        "--parsed", action="store_true",
        help="parse the requests before the clock starts: time the layer and its actors alone",
    )
    args = parser.parse_args()
    scheduler = ManualScheduler()
    set_default_scheduler(scheduler)
    layer = TransactionLayer(Wire(), Answer(), scheduler)
    template = (
        "OPTIONS sip:bob@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{0}\r\n"
        "Max-Forwards: 70\r\nTo: <sip:bob@192.0.2.2>\r\nFrom: <sip:alice@192.0.2.1>;tag={0}\r\n"
        "Call-ID: {0}@192.0.2.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    datagrams = [template.format(f"{i:08d}").encode() for i in range(args.count)]
    prepare()
    gc.collect()
    before = rss_mb()
    source = ("192.0.2.1", 5060)
    requests = [parse(data) for data in datagrams] if args.parsed else []
    started, cpu = time.perf_counter(), time.process_time()
    if args.parsed:
        for request in requests:
            layer.dispatch(request, source)
    else:
        for data in datagrams:
            layer.receive(data, source)
    scheduler.run_until_idle()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    after = rss_mb()
    states = {actor.tx.state for actor in layer.server.values()}
    print(f"{len(layer.server):,} live server transactions, states {sorted(states)}")
    print(f"created, answered and parked in {elapsed:.2f} s: {args.count / elapsed:,.0f} transactions/s "
          f"({cpu:.2f} s of CPU: {args.count / cpu:,.0f}/s)")
    print(f"resident memory {after:.0f} MB in all ({after - before:.0f} MB for the transactions, "
          f"{(after - before) * 1024 / args.count:.1f} KB each, request and response included)")
    scheduler.advance(64 * 500)
    print(f"after Timer J: {len(layer.server)} live")


if __name__ == "__main__":
    main()
