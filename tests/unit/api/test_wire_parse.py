"""parse_json refuses deep nesting before the JSON parser sees it (no RecursionError in the API)."""

from __future__ import annotations

import json
import time

import pytest

from petguard.api import wire


@pytest.mark.fault(
    "INPUT-06",
    guarantee="8",
    injected="a body nested 100,000 levels deep (and 33), sent to any endpoint",
    expected="400 before the JSON parser runs: no RecursionError ever reaches the daemon's interpreter",
)
@pytest.mark.parametrize("body", [b"[" * 100_000, b"[" * 33 + b"]" * 33, b'{"a":' * 40 + b"1" + b"}" * 40])
def test_deep_nesting_is_refused_before_the_parser_runs(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parse(*args: object, **kwargs: object) -> object:
        raise AssertionError("the parser must not see a body this deep")

    monkeypatch.setattr(json, "loads", no_parse)
    with pytest.raises(wire.InvalidBody, match="too deeply"):
        wire.parse_json(body)


def test_brackets_inside_strings_do_not_count() -> None:
    body = b'{"note": "' + b"[" * 100 + b'\\"{{{", "list": [[1]]}'
    assert wire.parse_json(body)["list"] == [[1]]


def test_the_depth_check_is_linear_in_the_body() -> None:
    started = time.monotonic()
    for body in (b'"\\"' * 300_000, b"[]" * 500_000):  # an unterminated escaped string; many brackets
        with pytest.raises(wire.InvalidBody):
            wire.parse_json(body)
    assert time.monotonic() - started < 5
