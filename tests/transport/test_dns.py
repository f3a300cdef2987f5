"""RFC 3263 §4 over DNS: the message codec (RFC 1035), the stub client (UDP, TCP on truncation, timeouts,
failover between nameservers) and NAPTR → SRV → A/AAAA resolution, against a DNS server stub on the
loopback (never a query leaving the machine: the port-53 guard in conftest.py would fail the test)."""

from __future__ import annotations

import random
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipactors.message import parse_uri
from sipactors.transport import HostsFirstResolver, ResolutionError, StaticResolver, Target
from sipactors.transport.dns import (
    AAAA,
    CNAME,
    NAPTR,
    SOA,
    SRV,
    A,
    DnsClient,
    DnsError,
    DnsFormatError,
    DnsResolver,
    Message,
    Naptr,
    Question,
    Record,
    Soa,
    Srv,
    decode,
    encode,
    parse_nameserver,
    read_resolv_conf,
    srv_order,
)
from tests.transport.dns_stub import DnsStub, Zone

# ------------------------------------------------------------------------------------------ the codec

_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=8)
# few distinct labels, so that names share suffixes and the encoder compresses
_name = st.lists(st.one_of(st.sampled_from(["example", "com", "sip", "_udp"]), _label), max_size=4).map(".".join)
_u16 = st.integers(0, 65535)
_u32 = st.integers(0, 2**32 - 1)
_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=12)
_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).map(str)


@st.composite
def _records(draw: st.DrawFn) -> Record:
    rtype, data = draw(st.one_of(
        st.tuples(st.just(A), _ipv4),
        st.tuples(st.just(AAAA), _ipv6),
        st.tuples(st.just(CNAME), _name),
        st.tuples(st.just(SRV), st.builds(Srv, _u16, _u16, _u16, _name)),
        st.tuples(st.just(NAPTR), st.builds(Naptr, _u16, _u16, _text, _text, _text, _name)),
        st.tuples(st.just(SOA), st.builds(Soa, _name, _name, _u32, _u32, _u32, _u32, _u32)),
        st.tuples(st.just(16), st.binary(max_size=30)),  # TXT, kept as bytes
    ))
    return Record(draw(_name), rtype, draw(st.integers(0, 2**31 - 1)), data)


_messages = st.builds(
    Message, _u16, st.booleans(), st.integers(0, 15), st.booleans(), st.booleans(), st.booleans(), st.booleans(),
    st.integers(0, 15), st.lists(st.builds(Question, _name, _u16, _u16), max_size=2).map(tuple),
    st.lists(_records(), max_size=3).map(tuple), st.lists(_records(), max_size=1).map(tuple),
    st.lists(_records(), max_size=2).map(tuple),
)


@given(_messages)
def test_a_message_survives_encoding_and_decoding_rfc1035_section_4(message: Message) -> None:
    assert decode(encode(message)) == message


def test_a_query_encodes_as_rfc1035_section_4_1_lays_it_out() -> None:
    wire = encode(Message(0x1234, questions=(Question("example.com", A),)))
    assert wire == bytes.fromhex("1234 0100 0001 0000 0000 0000") + b"\x07example\x03com\x00" + b"\x00\x01\x00\x01"


def test_names_are_compressed_and_pointers_followed_rfc1035_section_4_1_4() -> None:
    message = Message(7, response=True, questions=(Question("sip.example.com", A),),
                      answers=(Record("sip.example.com", A, 60, "192.0.2.1"), Record("example.com", CNAME, 60, "sip.example.com")))
    wire = encode(message)
    assert wire.count(b"example") == 1  # every later occurrence is a pointer
    assert decode(wire) == message


