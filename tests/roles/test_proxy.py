"""The proxy's pure steps (RFC 3261 §16), one test per rule: §16.3 validation, §16.4 route preprocessing,
§16.5 target sets (location service, Path, caller preferences, Request-Disposition), no open relay with
407/403 (§22.3), §16.6 forwarding, §16.7 best response, §16.10 CANCEL, §16.11 stateless pieces."""

from __future__ import annotations

import pytest

from sipactors.message import Request, Response, SipURI, parse, parse_uri
from sipactors.message.build import response_for
from sipactors.roles.digest import Authenticator, ha1, request_digest
from sipactors.roles.proxy import (
    Answer,
    Listener,
    Plan,
    ProxyPolicy,
    ProxyRole,
    ResponseContext,
    Target,
    best_response,
    cancel_for,
    forward_request,
    loop_hash,
    pop_via,
    preprocess_routes,
    response_hop,
    routed_ack,
    validate,
)
from sipactors.store import MemoryStore
from sipactors.store.model import Binding

NOW = 1_800_000_000.0
US = Listener("UDP", "192.0.2.9", 5060)
POLICY = ProxyPolicy(frozenset({"example.com"}), (US,))
AOR = "sip:bob@example.com"


def _request(method: str = "INVITE", uri: str = "sip:bob@example.com", *, extra: str = "", to_tag: str = "",
             from_uri: str = "sip:alice@example.com", forwards: str | None = "70") -> Request:
    lines = [f"{method} {uri} SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcaller;rport"]
    if forwards is not None:
        lines.append(f"Max-Forwards: {forwards}")
    lines += [f"To: <sip:bob@example.com>{';tag=' + to_tag if to_tag else ''}", f"From: <{from_uri}>;tag=a1",
              "Call-ID: call-1", f"CSeq: 1 {method}"]
    lines += [line for line in extra.split("\n") if line]
    message = parse(("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode())
    assert isinstance(message, Request)
    return message


def _role(store: MemoryStore | None = None, policy: ProxyPolicy = POLICY, dialplan: object = None) -> ProxyRole:
    return ProxyRole(store or MemoryStore(), policy, Authenticator(b"k" * 32), lambda: NOW, lambda n: b"s" * n,
                     dialplan)  # type: ignore[arg-type]


def _bind(store: MemoryStore, contact: str, q: float | None = None, path: tuple[str, ...] = (),
          params: tuple[tuple[str, str | None], ...] = ()) -> None:
    store.locations.put(Binding(AOR, contact, NOW + 600, "reg", 1, q=q, path=path, params=params))


# ----------------------------------------------------------------------------------------- §16.3
def test_max_forwards_zero_is_483_rfc3261_16_3_item3() -> None:
    assert validate(_request(forwards="0"), POLICY) == Answer(483)
    assert validate(_request(forwards="1"), POLICY) is None


def test_a_scheme_we_cannot_route_is_416_rfc3261_16_3_item2() -> None:
    assert validate(_request(uri="mailto:bob@example.com"), POLICY) == Answer(416)


def test_proxy_require_of_an_unknown_extension_is_420_with_unsupported_rfc3261_16_3_item5() -> None:
    answer = validate(_request(extra="Proxy-Require: foo, bar"), POLICY)
    assert answer is not None and answer.status == 420 and ("Unsupported", "foo, bar") in answer.headers


def test_a_request_back_unchanged_is_a_loop_482_and_a_changed_one_a_spiral_rfc3261_16_3_item4() -> None:
    received = _request()
    plan = Plan(received, ((Target(received.uri),),), loop_hash(received), False)
    forwarded = forward_request(plan, Target(parse_uri("sip:bob@example.com")), POLICY, 1)
    # it comes back to us with the same routing fields: a loop
    assert validate(forwarded, POLICY) == Answer(482)
    # retargeted by someone on the way (another Request-URI): a spiral, processed again
    spiral = Request(forwarded.method, parse_uri("sip:bob@192.0.2.55"), list(forwarded.fields))
    assert validate(spiral, POLICY) is None


# ----------------------------------------------------------------------------------------- §16.4
def test_our_top_route_is_popped_rfc3261_16_4() -> None:
    routed, popped = preprocess_routes(_request(extra="Route: <sip:192.0.2.9;lr>, <sip:192.0.2.50;lr>"), POLICY)
    assert popped and [r.uri.render() for r in routed.route] == ["sip:192.0.2.50;lr"]
    routed, popped = preprocess_routes(_request(extra="Route: <sip:192.0.2.50;lr>"), POLICY)
    assert not popped and len(routed.route) == 1


def test_a_strict_router_before_us_is_undone_rfc3261_16_4() -> None:
    request = _request(uri="sip:192.0.2.9:5060;lr", extra="Route: <sip:192.0.2.50;lr>, <sip:bob@192.0.2.77>")
    routed, _ = preprocess_routes(request, POLICY)
    assert routed.uri.render() == "sip:bob@192.0.2.77"
    assert [r.uri.render() for r in routed.route] == ["sip:192.0.2.50;lr"]


def test_a_maddr_naming_us_is_stripped_rfc3261_16_4() -> None:
    routed, _ = preprocess_routes(_request(uri="sip:bob@example.com;maddr=192.0.2.9;transport=udp"), POLICY)
    assert routed.uri.render() == "sip:bob@example.com"


# ----------------------------------------------------------------------------------------- §16.5
def test_a_local_aor_forks_to_its_bindings_equal_q_in_parallel_then_lower_q_rfc3261_16_5_16_6() -> None:
    store = MemoryStore()
    _bind(store, "sip:bob@192.0.2.21", q=1.0)
    _bind(store, "sip:bob@192.0.2.22", q=1.0)
    _bind(store, "sip:bob@192.0.2.23", q=0.5)
    plan = _role(store).decide(_request())
    assert isinstance(plan, Plan)
    assert [sorted(t.uri.render() for t in group) for group in plan.groups] == [
        ["sip:bob@192.0.2.21", "sip:bob@192.0.2.22"], ["sip:bob@192.0.2.23"]]


def test_recurse_directives_reach_the_plan_rfc3841_9_1() -> None:
    store = MemoryStore()
    _bind(store, "sip:bob@192.0.2.21")
    for directive, recurse in (("recurse", True), ("no-recurse", False)):
        plan = _role(store).decide(_request(extra=f"Request-Disposition: {directive}"))
        assert isinstance(plan, Plan) and plan.recurse is recurse
    plan = _role(store).decide(_request())
    assert isinstance(plan, Plan) and plan.recurse is None


@pytest.mark.parametrize(("directive", "shape"), [("parallel", [3]), ("sequential", [1, 1, 1]), ("no-fork", [1])])
def test_request_disposition_decides_the_forking_rfc3841_9_1(directive: str, shape: list[int]) -> None:
    store = MemoryStore()
    for n, q in ((21, 1.0), (22, 1.0), (23, 0.5)):
        _bind(store, f"sip:bob@192.0.2.{n}", q=q)
    plan = _role(store).decide(_request(extra=f"Request-Disposition: {directive}"))
    assert isinstance(plan, Plan) and [len(group) for group in plan.groups] == shape


def test_redirect_disposition_answers_302_with_the_contacts_rfc3841_9_1() -> None:
    store = MemoryStore()
    _bind(store, "sip:bob@192.0.2.21", q=0.7)
    answer = _role(store).decide(_request(extra="Request-Disposition: redirect"))
    assert isinstance(answer, Answer) and answer.status == 302
    assert answer.headers == (("Contact", "<sip:bob@192.0.2.21>;q=0.7"),)


def test_reject_contact_removes_devices_by_their_feature_tags_rfc3841_7_2_4() -> None:
    store = MemoryStore()
    _bind(store, "sip:bob@192.0.2.21", params=(("video", None),))
    _bind(store, "sip:bob@192.0.2.22", params=(("audio", None),))
    plan = _role(store).decide(_request(extra="Reject-Contact: *;video"))
    assert isinstance(plan, Plan) and [t.uri.render() for g in plan.groups for t in g] == ["sip:bob@192.0.2.22"]
    answer = _role(store).decide(_request(extra="Accept-Contact: *;video;require;explicit\nReject-Contact: *;video"))
    assert answer == Answer(480, "No Matching Device")


def test_path_becomes_the_route_of_the_target_rfc3327_5_3() -> None:
    store = MemoryStore()
    _bind(store, "sip:bob@192.0.2.21", path=("sip:edge.example.net;lr",))
    plan = _role(store).decide(_request())
    assert isinstance(plan, Plan)
    [[target]] = plan.groups
    forwarded = forward_request(plan, target, POLICY, 1)
    assert [r.uri.render() for r in forwarded.route] == ["sip:edge.example.net;lr"]
    assert forwarded.uri.render() == "sip:bob@192.0.2.21"


def test_no_binding_is_480_and_an_unknown_user_404_once_users_exist_rfc3261_16_5() -> None:
    store = MemoryStore()
    assert _role(store).decide(_request(from_uri="sip:alice@elsewhere.org")) == Answer(480)
    store.users.add("carol", "example.com", "example.com", {"SHA-256": ha1("carol", "example.com", "pw")})
    assert _role(store).decide(_request(from_uri="sip:alice@elsewhere.org")) == Answer(404)


def test_a_request_uri_with_our_port_finds_the_aor_registered_without_it() -> None:
    store = MemoryStore()
    _bind(store, "sip:bob@192.0.2.21")
    plan = _role(store).decide(_request(uri="sip:bob@example.com:5060"))
    assert isinstance(plan, Plan) and [t.uri.render() for g in plan.groups for t in g] == ["sip:bob@192.0.2.21"]


def test_a_device_beside_us_on_our_address_is_not_our_domain() -> None:
    assert POLICY.local(parse_uri("sip:bob@192.0.2.9"))
    assert not POLICY.local(parse_uri("sip:bob@192.0.2.9:5070"))
    assert POLICY.ours(parse_uri("sip:192.0.2.9:5060;lr")) and not POLICY.ours(parse_uri("sip:192.0.2.9:5070;lr"))


# ----------------------------------------------------------------------------------- no open relay
def test_relaying_to_a_foreign_domain_is_403_in_open_mode() -> None:
    answer = _role().decide(_request(uri="sip:carol@elsewhere.org"))
    assert answer == Answer(403, "Relaying Forbidden")


def _authorization(challenge: Answer, request: Request, user: str, password: str) -> str:
    header = dict(challenge.headers)["Proxy-Authenticate"]  # the first challenge: SHA-256
    values = dict(part.strip().split("=", 1) for part in header[len("Digest "):].split(","))
    realm, nonce, opaque = (values[k].strip('"') for k in ("realm", "nonce", "opaque"))
    uri = request.uri.render()
    response = request_digest(ha1(user, realm, password), "SHA-256", nonce, "00000001", "c0ffee", request.method, uri)
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{response}", '
            f'algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c0ffee", opaque="{opaque}"')


def test_relaying_is_407_then_forwarded_for_an_authenticated_local_user_and_the_credentials_consumed_rfc3261_22_3() -> None:
    store = MemoryStore()
    store.users.add("alice", "example.com", "example.com", {"SHA-256": ha1("alice", "example.com", "secret")})
    role = _role(store)
    request = _request(uri="sip:carol@elsewhere.org")
    challenge = role.decide(request)
    assert isinstance(challenge, Answer) and challenge.status == 407
    assert [name for name, _ in challenge.headers] == ["Proxy-Authenticate", "Proxy-Authenticate"]
    again = _request(uri="sip:carol@elsewhere.org", extra=f"Proxy-Authorization: {_authorization(challenge, request, 'alice', 'secret')}")
    plan = role.decide(again)
    assert isinstance(plan, Plan) and [t.uri.render() for g in plan.groups for t in g] == ["sip:carol@elsewhere.org"]
    assert not plan.request.has("Proxy-Authorization")  # §22.3: our realm's credentials are not passed on
    wrong = _request(uri="sip:carol@elsewhere.org", extra=f"Proxy-Authorization: {_authorization(challenge, request, 'alice', 'nope')}")
    assert isinstance(role.decide(wrong), Answer)
    # someone claiming a foreign identity cannot be one of our users: no challenge, 403
    assert role.decide(_request(uri="sip:carol@elsewhere.org", from_uri="sip:mallory@evil.example")) == Answer(403, "Relaying Forbidden")


def test_local_users_are_challenged_for_auth_methods_and_strangers_reach_local_users() -> None:
    store = MemoryStore()
    store.users.add("alice", "example.com", "example.com", {"SHA-256": ha1("alice", "example.com", "secret")})
    _bind(store, "sip:bob@192.0.2.21")
    role = _role(store)
    assert isinstance(role.decide(_request()), Answer)  # From a local domain: 407
    assert role.decide(_request()).status == 407  # type: ignore[union-attr]
    assert isinstance(role.decide(_request(from_uri="sip:carol@elsewhere.org")), Plan)  # a caller from elsewhere
    assert isinstance(role.decide(_request("OPTIONS")), Plan)  # OPTIONS is not in auth_methods


def test_an_in_dialog_request_on_our_route_is_forwarded_without_authentication_or_record_route() -> None:
    store = MemoryStore()
    store.users.add("alice", "example.com", "example.com", {"SHA-256": ha1("alice", "example.com", "secret")})
    request = _request("BYE", "sip:bob@192.0.2.77:5070", to_tag="b1", extra="Route: <sip:192.0.2.9:5060;lr>")
    plan = _role(store).decide(request)
    assert isinstance(plan, Plan) and plan.in_dialog
    forwarded = forward_request(plan, plan.groups[0][0], POLICY, 1)
    assert not forwarded.has("Record-Route") and not forwarded.route
    assert forwarded.uri.render() == "sip:bob@192.0.2.77:5070"


def test_a_dial_plan_routes_tel_uris_to_its_gateway() -> None:
    class Plan9:
        def route(self, uri: object) -> SipURI | None:
            return SipURI("sip", "192.0.2.200", "+15551234") if "555" in str(uri) else None

    store = MemoryStore()
    store.users.add("alice", "example.com", "example.com", {"SHA-256": ha1("alice", "example.com", "secret")})
    role = _role(store, dialplan=Plan9())
    assert role.decide(_request(uri="tel:+1-555-1234")).status == 407  # type: ignore[union-attr]
    assert role.decide(_request(uri="tel:+1-666-1234")) == Answer(404, "No Route For Number")


# ----------------------------------------------------------------------------------------- §16.6
def test_forwarding_sets_the_uri_decrements_max_forwards_records_the_route_and_pushes_a_via_rfc3261_16_6() -> None:
    received = _request()
    plan = Plan(received, (), loop_hash(received), False)
    out = forward_request(plan, Target(parse_uri("sip:bob@192.0.2.21:5062")), POLICY, 3)
    assert out.uri.render() == "sip:bob@192.0.2.21:5062"  # step 2
    assert out.max_forwards == 69  # step 3
    assert [r.uri.render() for r in out.record_route] == ["sip:192.0.2.9:5060;lr"]  # step 4
    assert len(out.via) == 2 and out.via[0].host == "192.0.2.9"  # step 8
    assert out.via[0].branch == f"z9hG4bK{loop_hash(received)}.3"
    assert [f.key for f in out.fields][2:] == [f.key for f in received.fields]  # step 1: the order kept
    absent = _request(forwards=None)
    assert forward_request(Plan(absent, (), "x", False), Target(absent.uri), POLICY, 1).max_forwards == 70
    message = _request("MESSAGE")
    assert not forward_request(Plan(message, (), "x", False), Target(message.uri), POLICY, 1).has("Record-Route")
    quiet = ProxyPolicy(POLICY.domains, POLICY.listeners, record_route=False)
    assert not forward_request(plan, Target(received.uri), quiet, 1).has("Record-Route")


def test_a_next_hop_that_is_a_strict_router_gets_the_request_uri_last_in_route_rfc3261_16_6_step6() -> None:
    received = _request()
    plan = Plan(received, (), "x", True)
    out = forward_request(plan, Target(parse_uri("sip:bob@192.0.2.21"), ("<sip:strict.example.net>",)), POLICY, 1)
    assert out.uri.render() == "sip:strict.example.net"
    assert [r.uri.render() for r in out.route] == ["sip:bob@192.0.2.21"]


def test_record_route_names_the_transport_when_it_is_not_udp() -> None:
    tcp = ProxyPolicy(frozenset(), (Listener("TCP", "192.0.2.9", 5060),))
    assert tcp.record_route_value("TCP").uri.render() == "sip:192.0.2.9:5060;transport=tcp;lr"


def test_timer_c_must_exceed_three_minutes_rfc3261_16_6_step11() -> None:
    with pytest.raises(ValueError, match="3 minutes"):
        ProxyPolicy(frozenset(), (US,), timer_c_ms=180_000)


# ----------------------------------------------------------------------------------------- §16.7
def _final(status: int, *headers: tuple[str, str]) -> Response:
    response = response_for(_request(), status, to_tag="x", headers=list(headers))
    return response


def test_best_response_prefers_6xx_then_the_lowest_class_and_401_407_within_4xx_rfc3261_16_7_step6() -> None:
    assert best_response([_final(486), _final(603), _final(302)]).status == 603
    assert best_response([_final(486), _final(500), _final(302)]).status == 302
    assert best_response([_final(486), _final(407, ("Proxy-Authenticate", 'Digest realm="a"'))]).status == 407
    assert best_response([_final(486), _final(480)]).status == 486


def test_a_chosen_503_goes_upstream_as_500_rfc3261_16_7_step6() -> None:
    assert best_response([_final(503, ("Retry-After", "10"))]).status == 500
    assert not best_response([_final(503, ("Retry-After", "10"))]).has("Retry-After")


def test_challenges_of_every_401_and_407_are_aggregated_rfc3261_16_7_step7() -> None:
    chosen = best_response([
        _final(401, ("WWW-Authenticate", 'Digest realm="a", nonce="1"')),
        _final(407, ("Proxy-Authenticate", 'Digest realm="b", nonce="2"')),
        _final(486),
    ])
    assert chosen.status == 401
    assert [f.key for f in chosen.fields if "authenticate" in f.key] == ["www-authenticate", "proxy-authenticate"]


def test_recursion_on_3xx_adds_its_contacts_instead_of_keeping_it_rfc3261_16_7_step4() -> None:
    received = _request()
    recursive = ProxyPolicy(POLICY.domains, POLICY.listeners, recurse_on_3xx=True)
    context = ResponseContext(Plan(received, ((Target(parse_uri("sip:bob@192.0.2.21")),),), "x", False), recursive)
    [branch] = context.open_next_group()
    assert branch.request is not None
    moved = response_for(branch.request, 302, to_tag="m", headers=[("Contact", "<sip:bob@192.0.2.40>, <sip:bob@192.0.2.21>")])
    assert context.more_targets(moved)
    context.record(branch, moved)
    assert context.finals == []
    # the contact already tried is not tried again (§16.5)
    assert [b.target.uri.render() for b in context.open_next_group()] == ["sip:bob@192.0.2.40"]
    plain = ResponseContext(Plan(received, ((Target(parse_uri("sip:bob@192.0.2.21")),),), "x", False), POLICY)
    [branch] = plain.open_next_group()
    assert not plain.more_targets(moved)  # not configured: the 3xx is passed back
    # RFC 3841 §9.1: the caller's recurse / no-recurse decides over the configuration
    asked = ResponseContext(Plan(received, ((Target(parse_uri("sip:bob@192.0.2.21")),),), "x", False, True, True), POLICY)
    asked.open_next_group()
    assert asked.more_targets(moved)
    refused = ResponseContext(Plan(received, ((Target(parse_uri("sip:bob@192.0.2.21")),),), "x", False, True, False), recursive)
    refused.open_next_group()
    assert not refused.more_targets(moved)


# ---------------------------------------------------------------------------------- §16.10, §16.11
def test_cancel_copies_what_matches_the_forwarded_invite_rfc3261_9_1() -> None:
    received = _request(extra="Route: <sip:192.0.2.50;lr>")
    invite = forward_request(Plan(received, (), "x", False), Target(received.uri), POLICY, 1)
    cancel = cancel_for(invite)
    assert cancel.method == "CANCEL" and cancel.uri == invite.uri
    assert cancel.via == invite.via[:1]
    for name in ("To", "From", "Call-ID", "Route", "Max-Forwards"):
        assert cancel.header_text(name) == invite.header_text(name)
    assert cancel.cseq is not None and (cancel.cseq.seq, cancel.cseq.method) == (1, "CANCEL")


def test_responses_lose_our_via_and_go_where_the_next_says_rfc3261_18_2_2() -> None:
    received = _request()
    invite = forward_request(Plan(received, (), "x", False), Target(received.uri), POLICY, 1)
    response = response_for(invite, 180, to_tag="b")
    upstream = pop_via(response)
    assert len(upstream.via) == 1 and upstream.via[0].branch == "z9hG4bKcaller"
    assert response_hop(upstream) == ("192.0.2.1", 5060)
    stamped = parse(bytes(upstream).replace(b";rport", b";rport=6000;received=198.51.100.7"))
    assert response_hop(stamped) == ("198.51.100.7", 6000)  # type: ignore[arg-type]


def test_an_ack_for_a_2xx_is_forwarded_only_along_our_route_rfc3261_16_11() -> None:
    ack = _request("ACK", "sip:bob@192.0.2.77:5070", to_tag="b1", extra="Route: <sip:192.0.2.9:5060;lr>")
    forwarded = routed_ack(ack, POLICY)
    assert forwarded is not None and forwarded.uri.render() == "sip:bob@192.0.2.77:5070" and len(forwarded.via) == 2
    assert routed_ack(_request("ACK", "sip:bob@192.0.2.77:5070", to_tag="b1"), POLICY) is None
