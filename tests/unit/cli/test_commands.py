"""The command table and argument parsing, end to end through cliff but without any daemon.

Anything that needs an answer from the daemon is tested against the real WSGI app in
tests/functional/cli; here only what happens before (or instead of) a request.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from petguard.api import wire
from petguard.cli.commands.base import HostRequest, RequestCommand
from petguard.cli.main import COMMANDS, PetguardApp, main
from tests.unit.cli.runner import run_cli, write_token

REQUESTS = {name: cls for name, cls in COMMANDS.items() if issubclass(cls, RequestCommand)}
DESTRUCTIVE = {"host fence", "host confirm-fenced", "host evacuate", "host resend", "brake override"}


def _never(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request expected, got {request.method} {request.url}")


NEVER = httpx.MockTransport(_never)


def test_every_issue_command_exists() -> None:
    expected = {
        "host list", "host show", "host maintenance on", "host maintenance off", "host fence",
        "host confirm-fenced", "host restore", "host evacuate", "incident list", "incident show",
        "event list", "explain", "log-level", "status", "brake override", "audit list",
    }  # fmt: skip
    assert expected <= set(COMMANDS)


def test_host_request_kinds_are_the_wire_kinds() -> None:
    kinds = {cls.kind for cls in COMMANDS.values() if issubclass(cls, HostRequest)}
    assert kinds == set(wire.HOST_REQUEST_KINDS)


def test_destructive_commands_ask() -> None:
    asking = {name for name, cls in REQUESTS.items() if cls.confirmation is not None}
    assert asking == DESTRUCTIVE


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_on_every_command(name: str) -> None:
    result = run_cli([*name.split(), "--help"], NEVER)
    assert result.code == 0, result.err
    assert f"usage: petguard {name}" in result.out


def test_main_without_arguments_prints_help_and_usage_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], NEVER) == 2
    assert "host list" in capsys.readouterr().out


def _parse(name: str, argv: list[str]) -> object:
    app = PetguardApp(NEVER)
    return COMMANDS[name](app, None).get_parser(f"petguard {name}").parse_args(argv)


def test_request_defaults() -> None:
    args = _parse("host restore", ["cmp1"])
    assert (args.host, args.no_wait, args.timeout) == ("cmp1", False, 60.0)
    assert args.reason == "requested with the petguard CLI"


def test_fence_options() -> None:
    args = _parse("host fence", ["cmp1", "--reason", "disk on fire", "--yes", "--no-wait", "--timeout", "5"])
    assert (args.host, args.reason, args.yes, args.no_wait, args.timeout) == ("cmp1", "disk on fire", True, True, 5.0)


def test_log_level_is_case_insensitive() -> None:
    assert _parse("log-level", ["debug"]).level == "DEBUG"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["host", "fence", "cmp1"], "the following arguments are required: --reason"),
        (["host", "maintenance", "on", "cmp1"], "the following arguments are required: --reason"),
        (["host", "confirm-fenced", "--reason", "x"], "the following arguments are required: HOST"),
        (["brake", "override"], "the following arguments are required: --reason"),
        (["log-level", "loud"], "invalid choice: 'LOUD'"),
        (["incident", "show", "three"], "invalid int value: 'three'"),
        (["incident", "list", "--limit", "0"], "0 is not between 1 and 1000"),
        (["event", "list", "--incident", "x"], "invalid int value"),
        (["host", "restore", "cmp1", "--reason", "x" * 1001], "1001 characters; at most 1000"),
        (["host", "list", "-f", "xml"], "invalid choice: 'xml'"),
    ],
)
def test_bad_arguments(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(argv, NEVER, token_file=write_token(tmp_path))
    assert result.code == 2
    assert message in capsys.readouterr().err  # argparse writes to sys.stderr


def test_unknown_command_exits_2(tmp_path: Path) -> None:
    result = run_cli(["host", "explode", "cmp1"], NEVER, token_file=write_token(tmp_path))
    assert result.code == 2


@pytest.mark.parametrize("name", sorted(DESTRUCTIVE))
def test_destructive_without_tty_and_yes_is_refused_before_any_request(name: str, tmp_path: Path) -> None:
    target = [] if name == "brake override" else ["cmp1"]
    result = run_cli(
        [*name.split(), *target, "--reason", "why"], NEVER, token_file=write_token(tmp_path), stdin="yes\n"
    )
    assert result.code == 1
    assert result.err.startswith("petguard: refusing to ")
    assert result.err.endswith("without confirmation: stdin is not a terminal; add --yes\n")
    assert result.out == ""


def test_declined_on_a_terminal(tmp_path: Path) -> None:
    result = run_cli(
        ["host", "fence", "cmp1", "--reason", "x"], NEVER, token_file=write_token(tmp_path), stdin="n\n", tty=True
    )
    assert result.code == 1
    assert "This powers off cmp1 through its BMC" in result.err
    assert result.err.endswith("Type 'yes' to fence cmp1: petguard: not confirmed (n): did not fence cmp1\n")


def test_unreachable_daemon_is_one_line_and_exit_3(tmp_path: Path) -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    result = run_cli(["host", "list"], httpx.MockTransport(refused), token_file=write_token(tmp_path))
    assert result.code == 3
    assert result.err == (
        "petguard: cannot reach the petguard daemon at http://127.0.0.1:8795: [Errno 111] Connection refused "
        "(is petguard-daemon running? see --url / PETGUARD_URL)\n"
    )
    assert result.out == ""


def test_token_file_open_to_others_before_any_request(tmp_path: Path) -> None:
    token = write_token(tmp_path, mode=0o644)
    result = run_cli(["status"], NEVER, token_file=token)
    assert result.code == 1
    assert result.err == (
        f"petguard: the API token file {token} is open to other users (mode 0644); a secret file may be read by its "
        f"owner and group only: run chmod 640 {token} (or 600)\n"
    )


def test_bad_url_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(["status"], NEVER, token_file=write_token(tmp_path), url="ftp://ctl")
    assert (result.code, result.err.count("\n")) == (2, 1)


def test_url_and_token_file_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PETGUARD_URL", "unix:///run/x.sock")
    monkeypatch.setenv("PETGUARD_TOKEN_FILE", str(tmp_path / "t"))
    app = PetguardApp(NEVER)
    app.options, _ = app.parser.parse_known_args(["status"])
    client = app.client()
    assert (client.endpoint.uds, client.endpoint.base_url) == ("/run/x.sock", "http://petguard")


def test_top_level_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    """cliff ends `petguard --help` with a SystemExit without a code: that is success, not status 1."""
    assert main(["--help"]) == 0
    assert "usage: " in (out := capsys.readouterr().out) and "--url URL" in out
