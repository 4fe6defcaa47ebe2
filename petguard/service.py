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

from oslo_config import cfg

from petguard import apiadapter, lifecycle
from petguard.api.server import ApiServer
from petguard.clock import Clock, SystemClock
from petguard.compute import Compute
from petguard.conf import policies
from petguard.decide import Action, LoopPolicy
from petguard.evacuate import nova
from petguard.fencing import inventory, loader, procedure
from petguard.fencing.base import FenceDevice, FenceDriver, FenceTopology
from petguard.fencing.child import FenceRunner
from petguard.fencing.procedure import FencePolicy, PowerRunner
from petguard.journal import Store
from petguard.readiness import Readiness
from petguard.reconcile import Loop
from petguard.recovery import FenceFn, FenceResult, Recovery, RecoveryPolicy
from petguard.store.api import SqlStore
from petguard.webhooks.dispatch import Dispatcher
from petguard.webhooks.wiring import build_dispatcher

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class Daemon:
    """A wired daemon: the loop, its stop event and its tick interval."""

    loop: Loop
    stop: threading.Event
    tick_interval: float
    dispatcher: Dispatcher | None = None
    watchdog: lifecycle.Watchdog = dataclasses.field(default_factory=lifecycle.Watchdog)
    api: ApiServer | None = None
    readiness: Readiness | None = None

    def run(self) -> None:
        """Tick until ``stop`` is set; then finish the steps in hand."""
        LOG.info("petguard started; ticking every %.1f s", self.tick_interval)
        if self.dispatcher is not None:
            self.dispatcher.start()
        if self.readiness is not None:
            self.readiness.start()
        try:
            while not self.stop.is_set():
                self.watchdog.after_tick(self.loop.tick())
                self.stop.wait(self.tick_interval)
        finally:
            self.watchdog.stopping()
            LOG.info("stopping: letting the steps in hand finish")
            self.loop.shutdown(wait=True)
            if self.dispatcher is not None:
                self.dispatcher.stop()
            if self.readiness is not None:
                self.readiness.stop(timeout=10.0)
            if self.api is not None:
                self.api.stop()
            LOG.info("stopped")


def make_fence(
    topologies: Mapping[str, FenceTopology | FenceDevice],
    runner: PowerRunner,
    lookup: Callable[[str], FenceDriver],
    policy: FencePolicy,
    clock: Clock,
    where: str = "the inventory",
) -> FenceFn:
    """fence(host) -> FenceResult over the inventory's fence levels, the drivers and the procedure
    (a bare FenceDevice is a host with one level of one device)."""

    def fence(host: str) -> FenceResult:
        entry = topologies.get(host)
        if entry is None:
            return FenceResult(False, f"no fence device for {host} in {where}")
        topology = entry if isinstance(entry, FenceTopology) else FenceTopology.single(entry)
        outcome = procedure.fence_topology(topology, lookup, runner, policy, clock)
        return FenceResult(outcome.confirmed, outcome.reason, outcome.failed_levels)

    return fence


def assemble(
    compute: Compute,
    store: Store,
    fence: FenceFn,
    clock: Clock,
    loop_policy: LoopPolicy,
    recovery_policy: RecoveryPolicy,
    stop: threading.Event,
) -> Loop:
    """The loop with its three host-level actions, over already-built seams."""
    recovery = Recovery(fence, compute, store, clock, recovery_policy, stop)
    actions = {Action.FENCE: recovery.fence, Action.EVACUATE: recovery.evacuate, Action.RESTORE: recovery.restore}
    return Loop(compute, store, clock, loop_policy, actions)


def build(conf: cfg.ConfigOpts) -> Daemon:
    """Wire everything from configuration.

    :raises petguard.errors.ConfigError: configuration, inventory or database are not usable.
    """
    stop = threading.Event()
    clock = SystemClock(stop)
    store = SqlStore(conf.database.connection)
    compute = nova.connect(conf.nova.cloud, conf.nova.clouds_file, conf.nova.timeout)
    fences = inventory.load_inventory(conf.fencing.inventory_file)
    lookup = functools.partial(loader.load_driver, enabled=list(conf.fencing.enabled_drivers))
    runner = FenceRunner(lookup)
    fence = make_fence(fences, runner, lookup, policies.fencing(conf), clock, conf.fencing.inventory_file)
    loop = assemble(compute, store, fence, clock, policies.loop(conf), policies.recovery(conf), stop)
    dispatcher = build_dispatcher(conf, store, clock)
    readiness = Readiness(
        fences,
        lookup,
        runner,
        clock,
        store.record_event,
        interval=conf.fencing.readiness_interval,
        timeout=conf.fencing.attempt_timeout,
        stop=stop,
    )
    # Started last, so that a refusal above leaves nothing serving.
    api = None
    if conf.api.enabled:
        api = apiadapter.start_api(conf, store, loop, set_log_level=lifecycle.set_log_level, readiness=readiness)
    return Daemon(loop, stop, conf.tick_interval, dispatcher, api=api, readiness=readiness)
