"""pykka's documented semantics on the shared-scheduler runtime (DESIGN §3), in simulation and real mode."""

from __future__ import annotations

import threading

import pykka
import pytest

from sipactors.runtime import ManualScheduler, ScheduledActor, ThreadScheduler, set_default_scheduler


@pytest.fixture
def sim() -> ManualScheduler:
    scheduler = ManualScheduler(seed=7)
    set_default_scheduler(scheduler)
    yield scheduler
    set_default_scheduler(None)


class Recorder(ScheduledActor):
    def __init__(self, log: list[object], name: str = "r") -> None:
        super().__init__()
        self.log = log
        self.name = name

    def on_start(self) -> None:
        self.log.append((self.name, "start"))

    def on_stop(self) -> None:
        self.log.append((self.name, "stop"))

    def on_failure(self, *exc_info: object) -> None:
        self.log.append((self.name, "failure"))

    def on_receive(self, message: object) -> object:
        self.log.append((self.name, message))
        if message == "boom":
            raise ValueError("boom")
        return ("done", message)

    def double(self, value: int) -> int:
        return 2 * value


def test_tell_ask_and_lifecycle_hooks(sim: ManualScheduler) -> None:
    log: list[object] = []
    ref = Recorder.start(log)
    assert log == []  # nothing runs until the simulation does
    ref.tell("hello")
    assert ref.ask("question") == ("done", "question")  # a blocking ask runs the simulation
    assert log == [("r", "start"), ("r", "hello"), ("r", "question")]
    ref.stop()
    assert not ref.is_alive() and log[-1] == ("r", "stop")
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("late")


def test_ask_without_blocking_and_a_done_callback(sim: ManualScheduler) -> None:
    ref = Recorder.start([])
    future = ref.ask("q", block=False)
    seen: list[object] = []
    future.add_done_callback(lambda f: seen.append(f.get()))
    assert seen == []
    sim.run_until_idle()
    assert seen == [("done", "q")]
    future.add_done_callback(lambda f: seen.append("again"))  # already done: called at once
    assert seen[-1] == "again"


def test_proxies_call_methods_and_read_attributes(sim: ManualScheduler) -> None:
    proxy = Recorder.start([], name="p").proxy()
    assert proxy.double(21).get() == 42
    assert proxy.name.get() == "p"


def test_a_failing_actor_is_contained(sim: ManualScheduler) -> None:
    log: list[object] = []
    failing = Recorder.start(log, "a")
    healthy = Recorder.start(log, "b")
    with pytest.raises(ValueError):
        failing.ask("boom")  # an ask gets the exception; the actor lives on (pykka)
    assert failing.is_alive()
    failing.tell("boom")  # a tell has nobody to answer: the actor fails and stops
    sim.run_until_idle()
    assert not failing.is_alive() and ("a", "failure") in log and sim.failures == 1
    assert healthy.ask("still here") == ("done", "still here")


class Asker(ScheduledActor):
    def __init__(self, other: pykka.ActorRef[Recorder]) -> None:
        super().__init__()
        self.other = other
        self.replies: list[object] = []

    def on_receive(self, message: object) -> object:
        if message == "block":
            return self.other.ask("inner")  # would deadlock the worker thread
        if isinstance(message, tuple):  # the reply, told back by the done-callback
            self.replies.append(message)
            return None
        future = self.other.ask("inner", block=False)
        future.add_done_callback(lambda f: self.actor_ref.tell(("reply", f.get())))
        return "asked"


def test_blocking_inside_the_scheduler_is_refused(sim: ManualScheduler) -> None:
    asker = Asker.start(Recorder.start([]))
    with pytest.raises(RuntimeError, match="refusing to block"):
        asker.ask("block")
    assert asker.ask("no-block") == "asked"
    sim.run_until_idle()
    assert asker.proxy().replies.get() == [("reply", ("done", "inner"))]


def test_slices_keep_actors_fair(sim: ManualScheduler) -> None:
    log: list[object] = []
    busy, quiet = Recorder.start(log, "busy"), Recorder.start(log, "quiet")
    for index in range(100):
        busy.tell(index)
    quiet.tell("hi")
    sim.run_until_idle()
    assert log.index(("quiet", "hi")) < log.index(("busy", 99))


