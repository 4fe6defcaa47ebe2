"""The agent against a real libvirtd and real QEMU (TCG) guests, reporting to the real controller.

One module-scoped world: libvirtd (session fixture), the agent's watcher with its on-disk buffer and
reporter, and one tiny guest per scenario, all started at once (the tier takes well under a minute):
a watchdog per action (none, pause, reset, poweroff, shutdown, dump), a guest panic (pvpanic), and a
plain guest for ``kill -9`` of its QEMU. The controller is unreachable at first (events are buffered,
nothing is lost); later it serves on 127.0.0.1, libvirtd is restarted while a guest keeps resetting,
and the instance-health executor restarts the hung and crashed pets through (fake) Nova.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from petguard.agent.events import DomainEvent, EventKind
from petguard.agent.libvirt_watch import LibvirtWatch
from petguard.agent.main import EventIds
from petguard.agent.report import AgentStatus, Buffer, Reporter, ReportSettings
from tests.functional.agent import libvirtlab
from tests.functional.agent.conftest import HMAC_KEY, Controller, free_port, make_controller

HOST = "cmp-virt"
TIMEOUT = 30.0
#: name -> (watchdog action or None, pvpanic)
GUESTS: dict[str, tuple[str | None, bool]] = {
    "pg-none": ("none", False),
    "pg-pause": ("pause", False),
    "pg-reset": ("reset", False),
    "pg-poweroff": ("poweroff", False),
    "pg-shutdown": ("shutdown", False),
    "pg-dump": ("dump", False),
    "pg-panic": (None, True),
    "pg-plain": (None, False),
}


class Collector:
    """Every event the watcher emitted, in order; also forwards each to the agent's buffer."""

    def __init__(self, buffer: Buffer) -> None:
        self.events: list[DomainEvent] = []
        self._buffer = buffer
        self._cond = threading.Condition()

    def __call__(self, event: DomainEvent) -> None:
        self._buffer.put(event)
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of(self, name: str, kind: EventKind | None = None, detail: str | None = None) -> list[DomainEvent]:
        with self._cond:
            return [
                e for e in self.events
                if e.domain_name == name and (kind is None or e.kind is kind) and (detail is None or e.detail == detail)
            ]

    def wait(self, what: str, found: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not found():
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(e.domain_name, e.kind.value, e.detail) for e in self.events][-30:]
                    raise AssertionError(f"no {what} within {timeout} s; last events: {seen}")
                self._cond.wait(min(left, 0.2))


@dataclasses.dataclass
class World:
    daemon: libvirtlab.Libvirtd
    controller: Controller
    watch: LibvirtWatch
    buffer: Buffer
    reporter: Reporter
    events: Collector
    port: int
    uuids: dict[str, str]
    started: dict[str, float]


