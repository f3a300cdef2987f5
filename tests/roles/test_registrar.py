"""The registrar (sipactors/roles/registrar.py) read beside RFC 3261 §10.3 step by step, RFC 3327 §5.3 (Path),
RFC 3840 (feature tags) and RFC 5626 §6 (+sip.instance, reg-id); then a Hypothesis state machine that holds
every 200 against a reference model of the binding set across clock steps and store restarts."""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sipactors.message import Request, Response, parse
from sipactors.roles.digest import Authenticator
from sipactors.roles.registrar import (
    FAILURES,
    Failure,
    Outcome,
    Registrar,
    RegistrarPolicy,
    aor_of,
    process_register,
    register,
)
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.runtime.binding import wall_clock
from sipactors.store import Binding, Change, MemoryStore, Put, Source, open_store

T0 = 1_700_000_000.0
ALICE = "sip:alice@atlanta.com"
POLICY = RegistrarPolicy(frozenset({"atlanta.com"}))
SOURCE = Source("udp", "192.0.2.1", 5060)


def request(
    contacts: Sequence[str] | None = ("<sip:alice@192.0.2.1>",), *, expires: int | None = None,
    call_id: str = "843817637684230@998sdasdh09", cseq: int = 1, uri: str = "sip:atlanta.com",
    to: str = "<sip:alice@atlanta.com>", extra: Sequence[str] = (),
) -> Request:
    """A REGISTER as text (RFC 3261 §10.2), parsed as the server would parse it."""
    lines = [
        f"REGISTER {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds7",
        "Max-Forwards: 70",
        f"To: {to}",
        "From: <sip:alice@atlanta.com>;tag=456248",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        *(f"Contact: {contact}" for contact in contacts or ()),
        *([f"Expires: {expires}"] if expires is not None else []),
        *extra,
        "Content-Length: 0",
    ]
    message = parse(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    assert isinstance(message, Request) and message.refusal is None
    return message


def decide(message: Request, current: Sequence[Binding] = (), now: float = T0, policy: RegistrarPolicy = POLICY,
           **identity: object) -> Outcome:
    identity = identity or {"open_mode": True}
    return register(message, current, now, policy, SOURCE, **identity)  # type: ignore[arg-type]


def binding(contact: str = "sip:alice@192.0.2.1", *, call_id: str = "843817637684230@998sdasdh09", cseq: int = 1,
            expires: float = T0 + 3600, q: float | None = None) -> Binding:
    return Binding(ALICE, contact, expires, call_id, cseq, contact_header=f"<{contact}>", q=q,
                   params=(("q", str(q)),) if q is not None else (), updated=T0 - 10)


def wire(outcome: Outcome, message: Request) -> Response:
    """The response as it goes out and comes back: serialised and parsed again."""
    response = parse(outcome.response(message, "reg1").to_bytes())
    assert isinstance(response, Response)
    return response


def listed(outcome: Outcome, message: Request) -> list[tuple[str, int]]:
    """The 200's Contact values as (URI, expires), in order."""
    contacts = wire(outcome, message).contact
    assert not isinstance(contacts, str)
    return [(contact.uri.render(), int(contact.params.get("expires") or -1)) for contact in contacts]


# ------------------------------------------------------------------------------------ step 1, 2
def test_foreign_request_uri_domain_is_not_found_rfc3261_10_3_step1() -> None:
    outcome = decide(request(uri="sip:biloxi.com", to="<sip:alice@biloxi.com>"))
    assert (outcome.status, outcome.failure, outcome.changes) == (404, Failure.FOREIGN_DOMAIN, ())


def test_request_uri_domain_compares_without_case_rfc3261_19_1_4() -> None:
    assert decide(request(uri="sip:ATLANTA.com")).status == 200


def test_tel_request_uri_is_an_unsupported_scheme_rfc3261_8_2_2_1() -> None:
    outcome = decide(request(uri="tel:+15551234567"))
    assert (outcome.status, outcome.failure) == (416, Failure.REQUEST_URI_SCHEME)


def test_unknown_require_option_tag_is_a_bad_extension_rfc3261_10_3_step2() -> None:
    outcome = decide(request(extra=["Require: path, 100rel, gruu"]))
    assert (outcome.status, outcome.reason) == (420, "Bad Extension")
    assert dict(outcome.headers)["Unsupported"] == "100rel, gruu"  # only those it does not understand (§8.2.2.3)
    assert outcome.changes == ()


def test_require_path_is_understood_rfc3261_10_3_step2() -> None:
    assert decide(request(extra=["Require: path", "Supported: path"])).status == 200


# -------------------------------------------------------------------------------------- Path
def test_path_is_stored_in_order_and_echoed_with_supported_rfc3327_5_3() -> None:
    message = request(extra=["Path: <sip:p1.example.com;lr>", "Path: <sip:p2.example.com;lr>", "Supported: path"])
    outcome = decide(message)
    assert outcome.status == 200
    (put,) = outcome.changes
    assert isinstance(put, Put) and put.binding.path == ("sip:p1.example.com;lr", "sip:p2.example.com;lr")
    response = wire(outcome, message)
    assert [hop.uri.render() for hop in response.header("Path")] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert response.header("Supported") == ["path"]


def test_path_without_ua_support_is_a_bad_extension_rfc3327_5_3() -> None:
    message = request(extra=["Path: <sip:p1.example.com;lr>"])
    outcome = decide(message)
    assert (outcome.status, dict(outcome.headers)["Unsupported"], outcome.changes) == (420, "path", ())
    lenient = RegistrarPolicy(frozenset({"atlanta.com"}), path_requires_ua_support=False)  # "MAY choose to support"
    assert decide(message, policy=lenient).status == 200


def test_path_is_ignored_when_not_honoured_rfc3327_5_3() -> None:
    message = request(extra=["Path: <sip:p1.example.com;lr>", "Supported: path"])
    outcome = decide(message, policy=RegistrarPolicy(frozenset({"atlanta.com"}), supported=frozenset()))
    (put,) = outcome.changes
    assert isinstance(put, Put) and put.binding.path == ()
    assert "Path" not in dict(outcome.headers)


# ------------------------------------------------------------------------------------ step 3, 4
def test_no_authenticated_user_outside_open_mode_is_forbidden_rfc3261_10_3_step3() -> None:
    outcome = decide(request(), open_mode=False)
    assert (outcome.status, outcome.failure, outcome.changes) == (403, Failure.NOT_AUTHENTICATED, ())


def test_user_may_modify_only_their_own_aor_rfc3261_10_3_step4() -> None:
    assert decide(request(), authenticated_user="alice").status == 200
    assert decide(request(to="<sip:%61lice@atlanta.com>"), authenticated_user="alice").status == 200  # unescaped
    outcome = decide(request(), authenticated_user="bob")
    assert (outcome.status, outcome.failure, outcome.changes) == (403, Failure.FORBIDDEN, ())
    # the right user name, but an AOR of another domain than the one the user authenticated in
    assert decide(request(to="<sip:alice@biloxi.com>"), authenticated_user="alice").status == 403


def test_open_mode_authorises_every_registration_rfc3261_10_3_step4() -> None:
    assert decide(request(to="<sip:carol@atlanta.com>"), open_mode=True).status == 200


# ---------------------------------------------------------------------------------------- step 5
def test_aor_of_another_domain_is_not_found_rfc3261_10_3_step5() -> None:
    outcome = decide(request(to="<sip:alice@biloxi.com>"))
    assert (outcome.status, outcome.failure) == (404, Failure.INVALID_AOR)


def test_aor_that_is_not_a_sip_uri_is_not_found_rfc3261_10_3_step5() -> None:
    assert decide(request(to="<tel:+15551234567>")).status == 404


def test_aor_is_the_canonical_to_uri_rfc3261_10_3_step5() -> None:
    message = request(to="<sip:%61lice@ATLANTA.com;user=phone>")
    assert aor_of(message) == ALICE
    (put,) = decide(message).changes
    assert isinstance(put, Put) and put.binding.aor == ALICE


def test_current_bindings_of_another_aor_are_a_caller_error() -> None:
    other = Binding("sip:bob@atlanta.com", "sip:bob@192.0.2.2", T0 + 60, "x", 1)
    with pytest.raises(ValueError, match="another AOR"):
        decide(request(), [other])


# ---------------------------------------------------------------------------------------- step 6
def test_star_contact_needs_expires_zero_rfc3261_10_3_step6() -> None:
    for expires in (None, 60):
        outcome = decide(request(["*"], expires=expires), [binding()])
        assert (outcome.status, outcome.failure, outcome.changes) == (400, Failure.STAR_NEEDS_EXPIRES_ZERO, ())


def test_star_contact_must_be_alone_rfc3261_10_3_step6() -> None:
    outcome = decide(request(["*", "<sip:alice@192.0.2.1>"], expires=0), [binding()])
    assert (outcome.status, outcome.failure, outcome.changes) == (400, Failure.STAR_NOT_ALONE, ())


def test_star_with_expires_zero_removes_every_binding_rfc3261_10_3_step6() -> None:
    current = [binding(), binding("sip:alice@192.0.2.9", call_id="other-ua", cseq=80)]
    message = request(["*"], expires=0, cseq=2)
    outcome = decide(message, current)
    assert outcome.status == 200 and outcome.bindings == ()
    assert [type(change).__name__ for change in outcome.changes] == ["RemoveAll"]
    assert wire(outcome, message).contact == []


def test_star_out_of_order_fails_and_removes_nothing_rfc3261_10_3_step6() -> None:
    outcome = decide(request(["*"], expires=0, cseq=1), [binding(cseq=1)])
    assert (outcome.status, outcome.failure, outcome.changes) == (500, Failure.OUT_OF_ORDER, ())


# ---------------------------------------------------------------------------------------- step 7
def test_expires_parameter_wins_over_the_expires_header_rfc3261_10_3_step7() -> None:
    message = request(["<sip:alice@192.0.2.1>;expires=120", "<sip:alice@192.0.2.2>"], expires=600)
    assert sorted(listed(decide(message), message)) == [("sip:alice@192.0.2.1", 120), ("sip:alice@192.0.2.2", 600)]


def test_neither_expires_takes_the_configured_default_rfc3261_10_2_1_1() -> None:
    message = request()
    assert listed(decide(message), message) == [("sip:alice@192.0.2.1", 3600)]


def test_interval_too_brief_is_423_with_min_expires_rfc3261_10_3_step7() -> None:
    outcome = decide(request(["<sip:alice@192.0.2.1>", "<sip:alice@192.0.2.2>;expires=30"], expires=600))
    assert (outcome.status, outcome.reason, outcome.changes) == (423, "Interval Too Brief", ())
    assert dict(outcome.headers)["Min-Expires"] == "60"  # §20.23: MUST contain it
    assert decide(request(expires=60)).status == 200  # the minimum itself is honoured


def test_expires_zero_is_never_too_brief_rfc3261_10_3_step7() -> None:
    assert decide(request(expires=0, cseq=2), [binding()]).status == 200


def test_policy_minimum_cannot_exceed_an_hour_rfc3261_10_3_step7() -> None:
    with pytest.raises(ValueError, match="3600"):
        RegistrarPolicy(frozenset({"atlanta.com"}), min_expires=4000, default_expires=5000, max_expires=9000)


def test_interval_above_the_maximum_is_shortened_rfc3261_10_3_step7() -> None:
    message = request(expires=100_000)
    assert listed(decide(message), message) == [("sip:alice@192.0.2.1", 7200)]


def test_same_call_id_lower_or_equal_cseq_fails_and_nothing_changes_rfc3261_10_3_step7() -> None:
    store = MemoryStore()
    store.locations.put(binding(cseq=5))
    before = store.locations.bindings(ALICE, T0)
    for cseq in (4, 5):
        outcome = process_register(store.locations, request(expires=600, cseq=cseq), T0, POLICY, open_mode=True)
        assert (outcome.status, outcome.failure, outcome.changes) == (500, Failure.OUT_OF_ORDER, ())
        assert store.locations.bindings(ALICE, T0) == before


def test_same_call_id_higher_cseq_updates_rfc3261_10_3_step7() -> None:
    outcome = decide(request(expires=600, cseq=6), [binding(cseq=5)])
    (put,) = outcome.changes
    assert isinstance(put, Put) and (put.binding.cseq, put.binding.expires) == (6, T0 + 600)


def test_different_call_id_replaces_the_binding_whatever_its_cseq_rfc3261_10_3_step7() -> None:
    outcome = decide(request(expires=600, call_id="rebooted", cseq=1), [binding(cseq=900)])
    (put,) = outcome.changes
    assert isinstance(put, Put) and (put.binding.call_id, put.binding.cseq) == ("rebooted", 1)
    assert len(outcome.bindings) == 1


def test_binding_is_found_by_uri_equality_not_text_rfc3261_10_3_step7() -> None:
    message = request(["<sip:%61lice@192.0.2.1>"], expires=600, cseq=2)
    outcome = decide(message, [binding()])
    assert listed(outcome, message) == [("sip:%61lice@192.0.2.1", 600)]


def test_expires_zero_removes_a_binding_rfc3261_10_3_step7() -> None:
    message = request(expires=0, cseq=2)
    outcome = decide(message, [binding(), binding("sip:alice@192.0.2.9")])
    assert [type(change).__name__ for change in outcome.changes] == ["Remove"]
    assert listed(outcome, message) == [("sip:alice@192.0.2.9", 3600)]


def test_expires_zero_for_an_unknown_contact_changes_nothing_rfc3261_10_3_step7() -> None:
    outcome = decide(request(expires=0))
    assert (outcome.status, outcome.changes, outcome.bindings) == (200, (), ())


def test_one_out_of_order_contact_among_several_changes_nothing_rfc3261_10_3_step7() -> None:
    store = MemoryStore()
    store.locations.put(binding("sip:alice@192.0.2.2", cseq=7))
    before = store.locations.bindings(ALICE, T0)
    message = request(["<sip:alice@192.0.2.1>", "<sip:alice@192.0.2.2>", "<sip:alice@192.0.2.3>"], cseq=7)
    outcome = process_register(store.locations, message, T0, POLICY, open_mode=True)
    assert (outcome.status, outcome.changes) == (500, ())
    assert store.locations.bindings(ALICE, T0) == before


def test_a_contact_listed_twice_is_refused_rfc3261_10_3_step7() -> None:
    outcome = decide(request(["<sip:alice@192.0.2.1>", "<sip:%61lice@192.0.2.1>;expires=0"]))
    assert (outcome.status, outcome.failure, outcome.changes) == (400, Failure.CONTACT_TWICE, ())


def test_a_failed_commit_is_500_rfc3261_10_3_step7() -> None:
    class Broken(MemoryStore().locations.__class__):  # type: ignore[misc]
        def apply(self, aor: str, changes: Sequence[Change]) -> None:
            raise OSError("disk full")

    outcome = process_register(Broken(), request(), T0, POLICY, open_mode=True)
    assert (outcome.status, outcome.failure, outcome.changes, outcome.bindings) == (500, Failure.COMMIT_FAILED, (), ())


# ---------------------------------------------------------------------------------------- step 8
def test_ok_lists_every_current_binding_with_its_remaining_expires_rfc3261_10_3_step8() -> None:
    other_ua = binding("sip:alice@192.0.2.9", call_id="other-ua", expires=T0 + 100)
    message = request(expires=600)
    outcome = decide(message, [other_ua], now=T0 + 40)
    assert sorted(listed(outcome, message)) == [("sip:alice@192.0.2.1", 600), ("sip:alice@192.0.2.9", 60)]


def test_ok_carries_a_date_rfc3261_10_3_step8() -> None:
    assert dict(decide(request()).headers)["Date"] == "Tue, 14 Nov 2023 22:13:20 GMT"


def test_query_register_lists_the_bindings_and_changes_nothing_rfc3261_10_2_3() -> None:
    message = request(None)
    outcome = decide(message, [binding(q=0.5)])
    assert (outcome.status, outcome.changes) == (200, ())
    assert listed(outcome, message) == [("sip:alice@192.0.2.1", 3600)]


def test_contacts_are_listed_highest_q_first_rfc3261_10_2_1_2() -> None:
    message = request(["<sip:alice@192.0.2.1>;q=0.2", "<sip:alice@192.0.2.2>;q=0.9", "<sip:alice@192.0.2.3>;q=0.5"])
    assert [uri for uri, _ in listed(decide(message), message)] == [
        "sip:alice@192.0.2.2", "sip:alice@192.0.2.3", "sip:alice@192.0.2.1",
    ]


def test_feature_tags_instance_and_reg_id_are_stored_and_echoed_rfc3840_rfc5626_6() -> None:
    instance = '"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"'
    message = request([f"<sip:alice@192.0.2.1>;+sip.instance={instance};reg-id=1;audio;video;q=0.7;expires=600"])
    outcome = decide(message)
    (put,) = outcome.changes
    assert isinstance(put, Put)
    stored = put.binding
    assert (stored.instance, stored.reg_id, stored.q, stored.source) == (instance, 1, 0.7, SOURCE)
    assert stored.params == (("+sip.instance", instance), ("reg-id", "1"), ("audio", None), ("video", None), ("q", "0.7"))
    (contact,) = wire(outcome, message).contact
    assert contact.params.get("+sip.instance") == instance and "video" in contact.params
    assert contact.params.get("expires") == "600"


def test_reg_id_without_an_instance_is_ignored_rfc5626_6() -> None:
    (put,) = decide(request(["<sip:alice@192.0.2.1>;reg-id=1"])).changes
    assert isinstance(put, Put) and put.binding.reg_id is None


# ------------------------------------------------------------------------------------ the tables
def test_every_failure_has_a_rule_and_none_is_6xx_rfc3261_10_3() -> None:
    assert set(FAILURES) == set(Failure)
    assert all(400 <= rule.status < 600 and rule.section for rule in FAILURES.values())  # "MUST not generate 6xx"


def test_only_register_is_processed_rfc3261_10_3() -> None:
    message = parse(bytes(request()).replace(b"REGISTER", b"OPTIONS"))
    assert isinstance(message, Request)
    with pytest.raises(ValueError, match="REGISTER"):
        decide(message)


# ====================================================================================== stateful
# Contacts as a UA writes them, and the binding each names (§19.1.4, written out by hand so that the model
# does not borrow the registrar's URI comparison): two spellings of b and of d.
SPELLINGS = {
    "sip:alice@192.0.2.1": "a",
    "sip:alice@192.0.2.2": "b",
    "sip:%61lice@192.0.2.2": "b",
    "sip:alice@192.0.2.3;transport=tcp": "c",
    "sip:alice@[2001:db8::1]": "d",
    "sip:alice@[2001:db8:0::1]": "d",
}
UAS = 3
INTERVALS = [None, None, 0, 0, 30, 60, 600, 600, 3600, 100_000]  # 30 is below Min-Expires, 100000 above the maximum
QS = [None, "0", "0.3", "0.7", "1"]


@dataclass
class Entry:
    """The model's binding: the spelling last registered, Call-ID, CSeq, absolute expiry, q as written."""

    spelling: str
    call_id: str
    cseq: int
    expiry: float
    q: str | None


@dataclass
class UA:
    call_id: str
    cseq: int = 0


_contact_value = st.tuples(st.sampled_from(sorted(SPELLINGS)), st.sampled_from(INTERVALS), st.sampled_from(QS))
# mostly each binding once; sometimes one named twice (refused whole, §10.3 step 7)
contact_values = st.lists(_contact_value, max_size=3, unique_by=lambda value: SPELLINGS[value[0]]) | st.lists(
    _contact_value, min_size=2, max_size=3,
)


class RegistrarAgainstModel(RuleBasedStateMachine):
    """Any interleaving of REGISTERs (from a few UAs: in order, replayed, older; adding, refreshing, removing,
    ``*``, querying), clock steps and server restarts, through the server's ``Registrar``: its binding
    actors on a virtual clock, its committer on an SQLite file. Every response is the model's; the store
    holds the model's binding set and nothing else (an expired binding is removed by its actor's timer);
    the registrar's view is the store's; after a restart the registrar restores the bindings from the file."""

    @initialize()
    def start(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="sipactors-registrar-"))
        self.url = f"sqlite:///{self.folder / 'registrar.db'}?synchronous=normal"
        self.store = open_store(self.url)
        self.epoch = T0
        self.boot_registrar()
        self.model: dict[str, Entry] = {}
        self.uas = [UA(f"ua{index}-boot0@192.0.2.{index}") for index in range(UAS)]
        self.boots = 0

    def boot_registrar(self) -> None:
        """A server process: a scheduler whose clock starts at 0 at wall-clock ``epoch``, and a registrar
        that restores what the store kept."""
        self.scheduler = ManualScheduler(seed=len(str(self.epoch)))
        set_default_scheduler(self.scheduler)
        self.clock = wall_clock(self.scheduler, self.epoch)
        self.registrar = Registrar(self.store, POLICY, Authenticator(b"k" * 32), self.clock, lambda n: b"s" * n)
        self.registrar.restore()
        self.scheduler.run_until_idle()

    @property
    def now(self) -> float:
        return self.clock()

    def teardown(self) -> None:
        set_default_scheduler(None)
        if hasattr(self, "store"):
            self.store.close()
            shutil.rmtree(self.folder)

    def answer(self, message: Request) -> Response:
        replies: list[Response] = []
        self.registrar.handle(message, "reg1", replies.append)
        self.scheduler.run_until_idle()
        (response,) = replies
        parsed = parse(response.to_bytes())  # as it goes out and comes back
        assert isinstance(parsed, Response)
        return parsed

    # -- the reference model: RFC 3261 §10.3 as a dict, written independently of the registrar ------------
    def live(self) -> dict[str, Entry]:
        return {key: entry for key, entry in self.model.items() if entry.expiry > self.now}

    def expect(
        self, ua: UA, cseq: int, contacts: list[tuple[str, int | None, str | None]], header: int | None, star: bool,
    ) -> tuple[int, dict[str, Entry]]:
        live = self.live()

        def stale(entry: Entry) -> bool:
            return entry.call_id == ua.call_id and cseq <= entry.cseq

        if star:
            if contacts:
                return 400, live
            if header != 0:
                return 400, live
            return (500, live) if any(stale(entry) for entry in live.values()) else (200, {})
        seen: set[str] = set()
        wanted: list[tuple[str, str, int, str | None]] = []
        for spelling, param, q in contacts:
            key = SPELLINGS[spelling]
            if key in seen:
                return 400, live
            seen.add(key)
            requested = param if param is not None else header if header is not None else 3600
            if 0 < requested < 60:
                return 423, live
            wanted.append((key, spelling, min(requested, 7200), q))
        after = dict(live)
        for key, spelling, granted, q in wanted:
            if key in after and stale(after[key]):
                return 500, live
            if granted == 0:
                after.pop(key, None)
            else:
                after[key] = Entry(spelling, ua.call_id, cseq, self.now + granted, q)
        return 200, after

    # -- rules --------------------------------------------------------------------------------------------
    @rule(
        which=st.integers(0, UAS - 1), order=st.sampled_from(["next", "next", "replay", "older"]),
        contacts=contact_values, header=st.sampled_from(INTERVALS), star=st.integers(0, 9),
    )
    def register(
        self, which: int, order: str, contacts: list[tuple[str, int | None, str | None]], header: int | None,
        star: int,
    ) -> None:
        ua = self.uas[which]
        cseq = {"next": ua.cseq + 1, "replay": max(ua.cseq, 1), "older": max(ua.cseq - 1, 1)}[order]
        ua.cseq = max(ua.cseq, cseq)
        values = [
            f"<{spelling}>" + (f";expires={param}" if param is not None else "") + (f";q={q}" if q is not None else "")
            for spelling, param, q in contacts
        ]
        # "*": 0 and 1 as a UA should send it (alone, Expires: 0), 2 with whatever Expires, 3 beside a contact
        with_star = star <= 3
        if with_star:
            header = 0 if star in (0, 1, 3) else header
            contacts = contacts[:1] if star == 3 else []
            values = ["*", *values[: len(contacts)]]
        message = request(values or None, expires=header, call_id=ua.call_id, cseq=cseq)
        status, after = self.expect(ua, cseq, contacts, header, with_star)
        before = self.store.locations.bindings(ALICE, self.now)
        response = self.answer(message)
        assert response.status == status, (response, self.model)
        event(f"REGISTER answered {status}")  # --hypothesis-show-statistics: every kind of answer occurs
        if status != 200:
            assert self.store.locations.bindings(ALICE, self.now) == before
            return
        self.model = after
        self.check_ok(response)

    @rule(which=st.integers(0, UAS - 1))
    def query(self, which: int) -> None:
        ua = self.uas[which]
        ua.cseq += 1
        response = self.answer(request(None, call_id=ua.call_id, cseq=ua.cseq))
        assert response.status == 200
        self.check_ok(response)

    @rule(which=st.integers(0, UAS - 1))
    def reboot(self, which: int) -> None:
        """The UA restarts: a new Call-ID (§10.2.4 "during a single boot cycle") and CSeq from 1."""
        self.boots += 1
        self.uas[which] = UA(f"ua{which}-boot{self.boots}@192.0.2.{which}")

    @rule(seconds=st.sampled_from([1, 29, 60, 599, 600, 3600, 7200]))
    def advance(self, seconds: int) -> None:
        self.scheduler.advance(seconds * 1000)  # the binding actors' expiry timers fire

    @rule()
    def restart(self) -> None:
        """The server stops (its actors with it) and a new one starts on the same file."""
        self.epoch = self.now
        self.store.close()
        self.store = open_store(self.url)
        self.boot_registrar()

    # -- checks -------------------------------------------------------------------------------------------
    def check_ok(self, response: Response) -> None:
        """§10.3 step 8: the 200 lists exactly the model's bindings, each with its remaining interval, its q
        as registered, highest q first."""
        contacts = response.contact
        assert not isinstance(contacts, str)
        got = sorted((c.uri.render(), c.params.get("expires"), c.params.get("q")) for c in contacts)
        want = sorted(
            (entry.spelling, str(math.ceil(entry.expiry - self.now)), entry.q) for entry in self.live().values()
        )
        assert got == want
        qs = [float(c.params.get("q") or 1.0) for c in contacts]
        assert qs == sorted(qs, reverse=True)

    @invariant()
    def store_holds_the_model(self) -> None:
        """Everything the file holds, expired or not, is the model's live set: the actors removed the rest."""
        if not hasattr(self, "store"):
            return
        stored = sorted(
            (SPELLINGS[b.contact], b.contact, b.call_id, b.cseq, b.expires)
            for b in self.store.locations.bindings(ALICE, 0.0)
        )
        assert stored == sorted(
            (key, e.spelling, e.call_id, e.cseq, e.expiry) for key, e in self.live().items()
        )
        assert self.registrar.bindings(ALICE, self.now) == self.store.locations.bindings(ALICE, self.now)
        assert sorted(contact for _, contact in self.registrar.actors) == sorted(e.spelling for e in self.live().values())


