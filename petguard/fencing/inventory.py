"""The per-host fence inventory: a YAML file → ``dict[str, FenceTopology]``.

::

    hosts:
      cmp1:                                   # shorthand: one level of one device
        bmc: {driver: ipmi, address: 127.0.0.1, port: 16231, username: admin,
              password_file: /etc/petguard/bmc/cmp1}          # or password: ...
      cmp2:
        delay: 5                              # seconds to wait before level 1 (fence races)
        levels:                               # tried in order; the first confirmed level ends fencing
          - [{driver: ipmi, address: 10.0.0.12, username: admin, password_file: bmc/cmp2}]
          - - {driver: fenceagent, agent: fence_apc_snmp, address: pdu-a, username: apc,
               password_file: pdu, options: {plug: 3}}
            - {driver: fenceagent, agent: fence_apc_snmp, address: pdu-b, username: apc,
               password_file: pdu, options: {plug: 3}}      # both outlets must read OFF

A level is a list of device records (all must confirm OFF: dual power supplies); a single mapping
is accepted as a level of one device. Every problem names the file, the host, the key, what is
wrong and how to fix it, and all problems are collected before anything is raised, so an operator
fixes the file in one pass. Errors end in one ``ConfigError`` (its ``problems`` context holds each
``Problem``); warnings (a password file that other users can read) are logged and returned by
``check_inventory`` for ``petguard-manage config check``.

Parsing (``parse_inventory``) does no I/O of its own: the caller hands in the YAML text and a
function that reads password files, so unit tests need no files. Each device record is parsed by
``_parse_device``, for ``bmc:`` and for every entry of every level alike.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from petguard import errors
from petguard.fencing import base

LOG = logging.getLogger(__name__)

TOP_KEYS = frozenset({"hosts"})
HOST_KEYS = frozenset({"bmc", "levels", "delay"})
DEVICE_KEYS = frozenset(
    {"driver", "address", "port", "username", "password", "password_file", "options", "agent"}
)
#: Ports a driver implies when ``port`` is left out (0: the fence agent's own default).
DEFAULT_PORTS: Mapping[str, int] = {"ipmi": 623, "redfish": 443, "fenceagent": 0}
#: The longest per-host ``delay`` accepted (seconds): a longer one would eat the fence deadline's
#: purpose of recovering pets quickly.
MAX_DELAY = 300.0


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with the inventory, already phrased for the operator."""

    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}"


@dataclasses.dataclass(frozen=True)
class SecretFile:
    """What the inventory needs to know about a password file."""

    text: str
    mode: int


#: Reads one password file; raises OSError when it cannot.
ReadSecret = Callable[[Path], SecretFile]


def load_inventory(path: str | os.PathLike[str]) -> dict[str, base.FenceTopology]:
    """Load the inventory file at ``path``; log warnings, raise on errors.

    :raises petguard.errors.ConfigError: every error found, one per line, in ``problems``.
    """
    topologies, problems = check_inventory(path)
    for problem in problems:
        if problem.severity is Severity.WARNING:
            LOG.warning("%s", problem.message)
    _raise_errors(Path(path), problems)
    return topologies


def check_inventory(
    path: str | os.PathLike[str],
) -> tuple[dict[str, base.FenceTopology], list[Problem]]:
    """Load and report: never raises for problems in the file (for ``config check``)."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        return {}, [
            _error(
                source,
                None,
                None,
                f"cannot be read ({exc.strerror or exc})",
                "create it or point [fencing] inventory at the right file",
            )
        ]
    return parse_inventory(text, source, read_secret_file)


def read_secret_file(path: Path) -> SecretFile:
    """The real password-file reader: content and permission bits."""
    with path.open(encoding="utf-8") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        return SecretFile(text=handle.read(), mode=stat.S_IMODE(mode))


def parse_inventory(
    text: str, source: Path, read_secret: ReadSecret
) -> tuple[dict[str, base.FenceTopology], list[Problem]]:
    """Parse inventory YAML ``text`` (from file ``source``). Relative password files are resolved
    against ``source``'s directory."""
    problems: list[Problem] = []
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        return {}, [
            _error(source, None, None, f"is not valid YAML{line}: {exc}", "fix the YAML syntax")
        ]
    hosts = _hosts_section(source, document, problems)
    topologies: dict[str, base.FenceTopology] = {}
    for host, entry in hosts.items():
        topology = _parse_host(source, host, entry, read_secret, problems)
        if topology is not None:
            topologies[host] = topology
    return topologies, problems


def _hosts_section(source: Path, document: Any, problems: list[Problem]) -> dict[str, Any]:
    if not isinstance(document, dict):
        problems.append(
            _error(
                source,
                None,
                None,
                "has no top-level mapping",
                "start the file with 'hosts:' and one entry per host",
            )
        )
        return {}
    for key in sorted(set(map(str, document)) - TOP_KEYS):
        problems.append(
            _error(
                source,
                None,
                key,
                "is not a known top-level key",
                f"remove it; known keys: {', '.join(sorted(TOP_KEYS))}",
            )
        )
    hosts = document.get("hosts")
    if not isinstance(hosts, dict) or not hosts:
        problems.append(
            _error(
                source,
                None,
                "hosts",
                "is missing, empty or not a mapping",
                "list each compute host under 'hosts:' by its Nova host name",
            )
        )
        return {}
    return {str(name): entry for name, entry in hosts.items()}


