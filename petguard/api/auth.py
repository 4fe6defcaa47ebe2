"""Who is calling the API: bearer tokens for operators and alert senders, HMAC signatures for agents.

* Operators (the CLI): ``Authorization: Bearer <token>``, tokens from ``[api] token_file``.
* Alertmanager cannot sign: ``/v1/alerts`` also accepts a bearer token from ``[api] alert_token_file``.
* Agents and alert senders that can sign: HMAC-SHA256 over ``signed_string`` (timestamp, method,
  path and body, each on its own line) with a key from ``[api] hmac_key_file``; headers
  ``X-Petguard-Timestamp`` (unix seconds, finite, within ``max_skew``), ``X-Petguard-Signature:
  sha256=<hex>`` and, when the file names several senders, ``X-Petguard-Sender: <name>``. Each
  signature is accepted once (``SeenSignatures``, per process): a replay within the window is 401.
* A signing key speaks for one compute host, named by the key's name (``bound_host``): ``agent-cmp1``
  or ``cmp1`` for host ``cmp1``. A bare key (no name in the file) speaks for no host: it may sign
  alerts, which are evidence only, never an agent's heartbeat or events.

Secret files hold one secret, or one ``NAME SECRET`` pair per line (``#`` starts a comment); the
name is who the audit trail says acted. They must not be readable by group or others. Secrets are
compared in constant time and never logged, returned or put in an error message.
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import math
import re
import threading
from collections.abc import Callable, Mapping

from petguard import secrets
from petguard.errors import Permanent, Temporary

SIGNATURE_HEADER = "x-petguard-signature"
TIMESTAMP_HEADER = "x-petguard-timestamp"
SENDER_HEADER = "x-petguard-sender"
MAX_SKEW = 300.0
#: Signatures remembered at most (``SeenSignatures``); beyond that signed requests are refused (503)
#: rather than forgetting one early, which would let it be replayed.
MAX_SEEN = 500_000
#: ``X-Petguard-Timestamp``: unix seconds, digits with at most 9 decimals (no sign, exponent, NaN, inf).
TIMESTAMP_FORMAT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")


class Unauthenticated(Permanent):
    """No credentials, or credentials that do not verify (answered with 401)."""


class Forbidden(Permanent):
    """Valid credentials that do not allow this request (answered with 403)."""


class ReplayCacheFull(Temporary):
    """Too many signatures within ``max_skew`` to remember them all (answered with 503)."""


class Role(enum.StrEnum):
    """What a caller's credentials allow."""

    OPERATOR = "operator"  # a token from token_file: everything
    ALERT_SENDER = "alert_sender"  # a token from alert_token_file: POST /v1/alerts only
    SIGNED = "signed"  # an HMAC signature (agents, alert senders): POST /v1/alerts and /v1/agent/*


@dataclasses.dataclass(frozen=True)
class Principal:
    """An authenticated caller; ``actor`` is what the audit trail records."""

    name: str
    role: Role

    @property
    def actor(self) -> str:
        prefix = {Role.OPERATOR: "", Role.ALERT_SENDER: "alert-token:", Role.SIGNED: "hmac:"}[self.role]
        return f"{prefix}{self.name}"

    @property
    def host(self) -> str | None:
        """The compute host a signing key speaks for (``bound_host``); None for tokens and bare keys."""
        return secrets.bound_host(self.name) if self.role is Role.SIGNED else None


def check_speaks_for(principal: Principal, host: str, what: str) -> None:
    """:raises Forbidden: ``principal`` is a signing key that may not speak for ``host``."""
    own = principal.host
    if own == host:
        return
    if own is None:
        raise Forbidden(
            f"{principal.actor} may not {what} for host {host!r}: this key is not bound to a host (a bare key "
            "in [api] hmac_key_file may sign alerts only); give each agent its own key named after its host "
            f"('agent-{host} <key>' in hmac_key_file, and sender = agent-{host} in the agent's [agent] section)"
        )
    raise Forbidden(
        f"{principal.actor} may not {what} for host {host!r}: this key speaks for host {own!r} only; "
        f"check the agent's [agent] host and sender (the key for {host!r} is named 'agent-{host}' or '{host}')"
    )


