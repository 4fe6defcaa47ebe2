"""Every petguard option, per group, with bounds and help written for operators.

``list_opts`` feeds oslo-config-generator (``tox -e genconfig`` writes
etc/petguard/petguard.conf.sample).
"""

from __future__ import annotations

from oslo_config import cfg, types

default_opts: list[cfg.Opt] = [
    cfg.FloatOpt(
        "tick_interval",
        default=2.0,
        min=0.2,
        max=60,
        help="Seconds between two ticks of the control loop (each tick reads Nova's compute services once).",
    ),
    cfg.FloatOpt(
        "startup_blackout",
        default=120.0,
        min=0,
        help="Seconds after the daemon starts during which nobody is fenced, so that a "
        "controller restart during an outage does not fence on stale data.",
    ),
    cfg.BoolOpt("dry_run", default=False, help="Decide and record everything, but never fence and never evacuate."),
]

nova_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "cloud",
        default="envvars",
        help="Name of the cloud in clouds.yaml to use for Nova (admin credentials needed: "
        "services, all projects' servers, evacuate).",
    ),
    cfg.StrOpt(
        "clouds_file",
        help="Path of the clouds.yaml to read; default: openstacksdk's search path "
        "(./clouds.yaml, ~/.config/openstack, /etc/openstack). It holds a password: a file named here "
        "must be readable by its owner and group only (0640 or 0600).",
    ),
    cfg.FloatOpt("timeout", default=30.0, min=1, help="Seconds to wait for one Nova or Keystone HTTP request."),
]

database_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "connection",
        default="sqlite:////var/lib/petguard/petguard.sqlite",
        secret=True,
        help="SQLAlchemy URL of petguard's journal (sqlite by default; the directory must "
        "exist). Run `petguard-manage db upgrade` after changing it.",
    ),
]

