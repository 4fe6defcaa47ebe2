"""Parsing the BMC inventory without touching files: every problem names the file, the host, the
key, what is wrong and how to fix it, and all of them are reported at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from petguard.fencing import inventory
from petguard.fencing.base import FenceDevice, FenceTopology

SOURCE = Path("/etc/petguard/bmc.yaml")
SECRET = "pw-Zq8-never-logged"


class Secrets:
    """Fake password files: path → (text, mode); missing paths raise like a missing file."""

    def __init__(self, files: dict[str, tuple[str, int]] | None = None) -> None:
        self.files = files or {}

    def __call__(self, path: Path) -> inventory.SecretFile:
        if str(path) not in self.files:
            raise FileNotFoundError(2, "No such file or directory", str(path))
        text, mode = self.files[str(path)]
        return inventory.SecretFile(text=text, mode=mode)


def parse(
    yaml_text: str, secrets: Secrets | None = None
) -> tuple[dict[str, FenceTopology], list[inventory.Problem]]:
    return inventory.parse_inventory(textwrap.dedent(yaml_text), SOURCE, secrets or Secrets())


def single(topology: FenceTopology) -> FenceDevice:
    """The one device of a ``bmc:`` shorthand host."""
    [[device]] = topology.levels
    return device


def errors_of(problems: list[inventory.Problem]) -> list[str]:
    return [p.message for p in problems if p.severity is inventory.Severity.ERROR]


def test_a_good_inventory() -> None:
    secrets = Secrets({"/run/pw/cmp1": (SECRET + "\n", 0o600)})

    devices, problems = parse(
        """
        hosts:
          cmp1:
            bmc: {driver: ipmi, address: 127.0.0.1, port: 16231, username: admin,
                  password_file: /run/pw/cmp1}
          cmp2:
            bmc: {driver: fake, address: 10.0.0.2, port: 1, username: u, password: "p w",
                  options: {fake_behaviour: stuck_on, fake_n: 3}}
        """,
        secrets,
    )

    assert problems == []
    assert single(devices["cmp1"]) == FenceDevice("cmp1", "ipmi", "127.0.0.1", 16231, "admin", SECRET)
    assert single(devices["cmp2"]).password == "p w"
    assert single(devices["cmp2"]).options == {"fake_behaviour": "stuck_on", "fake_n": "3"}
    assert SECRET not in repr(devices)


def test_ipmi_port_defaults_to_623_and_relative_password_files_are_beside_the_inventory() -> None:
    secrets = Secrets({"/etc/petguard/pw/cmp1": ("x\r\n", 0o640)})

    devices, problems = parse(
        """
        hosts:
          cmp1: {bmc: {driver: ipmi, address: bmc1, username: u, password_file: pw/cmp1}}
        """,
        secrets,
    )

    assert problems == []
    assert single(devices["cmp1"]).port == 623 and single(devices["cmp1"]).password == "x"


@pytest.mark.parametrize(
    ("bmc", "words"),
    [
        ("{address: a, port: 1, username: u, password: p}", "bmc.driver is missing"),
        ("{driver: ipmi, port: 1, username: u, password: p}", "bmc.address is missing"),
        ("{driver: ipmi, address: a, port: 1, password: p}", "bmc.username is missing"),
        ("{driver: ipmi, address: a, port: 1, username: u}", "bmc.password is missing"),
        (
            "{driver: ipmi, address: a, port: '623', username: u, password: p}",
            "bmc.port must be a whole number",
        ),
        ("{driver: ipmi, address: a, port: 0, username: u, password: p}", "outside 1-65535"),
        ("{driver: ipmi, address: a, port: 65536, username: u, password: p}", "outside 1-65535"),
        ("{driver: ipmi, address: a, port: true, username: u, password: p}", "whole number"),
        ("{driver: snmp, address: a, username: u, password: p}", "bmc.port must be"),
        (
            "{driver: ipmi, address: a, username: u, password: p, pasword: q}",
            "bmc.pasword is not a known key",
        ),
        (
            "{driver: ipmi, address: a, username: u, password: p, password_file: /x}",
            "bmc.password and password_file are both set",
        ),
        ("{driver: ipmi, address: 10, username: u, password: p}", "bmc.address must be a string"),
        ("{driver: ipmi, address: a, username: u, password: p, options: [1]}", "bmc.options"),
        ("[not, a, mapping]", "bmc is not a mapping"),
    ],
)
def test_each_record_problem_is_named(bmc: str, words: str) -> None:
    devices, problems = parse(f"hosts:\n  cmp1:\n    bmc: {bmc}\n")

    assert devices == {}
    [message] = errors_of(problems)
    assert message.startswith(f"{SOURCE}: host cmp1: ")
    assert words in message
    assert "; " in message  # what is wrong; how to fix it


def test_password_file_problems() -> None:
    secrets = Secrets({"/pw/empty": ("\n", 0o600), "/pw/open": ("s\n", 0o644)})

    devices, problems = parse(
        """
        hosts:
          missing: {bmc: {driver: ipmi, address: a, username: u, password_file: /pw/none}}
          empty: {bmc: {driver: ipmi, address: a, username: u, password_file: /pw/empty}}
          open: {bmc: {driver: ipmi, address: a, username: u, password_file: /pw/open}}
        """,
        secrets,
    )

    found = errors_of(problems)
    assert any("host missing: bmc.password_file /pw/none cannot be read" in m for m in found)
    assert any("host empty: bmc.password_file /pw/empty is empty" in m for m in found)
    [warning] = [p for p in problems if p.severity is inventory.Severity.WARNING]
    assert "host open" in warning.message and "chmod o-rwx /pw/open" in warning.message
    assert "0644" in warning.message
    assert list(devices) == ["open"]  # a warning does not drop the host


def test_all_problems_are_collected_across_hosts() -> None:
    _, problems = parse(
        """
        hosts:
          cmp1: {bmc: {driver: ipmi, address: a, username: u, port: 0}}
          cmp2: {bmc: {driver: ipmi, username: u, password: p}, extra: 1}
          cmp3: {}
          cmp4: just-a-string
        colour: blue
        """
    )

    found = errors_of(problems)
    assert len(found) == 7
    for words in (
        "colour is not a known top-level key",
        "host cmp1: bmc.port",
        "host cmp1: bmc.password",
        "host cmp2: bmc.address",
        "host cmp2: extra is not a known host key",
        "host cmp3: bmc is missing",
        "host cmp4 is not a mapping",
    ):
        assert any(words in m for m in found), words


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("hosts: [a, b]\n", "hosts is missing, empty or not a mapping"),
        ("hosts: {}\n", "hosts is missing, empty or not a mapping"),
        ("- a\n- b\n", "has no top-level mapping"),
        ("", "has no top-level mapping"),
        ("hosts:\n  cmp1: {bmc: {driver: ipmi\n", "is not valid YAML at line"),
    ],
)
def test_file_level_problems(text: str, words: str) -> None:
    _, problems = parse(text)

    [message] = errors_of(problems)
    assert message.startswith(str(SOURCE)) and words in message
