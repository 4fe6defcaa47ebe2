"""Dispatcher logic over an in-memory outbox and httpx's MockTransport (no sockets)."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from petguard.journal import EventRecord, WebhookCursor
from petguard.webhooks import payload
from petguard.webhooks.dispatch import DeliveryPolicy, Dispatcher
from petguard.webhooks.receivers import Format, Receiver
from tests.fakes import FakeClock

FAST = DeliveryPolicy(attempts=3, attempt_wait=0.0, backoff_base=2.0, backoff_max=60.0)


class MemoryOutbox:
    """The four outbox methods of SqlStore, in memory."""

    def __init__(self) -> None:
        self.events: list[EventRecord] = []
        self.cursors: dict[str, WebhookCursor] = {}

    def add(self, kind: str, host: str | None = "cmp1") -> int:
        event_id = len(self.events) + 1
        self.events.append(EventRecord(event_id, 1000.0 + event_id, host, 1, kind, f"{kind} #{event_id}"))
        return event_id

    def events_after(self, event_id: int, limit: int = 100) -> list[EventRecord]:
        return [e for e in self.events if e.id > event_id][:limit]

    def webhook_cursor(self, receiver: str, at: float) -> WebhookCursor:
        return self.cursors.setdefault(receiver, WebhookCursor(receiver, 0))

    def advance_webhook_cursor(self, receiver: str, event_id: int, at: float) -> None:
        self.cursors[receiver] = WebhookCursor(receiver, event_id)

    def webhook_failed(self, receiver: str, error: str, next_attempt_at: float, at: float) -> None:
        cursor = self.cursors[receiver]
        self.cursors[receiver] = WebhookCursor(
            receiver, cursor.last_event_id, cursor.attempts + 1, next_attempt_at, error
        )


class Endpoint:
    """A mock receiver: records requests, answers ``fail`` statuses first, then 200."""

    def __init__(self, fail: list[int] | None = None) -> None:
        self.fail = list(fail or [])
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail:
            return httpx.Response(self.fail.pop(0))
        return httpx.Response(200)

    def ids(self, host: str = "ops.example") -> list[int]:
        return [json.loads(r.content)["id"] for r in self.requests if r.url.host == host and r.content]


def _dispatcher(
    outbox: MemoryOutbox, endpoint: Endpoint, *receivers: Receiver, clock: FakeClock | None = None
) -> Dispatcher:
    transport = httpx.MockTransport(endpoint)
    return Dispatcher(outbox, receivers, clock or FakeClock(), FAST, controller="ctl1", transport=transport)


OPS = Receiver("ops", "https://ops.example/hook", secret=b"k")


def test_delivers_in_order_signed_and_moves_the_cursor() -> None:
    outbox, endpoint = MemoryOutbox(), Endpoint()
    for kind in ("host_suspect", "fence_started", "fence_confirmed"):
        outbox.add(kind)
    dispatcher = _dispatcher(outbox, endpoint, OPS)
    assert dispatcher.deliver_once() == 3
    assert endpoint.ids() == [1, 2, 3]
    for request in endpoint.requests:
        stamp = request.headers["X-Petguard-Timestamp"]
        assert request.headers["X-Petguard-Signature"] == payload.signature(b"k", stamp, request.content)
        assert request.headers["User-Agent"].startswith("petguard/")
    assert outbox.cursors["ops"].last_event_id == 3
    assert dispatcher.deliver_once() == 0


def test_transient_errors_are_retried_in_a_row() -> None:
    outbox, endpoint = MemoryOutbox(), Endpoint(fail=[503, 502])
    outbox.add("awaiting_confirm")
    assert _dispatcher(outbox, endpoint, OPS).deliver_once() == 1
    assert len(endpoint.requests) == 3
    assert outbox.cursors["ops"] == WebhookCursor("ops", 1)


def test_failed_round_backs_off_keeps_the_cursor_and_persists_the_wait() -> None:
    outbox, endpoint, clock = MemoryOutbox(), Endpoint(fail=[500] * 3 + [500] * 3), FakeClock(5000.0)
    outbox.add("awaiting_confirm")
    outbox.add("fence_confirmed")
    dispatcher = _dispatcher(outbox, endpoint, OPS, clock=clock)
    assert dispatcher.deliver_once() == 0
    cursor = outbox.cursors["ops"]
    assert (cursor.last_event_id, cursor.attempts, cursor.next_attempt_at) == (0, 1, 5002.0)
    assert cursor.last_error == "HTTP 500 Internal Server Error"
    assert dispatcher.deliver_once() == 0 and len(endpoint.requests) == 3  # waiting: nothing sent
    clock.advance(2.0)
    assert dispatcher.deliver_once() == 0
    assert outbox.cursors["ops"].next_attempt_at == 5002.0 + 4.0  # the wait doubles
    clock.advance(4.0)
    assert dispatcher.deliver_once() == 2
    assert endpoint.ids() == [1] * 7 + [2]
    assert outbox.cursors["ops"] == WebhookCursor("ops", 2)


def test_client_error_is_not_retried_in_a_row() -> None:
    outbox, endpoint = MemoryOutbox(), Endpoint(fail=[403])
    outbox.add("awaiting_confirm")
    assert _dispatcher(outbox, endpoint, OPS).deliver_once() == 0
    assert len(endpoint.requests) == 1
    assert outbox.cursors["ops"].last_error == "HTTP 403 Forbidden"


def test_backoff_is_capped() -> None:
    policy = DeliveryPolicy(backoff_base=2.0, backoff_max=300.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 8, 9, 50)] == [2.0, 4.0, 8.0, 256.0, 300.0, 300.0]


def test_filtered_events_are_passed_over_not_sent() -> None:
    outbox, endpoint = MemoryOutbox(), Endpoint()
    for kind in ("host_suspect", "fence_held", "awaiting_confirm", "fence_held"):
        outbox.add(kind)
    receiver = Receiver("ops", "https://ops.example/hook", exclude=("*_held",))
    assert _dispatcher(outbox, endpoint, receiver).deliver_once() == 2
    assert endpoint.ids() == [1, 3]
    assert outbox.cursors["ops"].last_event_id == 4


def test_a_failing_receiver_holds_back_only_itself() -> None:
    outbox = MemoryOutbox()
    outbox.add("host_suspect")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500 if request.url.host == "down.example" else 200)

    down = Receiver("down", "https://down.example/hook")
    chat = Receiver("chat", "https://chat.example/T/B/secret-token", format=Format.SLACK)
    dispatcher = Dispatcher(
        outbox, [down, chat], FakeClock(), FAST, controller="c", transport=httpx.MockTransport(handler)
    )
    assert dispatcher.deliver_once() == 1
    assert outbox.cursors["down"].last_event_id == 0
    assert outbox.cursors["chat"].last_event_id == 1


def test_slack_receiver_gets_text(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # httpx logs each request's URL at INFO: it must not get through
    outbox, endpoint = MemoryOutbox(), Endpoint(fail=[500] * 3)
    outbox.add("evacuation_failed")
    chat = Receiver("chat", "https://ops.example/T/B/secret-token", format=Format.SLACK)
    dispatcher = _dispatcher(outbox, endpoint, chat)
    dispatcher.deliver_once()
    dispatcher.deliver_once()
    body = json.loads(endpoint.requests[0].content)
    assert body["text"].startswith(":rotating_light: `evacuation_failed` *cmp1*")
    assert "X-Petguard-Signature" not in endpoint.requests[0].headers
    assert "secret-token" not in caplog.text and "chat" in caplog.text


def test_transport_error_text_never_carries_the_url() -> None:
    outbox = MemoryOutbox()
    outbox.add("host_suspect")
    url = "https://ops.example/T/B/secret-token"

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {url}", request=request)

    dispatcher = Dispatcher(
        outbox, [Receiver("chat", url)], FakeClock(), FAST, controller="c", transport=httpx.MockTransport(handler)
    )
    dispatcher.deliver_once()
    error = outbox.cursors["chat"].last_error or ""
    assert error.startswith("ConnectError") and "secret-token" not in error


def test_stopped_dispatcher_sends_nothing_more() -> None:
    outbox, endpoint = MemoryOutbox(), Endpoint()
    outbox.add("host_suspect")
    dispatcher = _dispatcher(outbox, endpoint, OPS)
    dispatcher.stop()
    assert dispatcher.deliver_once() == 0
    assert endpoint.requests == []
