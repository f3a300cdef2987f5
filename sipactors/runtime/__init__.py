"""The concurrency runtime (DESIGN §1, §3): pykka actors on a shared scheduler, real or simulated."""

from sipactors.runtime.actor import (
    ScheduledActor,
    ScheduledFuture,
    ScheduledInbox,
    default_scheduler,
    set_default_scheduler,
)
from sipactors.runtime.scheduler import ManualScheduler, Scheduler, ThreadScheduler, TimerHandle

__all__ = [
    "ManualScheduler", "ScheduledActor", "ScheduledFuture", "ScheduledInbox", "Scheduler", "ThreadScheduler",
    "TimerHandle", "default_scheduler", "set_default_scheduler",
]
