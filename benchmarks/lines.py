"""The parser's cold path, line by line: µs per header line never seen before (``_read_line``).

    python benchmarks/lines.py [--count N]

Each shape is read ``--count`` times with a fresh number in it (a fresh user, tag, branch, Call-ID or CSeq),
as in the SIPp benchmarks: every From has a fresh user and tag, a REGISTER's To and Contact rotate over
more users than the line memo keeps, and SIPp's UAS joins its Vias on one line. The first line of a
shape teaches its template (rulings R22); the rest are read through it.
"""

from __future__ import annotations

import argparse
import time

from sipactors.message import prepare
from sipactors.message.message import _read_line, clear_memos

SHAPES = (
    "From: <sip:m{n}@127.0.0.1>;tag=1m{n}",
    "To: <sip:uas@127.0.0.1>;tag=u{n}",
    "Call-ID: {n}-1@127.0.0.1",
    "Contact: <sip:u{n}@127.0.0.1:5100>",
    "To: <sip:u{n}@127.0.0.1>",
    "Via: SIP/2.0/UDP 127.0.0.1:5100;branch=z9hG4bK-1-{n}-0",
    "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK{n}abc,SIP/2.0/UDP 127.0.0.1:5100;branch=z9hG4bK-1-{n}-0",
    "CSeq: {n} MESSAGE",
    "Expires: {n}",
)


def per_line(shape: str, count: int) -> float:
    lines = [shape.format(n=n) for n in range(count)]
    start = time.perf_counter()
    for line in lines:
        _read_line(line)
    return 1e6 * (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args()
    prepare()
    for shape in SHAPES:
        clear_memos()
        print(f"{per_line(shape, args.count):6.1f} µs  {shape}")


if __name__ == "__main__":
    main()
