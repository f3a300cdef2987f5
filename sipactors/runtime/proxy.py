"""The stateful proxy at run time (RFC 3261 §16): one ``ProxyContext`` actor per proxied server transaction,
driven by the response context machine (spec/machines/proxy.toml), and the ``Proxy`` that owns them.

Flow (DESIGN §1): the server core hands a request to ``Proxy.request`` → ``ProxyRole.decide`` (pure:
§16.3-§16.5) → an answer sent through the server transaction, or a ``Plan`` → a ``ProxyContext`` →
``ProxyMachine.fire`` → effects, which the actor carries out: a branch's request resolved (RFC 3263,
through the ``Resolver``) and sent through a client transaction of the layer, a response sent upstream
through the server transaction, a CANCEL sent, Timer C run per branch on the scheduler's clock.

* **Client transactions** belong to the layer; the layer tells its TU (the core, then this ``Proxy``) of
  their responses, timeouts and transport errors by key, and the ``Proxy`` passes each to the context that
  owns the key. A response for a key no context owns is a late 2xx to an INVITE (RFC 6026 §7.3: the
  client transaction passes every 2xx): it is forwarded statelessly, by its Via (§16.7 step 9, §16.11).
* **Transports.** A branch is sent over the transport of its first resolved target the layer has
  (``layer.transports``: UDP, and TCP when ``serve`` listens on it); a target with a flow (a binding
  registered over TCP, RFC 5626 §5.3) goes on that connection while it is open, without resolving, else
  over TCP to its contact (:func:`reachable`). A TCP connection that cannot be opened is the client
  transaction's transport error: 503 for the branch (§16.9).
* **Resolvers.** One whose ``blocking`` attribute is true (a DNS resolver) runs on a thread pool, off the
  scheduler thread, and the result is told back to the actor; any other resolves in place.
* **Failures** are contained: an exception in one context answers ``500`` upstream if no final response
  went yet, and the context ends; the others run on (DESIGN §3).
* **Trace.** Every transition is a record like a transaction's (time, actor, machine, transaction, event,
  state before and after, decision, RFC section, effects), given to the layer's subscribers.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from mypy_extensions import mypyc_attr

from sipactors.fsm import CancelTimer, ProtocolError, StartTimer, Terminated
from sipactors.fsm.effects import CancelBranch, Forward, ResetTimerC, Upstream
from sipactors.fsm.proxy import BranchEvent, ContextState, ProxyMachine, proxy_machine
from sipactors.message import MAGIC_COOKIE, ParseError, Request, Response
from sipactors.message.build import response_for
from sipactors.roles.proxy import (
    Answer,
    Branch,
    Plan,
    ProxyRole,
    ResponseContext,
    cancel_for,
    forward_request,
    next_hop_uri,
    pop_via,
    response_hop,
    routed_ack,
    via_over,
)
from sipactors.roles.proxy import Target as Destination
from sipactors.runtime.timers import TimedActor, TimerFired
from sipactors.transport.resolve import ResolutionError, Resolver, Target

__all__ = [
    "BranchFailed", "BranchResponse", "Cancel", "Proxy", "ProxyContext", "Resolved", "Start", "next_hop", "reachable",
]

log = logging.getLogger("sipactors.proxy")

#: §17.1.1.1: 64*T1, the time a CANCELled branch is given for its final response before it counts as 408.
CANCEL_GRACE_MS = 32_000


@dataclass(frozen=True, slots=True)
class BranchResponse:
    index: int
    response: Response


@dataclass(frozen=True, slots=True)
class BranchFailed:
    """The branch's client transaction ended without a final response: ``status`` stands for it (408 for
    a timeout, §16.7 step 6, §16.8; 503 for a transport error or no next hop, §16.9)."""

    index: int
    status: int


@dataclass(frozen=True, slots=True)
class Resolved:
    """A blocking resolver's answer for a branch's next hop: targets, or the error."""

    index: int
    targets: tuple[Target, ...] = ()
    error: str | None = None
    status: int = 503  # what the branch ends with when there is no target (ResolutionError.status)


@dataclass(frozen=True, slots=True)
class Cancel:
    """The upstream client's CANCEL matched this context's INVITE (§16.10)."""


@dataclass(frozen=True, slots=True)
class Start:
    """Forward to the first targets. Mail rather than ``on_start``, so that a failure in it is the
    actor's to contain (``on_failure``): pykka only logs one in ``on_start``."""


CANCEL = Cancel()
START = Start()


