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

Every problem starts ``FILE:LINE:``. The file is read with a loader that remembers the line of
each key and refuses a key given twice (PyYAML would keep the last one silently: a host listed
twice, a second ``address:``), INV-01/02. A device names an enabled driver (INV-03), an address that
is one IP address or host name (INV-04/05), and no other host's device unless every record of
that device says ``shared: true`` (INV-06: one fence would power off both hosts). No problem
ever quotes a value that may be a secret: a YAML syntax error is said by line, column and
problem (SECRET-01), an unknown key that is not a plain name is not shown (SECRET-05).

Parsing (``parse_inventory``) does no I/O of its own: the caller hands in the YAML text and a
function that reads password files, so unit tests need no files. Each device record is parsed by
``_parse_device``, for ``bmc:`` and for every entry of every level alike.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import logging
import os
import re
import stat
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from petguard import errors, secrets
from petguard.fencing import base

LOG = logging.getLogger(__name__)

TOP_KEYS = frozenset({"hosts"})
HOST_KEYS = frozenset({"bmc", "levels", "delay"})
DEVICE_KEYS = frozenset(
    {"driver", "address", "port", "username", "password", "password_file", "options", "agent", "shared"}
)
#: A key or driver name the file may be quoted back with; anything else could be a mistyped secret.
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")
#: One DNS host name (RFC 1123 labels); an address is this or an IP address, nothing more.
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
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


