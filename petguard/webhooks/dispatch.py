"""Deliver the outbox: each receiver gets the events after its cursor, in id order, signed.

The events table is the outbox and each receiver has a cursor (the id of the last event it got). A
receiver's cursor moves only after a delivery succeeded, so nothing is skipped: after a failure, or a
stop, or a crash, delivery resumes at the first event the receiver has not acknowledged. (A crash
between the receiver's 2xx and the cursor update re-sends that one event: receivers de-duplicate on
the event ``id``.)

Each delivery is tried ``attempts`` times in a row (tenacity, short exponential waits); when all fail,
the receiver backs off for a doubling delay persisted as ``next_attempt_at``, so the back-off
survives a restart. Each receiver has its own thread: a failing or slow receiver holds back only
itself. URLs and secrets are never logged (a Slack URL is itself a secret).
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
from collections.abc import Sequence
from typing import Protocol

import httpx
import tenacity

import petguard
from petguard.clock import Clock
from petguard.errors import PetguardError
from petguard.journal import EventRecord, WebhookCursor
from petguard.webhooks import payload
from petguard.webhooks.receivers import Format, Receiver

LOG = logging.getLogger(__name__)

#: Answers worth another try right away; any other non-2xx waits for the next round.
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class _HideUrls(logging.Filter):
    """Drops httpx's own "HTTP Request: POST <url>" records for receivers' URLs (a Slack URL is a
    credential); petguard logs each outcome itself, by receiver name."""

    def __init__(self) -> None:
        super().__init__("httpx")
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        texts = [str(arg) for arg in args] + [str(record.msg)]
        return not any(url in text for url in self.urls for text in texts)


_HIDE_URLS = _HideUrls()
logging.getLogger("httpx").addFilter(_HIDE_URLS)


class Outbox(Protocol):
    """What the dispatcher needs from the store (``petguard.store.sql.SqlStore`` has it)."""

    def events_after(self, event_id: int, limit: int = 100) -> list[EventRecord]: ...

    def webhook_cursor(self, receiver: str, at: float) -> WebhookCursor: ...

    def advance_webhook_cursor(self, receiver: str, event_id: int, at: float) -> None: ...

    def webhook_failed(self, receiver: str, error: str, next_attempt_at: float, at: float) -> None: ...


@dataclasses.dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try; built from ``[webhooks]``."""

    attempts: int = 3  # tries in a row of one delivery (tenacity)
    attempt_wait: float = 0.5  # first wait between those tries; doubles up to attempt_wait_max
    attempt_wait_max: float = 4.0
    backoff_base: float = 2.0  # first back-off after a failed round; doubles up to backoff_max
    backoff_max: float = 300.0
    poll_interval: float = 1.0
    batch: int = 100

    def backoff(self, failed_rounds: int) -> float:
        """Seconds to wait after the receiver's ``failed_rounds``-th failed round in a row (1, 2, ...)."""
        return float(min(self.backoff_max, self.backoff_base * 2 ** max(0, failed_rounds - 1)))


class DeliveryFailed(Exception):
    """One delivery failed; the message is safe to log (no URL, no secret)."""


class _TryAgain(DeliveryFailed):
    """A failure worth another try right away (connection error, timeout, 5xx, 429)."""


