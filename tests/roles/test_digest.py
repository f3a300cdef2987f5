"""Digest authentication (sipactors/roles/digest.py) read beside RFC 7616, RFC 8760 and RFC 3261 §22."""

from __future__ import annotations

import base64
import hashlib
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipactors.message import Credentials, Request, parse, parse_oracle, quote
from sipactors.message.build import response_for
from sipactors.message.headers import parse_value, spec_for
from sipactors.roles.digest import (
    ANSWERS,
    PROXY_TO_USER,
    USER_TO_USER,
    Authenticator,
    CountResult,
    Decision,
    DigestPolicy,
    NonceCounts,
    NonceMint,
    NonceState,
    StoredCredentials,
    Throttle,
    Verdict,
    ha1,
    request_digest,
    userhash,
)

SECRET = b"0123456789abcdef0123456789abcdef"
SALT = b"saltsalt"
REALM = "biloxi.com"
T0 = 1_700_000_000.0
SOURCE = "192.0.2.7"

# RFC 7616 §3.9.1
MUFASA = "Mufasa"
LION_PASSWORD = "Circle of Life"
EXAMPLE_REALM = "http-auth@example.org"
EXAMPLE_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
EXAMPLE_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


# ------------------------------------------------------------------------------------------ helpers
class Client:
    """A UAC's side of RFC 7616 §3.4, kept apart from the server code under test."""

    def __init__(self, username: str, password: str, cnonce: str = "0a4f113b") -> None:
        self.username = username
        self.password = password
        self.cnonce = cnonce

    def authorization(
        self, challenge: Credentials, method: str, uri: str, nc: int, *, password: str | None = None,
        extra: str = "",
    ) -> str:
        realm = (challenge.get("realm") or "").encode("latin-1").decode()  # the octets on the wire are UTF-8
        nonce = challenge.get("nonce") or ""
        algorithm = challenge.get("algorithm") or "MD5"
        secret = ha1(self.username, realm, self.password if password is None else password, algorithm, nonce=nonce, cnonce=self.cnonce)
        nc_text = f"{nc:08x}"
        response = request_digest(secret, algorithm, nonce, nc_text, self.cnonce, method, uri)
        return (
            f"Digest username={quote(self.username)}, realm={quote(realm)}, nonce={quote(nonce)}, "
            f"uri={quote(uri)}, response=\"{response}\", algorithm={algorithm}, qop=auth, nc={nc_text}, "
            f"cnonce={quote(self.cnonce)}, opaque={quote(challenge.get('opaque') or '')}{extra}"
        )


