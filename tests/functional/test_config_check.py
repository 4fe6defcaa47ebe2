"""``petguard-manage config check`` as a process on real files, against ``petguard-daemon`` itself.

The main test takes a set of broken configurations and runs both programs on each: ``config check``
must report an ERROR beyond those of the working configuration (whose Nova and BMC are closed
loopback ports, so nothing real is contacted), or exit 2 on a value oslo.config cannot parse,
exactly when ``petguard-daemon`` refuses to start. What only fails later (an unreachable coordination
backend, Nova, a BMC, a single-machine journal several controllers have led on) is an ERROR of
``config check`` while the daemon starts: those have tests of their own below.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from petguard.ha import election
from petguard.store import migrate
from petguard.store.sql import SqlStore

Sections = dict[str, dict[str, str]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: connections are refused


def _good(tmp_path: Path) -> Sections:
    """A configuration the daemon starts with: journal migrated, every file in place, Nova and the BMC
    on closed loopback ports."""
    url = f"sqlite:///{tmp_path}/journal.sqlite"
    migrate.upgrade(url)
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  gone:\n    auth:\n"
        f"      auth_url: http://127.0.0.1:{_free_port()}/v3\n"
        "      username: admin\n      password: pw\n      project_name: admin\n"
        "      user_domain_name: Default\n      project_domain_name: Default\n"
    )
    clouds.chmod(0o600)
    password = tmp_path / "bmc-password"
    password.write_text("bmc-pw\n")
    password.chmod(0o600)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"hosts:\n  cmp1:\n    bmc: {{driver: ipmi, address: 127.0.0.1, port: {_free_port()}, "
        f"username: admin, password_file: {password}}}\n"
    )
    token = tmp_path / "api-token"
    token.write_text("operator-token-0123456789\n")
    token.chmod(0o600)
    return {
        "DEFAULT": {"log_file": f"{tmp_path}/daemon.log", "tick_interval": "0.2"},
        "nova": {"cloud": "gone", "clouds_file": str(clouds), "timeout": "1"},
        "database": {"connection": url},
        "fencing": {"inventory_file": str(inventory), "attempt_timeout": "1"},
        "api": {"bind": f"127.0.0.1:{_free_port()}", "token_file": str(token)},
        "coordination": {"backend_url": f"file://{tmp_path}/coordination"},
    }


def _write(tmp_path: Path, sections: Sections) -> Path:
    conf = tmp_path / "petguard.conf"
    text = "".join(f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in opts.items()) for s, opts in sections.items())
    conf.write_text(text)
    return conf


def _check(conf: Path, *, stdout_only: bool = False) -> tuple[int, str]:
    """Exit code and output (stdout: the report; stderr: what libraries log, e.g. keystoneauth)."""
    done = subprocess.run(
        [sys.executable, "-m", "petguard.cmd.manage", "--config-file", str(conf), "config", "check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout if stdout_only else done.stdout + done.stderr


def _errors(output: str) -> set[str]:
    """The topics of the ERROR lines."""
    return {line.split(None, 1)[1].split(":", 1)[0] for line in output.splitlines() if line.startswith("ERROR ")}


def _daemon_refuses(conf: Path, log: Path) -> tuple[bool, str]:
    """Start petguard-daemon: True when it exits non-zero before it is started; False once it logs
    'petguard started' (then it is stopped with SIGTERM)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "petguard.cmd.daemon", "--config-file", str(conf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 40
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                _, err = proc.communicate()
                return proc.returncode != 0, err
            if log.exists() and "petguard started" in log.read_text():
                return False, ""
            time.sleep(0.1)
        raise AssertionError("petguard-daemon neither started nor refused within 40 s")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def _set(section: str, option: str, value: str) -> Callable[[Sections, Path], None]:
    def change(sections: Sections, tmp_path: Path) -> None:
        sections.setdefault(section, {})[option] = value

    return change


def _drop(section: str, option: str) -> Callable[[Sections, Path], None]:
    def change(sections: Sections, tmp_path: Path) -> None:
        del sections[section][option]

    return change


def _chmod(option: str, mode: int) -> Callable[[Sections, Path], None]:
    def change(sections: Sections, tmp_path: Path) -> None:
        os.chmod(sections["api"][option], mode)

    return change


def _unmigrated(sections: Sections, tmp_path: Path) -> None:
    sections["database"]["connection"] = f"sqlite:///{tmp_path}/empty.sqlite"


def _receiver(secret_file: str) -> Callable[[Sections, Path], None]:
    def change(sections: Sections, tmp_path: Path) -> None:
        sections["webhooks"] = {"receivers": "ops"}
        sections["webhook:ops"] = {"url": f"http://127.0.0.1:{_free_port()}/hook", "secret_file": secret_file}

    return change


def _missing_password_file(sections: Sections, tmp_path: Path) -> None:
    (tmp_path / "bmc-password").unlink()


def _open_password_file(sections: Sections, tmp_path: Path) -> None:
    (tmp_path / "bmc-password").chmod(0o644)


def _socket_path_taken(sections: Sections, tmp_path: Path) -> None:
    taken = tmp_path / "api.sock"
    taken.write_text("not a socket\n")
    sections["api"]["socket"] = str(taken)


def _bad_yaml(sections: Sections, tmp_path: Path) -> None:
    Path(sections["nova"]["clouds_file"]).write_text("clouds:\n  gone: [unclosed\n")


def _no_url(sections: Sections, tmp_path: Path) -> None:
    sections["webhooks"] = {"receivers": "ops"}
    sections["webhook:ops"] = {"format": "json"}


def _tls(mistake: str) -> Callable[[Sections, Path], None]:
    """[api] TLS files made here: "" for a working pair, else one mistake."""

    def change(sections: Sections, tmp_path: Path) -> None:
        cert, key, other = tmp_path / "api-cert.pem", tmp_path / "api-key.pem", tmp_path / "other-cert.pem"
        issued = trustme.CA().issue_cert("127.0.0.1")
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        trustme.CA().issue_cert("127.0.0.1").cert_chain_pems[0].write_to_path(str(other))
        key.chmod(0o644 if mistake == "key open" else 0o600)
        api = sections["api"]
        api.update(tls_cert_file=str(other if mistake == "mismatch" else cert), tls_key_file=str(key))
        if mistake == "no key":
            del api["tls_key_file"]
        if mistake == "https bind without files":
            api["bind"] = f"https://{api.pop('bind')}"
            del api["tls_cert_file"], api["tls_key_file"]

    return change


BROKEN: dict[str, Callable[[Sections, Path], None]] = {
    "typo in DEFAULT (dryrun)": _set("DEFAULT", "dryrun", "true"),
    "typo in [fencing] (inventroy_file)": _set("fencing", "inventroy_file", "/etc/petguard/inventory.yaml"),
    "unknown section": _set("fenicng", "attempt_timeout", "1"),
    "api token_file missing": _set("api", "token_file", "/nonexistent/api-token"),
    "api token_file readable by others": _chmod("token_file", 0o644),
    "api alert_token_file missing": _set("api", "alert_token_file", "/nonexistent/alert-token"),
    "api hmac_key_file missing": _set("api", "hmac_key_file", "/nonexistent/agent-keys"),
    "webhook secret_file missing": _receiver("/nonexistent/webhook-key"),
    "nova clouds_file missing": _set("nova", "clouds_file", "/nonexistent/clouds.yaml"),
    "nova cloud not in clouds_file": _set("nova", "cloud", "elsewhere"),
    "inventory missing": _set("fencing", "inventory_file", "/nonexistent/inventory.yaml"),
    "inventory password_file missing": _missing_password_file,
    # whether the daemon refuses or warns here is the secret-file rule's business: both must agree
    "inventory password_file readable by others": _open_password_file,
    "api socket path taken by a file": _socket_path_taken,
    "clouds.yaml not valid YAML": _bad_yaml,
    "webhook receiver without url": _no_url,
    "journal not migrated": _unmigrated,
    "api bind on an address this machine does not have": _set("api", "bind", "192.0.2.1:8786"),
    "api socket in a missing directory": _set("api", "socket", "/nonexistent/petguard/api.sock"),
    "invalid option value": _set("DEFAULT", "tick_interval", "fast"),
    "api tls key readable by others": _tls("key open"),
    "api tls certificate and key do not match": _tls("mismatch"),
    "api tls certificate without key": _tls("no key"),
    "api https bind without tls files": _tls("https bind without files"),
    "api tls on": _tls(""),  # starts
    # these two start: a webhook key is present, and an unlisted receiver is only a warning
    "webhook with its key": lambda s, p: None,
    "webhook section not listed in receivers": _set("webhook:pager", "url", "http://127.0.0.1:1/"),
}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The ERROR topics of the working configuration: Nova and the BMC, whose ports are closed."""
    tmp_path = tmp_path_factory.mktemp("baseline")
    rc, output = _check(_write(tmp_path, _good(tmp_path)))
    assert rc == 1, output
    errors = _errors(output)
    assert errors == {"nova", "fence cmp1 level 1 device 1"}, output
    assert "WARNING" not in output, output
    return errors


@pytest.mark.fault(
    "CHECK-04",
    guarantee="-",
    injected="one mistake at a time: typos, an unknown section, a bad value, missing or too open secret files "
    "([api], [webhook:*], clouds.yaml, inventory, BMC password file), clouds.yaml not YAML, a receiver without "
    "url, an unmigrated journal, an address that cannot be bound, a socket path that is a file or whose "
    "directory does not exist, [api] TLS files (key open to others, not the certificate's, one without the "
    "other, an https:// bind without them)",
    expected="config check reports an ERROR beyond the closed Nova and BMC ports exactly when "
    "petguard-daemon refuses to start",
)
@pytest.mark.parametrize("mistake", sorted(BROKEN))
def test_config_check_fails_exactly_when_the_daemon_refuses_to_start(
    mistake: str, tmp_path: Path, baseline: set[str]
) -> None:
    sections = _good(tmp_path)
    BROKEN[mistake](sections, tmp_path)
    key = tmp_path / "webhook-key"
    key.write_text("webhook-key-0123\n")
    key.chmod(0o600)
    if mistake == "webhook with its key":
        _receiver(str(key))(sections, tmp_path)
    conf = _write(tmp_path, sections)
    rc, output = _check(conf)
    refused, err = _daemon_refuses(conf, tmp_path / "daemon.log")
    # exit 78: a value oslo.config cannot parse stops petguard-manage before any check, as the daemon
    failed = rc == 78 or bool(_errors(output) - baseline)
    assert failed == refused, f"check: {output}\ndaemon refused: {refused} {err}"
    if refused:
        assert rc != 0
    assert "Traceback" not in output
    for secret in ("operator-token-0123456789", "webhook-key-0123", "bmc-pw"):
        assert secret not in output + err


@pytest.mark.fault(
    "CHECK-05",
    guarantee="-",
    injected="[DEFAULT] dryrun = true and [fencing] inventroy_file in petguard.conf",
    expected="config check: one ERROR line each with 'did you mean dry_run?' / 'inventory_file?', exit 1; "
    "petguard-daemon refuses to start (exit 2) naming both",
)
def test_typos_are_errors_with_a_suggestion_in_both_programs(tmp_path: Path) -> None:
    sections = _good(tmp_path)
    sections["DEFAULT"]["dryrun"] = "true"
    sections["fencing"]["inventroy_file"] = "/etc/petguard/inventory.yaml"
    conf = _write(tmp_path, sections)
    rc, output = _check(conf)
    assert rc == 1
    lines = [line for line in output.splitlines() if line.startswith("ERROR   options:")]
    assert len(lines) == 2, output
    assert "[DEFAULT] dryrun" in lines[0] and "did you mean dry_run?" in lines[0]
    assert "[fencing] inventroy_file" in lines[1] and "did you mean inventory_file?" in lines[1]
    proc = subprocess.run(
        [sys.executable, "-m", "petguard.cmd.daemon", "--config-file", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 78  # a configuration error (petguard.startup.CONFIG)
    assert "did you mean dry_run?" in proc.stderr and "did you mean inventory_file?" in proc.stderr


def test_every_line_is_ok_warning_or_error_and_a_good_config_has_only_the_closed_peers(
    tmp_path: Path, baseline: set[str]
) -> None:
    _, output = _check(_write(tmp_path, _good(tmp_path)), stdout_only=True)
    lines = output.strip().splitlines()
    for line in lines[:-1]:
        assert line.split(None, 1)[0] in {"OK", "WARNING", "ERROR"}, line
    topics = {line.split(None, 1)[1].split(":", 1)[0] for line in lines[:-1]}
    expected = {"options", "database", "coordination", "api files", "api bind", "api tls", "webhooks", "nova clouds"}
    assert expected <= topics
    assert "problem(s)" in lines[-1]


@pytest.mark.fault(
    "CHECK-06",
    guarantee="5",
    injected="a sqlite journal and file:// coordination in which two controllers (ctl1, ctl2) have led",
    expected="config check: ERROR on coordination naming both and saying what to use instead",
)
def test_a_single_machine_journal_that_has_seen_two_leaders_is_an_error(tmp_path: Path) -> None:
    sections = _good(tmp_path)
    sections["coordination"]["member_id"] = "ctl1"
    store = SqlStore(sections["database"]["connection"])
    for epoch, member in enumerate(["ctl1", "ctl2", "ctl1"], start=1):
        store.record_event(None, None, election.GAINED, election.GAINED_MESSAGE.format(member=member, epoch=epoch), 1.0)
    rc, output = _check(_write(tmp_path, sections))
    assert rc == 1
    (line,) = [line for line in output.splitlines() if line.startswith("ERROR   coordination:")]
    assert "ctl1, ctl2" in line and "sqlite" in line and "file://" in line and "docs/controllers.md" in line


def test_one_leader_seen_is_fine(tmp_path: Path) -> None:
    sections = _good(tmp_path)
    sections["coordination"]["member_id"] = "ctl1"
    store = SqlStore(sections["database"]["connection"])
    store.record_event(None, None, election.GAINED, election.GAINED_MESSAGE.format(member="ctl1", epoch=1), 1.0)
    _, output = _check(_write(tmp_path, sections))
    assert "coordination" not in _errors(output), output


@pytest.mark.fault(
    "CHECK-07",
    guarantee="5",
    injected="[coordination] backend_url on a loopback port where nothing listens (redis://)",
    expected="config check: ERROR on coordination within a few seconds (the daemon would never lead)",
)
def test_an_unreachable_coordination_backend_is_an_error(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    sections = _good(tmp_path)
    sections["coordination"]["backend_url"] = f"redis://:S3cret-coord@127.0.0.1:{_free_port()}"
    started = time.monotonic()
    rc, output = _check(_write(tmp_path, sections))
    assert rc == 1
    assert "coordination" in _errors(output), output
    assert "S3cret-coord" not in output
    assert time.monotonic() - started < 60


@pytest.mark.fault(
    "CHECK-08",
    guarantee="-",
    injected="[api] bind on a loopback port another program already listens on",
    expected="config check: WARNING (it may be the running daemon), not an ERROR; the daemon itself refuses",
)
def test_an_api_port_in_use_is_a_warning(tmp_path: Path) -> None:
    sections = _good(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        sections["api"]["bind"] = f"127.0.0.1:{busy.getsockname()[1]}"
        _, output = _check(_write(tmp_path, sections))
    (line,) = [line for line in output.splitlines() if " api bind:" in line]
    assert line.startswith("WARNING") and "in use" in line


@pytest.mark.fault(
    "CHECK-10",
    guarantee="4",
    injected="webhook receivers: one on a closed loopback port, one listening but without secret_file (json), "
    "one listening with its key",
    expected="config check: WARNING for the closed one (events wait in the outbox) and for the unsigned one "
    "(set secret_file), OK for the third; the URL's path (a Slack URL's secret) is never printed",
)
def test_webhook_receivers_are_reached_and_their_keys_asked_for(tmp_path: Path) -> None:
    sections = _good(tmp_path)
    key = tmp_path / "webhook-key"
    key.write_text("webhook-key-0123\n")
    key.chmod(0o600)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        sections["webhooks"] = {"receivers": "gone,unsigned,ops"}
        sections["webhook:gone"] = {"url": f"http://127.0.0.1:{_free_port()}/T000/secret-path", "secret_file": str(key)}
        sections["webhook:unsigned"] = {"url": f"http://127.0.0.1:{port}/T000/secret-path"}
        sections["webhook:ops"] = {"url": f"http://127.0.0.1:{port}/T000/secret-path", "secret_file": str(key)}
        rc, output = _check(_write(tmp_path, sections), stdout_only=True)
    lines = {line.split(":", 1)[0]: line for line in output.splitlines() if " webhook " in line}
    assert lines["WARNING webhook gone"] and "does not accept connections" in lines["WARNING webhook gone"]
    assert "secret_file" in lines["WARNING webhook unsigned"]
    assert "deliveries signed" in lines["OK      webhook ops"]
    assert "secret-path" not in output and "webhook-key-0123" not in output
    assert _errors(output) == {"nova", "fence cmp1 level 1 device 1"}
