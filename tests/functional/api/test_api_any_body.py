"""Property: no JSON body of any shape makes the API answer 5xx, and a refused one changes nothing.

The real app over the real journal (tmp sqlite); bodies are drawn by hypothesis from every JSON shape
(NaN and Infinity literals, huge and negative numbers, any Unicode including lone surrogates, deep
and wide nesting) and from near-valid agent and operator bodies with one field replaced, then sent
correctly authenticated to every endpoint that takes a body, so that validation, not authentication,
is what is tested.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import hypothesis
import pytest
from hypothesis import strategies as st

from petguard.secrets import sign
from tests.functional.api.conftest import HOST_KEYS, TOKEN, Api

#: Values that broke the API before (docs/faults.md INPUT-*), drawn as often as any other value.
NASTY = st.sampled_from(
    [float("nan"), float("inf"), -float("inf"), 1e308, -1, 0, 2**63, 10**25, "\ud800", "a\x00b", "x" * 300, "", " "]
)
SCALARS = (
    NASTY
    | st.none()
    | st.booleans()
    | st.integers(min_value=-(10**25), max_value=10**25)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(exclude_categories=()), max_size=20)
)
KEYS = st.text(max_size=10) | st.sampled_from(["\ud800", "a\x00b", ""])
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)


def _heartbeat() -> dict[str, Any]:
    return {"host": "cmp1", "sent_at": time.time(), "interval": 5.0, "libvirt_connected": True,
            "domains": [{"uuid": "u1", "name": "pet", "state": "running"}], "buffered": 0, "dropped": 0,
            "version": "1"}


def _events() -> dict[str, Any]:
    return {"host": "cmp1", "events": [{"id": "e1", "at": time.time(), "domain_uuid": "u1", "domain_name": "pet",
                                        "kind": "watchdog", "detail": "none"}]}


#: (method, path, a valid body, signed by the agent key or sent with the operator token)
ENDPOINTS: list[tuple[str, str, dict[str, Any], bool]] = [
    ("POST", "/v1/agent/heartbeat", _heartbeat(), True),
    ("POST", "/v1/agent/events", _events(), True),
    ("POST", "/v1/alerts", {"alerts": [{"host": "cmp1", "kind": "k", "status": "firing"}]}, True),
    ("POST", "/v1/alerts", {"version": "4", "alerts": [{"labels": {"instance": "cmp1"}, "status": "firing"}]}, False),
    ("POST", "/v1/hosts/cmp1/requests", {"kind": "maintenance_on", "reason": "x"}, False),
    ("POST", "/v1/brake/override", {"reason": "x"}, False),
    ("PUT", "/v1/log-level", {"level": "INFO"}, False),
]


def _mutated(valid: dict[str, Any]) -> st.SearchStrategy[Any]:
    """The valid body with some fields replaced, added or nested values swapped for any JSON."""
    replaced = st.dictionaries(st.sampled_from([*valid, "extra"]), SCALARS | JSON, min_size=1, max_size=2)
    return replaced.map(lambda changes: {**valid, **changes})


BODIES = st.sampled_from(ENDPOINTS).flatmap(
    lambda endpoint: st.tuples(st.just(endpoint), JSON | _mutated(endpoint[2]))
)


def _send(api: Api, endpoint: tuple[str, str, dict[str, Any], bool], value: Any) -> httpx.Response:
    method, path, _, signed = endpoint
    body = json.dumps(value, allow_nan=True).encode()
    headers = {"Content-Type": "application/json"}
    if signed:
        stamp = f"{time.time():.6f}"
        headers |= {"X-Petguard-Timestamp": stamp, "X-Petguard-Sender": "agent-cmp1",
                    "X-Petguard-Signature": sign(HOST_KEYS["agent-cmp1"], stamp, method, path, body)}
    else:
        headers["Authorization"] = f"Bearer {TOKEN}"
    return api.anonymous().request(method, path, content=body, headers=headers)


@pytest.mark.fault(
    "INPUT-05",
    guarantee="8",
    injected="500 hypothesis-drawn JSON bodies of any shape, authenticated, to every endpoint that takes a body",
    expected="never a 5xx; a refused body queues no request and records no alert",
)
def test_no_json_body_makes_the_api_answer_5xx(api: Api) -> None:
    api.tick()
    store = api.harness.store

    @hypothesis.settings(
        max_examples=500,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(BODIES)
    def check(drawn: tuple[tuple[str, str, dict[str, Any], bool], Any]) -> None:
        endpoint, value = drawn
        before = (len(store.pending_requests()), len(store.active_alerts(time.time())))
        answer = _send(api, endpoint, value)
        assert answer.status_code < 500, (endpoint[1], value, answer.text)
        assert "error" not in answer.json() or answer.json()["error"]["message"]
        if answer.status_code >= 400:
            after = (len(store.pending_requests()), len(store.active_alerts(time.time())))
            assert after == before, (endpoint[1], value, answer.text)

    check()
