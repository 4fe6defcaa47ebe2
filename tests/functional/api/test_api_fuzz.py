"""Fuzz the HTTP API from its own OpenAPI document (schemathesis): no 5xx for any input, responses
that match the document, and no state change from a request the API refused.

The app is the real one over a real (tmp) journal; Nova and fencing are the in-memory fakes. The
loop does not tick here, so every accepted change stays visible as a queued request.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import hypothesis
import schemathesis
from schemathesis.checks import not_a_server_error

from petguard.api.app import ApiSettings, make_app
from petguard.api.auth import Authenticator
from petguard.apiadapter import StoreInbox, StoreView, snapshot
from petguard.metrics import Metrics
from tests.fakes import FakeCompute
from tests.functional.api.conftest import HOSTS, TOKEN, devices
from tests.functional.harness import Harness

_TMP = Path(tempfile.mkdtemp(prefix="petguard-fuzz-"))
_HARNESS = Harness(_TMP, FakeCompute(HOSTS), devices())
_HARNESS.loop.tick()  # the hosts exist, so host paths can hit real records
_STORE = _HARNESS.store
_APP = make_app(
    StoreView(_STORE, _HARNESS.loop, tick_interval=1.0, log_level=lambda: "INFO"),
    StoreInbox(_STORE, set_level=lambda level: level.upper()),
    Authenticator(tokens={"alice": TOKEN}, alert_tokens={}, hmac_keys={}, now=_HARNESS.clock.now),
    Metrics(lambda: snapshot(_STORE, _HARNESS.loop)),
    ApiSettings(max_body_bytes=64 * 1024),
)
schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", _APP)


def _state() -> tuple[int, int, int]:
    """What a refused request must not change: queued requests, audit rows, active alerts."""
    return (
        len(_STORE.pending_requests()),
        len(_STORE.audit_log(limit=1000)),
        len(_STORE.active_alerts(_HARNESS.clock.now())),
    )


@schema.parametrize()
@hypothesis.settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
def test_no_server_errors_and_refusals_change_nothing(case: schemathesis.Case) -> None:
    before = _state()
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    if case.path == "/healthz" and case.method == "GET":
        # 503 is /healthz's documented answer when the loop has not ticked lately (it doesn't here).
        assert response.status_code in (200, 503), response.text
        return
    case.validate_response(response, checks=[not_a_server_error])
    if 400 <= response.status_code < 500:
        after = _state()
        # A refused request may be audited (who tried what), but queues nothing and records no alert.
        assert (after[0], after[2]) == (before[0], before[2]), (case.method, case.path, response.status_code)
