"""Names in petguard's config files that petguard does not know: typos, misplaced options, stray sections.

oslo.config reads only the options registered with it and ignores every other name, silently: a
``[DEFAULT] dryrun = true`` leaves ``dry_run`` False, a ``[fencing] inventroy_file`` leaves the
default inventory in place. Here the files a ``ConfigOpts`` was parsed from are read again with
oslo.config's own parser (``cfg.ConfigParser``, as ``oslo-config-validator`` does), and every name
is compared with what petguard and oslo.log register, deprecated names included. Each unknown name
gets the closest known one as a suggestion (``difflib``).

``find_unknown`` is pure (parsed names in, findings out); ``check`` reads the files.
``petguard-daemon`` refuses to start on a serious finding and ``petguard-manage config check``
reports it as an error (docs/operations.md says why).
"""

from __future__ import annotations

import dataclasses
import difflib
import glob
import importlib.metadata
import os
from collections.abc import Collection, Iterable, Mapping, Sequence

from oslo_config import cfg

from petguard.conf import opts

DEFAULT = "DEFAULT"
#: The oslo.config namespaces whose options petguard-daemon registers besides its own (the
#: generator's namespaces in etc/petguard/petguard-config-generator.conf).
OTHER_NAMESPACES = ("oslo.log",)
RECEIVER_PREFIX = "webhook:"

#: (file, {section: [option names]}) for each file read, in the order oslo.config reads them.
Parsed = Sequence[tuple[str, Mapping[str, Iterable[str]]]]


@dataclasses.dataclass(frozen=True)
class Unknown:
    """One name petguard does not know. ``option`` None: the whole section is unknown.
    ``serious``: petguard-daemon refuses to start (otherwise it warns)."""

    file: str
    section: str
    option: str | None
    suggestion: str | None
    serious: bool = True
    note: str = ""

    def message(self) -> str:
        where = f"[{self.section}]" if self.option is None else f"[{self.section}] {self.option}"
        what = self.note or ("is not a petguard section" if self.option is None else "is not a petguard option")
        hint = f"; did you mean {self.suggestion}?" if self.suggestion else "; remove it or fix its name"
        if not self.serious:
            hint = ""
        return f"{self.file}: {where} {what}{hint}"


def normalise_section(name: str) -> str:
    """Section names compare as oslo.config compares them: case-insensitively, except DEFAULT."""
    return name if name == DEFAULT else name.lower()


def find_unknown(parsed: Parsed, known: Mapping[str, Collection[str]], receivers: Collection[str]) -> list[Unknown]:
    """Every unknown section and option of ``parsed``, with a suggestion where a known name is close.

    Pure. ``known``: option names by section (``DEFAULT`` for the default group); ``receivers``: the
    names listed in ``[webhooks] receivers``, whose ``[webhook:NAME]`` sections take the receiver
    options.
    """
    found: list[Unknown] = []
    receiver_opts = {o.name for o in opts.webhook_receiver_opts}
    listed = {normalise_section(RECEIVER_PREFIX + name) for name in receivers}
    for path, sections in parsed:
        for raw_section, names in sections.items():
            section = normalise_section(raw_section)
            if section.startswith(RECEIVER_PREFIX):
                if section not in listed:
                    found.append(_unlisted_receiver(path, raw_section))
                    continue
                allowed: Collection[str] = receiver_opts
            elif section in known:
                allowed = known[section]
            else:
                found.append(Unknown(path, raw_section, None, _closest_section(section, known)))
                continue
            for name in names:
                if name not in allowed:
                    found.append(Unknown(path, raw_section, name, _closest_option(name, section, allowed, known)))
    return found


def _unlisted_receiver(path: str, section: str) -> Unknown:
    name = section[len(RECEIVER_PREFIX) :]
    return Unknown(
        path,
        section,
        None,
        None,
        serious=False,
        note=f"is not listed in [webhooks] receivers, so no event goes to it: add {name} there or remove the section",
    )


def _closest_section(section: str, known: Mapping[str, Collection[str]]) -> str | None:
    match = difflib.get_close_matches(section, list(known), n=1)
    return f"[{match[0]}]" if match else None


def _closest_option(
    name: str, section: str, allowed: Collection[str], known: Mapping[str, Collection[str]]
) -> str | None:
    """The closest name in the same section; else the same name in another section; else the closest
    name anywhere (as ``[section] name``)."""
    match = difflib.get_close_matches(name, list(allowed), n=1)
    if match:
        return match[0]
    elsewhere = sorted(other for other, names in known.items() if other != section and name in names)
    if elsewhere:
        return f"[{elsewhere[0]}] {name}"
    everywhere = {f"[{other}] {n}": n for other, names in known.items() if other != section for n in names}
    close = difflib.get_close_matches(name, list(everywhere.values()), n=1, cutoff=0.8)
    if close:
        return next(qualified for qualified, n in sorted(everywhere.items()) if n == close[0])
    return None


def known_options(conf: cfg.ConfigOpts) -> dict[str, set[str]]:
    """Every option name a petguard-daemon config file may hold, by section: what ``conf`` has
    registered, petguard's own groups and oslo.log's options (whether registered here or not), each
    with its deprecated names."""
    known: dict[str, set[str]] = {DEFAULT: set()}
    for name in conf:
        if isinstance(conf[name], cfg.ConfigOpts.GroupAttr):
            known.setdefault(normalise_section(name), set()).update(conf[name])
        else:
            known[DEFAULT].add(name)
    for group, options in [*opts.GROUPS, *_other_namespaces()]:
        _add(known, group, options)
    return known


def _other_namespaces() -> list[tuple[str | None, list[cfg.Opt]]]:
    listed: list[tuple[str | None, list[cfg.Opt]]] = []
    for entry in importlib.metadata.entry_points(group="oslo.config.opts"):
        if entry.name in OTHER_NAMESPACES:
            for group, options in entry.load()():
                listed.append((getattr(group, "name", group), list(options)))
    return listed


def _add(known: dict[str, set[str]], group: str | None, options: Iterable[cfg.Opt]) -> None:
    section = normalise_section(group or DEFAULT)
    for option in options:
        known.setdefault(section, set()).update({option.name, option.dest})
        for old in option.deprecated_opts:
            old_section = normalise_section(old.group or section)
            known.setdefault(old_section, set()).add(old.name or option.name)


def config_files(conf: cfg.ConfigOpts) -> list[str]:
    """The files ``conf`` was parsed from: ``--config-file`` (or the defaults found), then
    ``--config-dir``'s ``*.conf`` in name order, as oslo.config reads them."""
    files = list(conf.config_file or [])
    if conf.config_dir:
        files += sorted(glob.glob(os.path.join(conf.config_dir, "*.conf")))
    return files


def parse(files: Iterable[str]) -> list[tuple[str, dict[str, list[str]]]]:
    """Each file's sections and option names, read with oslo.config's own parser.

    :raises oslo_config.cfg.ParseError: a file oslo.config could not read either.
    :raises OSError: a file cannot be read.
    """
    parsed: list[tuple[str, dict[str, list[str]]]] = []
    for path in files:
        sections: dict[str, dict[str, list[str]]] = {}
        cfg.ConfigParser(path, sections).parse()
        parsed.append((path, {section: list(names) for section, names in sections.items()}))
    return parsed


def check(conf: cfg.ConfigOpts) -> list[Unknown]:
    """Every unknown name in the files ``conf`` was parsed from (``conf`` already parsed)."""
    receivers = [n.strip() for n in conf.webhooks.receivers if n.strip()]
    return find_unknown(parse(config_files(conf)), known_options(conf), receivers)