detection_opts: list[cfg.Opt] = [
    cfg.FloatOpt(
        "grace_period",
        default=30.0,
        min=0,
        help="Seconds a host must look down before it is fenced, counted from the first tick it looks "
        "down: when petguard has seen its updated_at stand still for heartbeat_stale_after seconds (30 s "
        "with Nova's default report_interval), or when Nova reports it down (service_down_time, 60 s by "
        "default), whichever comes first. Keep it above report_interval, so that a control-plane stall, "
        "whose silence reaches the hosts over one report_interval, is seen by the brake as a whole.",
    ),
    cfg.IntOpt(
        "down_samples", default=2, min=1, help="Consecutive ticks a host must look down before it becomes suspect."
    ),
    cfg.IntOpt(
        "up_samples", default=2, min=1, help="Consecutive ticks a suspect host must look up before it is cleared."
    ),
    cfg.IntOpt(
        "brake_max_hosts",
        default=2,
        min=0,
        help="Mass-failure brake: fence nobody when more than this many hosts are suspect at once.",
    ),
    cfg.FloatOpt(
        "brake_max_percent",
        default=34.0,
        min=0,
        max=100,
        help="Mass-failure brake: fence nobody when more than this percentage of hosts "
        "are suspect at once (applies from two suspect hosts).",
    ),
    cfg.IntOpt(
        "fence_rate_max",
        default=3,
        help="Fence rate limit (the brake over time): at most this many fences may start within "
        "fence_rate_window seconds. When a host would be fenced beyond that, the brake engages and "
        "nobody more is fenced until every host is up again or an operator runs `petguard brake "
        "override`: hosts failing one after another (a bad kernel update, a failing top-of-rack "
        "switch, a power feed dropping hosts every few minutes) have a common cause that fencing "
        "does not cure, and each fence moves more pets onto the hosts that may fail next. 3 suits a "
        "cloud of 20 to 200 hosts: independent hardware failures come a few a year per 100 hosts, so "
        "even two in one hour are rare and a fourth is a pattern, and three hosts' pets are about "
        "what the spare capacity of a small cloud (N+2, N+3) takes in. Operator fences count too. "
        "0 turns the limit off.",
    ),
    cfg.FloatOpt(
        "fence_rate_window",
        default=3600.0,
        help="Seconds over which fence_rate_max counts fences that started (counted from the journal, "
        "so a restart does not reset it). One hour covers a rolling update or a power feed failing "
        "host by host, and is about how long an operator paged by the brake alert needs to look. "
        "Must be more than 0.",
    ),
    cfg.FloatOpt(
        "stale_fraction",
        default=0.8,
        min=0.1,
        max=1.0,
        help="When at least this fraction of hosts look down in the same tick, Nova's "
        "heartbeats are taken as stale (RabbitMQ or database outage): fence nobody.",
    ),
    cfg.IntOpt(
        "stale_min_hosts",
        default=3,
        min=1,
        help="The stale-heartbeat check applies only to clouds with at least this many hosts.",
    ),
    cfg.FloatOpt(
        "agent_stale_after",
        default=20.0,
        min=1,
        help="A host's petguard-agent counts as silent (a DOWN signal) when its last heartbeat is older than "
        "this. While it heartbeats, the host is never fenced, even if Nova reports its nova-compute down. "
        "Hosts without an agent are judged on Nova's signal alone.",
    ),
    cfg.FloatOpt(
        "report_interval",
        default=10.0,
        min=1,
        help="Nova's [DEFAULT] report_interval on the compute nodes: how often each nova-compute writes its "
        "heartbeat (its service's updated_at). If the computes differ, give the largest. This is the knob "
        "to set (to match Nova's): petguard's own staleness reading (heartbeat_stale_after) follows it "
        "unless that is set.",
    ),
    cfg.FloatOpt(
        "heartbeat_stale_after",
        min=0,
        help="A compute service whose updated_at petguard has not seen change for longer than this many "
        "seconds counts as down (the nova-heartbeat signal), without waiting for Nova's own "
        "service_down_time (60 s by default). Unset: 3 x report_interval (30 s with Nova's default), which "
        "lets two heartbeats in a row be lost or late (a busy conductor, a retried RPC) before a healthy host "
        "is called down. At least 2 x report_interval; 0 turns the signal off. petguard only watches "
        "updated_at change (its value is never compared with petguard's clock), and only ever brings DOWN "
        "earlier: a service Nova reports down, or forced down, is judged as before. Leave it unset and set "
        "report_interval; override it only if two lost heartbeats in a row is the wrong margin for this "
        "cloud.",
    ),
    cfg.IntOpt(
        "blind_after",
        default=3,
        min=1,
        help="Ticks in a row whose reading of Nova's compute services failed (Keystone refuses petguard's "
        "user, nova-api answers 5xx or times out) before petguard calls itself blind: it records one "
        "nova_unreadable event (a critical alert) naming the error and every host it can no longer watch, "
        "sets petguard_nova_blind to 1 and answers 503 on /healthz, until it reads Nova again (one "
        "nova_readable_again event). Every failed tick decides nothing either way: nobody is fenced and "
        "nobody is marked up on a reading that failed. 3 ticks (6 s with the default tick_interval of 2 s) lets a "
        "single lost request or a nova-api restart pass without an alert.",
    ),    cfg.BoolOpt(
        "bmc_signal",
        default=True,
        help="Read a host's power through its fence devices (read-only, in the fence child process, bounded by "
        "bmc_read_timeout) as soon as some source calls it down (Nova, petguard's heartbeat reading, its "
        "agent). OFF, read while every other source calls the host down, lets it fail bmc_settle seconds "
        "into its down episode instead of grace_period; ON and unreadable change nothing (grace, then "
        "fence). A reading never makes a host down on its own, never outvotes a live agent or a fresh "
        "heartbeat, and never bypasses the brake. The fence that follows still powers the host off and "
        "confirms it by fresh OFF readings.",
    ),
    cfg.FloatOpt(
        "bmc_read_timeout",
        default=5.0,
        min=0.5,
        max=60,
        help="Seconds for one host's BMC power reading, over all its fence devices; a reading that runs out "
        "of time is unreadable (no opinion, never down). Readings run beside the tick, never in it.",
    ),
    cfg.FloatOpt(
        "bmc_read_min_interval",
        default=5.0,
        min=0,
        help="Seconds between the starts of two BMC power readings of the same host while it looks down (at "
        "most one reading per host is in flight at any time). A host is read only while some source calls "
        "it down, so a healthy cloud sends its BMCs nothing.",
    ),
    cfg.FloatOpt(
        "bmc_settle",
        min=0,
        help="Seconds a host must have been down by every other source before an OFF reading lets it fail "
        "(instead of grace_period, when shorter). Hosts that lost power together (a PDU or a feed) go down "
        "over one report_interval, each at its own heartbeat; bmc_settle leaves the mass-failure brake that "
        "long to see them all, so that a BMC reading OFF never fences the first of them before the brake "
        "could engage. Unset: 1.5 x report_interval (15 s with Nova's default). At least report_interval.",
    ),
]

