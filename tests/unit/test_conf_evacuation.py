"""[evacuation] options become the EvacuationPolicy the planner receives."""

from __future__ import annotations

import pytest
from oslo_config import cfg

from petguard.cloud import HintKind, TargetHint
from petguard.conf import opts, policies
from petguard.errors import ConfigError
from petguard.evacuate.plan import ClassPolicy, EvacuationPolicy
from petguard.evacuate.ready import ReadyPolicy


def conf(**evacuation: object) -> cfg.ConfigOpts:
    c = cfg.ConfigOpts()
    opts.register(c)
    c([], project="petguard-test", default_config_files=[])
    for name, value in evacuation.items():
        c.set_override(name, value, group="evacuation")
    return c


def test_defaults_match_the_policy_defaults() -> None:
    policy = policies.evacuation(conf())
    assert policy == EvacuationPolicy()
    assert policy.local_disk is ClassPolicy.EVACUATE_IF_DATA_LOSS_ALLOWED and not policy.shared_storage


def test_class_policies_from_config() -> None:
    policy = policies.evacuation(
        conf(shared_storage=True, local_disk_policy="evacuate", devices_policy="leave_and_alert", max_parallel=2)
    )
    assert policy.shared_storage and policy.local_disk is ClassPolicy.EVACUATE
    assert policy.devices is ClassPolicy.LEAVE_AND_ALERT and policy.max_parallel == 2
    assert policies.recovery(conf(shared_storage=True)).evacuation.shared_storage


def test_readiness_between_tiers_from_config() -> None:
    assert policies.recovery(conf()).run.ready == ReadyPolicy()
    ready = policies.recovery(
        conf(tier_ready_timeout=60, tier_delay=15, ready_check_interval=0.5, ready_check_timeout=3)
    ).run.ready
    assert ready == ReadyPolicy(timeout=60.0, default_delay=15.0, interval=0.5, probe_timeout=3.0)


def test_host_targets_become_hint_rules() -> None:
    policy = policies.evacuation(
        conf(host_targets=["cmp1=az:zone2", "aggregate:rack1=reserved"], reserved_hosts=["spare1"])
    )
    assert policy.hints.by_host == {"cmp1": TargetHint(HintKind.AZ, "zone2")}
    assert policy.hints.by_aggregate == {"rack1": TargetHint(HintKind.RESERVED)}


def test_a_bad_host_target_is_refused_with_every_bad_line_named() -> None:
    with pytest.raises(ConfigError, match=r"host_targets: 'cmp1=foo': 'foo' is not .*'cmp2' is not SOURCE=HINT"):
        policies.recovery(conf(host_targets=["cmp1=foo", "cmp2", "cmp3=reserved"]))


def test_use_reserved_hosts_makes_reserved_the_default_hint() -> None:
    c = conf(use_reserved_hosts=True, reserved_hosts=["spare1", "spare2"])
    assert policies.evacuation(c).hints.default == TargetHint(HintKind.RESERVED)
    assert policies.recovery(c).reserved_hosts == ("spare1", "spare2")
    assert policies.evacuation(conf()).hints.default is None


@pytest.mark.parametrize("options", [{"use_reserved_hosts": True}, {"host_targets": ["aggregate:rack1=reserved"]}])
def test_the_reserved_hint_without_reserved_hosts_is_refused(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="reserved_hosts is empty"):
        policies.recovery(conf(**options))


def test_cloud_waits_and_stuck_requests_from_config() -> None:
    run = policies.recovery(conf(cloud_wait_timeout=600.0, stuck_after=120.0)).run
    assert (run.cloud_wait_timeout, run.stuck_after) == (600.0, 120.0)
    defaults = policies.recovery(conf()).run
    assert (defaults.cloud_wait_timeout, defaults.stuck_after) == (1800.0, 90.0)


def test_stuck_after_must_be_below_move_timeout() -> None:
    with pytest.raises(ConfigError, match=r"stuck_after \(700 s\) must be below move_timeout \(600 s\)"):
        policies.recovery(conf(stuck_after=700.0))
