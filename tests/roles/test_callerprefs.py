"""Caller preferences (RFC 3841): the target sets the RFC's text gives, its prose cases of §5.2, and
properties of the matching (Reject-Contact, require, order, never raising)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipactors.message import NameAddr, Params, ParseError, Request, SipURI, ValueParams, parse
from sipactors.roles.callerprefs import (
    Disposition,
    Preference,
    disposition,
    order_targets,
    preference,
    preferences_of,
    rank,
    request_disposition,
    score,
)
from sipactors.roles.features import Filter, Predicate, Term, contact_predicate, matches
from tests.message import strategies as s


def request(method: str = "INVITE", *headers: str, contacts: tuple[str, ...] = ()) -> Request:
    """A request with extra header lines; ``contacts`` ride in its Contact header to be read by the
    message layer the way a registrar reads them."""
    lines = "".join(f"{line}\r\n" for line in headers) + "".join(f"Contact: {c}\r\n" for c in contacts)
    parsed = parse(
        f"{method} sip:user@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"
        "To: <sip:user@example.com>\r\nFrom: <sip:caller@example.org>;tag=1\r\nCall-ID: c@h\r\n"
        f"CSeq: 1 {method}\r\nMax-Forwards: 70\r\n{lines}Content-Length: 0\r\n\r\n".encode("latin-1")
    )
    assert isinstance(parsed, Request)
    return parsed


def bindings(*contacts: str) -> list[tuple[NameAddr, float]]:
    """Registered contacts with their q (RFC 3841 §7.2.3: the Contact's q-value, else 1.0)."""
    return [(c, float(c.params.get("q") or 1.0)) for c in request(contacts=contacts).contact]


def users(targets: list) -> list[str | None]:  # type: ignore[type-arg]
    return [target.contact.uri.user for target in targets]


# -- RFC 3841 §7.2.5, the worked example ---------------------------------------------------------------------

S7_2_5_CONTACTS = (
    'sip:u1@h.example.com;audio;video;methods="INVITE,BYE";q=0.2',
    'sip:u2@h.example.com;audio="FALSE";\r\n  methods="INVITE";actor="msg-taker";q=0.2',
    'sip:u3@h.example.com;audio;actor="msg-taker";\r\n  methods="INVITE";video;q=0.3',
    'sip:u4@h.example.com;audio;methods="INVITE,OPTIONS";q=0.2',
    "sip:u5@h.example.com;q=0.5",
)
S7_2_5_PREFERENCES = (
    'Reject-Contact: *;actor="msg-taker";video',
    "Accept-Contact: *;audio;require",
    "Accept-Contact: *;video;explicit",
    'Accept-Contact: *;methods="BYE";class="business";q=1.0',
)


def test_worked_example_gives_u5_u1_u4_rfc3841_s7_2_5() -> None:
    targets = order_targets(request("INVITE", *S7_2_5_PREFERENCES), bindings(*S7_2_5_CONTACTS))
    assert users(targets) == ["u5", "u1", "u4"]
    # "Qa for u1 is 0.83 and Qa for u4 is 0.5.  u5 is added back in with a Qa of 1.0."
    assert [(t.q, t.qa) for t in targets] == [(0.5, 1), (0.2, Fraction(5, 6)), (0.2, Fraction(1, 2))]


def test_worked_example_steps_rfc3841_s7_2_5() -> None:
    prefs = preferences_of(request("INVITE", *S7_2_5_PREFERENCES))
    assert not prefs.implicit  # "There are no implicit preferences in this example"
    contacts = {c.uri.user: contact_predicate(c.params) for c, _ in bindings(*S7_2_5_CONTACTS)}
    assert contacts["u5"] is None  # "immune from caller preferences processing"
    (reject,) = prefs.reject
    # The Reject-Contact predicate "is a match for all four remaining contacts, but only an explicit match
    # for u3": only u3 names both of its tags.
    for user in ("u1", "u2", "u3", "u4"):
        assert matches(reject, contacts[user])  # type: ignore[arg-type]
    assert [u for u in ("u1", "u2", "u3", "u4") if reject.tags <= contacts[u].tags] == ["u3"]  # type: ignore[union-attr]
    audio, video, methods = prefs.accept
    assert (audio.require, audio.explicit, video.require, video.explicit) == (True, False, False, True)
    assert not matches(audio.predicate, contacts["u2"])  # type: ignore[arg-type]  # so u2 is discarded
    assert not matches(methods.predicate, contacts["u4"])  # type: ignore[arg-type]
    # u1 "earning a score of 1.0 for the first two predicates, and 0.5 for the third"
    assert [score(p.predicate, contacts["u1"]) for p in prefs.accept] == [1, 1, Fraction(1, 2)]  # type: ignore[arg-type]
    assert score(video.predicate, contacts["u4"]) == 0  # "the score is 0.0, in fact"


# -- RFC 3841 §5.2, §8 and §9.1 examples -------------------------------------------------------------------


def test_mobile_device_accept_contact_of_rfc3841_s5_2() -> None:
    (value,) = request("INVITE", 'Accept-Contact: *;mobility="mobile";methods="INVITE"').header("Accept-Contact")
    assert preference(value) == Preference(Predicate((
        Term("sip.mobility", (Filter("token", "mobile"),)), Term("sip.methods", (Filter("token", "invite"),)),
    )))


def test_accept_contact_of_rfc3841_s8_converts_to_its_predicate() -> None:
    (value,) = request(
        "INVITE",
        'Accept-Contact:*;mobility="fixed"\r\n  ;events="!presence,message-summary"\r\n'
        '  ;language="en,de";description="<PC>";+sip.newparam\r\n  ;+rangeparam="#-4:+5.125"',
    ).header("Accept-Contact")
    found = preference(value)
    assert found is not None
    assert [term.tag for term in found.predicate.terms] == [
        "sip.mobility", "sip.events", "language", "sip.description", "sip.newparam", "rangeparam",
    ]
    assert found.predicate.terms[1].filters == (Filter("token", "presence", negated=True),
                                                Filter("token", "message-summary"))
    assert found.predicate.terms[5].filters == (Filter("number", low=Fraction(-4), high=Fraction(5125, 1000)),)


def test_request_disposition_example_of_rfc3841_s9_1() -> None:
    got = request_disposition(request("INVITE", "Request-Disposition: proxy, recurse, parallel"))
    assert got == Disposition(proxy="proxy", recurse="recurse", parallel="parallel")


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        ([], Disposition()),
        (["no-cancel", "Sequential", "queue"], Disposition(cancel="no-cancel", parallel="sequential", queue="queue")),
        # "The directive is ignored if 'redirect' has been requested" (fork, recurse, parallel)
        (["redirect", "no-fork", "no-recurse", "parallel", "no-queue"], Disposition(proxy="redirect", queue="no-queue")),
        (["proxy", "redirect", "fork"], Disposition(fork="fork")),  # rulings R25
        (["fork", "fork", "forward"], Disposition(fork="fork")),
    ],
)
def test_request_disposition_directives_rfc3841_s9_1(tokens: list[str], expected: Disposition) -> None:
    assert disposition(tokens) == expected


