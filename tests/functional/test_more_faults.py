"""Faults the issue names that had no test: several hosts failing together, the evacuees' new host
dying, a host failing again around its restore, operators' requests in the middle of an incident, a
Redfish BMC that stays PoweringOff (sushy-tools), and the journal going away mid-incident (a MariaDB
journal behind a TCP proxy the test cuts, and a tick whose save is refused).

The whole loop, functional: real sqlite journal, real IPMI fencing against one ipmi_sim per host,
the in-memory Nova whose computes live while their BMC keeps them powered. Each test asserts the
guarantees, not just the end state: every pet is evacuated once per incident (one evacuation
migration per server and source host), no host is fenced that should not be, the journal agrees with
Nova, and no failure is dropped.
"""

from __future__ import annotations

import collections
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from petguard.fencing.base import FenceDevice
from petguard.hosts import HostState
from petguard.journal import MoveStatus, RequestKind
from petguard.store import migrate
from petguard.store.engine import StoreUnavailable
from tests.fakes import FakeCompute
from tests.functional.harness import FAST_FENCE, Bmcs, Harness, powered_nova
from tests.functional.redfish_peer import SushyEmulator, new_system
from tests.functional.tcp_proxy import TcpProxy

HOSTS = ["cmp1", "cmp2", "cmp3", "cmp4", "cmp5", "cmp6"]
PET = {"petguard:pet": "true"}


@pytest.fixture
def compute(bmcs: Bmcs) -> FakeCompute:
    nova = powered_nova(bmcs)
    for host in ("cmp1", "cmp2"):
        for n in range(3):
            nova.add_server(f"{host}-pet{n}", host, metadata=PET)
    nova.add_server("cmp3-pet0", "cmp3", metadata=PET)
    return nova


@pytest.fixture
def harness(tmp_path: Path, compute: FakeCompute, bmcs: Bmcs) -> Iterator[Harness]:
    h = Harness(tmp_path, compute, bmcs.devices)
    yield h
    h.close()


def _settle(harness: Harness) -> None:
    harness.run_until(lambda: set(harness.store.load_hosts()) == set(HOSTS), timeout=5)


def _migrations_per_source(compute: FakeCompute) -> collections.Counter[tuple[str, str]]:
    """How many evacuations Nova took for each (server, source host): once per incident each."""
    return collections.Counter((m.server_id, m.source_host) for m in compute.migrations)


def _pets_of(compute: FakeCompute, host: str) -> list[str]:
    return sorted(s for s in compute.servers if s.startswith(f"{host}-pet"))


def _assert_journal_agrees(harness: Harness, compute: FakeCompute, host: str) -> None:
    """Every move of the host's incident is DONE and Nova has the server where the journal says."""
    incident_id = harness.store.load_hosts()[host].host.incident_id
    assert incident_id is not None
    moves = harness.store.moves(incident_id)
    assert moves, f"{host}: no moves recorded"
    for move in moves:
        assert move.status is MoveStatus.DONE, move
        assert compute.servers[move.server_id].host not in (None, host), move


