"""The one place where CONF values become the frozen policies the domain and procedures receive."""

from __future__ import annotations

from oslo_config import cfg

from petguard.cloud import HintKind, TargetHint
from petguard.decide import LoopPolicy
from petguard.detect import DetectionPolicy
from petguard.errors import ConfigError
from petguard.evacuate.hints import HintError, HintRules, parse_host_targets
from petguard.evacuate.plan import ClassPolicy, EvacuationPolicy
from petguard.evacuate.ready import ReadyPolicy
from petguard.evacuate.run import RunPolicy
from petguard.fencing.powerwatch import WatchPolicy
from petguard.fencing.procedure import FencePolicy
from petguard.guests.policy import HealthPolicy
from petguard.lanes import RecoveryPolicy


def detection(conf: cfg.ConfigOpts) -> DetectionPolicy:
    """The [detection] options as a policy.

    :raises ConfigError: a negative ``fence_rate_max``, a ``fence_rate_window`` that is not more than 0,
        or a ``heartbeat_stale_after`` below 2 x ``report_interval`` (other than 0: off).
    """
    d = conf.detection
    _check_fence_rate(d.fence_rate_max, d.fence_rate_window)
    stale_after = heartbeat_stale_after(d.report_interval, d.heartbeat_stale_after)
    return DetectionPolicy(
        grace_period=d.grace_period,
        down_samples=d.down_samples,
        up_samples=d.up_samples,
        brake_max_hosts=d.brake_max_hosts,
        brake_max_percent=d.brake_max_percent,
        stale_fraction=d.stale_fraction,
        stale_min_hosts=d.stale_min_hosts,
        agent_stale_after=d.agent_stale_after,
        fence_rate_max=d.fence_rate_max,
        fence_rate_window=d.fence_rate_window,
        blind_after=d.blind_after,
        report_interval=d.report_interval,
        heartbeat_stale_after=stale_after,
        bmc_settle=bmc_settle(d.report_interval, d.bmc_settle),
    )


#: ``bmc_settle`` when unset, in report intervals: a batch of hosts that lost power together is down
#: within one report_interval (plus a tick), and the brake needs a tick or two more to count them.
BMC_SETTLE_INTERVALS = 1.5


def bmc_settle(report_interval: float, configured: float | None) -> float:
    """``[detection] bmc_settle``, or 1.5 x ``report_interval`` when unset.

    :raises ConfigError: below ``report_interval``: hosts that lost power together would not all be down
        yet when the first of them fails on its BMC's OFF, and the brake could not see them as one.
    """
    if configured is None:
        return BMC_SETTLE_INTERVALS * report_interval
    if configured < report_interval:
        raise ConfigError(
            f"[detection] bmc_settle = {configured:g} is shorter than report_interval ({report_interval:g} s): "
            "hosts that lose power together go down over one report_interval, and a BMC reading OFF would fence "
            "the first of them before the mass-failure brake sees the others; use at least "
            f"{report_interval:g} (unset: 1.5 x report_interval = {BMC_SETTLE_INTERVALS * report_interval:g} s), "
            "or bmc_signal = false to turn the BMC signal off",
            option="[detection] bmc_settle",
        )
    return float(configured)


def power_watch(conf: cfg.ConfigOpts) -> WatchPolicy:
    """The BMC signal's reading options (``[detection] bmc_*``)."""
    d = conf.detection
    return WatchPolicy(enabled=d.bmc_signal, timeout=d.bmc_read_timeout, min_interval=d.bmc_read_min_interval)


#: ``heartbeat_stale_after`` when unset, in report intervals: two heartbeats in a row may be lost or late.
HEARTBEAT_STALE_INTERVALS = 3.0
#: The shortest ``heartbeat_stale_after``, in report intervals: below it, one late heartbeat is a "dead" host.
MIN_HEARTBEAT_STALE_INTERVALS = 2.0


def heartbeat_stale_after(report_interval: float, configured: float | None) -> float:
    """``[detection] heartbeat_stale_after``, or 3 x ``report_interval`` when unset (0: the signal is off).

    :raises ConfigError: a threshold below 2 x ``report_interval``: a healthy host whose heartbeat comes a
        little late (a busy conductor, a retried RPC) would be called down between two heartbeats.
    """
    if configured is None:
        return HEARTBEAT_STALE_INTERVALS * report_interval
    shortest = MIN_HEARTBEAT_STALE_INTERVALS * report_interval
    if 0 < configured < shortest:
        raise ConfigError(
            f"[detection] heartbeat_stale_after = {configured:g} is shorter than 2 x report_interval "
            f"({shortest:g} s): a healthy compute whose heartbeat is a little late under load would be called "
            f"down between two heartbeats; use at least {shortest:g} (unset: 3 x report_interval = "
            f"{HEARTBEAT_STALE_INTERVALS * report_interval:g} s), or 0 to turn the nova-heartbeat signal off. "
            "If the computes heartbeat faster, set report_interval to their Nova [DEFAULT] report_interval",
            option="[detection] heartbeat_stale_after",
        )
    return float(configured)


def _check_fence_rate(rate_max: int, window: float) -> None:
    """:raises ConfigError: the fence rate limit options cannot be used, with what to set instead."""
    if rate_max < 0:
        raise ConfigError(
            f"[detection] fence_rate_max = {rate_max}: use the number of fences that may start within "
            "fence_rate_window (default 3), or 0 to turn the fence rate limit off",
            option="[detection] fence_rate_max",
        )
    if window <= 0:
        raise ConfigError(
            f"[detection] fence_rate_window = {window:g}: use the seconds over which fence_rate_max fences "
            "may start, more than 0 (default 3600); to turn the fence rate limit off, set fence_rate_max = 0",
            option="[detection] fence_rate_window",
        )


