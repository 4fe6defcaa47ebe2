"""The config file of a petguard-daemon that the functional tests start: a journal, a Nova and a BMC
that nothing answers (closed loopback ports), the API off."""

from __future__ import annotations

import socket
from pathlib import Path

from petguard.store import migrate


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def daemon_conf(
    tmp_path: Path,
    *,
    database: str | None = None,
    migrated: bool = True,
    extra: str = "",
    coordination: str = "",
) -> Path:
    """Write ``petguard.conf`` (and its clouds.yaml and inventory) under ``tmp_path``; its path.

    ``database``: the journal's URL (default: a SQLite file there, migrated unless ``migrated`` is
    false); ``extra``: lines added to ``[DEFAULT]`` (and any sections after them); ``coordination``:
    the backend URL (default: a file backend there)."""
    if database is None:
        database = f"sqlite:///{tmp_path}/journal.sqlite"
        if migrated:
            migrate.upgrade(database)
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  gone:\n    auth:\n"
        f"      auth_url: http://127.0.0.1:{closed_port()}/v3\n"
        "      username: admin\n      password: pw\n      project_name: admin\n"
        "      user_domain_name: Default\n      project_domain_name: Default\n"
    )
    clouds.chmod(0o600)  # secret files: owner and group only
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"hosts:\n  cmp1:\n    bmc: {{driver: ipmi, address: 127.0.0.1, port: {closed_port()}, "
        "username: admin, password: pw}\n"
    )
    inventory.chmod(0o600)  # it holds a password inline
    conf = tmp_path / "petguard.conf"
    conf.write_text(
        f"[DEFAULT]\nlog_file = {tmp_path}/daemon.log\ntick_interval = 0.2\n{extra}"
        f"[nova]\ncloud = gone\nclouds_file = {clouds}\ntimeout = 1\n"
        f"[database]\nconnection = {database}\n[fencing]\ninventory_file = {inventory}\n[api]\nenabled = false\n"
        f"[coordination]\nbackend_url = {coordination or f'file://{tmp_path}/coordination'}\n"
    )
    return conf
