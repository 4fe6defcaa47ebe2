"""``petguard-manage`` on cliff, on real files: a sqlite journal, config files and directories, and the
files ``init`` prepares under ``tmp_path``.

The commands of before keep their plain output (the lab parses it); the new spellings print the API's
JSON shapes with cliff's formats; ``--config-file``/``--config-dir`` follow oslo.config; exit
statuses are 78 for configuration and 2 for usage. ``init`` is idempotent, never overwrites or shows a
secret, and writes files the daemon's own readers accept (the one rule, ``secrets.too_open``). The
``petguard`` group does not exist on the test machine: the current user's group stands in for it.
"""

from __future__ import annotations

import grp
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from oslo_config import cfg

from petguard import secrets, startup
from petguard.api import wire
from petguard.cmd import manage
from petguard.conf import opts
from petguard.daemon import api_backend
from petguard.store import migrate
from petguard.store.sql import SqlStore
from tests.functional.store.store_builders import plan, suspect_tick

NO_GROUP = "petguard-test-no-such-group"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*argv: str, stdin: io.StringIO | None = None) -> tuple[int, str, str]:
    """petguard-manage in this process: its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    app = manage.ManageApp(stdin=stdin or io.StringIO(), stdout=out, stderr=err)
    try:
        rc = app.run(list(argv))
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "petguard.conf"
    path.write_text(f"[database]\nconnection = sqlite:///{tmp_path}/journal.sqlite\n")
    return path


@pytest.fixture
def journal(conf: Path, tmp_path: Path) -> SqlStore:
    """A migrated journal with one incident on cmp1: its plan (3 moves, 2 servers left) and events."""
    url = f"sqlite:///{tmp_path}/journal.sqlite"
    migrate.upgrade(url)
    store = SqlStore(url)
    store.save_tick(suspect_tick("cmp1"))
    store.record_plan(store.incidents()[0].id, plan("cmp1"), 1_750_000_100.0)
    return store


# -- every command of before, as before ---------------------------------------------------------------
@pytest.mark.fault(
    "MANAGE-01",
    guarantee="-",
    injected="the lab's and operators' scripts run the commands of before (db-upgrade, host-list, incident-list, "
    "incident-show, request HOST KIND, brake-override) on the cliff petguard-manage",
    expected="each still works with its plain-text output, line for line as the lab parses it",
)
def test_the_commands_of_before_keep_their_plain_output(conf: Path, journal: SqlStore) -> None:
    rc, out, err = run("--config-file", str(conf), "db-upgrade")
    assert (rc, out) == (0, f"journal schema at head ({migrate.head()})\n"), err
    rc, out, _ = run("--config-file", str(conf), "host-list")
    assert rc == 0 and out.startswith("cmp1 ") and "suspect" in out and "incident=1 " in out
    rc, out, _ = run("--config-file", str(conf), "incident-list", "--host", "cmp1")
    assert rc == 0 and out.split()[0] == "1" and "open" in out
    rc, out, _ = run("--config-file", str(conf), "incident-show", "1")
    assert rc == 0 and out.startswith("incident 1 on cmp1: heartbeat missing (open)")
    assert "  move pet-0000 " in out and "  left cattle-0 " in out
    rc, out, _ = run("--config-file", str(conf), "request", "cmp1", "restore", "--reason", "repaired")
    assert (rc, out) == (0, "request 1 queued: restore for cmp1; the daemon acts on it at its next tick\n")
    rc, out, _ = run("--config-file", str(conf), "brake-override", "--reason", "storm over")
    assert (rc, out) == (0, "request 2 queued: override the mass-failure brake\n")
    pending = [(r.host, r.kind.value) for r in journal.pending_requests()]
    assert pending == [("cmp1", "restore"), ("*", "brake_override")]


# -- the new spellings: cliff's formats over the API's shapes ----------------------------------------
def test_lists_and_shows_print_the_apis_json_shapes_in_every_format(conf: Path, journal: SqlStore) -> None:
    rc, out, err = run("--config-file", str(conf), "host", "list", "-f", "json", "--long")
    assert rc == 0, err
    expected = wire.host_json(journal.load_hosts()["cmp1"])
    assert json.loads(out) == [{k.title() if k != "incident_id" else "Incident": v for k, v in expected.items()}]
    rc, out, _ = run("--config-file", str(conf), "incident", "list", "-f", "yaml")
    assert rc == 0 and yaml.safe_load(out)[0]["ID"] == 1 and yaml.safe_load(out)[0]["Host"] == "cmp1"
    rc, out, _ = run("--config-file", str(conf), "incident", "show", "1", "-f", "json")
    shown = json.loads(out)
    assert [m["server_name"] for m in shown["Moves"]] == ["pet-0000", "pet-0001", "pet-0002"]
    assert [s["server_name"] for s in shown["Left behind"]] == ["cattle-0", "cattle-1"]
    assert shown["Events"][0]["kind"] == "suspect"
    rc, out, _ = run("--config-file", str(conf), "incident", "list", "-f", "value", "-c", "ID", "-c", "Host")
    assert (rc, out) == (0, "1 cmp1\n")
    rc, out, _ = run("--config-file", str(conf), "incident", "show", "1")
    assert rc == 0 and "| Moves " in out and "pet-0000 planned -> -" in out  # table: the human forms
    rc, out, _ = run("--config-file", str(conf), "db", "version", "-f", "json")
    assert json.loads(out) == {"Current": migrate.head(), "Head": migrate.head(), "At head": True}


def test_a_request_is_queued_and_shown_in_the_requests_shape(conf: Path, journal: SqlStore) -> None:
    rc, out, err = run("--config-file", str(conf), "host", "maintenance", "on", "cmp2", "--reason", "disk", "-fjson")
    assert rc == 0, err
    request = json.loads(out)
    assert (request["Host"], request["Kind"], request["Status"], request["Reason"]) == (
        "cmp2", "maintenance_on", "pending", "disk"
    )
    assert "(petguard-manage)" in request["Requested by"] and "queued" in err
    rc, out, _ = run("--config-file", str(conf), "request", "show", str(request["ID"]), "-f", "value", "-c", "Kind")
    assert (rc, out) == (0, "maintenance_on\n")


@pytest.mark.fault(
    "MANAGE-02",
    guarantee="1",
    injected="petguard-manage host fence / confirm-fenced / evacuate / brake override from a script without --yes",
    expected="refused (exit 1, 'add --yes'), nothing queued; a terminal's 'yes' or --yes queues it",
)
@pytest.mark.parametrize(
    ("words", "kind"),
    [
        (("host", "fence", "cmp1"), "fence"),
        (("host", "confirm-fenced", "cmp1"), "confirm_fenced"),
        (("host", "evacuate", "cmp1"), "evacuate"),
        (("brake", "override"), "brake_override"),
    ],
)
def test_destructive_requests_ask_first(conf: Path, journal: SqlStore, words: tuple[str, ...], kind: str) -> None:
    rc, _, err = run("--config-file", str(conf), *words, "--reason", "r")
    assert rc == 1 and "add --yes" in err and journal.pending_requests() == []
    rc, _, err = run("--config-file", str(conf), *words, "--reason", "r", stdin=Tty("no\n"))
    assert rc == 1 and "not confirmed" in err and journal.pending_requests() == []
    rc, _, err = run("--config-file", str(conf), *words, "--reason", "r", stdin=Tty("yes\n"))
    assert rc == 0, err
    rc, _, err = run("--config-file", str(conf), *words, "--reason", "r", "--yes")
    assert rc == 0, err
    assert [r.kind.value for r in journal.pending_requests()] == [kind, kind]


def test_help_lists_the_commands_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert manage.main(["--help"]) == startup.OK
    listed = capsys.readouterr().out
    for name in ("init", "db upgrade", "db version", "config check", "host list", "incident show", "brake override"):
        assert f"  {name} " in listed
    assert "host-list" not in listed and "db-upgrade" not in listed  # the spellings of before work, unlisted
    assert manage.main(["host", "list", "--help"]) == startup.OK
    assert "-f {csv,json,table,value,yaml}" in capsys.readouterr().out


# -- configuration: files, directories, errors --------------------------------------------------------
def test_config_dir_files_are_read_in_order_after_the_file_before_it(tmp_path: Path) -> None:
    base = tmp_path / "petguard.conf"
    base.write_text(f"[database]\nconnection = sqlite:///{tmp_path}/base.sqlite\n")
    drop_ins = tmp_path / "petguard.conf.d"
    drop_ins.mkdir()
    (drop_ins / "20-last.conf").write_text(f"[database]\nconnection = sqlite:///{tmp_path}/last.sqlite\n")
    (drop_ins / "10-first.conf").write_text(f"[database]\nconnection = sqlite:///{tmp_path}/first.sqlite\n")
    rc, _, err = run("--config-file", str(base), "--config-dir", str(drop_ins), "db", "upgrade")
    assert rc == 0, err
    assert (tmp_path / "last.sqlite").exists()
    assert not (tmp_path / "first.sqlite").exists() and not (tmp_path / "base.sqlite").exists()
    # accepted after the command too, and a later --config-file overrides the directory
    again = tmp_path / "again.conf"
    again.write_text(f"[database]\nconnection = sqlite:///{tmp_path}/again.sqlite\n")
    rc, _, err = run("db", "upgrade", "--config-dir", str(drop_ins), "--config-file", str(again))
    assert rc == 0 and (tmp_path / "again.sqlite").exists(), err


@pytest.mark.fault(
    "MANAGE-03",
    guarantee="7",
    injected="petguard-manage with a missing config file, a config directory that does not exist, or a line "
    "oslo.config cannot parse holding a database password",
    expected="exit 78 (configuration, as the daemon), the file named, the line and the password never shown",
)
@pytest.mark.parametrize("mistake", ["missing file", "missing dir", "unparsable line"])
def test_configuration_errors_exit_78_without_the_secret(tmp_path: Path, mistake: str) -> None:
    path = tmp_path / "petguard.conf"
    path.write_text("[database]\n connection = mysql://petguard:Db-S3cret-Pw@db/petguard\n")
    args = {
        "missing file": ["--config-file", str(tmp_path / "nope.conf")],
        "missing dir": ["--config-dir", str(tmp_path / "nope.d")],
        "unparsable line": ["--config-file", str(path)],
    }[mistake]
    done = subprocess.run(
        [sys.executable, "-m", "petguard.cmd.manage", *args, "host", "list"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == startup.CONFIG, done.stderr
    assert done.stderr.startswith("petguard-manage: configuration error:"), done.stderr
    named = f"{path}, line 2" if mistake == "unparsable line" else args[1]
    assert named in done.stderr, done.stderr
    assert "S3cret" not in done.stdout + done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["no-such-command"],
        ["host", "list", "--no-such-option"],
        ["request", "cmp1", "restore"],  # --reason is required
        ["host", "maintenance", "on", "cmp1", "--reason", "x" * (wire.MAX_REASON + 1)],
        ["init", "--agent-keys", "../etc"],
        [],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert manage.main(argv) == startup.USAGE


# -- init -----------------------------------------------------------------------------------------------
def _init(tmp_path: Path, *extra: str, group: str = NO_GROUP) -> tuple[int, str, str]:
    return run("init", str(tmp_path / "etc"), "--state-dir", str(tmp_path / "state"), "--group", group, *extra)


def _snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every path under ``root``: mode, group, mtime (ns) and content (files)."""
    return {
        str(p): (p.stat().st_mode, p.stat().st_gid, p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.fault(
    "MANAGE-04",
    guarantee="7",
    injected="petguard-manage init on a fresh controller, then again (twice), with agent keys for two computes",
    expected="directories 0750, token and keys 0640 in the service group (else the current user's, said so), "
    "accepted by the daemon's own readers; no secret printed; the second run changes nothing and says so",
)
def test_init_prepares_a_controller_once(tmp_path: Path) -> None:
    rc, out, err = _init(tmp_path, "--agent-keys", "cmp1", "cmp2")
    assert rc == 0, err
    etc = tmp_path / "etc"
    my_group = grp.getgrgid(os.getgid()).gr_name
    assert f"the group {NO_GROUP} does not exist" in out and f"group {my_group}" in out
    for directory in (etc, tmp_path / "state", etc / "agents", etc / "agents" / "cmp1"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o750 and directory.stat().st_gid == os.getgid()
    token, keys = etc / "api-token", etc / "agent-keys"
    per_host = {h: etc / "agents" / h / "agent-hmac-key" for h in ("cmp1", "cmp2")}
    for path in (token, keys, *per_host.values()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.stat().st_gid == os.getgid()
        assert secrets.too_open(path, path.stat().st_mode) is None
    agent_keys = secrets.load_secrets(str(keys), "hmac", "[api] hmac_key_file")
    assert set(agent_keys) == {"agent-cmp1", "agent-cmp2"}
    for host, path in per_host.items():
        alone = secrets.load_secrets(str(path), "hmac", "[agent] hmac_key_file")
        assert alone == {"agent": agent_keys[f"agent-{host}"]}
    (operator,) = secrets.load_secrets(str(token), "token", "[api] token_file").values()
    assert len(operator) >= 40 and agent_keys["agent-cmp1"] != agent_keys["agent-cmp2"] != operator
    for secret in (operator, *agent_keys.values()):
        assert secret not in out + err
    assert "config check" in out and f"[api] token_file = {token}" in out and f"hmac_key_file = {keys}" in out

    # the daemon's own reader accepts them, as it will at start
    conf = cfg.ConfigOpts()
    opts.register(conf)
    conf(["--config-file", str(_write(tmp_path, f"[api]\ntoken_file = {token}\nhmac_key_file = {keys}\n"))])
    api_backend.authenticator(conf)

    before = _snapshot(tmp_path)
    rc, out, err = _init(tmp_path, "--agent-keys", "cmp1", "cmp2")
    assert rc == 0 and "nothing changed" in out and "created  " not in out and "note:" not in out, out + err
    assert _snapshot(tmp_path) == before


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "check.conf"
    path.write_text(text)
    return path


@pytest.mark.fault(
    "MANAGE-05",
    guarantee="7",
    injected="petguard-manage init where a token exists (other content), agent keys exist for some hosts, "
    "and a new compute is added",
    expected="the token and every existing key are kept byte for byte; only the new host's key is added",
)
def test_init_never_overwrites_a_secret_and_adds_only_new_hosts(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    token = etc / "api-token"
    token.write_text("ops my-own-token\n")
    token.chmod(0o600)
    keys = etc / "agent-keys"
    keys.write_text("agent-cmp1 old-key-of-cmp1")  # no newline at the end
    keys.chmod(0o600)
    rc, out, err = _init(tmp_path, "--agent-keys", "cmp1", "cmp3")
    assert rc == 0, err
    assert token.read_text() == "ops my-own-token\n" and stat.S_IMODE(token.stat().st_mode) == 0o600
    lines = keys.read_text().splitlines()
    assert lines[0] == "agent-cmp1 old-key-of-cmp1" and lines[1].startswith("agent-cmp3 ") and len(lines) == 2
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600  # its mode is the operator's
    assert not (etc / "agents" / "cmp1").exists()  # cmp1's key was there: nothing made for it
    assert (etc / "agents" / "cmp3" / "agent-hmac-key").read_text().strip() == lines[1].split()[1]
    assert "agent-cmp1 is there already" in out and "old-key-of-cmp1" not in out


@pytest.mark.fault(
    "MANAGE-06",
    guarantee="7",
    injected="petguard-manage init where the token file or the agent key file is world-readable (0644), or a "
    "compute's key file exists that the controllers' key file does not know",
    expected="exit 78 with the one rule's sentence (chmod 640) or what to remove; nothing is created or changed",
)
@pytest.mark.parametrize("mistake", ["open token", "open keys", "stray host key"])
def test_init_refuses_before_any_change(tmp_path: Path, mistake: str) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    if mistake == "open token":
        (etc / "api-token").write_text("t0ken-value\n")
        (etc / "api-token").chmod(0o644)
    elif mistake == "open keys":
        (etc / "agent-keys").write_text("agent-cmp1 k3y-value\n")
        (etc / "agent-keys").chmod(0o644)
    else:
        (etc / "agents" / "cmp2").mkdir(parents=True)
        (etc / "agents" / "cmp2" / "agent-hmac-key").write_text("unknown\n")
    before = _snapshot(tmp_path)
    rc, out, err = _init(tmp_path, "--agent-keys", "cmp2")
    assert rc == startup.CONFIG, out + err
    assert _snapshot(tmp_path) == before and not (tmp_path / "state").exists()
    if mistake == "stray host key":
        assert "has no agent-cmp2 line" in err and "remove it" in err
    else:
        assert "is open to other users (mode 0644)" in err and "chmod 640" in err
        assert "t0ken-value" not in err and "k3y-value" not in err


def test_init_gives_files_to_the_service_group_when_it_exists(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another group needs root")
    group = next(g for g in ("daemon", "adm", "nogroup") if _exists(g))
    rc, out, err = _init(tmp_path, "--agent-keys", "cmp1", group=group)
    assert rc == 0 and "does not exist" not in out, out + err
    gid = grp.getgrnam(group).gr_gid
    for path in (tmp_path / "etc", tmp_path / "etc" / "api-token", tmp_path / "etc" / "agent-keys"):
        assert path.stat().st_gid == gid


def _exists(group: str) -> bool:
    try:
        grp.getgrnam(group)
    except KeyError:
        return False
    return True


def test_init_takes_the_directory_as_an_option_too(tmp_path: Path) -> None:
    rc, _, err = run("init", "--config-dir-to-create", str(tmp_path / "etc"), "--state-dir", str(tmp_path / "s"))
    assert rc == 0 and (tmp_path / "etc" / "api-token").exists(), err
    rc, _, err = run("init", str(tmp_path / "a"), "--config-dir-to-create", str(tmp_path / "b"))
    assert rc == startup.USAGE and "two configuration directories" in err


def test_init_leaves_nothing_behind_when_it_may_not_give_a_file_its_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run as a user outside the service group, chown is refused: init says so and keeps nothing half made
    (a directory left in the wrong group would be "kept" by the next run)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chown", refuse)
    rc, out, err = _init(tmp_path)
    assert rc == startup.CONFIG and "cannot give" in err and "Operation not permitted" in err, out + err
    assert not (tmp_path / "etc").exists()