class _Mapping(dict[Any, Any]):
    """A YAML mapping that knows the line of itself and of each key, and the keys given twice."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[str, int] = {}
        self.duplicates: list[tuple[str, int, int]] = []  # key, first line, repeated line

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, building ``_Mapping`` values (duplicates kept aside, not overwritten)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Mapping:
    loader.flatten_mapping(node)
    mapping = _Mapping(node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark
            )
        line = key_node.start_mark.line + 1
        name = str(key)
        if name in mapping.lines:
            mapping.duplicates.append((name, mapping.lines[name], line))
            continue  # the first stays; the host or record is refused anyway
        mapping.lines[name] = line
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_inventory(path: str | os.PathLike[str], drivers: Collection[str]) -> dict[str, base.FenceTopology]:
    """Load the inventory file at ``path`` (devices may use the fence ``drivers`` enabled); log
    warnings, raise on errors.

    :raises petguard.errors.ConfigError: every error found, one per line, in ``problems``.
    """
    topologies, problems = check_inventory(path, drivers)
    for problem in problems:
        if problem.severity is Severity.WARNING:
            LOG.warning("%s", problem.message)
    _raise_errors(Path(path), problems)
    return topologies


def check_inventory(
    path: str | os.PathLike[str], drivers: Collection[str]
) -> tuple[dict[str, base.FenceTopology], list[Problem]]:
    """Load and report: never raises for problems in the file (for ``config check``)."""
    source = Path(path)
    try:
        inventory_file = read_secret_file(source)
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
    return parse_inventory(
        inventory_file.text, source, read_secret_file, drivers, too_open=secrets.too_open(source, inventory_file.mode)
    )


def read_secret_file(path: Path) -> SecretFile:
    """The real password-file reader: content and permission bits."""
    with path.open(encoding="utf-8") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        return SecretFile(text=handle.read(), mode=stat.S_IMODE(mode))


def parse_inventory(
    text: str, source: Path, read_secret: ReadSecret, drivers: Collection[str], too_open: str | None = None
) -> tuple[dict[str, base.FenceTopology], list[Problem]]:
    """Parse inventory YAML ``text`` (from file ``source``); devices may use the fence ``drivers``
    enabled. Relative password files are resolved against ``source``'s directory. ``too_open`` says
    why the inventory file itself is not private (``secrets.too_open``): then an inline password in
    it is an error, as a password file open to others would be."""
    problems: list[Problem] = []
    try:
        document = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        return {}, [
            _error(
                source,
                None,
                None,
                f"is not valid YAML at {secrets.yaml_error(exc)}",  # PyYAML's own text quotes the line
                "fix the YAML syntax there (quote a password holding ':', '#', '*', '&', '!' or a quote)",
                line=None if mark is None else mark.line + 1,
            )
        ]
    hosts = _hosts_section(source, document, problems)
    topologies: dict[str, base.FenceTopology] = {}
    context = _Context(source, read_secret, frozenset(drivers), problems, too_open)
    for host, entry in hosts.items():
        topology = _parse_host(context, host, entry, hosts.line_of(host))
        if topology is not None:
            topologies[host] = topology
    for host in _shared_devices(context, hosts, topologies):
        topologies.pop(host, None)
    return topologies, problems


@dataclasses.dataclass(frozen=True)
class _Context:
    """What every part of one parse needs: where the file is, how to read secrets, which drivers."""

    source: Path
    read_secret: ReadSecret
    drivers: frozenset[str]
    problems: list[Problem]
    too_open: str | None = None


def _hosts_section(source: Path, document: Any, problems: list[Problem]) -> _Mapping:
    """The ``hosts:`` mapping (hosts listed twice taken out and reported), or an empty one."""
    if not isinstance(document, _Mapping):
        problems.append(
            _error(
                source,
                None,
                None,
                "has no top-level mapping",
                "start the file with 'hosts:' and one entry per host",
            )
        )
        return _Mapping(1)
    for key, first, again in document.duplicates:
        problems.append(_error(source, None, _shown(key), f"is given twice (lines {first} and {again})",
                               "keep one 'hosts:' section", line=again))
    for key in sorted(set(map(str, document)) - TOP_KEYS):
        problems.append(
            _error(
                source,
                None,
                _shown(key),
                "is not a known top-level key",
                f"remove it; known keys: {', '.join(sorted(TOP_KEYS))}",
                line=document.line_of(key),
            )
        )
    hosts = document.get("hosts")
    if not isinstance(hosts, _Mapping) or not hosts:
        problems.append(
            _error(
                source,
                None,
                "hosts",
                "is missing, empty or not a mapping",
                "list each compute host under 'hosts:' by its Nova host name",
                line=document.line_of("hosts"),
            )
        )
        return _Mapping(1)
    twice = {key for key, _, _ in hosts.duplicates}
    for key, first, again in hosts.duplicates:
        problems.append(
            Problem(
                Severity.ERROR,
                _phrase(source, None, None, f"host {key} is listed twice (lines {first} and {again})",
                        "keep one entry per host (PyYAML would silently use the last)", again),
            )
        )
    found = _Mapping(hosts.line)
    for name, entry in hosts.items():
        if str(name) not in twice:
            found[str(name)] = entry
            found.lines[str(name)] = hosts.line_of(str(name))
    return found


def _parse_host(context: _Context, host: str, entry: Any, line: int) -> base.FenceTopology | None:
    source, problems = context.source, context.problems
    if not isinstance(entry, _Mapping):
        problems.append(
            _error(source, host, None, "is not a mapping", "give the host a 'bmc:' or 'levels:' entry", line=line)
        )
        return None
    before = _error_count(problems)
    _report_duplicates(context, host, None, entry)
    for key in sorted(set(map(str, entry)) - HOST_KEYS):
        problems.append(
            _error(
                source,
                host,
                _shown(key),
                "is not a known host key",
                f"remove it; known keys: {', '.join(sorted(HOST_KEYS))}",
                line=entry.line_of(key),
            )
        )
    delay = _delay(context, host, entry)
    levels = _host_levels(context, host, entry)
    if levels is None or _error_count(problems) > before:
        return None
    return base.FenceTopology(host=host, levels=levels, delay=delay)


def _report_duplicates(context: _Context, host: str, where: str | None, mapping: _Mapping) -> None:
    for key, first, again in mapping.duplicates:
        path = _shown(key) if where is None else f"{where}.{_shown(key)}"
        context.problems.append(
            _error(context.source, host, path, f"is given twice (lines {first} and {again})",
                   "keep one (PyYAML would silently use the last)", line=again)
        )


def _host_levels(context: _Context, host: str, entry: _Mapping) -> tuple[tuple[base.FenceDevice, ...], ...] | None:
    """The host's levels, from ``levels:`` or the ``bmc:`` shorthand (exactly one of them)."""
    source, problems = context.source, context.problems
    if "bmc" in entry and "levels" in entry:
        problems.append(
            _error(
                source,
                host,
                "bmc",
                "and levels are both set",
                "keep only levels: and make the BMC its first level",
                line=entry.line_of("bmc"),
            )
        )
        return None
    if "bmc" in entry:
        device = _parse_device(context, host, "bmc", entry["bmc"], entry.line_of("bmc"))
        return None if device is None else ((device,),)
    if "levels" not in entry:
        problems.append(
            _error(
                source,
                host,
                "bmc",
                "is missing",
                "add bmc: {driver, address, port, username, password_file}, or levels: [...]",
                line=entry.line,
            )
        )
        return None
    return _parse_levels(context, host, entry["levels"], entry.line_of("levels"))


def _parse_levels(
    context: _Context, host: str, value: Any, line: int
) -> tuple[tuple[base.FenceDevice, ...], ...] | None:
    if not isinstance(value, list) or not value:
        context.problems.append(
            _error(
                context.source,
                host,
                "levels",
                "must be a non-empty list of levels",
                "write levels: [[device, ...], [device, ...]] in the order to try them",
                line=line,
            )
        )
        return None
    levels: list[tuple[base.FenceDevice, ...]] = []
    for index, level in enumerate(value, start=1):
        parsed = _parse_level(context, host, f"levels[{index}]", level, line)
        if parsed is not None:
            levels.append(parsed)
    return tuple(levels) if len(levels) == len(value) else None


