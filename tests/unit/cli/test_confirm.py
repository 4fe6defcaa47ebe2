"""Confirmation of destructive requests: --yes, a terminal's answer, or a refusal."""

from __future__ import annotations

import io

import pytest

from petguard.cli.confirm import confirm
from petguard.cli.errors import Refused
from tests.unit.cli.runner import Terminal


def test_yes_asks_nothing() -> None:
    stderr = io.StringIO()
    confirm("Power off cmp1?", "fence cmp1", yes=True, stdin=io.StringIO(""), stderr=stderr)
    assert stderr.getvalue() == ""


def test_no_terminal_and_no_yes_is_refused_without_reading_stdin() -> None:
    stdin = io.StringIO("yes\n")  # a pipe must not answer for the operator
    with pytest.raises(Refused) as info:
        confirm("Power off cmp1?", "fence cmp1", yes=False, stdin=stdin, stderr=io.StringIO())
    assert str(info.value) == "refusing to fence cmp1 without confirmation: stdin is not a terminal; add --yes"
    assert info.value.exit_code == 1
    assert stdin.read() == "yes\n"


@pytest.mark.parametrize("answer", ["yes\n", "y\n", "YES\n", " Yes \n"])
def test_terminal_yes(answer: str) -> None:
    stderr = io.StringIO()
    confirm("Power off cmp1?", "fence cmp1", yes=False, stdin=Terminal(answer), stderr=stderr)
    assert stderr.getvalue() == "Power off cmp1?\nType 'yes' to fence cmp1: "


@pytest.mark.parametrize(
    ("answer", "shown"), [("no\n", "no"), ("\n", "no answer"), ("", "no answer"), ("yess\n", "yess")]
)
def test_terminal_anything_else_refuses(answer: str, shown: str) -> None:
    with pytest.raises(Refused, match=rf"^not confirmed \({shown}\): did not fence cmp1$"):
        confirm("Power off cmp1?", "fence cmp1", yes=False, stdin=Terminal(answer), stderr=io.StringIO())
