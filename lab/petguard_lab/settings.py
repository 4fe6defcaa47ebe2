"""Lab settings and on-disk layout: ports, computes, heartbeats, paths, lab.json.

`LabConfig` is the single source of truth for where everything lives under the
lab directory and which loopback ports are used.  It is persisted as
``$LAB/lab.json`` on every ``up`` so that later commands (and tests) know the
settings the lab was started with.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

DEFAULT_LAB_DIR = "/var/tmp/petguard-lab"
HOST_IP = "127.0.0.1"

#: Default TCP ports.  They avoid the machine's own MariaDB (3306),
#: RabbitMQ (5672, dist 25672) and epmd (4369).
DEFAULT_PORTS: dict[str, int] = {
    "mariadb": 13306,
    "epmd": 14369,
    "amqp": 15673,
    "rabbit_dist": 25673,
    "keystone": 5000,
    "placement": 8778,
    "glance": 9292,
    "neutron": 9696,
    "nova_api": 8774,
}
#: First UDP port of the per-compute BMCs (cmp1 = BMC_BASE_PORT + 1).
DEFAULT_BMC_BASE_PORT = 16230
MAX_COMPUTES = 6

DEFAULT_REPORT_INTERVAL = 2
DEFAULT_SERVICE_DOWN_TIME = 10

#: Versions of the OpenStack services installed into $LAB/venv.
LAB_PACKAGES: tuple[str, ...] = (
    "nova==34.0.0",
    "openstack-placement==16.0.0",
    "keystone==30.0.0",
    "glance==33.0.0",
    "PyMySQL",
    "python-memcached",
    "uwsgi",
)

# Credentials used inside the lab (loopback only, throwaway).
ADMIN_PASSWORD = "admin"
DEMO_PASSWORD = "demo"
SERVICE_PASSWORD = "lab"
DB_USER = "lab"
DB_PASSWORD = "lab"
REGION = "RegionOne"


class LabError(Exception):
    """A lab operation failed; the message says what is wrong and what to do."""


def default_lab_dir() -> Path:
    """The lab directory from ``PETGUARD_LAB_DIR`` or the built-in default."""
    return Path(os.environ.get("PETGUARD_LAB_DIR") or DEFAULT_LAB_DIR)


def compute_name(index: int) -> str:
    """Name of the compute host number ``index`` (1-based): cmp1, cmp2, ..."""
    return f"cmp{index}"


@dataclasses.dataclass
class LabConfig:
    """Settings of one lab; persisted in ``$LAB/lab.json``."""

    lab_dir: Path
    computes: int = 3
    ports: dict[str, int] = dataclasses.field(default_factory=lambda: dict(DEFAULT_PORTS))
    bmc_base_port: int = DEFAULT_BMC_BASE_PORT
    report_interval: int = DEFAULT_REPORT_INTERVAL
    service_down_time: int = DEFAULT_SERVICE_DOWN_TIME

    # ----------------------------------------------------------------- paths
    @property
    def venv(self) -> Path:
        return self.lab_dir / "venv"

    @property
    def etc(self) -> Path:
        return self.lab_dir / "etc"

    @property
    def data(self) -> Path:
        return self.lab_dir / "data"

    @property
    def log(self) -> Path:
        return self.lab_dir / "log"

    @property
    def run(self) -> Path:
        """Directory of the PID files of every process the lab started."""
        return self.lab_dir / "run"

    @property
    def bmc_dir(self) -> Path:
        return self.lab_dir / "bmc"

    @property
    def petguard_dir(self) -> Path:
        return self.lab_dir / "petguard"

    @property
    def clouds_yaml(self) -> Path:
        return self.lab_dir / "clouds.yaml"

    @property
    def conf_file(self) -> Path:
        return self.petguard_dir / "petguard.conf"

    @property
    def inventory_file(self) -> Path:
        return self.petguard_dir / "inventory.yaml"

    @property
    def state_file(self) -> Path:
        return self.lab_dir / "lab.json"

    # --------------------------------------------------------------- derived
    @property
    def compute_names(self) -> list[str]:
        return [compute_name(i) for i in range(1, self.computes + 1)]

    def bmc_port(self, host: str) -> int:
        return self.bmc_base_port + self.host_index(host)

    def host_index(self, host: str) -> int:
        if host not in self.compute_names:
            raise LabError(
                f"unknown compute host {host!r}; this lab has {', '.join(self.compute_names)}"
            )
        return int(host[3:])

    def bmc_host_dir(self, host: str) -> Path:
        return self.bmc_dir / host

    def bmc_password_file(self, host: str) -> Path:
        return self.petguard_dir / f"bmc-{host}.password"

    def url(self, service: str) -> str:
        """Base URL of a lab HTTP service (keystone, placement, glance, neutron, nova_api)."""
        return f"http://{HOST_IP}:{self.ports[service]}"

    @property
    def auth_url(self) -> str:
        return self.url("keystone") + "/v3"

    def db_url(self, database: str) -> str:
        return (
            f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@{HOST_IP}:{self.ports['mariadb']}/{database}"
        )

    @property
    def transport_url(self) -> str:
        return f"rabbit://guest:guest@{HOST_IP}:{self.ports['amqp']}/"

    # ----------------------------------------------------------- validation
    def validate(self) -> None:
        if not 1 <= self.computes <= MAX_COMPUTES:
            raise LabError(f"--computes must be between 1 and {MAX_COMPUTES}, got {self.computes}")
        if self.report_interval < 1:
            raise LabError("--report-interval must be at least 1 second")
        if self.service_down_time <= self.report_interval:
            raise LabError(
                "--service-down-time must be larger than --report-interval "
                f"(got {self.service_down_time} <= {self.report_interval}); "
                "nova would silently raise it to 2.5 x report_interval"
            )
        unknown = set(self.ports) - set(DEFAULT_PORTS)
        if unknown:
            raise LabError(
                f"unknown port name(s) {sorted(unknown)}; known: {', '.join(DEFAULT_PORTS)}"
            )
        used: dict[int, str] = {}
        for name, port in self.ports.items():
            if port in used:
                raise LabError(f"port {port} is configured for both {used[port]} and {name}")
            used[port] = name

    # ---------------------------------------------------------- persistence
    def to_json(self) -> dict[str, Any]:
        """The machine-readable state written to lab.json (for tests)."""
        return {
            "lab_dir": str(self.lab_dir),
            "host_ip": HOST_IP,
            "ports": dict(self.ports),
            "computes": self.compute_names,
            "report_interval": self.report_interval,
            "service_down_time": self.service_down_time,
            "bmc_base_port": self.bmc_base_port,
            "bmc": {
                host: {
                    "address": HOST_IP,
                    "port": self.bmc_port(host),
                    "username": "admin",
                    "password_file": str(self.bmc_password_file(host)),
                    "state_dir": str(self.bmc_host_dir(host)),
                }
                for host in self.compute_names
            },
            "urls": {
                name: self.url(name)
                for name in ("keystone", "placement", "glance", "neutron", "nova_api")
            },
            "auth_url": self.auth_url,
            "pids_dir": str(self.run),
            "log_dir": str(self.log),
            "venv": str(self.venv),
            "clouds_yaml": str(self.clouds_yaml),
            "clouds": {"admin": "petguard-lab", "demo": "petguard-lab-demo"},
            "petguard_conf": str(self.conf_file),
            "inventory_file": str(self.inventory_file),
        }

    def save(self) -> None:
        self.lab_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
        tmp.replace(self.state_file)

    @classmethod
    def load(cls, lab_dir: Path) -> LabConfig:
        """Settings from lab.json, or the defaults when the lab was never started."""
        lab_dir = Path(lab_dir).absolute()
        state = lab_dir / "lab.json"
        if not state.exists():
            return cls(lab_dir=lab_dir)
        try:
            raw = json.loads(state.read_text())
            return cls(
                lab_dir=lab_dir,
                computes=len(raw["computes"]),
                ports={**DEFAULT_PORTS, **raw["ports"]},
                bmc_base_port=int(raw["bmc_base_port"]),
                report_interval=int(raw["report_interval"]),
                service_down_time=int(raw["service_down_time"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise LabError(
                f"{state} is unreadable ({exc}); fix or delete it (petguard-lab clean)"
            ) from exc