def make_request(
    method: str = "REGISTER", uri: str = "sip:biloxi.com", *, header: str = "Authorization",
    credentials: str | None = None,
) -> Request:
    lines = [
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKnashds7",
        "To: Bob <sip:bob@biloxi.com>",
        "From: Bob <sip:bob@biloxi.com>;tag=456248",
        "Call-ID: 843817637684230@998sdasdh09",
        f"CSeq: 1826 {method}",
    ]
    if credentials is not None:
        lines.append(f"{header}: {credentials}")
    message = parse(("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode())
    assert isinstance(message, Request)
    return message


def challenges(decision: Decision, name: str = "WWW-Authenticate") -> list[Credentials]:
    spec = spec_for(name)
    assert spec is not None
    assert all(header == name for header, _ in decision.headers)
    return [parse_value(spec, text) for _, text in decision.headers]


BOB = StoredCredentials.from_password("bob", REALM, "zanzibar")


def lookup(username: str, realm: str) -> StoredCredentials | None:
    return BOB if (username, realm) == (BOB.username, BOB.realm) else None


def authenticate(auth: Authenticator, request: Request, now: float = T0, source: str = SOURCE, **kw: object) -> Decision:
    return auth.authenticate(request, realm=REALM, source=source, now=now, salt=SALT, lookup=lookup, **kw)  # type: ignore[arg-type]


def first_challenge(auth: Authenticator, now: float = T0) -> Credentials:
    decision = authenticate(auth, make_request(), now)
    assert decision.verdict is Verdict.MISSING
    return challenges(decision)[0]


def register_with(auth: Authenticator, challenge: Credentials, nc: int, now: float = T0, **kw: object) -> Decision:
    client = Client("bob", "zanzibar")
    return authenticate(auth, make_request(credentials=client.authorization(challenge, "REGISTER", "sip:biloxi.com", nc, **kw)), now)  # type: ignore[arg-type]


# ------------------------------------------------------------------------- RFC 7616 §3.9.1 example
def test_rfc7616_example_response_reproduces_for_sha256() -> None:
    secret = ha1(MUFASA, EXAMPLE_REALM, LION_PASSWORD, "SHA-256")
    response = request_digest(secret, "SHA-256", EXAMPLE_NONCE, "00000001", EXAMPLE_CNONCE, "GET", "/dir/index.html")
    assert response == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"


def test_rfc7616_example_response_reproduces_for_md5() -> None:
    secret = ha1(MUFASA, EXAMPLE_REALM, LION_PASSWORD, "MD5")
    response = request_digest(secret, "MD5", EXAMPLE_NONCE, "00000001", EXAMPLE_CNONCE, "GET", "/dir/index.html")
    assert response == "8ca523f5e9506fed4657c9700eebdbec"


def test_session_variant_hashes_the_stored_ha1_with_nonce_and_cnonce_rfc7616_3_4_2() -> None:
    plain = ha1(MUFASA, EXAMPLE_REALM, LION_PASSWORD, "SHA-256")
    session = ha1(MUFASA, EXAMPLE_REALM, LION_PASSWORD, "SHA-256-sess", nonce="n", cnonce="c")
    assert session != plain
    assert session == hashlib.sha256(f"{plain}:n:c".encode()).hexdigest()
    with pytest.raises(ValueError, match="nonce"):
        ha1(MUFASA, EXAMPLE_REALM, LION_PASSWORD, "MD5-sess")


def test_userhash_is_the_hash_of_username_and_realm_rfc7616_3_4_4() -> None:
    assert userhash(MUFASA, EXAMPLE_REALM) == hashlib.sha256(b"Mufasa:http-auth@example.org").hexdigest()
    assert len(userhash(MUFASA, EXAMPLE_REALM, "MD5")) == 32


def test_stored_credentials_keep_one_ha1_per_algorithm_and_never_the_password_rfc7616_5_2() -> None:
    stored = StoredCredentials.from_password(MUFASA, EXAMPLE_REALM, LION_PASSWORD, ("SHA-256", "MD5", "SHA-256-sess"))
    assert [name for name, _ in stored.ha1s] == ["SHA-256", "MD5"]
    assert stored.ha1_for("MD5") == "3d78807defe7de2157e2b0b6573a855f"
    assert stored.ha1_for("SHA-256-sess") == stored.ha1_for("SHA-256")
    assert stored.ha1_for("SHA-512-256") is None
    assert LION_PASSWORD not in repr(stored)


# ------------------------------------------------------------------------------------------ nonces
def test_nonce_is_valid_then_stale_after_its_lifetime() -> None:
    mint = NonceMint(SECRET, lifetime=30)
    nonce = mint.issue(REALM, T0, SALT)
    assert mint.verify(nonce, REALM, T0 + 30) is NonceState.VALID
    assert mint.verify(nonce, REALM, T0 + 30.001) is NonceState.STALE


def test_nonce_from_another_node_with_the_same_secret_verifies_statelessly() -> None:
    nonce = NonceMint(SECRET).issue(REALM, T0, SALT)
    assert NonceMint(SECRET).verify(nonce, REALM, T0 + 1) is NonceState.VALID


def test_nonce_forged_with_another_secret_is_invalid() -> None:
    forged = NonceMint(b"another secret of 32 bytes......").issue(REALM, T0, SALT)
    assert NonceMint(SECRET).verify(forged, REALM, T0) is NonceState.INVALID


def test_nonce_with_a_tampered_timestamp_is_invalid() -> None:
    mint = NonceMint(SECRET, lifetime=30)
    raw = bytearray(base64.b64decode(mint.issue(REALM, T0 - 3600, SALT)))
    raw[:8] = int(T0 * 1_000_000).to_bytes(8, "big")  # make an old nonce look fresh
    assert mint.verify(base64.b64encode(bytes(raw)).decode(), REALM, T0) is NonceState.INVALID


def test_nonce_of_another_realm_garbage_or_the_future_is_invalid() -> None:
    mint = NonceMint(SECRET, skew=5)
    assert mint.verify(mint.issue("atlanta.com", T0, SALT), REALM, T0) is NonceState.INVALID
    assert mint.verify("not base64!", REALM, T0) is NonceState.INVALID
    assert mint.verify(base64.b64encode(b"short").decode(), REALM, T0) is NonceState.INVALID
    assert mint.verify(mint.issue(REALM, T0 + 60, SALT), REALM, T0) is NonceState.INVALID


def test_nonces_differ_by_salt_within_one_instant_rfc7616_3_3() -> None:
    mint = NonceMint(SECRET)
    assert mint.issue(REALM, T0, SALT) != mint.issue(REALM, T0, b"pepper!!")
    with pytest.raises(ValueError):
        mint.issue(REALM, T0, b"short")
    with pytest.raises(ValueError):
        NonceMint(b"too short")


# -------------------------------------------------------------------------------------- challenges
def test_challenge_offers_sha256_then_md5_with_qop_auth_rfc8760_2_3() -> None:
    decision = authenticate(Authenticator(SECRET), make_request())
    assert (decision.verdict, decision.status) == (Verdict.MISSING, 401)
    values = challenges(decision)
    assert [value.get("algorithm") for value in values] == ["SHA-256", "MD5"]
    for value in values:
        assert value.scheme == "Digest"
        assert (value.get("realm"), value.get("qop"), value.get("stale")) == (REALM, "auth", None)
        assert value.get("nonce") == values[0].get("nonce") and value.get("opaque")


def test_challenge_texts_survive_a_response_through_hot_path_and_oracle() -> None:
    decision = authenticate(Authenticator(SECRET), make_request())
    response = response_for(make_request(), decision.status or 0, to_tag="1", headers=list(decision.headers))
    for parser in (parse, parse_oracle):
        parsed = parser(response.to_bytes())
        fields = parsed.get_fields("WWW-Authenticate")
        assert [f.parsed.get("algorithm") for f in fields] == ["SHA-256", "MD5"]


def test_proxy_challenge_is_407_with_proxy_authenticate_rfc3261_22_3() -> None:
    auth = Authenticator(SECRET)
    decision = authenticate(auth, make_request("INVITE", "sip:alice@atlanta.com"), exchange=PROXY_TO_USER)
    assert decision.status == 407
    challenge = challenges(decision, "Proxy-Authenticate")[0]
    client = Client("bob", "zanzibar")
    credentials = client.authorization(challenge, "INVITE", "sip:alice@atlanta.com", 1)
    ok = authenticate(auth, make_request("INVITE", "sip:alice@atlanta.com", header="Proxy-Authorization",
                                         credentials=credentials), exchange=PROXY_TO_USER)
    assert (ok.verdict, ok.status, ok.username) == (Verdict.OK, None, "bob")
    # Authorization is the UAS's header: a proxy does not consume it (RFC 3261 §22.3)
    other = authenticate(auth, make_request("INVITE", "sip:alice@atlanta.com", credentials=credentials),
                         exchange=PROXY_TO_USER)
    assert other.verdict is Verdict.MISSING


def test_every_verdict_has_an_answer() -> None:
    assert set(ANSWERS) == set(Verdict)
    for answer in ANSWERS.values():
        assert not (answer.challenge and answer.status is not None)


# ------------------------------------------------------------------------------------ verification
@pytest.mark.parametrize("index", [0, 1], ids=["sha256", "md5"])
def test_client_response_verifies_ok(index: int) -> None:
    auth = Authenticator(SECRET)
    challenge = challenges(authenticate(auth, make_request()))[index]
    decision = register_with(auth, challenge, 1)
    assert (decision.verdict, decision.status, decision.username, decision.headers) == (Verdict.OK, None, "bob", ())
    assert register_with(auth, challenge, 2).verdict is Verdict.OK  # the next nc on the same nonce


def test_wrong_password_is_refused_with_a_new_challenge() -> None:
    auth = Authenticator(SECRET)
    decision = register_with(auth, first_challenge(auth), 1, password="guess")
    assert (decision.verdict, decision.status, decision.username) == (Verdict.BAD_CREDENTIALS, 401, None)
    assert [c.get("stale") for c in challenges(decision)] == [None, None]


def test_unknown_user_gets_the_same_answer_as_a_wrong_password() -> None:
    auth = Authenticator(SECRET)
    challenge = first_challenge(auth)
    stranger = Client("mallory", "zanzibar").authorization(challenge, "REGISTER", "sip:biloxi.com", 1)
    decision = authenticate(auth, make_request(credentials=stranger))
    wrong = register_with(auth, challenge, 1, password="guess")
    assert decision.verdict is Verdict.UNKNOWN_USER
    assert (decision.status, len(decision.headers)) == (wrong.status, len(wrong.headers))


def test_replayed_nonce_count_is_refused_rfc7616_5_5() -> None:
    auth = Authenticator(SECRET)
    challenge = first_challenge(auth)
    assert register_with(auth, challenge, 1).verdict is Verdict.OK
    replay = register_with(auth, challenge, 1)
    assert (replay.verdict, replay.status) == (Verdict.REPLAYED, 401)
    assert all(c.get("stale") == "true" for c in challenges(replay))


def test_nonce_count_going_backwards_is_refused() -> None:
    auth = Authenticator(SECRET)
    challenge = first_challenge(auth)
    assert register_with(auth, challenge, 5).verdict is Verdict.OK
    assert register_with(auth, challenge, 4).verdict is Verdict.REPLAYED
    assert register_with(auth, challenge, 6).verdict is Verdict.OK


def test_expired_nonce_gets_stale_true_rfc7616_3_3() -> None:
    auth = Authenticator(SECRET, DigestPolicy(nonce_lifetime=60))
    challenge = first_challenge(auth)
    decision = register_with(auth, challenge, 1, now=T0 + 61)
    assert (decision.verdict, decision.status) == (Verdict.STALE, 401)
    fresh = challenges(decision)
    assert [c.get("stale") for c in fresh] == ["true", "true"]
    assert "stale=true" in decision.headers[0][1]
    assert register_with(auth, fresh[0], 1, now=T0 + 61).verdict is Verdict.OK


def test_expired_nonce_with_a_wrong_password_is_not_stale() -> None:
    auth = Authenticator(SECRET, DigestPolicy(nonce_lifetime=60))
    decision = register_with(auth, first_challenge(auth), 1, now=T0 + 61, password="guess")
    assert decision.verdict is Verdict.BAD_CREDENTIALS


def test_forged_nonce_is_answered_with_a_plain_challenge() -> None:
    auth = Authenticator(SECRET)
    forger = Authenticator(b"another secret of 32 bytes......")
    decision = register_with(auth, first_challenge(forger), 1)
    assert (decision.verdict, decision.status) == (Verdict.UNKNOWN_NONCE, 401)
    assert challenges(decision)[0].get("stale") is None


def test_digest_uri_must_match_the_request_uri_rfc7616_3_4_6() -> None:
    auth = Authenticator(SECRET)
    credentials = Client("bob", "zanzibar").authorization(first_challenge(auth), "REGISTER", "sip:atlanta.com", 1)
    decision = authenticate(auth, make_request(credentials=credentials))
    assert (decision.verdict, decision.status) == (Verdict.URI_MISMATCH, 400)
    equivalent = Client("bob", "zanzibar").authorization(first_challenge(auth), "REGISTER", "sip:BILOXI.com", 1)
    assert authenticate(auth, make_request(credentials=equivalent)).verdict is Verdict.OK  # RFC 3261 §19.1.4


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: text.replace(", nc=00000001", ""),
        lambda text: text.replace(", qop=auth", ""),
        lambda text: text.replace("nc=00000001", "nc=1"),
        lambda text: text.replace("nc=00000001", "nc=00000000"),
        lambda text: text + ", username*=UTF-8''bob",
        lambda text: text + ", userhash=true",
        lambda text: text.replace('uri="sip:biloxi.com"', 'uri="not a uri"'),
    ],
    ids=["no-nc", "no-qop", "short-nc", "zero-nc", "both-usernames", "userhash", "bad-uri"],
)
def test_malformed_credentials_get_400(edit: object) -> None:
    auth = Authenticator(SECRET)
    text = Client("bob", "zanzibar").authorization(first_challenge(auth), "REGISTER", "sip:biloxi.com", 1)
    decision = authenticate(auth, make_request(credentials=edit(text)))  # type: ignore[operator]
    assert (decision.verdict, decision.status) == (Verdict.MALFORMED, 400)


