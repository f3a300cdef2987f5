"""The presence event package (RFC 3856) and its event state compositor (RFC 3903 §6).

:class:`PresencePackage` is two things the presence server needs in one place, because both read the
same composed state:

* the **event state compositor** (ESC, RFC 3903 §6): it answers PUBLISH (digest authentication when users
  exist, then :func:`sipactors.roles.publish.decide`), stores each outcome before the 200, and runs one
  :class:`~sipactors.runtime.publication.PublicationActor` per publication, which expires it;
* the ``presence`` :class:`~sipactors.roles.events.EventPackage` the notifier runs (RFC 3856 §6): which
  presentities exist, who may watch them (:class:`AuthorizationRules`), and the NOTIFY body, always the full
  composed PIDF (RFC 3856 §6.7: "the complete and current presence state").

Composition (RFC 3856 §7.3 "merge the tuples across all of those PUA into a single presence document";
§7.2 registration state) is the pure :func:`compose`:

1. with publications: the union of their tuples, in the order first seen; a tuple id published twice is
   the newer publication's (the one modified last); notes and extension elements merged, each once;
2. with none: one ``open`` tuple per registered contact (RFC 3856 §7.2: "Each registered Contact header
   field identifies a point of communications ... which can be modeled using a tuple"), its id derived
   from the contact so that it stays the same across NOTIFYs and restarts, its priority the contact's q;
3. with neither: one ``closed`` tuple.

A POLITE_BLOCK watcher gets :func:`neutral`: one closed tuple, nothing else (RFC 5025 §3.2.1 polite-block:
the watcher cannot tell it from an offline presentity). The document's ``entity`` is the presentity's AOR.

The package tells the notifier ``changed("presence", aor)`` whenever the composed document changes: a
publication added, modified, removed or expired (a refresh changes nothing), or, while nothing is
published, a binding added or removed (the registrar calls :meth:`PresencePackage.registration_changed`).
Every method runs on the scheduler's thread; time and randomness are injected (this module reads no clock).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from sipactors.message import Request, Response, SipURI, parse_uri
from sipactors.message.build import response_for
from sipactors.roles.digest import USER_TO_USER, Authenticator, source_of, user_lookup
from sipactors.roles.events import Authorization, Body, NotifierHandle, SubscriptionInfo
from sipactors.roles.pidf import CONTENT_TYPE, Contact, Presence, Status, Tuple, generate, parse
from sipactors.roles.publish import Outcome, PublishPolicy, decide, presentity_of
from sipactors.runtime.publication import Modify, PublicationActor, Publish, Refresh, Remove, Restore
from sipactors.store.model import Binding
from sipactors.store.publications import Publication, PublicationStore

__all__ = ["EVENT", "PresencePackage", "AuthorizationRules", "compose", "neutral", "registration_tuple_id"]

log = logging.getLogger("sipactors.presence")

EVENT = "presence"


class AuthorizationRules(Protocol):
    """Watcher authorization rules (RFC 5025 §3.2.1 sub-handling): ``sipactors.roles.authorization.WatcherRules``
    over the rule store, or any table that decides the same way."""

    def decide(self, presentity: str, watcher: str) -> Authorization:
        """What ``watcher`` may see of ``presentity``: PENDING for a watcher no rule names (it waits for the
        presentity to decide, RFC 3856 §6.6.2, RFC 3857)."""
        ...


# ------------------------------------------------------------------------------------------ composition
def registration_tuple_id(contact: str) -> str:
    """A stable tuple id for a registered contact (RFC 3863 §4.1.2: an id lets a watcher match a tuple
    with the one of the previous notification): an XML NCName derived from the contact URI."""
    return "reg-" + hashlib.sha256(contact.encode("utf-8")).hexdigest()[:16]


def _priority(q: float | None) -> str | None:
    """A Contact q as a PIDF priority (RFC 3863 §4.1.5: at most three decimals in [0, 1])."""
    if q is None:
        return None
    text = f"{min(max(q, 0.0), 1.0):.3f}".rstrip("0").rstrip(".")
    return text or "0"


def _unique(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(items))


def compose(presentity: str, published: Sequence[Presence], bindings: Sequence[Binding]) -> Presence:
    """The presentity's presence document from its publications' documents, oldest change first, and its
    registered bindings (used only when nothing is published). See the module docstring."""
    if published:
        merged: dict[str, Tuple] = {}
        for document in published:  # a later (newer) publication's tuple replaces an earlier one of its id
            for item in document.tuples:
                merged[item.id] = item
        return Presence(
            presentity, tuple(merged.values()),
            _unique(note for document in published for note in document.notes),
            _unique(raw for document in published for raw in document.extensions),
        )
    if bindings:
        tuples = _unique(
            Tuple(registration_tuple_id(b.contact), Status("open"), Contact(b.contact, _priority(b.q)))
            for b in bindings
        )
        return Presence(presentity, tuples)
    return Presence(presentity, (Tuple("offline", Status("closed"), Contact(presentity)),))


def neutral(presentity: str) -> Presence:
    """The state a polite-blocked watcher sees (RFC 5025 §3.2.1): one closed tuple, nothing else."""
    return Presence(presentity, (Tuple("neutral", Status("closed")),))


def _validate(event: str, body: bytes) -> None:
    """The package's check of a PUBLISH body (RFC 3903 §6 step 5): a valid PIDF document; ``PidfError``
    (a ``ValueError``) names the problem."""
    parse(body)


# ------------------------------------------------------------------------------------------ the package
class PresencePackage:
    """The ``presence`` event package and its publications (see the module docstring)."""

    event = EVENT

    def __init__(
        self, store: PublicationStore, policy: PublishPolicy, locations: Callable[[str, float], list[Binding]],
        clock: Callable[[], float], entropy: Callable[[int], bytes], *, authenticator: Authenticator | None = None,
        users: Any = None, rules: AuthorizationRules | None = None, notifier: NotifierHandle | None = None,
        trace: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.locations = locations  # the registrar's committed bindings of an AOR (Registrar.bindings)
        self.clock = clock
        self.entropy = entropy
        self.authenticator = authenticator
        self.users = users  # the user store: with no user the server is open (anyone may publish)
        self.rules = rules
        self.trace = trace
        self.notifier = notifier  # told of every change of a composed document; see ``attach``
        self.actors: dict[tuple[str, str], PublicationActor] = {}  # (presentity, entity-tag) → actor
        self._tag_of: dict[PublicationActor, str] = {}  # the entity-tag each actor is keyed by
        self._held: dict[str, dict[str, tuple[Publication, Presence]]] = {}  # presentity → tag → (stored, parsed)
        self._documents: dict[str, bytes] = {}  # presentity → composed PIDF, until its state changes
        self._serial = itertools.count(1)

    def attach(self, notifier: NotifierHandle) -> None:
        """Report state changes to ``notifier`` from now on."""
        self.notifier = notifier

    @property
    def open_mode(self) -> bool:
        return self.users is None or not self.users.any()

    # -- composed state -------------------------------------------------------------------------
    def publications(self, presentity: str) -> list[Publication]:
        """The presentity's live publications as held, oldest change first."""
        now = self.clock()
        held = self._held.get(presentity, {})
        return sorted((p for p, _ in held.values() if p.expires > now), key=lambda p: (p.updated, p.etag))

    def state(self, presentity: str) -> Presence:
        """The composed presence of ``presentity`` now."""
        now = self.clock()
        held = sorted(self._held.get(presentity, {}).values(), key=lambda item: (item[0].updated, item[0].etag))
        published = [document for publication, document in held if publication.expires > now]
        return compose(presentity, published, [] if published else self.locations(presentity, now))

    def document(self, presentity: str) -> bytes:
        """The composed PIDF of ``presentity`` (rendered once per change, whatever the number of watchers)."""
        document = self._documents.get(presentity)
        if document is None:
            document = self._documents[presentity] = generate(self.state(presentity))
        return document

    def _changed(self, presentity: str, before: bytes) -> None:
        """Tell the notifier if the composed document is not ``before`` any more (RFC 6665 §4.2.2)."""
        self._documents.pop(presentity, None)
        if self.document(presentity) != before and self.notifier is not None:
            self.notifier.changed(EVENT, presentity)

    def registration_changed(self, aor: str) -> None:
        """The registrar's observer: a binding of ``aor`` was added, refreshed, removed or expired
        (RFC 3856 §7.2). It matters only while nothing is published for ``aor``."""
        if self._held.get(aor):
            return
        before = self._documents.pop(aor, None)
        if self.notifier is None:  # nobody to tell: compose when asked
            return
        if before is None or self.document(aor) != before:
            self.notifier.changed(EVENT, aor)

    # -- EventPackage ---------------------------------------------------------------------------
    def content_types(self) -> tuple[str, ...]:
        return (CONTENT_TYPE,)  # RFC 3856 §6.5: every subscriber and notifier supports PIDF

    def resource_exists(self, resource: str) -> bool:
        """A presentity of a local domain (RFC 3856 §5, §6.6): a SIP URI with a user part."""
        try:
            uri = parse_uri(resource, "To")
        except ValueError:
            return False
        return isinstance(uri, SipURI) and uri.user is not None and uri.host.lower() in self.policy.domains

    def authorize(self, subscription: SubscriptionInfo) -> Authorization:
        """RFC 3856 §6.6.2: a presentity may always watch itself; otherwise the rules decide, and a watcher
        no rule names is PENDING until the presentity says (RFC 3857 lets it learn of the watcher)."""
        if subscription.watcher == subscription.resource:
            return Authorization.ALLOW
        if self.rules is None:
            return Authorization.PENDING
        return self.rules.decide(subscription.resource, subscription.watcher)

    def body(self, subscription: SubscriptionInfo, authorization: Authorization, *, full: bool = True,
             changed: frozenset[str] = frozenset()) -> Body | None:
        """Full state always (RFC 3856 §6.7); a neutral document for a polite-blocked watcher (RFC 5025
        §3.2.1); nothing while pending or blocked (RFC 6665 §4.2.1.2)."""
        if authorization is Authorization.ALLOW:
            return Body(CONTENT_TYPE, self.document(subscription.resource))
        if authorization is Authorization.POLITE_BLOCK:
            return Body(CONTENT_TYPE, generate(neutral(subscription.resource)))
        return None

    def started(self, subscription: SubscriptionInfo, authorization: Authorization) -> None:
        """Nothing to start: the presence state is composed here, with no back-end subscription (unlike a
        resource list, RFC 4662)."""

    def ended(self, subscription: SubscriptionInfo, reason: str) -> None:
        """Nothing to release: a presentity's state does not depend on who watches it."""

    # -- PUBLISH (RFC 3903 §6) ---------------------------------------------------------------------
    def serves(self, request: Request) -> bool:
        """Whether ``request`` is a PUBLISH for a presentity of ours (others go to the proxy)."""
        return request.method == "PUBLISH" and presentity_of(request, self.policy.domains) is not None

    def handle(self, request: Request, to_tag: str, reply: Callable[[Response], None]) -> None:
        """Answer the PUBLISH ``request`` through ``reply``: a challenge or a refusal at once, a 200 once its
        change is stored (RFC 3903 §6 steps 5-6)."""
        user: str | None = None
        open_mode = self.open_mode
        if not open_mode:
            assert self.authenticator is not None, "a server with users needs an authenticator"
            domain = request.uri.host if isinstance(request.uri, SipURI) else ""
            decision = self.authenticator.authenticate(
                request, realm=self.authenticator.policy.realm_for(domain), source=source_of(request),
                now=self.clock(), salt=self.entropy(16), lookup=user_lookup(self.users), exchange=USER_TO_USER,
            )
            if decision.status is not None:
                reply(response_for(request, decision.status, decision.reason, to_tag=to_tag, headers=list(decision.headers)))
                return
            user = decision.username
        presentity = presentity_of(request, self.policy.domains)
        held = {tag: p for tag, (p, _) in self._held.get(presentity, {}).items()} if presentity is not None else {}
        outcome = decide(
            request, held, self.clock(), self.policy, etag=self._new_tag(), validate=_validate,
            authenticated_user=user, open_mode=open_mode,
        )
        if outcome.kind is not None:
            try:
                self._store(outcome)
            except Exception:  # §6 step 5: "the publication MUST NOT succeed" when the store fails
                log.exception("PUBLISH for %s not stored", outcome.presentity)
                reply(response_for(request, 500, "Event State Not Stored", to_tag=to_tag))
                return
            self._adopt(outcome)
        reply(outcome.response(request, to_tag))

    def _new_tag(self) -> str:
        """A fresh entity-tag (RFC 3903 §6 step 6: unique, never reused for the Request-URI; §8.3: opaque):
        96 random bits, so no tag repeats across restarts either."""
        return self.entropy(12).hex()

    def _store(self, outcome: Outcome) -> None:
        assert outcome.presentity is not None
        if outcome.kind == "remove":
            assert outcome.replaces is not None
            self.store.remove(outcome.presentity, outcome.replaces)
        else:
            assert outcome.publication is not None
            self.store.put(outcome.publication, replaces=outcome.replaces)

    def _adopt(self, outcome: Outcome) -> None:
        """Carry a stored outcome into the held state and tell the publication's actor."""
        presentity = outcome.presentity
        assert presentity is not None
        before = self.document(presentity)
        held = self._held.setdefault(presentity, {})
        publication = outcome.publication
        actor: PublicationActor | None = None
        if outcome.replaces is not None:
            previous = held.pop(outcome.replaces, None)
            actor = self.actors.pop((presentity, outcome.replaces), None)
            if outcome.kind == "refresh" and previous is not None and publication is not None:
                held[publication.etag] = (publication, previous[1])  # the same document
            elif publication is not None:
                held[publication.etag] = (publication, parse(publication.body))
        elif publication is not None:
            held[publication.etag] = (publication, parse(publication.body))
        if outcome.kind == "remove":
            if actor is not None:
                self._tag_of.pop(actor, None)
                actor.tell(Remove())
        else:
            assert publication is not None
            message = {"publish": Publish, "refresh": Refresh, "modify": Modify}[outcome.kind or ""]
            if actor is None:  # a new publication; or (never expected) a held one that lost its actor: restored
                actor = self._spawn(presentity)
                message = Publish if outcome.kind == "publish" else Restore
            self.actors[presentity, publication.etag] = actor
            self._tag_of[actor] = publication.etag
            actor.tell(message(publication))
        if not held:
            self._held.pop(presentity, None)
        self._changed(presentity, before)

    def _spawn(self, presentity: str) -> PublicationActor:
        actor: PublicationActor = PublicationActor.spawn(
            self, presentity, self.store, self.clock, trace=self.trace, actor_id=f"publication-{next(self._serial)}",
        )
        return actor

    def restore(self) -> int:
        """After a (re)start: forget the publications whose time ran out while nobody watched, and give every
        other one an actor with the time it has left (RFC 3903 §8.3). How many."""
        now = self.clock()
        self.store.purge(now)
        restored = 0
        for publication in self.store.all(now):
            try:
                document = parse(publication.body)
            except ValueError:  # stored only after validation: a damaged row is dropped, not served
                log.error("publication %s of %s: stored body is not PIDF; removed", publication.etag, publication.presentity)
                self.store.remove(publication.presentity, publication.etag)
                continue
            self._held.setdefault(publication.presentity, {})[publication.etag] = (publication, document)
            self._documents.pop(publication.presentity, None)
            actor = self._spawn(publication.presentity)
            self.actors[publication.presentity, publication.etag] = actor
            self._tag_of[actor] = publication.etag
            actor.tell(Restore(publication))
            restored += 1
        return restored

    # -- PublicationOwner: what the actors tell ---------------------------------------------------
    def publication_changed(self, actor: PublicationActor, previous: str | None, publication: Publication | None) -> None:
        """The held state already follows every PUBLISH (it stored them); what an actor reports on its own
        is that its publication expired (None)."""
        if publication is None:
            self._lost(actor)

    def publication_ended(self, actor: PublicationActor) -> None:
        """An actor still keyed ended on its own (its store failed)."""
        self._lost(actor)

    def _lost(self, actor: PublicationActor) -> None:
        """``actor``'s publication expired, unless a refresh or modification was stored after its timer
        fired: then a new actor takes up the held publication (the store kept it: ``remove_expired``
        spares a later tag)."""
        tag = self._tag_of.pop(actor, None)
        if tag is None:  # removed by a PUBLISH, already forgotten
            return
        presentity = actor.presentity
        self.actors.pop((presentity, tag), None)
        held = self._held.get(presentity, {})
        current = held.get(tag)
        # "still live" to the millisecond the timers run at (the actors' ``due`` guard): one with less than
        # half a millisecond left given to a new actor would expire at once, and be given again, forever
        if current is not None and round((current[0].expires - self.clock()) * 1000) > 0:
            replacement = self._spawn(presentity)
            self.actors[presentity, tag] = replacement
            self._tag_of[replacement] = tag
            replacement.tell(Restore(current[0]))
            return
        before = self.document(presentity)
        held.pop(tag, None)
        if not held:
            self._held.pop(presentity, None)
        self._changed(presentity, before)
