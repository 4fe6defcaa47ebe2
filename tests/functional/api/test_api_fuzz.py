"""Fuzz the HTTP API from its own OpenAPI document (schemathesis), with every credential it knows.

The app is the real falcon app in-process (schemathesis's WSGI transport) over a real, migrated
sqlite journal; Nova and fencing are the in-memory fakes, and the loop has ticked once so that host
paths hit real records. Each generated request is sent with one of the API's credentials in turn:
the operator's bearer token, the alert sender's bearer token, or an HMAC signature (timestamp,
method, path and body, ``petguard.secrets.sign``) by the key of the host the body names (or the
bare key). The documented ones come first in the rotation; the last one of each round is a
credential the operation does not allow (403 expected). Every response must pass schemathesis's
default checks (no 5xx; status code, content type, headers and body as ``docs/openapi.json`` says;
invalid data refused, valid data accepted) and a request the API refused must change nothing.

Bounded for CI: a fixed number of examples per operation, derandomized.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from importlib import resources
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.core import NotSet
from schemathesis.core.parameters import ParameterLocation

from petguard.api.app import OPENAPI_RESOURCE, ApiSettings, make_app
from petguard.api.auth import Authenticator
from petguard.daemon.api_backend import StoreInbox, StoreView, snapshot
from petguard.daemon.metrics import Metrics
from petguard.fencing import fake
from petguard.secrets import sign
from petguard.store.sql import SqlStore as Store
from tests.fakes import FakeCompute
from tests.functional.api.conftest import ALERT_TOKEN, HMAC_KEY, HOSTS, TOKEN, devices
from tests.functional.harness import Harness

#: One signing key per host (``agent-<host>``) and the bare key (alerts only).
AGENT_KEYS = {f"agent-{host}": f"{host}-key-fuzz" for host in HOSTS} | {"agent": HMAC_KEY}
#: Credentials by the OpenAPI security scheme's name.
SCHEMES = ("bearer", "alertToken", "hmac")
#: An HMAC signature by the key of a host the journal knows, named in the body (agent reports).
OWN_HOST = "hmac-own-host"
CREDENTIAL_HEADERS = ("Authorization", "X-Petguard-Signature", "X-Petguard-Timestamp", "X-Petguard-Sender")
EXAMPLES = 30


@pytest.fixture(scope="module")
def petguard_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, Store, Any]]:
    fake.REGISTRY.reset()
    harness = Harness(tmp_path_factory.mktemp("fuzz"), FakeCompute(HOSTS), devices())
    harness.loop.tick()
    store = harness.store
    app = make_app(
        # The loop ticks once only: a long tick interval keeps /healthz answering 200 meanwhile.
        StoreView(store, harness.loop, tick_interval=3600.0, log_level=lambda: "INFO"),
        StoreInbox(store, set_level=lambda level: level.upper()),
        Authenticator(
            tokens={"alice": TOKEN},
            alert_tokens={"alertmanager": ALERT_TOKEN},
            hmac_keys=AGENT_KEYS,
            now=harness.clock.now,
        ),
        Metrics(lambda: snapshot(store, harness.loop)),
        ApiSettings(),
    )
    APP.app = app
    try:
        yield harness, store, app
    finally:
        APP.app = None
        harness.close()
        fake.REGISTRY.reset()


class _App:
    """The WSGI app of the running test (``petguard_store`` sets ``app``), for schemathesis to call."""

    app: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)


APP = _App()
#: The document exactly as the app serves it (``/v1/openapi.json`` is this packaged file). Loaded from the
#: file rather than through the app, so that no journal is made at collection (schemathesis's
#: ``from_fixture`` does not run under pytest 9); the test checks that the app serves the same.
DOCUMENT = resources.files("petguard.api").joinpath(OPENAPI_RESOURCE)
schema = schemathesis.openapi.from_dict(json.loads(DOCUMENT.read_bytes()))
schema.app = APP
# Strings without NUL and lone surrogates: the API refuses them (INPUT-01), and the document cannot say so.
schema.config.generation.update(allow_x00=False, codec="utf-8")
# A schema-valid body may still be over [api] max_body_bytes (10000 domains of 255-character names): 413.
_acceptance = schema.config.checks.positive_data_acceptance
_acceptance.expected_statuses = [*_acceptance.expected_statuses, "413"]

#: Per operation, the rotation of credentials its requests are sent with.
_ROTATIONS: dict[str, Iterator[str]] = {}


def _rotation(case: schemathesis.Case) -> Iterator[str]:
    """The documented schemes of the operation, then one it does not allow (or none, for public ones)."""
    key = f"{case.method} {case.path}"
    if key not in _ROTATIONS:
        documented = [name for requirement in case.operation.definition.raw.get("security", []) for name in requirement]
        undocumented = [name for name in SCHEMES if name not in documented][:1]
        if "hmac" in documented:  # signed by the key of the host it names, then as drawn (403 for most)
            documented.insert(documented.index("hmac"), OWN_HOST)
        _ROTATIONS[key] = itertools.cycle(documented + undocumented if documented else ["none"])
    return _ROTATIONS[key]


def _speak_for_a_known_host(case: schemathesis.Case) -> None:
    """A valid agent report names a host at random: name one of the journal's instead, so that the
    report is signed by that host's own key and accepted (the drawn host stays for other rounds)."""
    if isinstance(case.body, dict) and isinstance(case.body.get("host"), str):
        case.body["host"] = HOSTS[len(case.body["host"]) % len(HOSTS)]


