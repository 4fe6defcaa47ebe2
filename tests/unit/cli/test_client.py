"""The CLI's HTTP client: URLs, the token file, error bodies and transport errors (no network)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from petguard.cli import errors
from petguard.cli.client import Client, Endpoint, _answer, parse_url, read_token, wait_for_request
from tests.unit.cli.runner import write_token


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://127.0.0.1:8795", Endpoint("http://127.0.0.1:8795", None, "http://127.0.0.1:8795")),
        ("https://ctl:8795/", Endpoint("https://ctl:8795", None, "https://ctl:8795/")),
        (
            "unix:///run/petguard/api.sock",
            Endpoint("http://petguard", "/run/petguard/api.sock", "unix:///run/petguard/api.sock"),
        ),
    ],
)
def test_parse_url(url: str, endpoint: Endpoint) -> None:
    assert parse_url(url) == endpoint


@pytest.mark.parametrize("url", ["ftp://x", "127.0.0.1:8795", "unix://", "http://"])
def test_parse_url_refuses(url: str) -> None:
    with pytest.raises(errors.UsageError, match="is not http://HOST:PORT") as info:
        parse_url(url)
    assert info.value.exit_code == 2


def test_read_token(tmp_path: Path) -> None:
    assert read_token(write_token(tmp_path, "abc")) == "abc"


@pytest.mark.parametrize(
    ("mode", "who"), [(0o644, "other users"), (0o604, "other users"), (0o660, "its group for writing")]
)
def test_token_file_open_to_others_is_refused_with_the_fix(tmp_path: Path, mode: int, who: str) -> None:
    path = write_token(tmp_path, mode=mode)
    with pytest.raises(errors.ClientError) as info:
        read_token(path)
    assert info.value.one_line() == (
        f"the API token file {path} is open to {who} (mode {mode:04o}); a secret file may be read by its owner "
        f"and group only: run chmod 640 {path} (or 600)"
    )
    assert "s3cret" not in str(info.value)


def test_token_file_missing(tmp_path: Path) -> None:
    with pytest.raises(errors.ClientError, match="No such file or directory .*PETGUARD_TOKEN_FILE"):
        read_token(tmp_path / "nope")


def test_token_file_empty(tmp_path: Path) -> None:
    with pytest.raises(errors.ClientError, match="holds no token"):
        read_token(write_token(tmp_path, token="  # nothing here"))


def test_named_tokens(tmp_path: Path) -> None:
    path = write_token(tmp_path, token="# operators\nalice a-secret\nbob b-secret  # on call")
    assert read_token(path, "bob") == "b-secret"
    with pytest.raises(errors.ClientError, match=r"holds 2 tokens \(alice, bob\): choose one with --token-name"):
        read_token(path)
    with pytest.raises(errors.ClientError, match="no token named 'carol'"):
        read_token(path, "carol")
    assert read_token(write_token(tmp_path, token="alice a-secret")) == "a-secret"


def test_malformed_token_line(tmp_path: Path) -> None:
    with pytest.raises(errors.ClientError, match="line 1: expected 'TOKEN' or 'NAME TOKEN'") as info:
        read_token(write_token(tmp_path, token="a b c"))
    assert "a b c" not in str(info.value)


def test_read_only_owner_mode_is_accepted(tmp_path: Path) -> None:
    assert read_token(write_token(tmp_path, "abc", mode=0o400)) == "abc"


def test_error_body_becomes_one_api_error() -> None:
    body = {"error": {"code": 404, "title": "Not Found", "message": "no host named cmp9;\nsee host list"}}
    with pytest.raises(errors.ApiError) as info:
        _answer(httpx.Response(404, json=body))
    assert (info.value.status, info.value.exit_code) == (404, 1)
    assert info.value.one_line() == "Not Found (404): no host named cmp9; see host list"


def test_non_json_error_keeps_status_and_text() -> None:
    with pytest.raises(errors.ApiError, match=r"Bad Gateway \(502\): upstream down"):
        _answer(httpx.Response(502, text="upstream down"))


def test_success_that_is_not_an_object_is_an_error() -> None:
    with pytest.raises(errors.ApiError, match="not a JSON object"):
        _answer(httpx.Response(200, json=[1, 2]))


def _client(handler: httpx.MockTransport, token: str = "t") -> Client:
    return Client(parse_url("http://127.0.0.1:8795"), lambda: token, handler)


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "Connection refused (is petguard-daemon running?"),
        (httpx.ReadTimeout("timed out"), "no answer within 10 s"),
        (httpx.RemoteProtocolError("Server disconnected"), "Server disconnected"),
    ],
)
def test_transport_errors_are_unreachable(exc: httpx.TransportError, text: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(errors.Unreachable) as info:
        _client(httpx.MockTransport(refuse)).get("/v1/status")
    assert info.value.exit_code == 3
    assert info.value.one_line().startswith("cannot reach the petguard daemon at http://127.0.0.1:8795: ")
    assert text in info.value.one_line()
    assert info.value.__cause__ is exc


def test_token_is_sent_as_bearer_and_read_lazily() -> None:
    reads: list[int] = []
    seen: list[str] = []

    def token() -> str:
        reads.append(1)
        return "tok"

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(200, json={"ok": True})

    client = Client(parse_url("http://127.0.0.1:8795"), token, httpx.MockTransport(handler))
    assert reads == []
    client.get("/v1/status")
    client.get("/v1/status")
    assert (seen, len(reads)) == (["Bearer tok", "Bearer tok"], 1)


def test_wait_for_request_polls_until_answered() -> None:
    answers = iter(["pending", "pending", "done"])

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/requests/7"
        return httpx.Response(200, json={"request": {"id": 7, "status": next(answers)}})

    slept: list[float] = []
    final = wait_for_request(
        _client(httpx.MockTransport(handler)), {"id": 7, "status": "pending"}, 10, 0.5, slept.append, lambda: 0.0
    )
    assert final["status"] == "done"
    assert slept == [0.5, 0.5, 0.5]


def test_wait_for_request_gives_up_at_the_timeout() -> None:
    now = iter([0.0, 0.0, 0.6, 1.2])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"request": {"id": 7, "status": "pending"}})

    final = wait_for_request(
        _client(httpx.MockTransport(handler)),
        {"id": 7, "status": "pending"},
        1.0,
        0.5,
        lambda s: None,
        lambda: next(now),
    )
    assert final["status"] == "pending"
