"""The lab's services: the table of its processes and how each is started, waited for, stopped.

`LabServices` is the base of the `Lab` (lab.py) and of its parts (initialise.py, bmcs.py,
faults.py, components.py): it holds the settings (``cfg``), the PID files in ``$LAB/run``, the
table of every process (`services`, in start order; `STOP_ORDER` for ``down``), starting one
(`_start`), one-shot commands (`_run`) and the waits (`_wait`, `wait_computes_up`).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from petguard_lab import procs
from petguard_lab import service_configs as configs
from petguard_lab.osapi import Nova
from petguard_lab.settings import DEFAULT_PORTS, HOST_IP, LabConfig, LabError

PACKAGE_DIR = Path(__file__).resolve().parent
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: stop groups, first to last; names are matched by prefix
STOP_ORDER: tuple[tuple[str, ...], ...] = (
    ("nova-compute-", "bmc-"),
    ("nova-scheduler", "nova-conductor", "nova-api"),
    ("glance", "placement", "neutron-stub", "keystone"),
    ("rabbitmq", "mariadb"),
    ("epmd",),
)


@dataclasses.dataclass(frozen=True)
class Service:
    """One process of the lab."""

    name: str
    argv: list[str]
    port: int | None = None
    port_key: str | None = None
    udp: bool = False
    env: dict[str, str] | None = None
    extra_ports: tuple[tuple[str, int], ...] = ()


class LabServices:
    """The lab's processes under ``cfg`` (the base of `Lab`, which sets the attributes)."""

    lab_dir: Path
    cfg: LabConfig
    verbose: bool

    # ------------------------------------------------------------ utilities
    def _say(self, msg: str) -> None:
        if self.verbose:
            print(f"[petguard-lab {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    @property
    def compute_names(self) -> list[str]:
        return self.cfg.compute_names

    def pidfile(self, name: str) -> Path:
        return self.cfg.run / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        """PID of a running lab process (e.g. 'nova-compute-cmp1', 'bmc-cmp1'), else None."""
        return procs.read_pidfile(self.pidfile(name))

    def _stop_mark(self, process: str) -> Path:
        """Written by ``control-plane stop`` (components.py); a start of the process removes it."""
        return self.cfg.run / f"{process}.stopped"

    def _base_env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.cfg.venv}/bin:{SYSTEM_PATH}",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "PYTHONWARNINGS": "ignore",
        }

    def _run(self, name: str, argv: list[str], env: dict[str, str] | None = None,
             timeout: float = 600) -> None:
        """Run a one-shot command, output to log/manage-<name>.log; raise on failure."""
        log = self.cfg.log / f"manage-{name}.log"
        with log.open("a") as out:
            out.write(f"+ {' '.join(argv)}\n")
            out.flush()
            rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                                env=env or self._base_env(), timeout=timeout).returncode
        if rc:
            raise LabError(f"`{' '.join(argv[:3])} ...` failed (exit {rc}); see {log}")

    # ------------------------------------------------------------- services
    def _uwsgi(self, name: str, port_key: str, module: str, env: dict[str, str]) -> Service:
        v = self.cfg.venv
        argv = [
            str(v / "bin" / "uwsgi"), "--http-socket", f"{HOST_IP}:{self.cfg.ports[port_key]}",
            "--add-header", "Connection: close", "--module", module, "--home", str(v),
            "--env", "PYTHONWARNINGS=ignore",
        ]
        for key, value in env.items():
            argv += ["--env", f"{key}={value}"]
        argv += [
            "--master", "--processes", "1", "--threads", "4", "--enable-threads",
            "--lazy-apps", "--die-on-term", "--need-app", "--buffer-size", "65535",
            "--http-chunked-input", "--http-auto-chunked",
            "--procname-prefix-spaced", name, "--logto", str(self.cfg.log / f"{name}-uwsgi.log"),
        ]
        return Service(name, argv, self.cfg.ports[port_key], port_key)

    def _nova_service(self, binary: str, extra_conf: str) -> list[str]:
        etc = self.cfg.etc / "nova"
        return [str(self.cfg.venv / "bin" / binary), "--config-file", str(etc / "nova.conf"),
                "--config-file", str(etc / extra_conf)]

    def services(self) -> dict[str, Service]:
        """Every process of the lab by name, in start order."""
        cfg, etc = self.cfg, self.cfg.etc
        out: list[Service] = [
            Service("mariadb", ["mariadbd", f"--defaults-file={configs.my_cnf(cfg)}"],
                    cfg.ports["mariadb"], "mariadb"),
            Service("epmd", ["epmd", "-address", HOST_IP, "-port", str(cfg.ports["epmd"])],
                    cfg.ports["epmd"], "epmd"),
            Service("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], cfg.ports["amqp"],
                    "amqp", env=configs.rabbit_env(cfg),
                    extra_ports=(("rabbit_dist", cfg.ports["rabbit_dist"]),)),
            self._uwsgi("keystone", "keystone", "keystone.wsgi.api:application",
                        {"OS_KEYSTONE_CONFIG_DIR": str(etc / "keystone")}),
            self._uwsgi("placement", "placement", "placement.wsgi.api:application",
                        {"OS_PLACEMENT_CONFIG_DIR": str(etc / "placement")}),
            self._uwsgi("glance", "glance", "glance.wsgi.api:application",
                        {"OS_GLANCE_CONFIG_DIR": str(etc / "glance")}),
            Service("neutron-stub", [sys.executable, "-I", "-S",
                                     str(PACKAGE_DIR / "neutron_stub.py"),
                                     "--port", str(cfg.ports["neutron"])],
                    cfg.ports["neutron"], "neutron"),
            self._uwsgi("nova-api", "nova_api", "nova.wsgi.osapi_compute:application",
                        {"OS_NOVA_CONFIG_DIR": str(etc / "nova"),
                         "OS_NOVA_CONFIG_FILES": "api-paste.ini;nova.conf;nova-api.conf"}),
            Service("nova-conductor", self._nova_service("nova-conductor", "nova-conductor.conf")),
            Service("nova-scheduler", self._nova_service("nova-scheduler", "nova-scheduler.conf")),
        ]
        for host in cfg.compute_names:
            bdir = cfg.bmc_host_dir(host)
            out.append(Service(f"bmc-{host}", [
                "ipmi_sim", "-n", "-c", str(bdir / "lan.conf"), "-f", str(bdir / "sim.emu"),
                "-s", str(bdir / "state")], cfg.bmc_port(host), udp=True))
            out.append(Service(f"nova-compute-{host}",
                               self._nova_service("nova-compute", f"nova-{host}.conf")))
        return {svc.name: svc for svc in out}

    def _start(self, svc: Service) -> int:
        pid = self.pid(svc.name)
        if pid is not None:
            return pid
        env = self._base_env()
        env.update(svc.env or {})
        pid = procs.spawn(svc.argv, self.pidfile(svc.name),
                          self.cfg.log / f"{svc.name}.out", env=env)
        self._stop_mark(svc.name).unlink(missing_ok=True)  # `control-plane stop` is over
        self._say(f"started {svc.name} (pid {pid})")
        return pid

    def _check_ports(self, services: list[Service]) -> None:
        problems = []
        for svc in services:
            if self.pid(svc.name) is not None:
                continue
            ports = [(svc.port_key or svc.name, svc.port)] if svc.port else []
            ports += list(svc.extra_ports)
            for key, port in ports:
                if port is not None and procs.port_in_use(port, udp=svc.udp):
                    how = (f"petguard-lab up --port {key}=N" if key in DEFAULT_PORTS
                           else "--bmc-base-port N")
                    problems.append(
                        f"{'UDP' if svc.udp else 'TCP'} port {port} ({svc.name}) is already in use "
                        "by a process this lab did not start (another lab, other --lab-dir?); "
                        f"stop that process or pick another port ({how})")
        if problems:
            raise LabError("\n".join(problems))

    def _wait(self, what: str, check: Callable[[], bool], timeout: float,
              watch: tuple[str, ...] = (), hint: str = "") -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except (OSError, LabError):
                pass
            for name in watch:
                if self.pid(name) is None:
                    raise LabError(f"{name} exited while waiting for {what}; see "
                                   f"{self.cfg.log}/{name}.out and {self.cfg.log}/{name}*.log")
            if time.monotonic() > deadline:
                raise LabError(f"timed out after {timeout:.0f} s waiting for {what}. {hint}")
            time.sleep(0.25)

    def _http_ok(self, url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError as exc:
            return exc.code < 500
        except OSError:
            return False

    @staticmethod
    def _log_has(path: Path, offset: int, text: str) -> bool:
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                return text.encode() in handle.read()
        except OSError:
            return False

    def wait_computes_up(self, hosts: list[str] | None = None, timeout: float = 300,
                         since: float | None = None, accept_forced_down: bool = False) -> None:
        """Wait until ``hosts`` (default: all) are up in os-services AND in os-hypervisors.

        With ``since`` (a time.time() value) a service only counts as up once it
        heartbeated at or after that moment (``updated_at``, 1 s resolution).
        With ``accept_forced_down``, a forced-down service (Nova says ``down``
        whatever its heartbeats) counts once its ``updated_at`` is newer than the
        start of this wait: its nova-compute runs and heartbeats, and whoever
        forced it down (petguard) is the one to return it to service.
        """
        hosts = hosts or self.compute_names

        def iso(at: float) -> str:
            return datetime.datetime.fromtimestamp(int(at), datetime.UTC).strftime(
                "%Y-%m-%dT%H:%M:%S")

        since_iso = iso(since) if since is not None else ""
        forced_since_iso = iso(since if since is not None else time.time())
        nova = Nova(self.cfg)
        discovered_at = time.monotonic() + 60
        last: dict[str, str] = {}

        def ready() -> bool:
            nonlocal discovered_at
            services = nova.compute_services()
            mapped = nova.hypervisor_hosts()
            for host in hosts:
                svc = services.get(host)
                last[host] = ("no service" if svc is None else
                              f"{svc['state']}{' forced_down' if svc.get('forced_down') else ''}"
                              f"{'' if host in mapped else ' unmapped'}")
            if time.monotonic() > discovered_at:  # scheduler discovery is late: help it
                discovered_at = time.monotonic() + 60
                self._run("nova-discover", [
                    str(self.cfg.venv / "bin" / "nova-manage"), "--config-file",
                    str(self.cfg.etc / "nova" / "nova.conf"), "cell_v2", "discover_hosts"])
            def up(svc: dict[str, Any]) -> bool:
                if accept_forced_down and svc.get("forced_down"):
                    return (svc.get("updated_at") or "")[:19] >= forced_since_iso
                return bool(svc["state"] == "up"
                            and (svc.get("updated_at") or "")[:19] >= since_iso)

            return all(host in services and host in mapped and up(services[host])
                       for host in hosts)

        self._wait(
            f"computes {', '.join(hosts)} to be up and mapped", ready, timeout,
            (*(f"nova-compute-{h}" for h in hosts), "nova-api"),
            hint=f"last seen: {last}; see {self.cfg.log}/nova-compute-*.log "
                 "(a forced_down service must be un-forced by whoever forced it)")
