"""`petguard-lab` command line: a thin argparse layer over `petguard_lab.Lab`."""

from __future__ import annotations

import argparse
import json
import sys
import time

from petguard_lab.bmcs import BMC_MODES
from petguard_lab.components import COMPONENTS
from petguard_lab.faults import FAIL_MODES
from petguard_lab.lab import Lab
from petguard_lab.settings import DEFAULT_PORTS, MAX_COMPUTES, LabError, default_lab_dir


def _port(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or name not in DEFAULT_PORTS or not value.isdigit():
        raise argparse.ArgumentTypeError(
            f"expected NAME=PORT with NAME one of {', '.join(DEFAULT_PORTS)}, got {text!r}")
    return name, int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="petguard-lab",
        description="A real OpenStack (Nova 34) control plane on 127.0.0.1 for testing petguard.")
    parser.add_argument("--lab-dir", default=str(default_lab_dir()),
                        help="lab directory (default: $PETGUARD_LAB_DIR or /var/tmp/petguard-lab)")
    parser.add_argument("-q", "--quiet", action="store_true", help="less progress output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("install", help="install Debian packages and $LAB/venv (idempotent)")
    p.add_argument("--force", action="store_true", help="reinstall the venv packages")

    p = sub.add_parser("up", help="start what is not running; wait for the computes")
    p.add_argument("--computes", type=int, help=f"number of computes, 1-{MAX_COMPUTES} "
                   "(default: as before, else 3)")
    p.add_argument("--report-interval", type=int, help="nova heartbeat interval, s (default 2)")
    p.add_argument("--service-down-time", type=int, help="nova service_down_time, s (default 10)")
    p.add_argument("--port", action="append", type=_port, default=[], metavar="NAME=PORT",
                   help=f"override a port; NAME in {', '.join(DEFAULT_PORTS)}")
    p.add_argument("--bmc-base-port", type=int, help="BMC of cmpN listens on UDP base+N "
                   "(default 16230)")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for the computes")

    sub.add_parser("down", help="stop every process the lab started")
    p = sub.add_parser("status", help="processes, compute services, BMC power")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("clean", help="down, then remove data/logs/configs (keeps the venv)")
    p.add_argument("--all", action="store_true", help="also remove $LAB/venv")

    p = sub.add_parser("fail", help="make a compute host fail")
    p.add_argument("host")
    p.add_argument("--mode", choices=FAIL_MODES, default="power",
                   help="power: killed + BMC off; process: nova-compute killed, BMC on; "
                        "hang: nova-compute SIGSTOPped")
    p = sub.add_parser("heal", help="resume/restart a compute and set its power on")
    p.add_argument("host")
    p.add_argument("--wait", action="store_true", help="wait until Nova sees it up")

    p = sub.add_parser("bmc", help="show or set a BMC's fault mode")
    p.add_argument("host")
    p.add_argument("--mode", choices=BMC_MODES, help="set the fault mode")

    p = sub.add_parser("demo", help="a host loses power; petguard recovers its pets (live)")
    p.add_argument("--computes", type=int, help="number of computes, at least 3 (default: as "
                   "before, else 3)")
    p.add_argument("--victim", help="the host whose power is cut (default: the first compute)")
    p.add_argument("--keep", action="store_true", help="leave the lab, the servers and the "
                   "fenced host as they are at the end")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout "
                   "(the narrative goes to stderr)")
    p.add_argument("--timeout", type=float, default=240, help="seconds to wait for the "
                   "recovery after the power cut (default 240)")

    p = sub.add_parser("bench", help="recovery time from power loss to the last pet ACTIVE "
                       "elsewhere, by phase, against a bare openstacksdk script")
    p.add_argument("--report-interval", type=int, default=10,
                   help="Nova heartbeat interval, s (default 10, Nova's default)")
    p.add_argument("--service-down-time", type=int, default=60,
                   help="Nova service_down_time, s (default 60, Nova's default)")
    p.add_argument("--pets", type=int, default=20, help="pets on the failed host (default 20)")
    p.add_argument("--runs", type=int, default=5, help="runs of each arm (default 5)")
    p.add_argument("--bare-runs", type=int, help="runs of the bare SDK arm (default: --runs)")
    p.add_argument("--grace-period", type=int, help="petguard's [detection] grace_period, s "
                   "(default: 2 x report interval, at least 6)")
    p.add_argument("--petguard-option", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="another option of petguard's bench.conf (repeatable)")
    p.add_argument("--victim", help="the host whose power is cut (default: the first compute)")
    p.add_argument("--computes", type=int, help="number of computes (default: as before)")
    p.add_argument("--poll", type=float, default=0.25, help="seconds between two looks at Nova")
    p.add_argument("--leave-up", action="store_true", help="leave a lab the bench started up")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout and "
                   "nothing else (progress, install and lab messages go to stderr)")

    p = sub.add_parser("control-plane", help="stop/start a control-plane component")
    p.add_argument("action", choices=("stop", "start"),
                   help="stop: by the recorded PID; start: and wait until it answers")
    p.add_argument("component", choices=tuple(COMPONENTS), metavar="COMPONENT",
                   help=f"one of {', '.join(COMPONENTS)}")
    p.add_argument("--kill", action="store_true", help="stop with SIGKILL (a crash) instead of "
                   "SIGTERM")
    p.add_argument("--timeout", type=float, default=120, help="start: seconds to wait until it "
                   "answers (default 120)")
    return parser