@pytest.mark.parametrize(
    ("wire", "problem"),
    [
        (bytes.fromhex("0001 8100 0001 0000 0000 0000") + b"\x03abc", "name runs past"),
        # a pointer to itself (offset 12): it must point backwards
        (bytes.fromhex("0001 8100 0001 0000 0000 0000") + b"\xc0\x0c\x00\x01\x00\x01", "does not point backwards"),
        (bytes.fromhex("0001 8100 0001 0000 0000 0000") + b"\x00\x00\x01", "truncated"),
        (bytes.fromhex("0001 8100 0000 0000 0000 0000") + b"junk", "after the last record"),
        (bytes.fromhex("0001 8100 0000 0001 0000 0000") + b"\x00\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x03abc", "address record of 3"),
        (bytes.fromhex("0001 8100 0001 0000 0000 0000") + b"\x40abc\x00\x00\x01\x00\x01", "unknown label type"),
    ],
)
def test_malformed_messages_are_refused_not_misread(wire: bytes, problem: str) -> None:
    with pytest.raises(DnsFormatError, match=problem):
        decode(wire)


@given(st.binary(max_size=80))
def test_decoding_arbitrary_octets_either_succeeds_or_raises_a_format_error(data: bytes) -> None:
    try:
        decode(data)
    except DnsFormatError:
        pass


# ------------------------------------------------------------------------------------------ RFC 2782 order


def test_srv_records_are_tried_by_priority_then_by_a_weighted_draw_rfc2782() -> None:
    records = [Srv(10, 0, 5060, "backup.example.com"), Srv(0, 1, 5060, "server1.example.com"),
               Srv(0, 3, 5060, "server2.example.com")]
    rng = random.Random(2782)
    firsts = Counter(srv_order(records, rng)[0].target for _ in range(4000))
    # the draw is uniform over 0..4 inclusive, as RFC 2782 words it, and server1 (weight 1, listed first)
    # takes 0 and 1: server2 is first three times in five; the priority-10 record is never first
    assert set(firsts) == {"server1.example.com", "server2.example.com"}
    assert 0.57 < firsts["server2.example.com"] / 4000 < 0.63
    assert srv_order(records, random.Random(1))[-1].target == "backup.example.com"


def test_one_seed_gives_one_srv_order() -> None:
    records = [Srv(0, 5, 5060, f"s{i}.example.com") for i in range(6)]
    assert srv_order(records, random.Random(7)) == srv_order(list(reversed(records)), random.Random(7))


@given(st.lists(st.builds(Srv, st.integers(0, 3), st.integers(0, 5), st.just(5060), st.sampled_from("abcde")), max_size=8),
       st.integers())
def test_srv_order_is_a_permutation_sorted_by_priority(records: list[Srv], seed: int) -> None:
    ordered = srv_order(records, random.Random(seed))
    assert sorted(ordered, key=repr) == sorted(records, key=repr)
    assert [r.priority for r in ordered] == sorted(r.priority for r in records)


def test_a_zero_weight_record_comes_after_weighted_ones_almost_always_rfc2782() -> None:
    records = [Srv(0, 0, 5060, "zero.example.com"), Srv(0, 100, 5060, "heavy.example.com")]
    rng = random.Random(3)
    firsts = Counter(srv_order(records, rng)[0].target for _ in range(1000))
    assert firsts["heavy.example.com"] > 980 and firsts["zero.example.com"] > 0  # drawn only on a 0


# ------------------------------------------------------------------------------------------ the stub and resolver


@pytest.fixture
def zone() -> Zone:
    return Zone()


@pytest.fixture
def stub(zone: Zone) -> Iterator[DnsStub]:
    server = DnsStub(zone)
    yield server
    server.close()


def _resolver(*stubs: DnsStub, timeout: float = 1.0, attempts: int = 1, seed: int = 3263,
              transports: tuple[str, ...] = ("UDP", "TCP"), clock: list[float] | None = None) -> DnsResolver:
    client = DnsClient([parse_nameserver(s.nameserver) for s in stubs], timeout=timeout, attempts=attempts)
    now = clock if clock is not None else [0.0]
    return DnsResolver(client, transports=transports, rng=random.Random(seed), clock=lambda: now[0])