instance_health_opts: list[cfg.Opt] = [
    cfg.BoolOpt(
        "enabled",
        default=True,
        help="Restart pets whose guest hung (watchdog action none or pause) or crashed, as the agents report.",
    ),
    cfg.FloatOpt(
        "min_uptime",
        default=120.0,
        min=0,
        help="Seconds a restarted server must run before its restart counts as a success (the count starts again).",
    ),
    cfg.IntOpt(
        "max_restarts",
        default=3,
        min=0,
        help="Restarts of one server within [instance_health] window that did not last min_uptime; past this "
        "petguard gives up on the server for a window, leaves it as it is, and raises instance_restart_gave_up.",
    ),
    cfg.FloatOpt("window", default=3600.0, min=60, help="Seconds over which max_restarts is counted."),
    cfg.FloatOpt(
        "restart_timeout",
        default=300.0,
        min=10,
        help="Seconds to keep asking Nova for a restart it did not answer, and after which a restart the "
        "server never came back from counts as failed.",
    ),
    cfg.FloatOpt(
        "reset_report_interval",
        default=300.0,
        min=10,
        help="A guest whose watchdog keeps resetting it is reported at most once per this many seconds.",
    ),
    cfg.FloatOpt(
        "max_event_age",
        default=600.0,
        min=10,
        help="A hang or crash that reaches the controller later than this (an agent buffered it) is recorded, "
        "not acted on.",
    ),
]

fencing_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "inventory_file",
        default="/etc/petguard/inventory.yaml",
        help="YAML file with each compute host's fence device (BMC address, port, user, password or password_file). "
        "Password files, and this file if it holds a password inline, must be readable by their owner and group "
        "only (0640 or 0600).",
    ),
    cfg.ListOpt(
        "enabled_drivers", default=["ipmi"], help="Fence drivers that may be loaded (entry points 'petguard.fencing')."
    ),
    cfg.FloatOpt(
        "attempt_timeout",
        default=5.0,
        min=0.5,
        help="Seconds for one BMC request; the child process running it is killed after this plus a margin.",
    ),
    cfg.FloatOpt(
        "deadline",
        default=30.0,
        min=1,
        help="Seconds within which power-off must be confirmed, or the host waits for an operator's confirm-fenced.",
    ),
    cfg.FloatOpt(
        "poll_interval",
        default=0.5,
        min=0.05,
        help="Seconds between two power readings of a device during a fence (each reading is a fresh "
        "request in its own child process). With off_readings it sets how long the BMC must keep "
        "saying OFF: raise it for a BMC that reports OFF before the power has really dropped.",
    ),
    cfg.IntOpt(
        "off_readings",
        default=2,
        min=2,
        help="Consecutive OFF readings that confirm a fence, at least 2: 'command accepted' never counts "
        "and any other reading (ON, powering off, unreadable) starts the count again.",
    ),
    cfg.IntOpt("retries", default=3, min=0, help="Extra tries of the power-off command after a temporary BMC error."),
    cfg.FloatOpt(
        "resend_after",
        default=5.0,
        min=0,
        help="Seconds of ON readings after which power-off is sent to the device again (it is idempotent).",
    ),
    cfg.FloatOpt(
        "random_delay_max",
        default=0.0,
        min=0,
        max=60,
        help="Wait a random 0 to this many seconds before a host's first fence level (plus the host's own "
        "'delay:' in the inventory), so that two controllers never power each other's hosts off at once. "
        "0 disables it.",
    ),
    cfg.FloatOpt(
        "readiness_interval",
        default=300.0,
        min=10,
        help="Fence readiness: every fence device of every level has its power state read (read-only) once "
        "per this many seconds, spread evenly (one device every interval/N seconds). A change between "
        "readable and not is recorded as an event (fence_device_unreachable, fence_device_ok).",
    ),
]

