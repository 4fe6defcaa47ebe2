"""Render the configuration files of the lab's services into $LAB/etc.

MariaDB, RabbitMQ (config + environment), Keystone, Placement, Glance and Nova
(one shared nova.conf plus a small per-process file for the log file and, for
computes, ``host``/``state_path``).  Values follow shared/notes/nova-lab.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from petguard_lab.settings import HOST_IP, REGION, SERVICE_PASSWORD, LabConfig


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    path.chmod(mode)


def _auth_section(cfg: LabConfig, name: str, user: str, extra: str = "") -> str:
    return f"""[{name}]
auth_url = {cfg.auth_url}
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = {user}
password = {SERVICE_PASSWORD}
region_name = {REGION}
{extra}"""


def _authtoken(cfg: LabConfig, user: str) -> str:
    return _auth_section(
        cfg, "keystone_authtoken", user, f"www_authenticate_uri = {cfg.auth_url}\n"
    )


def my_cnf(cfg: LabConfig) -> Path:
    return cfg.etc / "my.cnf"


def rabbit_env(cfg: LabConfig) -> dict[str, str]:
    """Environment for /usr/lib/rabbitmq/bin/rabbitmq-server (and rabbitmqctl)."""
    rdata = cfg.data / "rabbitmq"
    return {
        "HOME": str(rdata),  # the Erlang cookie lives in $HOME
        "RABBITMQ_CONF_ENV_FILE": "/dev/null",
        "RABBITMQ_NODENAME": "rabbit@localhost",
        "RABBITMQ_USE_LONGNAME": "false",
        "RABBITMQ_NODE_IP_ADDRESS": HOST_IP,
        "RABBITMQ_NODE_PORT": str(cfg.ports["amqp"]),
        "RABBITMQ_DIST_PORT": str(cfg.ports["rabbit_dist"]),
        "RABBITMQ_CONFIG_FILE": str(cfg.etc / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(cfg.etc / "rabbitmq-enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(rdata / "mnesia"),
        "RABBITMQ_LOG_BASE": str(cfg.log / "rabbitmq"),
        "RABBITMQ_PID_FILE": str(rdata / "beam.pid"),  # not ours: run/ holds only ours
        "ERL_EPMD_ADDRESS": HOST_IP,
        "ERL_EPMD_PORT": str(cfg.ports["epmd"]),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }


def write_all(cfg: LabConfig) -> None:
    """(Re)write every service configuration file for the current settings."""
    etc, data, log = cfg.etc, cfg.data, cfg.log
    for d in (etc, etc / "nova", etc / "glance", data, log, cfg.run, data / "rabbitmq",
              log / "rabbitmq"):
        d.mkdir(parents=True, exist_ok=True)

    _write(my_cnf(cfg), f"""[mysqld]
datadir={data}/mysql
socket={cfg.run}/mysqld.sock
pid-file={cfg.run}/mysqld.pid.mariadb
log-error={log}/mariadb.log
bind-address={HOST_IP}
port={cfg.ports['mariadb']}
user=root
skip-name-resolve
skip-log-bin
max_connections=500
innodb_buffer_pool_size=64M
innodb_log_file_size=48M
innodb_flush_log_at_trx_commit=0
innodb_doublewrite=0
performance_schema=OFF
character-set-server=utf8mb4
collation-server=utf8mb4_general_ci
[client]
socket={cfg.run}/mysqld.sock
user=root
""")

    _write(etc / "rabbitmq.conf", f"""listeners.tcp.default = {HOST_IP}:{cfg.ports['amqp']}
loopback_users = none
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = warning
""")
    _write(etc / "rabbitmq-enabled_plugins", "[].\n")

    _write(etc / "keystone" / "keystone.conf", f"""[DEFAULT]
log_file = {log}/keystone.log
[database]
connection = {cfg.db_url('keystone')}
[token]
provider = fernet
expiration = 86400
[fernet_tokens]
key_repository = {data}/keystone/fernet-keys
[fernet_receipts]
key_repository = {data}/keystone/fernet-keys
[credential]
key_repository = {data}/keystone/credential-keys
[cache]
# without a cache every authenticated keystone call costs ~200 ms
enabled = true
backend = dogpile.cache.memory
[identity]
# lab only: cheap bcrypt so password auth does not burn CPU
password_hash_rounds = 4
""")

    _write(etc / "placement" / "placement.conf", f"""[DEFAULT]
log_file = {log}/placement.log
[placement_database]
connection = {cfg.db_url('placement')}
[api]
auth_strategy = keystone
{_authtoken(cfg, 'placement')}""")

    glance_paste = etc / "glance" / "glance-api-paste.ini"
    _write(etc / "glance" / "glance-api.conf", f"""[DEFAULT]
log_file = {log}/glance.log
enabled_backends = file:file
[glance_store]
default_backend = file
[file]
filesystem_store_datadir = {data}/glance/images
[os_glance_staging_store]
filesystem_store_datadir = {data}/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = {data}/glance/tasks
[database]
connection = {cfg.db_url('glance')}
[paste_deploy]
flavor = keystone
config_file = {glance_paste}
[oslo_concurrency]
lock_path = {data}/glance/locks
{_authtoken(cfg, 'glance')}""")
    shutil.copyfile(cfg.venv / "etc" / "glance" / "glance-api-paste.ini", glance_paste)
    shutil.copyfile(cfg.venv / "etc" / "nova" / "api-paste.ini", etc / "nova" / "api-paste.ini")

    _write(etc / "nova" / "nova.conf", f"""[DEFAULT]
transport_url = {cfg.transport_url}
compute_driver = labfake.LabFakeDriver
my_ip = {HOST_IP}
state_path = {data}/nova
# liveness: computes heartbeat every report_interval s and are "down" after
# service_down_time s without one (nova defaults 10/60)
report_interval = {cfg.report_interval}
service_down_time = {cfg.service_down_time}
# no periodic neutron polling for instance info caches
heal_instance_info_cache_interval = -1
# default 60: periodic tasks (incl. host discovery) would start after a
# random 0-60 s delay
periodic_fuzzy_delay = 0
# SIGTERM: do not wait up to 60 s for in-flight work
graceful_shutdown_timeout = 5
[wsgi]
api_paste_config = {etc}/nova/api-paste.ini
[api_database]
connection = {cfg.db_url('nova_api')}
[database]
connection = {cfg.db_url('nova')}
[scheduler]
workers = 1
# map new nova-computes into cell1 automatically
discover_hosts_in_cells_interval = 2
[conductor]
workers = 1
[oslo_concurrency]
lock_path = {data}/nova/locks
[oslo_messaging_notifications]
driver = noop
[vnc]
enabled = false
[glance]
region_name = {REGION}
{_authtoken(cfg, 'nova')}service_token_roles_required = true
{_auth_section(cfg, 'service_user', 'nova', 'send_service_user_token = true')}
{_auth_section(cfg, 'placement', 'placement')}
{_auth_section(cfg, 'neutron', 'neutron')}""")
    for svc in ("nova-api", "nova-conductor", "nova-scheduler"):
        _write(etc / "nova" / f"{svc}.conf", f"[DEFAULT]\nlog_file = {log}/{svc}.log\n")
    (data / "nova").mkdir(exist_ok=True)
    for host in cfg.compute_names:
        (data / f"nova-{host}").mkdir(exist_ok=True)
        _write(etc / "nova" / f"nova-{host}.conf", f"""[DEFAULT]
host = {host}
state_path = {data}/nova-{host}
log_file = {log}/nova-compute-{host}.log
""")
