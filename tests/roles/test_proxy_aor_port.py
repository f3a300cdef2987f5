"""The location lookup of the proxy (RFC 3261 §16.5) when the Request-URI names the port the proxy listens on:
``sip:bob@example.com:5060`` is Bob at this proxy's domain, whether Bob registered his AOR with that port
or without it (SIPp's bench UAS registers ``sip:uas@127.0.0.1`` and its callers dial
``sip:uas@127.0.0.1:PORT``; baresip registers the AOR with the port)."""

from __future__ import annotations

from sipactors.roles.proxy import Plan
from sipactors.store import MemoryStore
from sipactors.store.model import Binding
from tests.roles.test_proxy import NOW, _bind, _request, _role


def _targets(plan: object) -> list[str]:
    assert isinstance(plan, Plan), plan
    return [target.uri.render() for group in plan.groups for target in group]


def test_our_port_in_the_request_uri_finds_the_aor_registered_without_it_rfc3261_16_5() -> None:
    store = MemoryStore()
    _bind(store, "sip:bob@192.0.2.21")  # AOR sip:bob@example.com
    assert _targets(_role(store).decide(_request(uri="sip:bob@example.com:5060"))) == ["sip:bob@192.0.2.21"]


def test_an_aor_registered_with_our_port_is_found_first_rfc3261_16_5() -> None:
    store = MemoryStore()
    _bind(store, "sip:bob@192.0.2.21")
    store.locations.put(Binding("sip:bob@example.com:5060", "sip:bob@192.0.2.22", NOW + 600, "reg2", 1))
    assert _targets(_role(store).decide(_request(uri="sip:bob@example.com:5060"))) == ["sip:bob@192.0.2.22"]
    assert _targets(_role(store).decide(_request(uri="sip:bob@example.com"))) == ["sip:bob@192.0.2.21"]
