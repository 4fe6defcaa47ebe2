"""ClusterLabs fence-agent adapter: any ``fence_*`` program as a petguard fence driver.

PDUs, iLO, iDRAC, IPMI and dozens of other devices already have a fence agent (Debian package
``fence-agents``); this driver runs one through the agents' own stdin protocol: ``key=value`` lines
on stdin, ``action=off`` to power off (the agent waits for the power to go off by itself) and
``action=status`` to read it back, which the procedure repeats until N consecutive OFF readings.

Evidence (fence-agents' ``fencing.py``, ``fence_action``): ``status`` prints ``Status: ON`` and
exits 0, or prints ``Status: OFF`` and exits 2; every failure exits 1. Exit code 2 alone proves
nothing: a shell syntax error, a missing script file (``python3: can't open file``) and argparse
usage errors exit 2 too. So a reading is OFF only when the agent exited 2 *and* printed exactly one
``Status:`` line on stdout, ``Status: OFF``; ON likewise needs exit 0 and ``Status: ON``. Anything
else from ``status`` is not a reading but a ``FencingError`` (FENCE-01, FENCE-02, FENCE-03). Output
is decoded leniently (an undecodable byte is replaced, never an exception out of the driver).

The agent's own message (its last ``Failed:``/``ERROR:`` lines) goes into the error, with every
secret of the record masked (the password and every option that names one, such as ``community``
or ``snmp_priv_passwd``); a message about a timeout or a connection is a temporary failure
(retried, read again until the deadline), any other failure (refused credentials, unknown plug)
ends the level at once so the next level is tried.

Secrets: the password is written to the agent's stdin only, never argv or the environment (other
users can read both in /proc). The agent gets a minimal environment. Note that some agents pass it
on to their own helper on argv (fence_ipmilan runs ``ipmitool -P``): for IPMI prefer petguard's own
``ipmi`` driver.

The agent already is a separate process, so ``isolate`` is False: this driver runs in the daemon and
enforces the hard deadline itself: the agent runs in its own process group, which is SIGKILLed at
``timeout`` seconds, its pipes closed and its exit waited for a bounded time, so a helper that left
the group holding the agent's output cannot hold the lane (``petguard.fencing.child.communicate``).

Device record: ``agent`` (name such as ``fence_apc_snmp``, looked up in ``/usr/sbin``, ``/sbin`` and
PATH, or an absolute path), ``address`` (sent as ``ip``), ``port`` (``ipport``; 0 or left out: the
agent's default), ``username``, ``password``, and ``options``: any other agent parameter, sent as
given (``plug: 3``, ``lanplus: 1``, ``cipher: 3``, ``power_wait: 0`` ...). Unless set there,
``power_timeout`` is fitted inside the call's timeout so the agent reports a stuck device itself
before it is killed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from petguard import errors, secrets
from petguard.fencing import base
from petguard.fencing.child import communicate, decode_output, expired

#: Where fence-agents installs its programs (often not on a daemon's PATH).
AGENT_DIRS: tuple[str, ...] = ("/usr/sbin", "/sbin", "/usr/local/sbin")
#: Parameters petguard writes itself: options may not set them.
RESERVED = frozenset({"action", "ip", "ipaddr", "ipport", "username", "login", "password", "passwd"})
#: A plain fence agent name, and a plain option name.
_AGENT_NAME = re.compile(r"fence_[A-Za-z0-9_]+")
_OPTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
#: Words in an agent's failure message that mean "no answer, or not yet": worth another try.
_TEMPORARY_WORDS: tuple[str, ...] = ("timed out", "timeout", "connection", "unable to connect", "no route")
#: Exit codes of the fence-agent API.
EXIT_SUCCESS, EXIT_FAILURE, EXIT_OFF = 0, 1, 2
#: What ``status`` must print on stdout with each exit code for the reading to count (FENCE-01).
STATUS_READINGS: Mapping[tuple[int, str], base.PowerState] = {
    (EXIT_SUCCESS, "Status: ON"): base.PowerState.ON,
    (EXIT_OFF, "Status: OFF"): base.PowerState.OFF,
}
#: Lines of the agent's output kept in an error message.
_MESSAGE_LINES = 3
#: Suggested wait before retrying after a temporary failure (seconds).
_RETRY_DELAY = 1.0


@dataclasses.dataclass(frozen=True)
class AgentResult:
    """What one agent run ended with."""

    returncode: int
    stdout: str
    stderr: str

    @classmethod
    def from_output(cls, returncode: int, stdout: bytes, stderr: bytes) -> AgentResult:
        """From the raw pipes: bytes that are not UTF-8 are replaced, never an exception (FENCE-10)."""
        return cls(returncode, decode_output(stdout), decode_output(stderr))


class FenceAgentDriver(base.FenceDriver):
    """Power control through a ClusterLabs fence agent's stdin protocol."""

    isolate: ClassVar[bool] = False

    def validate(self, device: base.FenceDevice) -> None:
        """Check the record offline (the agent must exist and be executable); see FenceDriver."""
        problems = record_problems(device)
        if not problems and resolve_agent(device.options["agent"]) is None:
            problems.append(
                f"fence agent {device.options['agent']!r} is not installed (looked in "
                f"{', '.join(AGENT_DIRS)} and PATH); install fence-agents or give its absolute path"
            )
        if problems:
            raise errors.ConfigError(
                f"fence-agent record of host {device.host} is invalid: " + "; ".join(problems),
                host=device.host,
                driver=device.driver,
            )

    def power_state(self, device: base.FenceDevice, timeout: float) -> base.PowerState:
        """Run ``action=status`` once: exit 0 is ON, 2 is OFF, anything else an error."""
        result = run_agent(device, "status", timeout)
        return status_from(result, device)

    def power_off(self, device: base.FenceDevice, timeout: float) -> None:
        """Run ``action=off`` once; exit 0 means the agent saw the power go off (still read back)."""
        result = run_agent(device, "off", timeout)
        if result.returncode != EXIT_SUCCESS:
            raise failure_from(result, device, "off")