def _level_records(level: Any) -> Any:
    """A level's device records: a list of them, or one record alone."""
    return [level] if isinstance(level, dict) else level


def _parse_level(
    context: _Context, host: str, where: str, level: Any, line: int
) -> tuple[base.FenceDevice, ...] | None:
    """One level: a list of device records (all must confirm OFF), or one record alone."""
    records = _level_records(level)
    if not isinstance(records, list) or not records:
        context.problems.append(
            _error(
                context.source,
                host,
                where,
                "must be a device mapping or a non-empty list of devices",
                "write the level as [{driver: ..., address: ...}, ...]",
                line=line,
            )
        )
        return None
    devices = [
        _parse_device(context, host, f"{where}[{n}]", record, line) for n, record in enumerate(records, start=1)
    ]
    found = [d for d in devices if d is not None]
    return tuple(found) if len(found) == len(devices) else None


def _delay(context: _Context, host: str, entry: _Mapping) -> float:
    value = entry.get("delay", 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_DELAY:
        context.problems.append(
            _error(
                context.source,
                host,
                "delay",
                f"must be a number of seconds from 0 to {MAX_DELAY:g}, not {value!r}",
                "set delay: 5 (seconds waited before this host's first fence level)",
                line=entry.line_of("delay"),
            )
        )
        return 0.0
    return float(value)


def _parse_device(
    context: _Context, host: str, where: str, record: Any, line: int
) -> base.FenceDevice | None:
    """One device record (``where`` is its key path, e.g. ``bmc`` or ``levels[2][1]``; ``line`` the
    line of its parent, for a record that is no mapping); None if it has errors."""
    problems = context.problems
    if not isinstance(record, _Mapping):
        problems.append(
            _error(
                context.source,
                host,
                where,
                "is not a mapping",
                "write it as {driver: ..., address: ..., ...}",
                line=line,
            )
        )
        return None
    before = _error_count(problems)
    _report_duplicates(context, host, where, record)
    say = _Reporter(context.source, host, where, problems, record)
    for key in sorted(set(map(str, record)) - DEVICE_KEYS):
        say.error(key, "is not a known key", f"remove it; known keys: {', '.join(sorted(DEVICE_KEYS))}")
    driver = _driver(record, context.drivers, say)
    address = _address(record, say)
    username = _required_text(record, "username", say, "set the BMC user name")
    port = _port(record, driver, say) if driver else 0
    password = _password(record, context, say)
    options = _options(record, say)
    if not isinstance(record.get("shared", False), bool):
        say.error("shared", "must be true or false", "set shared: true only if this device powers off other hosts too")
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
    """Phrases problems for one device record, each at the line of its key."""

    source: Path
    host: str
    where: str
    problems: list[Problem]
    record: _Mapping

    def error(self, key: str, what: str, fix: str) -> None:
        line = self.record.line_of(key)
        self.problems.append(_error(self.source, self.host, f"{self.where}.{_shown(key)}", what, fix, line=line))

    def warning(self, key: str, what: str, fix: str) -> None:
        message = _phrase(self.source, self.host, f"{self.where}.{key}", what, fix, self.record.line_of(key))
        self.problems.append(Problem(Severity.WARNING, message))


def _driver(record: Mapping[str, Any], drivers: frozenset[str], say: _Reporter) -> str:
    """The device's driver when it is enabled, else "" (and an error that says which are)."""
    driver = _required_text(record, "driver", say, "name the fence driver, e.g. ipmi")
    if driver and driver not in drivers:
        name = repr(driver) if _PLAIN_NAME.match(driver) else "(not a plain name, not shown)"
        say.error(
            "driver",
            f"{name} is not an enabled fence driver",
            f"use one of {', '.join(sorted(drivers)) or 'none'} or add it to [fencing] enabled_drivers",
        )
        return ""
    return driver


def _address(record: Mapping[str, Any], say: _Reporter) -> str:
    """One BMC's IP address or host name: no scheme, path, query, user or port in it."""
    address = _required_text(record, "address", say, "set the BMC's IP address or host name")
    if not address:
        return ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        if not _HOST_NAME.match(address):
            say.error(
                "address",
                "is not an IP address or host name",
                "write only the BMC's address; set port: and, for Redfish, options: {scheme: ..., system: ...}",
            )
        return address
    if ip.is_unspecified or ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        say.error("address", f"is {ip}, which is not one BMC", "write the BMC's own IP address or host name")
    return address


def _raw_records(entry: _Mapping) -> Iterator[tuple[str, _Mapping]]:
    """``(where, record)`` of a parsed host's devices, in ``FenceTopology.devices()`` order."""
    if "bmc" in entry:
        yield "bmc", entry["bmc"]
        return
    for index, level in enumerate(entry["levels"], start=1):
        for number, record in enumerate(_level_records(level), start=1):
            yield f"levels[{index}][{number}]", record


def _shared_devices(
    context: _Context, hosts: _Mapping, topologies: Mapping[str, base.FenceTopology]
) -> set[str]:
    """Hosts refused because another host's fence device is the same device (INV-06): one fence
    would power off both. Same device: driver, address, port and options (a PDU's plug, a Redfish
    system) all equal. Allowed when every record of it says ``shared: true``."""
    users: dict[tuple[str, str, int, tuple[tuple[str, str], ...]], list[tuple[str, str, _Mapping]]] = {}
    for host, topology in topologies.items():
        records = _raw_records(hosts[host])
        for (where, record), (_, _, device) in zip(records, topology.devices(), strict=True):
            identity = (device.driver, device.address.lower(), device.port, tuple(sorted(device.options.items())))
            users.setdefault(identity, []).append((host, where, record))
    refused: set[str] = set()
    for uses in users.values():
        if len({host for host, _, _ in uses}) < 2 or all(record.get("shared") is True for _, _, record in uses):
            continue
        for host, where, record in uses:
            others = ", ".join(f"host {other} ({at})" for other, at, _ in uses if other != host)
            context.problems.append(
                _error(
                    context.source,
                    host,
                    where,
                    f"is also the fence device of {others}",
                    "one fence would power off both: give each host its own device, or set shared: true on "
                    "every record of this device if that is meant",
                    line=record.line,
                )
            )
            refused.add(host)
    return refused


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
    if "port" not in record:
        if driver in DEFAULT_PORTS:
            return DEFAULT_PORTS[driver]
        say.error("port", f"is missing (driver {driver} has no default)", "set the device's port")
        return 0
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


def _password(record: Mapping[str, Any], context: _Context, say: _Reporter) -> str:
    has_inline, has_file = "password" in record, "password_file" in record
    if has_inline and has_file:
        say.error(
            "password",
            "and password_file are both set",
            "keep only password_file (preferred: it keeps the secret out of this file)",
        )
        return ""
    if has_file:
        return _password_from_file(record.get("password_file"), context.source.parent, context.read_secret, say)
    value = record.get("password")
    if not isinstance(value, str) or not value:
        say.error(
            "password",
            "is missing or empty" if not has_inline else "must be a string",
            "set password_file: /path/to/file (mode 0640 or 0600) or quote the password",
        )
        return ""
    if context.too_open is not None:
        say.error("password", f"is written inline and {context.too_open}", "or move it to a password_file")
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
    problem = secrets.too_open(path, secret.mode)
    if problem is not None:
        say.error("password_file", problem, "fix its mode; the BMC password is not used while others can read it")
        return ""
    password = secret.text.rstrip("\r\n")
    if not password:
        say.error("password_file", f"{path} is empty", "write the BMC password into it")
    return password


def _options(record: Mapping[str, Any], say: _Reporter) -> dict[str, str]:
    value = record.get("options", {})
    if isinstance(value, _Mapping):
        for key, first, again in value.duplicates:
            say.error(f"options.{key}", f"is given twice (lines {first} and {again})", "keep one")
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


def _shown(key: str) -> str:
    """A key as problems may quote it: a plain name, else a placeholder (it may be a mistyped secret)."""
    return key if _PLAIN_NAME.match(key) else "a key that is not a plain key name (not shown: a missing ':'?)"


def _phrase(source: Path, host: str | None, key: str | None, what: str, fix: str, line: int | None = None) -> str:
    """``FILE:LINE: host H: KEY what; fix`` (the parts known), as compilers and editors use."""
    subject = " ".join(
        part for part in (None if host is None else f"host {host}" + (":" if key else ""), key) if part
    )
    where = f"{source}:" if line is None else f"{source}:{line}:"
    if not subject:
        return f"{where} {what}; {fix}" if line is not None else f"{source} {what}; {fix}"
    return f"{where} {subject} {what}; {fix}"


def _error(
    source: Path, host: str | None, key: str | None, what: str, fix: str, *, line: int | None = None
) -> Problem:
    return Problem(Severity.ERROR, _phrase(source, host, key, what, fix, line))


def _raise_errors(source: Path, problems: list[Problem]) -> None:
    found = [p for p in problems if p.severity is Severity.ERROR]
    if found:
        lines = "\n".join(f"  - {p.message}" for p in found)
        raise errors.ConfigError(
            f"fence inventory {source} has {len(found)} error(s):\n{lines}",
            problems=tuple(found),
        )
