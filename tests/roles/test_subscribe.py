"""The notifier's pure part (sipactors/roles/subscribe.py) and its wiring in the core: the checks of RFC
6665 §4.2.1.1 (489 with Allow-Events, 423 with Min-Expires, 406 with Accept, 404), the default and
maximum Expires, the 200 (never 202, §8.3.1), the NOTIFY of RFC 3261 §12.2.1.1 and RFC 6665 §4.2.2; the
core hands local SUBSCRIBEs to the notifier and others to the proxy, OPTIONS names Allow-Events, and a
local user's SUBSCRIBE is challenged as the proxy challenges it (407)."""

from __future__ import annotations

from typing import Any

import pytest

from sipactors.message import NameAddr, Request, SipURI, Via, parse
from sipactors.message.params import Params
from sipactors.roles.core import Core
from sipactors.roles.digest import Authenticator
from sipactors.roles.events import Body
from sipactors.roles.proxy import Answer, Listener, ProxyPolicy, ProxyRole
from sipactors.roles.subscribe import (
    Refusal,
    Subscribe,
    SubscribePolicy,
    accepted,
    check_subscribe,
    media_allowed,
    notify_request,
)
from sipactors.runtime.subscription import Notifier
from sipactors.store import MemoryStore
from tests.roles.test_core import FakeProxy, Layer
from tests.runtime.subscription_world import TextPackage

POLICY = SubscribePolicy(min_expires=60, max_expires=7200)
DOMAIN = ProxyPolicy(frozenset({"example.com"}), (Listener("UDP", "192.0.2.9", 5060),))
CONTACT = NameAddr(SipURI("sip", "192.0.2.9", None, port=5060))


