"""Schedulers that run many pykka actors on one thread (DESIGN §3), and the clocks their timers use.

A thread per actor dies at about 22,000 actors on this machine; a transaction lives 32 s after it ends
(Timer J), so a busy server holds tens of thousands. Here an actor whose inbox goes from empty to not
empty is put on a ready queue, and the scheduler runs ready actors in slices of a few envelopes each.

* ``ManualScheduler``: nothing runs until the caller says so (``run_until_idle``, ``advance``); the clock
  is virtual and the order of ready actors is FIFO, or shuffled by a seeded random generator, so a
  simulation replays exactly. Tests, the explorer and the model checker use it.
* ``ThreadScheduler``: one worker thread and the monotonic clock, for ``sipactors serve``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from mypy_extensions import mypyc_attr

__all__ = ["ManualScheduler", "Runnable", "Scheduler", "ThreadScheduler", "TimerHandle"]

log = logging.getLogger("sipactors.scheduler")


#: Below this many pending timers the heap is never swept (sweeping a small heap gains nothing).
_COMPACT_MIN = 4096


class Runnable(Protocol):
    def run_slice(self) -> None: ...


class TimerHandle:
    """A pending call; ``cancel()`` makes it a no-op."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        # The heap keeps the handle until its time comes (a binding's expiry: an hour); what the callback
        # holds (an actor's inbox, a message) is let go now.
        self.callback = _nothing


def _nothing() -> None:
    pass