def test_extended_username_is_decoded_rfc7616_3_4() -> None:
    auth = Authenticator(SECRET)
    text = Client("bob", "zanzibar").authorization(first_challenge(auth), "REGISTER", "sip:biloxi.com", 1)
    text = text.replace('username="bob"', "username*=UTF-8''%62ob")
    assert authenticate(auth, make_request(credentials=text)).verdict is Verdict.OK


def test_credentials_for_another_realm_are_not_ours() -> None:
    auth = Authenticator(SECRET)
    other = Authenticator(SECRET).challenge("atlanta.com", T0, SALT, exchange=USER_TO_USER)
    challenge = challenges(other)[0]
    text = Client("bob", "zanzibar").authorization(challenge, "REGISTER", "sip:biloxi.com", 1)
    assert authenticate(auth, make_request(credentials=text)).verdict is Verdict.MISSING


def test_algorithm_not_offered_is_rechallenged() -> None:
    auth = Authenticator(SECRET, DigestPolicy(algorithms=("SHA-256",)))
    challenge = first_challenge(auth)
    md5 = Credentials(challenge.scheme, tuple((n, "MD5" if n == "algorithm" else v) for n, v in challenge.params))
    assert register_with(auth, md5, 1).verdict is Verdict.UNSUPPORTED_ALGORITHM


