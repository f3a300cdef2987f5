"""When CPython's cyclic garbage collector runs in a server: often and briefly, not seldom and long.

A server's live objects are mostly transactions waiting out their timers (a MESSAGE's server transaction lives
32 s for Timer J, RFC 3261 §17.2.2; its client transaction 5 s for Timer K, §17.1.2.2), and what it frees
is freed by reference counting: under load the young collections find nothing (measured: ``collected=0`` in
every one). CPython 3.11 counts allocations minus deallocations to decide when to collect, and the transactions
that end free as many objects as the new ones allocate, so the count hardly moves: the young generation grows to
hundreds of thousands of live objects before a collection, which then traverses all of them in one pause
(measured under SIPp at 2,000 MESSAGE/s: 150–320 ms every 2–3 s, enough for clients to retransmit).

``pace_collector`` moves what the collector has already looked at out of its generations every second
(``gc.freeze``, which costs nothing: it splices lists), so a young collection only ever sees the last second's
survivors; and every ``full_every_ms`` it gives everything back (``gc.unfreeze``) and collects it all, so a
reference cycle made meanwhile (an exception's traceback kept, say) is freed within that time rather than never.
"""

from __future__ import annotations

import gc

from sipactors.runtime.scheduler import Scheduler

__all__ = ["pace_collector"]


def pace_collector(scheduler: Scheduler, *, freeze_every_ms: float = 1_000, full_every_ms: float = 600_000) -> None:
    """Freeze what survived so far every ``freeze_every_ms`` and collect everything every ``full_every_ms``,
    on ``scheduler``'s timers (on its thread: the pauses fall between two actors' slices)."""
    fulls_after = max(1, round(full_every_ms / freeze_every_ms))
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        if ticks >= fulls_after:
            ticks = 0
            gc.unfreeze()
            gc.collect()
        gc.freeze()
        scheduler.call_later(freeze_every_ms, tick)

    scheduler.call_later(freeze_every_ms, tick)
