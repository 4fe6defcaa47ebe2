"""``petguard-manage init``: prepare a controller, idempotently, without ever overwriting a secret.

It creates what is missing and keeps what exists, untouched:

* the configuration directory (default ``/etc/petguard``), mode 0750;
* the state directory (default ``/var/lib/petguard``, the sqlite journal and tooz's ``file://``),
  mode 0750, owned by the service user when init runs as root and that user exists;
* ``api-token`` in the configuration directory: the operators' bearer token
  (``secrets.token_urlsafe``), mode 0640; never printed (read it from the file);
* with ``--agent-keys HOST ...``: one key per compute host, appended to ``agent-keys`` (the
  controllers' ``[api] hmac_key_file``) as ``agent-HOST KEY``, and written alone to
  ``agents/HOST/agent-hmac-key``, the file to copy to that compute (its ``[agent] hmac_key_file``).

Everything created belongs to the service group (``--group``, default ``petguard``) when it exists,
else to the current user's group (said in the output). Secret files are created 0600, given their
group, then opened to 0640: they follow the one rule (``secrets.too_open``) from their first byte.
A secret file that exists and breaks the rule is refused before anything is created (exit 78, with
the rule's one sentence): init never appends a key to a file that others can read.
"""

from __future__ import annotations

import argparse
import dataclasses
import grp
import os
import pwd
import re
import secrets as random
from pathlib import Path

from petguard import secrets
from petguard.cmd.manage_base import PROG, Command, UsageError
from petguard.errors import ConfigError

DEFAULT_CONFIG_DIR = Path("/etc/petguard")
DEFAULT_STATE_DIR = Path("/var/lib/petguard")
SERVICE = "petguard"
TOKEN_FILE = "api-token"
AGENT_KEYS_FILE = "agent-keys"
AGENTS_DIR = "agents"
#: The basename of ``[agent] hmac_key_file``'s default on a compute (/etc/petguard/agent-hmac-key).
AGENT_KEY_FILE = "agent-hmac-key"
DIR_MODE = 0o750
SECRET_MODE = 0o640
#: A compute host as Nova names it: letters, digits, dots, dashes, underscores (it becomes a path).
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def host_name(text: str) -> str:
    if not _HOST.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a compute host name (letters, digits, '.', '-', '_'; as Nova names the host)"
        )
    return text


@dataclasses.dataclass(frozen=True)
class Owner:
    """Who the created files belong to: a group (and for the state directory, a user)."""

    gid: int
    group: str
    uid: int | None  # the service user, when init runs as root and it exists; None: leave the owner
    note: str | None  # why the group is not the service group


def owner(group: str, user: str) -> Owner:
    """The service group if it exists, else the current user's primary group (with a note why)."""
    uid = None
    if os.geteuid() == 0:
        try:
            uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            uid = None
    try:
        return Owner(grp.getgrnam(group).gr_gid, group, uid, None)
    except KeyError:
        gid = os.getgid()
        mine = grp.getgrgid(gid).gr_name
        note = (
            f"the group {group} does not exist: what init created belongs to the group {mine} (the current "
            f"user's). Create the service user and group first (systemd-sysusers, docs/operations.md), then "
            f"chgrp {group} what init created, or run init again with --group"
        )
        return Owner(gid, mine, uid, note)


@dataclasses.dataclass
class Report:
    """What init did, one line per path, in order."""

    lines: list[str] = dataclasses.field(default_factory=list)
    created: int = 0

    def made(self, path: Path, what: str) -> None:
        self.lines.append(f"created  {path} ({what})")
        self.created += 1

    def kept(self, path: Path, what: str) -> None:
        self.lines.append(f"kept     {path} ({what})")