@pytest.fixture(scope="module")
def world(libvirtd: libvirtlab.Libvirtd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    import libvirt

    root = tmp_path_factory.mktemp("agent-world")
    controller = make_controller(root, ["cmp-virt", "cmp-other", "cmp-third"])
    controller.harness.loop.tick()
    buffer = Buffer(root / "events.sqlite", 5000)
    events = Collector(buffer)
    watch = LibvirtWatch(libvirtd.uri, events, EventIds(), keepalive_interval=2, keepalive_count=2).start()
    port = free_port()  # nothing listens there yet: the controllers are unreachable
    settings = ReportSettings(
        urls=(f"http://127.0.0.1:{port}",), host=HOST, sender=HOST, key=HMAC_KEY, heartbeat_interval=0.5,
        timeout=2.0, backoff_min=0.2, backoff_max=1.0,
    )
    reporter = Reporter(settings, buffer, lambda: AgentStatus(watch.connected, watch.domains())).start()
    images = {
        "plain": libvirtlab.build_guest(root / "guest", "wdtboot"),
        "panic": libvirtlab.build_guest(root / "guest", "wdtpanic", panic=True),
    }
    conn = libvirt.open(libvirtd.uri)
    uuids, started = {}, {}
    deadline = time.monotonic() + 10
    while not watch.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        for name, (action, panic) in GUESTS.items():
            image = root / "guest" / f"{name}.img"
            image.write_bytes(images["panic" if panic else "plain"].read_bytes())
            dom = conn.defineXML(libvirtlab.domain_xml(name, image, action=action, panic=panic))
            uuids[name] = dom.UUIDString()
            controller.add_pet(uuids[name], name, HOST)
            dom.create()
            started[name] = time.monotonic()
        yield World(libvirtd, controller, watch, buffer, reporter, events, port, uuids, started)
    finally:
        reporter.stop()
        libvirtlab.destroy_all(libvirtd)
        watch.stop()
        conn.close()
        buffer.close()
        controller.close()


def test_every_watchdog_action_reaches_the_agent(world: World) -> None:
    ev, W, L = world.events, EventKind.WATCHDOG, EventKind.LIFECYCLE
    for name, action in (("pg-none", "none"), ("pg-pause", "pause"), ("pg-reset", "reset"),
                         ("pg-poweroff", "poweroff"), ("pg-shutdown", "shutdown"), ("pg-dump", "pause")):
        ev.wait(f"{name} watchdog({action})", lambda n=name, a=action: bool(ev.of(n, W, a)))
    first = ev.of("pg-none", W)[0]
    assert first.domain_uuid == world.uuids["pg-none"]  # the domain UUID is Nova's instance UUID
    ev.wait("pg-pause suspended by its watchdog", lambda: bool(ev.of("pg-pause", L, "paused_watchdog")))
    ev.wait("pg-poweroff stopped (failed)", lambda: bool(ev.of("pg-poweroff", L, "stopped_failed")))
    ev.wait("pg-dump resumed after its dump", lambda: bool(ev.of("pg-dump", L, "resumed")))
    ev.wait("pg-reset firing again", lambda: len(ev.of("pg-reset", W, "reset")) >= 2)
    assert ev.of("pg-reset", EventKind.REBOOT), "a watchdog reset comes with reboot events"
    assert len(ev.of("pg-none", W)) == 1, "action none fires once (the device resets itself)"


def test_a_guest_panic_reaches_the_agent(world: World) -> None:
    ev = world.events
    ev.wait("pg-panic crashed (panicked)", lambda: bool(ev.of("pg-panic", EventKind.LIFECYCLE, "crashed_panicked")))
    ev.wait("pg-panic stopped (crashed)", lambda: bool(ev.of("pg-panic", EventKind.LIFECYCLE, "stopped_crashed")))


def test_kill_9_of_qemu_reaches_the_agent(world: World) -> None:
    ev = world.events
    ev.wait("pg-plain started", lambda: bool(ev.of("pg-plain", EventKind.LIFECYCLE, "started")))
    os.kill(libvirtlab.qemu_pid(world.daemon, "pg-plain"), signal.SIGKILL)
    ev.wait("pg-plain stopped (failed)", lambda: bool(ev.of("pg-plain", EventKind.LIFECYCLE, "stopped_failed")))


def test_events_wait_in_the_buffer_while_no_controller_answers_and_none_is_lost(world: World) -> None:
    assert world.reporter.delivered == 0 and world.reporter.last_heartbeat_ok is None
    assert len(world.buffer) == len(world.events.events) > 10
    world.controller.serve(world.port)
    deadline = time.monotonic() + TIMEOUT
    while (len(world.buffer) or world.reporter.last_heartbeat_ok is None) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(world.buffer) == 0
    store = world.controller.harness.store
    stored = {r.event.id for r in store.pending_agent_events(5000)}
    assert {e.id for e in world.events.events} <= stored
    assert store.agent_heartbeats().keys() == {HOST}


def test_a_libvirtd_restart_while_a_guest_keeps_resetting_is_resynced(world: World) -> None:
    ev = world.events
    connects = world.watch.connects
    world.daemon.restart()
    restarted = time.time()
    ev.wait("reconnect", lambda: world.watch.connects > connects)
    ev.wait("every domain's state re-read",
            lambda: all(any(e.at >= restarted for e in ev.of(name, EventKind.STATE)) for name in GUESTS))
    states = {e.domain_name: e.detail for e in ev.events if e.kind is EventKind.STATE and e.at >= restarted}
    assert states["pg-reset"] == "running"
    assert states["pg-pause"] == "paused_watchdog"
    # A stopped domain's shutoff reason does not survive a libvirtd restart (libvirt 9.0 keeps no
    # status for inactive domains): the crash itself was reported before the restart.
    assert states["pg-panic"].startswith("shutoff") and states["pg-plain"].startswith("shutoff")
    ev.wait("pg-reset resets after the restart",
            lambda: any(e.at >= restarted for e in ev.of("pg-reset", EventKind.WATCHDOG, "reset")))
    deadline = time.monotonic() + TIMEOUT
    while len(world.buffer) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(world.buffer) == 0


def test_the_controller_restarts_hung_and_crashed_pets_and_leaves_the_rest(world: World) -> None:
    executor, compute = world.controller.executor, world.controller.compute
    while executor.run_once():
        pass
    rebooted = {server_id for server_id, _hard in compute.reboots}
    names = {uuid: name for name, uuid in world.uuids.items()}
    assert {names[u] for u in rebooted} == {"pg-none", "pg-pause", "pg-dump", "pg-panic", "pg-plain"}
    assert len(compute.reboots) == 5, "one restart per failure, however many events it produced"
    resets = world.controller.events("instance_watchdog_reset")
    assert 1 <= len(resets) <= 2 and "pg-reset" in resets[0]
    left = world.controller.events("instance_left_alone")
    assert any("pg-poweroff" in m for m in left) and any("pg-shutdown" in m for m in left)


def test_the_petguard_agent_program_notifies_systemd_and_heartbeats(world: World, tmp_path: Path) -> None:
    """The real ``petguard-agent`` process: READY=1, then WATCHDOG=1 while healthy; heartbeats arrive."""
    import socket
    import subprocess
    import sys

    key = tmp_path / "key"
    key.write_text(HMAC_KEY + "\n")
    key.chmod(0o600)
    (tmp_path / "spool").mkdir()
    conf = tmp_path / "agent.conf"
    conf.write_text(
        "[agent]\n"
        f"controller_urls = http://127.0.0.1:{world.port}\nhmac_key_file = {key}\nhost = cmp-other\n"
        f"heartbeat_interval = 0.3\nlibvirt_uri = {world.daemon.uri}\nbuffer_dir = {tmp_path / 'spool'}\n"
    )
    notify = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify))
        sock.settimeout(TIMEOUT)
        env = dict(os.environ, NOTIFY_SOCKET=str(notify), WATCHDOG_USEC="1000000")
        proc = subprocess.Popen(
            [sys.executable, "-m", "petguard.agent.main", "--config-file", str(conf)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            messages = [sock.recv(4096).decode() for _ in range(2)]
            assert messages[0].startswith("READY=1") and messages[1].startswith("WATCHDOG=1")
            store = world.controller.harness.store
            deadline = time.monotonic() + TIMEOUT
            while "cmp-other" not in store.agent_heartbeats() and time.monotonic() < deadline:
                time.sleep(0.1)
            agents = {a.host: a for a in store.agents()}
            assert agents["cmp-other"].libvirt_connected
            assert {d.name for d in agents["cmp-other"].domains} >= {"pg-reset"}
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()[-2000:]
