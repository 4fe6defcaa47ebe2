"""Run one fence-driver operation, in a short-lived child process with a hard deadline.

This is how Pacemaker runs fence agents, and why: a driver library (pyghmi) can hang or deadlock the
whole process that calls it (notes/bmc-peers.md), and a daemon that hangs in a fence is worse than
one that reports the fence failed. Both sides of the protocol live here:

* ``FenceRunner`` (parent side, used by ``petguard.fencing.procedure``): for a driver with
  ``isolate = True`` it starts ``sys.executable -I -m petguard.fencing.child`` in its own process
  group, writes the request (device record *including the password*) as JSON on the child's stdin
  (never argv or the environment, which other users can read in /proc), and reads one JSON line
  back. At ``timeout + hard_margin`` seconds it SIGKILLs the child's process group, closes the pipes
  without reading them to the end (a helper that left the group with ``setsid`` may hold them for
  ever) and raises ``BmcUnreachable``: the call never outlives its deadline by more than
  ``REAP_TIMEOUT`` (FENCE-07). Drivers with ``isolate = False`` (the fake) run in-process.
* ``main()`` (child side): reads the request, imports only the driver's own module, runs the one
  operation and prints ``{"ok": true, "power": "off"}`` or
  ``{"ok": false, "error": "BmcAuthError", "message": "..."}``. The parent raises the same petguard
  exception class again. No message that crosses the boundary contains a secret of the record.

The parent believes only a well-formed reply (``parse_reply``): stdout is exactly one JSON object
with the keys and values above (power one of ``PowerState``'s values, a delay a number of seconds
from 0 to ``MAX_REPLY_DELAY``), and a power reading counts only when the child then exited 0.
Anything else, whatever bytes a broken or hijacked child prints, is a ``FencingError`` for that
device, never a crash of the lane and never a reading (FENCE-04, FENCE-05, FENCE-06).

Imports stay minimal on purpose: every fence call pays this module's import time in the child.
"""

from __future__ import annotations

import dataclasses
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

