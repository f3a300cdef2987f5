"""``sipactors serve`` with every cyclic garbage collection timed: where a server's latency spikes come from.

    python benchmarks/gcpauses.py --log /tmp/gc.txt serve --port 5080 --store sqlite:////tmp/gc.db --no-dns

Everything after ``--log FILE`` is ``sipactors``' own command line. Each collection of the middle or oldest
generation, and each young one that took over 2 ms, is one line of FILE: the monotonic time, the thread, the
generation, its wall and thread CPU time, how many objects it collected, and the young generation's size when
it began (counting them is part of the time shown). Drive the server with ``../shared/bench/run.sh`` at a
fixed rate and read the pauses beside SIPp's p99 (docs/performance.md, "The garbage collector's pauses").
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from typing import Any, TextIO


def _hook(out: TextIO) -> Any:
    started: dict[int, tuple[float, float, int]] = {}

    def timed(phase: str, info: dict[str, int]) -> None:
        generation = info["generation"]
        if phase == "start":
            started[generation] = (time.perf_counter(), time.thread_time(), len(gc.get_objects(0)))
            return
        wall, cpu, young = started.pop(generation, (time.perf_counter(), time.thread_time(), 0))
        wall_ms, cpu_ms = 1000 * (time.perf_counter() - wall), 1000 * (time.thread_time() - cpu)
        if generation > 0 or wall_ms > 2:
            out.write(f"{time.monotonic():.3f} {threading.current_thread().name} gen{generation} wall={wall_ms:.1f}ms "
                      f"cpu={cpu_ms:.1f}ms collected={info['collected']} young={young}\n")
            out.flush()

    return timed


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[1] != "--log":
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out = open(sys.argv[2], "w", encoding="utf-8")  # noqa: SIM115 - open for the process's life
    gc.callbacks.append(_hook(out))
    from sipactors.cli import main as sipactors

    return sipactors(sys.argv[3:])


if __name__ == "__main__":
    sys.exit(main())
