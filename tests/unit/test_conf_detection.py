"""[detection] options become the DetectionPolicy the loop receives; the fence rate limit is checked."""

from __future__ import annotations

import pytest
from oslo_config import cfg

from petguard.conf import opts, policies
from petguard.detect import DetectionPolicy
from petguard.errors import ConfigError


def conf(**detection: object) -> cfg.ConfigOpts:
    c = cfg.ConfigOpts()
    opts.register(c)
    c([], project="petguard-test", default_config_files=[])
    for name, value in detection.items():
        c.set_override(name, value, group="detection")
    return c


def test_defaults_match_the_policy_defaults() -> None:
    policy = policies.detection(conf())
    assert policy == DetectionPolicy()
    assert (policy.fence_rate_max, policy.fence_rate_window) == (3, 3600.0)


def test_fence_rate_limit_from_config() -> None:
    policy = policies.loop(conf(fence_rate_max=5, fence_rate_window=1800)).detection
    assert (policy.fence_rate_max, policy.fence_rate_window) == (5, 1800.0)


def test_fence_rate_max_zero_turns_the_limit_off() -> None:
    assert policies.detection(conf(fence_rate_max=0)).fence_rate_max == 0


@pytest.mark.parametrize("window", [0, -60])
def test_a_window_that_is_not_positive_is_refused_with_what_to_do(window: int) -> None:
    expected = r"\[detection\] fence_rate_window = -?\d+: .*more than 0 .*fence_rate_max = 0"
    with pytest.raises(ConfigError, match=expected):
        policies.detection(conf(fence_rate_window=window))


def test_a_negative_rate_max_is_refused_with_what_to_do() -> None:
    expected = r"\[detection\] fence_rate_max = -1: .*or 0 to turn the fence rate limit off"
    with pytest.raises(ConfigError, match=expected):
        policies.detection(conf(fence_rate_max=-1))


def test_check_all_names_every_bad_option_as_the_daemon_would_at_start() -> None:
    c = cfg.ConfigOpts()
    opts.register(c)
    c([], project="petguard-test", default_config_files=[])
    assert policies.check_all(c) == []
    c.set_override("fence_rate_window", 0, group="detection")
    c.set_override("host_targets", ["cmp1=nowhere"], group="evacuation")
    c.set_override("interval", 5, group="capacity")
    problems = policies.check_all(c)
    assert len(problems) == 3, problems
    assert "fence_rate_window" in problems[0]
    assert "'nowhere' is not" in problems[1]
    assert "[capacity] interval = 5: use 0 (off) or at least 10" in problems[2]


# -- the nova-heartbeat signal's threshold -------------------------------------------------------------

HEARTBEAT_TABLE = [
    # (report_interval, heartbeat_stale_after, expected threshold, why)
    (None, None, 30.0, "Nova's default report_interval 10 s: 3 x 10"),
    (2.0, None, 6.0, "fast heartbeats (the lab): 3 x 2"),
    (10.0, 20.0, 20.0, "exactly 2 x report_interval is allowed"),
    (10.0, 45.0, 45.0, "longer is fine"),
    (10.0, 0.0, 0.0, "0 turns the signal off"),
]


@pytest.mark.parametrize(
    ("interval", "stale_after", "expected"), [r[:3] for r in HEARTBEAT_TABLE], ids=[r[3] for r in HEARTBEAT_TABLE]
)
def test_heartbeat_stale_after_from_config(interval: float | None, stale_after: float | None, expected: float) -> None:
    given = {"report_interval": interval, "heartbeat_stale_after": stale_after}
    options = {k: v for k, v in given.items() if v is not None}
    policy = policies.detection(conf(**options))
    assert policy.heartbeat_stale_after == expected
    assert policy.report_interval == (interval or 10.0)


@pytest.mark.fault(
    "STALE-07",
    guarantee="1",
    injected="[detection] heartbeat_stale_after set below 2 x report_interval (a healthy host would be called "
    "down between two heartbeats under load)",
    expected="the daemon refuses to start, naming the option, the shortest value and the way to turn it off",
)
@pytest.mark.parametrize(("interval", "stale_after"), [(10.0, 19.0), (10.0, 10.0), (10.0, 1.0), (5.0, 9.5)])
def test_a_heartbeat_threshold_below_two_intervals_is_refused(interval: float, stale_after: float) -> None:
    expected = (
        rf"\[detection\] heartbeat_stale_after = {stale_after:g} is shorter than 2 x report_interval "
        rf"\({2 * interval:g} s\).*or 0 to turn the nova-heartbeat signal off"
    )
    bad = conf(report_interval=interval, heartbeat_stale_after=stale_after)
    with pytest.raises(ConfigError, match=expected):
        policies.detection(bad)
    assert any("heartbeat_stale_after" in problem for problem in policies.check_all(bad))


def test_bmc_signal_options_from_config() -> None:
    c = conf(bmc_signal=False, bmc_read_timeout=2.5, bmc_read_min_interval=10, bmc_settle=20)
    watch = policies.power_watch(c)
    assert (watch.enabled, watch.timeout, watch.min_interval) == (False, 2.5, 10.0)
    assert policies.detection(c).bmc_settle == 20.0
    assert policies.power_watch(conf()).enabled is True


@pytest.mark.parametrize(("report_interval", "settle"), [(10, 15.0), (4, 6.0)])
def test_bmc_settle_defaults_to_one_and_a_half_report_intervals(report_interval: int, settle: float) -> None:
    assert policies.detection(conf(report_interval=report_interval)).bmc_settle == settle


def test_a_bmc_settle_below_report_interval_is_refused_with_why() -> None:
    with pytest.raises(ConfigError, match=r"bmc_settle = 5 is shorter than report_interval \(10 s\).*brake"):
        policies.detection(conf(bmc_settle=5))
