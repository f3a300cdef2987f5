"""Presence fan-out over real UDP: one presentity, N watchers, the time from a PUBLISH to the last NOTIFY.

    python benchmarks/fanout.py [--watchers 1000] [--rounds 3] [--server-cpu 1] [--client-cpu 0]
    python benchmarks/fanout.py --watchers 10000 --rounds 0     # memory for 10,000 live subscriptions

Issue 5's target: 1,000 watchers, PUBLISH to the last NOTIFY sent in under a second. The benchmark starts
``sipactors serve`` (a fresh SQLite store, ``--no-dns``, pinned to one core) with a rule letting every
watcher of 127.0.0.1 see alice (``sipactors presence allow alice '*@127.0.0.1'``), subscribes N watchers
(w1..wN, each its own dialog, all on a few UDP sockets of this process, pinned to another core), waits for
each one's first NOTIFY, then PUBLISHes alice's state and times until every watcher has a NOTIFY carrying
it. NOTIFYs are answered 200 from their own bytes (no parsing), so the client costs little next to the
server. The figure is measured at the receivers: it includes loopback delivery, which is microseconds.
The server's resident memory is printed before the first SUBSCRIBE and once every watcher is subscribed.
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOCKETS = 8  # watchers share a few sockets, as users behind one edge proxy would
_HEAD = re.compile(rb"^(Via|From|To|Call-ID|CSeq):[^\r]*\r\n", re.M | re.I)

PIDF = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@127.0.0.1">'
    '<tuple id="t1"><status><basic>{basic}</basic></status><note>{note}</note></tuple></presence>'
)


def _ok(notify: bytes) -> bytes:
    """The 200 to a NOTIFY: its Via, From, To, Call-ID and CSeq lines (RFC 3261 §8.2.6.2), no parsing."""
    head = notify.split(b"\r\n\r\n", 1)[0]
    return b"SIP/2.0 200 OK\r\n" + b"".join(m.group(0) for m in _HEAD.finditer(head + b"\r\n")) + b"Content-Length: 0\r\n\r\n"


def _call_id(data: bytes) -> bytes:
    match = re.search(rb"\r\n(?:Call-ID|i):[ \t]*([^\r]+)", data, re.I)
    return match.group(1) if match else b""


def _start_server(folder: Path, port: int, cpu: str) -> subprocess.Popen[bytes]:
    store = f"sqlite:///{folder / 'fanout.db'}"
    cli = [sys.executable, "-m", "sipactors"]
    subprocess.run([*cli, "presence", "allow", "sip:alice@127.0.0.1", "*@127.0.0.1", "--store", store],
                   check=True, capture_output=True)
    command = [*cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--store", store, "--no-dns"]
    if cpu:
        command = ["taskset", "-c", cpu, *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    for _ in range(40):
        line = process.stdout.readline().decode()
        if line.startswith("allow:") or not line:
            break
    return process


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=5085)
    parser.add_argument("--server-cpu", default="1")
    parser.add_argument("--client-cpu", default="0")
    args = parser.parse_args()
    if args.client_cpu:
        os.sched_setaffinity(0, {int(args.client_cpu)})
    server = ("127.0.0.1", args.port)
    with tempfile.TemporaryDirectory() as folder:
        process = _start_server(Path(folder), args.port, args.server_cpu)
        sockets = []
        selector = selectors.DefaultSelector()
        try:
            for _ in range(SOCKETS):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind(("127.0.0.1", 0))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
                sockets.append(sock)
            seen: dict[bytes, bytes] = {}  # Call-ID -> body of the latest NOTIFY
            before = _rss_mb(process.pid)

            def pump(until: float, done: object) -> None:
                while time.perf_counter() < until and not done():  # type: ignore[operator]
                    for key, _ in selector.select(0.05):
                        sock = key.fileobj
                        assert isinstance(sock, socket.socket)
                        while True:
                            try:
                                data, peer = sock.recvfrom(65536)
                            except BlockingIOError:
                                break
                            if data.startswith(b"NOTIFY"):
                                sock.sendto(_ok(data), peer)
                                seen[_call_id(data)] = data.split(b"\r\n\r\n", 1)[1]

            def subscribe(n: int) -> None:
                sock = sockets[n % SOCKETS]
                local = sock.getsockname()[1]
                sock.sendto((
                    f"SUBSCRIBE sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bKs{n}\r\n"
                    f"Max-Forwards: 70\r\nFrom: <sip:w{n}@127.0.0.1>;tag=w{n}\r\nTo: <sip:alice@127.0.0.1>\r\n"
                    f"Call-ID: fan{n}@127.0.0.1\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:w{n}@127.0.0.1:{local}>\r\n"
                    "Event: presence\r\nAccept: application/pidf+xml\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n"
                ).encode(), server)

            started = time.perf_counter()
            for n in range(1, args.watchers + 1):
                subscribe(n)
                if n % 50 == 0:  # paced, as many UAs would be: the server's receive buffer is not a queue
                    pump(time.perf_counter() + 0.05, lambda: False)
            for _ in range(60):  # a watcher not yet answered retransmits its SUBSCRIBE (RFC 3261 §17.1.2.2)
                pump(time.perf_counter() + 1.0, lambda: len(seen) >= args.watchers)
                if len(seen) >= args.watchers:
                    break
                for n in range(1, args.watchers + 1):
                    if f"fan{n}@127.0.0.1".encode() not in seen:
                        subscribe(n)
            subscribed = time.perf_counter() - started
            after = _rss_mb(process.pid)
            print(f"{len(seen)} of {args.watchers} watchers subscribed in {subscribed:.1f} s (first NOTIFY received); server resident "
                  f"memory {before:.0f} MB before, {after:.0f} MB after: {(after - before) * 1024 / max(len(seen), 1):.1f} KB "
                  "per subscription")
            publisher = sockets[0]
            etag = None
            for round_ in range(1, args.rounds + 1):
                note = f"round {round_}"
                body = PIDF.format(basic="open" if round_ % 2 else "closed", note=note).encode()
                condition = f"SIP-If-Match: {etag}\r\n" if etag else ""
                started = time.perf_counter()
                publisher.sendto((
                    f"PUBLISH sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{publisher.getsockname()[1]};"
                    f"branch=z9hG4bKp{round_}\r\nMax-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=p\r\n"
                    f"To: <sip:alice@127.0.0.1>\r\nCall-ID: publish@127.0.0.1\r\nCSeq: {round_} PUBLISH\r\n"
                    f"Event: presence\r\nExpires: 3600\r\n{condition}Content-Type: application/pidf+xml\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode() + body, server)
                marker = note.encode()
                pump(started + 30, lambda m=marker: sum(1 for b in seen.values() if m in b) >= args.watchers)
                elapsed = time.perf_counter() - started
                got = sum(1 for b in seen.values() if marker in b)
                print(f"round {round_}: {got} of {args.watchers} NOTIFYs with the new state in {elapsed * 1000:.0f} ms")
                etag = None  # each round publishes afresh: a new publication replaces nothing, the composition changes
        finally:
            for sock in sockets:
                sock.close()
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
