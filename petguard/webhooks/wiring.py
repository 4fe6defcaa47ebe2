"""Build the dispatcher from configuration (called by the composition root)."""

from __future__ import annotations

from oslo_config import cfg

from petguard.clock import Clock
from petguard.webhooks import receivers
from petguard.webhooks.dispatch import DeliveryPolicy, Dispatcher, Outbox


def policy_from_conf(conf: cfg.ConfigOpts) -> DeliveryPolicy:
    """``[webhooks]`` as a DeliveryPolicy."""
    group = conf.webhooks
    return DeliveryPolicy(attempts=group.attempts, backoff_max=group.backoff_max, poll_interval=group.poll_interval)


def build_dispatcher(conf: cfg.ConfigOpts, store: Outbox, clock: Clock) -> Dispatcher:
    """A Dispatcher for every receiver in ``[webhooks] receivers`` (none: it does nothing).

    :raises petguard.errors.ConfigError: a receiver is misconfigured (the message says which option).
    """
    return Dispatcher(store, receivers.from_conf(conf), clock, policy_from_conf(conf))