@mypyc_attr(native_class=False)  # a pykka actor (mypyc compiles its methods, not its class)
class ProxyContext(TimedActor):
    """One response context: its machine state, its branches' Timer C, and the layer it sends through."""

    def __init__(self, owner: Proxy, layer: Any, server_key: Any, plan: Plan, to_tag: str, serial: int,
                 machine: ProxyMachine | None = None) -> None:
        TimedActor.__init__(self)  # not super(): an actor per proxied request, and super() costs an object
        self.owner = owner
        self.layer = layer
        self.server_key = server_key
        self.machine = machine or proxy_machine()
        self.context = ResponseContext(plan, owner.role.policy)
        self.c: ContextState = self.machine.new(self.context, to_tag)
        self.serial = serial
        self.keys: list[Any] = []  # client transactions started, forgotten by the owner at the end
        self.destinations: dict[int, tuple[tuple[str, int], Any]] = {}  # branch index → where its request went, over what
        self.final_sent = False

    @property
    def actor_id(self) -> str:
        return f"proxy-{self.serial}"

    @property
    def state(self) -> str:
        return self.c.state

    # -- mail -----------------------------------------------------------------------------------------
    def on_receive(self, message: Any) -> None:
        handler = _MAIL.get(type(message))
        if handler is None:
            raise TypeError(f"a proxy context does not take {message!r}")
        handler(self, message)

    def _branch_failed(self, message: BranchFailed) -> None:
        branch = self._branch(message.index)
        if branch.pending:
            self.step("branch_final", BranchEvent(branch, self.context.synthesize(branch, message.status)))

    def _branch_resolved(self, message: Resolved) -> None:
        branch = self._branch(message.index)
        if message.error is not None:
            log.info("branch %s of %s: %s", branch.index, self.actor_id, message.error)
        self._send_branch(branch, list(message.targets), message.status)

    def _timer_fired(self, message: TimerFired) -> None:
        self.timers.pop(message.timer, None)
        self._timer_c(self._branch(int(message.timer[1:])))

    def _cancelled(self, message: Cancel) -> None:
        self.step("cancel", None)

    def _begin(self, message: Start) -> None:
        self.step("start", None)

    def _branch(self, index: int) -> Branch:
        return self.context.branches[index - 1]

    def _response(self, message: BranchResponse) -> None:
        branch, response = self._branch(message.index), message.response
        status = response.status
        if status >= 200 and status < 300:
            self.step("branch_2xx", BranchEvent(branch, response))  # even on a finished branch: §16.7 step 5
        elif not branch.pending:
            return  # a response after the branch counted as 408/503: it is over
        elif status < 200:
            self.step("branch_provisional", BranchEvent(branch, response))
        else:
            self.step("branch_final", BranchEvent(branch, response))
        if status >= 200 and self.timers:  # (none runs once the context ended, nor for a non-INVITE)
            self._cancel_timer(CancelTimer(f"C{branch.index}"))

    def _timer_c(self, branch: Branch) -> None:
        """§16.8: Timer C fired. With a provisional response the branch is CANCELled; without one, or
        CANCELled already and silent for 64*T1 since (§9.1), it counts as a 408."""
        if not branch.pending:
            return
        if branch.provisional and not branch.cancel_sent:
            self.step("branch_timeout", BranchEvent(branch))
        else:
            self.step("branch_final", BranchEvent(branch, self.context.synthesize(branch, 408)))

    def step(self, event: str, message: BranchEvent | None) -> None:
        before = self.c.state
        try:
            effects = self.machine.fire(self.c, event, message)
        except ProtocolError as error:
            log.warning("refused %s in %s for %s: %s", event, before, self.actor_id, error)
            self.layer.emit({"type": "refused", "actor": self.actor_id, "machine": self.machine.name,
                             "event": event, "state": before, "why": str(error)})
            return
        if self.layer._subscribers:  # (layer.tracing, without the property's call: a step per message)
            decision = self.machine.decision(before, event)
            self.layer.emit({
                "type": "transition", "actor": self.actor_id, "transaction": repr(self.server_key),
                "machine": self.machine.name, "event": event, "before": before, "after": self.c.state,
                "decision": decision["kind"], "rfc": self.machine.rfc(before, event),
                "effects": [type(effect).__name__ for effect in effects],
            })
        for effect in effects:
            _EFFECTS[type(effect)](self, effect)

    # -- effects --------------------------------------------------------------------------------------
    def _forward(self, effect: Forward) -> None:
        branch: Branch = effect.branch
        assert branch.request is not None
        found = next_hop(self.layer, self.owner, branch.target, branch.request, self.tell, branch.index)
        if found is not None:
            if found.error is not None:
                log.info("branch %s of %s: %s", branch.index, self.actor_id, found.error)
            self._send_branch(branch, list(found.targets), found.status)

    def _send_branch(self, branch: Branch, targets: list[Target], unresolved: int = 503) -> None:
        """Send the branch to the first usable target; with none, it ends with ``unresolved``: the
        resolver's status (404 for a name that definitely has no address, as with --no-dns, RFC 3261
        §21.4.4; 503 when DNS did not answer, §16.9)."""
        usable = reachable(targets, self.layer.transports, branch.target)
        if branch.cancel_wanted:  # CANCELled before it was sent: it ends as the CANCEL would end it
            self.tell(BranchFailed(branch.index, 487))
            return
        if not usable:  # §16.9 / RFC 3263 §4.3: nowhere to send it
            self.tell(BranchFailed(branch.index, unresolved if not targets else 503))
            return
        assert branch.request is not None
        destination, transport = usable[0].address, self.layer.transports[usable[0].transport]
        via = branch.request.top_via  # ours (§16.6 step 8)
        assert via is not None
        if usable[0].transport != via.transport.upper():  # its Via and Record-Route say how it goes
            branch.request = forward_request(self.context.plan, branch.target, self.owner.role.policy, branch.index, usable[0].transport)
        key = self.layer.send_request(branch.request, destination, transport)
        self.destinations[branch.index] = (destination, transport)
        self.keys.append(key)
        self.owner.branches[key] = (self, branch.index)
        if self.context.invite:  # §16.6 step 11
            self._start_timer(StartTimer(f"C{branch.index}", self.owner.role.policy.timer_c_ms))

    def _upstream(self, effect: Upstream) -> None:
        response: Response = effect.response
        if response.status >= 200:
            self.final_sent = True
        self.owner.upstream(self.layer, self.server_key, response)

    def _cancel_branch(self, effect: CancelBranch) -> None:
        branch: Branch = effect.branch
        sent = self.destinations.get(branch.index)
        if sent is None or branch.request is None:
            return  # not sent yet: _send_branch ends it when its next hop is known
        key = self.layer.send_request(cancel_for(branch.request), *sent)  # §9.1: where the INVITE went
        self.keys.append(key)
        self.owner.branches[key] = (self, None)  # the CANCEL's own response is hop-by-hop: ignored
        # §9.1: with no final response 64*T1 after the CANCEL, the INVITE is given up; Timer C says when.
        self._start_timer(StartTimer(f"C{branch.index}", CANCEL_GRACE_MS))

    def _reset_timer_c(self, effect: ResetTimerC) -> None:
        self._start_timer(StartTimer(f"C{effect.branch.index}", self.owner.role.policy.timer_c_ms))

    def _terminated(self, effect: Terminated) -> None:
        self._end()
        self.stop_now()

    def _end(self) -> None:
        self._cancel_timers()
        self.owner.ended(self)

    def on_failure(self, *exc_info: Any) -> None:
        """Contain the failure (DESIGN §3): 500 upstream if no final response went, and forget the context."""
        if not self.final_sent:
            request = self.context.plan.request
            self.owner.upstream(self.layer, self.server_key, response_for(request, 500, to_tag=self.c.to_tag))
        self._end()