class SeenSignatures:
    """The signatures accepted within the freshness window, each remembered until its timestamp is too
    old to pass the skew check anyway. Thread-safe; one per process (one API server).

    Not cachetools.TTLCache: that evicts live entries when full, which would let them be replayed.
    """

    def __init__(self, max_entries: int = MAX_SEEN) -> None:
        self._max = max_entries
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._expiry: list[tuple[float, str]] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def first_time(self, signature: str, expires_at: float, now: float) -> bool:
        """Remember ``signature`` until ``expires_at``; False when it was seen before (a replay).

        :raises ReplayCacheFull: ``max_entries`` signatures are still within the window.
        """
        with self._lock:
            while self._expiry and self._expiry[0][0] < now:
                self._seen.discard(heapq.heappop(self._expiry)[1])
            if signature in self._seen:
                return False
            if len(self._seen) >= self._max:
                raise ReplayCacheFull(
                    f"more than {self._max} signed requests within the freshness window: refusing more until "
                    "older ones expire (is a sender looping?)",
                    delay=5.0,
                )
            self._seen.add(signature)
            heapq.heappush(self._expiry, (expires_at, signature))
            return True


@dataclasses.dataclass(frozen=True, repr=False)
class Authenticator:
    """Verifies a request's credentials. ``repr`` shows no secret."""

    tokens: Mapping[str, str] = dataclasses.field(default_factory=dict)
    alert_tokens: Mapping[str, str] = dataclasses.field(default_factory=dict)
    hmac_keys: Mapping[str, str] = dataclasses.field(default_factory=dict)
    now: Callable[[], float] = dataclasses.field(default=lambda: 0.0)
    max_skew: float = MAX_SKEW
    seen: SeenSignatures = dataclasses.field(default_factory=SeenSignatures, compare=False)

    def __repr__(self) -> str:
        return (
            f"Authenticator(tokens={sorted(self.tokens)}, alert_tokens={sorted(self.alert_tokens)}, "
            f"hmac_keys={sorted(self.hmac_keys)})"
        )

    def authenticate(self, headers: Mapping[str, str], body: bytes, *, method: str, path: str) -> Principal:
        """The caller, from its headers (names in lower case), the raw body, and the request's method and
        path (which a signature covers).

        :raises Unauthenticated: no credentials, or they do not verify, or a signed request seen before
            (the message says which header is wrong, never a secret).
        :raises ReplayCacheFull:
        """
        authorization = headers.get("authorization", "")
        if headers.get(SIGNATURE_HEADER):
            if authorization:
                # Two credentials: the one that was not checked must not be silently ignored.
                raise Unauthenticated(
                    "the request carries both an Authorization header and X-Petguard-Signature: send one "
                    "credential only (a bearer token, or a signature)"
                )
            return self._signed(headers, Request(method, path, body))
        if not authorization:
            raise Unauthenticated(
                "no credentials: send 'Authorization: Bearer <token>' (the token is in [api] token_file), "
                "or sign the body (X-Petguard-Timestamp, X-Petguard-Signature)"
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        token = token.strip()
        name = _match(self.tokens, token)
        if name is not None:
            return Principal(name, Role.OPERATOR)
        name = _match(self.alert_tokens, token)
        if name is not None:
            return Principal(name, Role.ALERT_SENDER)
        raise Unauthenticated("the bearer token is not valid: use a token from [api] token_file")

    def _signed(self, headers: Mapping[str, str], request: Request) -> Principal:
        sender = headers.get(SENDER_HEADER) or (next(iter(self.hmac_keys)) if len(self.hmac_keys) == 1 else "")
        key = self.hmac_keys.get(sender)
        if key is None:
            raise Unauthenticated(
                "the signature cannot be checked: no HMAC key for this sender "
                "(set [api] hmac_key_file; with several keys send X-Petguard-Sender)"
            )
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        sent_at = parse_timestamp(timestamp)
        now = self.now()
        skew = abs(now - sent_at)
        # Written so that a NaN can never pass: only a finite skew within the bound is fresh.
        if not (math.isfinite(skew) and skew <= self.max_skew):
            raise Unauthenticated(
                f"X-Petguard-Timestamp is {skew:.0f} s away from this controller's clock "
                f"(at most {self.max_skew:.0f} s): check NTP on both sides, then send again"
            )
        signature = headers.get(SIGNATURE_HEADER, "")
        if not signature.startswith(secrets.SIGNATURE_PREFIX):
            raise Unauthenticated("X-Petguard-Signature must be 'sha256=<hex digest>'")
        expected = secrets.sign(key, timestamp, request.method, request.path, request.body)
        if not secrets.same(expected, signature):
            raise Unauthenticated(_mismatch(key, timestamp, request, signature))
        if not self.seen.first_time(expected, sent_at + self.max_skew, now):
            raise Unauthenticated(
                "this signed request was already received (a replay?): a signature is accepted once; "
                "sign every request anew with the current time"
            )
        return Principal(sender, Role.SIGNED)


@dataclasses.dataclass(frozen=True)
class Request:
    """What a signature covers besides the timestamp."""

    method: str
    path: str
    body: bytes


def parse_timestamp(value: str) -> float:
    """``X-Petguard-Timestamp`` as unix seconds: digits, optionally a dot and up to 9 decimals.

    :raises Unauthenticated: anything else (empty, signed, an exponent, NaN, inf, spaces ...).
    """
    if not TIMESTAMP_FORMAT.fullmatch(value):
        raise Unauthenticated("X-Petguard-Timestamp is missing or not unix seconds (digits, e.g. 1714564989.123)")
    return float(value)


def _mismatch(key: str, timestamp: str, request: Request, signature: str) -> str:
    """Why a signature does not verify: a sender still signing the old string (timestamp.body, before
    the method and path were covered) is told to upgrade; it is never accepted."""
    old = secrets.signature(key.encode(), timestamp.encode() + b"." + request.body)
    if secrets.same(old, signature):
        return (
            "the signature covers only timestamp.body, the old signed string: upgrade the sender "
            "(petguard-agent) so that it signs timestamp, method, path and body (docs/api.md)"
        )
    return (
        "the signature does not match the request: check the HMAC key, and sign timestamp, method, "
        "path and body as docs/api.md says"
    )


#: What each role may do besides, said in a 403 (what the credential does allow).
ALLOWS = {
    Role.OPERATOR: "every operator request, not an agent's report",
    Role.ALERT_SENDER: "only posting alerts (POST /v1/alerts)",
    Role.SIGNED: "only posting alerts and its own host's agent reports (POST /v1/alerts, /v1/agent/*)",
}


def authorize(principal: Principal, allowed: frozenset[Role], what: str) -> None:
    """:raises Forbidden: ``principal``'s role may not do ``what`` (the message says what it may do)."""
    if principal.role in allowed:
        return
    if allowed == frozenset({Role.SIGNED}):
        instead = (
            "an agent's report must be signed with the host's own key from [api] hmac_key_file "
            "(X-Petguard-Timestamp, X-Petguard-Signature, X-Petguard-Sender; docs/api.md)"
        )
    else:
        instead = "use an operator token from [api] token_file"
    raise Forbidden(f"{principal.actor} may not {what}: this credential allows {ALLOWS[principal.role]}; {instead}")


def _match(known: Mapping[str, str], offered: str) -> str | None:
    """The name of the secret equal to ``offered``; every secret is compared, in constant time."""
    found = None
    for name, secret in known.items():
        if secrets.same(secret, offered):
            found = name
    return found
