"""Readiness of an evacuated pet before the next tier starts: its metadata, parsed (pure).

A tier is "back" when each of its pets is on another host in its old power state. Optionally the
next tier also waits until the pets of the tiers below it are *ready* (docs/evacuation.md,
"Readiness between tiers"), which each pet says in its Nova metadata:

* ``petguard:ready_check`` — the pet answers a TCP connect or an HTTP GET (any 2xx or 3xx answer):
  ``tcp:PORT``, ``tcp:HOST:PORT``, ``http:PORT[/path]`` or ``http://HOST[:PORT]/path``. Without
  HOST the check goes to the server's first fixed IP address (Nova's ``addresses``); an explicit
  HOST is for a floating IP or a load balancer the controller can reach.
* ``petguard:ready_delay`` — seconds after the pet is back before it counts as ready (alone or with
  a check); ``[evacuation] tier_delay`` is the default for every pet.

This module only parses and describes (no I/O): the runner's tier gate (``evacuate.gate``) reads the
metadata fresh from Nova and probes through the ``Prober`` protocol, which ``evacuate.probe``
implements with real sockets. A malformed value is never fatal: ``ready_spec`` returns it as a
problem (the gate logs it and records an event) and the pet counts as having no check or the default
delay, so a typo never holds the cloud's recovery.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import math
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Protocol

READY_CHECK_KEY = "petguard:ready_check"
READY_DELAY_KEY = "petguard:ready_delay"
#: How an operator may spell a check; every message about a malformed value quotes it.
ACCEPTED_FORMS = "tcp:PORT, tcp:HOST:PORT, http:PORT[/path], http://HOST[:PORT]/path (HOST: a name, IPv4 or [IPv6])"

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?$")


class CheckKind(enum.StrEnum):
    """What a readiness check does."""

    TCP = "tcp"  # a TCP connection is accepted
    HTTP = "http"  # an HTTP GET gets a 2xx or 3xx answer (redirects are not followed)


@dataclasses.dataclass(frozen=True)
class ReadyCheck:
    """One parsed ``petguard:ready_check``."""

    kind: CheckKind
    port: int
    host: str | None = None  # None: the server's first fixed IP address
    path: str = ""  # HTTP only: the path (and query) asked for, starting with "/"

    def address(self, fixed_ips: Sequence[str]) -> str | None:
        """Where to send the check: the explicit HOST, else the first fixed IP (None: no address)."""
        if self.host is not None:
            return self.host
        return fixed_ips[0] if fixed_ips else None

    def url(self, address: str) -> str:
        """The HTTP URL asked for at ``address`` (IPv6 addresses in brackets)."""
        return f"http://{_bracketed(address)}:{self.port}{self.path}"

    def describe(self, address: str | None) -> str:
        """How log lines name the check: ``tcp 10.0.0.5:5432``, ``http 10.0.0.5:80/health``."""
        where = _bracketed(address) if address else "(no address)"
        return f"{self.kind.value} {where}:{self.port}{self.path}"


@dataclasses.dataclass(frozen=True)
class ReadySpec:
    """What makes one pet ready: its check (if any) and its delay, with the problems found in its metadata."""

    check: ReadyCheck | None
    delay: float
    problems: tuple[str, ...] = ()  # one explained message per malformed value (the value was ignored)

    @property
    def configured(self) -> bool:
        """Whether the pet waits for more than being ACTIVE."""
        return self.check is not None or self.delay > 0


@dataclasses.dataclass(frozen=True)
class ReadyPolicy:
    """How the next tier waits for the tiers below it; built from config."""

    timeout: float = 300.0  # seconds a tier waits for the readiness of the tiers below it, then starts anyway
    default_delay: float = 0.0  # seconds after a pet is back before it counts as ready (petguard:ready_delay wins)
    interval: float = 2.0  # seconds between two rounds of checks
    probe_timeout: float = 2.0  # seconds one TCP connect or HTTP answer may take


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What one probe saw: whether the pet answered, and a short detail for the log."""

    answered: bool
    detail: str  # "connected", "HTTP 200", "connection refused", "no answer within 2 s", ...


class Prober(Protocol):
    """Sends one readiness check (implemented by ``evacuate.probe.NetworkProber``; tests use fakes)."""

    def probe(self, check: ReadyCheck, address: str, timeout: float) -> ProbeResult:
        """Check ``address`` once, giving up after ``timeout`` seconds; never raises for a pet that
        does not answer (that is a result, not an error)."""
        ...