def test_session_algorithm_round_trip() -> None:
    auth = Authenticator(SECRET, DigestPolicy(algorithms=("SHA-256-sess",)))
    challenge = first_challenge(auth)
    assert challenge.get("algorithm") == "SHA-256-sess"
    assert register_with(auth, challenge, 1).verdict is Verdict.OK
    assert register_with(auth, challenge, 2, password="guess").verdict is Verdict.BAD_CREDENTIALS


# -------------------------------------------------------------------------------- bounded nc state
def test_nonce_counts_forget_expired_nonces() -> None:
    counts = NonceCounts(lifetime=60)
    assert counts.advance("a", T0, 1, T0) is CountResult.ADVANCED
    assert counts.advance("b", T0 + 30, 1, T0 + 30) is CountResult.ADVANCED
    assert counts.advance("c", T0 + 61, 1, T0 + 61) is CountResult.ADVANCED
    assert len(counts) == 2


def test_nonce_counts_evicted_at_capacity_make_older_nonces_stale_never_replayable() -> None:
    auth = Authenticator(SECRET, DigestPolicy(max_nonce_counts=2))
    old = first_challenge(auth, T0)
    assert register_with(auth, old, 1, now=T0).verdict is Verdict.OK
    for step in (1, 2):
        assert register_with(auth, first_challenge(auth, T0 + step), 1, now=T0 + step).verdict is Verdict.OK
    assert len(auth.counts) == 2
    assert register_with(auth, old, 1, now=T0 + 3).verdict is Verdict.STALE  # not accepted as new


