"""petguard-daemon against the real Nova of ``petguard-lab``: real failures, Nova's real final state.

Each test starts a fresh petguard-daemon process on a fresh journal (fixture ``petguard``), injects
one failure through the lab (power cut, dead nova-compute, RabbitMQ outage, a BMC that refuses
petguard's password, a SIGKILLed daemon, a fenced host powered back on) and asserts what Nova says
at the end: where every server is and in which state, the compute service's forced_down / status /
disabled reason, and the evacuation migrations (``GET /os-migrations?migration_type=evacuation``):
exactly one per pet, none without a confirmed fence. The fixture then puts the lab back (hosts
healed and enabled, servers deleted) for the next test.

Run: ``pytest -m lab -s tests/lab`` (timings printed at the end with ``-s``).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from petguard_lab import Lab

from tests.lab.labkit import (
    TIMINGS,
    Nova,
    Petguard,
    Spec,
    assert_held_by_petguard,
    assert_recovered,
    boot,
    connect,
    host_of,
    nova_epoch,
    pet,
    wait_for,
)

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

#: Seconds from a failure to petguard's end state: Nova's service_down_time (10) + 2 ticks +
#: grace_period (6) + fence (a few s) + evacuations, with a generous margin for a busy machine.
RECOVERY_TIMEOUT = 120


# ------------------------------------------------------------------------------------ power loss


@pytest.mark.fault(
    "LAB-01",
    guarantee="2",
    injected="power cut through the host's BMC (real Nova, 4 servers: pets, a stopped pet, a masakari-tagged one, a "
    "non-pet)",
    expected="every pet on another host in its power state through exactly one evacuation migration, the non-pet "
    "untouched, the host forced down and disabled with petguard's reason",
)
@pytest.mark.fault(
    "LAB-05",
    guarantee="6",
    injected="restore requested in the same breath as the power comes back, before the host's first heartbeat",
    expected="petguard waits for the heartbeat, then un-forces and enables it; a server booted pinned to it goes "
    "ACTIVE",
)
def test_power_loss_pets_evacuated_exactly_once(
    lab: Lab, nova: Nova, petguard: Petguard, assets: tuple[str, str], hosts: tuple[str, list[str]]
) -> None:
    victim, _ = hosts
    specs = [
        pet("db", priority=10),
        Spec("masakari", {"HA_Enabled": "True"}),
        pet("stopped", stopped=True),
        Spec("plain"),
    ]
    ids = boot(nova, *assets, victim, specs)
    petguard.start()

    since = time.time()
    started = time.monotonic()
    lab.fail(victim, "power")
    done = petguard.wait_state(victim, "evacuated", RECOVERY_TIMEOUT)
    TIMINGS["power loss -> pets recovered (petguard: evacuated)"] = done - started

    assert_recovered(nova, ids, specs, victim, since)
    assert_held_by_petguard(nova, victim)
    assert not lab.bmc_power(victim)
    assert [e.kind for e in petguard.events("fence_confirmed")] == ["fence_confirmed"]

    # Back at once: power on and restore in the same breath (petguard waits for the heartbeat).
    restoring = time.monotonic()
    lab.heal(victim)
    petguard.request(victim, "restore", "power is back")
    petguard.wait_state(victim, "up", 120)
    TIMINGS["heal + immediate restore -> up and enabled"] = time.monotonic() - restoring
    _assert_schedulable(nova, assets, victim)


def _assert_schedulable(nova: Nova, assets: tuple[str, str], host: str) -> None:
    """The restored host really takes servers again: a boot pinned to it goes ACTIVE (Nova keeps
    the COMPUTE_STATUS_DISABLED trait, and refuses the host, if it was enabled too early)."""
    service = nova.service(host)
    assert service["state"] == "up" and service["status"] == "enabled" and not service["forced_down"], service
    assert service["disabled_reason"] is None
    ids = boot(nova, *assets, host, [Spec("after-restore")])
    assert host_of(nova.server(ids["after-restore"])) == host


# ------------------------------------------------------------------- nova-compute dies, power on


@pytest.mark.fault(
    "DET-01",
    guarantee="1",
    injected="only nova-compute dies; the host keeps its power",
    expected="petguard cuts its power through the BMC, then each pet is evacuated once",
)
def test_dead_compute_on_live_power_never_evacuated_before_power_is_off(
    lab: Lab, nova: Nova, petguard: Petguard, assets: tuple[str, str], hosts: tuple[str, list[str]]
) -> None:
    """Only nova-compute dies; the host keeps its power. Whatever petguard decides, no server may
    be evacuated before the BMC's power is off (petguard powers it off through the BMC)."""
    victim, _ = hosts
    specs = [pet("a"), pet("b"), Spec("plain")]
    ids = boot(nova, *assets, victim, specs)
    petguard.start()
    power_file = lab.cfg.bmc_host_dir(victim) / "power"
    calls_log = lab.cfg.bmc_host_dir(victim) / "calls.log"
    calls_before = calls_log.stat().st_size if calls_log.exists() else 0

    # A watcher with its own connection: the moment each migration is first seen, was power off?
    stop = threading.Event()
    seen: dict[str, tuple[float, bool]] = {}
    watcher_nova = Nova(connect(lab))
    since = time.time()

    def watch() -> None:
        while not stop.is_set():
            power = lab.bmc_power(victim)
            for m in watcher_nova.evacuations(victim, since, ids.values()):
                seen.setdefault(m["uuid"], (time.time(), power))
            stop.wait(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    started = time.monotonic()
    lab.fail(victim, "process")
    assert lab.bmc_power(victim)  # the host is still powered: only the service died
    try:
        done = petguard.wait_state(victim, "evacuated", RECOVERY_TIMEOUT)
    finally:
        stop.set()
        thread.join(10)
    TIMINGS["nova-compute killed (power on) -> fenced and recovered"] = done - started

    assert not lab.bmc_power(victim), "petguard evacuated without powering the host off"
    assert "set power 0" in calls_log.read_text()[calls_before:]  # through the BMC, by petguard
    powered_off_at = power_file.stat().st_mtime
    migrations = nova.evacuations(victim, since, ids.values())
    assert migrations and set(seen) == {m["uuid"] for m in migrations}
    for uuid, (first_seen, power_on) in seen.items():
        assert not power_on, f"migration {uuid} existed while the BMC still reported power on"
        assert powered_off_at < first_seen
    for m in migrations:  # created_at has 1 s resolution (truncated): it can only be checked that far
        assert powered_off_at < nova_epoch(m["created_at"]) + 1
    assert_recovered(nova, ids, specs, victim, since)
    assert_held_by_petguard(nova, victim)


# -------------------------------------------------------------------------------- RabbitMQ outage


@pytest.mark.fault(
    "BRAKE-01",
    guarantee="3",
    injected="every compute stops heartbeating at once, as in a RabbitMQ outage",
    expected="brake engaged, nobody fenced, nothing evacuated; when they heartbeat again every host is up and the "
    "brake released",
)
def test_rabbitmq_outage_fences_nobody(
    lab: Lab, nova: Nova, petguard: Petguard, assets: tuple[str, str], hosts: tuple[str, list[str]]
) -> None:
    """Every compute looks down at once: the brake engages, nobody is fenced, nothing moves; when
    RabbitMQ is back every host is up again and the brake is released."""
    victim, _ = hosts
    ids = boot(nova, *assets, victim, [pet("a")])
    petguard.start()
    computes = lab.compute_names

    since = time.time()
    started = time.monotonic()
    lab.rabbit_stop()
    try:
        wait_for("every compute down in Nova", lambda: all(s["state"] == "down" for s in nova.services().values()), 60)
        braked = wait_for("the brake engaged", lambda: petguard.brake().engaged, 30)
        TIMINGS["RabbitMQ stopped -> brake engaged"] = time.monotonic() - started
        assert braked
        # Longer than grace period + a whole fence: had petguard fenced, it would have by now.
        hold_until = time.monotonic() + 15
        while time.monotonic() < hold_until:
            assert all(lab.bmc_power(h) for h in computes), "a host was powered off during the outage"
            states = {h: petguard.state(h) for h in computes}
            assert set(states.values()) <= {"up", "suspect"}, states
            time.sleep(0.5)
    finally:
        lab.rabbit_start()
    back = time.monotonic()
    lab.wait_computes_up(timeout=120)
    wait_for("petguard: every host up", lambda: all(petguard.state(h) == "up" for h in computes), 60)
    wait_for("the brake released", lambda: not petguard.brake().engaged, 30)
    TIMINGS["RabbitMQ back -> every host up in petguard, brake released"] = time.monotonic() - back

    assert all(lab.bmc_power(h) for h in computes)
    assert nova.evacuations(victim, since) == []
    assert host_of(nova.server(ids["a"])) == victim
    assert all(not s["forced_down"] and s["status"] == "enabled" for s in nova.services().values())
    kinds = [e.kind for e in petguard.events()]
    assert "brake_engaged" in kinds and "brake_released" in kinds, kinds
    assert not {"fence_confirmed", "awaiting_confirm"} & set(kinds), kinds
    engaged = petguard.events("brake_engaged")[0].message
    assert "look down at once" in engaged or "suspect at once" in engaged, engaged


# ------------------------------------------------------------------------ BMC refuses petguard


@pytest.mark.fault(
    "BMCX-03",
    guarantee="1",
    injected="petguard's BMC password is wrong (the BMC refuses the login)",
    expected="AWAITING_CONFIRM, nothing evacuated, the host keeps its power",
)
@pytest.mark.fault(
    "OP-01",
    guarantee="1",
    injected="an operator's confirm-fenced on a host in AWAITING_CONFIRM (its fence could not be confirmed)",
    expected="nothing is evacuated before it; its pets are evacuated after it",
)
def test_wrong_bmc_password_waits_for_operator_then_confirm_fenced(
    lab: Lab, nova: Nova, petguard: Petguard, assets: tuple[str, str], hosts: tuple[str, list[str]], tmp_path: Path
) -> None:
    """petguard cannot log in to the BMC: no evacuation, the host waits in awaiting_confirm; the
    operator powers it off by other means and confirms; then the pets are evacuated."""
    victim, _ = hosts
    wrong = tmp_path / f"bmc-{victim}.password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(lab.inventory_file.read_text().replace(str(lab.cfg.bmc_password_file(victim)), str(wrong)))
    petguard.inventory = inventory
    petguard.write_conf()
    specs = [pet("a"), pet("b", stopped=True)]
    ids = boot(nova, *assets, victim, specs)
    petguard.start()

    since = time.time()
    started = time.monotonic()
    lab.fail(victim, "process")  # nova-compute dies; the host (as far as anyone knows) runs on
    waiting = petguard.wait_state(victim, "awaiting_confirm", RECOVERY_TIMEOUT)
    TIMINGS["wrong BMC password: failure -> awaiting_confirm"] = waiting - started
    time.sleep(3)  # and it stays there
    assert petguard.state(victim) == "awaiting_confirm"
    assert nova.evacuations(victim, since) == []
    assert all(host_of(nova.server(sid)) == victim for sid in ids.values())
    assert not nova.service(victim)["forced_down"]
    assert lab.bmc_power(victim)  # petguard could not touch it
    reasons = [e.message for e in petguard.events("awaiting_confirm")]
    assert reasons and "credentials" in reasons[0], reasons

    lab.fail(victim, "power")  # the operator powers it off by hand ...
    confirmed = time.monotonic()
    petguard.request(victim, "confirm-fenced", "powered off by hand, checked in the lab")  # ... and says so
    done = petguard.wait_state(victim, "evacuated", RECOVERY_TIMEOUT)
    TIMINGS["confirm-fenced -> pets recovered"] = done - confirmed
    assert_recovered(nova, ids, specs, victim, since)
    assert_held_by_petguard(nova, victim)


# ----------------------------------------------------------------- daemon killed mid-evacuation


@pytest.mark.fault(
    "LAB-04",
    guarantee="2",
    injected="petguard-daemon SIGKILLed just after Nova shows the first evacuation migration (7 pets), then restarted",
    expected="the restarted daemon finishes: each pet moved by exactly one evacuation migration, the host held forced "
    "down",
)
def test_daemon_sigkilled_mid_evacuation_resumes_exactly_once(
    lab: Lab, nova: Nova, petguard: Petguard, assets: tuple[str, str], hosts: tuple[str, list[str]]
) -> None:
    victim, _ = hosts
    specs = [pet(f"p{i}", priority=i) for i in range(6)] + [pet("off", stopped=True)]
    ids = boot(nova, *assets, victim, specs)
    petguard.start()

    since = time.time()
    started = time.monotonic()
    lab.fail(victim, "power")
    wait_for(
        "the first evacuation migration", lambda: nova.evacuations(victim, since, ids.values()), RECOVERY_TIMEOUT, 0.05
    )
    killed_pid = petguard.kill()
    assert killed_pid is not None
    at_kill = nova.evacuations(victim, since, ids.values())
    assert petguard.state(victim) == "evacuating"
    unfinished = [n for n, sid in ids.items() if host_of(nova.server(sid)) == victim]
    assert unfinished, "every pet had already moved when the daemon was killed: the test proved nothing"

    petguard.start(wait_watching=False)
    done = petguard.wait_state(victim, "evacuated", RECOVERY_TIMEOUT)
    TIMINGS["SIGKILL mid-evacuation + restart -> pets recovered"] = done - started
    TIMINGS[f"  (migrations at the kill: {len(at_kill)} of {len(specs)})"] = 0.0
    assert_recovered(nova, ids, specs, victim, since)
    assert_held_by_petguard(nova, victim)


# ------------------------------------------------------------------- fenced host powered back on


@pytest.mark.fault(
    "DET-02",
    guarantee="6",
    injected="the fenced, evacuated host is powered on again and its nova-compute heartbeats",
    expected="it stays forced down and disabled until an operator's restore; then it is up and enabled",
)
def test_fenced_host_powered_on_stays_out_until_restore(
    lab: Lab, nova: Nova, petguard: Petguard, assets: tuple[str, str], hosts: tuple[str, list[str]]
) -> None:
    victim, _ = hosts
    specs = [pet("a"), pet("b", stopped=True)]
    ids = boot(nova, *assets, victim, specs)
    petguard.start()
    since = time.time()
    lab.fail(victim, "power")
    petguard.wait_state(victim, "evacuated", RECOVERY_TIMEOUT)

    healed = time.time()
    started = time.monotonic()
    lab.heal(victim)
    wait_for(
        "migrations completed (the source cleaned up)",
        lambda: all(m["status"] == "completed" for m in nova.evacuations(victim, since, ids.values())),
        60,
    )
    TIMINGS["heal -> evacuation migrations completed"] = time.monotonic() - started
    wait_for("a heartbeat after the heal", lambda: nova_epoch(nova.service(victim)["updated_at"]) > healed, 60)
    time.sleep(3)  # a few ticks: petguard must not return it on its own
    assert_held_by_petguard(nova, victim)
    assert petguard.state(victim) == "evacuated"

    requested = time.monotonic()
    petguard.request(victim, "restore", "host repaired")
    petguard.wait_state(victim, "up", 120)
    TIMINGS["restore request -> up and enabled"] = time.monotonic() - requested
    _assert_schedulable(nova, assets, victim)
    assert len(nova.evacuations(victim, since, ids.values())) == len(specs)
    incidents = petguard.store.incidents(host=victim)
    assert incidents[0].outcome == "recovered" and incidents[0].closed_at is not None
    # The guests left on the source were destroyed; the pets run where petguard put them.
    for spec in specs:
        server = nova.server(ids[spec.name])
        assert host_of(server) != victim and server["status"] == ("SHUTOFF" if spec.stopped else "ACTIVE")