@mypyc_attr(allow_interpreted_subclasses=True)  # so that ManualScheduler may have them
class Scheduler:
    """What actors and timers need from a scheduler."""

    slice_size = 16  # envelopes per turn: long enough to amortise the switch, short enough to be fair

    def __init__(self) -> None:
        self._ready: deque[Runnable] = deque()
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._sequence = itertools.count()
        self._compact_above = _COMPACT_MIN  # heap size at which cancelled handles are swept out
        self._turn_end: list[Callable[[], None]] = []  # run once when the current turn of work ends
        self.failures = 0  # exceptions that escaped an actor's slice (each one is logged by the actor)
        #: The thread that runs the actors' slices, the only one that touches their inboxes (ScheduledInbox):
        #: for a manual scheduler the one that made it; a thread scheduler's worker sets its own.
        self.owner_thread = threading.get_ident()

    def now(self) -> float:
        """Milliseconds on this scheduler's clock."""
        raise NotImplementedError

    def schedule(self, actor: Runnable) -> None:
        """``actor`` has mail: run it soon. Called when its inbox goes from empty to not empty."""
        raise NotImplementedError

    def call_later(self, delay_ms: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(self.now() + (delay_ms if delay_ms > 0 else 0.0), callback)
        heapq.heappush(self._timers, (handle.when, next(self._sequence), handle))
        if len(self._timers) > self._compact_above:
            self._compact()
        # No ``_wake()``: this runs on the scheduler itself (a thread scheduler hands a timer set from another
        # thread to ``submit``, which wakes it), so nothing sleeps that the new timer should wake.
        return handle

    def submit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the scheduler soon; callable from any thread. Unlike ``call_later`` there is
        no handle (it cannot be cancelled), which lets a threaded scheduler take it without its lock."""
        self.call_later(0, callback)

    def at_turn_end(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, on the scheduler, when the work at hand is done: when no actor is ready,
        or (under a load that never lets the queue drain) after ``turn_slices`` slices. Called on the
        scheduler only. A group committer hands its batch to the writer then, so the REGISTERs of one burst
        share a transaction instead of the writer taking them one by one as each arrives."""
        self._turn_end.append(callback)

    def _end_turn(self) -> None:
        callbacks, self._turn_end = self._turn_end, []
        for callback in callbacks:
            self._contained(callback)

    def _compact(self) -> None:
        """Drop cancelled handles from the heap. Each REGISTER refresh cancels an expiry timer that would
        otherwise sit in the heap until it was due; sweeping whenever the heap doubles keeps it in
        proportion to the live timers at an amortised O(1) per timer."""
        live = [entry for entry in self._timers if not entry[2].cancelled]
        heapq.heapify(live)
        self._timers[:] = live
        self._compact_above = max(_COMPACT_MIN, 2 * len(live))

    def in_scheduler(self) -> bool:
        """Whether the calling code runs inside an actor slice (where blocking would deadlock)."""
        raise NotImplementedError

    def _run_due_timers(self, now: float) -> int:
        fired = 0
        while self._timers and self._timers[0][0] <= now:
            _, _, handle = heapq.heappop(self._timers)
            if not handle.cancelled:
                fired += 1
                try:  # _contained, inline: a timer per transaction fires
                    handle.callback()
                except Exception:
                    self.failures += 1
                    log.exception("contained a failure on the scheduler")
        return fired

    def _contained(self, work: Callable[[], None]) -> None:
        """Run a callback or an actor's slice; whatever it raises is logged and counted, and the
        scheduler (the one thread every actor runs on) carries on."""
        try:
            work()
        except Exception:
            self.failures += 1
            log.exception("contained a failure on the scheduler")


@mypyc_attr(allow_interpreted_subclasses=True)  # tests bound its run_until_idle
class ManualScheduler(Scheduler):
    """Deterministic: a virtual clock, and ready actors run in FIFO order or a seeded shuffle."""

    def __init__(self, seed: int | None = None, start_ms: float = 0.0) -> None:
        super().__init__()
        self._now = start_ms
        self._random = random.Random(seed) if seed is not None else None
        self._running = False

    def now(self) -> float:
        return self._now

    def schedule(self, actor: Runnable) -> None:
        self._ready.append(actor)

    def in_scheduler(self) -> bool:
        return self._running

    def step(self) -> bool:
        """Run one ready actor's slice; False when none is ready."""
        if not self._ready:
            return False
        if self._random is not None and len(self._ready) > 1:
            self._ready.rotate(-self._random.randrange(len(self._ready)))
        actor = self._ready.popleft()
        self._running = True
        try:
            actor.run_slice()
        except Exception:  # _contained, inline: a slice per message is the hot path
            self.failures += 1
            log.exception("contained a failure on the scheduler")
        finally:
            self._running = False
        return True

    def run_until_idle(self, max_steps: int = 1_000_000) -> int:
        """Run ready actors (and timers due now) until nothing is left to do; the number of slices run."""
        steps = 0
        timers = self._timers
        while steps < max_steps:
            if timers and timers[0][0] <= self._now:
                self._run_due_timers(self._now)
            if not self.step():
                if not self._turn_end:
                    return steps
                self._end_turn()  # (it may make work: then the loop goes on)
                continue
            steps += 1
        raise RuntimeError(f"still busy after {max_steps} slices: a message loop?")

    def advance(self, ms: float) -> None:
        """Move the virtual clock forward by ``ms``, firing timers in order and running what they wake."""
        target = self._now + ms
        self.run_until_idle()
        while self._timers and self._timers[0][0] <= target:
            self._now = max(self._now, self._timers[0][0])
            self._run_due_timers(self._now)
            self.run_until_idle()
        self._now = target


class ThreadScheduler(Scheduler):
    """One worker thread runs every actor; the monotonic clock drives the timers.

    Sockets given to ``watch`` are read on the worker itself: it sleeps in ``select`` on them and on a
    wake-up socket (which other threads write to only when it sleeps), and while busy it looks at them
    every ``poll_every`` slices. A UDP datagram then reaches the transaction layer with no thread switch:
    handing each one over from the asyncio loop's thread cost that thread ~0.9 ms of CPU per proxied
    call (an epoll wake-up, the loop's bookkeeping and a GIL hand-over per datagram; measured under SIPp).

    The ready queue and the timer heap belong to the worker: it touches them without a lock (an actor
    scheduled from another thread is a ``deque.append``, atomic under the GIL; a timer set from another
    thread is pushed by the worker, through ``submit``). A lock per ``schedule`` and ``call_later`` cost
    some 5 % of a proxied call's CPU time.
    """

    poll_every = 8  # slices between looks at the watched sockets while actors are ready
    turn_slices = 64  # at most this many slices between two ends of turn (``at_turn_end``) under load

    def __init__(self, name: str = "sipactors-scheduler") -> None:
        super().__init__()
        self._stopping = False
        # ``submit``: work handed over by other threads (bytes from a TCP connection, a committed batch of
        # REGISTERs). A deque append is atomic, so the producer takes no lock, and writes to the wake-up
        # socket only when the worker sleeps.
        self._inbox: deque[Callable[[], None]] = deque()
        self._sleeping = False
        self._selector = selectors.DefaultSelector()
        self._wake_in, self._wake_out = socket.socketpair()
        for end in (self._wake_in, self._wake_out):
            end.setblocking(False)
        self._selector.register(self._wake_in, selectors.EVENT_READ, None)
        self._watched = 0
        #: Set by ``drain``: the worker sets it when no work is left and no watched socket holds data.
        self._drained: threading.Event | None = None
        self._worker_thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._worker = -1  # the worker's thread ident, once it runs
        self._started = threading.Event()
        self._worker_thread.start()
        self._started.wait()

    def now(self) -> float:
        return time.monotonic() * 1000.0

    def in_scheduler(self) -> bool:
        return threading.get_ident() == self._worker

    def schedule(self, actor: Runnable) -> None:
        self._ready.append(actor)
        if self._sleeping:
            self._wake()

    def call_later(self, delay_ms: float, callback: Callable[[], None]) -> TimerHandle:
        if threading.get_ident() == self._worker:
            return super().call_later(delay_ms, callback)
        handle = TimerHandle(self.now() + (delay_ms if delay_ms > 0 else 0.0), callback)
        self.submit(lambda: self._push(handle))
        return handle

    def _push(self, handle: TimerHandle) -> None:
        if not handle.cancelled:
            heapq.heappush(self._timers, (handle.when, next(self._sequence), handle))

    def submit(self, callback: Callable[[], None]) -> None:
        self._inbox.append(callback)
        if self._sleeping:
            self._wake()

    def watch(self, sock: socket.socket, on_readable: Callable[[], None]) -> None:
        """Call ``on_readable`` on the worker whenever ``sock`` has data; it must read without blocking
        (the socket is non-blocking) and may leave data behind (it is called again)."""
        self._selector.register(sock, selectors.EVENT_READ, on_readable)
        self._watched += 1
        self._wake()

    def _wake(self) -> None:
        # The worker sets _sleeping before its last look for work, and we read it after adding ours:
        # either it sees our work, or we see it asleep (or about to be) and wake it.
        if self._sleeping:
            try:
                self._wake_out.send(b"\0")
            except (BlockingIOError, InterruptedError):
                pass  # the socket is full of wake-ups already

    def drain(self, timeout: float = 2.0) -> bool:
        """Before a stop: let the worker handle what has already arrived (datagrams waiting in the watched
        sockets' buffers, work submitted or ready) until none is left; whether it got there within
        ``timeout`` seconds. A peer's last message before it went away, a response that ends a transaction
        say, is then not lost to the stop; timers that are not due yet are not waited for."""
        return self.draining().wait(timeout)

    def draining(self) -> threading.Event:
        """``drain`` without the wait: the event the worker sets once drained. The request is queued behind
        the work submitted so far, so the worker looks at its sockets again after it."""
        drained = threading.Event()

        def begin() -> None:
            self._drained = drained

        self.submit(begin)
        return drained

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self._sleeping = True  # wake it whatever it is doing
        self._wake()
        self._worker_thread.join(timeout)
        if not self._worker_thread.is_alive():
            self._selector.close()
            self._wake_in.close()
            self._wake_out.close()

    def _loop(self) -> None:
        self._worker = self.owner_thread = threading.get_ident()
        self._started.set()
        inbox, ready, timers = self._inbox, self._ready, self._timers
        select = self._selector.select
        monotonic = time.monotonic
        poll_every = self.poll_every
        polls_per_turn = max(1, self.turn_slices // poll_every)
        polls = 0
        while not self._stopping:
            if timers and timers[0][0] <= monotonic() * 1000.0:
                self._run_due_timers(monotonic() * 1000.0)
            for _ in range(len(inbox)):  # what was handed over so far; later arrivals wait for the next turn
                self._contained(inbox.popleft())
            if ready:
                for _ in range(poll_every):
                    if not ready:  # drained: a test, where an IndexError caught cost ~1 µs per wake-up
                        break
                    try:
                        ready.popleft().run_slice()
                    except Exception:  # _contained, inline: a slice per message is the hot path
                        self.failures += 1
                        log.exception("contained a failure on the scheduler")
                polls += 1
                if self._turn_end and polls >= polls_per_turn:
                    polls = 0
                    self._end_turn()
                if self._watched and ready:  # (drained: the select before sleeping looks at the sockets)
                    self._readable(select(0))
                continue
            polls = 0
            if self._turn_end:
                self._end_turn()
                continue  # (it may have made work)
            if self._drained is not None:  # drain(): idle now; drained once the sockets hold nothing more
                events = select(0)
                if any(key.data is not None for key, _ in events):
                    self._readable(events)
                    continue
                self._drained.set()
                self._drained = None
            self._sleeping = True
            if inbox or ready or self._stopping:
                self._sleeping = False
                continue
            # Sleep until the first live timer: a cancelled one stays in the heap until its time (each
            # transaction cancels its retransmission and timeout timers), and waking for it is a wasted
            # epoll round trip and loop turn. Dropping it now changes nothing: it would be popped unrun.
            while timers and timers[0][2].cancelled:
                heapq.heappop(timers)
            wait = max(0.0, timers[0][0] / 1000.0 - monotonic()) if timers else None
            events = select(wait)
            self._sleeping = False
            self._readable(events)

    def _readable(self, events: list[tuple[selectors.SelectorKey, int]]) -> None:
        for key, _ in events:
            if key.data is None:  # wake-ups: their only purpose was to end the select
                try:
                    while self._wake_in.recv(4096):
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
            else:
                self._contained(key.data)

