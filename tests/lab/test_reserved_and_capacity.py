"""Issue 7's reserved failover hosts, target hints and capacity check against the real Nova scheduler
and placement of ``petguard-lab``.

One power cut serves the reserved-host and hint tests (fixture ``failover``, module scope). With the
victim V and the other computes R, A and D:

* R is a reserved failover host (``[evacuation] reserved_hosts = R``, ``use_reserved_hosts = true``),
  disabled in Nova beforehand with an operator's reason, as docs/evacuation.md tells operators;
* A is the only host of the aggregate ``pg-lab-target``; D, disabled by an operator, is the only host of
  ``pg-lab-off``; ``pg-lab-nosuch`` does not exist;
* V holds ``res-1``, ``res-2`` (no hint of their own: ``reserved`` by ``use_reserved_hosts``), ``agg``
  (``petguard:target=aggregate:pg-lab-target``), ``unmet-off`` (``aggregate:pg-lab-off``) and
  ``unmet-nosuch`` (``aggregate:pg-lab-nosuch``).

A watcher with its own connection reads R's compute service during the incident (Nova's own record
that R was enabled); at the end the victim is powered on and restored through ``petguard-manage
request``.

The capacity test needs no failure: pets on V, then the other computes disabled in Nova (the fake
computes are far too large to fill), read and checked directly (``read_capacity_inputs`` +
``capacity.check``) and by the daemon's capacity duty (``GET /v1/status``, events).

Run: ``PYTHONPATH=<this worktree> pytest -m lab -s tests/lab/test_reserved_and_capacity.py``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from petguard_lab import Lab

from petguard.cli.client import read_token
from petguard.evacuate import capacity
from petguard.evacuate.capacity import CapacityReport, Verdict
from petguard.evacuate.plan import EvacuationPolicy
from petguard.evacuate.reserved import returned_reason
from petguard.journal import EventRecord, MoveRecord, ReservedHost, ReservedState
from petguard.nova import compute as nova_adapter
from petguard.nova import placement
from tests.lab.labkit import (
    PREFIX,
    TEST_OPTIONS,
    TIMINGS,
    Nova,
    Petguard,
    Spec,
    boot,
    connect,
    host_of,
    restore_lab,
    wait_for,
)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]

PET = {"petguard:pet": "true"}
OPERATOR_RESERVED = "reserved failover host (petguard)"  # docs/evacuation.md "Preparing a reserved host"
OPERATOR_OFF = "lab: draining for a BIOS update"
API_URL = "http://127.0.0.1:18786"  # the lab's petguard.conf: [api] bind
#: The smallest [capacity] interval petguard accepts (service.MIN_CAPACITY_INTERVAL).
CAPACITY_INTERVAL = 10.0


def _recovery_timeout(lab: Lab) -> float:
    """Power cut -> evacuated (one wave), doubled for the other engineers' load on the CPU."""
    detection = lab.cfg.service_down_time + float(TEST_OPTIONS["detection"]["grace_period"])
    return 2 * (detection + float(TEST_OPTIONS["fencing"]["deadline"]) + 30)


class ServiceWatcher(threading.Thread):
    """Reads one compute service in Nova, with its own connection, until halted: every (status,
    disabled_reason) it saw, in order, each once per change."""

    def __init__(self, lab: Lab, host: str) -> None:
        super().__init__(daemon=True)
        self.nova = Nova(connect(lab))
        self.host = host
        self.seen: list[tuple[str, str | None]] = []
        self.halt = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                service = self.nova.service(self.host)
                state = (str(service["status"]), service["disabled_reason"])
                if not self.seen or self.seen[-1] != state:
                    self.seen.append(state)
                self.halt.wait(0.1)
        except Exception as exc:  # reported by the test that reads what it saw
            self.error = exc


