"""One table maps petguard's errors to HTTP answers; the OpenAPI document covers every route."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from petguard import errors
from petguard.api import app, openapi
from petguard.api.auth import Authenticator, Forbidden, Unauthenticated
from petguard.api.wire import InvalidBody
from petguard.secrets import sign

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidBody("x"), 400),
        (Unauthenticated("x"), 401),
        (Forbidden("x"), 403),
        (errors.NotFound("x"), 404),
        (errors.InvalidTransition("x"), 409),
        (app.BodyTooLarge("x"), 413),
        (app.UnsupportedMediaType("x"), 415),
        (errors.StaleEpoch("x"), 503),
        (errors.NovaUnavailable("x"), 503),  # a Temporary
        (errors.Temporary("x"), 503),
        (errors.ConfigError("x"), 500),
        (errors.FencingError("x"), 500),  # any other PetguardError
        (ValueError("x"), 500),  # a bug
    ],
)
def test_error_status(error: Exception, status: int) -> None:
    assert app.status_for(error)[0] == status


def test_every_client_error_class_is_a_permanent_petguard_error() -> None:
    for cls, (status, title) in app.ERROR_STATUS.items():
        assert issubclass(cls, errors.PetguardError)
        assert title and 400 <= status < 600


def test_the_committed_documents_are_up_to_date() -> None:
    """Run `python -m petguard.api.openapi` after changing a shape or a route."""
    rendered = openapi.render()
    assert (ROOT / "docs" / "openapi.json").read_text() == rendered
    assert (ROOT / "petguard" / "api" / "openapi.json").read_text() == rendered


def test_every_route_of_the_app_is_documented() -> None:
    document = json.loads(openapi.render())
    documented = set(document["paths"])
    for template, resource in app.ROUTES:
        path = re.sub(r"\{(\w+):int(\([^)]*\))?\}", r"{\1}", template)
        assert path in documented, path
        methods = {m[3:] for m in dir(resource) if m.startswith("on_")}
        assert methods == set(document["paths"][path]) - {"parameters"}, path
    assert len(documented) == len(app.ROUTES)


class _FailingJournal:
    """The app's View and Inbox seams, whose writes fail the way the journal did with a NaN."""

    def now(self) -> float:
        return 1_800_000_000.0

    def hosts(self) -> list[Any]:
        return []

    def audit(self, *args: object) -> None:
        pass

    def record_heartbeat(self, beat: object) -> None:
        raise errors.Permanent("the database refused to record: NOT NULL constraint failed: agent_hosts.sent_at")


@pytest.mark.fault(
    "INPUT-04",
    guarantee="8",
    injected="the journal fails a write with its own error text (sqlite's NOT NULL constraint message)",
    expected="500 with an error id only; the text goes to the log, never to the caller",
)
def test_a_5xx_never_echoes_the_error_text(caplog: pytest.LogCaptureFixture) -> None:
    journal = _FailingJournal()
    auth = Authenticator(hmac_keys={"agent-cmp1": "k"}, now=journal.now)
    wsgi = app.make_app(cast(Any, journal), cast(Any, journal), auth, cast(Any, None))
    body = json.dumps({"host": "cmp1", "sent_at": 1.0, "interval": 5, "libvirt_connected": True, "domains": []})
    stamp = "1800000000"
    headers = {
        "Content-Type": "application/json",
        "X-Petguard-Timestamp": stamp,
        "X-Petguard-Sender": "agent-cmp1",
        "X-Petguard-Signature": sign("k", stamp, "POST", "/v1/agent/heartbeat", body.encode()),
    }
    with httpx.Client(transport=httpx.WSGITransport(app=wsgi), base_url="http://petguard") as client:
        answer = client.post("/v1/agent/heartbeat", content=body, headers=headers)
    assert answer.status_code == 500
    message = answer.json()["error"]["message"]
    assert "NOT NULL" not in answer.text and "database" not in answer.text and "error id" in message
    error_id = message.split("error id ")[1].split(")")[0]
    assert f"error id {error_id}" in caplog.text and "NOT NULL constraint failed" in caplog.text