def next_hop(
    layer: Any, proxy: Proxy, target: Destination, request: Request, later: Callable[[Resolved], None], index: int = 0,
) -> Resolved | None:
    """Where ``request``, forwarded to ``target`` (``forward_request``), goes first: the TCP connection the
    target's binding was registered over while it is open (RFC 5626 §5.3: reuse the flow), else the
    targets RFC 3263 gives for its next-hop URI (§16.6 step 7: the top Route's, else the Request-URI). The
    answer now, or None when ``proxy``'s resolver blocks (DNS): then it runs on the proxy's thread pool
    and ``later(answer)`` is called from there (it must only tell an actor). Used by every branch of a
    response context and by the delivery of stored MESSAGEs (``sipactors.runtime.messaging``)."""
    flow = target.flow
    if flow is not None and _open(layer.transports.get("TCP"), flow):
        return Resolved(index, (Target("TCP", *flow),))
    uri = next_hop_uri(request)
    resolver = proxy.resolver
    if getattr(resolver, "blocking", False):
        proxy.lookup(uri, lambda done: later(_resolved(index, done)))
        return None
    try:
        return Resolved(index, tuple(resolver.resolve(uri)))
    except ResolutionError as error:
        return Resolved(index, (), str(error), error.status)


def reachable(targets: list[Target], transports: Mapping[str, Any], target: Destination | None = None) -> list[Target]:
    """The resolved ``targets`` a request can be sent to, in order: those over a transport we have. A
    target registered over TCP (``target.flow``) whose contact names no transport is reached over TCP
    (RFC 5626 §5.3: the device keeps a connection, and may listen on nothing else); a contact that names
    one is taken at its word (RFC 3263 §4.1)."""
    if target is not None and target.flow is not None and "transport" not in getattr(target.uri, "params", {}):
        targets = [replace(item, transport="TCP") if item.transport == "UDP" else item for item in targets]
    return [item for item in targets if item.transport in transports]


