"""The inventory loader on real files: unreadable files, permissions, and one ConfigError that
lists every problem."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from petguard import errors
from petguard.fencing import inventory


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_load_with_a_password_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / "cmp1.pw", "s3cret\n", 0o640)
    source = write(
        tmp_path / "inventory.yaml",
        (
            "hosts:\n"
            "  cmp1:\n"
            "    bmc: {driver: ipmi, address: 127.0.0.1, port: 16231, username: admin,\n"
            "          password_file: cmp1.pw}\n"
        ),
    )

    devices = inventory.load_inventory(source, ["ipmi"])

    assert devices["cmp1"].levels[0][0].password == "s3cret"  # owner and group may read it (0640)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    (tmp_path / "cmp1.pw").chmod(0o644)
    with pytest.raises(errors.ConfigError, match=r"cmp1.pw is open to other users \(mode 0644\)") as refused:
        inventory.load_inventory(source, ["ipmi"])
    assert "s3cret" not in str(refused.value) and "s3cret" not in caplog.text


def test_missing_inventory_file(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError) as caught:
        inventory.load_inventory(tmp_path / "nope.yaml", ["ipmi"])

    assert "nope.yaml cannot be read (No such file or directory)" in str(caught.value)


def test_every_error_is_in_one_config_error(tmp_path: Path) -> None:
    source = write(
        tmp_path / "inventory.yaml",
        (
            "hosts:\n"
            "  cmp1: {bmc: {driver: ipmi, address: a, username: u, password_file: /nonexistent/pw}}\n"
            "  cmp2: {bmc: {driver: ipmi, address: a, username: u, password: p, port: 99999}}\n"
        ),
    )

    with pytest.raises(errors.ConfigError) as caught:
        inventory.load_inventory(source, ["ipmi"])

    message = str(caught.value)
    assert "has 2 error(s)" in message
    assert "host cmp1: bmc.password_file /nonexistent/pw cannot be read" in message
    assert "host cmp2: bmc.port is 99999, outside 1-65535" in message
    assert len(caught.value.context["problems"]) == 2  # type: ignore[arg-type]
