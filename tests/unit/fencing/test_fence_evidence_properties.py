"""Fuzzing the two places where a fence reading crosses a process boundary (hypothesis).

Whatever bytes a fence agent or a fence child prints, and whatever its exit code, the parent gets
either a petguard error or a reading; and the reading is OFF only for a well-formed OFF:

* a fence agent: exit code 2 and exactly one ``Status:`` line on stdout, ``Status: OFF``;
* a fence child: stdout is the one line ``{"ok": true, "power": "off"}`` and the child exited 0.

The strategies mix arbitrary bytes with near misses (``Status: off``, ``"power": "Off"``, a second
line, a non-zero exit), so the interesting boundary is explored, not only noise.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from petguard import errors
from petguard.fencing import child, fenceagent
from petguard.fencing.base import FenceDevice, Op, PowerState

SECRET = "pw-Zq8-never-logged"
AGENT = FenceDevice("cmp1", "fenceagent", "127.0.0.1", 0, "admin", SECRET, {"agent": "fence_x", "community": "c0mm"})
CHILD = FenceDevice("cmp1", "ipmi", "127.0.0.1", 623, "admin", SECRET)
FUZZ = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EXIT_CODES = st.one_of(st.sampled_from([0, 1, 2, 3, 127, 255, -9, -15]), st.integers(-64, 300))

# -- fence agents ---------------------------------------------------------------------------------

AGENT_LINES = st.one_of(
    st.sampled_from(
        [
            b"Status: OFF",
            b"Status: ON",
            b"Status: off",
            b"Status:OFF",
            b"  Status: OFF \r",
            b"Status: OFF\x00",
            b"Status: OF\xffF",
            b"Status: UNKNOWN",
            b"Power Status: OFF",
            b"Success: Powered OFF",
            b"ERROR: Please use '-h' for usage",
            b"",
        ]
    ),
    st.binary(max_size=30),
    st.text(max_size=30).map(str.encode),
)
AGENT_OUTPUT = st.one_of(st.lists(AGENT_LINES, max_size=5).map(b"\n".join), st.binary(max_size=120))


def status_lines(stdout: bytes) -> list[bytes]:
    """The spec, on bytes: every line that starts with ``Status:``, without blanks around it."""
    return [ln.strip(b" \t\r") for ln in stdout.split(b"\n") if ln.lstrip(b" \t").startswith(b"Status:")]


@pytest.mark.fault(
    "FENCE-03",
    guarantee="1",
    injected="any bytes on a fence agent's stdout and stderr, any exit code (hypothesis)",
    expected="an error or a reading; OFF only for exit 2 with exactly one 'Status: OFF' line",
)
@FUZZ
@given(code=EXIT_CODES, stdout=AGENT_OUTPUT, stderr=AGENT_OUTPUT)
@example(code=2, stdout=b"", stderr=b"ERROR: Please use '-h' for usage\n")
@example(code=2, stdout=b"Status: ON\n", stderr=b"")
@example(code=0, stdout=b"Status: OFF\n", stderr=b"")
def test_no_agent_output_reads_off_unless_it_is_a_well_formed_off(code: int, stdout: bytes, stderr: bytes) -> None:
    result = fenceagent.AgentResult.from_output(code, stdout, stderr)
    try:
        state = fenceagent.status_from(result, AGENT)
    except errors.PetguardError as exc:
        assert SECRET not in str(exc) and "c0mm" not in str(exc)
        return
    if state is PowerState.OFF:
        assert code == 2 and status_lines(stdout) == [b"Status: OFF"]
    else:
        assert state is PowerState.ON and code == 0 and status_lines(stdout) == [b"Status: ON"]


@given(
    noise=st.lists(st.binary(max_size=30).filter(lambda ln: not ln.lstrip(b" \t").startswith(b"Status:")), max_size=4),
    stderr=st.binary(max_size=120),
)
@FUZZ
def test_a_well_formed_off_reads_off_whatever_else_is_printed(noise: list[bytes], stderr: bytes) -> None:
    """The other half: the rule is not "refuse everything" (fence-agents' own OFF still reads OFF)."""
    lines = [ln.replace(b"\n", b" ") for ln in noise]
    stdout = b"\n".join([*lines, b"Status: OFF", *lines]) + b"\n"

    assert fenceagent.status_from(fenceagent.AgentResult.from_output(2, stdout, stderr), AGENT) is PowerState.OFF


# -- fence children -------------------------------------------------------------------------------

JSON_VALUES = st.one_of(
    st.sampled_from([True, False, None, "off", "Off", "OFF", "on", "powering_off", "unknown", "soon", 0, 1, -1, 2.5]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.sampled_from(["off", 1, None]), max_size=2),
)
REPLY_OBJECTS = st.dictionaries(
    st.sampled_from(["ok", "power", "error", "message", "delay", "extra"]), JSON_VALUES, max_size=5
).map(lambda reply: json.dumps(reply).encode())
CHILD_OUTPUT = st.one_of(
    REPLY_OBJECTS,
    st.tuples(REPLY_OBJECTS, REPLY_OBJECTS).map(b"\n".join),
    st.tuples(st.binary(max_size=20), REPLY_OBJECTS, st.binary(max_size=20)).map(b"".join),
    st.binary(max_size=120),
)
WELL_FORMED_OFF = {"ok": True, "power": "off"}


@pytest.mark.fault(
    "FENCE-06",
    guarantee="1",
    injected="any bytes on a fence child's stdout and stderr, any exit code (hypothesis)",
    expected="a petguard error or a reading; OFF only for the one well-formed OFF reply and exit 0",
)
@FUZZ
@given(code=st.one_of(st.none(), EXIT_CODES), stdout=CHILD_OUTPUT, stderr=st.binary(max_size=60),
       op=st.sampled_from(list(Op)))
@example(code=0, stdout=b'{"ok": true, "power": "Off"}', stderr=b"", op=Op.POWER_STATE)
@example(code=1, stdout=b'{"ok": true, "power": "off"}', stderr=b"", op=Op.POWER_STATE)
@example(code=0, stdout=b'{"ok": false, "error": "BmcUnreachable", "delay": "soon"}', stderr=b"",
         op=Op.POWER_OFF)
@example(code=0, stdout=b"[" * 50_000, stderr=b"", op=Op.POWER_STATE)
def test_no_child_output_reads_off_unless_it_is_a_well_formed_off(
    code: int | None, stdout: bytes, stderr: bytes, op: Op
) -> None:
    try:
        state = child.decode_reply(stdout, stderr, code, CHILD, op)
    except errors.PetguardError as exc:
        assert SECRET not in str(exc)
        return
    assert code == 0
    if op is Op.POWER_OFF:
        assert state is None
        return
    assert state is not None and json.loads(stdout) == {"ok": True, "power": state.value}
    if state is PowerState.OFF:
        assert json.loads(stdout) == WELL_FORMED_OFF and len(stdout.strip().splitlines()) == 1