evacuation_opts: list[cfg.Opt] = [
    cfg.ListOpt(
        "pet_selectors",
        default=["petguard", "masakari", "evacuable_tag", "evacuable_flavor", "evacuable_image"],
        item_type=types.String(
            choices=["petguard", "masakari", "evacuable_tag", "evacuable_flavor", "evacuable_image", "all"]
        ),
        help="What makes a server a pet: petguard (metadata petguard:pet=true), masakari "
        "(metadata HA_Enabled=True), evacuable_tag / evacuable_flavor / evacuable_image "
        "(Red Hat's 'evacuable' tag, flavor extra spec or image property), all.",
    ),
    cfg.BoolOpt("evacuate_locked", default=False, help="Evacuate pets that their owner locked."),
    cfg.IntOpt("max_parallel", default=4, min=1, max=64, help="Evacuations of one host in flight at once."),
    cfg.FloatOpt(
        "move_timeout",
        default=600.0,
        min=10,
        help="Seconds one evacuation may take before it is declared failed (time spent waiting for the cloud "
        "does not count: see cloud_wait_timeout).",
    ),
    cfg.FloatOpt(
        "cloud_wait_timeout",
        default=1800.0,
        min=60,
        help="Seconds an evacuation waits for a cloud that cannot answer now (Nova or Keystone unreachable or "
        "5xx, a refused token, no other compute up in Nova's records, placement silent, MessagingTimeout) "
        "before it is declared failed. A wait is never an attempt; the move asks again by itself when the "
        "cloud answers (docs/evacuation.md, 'When the cloud cannot answer').",
    ),
    cfg.FloatOpt(
        "stuck_after",
        default=90.0,
        min=30,
        help="Seconds after Nova took an evacuation whose migration is still 'accepted' with no destination "
        "before the move is flagged stuck (an evacuation_stuck event with the commands to recover it) and "
        "gives its evacuation slot back. Keep it above Nova's rpc_response_timeout (60 s), which ends a "
        "scheduling that merely waits.",
    ),
    cfg.FloatOpt(
        "restore_timeout",
        default=120.0,
        min=5,
        help="Seconds a restored host has to send a heartbeat before it is forced down again.",
    ),
    cfg.FloatOpt(
        "tier_ready_timeout",
        default=300.0,
        min=0,
        help="Seconds a tier waits for the pets of the tiers before it to be ready (ACTIVE and their "
        "petguard:ready_check answering; counted after their delays, which are waited in full) before it "
        "starts anyway, with a tier_not_ready event (docs/evacuation.md, 'Readiness between tiers').",
    ),
    cfg.FloatOpt(
        "tier_delay",
        default=0.0,
        min=0,
        help="Seconds after a pet is back (on another host, in its old power state) before it counts as ready "
        "for the next tier; a pet's metadata petguard:ready_delay overrides it. 0: no delay.",
    ),
    cfg.FloatOpt(
        "ready_check_interval",
        default=2.0,
        min=0.1,
        max=60,
        help="Seconds between two rounds of readiness checks while a tier waits.",
    ),
    cfg.FloatOpt(
        "ready_check_timeout",
        default=2.0,
        min=0.1,
        max=30,
        help="Seconds one readiness check (a TCP connect, or an HTTP GET's answer) may take.",
    ),
    cfg.BoolOpt(
        "shared_storage",
        default=False,
        help="The disks of servers booted from an image are on storage every compute host shares (Ceph RBD "
        "ephemeral disks, an NFS instances directory): an evacuation keeps their content. False: they are "
        "on the failed host's local disk, and an evacuation rebuilds them from their image "
        "(local_disk_policy applies).",
    ),
    *[
        cfg.StrOpt(
            f"{pet_class}_policy",
            default=default,
            choices=[
                ("evacuate", "evacuate"),
                ("evacuate_if_data_loss_allowed", "evacuate only pets with metadata petguard:allow_data_loss=true"),
                ("leave_and_alert", "leave on the failed host, with a critical pet_left_behind alert"),
            ],
            help=f"What to do with pets {what} (docs/evacuation.md).",
        )
        for pet_class, default, what in (
            ("boot_from_volume", "evacuate", "that boot from a volume"),
            ("shared_disk", "evacuate", "that boot from an image onto shared storage (shared_storage = true)"),
            (
                "local_disk",
                "evacuate_if_data_loss_allowed",
                "that boot from an image onto the host's local disk (shared_storage = false): an evacuation "
                "rebuilds them from their image and the content of their disk is lost",
            ),
            (
                "devices",
                "evacuate",
                "whose flavor asks for a device (pci_passthrough:alias, resources:VGPU, resources:PGPU, "
                "accel:device_profile, resources:CUSTOM_*): Nova's scheduler must find a host that has it free",
            ),
        )
    ],
    cfg.MultiStrOpt(
        "host_targets",
        default=[],
        help="Target hints for the pets of a failed host, one SOURCE=HINT per line (repeat the option). "
        "SOURCE is a compute host name, or aggregate:NAME for every host of that host aggregate; HINT is "
        "aggregate:NAME (a host of that aggregate), az:NAME (a host of that availability zone) or reserved "
        "(a reserved failover host). A server's metadata petguard:target wins over these; a host name wins "
        "over an aggregate. petguard proposes the host and Nova's scheduler validates it; when the hint "
        "cannot be met the pet goes to the scheduler's own choice (event target_hint_unmet). Example: "
        "host_targets = cmp1=az:zone2 and host_targets = aggregate:rack1=aggregate:rack2 "
        "(docs/evacuation.md, Target hints).",
    ),
    cfg.ListOpt(
        "reserved_hosts",
        default=[],
        help="Reserved failover hosts: compute hosts the operator keeps disabled in Nova "
        "(openstack compute service set --disable --disable-reason ... HOST nova-compute). A pet with the "
        "hint reserved borrows one for its incident: petguard enables its service, sends the pet there "
        "(the scheduler validates it), and when every evacuation of the incident is final disables it "
        "again (the pets it took stay on it). One host per incident, the first idle one in this order "
        "whose service is up. The capacity check counts their free room although they are disabled. "
        "docs/evacuation.md, Reserved failover hosts.",
    ),
    cfg.BoolOpt(
        "use_reserved_hosts",
        default=False,
        help="Make reserved the default target hint of every pet (a server's petguard:target and "
        "host_targets still win). Needs reserved_hosts.",
    ),
]