def _parse_host(
    source: Path, host: str, entry: Any, read_secret: ReadSecret, problems: list[Problem]
) -> base.FenceTopology | None:
    if not isinstance(entry, dict):
        problems.append(
            _error(source, host, None, "is not a mapping", "give the host a 'bmc:' or 'levels:' entry")
        )
        return None
    for key in sorted(set(map(str, entry)) - HOST_KEYS):
        problems.append(
            _error(
                source,
                host,
                key,
                "is not a known host key",
                f"remove it; known keys: {', '.join(sorted(HOST_KEYS))}",
            )
        )
    before = _error_count(problems)
    delay = _delay(source, host, entry, problems)
    levels = _host_levels(source, host, entry, read_secret, problems)
    if levels is None or _error_count(problems) > before:
        return None
    return base.FenceTopology(host=host, levels=levels, delay=delay)


def _host_levels(
    source: Path, host: str, entry: Mapping[str, Any], read_secret: ReadSecret, problems: list[Problem]
) -> tuple[tuple[base.FenceDevice, ...], ...] | None:
    """The host's levels, from ``levels:`` or the ``bmc:`` shorthand (exactly one of them)."""
    if "bmc" in entry and "levels" in entry:
        problems.append(
            _error(
                source,
                host,
                "bmc",
                "and levels are both set",
                "keep only levels: and make the BMC its first level",
            )
        )
        return None
    if "bmc" in entry:
        device = _parse_device(source, host, "bmc", entry["bmc"], read_secret, problems)
        return None if device is None else ((device,),)
    if "levels" not in entry:
        problems.append(
            _error(
                source,
                host,
                "bmc",
                "is missing",
                "add bmc: {driver, address, port, username, password_file}, or levels: [...]",
            )
        )
        return None
    return _parse_levels(source, host, entry["levels"], read_secret, problems)


def _parse_levels(
    source: Path, host: str, value: Any, read_secret: ReadSecret, problems: list[Problem]
) -> tuple[tuple[base.FenceDevice, ...], ...] | None:
    if not isinstance(value, list) or not value:
        problems.append(
            _error(
                source,
                host,
                "levels",
                "must be a non-empty list of levels",
                "write levels: [[device, ...], [device, ...]] in the order to try them",
            )
        )
        return None
    levels: list[tuple[base.FenceDevice, ...]] = []
    for index, level in enumerate(value, start=1):
        parsed = _parse_level(source, host, f"levels[{index}]", level, read_secret, problems)
        if parsed is not None:
            levels.append(parsed)
    return tuple(levels) if len(levels) == len(value) else None


def _parse_level(
    source: Path, host: str, where: str, level: Any, read_secret: ReadSecret, problems: list[Problem]
) -> tuple[base.FenceDevice, ...] | None:
    """One level: a list of device records (all must confirm OFF), or one record alone."""
    records = [level] if isinstance(level, dict) else level
    if not isinstance(records, list) or not records:
        problems.append(
            _error(
                source,
                host,
                where,
                "must be a device mapping or a non-empty list of devices",
                "write the level as [{driver: ..., address: ...}, ...]",
            )
        )
        return None
    devices = [
        _parse_device(source, host, f"{where}[{n}]", record, read_secret, problems)
        for n, record in enumerate(records, start=1)
    ]
    found = [d for d in devices if d is not None]
    return tuple(found) if len(found) == len(devices) else None


