"""Shared test settings: bounded, derandomised Hypothesis profiles (deterministic runs), shared paths;
``no_dns``, which fails a test that asks the name service anything; and, for every test, a guard that no
socket of this process talks to port 53: no test may send a DNS query (the DNS tests use a stub server on
an ephemeral loopback port). The frozen dataclasses get the fast ``__init__`` a server gives them at start-up
(``sipactors.frozen``), so that the suite runs them as the server does; tests/test_frozen.py compares each
with the one dataclasses made."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from sipactors.frozen import speed_up_all

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

settings.register_profile(
    "ci", max_examples=150, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=100, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long", max_examples=5000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

speed_up_all()


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every name-service entry point of the socket module fails the test if called."""
    calls: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def lookup(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"a DNS query: socket.{name}{args}")
        return lookup

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo", "getfqdn"):
        monkeypatch.setattr(socket, name, refuse(name))
    return calls


#: Refusals of the port-53 guard, kept in case a thread swallowed the AssertionError.
_PORT_53: list[str] = []


def _guarded(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def call(self: socket.socket, *args: Any) -> Any:
        address = args[-1] if name in ("sendto", "sendmsg") else args[0]
        if name == "sendmsg":
            address = args[3] if len(args) > 3 else None
        if isinstance(address, tuple) and len(address) >= 2 and address[1] == 53:
            _PORT_53.append(f"socket.{name} to {address}")
            raise AssertionError(f"a DNS query: socket.{name} to {address}")
        return original(self, *args)
    return call


@pytest.fixture(autouse=True)
def _no_port_53(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Fail any test whose process sends to port 53 (connect, sendto, sendmsg), directly or from a thread."""
    for name in ("connect", "connect_ex", "sendto", "sendmsg"):
        monkeypatch.setattr(socket.socket, name, _guarded(name, getattr(socket.socket, name)))
    _PORT_53.clear()
    yield
    assert not _PORT_53, f"DNS traffic: {_PORT_53}"