webhooks_opts: list[cfg.Opt] = [
    cfg.ListOpt(
        "receivers",
        default=[],
        help="Names of the receivers of outgoing alerts; each NAME has its own [webhook:NAME] group "
        "(url, format, secret_file, kinds filters, timeout). Empty: no alerts are sent.",
    ),
    cfg.FloatOpt("poll_interval", default=1.0, min=0.1, help="Seconds between two looks for new events."),
    cfg.IntOpt("attempts", default=3, min=1, help="Tries of one delivery in a row before backing off."),
    cfg.FloatOpt(
        "backoff_max",
        default=300.0,
        min=1,
        help="Longest wait (seconds) between two rounds of tries to a failing receiver; the wait doubles "
        "from 2 s up to this, and survives a restart. Undelivered alerts wait, they are never dropped.",
    ),
]

#: One receiver's options. Registered at run time for each [webhook:NAME] group named in
#: [webhooks] receivers (``petguard.webhooks.receivers``); shown once in the sample as [webhook:NAME].
webhook_receiver_opts: list[cfg.Opt] = [
    cfg.URIOpt(
        "url",
        schemes=["http", "https"],
        secret=True,
        help="Where to POST each alert (a Slack incoming-webhook URL is itself a secret: never logged).",
    ),
    cfg.StrOpt(
        "format",
        default="json",
        choices=[("json", "petguard's JSON event (docs/alerts.md)"), ("slack", 'Slack-compatible {"text": ...}')],
        help="Body of each POST.",
    ),
    cfg.StrOpt(
        "secret_file",
        help="File holding the HMAC-SHA256 key: each POST carries X-Petguard-Timestamp and "
        "X-Petguard-Signature: sha256=HMAC(key, timestamp + '.' + body). Readable by its owner and group "
        "only (0640 or 0600). Unset: unsigned.",
    ),
    cfg.ListOpt(
        "include_kinds",
        default=[],
        help="Only these event kinds (shell patterns such as fence_*); empty: every kind.",
    ),
    cfg.ListOpt("exclude_kinds", default=[], help="Never these event kinds (shell patterns), even if included."),
    cfg.StrOpt(
        "min_severity",
        default="info",
        choices=["info", "warning", "critical"],
        help="Only events of at least this severity (docs/alerts.md lists each kind's severity).",
    ),
    cfg.FloatOpt("timeout", default=5.0, min=0.5, max=120, help="Seconds for one POST."),
]

