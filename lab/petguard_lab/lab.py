"""The `Lab`: bring the loopback OpenStack up and down, inject failures, heal.

This is the Python API that tests import (``petguard_lab.Lab``); the CLI in
cli.py is a thin layer over it.  Every process is started detached with its
own process group and recorded in ``$LAB/run/<name>.pid``; ``down`` stops
exactly those processes, in the order of ``STOP_ORDER``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from petguard_lab import chassis, procs
from petguard_lab import service_configs as configs
from petguard_lab.install import check_installed
from petguard_lab.install import install as _install
from petguard_lab.osapi import Keystone, Nova
from petguard_lab.petguard_files import write_petguard_files
from petguard_lab.settings import (
    ADMIN_PASSWORD,
    DEFAULT_PORTS,
    HOST_IP,
    REGION,
    LabConfig,
    LabError,
)

PACKAGE_DIR = Path(__file__).resolve().parent
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FAIL_MODES = ("power", "process", "hang")
BMC_MODES = chassis.MODES
#: stop groups, first to last; names are matched by prefix
STOP_ORDER: tuple[tuple[str, ...], ...] = (
    ("nova-compute-", "bmc-"),
    ("nova-scheduler", "nova-conductor", "nova-api"),
    ("glance", "placement", "neutron-stub", "keystone"),
    ("rabbitmq", "mariadb"),
    ("epmd",),
)


#: control-plane components (``petguard-lab control-plane stop|start NAME``) -> their lab process,
#: in start order (a restart of several starts the database first, Nova's services last)
COMPONENTS: dict[str, str] = {
    "database": "mariadb",
    "rabbitmq": "rabbitmq",
    "keystone": "keystone",
    "placement": "placement",
    "glance": "glance",
    "neutron": "neutron-stub",
    "nova-api": "nova-api",
    "nova-conductor": "nova-conductor",
    "nova-scheduler": "nova-scheduler",
}
#: the log line a Nova service writes once it starts serving (it consumes its queue right after)
_STARTED_LINE = {"nova-conductor": "Starting conductor node",
                 "nova-scheduler": "Starting scheduler node"}


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


class Lab:
    """A petguard lab under ``lab_dir`` (settings persisted in lab.json)."""

    def __init__(self, lab_dir: str | os.PathLike[str] | None = None,
                 verbose: bool = True) -> None:
        from petguard_lab.settings import default_lab_dir

        self.lab_dir = Path(lab_dir).absolute() if lab_dir else default_lab_dir().absolute()
        self.cfg = LabConfig.load(self.lab_dir)
        self.verbose = verbose

    # ------------------------------------------------------------ utilities
    def _say(self, msg: str) -> None:
        if self.verbose:
            print(f"[petguard-lab {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    @property
    def clouds_yaml(self) -> Path:
        return self.cfg.clouds_yaml

    @property
    def conf_file(self) -> Path:
        return self.cfg.conf_file

    @property
    def inventory_file(self) -> Path:
        return self.cfg.inventory_file

    @property
    def state_file(self) -> Path:
        return self.cfg.state_file

    @property
    def compute_names(self) -> list[str]:
        return self.cfg.compute_names

    def pidfile(self, name: str) -> Path:
        return self.cfg.run / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        """PID of a running lab process (e.g. 'nova-compute-cmp1', 'bmc-cmp1'), else None."""
        return procs.read_pidfile(self.pidfile(name))

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

    # ----------------------------------------------------------- data setup
    def _stamp(self, name: str) -> Path:
        return self.cfg.data / f".initialised-{name}"

    def _once(self, name: str, steps: list[list[str]]) -> None:
        if self._stamp(name).exists():
            return
        for argv in steps:
            self._run(name, argv)
        self._stamp(name).write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))

    def _init_mariadb_datadir(self) -> None:
        if (self.cfg.data / "mysql" / "mysql").exists():
            return
        self._say("initialising MariaDB data directory")
        self._run("mariadb", ["mariadb-install-db", "--no-defaults",
                              f"--datadir={self.cfg.data / 'mysql'}", "--user=root",
                              "--auth-root-authentication-method=normal", "--skip-test-db"])

    def _init_databases(self) -> None:
        from petguard_lab.settings import DB_PASSWORD, DB_USER

        sql = (f"CREATE USER IF NOT EXISTS '{DB_USER}'@'{HOST_IP}' IDENTIFIED BY '{DB_PASSWORD}';"
               f"GRANT ALL PRIVILEGES ON *.* TO '{DB_USER}'@'{HOST_IP}';"
               + "".join(f"CREATE DATABASE IF NOT EXISTS {db};" for db in
                         ("keystone", "placement", "glance", "nova_api", "nova", "nova_cell0")))
        self._run("mariadb", ["mariadb", f"--defaults-file={configs.my_cnf(self.cfg)}", "-e", sql])

    def _init_keystone(self) -> None:
        ks = [str(self.cfg.venv / "bin" / "keystone-manage"), "--config-file",
              str(self.cfg.etc / "keystone" / "keystone.conf")]
        url = self.cfg.auth_url + "/"
        self._once("keystone", [
            [*ks, "db_sync"],
            [*ks, "fernet_setup", "--keystone-user", "root", "--keystone-group", "root"],
            [*ks, "credential_setup", "--keystone-user", "root", "--keystone-group", "root"],
            [*ks, "bootstrap", "--bootstrap-password", ADMIN_PASSWORD,
             "--bootstrap-admin-url", url, "--bootstrap-internal-url", url,
             "--bootstrap-public-url", url, "--bootstrap-region-id", REGION],
        ])

    def _init_others(self) -> None:
        v, etc = self.cfg.venv / "bin", self.cfg.etc
        nova = [str(v / "nova-manage"), "--config-file", str(etc / "nova" / "nova.conf")]
        jobs = {
            "placement": [[str(v / "placement-manage"), "--config-file",
                           str(etc / "placement" / "placement.conf"), "db", "sync"]],
            "glance": [[str(v / "glance-manage"), "--config-file",
                        str(etc / "glance" / "glance-api.conf"), "db_sync"]],
            "nova": [
                [*nova, "api_db", "sync"],
                [*nova, "cell_v2", "map_cell0", "--database_connection",
                 self.cfg.db_url("nova_cell0")],
                [*nova, "cell_v2", "create_cell", "--name", "cell1"],
                [*nova, "db", "sync"],
            ],
        }
        with ThreadPoolExecutor(len(jobs)) as pool:
            for fut in [pool.submit(self._once, name, steps) for name, steps in jobs.items()]:
                fut.result()

    # ----------------------------------------------------------------- BMCs
    def _bmc_password(self, host: str) -> str:
        path = self.cfg.bmc_password_file(host)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(8) + "\n")  # IPMI: at most 16 characters
        path.chmod(0o600)
        return path.read_text().strip()

    def _write_bmc(self, host: str) -> None:
        cfg = self.cfg
        bdir = cfg.bmc_host_dir(host)
        (bdir / "state").mkdir(parents=True, exist_ok=True)
        password = self._bmc_password(host)
        program = f"{sys.executable} -I -S {PACKAGE_DIR / 'chassis.py'} {bdir}"
        guid = f"{0x50474C00 + cfg.host_index(host):08x}" + "0" * 24
        lan = f"""name "{host}"