@pytest.mark.fault(
    "MORE-01",
    guarantee="2",
    injected="two of six hosts lose nova-compute at the same moment (below the brake: 33% of hosts, limit 34%)",
    expected="both fenced, each pet evacuated once, none sent to the other dead host, the brake never engaged",
)
def test_two_hosts_failing_at_once_below_the_brake_are_both_recovered(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    compute.dead.update({"cmp1", "cmp2"})

    harness.run_until(
        lambda: harness.state("cmp1") is HostState.EVACUATED and harness.state("cmp2") is HostState.EVACUATED,
        timeout=40,
    )

    assert not bmcs.sims["cmp1"].powered_on and not bmcs.sims["cmp2"].powered_on
    assert all(bmcs.sims[h].powered_on for h in ("cmp3", "cmp4", "cmp5", "cmp6"))
    assert not harness.store.load_brake().engaged
    assert "brake_engaged" not in [e.kind for e in harness.store.events()]
    for host in ("cmp1", "cmp2"):
        _assert_journal_agrees(harness, compute, host)
        for server_id in _pets_of(compute, host):
            assert compute.evacuate_calls[server_id] == 1, server_id
            assert compute.servers[server_id].host in ("cmp3", "cmp4", "cmp5", "cmp6"), server_id
    # Nova was never asked for, nor did it pick, the other dead host.
    assert not [m for m in compute.migrations if m.dest_host in ("cmp1", "cmp2")]
    assert all(target not in ("cmp1", "cmp2") for _, target in compute.evacuate_hosts)
    incidents = {harness.store.load_hosts()[h].host.incident_id for h in ("cmp1", "cmp2")}
    assert len(incidents) == 2, "one incident per failed host"
    harness.run_for(0.5)
    assert all(n == 1 for n in _migrations_per_source(compute).values())


@pytest.mark.fault(
    "MORE-02",
    guarantee="4",
    injected="the host receiving a failed host's pets loses nova-compute just after the first of them arrived",
    expected="it becomes its own incident, is fenced, and its pets (the arrivals too) are evacuated once each; "
    "nothing is left on either dead host",
)
def test_the_host_receiving_the_evacuees_dies_mid_evacuation(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    others = ("cmp3", "cmp4", "cmp5", "cmp6")
    for other in others:
        compute.services[other].status = "disabled"  # the scheduler can only choose cmp2
    compute.evacuation_steps = 8  # slow enough that some of cmp1's pets are still on their way
    compute.dead.add("cmp1")

    def receiver_died() -> bool:
        if "cmp2" not in compute.dead and any(kind == "arrived" for kind, _ in compute.timeline):
            compute.dead.add("cmp2")  # the evacuees' new host dies under them
            for other in others:
                compute.services[other].status = "enabled"
        return "cmp2" in compute.dead

    harness.run_until(receiver_died, timeout=40)
    arrived_on_cmp2 = sorted(s for s, srv in compute.servers.items() if srv.host == "cmp2" and s.startswith("cmp1-"))
    assert arrived_on_cmp2, "the test needs at least one of cmp1's pets on cmp2 when it dies"

    harness.run_until(
        lambda: harness.state("cmp1") is HostState.EVACUATED and harness.state("cmp2") is HostState.EVACUATED,
        timeout=60,
    )
    harness.run_for(0.5)

    assert not bmcs.sims["cmp1"].powered_on and not bmcs.sims["cmp2"].powered_on
    assert all(bmcs.sims[h].powered_on for h in others)
    incidents = {h: harness.store.load_hosts()[h].host.incident_id for h in ("cmp1", "cmp2")}
    assert None not in incidents.values() and incidents["cmp1"] != incidents["cmp2"]
    # Nothing lost: every pet of both hosts lives on a healthy host now.
    for server_id in [*_pets_of(compute, "cmp1"), *_pets_of(compute, "cmp2")]:
        assert compute.servers[server_id].host in others, (server_id, compute.servers[server_id])
        assert compute.servers[server_id].vm_state == "active", server_id
    # Once per incident: a pet that arrived on cmp2 was evacuated once from cmp1 and once from cmp2.
    assert all(n == 1 for n in _migrations_per_source(compute).values()), _migrations_per_source(compute)
    cmp2_moves = {m.server_id for m in harness.store.moves(incidents["cmp2"] or -1)}
    assert set(arrived_on_cmp2) <= cmp2_moves
    for server_id in arrived_on_cmp2:
        assert compute.evacuate_calls[server_id] == 2, server_id
    assert all(m.status is MoveStatus.DONE for m in harness.store.moves(incidents["cmp2"] or -1))
    # cmp1's moves that landed on cmp2 are final in cmp1's journal: DONE (they did arrive).
    assert all(m.status.final for m in harness.store.moves(incidents["cmp1"] or -1))


def _evacuate_and_power_back(harness: Harness, compute: FakeCompute, bmcs: Bmcs, host: str) -> int:
    """Fail ``host``, wait until its pets are evacuated, then power it on with nova-compute running."""
    compute.dead.add(host)
    harness.run_until(lambda: harness.state(host) is HostState.EVACUATED, timeout=40)
    incident_id = harness.store.load_hosts()[host].host.incident_id
    assert incident_id is not None
    bmcs.sims[host].set_power(on=True)
    compute.dead.discard(host)
    return incident_id


@pytest.mark.fault(
    "MORE-03",
    guarantee="4",
    injected="the host dies again while it is RESTORING, just after petguard cleared its forced_down",
    expected="restore_failed alert, forced down again, held (evacuated) with its incident open; a later "
    "restore returns it",
)
def test_a_host_that_dies_again_while_restoring_is_held_and_told(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    incident_id = _evacuate_and_power_back(harness, compute, bmcs, "cmp1")
    unforce = compute.unforce_down

    def unforce_then_die(service):  # type: ignore[no-untyped-def]
        request_id = unforce(service)
        compute.dead.add(service.host)  # the host dies again the moment it was let back
        return request_id

    compute.unforce_down = unforce_then_die  # type: ignore[method-assign]
    harness.store.submit_request("cmp1", RequestKind.RESTORE, "fixed, I think", "test", 0.0)
    harness.run_until(lambda: harness.state("cmp1") is HostState.RESTORING, timeout=10)
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=20)

    failed = [e.message for e in harness.store.events(host="cmp1") if e.kind == "restore_failed"]
    assert len(failed) == 1 and "no heartbeat" in failed[0], failed
    record = harness.store.load_hosts()["cmp1"]
    assert record.host.incident_id == incident_id, "the incident stays open"
    service = compute.services["cmp1"]
    assert service.forced_down and service.status == "disabled"
    assert all(n == 1 for n in compute.evacuate_calls.values())
    assert bmcs.sims["cmp1"].calls().count("set power 0") == 1, "not fenced a second time while held"

    # The operator fixes it for real: restore goes through.
    compute.unforce_down = unforce  # type: ignore[method-assign]
    compute.dead.discard("cmp1")
    harness.store.submit_request("cmp1", RequestKind.RESTORE, "fixed now", "test", 0.0)
    harness.run_until(lambda: harness.state("cmp1") is HostState.UP, timeout=20)


@pytest.mark.fault(
    "CP-18",
    guarantee="4",
    injected="a host returns after one of its pets was asked again (the first request died inside nova-conductor: "
    "its migration stays 'accepted' for ever, as Nova leaves it), and the operator restores it",
    expected="the dead request's migration is not an evacuation still running (its server is settled on another "
    "host): the host is restored and up, each pet moved once",
)
def test_a_dead_requests_migration_does_not_hold_the_restore_for_ever(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    compute.conductor_failures = {"cmp1-pet0-id"}
    _evacuate_and_power_back(harness, compute, bmcs, "cmp1")
    leftover = [m for m in compute.migrations if m.server_id == "cmp1-pet0-id" and m.status == "accepted"]
    assert len(leftover) == 1 and compute.evacuate_calls["cmp1-pet0-id"] == 2, compute.migrations
    harness.store.submit_request("cmp1", RequestKind.RESTORE, "repaired", "test", 0.0)
    harness.run_until(lambda: harness.state("cmp1") is HostState.UP, timeout=30)
    assert not [e for e in harness.store.events(host="cmp1") if e.kind == "restore_failed"]
    assert compute.servers["cmp1-pet0-id"].host not in (None, "cmp1")


@pytest.mark.fault(
    "MORE-04",
    guarantee="4",
    injected="the host dies again the moment its restore enabled it, with a new pet just scheduled on it",
    expected="a new incident: fenced again and the new pet evacuated once; the first incident stays closed",
)
def test_a_host_that_dies_right_after_restore_is_a_new_incident(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    first = _evacuate_and_power_back(harness, compute, bmcs, "cmp1")
    enable = compute.enable

    def enable_then_die(service):  # type: ignore[no-untyped-def]
        request_id = enable(service)
        if service.host == "cmp1" and "cmp1-new-id" not in compute.servers:
            compute.add_server("cmp1-new", "cmp1", metadata=PET)  # scheduled there at once
            compute.dead.add("cmp1")  # ... and the host dies again
        return request_id

    compute.enable = enable_then_die  # type: ignore[method-assign]
    harness.store.submit_request("cmp1", RequestKind.RESTORE, "fixed, I think", "test", 0.0)
    harness.run_until(lambda: "cmp1-new-id" in compute.servers, timeout=20)
    harness.run_until(
        lambda: (
            harness.store.load_hosts()["cmp1"].host.incident_id not in (None, first)
            and harness.state("cmp1") is HostState.EVACUATED
        ),
        timeout=40,
    )

    second = harness.store.load_hosts()["cmp1"].host.incident_id
    assert second is not None and second != first
    assert harness.store.incident(first).closed_at is not None
    assert compute.evacuate_calls["cmp1-new-id"] == 1
    assert compute.servers["cmp1-new-id"].host not in ("cmp1", None)
    assert [m.server_id for m in harness.store.moves(second)] == ["cmp1-new-id"]
    assert all(n == 1 for n in _migrations_per_source(compute).values())
    assert bmcs.sims["cmp1"].calls().count("set power 0") == 2, "fenced once per incident"
    assert not bmcs.sims["cmp1"].powered_on
    kinds = [e.kind for e in harness.store.events(host="cmp1")]
    assert kinds.count("fence_started") == 2 and "host_restored" in kinds


def _answer(harness: Harness, request_id: int) -> tuple[str, str]:
    status = harness.store.request_status(request_id)
    return status.status, status.message


@pytest.mark.fault(
    "MORE-05",
    guarantee="1",
    injected="maintenance and restore requested while petguard is fencing the host (a slow BMC)",
    expected="both refused once the fence is confirmed, naming the host's state; the incident goes on, each pet "
    "evacuated once",
)
def test_maintenance_and_restore_during_fencing_are_refused_without_breaking_the_incident(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    (bmcs.sims["cmp1"].state / "delay_set").write_text("1\n")  # the power-off takes a second
    compute.dead.add("cmp1")
    harness.run_until(lambda: harness.state("cmp1") is HostState.FENCING, timeout=10)
    maintenance = harness.store.submit_request("cmp1", RequestKind.MAINTENANCE_ON, "my host", "op-a", 0.0)
    restore = harness.store.submit_request("cmp1", RequestKind.RESTORE, "it is fine", "op-b", 0.0)
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=40)

    for request_id, kind in ((maintenance, "maintenance_on"), (restore, "restore")):
        status, message = _answer(harness, request_id)
        assert status == "refused", (kind, status, message)
        assert message.startswith(f"{kind} refused: host cmp1 is "), message
    assert not bmcs.sims["cmp1"].powered_on
    _assert_journal_agrees(harness, compute, "cmp1")
    assert all(compute.evacuate_calls[s] == 1 for s in _pets_of(compute, "cmp1"))
    assert compute.services["cmp1"].forced_down and compute.services["cmp1"].status == "disabled"


@pytest.mark.fault(
    "MORE-06",
    guarantee="6",
    injected="maintenance, then restore, requested while the host's pets are being evacuated (host still off)",
    expected="both wait for the evacuation to end: maintenance refused, restore taken and then failed with "
    "restore_failed saying what to do; the host stays forced down, each pet evacuated once",
)
def test_maintenance_and_restore_during_evacuation_wait_and_never_break_it(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    compute.evacuation_steps = 15  # slow evacuations: the operator's requests arrive meanwhile
    compute.dead.add("cmp1")
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATING, timeout=20)
    maintenance = harness.store.submit_request("cmp1", RequestKind.MAINTENANCE_ON, "my host", "op-a", 0.0)
    restore = harness.store.submit_request("cmp1", RequestKind.RESTORE, "return it", "op-b", 0.0)
    harness.run_for(0.3)
    assert harness.state("cmp1") is HostState.EVACUATING, "a request never interrupts an evacuation"

    harness.run_until(lambda: harness.store.request_status(restore).status != "pending", timeout=30)
    status, message = _answer(harness, maintenance)
    assert (status, message) == ("refused", "maintenance_on refused: host cmp1 is evacuated")
    status, message = _answer(harness, restore)
    assert status == "done" and "evacuated -> restoring" in message, message
    # The host is still off: nova-compute cannot clean up, so the restore fails and says why.
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=20)
    failed = [e.message for e in harness.store.events(host="cmp1") if e.kind == "restore_failed"]
    assert len(failed) == 1 and "power the host on" in failed[0], failed
    assert compute.services["cmp1"].forced_down and compute.services["cmp1"].status == "disabled"
    _assert_journal_agrees(harness, compute, "cmp1")
    assert all(compute.evacuate_calls[s] == 1 for s in _pets_of(compute, "cmp1"))


@pytest.mark.fault(
    "MORE-07",
    guarantee="1",
    injected="confirm-fenced for a host that is up, and for one already evacuated",
    expected="both refused naming the host's state; nothing fenced or evacuated by them",
)
def test_confirm_fenced_of_a_host_not_awaiting_confirmation_is_refused(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    up = harness.store.submit_request("cmp3", RequestKind.CONFIRM_FENCED, "wrong host", "op", 0.0)
    harness.run_until(lambda: harness.store.request_status(up).status != "pending", timeout=5)
    assert _answer(harness, up) == ("refused", "confirm_fenced refused: host cmp3 is up")
    assert harness.state("cmp3") is HostState.UP
    assert "cmp3-pet0-id" not in compute.evacuate_calls
    assert not compute.services["cmp3"].forced_down and bmcs.sims["cmp3"].powered_on

    compute.dead.add("cmp1")
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=40)
    late = harness.store.submit_request("cmp1", RequestKind.CONFIRM_FENCED, "pulled the plug", "op", 0.0)
    harness.run_until(lambda: harness.store.request_status(late).status != "pending", timeout=5)
    assert _answer(harness, late) == ("refused", "confirm_fenced refused: host cmp1 is evacuated")
    harness.run_for(0.3)
    assert harness.state("cmp1") is HostState.EVACUATED
    assert all(compute.evacuate_calls[s] == 1 for s in _pets_of(compute, "cmp1"))


@pytest.mark.fault(
    "MORE-08",
    guarantee="2",
    injected="two operators confirm-fenced the same awaiting_confirm host at the same moment",
    expected="one accepted, the other refused naming the new state; each pet evacuated once",
)
def test_two_concurrent_confirmations_one_wins_the_other_is_told(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    bmcs.sims["cmp1"].set_mode("stuck_on")
    compute.dead.add("cmp1")
    harness.run_until(lambda: harness.state("cmp1") is HostState.AWAITING_CONFIRM, timeout=40)
    bmcs.sims["cmp1"].set_power(on=False)  # both operators pulled the plug
    ids: list[int] = []

    def submit(who: str) -> None:
        ids.append(harness.store.submit_request("cmp1", RequestKind.CONFIRM_FENCED, "unplugged", who, 0.0))

    threads = [threading.Thread(target=submit, args=(who,)) for who in ("op-a", "op-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=40)

    answers = sorted(_answer(harness, i) for i in ids)
    assert [a[0] for a in answers] == ["done", "refused"], answers
    assert "awaiting_confirm -> fenced" in answers[0][1]
    assert answers[1][1].startswith("confirm_fenced refused: host cmp1 is "), answers
    assert all(compute.evacuate_calls[s] == 1 for s in _pets_of(compute, "cmp1"))
    _assert_journal_agrees(harness, compute, "cmp1")


@pytest.mark.fault(
    "MORE-09",
    guarantee="1",
    injected="a Redfish BMC (sushy-tools) accepts ForceOff and then reports PoweringOff for ever",
    expected="never fenced: AWAITING_CONFIRM with an awaiting_confirm alert saying PoweringOff within the fence "
    "deadline; nothing evacuated, the service not forced down",
)
def test_a_bmc_powering_off_for_ever_ends_awaiting_confirm_within_the_deadline(
    tmp_path: Path, compute: FakeCompute, bmcs: Bmcs
) -> None:
    system = new_system("cmp1")
    emulator = SushyEmulator(tmp_path / "redfish", [system], powering_off=(system["uuid"],)).start()
    devices = dict(bmcs.devices)
    devices["cmp1"] = FenceDevice(
        "cmp1",
        "redfish",
        "127.0.0.1",
        emulator.port,
        emulator.username,
        emulator.password,
        {"scheme": "http", "system": emulator.path(system)},
    )
    harness = Harness(tmp_path, compute, devices, enabled_drivers=("ipmi", "redfish"))
    try:
        _settle(harness)
        compute.dead.add("cmp1")
        harness.run_until(lambda: harness.state("cmp1") is HostState.FENCING, timeout=10)
        fencing_since = time.monotonic()
        harness.run_until(lambda: harness.state("cmp1") is HostState.AWAITING_CONFIRM, timeout=20)
        took = time.monotonic() - fencing_since
        # The fence procedure's deadline (6 s in the harness), plus a tick and the child's start.
        assert took < FAST_FENCE.deadline + 3.0, took
        harness.run_for(0.5)
        alerts = [e.message for e in harness.store.events(host="cmp1") if e.kind == "awaiting_confirm"]
        assert len(alerts) == 1 and "POWERING_OFF" in alerts[0], alerts
        kinds = [e.kind for e in harness.store.events(host="cmp1")]
        assert "fence_confirmed" not in kinds
        assert compute.evacuate_calls == {}
        assert not compute.services["cmp1"].forced_down
        assert harness.state("cmp1") is HostState.AWAITING_CONFIRM
    finally:
        harness.close()
        emulator.stop()


MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/mysql"


@pytest.fixture
def mariadb_through_proxy(tmp_path: Path) -> Iterator[tuple[str, TcpProxy]]:
    """A fresh, migrated MariaDB database of this test only, reached through a proxy it can cut."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("pymysql")
    admin = sqlalchemy.create_engine(
        MARIADB_ADMIN, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.NullPool, connect_args={"connect_timeout": 2}
    )
    name = f"petguard_more_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        pytest.skip(f"MariaDB not reachable at 127.0.0.1:3306: {exc}")
    migrate.upgrade(f"mysql+pymysql://root@127.0.0.1:3306/{name}")
    proxy = TcpProxy(3306).start()
    try:
        yield f"mysql+pymysql://root@127.0.0.1:{proxy.port}/{name}?connect_timeout=2&read_timeout=5", proxy
    finally:
        proxy.stop()
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.mark.fault(
    "MORE-10",
    guarantee="2",
    injected="the MariaDB journal goes away (connections reset, new ones refused) for 10 s in the middle of an "
    "evacuation, then comes back",
    expected="the loop keeps ticking and acts on nothing it cannot record; when the journal is back the incident "
    "finishes, each pet evacuated once, the journal agrees with Nova",
)
def test_journal_unreachable_mid_evacuation_does_nothing_twice(
    tmp_path: Path, compute: FakeCompute, bmcs: Bmcs, mariadb_through_proxy: tuple[str, TcpProxy]
) -> None:
    url, proxy = mariadb_through_proxy
    compute.evacuation_steps = 20  # the journal goes away while moves are on their way
    harness = Harness(tmp_path, compute, bmcs.devices, url=url)
    try:
        _settle(harness)
        compute.dead.add("cmp1")
        harness.run_until(lambda: any(n >= 1 for n in compute.evacuate_calls.values()), timeout=30)
        proxy.cut()
        reports = []
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            reports.append(harness.loop.tick())  # a journal outage is reported, never raised
            time.sleep(0.1)
        assert reports and not any(r.ok for r in reports), "nothing is decided without the journal"
        proxy.restore()
        harness.run_until(lambda: harness.state("cmp1") is HostState.EVACUATED, timeout=60)
        harness.run_for(0.5)
        _assert_journal_agrees(harness, compute, "cmp1")
        assert all(compute.evacuate_calls[s] == 1 for s in _pets_of(compute, "cmp1")), compute.evacuate_calls
        assert all(n == 1 for n in _migrations_per_source(compute).values())
        assert bmcs.sims["cmp1"].calls().count("set power 0") == 1
    finally:
        harness.close()


@pytest.mark.fault(
    "MORE-11",
    guarantee="4",
    injected="the journal refuses the one tick that records a lane's outcome (a fence that failed: BMC stuck on)",
    expected="the tick reports the failure instead of raising; the outcome is kept and recorded by the next tick "
    "(awaiting_confirm alert once), the fence is not run again",
)
def test_an_outcome_is_not_dropped_when_its_tick_cannot_be_recorded(
    harness: Harness, compute: FakeCompute, bmcs: Bmcs
) -> None:
    _settle(harness)
    save_tick = harness.store.save_tick
    power_offs_at_refusal: list[int] = []

    def save_tick_once_refused(record):  # type: ignore[no-untyped-def]
        if not power_offs_at_refusal and any(t.to_state is HostState.AWAITING_CONFIRM for t in record.transitions):
            power_offs_at_refusal.append(bmcs.sims["cmp1"].calls().count("set power 0"))
            raise StoreUnavailable("the database is unavailable (save a tick): test", delay=0.1)
        return save_tick(record)

    harness.store.save_tick = save_tick_once_refused  # type: ignore[method-assign]
    bmcs.sims["cmp1"].set_mode("stuck_on")
    compute.dead.add("cmp1")
    harness.run_until(lambda: harness.state("cmp1") is HostState.AWAITING_CONFIRM, timeout=40)
    harness.run_for(0.5)

    assert len(power_offs_at_refusal) == 1, "the tick recording the outcome was refused once"
    assert bmcs.sims["cmp1"].calls().count("set power 0") == power_offs_at_refusal[0], "the fence ran only once"
    assert [e.kind for e in harness.store.events(host="cmp1")].count("awaiting_confirm") == 1
    assert compute.evacuate_calls == {}
