"""Stateful model conformance of the client transactions (RFC 3261 §17.1, RFC 6026 §7.2).

The real transaction layer sends requests over a simulated network that loses, duplicates, delays and
reorders; the test plays the server, answering (and retransmitting answers) when Hypothesis says, while
the virtual clock moves. The table is the oracle for every step; the TU hears of each transaction's end
exactly once (a final response or a timeout), a non-2xx final response is acknowledged, and every
transaction ends.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, invariant, rule, run_state_machine_as_test

from sipactors.fsm import kind_machine
from sipactors.message import Request, Response, parse
from sipactors.message.build import response_for
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.runtime.transaction import TransactionLayer
from sipactors.sim import Link, SimNetwork, SimTransport
from tests.conformance.oracle import TableConformance
from tests.conformance.test_server_transactions import BOUNDED, MAX_DELAY_MS

CLIENT = ("192.0.2.1", 5060)
SERVER = ("192.0.2.2", 5060)
KINDS = ("invite_client", "non_invite_client")
ORACLE = {kind: kind_machine(kind).model for kind in KINDS}


def _request(method: str, branch: str) -> Request:
    return parse(
        (
            f"{method} sip:bob@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{branch}\r\n"
            f"Max-Forwards: 70\r\nTo: <sip:bob@192.0.2.2>\r\nFrom: <sip:alice@192.0.2.1>;tag=c{branch}\r\n"
            f"Call-ID: {branch}@192.0.2.1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        ).encode()
    )


class TU:
    def __init__(self) -> None:
        self.responses: dict[Any, list[int]] = {}
        self.timeouts: dict[Any, int] = {}

    def request(self, layer: TransactionLayer, key: Any, request: Request) -> None:
        raise AssertionError("the client receives no requests here")

    def response(self, layer: TransactionLayer, key: Any, response: Response) -> None:
        self.responses.setdefault(key, []).append(response.status)

    def timeout(self, layer: TransactionLayer, key: Any) -> None:
        self.timeouts[key] = self.timeouts.get(key, 0) + 1

    def transport_error(self, layer: TransactionLayer, key: Any) -> None:
        pass

    def ack(self, layer: TransactionLayer, request: Request, source: Any) -> None:
        pass


class ClientTransactions(TableConformance):
    oracle = ORACLE

    def __init__(self) -> None:
        super().__init__()
        self.scheduler = ManualScheduler(seed=13)
        set_default_scheduler(self.scheduler)
        self.network = SimNetwork(self.scheduler, seed=9, default=Link(loss=0.2, duplicate=0.2, delay_ms=(1, MAX_DELAY_MS)))
        self.transport = SimTransport(self.network, CLIENT)
        self.tu = TU()
        self.trace: list[dict[str, Any]] = []
        self.layer = TransactionLayer(self.transport, self.tu, self.scheduler, trace=self.trace.append)
        self.network.attach(CLIENT, lambda data, source: self.layer.receive(data, source))
        self.network.attach(SERVER, lambda data, source: None)
        self.requests: dict[str, Request] = {}
        self.keys: dict[str, Any] = {}
        self.answers: dict[str, list[int]] = {}
        self.counter = 0

    branches = Bundle("branches")

    @rule(target=branches, method=st.sampled_from(["OPTIONS", "INVITE"]))
    def send_request(self, method: str) -> str:
        self.counter += 1
        branch = f"b{self.counter}"
        request = _request(method, branch)
        self.requests[branch] = request
        self.keys[branch] = self.layer.send_request(request, SERVER)
        return branch

    @rule(branch=branches, status=st.sampled_from([100, 180, 200, 404, 486]))
    def server_answers(self, branch: str, status: int) -> None:
        finals = [s for s in self.answers.get(branch, []) if s >= 200]
        if finals and status >= 200 and status != finals[0]:
            return  # a server sends one final response per transaction (and retransmits it)
        self.answers.setdefault(branch, []).append(status)
        response = response_for(self.requests[branch], status, to_tag="s" + branch)
        self.network.send(bytes(response), SERVER, CLIENT)

    @invariant()
    def a_final_response_or_a_timeout_reaches_the_tu_once(self) -> None:
        for branch, key in self.keys.items():
            finals = [s for s in self.tu.responses.get(key, []) if s >= 200]
            invite_2xx = self.requests[branch].method == "INVITE" and finals and finals[0] < 300
            if not invite_2xx:  # 2xx to INVITE: every one goes up, by RFC 6026 §7.2
                assert len(finals) + self.tu.timeouts.get(key, 0) <= 1, (branch, finals, self.tu.timeouts.get(key))

    def teardown(self) -> None:
        try:
            # An INVITE client transaction in Proceeding waits for a final response as long as it takes
            # (RFC 3261 §17.1.1.2: no timer runs there; a proxy's Timer C or the UAC ends it). The server
            # sends its final response again, a few times over the lossy network, as a UAS does (its
            # transaction retransmits a non-2xx, its TU a 2xx: §17.2.1, §13.3.1.4), or answers 486 what it
            # left open; then time runs out.
            for branch, request in self.requests.items():
                finals = [s for s in self.answers.get(branch, []) if s >= 200]
                status = finals[0] if finals else 486
                for _ in range(5):
                    self.network.send(bytes(response_for(request, status, to_tag="s" + branch)), SERVER, CLIENT)
                self.answers.setdefault(branch, []).append(status)
            self.scheduler.advance(200_000)
            assert self.layer.client == {}, f"transactions that never ended: {list(self.layer.client)}"
            for branch, key in self.keys.items():
                finals = [s for s in self.tu.responses.get(key, []) if s >= 200]
                assert finals or self.tu.timeouts.get(key) == 1, branch
                if self.requests[branch].method == "INVITE" and finals and finals[0] >= 300:
                    mark = re.compile(rf"branch=z9hG4bK{branch}(?![0-9])".encode())
                    acks = [d for d, _ in self.transport.sent if d.startswith(b"ACK") and mark.search(d)]
                    assert acks, f"no ACK for the {finals[0]} of {branch} (RFC 3261 §17.1.1.3)"
        finally:
            set_default_scheduler(None)


def test_client_transactions_conform_to_their_tables_over_a_lossy_network() -> None:
    run_state_machine_as_test(ClientTransactions, settings=BOUNDED)