from petguard import errors, secrets
from petguard.fencing import base
from petguard.fencing.base import Op

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
#: How much of a malformed reply goes into the error message (characters, from the start).
_REPLY_EXCERPT = 200
#: The longest retry delay a child may suggest (seconds); more is a malformed reply.
MAX_REPLY_DELAY = 60.0
#: Seconds to wait for a killed process to be reaped after its pipes are closed (FENCE-07).
REAP_TIMEOUT = 0.5


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
        request = encode_request(driver, device, op, timeout).encode()
        hard_deadline = timeout + self._hard_margin
        started = time.monotonic()
        try:
            proc = subprocess.Popen(  # fixed argv, no shell, no secret in it
                [self._python, "-I", "-m", "petguard.fencing.child"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, so the kill takes any helpers too
                close_fds=True,
            )
        except OSError as exc:
            raise errors.FencingError(
                f"fence child for {device.describe()} cannot be started with {self._python} "
                f"({exc.strerror or exc}); check the petguard installation",
                host=device.host,
                driver=device.driver,
            ) from exc
        LOG.debug("fence child %d started: %s on %s", proc.pid, op, device.describe())
        if self._on_spawn is not None:
            self._on_spawn(proc.pid)
        output = communicate(proc, request, hard_deadline)
        if output is None:
            raise errors.BmcUnreachable(
                f"fence child for {device.describe()} ({op}) gave no result within its hard "
                f"deadline of {hard_deadline:.1f} s {expired(proc)}",
                host=device.host,
                driver=device.driver,
            )
        stdout, stderr = output
        LOG.debug(
            "fence child %d exited %s after %.3f s",
            proc.pid,
            proc.returncode,
            time.monotonic() - started,
        )
        return decode_reply(stdout, stderr, proc.returncode, device, op)


def communicate(proc: subprocess.Popen[bytes], request: bytes, timeout: float) -> tuple[bytes, bytes] | None:
    """Write ``request`` to ``proc`` and read its stdout and stderr to the end, within ``timeout``.

    :returns: (stdout, stderr); None when the time ran out: then ``proc``'s process group has been
        killed and its pipes closed (``kill_group``), so this never takes more than ``timeout +
        REAP_TIMEOUT`` seconds, also when a helper outside the group holds the pipes (FENCE-07).
    """
    try:
        return proc.communicate(request, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        return None


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group of ``proc``, close its pipes and reap it within ``REAP_TIMEOUT``.

    The pipes are closed, not read to the end: a helper that left the group (``setsid``) may hold
    them open for as long as it likes. ``proc`` is not reaped before the kill, so its pid (the
    group's id) cannot have been reused by then. SIGKILL also ends a stopped process.
    """
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    try:
        proc.wait(timeout=REAP_TIMEOUT)
    except subprocess.TimeoutExpired:  # uninterruptible sleep: subprocess reaps it later
        LOG.warning("process %d did not end within %.1f s of SIGKILL; left to be reaped later", proc.pid, REAP_TIMEOUT)
    LOG.debug("process group %d killed at its deadline (exit %s)", proc.pid, proc.returncode)


def expired(proc: subprocess.Popen[bytes]) -> str:
    """How a process that ran out of time ended, to follow "within N s" (after ``kill_group``)."""
    if proc.returncode is not None and proc.returncode != -signal.SIGKILL:
        return (
            f"(it had exited with code {proc.returncode}, but a process it started outside its "
            "process group held its output open; the output was abandoned)"
        )
    return "and was killed"


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


@dataclasses.dataclass(frozen=True)
class Answer:
    """A well-formed success reply: the reading (``Op.POWER_STATE``) or None (``Op.POWER_OFF``)."""

    power: base.PowerState | None


@dataclasses.dataclass(frozen=True)
class Failure:
    """A well-formed error reply: the petguard error class, its message and its suggested delay."""

    error: type[errors.PetguardError]
    message: str
    delay: float


class MalformedReply(ValueError):
    """The child's stdout is not one well-formed reply; the text says what is wrong with it."""


_ANSWER_KEYS = frozenset({"ok", "power"})
_FAILURE_KEYS = frozenset({"ok", "error", "message", "delay"})
_POWER_VALUES = frozenset(state.value for state in base.PowerState)
_DEFAULT_DELAY = 1.0


def decode_reply(
    stdout: bytes, stderr: bytes, returncode: int | None, device: base.FenceDevice, op: Op
) -> base.PowerState | None:
    """Turn the child's output back into a PowerState, None, or the petguard error it reported.

    Whatever the bytes and the exit code, this returns a reading only for a well-formed answer
    from a child that exited 0, and otherwise raises a petguard error (FENCE-04..06).
    """
    hidden = device.secrets()
    context: dict[str, object] = {"host": device.host, "driver": device.driver}
    text = decode_output(stdout).strip()
    if not text:
        tail = secrets.text(decode_output(stderr).strip(), *hidden)[-_STDERR_TAIL:]  # masked before cut
        LOG.debug("fence child stderr for %s: %s", device.describe(), tail)
        cls: type[errors.PetguardError] = errors.FencingError
        if returncode is not None and returncode < 0:
            cls = errors.BmcUnreachable  # killed by a signal from outside: worth another try
        raise cls(
            f"fence child for {device.describe()} exited with code {returncode} without a result"
            + (f"; stderr ends with: {tail}" if tail else ""),
            **context,
        )
    try:
        reply = parse_reply(text, op)
    except MalformedReply as exc:
        excerpt = secrets.text(text[:_REPLY_EXCERPT], *hidden)
        raise errors.FencingError(
            f"fence child for {device.describe()} ({op}) sent a malformed reply ({exc}; exit code "
            f"{returncode}): {excerpt!r}; not a power reading: check that petguard is installed "
            "the same way on this controller as the daemon",
            **context,
        ) from None
    if isinstance(reply, Failure):
        message = secrets.text(reply.message, *hidden)
        if issubclass(reply.error, errors.Temporary):
            raise reply.error(message, delay=reply.delay, **context)
        raise reply.error(message, **context)
    if returncode != 0:
        raise errors.FencingError(
            f"fence child for {device.describe()} ({op}) answered {reply.power or 'done'} but then "
            f"exited with code {returncode}; not a power reading",
            **context,
        )
    return reply.power


def parse_reply(text: str, op: Op) -> Answer | Failure:
    """The child's stdout (decoded, stripped) → one well-formed reply for ``op`` (pure).

    :raises MalformedReply: anything else, saying what is wrong.
    """
    if "\n" in text:
        raise MalformedReply("more than one line on stdout")
    try:
        reply = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, MalformedReply):
            raise
        raise MalformedReply(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(reply, dict):
        raise MalformedReply("not a JSON object")
    ok = reply.get("ok")
    if ok is True:
        return _answer(reply, op)
    if ok is False:
        return _failure(reply)
    raise MalformedReply("'ok' is neither true nor false")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise MalformedReply("a key appears twice")
    return dict(pairs)


def _answer(reply: dict[str, Any], op: Op) -> Answer:
    if not set(reply) <= _ANSWER_KEYS:
        raise MalformedReply(f"unexpected keys {sorted(set(reply) - _ANSWER_KEYS)!r}")
    power = reply.get("power")
    if op is Op.POWER_OFF:
        if power is not None:
            raise MalformedReply("a power-off answer carries no power state")
        return Answer(None)
    if not isinstance(power, str) or power not in _POWER_VALUES:
        raise MalformedReply(f"power is not one of {sorted(_POWER_VALUES)}")
    return Answer(base.PowerState(power))


def _failure(reply: dict[str, Any]) -> Failure:
    if not set(reply) <= _FAILURE_KEYS:
        raise MalformedReply(f"unexpected keys {sorted(set(reply) - _FAILURE_KEYS)!r}")
    name, message = reply.get("error"), reply.get("message", "")
    if not isinstance(name, str) or not isinstance(message, str):
        raise MalformedReply("error and message must be strings")
    delay = reply.get("delay", _DEFAULT_DELAY)
    # bool is an int in Python; NaN fails the range check.
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_REPLY_DELAY:
        raise MalformedReply(f"delay is not a number of seconds from 0 to {MAX_REPLY_DELAY:g}")
    return Failure(ERROR_CLASSES.get(name, errors.FencingError), message, float(delay))


def decode_output(raw: bytes) -> str:
    """A child's or an agent's output as text: bytes that are not UTF-8 become U+FFFD, never an
    exception (FENCE-10)."""
    return raw.decode("utf-8", errors="replace")



def serve(request_text: str) -> dict[str, Any]:
    """Child side, without the process plumbing: request JSON → reply dict. Never raises."""
    hidden: tuple[str, ...] = ()
    try:
        request = json.loads(request_text)
        device = _device_from(request["device"])
        hidden = device.secrets()
        driver = _load_target(str(request["target"]))
        power = _execute(driver, device, Op(request["op"]), float(request["timeout"]))
        return {"ok": True, "power": None if power is None else str(power)}
    except errors.PetguardError as exc:
        return _error_reply(exc, *hidden)
    except Exception as exc:  # noqa: BLE001 - the boundary: every failure becomes a reply
        return {
            "ok": False,
            "error": "FencingError",
            "message": f"fence child failed: {type(exc).__name__}: {secrets.text(str(exc), *hidden)}",
        }


def _error_reply(exc: errors.PetguardError, *hidden: str) -> dict[str, Any]:
    name = next(
        (cls.__name__ for cls in type(exc).__mro__ if cls.__name__ in ERROR_CLASSES),
        "FencingError",
    )
    reply: dict[str, Any] = {"ok": False, "error": name, "message": secrets.text(exc.message, *hidden)}
    if isinstance(exc, errors.Temporary):
        # Within what the parent accepts; max() also turns NaN into 0.
        reply["delay"] = max(0.0, min(float(exc.delay), MAX_REPLY_DELAY))
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
