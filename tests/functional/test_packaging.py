"""What the sdist ships besides the code (issue 13): an operator installing from it finds the sample
configs and the systemd units there, not only in a git checkout."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SHIPPED = [
    "etc/petguard/petguard.conf.sample",
    "etc/petguard/agent.conf.sample",
    "systemd/petguard.service",
    "systemd/petguard-agent.service",
    "systemd/petguard.sysusers",
    "systemd/petguard.tmpfiles",
    "docs/operations.md",
]


@pytest.mark.timeout(120)
def test_the_sdist_carries_the_samples_units_and_docs(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    [archive] = tmp_path.glob("petguard-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    missing = [path for path in SHIPPED if path not in names]
    assert not missing, f"the sdist lacks {missing} (MANIFEST.in)"
