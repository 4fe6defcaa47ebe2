"""IPMI fencing adapter on pyghmi: the only module in petguard that imports pyghmi.

It translates pyghmi's vocabulary into petguard's: power strings through ``POWER_STATE_MAP`` and every
pyghmi failure through ``_map_error`` into the error tree of ``petguard.errors``, once, chained with
``from``. It does one thing per call (read the power state, or ask for a hard power-off) and never
waits for the power to change: the procedure (``petguard.fencing.procedure``) polls for that.

pyghmi has no timeout knob and can hang or deadlock a whole process (notes/bmc-peers.md), so
``isolate`` is True: the runner (``petguard.fencing.child``) calls this driver in a short-lived child
process with a hard deadline. Inside that child each call also runs in a daemon thread bounded by
``timeout``, so that the usual case (a BMC that does not answer) ends with a clear ``BmcUnreachable``
rather than with the runner's SIGKILL.
"""

from __future__ import annotations

import contextlib
import ipaddress
import struct
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from pyghmi import exceptions as pyghmi_exceptions  # type: ignore[import-untyped]
from pyghmi.ipmi import command as pyghmi_command  # type: ignore[import-untyped]
from pyghmi.ipmi.private import session as pyghmi_session  # type: ignore[import-untyped]

from petguard import errors
from petguard.fencing import base, bounded

T = TypeVar("T")

#: pyghmi's ``get_power()['powerstate']`` values → PowerState. pyghmi only reports the chassis
#: power bit, so it never says "powering off"; anything else is UNKNOWN, never OFF.
POWER_STATE_MAP: Mapping[str, base.PowerState] = {
    "on": base.PowerState.ON,
    "off": base.PowerState.OFF,
}

#: Substrings of pyghmi's IpmiException messages that mean the credentials were refused.
#: 'Incorrect password provided' (RAKP2 HMAC mismatch), 'Unauthorized name in RAKP2'
#: (unknown user), 'Insufficient privilege' (user exists but may not control the chassis).
_AUTH_MESSAGES: tuple[str, ...] = (
    "incorrect password",
    "unauthorized name",
    "insufficient privilege",
)

#: Whole messages that mean "no answer": pyghmi reports an unreachable BMC as the literal text
#: 'None' (``_mark_broken`` overwrites the error with None).
_UNREACHABLE_EXACT: frozenset[str] = frozenset({"none", ""})

#: Substrings that mean "no answer, or not now": worth retrying rather than escalating.
#: 'Node Busy' (completion code 0xc0) is a BMC asking to be asked again.
_RETRYABLE_MESSAGES: tuple[str, ...] = (
    "session no longer connected",
    "timeout",
    "timed out",
    "node busy",
)

#: Suggested wait before retrying an unreachable BMC (seconds).
_UNREACHABLE_DELAY = 1.0

#: Longest single sleep of a pyghmi caller thread (seconds); see ``_cap_io_waits``.
_IO_WAIT_CAP = 0.02
_io_waits_capped = threading.Lock()


class IpmiDriver(base.FenceDriver):
    """Power control over IPMI 2.0 (RMCP+, lanplus) through pyghmi's ``Command``."""

    isolate: ClassVar[bool] = True

    def validate(self, device: base.FenceDevice) -> None:
        """Check the record offline: address, port, user name and password present and well formed.

        :raises petguard.errors.ConfigError: listing every problem found, with how to fix it.
        """
        problems = _record_problems(device)
        if problems:
            raise errors.ConfigError(
                f"IPMI record of host {device.host} is invalid: " + "; ".join(problems),
                host=device.host,
                driver=device.driver,
            )

    def power_state(self, device: base.FenceDevice, timeout: float) -> base.PowerState:
        """Read the chassis power bit once; see FenceDriver.power_state."""
        reply = _call(device, timeout, "read power state", lambda cmd: cmd.get_power())
        raw = reply.get("powerstate") if isinstance(reply, dict) else None
        return POWER_STATE_MAP.get(str(raw), base.PowerState.UNKNOWN)

    def power_off(self, device: base.FenceDevice, timeout: float) -> None:
        """Send Chassis Control 'power down' once; never ``wait=True`` (slow and not ours to decide)."""
        _call(device, timeout, "power off", lambda cmd: cmd.set_power("off", wait=False))


def _record_problems(device: base.FenceDevice) -> list[str]:
    """Every offline problem of one IPMI record, each with the fix (pure)."""
    problems: list[str] = []
    if not _is_address(device.address):
        problems.append(f"address {device.address!r} is not an IP address or host name; set bmc.address")
    if not 1 <= device.port <= 65535:
        problems.append(f"port {device.port} is outside 1-65535; IPMI's default is 623")
    if not device.username:
        problems.append("username is empty; set bmc.username")
    if not device.password:
        problems.append("password is empty; set bmc.password or bmc.password_file")
    return problems


