"""Composition root of petguard-daemon: wires config, store, Nova, fencing and the loop; no decisions.

``build(conf)`` returns a ``Daemon`` whose ``run()`` ticks until ``stop`` is set (SIGTERM), then
lets the step in hand finish: a fence attempt completes (it is bounded by its deadline); evacuations
stop at their current journal step and resume after the restart.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from oslo_config import cfg

from petguard.api.server import ApiServer
from petguard.clock import Clock, SystemClock
from petguard.compute import Compute
from petguard.conf import policies
from petguard.daemon import api_backend, check, lifecycle
from petguard.decide import Action, LoopPolicy
from petguard.evacuate.capacity import CapacityReport, HostCapacity
from petguard.evacuate.capacity_duty import CapacityWatch
from petguard.evacuate.probe import NetworkProber
from petguard.evacuate.ready import Prober
from petguard.evacuate.reserved import ReservedKeeper, ReservedPool
from petguard.fencing import inventory, loader, procedure
from petguard.fencing.base import FenceDriver, FenceFn, FenceTopology
from petguard.fencing.child import FenceRunner
from petguard.fencing.powerwatch import PowerWatch
from petguard.fencing.preflight import Readiness
from petguard.fencing.procedure import PowerRunner
from petguard.guests.restarts import InstanceHealth
from petguard.ha import election, guards
from petguard.ha.election import Leadership
from petguard.hosts import HostState
from petguard.journal import Store
from petguard.lanes import Recovery, RecoveryPolicy
from petguard.nova import compute as nova
from petguard.nova import placement
from petguard.reconcile import Loop, PowerReader
from petguard.store.sql import SqlStore
from petguard.webhooks.wiring import build_dispatcher

LOG = logging.getLogger(__name__)


class Duty(Protocol):
    """A component that runs beside the loop while this controller leads."""

    def start(self) -> object: ...

    def stop(self) -> None: ...


class LeaderDuties:
    """What only the leader runs besides the loop: outgoing webhooks, fence readiness, instance health.

    Started on every gain of leadership with fresh components (a stopped one cannot restart) and
    stopped on loss, off the calling thread (loss can be noticed on the loop or an API thread).
    """

    def __init__(self, factories: Mapping[str, Callable[[], Duty]]) -> None:
        self._factories = dict(factories)
        self._running: dict[str, Duty] = {}
        self._lock = threading.Lock()

    def add(self, name: str, make: Callable[[], Duty]) -> None:
        """One more component, from the next gain of leadership on."""
        self._factories[name] = make

    def running(self, name: str) -> Duty | None:
        """The component of the current term, or None on a follower."""
        return self._running.get(name)

    def start(self, epoch: int) -> None:
        with self._lock:
            if not self._running:
                self._running = {name: make() for name, make in self._factories.items()}
                for duty in self._running.values():
                    duty.start()
        LOG.info("leading with epoch %d: %s started", epoch, ", ".join(self._factories))

    def stop(self, reason: str = "", wait: bool = False) -> None:
        with self._lock:
            running, self._running = self._running, {}
        if not running:
            return

        def stop_all() -> None:
            for duty in running.values():
                duty.stop()

        if wait:
            stop_all()
        else:
            threading.Thread(target=stop_all, name="leader-duties-stop", daemon=True).start()


@dataclasses.dataclass
class Daemon:
    """A wired daemon: the loop, its stop event, its tick interval, and what runs beside the loop."""

    loop: Loop
    stop: threading.Event
    tick_interval: float
    leadership: Leadership | None = None
    duties: LeaderDuties | None = None
    watchdog: lifecycle.Watchdog = dataclasses.field(default_factory=lifecycle.Watchdog)
    api: ApiServer | None = None
    _started: bool = dataclasses.field(default=False, init=False)

    def start(self) -> None:
        """Join the election (or, alone, start the leader's duties); idempotent.

        :raises petguard.errors.ConfigError: the coordination backend cannot be used at all (an
            unknown scheme, its client library missing); an unreachable backend is retried instead.
        """
        if self._started:
            return
        self._started = True
        if self.leadership is not None:
            self.leadership.start()
        elif self.duties is not None:
            self.duties.start(0)

    def run(self) -> None:
        """Tick until ``stop`` is set (a follower's tick does nothing); then finish the steps in hand."""
        self.start()
        LOG.info("petguard started; ticking every %.1f s", self.tick_interval)
        try:
            while not self.stop.is_set():
                self.watchdog.after_tick(self.loop.tick())
                self.stop.wait(self.tick_interval)
        finally:
            self.watchdog.stopping()
            LOG.info("stopping: letting the steps in hand finish")
            if self.leadership is not None:
                self.leadership.stop(timeout=60.0)
            self.loop.shutdown(wait=True)
            if self.duties is not None:
                self.duties.stop(wait=True)
            if self.api is not None:
                self.api.stop()
            LOG.info("stopped")


def assemble(
    compute: Compute,
    store: Store,
    fence: FenceFn,
    clock: Clock,
    loop_policy: LoopPolicy,
    recovery_policy: RecoveryPolicy,
    stop: threading.Event,
    prober: Prober | None = None,
    reserved: ReservedPool | None = None,
    power: PowerReader | None = None,
) -> Loop:
    """The loop with its three host-level actions, over already-built seams (``prober``: the
    readiness checks between tiers, default: the real one, over the network; a pool of reserved
    failover hosts is built from ``recovery_policy`` unless one is given; ``power``: the BMC readings
    of the detection signal, none by default)."""
    if reserved is None and recovery_policy.reserved_hosts:
        reserved = ReservedPool(compute, store, clock, recovery_policy.reserved_hosts)
    recovery = Recovery(
        fence, compute, store, clock, recovery_policy, stop, prober=prober or NetworkProber(), reserved=reserved
    )
    actions = {Action.FENCE: recovery.fence, Action.EVACUATE: recovery.evacuate, Action.RESTORE: recovery.restore}
    return Loop(compute, store, clock, loop_policy, actions, power=power)


def fence_readiness_duty(
    conf: cfg.ConfigOpts,
    fences: Mapping[str, FenceTopology],
    lookup: Callable[[str], FenceDriver],
    runner: PowerRunner,
    journal: Store,
) -> Callable[[], Readiness]:
    """A fresh fence readiness checker per term, with a stop event of its own.

    Not the daemon's: stopping the checker on a loss of leadership must end the checker only, never
    the daemon (a follower keeps campaigning). Its clock's sleeps wake on that same event, and the
    daemon's SIGTERM reaches it through ``LeaderDuties.stop``.
    """

    def make() -> Readiness:
        ends = threading.Event()
        return Readiness(
            fences,
            lookup,
            runner,
            SystemClock(ends),
            journal.record_event,
            interval=conf.fencing.readiness_interval,
            timeout=conf.fencing.attempt_timeout,
            stop=ends,
        )

    return make


def build(conf: cfg.ConfigOpts) -> Daemon:
    """Wire everything from configuration.

    Two handles on the journal: ``journal`` (reads, the API, webhooks, events) and ``acting`` (the
    loop and its lanes), which carries this controller's leadership epoch on every write, so that
    a controller that lost leadership cannot change the journal any more.

    :raises petguard.errors.ConfigError: configuration, inventory or database are not usable.
    """
    stop = threading.Event()
    clock = SystemClock(stop)
    journal = SqlStore(conf.database.connection)
    for message in check.several_controllers(conf, journal):
        LOG.warning("%s (petguard-manage config check reports this as an ERROR)", message)
    acting = SqlStore(conf.database.connection, epoch=election.NO_EPOCH)
    compute = nova.connect(conf.nova.cloud, conf.nova.clouds_file, conf.nova.timeout)
    fences = inventory.load_inventory(conf.fencing.inventory_file, conf.fencing.enabled_drivers)
    lookup = functools.partial(loader.load_driver, enabled=list(conf.fencing.enabled_drivers))
    runner = FenceRunner(lookup)
    capacity_duty = _capacity_duty(conf, compute, journal, clock)
    duties = LeaderDuties(
        {
            **capacity_duty,
            "webhooks": lambda: build_dispatcher(conf, journal, clock),
            "fence readiness": fence_readiness_duty(conf, fences, lookup, runner, journal),
            "instance health": lambda: InstanceHealth(
                guards.guard_compute(compute, leader), acting, clock, policies.instance_health(conf)
            ),
        }
    )
    build_dispatcher(conf, journal, clock)  # refuse a bad receiver now, not at the first gain
    leader = election.Leadership.from_conf(conf, acting, journal, on_gain=duties.start, on_loss=duties.stop)
    # Fences wait on the daemon's stop (a fence in flight completes, bounded by its deadline); the
    # lanes' other waits end as soon as leadership is lost.
    fence = guards.guard_fence(
        procedure.make_fence(fences, runner, lookup, policies.fencing(conf), clock, conf.fencing.inventory_file),
        leader,
    )
    recovery_policy = policies.recovery(conf)
    lanes_clock = SystemClock(leader.halt)
    reserved = None
    if recovery_policy.reserved_hosts:
        # One pool (and its lock) for the lanes and the leader's keeper, which finishes loans that a
        # crash or a lost leadership left half done, at every gain of leadership and every tick.
        guarded = guards.guard_compute(compute, leader)
        reserved = ReservedPool(guarded, acting, lanes_clock, recovery_policy.reserved_hosts)
        duties.add("reserved hosts", functools.partial(ReservedKeeper, reserved, conf.tick_interval))
    loop = assemble(
        guards.guard_compute(compute, leader),
        acting,
        fence,
        lanes_clock,
        policies.loop(conf),
        recovery_policy,
        leader.halt,
        reserved=reserved,
        # Read-only power readings for detection, through the fence runner (child processes, bounded), on
        # the loop's clock: a reading is compared with the tick's time.
        power=PowerWatch(fences, lookup, runner, lanes_clock, policies.power_watch(conf)),
    )
    leader.attach(loop)
    # Started last, so that a refusal above leaves nothing serving.
    api = None
    if conf.api.enabled:
        api = api_backend.start_api(
            conf,
            journal,
            loop,
            set_log_level=lifecycle.set_log_level,
            leading=leader.leading,
            coordination_age=lambda: leader.status().last_heartbeat_age,
            readiness=_LiveReadiness(duties),
            compute=compute,  # read-only: the dry run of `explain HOST`
            capacity=_LiveCapacity(duties, enabled=bool(capacity_duty)).report,
        )
    return Daemon(loop, stop, conf.tick_interval, leadership=leader, duties=duties, api=api)


class _LiveReadiness:
    """The readiness of the current term (empty on a follower), for the API and metrics."""

    def __init__(self, duties: LeaderDuties) -> None:
        self._duties = duties

    def _readiness(self) -> Readiness | None:
        running = self._duties.running("fence readiness")
        return running if isinstance(running, Readiness) else None

    def snapshot(self) -> Mapping[str, str]:
        readiness = self._readiness()
        return readiness.snapshot() if readiness is not None else {}

    def gauge_rows(self) -> list[tuple[str, str, str, bool]]:
        readiness = self._readiness()
        return list(readiness.gauge_rows()) if readiness is not None else []


#: Below this, a capacity check (2 placement requests per host) would load the cloud for little news.


def _capacity_duty(
    conf: cfg.ConfigOpts, compute: nova.NovaCompute, journal: SqlStore, clock: Clock
) -> dict[str, Callable[[], Duty]]:
    """The capacity check as a leader duty, or nothing when ``[capacity] interval = 0``.

    :raises ConfigError: an interval between 0 and ``policies.MIN_CAPACITY_INTERVAL``.
    """
    interval = policies.capacity_interval(conf)
    if interval == 0:
        LOG.info("capacity check disabled ([capacity] interval = 0)")
        return {}
    evacuation = policies.evacuation(conf)
    reserved = frozenset(conf.evacuation.reserved_hosts)

    def read() -> list[HostCapacity]:
        return placement.read_capacity_inputs(
            compute,
            reserved_hosts=reserved,
            maintenance=hosts_in_maintenance(journal),
            image_properties="evacuable_image" in evacuation.selectors,
        )

    return {
        # its own stop event (not the daemon's): losing leadership stops the watch, not the daemon
        "capacity check": lambda: CapacityWatch(read, evacuation, clock, journal.record_event, interval=interval)
    }


def hosts_in_maintenance(journal: Store) -> set[str]:
    """The hosts petguard has in maintenance (they take no pets in the capacity check)."""
    return {name for name, record in journal.load_hosts().items() if record.host.state is HostState.MAINTENANCE}


class _LiveCapacity:
    """The capacity report of the current term, for the API and metrics (unknown on a follower)."""

    def __init__(self, duties: LeaderDuties, enabled: bool) -> None:
        self._duties = duties
        self._enabled = enabled

    def report(self) -> CapacityReport:
        if not self._enabled:
            return CapacityReport.unknown("the capacity check is disabled ([capacity] interval = 0)")
        running = self._duties.running("capacity check")
        if isinstance(running, CapacityWatch):
            return running.report()
        return CapacityReport.unknown("this controller does not lead: the leader checks capacity")
