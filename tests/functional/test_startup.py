"""The programs' start as an operator on a real controller meets it: exit statuses systemd can act on
(78 configuration, 75 transient, 2 usage), ``--version``, ``--use-journal`` without the bindings,
and ``petguard-agent`` without libvirt's bindings.

Missing modules are simulated in the child process only, by a meta path finder that refuses them
(``_python``), never by uninstalling anything.
"""

from __future__ import annotations

import dataclasses
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from petguard import startup
from petguard.store import migrate
from tests.functional.daemon_conf import closed_port, daemon_conf
from tests.functional.store.conftest import _admin_engine, _create_database, _drop_database

#: Run a module as __main__ with some top-level modules made unimportable (a meta path blocker).
_BLOCKING_RUNNER = """
import runpy, sys
blocked = set(sys.argv[2].split(",")) - {""}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
module = sys.argv[1]
sys.argv = [module] + sys.argv[3:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def _python(module: str, *args: str, block: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCKING_RUNNER, module, ",".join(block), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _agent_conf(tmp_path: Path) -> Path:
    key = tmp_path / "agent-key"
    key.write_text("agent-cmp1 0123456789abcdef0123456789abcdef\n")
    key.chmod(0o600)
    (tmp_path / "buffer").mkdir()
    conf = tmp_path / "agent.conf"
    conf.write_text(
        f"[DEFAULT]\nlog_file = {tmp_path}/agent.log\n"
        f"[agent]\nhost = cmp1\nhmac_key_file = {key}\nbuffer_dir = {tmp_path}/buffer\n"
        f"controller_urls = http://127.0.0.1:{closed_port()}\n"
    )
    return conf


# -- item 1: exit statuses systemd can act on -------------------------------------------------------


@pytest.mark.fault(
    "START-01",
    guarantee="-",
    injected="petguard-daemon started while its database does not answer (nothing listens on the port)",
    expected="exit 75 (EX_TEMPFAIL: systemd restarts it), 'transient' and the database named on stderr, no traceback",
)
def test_an_unreachable_database_at_start_is_a_transient_failure(tmp_path: Path) -> None:
    url = f"mysql+pymysql://petguard:secret-pw@127.0.0.1:{closed_port()}/petguard"
    proc = _python("petguard.cmd.daemon", "--config-file", str(daemon_conf(tmp_path, database=url)))
    assert proc.returncode == startup.TEMPFAIL == 75, proc.stderr
    assert "transient" in proc.stderr and "database" in proc.stderr
    assert "Traceback" not in proc.stderr and "secret-pw" not in proc.stderr


@dataclasses.dataclass
class _RefusedLogin:
    """A journal URL that the real database server refuses to log in with, and what it says."""

    url: str
    password: str  # must never reach stderr or the log


def _mariadb_wrong_password() -> Iterator[_RefusedLogin]:
    """A migrated MariaDB database and a user of this test only, logged in with the wrong password."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    url = _create_database("mysql")  # skips, saying why, when the server or PyMySQL is missing
    user = f"pg_{secrets.token_hex(4)}"
    admin = _admin_engine("mysql")
    try:
        migrate.upgrade(url)
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'right-pw'"))
            conn.execute(sqlalchemy.text(f"GRANT ALL ON {url.database}.* TO '{user}'@'127.0.0.1'"))
        wrong = url.set(username=user, password="Wr0ng-Secret-Pw")
        yield _RefusedLogin(wrong.render_as_string(hide_password=False), "Wr0ng-Secret-Pw")
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'"))
        admin.dispose()
        _drop_database("mysql", url)


def _postgresql_unknown_role() -> Iterator[_RefusedLogin]:
    """A migrated PostgreSQL database, logged in as a role that does not exist.

    The machine's PostgreSQL trusts every login from 127.0.0.1 (pg_hba.conf ``trust``), so it never
    checks a password; a role it does not know is refused in the same way (FATAL, SQLSTATE class 28,
    before any query), which is what a wrong password gives on a server with ``scram-sha-256``.
    """
    url = _create_database("postgresql")  # skips, saying why, when the server or psycopg is missing
    try:
        migrate.upgrade(url)
        wrong = url.set(username=f"pg_{secrets.token_hex(4)}", password="Wr0ng-Secret-Pw")
        yield _RefusedLogin(wrong.render_as_string(hide_password=False), "Wr0ng-Secret-Pw")
    finally:
        _drop_database("postgresql", url)


@pytest.fixture(params=["mysql", "postgresql"])
def refused_login(request: pytest.FixtureRequest) -> Iterator[_RefusedLogin]:
    yield from {"mysql": _mariadb_wrong_password, "postgresql": _postgresql_unknown_role}[str(request.param)]()