def _rfc3263_example(zone: Zone) -> None:
    """The records of RFC 3263 §4.1's example, with addresses for the SRV targets."""
    zone.add(
        Record("example.com", NAPTR, 300, Naptr(50, 50, "s", "SIPS+D2T", "", "_sips._tcp.example.com")),
        Record("example.com", NAPTR, 300, Naptr(90, 50, "s", "SIP+D2T", "", "_sip._tcp.example.com")),
        Record("example.com", NAPTR, 300, Naptr(100, 50, "s", "SIP+D2U", "", "_sip._udp.example.com")),
        Record("_sip._tcp.example.com", SRV, 300, Srv(0, 1, 5060, "server1.example.com")),
        Record("_sip._tcp.example.com", SRV, 300, Srv(0, 2, 5060, "server2.example.com")),
        Record("_sips._tcp.example.com", SRV, 300, Srv(0, 1, 5061, "server1.example.com")),
        Record("_sip._udp.example.com", SRV, 300, Srv(0, 1, 5060, "server3.example.com")),
        Record("server1.example.com", A, 300, "127.0.1.1"),
        Record("server2.example.com", A, 300, "127.0.1.2"),
        Record("server2.example.com", AAAA, 300, "::1"),
        Record("server3.example.com", A, 300, "127.0.1.3"),
    )


def _targets(resolver: DnsResolver, uri: str) -> list[tuple[str, str, int]]:
    return [(t.transport, t.host, t.port) for t in resolver.resolve(parse_uri(uri))]


def test_the_rfc3263_section_4_1_example_picks_tcp_for_a_client_without_tls(zone: Zone, stub: DnsStub, no_dns: list[str]) -> None:
    _rfc3263_example(zone)
    targets = _targets(_resolver(stub), "sip:user@example.com")
    # SIPS+D2T is discarded (no TLS here); SIP+D2T has the lowest order left; both SRV targets, A then AAAA
    assert sorted(targets) == [("TCP", "127.0.1.1", 5060), ("TCP", "127.0.1.2", 5060), ("TCP", "::1", 5060)]
    assert stub.queries()[:2] == [("example.com", NAPTR), ("_sip._tcp.example.com", SRV)]
    assert ("_sip._udp.example.com", SRV) not in stub.queries()  # RFC 3403: no higher order once one matched
    assert no_dns == []


def test_a_client_with_tls_takes_the_sips_record_first_rfc3263_section_4_1(zone: Zone, stub: DnsStub) -> None:
    _rfc3263_example(zone)
    resolver = _resolver(stub, transports=("UDP", "TCP", "TLS"))
    assert _targets(resolver, "sip:user@example.com") == [("TLS", "127.0.1.1", 5061)]


def test_a_sips_uri_keeps_only_sips_services_rfc3263_section_4_1(zone: Zone, stub: DnsStub) -> None:
    zone.add(
        Record("example.com", NAPTR, 300, Naptr(10, 50, "s", "SIP+D2U", "", "_sip._udp.example.com")),
        Record("example.com", NAPTR, 300, Naptr(20, 50, "s", "SIPS+D2T", "", "_sips._tcp.example.com")),
        Record("_sip._udp.example.com", SRV, 300, Srv(0, 1, 5060, "udp.example.com")),
        Record("_sips._tcp.example.com", SRV, 300, Srv(0, 1, 5061, "tls.example.com")),
        Record("udp.example.com", A, 300, "127.0.2.1"), Record("tls.example.com", A, 300, "127.0.2.2"),
    )
    resolver = _resolver(stub, transports=("UDP", "TCP", "TLS"))
    assert _targets(resolver, "sips:user@example.com") == [("TLS", "127.0.2.2", 5061)]
    assert _targets(resolver, "sip:user@example.com") == [("UDP", "127.0.2.1", 5060)]


def test_naptr_preference_orders_records_of_one_order_and_unknown_services_are_discarded(zone: Zone, stub: DnsStub) -> None:
    zone.add(
        Record("example.com", NAPTR, 300, Naptr(10, 20, "s", "SIP+D2U", "", "_sip._udp.example.com")),
        Record("example.com", NAPTR, 300, Naptr(10, 10, "s", "SIP+D2T", "", "_sip._tcp.example.com")),
        Record("example.com", NAPTR, 300, Naptr(5, 10, "u", "E2U+sip", "!^.*$!sip:x@y!", "")),
        Record("example.com", NAPTR, 300, Naptr(5, 10, "s", "SIP+D2W", "", "_sip._ws.example.com")),
        Record("_sip._udp.example.com", SRV, 300, Srv(0, 1, 5070, "a.example.com")),
        Record("_sip._tcp.example.com", SRV, 300, Srv(0, 1, 5071, "a.example.com")),
        Record("a.example.com", A, 300, "127.0.3.1"),
    )
    # §4.3: the whole list is the failover order: TCP (preference 10) before UDP (preference 20)
    assert _targets(_resolver(stub), "sip:user@example.com") == [("TCP", "127.0.3.1", 5071), ("UDP", "127.0.3.1", 5070)]