def _subscribe(uri: str = "sip:bob@example.com", *headers: str, to_tag: str = "", route: str = "") -> Request:
    extra = "".join(f"{h}\r\n" for h in headers)
    message = parse((
        f"SUBSCRIBE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n"
        f"{route}To: <{uri}>{';tag=' + to_tag if to_tag else ''}\r\nFrom: <sip:alice@example.com>;tag=a1\r\n"
        f"Call-ID: c1\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:alice@192.0.2.1>\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode())
    assert isinstance(message, Request)
    return message


PACKAGES = {"x-test": TextPackage()}


@pytest.mark.parametrize(("headers", "status", "header"), [
    ((), 489, ("Allow-Events", "x-test")),
    (("Event: presence",), 489, ("Allow-Events", "x-test")),
    (("Event: x-test", "Expires: 30"), 423, ("Min-Expires", "60")),
    (("Event: x-test", "Accept: application/pidf+xml"), 406, ("Accept", "text/plain")),
])
def test_refusals_rfc6665_4_2_1_1(headers: tuple[str, ...], status: int, header: tuple[str, str]) -> None:
    refusal = check_subscribe(_subscribe("sip:bob@example.com", *headers), PACKAGES, POLICY)
    assert isinstance(refusal, Refusal) and refusal.status == status
    response = refusal.response(_subscribe(), "t")
    assert response.header_text(header[0]) == header[1]


def test_unknown_resource_is_404_and_no_package_means_489_without_allow_events() -> None:
    assert check_subscribe(_subscribe("sip:nobody@example.com", "Event: x-test"), PACKAGES, POLICY) == Refusal(404)
    refusal = check_subscribe(_subscribe("sip:bob@example.com", "Event: x-test"), {}, POLICY)
    assert refusal == Refusal(489)  # Allow-Events needs one package at least (RFC 6665 §8.2.2)


def test_expires_default_maximum_and_zero_rfc6665_4_2_1_1() -> None:
    checked = check_subscribe(_subscribe("sip:bob@example.com", "Event: X-Test;id=7", "Supported: eventlist"), PACKAGES, POLICY)
    assert checked == Subscribe("x-test", "7", 3600, "sip:bob@example.com", (), frozenset({"eventlist"}))
    assert check_subscribe(_subscribe("sip:bob@example.com", "Event: x-test", "Expires: 99999"), PACKAGES, POLICY).expires == 7200  # type: ignore[union-attr]
    assert check_subscribe(_subscribe("sip:bob@example.com", "Event: x-test", "Expires: 0"), PACKAGES, POLICY).expires == 0  # type: ignore[union-attr]


def test_accept_ranges_rfc3261_20_1() -> None:
    assert media_allowed((), "text/plain") and media_allowed(("*/*",), "text/plain")
    assert media_allowed(("text/*",), "text/plain;charset=utf-8") and not media_allowed(("application/*",), "text/plain")


def test_the_200_has_expires_contact_and_the_record_route_rfc6665_4_2_1_1_rfc3261_12_1_1() -> None:
    request = _subscribe("sip:bob@example.com", "Event: x-test", "Record-Route: <sip:p.example.com;lr>")
    response = accepted(request, "n1", 600, CONTACT)
    assert response.status == 200 and response.expires == 600 and response.to.tag == "n1"  # type: ignore[union-attr]
    assert response.header_text("Contact") == "<sip:192.0.2.9:5060>"
    assert response.header_text("Record-Route") == "<sip:p.example.com;lr>"


def test_notify_in_the_dialog_rfc3261_12_2_1_1_rfc6665_4_2_2() -> None:
    notify = notify_request(
        call_id="c1", local_uri="sip:bob@example.com", local_tag="n1", remote_uri="sip:alice@example.com",
        remote_tag="a1", remote_target="sip:alice@192.0.2.1", route_set=("sip:p1.example.com;lr", "sip:p2;lr"),
        cseq=5, event="x-test", event_id="7", state="terminated", expires_left=None, reason="noresource",
        contact=CONTACT, body=Body("text/plain", b"x"), via=Via("UDP", "192.0.2.9", 5060, Params((("branch", "z9hG4bKn"),))),
        retry_after=30,
    )
    again = parse(bytes(notify))
    assert isinstance(again, Request) and again.method == "NOTIFY" and again.uri.render() == "sip:alice@192.0.2.1"
    assert again.to.tag == "a1" and again.from_.tag == "n1" and again.cseq.seq == 5  # type: ignore[union-attr]
    assert [r.uri.render() for r in again.route] == ["sip:p1.example.com;lr", "sip:p2;lr"]
    assert again.header_text("Event") == "x-test;id=7" and again.max_forwards == 70
    assert again.header_text("Subscription-State") == "terminated;reason=noresource;retry-after=30"
    assert again.body == b"x" and again.header_text("Content-Type") == "text/plain"


def _core(packages: bool = True) -> tuple[Core, Notifier, FakeProxy]:
    notifier = Notifier(None, CONTACT, lambda: 0.0, via_host="192.0.2.9", via_port=5060, domain=DOMAIN)
    if packages:
        notifier.register(TextPackage())
    proxy = FakeProxy()
    return Core("test", proxy=proxy, notifier=notifier), notifier, proxy


class PeerLayer(Layer):
    def peer(self, key: Any) -> Any:
        return (("192.0.2.1", 5060), None)


def test_core_sends_local_subscribes_to_the_notifier_and_others_to_the_proxy() -> None:
    core, _, proxy = _core()
    layer = PeerLayer()
    core.request(layer, "k1", _subscribe("sip:bob@example.com", "Event: presence"))
    assert [r.status for r in layer.answers] == [489] and layer.answers[0].header_text("Allow-Events") == "x-test"
    core.request(layer, "k2", _subscribe("sip:bob@elsewhere.example", "Event: x-test"))
    core.request(layer, "k3", _subscribe("sip:bob@example.com", "Event: x-test", route="Route: <sip:proxy.elsewhere;lr>\r\n"))
    assert proxy.calls == [("request", "SUBSCRIBE"), ("request", "SUBSCRIBE")]
    # in-dialog, to our Contact, for no subscription of ours: 481 (RFC 3261 §12.2.2)
    core.request(layer, "k4", _subscribe("sip:192.0.2.9:5060", "Event: x-test", to_tag="gone"))
    assert layer.answers[-1].status == 481


def test_options_names_allow_events_rfc6665_4_4_4() -> None:
    core, _, _ = _core()
    options = core.answer(parse(bytes(_subscribe()).replace(b"SUBSCRIBE", b"OPTIONS")), "t")  # type: ignore[arg-type]
    assert options.header_text("Allow-Events") == "x-test" and "SUBSCRIBE" in (options.header_text("Allow") or "")
    bare, _, _ = _core(packages=False)
    assert bare.answer(parse(bytes(_subscribe()).replace(b"SUBSCRIBE", b"OPTIONS")), "t").header_text("Allow-Events") is None  # type: ignore[arg-type]


def test_a_local_users_subscribe_is_challenged_like_the_proxys_407() -> None:
    store = MemoryStore()
    store.users.add("alice", "example.com", "example.com", {"MD5": "0" * 32})
    role = ProxyRole(store, DOMAIN, Authenticator(b"k" * 32), lambda: 1_800_000_000.0, lambda n: b"s" * n)
    notifier = Notifier(None, CONTACT, lambda: 0.0, via_host="192.0.2.9", via_port=5060, domain=DOMAIN,
                        admit=role.admit_local)
    notifier.register(TextPackage())
    layer = PeerLayer()
    notifier.request(layer, "k", _subscribe("sip:bob@example.com", "Event: x-test"))
    (answer,) = layer.answers
    assert answer.status == 407 and answer.header_text("Proxy-Authenticate")
    assert isinstance(role.admit_local(_subscribe()), Answer)
