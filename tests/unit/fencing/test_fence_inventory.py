"""Parsing the BMC inventory without touching files: every problem names the file, the host, the
key, what is wrong and how to fix it, and all of them are reported at once."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from petguard.fencing import inventory
from petguard.fencing.base import FenceDevice, FenceTopology

SOURCE = Path("/etc/petguard/bmc.yaml")
SECRET = "pw-Zq8-never-logged"
DRIVERS = frozenset({"ipmi", "redfish", "fenceagent", "fake"})


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
    return inventory.parse_inventory(textwrap.dedent(yaml_text), SOURCE, secrets or Secrets(), DRIVERS)


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
        ("{driver: snmp, address: a, username: u, password: p}", "bmc.driver 'snmp' is not an enabled fence driver"),
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
    assert message.startswith(f"{SOURCE}:3: host cmp1: ")  # file:line, as editors jump to
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
    assert any(
        "host open: bmc.password_file /pw/open is open to other users (mode 0644)" in m and "chmod 640 /pw/open" in m
        for m in found
    )
    assert not devices  # a password others can read is not used


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


# ------------------------------------------------------------------ secrets in errors, nonsense refused

BMC_PW = "Bmc-S3cret-Pw"


@pytest.mark.fault(
    "SECRET-01",
    guarantee="7",
    injected="a YAML syntax error on an inline password: line (inventory, clouds.yaml)",
    expected="the error gives line, column and the problem; neither the line nor the password",
)
@pytest.mark.parametrize(
    "line",
    [
        f"bmc: {{driver: ipmi, address: a, username: u, password: {BMC_PW}: x}}",
        f"bmc: {{driver: ipmi, address: a, username: u, password: '{BMC_PW}}}",
        f"bmc: {{driver: ipmi, address: a, username: u, password: *{BMC_PW}}}",
    ],
)
def test_a_yaml_error_on_a_password_line_does_not_show_the_line(line: str) -> None:
    _, problems = parse(f"hosts:\n  cmp1:\n    {line}\n")

    [message] = errors_of(problems)
    assert "S3cret" not in message and "Bmc-" not in message
    assert re.match(rf"^{SOURCE}:(\d+): is not valid YAML at line \1, column \d+: ", message), message


@pytest.mark.fault(
    "SECRET-05",
    guarantee="7",
    injected="an inventory key that holds the password (a missing colon: 'password hunter2')",
    expected="the unknown key is reported by line, not echoed",
)
def test_an_unknown_key_that_holds_a_password_is_not_echoed() -> None:
    _, problems = parse(f"hosts:\n  cmp1:\n    bmc: {{driver: ipmi, address: a, username: u, password {BMC_PW}}}\n")

    found = errors_of(problems)
    assert found and not any("S3cret" in m for m in found)
    assert any("is not a plain key name" in m and m.startswith(f"{SOURCE}:3:") for m in found)


@pytest.mark.fault(
    "INV-01",
    guarantee="-",
    injected="a host listed twice in the inventory (PyYAML keeps the last silently)",
    expected="an error naming the host and both lines; the host is not fenced from either entry",
)
def test_a_host_listed_twice_is_refused() -> None:
    devices, problems = parse(
        """
        hosts:
          cmp1: {bmc: {driver: ipmi, address: 10.0.0.1, username: u, password: p}}
          cmp2: {bmc: {driver: ipmi, address: 10.0.0.2, username: u, password: p}}
          cmp1: {bmc: {driver: ipmi, address: 10.0.0.3, username: u, password: p}}
        """
    )

    [message] = errors_of(problems)
    assert message.startswith(f"{SOURCE}:5: host cmp1 is listed twice (lines 3 and 5)")
    assert list(devices) == ["cmp2"]


@pytest.mark.fault(
    "INV-02",
    guarantee="-",
    injected="a key given twice in one inventory record (address, password, options)",
    expected="an error naming file, line, host and key; the host is refused",
)
@pytest.mark.parametrize(
    ("record", "key"),
    [
        ("{driver: ipmi, address: 10.0.0.1, address: 10.0.0.9, username: u, password: p}", "bmc.address"),
        ("{driver: ipmi, address: a, username: u, password: p, password: q}", "bmc.password"),
        ("{driver: ipmi, address: a, username: u, password: p, options: {x: 1, x: 2}}", "bmc.options.x"),
    ],
)
def test_a_key_given_twice_is_refused(record: str, key: str) -> None:
    devices, problems = parse(f"hosts:\n  cmp1:\n    bmc: {record}\n")

    [message] = errors_of(problems)
    assert message.startswith(f"{SOURCE}:3: host cmp1: {key} is given twice") and "keep one" in message
    assert devices == {}


@pytest.mark.fault(
    "INV-03",
    guarantee="4",
    injected="an inventory device with a driver that is not enabled or not installed",
    expected="the loader and config check say the driver is unknown (not a port error), before any fence",
)
def test_an_unknown_driver_is_said_so_not_a_port_error() -> None:
    devices, problems = parse("hosts:\n  cmp1: {bmc: {driver: snmp, address: a, username: u, password: p}}\n")

    [message] = errors_of(problems)
    assert "bmc.driver 'snmp' is not an enabled fence driver" in message
    assert "[fencing] enabled_drivers" in message and "port" not in message
    assert devices == {}


@pytest.mark.fault(
    "INV-04",
    guarantee="-",
    injected="a fence device address that names no single BMC: 0.0.0.0, ::, multicast, broadcast",
    expected="an error naming file, line, host and address, with the fix",
)
@pytest.mark.parametrize("address", ["0.0.0.0", "'::'", "224.0.0.1", "255.255.255.255"])
def test_an_address_that_is_no_bmc_is_refused(address: str) -> None:
    devices, problems = parse(
        f"hosts:\n  cmp1: {{bmc: {{driver: ipmi, address: {address}, username: u, password: p}}}}\n"
    )

    [message] = errors_of(problems)
    assert message.startswith(f"{SOURCE}:2: host cmp1: bmc.address") and "not one BMC" in message
    assert devices == {}


@pytest.mark.fault(
    "INV-05",
    guarantee="-",
    injected="a fence device address with a scheme, path, query string, user or port in it",
    expected="an error: an address is an IP address or host name; port and scheme have their own keys",
)
@pytest.mark.parametrize(
    "address", ["bmc1?x=1", "https://bmc1", "bmc1/redfish/v1", "admin@bmc1", "bmc1:8443", "bmc 1"]
)
def test_an_address_that_is_a_url_is_refused(address: str) -> None:
    devices, problems = parse(
        f"hosts:\n  cmp1: {{bmc: {{driver: redfish, address: '{address}', username: u, password: p}}}}\n"
    )

    [message] = errors_of(problems)
    assert "bmc.address is not an IP address or host name" in message and "port:" in message
    assert devices == {}


@pytest.mark.fault(
    "INV-06",
    guarantee="1",
    injected="two hosts whose fence device is the same BMC (driver, address, port and options)",
    expected="both are refused, naming each other, unless every record of that device says shared: true",
)
def test_two_hosts_on_one_bmc_are_refused_unless_shared() -> None:
    same = "driver: ipmi, address: 10.0.0.1, port: 623, username: u, password: p"
    text = f"""
        hosts:
          cmp1: {{bmc: {{{same}}}}}
          cmp2:
            levels:
              - {{driver: ipmi, address: 10.0.0.2, username: u, password: p}}
              - {{{same}}}
          cmp3: {{bmc: {{driver: redfish, address: 10.0.0.1, username: u, password: p, options: {{system: '1'}}}}}}
          cmp4: {{bmc: {{driver: redfish, address: 10.0.0.1, username: u, password: p, options: {{system: '2'}}}}}}
        """

    devices, problems = parse(text)

    found = errors_of(problems)
    assert len(found) == 2
    assert found[0].startswith(f"{SOURCE}:3: host cmp1: bmc is also the fence device of host cmp2 (levels[2][1])")
    assert found[1].startswith(f"{SOURCE}:7: host cmp2: levels[2][1] is also the fence device of host cmp1 (bmc)")
    assert "shared: true" in found[0]
    assert sorted(devices) == ["cmp3", "cmp4"]  # one Redfish BMC, two systems: two devices

    shared, problems = parse(text.replace(same, same + ", shared: true"))
    assert errors_of(problems) == [] and sorted(shared) == ["cmp1", "cmp2", "cmp3", "cmp4"]
    assert single(shared["cmp1"]).options == {}  # shared is the inventory's, not the driver's