# ---------------------------------------------------------------------------------------- throttle
def test_throttle_starts_after_the_limit_and_ends_after_the_backoff(caplog: pytest.LogCaptureFixture) -> None:
    auth = Authenticator(SECRET, DigestPolicy(failure_limit=3, failure_window=60, backoff=120))
    challenge = first_challenge(auth)
    with caplog.at_level(logging.INFO, logger="sipactors.roles.digest"):
        for nc in (1, 2):
            assert register_with(auth, challenge, nc, now=T0 + nc, password="guess").status == 401
        assert not [r for r in caplog.records if "throttle starts" in r.getMessage()]
        assert register_with(auth, challenge, 3, now=T0 + 3, password="guess").status == 401
    starts = [r for r in caplog.records if "throttle starts" in r.getMessage()]
    assert len(starts) == 1 and SOURCE in starts[0].getMessage() and "guess" not in caplog.text
    refused = register_with(auth, challenge, 4, now=T0 + 10)  # the right password does not help now
    assert (refused.verdict, refused.status, refused.headers) == (Verdict.THROTTLED, 403, ())
    other = authenticate(auth, make_request(), now=T0 + 10, source="198.51.100.1")
    assert other.verdict is Verdict.MISSING  # another source is not affected
    later = first_challenge(auth, T0 + 123.1)
    assert register_with(auth, later, 1, now=T0 + 123.1).verdict is Verdict.OK


