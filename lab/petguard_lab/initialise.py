"""The lab's one-time initialisation: MariaDB's data directory and databases, Keystone's bootstrap,
the Placement, Glance and Nova database syncs and cells.

Each step runs once per lab directory (a stamp ``data/.initialised-<name>`` records it); ``Lab.up``
(lab.py) calls them between starting the services they need and the ones that need them.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from petguard_lab import service_configs as configs
from petguard_lab.services import LabServices
from petguard_lab.settings import ADMIN_PASSWORD, HOST_IP, REGION


class LabInit(LabServices):
    """Data set-up steps of ``Lab.up``, each done once."""

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