def test_a_naptr_with_flag_a_leads_to_addresses_at_the_default_port(zone: Zone, stub: DnsStub) -> None:
    zone.add(
        Record("example.com", NAPTR, 300, Naptr(10, 10, "A", "SIP+D2T", "", "host.example.com")),
        Record("host.example.com", A, 300, "127.0.3.9"),
    )
    assert _targets(_resolver(stub), "sip:example.com") == [("TCP", "127.0.3.9", 5060)]


def test_without_naptr_the_client_asks_srv_for_each_transport_it_supports_rfc3263_section_4_1(zone: Zone, stub: DnsStub) -> None:
    zone.add(
        Record("_sip._tcp.example.org", SRV, 300, Srv(0, 1, 5080, "tcp.example.org")),
        Record("tcp.example.org", A, 300, "127.0.4.1"),
    )
    assert _targets(_resolver(stub), "sip:bob@example.org") == [("TCP", "127.0.4.1", 5080)]
    assert stub.queries() == [("example.org", NAPTR), ("_sip._udp.example.org", SRV), ("_sip._tcp.example.org", SRV),
                              ("tcp.example.org", A), ("tcp.example.org", AAAA)]


def test_without_naptr_or_srv_a_sip_uri_goes_over_udp_to_the_a_records_at_5060_rfc3263_section_4_2(zone: Zone, stub: DnsStub) -> None:
    zone.add(Record("example.net", A, 300, "127.0.5.1"), Record("example.net", A, 300, "127.0.5.2"))
    assert _targets(_resolver(stub), "sip:bob@example.net") == [("UDP", "127.0.5.1", 5060), ("UDP", "127.0.5.2", 5060)]
    assert _targets(_resolver(stub), "sips:bob@example.net") == [("TLS", "127.0.5.1", 5061), ("TLS", "127.0.5.2", 5061)]


def test_an_explicit_port_means_an_address_lookup_and_no_srv_rfc3263_section_4_2(zone: Zone, stub: DnsStub) -> None:
    _rfc3263_example(zone)
    zone.add(Record("example.com", A, 300, "127.0.6.1"))
    assert _targets(_resolver(stub), "sip:user@example.com:5099") == [("UDP", "127.0.6.1", 5099)]
    assert stub.queries() == [("example.com", A), ("example.com", AAAA)]


def test_an_explicit_transport_means_an_srv_query_for_it_alone_rfc3263_section_4_2(zone: Zone, stub: DnsStub) -> None:
    _rfc3263_example(zone)
    zone.add(Record("example.com", A, 300, "127.0.6.1"))
    assert _targets(_resolver(stub), "sip:user@example.com;transport=udp") == [("UDP", "127.0.1.3", 5060)]
    assert stub.queries()[0] == ("_sip._udp.example.com", SRV)
    assert ("example.com", NAPTR) not in stub.queries()
    # with no SRV record for that transport: A/AAAA at its default port
    assert _targets(_resolver(stub), "sip:user@example.com;transport=sctp") == [("SCTP", "127.0.6.1", 5060)]


def test_a_name_dns_cannot_carry_fails_with_404_and_no_query(stub: DnsStub) -> None:
    with pytest.raises(ResolutionError, match="not a domain name") as caught:
        _resolver(stub).resolve(parse_uri("sip:bob@" + "a" * 64 + ".example.com"))
    assert caught.value.status == 404 and stub.queries() == []