def test_failures_outside_the_window_do_not_add_up() -> None:
    throttle = Throttle(limit=2, window=10, backoff=100)
    assert throttle.failure(SOURCE, T0) is False
    assert throttle.failure(SOURCE, T0 + 11) is False
    assert throttle.blocked(SOURCE, T0 + 11) is None
    assert throttle.failure(SOURCE, T0 + 12) is True
    assert throttle.blocked(SOURCE, T0 + 12) == pytest.approx(100)


def test_throttle_remembers_a_bounded_number_of_sources() -> None:
    throttle = Throttle(limit=3, window=10, backoff=100, capacity=4)
    for index in range(50):
        throttle.failure(f"192.0.2.{index}", T0)
    assert len(throttle._failures) == 4


# ------------------------------------------------------------------------------------------ policy
def test_ack_and_cancel_are_never_challenged_rfc3261_22_1() -> None:
    policy = DigestPolicy(proxy_methods=frozenset({"INVITE", "MESSAGE"}))
    assert policy.challenges("REGISTER", USER_TO_USER) and not policy.challenges("INVITE", USER_TO_USER)
    assert policy.challenges("invite", PROXY_TO_USER) and not policy.challenges("BYE", PROXY_TO_USER)
    assert not policy.challenges("ACK", PROXY_TO_USER) and not policy.challenges("CANCEL", USER_TO_USER)
    with pytest.raises(ValueError, match="ACK and CANCEL"):
        DigestPolicy(proxy_methods=frozenset({"INVITE", "CANCEL"}))
    with pytest.raises(ValueError, match="never challenged"):
        authenticate(Authenticator(SECRET), make_request("ACK"))
    with pytest.raises(ValueError):
        DigestPolicy(algorithms=("SHA-256", "sha-256"))
    with pytest.raises(ValueError):
        DigestPolicy(algorithms=("SHA-1",))


def test_realm_per_domain() -> None:
    policy = DigestPolicy(realms={"biloxi.com": "Biloxi users"})
    assert (policy.realm_for("BILOXI.com"), policy.realm_for("atlanta.com")) == ("Biloxi users", "atlanta.com")
    assert DigestPolicy(realms={"Biloxi.COM": "B"}).realm_for("biloxi.com") == "B"


# -------------------------------------------------------------------------------------- properties
_quoted_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x2FF, blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20,
)
_label = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)
_method = st.from_regex(r"[A-Z]{3,9}", fullmatch=True).filter(lambda m: m not in {"ACK", "CANCEL"})


@given(
    username=_quoted_text, password=st.text(max_size=30), other=st.text(max_size=30), realm=_quoted_text,
    method=_method, user=_label, host=st.lists(_label, min_size=1, max_size=3).map(".".join),
    algorithm=st.sampled_from(["SHA-256", "MD5", "SHA-256-sess", "MD5-sess"]),
)
def test_client_computed_response_verifies_with_its_ha1_and_fails_with_any_other_password(
    username: str, password: str, other: str, realm: str, method: str, user: str, host: str, algorithm: str,
) -> None:
    auth = Authenticator(SECRET, DigestPolicy(algorithms=(algorithm,)))
    stored = StoredCredentials.from_password(username, realm, password, (algorithm,))
    uri = f"sip:{user}@{host}"
    challenge = challenges(auth.challenge(realm, T0, SALT, exchange=USER_TO_USER))[0]
    client = Client(username, password)

    def attempt(nc: int, secret: str) -> Verdict:
        request = make_request(method, uri, credentials=client.authorization(challenge, method, uri, nc, password=secret))
        return auth.authenticate(
            request, realm=realm, source=SOURCE, now=T0 + 1, salt=SALT,
            lookup=lambda name, space: stored if (name, space) == (username, realm) else None,
        ).verdict

    assert attempt(1, password) is Verdict.OK
    if other != password:
        assert attempt(2, other) is Verdict.BAD_CREDENTIALS
