"""Authentication: bearer tokens (operators, alert senders) and HMAC signatures (agents)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from petguard.api.auth import (
    Authenticator,
    Forbidden,
    Principal,
    ReplayCacheFull,
    Role,
    SeenSignatures,
    Unauthenticated,
    authorize,
    check_speaks_for,
)
from petguard.errors import ConfigError
from petguard.secrets import bound_host, parse_secrets, sign, signed_string

NOW = 1_800_000_000.0
BODY = b'{"alerts": []}'
PATH = "/v1/alerts"


def make_auth() -> Authenticator:
    """A fresh authenticator (each has its own memory of the signatures it accepted)."""
    return Authenticator(
        tokens={"alice": "op-token-a", "bob": "op-token-b"},
        alert_tokens={"alertmanager": "am-token"},
        hmac_keys={"agent1": "key-one", "agent2": "key-two"},
        now=lambda: NOW,
    )


AUTH = make_auth()


def authenticate(auth: Authenticator, headers: dict[str, str], body: bytes = b"", path: str = PATH) -> Principal:
    return auth.authenticate(headers, body, method="POST", path=path)


def signed(
    key: str = "key-one", sender: str = "agent1", at: float = NOW, body: bytes = BODY, path: str = PATH
) -> dict[str, str]:
    timestamp = str(int(at))
    return {
        "x-petguard-timestamp": timestamp,
        "x-petguard-signature": sign(key, timestamp, "POST", path, body),
        "x-petguard-sender": sender,
    }


def test_sign_is_hmac_sha256_over_timestamp_method_path_and_body() -> None:
    message = b"1800000000\nPOST\n/v1/alerts\n" + BODY
    assert signed_string("1800000000", "post", "/v1/alerts", BODY) == message
    expected = hmac.new(b"key-one", message, hashlib.sha256).hexdigest()
    assert sign("key-one", "1800000000", "POST", "/v1/alerts", BODY) == f"sha256={expected}"


def test_bearer_tokens() -> None:
    assert authenticate(AUTH, {"authorization": "Bearer op-token-b"}) == Principal("bob", Role.OPERATOR)
    assert authenticate(AUTH, {"authorization": "bearer  am-token "}) == Principal(
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
        authenticate(AUTH, headers)
    assert message in str(caught.value)
    assert "op-token" not in str(caught.value)


def test_good_signature() -> None:
    auth = make_auth()
    assert authenticate(auth, signed(), BODY) == Principal("agent1", Role.SIGNED)
    assert authenticate(auth, signed("key-two", "agent2"), BODY).actor == "hmac:agent2"


def test_a_single_key_needs_no_sender_header() -> None:
    single = Authenticator(hmac_keys={"agent": "k"}, now=lambda: NOW)
    headers = signed("k")
    del headers["x-petguard-sender"]
    assert authenticate(single, headers, BODY) == Principal("agent", Role.SIGNED)


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        (signed("key-two"), BODY, "the signature does not match the request"),  # agent1 signing with agent2's key
        (signed(), BODY + b" ", "the signature does not match the request"),  # body changed
        (signed(path="/v1/agent/events"), BODY, "the signature does not match the request"),  # path changed
        (signed(at=NOW - 301), BODY, "X-Petguard-Timestamp is 301 s away from this controller's clock"),
        (signed(at=NOW + 400), BODY, "400 s away"),
        ({**signed(), "x-petguard-timestamp": ""}, BODY, "X-Petguard-Timestamp is missing or not unix seconds"),
        ({**signed(), "x-petguard-timestamp": "yesterday"}, BODY, "not unix seconds"),
        ({**signed(), "x-petguard-timestamp": "NaN"}, BODY, "not unix seconds"),
        ({**signed(), "x-petguard-timestamp": "1e400"}, BODY, "not unix seconds"),
        ({**signed(), "x-petguard-signature": "md5=abc"}, BODY, "must be 'sha256=<hex digest>'"),
        ({**signed(), "x-petguard-sender": "agent9"}, BODY, "no HMAC key for this sender"),
        ({k: v for k, v in signed().items() if k != "x-petguard-sender"}, BODY, "no HMAC key for this sender"),
    ],
)
def test_bad_signatures(headers: dict[str, str], body: bytes, message: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        authenticate(make_auth(), headers, body)
    assert message in str(caught.value)
    assert "key-" not in str(caught.value)


def test_a_timestamp_within_the_skew_is_fine() -> None:
    assert authenticate(make_auth(), signed(at=NOW - 299), BODY).name == "agent1"


@pytest.mark.fault(
    "AUTH-01",
    guarantee="8",
    injected="X-Petguard-Timestamp NaN (and inf, 1e400, -1, an exponent) on a validly signed request",
    expected="401 'not unix seconds', nothing recorded (NaN used to pass the freshness check)",
)
@pytest.mark.parametrize("stamp", ["NaN", "nan", "inf", "Infinity", "-inf", "1e400", "-1", "1.8e9", "+1800000000", ""])
def test_a_non_finite_or_odd_timestamp_never_passes(stamp: str) -> None:
    headers = {"x-petguard-timestamp": stamp, "x-petguard-sender": "agent1",
               "x-petguard-signature": sign("key-one", stamp, "POST", PATH, BODY)}
    with pytest.raises(Unauthenticated, match="not unix seconds"):
        authenticate(make_auth(), headers, BODY)


def test_a_nan_clock_refuses_everything() -> None:
    """The skew check is written so that a NaN anywhere fails it (``nan > max_skew`` was false)."""
    broken = Authenticator(hmac_keys={"agent1": "key-one"}, now=lambda: float("nan"))
    with pytest.raises(Unauthenticated, match="away from this controller's clock"):
        authenticate(broken, signed(), BODY)


@pytest.mark.fault(
    "AUTH-02",
    guarantee="8",
    injected="the same signed request sent twice (a captured request replayed within the freshness window)",
    expected="the first is accepted, the replay 401 'already received'",
)
def test_a_signature_is_accepted_once() -> None:
    auth = make_auth()
    assert authenticate(auth, signed(), BODY).name == "agent1"
    with pytest.raises(Unauthenticated, match="already received"):
        authenticate(auth, signed(), BODY)
    assert authenticate(auth, signed(at=NOW + 1), BODY).name == "agent1", "a new timestamp is a new request"


def test_a_refused_signature_is_not_remembered() -> None:
    auth = make_auth()
    with pytest.raises(Unauthenticated):
        authenticate(auth, signed("key-two"), BODY)
    assert len(auth.seen) == 0


def test_seen_signatures_are_forgotten_once_too_old_to_pass() -> None:
    seen = SeenSignatures()
    assert seen.first_time("a", expires_at=100.0, now=0.0)
    assert not seen.first_time("a", expires_at=100.0, now=99.0)
    assert seen.first_time("b", expires_at=300.0, now=101.0) and len(seen) == 1


@pytest.mark.fault(
    "AUTH-05",
    guarantee="8",
    injected="more distinct signed requests within the freshness window than the replay cache holds",
    expected="503 (try again) for new ones; no remembered signature is forgotten early, so none can be replayed",
)
def test_a_full_replay_cache_refuses_rather_than_forgets() -> None:
    seen = SeenSignatures(max_entries=2)
    assert seen.first_time("a", 100.0, 0.0) and seen.first_time("b", 100.0, 0.0)
    with pytest.raises(ReplayCacheFull, match="more than 2 signed requests"):
        seen.first_time("c", 100.0, 1.0)
    assert not seen.first_time("a", 100.0, 1.0), "still remembered"
    assert seen.first_time("c", 200.0, 101.0), "room again once the old ones expired"


def test_authorize() -> None:
    authorize(Principal("alice", Role.OPERATOR), frozenset({Role.OPERATOR}), "read /v1/hosts")
    with pytest.raises(Forbidden, match="alert-token:alertmanager may not read /v1/hosts"):
        authorize(Principal("alertmanager", Role.ALERT_SENDER), frozenset({Role.OPERATOR}), "read /v1/hosts")


@pytest.mark.fault(
    "AUTH-06",
    guarantee="8",
    injected="an agent's key reads an operator path; an operator token posts an agent report",
    expected="403 saying what the credential allows and what to use instead",
)
def test_forbidden_says_what_the_credential_allows() -> None:
    with pytest.raises(Forbidden, match="allows only posting alerts and its own host's agent reports"):
        authorize(Principal("agent-cmp1", Role.SIGNED), frozenset({Role.OPERATOR}), "read /v1/hosts")
    with pytest.raises(Forbidden, match="must be signed with the host's own key"):
        authorize(Principal("alice", Role.OPERATOR), frozenset({Role.SIGNED}), "POST /v1/agent/heartbeat")


@pytest.mark.parametrize(
    ("name", "host"),
    [("agent-cmp1", "cmp1"), ("cmp1", "cmp1"), ("agent-agent-x", "agent-x"), ("agent", None), ("agent-", None)],
)
def test_each_key_name_binds_at_most_one_host(name: str, host: str | None) -> None:
    assert bound_host(name) == host
    assert Principal(name, Role.SIGNED).host == host
    assert Principal(name, Role.OPERATOR).host is None


@pytest.mark.fault(
    "AGENT-01",
    guarantee="8",
    injected="cmp3 dead; 4 s of heartbeats for cmp3 signed with agent-cmp1's key",
    expected="403 and nothing recorded; cmp3 is fenced, not kept up by the spoofed heartbeats",
)
def test_a_key_speaks_only_for_its_own_host() -> None:
    check_speaks_for(Principal("agent-cmp1", Role.SIGNED), "cmp1", "send heartbeats")
    with pytest.raises(Forbidden, match="speaks for host 'cmp1' only"):
        check_speaks_for(Principal("agent-cmp1", Role.SIGNED), "cmp3", "send heartbeats")
    with pytest.raises(Forbidden, match="not bound to a host"):
        check_speaks_for(Principal("agent", Role.SIGNED), "agent", "send heartbeats")


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