def record_problems(device: base.FenceDevice) -> list[str]:
    """Every offline problem of one record that needs no file system, each with the fix (pure)."""
    problems: list[str] = []
    agent = device.options.get("agent", "")
    if not agent:
        problems.append("agent is missing; name the fence agent, e.g. agent: fence_ipmilan")
    elif not (_AGENT_NAME.fullmatch(agent) or (agent.startswith("/") and "\n" not in agent)):
        problems.append(f"agent {agent!r} is neither a fence_* name nor an absolute path")
    if not 0 <= device.port <= 65535:
        problems.append(f"port {device.port} is outside 0-65535 (0: the agent's default)")
    for key, value in device.options.items():
        if key == "agent":
            continue
        if key in RESERVED or not _OPTION_NAME.fullmatch(key):
            problems.append(f"option {key!r} is reserved or malformed; petguard sets {', '.join(sorted(RESERVED))}")
        elif _breaks_line(value):
            problems.append(f"option {key!r} contains a line break or surrounding blanks")
    for name, value in (("address", device.address), ("username", device.username), ("password", device.password)):
        if _breaks_line(value):
            problems.append(f"{name} has a line break or surrounding blanks: the agent protocol cannot carry it")
    return problems


def _breaks_line(value: str) -> bool:
    return "\n" in value or "\r" in value or value != value.strip()


def resolve_agent(agent: str) -> str | None:
    """The agent's executable path, or None when it is not installed."""
    if agent.startswith("/"):
        return agent if os.access(agent, os.X_OK) and Path(agent).is_file() else None
    path = os.pathsep.join([*AGENT_DIRS, os.environ.get("PATH", "")])
    return shutil.which(agent, path=path)


def encode_request(device: base.FenceDevice, action: str, timeout: float) -> str:
    """The agent's stdin: one ``key=value`` per line. Contains the password: only ever written to a pipe."""
    lines = {"action": action, "ip": device.address, "username": device.username, "password": device.password}
    if device.port:
        lines["ipport"] = str(device.port)
    extra = {k: v for k, v in device.options.items() if k != "agent"}
    if action == "off" and "power_timeout" not in extra:
        extra["power_timeout"] = str(max(1, int(timeout) - 1))
    lines.update(extra)
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def status_from(result: AgentResult, device: base.FenceDevice) -> base.PowerState:
    """``action=status`` → ON (exit 0 and ``Status: ON``) or OFF (exit 2 and ``Status: OFF``).

    Positive evidence only (FENCE-01): exit 2 is also what a usage or syntax error exits with, so
    the exit code and the agent's one ``Status:`` line must agree; anything else raises.

    :raises petguard.errors.FencingError: exit code and output are not one of the two readings.
    :raises petguard.errors.BmcUnreachable: the agent failed with a timeout or connection message.
    """
    if result.returncode not in (EXIT_SUCCESS, EXIT_OFF):
        raise failure_from(result, device, "status")
    state = STATUS_READINGS.get((result.returncode, status_line(result.stdout)))
    if state is None:
        raise not_a_reading(result, device)
    return state


