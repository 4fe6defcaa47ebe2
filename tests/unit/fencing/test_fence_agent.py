"""The fence-agent adapter without running an agent: what is written on the agent's stdin, how its
exit codes and messages become power states and petguard errors, and the record checks."""

from __future__ import annotations

import pytest

from petguard import errors
from petguard.fencing import fenceagent
from petguard.fencing.base import FenceDevice, PowerState
from petguard.fencing.fenceagent import AgentResult

SECRET = "pw-Zq8-never-logged"
DEVICE = FenceDevice(
    "cmp1", "fenceagent", "127.0.0.1", 16230, "admin", SECRET, {"agent": "fence_ipmilan", "lanplus": "1", "cipher": "3"}
)


def test_status_request_is_key_value_lines_with_the_password_only_here() -> None:
    text = fenceagent.encode_request(DEVICE, "status", 5.0)

    assert text == (
        "action=status\nip=127.0.0.1\nusername=admin\npassword=pw-Zq8-never-logged\nipport=16230\n"
        "lanplus=1\ncipher=3\n"
    )


def test_off_request_fits_the_agents_power_timeout_in_the_call() -> None:
    lines = fenceagent.encode_request(DEVICE, "off", 5.0).splitlines()

    assert lines[0] == "action=off" and "power_timeout=4" in lines
    own = FenceDevice(**{**DEVICE.__dict__, "options": {"agent": "fence_x", "power_timeout": "9"}})
    assert "power_timeout=9" in fenceagent.encode_request(own, "off", 5.0).splitlines()


def test_port_zero_leaves_the_agents_default() -> None:
    device = FenceDevice("cmp1", "fenceagent", "pdu", 0, "apc", "p", {"agent": "fence_apc_snmp", "plug": "3"})

    assert "ipport" not in fenceagent.encode_request(device, "status", 5.0)


@pytest.mark.parametrize(("code", "state"), [(0, PowerState.ON), (2, PowerState.OFF)])
def test_status_exit_codes(code: int, state: PowerState) -> None:
    assert fenceagent.status_from(AgentResult(code, f"Status: {state.name}\n", ""), DEVICE) is state


def test_status_exit_1_is_the_agents_failure_with_its_message_masked() -> None:
    result = AgentResult(1, "", f"WARNING: x\nFailed: Unable to obtain correct plug status (password {SECRET})\n")

    with pytest.raises(errors.FencingError) as caught:
        fenceagent.status_from(result, DEVICE)

    text = str(caught.value)
    assert not isinstance(caught.value, errors.Temporary)
    assert "fence agent fence_ipmilan for fenceagent://admin@127.0.0.1:16230" in text
    assert "(exit 1): Failed: Unable to obtain correct plug status (password ***)" in text
    assert SECRET not in text


@pytest.mark.parametrize(
    "message", ["2026-11-26 ERROR: Connection timed out", "Failed: Timed out waiting to power OFF"]
)
def test_timeouts_and_connections_are_temporary(message: str) -> None:
    error = fenceagent.failure_from(AgentResult(1, "", message + "\n"), DEVICE, "off")

    assert isinstance(error, errors.BmcUnreachable)


def test_unexpected_exit_codes_are_failures() -> None:
    with pytest.raises(errors.FencingError, match="exit 3"):
        fenceagent.status_from(AgentResult(3, "", ""), DEVICE)


@pytest.mark.parametrize(
    ("options", "changes", "words"),
    [
        ({}, {}, "agent is missing"),
        ({"agent": "ipmitool"}, {}, "neither a fence_* name nor an absolute path"),
        ({"agent": "fence_x", "action": "reboot"}, {}, "option 'action' is reserved"),
        ({"agent": "fence_x", "passwd": "p"}, {}, "option 'passwd' is reserved"),
        ({"agent": "fence_x", "plug": "3\naction=on"}, {}, "option 'plug' contains a line break"),
        ({"agent": "fence_x"}, {"password": "p\naction=on"}, "password has a line break"),
        ({"agent": "fence_x"}, {"port": 70000}, "port 70000 is outside"),
    ],
)
def test_record_problems(options: dict[str, str], changes: dict[str, object], words: str) -> None:
    device = FenceDevice(**{**DEVICE.__dict__, "options": options, **changes})  # type: ignore[arg-type]

    problems = fenceagent.record_problems(device)

    assert any(words in p for p in problems), problems
    assert all(SECRET not in p for p in problems)


def test_an_agent_that_is_not_installed_is_a_config_error() -> None:
    device = FenceDevice(**{**DEVICE.__dict__, "options": {"agent": "fence_does_not_exist_here"}})

    with pytest.raises(errors.ConfigError, match="is not installed .*install fence-agents"):
        fenceagent.FenceAgentDriver().validate(device)


def test_the_driver_is_not_isolated_it_runs_a_child_itself() -> None:
    assert fenceagent.FenceAgentDriver.isolate is False