# -- RFC 3841 §5.2: the four combinations of require and explicit ----------------------------------------------

VIDEO_CONTACTS = (
    "<sip:explicit@h>;video;audio",  # explicitly does video
    "<sip:silent@h>;audio",  # does not say: may do video
    '<sip:novideo@h>;video="FALSE";audio',  # explicitly does not
    "<sip:immune@h>",
)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        # both: "only forward the request to contacts which have explicitly indicated that they support"
        (";require;explicit", ["explicit", "immune"]),
        # require alone: "If it does match, or if it's not known whether it's a complete match, the contact
        # is still used", best match first
        (";require", ["explicit", "immune", "silent"]),
        # explicit alone: "all contacts ... will be used. However, if the contact isn't an explicit match,
        # it is tried last"
        (";explicit", ["explicit", "immune", "silent", "novideo"]),
        # neither: all used, non-matching last, the better match first
        ("", ["explicit", "immune", "silent", "novideo"]),
    ],
)
def test_require_and_explicit_combinations_rfc3841_s5_2(flags: str, expected: list[str]) -> None:
    targets = order_targets(request("INVITE", f"Accept-Contact: *;video{flags}"), bindings(*VIDEO_CONTACTS))
    assert users(targets) == expected


def test_explicit_sets_a_partial_score_to_zero_rfc3841_s7_2_4_figure_1() -> None:
    prefs = ('Accept-Contact: *;video;audio;explicit', 'Accept-Contact: *;mobility="fixed"')
    (target,) = order_targets(request("INVITE", *prefs), bindings('<sip:a@h>;audio;mobility="fixed"'))
    assert target.qa == Fraction(1, 2)  # scores 1/2 → 0 (explicit, no require) and 1: Qa = (0 + 1) / 2


