"""docs/upgrade.md's procedure for one controller, on a sqlite journal made at an older schema revision.

The journal of "the previous release" is made by migrating an empty database to a revision below
head (``migrate.upgrade(url, revision)``), which is what that petguard's ``db upgrade`` left. Then,
as the operator does: the new daemon refuses it (exit 78, naming ``db upgrade``), ``db version`` says
it is behind, ``db upgrade`` migrates it, and the daemon starts and ticks. The other way round, a
journal newer than this petguard (a controller not upgraded, started after another migrated the
journal) is refused with exit 78 naming the newer petguard.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from petguard import startup
from petguard.store import migrate
from tests.functional.daemon_conf import daemon_conf
from tests.functional.test_daemon import _daemon

REVISIONS = [r.revision for r in ScriptDirectory.from_config(migrate.alembic_config()).walk_revisions()]
#: The first schema, and the one just below head (the previous release's, once there are releases).
OLDER = sorted({REVISIONS[-1], REVISIONS[1]})


def _manage(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "petguard.cmd.manage", "--config-file", str(conf), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _journal(conf: Path) -> str:
    lines = conf.read_text().splitlines()
    return next(line.split("=", 1)[1].strip() for line in lines if line.startswith("connection"))


@pytest.mark.fault(
    "INSTALL-03",
    guarantee="-",
    injected="petguard upgraded on a controller whose sqlite journal is at an older schema revision (the previous "
    "release's), started before and after petguard-manage db upgrade",
    expected="before: exit 78 naming db upgrade, db version 'At head: false'; db upgrade exits 0; then the daemon "
    "starts, ticks and exits 0 on SIGTERM",
)
@pytest.mark.parametrize("older", OLDER)
def test_one_controller_upgrade_stop_migrate_start(older: str, tmp_path: Path) -> None:
    conf = daemon_conf(tmp_path, migrated=False)
    migrate.upgrade(_journal(conf), older)

    refused = _daemon(conf)
    _, err = refused.communicate(timeout=60)
    assert refused.returncode == startup.CONFIG, err
    assert f"revision {older}" in err and "petguard-manage db upgrade" in err

    version = _manage(conf, "db", "version", "-f", "json")
    assert version.returncode == 0, version.stderr
    assert json.loads(version.stdout) == {"Current": older, "Head": migrate.head(), "At head": False}

    upgraded = _manage(conf, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert json.loads(_manage(conf, "db", "version", "-f", "json").stdout)["At head"] is True

    proc = _daemon(conf)
    log = tmp_path / "daemon.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "deciding nothing this tick" not in (log.read_text() if log.exists() else ""):
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == startup.OK, log.read_text()[-3000:]
    assert "petguard started" in log.read_text()


@pytest.mark.fault(
    "INSTALL-04",
    guarantee="-",
    injected="a controller left at the older release started after another controller migrated the shared journal "
    "to a newer schema revision",
    expected="exit 78 (systemd does not restart) saying a newer petguard upgraded the journal; the journal untouched",
)
def test_an_older_petguard_refuses_a_newer_journal(tmp_path: Path) -> None:
    conf = daemon_conf(tmp_path)  # at head
    path = _journal(conf).removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:  # what a newer release's db upgrade leaves: a revision unknown here
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    proc = _daemon(conf)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == startup.CONFIG, err
    assert "newer petguard" in err and "9999" in err
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == ("9999",)