def test_numeric_targets_need_no_query(stub: DnsStub) -> None:
    assert _targets(_resolver(stub), "sip:bob@127.0.0.9;transport=tcp") == [("TCP", "127.0.0.9", 5060)]
    assert _targets(_resolver(stub), "sips:[::1]:5070") == [("TLS", "::1", 5070)]
    assert stub.queries() == []


def test_the_maddr_parameter_is_the_target_rfc3263_section_4(zone: Zone, stub: DnsStub) -> None:
    zone.add(Record("relay.example.com", A, 300, "127.0.7.1"))
    assert _targets(_resolver(stub), "sip:bob@example.com:5062;maddr=relay.example.com") == [("UDP", "127.0.7.1", 5062)]


def test_srv_weights_draw_from_the_injected_generator(zone: Zone, stub: DnsStub) -> None:
    _rfc3263_example(zone)
    orders = {tuple(t.host for t in _resolver(stub, seed=seed).resolve(parse_uri("sip:example.com"))) for seed in range(40)}
    # server2 (weight 2) first in some orders, server1 (weight 1) in others; one seed, one order
    assert {order[0] for order in orders} == {"127.0.1.1", "127.0.1.2"}
    assert _targets(_resolver(stub, seed=5), "sip:example.com") == _targets(_resolver(stub, seed=5), "sip:example.com")


def test_addresses_from_the_additional_section_save_a_query_rfc2782(zone: Zone, stub: DnsStub) -> None:
    zone.add(Record("_sip._udp.example.com", SRV, 300, Srv(0, 1, 5060, "glued.example.com")))
    zone.additional[("_sip._udp.example.com", SRV)] = [Record("glued.example.com", A, 300, "127.0.8.1")]
    assert _targets(_resolver(stub), "sip:example.com;transport=udp") == [("UDP", "127.0.8.1", 5060)]
    assert ("glued.example.com", A) not in stub.queries()


def test_cname_chains_are_followed_rfc1034_section_3_6_2(zone: Zone, stub: DnsStub) -> None:
    zone.add(
        # the stub's answer for a name carries its CNAME only: the resolver asks for the rest
        Record("alias.example.com", CNAME, 300, "middle.example.com"),
        Record("middle.example.com", CNAME, 300, "real.example.com"),
        Record("real.example.com", A, 300, "127.0.9.1"),
    )
    assert _targets(_resolver(stub), "sip:alias.example.com:5060") == [("UDP", "127.0.9.1", 5060)]
    assert stub.queries()[:3] == [("alias.example.com", A), ("middle.example.com", A), ("real.example.com", A)]


def test_a_cname_chain_within_one_answer_is_followed_without_more_queries() -> None:
    answer = Message(1, response=True, questions=(Question("alias.example.com", A),), answers=(
        Record("alias.example.com", CNAME, 300, "real.example.com"), Record("real.example.com", A, 300, "127.0.9.2"),
    ))

    class OneAnswer(DnsClient):
        def query(self, name: str, rtype: int) -> Message:
            assert (name, rtype) == ("alias.example.com", A)
            return answer

    resolver = DnsResolver(OneAnswer([("127.0.0.1", 1)]), rng=random.Random(0), ipv6=False)
    assert resolver.resolve(parse_uri("sip:alias.example.com:5060")) == [Target("UDP", "127.0.9.2", 5060)]


def test_a_cname_loop_ends(zone: Zone, stub: DnsStub) -> None:
    zone.add(Record("loop1.example.com", CNAME, 300, "loop2.example.com"), Record("loop2.example.com", CNAME, 300, "loop1.example.com"))
    with pytest.raises(ResolutionError) as caught:
        _resolver(stub).resolve(parse_uri("sip:loop1.example.com:5060"))
    assert caught.value.status == 404


def test_a_name_that_does_not_exist_fails_with_404(zone: Zone, stub: DnsStub) -> None:
    zone.nxdomain.update({"nowhere.example.com", "_sip._udp.nowhere.example.com", "_sip._tcp.nowhere.example.com"})
    with pytest.raises(ResolutionError, match="no NAPTR, SRV, A or AAAA record") as caught:
        _resolver(stub).resolve(parse_uri("sip:bob@nowhere.example.com"))
    assert caught.value.status == 404


