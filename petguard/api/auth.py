"""Who is calling the API: bearer tokens for operators and alert senders, HMAC signatures for agents.

* Operators (the CLI): ``Authorization: Bearer <token>``, tokens from ``[api] token_file``.
* Alertmanager cannot sign: ``/v1/alerts`` also accepts a bearer token from ``[api] alert_token_file``.
* Agents and alert senders that can sign: HMAC-SHA256 over ``timestamp + "." + body`` with a key from
  ``[api] hmac_key_file``; headers ``X-Petguard-Timestamp`` (unix seconds, within ``max_skew``),
  ``X-Petguard-Signature: sha256=<hex>`` and, when the file names several senders,
  ``X-Petguard-Sender: <name>``.

Secret files hold one secret, or one ``NAME SECRET`` pair per line (``#`` starts a comment); the
name is who the audit trail says acted. They must not be readable by group or others. Secrets are
compared in constant time and never logged, returned or put in an error message.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import os
import stat
from collections.abc import Callable, Mapping

from petguard.errors import ConfigError, Permanent

SIGNATURE_HEADER = "x-petguard-signature"
TIMESTAMP_HEADER = "x-petguard-timestamp"
SENDER_HEADER = "x-petguard-sender"
SIGNATURE_PREFIX = "sha256="
MAX_SKEW = 300.0
#: Name given to the secret of a file that holds a single secret without a name.
DEFAULT_NAMES = {"token": "operator", "alert": "alertmanager", "hmac": "agent"}


class Unauthenticated(Permanent):
    """No credentials, or credentials that do not verify (answered with 401)."""


class Forbidden(Permanent):
    """Valid credentials that do not allow this request (answered with 403)."""


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


@dataclasses.dataclass(frozen=True, repr=False)
class Authenticator:
    """Verifies a request's credentials. ``repr`` shows no secret."""

    tokens: Mapping[str, str] = dataclasses.field(default_factory=dict)
    alert_tokens: Mapping[str, str] = dataclasses.field(default_factory=dict)
    hmac_keys: Mapping[str, str] = dataclasses.field(default_factory=dict)
    now: Callable[[], float] = dataclasses.field(default=lambda: 0.0)
    max_skew: float = MAX_SKEW

    def __repr__(self) -> str:
        return (
            f"Authenticator(tokens={sorted(self.tokens)}, alert_tokens={sorted(self.alert_tokens)}, "
            f"hmac_keys={sorted(self.hmac_keys)})"
        )

    def authenticate(self, headers: Mapping[str, str], body: bytes) -> Principal:
        """The caller, from its headers (names in lower case) and the raw body.

        :raises Unauthenticated: no credentials, or they do not verify (the message says which
            header is wrong, never a secret).
        """
        if headers.get(SIGNATURE_HEADER):
            return self._signed(headers, body)
        authorization = headers.get("authorization", "")
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

    def _signed(self, headers: Mapping[str, str], body: bytes) -> Principal:
        sender = headers.get(SENDER_HEADER) or (next(iter(self.hmac_keys)) if len(self.hmac_keys) == 1 else "")
        key = self.hmac_keys.get(sender)
        if key is None:
            raise Unauthenticated(
                "the signature cannot be checked: no HMAC key for this sender "
                "(set [api] hmac_key_file; with several keys send X-Petguard-Sender)"
            )
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        try:
            sent_at = float(timestamp)
        except ValueError:
            raise Unauthenticated("X-Petguard-Timestamp is missing or not unix seconds") from None
        skew = abs(self.now() - sent_at)
        if skew > self.max_skew:
            raise Unauthenticated(
                f"X-Petguard-Timestamp is {skew:.0f} s away from this controller's clock "
                f"(at most {self.max_skew:.0f} s): check NTP on both sides, then send again"
            )
        signature = headers.get(SIGNATURE_HEADER, "")
        if not signature.startswith(SIGNATURE_PREFIX):
            raise Unauthenticated("X-Petguard-Signature must be 'sha256=<hex digest>'")
        expected = sign(key, timestamp, body)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise Unauthenticated("the signature does not match the body: check the HMAC key and the timestamp")
        return Principal(sender, Role.SIGNED)


def sign(key: str, timestamp: str, body: bytes) -> str:
    """The ``X-Petguard-Signature`` value of ``body`` sent at ``timestamp`` (for senders and tests)."""
    digest = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def authorize(principal: Principal, allowed: frozenset[Role], what: str) -> None:
    """:raises Forbidden: ``principal``'s role may not do ``what``."""
    if principal.role not in allowed:
        raise Forbidden(
            f"{principal.actor} may not {what}: this credential only allows posting alerts; "
            "use an operator token from [api] token_file"
        )


def _match(secrets: Mapping[str, str], offered: str) -> str | None:
    """The name of the secret equal to ``offered``; every secret is compared, in constant time."""
    found = None
    for name, secret in secrets.items():
        if hmac.compare_digest(secret.encode(), offered.encode()):
            found = name
    return found


def parse_secrets(text: str, default_name: str, what: str) -> dict[str, str]:
    """Secrets from a file's text: one bare secret, or ``NAME SECRET`` per line.

    :raises ConfigError: an empty file, a line with more than two fields, or a name given twice.
    """
    secrets: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) > 2:
            raise ConfigError(f"{what}, line {number}: expected 'SECRET' or 'NAME SECRET', found {len(fields)} fields")
        name, secret = (default_name, fields[0]) if len(fields) == 1 else (fields[0], fields[1])
        if name in secrets:
            raise ConfigError(f"{what}, line {number}: the name {name!r} is given twice")
        secrets[name] = secret
    if not secrets:
        raise ConfigError(f"{what} holds no secret: write one token (or 'NAME TOKEN' lines) into it")
    return secrets


def load_secrets(path: str, kind: str, option: str) -> dict[str, str]:
    """Secrets from a file that only its owner may read (``kind``: "token", "alert" or "hmac").

    :raises ConfigError: the file is missing, unreadable, readable by group or others, or empty.
    """
    what = f"[api] {option} {path}"
    try:
        info = os.stat(path)
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{what} is readable by group or others (mode {stat.S_IMODE(info.st_mode):o}): run chmod 600 {path}"
            )
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"{what} cannot be read: {exc.strerror}") from exc
    return parse_secrets(text, DEFAULT_NAMES[kind], what)
