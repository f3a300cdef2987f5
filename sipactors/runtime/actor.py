"""pykka actors on a shared scheduler (DESIGN §3).

``ScheduledActor`` overrides the three runtime hooks pykka leaves to its actor types:

* ``_create_actor_inbox``: a ``ScheduledInbox``, whose ``put`` puts the actor on the scheduler's ready
  queue when the inbox goes from empty to not empty;
* ``_create_future``: a ``ScheduledFuture``, with done-callbacks, which refuses to block inside a slice
  (that would deadlock the one worker thread) and, on a manual scheduler, runs the simulation until the
  reply arrives;
* ``_start_actor_loop``: schedules the actor, whose first slice runs ``on_start``.

``tell``, ``ask`` (blocking outside the scheduler, or ``block=False`` with a done-callback inside it),
proxies, ``on_start``/``on_stop``/``on_failure`` and ``stop`` keep pykka's documented meaning. Actors are
not put in pykka's ``ActorRegistry`` (a list: unregistering at 30k actors costs ~0.7 ms); the runtime keeps
them in its own dicts under the RFC's keys. A failing actor is pykka's: logged and stopped; the others
keep running.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pykka import Actor, ActorDeadError, ActorRef, Timeout
from pykka._envelope import Envelope
from pykka._threading import ThreadingFuture

from sipactors.runtime.scheduler import ManualScheduler, Scheduler

__all__ = ["ScheduledActor", "ScheduledFuture", "ScheduledInbox", "default_scheduler", "set_default_scheduler"]

_default: Scheduler | None = None
_pykka_log = logging.getLogger("pykka")  # pykka's own logger, for the records it writes
_thread_id = threading.get_ident


def set_default_scheduler(scheduler: Scheduler | None) -> None:
    """The scheduler actors use unless their class names one (``ScheduledActor.scheduler``)."""
    global _default
    _default = scheduler


def default_scheduler() -> Scheduler:
    if _default is None:
        raise RuntimeError("no scheduler: call sipactors.runtime.set_default_scheduler() first")
    return _default


class ScheduledFuture(ThreadingFuture[Any]):
    """A pykka future with done-callbacks that never blocks a scheduler thread."""

    def __init__(self, scheduler: Scheduler | None = None) -> None:
        super().__init__()
        self._scheduler = scheduler  # None for the futures pykka derives (ActorRef.stop): they have get hooks
        self._callbacks: list[Callable[[ScheduledFuture], None]] = []

    def done(self) -> bool:
        return self._result is not None

    def add_done_callback(self, callback: Callable[[ScheduledFuture], None]) -> None:
        """Call ``callback(future)`` once the future has a value (at once if it has one already)."""
        with self._condition:
            if self._result is None:
                self._callbacks.append(callback)
                return
        callback(self)

    def get(self, *, timeout: float | None = None) -> Any:
        if self._result is None and self._get_hook is None and self._scheduler is not None:
            if self._scheduler.in_scheduler():
                raise RuntimeError(
                    "refusing to block inside the scheduler (it would wait for itself): use "
                    "ask(block=False) and add_done_callback, or tell"
                )
            if isinstance(self._scheduler, ManualScheduler):
                self._scheduler.run_until_idle()
                if self._result is None:
                    raise Timeout("no reply, and the simulation has nothing left to run")
        return super().get(timeout=timeout)

    def set(self, value: Any | None = None) -> None:
        super().set(value)
        self._run_callbacks()

    def set_exception(self, exc_info: Any = None) -> None:
        super().set_exception(exc_info if exc_info is not None else sys.exc_info())
        self._run_callbacks()

    def _run_callbacks(self) -> None:
        with self._condition:
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)


class ScheduledInbox:
    """An actor's mailbox, a flag saying the actor is on the ready queue or running, and the actor's
    stopped flag (pykka's ``actor_stopped``: ``set()`` and ``is_set()``).

    Most actors hold one envelope at a time (a transaction waits for a timer between messages), so the
    first waiting envelope is kept in a slot and a deque exists only while more than one waits: an idle
    or once-written-to actor would otherwise keep a deque's 600-octet block. The stopped flag lives here
    rather than in an object of its own (a ``threading.Event`` carries a Condition and a lock, about 1 KB,
    that an actor which never blocks on it does not need).

    Only the scheduler's thread (``Scheduler.owner_thread``) touches an inbox, so it takes no lock: mail
    from another thread (a resolver's answer, a test's ``ask``) is handed to the scheduler's ``submit``,
    which puts it on that thread. A lock taken by every put, pop and release cost some 1.5 % of a proxied
    MESSAGE (callgrind: about 1,000 instructions a lock in Python, some 20 per MESSAGE).
    """

    __slots__ = ("_first", "_rest", "_scheduled", "_stopped", "actor")

    def __init__(self) -> None:
        self._first: Envelope[Any] | None = None
        self._rest: deque[Envelope[Any]] | None = None
        self._scheduled = False
        self._stopped = False
        self.actor: ScheduledActor | None = None

    def put(self, envelope: Envelope[Any], block: bool = True, timeout: float | None = None) -> None:
        actor = self.actor
        if actor is not None and _thread_id() != actor._scheduler.owner_thread:
            actor._scheduler.submit(lambda: self._handed(envelope))
            return
        if self._first is None:
            self._first = envelope
        else:
            if self._rest is None:
                self._rest = deque()
            self._rest.append(envelope)
        if self._scheduled or actor is None:
            return
        self._scheduled = True
        actor._scheduler.schedule(actor)

    def _handed(self, envelope: Envelope[Any]) -> None:
        """Another thread's mail, now on the scheduler's thread: put it, unless the actor has stopped
        meanwhile (an asker then hears ``ActorDeadError``, as pykka's teardown tells it)."""
        if not self._stopped:
            self.put(envelope)
        elif envelope.reply_to is not None:
            error = ActorDeadError("the actor stopped before handling the message")
            envelope.reply_to.set_exception(exc_info=(ActorDeadError, error, None))

    def kick(self) -> None:
        """Put the actor on the ready queue (its first slice runs ``on_start``)."""
        if self._scheduled:
            return
        self._scheduled = True
        actor = self.actor
        assert actor is not None
        actor._scheduler.schedule(actor)

    def pop(self) -> Envelope[Any] | None:
        envelope = self._first
        rest = self._rest
        if rest:
            self._first = rest.popleft()
        else:
            self._first = None
            self._rest = None
        return envelope

    def get(self, block: bool = True, timeout: float | None = None) -> Envelope[Any]:
        envelope = self.pop()
        if envelope is None:
            raise RuntimeError("get() on an empty scheduled inbox")
        return envelope

    def empty(self) -> bool:
        return self._first is None

    def release(self) -> None:
        """The slice is over: back on the ready queue if mail arrived meanwhile, else idle."""
        if self._first is None:
            self._scheduled = False
            return
        actor = self.actor
        assert actor is not None
        actor._scheduler.schedule(actor)

    # pykka's ``actor_stopped`` (an attribute store is atomic)
    def set(self) -> None:
        self._stopped = True

    def is_set(self) -> bool:
        return self._stopped


#: Actor URNs: a random version-4 UUID drawn once per process whose last 48 bits count the actors. As
#: unique as pykka's ``uuid4().urn`` per actor (74 random bits tell processes apart, the counter actors
#: within one) for a tenth of its cost, which a transaction per request pays.
_URN_PREFIX = uuid.uuid4().urn[:-12]
_URN_COUNT = itertools.count()


def _urn(number: int) -> str:
    return f"{_URN_PREFIX}{number & 0xFFFFFFFFFFFF:012x}"


#: pykka's empty hooks: an actor whose class keeps them has nothing to run at its start or its stop.
_NO_ON_START = Actor.on_start
_NO_ON_STOP = Actor.on_stop


class ScheduledActor(Actor):
    """A pykka actor that runs in slices on a shared ``Scheduler``."""

    scheduler: ClassVar[Scheduler | None] = None  # None: the default scheduler
    #: Mail of these exact types goes straight to its handler, ``handler(actor, message)``, instead of
    #: through pykka's ``_handle_receive`` (which tests for its own stop and proxy messages first, then
    #: calls ``on_receive``): a runtime's actors receive a few message types of their own, many times.
    handlers: ClassVar[Mapping[type, Callable[[Any, Any], Any]]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # pykka's Actor.__init__, with the inbox as ``actor_stopped`` (see ScheduledInbox), and the URN and the
        # ``ActorRef`` made on first use (see ``actor_urn`` and ``actor_ref``).
        self._scheduler = type(self).scheduler or _default or default_scheduler()
        self._number = next(_URN_COUNT)
        self.actor_inbox = inbox = ScheduledInbox()  # _create_actor_inbox(), without the hop
        self.actor_stopped = inbox  # type: ignore[assignment]
        self._started = False
        inbox.actor = self

    @property  # type: ignore[override]
    def actor_urn(self) -> str:  # type: ignore[override]
        """pykka's actor URN, formatted on first use from the actor's number: most transaction actors are
        never named by it (the trace names them by ``actor_id``)."""
        urn: str | None = self.__dict__.get("_urn")
        if urn is None:
            urn = self.__dict__["_urn"] = _urn(self._number)
        return urn

    @property
    def actor_ref(self) -> ActorRef[Any]:  # type: ignore[override]
        """pykka's ``ActorRef``, made on first use: the runtime that owns an actor tells it through
        ``tell`` and its timers hold its inbox, so a transaction nobody else addresses never needs one
        (an object, its dict and a weak reference per transaction)."""
        ref: ActorRef[Any] | None = self.__dict__.get("_actor_ref")
        if ref is None:
            ref = self.__dict__["_actor_ref"] = ActorRef(self)
        return ref

    def tell(self, message: Any) -> None:
        """``actor_ref.tell(message)``, for the runtime that owns the actor (without making the ref)."""
        inbox: ScheduledInbox = self.actor_inbox  # type: ignore[assignment]
        if inbox._stopped:
            raise ActorDeadError(f"{self} not found")
        scheduler = self._scheduler
        if inbox._first is None and _thread_id() == scheduler.owner_thread:
            # inbox.put(), inline for an empty inbox on the scheduler's thread: nearly every tell
            inbox._first = Envelope(message)
            if not inbox._scheduled:
                inbox._scheduled = True
                scheduler.schedule(self)
        else:
            inbox.put(Envelope(message))

    def _stop(self) -> None:
        # pykka's, without ActorRegistry.unregister: these actors are never registered (see ``start``).
        self.actor_stopped.set()
        if _pykka_log.isEnabledFor(logging.DEBUG):
            _pykka_log.debug(f"Stopped {self}")
        if type(self).on_stop is not _NO_ON_STOP:  # (the runtime's actors have none: a call saved per actor)
            try:
                self.on_stop()
            except Exception:
                self._handle_failure(*sys.exc_info())

    def stop_now(self) -> None:
        """Stop from inside this actor's own slice, once its machine has said Terminated: the slice ends
        after the envelope at hand, and whatever is still in the inbox is not handled (a terminated machine
        has nothing left to do with it; futures waiting on it fail with ``ActorDeadError``). pykka's
        ``stop()`` queues a stop message behind that mail instead: an ``ActorRef``, an envelope and one more
        slice per transaction, some 10 % of the CPU time a transaction's end costs."""
        self._stop()

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> ActorRef[Any]:  # type: ignore[override]
        """As pykka's, without registering in ``ActorRegistry`` (the runtime keeps its own dicts)."""
        return cls.spawn(*args, **kwargs).actor_ref

    @classmethod
    def spawn(cls, *args: Any, **kwargs: Any) -> Any:
        """Start an actor and return the actor itself, for the runtime that owns it (others get refs)."""
        actor = cls(*args, **kwargs)
        # inbox.kick() (_start_actor_loop()), inline: on the ready queue once, even if its __init__ told it
        # something already (that put scheduled it)
        inbox: ScheduledInbox = actor.actor_inbox  # type: ignore[assignment]
        if not inbox._scheduled:
            inbox._scheduled = True
            actor._scheduler.schedule(actor)
        return actor

    @staticmethod
    def _create_actor_inbox() -> ScheduledInbox:  # type: ignore[override]
        return ScheduledInbox()

    @classmethod
    def _create_future(cls) -> ScheduledFuture:  # type: ignore[override]
        return ScheduledFuture(cls.scheduler or default_scheduler())

    def _start_actor_loop(self) -> None:
        self.actor_inbox.kick()  # type: ignore[attr-defined]

    def run_slice(self) -> None:
        """Handle up to ``slice_size`` envelopes (the first slice runs ``on_start`` first)."""
        inbox: ScheduledInbox = self.actor_inbox  # type: ignore[assignment]
        if not self._started:
            self._started = True
            if type(self).on_start is not _NO_ON_START:  # (the runtime's actors have none: two calls saved per actor)
                self._actor_loop_setup()
        if not inbox._stopped:  # actor_stopped.is_set()
            handlers = self.handlers
            left = self._scheduler.slice_size
            envelope = inbox._first
            # Most slices handle one envelope: the inbox's pop() and release() are inline, and the loop counts
            # down rather than iterating a range (the calls and objects saved are a few % of the runtime's work).
            while envelope is not None:  # None: the first slice of an actor started with no mail
                rest = inbox._rest  # inbox.pop()
                if rest:
                    inbox._first = rest.popleft()
                else:
                    inbox._first = inbox._rest = None
                # pykka's _actor_loop_running, for one envelope
                try:
                    message = envelope.message
                    handler = handlers.get(type(message))
                    response = handler(self, message) if handler is not None else self._handle_receive(message)
                    if envelope.reply_to is not None:
                        envelope.reply_to.set(response)
                except Exception:
                    self._failed(envelope)
                except BaseException:
                    # pykka stops every actor here; on a shared scheduler we stop this one and go on.
                    self._scheduler.failures += 1
                    self._stop()
                left -= 1
                if inbox._stopped or not left:
                    break
                envelope = inbox._first
        if inbox._stopped:
            if inbox._first is not None:  # (most actors stop with an empty inbox: nothing to refuse)
                self._actor_loop_teardown()
            # The inbox points back at its actor (to schedule it); break that cycle so a stopped actor is
            # freed when its owner forgets it, not at some later collection of the oldest generation.
            inbox.actor = None
            return
        if inbox._first is None:  # inbox.release(): idle, or back on the ready queue if mail is waiting
            inbox._scheduled = False
        else:
            self._scheduler.schedule(self)

    def _failed(self, envelope: Envelope[Any]) -> None:
        """Handling ``envelope`` raised (called in the ``except`` block): the asker gets the exception; a
        failure nobody asked about is counted, logged, and told to ``on_failure``, as pykka does."""
        if envelope.reply_to is not None:
            envelope.reply_to.set_exception()
            return
        self._scheduler.failures += 1
        self._handle_failure(*sys.exc_info())
        try:
            self.on_failure(*sys.exc_info())
        except Exception:
            self._handle_failure(*sys.exc_info())