def test_an_srv_target_of_dot_means_decidedly_not_available_rfc2782(zone: Zone, stub: DnsStub) -> None:
    zone.add(Record("_sip._udp.example.com", SRV, 300, Srv(0, 0, 0, "")), Record("example.com", A, 300, "127.0.0.1"))
    with pytest.raises(ResolutionError, match="decidedly not available") as caught:
        _resolver(stub).resolve(parse_uri("sip:bob@example.com"))
    assert caught.value.status == 404  # and no fallback to the A record


def test_a_silent_nameserver_fails_with_503_within_the_bounded_wait(zone: Zone, stub: DnsStub) -> None:
    zone.silent_all = True
    started = time.monotonic()
    with pytest.raises(ResolutionError, match="DNS did not answer") as caught:
        _resolver(stub, timeout=0.2, attempts=2).resolve(parse_uri("sip:bob@example.com"))
    assert caught.value.status == 503
    # the NAPTR query's two attempts, and no more queries after it: the rest of §4 would wait in vain
    assert stub.queries() == [("example.com", NAPTR)] * 2
    assert time.monotonic() - started < 2.0


def test_servfail_moves_on_to_the_next_nameserver(zone: Zone, stub: DnsStub) -> None:
    broken = DnsStub(Zone(servfail={("example.com", A), ("example.com", AAAA)}))
    try:
        zone.add(Record("example.com", A, 300, "127.0.10.1"))
        assert _targets(_resolver(broken, stub), "sip:example.com:5060") == [("UDP", "127.0.10.1", 5060)]
        assert broken.queries() == [("example.com", A), ("example.com", AAAA)]
    finally:
        broken.close()


def test_a_truncated_answer_is_asked_again_over_tcp_rfc1035_section_4_2_2(zone: Zone, stub: DnsStub) -> None:
    zone.add(*(Record("big.example.com", A, 300, f"127.0.11.{i}") for i in range(1, 4)))
    zone.truncate.add(("big.example.com", A))
    assert [t.host for t in _resolver(stub).resolve(parse_uri("sip:big.example.com:5060"))] == [f"127.0.11.{i}" for i in range(1, 4)]
    assert stub.queries("TCP") == [("big.example.com", A)]


def test_an_answer_with_another_id_is_ignored_rfc5452(zone: Zone, stub: DnsStub) -> None:
    zone.add(Record("example.com", A, 300, "127.0.12.1"))
    zone.wrong_id.add(("example.com", A))
    assert _targets(_resolver(stub), "sip:example.com:5060") == [("UDP", "127.0.12.1", 5060)]


def test_answers_are_cached_for_their_ttl_and_absences_for_the_soa_minimum_rfc2308(zone: Zone, stub: DnsStub) -> None:
    zone.add(Record("example.com", A, 60, "127.0.13.1"))
    zone.add(Record("example.com", SOA, 300, Soa("ns.example.com", "admin.example.com", 1, 2, 3, 4, 5)))
    zone.records[("example.com", AAAA)] = []
    now = [100.0]
    resolver = _resolver(stub, clock=now)
    # the AAAA answer is empty; the stub puts no SOA in it, so the default negative TTL (30 s) applies
    for _ in range(3):
        assert _targets(resolver, "sip:example.com:5060") == [("UDP", "127.0.13.1", 5060)]
    assert stub.queries() == [("example.com", A), ("example.com", AAAA)]
    now[0] += 31
    resolver.resolve(parse_uri("sip:example.com:5060"))
    assert stub.queries()[2:] == [("example.com", AAAA)]
    now[0] += 30
    resolver.resolve(parse_uri("sip:example.com:5060"))
    assert stub.queries()[3:] == [("example.com", A), ("example.com", AAAA)]


def test_the_client_gives_up_with_dns_error_after_its_attempts(zone: Zone, stub: DnsStub) -> None:
    zone.silent_all = True
    client = DnsClient([parse_nameserver(stub.nameserver)], timeout=0.05, attempts=3)
    with pytest.raises(DnsError, match="timed out"):
        client.query("example.com", A)
    assert len(stub.queries()) == 3


