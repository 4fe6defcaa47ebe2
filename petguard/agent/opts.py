"""petguard-agent's options: the ``[agent]`` group (``/etc/petguard/agent.conf``)."""

from __future__ import annotations

import socket

from oslo_config import cfg

agent_opts: list[cfg.Opt] = [
    cfg.ListOpt(
        "controller_urls",
        default=["http://127.0.0.1:8795"],  # the API's default port (docs/api.md)
        help="Base URLs of the controllers' petguard API, tried in order (the one that answered is tried first next).",
    ),
    cfg.StrOpt(
        "ca_file",
        help="PEM file with the CA certificate(s) that signed the controllers' API certificate ([api] "
        "tls_cert_file), used for https:// controller_urls. Unset: the system trust store. There is no "
        "option to skip verification: the agent's signed reports would go to whoever answers.",
    ),
    cfg.StrOpt(
        "hmac_key_file",
        default="/etc/petguard/agent-hmac-key",
        help="File with the HMAC-SHA256 key this agent signs with (one key, the same as this sender's key in "
        "the controllers' [api] hmac_key_file). Readable by its owner and group only (0640 or 0600).",
    ),
    cfg.StrOpt(
        "sender",
        help="Sender name in X-Petguard-Sender: this key's name in the controllers' [api] hmac_key_file, "
        "'agent-<host>' or '<host>' (a key speaks only for the host it is named after). Default: the host name.",
    ),
    cfg.StrOpt(
        "host",
        default=socket.gethostname(),
        sample_default="<the machine's host name>",
        help="This compute host's name exactly as Nova names it (nova.conf [DEFAULT] host).",
    ),
    cfg.FloatOpt(
        "heartbeat_interval",
        default=5.0,
        min=0.2,
        max=120,
        help="Seconds between two heartbeats. Keep it well under the controllers' [detection] agent_stale_after.",
    ),
    cfg.StrOpt(
        "libvirt_uri",
        default="qemu:///system",
        help="libvirt URI to watch (read-only is enough; Nova's [libvirt] connection_uri).",
    ),
    cfg.StrOpt(
        "buffer_dir",
        default="/var/lib/petguard-agent",
        help="Directory of the on-disk event buffer (events wait there while no controller is reachable).",
    ),
    cfg.IntOpt(
        "buffer_max_events",
        default=10000,
        min=10,
        help="Events the buffer holds at most; when full, the oldest are dropped, counted and logged.",
    ),
    cfg.FloatOpt("request_timeout", default=5.0, min=0.5, max=120, help="Seconds for one request to a controller."),
    cfg.IntOpt(
        "keepalive_interval",
        default=5,
        min=1,
        help="Seconds between libvirt keepalive probes; the connection is dropped and re-opened after "
        "keepalive_count unanswered probes.",
    ),
    cfg.IntOpt("keepalive_count", default=3, min=1, help="Unanswered libvirt keepalive probes before reconnecting."),
]


def register(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(agent_opts, group="agent")


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """Entry point for oslo-config-generator (namespace 'petguard.agent')."""
    return [("agent", list(agent_opts))]
