"""Run one fence-driver operation, in a short-lived child process with a hard deadline.

This is how Pacemaker runs fence agents, and why: a driver library (pyghmi) can hang or deadlock the
whole process that calls it (notes/bmc-peers.md), and a daemon that hangs in a fence is worse than
one that reports the fence failed. Both sides of the protocol live here:

* ``FenceRunner`` (parent side, used by ``petguard.fencing.procedure``): for a driver with
  ``isolate = True`` it starts ``sys.executable -I -m petguard.fencing.child`` in its own process
  group, writes the request (device record *including the password*) as JSON on the child's stdin
  (never argv or the environment, which other users can read in /proc), and reads one JSON line
  back. At ``timeout + hard_margin`` seconds it SIGKILLs the child's process group and raises
  ``BmcUnreachable``. Drivers with ``isolate = False`` (the fake) run in-process.
* ``main()`` (child side): reads the request, imports only the driver's own module, runs the one
  operation and prints ``{"ok": true, "power": "off"}`` or
  ``{"ok": false, "error": "BmcAuthError", "message": "..."}``. The parent raises the same petguard
  exception class again. No message that crosses the boundary contains the password.

Imports stay minimal on purpose: every fence call pays this module's import time in the child.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from petguard import errors, redact
from petguard.fencing import base

LOG = logging.getLogger(__name__)

#: Error classes that may cross the process boundary, by name. A driver's own subclass travels as
#: the nearest of these in its MRO; anything else travels as FencingError.
ERROR_CLASSES: Mapping[str, type[errors.PetguardError]] = {
    cls.__name__: cls
    for cls in (
        errors.BmcAuthError,
        errors.BmcUnreachable,
        errors.ConfigError,
        errors.FencingError,
        errors.Temporary,
        errors.Permanent,
    )
}

#: How much of a crashed child's stderr goes into the error message (characters, from the end).
_STDERR_TAIL = 400



class Op(enum.StrEnum):
    """The driver operations a runner can carry out."""

    POWER_STATE = "power_state"
    POWER_OFF = "power_off"


class FenceRunner:
    """Carries out one driver operation per call: in a child process, or in-process for the fake.

    :param lookup: driver name → driver instance (e.g. ``functools.partial(load_driver,
        enabled=[...])``); results are cached per name.
    :param python: the interpreter for children (defaults to the one running petguard).
    :param hard_margin: seconds granted beyond ``timeout`` for interpreter start-up and reporting
        before the child's process group is killed.
    :param on_spawn: called with each child's pid (observability; tests use it to wedge a child).
    """

    def __init__(
        self,
        lookup: Callable[[str], base.FenceDriver],
        *,
        python: str = sys.executable,
        hard_margin: float = 1.0,
        on_spawn: Callable[[int], None] | None = None,
    ) -> None:
        self._lookup = lookup
        self._python = python
        self._hard_margin = hard_margin
        self._on_spawn = on_spawn
        self._drivers: dict[str, base.FenceDriver] = {}
        self._lock = threading.Lock()

    def run(
        self, driver_name: str, device: base.FenceDevice, op: Op, timeout: float
    ) -> base.PowerState | None:
        """Run ``op`` against ``device`` with driver ``driver_name``.

        :returns: the PowerState for ``Op.POWER_STATE``; None for ``Op.POWER_OFF``.
        :raises petguard.errors.BmcUnreachable: no answer in time, or the child was killed at the
            hard deadline (``timeout + hard_margin``).
        :raises petguard.errors.BmcAuthError: credentials refused.
        :raises petguard.errors.FencingError: the device refused, or the child failed.
        :raises petguard.errors.DriverLoadError: the driver cannot be loaded.
        """
        driver = self._driver(driver_name)
        if not driver.isolate:
            return _execute(driver, device, op, timeout)
        return self._run_in_child(driver, device, op, timeout)

    def _driver(self, name: str) -> base.FenceDriver:
        with self._lock:
            if name not in self._drivers:
                self._drivers[name] = self._lookup(name)
            return self._drivers[name]

    def _run_in_child(
        self, driver: base.FenceDriver, device: base.FenceDevice, op: Op, timeout: float
    ) -> base.PowerState | None:
        request = encode_request(driver, device, op, timeout)
        hard_deadline = timeout + self._hard_margin
        started = time.monotonic()
        proc = subprocess.Popen(  # fixed argv, no shell, no secret in it
            [self._python, "-I", "-m", "petguard.fencing.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so the kill takes any helpers too
            close_fds=True,
            text=True,
        )
        LOG.debug("fence child %d started: %s on %s", proc.pid, op, device.describe())
        if self._on_spawn is not None:
            self._on_spawn(proc.pid)
        try:
            stdout, stderr = proc.communicate(request, timeout=hard_deadline)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise errors.BmcUnreachable(
                f"fence child for {device.describe()} ({op}) gave no result within its hard "
                f"deadline of {hard_deadline:.1f} s and was killed",
                host=device.host,
                driver=device.driver,
            ) from None
        LOG.debug(
            "fence child %d exited %s after %.3f s",
            proc.pid,
            proc.returncode,
            time.monotonic() - started,
        )
        return decode_reply(stdout, stderr, proc.returncode, device)


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the child's whole process group and reap it (SIGKILL also ends a stopped process)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()
    LOG.debug("fence child %d killed at its hard deadline", proc.pid)


def _execute(
    driver: base.FenceDriver, device: base.FenceDevice, op: Op, timeout: float
) -> base.PowerState | None:
    """Dispatch one operation to the driver (the same code path in-process and in the child)."""
    if op is Op.POWER_STATE:
        return driver.power_state(device, timeout)
    driver.power_off(device, timeout)
    return None


def encode_request(
    driver: base.FenceDriver, device: base.FenceDevice, op: Op, timeout: float
) -> str:
    """The JSON the child reads on stdin. Contains the password: only ever written to a pipe."""
    cls = type(driver)
    return json.dumps(
        {
            "target": f"{cls.__module__}:{cls.__qualname__}",
            "op": str(op),
            "timeout": timeout,
            "device": {**dataclasses.asdict(device), "options": dict(device.options)},
        }
    )


def decode_reply(
    stdout: str, stderr: str, returncode: int | None, device: base.FenceDevice
) -> base.PowerState | None:
    """Turn the child's output back into a PowerState, None, or the petguard error it reported."""
    reply = _last_json_line(stdout)
    context: dict[str, object] = {"host": device.host, "driver": device.driver}
    if reply is None:
        tail = redact.text(stderr.strip(), device.password)[-_STDERR_TAIL:]  # masked before cut
        LOG.debug("fence child stderr for %s: %s", device.describe(), tail)
        cls: type[errors.PetguardError] = errors.FencingError
        if returncode is not None and returncode < 0:
            cls = errors.BmcUnreachable  # killed by a signal from outside: worth another try
        raise cls(
            f"fence child for {device.describe()} exited with code {returncode} without a result"
            + (f"; stderr ends with: {tail}" if tail else ""),
            **context,
        )
    if reply.get("ok") is True:
        power = reply.get("power")
        return None if power is None else base.PowerState(power)
    error_cls = ERROR_CLASSES.get(str(reply.get("error")), errors.FencingError)
    message = redact.text(str(reply.get("message", "")), device.password)
    if issubclass(error_cls, errors.Temporary):
        raise error_cls(message, delay=float(reply.get("delay", 1.0)), **context)
    raise error_cls(message, **context)


