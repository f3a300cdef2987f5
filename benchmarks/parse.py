"""Parser throughput: messages/s for a realistic INVITE and a REGISTER, hot path and oracle, on one core.

    python benchmarks/parse.py [--seconds S]

The hot path is timed as a server uses it: ``parse`` validates the start line and every core header
(Via, From, To, Call-ID, CSeq, Max-Forwards, Contact, Content-Length, Route, Record-Route, Expires) and
computes the refusal flags. "validate all" adds every other header. Parser caches are cleared before each
run; each message gets a fresh branch, tag and Call-ID so that nothing can be memoised across messages.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

from sipactors.message import parse, parse_oracle

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def variants(template: bytes, count: int) -> list[bytes]:
    """``count`` copies of a message with unique branch, tag and Call-ID (same length)."""
    out = []
    for index in range(count):
        tag = b"%08d" % index
        out.append(
            template.replace(b"z9hG4bK776asdhds", b"z9hG4bK" + tag + b"a")
            .replace(b"z9hG4bKnashds7", b"z9hG4bK" + tag[:7])
            .replace(b"1928301774", tag + b"77")
            .replace(b"a84b4c76e66710", tag + b"e66710")
            .replace(b"843817637684230", tag + b"7684230")
        )
    return out


def rate(fn: Callable[[bytes], object], messages: list[bytes], seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for message in messages:
            fn(message)
        done += len(messages)
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    print(f"python {platform.python_version()} on {platform.machine()}, one core, {args.seconds:.0f} s per figure")

    def validate_all(data: bytes) -> None:
        parse(data).validate_all()

    for name in ("invite.sip", "register.sip"):
        template = (EXAMPLES / name).read_bytes()
        messages = variants(template, 2000)
        parse(messages[0])
        parse_oracle(messages[0])  # build both parsers before timing
        hot = rate(parse, messages, args.seconds)
        full = rate(validate_all, messages, args.seconds)
        oracle = rate(parse_oracle, messages[:200], args.seconds)
        print(
            f"{name:<13} {len(template):4d} B   hot path {hot:9,.0f}/s   hot path, validate all {full:9,.0f}/s   "
            f"oracle {oracle:7,.0f}/s   ratio {hot / oracle:5.1f}x"
        )


if __name__ == "__main__":
    main()