def test_reject_contact_only_removes_explicit_matches_rfc3841_s7_2_4() -> None:
    targets = order_targets(request("INVITE", 'Reject-Contact: *;actor="msg-taker"'),
                            bindings('<sip:vm@h>;actor="msg-taker"', "<sip:phone@h>;audio",
                                     '<sip:person@h>;actor="principal"'))
    assert users(targets) == ["phone", "person"]  # Qa 1 for all (rulings R24): registration order kept


def test_preferences_can_leave_no_target_rfc3841_s7_2_4() -> None:
    # explicit preferences may empty the target set: the proxy then answers 480
    assert order_targets(request("INVITE", "Accept-Contact: *;video;require;explicit"),
                         bindings("<sip:a@h>;audio")) == []


# -- §7.2.2: implicit preferences -------------------------------------------------------------------------


def test_method_is_an_implicit_required_preference_rfc3841_s7_2_2_1() -> None:
    contacts = bindings('<sip:pager@h>;methods="MESSAGE"', '<sip:phone@h>;methods="INVITE,BYE";q=0.5',
                        "<sip:old@h>;q=0.5", '<sip:pc@h>;audio;q=0.5')
    targets = order_targets(request("INVITE"), contacts)
    # phone says INVITE (score 1), old is immune (Qa 1), pc does not say (score 0)
    assert users(targets) == ["phone", "old", "pc"]
    assert [t.qa for t in targets] == [1, 1, 0]


def test_event_package_is_an_implicit_preference_of_subscribe_rfc3841_s7_2_2_2() -> None:
    contacts = bindings('<sip:a@h>;methods="SUBSCRIBE";events="dialog"', '<sip:b@h>;events="presence"')
    targets = order_targets(request("SUBSCRIBE", "Event: presence;id=7"), contacts)
    assert users(targets) == ["b"]


def test_implicit_preferences_leaving_no_target_are_discarded_rfc3841_s7_2_4() -> None:
    contacts = bindings('<sip:a@h>;methods="MESSAGE";q=0.1', '<sip:b@h>;methods="MESSAGE";q=0.9')
    targets = order_targets(request("INVITE"), contacts)
    assert users(targets) == ["b", "a"]  # the original set by q: the UAs answer 405 themselves
    assert all(t.qa is None for t in targets)


def test_reject_contact_alone_means_no_implicit_preferences_rfc3841_s7_2_2() -> None:
    contacts = bindings('<sip:a@h>;methods="MESSAGE"')
    assert users(order_targets(request("INVITE", "Reject-Contact: *;video"), contacts)) == ["a"]


def test_unreadable_preference_is_not_applied_rulings_r23() -> None:
    contacts = bindings("<sip:a@h>;video")
    assert users(order_targets(request("INVITE", "Reject-Contact: *;video=TRUE"), contacts)) == ["a"]


# -- properties -------------------------------------------------------------------------------------------

FEATURE_NAMES = ["audio", "video", "methods", "actor", "+sip.x", "+y"]
feature_values = st.one_of(
    st.none(),
    st.lists(
        st.sampled_from(["TRUE", "FALSE", "INVITE", "BYE", "msg-taker", "!INVITE", "#>=2", "#<=1", "#=1", "#0:3"]),
        min_size=1, max_size=3,
    ).map(lambda values: '"' + ",".join(values) + '"'),
    st.sampled_from(['"<A>"', '"<a>"']),
)
feature_params = st.lists(st.tuples(st.sampled_from(FEATURE_NAMES), feature_values), max_size=4)
contacts = st.lists(
    st.builds(
        lambda user, params, q: (NameAddr(SipURI("sip", "h.example.com", user), params=Params(params)), q),
        st.sampled_from(["u1", "u2", "u3"]),
        feature_params,
        st.sampled_from([0.1, 0.5, 1.0]),
    ),
    max_size=6,
)
flags = st.lists(st.sampled_from([("require", None), ("explicit", None)]), max_size=2)
accept_values = st.lists(st.builds(lambda f, g: ValueParams("*", Params(f + g)), feature_params, flags), max_size=3)
reject_values = st.lists(feature_params.map(lambda f: ValueParams("*", Params(f))), max_size=2)


