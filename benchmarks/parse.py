"""Parser throughput: messages/s for a realistic INVITE and a REGISTER, hot path and oracle, on one core.

    python benchmarks/parse.py [--seconds S]

The hot path is timed as a server uses it: ``parse`` validates the start line and every core header
(Via, From, To, Call-ID, CSeq, Max-Forwards, Contact, Content-Length, Route, Record-Route, Expires) and
computes the refusal flags. A Via, From or To read through a template (rulings R22) is validated then, but
its objects are built on first access: "warm + core values read" also reads the top Via's branch, the
From and To tags, the CSeq and the Call-ID, as a transaction layer and a UA core do. "validate all" adds
every other header. Each message gets a fresh branch, tag
and Call-ID, so the header lines that are unique per message in real traffic are parsed every time.

The hot path memoises what repeats verbatim between messages of one user agent (start line, name-addrs,
Via sent-by, whole core header lines; bounded, immutable): "warm" is that steady state; "cold" clears every
memo before each message, the cost for a message whose every line is new. The parsers are built and the
garbage collector tuned first (frozen start-up objects, a higher first-generation threshold), as
``sipactors.message.prepare()`` does for a server. Each figure is the median of
``--rounds`` rounds, because a shared machine's speed drifts from second to second.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from sipactors.message import parse, parse_oracle, prepare
from sipactors.message.message import clear_memos

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def variants(template: bytes, count: int) -> list[bytes]:
    """``count`` copies of a message with unique branch, tag and Call-ID (same length)."""
    out = []
    for index in range(count):
        tag = b"%08d" % index  # the same length as what it replaces
        out.append(
            template.replace(b"z9hG4bK776asdhds", b"z9hG4bK" + tag + b"a")
            .replace(b"z9hG4bKnashds7", b"z9hG4bK" + tag[:7])
            .replace(b"1928301774", tag + b"77")
            .replace(b"a84b4c76e66710", tag + b"e66710")
            .replace(b"843817637684230", tag + b"7684230")
        )
    return out


def rate(fn: Callable[[bytes], object], messages: list[bytes], seconds: float, rounds: int) -> float:
    """Median messages/s over ``rounds`` rounds of about ``seconds / rounds`` each (``BEST`` keeps the
    fastest round too: like ``timeit``'s minimum, the figure least disturbed by the rest of the machine)."""
    figures = []
    for _ in range(rounds):
        done = 0
        start = time.perf_counter()
        deadline = start + seconds / rounds
        while True:
            for message in messages:
                fn(message)
            done += len(messages)
            now = time.perf_counter()
            if now >= deadline:
                figures.append(done / (now - start))
                break
    BEST.append(max(figures))
    return statistics.median(figures)


BEST: list[float] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per figure")
    parser.add_argument("--rounds", type=int, default=9, help="rounds per figure (the median is printed)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    print(f"python {platform.python_version()} on {platform.machine()}, one core, {args.seconds:.0f} s per figure")

    def validate_all(data: bytes) -> None:
        parse(data).validate_all()

    def read_core(data: bytes) -> None:
        # what a transaction layer and a UA core read of every request: values read through a template are
        # built on first access (rulings R22), so "warm" alone does not pay for them
        message = parse(data)
        message.via[0].branch, message.from_.tag, message.to.tag, message.cseq.seq, message.call_id  # noqa: B018

    def cold(data: bytes) -> None:
        clear_memos()
        parse(data)

    for name in ("invite.sip", "register.sip"):
        template = (EXAMPLES / name).read_bytes()
        # More variants than the memos hold (2 x 4096 lines): the per-message lines are always new.
        messages = variants(template, 20000)
        parse(messages[0])
        parse_oracle(messages[0])  # build both parsers before timing
        prepare()  # as a server does at start-up: patterns built, long-lived objects out of the GC's way
        warm = rate(parse, messages, args.seconds, args.rounds)
        warm_best = BEST[-1]
        cold_rate = rate(cold, messages[:500], args.seconds, args.rounds)
        read = rate(read_core, messages, args.seconds, args.rounds)
        full = rate(validate_all, messages, args.seconds, args.rounds)
        oracle = rate(parse_oracle, messages[:100], args.seconds, args.rounds)
        print(
            f"{name:<13} {len(template):4d} B   hot path warm {warm:8,.0f}/s (best round {warm_best:,.0f})   "
            f"warm + core values read {read:8,.0f}/s   cold {cold_rate:8,.0f}/s   "
            f"validate all {full:8,.0f}/s   oracle {oracle:6,.0f}/s   warm/oracle {warm / oracle:5.1f}x"
        )


if __name__ == "__main__":
    main()