@dataclasses.dataclass(frozen=True)
class Failover:
    """What Nova and petguard's journal say once petguard has evacuated the victim."""

    victim: str
    reserved: str  # R
    target: str  # A, the only host of pg-lab-target
    off: str  # D, disabled, the only host of pg-lab-off
    incident_id: int
    ids: Mapping[str, str]  # name (after PREFIX-) -> server id
    servers: Mapping[str, Mapping[str, Any]]  # name -> Nova's server after the evacuation
    migrations: Mapping[str, list[Mapping[str, Any]]]  # name -> its evacuation migrations from the victim
    moves: Mapping[str, MoveRecord]  # name -> journal move
    reserved_seen: list[tuple[str, str | None]]  # R's (status, disabled reason) during the incident
    reserved_after: Mapping[str, Any]  # R's compute service once the victim is evacuated
    reserved_rows: Mapping[str, ReservedHost]  # the journal's reserved_hosts rows
    events: list[EventRecord]
    log: Path

    def events_about(self, kind: str, name: str) -> list[EventRecord]:
        return [e for e in self.events if e.kind == kind and e.message.startswith(f"{PREFIX}-{name} ")]

    def assert_evacuated_once(self, name: str) -> str:
        """ACTIVE elsewhere, with exactly one evacuation migration that ended where it is; its host."""
        server = self.servers[name]
        where = f"{name}: {server['status']} on {host_of(server)} {server.get('fault', '')}; petguard's log: {self.log}"
        assert server["status"] == "ACTIVE" and server["OS-EXT-STS:task_state"] is None, where
        assert host_of(server) not in ("", self.victim), where
        migrations = self.migrations.get(name, [])
        assert len(migrations) == 1, f"{name}: {migrations}"
        assert migrations[0]["dest_compute"] == host_of(server), migrations
        assert migrations[0]["status"] in ("done", "completed"), migrations
        return host_of(server)

    def assert_asked_for(self, name: str, hint: str, target: str | None) -> None:
        """petguard's journal: the move followed ``hint`` and asked Nova for ``target`` (None: it fell
        back to the scheduler's choice). Nova's scheduler may pick the hinted host on its own, so where
        the pet landed does not show on its own that the hint was followed."""
        move = self.moves[name]
        assert (move.hint, move.target_host, move.fell_back) == (hint, target, target is None), move


def _specs() -> list[Spec]:
    return [
        Spec("res-1", PET),
        Spec("res-2", PET),
        Spec("agg", {**PET, "petguard:target": f"aggregate:{PREFIX}-target"}),
        Spec("unmet-off", {**PET, "petguard:target": f"aggregate:{PREFIX}-off"}),
        Spec("unmet-nosuch", {**PET, "petguard:target": f"aggregate:{PREFIX}-nosuch"}),
    ]