def test_an_unreachable_nameserver_is_a_dns_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client = DnsClient([("127.0.0.1", port)], timeout=0.2, attempts=1)
    with pytest.raises(DnsError):
        client.query("example.com", A)


def test_a_tcp_answer_is_length_prefixed(zone: Zone, stub: DnsStub) -> None:
    zone.add(Record("example.com", A, 300, "127.0.14.1"))
    with socket.create_connection(stub.address) as sock:
        query = encode(Message(99, questions=(Question("example.com", A),)))
        sock.sendall(struct.pack("!H", len(query)) + query)
        size = struct.unpack("!H", sock.recv(2))[0]
        answer = decode(sock.recv(size))
    assert answer.answers == (Record("example.com", A, 300, "127.0.14.1"),)


# ------------------------------------------------------------------------------------------ configuration


def test_resolv_conf_nameservers_are_read_in_order(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example.com\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\n"
                    "nameserver not-an-address\noptions ndots:2\n")
    assert read_resolv_conf(conf) == [("192.0.2.53", 53), ("fe80::1", 53)]
    assert read_resolv_conf(tmp_path / "missing") == [("127.0.0.1", 53)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("192.0.2.53", ("192.0.2.53", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)), ("::1", ("::1", 53)),
     ("[2001:db8::53]:5300", ("2001:db8::53", 5300))],
)
def test_nameservers_are_numeric_with_an_optional_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["ns.example.com", "127.0.0.1:99999", "[::1]:0"])
def test_a_nameserver_by_name_or_a_bad_port_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_nameserver(text)


# ------------------------------------------------------------------------------------------ hosts first


def test_the_hosts_table_answers_before_dns_and_dns_answers_the_rest(zone: Zone, stub: DnsStub) -> None:
    zone.add(Record("example.com", A, 300, "127.0.15.1"))
    resolver = HostsFirstResolver(StaticResolver({"gw.lab": ["127.0.0.1:5070"], "example.com": ["127.0.0.2"]}), _resolver(stub))
    assert resolver.blocking
    assert resolver.resolve(parse_uri("sip:gw.lab")) == [Target("UDP", "127.0.0.1", 5070)]
    assert resolver.resolve(parse_uri("sip:example.com")) == [Target("UDP", "127.0.0.2", 5060)]
    assert stub.queries() == []
    zone.add(Record("example.org", A, 300, "127.0.15.2"))
    assert resolver.resolve(parse_uri("sip:example.org:5060")) == [Target("UDP", "127.0.15.2", 5060)]


def test_with_dns_off_a_name_outside_the_hosts_table_fails_at_once_with_404(no_dns: list[str]) -> None:
    resolver = HostsFirstResolver(StaticResolver({"gw.lab": ["127.0.0.1"]}), None)
    assert not resolver.blocking
    assert resolver.resolve(parse_uri("sip:127.0.0.3:5080")) == [Target("UDP", "127.0.0.3", 5080)]
    with pytest.raises(ResolutionError, match="not in the hosts table, and DNS is off") as caught:
        resolver.resolve(parse_uri("sip:bob@example.com"))
    assert caught.value.status == 404
    assert no_dns == []


def test_statuses_of_the_static_resolver() -> None:
    with pytest.raises(ResolutionError) as unknown:
        StaticResolver().resolve(parse_uri("sip:example.com"))
    with pytest.raises(ResolutionError) as tel:
        StaticResolver().resolve(parse_uri("tel:+15551234567"))
    with pytest.raises(ResolutionError) as transport:
        StaticResolver().resolve(parse_uri("sip:127.0.0.1;transport=pigeon"))
    assert (unknown.value.status, tel.value.status, transport.value.status) == (404, 416, 503)
    assert StaticResolver.blocking is False and DnsResolver.blocking is True


def test_the_port_53_guard_refuses_a_dns_query() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(AssertionError, match="a DNS query"):
        sock.sendto(b"\0" * 12, ("127.0.0.1", 53))
    from tests import conftest

    conftest._PORT_53.clear()  # this refusal was the point of the test