TestRegistrarAgainstModel = RegistrarAgainstModel.TestCase



class BoundedScheduler(ManualScheduler):
    """A virtual clock that fails (RuntimeError) instead of spinning when work never ends at one instant."""

    def run_until_idle(self, max_steps: int = 10_000) -> int:
        return super().run_until_idle(max_steps)


def test_a_binding_whose_timer_fires_a_fraction_of_a_millisecond_early_expires_once_rfc3261_10_2_2() -> None:
    """Timers run in whole milliseconds: a binding restored with 60 000.4 ms left has its timer fire 0.4 ms
    before its wall-clock expiry. The registrar must take that as the expiry (found by
    tests/conformance/test_presence.py: it gave the binding to a new actor, whose timer was due at once,
    and so on forever, at one instant of the virtual clock)."""
    scheduler = BoundedScheduler(seed=1)
    set_default_scheduler(scheduler)
    try:
        store = MemoryStore()
        store.locations.put(Binding("sip:alice@atlanta.com", "sip:alice@192.0.2.1", T0 + 60.0004, "c", 1))
        clock = wall_clock(scheduler, T0)
        registrar = Registrar(store, POLICY, Authenticator(b"k" * 32), clock, lambda n: b"s" * n)
        changed: list[str] = []
        registrar.observers.append(changed.append)
        assert registrar.restore() == 1
        scheduler.advance(60_001)
        assert changed == ["sip:alice@atlanta.com"] and not registrar.actors
        assert registrar.bindings("sip:alice@atlanta.com", clock()) == []
        assert store.locations.bindings("sip:alice@atlanta.com", clock()) == []
    finally:
        set_default_scheduler(None)