def _print_status(status: dict[str, object]) -> None:
    print(f"{'PROCESS':<22} {'PID':>8} {'ALIVE':<8} PORT")
    for proc in status["processes"]:  # type: ignore[attr-defined]
        alive = ("stopped" if proc["stopped"] else "yes") if proc["alive"] else "no"
        note = ""
        if proc.get("control_plane_stop"):
            how = proc["control_plane_stop"]
            note = (f"  (control-plane stop, {how.get('signal')} at "
                    f"{time.strftime('%H:%M:%S', time.localtime(how.get('at', 0)))})")
        line = f"{proc['name']:<22} {proc['pid'] or '-':>8} {alive:<8} {proc['port']:<10}{note}"
        print(line.rstrip())
    print()
    print(f"{'COMPUTE':<8} {'SERVICE':<8} {'STATUS':<9} {'FORCED_DOWN':<12} "
          f"{'BMC PORT':<9} {'POWER':<6} BMC MODE")
    for c in status["computes"]:  # type: ignore[attr-defined]
        print(f"{c['host']:<8} {c['service_state']:<8} {c['service_status']:<9} "
              f"{c['forced_down']!s:<12} {c['bmc_port']:<9} {c['bmc_power']:<6} {c['bmc_mode']}")
    if status.get("nova_error"):
        print(f"\n(nova API: {status['nova_error']})")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    lab = Lab(args.lab_dir, verbose=not args.quiet)
    try:
        if args.command == "install":
            changed = lab.install(force=args.force)
            print("installed" if changed else f"already installed ({lab.cfg.venv})")
        elif args.command == "up":
            lab.up(computes=args.computes, report_interval=args.report_interval,
                   service_down_time=args.service_down_time, ports=dict(args.port),
                   bmc_base_port=args.bmc_base_port, timeout=args.timeout)
        elif args.command == "down":
            lab.down()
        elif args.command == "status":
            status = lab.status()
            if args.json:
                print(json.dumps(status, indent=2))
            else:
                _print_status(status)
        elif args.command == "clean":
            lab.clean(everything=args.all)
        elif args.command == "fail":
            lab.fail(args.host, args.mode)
        elif args.command == "heal":
            lab.heal(args.host, wait=args.wait)
        elif args.command == "bmc":
            if args.mode:
                lab.bmc_mode(args.host, args.mode)
            print(f"{args.host}: power {'on' if lab.bmc_power(args.host) else 'off'}, "
                  f"mode {lab.bmc_get_mode(args.host)}, "
                  f"udp 127.0.0.1:{lab.cfg.bmc_port(args.host)}")
        elif args.command == "demo":
            from petguard_lab import demo

            return demo.run(lab, demo.DemoOptions(
                computes=args.computes, victim=args.victim, keep=args.keep, json=args.json,
                timeout=args.timeout))
        elif args.command == "bench":
            from petguard_lab import bench

            return bench.run(lab, bench.BenchOptions(
                report_interval=args.report_interval, service_down_time=args.service_down_time,
                pets=args.pets, runs=args.runs, bare_runs=args.bare_runs,
                grace_period=args.grace_period, petguard_options=tuple(args.petguard_option),
                victim=args.victim, computes=args.computes, poll=args.poll,
                leave_up=args.leave_up, json=args.json))
        elif args.command == "control-plane":
            if args.action == "stop":
                lab.stop_component(args.component, kill=args.kill)
            elif args.kill:
                raise LabError("--kill goes with `control-plane stop`; `start` has no signal")
            else:
                lab.start_component(args.component, timeout=args.timeout)
    except LabError as exc:
        print(f"petguard-lab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("petguard-lab: interrupted; `petguard-lab down` stops what was started",
              file=sys.stderr)
        return 130
    return 0