def _via_transport(layer: Any, response: Response) -> Any:
    """The transport a response sent statelessly goes back over: its top Via's (RFC 3261 §18.2.2), when we
    have it; None (the layer's default) otherwise."""
    return layer.transports.get(response.via[0].transport.upper()) if response.via else None


def _open(transport: Any, address: tuple[str, int]) -> bool:
    """Whether ``transport`` has a connection open to ``address`` (only a connection-oriented one can)."""
    connections = getattr(transport, "connections", None)
    return connections is not None and address in connections


def _resolved(index: int, done: Future[list[Target]]) -> Resolved:
    try:
        return Resolved(index, tuple(done.result()))
    except ResolutionError as error:
        return Resolved(index, (), str(error), error.status)
    except Exception as error:  # a resolver fault is this branch's, not the scheduler's
        return Resolved(index, (), f"resolver failed: {error!r}")


#: A context's mail, by type: the map ``on_receive`` uses, and ``handlers``, with which the scheduler skips pykka's
#: dispatch (see ScheduledActor.handlers) for the mail a context gets per message.
_MAIL: dict[type, Callable[[ProxyContext, Any], None]] = {
    BranchResponse: ProxyContext._response, BranchFailed: ProxyContext._branch_failed, Resolved: ProxyContext._branch_resolved,
    TimerFired: ProxyContext._timer_fired, Cancel: ProxyContext._cancelled, Start: ProxyContext._begin,
}
ProxyContext.handlers = _MAIL
_EFFECTS: dict[type, Callable[[ProxyContext, Any], None]] = {
    Forward: ProxyContext._forward, Upstream: ProxyContext._upstream, CancelBranch: ProxyContext._cancel_branch,
    ResetTimerC: ProxyContext._reset_timer_c, Terminated: ProxyContext._terminated,
}