def status_line(stdout: str) -> str:
    """The agent's one ``Status:`` line on stdout, or "" when there is none or more than one."""
    said = [ln.strip(" \t\r") for ln in stdout.split("\n") if ln.lstrip(" \t").startswith("Status:")]
    return said[0] if len(said) == 1 else ""


def not_a_reading(result: AgentResult, device: base.FenceDevice) -> errors.FencingError:
    """The error for a ``status`` whose exit code and ``Status:`` line do not agree (pure)."""
    expected = "Status: ON" if result.returncode == EXIT_SUCCESS else "Status: OFF"
    return errors.FencingError(
        f"fence agent {device.options.get('agent', '?')} for {device.describe()} exited "
        f"{result.returncode} on 'action=status' without printing exactly one {expected!r} line, so "
        f"it is not a power reading (exit 2 is also a usage or syntax error): "
        f"{agent_message(result, device.secrets())}; run the agent by hand with these options "
        "('fence_<name> -o status ...') and fix the inventory",
        host=device.host,
        driver=device.driver,
    )


def failure_from(result: AgentResult, device: base.FenceDevice, action: str) -> errors.PetguardError:
    """A failed agent run → BmcUnreachable (timeouts, connections: retry) or FencingError (the rest)."""
    message = agent_message(result, device.secrets())
    where = f"fence agent {device.options.get('agent', '?')} for {device.describe()}"
    context: dict[str, object] = {"host": device.host, "driver": device.driver}
    text = f"{where} failed 'action={action}' (exit {result.returncode}): {message}"
    if any(word in message.lower() for word in _TEMPORARY_WORDS):
        return errors.BmcUnreachable(text, delay=_RETRY_DELAY, **context)
    return errors.FencingError(text + "; check the device's address, credentials and options", **context)


def agent_message(result: AgentResult, hidden: Sequence[str]) -> str:
    """The agent's own explanation: its last few Failed:/ERROR: lines, else its last lines; every
    secret of the record masked."""
    lines = [ln.strip() for ln in (result.stderr + "\n" + result.stdout).splitlines() if ln.strip()]
    wanted = [ln for ln in lines if ln.startswith(("Failed", "ERROR", "Error"))] or lines
    return secrets.text(" | ".join(wanted[-_MESSAGE_LINES:]), *hidden) or "no message"


def run_agent(device: base.FenceDevice, action: str, timeout: float) -> AgentResult:
    """Run the agent once with ``action``; SIGKILL its process group at ``timeout`` seconds and
    return within ``timeout`` plus ``child.REAP_TIMEOUT`` whatever its helpers do (FENCE-08).

    :raises petguard.errors.BmcUnreachable: it did not finish in time.
    :raises petguard.errors.ConfigError: the agent cannot be found or started.
    """
    executable = resolve_agent(device.options.get("agent", ""))
    if executable is None:
        raise errors.ConfigError(
            f"fence agent {device.options.get('agent')!r} for {device.describe()} is not installed; "
            "install fence-agents or fix agent: in the inventory",
            host=device.host,
            driver=device.driver,
        )
    try:
        proc = subprocess.Popen(  # fixed argv, no shell, no secret in it
            [executable],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_environment(),
            start_new_session=True,  # its own process group: the kill takes its helpers too
            close_fds=True,
        )
    except OSError as exc:
        raise errors.ConfigError(
            f"fence agent {executable} cannot be started ({exc.strerror or exc})", host=device.host
        ) from exc
    output = communicate(proc, encode_request(device, action, timeout).encode(), timeout)
    if output is None:
        raise errors.BmcUnreachable(
            f"fence agent {executable} for {device.describe()} did not finish 'action={action}' "
            f"within {timeout:.1f} s {expired(proc)}",
            delay=_RETRY_DELAY,
            host=device.host,
            driver=device.driver,
        )
    return AgentResult.from_output(proc.returncode, *output)


def _environment() -> Mapping[str, str]:
    """What the agent needs (PATH for its helpers, a C locale for parseable output), nothing else."""
    return {"PATH": os.pathsep.join([*AGENT_DIRS, "/usr/bin", "/bin"]), "LANG": "C", "LC_ALL": "C"}
