"""RFC 3261 §19.1.4 URI comparison (with RFC 5954 §4.2), as the location service uses it, and the canonical
AOR of §10.3 step 5."""

from __future__ import annotations

from itertools import combinations

import pytest

from sipactors.store import canonical_aor, same_contact

# The sets §19.1.4 lists as equivalent: every pair within a set is equal.
EQUIVALENT = [
    ["sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"],
    ["sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"],
    ["sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"],
    ["sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"],
    ["sip:bob@[2001:db8::9:1]", "sip:bob@[2001:db8:0:0:0:0:9:1]"],  # RFC 5954 §4.2: the same binary address
]

# The pairs §19.1.4 lists as not equivalent, then rules it states without an example.
NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),  # different usernames
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),  # can resolve to different ports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),  # can resolve to different transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),  # different port and transport
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),  # different header component
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),  # even though that is what the name resolves to
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),  # equality is not transitive
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),  # a SIP and a SIPS URI are never equivalent
    ("sip:alice@atlanta.com", "sip:alice:secret@atlanta.com"),  # a password in one only
    ("sip:atlanta.com", "sip:alice@atlanta.com"),  # a user in one only
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;maddr=239.255.255.1"),
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;user=ip"),
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;ttl=15"),
    ("sip:alice@atlanta.com", "sip:alice@atlanta.com;method=INVITE"),
    ("sip:a;b@atlanta.com", "sip:a%3Bb@atlanta.com"),  # ";" is reserved: its escape is not the character
]


@pytest.mark.parametrize("uris", EQUIVALENT, ids=lambda uris: uris[0])
def test_uris_listed_as_equivalent_in_rfc3261_19_1_4_are(uris: list[str]) -> None:
    for a, b in combinations(uris, 2):
        assert same_contact(a, b) and same_contact(b, a)


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_uris_listed_as_not_equivalent_in_rfc3261_19_1_4_are_not(a: str, b: str) -> None:
    assert not same_contact(a, b) and not same_contact(b, a)


def test_escapes_of_reserved_characters_compare_by_their_value_not_their_case() -> None:
    assert same_contact("sip:a%3bb@atlanta.com", "sip:a%3Bb@atlanta.com")


def test_an_unparsable_contact_is_refused_not_compared() -> None:
    with pytest.raises(ValueError):
        same_contact("sip:alice@atlanta.com", "<sip:alice@atlanta.com>")


@pytest.mark.parametrize(("to", "aor"), [
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com"),
    ("SIP:Bob@BiLoxi.COM;user=phone;transport=udp", "sip:Bob@biloxi.com"),  # parameters go, user keeps its case
    ("sip:%62ob@biloxi.com", "sip:bob@biloxi.com"),  # escapes are expanded
    ("sips:bob:secret@biloxi.com:5061", "sips:bob@biloxi.com:5061"),  # the port stays: §19.1.4 tells it apart
    ("tel:+1-201-555-0123", "tel:+12015550123"),  # RFC 3966 §5.1.1 visual separators mean nothing
    ("tel:7042;phone-context=Example.COM", "tel:7042;phone-context=example.com"),
])
def test_the_canonical_aor_of_rfc3261_10_3_step_5(to: str, aor: str) -> None:
    assert canonical_aor(to) == aor


def test_a_to_uri_that_is_not_a_uri_has_no_aor() -> None:
    with pytest.raises(ValueError):
        canonical_aor("bob at biloxi")


def test_without_port_names_the_resource_a_port_of_ours_addresses() -> None:
    """A presentity or a recipient is the AOR without the port that names this server (store.model)."""
    from sipactors.store.model import canonical_aor, without_port

    assert without_port(canonical_aor("sip:bob@127.0.0.1:5060;transport=udp")) == "sip:bob@127.0.0.1"
    assert without_port("sip:bob@example.com") == "sip:bob@example.com"
    assert without_port(canonical_aor("sips:%61lice@EXAMPLE.com:5061")) == canonical_aor("sips:alice@example.com")
    assert without_port("tel:+15551234") == "tel:+15551234"
