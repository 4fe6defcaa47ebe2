"""[evacuation] options become the EvacuationPolicy the planner receives."""

from __future__ import annotations

from oslo_config import cfg

from petguard.conf import opts, policies
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
