"""Power actions of a lab host, and the ipmi_sim ``chassis_control`` program.

One directory per BMC (``$LAB/bmc/<host>``) holds:

* ``power``     -- recorded chassis power state, ``1`` or ``0``;
* ``mode``      -- fault knob: normal | stuck_on | fail_set | fail_get;
* ``host.json`` -- how to start the host's nova-compute and which PID files
  stand for the host (written by the lab on ``up``);
* ``calls.log`` -- one line per chassis_control call.

ipmi_sim runs this file synchronously for every chassis request as
``python -I -S chassis.py <bmc-dir> get power`` / ``set power 0|1`` /
``set reset 1`` / ``set shutdown 1`` / ``set boot <dev>`` / ``identify ...``
and expects ``power:0|1`` on stdout for ``get power``; a non-zero exit
becomes IPMI completion code 0xff.  So power-on starts nova-compute detached
(double fork, stdio to its log) and returns at once.

This module imports only the stdlib and ``procs`` (also stdlib only), so it
can run outside any venv.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

try:
    from petguard_lab import procs
except ImportError:  # executed as a plain script by ipmi_sim
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import procs  # type: ignore[no-redef]

MODES = ("normal", "stuck_on", "fail_set", "fail_get")


def _read(path: Path, default: str) -> str:
    try:
        return path.read_text().strip() or default
    except OSError:
        return default


def _write(path: Path, value: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(value + "\n")
    tmp.replace(path)


def get_mode(bmc_dir: Path) -> str:
    return _read(bmc_dir / "mode", "normal")


def set_mode(bmc_dir: Path, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown BMC mode {mode!r}; use one of {', '.join(MODES)}")
    _write(bmc_dir / "mode", mode)


def recorded_power(bmc_dir: Path) -> bool:
    """The power state the BMC recorded (not what it reports in stuck_on mode)."""
    return _read(bmc_dir / "power", "1") == "1"


def set_recorded_power(bmc_dir: Path, on: bool) -> None:
    _write(bmc_dir / "power", "1" if on else "0")


def _host(bmc_dir: Path) -> dict[str, object]:
    return json.loads((bmc_dir / "host.json").read_text())


def host_pidfiles(bmc_dir: Path) -> list[Path]:
    return [Path(str(p)) for p in _host(bmc_dir)["pidfiles"]]  # type: ignore[union-attr]


def kill_host(bmc_dir: Path) -> list[int]:
    """SIGKILL every process group that stands for the host; return the PIDs hit."""
    killed = []
    for pidfile in host_pidfiles(bmc_dir):
        pid = procs.kill_now(pidfile, signal.SIGKILL)
        if pid is not None:
            killed.append(pid)
    deadline = time.monotonic() + 5
    while any(procs.group_members(p) for p in killed) and time.monotonic() < deadline:
        time.sleep(0.02)
    return killed


def start_host(bmc_dir: Path) -> int:
    """Start the host's nova-compute (detached) unless it runs; return its PID."""
    host = _host(bmc_dir)
    pidfile = Path(str(host["compute_pidfile"]))
    pid = procs.read_pidfile(pidfile)
    if pid is not None:
        if procs.proc_state(pid) == "T":  # stopped ("hang"): let it run again
            procs.signal_group(pid, signal.SIGCONT)
        return pid
    return procs.spawn(
        [str(a) for a in host["argv"]],  # type: ignore[union-attr]
        pidfile,
        Path(str(host["logfile"])),
        env={str(k): str(v) for k, v in host["env"].items()},  # type: ignore[union-attr]
    )


def power_off(bmc_dir: Path) -> None:
    """Cut the host's power: kill it, record off."""
    kill_host(bmc_dir)
    set_recorded_power(bmc_dir, False)


def power_on(bmc_dir: Path) -> None:
    """Power the host on: record on, start nova-compute."""
    set_recorded_power(bmc_dir, True)
    start_host(bmc_dir)


def chassis_control(bmc_dir: Path, args: list[str]) -> int:
    """One ipmi_sim chassis_control call; returns the exit status."""
    mode = get_mode(bmc_dir)
    with (bmc_dir / "calls.log").open("a") as log:
        log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} mode={mode} {' '.join(args)}\n")
    if args[:2] == ["get", "power"]:
        if mode == "fail_get":
            print("lab BMC: get power fails (mode fail_get)", file=sys.stderr)
            return 1
        on = True if mode == "stuck_on" else recorded_power(bmc_dir)
        print(f"power:{1 if on else 0}")
        return 0
    if args[:1] == ["get"]:
        return 0  # nothing else to report (e.g. boot device)
    if args[:1] == ["set"] and len(args) >= 3:
        what, value = args[1], args[2].strip('"')
        if mode == "fail_set":
            print(f"lab BMC: set {what} fails (mode fail_set)", file=sys.stderr)
            return 1
        if what == "boot":
            return 0
        if mode == "stuck_on":
            return 0  # ACK, do nothing
        if (what == "power" and value == "0") or (what == "shutdown" and value == "1"):
            power_off(bmc_dir)
        elif what == "power" and value == "1":
            power_on(bmc_dir)
        elif what == "reset" and value == "1":
            power_off(bmc_dir)
            power_on(bmc_dir)
        return 0
    return 0  # identify and anything unknown: accept


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print("usage: chassis.py BMC_DIR get power | set power 0|1 | ...", file=sys.stderr)
        return 2
    try:
        return chassis_control(Path(argv[0]), argv[1:])
    except Exception as exc:  # report to ipmi_sim as a failed command
        print(f"lab BMC error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
