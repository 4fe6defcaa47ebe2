"""The thin HTTP client every command shares: where the daemon is, the token, and one error mapping.

``Client`` sends JSON to the daemon's v1 API (docs/api.md) with httpx, over TCP or a unix socket
(``unix:///run/petguard/api.sock``), and turns every failure into a ``ClientError`` (errors.py):
transport errors become ``Unreachable`` (chained ``from`` httpx's error), error bodies
``{"error": {"code", "title", "message"}}`` become ``ApiError``. Tests pass their own transport
(``httpx.WSGITransport`` over the real app, or ``httpx.MockTransport``).

``read_token`` refuses a token file that other users can read, the way ssh refuses a private key.

An ``https://`` URL is verified with ``--ca-file`` / ``PETGUARD_CA_FILE`` (default: the system trust
store, ``petguard.tls.client_context``); there is no way to skip verification (docs/cli.md). A
certificate the client does not trust is a ``ClientError`` naming the URL and the option.
"""

from __future__ import annotations

import dataclasses
import os
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from petguard import secrets, tls
from petguard.cli.errors import ApiError, ClientError, Unreachable, UsageError
from petguard.errors import ConfigError

DEFAULT_URL = "http://127.0.0.1:8795"  # the API's default port (docs/api.md)
DEFAULT_TOKEN_FILE = "/etc/petguard/api-token"
HTTP_TIMEOUT = 10.0

JsonObject = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where the daemon listens: an http(s) base URL, or a unix socket reached as http://petguard."""

    base_url: str
    uds: str | None = None
    shown: str = ""  # what error messages name: the URL the operator gave


def parse_url(url: str) -> Endpoint:
    """``http://host:port``, ``https://...`` or ``unix:///path/to/api.sock``.

    :raises UsageError: for any other scheme, or a unix URL without a path.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return Endpoint(url.rstrip("/"), None, url)
    if parts.scheme == "unix" and parts.path:
        return Endpoint("http://petguard", parts.path, url)
    raise UsageError(f"--url {url!r} is not http://HOST:PORT, https://HOST:PORT or unix:///PATH/TO/SOCKET")


def read_token(path: Path, name: str | None = None) -> str:
    """The bearer token in ``path``, a file readable by its owner only.

    The file is the daemon's format (``[api] token_file``): one token, or ``NAME TOKEN`` lines, ``#``
    comments. With several tokens, ``name`` chooses one.

    :raises ClientError: the file is missing, unreadable, open to group or others, holds no token,
        or several and ``name`` does not pick one.
    """
    tokens = _parse_tokens(_read_private(path), path)
    if name is not None:
        if name not in tokens:
            raise ClientError(f"the API token file {path} has no token named {name!r} (names: {', '.join(tokens)})")
        return tokens[name]
    if len(tokens) > 1:
        raise ClientError(
            f"the API token file {path} holds {len(tokens)} tokens ({', '.join(tokens)}): "
            "choose one with --token-name or PETGUARD_TOKEN_NAME"
        )
    return next(iter(tokens.values()))


def _read_private(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ClientError(
            f"cannot read the API token file {path}: {exc.strerror} "
            "(run as the daemon's user or root, or give --token-file / PETGUARD_TOKEN_FILE)"
        ) from exc
    with os.fdopen(fd, encoding="utf-8") as f:
        problem = secrets.too_open(path, os.fstat(f.fileno()).st_mode)
        if problem is not None:
            raise ClientError(f"the API token file {problem}")
        return f.read()


def _parse_tokens(text: str, path: Path) -> dict[str, str]:
    """``{name: token}``; a bare token is named ``operator``, as the daemon names it."""
    tokens: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split("#", 1)[0].split()
        if len(fields) > 2:
            raise ClientError(f"the API token file {path}, line {number}: expected 'TOKEN' or 'NAME TOKEN'")
        if fields:
            name, token = ("operator", fields[0]) if len(fields) == 1 else (fields[0], fields[1])
            tokens[name] = token
    if not tokens:
        raise ClientError(f"the API token file {path} holds no token")
    return tokens


class Client:
    """JSON calls to the daemon. The token is read at the first call, so ``--help`` needs none."""

    def __init__(
        self,
        endpoint: Endpoint,
        token: Callable[[], str],
        transport: httpx.BaseTransport | None = None,
        timeout: float = HTTP_TIMEOUT,
        ca_file: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._token = token
        self._ca_file = ca_file
        self._transport = transport
        self._timeout = timeout
        self._http: httpx.Client | None = None

    def get(self, path: str, params: dict[str, str | int] | None = None) -> JsonObject:
        return self._call("GET", path, params=params)

    def post(self, path: str, body: JsonObject) -> JsonObject:
        return self._call("POST", path, json=body)

    def put(self, path: str, body: JsonObject) -> JsonObject:
        return self._call("PUT", path, json=body)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(
                base_url=self.endpoint.base_url,
                transport=self._transport or self._default_transport(),
                timeout=self._timeout,
                headers={"Authorization": f"Bearer {self._token()}", "Accept": "application/json"},
            )
        return self._http

    def _default_transport(self) -> httpx.BaseTransport:
        """Over the unix socket (never TLS), or TCP verifying https:// with the CA file (read now, not at --help)."""
        if self.endpoint.uds:
            return httpx.HTTPTransport(uds=self.endpoint.uds)
        try:
            verify = tls.client_context(self._ca_file, "--ca-file / PETGUARD_CA_FILE")
        except ConfigError as exc:
            raise ClientError(str(exc)) from exc
        return httpx.HTTPTransport(verify=verify)

    def _call(self, method: str, path: str, **kwargs: Any) -> JsonObject:
        client = self._client()
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            error = tls.untrusted(exc)
            if error is not None:
                raise ClientError(
                    f"the petguard daemon at {self.endpoint.shown} has a TLS certificate this client does not "
                    f"trust ({tls.reason(error)}): give the CA certificate that signed it with --ca-file or "
                    "PETGUARD_CA_FILE"
                ) from exc
            raise Unreachable(f"cannot reach the petguard daemon at {self.endpoint.shown}: {_reason(exc)}") from exc
        return _answer(response)


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {HTTP_TIMEOUT:.0f} s ({text})"
    return f"{text} (is petguard-daemon running? see --url / PETGUARD_URL)"


def _answer(response: httpx.Response) -> JsonObject:
    """The JSON object of a 2xx answer.

    :raises ApiError: a 4xx/5xx answer (its error body), or a 2xx answer that is not a JSON object.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and isinstance(body, dict):
        return body
    if response.is_success:
        raise ApiError(response.status_code, "Bad answer", "the daemon's answer is not a JSON object")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        title = str(error.get("title") or response.reason_phrase)
        raise ApiError(response.status_code, title, str(error.get("message") or ""))
    raise ApiError(response.status_code, response.reason_phrase or "Error", response.text[:200])


def wait_for_request(
    client: Client,
    request: JsonObject,
    timeout: float,
    interval: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> JsonObject:
    """Poll ``GET /v1/requests/{id}`` until the loop answers (``done``/``refused``) or ``timeout`` passes.

    Returns the last Request seen: still ``pending`` when the timeout passed first.
    """
    deadline = monotonic() + timeout
    while request.get("status") == "pending" and monotonic() < deadline:
        sleep(interval)
        request = client.get(f"/v1/requests/{request['id']}")["request"]
    return request