def _delay(source: Path, host: str, entry: Mapping[str, Any], problems: list[Problem]) -> float:
    value = entry.get("delay", 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_DELAY:
        problems.append(
            _error(
                source,
                host,
                "delay",
                f"must be a number of seconds from 0 to {MAX_DELAY:g}, not {value!r}",
                "set delay: 5 (seconds waited before this host's first fence level)",
            )
        )
        return 0.0
    return float(value)


def _parse_device(
    source: Path,
    host: str,
    where: str,
    record: Any,
    read_secret: ReadSecret,
    problems: list[Problem],
) -> base.FenceDevice | None:
    """One device record (``where`` is its key path, e.g. ``bmc`` or ``levels[2][1]``); None if it
    has errors."""
    if not isinstance(record, dict):
        problems.append(
            _error(
                source,
                host,
                where,
                "is not a mapping",
                "write it as {driver: ..., address: ..., ...}",
            )
        )
        return None
    before = _error_count(problems)
    for key in sorted(set(map(str, record)) - DEVICE_KEYS):
        problems.append(
            _error(
                source,
                host,
                f"{where}.{key}",
                "is not a known key",
                f"remove it; known keys: {', '.join(sorted(DEVICE_KEYS))}",
            )
        )
    say = _Reporter(source, host, where, problems)
    driver = _required_text(record, "driver", say, "name the fence driver, e.g. ipmi")
    address = _required_text(record, "address", say, "set the BMC's IP address or host name")
    username = _required_text(record, "username", say, "set the BMC user name")
    port = _port(record, driver, say)
    password = _password(record, source.parent, read_secret, say)
    options = _options(record, say)
    agent = record.get("agent")
    if agent is not None:
        if not isinstance(agent, str) or not agent.strip():
            say.error("agent", "must be a fence agent's name or path", "write e.g. agent: fence_ipmilan")
        else:
            options["agent"] = agent.strip()
    if _error_count(problems) > before:
        return None
    return base.FenceDevice(
        host=host,
        driver=driver,
        address=address,
        port=port,
        username=username,
        password=password,
        options=options,
    )


@dataclasses.dataclass(frozen=True)
class _Reporter:
    """Phrases problems for one device record."""

    source: Path
    host: str
    where: str
    problems: list[Problem]

    def error(self, key: str, what: str, fix: str) -> None:
        self.problems.append(_error(self.source, self.host, f"{self.where}.{key}", what, fix))

    def warning(self, key: str, what: str, fix: str) -> None:
        message = _phrase(self.source, self.host, f"{self.where}.{key}", what, fix)
        self.problems.append(Problem(Severity.WARNING, message))


def _required_text(record: Mapping[str, Any], key: str, say: _Reporter, fix: str) -> str:
    value = record.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        say.error(key, "is missing or empty", fix)
        return ""
    if not isinstance(value, str):
        say.error(key, f"must be a string, not {type(value).__name__}", f"quote it: {key}: '...'")
        return ""
    return value.strip()


def _port(record: Mapping[str, Any], driver: str, say: _Reporter) -> int:
    if "port" not in record and driver in DEFAULT_PORTS:
        return DEFAULT_PORTS[driver]
    value = record.get("port")
    if isinstance(value, bool) or not isinstance(value, int):
        say.error(
            "port",
            f"must be a whole number, not {value!r}",
            "set the BMC's UDP/TCP port, e.g. 623 for IPMI, 443 for Redfish",
        )
        return 0
    if not 1 <= value <= 65535:
        say.error("port", f"is {value}, outside 1-65535", "set the BMC's port, e.g. 623 for IPMI")
        return 0
    return value


def _password(
    record: Mapping[str, Any], base_dir: Path, read_secret: ReadSecret, say: _Reporter
) -> str:
    has_inline, has_file = "password" in record, "password_file" in record
    if has_inline and has_file:
        say.error(
            "password",
            "and password_file are both set",
            "keep only password_file (preferred: it keeps the secret out of this file)",
        )
        return ""
    if has_file:
        return _password_from_file(record.get("password_file"), base_dir, read_secret, say)
    value = record.get("password")
    if not isinstance(value, str) or not value:
        say.error(
            "password",
            "is missing or empty" if not has_inline else "must be a string",
            "set password_file: /path/to/file (mode 0600) or quote the password",
        )
        return ""
    return value


def _password_from_file(value: Any, base_dir: Path, read_secret: ReadSecret, say: _Reporter) -> str:
    if not isinstance(value, str) or not value.strip():
        say.error("password_file", "is empty or not a path", "set the path of the password file")
        return ""
    path = Path(value)
    if not path.is_absolute():
        path = base_dir / path
    try:
        secret = read_secret(path)
    except OSError as exc:
        say.error(
            "password_file",
            f"{path} cannot be read ({exc.strerror or type(exc).__name__})",
            "create it, or make it readable by the petguard user",
        )
        return ""
    if secret.mode & 0o007:
        say.warning(
            "password_file",
            f"{path} is accessible by other users (mode {secret.mode:04o})",
            f"run: chmod o-rwx {path}",
        )
    password = secret.text.rstrip("\r\n")
    if not password:
        say.error("password_file", f"{path} is empty", "write the BMC password into it")
    return password


def _options(record: Mapping[str, Any], say: _Reporter) -> dict[str, str]:
    value = record.get("options", {})
    if not isinstance(value, dict) or not all(
        isinstance(v, (str, int, float, bool)) for v in value.values()
    ):
        say.error(
            "options",
            "must be a mapping of names to plain values",
            "write options: {name: value, ...}",
        )
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _error_count(problems: list[Problem]) -> int:
    return sum(1 for p in problems if p.severity is Severity.ERROR)


def _phrase(source: Path, host: str | None, key: str | None, what: str, fix: str) -> str:
    where = str(source)
    if host is not None:
        where += f": host {host}"
    if key is not None:
        where += f": {key}"
    return f"{where} {what}; {fix}"


def _error(source: Path, host: str | None, key: str | None, what: str, fix: str) -> Problem:
    return Problem(Severity.ERROR, _phrase(source, host, key, what, fix))


def _raise_errors(source: Path, problems: list[Problem]) -> None:
    found = [p for p in problems if p.severity is Severity.ERROR]
    if found:
        lines = "\n".join(f"  - {p.message}" for p in found)
        raise errors.ConfigError(
            f"fence inventory {source} has {len(found)} error(s):\n{lines}",
            problems=tuple(found),
        )
