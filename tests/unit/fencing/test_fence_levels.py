"""Fence levels: the inventory's ``levels:`` (and the ``bmc:`` shorthand), and the procedure over them
with the fake driver and a fake clock: a level is confirmed only when every device in it is, the
first confirmed level ends fencing, and every failed level is reported with its reason."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from petguard import errors
from petguard.fencing import inventory, procedure
from petguard.fencing.base import FenceDevice, FenceDriver, FenceResult, FenceTopology, PowerState
from petguard.fencing.child import FenceRunner
from petguard.fencing.fake import Behaviour, FakeDriver, FakeRegistry
from tests.fakes import FakeClock

SOURCE = Path("/etc/petguard/inventory.yaml")
DRIVERS = frozenset({"ipmi", "redfish", "fenceagent", "fake"})
SECRET = "pw-Zq8-never-logged"
POLICY = procedure.FencePolicy(
    attempt_timeout=5.0, deadline=10.0, poll_interval=1.0, off_readings_required=3, retries=1, resend_after=5.0
)


def secrets(path: Path) -> inventory.SecretFile:
    return inventory.SecretFile(text=SECRET + "\n", mode=0o600)


def parse(text: str) -> tuple[dict[str, FenceTopology], list[str]]:
    found, problems = inventory.parse_inventory(textwrap.dedent(text), SOURCE, secrets, DRIVERS)
    return found, [p.message for p in problems if p.severity is inventory.Severity.ERROR]


# -- inventory ----------------------------------------------------------------------------------


def test_levels_in_order_with_dual_supplies_and_a_delay() -> None:
    found, problems = parse(
        """
        hosts:
          cmp1:
            delay: 2.5
            levels:
              - [{driver: ipmi, address: 10.0.0.1, username: admin, password_file: pw}]
              - - {driver: fenceagent, agent: fence_apc_snmp, address: pdu-a, username: apc,
                   password_file: pw, options: {plug: 3}}
                - {driver: fenceagent, agent: fence_apc_snmp, address: pdu-b, username: apc,
                   password_file: pw, options: {plug: 3}}
              - {driver: redfish, address: bmc.example, username: root, password: x,
                 options: {system: /redfish/v1/Systems/1}}
        """
    )

    assert problems == []
    topology = found["cmp1"]
    assert topology.delay == 2.5
    assert [len(level) for level in topology.levels] == [1, 2, 1]
    ipmi, (pdu_a, pdu_b), redfish = topology.levels[0][0], topology.levels[1], topology.levels[2][0]
    assert (ipmi.driver, ipmi.port, ipmi.password) == ("ipmi", 623, SECRET)
    assert (pdu_a.address, pdu_b.address, pdu_a.port) == ("pdu-a", "pdu-b", 0)
    assert pdu_a.options == {"plug": "3", "agent": "fence_apc_snmp"}
    assert (redfish.port, redfish.options["system"]) == (443, "/redfish/v1/Systems/1")
    assert [(lv, n) for lv, n, _ in topology.devices()] == [(1, 1), (2, 1), (2, 2), (3, 1)]


def test_bmc_shorthand_is_one_level_of_one_device() -> None:
    found, problems = parse(
        "hosts:\n  cmp1:\n    bmc: {driver: ipmi, address: 10.0.0.1, username: admin, password: p}\n"
    )

    assert problems == []
    assert found["cmp1"] == FenceTopology.single(found["cmp1"].levels[0][0])
    assert found["cmp1"].delay == 0.0


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("levels: []", "cmp1: levels must be a non-empty list"),
        ("levels: {a: 1}", "cmp1: levels must be a non-empty list"),
        ("levels: [[]]", "cmp1: levels[1] must be a device mapping or a non-empty list"),
        ("levels: [3]", "cmp1: levels[1] must be a device mapping"),
        (
            "levels: [[{driver: ipmi, address: a, username: u, password: p}], [{driver: ipmi, address: b}]]",
            "cmp1: levels[2][1].username is missing",
        ),
        (
            "levels: [[{driver: ipmi, address: a, username: u, password: p, colour: red}]]",
            "cmp1: levels[1][1].colour is not a known key",
        ),
        (
            "levels: [[{driver: fenceagent, agent: 7, address: a, username: u, password: p}]]",
            "levels[1][1].agent must be a fence agent's name",
        ),
        (
            "bmc: {driver: ipmi, address: a, username: u, password: p}\n    levels: []",
            "cmp1: bmc and levels are both set",
        ),
        ("delay: 3", "cmp1: bmc is missing"),
        ("delay: -1\n    bmc: {driver: ipmi, address: a, username: u, password: p}", "cmp1: delay must be"),
        ("delay: soon\n    bmc: {driver: ipmi, address: a, username: u, password: p}", "cmp1: delay must be"),
    ],
)
def test_level_problems_are_named_and_the_host_is_left_out(host: str, words: str) -> None:
    found, problems = parse(f"hosts:\n  cmp1:\n    {host}\n")

    assert found == {}
    assert any(words in p for p in problems), problems
    assert all(str(SOURCE) in p and ";" in p for p in problems)  # where, what, then how to fix


def test_every_bad_level_is_reported_at_once() -> None:
    _, problems = parse(
        """
        hosts:
          cmp1:
            levels:
              - [{driver: ipmi, address: a}]
              - [{driver: ipmi, username: u, password: p}]
        """
    )

    assert any("levels[1][1].username" in p for p in problems)
    assert any("levels[2][1].address" in p for p in problems)


# -- procedure over levels ----------------------------------------------------------------------


def device(address: str, host: str = "cmp1") -> FenceDevice:
    return FenceDevice(host=host, driver="fake", address=address, port=623, username="admin", password=SECRET)


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def driver(registry: FakeRegistry) -> FakeDriver:
    return FakeDriver(registry)


def fence(
    topology: FenceTopology, driver: FakeDriver, clock: FakeClock, policy: procedure.FencePolicy = POLICY
) -> FenceResult:
    def lookup(name: str) -> FenceDriver:
        if name != "fake":
            raise errors.DriverLoadError(f"fence driver {name!r} is not enabled", driver=name)
        return driver

    return procedure.fence_topology(topology, lookup, FenceRunner(lookup), policy, clock, draw=lambda top: top / 2)


def test_first_level_fails_and_the_second_confirms(
    registry: FakeRegistry, driver: FakeDriver
) -> None:
    ipmi, pdu = device("10.0.0.1"), device("pdu-1")
    first = registry.script(ipmi.address, ipmi.port, Behaviour.AUTH_FAILS)
    second = registry.script(pdu.address, pdu.port)
    clock = FakeClock()

    outcome = fence(FenceTopology("cmp1", ((ipmi,), (pdu,))), driver, clock)

    assert outcome.confirmed
    assert [lv.confirmed for lv in outcome.levels] == [False, True]
    assert first.calls == ["power_off"] and second.calls[0] == "power_off"
    assert outcome.reason.startswith("fence level 2 of 2 (after 1 failed level(s)): power read back OFF")
    [failed] = outcome.failed_levels
    assert failed.startswith("fence level 1 failed: fake://admin@10.0.0.1:623 (host cmp1): power-off failed")
    assert "refused the credentials" in failed and SECRET not in failed


def test_a_level_is_confirmed_only_when_every_device_is_off(registry: FakeRegistry, driver: FakeDriver) -> None:
    psu_a, psu_b = device("pdu-a"), device("pdu-b")
    a = registry.script(psu_a.address, psu_a.port)
    b = registry.script(psu_b.address, psu_b.port, Behaviour.STUCK_ON)
    clock = FakeClock()

    outcome = fence(FenceTopology("cmp1", ((psu_a, psu_b),)), driver, clock)

    assert not outcome.confirmed
    [level] = outcome.levels
    assert [d.confirmed for d in level.devices] == [True, False]
    assert level.reason.startswith("1 of 2 devices not confirmed: fake://admin@pdu-b:623")
    assert "still reports ON" in level.reason
    # power-off went to both devices before anything was read back; the one that is off is not read
    # again once confirmed
    assert a.calls[:1] == b.calls[:1] == ["power_off"]
    assert a.calls.count("power_state") == 3
    assert level.duration_s == pytest.approx(POLICY.deadline)


def test_a_dual_supply_level_confirms_when_both_are_off(registry: FakeRegistry, driver: FakeDriver) -> None:
    psu_a, psu_b = device("pdu-a"), device("pdu-b")
    registry.script(psu_a.address, psu_a.port)
    registry.script(psu_b.address, psu_b.port, Behaviour.POWERING_OFF_FOR_N_READS, n=2)

    outcome = fence(FenceTopology("cmp1", ((psu_a, psu_b),)), driver, FakeClock())

    assert outcome.confirmed
    [level] = outcome.levels
    assert level.devices[1].readings == (PowerState.POWERING_OFF, PowerState.POWERING_OFF, *[PowerState.OFF] * 3)
    assert "all 2 devices read back OFF" in level.reason


def test_every_level_failing_is_not_confirmed_with_each_reason(registry: FakeRegistry, driver: FakeDriver) -> None:
    ipmi, pdu, other = device("10.0.0.1"), device("pdu-1"), FenceDevice("cmp1", "snmp", "x", 1, "u", SECRET)
    registry.script(ipmi.address, ipmi.port, Behaviour.STUCK_ON)
    registry.script(pdu.address, pdu.port, Behaviour.REFUSES_OFF)

    outcome = fence(FenceTopology("cmp1", ((ipmi,), (pdu,), (other,))), driver, FakeClock())

    assert not outcome.confirmed
    assert len(outcome.failed_levels) == 3
    assert "still reports ON" in outcome.failed_levels[0]
    assert "refused power-off" in outcome.failed_levels[1]
    assert "fence driver 'snmp' is not enabled" in outcome.failed_levels[2]
    assert outcome.reason.startswith("every fence level failed (3): level 1: ")
    assert SECRET not in outcome.reason


def test_a_device_failing_for_good_ends_its_level_at_once(registry: FakeRegistry, driver: FakeDriver) -> None:
    psu_a, psu_b = device("pdu-a"), device("pdu-b")
    registry.script(psu_a.address, psu_a.port)
    registry.script(psu_b.address, psu_b.port, Behaviour.AUTH_FAILS)
    clock = FakeClock()
    start = clock.monotonic()

    outcome = fence(FenceTopology("cmp1", ((psu_a, psu_b),)), driver, clock)

    [level] = outcome.levels
    assert not level.confirmed and clock.monotonic() == start
    assert "another device of this level failed" in level.devices[0].reason
    assert "refused the credentials" in level.devices[1].reason


def test_host_delay_and_random_delay_are_waited_before_level_one(registry: FakeRegistry, driver: FakeDriver) -> None:
    bmc = device("10.0.0.1")
    registry.script(bmc.address, bmc.port)
    clock = FakeClock()
    policy = procedure.FencePolicy(deadline=10.0, poll_interval=1.0, off_readings_required=3, random_delay_max=4.0)

    outcome = fence(FenceTopology("cmp1", ((bmc,),), delay=3.0), driver, clock, policy)

    assert outcome.confirmed
    assert outcome.delay_s == pytest.approx(5.0)  # 3 s of the host + half of 4 s (the test's draw)
    assert outcome.duration_s == pytest.approx(5.0 + 2.0)  # then readings at +0, +1, +2


def test_random_delay_stays_in_range() -> None:
    draws = [procedure.random_delay(2.0) for _ in range(200)]

    assert all(0.0 <= d <= 2.0 for d in draws) and len(set(draws)) > 1
    assert procedure.random_delay(0.0) == 0.0


def test_negative_random_delay_is_refused() -> None:
    with pytest.raises(errors.ConfigError):
        procedure.FencePolicy(random_delay_max=-1)
