"""The readiness prober: a TCP connect or an HTTP GET to an evacuated pet (adapter: sockets and httpx).

``NetworkProber`` implements ``evacuate.ready.Prober`` for the tier gate (``evacuate.gate``). A pet
that does not answer is a result (``ProbeResult(answered=False, detail)``), never an exception: the
gate asks again until its timeout. The detail is short and fit for a log line ("connection refused",
"HTTP 503", "no answer within 2 s").

HTTP: one GET, any 2xx or 3xx answer counts (a redirect means a web server is up: it is not followed);
the body is not read. Proxies from the environment are ignored (``trust_env=False``): a check goes
straight from the controller to the pet, as the docs say, and never to a proxy that would answer for it.
"""

from __future__ import annotations

import socket

import httpx

from petguard.evacuate.ready import CheckKind, ProbeResult, ReadyCheck

USER_AGENT = "petguard-ready-check"


class NetworkProber:
    """Probes pets over the network from the controller."""

    def probe(self, check: ReadyCheck, address: str, timeout: float) -> ProbeResult:
        if check.kind is CheckKind.TCP:
            return _tcp(address, check.port, timeout)
        return _http(check.url(address), timeout)


def _tcp(address: str, port: int, timeout: float) -> ProbeResult:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return ProbeResult(True, "connected")
    except TimeoutError:
        return ProbeResult(False, f"no answer within {timeout:g} s")
    except OSError as exc:
        return ProbeResult(False, exc.strerror or type(exc).__name__)


def _http(url: str, timeout: float) -> ProbeResult:
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream("GET", url, headers={"User-Agent": USER_AGENT}) as response,
        ):
            status = response.status_code
    except httpx.TimeoutException:
        return ProbeResult(False, f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return ProbeResult(False, f"{type(exc).__name__}: {exc}")
    return ProbeResult(200 <= status < 400, f"HTTP {status}")
