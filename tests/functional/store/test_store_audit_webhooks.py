"""The audit trail and the webhook cursors over the events table (migration 0002), on every backend."""

from __future__ import annotations

from petguard.store.sql import SqlStore


def test_audit_round_trip_oldest_first(store: SqlStore) -> None:
    store.record_audit("alice (token)", "maintenance_on", "cmp1", "accepted", "kernel upgrade", 10.0)
    store.record_audit("bob (token)", "fence", "cmp2", "refused", "host is up", 11.0)
    log = store.audit_log()
    assert [(a.actor, a.action, a.target, a.result) for a in log] == [
        ("alice (token)", "maintenance_on", "cmp1", "accepted"),
        ("bob (token)", "fence", "cmp2", "refused"),
    ]
    assert store.audit_log(limit=1)[0].actor == "bob (token)"


def test_new_receiver_starts_after_existing_events_and_advances_only_on_success(store: SqlStore) -> None:
    store.record_event(None, None, "brake_engaged", "old news", 1.0)
    cursor = store.webhook_cursor("ops-chat", 2.0)
    assert store.events_after(cursor.last_event_id) == []  # no flood of history

    store.record_event("cmp1", None, "fence_started", "one", 3.0)
    store.record_event("cmp1", None, "fence_confirmed", "two", 4.0)
    pending = store.events_after(store.webhook_cursor("ops-chat", 5.0).last_event_id)
    assert [e.kind for e in pending] == ["fence_started", "fence_confirmed"]

    store.webhook_failed("ops-chat", "HTTP 503", next_attempt_at=60.0, at=6.0)
    store.webhook_failed("ops-chat", "HTTP 503", next_attempt_at=90.0, at=7.0)
    failed = store.webhook_cursor("ops-chat", 8.0)
    assert (failed.last_event_id, failed.attempts, failed.next_attempt_at, failed.last_error) == (
        cursor.last_event_id,
        2,
        90.0,
        "HTTP 503",
    )

    store.advance_webhook_cursor("ops-chat", pending[0].id, 9.0)
    moved = store.webhook_cursor("ops-chat", 10.0)
    assert (moved.last_event_id, moved.attempts, moved.last_error) == (pending[0].id, 0, None)
    assert [e.kind for e in store.events_after(moved.last_event_id)] == ["fence_confirmed"]


def test_cursors_are_per_receiver(store: SqlStore) -> None:
    a = store.webhook_cursor("a", 1.0)
    store.record_event(None, None, "x", "m", 2.0)
    b = store.webhook_cursor("b", 3.0)
    assert b.last_event_id > a.last_event_id  # ids need not be consecutive (shared sequences)
    assert len(store.events_after(a.last_event_id)) == 1 and store.events_after(b.last_event_id) == []