def _bracketed(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"port {text!r} is not a number from 1 to 65535")
    return int(text)


def _host(text: str) -> str:
    """A host name or IPv4 address, or an IPv6 address in brackets (returned without them)."""
    if text.startswith("[") and text.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(text[1:-1]))
        except ValueError:
            raise ValueError(f"{text!r} is not an IPv6 address") from None
    if ":" in text:
        raise ValueError(f"host {text!r} has a ':' (an IPv6 address goes in brackets: [2001:db8::5])")
    if not _HOSTNAME.match(text):
        raise ValueError(f"host {text!r} is not a host name or an IP address")
    return text


def _parse_tcp(rest: str) -> ReadyCheck:
    """``PORT`` or ``HOST:PORT`` (HOST may be ``[IPv6]``)."""
    host_text, colon, port_text = rest.rpartition(":")
    if not colon:
        return ReadyCheck(CheckKind.TCP, _port(rest))
    if not host_text:
        raise ValueError("the host before the port is empty")
    return ReadyCheck(CheckKind.TCP, _port(port_text), _host(host_text))


def _parse_http_port(rest: str) -> ReadyCheck:
    """``PORT`` or ``PORT/path``: the server's own address."""
    port_text, slash, path = rest.partition("/")
    return ReadyCheck(CheckKind.HTTP, _port(port_text), None, "/" + path)


def _parse_http_url(text: str) -> ReadyCheck:
    """``http://HOST[:PORT]/path``."""
    parts = urllib.parse.urlsplit(text)
    if "@" in parts.netloc:
        raise ValueError("a user or password in the URL is not supported (and would end up in logs)")
    if parts.fragment:
        raise ValueError("the URL has a #fragment")
    netloc = parts.netloc
    if not netloc:
        raise ValueError("the URL has no host")
    bracket_end = netloc.rfind("]")
    host_text, colon, port_text = netloc.rpartition(":")
    if not colon or bracket_end > len(host_text):  # no port, or the last ':' is inside [IPv6]
        host_text, port_text = netloc, "80"
    host = _host(host_text)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return ReadyCheck(CheckKind.HTTP, _port(port_text), host, path)


def parse_ready_check(value: str) -> ReadyCheck:
    """Parse a ``petguard:ready_check`` value.

    :raises ValueError: the value is none of ``ACCEPTED_FORMS``; the message says what is wrong.
    """
    text = value.strip()
    if not text:
        raise ValueError("the value is empty")
    if any(c.isspace() for c in text):
        raise ValueError("the value has a space in it")
    kind, colon, rest = text.partition(":")
    kind = kind.lower()
    if not colon or kind not in ("tcp", "http"):
        raise ValueError(f"{kind!r} is not a kind of check (tcp or http; https is not supported)")
    if not rest:
        raise ValueError("no port")
    if kind == "tcp":
        return _parse_tcp(rest)
    if rest.startswith("//"):
        return _parse_http_url(text)
    return _parse_http_port(rest)


def parse_ready_delay(value: str) -> float:
    """Parse a ``petguard:ready_delay`` value: seconds, a number >= 0.

    :raises ValueError: not a finite number >= 0.
    """
    try:
        seconds = float(value.strip())
    except ValueError:
        raise ValueError("not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("not a number of seconds >= 0")
    return seconds


def ready_spec(metadata: Mapping[str, str], default_delay: float) -> ReadySpec:
    """What makes the pet with ``metadata`` ready. A malformed value is reported in ``problems`` and
    ignored: no check, or the default delay."""
    problems: list[str] = []
    check: ReadyCheck | None = None
    raw_check = metadata.get(READY_CHECK_KEY)
    if raw_check is not None:
        try:
            check = parse_ready_check(raw_check)
        except ValueError as exc:
            problems.append(
                f"{READY_CHECK_KEY}={raw_check!r} is not a readiness check ({exc}); accepted: {ACCEPTED_FORMS}; "
                "checked without it (ACTIVE is enough)"
            )
    delay = default_delay
    raw_delay = metadata.get(READY_DELAY_KEY)
    if raw_delay is not None:
        try:
            delay = parse_ready_delay(raw_delay)
        except ValueError as exc:
            problems.append(
                f"{READY_DELAY_KEY}={raw_delay!r} is {exc}; accepted: seconds (e.g. 30); "
                f"the default delay applies ([evacuation] tier_delay = {default_delay:g})"
            )
    return ReadySpec(check, delay, tuple(problems))