set_working_mc 0x20
  startlan 1
    addr {HOST_IP} {cfg.bmc_port(host)}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid {guid}
  endlan
  chassis_control "{program}"
  user 2 true "admin" "{password}" admin 10 none md2 md5 straight
"""
        fd = os.open(bdir / "lan.conf", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(lan)
        (bdir / "sim.emu").write_text(
            "mc_setbmc 0x20\n"
            "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\n"
            "sel_enable 0x20 50 0x0a\n"
            "mc_enable 0x20\n")
        if not (bdir / "mode").exists():
            chassis.set_mode(bdir, "normal")
        svc = self.services()[f"nova-compute-{host}"]
        env = self._base_env()
        (bdir / "host.json").write_text(json.dumps({
            "host": host,
            "compute_pidfile": str(self.pidfile(f"nova-compute-{host}")),
            "pidfiles": [str(self.pidfile(f"nova-compute-{host}"))],
            "argv": svc.argv,
            "env": env,
            "logfile": str(cfg.log / f"nova-compute-{host}.out"),
        }, indent=2) + "\n")

    # ------------------------------------------------------------------- up
    def install(self, force: bool = False) -> bool:
        """Install Debian packages and $LAB/venv (no-op when already done)."""
        return _install(self.cfg, force=force)

    def up(self, computes: int | None = None, report_interval: int | None = None,
           service_down_time: int | None = None, ports: dict[str, int] | None = None,
           bmc_base_port: int | None = None, timeout: float = 300,
           accept_forced_down: bool = False) -> None:
        """Start whatever is not running and wait until every compute is up and mapped.

        Settings not given keep their value from lab.json (or the defaults).
        A compute whose BMC is off, or that hangs, is powered on / resumed.
        ``accept_forced_down``: a compute that someone (petguard) forced down
        counts as up once it heartbeats (see ``wait_computes_up``).
        """
        cfg = dataclasses.replace(self.cfg, ports=dict(self.cfg.ports))
        if computes is not None:
            cfg.computes = computes
        if report_interval is not None:
            cfg.report_interval = report_interval
        if service_down_time is not None:
            cfg.service_down_time = service_down_time
        if ports:
            cfg.ports.update(ports)
        if bmc_base_port is not None:
            cfg.bmc_base_port = bmc_base_port
        cfg.validate()
        if self._stamp("keystone").exists() and cfg.ports != self.cfg.ports:
            raise LabError("ports cannot change once the lab has data (Keystone catalog and the "
                           "cell mapping store them); run `petguard-lab clean` first")
        removed = [h for h in self.cfg.compute_names if h not in cfg.compute_names]
        running_removed = [h for h in removed if self.pid(f"nova-compute-{h}")]
        if running_removed:
            raise LabError(f"computes {running_removed} are running but not in --computes "
                           f"{cfg.computes}; run `petguard-lab down` first")
        previous, self.cfg = self.cfg, cfg
        try:
            check_installed(cfg)
            svcs = self.services()
            self._check_ports(list(svcs.values()))
        except LabError:
            self.cfg = previous
            raise
        start = time.monotonic()
        heartbeats_changed = (cfg.report_interval, cfg.service_down_time) != (
            previous.report_interval, previous.service_down_time)
        if heartbeats_changed:
            self._stop_nova(f"report_interval {previous.report_interval} -> "
                            f"{cfg.report_interval}, service_down_time "
                            f"{previous.service_down_time} -> {cfg.service_down_time}")
        configs.write_all(cfg)
        cfg.save()
        for host in cfg.compute_names:
            self._write_bmc(host)
        write_petguard_files(cfg)

        # 1. MariaDB and epmd + RabbitMQ
        self._init_mariadb_datadir()
        for name in ("mariadb", "epmd", "rabbitmq"):
            self._start(svcs[name])
        self._wait("MariaDB", lambda: procs.port_open(cfg.ports["mariadb"]), 60, ("mariadb",))
        self._init_databases()
        self._start(svcs["neutron-stub"])
        conductor_log = cfg.log / "nova-conductor.log"
        conductor_started = self.pid("nova-conductor") is None
        conductor_mark = conductor_log.stat().st_size if conductor_log.exists() else 0

        # 2. Keystone (everything authenticates against it) and, in parallel,
        #    the other DB syncs followed by the APIs and the nova services
        def others() -> None:
            self._init_others()
            for name in ("placement", "glance", "nova-api"):
                self._start(svcs[name])
            self._wait("RabbitMQ", lambda: procs.port_open(cfg.ports["amqp"]), 120,
                       ("rabbitmq",))
            for name in ("nova-conductor", "nova-scheduler"):
                self._start(svcs[name])

        with ThreadPoolExecutor(1) as pool:
            rest = pool.submit(others)
            self._init_keystone()
            self._start(svcs["keystone"])
            self._wait("Keystone", lambda: self._http_ok(cfg.auth_url), 120, ("keystone",))
            Keystone(cfg).setup()
            rest.result()
        # 3. computes only once the conductor consumes its queue: an RPC sent
        #    before that is lost and the compute waits 10 s to retry
        if conductor_started:
            self._wait("nova-conductor to start", lambda: self._log_has(
                conductor_log, conductor_mark, "Starting conductor node"), 120,
                ("nova-conductor",))
            time.sleep(1)
        # 4. one BMC per compute, then power the computes on
        for host in cfg.compute_names:
            self._start(svcs[f"bmc-{host}"])
            chassis.power_on(cfg.bmc_host_dir(host))
        for name in ("placement", "glance", "neutron-stub", "nova-api"):
            port = svcs[name].port
            assert port is not None
            self._wait(name, lambda p=port: procs.port_open(p), 120, (name,))
        self.wait_computes_up(timeout=timeout, accept_forced_down=accept_forced_down)
        self._forget_removed_computes()
        self._say(f"lab is up ({len(cfg.compute_names)} computes) in "
                  f"{time.monotonic() - start:.0f} s; clouds.yaml: {cfg.clouds_yaml}")

    def _stop_nova(self, why: str) -> None:
        """Stop the running Nova services (computes first) so that ``up`` restarts them with new
        settings: every Nova process reads report_interval / service_down_time only at start.
        MariaDB, RabbitMQ, Keystone, Placement, Glance and the BMCs keep running."""
        for group in STOP_ORDER[:2]:
            members = [p for p in sorted(self.cfg.run.glob("nova-*.pid"))
                       if p.name.startswith(group) and procs.read_pidfile(p) is not None]
            if members:
                self._say(f"restarting {', '.join(p.stem for p in members)} ({why})")
                procs.stop(members, timeout=30)

    def _forget_removed_computes(self) -> None:
        """Delete the Nova services of lab computes dropped by a smaller --computes."""
        nova = Nova(self.cfg)
        for host, svc in nova.compute_services().items():
            if host.startswith("cmp") and host not in self.compute_names and svc["state"] == "down":
                nova.delete_service(str(svc["id"]))
                shutil.rmtree(self.cfg.bmc_host_dir(host), ignore_errors=True)
                self.cfg.bmc_password_file(host).unlink(missing_ok=True)
                self._say(f"removed compute {host} from Nova (not in --computes any more)")

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

    # ----------------------------------------------------------------- down
    def down(self) -> None:
        """Stop every process the lab started (by PID file), in the safe order."""
        names = sorted(p.name[:-4] for p in self.cfg.run.glob("*.pid")) if self.cfg.run.exists() \
            else []
        for group in STOP_ORDER:
            members = [n for n in names if n.startswith(group)]
            running = [n for n in members if self.pid(n) is not None]
            if running:
                self._say(f"stopping {', '.join(running)}")
            killed = procs.stop([self.pidfile(n) for n in members], timeout=30)
            if killed:
                self._say(f"{', '.join(p.stem for p in killed)}: no exit within 30 s "
                          "of SIGTERM, SIGKILLed")
            names = [n for n in names if n not in members]
        if names:
            procs.stop([self.pidfile(n) for n in names], timeout=30)

    def clean(self, everything: bool = False) -> None:
        """down, then remove data, logs, configs and state (and the venv if ``everything``)."""
        self.down()
        for sub in ("data", "log", "run", "etc", "bmc", "petguard"):
            shutil.rmtree(self.lab_dir / sub, ignore_errors=True)
        for f in ("lab.json", "clouds.yaml"):
            (self.lab_dir / f).unlink(missing_ok=True)
        if everything:
            shutil.rmtree(self.cfg.venv, ignore_errors=True)
        self.cfg = LabConfig(lab_dir=self.lab_dir)

    # ------------------------------------------------------ fault injection
    def _bmc_dir(self, host: str) -> Path:
        self.cfg.host_index(host)  # validates the name
        bdir = self.cfg.bmc_host_dir(host)
        if not (bdir / "host.json").exists():
            raise LabError(f"no BMC state for {host}; run `petguard-lab up` first")
        return bdir

    def fail(self, host: str, mode: str = "power") -> None:
        """Make ``host`` fail.

        power: nova-compute SIGKILLed and the BMC reports power off (total power
        loss, BMC still answers); process: only nova-compute SIGKILLed, BMC says
        on; hang: nova-compute SIGSTOPped.
        """
        bdir = self._bmc_dir(host)
        name = f"nova-compute-{host}"
        if mode == "power":
            chassis.power_off(bdir)
        elif mode == "process":
            chassis.kill_host(bdir)
        elif mode == "hang":
            if procs.kill_now(self.pidfile(name), signal.SIGSTOP) is None:
                raise LabError(f"{name} is not running, cannot hang it; `petguard-lab heal {host}`")
        else:
            raise LabError(f"unknown failure mode {mode!r}; use one of {', '.join(FAIL_MODES)}")
        self._say(f"{host}: failed ({mode})")

    def heal(self, host: str, wait: bool = False, timeout: float = 120) -> None:
        """Resume or restart ``host``'s nova-compute and set its power on.

        With ``wait``: until Nova saw a heartbeat from it after this call.
        """
        started = time.time()
        chassis.power_on(self._bmc_dir(host))
        pid = self.pid(f"nova-compute-{host}")
        self._say(f"{host}: power on, nova-compute running (pid {pid})")
        if wait:
            self.wait_computes_up([host], timeout=timeout, since=started)

    def bmc_mode(self, host: str, mode: str) -> None:
        """Set the fault mode of ``host``'s BMC: normal | stuck_on | fail_set | fail_get."""
        try:
            chassis.set_mode(self._bmc_dir(host), mode)
        except ValueError as exc:
            raise LabError(str(exc)) from exc

    def bmc_get_mode(self, host: str) -> str:
        """The fault mode of ``host``'s BMC."""
        return chassis.get_mode(self._bmc_dir(host))

    def bmc_power(self, host: str) -> bool:
        """The power state recorded by ``host``'s BMC."""
        return chassis.recorded_power(self._bmc_dir(host))

    def bmc_password(self, host: str) -> str:
        return self.cfg.bmc_password_file(host).read_text().strip()

    def rabbit_stop(self) -> None:
        """Stop the lab's RabbitMQ (every compute then looks down to Nova)."""
        self.stop_component("rabbitmq")

    def rabbit_start(self, wait: bool = True) -> None:
        """Start the lab's RabbitMQ again (epmd must still run: it does unless `down`)."""
        self.start_component("rabbitmq", wait=wait)

    # ------------------------------------------------------- control plane
    @staticmethod
    def _component(name: str) -> str:
        try:
            return COMPONENTS[name]
        except KeyError:
            raise LabError(f"unknown control-plane component {name!r}; use one of "
                           f"{', '.join(COMPONENTS)}") from None

    def _stop_mark(self, process: str) -> Path:
        return self.cfg.run / f"{process}.stopped"

    def stop_component(self, name: str, kill: bool = False) -> None:
        """Stop a control-plane component (``COMPONENTS``) by the PID the lab recorded: SIGTERM to
        its process group (SIGKILL after 30 s), or SIGKILL at once with ``kill`` (a crash).  Nothing
        restarts it until ``start_component`` (or ``up``); ``status`` shows it stopped."""
        process = self._component(name)
        pid = self.pid(process)
        if pid is None:
            self._say(f"{name}: not running, nothing to stop")
            return
        sig = signal.SIGKILL if kill else signal.SIGTERM
        started = time.monotonic()
        procs.stop([self.pidfile(process)], timeout=30, sig=sig)
        self._stop_mark(process).write_text(json.dumps(
            {"at": time.time(), "signal": sig.name, "pid": pid}) + "\n")
        self._say(f"{name}: stopped ({sig.name} to pid {pid}, gone after "
                  f"{time.monotonic() - started:.1f} s); `petguard-lab control-plane start {name}` "
                  "starts it again")

    def start_component(self, name: str, wait: bool = True, timeout: float = 120) -> None:
        """Start a control-plane component again and (with ``wait``) wait until it answers: its
        port (database, RabbitMQ), an HTTP answer below 500 (the APIs), or the log line with which
        a Nova service starts serving (conductor, scheduler)."""
        process = self._component(name)
        svcs = self.services()
        started = time.monotonic()
        log = self.cfg.log / f"{process}.log"
        mark = log.stat().st_size if log.exists() else 0
        if process == "rabbitmq":
            self._start(svcs["epmd"])  # RabbitMQ needs it; it stays up unless `down`
        self._start(svcs[process])
        if not wait:
            return
        port = svcs[process].port

        def answers() -> bool:
            if process in _STARTED_LINE:
                return self._log_has(log, mark, _STARTED_LINE[process])
            if port is None:
                return True
            if process in ("mariadb", "rabbitmq"):
                return procs.port_open(port)
            return self._http_ok(f"http://{HOST_IP}:{port}/")

        self._wait(f"{name} to answer", answers, timeout, (process,))
        self._say(f"{name}: started and answering after {time.monotonic() - started:.1f} s")

    def stopped_components(self) -> list[str]:
        """The control-plane components that are not running (in start order)."""
        return [name for name, process in COMPONENTS.items() if self.pid(process) is None]

    # ----------------------------------------------------------------- status
    def _stop_record(self, process: str) -> dict[str, Any] | None:
        """How `control-plane stop` stopped ``process`` ({"at", "signal", "pid"}), else None."""
        try:
            return dict(json.loads(self._stop_mark(process).read_text()))
        except (OSError, ValueError):
            return None

    def status(self) -> dict[str, Any]:
        """Processes (pid, alive, port) and computes (service state, BMC power, mode)."""
        processes = []
        for name, svc in self.services().items():
            pid = self.pid(name)
            state = procs.proc_state(pid) if pid else None
            processes.append({
                "name": name, "pid": pid, "alive": pid is not None,
                "stopped": state == "T",
                "port": f"{svc.port}/{'udp' if svc.udp else 'tcp'}" if svc.port else "",
                "control_plane_stop": None if pid else self._stop_record(name),
            })
        services: dict[str, dict[str, Any]] = {}
        error = None
        if self.pid("nova-api") is not None and self.pid("keystone") is not None:
            try:
                services = Nova(self.cfg).compute_services()
            except (OSError, LabError) as exc:
                error = str(exc)
        computes = []
        for host in self.compute_names:
            svc = services.get(host, {})
            bdir = self.cfg.bmc_host_dir(host)
            computes.append({
                "host": host,
                "service_state": svc.get("state", "?"),
                "service_status": svc.get("status", "?"),
                "forced_down": svc.get("forced_down", "?"),
                "bmc_port": self.cfg.bmc_port(host),
                "bmc_power": ("on" if chassis.recorded_power(bdir) else "off")
                if bdir.exists() else "?",
                "bmc_mode": chassis.get_mode(bdir) if bdir.exists() else "?",
            })
        return {"processes": processes, "computes": computes, "nova_error": error}
