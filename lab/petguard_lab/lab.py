"""The `Lab`: bring the loopback OpenStack up and down, inject failures, heal.

This is the Python API that tests import (``petguard_lab.Lab``); the CLI in
cli.py is a thin layer over it.  Every process is started detached with its
own process group and recorded in ``$LAB/run/<name>.pid``; ``down`` stops
exactly those processes, in the order of ``STOP_ORDER``.

`Lab` is the bring-up (``up``, ``down``, ``clean``, ``status``) over its parts, one module a job:
services.py (the processes: table, start, waits; the base of the others), initialise.py (one-time
data set-up), bmcs.py (the BMC simulators), faults.py (fail, heal, BMC fault modes) and
components.py (control-plane stop/start).  The parts are mixins of `Lab`, not collaborators
it holds: they call one another's methods (``_start`` clears the mark of ``control-plane stop``,
``_write_bmc`` reads `services`, ``heal`` waits with `wait_computes_up`) and tests replace
``Lab.services`` for all of them at once.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from petguard_lab import chassis, procs
from petguard_lab import service_configs as configs
from petguard_lab.bmcs import LabBmcs
from petguard_lab.components import LabComponents
from petguard_lab.faults import LabFaults
from petguard_lab.initialise import LabInit
from petguard_lab.install import check_installed
from petguard_lab.install import install as _install
from petguard_lab.osapi import Keystone, Nova
from petguard_lab.petguard_files import write_petguard_files
from petguard_lab.services import STOP_ORDER
from petguard_lab.settings import LabConfig, LabError


class Lab(LabInit, LabFaults, LabBmcs, LabComponents):
    """A petguard lab under ``lab_dir`` (settings persisted in lab.json)."""

    def __init__(self, lab_dir: str | os.PathLike[str] | None = None,
                 verbose: bool = True) -> None:
        from petguard_lab.settings import default_lab_dir

        self.lab_dir = Path(lab_dir).absolute() if lab_dir else default_lab_dir().absolute()
        self.cfg = LabConfig.load(self.lab_dir)
        self.verbose = verbose

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
