"""Redfish fencing adapter on sushy: the only module in petguard that imports sushy.

One thing per call, as every driver: read the ComputerSystem's ``PowerState`` once, or POST its
``ComputerSystem.Reset`` action with ``ForceOff`` once. It never waits for the power to change: the
procedure (``petguard.fencing.procedure``) reads it back until it is OFF, N times in a row.

Vocabulary is translated through one explicit table (``POWER_STATE_MAP``: "PoweringOff" is
POWERING_OFF, never OFF) and sushy's errors through ``_map_error``, once, chained with ``from``.

Timeouts: sushy's defaults retry a dead BMC for 27 s (10 tries x 3 s) and wait 60 s for a reply;
here every HTTP request gets a short connect timeout and the call's own read timeout, and
``server_side_retries=1`` (0 would be taken as 3 by sushy), so an unreachable BMC fails in
milliseconds and the procedure's own retry and deadline logic decides (notes/bmc-peers.md §8).
The whole call also runs in a daemon thread bounded by ``timeout``, and ``isolate`` is True, so the
runner calls it in a short-lived child process with a hard deadline, like IPMI.

Device record (``options`` are strings, as in the inventory):

==================  ========================================================================
address, port       the BMC (port defaults to 443)
username, password  HTTP basic authentication (no Redfish session is left behind on the BMC)
system              the ComputerSystem: a path (``/redfish/v1/Systems/1``) or an id (``1``);
                    left out, the BMC's only system
scheme              ``https`` (default) or ``http``
verify              ``true`` (default), ``false`` or the path of a CA bundle
root_prefix         the service root (default ``/redfish/v1/``)
==================  ========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import sushy  # type: ignore[import-untyped]
from sushy import exceptions as sushy_exceptions

from petguard import errors
from petguard.fencing import base, bounded

T = TypeVar("T")

#: sushy's ``ComputerSystem.power_state`` → PowerState. "PoweringOff" is not off; "PoweringOn" and
#: "Paused" are powered; anything missing or unknown is UNKNOWN, never OFF.
POWER_STATE_MAP: Mapping[sushy.PowerState, base.PowerState] = {
    sushy.PowerState.ON: base.PowerState.ON,
    sushy.PowerState.OFF: base.PowerState.OFF,
    sushy.PowerState.POWERING_OFF: base.PowerState.POWERING_OFF,
    sushy.PowerState.POWERING_ON: base.PowerState.ON,
    sushy.PowerState.PAUSED: base.PowerState.ON,
}

OPTIONS = frozenset({"system", "scheme", "verify", "root_prefix"})
SCHEMES = frozenset({"https", "http"})
DEFAULT_ROOT = "/redfish/v1/"
#: Longest TCP connect wait (seconds): a BMC on the management LAN answers SYN in milliseconds.
CONNECT_TIMEOUT = 2.0
#: Suggested wait before retrying an unreachable or busy BMC (seconds).
_UNREACHABLE_DELAY = 1.0


class RedfishDriver(base.FenceDriver):
    """Power control of one Redfish ComputerSystem through sushy."""

    isolate: ClassVar[bool] = True

    def validate(self, device: base.FenceDevice) -> None:
        """Check the record offline; see FenceDriver.validate."""
        problems = record_problems(device)
        if problems:
            raise errors.ConfigError(
                f"Redfish record of host {device.host} is invalid: " + "; ".join(problems),
                host=device.host,
                driver=device.driver,
            )

    def power_state(self, device: base.FenceDevice, timeout: float) -> base.PowerState:
        """Read the system's PowerState once; see FenceDriver.power_state."""
        raw = _call(device, timeout, "read power state", lambda system: system.power_state)
        return map_power_state(raw)

    def power_off(self, device: base.FenceDevice, timeout: float) -> None:
        """POST ComputerSystem.Reset ForceOff once (hard off, not GracefulShutdown)."""
        _call(device, timeout, "power off", lambda system: system.reset_system(sushy.ResetType.FORCE_OFF))


def map_power_state(raw: object) -> base.PowerState:
    """sushy's power state (enum, or the raw string of an older sushy) → PowerState."""
    if isinstance(raw, str) and not isinstance(raw, sushy.PowerState):
        try:
            raw = sushy.PowerState(raw)
        except ValueError:
            return base.PowerState.UNKNOWN
    if isinstance(raw, sushy.PowerState):
        return POWER_STATE_MAP.get(raw, base.PowerState.UNKNOWN)
    return base.PowerState.UNKNOWN


def record_problems(device: base.FenceDevice) -> list[str]:
    """Every offline problem of one Redfish record, each with the fix (pure)."""
    problems: list[str] = []
    if not device.address:
        problems.append("address is empty; set the BMC's address")
    if not 1 <= device.port <= 65535:
        problems.append(f"port {device.port} is outside 1-65535; Redfish's default is 443")
    if not device.username or not device.password:
        problems.append("username or password is empty; set both (HTTP basic authentication)")
    options = device.options
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        problems.append(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTIONS))}")
    if options.get("scheme", "https") not in SCHEMES:
        problems.append(f"scheme {options['scheme']!r} is not https or http")
    if "verify" in options and not options["verify"].strip():
        problems.append("verify is empty; set true, false or the path of a CA bundle")
    return problems


