"""The agent endpoints' bodies: strict validation with messages that say what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from petguard.agent.events import DomainState, EventKind
from petguard.api import wire


def beat(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "host": "cmp1", "sent_at": 10.0, "interval": 5, "libvirt_connected": True,
        "domains": [{"uuid": "u1", "name": "pet", "state": "running"}], "buffered": 0, "dropped": 2, "version": "1",
    }
    body.update(changes)
    return body


def test_a_heartbeat_is_stamped_with_the_controllers_time() -> None:
    parsed = wire.agent_heartbeat(beat(), "cmp1", 99.0)
    assert parsed.at == 99.0 and parsed.sent_at == 10.0 and parsed.dropped == 2
    assert parsed.domains[0].state is DomainState.RUNNING


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"host": ""}, "'host' is empty"),
        ({"libvirt_connected": "yes"}, "must be a boolean"),
        ({"sent_at": "now"}, "must be a number"),
        ({"domains": [{"uuid": "u", "name": "n", "state": "exploded"}]}, "domains[0].'state'"),
        ({"dropped": -1}, "must be an integer from 0 to"),
        ({"extra": 1}, "unknown field"),
    ],
)
def test_bad_heartbeats_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(wire.InvalidBody, match=message.replace("[", r"\[").replace("]", r"\]")):
        wire.agent_heartbeat(beat(**changes), "cmp1", 0.0)


def test_events_are_parsed_and_checked() -> None:
    item = {"id": "b-1", "at": 1.5, "domain_uuid": "u", "domain_name": "pet", "kind": "watchdog", "detail": "pause"}
    host, events = wire.agent_events({"host": "cmp1", "events": [item]})
    assert host == "cmp1" and events[0].kind is EventKind.WATCHDOG and events[0].detail == "pause"
    with pytest.raises(wire.InvalidBody, match="not a detail of a lifecycle event"):
        wire.agent_events({"host": "cmp1", "events": [dict(item, kind="lifecycle")]})
    with pytest.raises(wire.InvalidBody, match="at most 1000"):
        wire.agent_events({"host": "cmp1", "events": [item] * 1001})


@pytest.mark.fault(
    "AGENT-06",
    guarantee="8",
    injected="an agent configured with a sender whose key speaks for another host, or a bare shared key",
    expected="the agent refuses to start, saying which key to create and which sender to set",
)
def test_the_agent_refuses_a_sender_that_cannot_speak_for_its_host() -> None:
    from petguard.agent.main import check_sender
    from petguard.errors import ConfigError

    assert check_sender("agent-cmp1", "cmp1") == "agent-cmp1"
    assert check_sender("cmp1", "cmp1") == "cmp1"
    with pytest.raises(ConfigError, match="speaks for host 'cmp2', not for this host 'cmp1'.*sender = agent-cmp1"):
        check_sender("agent-cmp2", "cmp1")
    with pytest.raises(ConfigError, match="no host \\(a bare, shared key\\)"):
        check_sender("agent", "cmp1")