def _last_json_line(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def serve(request_text: str) -> dict[str, Any]:
    """Child side, without the process plumbing: request JSON → reply dict. Never raises."""
    password = ""
    try:
        request = json.loads(request_text)
        device = _device_from(request["device"])
        password = device.password
        driver = _load_target(str(request["target"]))
        power = _execute(driver, device, Op(request["op"]), float(request["timeout"]))
        return {"ok": True, "power": None if power is None else str(power)}
    except errors.PetguardError as exc:
        return _error_reply(exc, password)
    except Exception as exc:  # noqa: BLE001 - the boundary: every failure becomes a reply
        return {
            "ok": False,
            "error": "FencingError",
            "message": f"fence child failed: {type(exc).__name__}: {redact.text(str(exc), password)}",
        }


def _error_reply(exc: errors.PetguardError, password: str) -> dict[str, Any]:
    name = next(
        (cls.__name__ for cls in type(exc).__mro__ if cls.__name__ in ERROR_CLASSES),
        "FencingError",
    )
    reply: dict[str, Any] = {"ok": False, "error": name, "message": redact.text(exc.message, password)}
    if isinstance(exc, errors.Temporary):
        reply["delay"] = exc.delay
    return reply


def _device_from(record: Mapping[str, Any]) -> base.FenceDevice:
    return base.FenceDevice(
        host=str(record["host"]),
        driver=str(record["driver"]),
        address=str(record["address"]),
        port=int(record["port"]),
        username=str(record["username"]),
        password=str(record["password"]),
        options={str(k): str(v) for k, v in dict(record.get("options") or {}).items()},
    )


def _load_target(target: str) -> base.FenceDriver:
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, base.FenceDriver)):
        raise errors.FencingError(f"{target} is not a FenceDriver")
    driver: base.FenceDriver = cls()
    return driver


def _claim_stdout() -> TextIO:
    """Keep fd 1 for the reply alone: anything a library prints goes to stderr instead."""
    reply_stream = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return reply_stream


def main() -> None:
    """Child entry point: one request on stdin, one JSON line on stdout, then exit at once."""
    reply_stream = _claim_stdout()
    reply = serve(sys.stdin.read())
    reply_stream.write(json.dumps(reply) + "\n")
    reply_stream.flush()
    # Skip interpreter shutdown: an abandoned pyghmi thread must not delay or block the exit.
    os._exit(0)


if __name__ == "__main__":
    main()
