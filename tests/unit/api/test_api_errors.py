"""One table maps petguard's errors to HTTP answers; the OpenAPI document covers every route."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from petguard import errors
from petguard.api import app, openapi
from petguard.api.auth import Forbidden, Unauthenticated
from petguard.api.wire import InvalidBody

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