def _run(seed: int) -> list[object]:
    scheduler = ManualScheduler(seed=seed)
    set_default_scheduler(scheduler)
    log: list[object] = []
    refs = [Recorder.start(log, f"r{i}") for i in range(5)]
    for ref in refs:
        ref.tell("x")
    scheduler.run_until_idle()
    return log


def test_the_simulation_replays_exactly_from_its_seed(sim: ManualScheduler) -> None:
    assert _run(1) == _run(1)
    assert any(_run(1) != _run(seed) for seed in range(2, 6))


def test_timers_fire_on_the_virtual_clock_and_can_be_cancelled(sim: ManualScheduler) -> None:
    fired: list[float] = []
    sim.call_later(500, lambda: fired.append(sim.now()))
    cancelled = sim.call_later(100, lambda: fired.append(-1))
    sim.call_later(1000, lambda: fired.append(sim.now()))
    cancelled.cancel()
    sim.advance(499)
    assert fired == []
    sim.advance(600)
    assert fired == [500, 1000] and sim.now() == 1099


def test_actors_are_not_put_in_pykkas_registry(sim: ManualScheduler) -> None:
    ref = Recorder.start([])
    assert ref not in pykka.ActorRegistry.get_all()


def test_ten_thousand_actors_in_simulation(sim: ManualScheduler) -> None:
    refs = [Recorder.start([]) for _ in range(10_000)]
    futures = [ref.ask(i, block=False) for i, ref in enumerate(refs)]
    sim.run_until_idle()
    assert [f.get() for f in futures[:3]] == [("done", 0), ("done", 1), ("done", 2)]
    assert all(f.done() for f in futures)


def test_real_mode_on_one_worker_thread() -> None:
    scheduler = ThreadScheduler()

    class Threaded(Recorder):
        pass

    Threaded.scheduler = scheduler
    try:
        refs = [Threaded.start([], name=str(i)) for i in range(200)]
        assert [ref.ask(i, timeout=5) for i, ref in enumerate(refs[:3])] == [("done", 0), ("done", 1), ("done", 2)]
        futures = [ref.ask("x", block=False) for ref in refs]
        assert all(f.get(timeout=5) == ("done", "x") for f in futures)
        fired: list[str] = []
        done = pykka.ThreadingFuture()
        scheduler.call_later(10, lambda: (fired.append("timer"), done.set(True)))
        assert done.get(timeout=5) and fired == ["timer"]
        refs[0].stop(timeout=5)
        assert not refs[0].is_alive()
    finally:
        scheduler.stop()


def test_a_failing_timer_callback_is_contained(sim: ManualScheduler, caplog) -> None:  # type: ignore[no-untyped-def]
    fired: list[str] = []

    def broken() -> None:
        raise RuntimeError("a bug in a callback")

    sim.call_later(10, broken)
    sim.call_later(20, lambda: fired.append("later"))
    sim.advance(30)
    assert fired == ["later"] and sim.failures == 1 and "contained a failure" in caplog.text


def test_real_mode_survives_a_failing_callback() -> None:
    scheduler = ThreadScheduler()
    try:
        done = pykka.ThreadingFuture()
        scheduler.call_later(0, lambda: 1 / 0)
        scheduler.call_later(1, lambda: done.set("still running"))
        assert done.get(timeout=5) == "still running" and scheduler.failures == 1
    finally:
        scheduler.stop()


def test_work_submitted_from_other_threads_runs_on_the_worker_in_order() -> None:
    """``submit`` (a received datagram, a committed REGISTER batch): each producer's callbacks run on the
    scheduler thread in the order submitted, including ones that arrive while the worker sleeps."""
    scheduler = ThreadScheduler()
    ran: list[tuple[int, int, bool]] = []
    done = pykka.ThreadingFuture()

    def producer(number: int) -> None:
        for i in range(2000):
            scheduler.submit(lambda i=i: ran.append((number, i, scheduler.in_scheduler())))

    try:
        threads = [threading.Thread(target=producer, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        scheduler.submit(lambda: done.set(len(ran)))
        assert done.get(timeout=5) == 6000
        assert all(on_worker for _, _, on_worker in ran)
        for number in range(3):
            assert [i for n, i, _ in ran if n == number] == list(range(2000))
        later = pykka.ThreadingFuture()
        scheduler.submit(lambda: later.set("woken"))  # the worker is asleep now: submit must wake it
        assert later.get(timeout=5) == "woken"
    finally:
        scheduler.stop()
