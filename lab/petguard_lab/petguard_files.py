"""The files the lab writes for petguard: clouds.yaml, inventory.yaml, petguard.conf.

Kept in one small module so that option names can follow petguard's
configuration as it evolves.  petguard_lab does not import petguard: these
are plain text in the formats petguard reads (YAML, oslo.config INI).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from petguard_lab.settings import ADMIN_PASSWORD, DEMO_PASSWORD, HOST_IP, REGION, LabConfig

ADMIN_CLOUD = "petguard-lab"
DEMO_CLOUD = "petguard-lab-demo"
BMC_USER = "admin"


def _atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    tmp.replace(path)


def clouds_yaml(cfg: LabConfig) -> str:
    def cloud(name: str, user: str, password: str, project: str) -> str:
        return f"""  {name}:
    auth:
      auth_url: {cfg.auth_url}
      username: {user}
      password: {password}
      project_name: {project}
      user_domain_name: Default
      project_domain_name: Default
    region_name: {REGION}
    identity_api_version: 3
    interface: public
"""

    return ("clouds:\n"
            + cloud(ADMIN_CLOUD, "admin", ADMIN_PASSWORD, "admin")
            + cloud(DEMO_CLOUD, "demo", DEMO_PASSWORD, "demo"))


def inventory_yaml(cfg: LabConfig) -> str:
    lines = ["hosts:"]
    for host in cfg.compute_names:
        lines += [
            f"  {host}:",
            "    bmc:",
            "      driver: ipmi",
            f"      address: {HOST_IP}",
            f"      port: {cfg.bmc_port(host)}",
            f"      username: {BMC_USER}",
            f"      password_file: {cfg.bmc_password_file(host)}",
        ]
    return "\n".join(lines) + "\n"


def petguard_conf(cfg: LabConfig) -> str:
    return f"""[DEFAULT]
log_file = {cfg.log}/petguard-daemon.log
tick_interval = 1
startup_blackout = 0
[nova]
cloud = {ADMIN_CLOUD}
clouds_file = {cfg.clouds_yaml}
[database]
connection = sqlite:///{cfg.petguard_dir}/petguard.sqlite
[detection]
grace_period = {cfg.service_down_time}
# The lab fences host after host on purpose (each demo, `petguard-lab fail`): the default
# rate limit, 3 fences per hour, would hold the 4th demo of an hour. 10 per 10 minutes keeps
# it on for rehearsals.
fence_rate_max = 10
fence_rate_window = 600
[fencing]
inventory_file = {cfg.inventory_file}
[api]
bind = 127.0.0.1:{API_PORT}
token_file = {api_token_file(cfg)}
[coordination]
backend_url = file://{cfg.petguard_dir}/coordination
[evacuation]
# The lab's fake virt driver keeps no disk content: rebuilding a server elsewhere loses nothing,
# as on a cloud whose instance disks are on shared storage (Ceph RBD, NFS).
shared_storage = true
"""


#: Where the lab's petguard serves its HTTP API (the `petguard` CLI: --url http://127.0.0.1:18786).
API_PORT = 18786


def api_token_file(cfg: LabConfig) -> Path:
    """The API token of the lab's petguard (mode 0600), for `petguard --token-file`."""
    return cfg.petguard_dir / "api-token"


def write_petguard_files(cfg: LabConfig) -> None:
    """Write clouds.yaml, petguard/inventory.yaml and petguard/petguard.conf."""
    _atomic_write(cfg.clouds_yaml, clouds_yaml(cfg), 0o600)
    _atomic_write(cfg.inventory_file, inventory_yaml(cfg))
    _atomic_write(cfg.conf_file, petguard_conf(cfg))
    token = api_token_file(cfg)
    if not token.exists():
        _atomic_write(token, secrets.token_urlsafe(32) + "\n", 0o600)
