"""Tests for the Host/Origin policy (DNS rebinding and cross-site calls) and the log-field escaping."""

from __future__ import annotations

import socket

import pytest

from trainyard._serving.gate import safe_for_log
from trainyard._serving.hosts import HostPolicy, is_loopback_name, split_host


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("localhost:5001", ("localhost", "5001")),
        ("LocalHost.", ("localhost", "")),
        ("127.0.0.1", ("127.0.0.1", "")),
        ("[::1]:80", ("::1", "80")),
        ("[::1]", ("::1", "")),
        ("::1", None),  # IPv6 without brackets is not a Host value
        ("a b", None),
        ("evil\ncom", None),
        ("host:port", None),
        ("[::1", None),
        ("", None),
    ],
)
def test_split_host(value: str, parts: tuple[str, str] | None) -> None:
    assert split_host(value) == parts


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("app.localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
    ],
)
def test_is_loopback_name(host: str, loopback: bool) -> None:
    assert is_loopback_name(host) is loopback


LOOPBACK = HostPolicy("127.0.0.1")


@pytest.mark.parametrize(
    "value",
    [
        b"localhost",
        b"localhost:5001",
        b"127.0.0.1:5001",
        b"127.1.2.3",
        b"[::1]:5001",
        b"x.localhost",
    ],
)
def test_loopback_names_are_accepted(value: bytes) -> None:
    assert LOOPBACK.host_allowed(value)


@pytest.mark.parametrize(
    "value",
    [
        b"attacker.example",  # the rebinding page's own name
        b"attacker.example:5001",
        b"localhost.attacker.example",
        b"127.0.0.1.nip.io",
        b"10.0.0.5",  # another address of a loopback-bound server
        b"evil\x00host",
        b"",
        b"::1",
    ],
)
def test_other_hosts_are_refused_on_a_loopback_server(value: bytes) -> None:
    assert not LOOPBACK.host_allowed(value)


def test_allow_list_names_suffixes_and_star() -> None:
    policy = HostPolicy(
        "127.0.0.1", allowed_hosts=("scoring.internal", ".corp.example", "10.0.0.5")
    )
    assert policy.host_allowed(b"scoring.internal:443")
    assert policy.host_allowed(b"a.corp.example") and policy.host_allowed(b"corp.example")
    assert policy.host_allowed(b"10.0.0.5:5001")
    assert not policy.host_allowed(b"evilcorp.example")
    assert not policy.host_allowed(b"scoring.internal.evil")
    assert HostPolicy("127.0.0.1", allowed_hosts=("*",)).host_allowed(b"anything.example")


def test_bind_address_and_name_are_accepted() -> None:
    assert HostPolicy("10.1.2.3").host_allowed(b"10.1.2.3:5001")
    assert not HostPolicy("10.1.2.3").host_allowed(b"10.1.2.4")
    assert HostPolicy("scoring-box").host_allowed(b"scoring-box:80")


def test_wildcard_bind_accepts_ip_literals_and_this_machines_name_only() -> None:
    policy = HostPolicy("0.0.0.0")
    assert policy.host_allowed(b"192.168.1.20:5001") and policy.host_allowed(b"[fe80::1]")
    assert policy.host_allowed(socket.gethostname().encode() + b":5001")
    assert not policy.host_allowed(b"attacker.example")


def test_origins() -> None:
    policy = HostPolicy("127.0.0.1", allowed_origins=("https://app.example.com",))
    assert policy.origin_allowed(b"http://localhost:5001", b"localhost:5001")  # same origin
    assert policy.origin_allowed(b"https://app.example.com", b"localhost:5001")
    assert policy.origin_allowed(b"https://APP.example.com/", b"localhost:5001")
    assert not policy.origin_allowed(b"http://attacker.example", b"localhost:5001")
    assert not policy.origin_allowed(b"null", b"localhost:5001")
    assert not policy.origin_allowed(b"http://localhost:8888", b"localhost:5001")  # other port
    assert not policy.origin_allowed(b"http://localhost:5001", None)
    assert HostPolicy("127.0.0.1", allowed_origins=("*",)).origin_allowed(b"null", None)


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        ("/score", "/score"),
        ("/a\n2026-01-01T00:00:00Z GET /x 200", "/a\\x0a2026-01-01T00:00:00Z%20GET%20/x%20200"),
        ("/a\r\x1b[31m", "/a\\x0d\\x1b[31m"),
        ("/a\u2028b\x85c", "/a\\u2028b\\x85c"),
        ("/a\\x0ab", "/a\\\\x0ab"),  # a literal backslash cannot pass for an escape
        ("/é", "/é"),
    ],
)
def test_safe_for_log(text: str, logged: str) -> None:
    out = safe_for_log(text)
    assert out == logged and "\n" not in out and "\r" not in out


def test_safe_for_log_cuts_long_fields() -> None:
    assert safe_for_log("/" + "a" * 5000) == "/" + "a" * 999 + "..."
    assert safe_for_log("/\n" * 3000).endswith("...")
