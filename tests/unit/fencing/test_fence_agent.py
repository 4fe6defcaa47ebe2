"""The fence-agent adapter without running an agent: what is written on the agent's stdin, how its
exit codes and messages become power states and petguard errors, and the record checks."""

from __future__ import annotations

import pytest

from petguard import errors
from petguard.fencing import fenceagent
from petguard.fencing.base import FenceDevice, PowerState, is_secret_option
from petguard.fencing.fenceagent import AgentResult
from petguard.secrets import text as scrub

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


# -- positive evidence (FENCE-01, FENCE-02) -------------------------------------------------------

USAGE = "ERROR: Failed: unknown option\nERROR: Please use '-h' for usage\n"


@pytest.mark.fault(
    "FENCE-01",
    guarantee="1",
    injected="a fence agent's status exits 2 without 'Status: OFF' (usage error, shell syntax error)",
    expected="not a reading: the level fails, AWAITING_CONFIRM with an alert, nothing evacuated",
)
@pytest.mark.parametrize(
    ("stdout", "stderr"),
    [
        ("", USAGE),
        ("", "/usr/sbin/fence_x: 3: Syntax error: \"then\" unexpected\n"),
        ("", "python3: can't open file '/usr/sbin/fence_x': [Errno 2] No such file or directory\n"),
        ("usage: fence_x [-h] [--plug PLUG]\n", "fence_x: error: unrecognized arguments\n"),
    ],
    ids=["fail_usage", "sh-syntax-error", "no-script-file", "argparse"],
)
def test_exit_2_without_status_off_is_not_a_reading(stdout: str, stderr: str) -> None:
    with pytest.raises(errors.FencingError) as caught:
        fenceagent.status_from(AgentResult(2, stdout, stderr), DEVICE)

    assert not isinstance(caught.value, errors.Temporary)  # the level ends now, the next one is tried
    assert "without printing exactly one 'Status: OFF' line" in str(caught.value)
    assert "not a power reading" in str(caught.value)


@pytest.mark.fault(
    "FENCE-02",
    guarantee="1",
    injected="a fence agent's exit code and its Status line disagree, or it prints several Status lines",
    expected="not a reading: a FencingError that ends the level",
)
@pytest.mark.parametrize(
    ("code", "stdout"),
    [
        (0, "Status: OFF\n"),
        (2, "Status: ON\n"),
        (0, ""),
        (2, "Status: OFF\nStatus: ON\n"),
        (2, "Status: OFF\nStatus: OFF\n"),
        (2, "Status: off\n"),
        (2, "Status:OFF\n"),
        (2, "Power Status: OFF\n"),
    ],
)
def test_exit_code_and_status_line_must_agree(code: int, stdout: str) -> None:
    with pytest.raises(errors.FencingError, match="not a power reading"):
        fenceagent.status_from(AgentResult(code, stdout, ""), DEVICE)


def test_status_lines_as_fence_agents_print_them() -> None:
    """fencing.py: ``print("Status: " + status.upper())``; logging goes to stderr."""
    noisy = AgentResult(2, "Status: OFF\r\n", "WARNING:root:Parse error: Ignoring unknown option 'x=1'\n")

    assert fenceagent.status_from(noisy, DEVICE) is PowerState.OFF
    assert fenceagent.status_from(AgentResult(0, "  Status: ON\n", ""), DEVICE) is PowerState.ON


@pytest.mark.fault(
    "FENCE-10",
    guarantee="4",
    injected="a fence agent or child prints bytes that are not UTF-8",
    expected="decoded with replacement: an error or a reading, never an exception out of the call",
)
def test_undecodable_output_is_replaced_not_raised() -> None:
    result = AgentResult.from_output(2, b"\xffStatus: OFF\xfe\n", b"ERROR: \xc3\x28 bad\n")

    with pytest.raises(errors.FencingError, match="not a power reading"):
        fenceagent.status_from(result, DEVICE)
    assert fenceagent.status_from(AgentResult.from_output(2, b"Status: OFF\n", b"\xff"), DEVICE) is PowerState.OFF


# -- secrets in options (FENCE-09) -----------------------------------------------------------------

COMMUNITY, PRIV = "comm-Hq83-private", "priv-Zk29-never-seen"
SNMP = FenceDevice(
    "cmp1",
    "fenceagent",
    "pdu-3.mgmt",
    0,
    "apc",
    SECRET,
    {"agent": "fence_apc_snmp", "plug": "7", "community": COMMUNITY, "snmp_priv_passwd": PRIV},
)


@pytest.mark.fault(
    "FENCE-09",
    guarantee="7",
    injected="a fence agent echoes its SNMP community and privacy password (options) in its failure",
    expected="both are masked in the reason and the events; repr of the device shows neither",
)
def test_secret_options_are_masked_in_agent_failures_and_hidden_from_repr() -> None:
    echo = f"Failed: snmpget -v3 -c {COMMUNITY} -X {PRIV} -A {SECRET} pdu-3.mgmt timed out\n"

    error = fenceagent.failure_from(AgentResult(1, "", echo), SNMP, "off")

    for text in (str(error), repr(SNMP), str(SNMP)):
        assert COMMUNITY not in text and PRIV not in text and SECRET not in text, text
    assert "-c *** -X *** -A ***" in str(error)
    with pytest.raises(errors.FencingError) as caught:
        fenceagent.status_from(AgentResult(2, "", f"ERROR: bad community {COMMUNITY}\n"), SNMP)
    assert COMMUNITY not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("community", True),
        ("snmp_priv_passwd", True),
        ("secret_key", True),
        ("access_key", True),
        ("apikey", True),
        ("token", True),
        ("passwd_script", True),  # a path: masking it costs nothing
        ("plug", False),
        ("lanplus", False),
        ("snmp_version", False),
        ("no_password", False),  # a flag: its "1" must not mask every 1 in a message
    ],
)
def test_which_options_are_secrets(name: str, secret: bool) -> None:
    assert is_secret_option(name) is secret


def test_a_device_lists_its_secrets_longest_masked_first() -> None:
    device = FenceDevice(**{**SNMP.__dict__, "options": {"community": "abc", "snmp_priv_passwd": "abcdef"}})

    assert device.secrets() == (SECRET, "abc", "abcdef")
    assert scrub("x abcdef y abc", *device.secrets()) == "x *** y ***"