def base_url(device: base.FenceDevice) -> str:
    """The BMC's URL (no credentials in it)."""
    host = f"[{device.address}]" if ":" in device.address else device.address
    return f"{device.options.get('scheme', 'https')}://{host}:{device.port}"


def system_path(device: base.FenceDevice) -> str | None:
    """The ComputerSystem's path from the ``system`` option (an id becomes a path); None: the only one."""
    system = device.options.get("system", "").strip()
    if not system:
        return None
    if system.startswith("/"):
        return system
    root = device.options.get("root_prefix", DEFAULT_ROOT).rstrip("/")
    return f"{root}/Systems/{system}"


def _verify(device: base.FenceDevice) -> bool | str:
    value = device.options.get("verify", "true").strip()
    if value.lower() in ("true", "yes", "1"):
        return True
    if value.lower() in ("false", "no", "0"):
        return False
    return value


def _call(device: base.FenceDevice, timeout: float, action: str, operation: Callable[[Any], T]) -> T:
    """Connect, find the system, run ``operation`` on it; all within ``timeout`` seconds."""
    return bounded.call_within(
        timeout,
        lambda: operation(_system(device, timeout)),
        name=f"redfish-{device.host}",
        timed_out=lambda: errors.BmcUnreachable(
            f"Redfish BMC {device.describe()} did not answer '{action}' within {timeout:.1f} s",
            delay=_UNREACHABLE_DELAY,
            host=device.host,
            driver=device.driver,
        ),
        map_error=lambda exc: _map_error(exc, device, action),
    )


def _system(device: base.FenceDevice, timeout: float) -> Any:
    """A fresh sushy client (basic auth: no session to leak) and the device's ComputerSystem."""
    client = sushy.Sushy(
        base_url(device),
        auth=sushy.auth.BasicAuth(username=device.username, password=device.password),
        root_prefix=device.options.get("root_prefix", DEFAULT_ROOT),
        verify=_verify(device),
        server_side_retries=1,
        server_side_retries_delay=0.1,
        connect_timeout=min(CONNECT_TIMEOUT, timeout),
        read_timeout=timeout,
    )
    return client.get_system(system_path(device))


def _map_error(exc: BaseException, device: base.FenceDevice, action: str) -> errors.PetguardError:
    """sushy (or anything escaping it) → petguard's tree. The one place this mapping lives."""
    context: dict[str, object] = {"host": device.host, "driver": device.driver}
    where = f"Redfish BMC {device.describe()}"
    if isinstance(exc, sushy_exceptions.AccessError):
        return errors.BmcAuthError(
            f"{where} refused the credentials during '{action}' (HTTP {exc.status_code}); "
            "check username and password in the fence inventory, and the account's role",
            **context,
        )
    if isinstance(exc, sushy_exceptions.ResourceNotFoundError):
        return errors.FencingError(
            f"{where} has no ComputerSystem at {system_path(device) or 'its Systems collection'} "
            f"during '{action}'; set options.system to a path listed under "
            f"{base_url(device)}{device.options.get('root_prefix', DEFAULT_ROOT)}Systems",
            **context,
        )
    if isinstance(exc, sushy_exceptions.UnknownDefaultError):
        return errors.FencingError(
            f"{where} does not have exactly one ComputerSystem; set options.system to the host's "
            "system path (e.g. /redfish/v1/Systems/1)",
            **context,
        )
    if isinstance(exc, sushy_exceptions.ConnectionError):
        return errors.BmcUnreachable(
            f"{where} could not be reached for '{action}' ({_cause(exc)})", delay=_UNREACHABLE_DELAY, **context
        )
    if isinstance(exc, sushy_exceptions.ServerSideError):
        return errors.BmcUnreachable(
            f"{where} answered '{action}' with a server error (HTTP {exc.status_code})",
            delay=_UNREACHABLE_DELAY,
            **context,
        )
    if isinstance(exc, sushy_exceptions.SushyError):
        return errors.FencingError(f"{where} refused '{action}': {type(exc).__name__}: {exc}", **context)
    if isinstance(exc, OSError):
        return errors.BmcUnreachable(
            f"{where} could not be reached for '{action}' ({type(exc).__name__})", delay=_UNREACHABLE_DELAY, **context
        )
    return errors.FencingError(f"{where} failed '{action}' with an unexpected {type(exc).__name__}", **context)


def _cause(exc: sushy_exceptions.ConnectionError) -> str:
    """The transport error's class name (its text may carry the URL, never a password)."""
    inner = exc.__cause__ or exc.__context__
    return type(inner).__name__ if inner is not None else "connection failed"
