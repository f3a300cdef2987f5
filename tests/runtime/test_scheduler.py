"""The scheduler's timer heap: cancelled timers let go of what they hold at once, and the heap is swept so
that a long run of refreshes (each cancelling a binding's hour-long expiry) does not grow it without end.
And the end of a turn of work (``at_turn_end``), where a group committer hands its burst to the writer."""

from __future__ import annotations

import gc
import socket
import threading
import weakref
from collections.abc import Callable

from sipactors.runtime.scheduler import _COMPACT_MIN, ManualScheduler, ThreadScheduler


class _Held:
    pass


def test_a_cancelled_timer_frees_what_its_callback_holds_before_it_is_due() -> None:
    scheduler = ManualScheduler()
    held = _Held()
    ref = weakref.ref(held)
    handle = scheduler.call_later(3_600_000, lambda held=held: None)
    del held
    handle.cancel()
    gc.collect()
    assert ref() is None


def test_the_heap_stays_in_proportion_to_the_live_timers_and_they_still_fire_in_order() -> None:
    scheduler = ManualScheduler()
    fired: list[int] = []
    for refresh in range(20 * _COMPACT_MIN):  # an expiry per refresh, each cancelled by the next
        handle = scheduler.call_later(3_600_000 + refresh, lambda: fired.append(-1))
        handle.cancel()
        assert len(scheduler._timers) <= 2 * _COMPACT_MIN + 1
    for n in (3, 1, 2):
        scheduler.call_later(1000 * n, lambda n=n: fired.append(n))
    scheduler.advance(4_000_000)
    assert fired == [1, 2, 3]


class _Echo:
    """An actor-like runnable: each slice records itself, then does what it was given once."""

    def __init__(self, scheduler: ManualScheduler | ThreadScheduler, log: list[str], name: str) -> None:
        self.scheduler, self.log, self.name = scheduler, log, name
        self.then: Callable[[], None] | None = None

    def run_slice(self) -> None:
        self.log.append(self.name)
        then, self.then = self.then, None
        if then is not None:
            then()


def test_a_turn_ends_when_no_actor_is_ready_and_its_callbacks_run_once() -> None:
    scheduler = ManualScheduler()
    log: list[str] = []
    first, second = _Echo(scheduler, log, "a"), _Echo(scheduler, log, "b")
    first.then = lambda: (scheduler.at_turn_end(lambda: log.append("end")), scheduler.schedule(second))
    second.then = lambda: scheduler.at_turn_end(lambda: (log.append("end2"), scheduler.schedule(first)))
    scheduler.schedule(first)
    scheduler.run_until_idle()
    # both turn-end callbacks after the work they followed; the work one of them made ran in the next turn
    assert log == ["a", "b", "end", "end2", "a"]
    scheduler.run_until_idle()
    assert log == ["a", "b", "end", "end2", "a"]


def test_a_threaded_turn_ends_under_a_load_that_never_lets_the_queue_drain() -> None:
    scheduler = ThreadScheduler(name="test-turns")
    try:
        done = threading.Event()
        log: list[str] = []
        busy = _Echo(scheduler, log, "busy")
        ended: list[int] = []

        def again() -> None:  # the actor always has more work: the ready queue never drains
            if not ended:
                busy.then = again
                scheduler.schedule(busy)
            else:
                done.set()

        busy.then = lambda: (scheduler.at_turn_end(lambda: ended.append(len(log))), again())
        scheduler.schedule(busy)
        assert done.wait(10)
        assert ended == [scheduler.turn_slices]  # the turn ended after turn_slices slices
    finally:
        scheduler.stop()


def test_drain_handles_the_datagrams_already_waiting_in_a_watched_socket_and_the_work_they_make() -> None:
    """``ThreadScheduler.drain`` (the server calls it on SIGTERM): what a peer sent before the stop, still in
    the socket's buffer, is read and the work it makes is run before drain says it is done."""
    scheduler = ThreadScheduler(name="test-drain")
    receiver, sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.setblocking(False)
    handled: list[bytes] = []
    after_drained: list[bytes] = []  # handled once drain had said it was done: none may be
    log: list[str] = []
    echo = _Echo(scheduler, log, "made")
    try:
        gate = threading.Event()

        def busy() -> None:  # the worker is busy while the datagrams arrive
            gate.wait(10)

        scheduler.submit(busy)
        for n in range(3):
            sender.send(b"datagram %d" % n)
        # Asked while the worker is still busy: it takes the request before it looks at its sockets again,
        # so only the drain's own look can find the datagrams before it says drained.
        drained = scheduler.draining()

        def readable() -> None:
            while True:
                try:
                    handled.append(receiver.recv(100))
                except BlockingIOError:
                    return
                if drained.is_set():
                    after_drained.append(handled[-1])
                scheduler.schedule(echo)  # work that each datagram makes

        scheduler.watch(receiver, readable)
        gate.set()
        assert drained.wait(10)
        assert handled == [b"datagram 0", b"datagram 1", b"datagram 2"]
        assert after_drained == []
        assert log == ["made"] * 3
    finally:
        scheduler.stop()
        receiver.close()
        sender.close()


def test_drain_returns_within_its_timeout_under_work_that_never_ends() -> None:
    scheduler = ThreadScheduler(name="test-drain-bounded")
    log: list[str] = []
    busy = _Echo(scheduler, log, "busy")
    stop = threading.Event()

    def again() -> None:
        if not stop.is_set():
            busy.then = again
            scheduler.schedule(busy)

    busy.then = again
    try:
        scheduler.schedule(busy)
        assert not scheduler.drain(timeout=0.2)  # never idle: drain gives up, the caller stops anyway
    finally:
        stop.set()
        scheduler.stop()