api_opts: list[cfg.Opt] = [
    cfg.BoolOpt("enabled", default=True, help="Serve the HTTP API (the petguard CLI, alerts in, /healthz, /metrics)."),
    cfg.StrOpt(
        "bind",
        default="127.0.0.1:8795",  # api.server.DEFAULT_BIND (8786 was Manila's)
        help="HOST:PORT the API listens on. Keep it on localhost or a management network: "
        "the API can fence hosts. Ignored when [api] socket is set. With [api] tls_cert_file and "
        "tls_key_file it is served over TLS only; https://HOST:PORT says so (and refuses to start without them).",
    ),
    cfg.StrOpt(
        "tls_cert_file",
        help="PEM file with the API's TLS certificate (then any intermediate certificates). Set with "
        "[api] tls_key_file to serve [api] bind over TLS 1.2 or newer, only; agents, the CLI and alert "
        "senders then verify it with the CA that signed it (docs/api.md, 'TLS'). Unset: plain HTTP. "
        "A unix socket never uses TLS.",
    ),
    cfg.StrOpt(
        "tls_key_file",
        help="PEM file with the private key of [api] tls_cert_file (not encrypted). A secret file: "
        "readable by its owner and group only (0640 or 0600).",
    ),
    cfg.StrOpt(
        "socket",
        help="Path of a unix socket to serve the API on instead of [api] bind (mode 0660: the "
        "daemon's user and group may connect).",
    ),
    cfg.StrOpt(
        "token_file",
        default="/etc/petguard/api-token",
        help="File with the operators' bearer token (one token, or 'NAME TOKEN' lines; the name "
        "is recorded in the audit trail). Readable by its owner and group only (0640 or 0600).",
    ),
    cfg.StrOpt(
        "hmac_key_file",
        help="File with the HMAC-SHA256 key(s) that agents and alert senders sign with (one key, or "
        "'NAME KEY' lines, chosen by the X-Petguard-Sender header). A key's name binds it to one compute "
        "host: 'agent-cmp1' (or 'cmp1') reports heartbeats and events for cmp1 only; a bare key (no name) "
        "for no host, it may only sign alerts. Give each agent its own key. Readable by its owner and group "
        "only (0640 or 0600). Unset: no signed requests.",
    ),
    cfg.StrOpt(
        "alert_token_file",
        help="File with a bearer token that only allows POST /v1/alerts (Alertmanager cannot sign). "
        "Readable by its owner and group only (0640 or 0600). Unset: alerts need an operator token or a signature.",
    ),
    cfg.ListOpt(
        "alert_host_labels",
        default=["instance", "host", "nodename"],
        help="Alert labels naming the host an alert is about, first match wins; a ':port' suffix is "
        "stripped. The value must be the host's name as Nova names it.",
    ),
    cfg.FloatOpt(
        "alert_ttl",
        default=18000.0,
        min=60,
        help="Seconds a firing alert counts as evidence when it is neither resolved nor sent again "
        "(longer than Alertmanager's repeat_interval). Alerts never fence a host by themselves.",
    ),
    cfg.IntOpt(
        "max_body_bytes",
        default=1048576,
        min=1024,
        max=16777216,
        help="Largest request body the API accepts; larger ones are refused with 413 before they are "
        "read. A body an endpoint does not read is dropped up to this size; beyond it, the connection "
        "is closed.",
    ),
    cfg.IntOpt(
        "threads",
        default=32,
        min=2,
        max=1024,
        help="Worker threads of the API server. Each connection that is sending a request, however "
        "slowly, holds one until [api] request_timeout; with fewer slow clients than threads, "
        "/healthz and the CLI are not delayed at all (docs/api.md, 'Slow clients').",
    ),
    cfg.FloatOpt(
        "client_timeout",
        default=5.0,
        min=0.5,
        max=300,
        help="Seconds one read from an API client may wait for more data; also how long an idle "
        "keep-alive connection is kept.",
    ),
    cfg.FloatOpt(
        "request_timeout",
        default=10.0,
        min=1,
        max=600,
        help="Seconds a client has to send one whole request (request line, headers and body). A "
        "client that trickles bytes (a slowloris) is cut off then, with 408, and its thread freed.",
    ),
]

