"""petguard-daemon as a process: clear refusals at start, a tick that survives an unreachable Nova
(it decides nothing), a clean exit on SIGTERM, and its API (plain HTTP, and TLS) serving the CLI."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trustme

from petguard import tls
from petguard.store.sql import SqlStore
from tests.functional.daemon_conf import closed_port, daemon_conf


def _daemon(conf: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "petguard.cmd.daemon", "--config-file", str(conf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.fault(
    "DET-10",
    guarantee="3",
    injected="Nova's API unreachable (nothing listens) while petguard-daemon runs",
    expected="each tick decides nothing ('deciding nothing this tick'); SIGTERM still exits 0",
)
def test_unreachable_nova_decides_nothing_and_sigterm_exits_cleanly(tmp_path: Path) -> None:
    proc = _daemon(daemon_conf(tmp_path))
    log = tmp_path / "daemon.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "deciding nothing this tick" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    text = log.read_text()
    assert "deciding nothing this tick" in text
    assert "stopped" in text


@pytest.mark.fault(
    "START-10",
    guarantee="5",
    injected="petguard-daemon started on a sqlite journal with file:// coordination in which two controllers "
    "(ctl1, ctl2) have led",
    expected="it starts (one machine may be a rehearsal) with one WARNING naming both controllers, the sqlite "
    "journal, file:// and config check; SIGTERM exits 0",
)
def test_a_single_machine_backend_several_controllers_led_on_is_warned_about(tmp_path: Path) -> None:
    conf = daemon_conf(tmp_path)
    text = conf.read_text().replace("[coordination]\n", "[coordination]\nmember_id = ctl1\n")
    conf.write_text(text)
    store = SqlStore(f"sqlite:///{tmp_path}/journal.sqlite")
    for epoch, member in enumerate(["ctl1", "ctl2"], start=1):
        store.record_event(None, None, "leader_elected", f"{member} leads (epoch {epoch})", 1.0)
    store.close()
    proc = _daemon(conf)
    log = tmp_path / "daemon.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "deciding nothing this tick" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    warned = [line for line in log.read_text().splitlines() if " WARNING " in line and "ctl2" in line]
    assert len(warned) == 1, log.read_text()[-3000:]
    assert "ctl1, ctl2" in warned[0] and "sqlite" in warned[0] and "file://" in warned[0]
    assert "config check" in warned[0]


@pytest.mark.fault(
    "PG-10",
    guarantee="-",
    injected="petguard-daemon started on a journal that was never migrated",
    expected="exit 78 (configuration: systemd does not restart) naming `petguard-manage db upgrade`",
)
def test_unmigrated_journal_is_refused_with_the_fix(tmp_path: Path) -> None:
    proc = _daemon(daemon_conf(tmp_path, migrated=False))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 78
    assert "petguard-manage db upgrade" in err


@pytest.mark.fault(
    "OP-10",
    guarantee="-",
    injected="petguard.conf with an option value of the wrong type (tick_interval = fast)",
    expected="petguard-daemon exits 78 (configuration) naming the option, no traceback",
)
def test_bad_option_value_is_a_clear_error(tmp_path: Path) -> None:
    proc = _daemon(daemon_conf(tmp_path, extra="tick_interval = fast\n"))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 78
    assert "tick_interval" in err and "Traceback" not in err


def _tls_files(tmp_path: Path) -> tuple[str, ssl.SSLContext, list[str]]:
    """[api] options for TLS with a certificate made here; the clients' context and CLI options."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key, ca_file = tmp_path / "api-cert.pem", tmp_path / "api-key.pem", tmp_path / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    key.chmod(0o640)
    ca.cert_pem.write_to_path(str(ca_file))
    options = f"tls_cert_file = {cert}\ntls_key_file = {key}\n"
    return options, tls.client_context(str(ca_file), "test"), ["--ca-file", str(ca_file)]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_daemon_serves_the_api_and_the_cli_talks_to_it(tmp_path: Path, scheme: str) -> None:
    token = tmp_path / "api-token"
    token.write_text("operator-token-0123456789\n")
    token.chmod(0o600)
    port = closed_port()
    plain: tuple[str, ssl.SSLContext, list[str]] = ("", ssl.create_default_context(), [])
    tls_options, verify, ca_option = _tls_files(tmp_path) if scheme == "https" else plain
    conf = daemon_conf(tmp_path)
    conf.write_text(
        conf.read_text().replace(
            "[api]\nenabled = false\n",
            f"[api]\nenabled = true\nbind = {scheme}://127.0.0.1:{port}\ntoken_file = {token}\n{tls_options}",
        )
    )
    proc = _daemon(conf)
    try:
        url = f"{scheme}://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{url}/healthz", timeout=2, verify=verify)
                if "reason" in health.json() and health.json().get("last_tick") is None:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None
        # Nova is unreachable: the daemon is alive but not healthy, and says why.
        assert health.status_code == 503, health.text
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "petguard.cli.main",
                "--url",
                url,
                *ca_option,
                "--token-file",
                str(token),
                "status",
                "-f",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        status = json.loads(cli.stdout)
        assert status["Dry run"] is False and status["Tick OK"] is False
        unauthorised = httpx.get(f"{url}/v1/hosts", timeout=5, verify=verify)
        assert unauthorised.status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


@pytest.mark.fault(
    "GRP-16",
    guarantee="-",
    injected="[evacuation] use_reserved_hosts = true with reserved_hosts empty",
    expected="petguard-daemon exits 78 (configuration) saying reserved_hosts is empty, no traceback",
)
def test_the_reserved_hint_without_reserved_hosts_is_a_clear_error(tmp_path: Path) -> None:
    proc = _daemon(daemon_conf(tmp_path, extra="[evacuation]\nuse_reserved_hosts = true\n"))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 78
    assert "reserved_hosts is empty" in err and "Traceback" not in err


def test_the_leader_keeps_the_reserved_hosts_in_the_journal(tmp_path: Path) -> None:
    """Wiring: the reserved-host keeper runs on the leader with the acting store (its first tidy
    writes the configured hosts, idle, before any Nova call)."""
    conf = daemon_conf(tmp_path, extra="[evacuation]\nreserved_hosts = spare1, spare2\n")
    proc = _daemon(conf)
    url = f"sqlite:///{tmp_path}/journal.sqlite"
    try:
        deadline = time.monotonic() + 30
        hosts: list[tuple[str, str]] = []
        while time.monotonic() < deadline and len(hosts) < 2:
            store = SqlStore(url)
            hosts = [(r.host, r.state.value) for r in store.reserved_hosts()]
            store.close()
            time.sleep(0.2)
        assert hosts == [("spare1", "idle"), ("spare2", "idle")]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