class Proxy:
    """The proxied part of the server core's transaction user: contexts by server transaction key, and
    which context owns each client transaction key."""

    def __init__(self, role: ProxyRole, resolver: Resolver) -> None:
        self.role = role
        self.resolver = resolver
        self.contexts: dict[Any, ProxyContext] = {}
        self.branches: dict[Any, tuple[ProxyContext, int | None]] = {}
        self.serial = itertools.count(1)
        self._executor: ThreadPoolExecutor | None = None
        self.lookups: set[Future[list[Target]]] = set()  # blocking lookups under way (a test may wait for them)

    def lookup(self, uri: Any, done: Callable[[Future[list[Target]]], None]) -> None:
        """Resolve ``uri`` with a blocking resolver on the thread pool; ``done(future)`` runs on that thread
        (it must only tell an actor or schedule a call)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sipactors-resolve")
        future = self._executor.submit(self.resolver.resolve, uri)
        self.lookups.add(future)

        def finished(future: Future[list[Target]]) -> None:
            self.lookups.discard(future)
            done(future)

        future.add_done_callback(finished)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- server side ----------------------------------------------------------------------------------
    def request(
        self, layer: Any, key: Any, request: Request, own: Callable[[Request, str], Response] | None = None,
        offline: Callable[[Any, Any, Request, Answer], bool] | None = None,
    ) -> None:
        """A request for the proxy (not ACK, not CANCEL): answer it, or start its response context. ``own``
        is the server's own answer, given to an OPTIONS for a local user with no device (RFC 3261 §11:
        the server answers for its domain rather than say 480/404 to a capability query). ``offline``,
        when given, is asked first about every answer the proxy would give itself and takes the request
        over when it says True (store-and-forward of a MESSAGE for a user with no device, RFC 3428 §7)."""
        try:
            decision = self.role.decide(request)
        except ParseError as error:  # a header the proxy must read is malformed (§16.3 item 1)
            layer.respond(key, response_for(request, 400, error.reason_phrase, to_tag=layer.new_tag()))
            return
        if isinstance(decision, Answer):
            if offline is not None and offline(layer, key, request, decision):
                return
            if own is not None and request.method == "OPTIONS" and decision.status in (404, 480):
                layer.respond(key, own(request, layer.new_tag()))
            else:
                layer.respond(key, decision.response(request, layer.new_tag()))
            return
        context: ProxyContext = ProxyContext.spawn(self, layer, key, decision, layer.new_tag(), next(self.serial))
        self.contexts[key] = context
        context.tell(START)

    def cancel(self, layer: Any, key: Any, cancel: Request) -> None:
        """§16.10: a CANCEL matching an INVITE server transaction gets 200 and cancels its context; 481 otherwise."""
        target = layer.cancel_target(cancel)
        if target is None:  # §9.2: no such INVITE transaction
            layer.respond(key, response_for(cancel, 481, to_tag=layer.new_tag()))
            return
        # §9.2: the CANCEL is answered 200 whether or not it still changes anything (an INVITE the proxy
        # answered itself, 407 say, has no context: the CANCEL has "no effect" on it).
        layer.respond(key, response_for(cancel, 200, to_tag=layer.new_tag()))
        context = self.contexts.get(target)
        if context is not None:
            context.tell(CANCEL)

    def ack(self, layer: Any, request: Request, source: Any) -> None:
        """§16.11: the ACK for a 2xx, forwarded statelessly along its route set."""
        forwarded = routed_ack(request, self.role.policy)
        if forwarded is None:
            log.info("dropped an ACK from %s that came on no route of ours", source)
            return
        uri = next_hop_uri(forwarded)
        if getattr(self.resolver, "blocking", False):
            def send(done: Future[list[Target]]) -> None:
                answer = _resolved(0, done)
                layer.scheduler.call_later(0, lambda: self._send_ack(layer, forwarded, list(answer.targets)))

            self.lookup(uri, send)
            return
        try:
            targets = self.resolver.resolve(uri)
        except ResolutionError as error:
            log.info("dropped an ACK: %s", error)
            return
        self._send_ack(layer, forwarded, targets)

    def _send_ack(self, layer: Any, ack: Request, targets: list[Target]) -> None:
        usable = reachable(targets, layer.transports)
        if usable:
            transport = usable[0].transport
            layer.send(via_over(ack, self.role.policy, transport), usable[0].address, layer.transports[transport])
        else:
            log.info("dropped an ACK: no next hop for %s", next_hop_uri(ack))

    def upstream(self, layer: Any, key: Any, response: Response) -> None:
        """A response for the server transaction ``key``; statelessly by its Via once that is gone (a 2xx
        retransmission after Timer L, RFC 6026 §7.1)."""
        if key in layer.server:
            layer.respond(key, response)
            return
        hop = response_hop(response)
        if hop is not None:
            layer.send(response, hop, _via_transport(layer, response))

    # -- client side ----------------------------------------------------------------------------------
    def response(self, layer: Any, key: Any, response: Response) -> None:
        owner = self.branches.get(key)
        if owner is not None:
            context, index = owner
            if index is not None:
                context.tell(BranchResponse(index, response))
            return
        cseq = response.cseq
        if 200 <= response.status < 300 and cseq is not None and cseq.method == "INVITE":
            self._stateless_2xx(layer, response)

    def _stateless_2xx(self, layer: Any, response: Response) -> None:
        """RFC 6026 §7.3: a 2xx whose context has ended is forwarded statelessly (our Via popped)."""
        top = response.via[0] if response.via else None
        if top is None or not (top.branch or "").startswith(MAGIC_COOKIE):
            return
        upstream = pop_via(response)
        hop = response_hop(upstream)
        if hop is not None:
            layer.send(upstream, hop, _via_transport(layer, upstream))

    def timeout(self, layer: Any, key: Any) -> None:
        self._failed(key, 408)

    def transport_error(self, layer: Any, key: Any) -> None:
        self._failed(key, 503)

    def _failed(self, key: Any, status: int) -> None:
        owner = self.branches.get(key)
        if owner is not None and owner[1] is not None:
            owner[0].tell(BranchFailed(owner[1], status))

    def ended(self, context: ProxyContext) -> None:
        if self.contexts.get(context.server_key) is context:
            del self.contexts[context.server_key]
        for key in context.keys:
            if self.branches.get(key, (None,))[0] is context:
                del self.branches[key]