@pytest.mark.fault(
    "START-09",
    guarantee="-",
    injected="petguard-daemon or petguard-manage db upgrade started with [database] connection naming a wrong "
    "password (MariaDB 1045) or an unknown role (PostgreSQL FATAL 28000) on a real server",
    expected="exit 78 (EX_CONFIG: systemd stops restarting), 'configuration error' and the server's refusal on "
    "stderr, no password, no traceback",
)
@pytest.mark.parametrize("program", ["daemon", "manage"])
def test_a_login_the_database_refuses_is_a_configuration_error(
    program: str, refused_login: _RefusedLogin, tmp_path: Path
) -> None:
    conf = daemon_conf(tmp_path, database=refused_login.url)
    if program == "daemon":
        proc = _python("petguard.cmd.daemon", "--config-file", str(conf))
    else:
        proc = _python("petguard.cmd.manage", "--config-file", str(conf), "db", "upgrade")
    assert proc.returncode == startup.CONFIG == 78, proc.stderr
    assert "login" in proc.stderr and "[database] connection" in proc.stderr, proc.stderr
    assert "transient" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    log = tmp_path / "daemon.log"
    assert refused_login.password not in proc.stderr + (log.read_text(errors="replace") if log.exists() else "")


@pytest.mark.fault(
    "START-02",
    guarantee="-",
    injected="[coordination] backend_url names a scheme no tooz driver knows (nosuch://)",
    expected="exit 78 (EX_CONFIG: systemd does not restart) naming backend_url, no traceback",
)
def test_an_unusable_coordination_backend_is_a_configuration_error(tmp_path: Path) -> None:
    proc = _python(
        "petguard.cmd.daemon", "--config-file", str(daemon_conf(tmp_path, coordination="nosuch://127.0.0.1:1"))
    )
    assert proc.returncode == startup.CONFIG == 78, proc.stderr
    assert "backend_url" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.fault(
    "START-03",
    guarantee="-",
    injected="petguard-daemon or petguard-agent given an option it does not know on the command line",
    expected="exit 2 (usage), not 78: the command line, not the configuration, is wrong",
)
@pytest.mark.parametrize("module", ["petguard.cmd.daemon", "petguard.agent.main"])
def test_a_bad_command_line_is_a_usage_error(module: str) -> None:
    proc = _python(module, "--no-such-option")
    assert proc.returncode == startup.USAGE == 2, proc.stderr
    assert "--no-such-option" in proc.stderr


def test_a_missing_config_file_is_a_configuration_error(tmp_path: Path) -> None:
    proc = _python("petguard.cmd.daemon", "--config-file", str(tmp_path / "missing.conf"))
    assert proc.returncode == startup.CONFIG, proc.stderr
    assert "missing.conf" in proc.stderr


# -- item 2: --version --------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["petguard.cmd.daemon", "petguard.agent.main", "petguard.cmd.manage"])
def test_every_program_tells_its_version(module: str) -> None:
    proc = _python(module, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(startup.version()), proc.stdout + proc.stderr


# -- item 3: --use-journal ----------------------------------------------------------------------------


@pytest.mark.fault(
    "START-04",
    guarantee="-",
    injected="petguard-daemon --use-journal (or petguard-agent) without the systemd Python bindings",
    expected="exit 78 naming pip install 'petguard[journal]' and systemd-python, no traceback",
)
@pytest.mark.parametrize("program", ["daemon", "agent"])
def test_use_journal_without_the_bindings_is_refused_with_the_fix(program: str, tmp_path: Path) -> None:
    if program == "daemon":
        module, conf = "petguard.cmd.daemon", daemon_conf(tmp_path)
    else:
        module, conf = "petguard.agent.main", _agent_conf(tmp_path)
    proc = _python(module, "--config-file", str(conf), "--use-journal", block=("systemd",))
    assert proc.returncode == startup.CONFIG, proc.stderr
    assert "pip install 'petguard[journal]'" in proc.stderr and "systemd-python" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- item 4: petguard-agent without libvirt's bindings ------------------------------------------------


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_agent_help_and_version_work_without_libvirt(flag: str) -> None:
    proc = _python("petguard.agent.main", flag, block=("libvirt", "libvirtmod"))
    assert proc.returncode == 0, proc.stderr
    assert ("usage: petguard-agent" in proc.stdout) if flag == "--help" else startup.version() in proc.stdout


@pytest.mark.fault(
    "START-05",
    guarantee="-",
    injected="petguard-agent started where libvirt's Python bindings are not installed (no [agent] extra)",
    expected="exit 78 naming pip install 'petguard[agent]', no ModuleNotFoundError traceback",
)
def test_agent_without_libvirt_is_a_configuration_error_naming_the_extra(tmp_path: Path) -> None:
    proc = _python("petguard.agent.main", "--config-file", str(_agent_conf(tmp_path)), block=("libvirt", "libvirtmod"))
    assert proc.returncode == startup.CONFIG, proc.stderr
    assert "pip install 'petguard[agent]'" in proc.stderr and "Traceback" not in proc.stderr
