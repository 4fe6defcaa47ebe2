"""Entry point of petguard-manage: administration on the controller itself.

* ``db upgrade`` — create or migrate the journal's schema.
* ``config check`` — every mistake the daemon would hit at start or in its first incident
  (``petguard.daemon.check``): unknown options, every policy, the journal, the coordination backend,
  the API's files and address, webhook receivers, Keystone and Nova, the inventory and the power
  state of every BMC (read-only); one line each, OK/WARNING/ERROR; non-zero on any ERROR.
* ``host list``, ``incident list|show``, and operator requests written straight into the journal
  (``request HOST maintenance-on|maintenance-off|confirm-fenced|restore``, ``brake-override``)
  for the loop to act on. The HTTP API and the ``petguard`` CLI offer the same with authentication
  and audit; these work even when the daemon is down.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Callable

from oslo_config import cfg

from petguard import secrets, startup
from petguard.conf import CONF, validate
from petguard.daemon import check
from petguard.errors import PetguardError
from petguard.journal import RequestKind
from petguard.store import migrate
from petguard.store.sql import SqlStore

Command = Callable[[argparse.Namespace], int]


def _db_upgrade(args: argparse.Namespace) -> int:
    migrate.upgrade(CONF.database.connection)
    print(f"journal schema at head ({migrate.head()})")
    return 0


def _config_check(args: argparse.Namespace) -> int:
    return check.report(check.run(CONF), sys.stdout)


def _store() -> SqlStore:
    return SqlStore(CONF.database.connection)


def _host_list(args: argparse.Namespace) -> int:
    for name, record in sorted(_store().load_hosts().items()):
        host = record.host
        print(f"{name:20} {host.state.value:17} incident={host.incident_id or '-':<5} {host.reason}")
    return 0


def _incident_list(args: argparse.Namespace) -> int:
    for incident in _store().incidents(host=args.host):
        closed = time.strftime("%F %T", time.gmtime(incident.closed_at)) if incident.closed_at else "open"
        print(
            f"{incident.id:5} {incident.host:20} {time.strftime('%F %T', time.gmtime(incident.opened_at))}  "
            f"{closed:19} {incident.outcome:12} {incident.reason}"
        )
    return 0


def _incident_show(args: argparse.Namespace) -> int:
    store = _store()
    incident = store.incident(args.id)
    print(f"incident {incident.id} on {incident.host}: {incident.reason} ({incident.outcome or 'open'})")
    for event in store.events(incident_id=incident.id):
        print(f"  {time.strftime('%T', time.gmtime(event.at))} {event.kind:22} {event.message}")
    for move in store.moves(incident.id):
        print(f"  move {move.server_name:20} {move.status.value:10} -> {move.dest_host or '-':10} {move.reason}")
    for skip in store.skips(incident.id):
        print(f"  left {skip.server_name:20} {skip.reason}")
    return 0


def _request(args: argparse.Namespace) -> int:
    kind = RequestKind(args.kind.replace("-", "_"))
    who = f"{getpass.getuser()} (petguard-manage)"
    request_id = _store().submit_request(args.host, kind, args.reason, who, time.time())
    print(f"request {request_id} queued: {kind.value} for {args.host}; the daemon acts on it at its next tick")
    return 0


def _brake_override(args: argparse.Namespace) -> int:
    who = f"{getpass.getuser()} (petguard-manage)"
    request_id = _store().submit_request("*", RequestKind.BRAKE_OVERRIDE, args.reason, who, time.time())
    print(f"request {request_id} queued: override the mass-failure brake")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="petguard-manage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", action="append", default=[], help="petguard.conf (repeatable)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {startup.version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        return p

    add("db-upgrade", _db_upgrade, "create or migrate the journal's schema")
    add("config-check", _config_check, "check config, database, Keystone, Nova and every BMC (read-only)")
    add("host-list", _host_list, "hosts and their lifecycle state")
    p = add("incident-list", _incident_list, "incidents, newest first")
    p.add_argument("--host")
    p = add("incident-show", _incident_show, "one incident: events, moves, servers left")
    p.add_argument("id", type=int)
    p = add("request", _request, "queue an operator request for the daemon")
    p.add_argument("host")
    p.add_argument("kind", choices=["maintenance-on", "maintenance-off", "confirm-fenced", "restore"])
    p.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
    p = add("brake-override", _brake_override, "allow fencing despite the mass-failure brake for a while")
    p.add_argument("--reason", required=True)
    return parser


#: "db upgrade" and "config check" are also accepted with a space, as in the docs.
_TWO_WORD = {
    ("db", "upgrade"): "db-upgrade",
    ("config", "check"): "config-check",
    ("host", "list"): "host-list",
    ("incident", "list"): "incident-list",
    ("incident", "show"): "incident-show",
}


def _normalise(argv: list[str]) -> list[str]:
    for i in range(len(argv) - 1):
        joined = _TWO_WORD.get((argv[i], argv[i + 1]))
        if joined:
            return argv[:i] + [joined] + argv[i + 2 :]
    return argv


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(_normalise(sys.argv[1:] if argv is None else argv))
    try:
        CONF([f"--config-file={f}" for f in args.config_file], project="petguard", default_config_files=None)
        validate(CONF)
    except cfg.Error as exc:
        print(f"petguard-manage: configuration error: {secrets.config_error(exc)}", file=sys.stderr)
        return 2
    try:
        result: int = args.func(args)
        return result
    except PetguardError as exc:
        print(f"petguard-manage: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
