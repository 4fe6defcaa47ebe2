"""Webhook delivery from a real sqlite outbox to real HTTP receivers on 127.0.0.1.

In order, signed, retried with back-off, a failing receiver holding back only itself, and no alert
lost (or sent twice) across a stop and a new Dispatcher on the same store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from petguard.clock import SystemClock
from petguard.store import migrate
from petguard.store.sql import SqlStore
from petguard.webhooks.dispatch import DeliveryPolicy, Dispatcher
from petguard.webhooks.receivers import Format, Receiver
from tests.fakes import FakeClock
from tests.functional.webhooks.receiver import Receiver as HttpReceiver

FAST = DeliveryPolicy(
    attempts=2, attempt_wait=0.01, attempt_wait_max=0.02, backoff_base=0.2, backoff_max=0.5, poll_interval=0.05
)
KEY = b"functional-test-key"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    url = f"sqlite:///{tmp_path}/journal.sqlite"
    migrate.upgrade(url)
    store = SqlStore(url)
    yield store
    store.close()


@pytest.fixture
def receivers() -> Iterator[list[HttpReceiver]]:
    started: list[HttpReceiver] = []
    yield started
    for receiver in started:
        receiver.stop()


def _start(receivers: list[HttpReceiver], secret: bytes | None = KEY) -> HttpReceiver:
    receiver = HttpReceiver(secret).start()
    receivers.append(receiver)
    return receiver


def _record(store: SqlStore, count: int, start: int = 0) -> list[int]:
    for n in range(start, start + count):
        store.record_event(f"cmp{n % 3}", None, "host_suspect" if n % 2 else "fence_confirmed", f"event {n}", 100.0 + n)
    return [e.id for e in store.events(limit=10_000)][-count:]


def _wait(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_events_are_delivered_in_order_with_valid_signatures(store: SqlStore, receivers: list[HttpReceiver]) -> None:
    http = _start(receivers)
    dispatcher = Dispatcher(store, [Receiver("ops", http.url, secret=KEY)], FakeClock(), FAST, controller="ctl1")
    dispatcher.deliver_once()  # the new receiver's cursor starts after existing events
    ids = _record(store, 5)
    assert dispatcher.deliver_once() == 5
    assert http.ids() == ids
    assert all(http.verify(item) for item in http.received)
    first = http.received[0].json()
    assert first["version"] == 1 and first["petguard"]["controller"] == "ctl1" and first["host"] == "cmp0"
    assert store.webhook_cursor("ops", 0.0).last_event_id == ids[-1]


@pytest.mark.fault(
    "HOOK-01",
    guarantee="4",
    injected="one webhook receiver answers 503 for two rounds, another works",
    expected="the working one gets everything; the failing one backs off (doubling), keeps its cursor, then gets "
    "every event in order",
)
def test_receiver_down_backs_off_keeps_its_cursor_and_others_go_on(
    store: SqlStore, receivers: list[HttpReceiver]
) -> None:
    up, down = _start(receivers), _start(receivers)
    down.fail = [503] * 4  # two tries in each of two rounds
    clock = FakeClock(1000.0)
    chat = Receiver("chat", up.url, format=Format.SLACK)
    ops = Receiver("ops", down.url, secret=KEY)
    dispatcher = Dispatcher(store, [ops, chat], clock, FAST, controller="ctl1")
    dispatcher.deliver_once()
    ids = _record(store, 3)

    assert dispatcher.deliver_once() == 3  # all three to chat, none to ops
    assert len(up.received) == 3 and all("text" in r.json() for r in up.received)
    cursor = store.webhook_cursor("ops", clock.now())
    assert (cursor.last_event_id, cursor.attempts, cursor.last_error) == (ids[0] - 1, 1, "HTTP 503 Service Unavailable")
    assert cursor.next_attempt_at == pytest.approx(1000.2)
    assert len(down.received) == 2  # tenacity's two tries in a row

    assert dispatcher.deliver_once() == 0 and len(down.received) == 2  # backing off: not even tried
    clock.advance(0.2)
    assert dispatcher.deliver_once() == 0
    assert store.webhook_cursor("ops", clock.now()).next_attempt_at == pytest.approx(1000.6)  # doubled
    clock.advance(0.4)
    assert dispatcher.deliver_once() == 3
    assert down.ids() == [ids[0]] * 4 + ids
    assert store.webhook_cursor("ops", clock.now()).attempts == 0


@pytest.mark.fault(
    "HOOK-02",
    guarantee="4",
    injected="a webhook receiver answers 500, then the dispatcher is replaced (a restart)",
    expected="the backoff is kept in the journal: not tried again before it ends, then delivered",
)
def test_backoff_survives_a_new_dispatcher(store: SqlStore, receivers: list[HttpReceiver]) -> None:
    http = _start(receivers)
    http.fail = [500, 500]
    clock = FakeClock(1000.0)
    ops = [Receiver("ops", http.url, secret=KEY)]
    Dispatcher(store, ops, clock, FAST).deliver_once()
    _record(store, 1)
    Dispatcher(store, ops, clock, FAST).deliver_once()
    assert Dispatcher(store, ops, clock, FAST).deliver_once() == 0  # the persisted wait holds
    assert len(http.received) == 2
    clock.advance(1.0)
    assert Dispatcher(store, ops, clock, FAST).deliver_once() == 1


@pytest.mark.fault(
    "HOOK-03",
    guarantee="4",
    injected="the webhook dispatcher stopped mid-delivery while events keep coming, then started again",
    expected="every event delivered in order, none skipped, none twice, every signature valid",
)
def test_no_alert_lost_or_repeated_across_a_restart(store: SqlStore, receivers: list[HttpReceiver]) -> None:
    http = _start(receivers)
    ops = [Receiver("ops", http.url, secret=KEY)]
    Dispatcher(store, ops, SystemClock(), FAST).deliver_once()
    ids = _record(store, 30)

    first = Dispatcher(store, ops, SystemClock(), FAST)
    first.start()
    _wait("a few deliveries", lambda: len(http.received) >= 5)
    first.stop()  # mid-way: the delivery in hand finishes and moves the cursor
    got_before = http.ids()
    assert 5 <= len(got_before) and got_before == ids[: len(got_before)]

    more = _record(store, 10, start=30)  # the daemon is "down" while events keep coming
    second = Dispatcher(store, ops, SystemClock(), FAST)
    second.start()
    _wait("every event", lambda: len(http.received) >= 40)
    second.stop()
    assert http.ids() == ids + more  # in order, nothing skipped, nothing twice
    assert all(http.verify(item) for item in http.received)


@pytest.mark.fault(
    "HOOK-04",
    guarantee="4",
    injected="a webhook receiver's port closed, then listening again",
    expected="the ConnectError recorded on its cursor; every event delivered once it is back",
)
def test_port_closed_then_back(store: SqlStore, receivers: list[HttpReceiver]) -> None:
    http = _start(receivers)
    ops = [Receiver("ops", http.url, secret=KEY)]
    dispatcher = Dispatcher(store, ops, SystemClock(), FAST)
    dispatcher.deliver_once()
    http.stop()
    ids = _record(store, 3)
    dispatcher.start()
    try:
        _wait("a failed round", lambda: store.webhook_cursor("ops", 0.0).attempts >= 1)
        error = store.webhook_cursor("ops", 0.0).last_error or ""
        assert error.startswith("ConnectError"), error
        back = HttpReceiver(KEY, port=int(http.url.rsplit(":", 1)[1].split("/")[0])).start()
        receivers.append(back)
        _wait("delivery after the receiver came back", lambda: len(back.received) >= 3)
    finally:
        dispatcher.stop()
    assert back.ids() == ids


def test_the_documented_verify_snippet_accepts_real_deliveries(store: SqlStore, receivers: list[HttpReceiver]) -> None:
    docs = (Path(__file__).parents[3] / "docs" / "operations.md").read_text()
    snippet = docs.split("### Verifying a signature", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    http = _start(receivers)
    dispatcher = Dispatcher(store, [Receiver("ops", http.url, secret=KEY)], SystemClock(), FAST)
    dispatcher.deliver_once()
    _record(store, 2)
    dispatcher.deliver_once()
    for item in http.received:
        assert namespace["verify"](KEY, item.headers, item.body)["version"] == 1
    forged = http.received[0]
    with pytest.raises(ValueError, match="bad signature"):
        namespace["verify"](b"other key", forged.headers, forged.body)