def _body_bytes(case: schemathesis.Case) -> bytes | None:
    if isinstance(case.body, NotSet):
        return None
    if isinstance(case.body, bytes):  # a raw (invalid) body, sent as it is
        return case.body
    return json.dumps(case.body).encode()


def _sender(body: Any) -> str:
    """The key of the host the body speaks for (so valid agent reports pass), else ``agent-cmp1``."""
    host = body.get("host") if isinstance(body, dict) else None
    return f"agent-{host}" if host in HOSTS else "agent-cmp1"  # most drawn hosts: 403, another host's key


def credentials(case: schemathesis.Case, scheme: str, body: bytes | None) -> dict[str, str]:
    """The headers of ``scheme`` for this request (an HMAC signature covers exactly the bytes sent)."""
    if scheme == "bearer":
        return {"Authorization": f"Bearer {TOKEN}"}
    if scheme == "alertToken":
        return {"Authorization": f"Bearer {ALERT_TOKEN}"}
    if scheme == "hmac":
        sender = _sender(case.body if body is not None else None)
        stamp = f"{time.time():.6f}"
        path = case.formatted_path
        signature = sign(AGENT_KEYS[sender], stamp, case.method, path, body or b"")
        return {"X-Petguard-Timestamp": stamp, "X-Petguard-Signature": signature, "X-Petguard-Sender": sender}
    return {}


def _state(store: Store, now: float) -> tuple[int, int]:
    """What a refused request must not change: queued requests and active alerts."""
    return len(store.pending_requests()), len(store.active_alerts(now))


@pytest.mark.fault(
    "INPUTX-01",
    guarantee="8",
    injected=f"schemathesis: {EXAMPLES} derandomized examples per operation of docs/openapi.json (valid and "
    "invalid), sent with operator, alert-token and HMAC credentials in turn",
    expected="never a 5xx; status, content type and body as the document says; a refused request changes nothing",
)
@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
    database=None,
)
def test_the_api_answers_as_its_openapi_document_says(
    case: schemathesis.Case, petguard_store: tuple[Harness, Store, Any]
) -> None:
    harness, store, _ = petguard_store
    scheme = next(_rotation(case))
    if scheme == OWN_HOST:
        scheme = "hmac"
        _speak_for_a_known_host(case)
    body = _body_bytes(case)
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
        headers = {}  # schemathesis's invalid credentials are sent as they are: 401 expected
    else:
        for generated in CREDENTIAL_HEADERS:  # its made-up credentials give way to a real one
            case.headers.pop(generated, None)
        headers = credentials(case, scheme, body)
    before = _state(store, harness.clock.now())
    kwargs: dict[str, Any] = {} if body is None else {"data": body}
    response = case.call(headers=headers, **kwargs)
    case.validate_response(response, headers=headers, transport_kwargs={"headers": headers, **kwargs})
    if 400 <= response.status_code < 500:
        # A refused request may be audited (who tried what), but queues nothing and records no alert.
        assert _state(store, harness.clock.now()) == before, (case.method, case.path, response.status_code)


def test_the_fuzzed_document_is_the_one_the_app_serves(petguard_store: tuple[Harness, Store, Any]) -> None:
    with httpx.Client(transport=httpx.WSGITransport(app=petguard_store[2]), base_url="http://petguard") as client:
        served = client.get("/v1/openapi.json")
    assert served.status_code == 200 and served.content == DOCUMENT.read_bytes()
