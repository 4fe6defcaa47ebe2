"""The receivers of outgoing alerts, and which events each one wants.

``[webhooks] receivers = ops, chat`` names them; each has its own ``[webhook:NAME]`` group, whose
options (``petguard.conf.opts.webhook_receiver_opts``) are registered here at run time, since
oslo.config cannot know the names in advance.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
from collections.abc import Iterable

from oslo_config import cfg

from petguard import secrets
from petguard.conf import opts
from petguard.errors import ConfigError
from petguard.webhooks.payload import Severity, severity


class Format(enum.StrEnum):
    """The body of each POST."""

    JSON = "json"
    SLACK = "slack"


@dataclasses.dataclass(frozen=True)
class Receiver:
    """One place alerts go. ``url`` and ``secret`` are secrets: kept out of ``repr`` (and so of logs)."""

    name: str
    url: str = dataclasses.field(repr=False)
    format: Format = Format.JSON
    secret: bytes | None = dataclasses.field(default=None, repr=False)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    min_severity: Severity = Severity.INFO
    timeout: float = 5.0

    def wants(self, kind: str) -> bool:
        """Does this receiver want events of ``kind``? (include patterns, then exclude, then severity)"""
        if self.include and not _matches(kind, self.include):
            return False
        if _matches(kind, self.exclude):
            return False
        return severity(kind) >= self.min_severity


def _matches(kind: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(kind, pattern) for pattern in patterns)


def group_name(name: str) -> str:
    """The config group of receiver ``name``."""
    return f"webhook:{name}"


def from_conf(conf: cfg.ConfigOpts) -> list[Receiver]:
    """Every receiver named in ``[webhooks] receivers``, read and checked.

    :raises petguard.errors.ConfigError: a receiver without a url, a bad value, an unreadable or
        world-readable secret file. The message names the group and option, never the value.
    """
    names = [n.strip() for n in conf.webhooks.receivers if n.strip()]
    if len(set(names)) != len(names):
        raise ConfigError(f"[webhooks] receivers lists a name twice: {', '.join(names)}")
    return [_receiver(conf, name) for name in names]


def _receiver(conf: cfg.ConfigOpts, name: str) -> Receiver:
    group = group_name(name)
    conf.register_opts(opts.webhook_receiver_opts, group=group)
    section = conf[group]
    try:
        url = section.url
    except cfg.Error as exc:  # the message would quote the URL, a secret for Slack
        raise ConfigError(f"[{group}] url is not a valid http or https URL") from exc
    try:
        secret_file = section.secret_file
        receiver = Receiver(
            name=name,
            url=url or "",
            format=Format(section.format),
            include=tuple(section.include_kinds),
            exclude=tuple(section.exclude_kinds),
            min_severity=Severity[section.min_severity.upper()],
            timeout=section.timeout,
        )
    except (cfg.Error, ValueError) as exc:
        raise ConfigError(f"[{group}]: {exc}") from exc
    if not url:
        raise ConfigError(f"[{group}] url is not set (receiver {name!r} is listed in [webhooks] receivers)")
    if secret_file:
        receiver = dataclasses.replace(receiver, secret=read_secret(secret_file, f"[{group}] secret_file"))
    return receiver


def read_secret(path: str, option: str) -> bytes:
    """The key in ``path`` (surrounding whitespace stripped).

    :raises petguard.errors.ConfigError: missing, empty, or too open (``secrets.too_open``).
    """
    secret = secrets.read_private(path, option).strip().encode()
    if not secret:
        raise ConfigError(f"{option}: {path} is empty")
    return secret