def make_dir(path: Path, who: Owner, report: Report, what: str, *, give_to_user: bool = False) -> None:
    if path.is_dir():
        report.kept(path, f"{what}, exists")
        return
    try:
        path.mkdir(mode=DIR_MODE, parents=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        os.chown(path, who.uid if give_to_user and who.uid is not None else -1, who.gid)
        path.chmod(DIR_MODE)  # mkdir's mode is reduced by the umask
    except OSError as exc:
        path.rmdir()  # else the next run would keep it, in the wrong group
        raise ConfigError(
            f"cannot give {path} to the group {who.group}: {exc.strerror}; run init as root, or with --group "
            "naming a group of yours"
        ) from exc
    report.made(path, f"{what}, mode {DIR_MODE:04o}, group {who.group}")


def write_secret(path: Path, text: str, who: Owner) -> None:
    """Create ``path`` holding ``text``, 0640 and in the service group; never replaces a file.

    Created 0600, then given its group, then opened to 0640: nobody but the owner can read it before
    its group is right. A failed write leaves no file behind (a later run would keep an empty secret).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        os.fchown(fd, -1, who.gid)
        os.fchmod(fd, SECRET_MODE)
        os.write(fd, text.encode())
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path} (group {who.group}): {exc.strerror}") from exc
    os.close(fd)


def append_secret_lines(path: Path, lines: list[str]) -> None:
    """Append ``NAME KEY`` lines to an existing secret file (its mode and owner stay as they are)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW)
    except OSError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror}") from exc
    try:
        problem = secrets.too_open(path, os.fstat(fd).st_mode)
        if problem:
            raise ConfigError(problem)
        size = os.fstat(fd).st_size
        ends_with_newline = size == 0 or os.pread(fd, 1, size - 1) == b"\n"
        os.write(fd, (("" if ends_with_newline else "\n") + "".join(f"{line}\n" for line in lines)).encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def existing_secret(path: Path, what: str) -> str | None:
    """The text of a secret file init would keep, checked against the one rule; None when absent."""
    if not path.exists() and not path.is_symlink():
        return None
    return secrets.read_private(path, what)


def agent_key_names(text: str | None, path: Path) -> set[str]:
    """The names in the controllers' agent key file (``NAME KEY`` lines); none in an empty file."""
    if text is None or not any(line.split("#", 1)[0].strip() for line in text.splitlines()):
        return set()
    return set(secrets.parse_secrets(text, secrets.DEFAULT_NAMES["hmac"], str(path)))


def init(config_dir: Path, state_dir: Path, hosts: list[str], who: Owner) -> Report:
    """Create what is missing (see the module's docstring); every check comes before any change.

    :raises ConfigError: a secret file that exists and breaks the one rule or cannot be parsed, a
        per-host key file whose key the controllers' file does not hold, or a path that cannot be created.
    """
    token = config_dir / TOKEN_FILE
    keys = config_dir / AGENT_KEYS_FILE
    existing_secret(token, "the API token file")
    known = agent_key_names(existing_secret(keys, "the agents' key file"), keys)
    new_hosts = [h for h in dict.fromkeys(hosts) if f"{secrets.AGENT_KEY_PREFIX}{h}" not in known]
    for host in new_hosts:
        stray = config_dir / AGENTS_DIR / host / AGENT_KEY_FILE
        if stray.exists() or stray.is_symlink():
            raise ConfigError(
                f"{stray} exists but {keys} has no {secrets.AGENT_KEY_PREFIX}{host} line: its key is unknown to "
                f"the controllers; remove it (or add its line to {keys}) and run init again"
            )

    report = Report()
    make_dir(config_dir, who, report, "configuration directory")
    make_dir(state_dir, who, report, "state directory", give_to_user=True)
    if token.exists():
        report.kept(token, "API token, exists: never overwritten")
    else:
        write_secret(token, random.token_urlsafe(32) + "\n", who)
        report.made(token, f"API token, mode {SECRET_MODE:04o}, group {who.group}; not shown: read the file")
    if hosts:
        _agent_keys(config_dir, keys, hosts, new_hosts, who, report)
    return report


def _agent_keys(
    config_dir: Path, keys: Path, hosts: list[str], new_hosts: list[str], who: Owner, report: Report
) -> None:
    lines = []
    if new_hosts:
        make_dir(config_dir / AGENTS_DIR, who, report, "one directory per compute host")
    for host in new_hosts:
        key = random.token_urlsafe(32)
        make_dir(config_dir / AGENTS_DIR / host, who, report, f"{host}'s files")
        path = config_dir / AGENTS_DIR / host / AGENT_KEY_FILE
        write_secret(path, key + "\n", who)
        report.made(path, f"{host}'s agent key, mode {SECRET_MODE:04o}: copy it to {host}")
        lines.append(f"{secrets.AGENT_KEY_PREFIX}{host} {key}")
    for host in hosts:
        if host not in new_hosts:
            report.kept(keys, f"{secrets.AGENT_KEY_PREFIX}{host} is there already: its key is kept")
    if not lines:
        return
    if keys.exists():
        append_secret_lines(keys, lines)
        report.made(keys, f"added {', '.join(line.split()[0] for line in lines)}")
    else:
        write_secret(keys, "".join(f"{line}\n" for line in lines), who)
        report.made(keys, f"agents' keys ({', '.join(line.split()[0] for line in lines)}), mode {SECRET_MODE:04o}")


def next_steps(config_dir: Path, hosts: list[str], who: Owner) -> list[str]:
    conf = config_dir / "petguard.conf"
    if conf.exists():
        where = f"check that {conf} (group {who.group}, mode 0640) says"
    else:
        where = f"write {conf} from etc/petguard/petguard.conf.sample (chgrp {who.group}, chmod 640) with"
    steps = [
        f"{where} [api] token_file = {config_dir / TOKEN_FILE}"
        + (f" and [api] hmac_key_file = {config_dir / AGENT_KEYS_FILE}" if hosts else ""),
    ]
    for host in hosts:
        steps.append(
            f"copy {config_dir / AGENTS_DIR / host / AGENT_KEY_FILE} to {host}:/etc/petguard/{AGENT_KEY_FILE} "
            f"(mode 0640, group {SERVICE}) and set [agent] sender = {secrets.AGENT_KEY_PREFIX}{host} there"
        )
    steps += [
        f"{PROG} --config-file {conf} db upgrade",
        f"{PROG} --config-file {conf} config check",
    ]
    return steps


class Init(Command):
    """Prepare this controller: directories, the API token and agent keys (idempotent; never overwrites)."""

    needs_config = False  # it comes before the configuration

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "directory", metavar="CONFIG_DIR", nargs="?", type=Path, help=f"the configuration directory to create "
            f"(default {DEFAULT_CONFIG_DIR}); the same as --config-dir-to-create",
        )
        parser.add_argument("--config-dir-to-create", type=Path, metavar="CONFIG_DIR", help="see CONFIG_DIR")
        parser.add_argument(
            "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help=f"the daemon's state ({DEFAULT_STATE_DIR})"
        )
        parser.add_argument(
            "--group", default=SERVICE, help=f"the service group files belong to (default {SERVICE}; if it does "
            "not exist: the current user's)",
        )
        parser.add_argument(
            "--user", default=SERVICE, help=f"the service user the state directory belongs to (default {SERVICE}; "
            "only when run as root and it exists)",
        )
        parser.add_argument(
            "--agent-keys", nargs="+", type=host_name, default=[], metavar="HOST",
            help="create one agent key per compute host (kept if it exists)",
        )
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        given = [d for d in (parsed_args.directory, parsed_args.config_dir_to_create) if d is not None]
        if len(given) == 2 and given[0] != given[1]:
            raise UsageError(f"two configuration directories given ({given[0]}, {given[1]}): give one")
        config_dir = (given[0] if given else DEFAULT_CONFIG_DIR).absolute()
        who = owner(parsed_args.group, parsed_args.user)
        hosts = list(dict.fromkeys(parsed_args.agent_keys))
        report = init(config_dir, parsed_args.state_dir.absolute(), hosts, who)
        out = self.app.stdout
        for line in report.lines:
            out.write(line + "\n")
        if not report.created:
            out.write("nothing changed: everything was there already\n")
        if who.note and report.created:
            out.write(f"note: {who.note}\n")
        out.write("next steps:\n")
        for number, step in enumerate(next_steps(config_dir, hosts, who), start=1):
            out.write(f"  {number}. {step}\n")
        return 0
