"""petguard:ready_check and petguard:ready_delay, parsed (pure): every accepted form, every malformed value."""

from __future__ import annotations

import pytest

from petguard.evacuate.ready import (
    ACCEPTED_FORMS,
    CheckKind,
    ReadyCheck,
    ReadySpec,
    parse_ready_check,
    parse_ready_delay,
    ready_spec,
)

TCP, HTTP = CheckKind.TCP, CheckKind.HTTP


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("tcp:5432", ReadyCheck(TCP, 5432)),
        ("tcp:127.0.0.1:5432", ReadyCheck(TCP, 5432, "127.0.0.1")),
        ("tcp:db.example.org:5432", ReadyCheck(TCP, 5432, "db.example.org")),
        ("tcp:[2001:db8::5]:5432", ReadyCheck(TCP, 5432, "2001:db8::5")),
        ("  TCP:22 ", ReadyCheck(TCP, 22)),  # spaces around and the kind's case do not matter
        ("tcp:1", ReadyCheck(TCP, 1)),
        ("tcp:65535", ReadyCheck(TCP, 65535)),
        ("http:8080", ReadyCheck(HTTP, 8080, None, "/")),
        ("http:8080/", ReadyCheck(HTTP, 8080, None, "/")),
        ("http:8080/health", ReadyCheck(HTTP, 8080, None, "/health")),
        ("http:80/status?full=1", ReadyCheck(HTTP, 80, None, "/status?full=1")),
        ("http://127.0.0.1:8080/health", ReadyCheck(HTTP, 8080, "127.0.0.1", "/health")),
        ("http://lb.example.org/", ReadyCheck(HTTP, 80, "lb.example.org", "/")),
        ("http://lb.example.org", ReadyCheck(HTTP, 80, "lb.example.org", "/")),
        ("http://[::1]:8080/x", ReadyCheck(HTTP, 8080, "::1", "/x")),
        ("http://[::1]/x", ReadyCheck(HTTP, 80, "::1", "/x")),
        ("http://10.0.0.5:81/a/b?c=d", ReadyCheck(HTTP, 81, "10.0.0.5", "/a/b?c=d")),
    ],
)
def test_accepted_forms(value: str, expected: ReadyCheck) -> None:
    assert parse_ready_check(value) == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("5432", "not a kind of check"),
        ("udp:53", "not a kind of check"),
        ("https://lb:443/", "https is not supported"),
        ("tcp", "not a kind of check"),
        ("tcp:", "no port"),
        ("http:", "no port"),
        ("tcp:postgres", "not a number"),
        ("tcp:0", "from 1 to 65535"),
        ("tcp:65536", "from 1 to 65535"),
        ("tcp:-1", "from 1 to 65535"),
        ("tcp:54 32", "space"),
        ("tcp::5432", "host before the port is empty"),
        ("tcp:db:", "not a number"),
        ("tcp:db:x", "not a number"),
        ("tcp:2001:db8::5:5432", "IPv6 address goes in brackets"),
        ("tcp:[not-v6]:5432", "not an IPv6 address"),
        ("tcp:bad_host!:5432", "not a host name"),
        ("tcp:db/x:5432", "not a host name"),
        ("http:health", "not a number"),
        ("http:/health", "not a number"),
        ("http:8080health", "not a number"),
        ("http://", "no host"),
        ("http://:8080/", "not a host name"),
        ("http://host:0/", "from 1 to 65535"),
        ("http://host:99999/", "from 1 to 65535"),
        ("http://host:port/", "not a number"),
        ("http://user:secret@host:80/", "user or password"),
        ("http://host/#frag", "fragment"),
    ],
)
def test_malformed_values_say_why(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_ready_check(value)


def test_the_address_is_the_explicit_host_else_the_first_fixed_ip() -> None:
    assert ReadyCheck(TCP, 22, "192.0.2.9").address(("10.0.0.5",)) == "192.0.2.9"
    assert ReadyCheck(TCP, 22).address(("10.0.0.5", "10.1.0.5")) == "10.0.0.5"
    assert ReadyCheck(TCP, 22).address(()) is None


def test_how_checks_are_named_and_asked_for() -> None:
    assert ReadyCheck(TCP, 5432).describe("10.0.0.5") == "tcp 10.0.0.5:5432"
    assert ReadyCheck(HTTP, 80, None, "/health").describe("10.0.0.5") == "http 10.0.0.5:80/health"
    assert ReadyCheck(TCP, 22).describe(None) == "tcp (no address):22"
    assert ReadyCheck(HTTP, 8080, None, "/h").url("fd00::5") == "http://[fd00::5]:8080/h"
    assert ReadyCheck(HTTP, 8080, None, "/h?x=1").url("10.0.0.5") == "http://10.0.0.5:8080/h?x=1"


@pytest.mark.parametrize(("value", "seconds"), [("30", 30.0), (" 0 ", 0.0), ("2.5", 2.5), ("1e2", 100.0)])
def test_delays(value: str, seconds: float) -> None:
    assert parse_ready_delay(value) == seconds


@pytest.mark.parametrize("value", ["", "soon", "30s", "-1", "nan", "inf", "-inf"])
def test_malformed_delays(value: str) -> None:
    with pytest.raises(ValueError, match="seconds"):
        parse_ready_delay(value)


def test_spec_without_metadata_is_the_default_delay_and_no_check() -> None:
    assert ready_spec({}, 0.0) == ReadySpec(None, 0.0)
    assert not ready_spec({}, 0.0).configured
    assert ready_spec({}, 15.0) == ReadySpec(None, 15.0)
    assert ready_spec({}, 15.0).configured


def test_spec_from_metadata() -> None:
    spec = ready_spec({"petguard:ready_check": "tcp:5432", "petguard:ready_delay": "10"}, 30.0)
    assert spec == ReadySpec(ReadyCheck(TCP, 5432), 10.0)  # the pet's own delay wins over the default
    assert spec.configured


def test_a_malformed_check_is_a_problem_that_names_the_value_and_the_accepted_forms() -> None:
    spec = ready_spec({"petguard:ready_check": "tcp:postgres"}, 0.0)
    assert spec.check is None and spec.delay == 0.0
    (problem,) = spec.problems
    assert "petguard:ready_check='tcp:postgres'" in problem and ACCEPTED_FORMS in problem
    assert "not a number" in problem


def test_a_malformed_delay_falls_back_to_the_default_and_says_so() -> None:
    spec = ready_spec({"petguard:ready_check": "http:80", "petguard:ready_delay": "soon"}, 5.0)
    assert spec.check == ReadyCheck(HTTP, 80, None, "/") and spec.delay == 5.0
    (problem,) = spec.problems
    assert "petguard:ready_delay='soon'" in problem and "tier_delay = 5" in problem
