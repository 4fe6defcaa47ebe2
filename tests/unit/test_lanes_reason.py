"""The reason petguard writes into Nova when it disables a fenced host (``recovery.disabled_reason``).

Seen on the lab's real Nova: the reason is what an operator reads in the service list, so the command
it names must exist, it must fit Nova's 255-character column, and it must keep the marker that
detection uses to recognise a host petguard itself holds down.
"""

from __future__ import annotations

import pytest

from petguard.cmd import manage
from petguard.detect import DetectionPolicy
from petguard.lanes import NOVA_REASON_MAX, disabled_reason


@pytest.mark.parametrize("host", ["cmp1", "compute-0042.rack17.dc3.example.org", "h" * 255])
def test_reason_fits_nova_and_keeps_the_marker(host: str) -> None:
    reason = disabled_reason(host, 123456)
    assert len(reason) <= NOVA_REASON_MAX
    assert reason.startswith(DetectionPolicy().reason_marker)
    assert reason.startswith("petguard: incident 123456: ")


def test_reason_names_commands_that_exist() -> None:
    reason = disabled_reason("cmp1", 7)
    assert "`petguard host restore cmp1`" in reason
    # petguard-manage works without the HTTP API; it really parses what the reason says
    assert "`petguard-manage request cmp1 restore --reason ...`" in reason
    app = manage.ManageApp()
    factory, name, rest = app.command_manager.find_command(["request", "cmp1", "restore", "--reason", "repaired"])
    args = factory(app, None).get_parser(f"petguard-manage {name}").parse_args(rest)
    assert (name, args.host, args.kind) == ("request", "cmp1", "restore")