def _is_address(address: str) -> bool:
    """True for an IPv4/IPv6 literal or a syntactically valid host name (no DNS lookup)."""
    try:
        ipaddress.ip_address(address)
        return True
    except ValueError:
        pass
    if not address or len(address) > 253:
        return False
    labels = address.rstrip(".").split(".")
    return all(_is_label(label) for label in labels)


def _is_label(label: str) -> bool:
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-")
    return 0 < len(label) <= 63 and set(label.lower()) <= allowed and not label.startswith("-")


def _call(
    device: base.FenceDevice,
    timeout: float,
    action: str,
    operation: Callable[[Any], T],
) -> T:
    """Log in, run ``operation`` on a fresh Command, log out; all within ``timeout`` seconds.

    The work runs in a daemon thread because pyghmi cannot be interrupted: on timeout the thread is
    abandoned, which is acceptable only because this runs in a short-lived child process.
    """
    return bounded.call_within(
        timeout,
        lambda: _session_call(device, operation),
        name=f"ipmi-{device.host}",
        timed_out=lambda: errors.BmcUnreachable(
            f"IPMI BMC {device.describe()} did not answer '{action}' within {timeout:.1f} s",
            delay=_UNREACHABLE_DELAY,
            host=device.host,
            driver=device.driver,
        ),
        map_error=lambda exc: _map_error(exc, device, action),
    )


def _cap_io_waits() -> None:
    """Work around pyghmi's lost wake-ups (notes/bmc-peers.md, client bug 4).

    A reply that lands between a caller's check of the session queue and its registration as a
    waiter wakes nobody, so the caller sleeps until its retry timer (0.5-1.0 s), on about half of
    the calls of a fresh process against a loopback BMC. pyghmi's wait loops re-check their own
    deadlines after every wake-up, so waking early is safe: cap each sleep at ``_IO_WAIT_CAP``.
    Applied lazily where sessions run (the fence child), never at import.
    """
    with _io_waits_capped:
        if getattr(pyghmi_session, "_petguard_io_wait_capped", False):
            return
        original = pyghmi_session._io_wait

        def capped(timeout: float, myaddr: Any = None, evq: Any = None) -> Any:
            return original(min(timeout, _IO_WAIT_CAP), myaddr, evq)

        pyghmi_session._io_wait = capped
        pyghmi_session._petguard_io_wait_capped = True


def _session_call(device: base.FenceDevice, operation: Callable[[Any], T]) -> T:
    _cap_io_waits()
    # Bytes credentials: with str credentials pyghmi keys its session registry inconsistently and
    # a second Command to the same BMC hangs forever (notes/bmc-peers.md, client bug 1).
    cmd = pyghmi_command.Command(
        bmc=device.address,
        userid=device.username.encode("utf-8"),
        password=device.password.encode("utf-8"),
        port=device.port,
        keepalive=False,
    )
    try:
        return operation(cmd)
    finally:
        _logout(cmd)


def _logout(cmd: Any) -> None:
    # Close the BMC session: BMCs hold few sessions, and every fence call opens a new one.
    with contextlib.suppress(Exception):  # best effort: the answer is already in hand
        cmd.ipmi_session.logout()


def _map_error(exc: BaseException, device: base.FenceDevice, action: str) -> errors.PetguardError:
    """pyghmi (or anything escaping it) → petguard's tree. The one place this mapping lives."""
    context: dict[str, object] = {"host": device.host, "driver": device.driver}
    where = f"IPMI BMC {device.describe()}"
    if isinstance(exc, pyghmi_exceptions.IpmiException):
        text = str(exc)
        lowered = text.strip().lower()
        if any(marker in lowered for marker in _AUTH_MESSAGES):
            return errors.BmcAuthError(
                f"{where} refused the credentials during '{action}' ({text}); "
                "check username and password in the BMC inventory",
                **context,
            )
        if lowered in _UNREACHABLE_EXACT or any(m in lowered for m in _RETRYABLE_MESSAGES):
            return errors.BmcUnreachable(
                f"{where} did not answer '{action}' (pyghmi: {text or 'no reply'})",
                delay=_UNREACHABLE_DELAY,
                **context,
            )
        return errors.FencingError(f"{where} refused '{action}': {text}", **context)
    if isinstance(exc, (struct.error, TypeError, AssertionError, IndexError, KeyError)):
        # Malformed or mislabelled replies (notes/bmc-peers.md, client bug 5): the BMC answered
        # something we cannot trust; a later try may get a clean answer.
        return errors.BmcUnreachable(
            f"{where} gave an unreadable reply to '{action}' ({type(exc).__name__})",
            delay=_UNREACHABLE_DELAY,
            **context,
        )
    if isinstance(exc, OSError):
        return errors.BmcUnreachable(
            f"{where} could not be reached for '{action}' ({type(exc).__name__}: {exc})",
            delay=_UNREACHABLE_DELAY,
            **context,
        )
    return errors.FencingError(f"{where} failed '{action}' with an unexpected {type(exc).__name__}", **context)
