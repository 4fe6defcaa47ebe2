"""Run the ``petguard`` CLI in-process, as a terminal or a script would, and capture what it prints."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import httpx

from petguard.cli.main import PetguardApp


class Terminal(io.StringIO):
    """A stdin that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def write_token(directory: Path, token: str = "s3cret-token", mode: int = 0o600) -> Path:
    path = directory / "api-token"
    path.write_text(token + "\n")
    path.chmod(mode)
    return path


def run_cli(
    argv: list[str],
    transport: httpx.BaseTransport | None = None,
    *,
    token_file: Path | None = None,
    url: str = "http://127.0.0.1:8795",
    stdin: str = "",
    tty: bool = False,
    poll_interval: float = 0.01,
) -> Result:
    """``petguard --url URL --token-file FILE ARGV...``; argparse's SystemExit becomes the code."""
    out, err = io.StringIO(), io.StringIO()
    app = PetguardApp(transport, stdin=Terminal(stdin) if tty else io.StringIO(stdin), stdout=out, stderr=err)
    app.poll_interval = poll_interval
    prefix = ["--url", url] + (["--token-file", str(token_file)] if token_file else [])
    try:
        code = app.run(prefix + argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return Result(code, out.getvalue(), err.getvalue())
