"""``[dns]``, ``[hosts]``, ``[[dialplan]]`` and ``--no-dns``: parsing, errors, and the resolver and dial plan
``sipactors serve`` builds from them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sipactors.cli import _parser
from sipactors.message import parse_uri
from sipactors.routing import build_dialplan, build_resolver, routing_banner
from sipactors.server import ServerConfig, load_config
from sipactors.transport import ResolutionError, Target
from sipactors.transport.dns import A, DnsResolver, Record
from tests.transport.dns_stub import DnsStub, Zone

REPO = Path(__file__).resolve().parents[1]


def _load(tmp_path: Path, text: str, no_dns: bool = False) -> ServerConfig:
    path = tmp_path / "sipactors.toml"
    path.write_text(text)
    return load_config(path, None, None, None, no_dns=no_dns)


def test_with_no_file_dns_is_on_and_the_tables_are_empty() -> None:
    config = load_config(None, None, None, None)
    assert (config.dns_enabled, config.dns_nameservers, config.dns_timeout, config.dns_attempts) == (True, [], 2.0, 2)
    assert config.hosts == {} and config.dialplan == []


def test_the_example_configuration_parses_with_its_documented_defaults() -> None:
    config = load_config(REPO / "examples" / "sipactors.toml", None, None, None)
    assert config.dns_enabled and config.dns_timeout == 2.0 and config.dns_attempts == 2 and config.hosts == {}
    text = (REPO / "examples" / "sipactors.toml").read_text()
    for key in ("enabled", "nameservers", "timeout", "attempts", "[hosts]", "prefix", "gateway", "strip", "prepend", "context"):
        assert key in text, f"{key} is not documented in examples/sipactors.toml"


def test_every_routing_key_is_read(tmp_path: Path) -> None:
    config = _load(tmp_path, """
[dns]
enabled = true
nameservers = ["127.0.0.1:5353", "::1"]
timeout = 0.5
attempts = 3

[hosts]
gw.example.net = ["127.0.0.1:5070", "127.0.0.2"]
"pbx.lab" = "192.0.2.10"

[[dialplan]]
prefix = "+49"
gateway = "sip:gw.example.net"
strip = 3
prepend = "0"

[[dialplan]]
prefix = "9"
gateway = "sip:pbx.lab"
context = "example.com"
""")
    assert config.dns_nameservers == ["127.0.0.1:5353", "::1"] and config.dns_timeout == 0.5 and config.dns_attempts == 3
    assert config.hosts == {"gw.example.net": ["127.0.0.1:5070", "127.0.0.2"], "pbx.lab": ["192.0.2.10"]}
    plan = build_dialplan(config)
    assert str(plan.route(parse_uri("tel:+49-30-123"))) == "sip:030123@gw.example.net;user=phone"
    assert str(plan.route(parse_uri("tel:9123;phone-context=example.com"))) == "sip:9123;phone-context=example.com@pbx.lab;user=phone"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[dns]\nenabled = 1\n", r"\[dns\] enabled: true or false"),
        ("[dns]\nnameservers = \"127.0.0.1\"\n", r"\[dns\] nameservers: a list"),
        ("[dns]\nnameservers = [\"ns.example.com\"]\n", "'ns.example.com' is not a numeric address"),
        ("[dns]\ntimeout = 0\n", r"\[dns\] timeout: seconds"),
        ("[dns]\ntimeout = true\n", r"\[dns\] timeout"),
        ("[dns]\nattempts = 9\n", r"\[dns\] attempts: rounds"),
        ("[dns]\nretries = 2\n", r"unknown keys \['retries'\]"),
        ("[hosts]\ngw = [\"gw.example.net\"]\n", r"\[hosts\] gw: .*numeric addresses only"),
        ("[hosts]\ngw = []\n", r"\[hosts\] gw: a list of numeric addresses"),
        ("[hosts]\ngw = [\"127.0.0.1:http\"]\n", r"\[hosts\] gw: invalid literal"),
        ("[[dialplan]]\nprefix = \"+1\"\n", r"\[\[dialplan\]\] entry 1: gateway is required"),
        ("[[dialplan]]\nprefix = \"+1\"\ngateway = \"sip:a\"\n[[dialplan]]\nprefix = \"+1\"\ngateway = \"sip:b\"\n",
         r"\[\[dialplan\]\]: two rules for prefix '\+1'"),
        ("dialplan = 3\n", r"\[\[dialplan\]\]: an array of tables"),
    ],
)
def test_a_bad_routing_value_stops_the_server_naming_file_table_and_key(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(SystemExit, match=f"sipactors serve: .*sipactors.toml: .*{problem}"):
        _load(tmp_path, text)


def test_no_dns_on_the_command_line_overrides_the_file(tmp_path: Path) -> None:
    assert not _load(tmp_path, "[dns]\nenabled = true\n", no_dns=True).dns_enabled
    assert not load_config(None, None, None, None, no_dns=True).dns_enabled
    assert _parser().parse_args(["serve", "--no-dns"]).no_dns
    assert not _parser().parse_args(["serve"]).no_dns


def test_with_dns_off_the_resolver_answers_from_the_hosts_table_alone(no_dns: list[str]) -> None:
    config = ServerConfig(dns_enabled=False, hosts={"gw.lab": ["127.0.0.1:5070"]})
    resolver = build_resolver(config)
    assert resolver.blocking is False
    assert resolver.resolve(parse_uri("sip:gw.lab")) == [Target("UDP", "127.0.0.1", 5070)]
    with pytest.raises(ResolutionError) as caught:
        resolver.resolve(parse_uri("sip:bob@example.com"))
    assert caught.value.status == 404
    assert "DNS OFF" in routing_banner(config) and "1 name in [hosts]" in routing_banner(config)
    assert no_dns == []


def test_with_dns_on_names_outside_the_table_go_to_the_configured_nameserver() -> None:
    zone = Zone()
    zone.add(Record("example.com", A, 60, "127.0.0.44"))
    stub = DnsStub(zone)
    try:
        config = ServerConfig(dns_nameservers=[stub.nameserver], dns_timeout=1.0,
                              listeners=[("udp", "127.0.0.1", 5060), ("tcp", "127.0.0.1", 5060)])
        resolver = build_resolver(config, rng=random.Random(1))
        assert resolver.blocking is True
        assert isinstance(resolver.dns, DnsResolver) and resolver.dns.transports == ("UDP", "TCP")
        assert resolver.resolve(parse_uri("sip:example.com:5060")) == [Target("UDP", "127.0.0.44", 5060)]
        assert "then DNS" in routing_banner(config) and stub.nameserver in routing_banner(config)
    finally:
        stub.close()


def test_the_default_nameservers_come_from_resolv_conf_without_a_query() -> None:
    resolver = build_resolver(ServerConfig())
    assert isinstance(resolver.dns, DnsResolver) and resolver.dns.client.nameservers  # built, nothing sent
    assert "from /etc/resolv.conf" in routing_banner(ServerConfig())