class Dispatcher:
    """Delivers events to receivers: ``start()``/``stop()`` for the daemon, ``deliver_once()`` for tests."""

    def __init__(
        self,
        store: Outbox,
        receivers: Sequence[Receiver],
        clock: Clock,
        policy: DeliveryPolicy | None = None,
        *,
        controller: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._store = store
        self._receivers = tuple(receivers)
        _HIDE_URLS.urls.update(r.url for r in self._receivers if r.url)
        self._clock = clock
        self._policy = policy or DeliveryPolicy()
        self._controller = controller or socket.gethostname()
        self._transport = transport
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clients: dict[str, httpx.Client] = {}
        self._clients_lock = threading.Lock()

    @property
    def receivers(self) -> tuple[Receiver, ...]:
        return self._receivers

    # -- the daemon's side ----------------------------------------------------------------------
    def start(self) -> None:
        """One thread per receiver, each polling the outbox every ``poll_interval``."""
        for receiver in self._receivers:
            thread = threading.Thread(target=self._run, args=(receiver,), name=f"webhook-{receiver.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self._receivers:
            LOG.info("alerts go to %s", ", ".join(f"{r.name} ({r.format.value})" for r in self._receivers))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads; a delivery in hand finishes (and moves its cursor) first."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        with self._clients_lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def _run(self, receiver: Receiver) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_to(receiver)
            except PetguardError as exc:
                LOG.warning("webhook %s: cannot read the outbox: %s; next: try again", receiver.name, exc)
            except Exception:
                # Never die silently (a dead sender looks like a quiet cloud): log and go on.
                LOG.exception("webhook %s: delivery crashed; next: try again", receiver.name)
            self._stop.wait(self._policy.poll_interval)

    # -- one round ------------------------------------------------------------------------------
    def deliver_once(self) -> int:
        """One round for every receiver, one after the other; returns how many events were delivered."""
        return sum(self.deliver_to(receiver) for receiver in self._receivers)

    def deliver_to(self, receiver: Receiver) -> int:
        """Deliver ``receiver``'s pending events in id order until none is left or one fails.

        Returns how many were delivered (events its filters skip are passed over, not counted).
        """
        now = self._clock.now()
        cursor = self._store.webhook_cursor(receiver.name, now)
        if cursor.next_attempt_at is not None and now < cursor.next_attempt_at:
            return 0
        delivered, last, skipped, failed_rounds = 0, cursor.last_event_id, cursor.last_event_id, cursor.attempts
        while not self._stop.is_set():
            events = self._store.events_after(max(last, skipped), self._policy.batch)
            if not events:
                break
            for event in events:
                if self._stop.is_set():
                    break
                if not receiver.wants(event.kind):
                    skipped = event.id
                    continue
                try:
                    self._deliver(receiver, event)
                except DeliveryFailed as exc:
                    self._failed(receiver, event, str(exc), failed_rounds + 1)
                    return delivered
                self._store.advance_webhook_cursor(receiver.name, event.id, self._clock.now())
                if failed_rounds:
                    LOG.info("webhook %s: delivering again after %d failed round(s)", receiver.name, failed_rounds)
                last, delivered, failed_rounds = event.id, delivered + 1, 0
        if skipped > last:
            self._store.advance_webhook_cursor(receiver.name, skipped, self._clock.now())
        return delivered

    def _failed(self, receiver: Receiver, event: EventRecord, error: str, failed_rounds: int) -> None:
        now = self._clock.now()
        wait = self._policy.backoff(failed_rounds)
        self._store.webhook_failed(receiver.name, error, now + wait, now)
        LOG.warning(
            "webhook %s: event %d (%s) not delivered: %s; failed round %d; next: try again in %.0f s "
            "(later events wait, none is dropped)",
            receiver.name,
            event.id,
            event.kind,
            error,
            failed_rounds,
            wait,
        )

    # -- one delivery ---------------------------------------------------------------------------
    def _deliver(self, receiver: Receiver, event: EventRecord) -> None:
        """POST the event, tried ``attempts`` times in a row on failures worth another try.

        :raises DeliveryFailed: it was not delivered.
        """
        if receiver.format is Format.SLACK:
            body = payload.slack_body(event, self._controller)
        else:
            body = payload.json_body(event, self._controller, petguard.__version__)
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._policy.attempts) | tenacity.stop_when_event_set(self._stop),
            wait=tenacity.wait_exponential(multiplier=self._policy.attempt_wait, max=self._policy.attempt_wait_max),
            retry=tenacity.retry_if_exception_type(_TryAgain),
            sleep=self._sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                self._post(receiver, body)

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _post(self, receiver: Receiver, body: bytes) -> None:
        # A fresh timestamp per try: receivers may refuse old ones (replay protection).
        headers = payload.signed_headers(receiver.secret, str(int(self._clock.now())), body)
        try:
            response = self._client(receiver).post(receiver.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise _TryAgain(_safe(exc, receiver)) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise DeliveryFailed(_safe(exc, receiver)) from None
        if response.is_success:
            return
        error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        if response.status_code in RETRY_STATUS:
            raise _TryAgain(error)
        raise DeliveryFailed(error)

    def _client(self, receiver: Receiver) -> httpx.Client:
        with self._clients_lock:
            client = self._clients.get(receiver.name)
            if client is None:
                client = httpx.Client(
                    timeout=receiver.timeout,
                    follow_redirects=False,
                    transport=self._transport,
                    headers={"User-Agent": f"petguard/{petguard.__version__}"},
                )
                self._clients[receiver.name] = client
            return client


def _safe(exc: Exception, receiver: Receiver) -> str:
    """The error's text with the receiver's URL (a secret for Slack) taken out."""
    text = f"{type(exc).__name__}: {exc}"
    return text.replace(receiver.url, "<url>") if receiver.url else text
