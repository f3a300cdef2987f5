"""Stateful model conformance of the server transactions (RFC 3261 §17.2, RFC 6026 §7.1).

Hypothesis drives the real transaction layer and its actors over a simulated network that loses,
duplicates, delays and reorders, with a transaction user that answers when the test says, while the
virtual clock moves. The table (models/*.json) is the oracle: every step an actor takes must be the one
its row (or ignore entry) prescribes, the TU must see each request once, a 2xx is never retransmitted by
the transaction itself, and every transaction ends. A mutant machine with one row turned into an ignore
must be caught.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, invariant, rule, run_state_machine_as_test

from sipactors.fsm import KindMachine, TimerConfig, kind_machine
from sipactors.message import Request, Response, parse
from sipactors.message.build import response_for
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.runtime.transaction import TransactionLayer
from sipactors.sim import Link, SimNetwork, SimTransport
from tests.conformance.oracle import TableConformance

CLIENT = ("192.0.2.1", 5060)
SERVER = ("192.0.2.2", 5060)
KINDS = ("invite_server", "non_invite_server")
ORACLE = {kind: kind_machine(kind).model for kind in KINDS}
MAX_DELAY_MS = 400  # below T1 = 500 ms
WINDOW_MS = 64 * 500 - 2 * MAX_DELAY_MS


def _request(method: str, branch: str, cseq_method: str | None = None) -> bytes:
    return (
        f"{method} sip:bob@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{branch}\r\n"
        f"Max-Forwards: 70\r\nTo: <sip:bob@192.0.2.2>{';tag=s' + branch if method == 'ACK' else ''}\r\n"
        f"From: <sip:alice@192.0.2.1>;tag=c{branch}\r\nCall-ID: {branch}@192.0.2.1\r\n"
        f"CSeq: 1 {cseq_method or method}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


class TU:
    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.keys: dict[str, Any] = {}
        self.pending: dict[str, Request] = {}
        self.timeouts = 0

    def request(self, layer: TransactionLayer, key: Any, request: Request) -> None:
        branch = (request.via[0].branch or "").removeprefix("z9hG4bK")
        self.requests[branch] = self.requests.get(branch, 0) + 1
        self.keys[branch] = key
        self.pending[branch] = request

    def response(self, layer: TransactionLayer, key: Any, response: Response) -> None:
        raise AssertionError("the server sends no requests here")

    def timeout(self, layer: TransactionLayer, key: Any) -> None:
        self.timeouts += 1

    def transport_error(self, layer: TransactionLayer, key: Any) -> None:
        pass

    def ack(self, layer: TransactionLayer, request: Request, source: Any) -> None:
        pass


class ServerTransactions(TableConformance):
    oracle = ORACLE

    machines: dict[str, KindMachine] | None = None  # a mutant set for the mutation test

    def __init__(self) -> None:
        super().__init__()
        self.scheduler = ManualScheduler(seed=11)
        set_default_scheduler(self.scheduler)
        self.network = SimNetwork(self.scheduler, seed=5, default=Link(loss=0.2, duplicate=0.2, delay_ms=(1, MAX_DELAY_MS)))
        self.transport = SimTransport(self.network, SERVER)
        self.tu = TU()
        self.trace: list[dict[str, Any]] = []
        self.layer = TransactionLayer(self.transport, self.tu, self.scheduler, machines=self.machines, trace=self.trace.append)
        self.network.attach(SERVER, lambda data, source: self.layer.receive(data, source))
        self.network.attach(CLIENT, self.client_receives)
        self.methods: dict[str, str] = {}
        self.first_sent: dict[str, float] = {}
        self.finals: dict[str, int] = {}
        self.tu_2xx: dict[str, int] = {}
        self.counter = 0

    def client_receives(self, data: bytes, source: Any) -> None:
        """The client acknowledges a non-2xx final response to INVITE, as its transaction does (RFC 3261
        §17.1.1.3); everything else it only notes."""
        response = parse(data)
        if response.cseq.method == "INVITE" and response.status >= 300:
            branch = (response.via[0].branch or "").removeprefix("z9hG4bK")
            self.network.send(_request("ACK", branch, "ACK"), CLIENT, SERVER)

    branches = Bundle("branches")

    @rule(target=branches, method=st.sampled_from(["OPTIONS", "INVITE", "REGISTER"]))
    def new_request(self, method: str) -> str:
        self.counter += 1
        branch = f"b{self.counter}"
        self.methods[branch] = method
        self.first_sent[branch] = self.scheduler.now()
        self.network.send(_request(method, branch), CLIENT, SERVER)
        return branch

    @rule(branch=branches)
    def retransmit(self, branch: str) -> None:
        """A client retransmits only while its Timer B or F runs (64*T1), and the network delays no
        datagram by more than T1 (RFC 3261 §17.1.1.1: T1 estimates the round-trip time)."""
        if self.scheduler.now() - self.first_sent[branch] < WINDOW_MS:
            self.network.send(_request(self.methods[branch], branch), CLIENT, SERVER)

    @rule(branch=branches, status=st.sampled_from([180, 200, 486]))
    def tu_answers(self, branch: str, status: int) -> None:
        request = self.tu.pending.get(branch)
        if request is None or branch in self.finals:
            return
        if status >= 200:
            self.finals[branch] = status
            if status < 300:
                self.tu_2xx[branch] = self.tu_2xx.get(branch, 0) + 1
        self.layer.respond(self.tu.keys[branch], response_for(request, status, to_tag="s" + branch))

    @rule(branch=branches)
    def tu_retransmits_2xx(self, branch: str) -> None:
        """RFC 6026 §7.1: the TU, not the transaction, retransmits a 2xx to INVITE."""
        if self.methods[branch] == "INVITE" and self.finals.get(branch) == 200:
            self.tu_2xx[branch] += 1
            self.layer.respond(self.tu.keys[branch], response_for(self.tu.pending[branch], 200, to_tag="s" + branch))

    @rule(branch=branches)
    def ack(self, branch: str) -> None:
        if self.methods[branch] == "INVITE" and self.finals.get(branch, 0) >= 300:
            self.network.send(_request("ACK", branch, "ACK"), CLIENT, SERVER)

    @invariant()
    def the_tu_sees_each_request_once(self) -> None:
        assert all(count == 1 for count in self.tu.requests.values()), self.tu.requests

    @invariant()
    def a_2xx_to_invite_goes_out_only_when_the_tu_sends_it(self) -> None:
        for branch, count in self.tu_2xx.items():
            if self.methods[branch] != "INVITE":
                continue
            sent = [d for d, _ in self.transport.sent if d.startswith(b"SIP/2.0 200") and f"z9hG4bK{branch};".encode() in d]
            assert len(sent) <= count, (branch, len(sent), count)  # the TU's last one may still be queued

    def teardown(self) -> None:
        try:
            # Deliver what is in flight, answer what is still open (a server transaction waits for its TU
            # for as long as it takes: RFC 3261 §17.2.2), then let the timers run out.
            self.scheduler.advance(1_000)
            for branch, request in self.tu.pending.items():
                if branch not in self.finals:
                    self.layer.respond(self.tu.keys[branch], response_for(request, 486, to_tag="s" + branch))
            self.scheduler.advance(200_000)
            assert self.layer.server == {}, f"transactions that never ended: {list(self.layer.server)}"
        finally:
            set_default_scheduler(None)


BOUNDED = settings(
    max_examples=100, stateful_step_count=25, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_server_transactions_conform_to_their_tables_over_a_lossy_network() -> None:
    run_state_machine_as_test(ServerTransactions, settings=BOUNDED)


def _mutant(kind: str, state: str, event: str) -> dict[str, KindMachine]:
    machines = {name: kind_machine(name) for name in ("invite_client", "non_invite_client", *KINDS)}
    model = copy.deepcopy(machines[kind].model)
    model["decisions"][state][event] = {"kind": "ignore", "why": "mutant", "rfc": "none"}
    machines[kind] = KindMachine(model, TimerConfig.default())
    return machines


@pytest.mark.parametrize(
    ("kind", "state", "event"),
    [("non_invite_server", "completed", "recv_request"), ("invite_server", "completed", "recv_ack")],
)
def test_a_machine_missing_one_row_is_caught(kind: str, state: str, event: str) -> None:
    class Mutant(ServerTransactions):
        machines = _mutant(kind, state, event)

    with pytest.raises(AssertionError):
        # Finding one counterexample is enough: no shrinking, and the search stops there. How many examples
        # it takes depends on the exact strategies (seen: 67 to about 450), so the bound leaves room.
        run_state_machine_as_test(Mutant, settings=settings(BOUNDED, max_examples=1000, phases=[Phase.generate]))