@pytest.fixture(scope="module")
def failover(
    lab: Lab,
    nova: Nova,
    assets: tuple[str, str],
    hosts: tuple[str, list[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Failover]:
    victim, others = hosts
    assert len(others) >= 3, "the lab needs 4 computes: the victim, a reserved one, a target, a disabled one"
    reserved, target, off = others[:3]
    options = {"evacuation": {"reserved_hosts": reserved, "use_reserved_hosts": "true"}}
    daemon = Petguard(lab, tmp_path_factory.mktemp("reserved-hosts"), options=options)
    watcher = ServiceWatcher(lab, reserved)
    try:
        # as an operator would: the reserved host and a host under maintenance out of scheduling
        nova.update_service(reserved, {"status": "disabled", "disabled_reason": OPERATOR_RESERVED})
        nova.update_service(off, {"status": "disabled", "disabled_reason": OPERATOR_OFF})
        nova.create_aggregate("target", [target])
        nova.create_aggregate("off", [off])
        ids = boot(nova, *assets, victim, _specs())
        daemon.start()

        watcher.start()
        since = time.time()
        started = time.monotonic()
        lab.fail(victim, "power")
        done = daemon.wait_state(victim, "evacuated", _recovery_timeout(lab))
        TIMINGS["power loss -> 5 pets recovered (reserved host, hints) (evacuated)"] = done - started
        time.sleep(0.5)  # let the watcher see the service as the give-back left it
        watcher.halt.set()
        watcher.join(10)
        assert watcher.error is None, f"the service watcher stopped: {watcher.error!r}"

        names = {sid: name for name, sid in ids.items()}
        incident_id = daemon.store.incidents(host=victim)[0].id
        migrations: dict[str, list[Mapping[str, Any]]] = {}
        for m in nova.evacuations(victim, since, ids.values()):
            migrations.setdefault(names[m["instance_uuid"]], []).append(m)
        facts = Failover(
            victim=victim,
            reserved=reserved,
            target=target,
            off=off,
            incident_id=incident_id,
            ids=ids,
            servers={name: nova.server(sid) for name, sid in ids.items()},
            migrations=migrations,
            moves={names[m.server_id]: m for m in daemon.store.moves(incident_id)},
            reserved_seen=list(watcher.seen),
            reserved_after=nova.service(reserved),
            reserved_rows={r.host: r for r in daemon.store.reserved_hosts()},
            events=daemon.events(),
            log=daemon.log,
        )

        # The failed host back in service through petguard's CLI, as an operator would once it is repaired.
        restoring = time.monotonic()
        lab.heal(victim)
        daemon.request(victim, "restore", "lab: power is back")
        daemon.wait_state(victim, "up", 120)
        wait_for(f"{victim} enabled in Nova", lambda: _in_service(nova.service(victim)), 60)
        TIMINGS["  heal + restore request -> up and enabled"] = time.monotonic() - restoring
    finally:
        # before the tests: the facts are read, and the capacity test starts a daemon of its own
        watcher.halt.set()
        daemon.stop()
        daemon.close()
        restore_lab(lab, nova)
        nova.delete_servers()
        nova.delete_aggregates()
    yield facts


def _in_service(service: Mapping[str, Any]) -> bool:
    return service["state"] == "up" and service["status"] == "enabled" and not service["forced_down"]


@pytest.mark.fault(
    "GRP-12",
    guarantee="4",
    injected="a host fails with pets that ask for a reserved failover host (disabled in Nova by the operator)",
    expected="one reserved host enabled for the incident, the pets moved onto it once each, then disabled again with "
    "petguard's reason and idle",
)
def test_reserved_host_enabled_used_and_returned(failover: Failover) -> None:
    # enabled during the incident, in Nova's own record, then disabled again with petguard's reason
    seen = failover.reserved_seen
    assert seen[0] == ("disabled", OPERATOR_RESERVED), seen
    assert ("enabled", None) in seen, f"{failover.reserved} was never seen enabled: {seen}"
    reason = returned_reason(failover.incident_id)
    assert seen[-1] == ("disabled", reason), seen
    assert failover.reserved_after["status"] == "disabled", failover.reserved_after
    assert failover.reserved_after["disabled_reason"] == reason, failover.reserved_after
    # used: both pets that follow use_reserved_hosts are on it, each moved by one migration
    for name in ("res-1", "res-2"):
        assert failover.assert_evacuated_once(name) == failover.reserved, failover.servers[name]
        failover.assert_asked_for(name, "reserved", failover.reserved)
    # returned in the journal, and said so
    row = failover.reserved_rows[failover.reserved]
    assert row.state is ReservedState.IDLE and row.incident_id is None, row
    kinds = [e.kind for e in failover.events if e.host == failover.reserved]
    assert kinds == ["reserved_host_borrowed", "reserved_host_returned"], failover.events
    assert all(e.incident_id == failover.incident_id for e in failover.events if e.host == failover.reserved)


def test_aggregate_hint_is_followed(failover: Failover) -> None:
    assert failover.assert_evacuated_once("agg") == failover.target, failover.servers["agg"]
    failover.assert_asked_for("agg", f"aggregate:{PREFIX}-target", failover.target)
    assert failover.events_about("target_hint_unmet", "agg") == []


@pytest.mark.parametrize(
    ("name", "why"),
    [
        pytest.param(
            "unmet-off",
            f"no host of aggregate:{PREFIX}-off is up, enabled and not forced down",
            marks=pytest.mark.fault(
                "GRP-07",
                guarantee="4",
                injected="a pet's aggregate hint whose every host is disabled",
                expected="evacuated once by the scheduler's choice; one target_hint_unmet saying no host of the "
                "aggregate is up, enabled and not forced down",
            ),
        ),
        pytest.param(
            "unmet-nosuch",
            f"Nova has no host aggregate named '{PREFIX}-nosuch'",
            marks=pytest.mark.fault(
                "GRP-08",
                guarantee="4",
                injected="a pet's aggregate hint naming an aggregate Nova does not have",
                expected="evacuated once by the scheduler's choice; one target_hint_unmet saying Nova has no such "
                "aggregate",
            ),
        ),
    ],
)
def test_unmet_aggregate_hint_falls_back_to_the_scheduler_and_says_why(failover: Failover, name: str, why: str) -> None:
    landed = failover.assert_evacuated_once(name)
    failover.assert_asked_for(name, f"aggregate:{PREFIX}-{name.removeprefix('unmet-')}", None)
    assert landed != failover.off, f"{name} landed on the disabled {failover.off}"
    events = failover.events_about("target_hint_unmet", name)
    assert len(events) == 1, [e.message for e in failover.events]
    assert why in events[0].message and "using the scheduler's choice" in events[0].message, events[0].message
    # the scheduler chose among the enabled hosts: the borrowed reserved host and the target host
    assert failover.migrations[name][0]["dest_compute"] in (failover.reserved, failover.target)


# ------------------------------------------------------------------------------------- capacity


def _check_now(lab: Lab, reserved_hosts: frozenset[str] = frozenset()) -> CapacityReport:
    """One capacity check as the daemon does it, through petguard's own adapter, with the lab's policy:
    ``shared_storage = true`` (labkit.TEST_OPTIONS). With the default policy (no shared storage, local
    disks evacuated only with ``petguard:allow_data_loss=true``) the image-booted test pets would stay
    behind in a failure, so they need no room and the check finds no pets at all."""
    compute = nova_adapter.connect("petguard-lab", str(lab.clouds_yaml))
    hosts = placement.read_capacity_inputs(compute, reserved_hosts=reserved_hosts, maintenance=set())
    return capacity.check(hosts, EvacuationPolicy(shared_storage=True), time.time())


def _status(lab: Lab) -> dict[str, Any]:
    token = read_token(lab.cfg.petguard_dir / "api-token")
    request = urllib.request.Request(f"{API_URL}/v1/status", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
    return body


def _wait_verdict(lab: Lab, verdict: Verdict, after: float) -> dict[str, Any]:
    """The daemon's capacity report once a check made after ``after`` has ``verdict``."""

    def reached() -> dict[str, Any] | None:
        report: dict[str, Any] = _status(lab)["capacity"]
        fresh = (report["checked_at"] or 0) >= after
        return report if fresh and report["verdict"] == verdict.value else None

    return wait_for(f"petguard status capacity {verdict.value}", reached, 3 * CAPACITY_INTERVAL + 30, interval=0.5)


@pytest.mark.fault(
    "GRP-19",
    guarantee="4",
    injected="every other compute disabled: the pets on a host no longer fit anywhere",
    expected="capacity short (naming the host, pets and missing resources), a capacity_short event once; ok and "
    "capacity_ok once room is back",
)
def test_capacity_check_flips_when_the_lab_is_too_small(
    lab: Lab, nova: Nova, petguard: Petguard, assets: tuple[str, str], hosts: tuple[str, list[str]]
) -> None:
    victim, others = hosts
    boot(nova, *assets, victim, [Spec("cap-1", PET), Spec("cap-2", PET), Spec("cattle")])
    petguard.options = {"capacity": {"interval": f"{CAPACITY_INTERVAL:g}"}}
    petguard.write_conf()
    petguard.start()

    # ok: the other computes have room (far more than two small pets need)
    report = _check_now(lab)
    assert report.verdict is Verdict.OK, report.details()
    assert [(h.host, h.pets) for h in report.hosts] == [(victim, 2)], report.hosts
    _wait_verdict(lab, Verdict.OK, 0)

    # short: every other compute disabled, as an operator would (Nova keeps their room, nothing may use it)
    for host in others:
        nova.update_service(host, {"status": "disabled", "disabled_reason": "lab: capacity test"})
    disabled = time.time()
    started = time.monotonic()
    report = _check_now(lab)
    assert report.verdict is Verdict.SHORT, report.details()
    (short,) = report.short
    assert short.host == victim and short.pets == 2, short
    assert sorted(short.unplaced) == [f"{PREFIX}-cap-1", f"{PREFIX}-cap-2"], short
    flavor = nova.sdk.compute.get_flavor(assets[0])
    assert short.missing == {"VCPU": 2 * flavor.vcpus, "MEMORY_MB": 2 * flavor.ram, "DISK_GB": 2 * flavor.disk}, short
    assert {h: report.not_counted.get(h) for h in others} == dict.fromkeys(others, "its nova-compute is disabled")
    status = _wait_verdict(lab, Verdict.SHORT, disabled)
    TIMINGS["computes disabled -> petguard status capacity short"] = time.monotonic() - started
    assert [h["host"] for h in status["short"]] == [victim], status
    assert status["short"][0]["missing"] == short.missing, status
    alerts = wait_for("a capacity_short event", lambda: petguard.events("capacity_short"), 10)
    assert len(alerts) == 1 and victim in alerts[0].message and "MEMORY_MB" in alerts[0].message, alerts

    # a disabled host listed as reserved counts again: petguard would enable it for a failure
    report = _check_now(lab, reserved_hosts=frozenset(others[:1]))
    assert report.verdict is Verdict.OK, report.details()
    assert others[0] not in report.not_counted, report.not_counted

    # room back: ok, and a capacity_ok event
    for host in others:
        nova.update_service(host, {"status": "enabled"})
    enabled = time.time()
    started = time.monotonic()
    assert _check_now(lab).verdict is Verdict.OK
    _wait_verdict(lab, Verdict.OK, enabled)
    TIMINGS["computes enabled -> petguard status capacity ok"] = time.monotonic() - started
    wait_for("a capacity_ok event", lambda: petguard.events("capacity_ok"), 10)
    assert len(petguard.events("capacity_short")) == 1