def loop(conf: cfg.ConfigOpts) -> LoopPolicy:
    return LoopPolicy(detection=detection(conf), startup_blackout=conf.startup_blackout, dry_run=conf.dry_run)


def fencing(conf: cfg.ConfigOpts) -> FencePolicy:
    f = conf.fencing
    return FencePolicy(
        attempt_timeout=f.attempt_timeout,
        deadline=f.deadline,
        poll_interval=f.poll_interval,
        off_readings_required=f.off_readings,
        retries=f.retries,
        resend_after=f.resend_after,
        random_delay_max=f.random_delay_max,
    )


def evacuation(conf: cfg.ConfigOpts) -> EvacuationPolicy:
    e = conf.evacuation
    return EvacuationPolicy(
        selectors=tuple(e.pet_selectors),
        evacuate_locked=e.evacuate_locked,
        max_parallel=e.max_parallel,
        shared_storage=e.shared_storage,
        boot_from_volume=ClassPolicy(e.boot_from_volume_policy),
        shared_disk=ClassPolicy(e.shared_disk_policy),
        local_disk=ClassPolicy(e.local_disk_policy),
        devices=ClassPolicy(e.devices_policy),
        hints=hint_rules(conf),
    )


def ready(conf: cfg.ConfigOpts) -> ReadyPolicy:
    e = conf.evacuation
    return ReadyPolicy(
        timeout=e.tier_ready_timeout,
        default_delay=e.tier_delay,
        interval=e.ready_check_interval,
        probe_timeout=e.ready_check_timeout,
    )


def hint_rules(conf: cfg.ConfigOpts) -> HintRules:
    """``[evacuation] host_targets`` and ``use_reserved_hosts`` as hint rules.

    :raises ConfigError: a line that is not SOURCE=HINT (every bad line named); the hint ``reserved``
        (by default or in a line) without ``reserved_hosts``.
    """
    e = conf.evacuation
    default = TargetHint(HintKind.RESERVED) if e.use_reserved_hosts else None
    try:
        rules = parse_host_targets(e.host_targets, default)
    except HintError as exc:
        raise ConfigError(str(exc), option="[evacuation] host_targets") from exc
    asks_reserved = [str(h) for h in (*rules.by_host.values(), *rules.by_aggregate.values(), default) if h]
    if HintKind.RESERVED.value in asks_reserved and not e.reserved_hosts:
        raise ConfigError(
            "[evacuation] use_reserved_hosts or a host_targets line asks for the hint reserved, but "
            "[evacuation] reserved_hosts is empty: list the reserved failover hosts, or drop the hint",
            option="[evacuation] reserved_hosts",
        )
    return rules


def recovery(conf: cfg.ConfigOpts) -> RecoveryPolicy:
    e = conf.evacuation
    if e.stuck_after >= e.move_timeout:
        raise ConfigError(
            f"[evacuation] stuck_after ({e.stuck_after:g} s) must be below move_timeout ({e.move_timeout:g} s): "
            "a lost request would be declared failed before it is flagged stuck; lower stuck_after",
            option="[evacuation] stuck_after",
        )
    return RecoveryPolicy(
        evacuation=evacuation(conf),
        run=RunPolicy(
            max_parallel=e.max_parallel,
            move_timeout=e.move_timeout,
            cloud_wait_timeout=e.cloud_wait_timeout,
            stuck_after=e.stuck_after,
            ready=ready(conf),
        ),
        restore_timeout=e.restore_timeout,
        reserved_hosts=tuple(e.reserved_hosts),
    )


def instance_health(conf: cfg.ConfigOpts) -> HealthPolicy:
    h = conf.instance_health
    return HealthPolicy(
        enabled=h.enabled,
        min_uptime=h.min_uptime,
        max_restarts=h.max_restarts,
        window=h.window,
        restart_timeout=h.restart_timeout,
        reset_report_interval=h.reset_report_interval,
        max_event_age=h.max_event_age,
        selectors=tuple(conf.evacuation.pet_selectors),
    )


#: The shortest ``[capacity] interval`` (seconds): each check reads Nova and placement (2 requests per host).
MIN_CAPACITY_INTERVAL = 10.0


def capacity_interval(conf: cfg.ConfigOpts) -> float:
    """``[capacity] interval`` (0: the check is off).

    :raises ConfigError: an interval between 0 and ``MIN_CAPACITY_INTERVAL``.
    """
    interval = float(conf.capacity.interval)
    if 0 < interval < MIN_CAPACITY_INTERVAL:
        raise ConfigError(
            f"[capacity] interval = {interval:g}: use 0 (off) or at least {MIN_CAPACITY_INTERVAL:g} seconds; "
            "each check reads Nova and placement (2 requests per host)",
            option="[capacity] interval",
        )
    return interval


def check_all(conf: cfg.ConfigOpts) -> list[str]:
    """Build every policy once, as the daemon does at start; what is wrong with each (empty: all fine)."""
    builders = (detection, loop, fencing, recovery, instance_health, capacity_interval, power_watch)
    problems: list[str] = []
    for build in builders:
        try:
            build(conf)
        except ConfigError as exc:
            if str(exc) not in problems:  # loop() builds detection() again, recovery() evacuation()
                problems.append(str(exc))
    return problems
