"""Which transport the proxy forwards over (RFC 3261 §18.1.1, RFC 3263 §4.1, RFC 5626 §5.3) and what the
forwarded request says of it: the top Via names the transport, a dialog that crosses transports gets a
double Record-Route (RFC 5658 §3.2) which the next in-dialog request has popped whole (§16.4), and a
binding registered over TCP is reached over TCP."""

from __future__ import annotations

from sipactors.message import Request, parse, parse_uri
from sipactors.roles.digest import Authenticator
from sipactors.roles.proxy import (
    Listener,
    Plan,
    ProxyPolicy,
    ProxyRole,
    Target,
    forward_request,
    preprocess_routes,
    record_routes,
    via_over,
)
from sipactors.runtime.proxy import reachable
from sipactors.store import MemoryStore
from sipactors.store.model import Binding, Source
from sipactors.transport.resolve import Target as Hop

NOW = 1_800_000_000.0
UDP = Listener("UDP", "192.0.2.9", 5060)
TCP = Listener("TCP", "192.0.2.9", 5060)
POLICY = ProxyPolicy(frozenset({"example.com"}), (UDP, TCP))
AOR = "sip:bob@example.com"


def _request(transport: str = "UDP", method: str = "INVITE", extra: str = "") -> Request:
    lines = [f"{method} sip:bob@example.com SIP/2.0", f"Via: SIP/2.0/{transport} 192.0.2.1:5060;branch=z9hG4bKcaller",
             "Max-Forwards: 70", "To: <sip:bob@example.com>", "From: <sip:alice@example.com>;tag=a1",
             "Call-ID: call-1", f"CSeq: 1 {method}", *[line for line in extra.split("\n") if line]]
    message = parse("\r\n".join([*lines, "Content-Length: 0", "", ""]).encode())
    assert isinstance(message, Request)
    return message


def _plan(request: Request) -> Plan:
    return Plan(request, ((Target(request.uri),),), "loop", False)


def _routes(request: Request) -> list[str]:
    return [value.uri.render() for value in request.record_route]


def test_the_top_via_names_the_transport_the_request_leaves_over_rfc3261_18_1_1() -> None:
    request = _request()
    over_tcp = forward_request(_plan(request), Target(request.uri), POLICY, 1, "TCP")
    over_udp = forward_request(_plan(request), Target(request.uri), POLICY, 1)
    assert over_tcp.via[0].transport == "TCP" and over_udp.via[0].transport == "UDP"
    assert over_tcp.via[0].branch == over_udp.via[0].branch  # the same branch whatever the transport


def test_crossing_transports_record_routes_twice_outbound_on_top_rfc5658_3_2() -> None:
    request = _request("UDP")
    forwarded = forward_request(_plan(request), Target(request.uri), POLICY, 1, "TCP")
    assert _routes(forwarded) == ["sip:192.0.2.9:5060;transport=tcp;lr", "sip:192.0.2.9:5060;lr"]
    back = forward_request(_plan(_request("TCP")), Target(request.uri), POLICY, 1, "UDP")
    assert _routes(back) == ["sip:192.0.2.9:5060;lr", "sip:192.0.2.9:5060;transport=tcp;lr"]


def test_one_transport_end_to_end_records_one_route_naming_it_rfc3261_16_6_step4() -> None:
    assert _routes(forward_request(_plan(_request("TCP")), Target(_request().uri), POLICY, 1, "TCP")) == [
        "sip:192.0.2.9:5060;transport=tcp;lr"]
    assert _routes(forward_request(_plan(_request()), Target(_request().uri), POLICY, 1)) == ["sip:192.0.2.9:5060;lr"]


def test_no_double_record_route_for_a_transport_we_do_not_listen_on() -> None:
    udp_only = ProxyPolicy(frozenset({"example.com"}), (UDP,))
    assert [value.uri.render() for value in record_routes(udp_only, "TCP", "UDP")] == ["sip:192.0.2.9:5060;lr"]


def test_both_values_of_a_double_record_route_are_popped_rfc5658_3_3() -> None:
    routed = _request(extra="Route: <sip:192.0.2.9:5060;lr>, <sip:192.0.2.9:5060;transport=tcp;lr>, <sip:192.0.2.50;lr>")
    copy, popped = preprocess_routes(routed, POLICY)
    assert popped and [value.uri.render() for value in copy.route] == ["sip:192.0.2.50;lr"]


def test_via_over_rewrites_only_the_top_via_and_keeps_its_branch() -> None:
    request = forward_request(_plan(_request()), Target(_request().uri), POLICY, 3)
    moved = via_over(request, POLICY, "TCP")
    assert [via.transport for via in moved.via] == ["TCP", "UDP"]
    assert moved.via[0].branch == request.via[0].branch and request.via[0].transport == "UDP"
    assert via_over(request, POLICY, "UDP") is request


def _role(store: MemoryStore) -> ProxyRole:
    return ProxyRole(store, POLICY, Authenticator(b"k" * 32), lambda: NOW, lambda n: b"s" * n)


def _target(source: Source | None, path: tuple[str, ...] = ()) -> Target:
    store = MemoryStore()
    store.locations.put(Binding(AOR, "sip:bob@192.0.2.7:5070", NOW + 600, "reg", 1, path=path, source=source))
    plan = _role(store).decide(_request())
    assert isinstance(plan, Plan)
    [[target]] = plan.groups
    return target


def test_a_binding_registered_over_tcp_carries_its_flow_rfc5626_5_3() -> None:
    assert _target(Source("tcp", "192.0.2.7", 40123)).flow == ("192.0.2.7", 40123)
    assert _target(Source("udp", "192.0.2.7", 5070)).flow is None
    assert _target(None).flow is None
    # through an edge proxy (Path), the connection is the proxy's, not the device's: routed by Path
    assert _target(Source("tcp", "192.0.2.8", 5060), path=("sip:192.0.2.8;lr",)).flow is None


TRANSPORTS = {"UDP": object(), "TCP": object()}


def test_resolved_targets_over_a_transport_we_lack_are_not_reachable_rfc3263_4_3() -> None:
    hops = [Hop("SCTP", "192.0.2.7", 5060), Hop("TCP", "192.0.2.7", 5060), Hop("UDP", "192.0.2.8", 5060)]
    assert reachable(hops, TRANSPORTS) == hops[1:]
    assert reachable(hops, {"UDP": object()}) == hops[2:]


def test_a_binding_with_a_flow_goes_over_tcp_to_its_contact_when_the_flow_is_closed() -> None:
    hops, uri = [Hop("UDP", "192.0.2.7", 5070)], _request().uri
    assert reachable(hops, TRANSPORTS, Target(uri, flow=("192.0.2.7", 40123))) == [Hop("TCP", "192.0.2.7", 5070)]
    assert reachable(hops, TRANSPORTS, Target(uri)) == hops  # UDP stays the default


def test_a_contact_that_names_its_transport_is_taken_at_its_word_rfc3263_4_1() -> None:
    hops = [Hop("UDP", "192.0.2.7", 5070)]
    uri = parse_uri("sip:bob@192.0.2.7:5070;transport=udp")
    assert reachable(hops, TRANSPORTS, Target(uri, flow=("192.0.2.7", 40123))) == hops
