"""Authentication: bearer tokens (operators, alert senders) and HMAC signatures (agents)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from petguard.api.auth import (
    Authenticator,
    Forbidden,
    Principal,
    Role,
    Unauthenticated,
    authorize,
    parse_secrets,
    sign,
)
from petguard.errors import ConfigError

NOW = 1_800_000_000.0
BODY = b'{"alerts": []}'
AUTH = Authenticator(
    tokens={"alice": "op-token-a", "bob": "op-token-b"},
    alert_tokens={"alertmanager": "am-token"},
    hmac_keys={"agent1": "key-one", "agent2": "key-two"},
    now=lambda: NOW,
)


def signed(key: str = "key-one", sender: str = "agent1", at: float = NOW, body: bytes = BODY) -> dict[str, str]:
    timestamp = str(int(at))
    return {
        "x-petguard-timestamp": timestamp,
        "x-petguard-signature": sign(key, timestamp, body),
        "x-petguard-sender": sender,
    }


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(b"key-one", b"1800000000." + BODY, hashlib.sha256).hexdigest()
    assert sign("key-one", "1800000000", BODY) == f"sha256={expected}"


def test_bearer_tokens() -> None:
    assert AUTH.authenticate({"authorization": "Bearer op-token-b"}, b"") == Principal("bob", Role.OPERATOR)
    assert AUTH.authenticate({"authorization": "bearer  am-token "}, b"") == Principal(
        "alertmanager", Role.ALERT_SENDER
    )
    assert Principal("bob", Role.OPERATOR).actor == "bob"
    assert Principal("alertmanager", Role.ALERT_SENDER).actor == "alert-token:alertmanager"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "no credentials: send 'Authorization: Bearer <token>'"),
        ({"authorization": "Basic YWxpY2U6eA=="}, "must be 'Bearer <token>'"),
        ({"authorization": "Bearer "}, "must be 'Bearer <token>'"),
        ({"authorization": "Bearer op-token-c"}, "the bearer token is not valid"),
    ],
)
def test_bad_bearer(headers: dict[str, str], message: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        AUTH.authenticate(headers, b"")
    assert message in str(caught.value)
    assert "op-token" not in str(caught.value)


def test_good_signature() -> None:
    assert AUTH.authenticate(signed(), BODY) == Principal("agent1", Role.SIGNED)
    assert AUTH.authenticate(signed("key-two", "agent2"), BODY).actor == "hmac:agent2"


def test_a_single_key_needs_no_sender_header() -> None:
    single = Authenticator(hmac_keys={"agent": "k"}, now=lambda: NOW)
    headers = signed("k")
    del headers["x-petguard-sender"]
    assert single.authenticate(headers, BODY) == Principal("agent", Role.SIGNED)


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        (signed("key-two"), BODY, "the signature does not match the body"),  # agent1 signing with agent2's key
        (signed(), BODY + b" ", "the signature does not match the body"),  # body changed
        (signed(at=NOW - 301), BODY, "X-Petguard-Timestamp is 301 s away from this controller's clock"),
        (signed(at=NOW + 400), BODY, "400 s away"),
        ({**signed(), "x-petguard-timestamp": ""}, BODY, "X-Petguard-Timestamp is missing or not unix seconds"),
        ({**signed(), "x-petguard-timestamp": "yesterday"}, BODY, "not unix seconds"),
        ({**signed(), "x-petguard-signature": "md5=abc"}, BODY, "must be 'sha256=<hex digest>'"),
        ({**signed(), "x-petguard-sender": "agent9"}, BODY, "no HMAC key for this sender"),
        ({k: v for k, v in signed().items() if k != "x-petguard-sender"}, BODY, "no HMAC key for this sender"),
    ],
)
def test_bad_signatures(headers: dict[str, str], body: bytes, message: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        AUTH.authenticate(headers, body)
    assert message in str(caught.value)
    assert "key-" not in str(caught.value)


def test_a_timestamp_within_the_skew_is_fine() -> None:
    assert AUTH.authenticate(signed(at=NOW - 299), BODY).name == "agent1"


def test_authorize() -> None:
    authorize(Principal("alice", Role.OPERATOR), frozenset({Role.OPERATOR}), "read /v1/hosts")
    with pytest.raises(Forbidden, match="alert-token:alertmanager may not read /v1/hosts"):
        authorize(Principal("alertmanager", Role.ALERT_SENDER), frozenset({Role.OPERATOR}), "read /v1/hosts")


def test_repr_shows_no_secret() -> None:
    text = repr(AUTH)
    assert "alice" in text and "op-token" not in text and "key-one" not in text and "am-token" not in text


def test_parse_secrets() -> None:
    assert parse_secrets("tok\n", "operator", "f") == {"operator": "tok"}
    assert parse_secrets("# ops\nalice a1\n\nbob b2  # on call\n", "operator", "f") == {"alice": "a1", "bob": "b2"}
    with pytest.raises(ConfigError, match="holds no secret"):
        parse_secrets("# nothing\n", "operator", "[api] token_file /x")
    with pytest.raises(ConfigError, match="line 2: the name 'alice' is given twice"):
        parse_secrets("alice a\nalice b\n", "operator", "f")
    with pytest.raises(ConfigError, match="line 1: expected 'SECRET' or 'NAME SECRET', found 3 fields"):
        parse_secrets("a b c\n", "operator", "f")
