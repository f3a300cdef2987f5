"""Noticing rule changes made by another process (``sipactors presence allow ...``) while the server runs.

RFC 5025 §3.2.1: a change of a presentity's sub-handling is an event for every affected subscription
(pending → active on ``approved``, active → terminated on ``rejected``, active → pending on ``confirm``).
The rules live in the store, which the CLI writes from its own process; the server cannot be told, so it
looks: every ``interval`` seconds ``RulesPoller`` reads the store's rule revision (one single-row query)
and, when it moved, asks which presentities' rules were written since, and for each of them calls
``NotifierHandle.reauthorize(event, presentity)`` for every watched event (``presence``) and then the
listeners (the watcher list reconsiders its waiting watchers). Rules written by this process go through
the same path: whoever writes need not know who watches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sipactors.roles.events import NotifierHandle
from sipactors.runtime.scheduler import Scheduler, TimerHandle
from sipactors.store.rules import RuleStore

__all__ = ["POLL_INTERVAL", "RulesPoller"]

log = logging.getLogger("sipactors.rules")

#: Seconds between two looks at the rule revision: a CLI change reaches the watchers within this.
POLL_INTERVAL = 1.0


class RulesPoller:
    """Polls ``rules.revision()`` on ``scheduler``'s clock; runs on the scheduler's thread."""

    def __init__(self, rules: RuleStore, scheduler: Scheduler, notifier: NotifierHandle,
                 events: Sequence[str] = ("presence",), listeners: Sequence[Callable[[str], None]] = (),
                 interval: float = POLL_INTERVAL) -> None:
        self.rules = rules
        self.scheduler = scheduler
        self.notifier = notifier
        self.events = tuple(events)
        self.listeners = list(listeners)  # called with each changed presentity, after the notifier
        self.interval = interval
        self.revision = rules.revision()  # changes before the start are in the rules already read
        self._timer: TimerHandle | None = None

    def start(self) -> None:
        self._timer = self.scheduler.call_later(self.interval * 1000, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        try:
            self.poll()
        except Exception:  # a busy or vanished file must not end the polling: try again next time
            log.exception("reading the presence rules' revision failed")
        if self._timer is not None:
            self.start()

    def poll(self) -> list[str]:
        """Look now; the presentities whose rules changed since the last look (each reauthorized)."""
        if self.rules.revision() == self.revision:
            return []
        self.revision, presentities = self.rules.changed_since(self.revision)
        for presentity in presentities:
            for event in self.events:
                self.notifier.reauthorize(event, presentity)
            for listener in self.listeners:
                listener(presentity)
        return presentities