def _with(accept: list[ValueParams], reject: list[ValueParams]) -> Request:
    lines = [f"Accept-Contact: {v.render()}" for v in accept] + [f"Reject-Contact: {v.render()}" for v in reject]
    return request("INVITE", *lines)


@given(contacts, accept_values, reject_values)
def test_reject_contact_never_leaves_a_matching_contact(
    bound: list[tuple[NameAddr, float]], accept: list[ValueParams], reject: list[ValueParams]
) -> None:
    targets = order_targets(_with(accept, reject), bound)
    rejected = [p.predicate for p in map(preference, reject) if p is not None]
    for target in targets:
        contact = contact_predicate(target.contact.params)
        if contact is not None:
            assert not any(r.tags <= contact.tags and matches(r, contact) for r in rejected)


@given(contacts, accept_values)
def test_a_contact_failing_a_required_preference_is_never_a_target(
    bound: list[tuple[NameAddr, float]], accept: list[ValueParams]
) -> None:
    targets = order_targets(_with(accept, []), bound)
    required = [p for p in map(preference, accept) if p is not None and p.require]
    for target in targets:
        contact = contact_predicate(target.contact.params)
        if contact is None:
            continue  # immune (§7.2.3)
        for wanted in required:
            assert matches(wanted.predicate, contact)
            if wanted.explicit:  # with explicit too, every wanted feature is one the contact names
                assert wanted.predicate.tags <= contact.tags


@given(contacts, accept_values, reject_values)
def test_targets_are_ordered_by_q_then_qa_and_stable(
    bound: list[tuple[NameAddr, float]], accept: list[ValueParams], reject: list[ValueParams]
) -> None:
    targets = order_targets(_with(accept, reject), bound)
    keys = [(t.q, t.qa) for t in targets]
    assert keys == sorted(keys, key=lambda k: (k[0], k[1] or 0), reverse=True)
    # a sub-list of the input, ties in input order; every immune contact is kept
    positions = [next(i for i, (c, q) in enumerate(bound) if c is t.contact) for t in targets]
    for (a, b), (ka, kb) in zip(zip(positions, positions[1:], strict=False), zip(keys, keys[1:], strict=False),
                                strict=True):
        assert ka != kb or a < b
    immune = [c for c, _ in bound if contact_predicate(c.params) is None]
    assert all(any(t.contact is c for t in targets) for c in immune)


header_params = s.header_params()
any_values = st.lists(
    st.builds(lambda p, f: ValueParams("*", Params(tuple(p) + tuple(f))), header_params, feature_params), max_size=3
)
any_contacts = st.lists(
    st.tuples(
        st.builds(lambda a, f: a.with_params(Params(tuple(a.params) + tuple(f))), s.name_addrs, feature_params),
        st.floats(0, 1),
    ),
    max_size=4,
)


@given(any_contacts, any_values, any_values, st.sampled_from(["INVITE", "SUBSCRIBE", "MESSAGE"]))
def test_order_targets_never_raises_on_what_the_message_layer_accepts(
    bound: list[tuple[NameAddr, float]], accept: list[ValueParams], reject: list[ValueParams], method: str
) -> None:
    lines = [f"Accept-Contact: {v.render()}" for v in accept] + [f"Reject-Contact: {v.render()}" for v in reject]
    try:
        message = request(method, *lines, "Event: presence")
        message.validate_all()
    except ParseError:
        return  # a value the message layer refuses never reaches the proxy
    targets = order_targets(message, bound)
    assert {id(t.contact) for t in targets} <= {id(c) for c, _ in bound}
    assert rank(preferences_of(message), bound) == targets
