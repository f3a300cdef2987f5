"""``WatcherRules.decide``: the most specific rule wins (RFC 5025 §3.1.1 identities, RFC 4745 §7.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipactors.roles.authorization import WatcherRules, watcher_domain
from sipactors.roles.events import Authorization
from sipactors.store.rules import ANY_WATCHER, MemoryRuleStore

ALICE, BOB = "sip:alice@example.com", "sip:bob@example.org"
A = Authorization


def rules_with(*rules: tuple[str, str, Authorization], default: Authorization = A.PENDING) -> WatcherRules:
    store = MemoryRuleStore()
    for presentity, watcher, action in rules:
        store.set(presentity, watcher, action)
    return WatcherRules(store, default)


def test_an_unknown_watcher_is_pending_by_the_server_default_rfc3857() -> None:
    assert rules_with().decide(ALICE, BOB) is A.PENDING


def test_the_server_default_is_configurable() -> None:
    assert rules_with(default=A.BLOCK).decide(ALICE, BOB) is A.BLOCK


def test_a_presentity_watching_itself_is_always_allowed() -> None:
    rules = rules_with((ALICE, ALICE, A.BLOCK), (ALICE, "*@example.com", A.BLOCK), (ALICE, "*", A.BLOCK),
                       default=A.BLOCK)
    assert rules.decide(ALICE, ALICE) is A.ALLOW


def test_the_exact_watcher_rule_beats_the_domain_rule() -> None:
    rules = rules_with((ALICE, "*@example.org", A.ALLOW), (ALICE, BOB, A.BLOCK))
    assert rules.decide(ALICE, BOB) is A.BLOCK
    assert rules.decide(ALICE, "sip:carol@example.org") is A.ALLOW


def test_the_domain_rule_beats_the_presentitys_default() -> None:
    rules = rules_with((ALICE, ANY_WATCHER, A.POLITE_BLOCK), (ALICE, "*@example.org", A.ALLOW))
    assert rules.decide(ALICE, BOB) is A.ALLOW
    assert rules.decide(ALICE, "sip:eve@evil.net") is A.POLITE_BLOCK


def test_the_presentitys_default_beats_the_server_default() -> None:
    assert rules_with((ALICE, ANY_WATCHER, A.ALLOW)).decide(ALICE, BOB) is A.ALLOW


def test_rules_belong_to_their_presentity() -> None:
    rules = rules_with(("sip:carol@example.com", BOB, A.ALLOW))
    assert rules.decide(ALICE, BOB) is A.PENDING


def test_a_domain_rule_matches_sips_and_any_port_but_not_a_tel_uri_rfc5025() -> None:
    rules = rules_with((ALICE, "*@example.org", A.ALLOW))
    assert rules.decide(ALICE, "sips:bob@example.org") is A.ALLOW
    assert rules.decide(ALICE, "sip:bob@example.org:5070") is A.ALLOW
    assert rules.decide(ALICE, "sip:bob@sub.example.org") is A.PENDING  # a domain, not its subdomains
    assert rules.decide(ALICE, "tel:+12015550123") is A.PENDING  # RFC 5025 §3.1.1.2: other schemes never match


def test_a_sip_uri_with_a_phone_number_does_not_match_a_tel_rule_rfc5025() -> None:
    rules = rules_with((ALICE, "tel:+12015550123", A.ALLOW))
    assert rules.decide(ALICE, "sip:+12015550123@example.org") is A.PENDING
    assert rules.decide(ALICE, "tel:+12015550123") is A.ALLOW


@pytest.mark.parametrize(("watcher", "domain"), [
    ("sip:bob@Example.ORG", "example.org"), ("sips:bob@h.example.org:5061", "h.example.org"),
    ("sip:example.org", "example.org"), ("sip:bob@[2001:db8::1]:5060", "[2001:db8::1]"),
    ("tel:+12015550123", None), ("urn:service:sos", None),
])
def test_watcher_domain(watcher: str, domain: str | None) -> None:
    assert watcher_domain(watcher) == domain


_watchers = st.sampled_from([BOB, "sip:carol@example.org", "sip:eve@evil.net"])
_rule_watchers = st.sampled_from([BOB, "sip:carol@example.org", "sip:eve@evil.net", "*@example.org", "*@evil.net", "*"])
_rules = st.dictionaries(_rule_watchers, st.sampled_from(list(A)))


@given(_rules, _watchers, st.sampled_from(list(A)))
def test_decide_is_the_first_rule_in_order_exact_domain_default_server(
    rules: dict[str, Authorization], watcher: str, default: Authorization,
) -> None:
    decided = rules_with(*((ALICE, w, a) for w, a in rules.items()), default=default).decide(ALICE, watcher)
    domain = watcher.rpartition("@")[2]
    expected = next((rules[key] for key in (watcher, f"*@{domain}", "*") if key in rules), default)
    assert decided is expected