coordination_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "backend_url",
        default="file:///var/lib/petguard/coordination",
        secret=True,
        help="tooz URL of the leader election backend, the same on every controller. The default "
        "file backend elects among daemons of ONE machine (a single controller). For several "
        "controllers: etcd3+http://HOST:2379, redis://HOST:6379, mysql://USER:PASS@HOST/DB, "
        "postgresql://USER:PASS@HOST/DB or zookeeper://HOST:2181 (docs/controllers.md).",
    ),
    cfg.StrOpt(
        "member_id",
        sample_default="<the host name>",
        help="This controller's name in the election (default: the host name); unique per controller.",
    ),
    cfg.StrOpt("group", default="petguard", help="The tooz group the controllers join (and the leader lock's name)."),
    cfg.FloatOpt(
        "heartbeat_interval",
        default=1.0,
        min=0.1,
        max=30,
        help="Seconds between two heartbeats to the backend (and checks of the journal's epoch).",
    ),
    cfg.FloatOpt(
        "leader_timeout",
        default=10.0,
        min=1,
        max=300,
        help="A leader that has had no successful heartbeat for this many seconds stops acting at "
        "once. The leader lock expires after twice this (unless backend_url sets lock_timeout), so "
        "a dead leader is replaced after about 2 x leader_timeout.",
    ),
]

capacity_opts: list[cfg.Opt] = [
    cfg.FloatOpt(
        "interval",
        default=300.0,
        min=0,
        help="Seconds between two capacity checks (on the leader): could the other hosts and the reserved "
        "hosts take the pets of any one host if it failed now? Each check reads Nova (services, hypervisors, "
        "all servers) and placement (2 requests per host). Short raises a capacity_short alert. 0 disables it.",
    ),
]

GROUPS: list[tuple[str | None, list[cfg.Opt]]] = [
    (None, default_opts),
    ("nova", nova_opts),
    ("database", database_opts),
    ("detection", detection_opts),
    ("fencing", fencing_opts),
    ("evacuation", evacuation_opts),
    ("webhooks", webhooks_opts),
    ("api", api_opts),
    ("coordination", coordination_opts),
    ("instance_health", instance_health_opts),
    ("capacity", capacity_opts),
]

#: The template of the per-receiver groups, for the sample config only.
RECEIVER_TEMPLATE = "webhook:name"


def register(conf: cfg.ConfigOpts) -> None:
    """Register every petguard option on ``conf``."""
    for group, options in GROUPS:
        conf.register_opts(options, group=group)


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """Entry point for oslo-config-generator (namespace 'petguard')."""
    listed = [(group, list(options)) for group, options in GROUPS]
    return [*listed, (RECEIVER_TEMPLATE, list(webhook_receiver_opts))]
