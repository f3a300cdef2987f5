"""The transaction layer in simulation: server transactions answer, absorb and retransmit on the virtual
clock as their tables say (RFC 3261 §17.2, RFC 6026), malformed input gets its 400 or is dropped, and a
failing transaction user costs only its own transaction a 500."""

from __future__ import annotations

from typing import Any

import pytest

from sipactors.message import Request, Response, parse
from sipactors.message.build import response_for
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.runtime.transaction import Address, TransactionLayer

PEER: Address = ("192.0.2.10", 5060)


class Wire:
    reliable = False

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Address]] = []

    def send(self, data: bytes, destination: Address) -> None:
        self.sent.append((data, destination))

    def statuses(self) -> list[int]:
        return [parse(data).status for data, _ in self.sent if data.startswith(b"SIP/2.0")]


class User:
    """A TU that answers OPTIONS with 200, INVITE with whatever ``invite_status`` says, and fails on BOOM."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.acks: list[Request] = []
        self.invite_status = 486
        self.events: list[tuple[str, Any]] = []

    def request(self, layer: TransactionLayer, key: Any, request: Request) -> None:
        self.requests.append(request)
        if request.method == "BOOM":
            raise RuntimeError("the TU failed")
        if request.method == "PEEK":
            request.header("Supported")  # validated on first access: a bad one raises ParseError
        status = self.invite_status if request.method == "INVITE" else 200
        layer.respond(key, response_for(request, status, to_tag="t1"))

    def response(self, layer: TransactionLayer, key: Any, response: Response) -> None:
        self.events.append(("response", response.status))

    def timeout(self, layer: TransactionLayer, key: Any) -> None:
        self.events.append(("timeout", key))

    def transport_error(self, layer: TransactionLayer, key: Any) -> None:
        self.events.append(("transport_error", key))

    def ack(self, layer: TransactionLayer, request: Request, source: Address) -> None:
        self.acks.append(request)


def _request(method: str, branch: str = "z9hG4bK1", to_tag: str = "") -> bytes:
    return (
        f"{method} sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}\r\n"
        f"Max-Forwards: 70\r\nTo: <sip:bob@example.com>{to_tag}\r\nFrom: <sip:alice@example.com>;tag=a1\r\n"
        f"Call-ID: c-{branch}\r\nCSeq: 1 {'INVITE' if method == 'ACK' else method}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


@pytest.fixture
def world() -> tuple[ManualScheduler, Wire, User, TransactionLayer, list[dict[str, Any]]]:
    scheduler = ManualScheduler(seed=3)
    set_default_scheduler(scheduler)
    wire, user, trace = Wire(), User(), []
    layer = TransactionLayer(wire, user, scheduler, trace=trace.append)
    yield scheduler, wire, user, layer, trace
    set_default_scheduler(None)


def test_options_is_answered_and_its_retransmission_gets_the_same_200_until_timer_j(world) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    layer.receive(_request("OPTIONS"), PEER)
    scheduler.run_until_idle()
    assert wire.statuses() == [200] and len(user.requests) == 1
    layer.receive(_request("OPTIONS"), PEER)  # a retransmission: not to the TU, the 200 again
    scheduler.run_until_idle()
    assert wire.statuses() == [200, 200] and len(user.requests) == 1
    scheduler.advance(32_000)  # Timer J = 64*T1 on UDP
    assert layer.server == {}
    assert any(r.get("event") == "timer_j" and r["after"] == "terminated" for r in trace)


def test_invite_rejected_retransmits_on_timer_g_until_the_ack(world) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    layer.receive(_request("INVITE"), PEER)
    scheduler.run_until_idle()
    assert wire.statuses() == [100, 486]
    scheduler.advance(500 + 1000 + 2000)  # Timer G: 500, 1000, 2000 ms
    assert wire.statuses() == [100, 486, 486, 486, 486]
    layer.receive(_request("ACK", to_tag=";tag=t1"), PEER)  # the ACK for the 486 matches the INVITE
    scheduler.run_until_idle()
    scheduler.advance(4000)
    assert wire.statuses() == [100, 486, 486, 486, 486] and user.acks == []
    scheduler.advance(5000)  # Timer I = T4
    assert layer.server == {}


def test_invite_retransmission_after_the_2xx_is_absorbed_rfc6026(world) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    user.invite_status = 200
    layer.receive(_request("INVITE"), PEER)
    scheduler.run_until_idle()
    assert wire.statuses() == [100, 200]
    layer.receive(_request("INVITE"), PEER)  # the race: a retransmission that crossed the 200
    scheduler.run_until_idle()
    assert wire.statuses() == [100, 200] and len(user.requests) == 1
    layer.receive(_request("ACK", branch="z9hG4bK1", to_tag=";tag=t1"), PEER)  # in Accepted: to the TU
    scheduler.run_until_idle()
    assert len(user.acks) == 1
    scheduler.advance(32_000)  # Timer L
    assert layer.server == {}


def test_malformed_request_gets_400_naming_the_problem_and_a_malformed_response_is_dropped(world) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    layer.receive(_request("OPTIONS").replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS"), PEER)
    (answer, destination), = wire.sent
    assert answer.startswith(b"SIP/2.0 400 Bad CSeq header") and destination == PEER
    assert parse(answer).call_id == "c-z9hG4bK1"
    layer.receive(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nCSeq: x\r\n\r\n", PEER)
    assert len(wire.sent) == 1


def test_a_request_the_rfc_refuses_gets_its_status(world) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    layer.receive(_request("OPTIONS").replace(b"OPTIONS sip:bob@example.com", b"OPTIONS mailto:bob@example.com"), PEER)
    assert wire.statuses() == [416] and user.requests == []


def test_a_failing_tu_costs_only_its_transaction_a_500(world) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    layer.receive(_request("BOOM", branch="z9hG4bKb"), PEER)
    layer.receive(_request("OPTIONS", branch="z9hG4bKo"), PEER)
    scheduler.run_until_idle()
    assert sorted(wire.statuses()) == [200, 500]
    assert scheduler.failures == 1 and list(layer.server) != []
    layer.receive(_request("OPTIONS", branch="z9hG4bKp"), PEER)
    scheduler.run_until_idle()
    assert wire.statuses().count(200) == 2


def test_a_header_the_tu_finds_malformed_gets_400_naming_it_not_500(world) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    layer.receive(_request("PEEK", branch="z9hG4bKpk").replace(b"Content-Length", b"Supported: a b c\r\nContent-Length"), PEER)
    scheduler.run_until_idle()
    answers = [data for data, _ in wire.sent if data.startswith(b"SIP/2.0")]
    assert len(answers) == 1 and answers[0].startswith(b"SIP/2.0 400 Bad Supported header")
    assert scheduler.failures == 1 and layer.server == {}


def test_client_transaction_retransmits_and_times_out_on_the_virtual_clock(world) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    request = parse(_request("OPTIONS", branch="z9hG4bKc"))
    key = layer.send_request(request, ("192.0.2.20", 5060))
    scheduler.run_until_idle()
    assert len(wire.sent) == 1
    scheduler.advance(500 + 1000 + 2000 + 4000)  # Timer E: 500, 1000, 2000, 4000 (T2) ms
    assert len(wire.sent) == 5
    scheduler.advance(32_000)  # Timer F = 64*T1
    assert ("timeout", key) in user.events and layer.client == {}


def test_client_transaction_passes_responses_to_the_tu(world) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    request = parse(_request("OPTIONS", branch="z9hG4bKd"))
    layer.send_request(request, ("192.0.2.20", 5060))
    scheduler.run_until_idle()
    layer.receive(bytes(response_for(request, 200, to_tag="x")), ("192.0.2.20", 5060))
    scheduler.run_until_idle()
    layer.receive(bytes(response_for(request, 200, to_tag="x")), ("192.0.2.20", 5060))  # absorbed
    scheduler.run_until_idle()
    assert user.events == [("response", 200)]


def test_client_transaction_owner_gets_its_responses_and_timeout_not_the_layers_tu(world) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    owner = User()
    answered = parse(_request("NOTIFY", branch="z9hG4bKo1"))
    layer.send_request(answered, ("192.0.2.20", 5060), owner=owner)
    silent = layer.send_request(parse(_request("NOTIFY", branch="z9hG4bKo2")), ("192.0.2.21", 5060), owner=owner)
    scheduler.run_until_idle()
    layer.receive(bytes(response_for(answered, 481, to_tag="x")), ("192.0.2.20", 5060))
    scheduler.advance(64 * 500)
    assert owner.events == [("response", 481), ("timeout", silent)] and user.events == []


def test_several_trace_subscribers_and_unsubscribing(world) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    seen: list[dict[str, Any]] = []
    unsubscribe = layer.subscribe(seen.append)
    layer.receive(_request("OPTIONS", branch="z9hG4bKs1"), PEER)
    scheduler.run_until_idle()
    assert seen and seen == trace[-len(seen):]
    assert {r["type"] for r in seen} >= {"in", "transition", "out"}
    unsubscribe()
    count = len(seen)
    layer.receive(_request("OPTIONS", branch="z9hG4bKs2"), PEER)
    scheduler.run_until_idle()
    assert len(seen) == count and len(trace) > count


def test_a_request_without_via_is_dropped_and_logged_not_a_crash(world, caplog) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    no_via = b"\r\n".join(line for line in _request("OPTIONS").split(b"\r\n") if not line.startswith(b"Via"))
    layer.receive(no_via, PEER)  # refused (Missing Via) but there is nowhere to send the 400
    scheduler.run_until_idle()
    assert wire.sent == [] and "without a Via" in caplog.text
    layer.receive(_request("OPTIONS", branch="z9hG4bKafter"), PEER)
    scheduler.run_until_idle()
    assert wire.statuses() == [200]


class _FaultyLayer(TransactionLayer):
    """A layer with a bug of ours in its request path (a subclass: the compiled layer's methods cannot be
    replaced on the instance)."""

    def _request(self, request: Request, source: Address, transport: Any) -> None:
        if request.method == "INFO":
            raise KeyError("a bug of ours")
        super()._request(request, source, transport)


def test_a_fault_in_dispatch_answers_500_and_the_layer_goes_on(world, caplog) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, _, trace = world
    layer = _FaultyLayer(wire, user, scheduler)
    layer.receive(_request("INFO", branch="z9hG4bKi"), PEER)
    layer.receive(_request("OPTIONS", branch="z9hG4bKo2"), PEER)
    scheduler.run_until_idle()
    assert sorted(wire.statuses()) == [200, 500] and "failed to dispatch" in caplog.text


def test_a_tu_answering_twice_is_refused_and_the_transaction_goes_on(world) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    layer.receive(_request("INVITE", branch="z9hG4bKtwice"), PEER)
    scheduler.run_until_idle()
    key = next(iter(layer.server))
    layer.respond(key, response_for(user.requests[-1], 603, to_tag="t1"))  # the table: an error in Completed
    scheduler.run_until_idle()
    assert wire.statuses() == [100, 486] and any(r["type"] == "refused" for r in trace)
    layer.receive(_request("ACK", branch="z9hG4bKtwice", to_tag=";tag=t1"), PEER)
    scheduler.run_until_idle()
    assert layer.server[key].tx.state == "confirmed"


def test_trace_records_name_the_actor_one_id_per_transaction_and_in_and_out_carry_it(world) -> None:  # type: ignore[no-untyped-def]
    """DESIGN §1: every message in and out and every transition carries the actor id; the key stays."""
    scheduler, wire, user, layer, trace = world
    layer.receive(_request("OPTIONS", branch="z9hG4bKa"), PEER)
    layer.receive(_request("INVITE", branch="z9hG4bKb"), PEER)
    scheduler.run_until_idle()
    layer.receive(_request("OPTIONS", branch="z9hG4bKa"), PEER)  # a retransmission: the same actor
    scheduler.run_until_idle()
    scheduler.advance(32_000)  # both end (Timer J; Timer H with no ACK): their last transitions too
    actors = {actor_id: [r for r in trace if r.get("actor") == actor_id] for actor_id in
              dict.fromkeys(r["actor"] for r in trace if r["type"] == "transition")}
    assert list(actors) == ["non_invite_server-1", "invite_server-2"]  # by kind and order of creation
    for records in actors.values():
        assert len({r["transaction"] for r in records}) == 1  # one actor, one transaction key
        assert {r["type"] for r in records} == {"in", "transition", "out"}
        assert records[-1]["type"] == "transition" and records[-1]["after"] == "terminated"
    options, invite = actors.values()
    assert options[0]["transaction"] != invite[0]["transaction"]
    assert [r["type"] for r in options[:2]] == ["in", "transition"]  # the message in, then what it caused
    assert sum(r["type"] == "in" for r in options) == 2 and sum(r["type"] == "out" for r in options) == 2
    # every message in and out of this run was a transaction actor's
    assert all("actor" in r for r in trace if r["type"] in ("in", "out"))


def test_trace_records_of_messages_no_actor_handles_carry_no_actor_id(world) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    layer.receive(_request("OPTIONS").replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS"), PEER)  # stateless 400
    layer.receive(_request("ACK", branch="z9hG4bKnone", to_tag=";tag=t9"), PEER)  # to the TU, no transaction
    scheduler.run_until_idle()
    assert [r["type"] for r in trace] == ["in", "out", "in"]
    assert not any("actor" in r for r in trace) and len(user.acks) == 1


def test_trace_costs_no_in_record_when_nobody_subscribes() -> None:
    """Without subscribers the layer holds no "in" record back (the only work the trace adds per message
    then is numbering each new actor)."""
    scheduler = ManualScheduler(seed=3)
    set_default_scheduler(scheduler)
    try:
        wire, user = Wire(), User()
        layer = TransactionLayer(wire, user, scheduler)
        layer.receive(_request("OPTIONS", branch="z9hG4bKquiet"), PEER)
        assert layer._arrival is None
        scheduler.run_until_idle()
        assert wire.statuses() == [200] and next(iter(layer.server.values())).actor_id == "non_invite_server-1"
    finally:
        set_default_scheduler(None)


def test_an_ended_transaction_is_freed_without_the_cyclic_collector() -> None:
    """Tens of thousands of transactions end every minute on a busy server: each must be freed by
    reference counting when the layer forgets it, not wait for a collection of the oldest generation."""
    import gc
    import weakref

    class Answer:
        def request(self, layer: TransactionLayer, key: object, request: object) -> None:
            layer.respond(key, response_for(request, 200, to_tag="t"))  # type: ignore[arg-type]

        def response(self, *args: object) -> None: ...
        def timeout(self, *args: object) -> None: ...
        def transport_error(self, *args: object) -> None: ...
        def ack(self, *args: object) -> None: ...

    class Wire:
        reliable = False

        def send(self, data: bytes, destination: object) -> None:
            pass

    scheduler = ManualScheduler()
    set_default_scheduler(scheduler)
    try:
        layer = TransactionLayer(Wire(), Answer(), scheduler)
        layer.receive(
            b"OPTIONS sip:b@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfree\r\n"
            b"To: <sip:b@192.0.2.2>\r\nFrom: <sip:a@192.0.2.1>;tag=1\r\nCall-ID: free\r\nCSeq: 1 OPTIONS\r\n"
            b"Content-Length: 0\r\n\r\n",
            ("192.0.2.1", 5060),
        )
        scheduler.run_until_idle()
        [actor] = layer.server.values()
        gone = weakref.ref(actor)
        del actor
        gc.disable()
        try:
            scheduler.advance(64 * 500)  # Timer J ends it
            assert not layer.server and gone() is None
        finally:
            gc.enable()
    finally:
        set_default_scheduler(None)


def test_a_failing_store_costs_a_register_a_500_and_the_core_goes_on_rfc3261_10_3() -> None:
    """The registrar commits a REGISTER's changes before it answers: a store that fails the commit (a
    corrupt file, a full disk) costs that REGISTER a 500 (§10.3 step 7), and the next requests are answered."""
    import os
    import time
    from collections.abc import Sequence

    from sipactors.roles.core import Core
    from sipactors.roles.digest import Authenticator
    from sipactors.roles.registrar import Registrar, RegistrarPolicy
    from sipactors.store import Change, MemoryLocationStore, MemoryStore

    class FailingOnce(MemoryLocationStore):
        failures = 1

        def apply(self, aor: str, changes: Sequence[Change]) -> None:
            if self.failures:
                self.failures -= 1
                raise OSError("disk I/O error")
            super().apply(aor, changes)

    store = MemoryStore()
    store._locations = FailingOnce()  # type: ignore[attr-defined]
    scheduler = ManualScheduler()
    set_default_scheduler(scheduler)
    try:
        registrar = Registrar(store, RegistrarPolicy(frozenset({"example.com"})), Authenticator(b"k" * 32),
                              time.time, os.urandom)
        wire = Wire()
        layer = TransactionLayer(wire, Core(registrar=registrar), scheduler)
        register = _request("REGISTER", branch="z9hG4bKr1").replace(
            b"Content-Length", b"Contact: <sip:a@192.0.2.10>\r\nContent-Length"
        )
        layer.receive(register, PEER)
        scheduler.run_until_idle()
        assert wire.statuses() == [500] and store.locations.bindings("sip:a@example.com", 0) == []
        assert registrar.actors == {}  # nothing committed, no binding actor
        layer.receive(_request("OPTIONS", branch="z9hG4bKo1"), PEER)
        layer.receive(register.replace(b"z9hG4bKr1", b"z9hG4bKr2").replace(b"CSeq: 1", b"CSeq: 2"), PEER)
        scheduler.run_until_idle()
        assert wire.statuses() == [500, 200, 200] and scheduler.failures == 0
    finally:
        set_default_scheduler(None)


class Stream(Wire):
    """A reliable transport whose connection to ``refused`` cannot be opened (RFC 3261 §18.1.1)."""

    reliable = True
    name = "TCP"

    def __init__(self, refused: Address) -> None:
        super().__init__()
        self.refused = refused

    def send(self, data: bytes, destination: Address, failed: Any = None) -> None:
        if destination == self.refused and failed is not None:
            failed()
            return
        self.sent.append((data, destination))


def test_a_client_transaction_over_a_reliable_transport_runs_its_reliable_timers_rfc3261_17_1_2_2(world) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    stream = Stream(("192.0.2.30", 5060))
    layer.transports["TCP"] = stream
    key = layer.send_request(parse(_request("OPTIONS", branch="z9hG4bKs")), ("192.0.2.20", 5060), stream)
    scheduler.run_until_idle()
    scheduler.advance(10_000)
    assert len(stream.sent) == 1 and wire.sent == []  # over the stream, and Timer E never fires on it
    scheduler.advance(32_000)
    assert ("timeout", key) in user.events


def test_a_connection_that_cannot_be_opened_is_the_client_transactions_transport_error_rfc3261_17_1_4(world) -> None:  # type: ignore[no-untyped-def]
    scheduler, wire, user, layer, trace = world
    stream = Stream(("192.0.2.30", 5060))
    key = layer.send_request(parse(_request("INVITE", branch="z9hG4bKt")), ("192.0.2.30", 5060), stream)
    scheduler.run_until_idle()
    assert user.events == [("transport_error", key)] and layer.client == {}


def test_new_tags_are_48_random_bits_in_hex_and_never_repeat_rfc3261_19_3() -> None:
    class Wire:
        reliable = False

        def send(self, data: bytes, destination: Address) -> None:
            pass

    layer = TransactionLayer(Wire(), None, ManualScheduler())  # type: ignore[arg-type]
    tags = [layer.new_tag() for _ in range(2000)]  # several refills of the pool
    assert all(len(tag) == 12 and int(tag, 16) >= 0 for tag in tags)
    assert len(set(tags)) == len(tags)
