"""The agent's on-disk buffer (bounded, oldest dropped and counted, kept across restarts) and its
reporter (signed posts, failover between controllers, nothing removed before a 2xx), over
httpx.MockTransport: no socket."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from petguard.agent.events import DomainEvent, EventKind
from petguard.agent.report import AgentStatus, Buffer, Reporter, ReportSettings, Undelivered
from petguard.api.auth import Authenticator


def ev(n: int) -> DomainEvent:
    return DomainEvent(f"b-{n}", float(n), "uuid", "pet", EventKind.WATCHDOG, "reset")


def test_the_buffer_keeps_order_and_survives_a_restart(tmp_path: Path) -> None:
    buffer = Buffer(tmp_path / "b.sqlite", 10)
    for n in range(5):
        buffer.put(ev(n))
    first = buffer.peek(2)
    buffer.remove([seq for seq, _ in first])
    buffer.close()
    again = Buffer(tmp_path / "b.sqlite", 10)
    assert [e.id for _, e in again.peek(10)] == ["b-2", "b-3", "b-4"] and len(again) == 3


def test_a_full_buffer_drops_the_oldest_counts_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    buffer = Buffer(tmp_path / "b.sqlite", 10)
    with caplog.at_level(logging.WARNING):
        for n in range(25):
            buffer.put(ev(n))
    assert len(buffer) == 10 and buffer.dropped == 15
    assert [e.id for _, e in buffer.peek(100)] == [f"b-{n}" for n in range(15, 25)]
    assert "dropped the 1 oldest; 15 dropped in all" in caplog.text
    buffer.close()
    assert Buffer(tmp_path / "b.sqlite", 10).dropped == 15


def settings(*urls: str) -> ReportSettings:
    return ReportSettings(urls=urls, host="cmp1", sender="cmp1", key="k3y", heartbeat_interval=1.0)


def test_events_are_signed_and_removed_only_after_a_2xx_with_failover(tmp_path: Path) -> None:
    checker = Authenticator(hmac_keys={"cmp1": "k3y"}, now=lambda: 0.0, max_skew=1e12)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.host == "down":
            return httpx.Response(503, json={"error": {"message": "not the leader"}})
        headers = {k.lower(): v for k, v in request.headers.items()}
        checker.authenticate(headers, request.content, method=request.method, path=request.url.path)
        return httpx.Response(202, json={"accepted": len(json.loads(request.content)["events"]), "duplicates": 0})

    buffer = Buffer(tmp_path / "b.sqlite", 100)
    for n in range(3):
        buffer.put(ev(n))
    reporter = Reporter(settings("http://down", "http://up"), buffer, lambda: AgentStatus(True, ()),
                        transport=httpx.MockTransport(handler))
    assert reporter.flush_once() == 3 and len(buffer) == 0
    assert seen == ["http://down/v1/agent/events", "http://up/v1/agent/events"]
    buffer.put(ev(9))
    reporter.flush_once()
    assert seen[-1] == "http://up/v1/agent/events", "the controller that answered is tried first"


def test_each_try_is_signed_anew_over_the_api_path(tmp_path: Path) -> None:
    """A controller accepts a signature once: the next URL (maybe the same controller by another name,
    or behind a proxy that strips a prefix) gets a fresh signature over the API path."""
    checker = Authenticator(hmac_keys={"cmp1": "k3y"}, max_skew=1e12)
    answers: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        path = request.url.path.removeprefix("/petguard")  # what the proxy forwards
        checker.authenticate(headers, request.content, method=request.method, path=path)
        answers.append(503 if request.url.host == "vip" else 202)
        return httpx.Response(answers[-1], json={"accepted": 1, "duplicates": 0})

    buffer = Buffer(tmp_path / "b.sqlite", 100)
    buffer.put(ev(1))
    clock = iter(float(n) for n in range(100))
    reporter = Reporter(settings("http://vip/petguard", "http://ctl1/petguard"), buffer,
                        lambda: AgentStatus(True, ()), transport=httpx.MockTransport(handler),
                        clock=lambda: next(clock))
    assert reporter.flush_once() == 1 and answers == [503, 202]


def test_nothing_leaves_the_buffer_while_no_controller_accepts(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": "the signature does not match the body"}})

    buffer = Buffer(tmp_path / "b.sqlite", 100)
    buffer.put(ev(1))
    transport = httpx.MockTransport(refuse)
    reporter = Reporter(settings("http://c1"), buffer, lambda: AgentStatus(True, ()), transport=transport)
    with pytest.raises(Undelivered, match="signature does not match"):
        reporter.flush_once()
    assert len(buffer) == 1
    assert reporter.send_heartbeat() is False
