"""The install an operator follows, from the built artifacts (issue 13), not from the checkout.

The sdist and the wheel are built as a release would (``python -m build``: the sdist from the
checkout, the wheel from that sdist, in an isolated build environment) into a temporary directory.
The wheel is installed into a fresh virtualenv at ``PREFIX``, a temporary directory standing in for
the README's ``PREFIX=/opt/petguard``, and what the README then does is done with it: the entry
points answer ``--version``, the samples and units are under ``PREFIX/share/petguard``,
``petguard-manage init`` and ``db upgrade`` work, and the units (whose ``ExecStart=`` must name
``/opt/petguard/bin/...``, the README's layout) pass ``systemd-analyze verify`` with the installed
programs.

The wheel is installed with ``--no-deps``; its dependencies are then lent from this test's own
environment by a ``.pth`` file, so the test needs no package index for them and takes about 30 s
(resolving them from PyPI, as the README's ``pip install`` does, took 55 s here with a warm pip
cache). The isolated build does fetch setuptools and wheel, as ``python -m build`` always does.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import site
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from petguard import startup
from tests.functional.webhooks import test_systemd_units as units

ROOT = Path(__file__).resolve().parents[2]

#: In the sdist (MANIFEST.in) and, but for the docs, in the wheel under share/petguard (setup.cfg).
SHIPPED = [
    "etc/petguard/petguard.conf.sample",
    "etc/petguard/agent.conf.sample",
    "systemd/petguard.service",
    "systemd/petguard-agent.service",
    "systemd/petguard.sysusers",
    "systemd/petguard.tmpfiles",
    "docs/operations.md",
    "docs/upgrade.md",
    "CHANGELOG.md",
]
PROGRAMS = ("petguard-daemon", "petguard-agent", "petguard-manage", "petguard")


@dataclasses.dataclass(frozen=True)
class Artifacts:
    sdist: Path
    wheel: Path


def _env() -> dict[str, str]:
    """The environment of an operator's shell: no PYTHONPATH pointing into the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def _run(*argv: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command as the operator would: not from the checkout (``python -c`` puts the current
    directory first on ``sys.path``), without PYTHONPATH."""
    proc = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, env=_env(), cwd=tempfile.gettempdir()
    )
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    pytest.importorskip("build", reason="python -m build is in the [test] extra: pip install -e '.[test]'")
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", out, ROOT, timeout=180)
    [sdist] = out.glob("petguard-*.tar.gz")
    [wheel] = out.glob("petguard-*.whl")
    return Artifacts(sdist, wheel)


@pytest.fixture(scope="module")
def prefix(artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The README's virtualenv, at a temporary PREFIX, with the wheel installed in it."""
    prefix = tmp_path_factory.mktemp("opt") / "petguard"
    _run(sys.executable, "-m", "venv", "--without-pip", prefix)
    # The venv's python is this test's interpreter's base; its pip installs into the new venv.
    _run(sys.executable, "-m", "pip", "--python", prefix / "bin" / "python", "install", "-q", "--no-deps",
         "--no-index", artifacts.wheel, timeout=120)
    [purelib] = (prefix / "lib").glob("python3*/site-packages")
    # The dependencies, lent (see the module docstring); plain lines: their .pth files are not run,
    # so the checkout's editable petguard stays out of the way.
    lent = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "zz_lent_dependencies.pth").write_text("".join(f"{p}\n" for p in lent))
    yield prefix
    shutil.rmtree(prefix, ignore_errors=True)


def _readme_prefix() -> str:
    found = re.findall(r"^PREFIX=(\S+)", (ROOT / "README.md").read_text(), flags=re.M)
    assert found, "README.md's 'Installing on a controller' sets PREFIX=... for the commands that follow"
    return str(found[0])


def test_the_sdist_carries_the_samples_units_and_docs(artifacts: Artifacts) -> None:
    with tarfile.open(artifacts.sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    missing = [path for path in SHIPPED if path not in names]
    assert not missing, f"the sdist lacks {missing} (MANIFEST.in)"


@pytest.mark.fault(
    "INSTALL-01",
    guarantee="-",
    injected="petguard installed as the README says, from the built wheel into a fresh virtualenv at PREFIX "
    "(no checkout on the path)",
    expected="every entry point answers --version with the wheel's version from PREFIX; the samples and units are "
    "under PREFIX/share/petguard; init and db upgrade work",
)
def test_the_wheel_installs_into_a_fresh_virtualenv_and_runs(prefix: Path, tmp_path: Path) -> None:
    where = _run(prefix / "bin" / "python", "-c", "import petguard; print(petguard.__file__)").stdout
    assert where.startswith(str(prefix)), f"petguard imported from {where}, not from the installed wheel"
    for program in PROGRAMS:
        out = _run(prefix / "bin" / program, "--version").stdout
        assert out.strip().endswith(startup.version()), f"{program} --version: {out!r}"
    share = prefix / "share" / "petguard"
    in_wheel = [p.replace("etc/petguard/", "etc/") for p in SHIPPED if p.startswith(("etc/", "systemd/"))]
    missing = [p for p in in_wheel if not (share / p).is_file()]
    assert not missing, f"the wheel lacks {missing} under share/petguard (setup.cfg [options.data_files])"

    manage = prefix / "bin" / "petguard-manage"
    _run(manage, "init", tmp_path / "etc", "--state-dir", tmp_path / "state", "--agent-keys", "cmp1")
    assert (tmp_path / "etc" / "api-token").is_file() and (tmp_path / "etc" / "agent-keys").is_file()
    conf = tmp_path / "etc" / "petguard.conf"
    conf.write_text(f"[database]\nconnection = sqlite:///{tmp_path}/state/petguard.sqlite\n")
    _run(manage, "--config-file", conf, "db", "upgrade")  # the migrations are in the wheel
    version = _run(manage, "--config-file", conf, "db", "version", "-f", "value").stdout
    assert version.strip(), version


@pytest.mark.fault(
    "INSTALL-02",
    guarantee="-",
    injected="the systemd units installed from PREFIX/share/petguard/systemd beside the wheel's programs",
    expected="their ExecStart= names README's PREFIX/bin/petguard-daemon and petguard-agent, the wheel put those "
    "programs there, and systemd-analyze verify passes on them",
)
@pytest.mark.parametrize("unit", units.UNIT_FILES)
def test_the_units_start_the_installed_programs(unit: str, prefix: Path, tmp_path: Path) -> None:
    assert _readme_prefix() == units.PREFIX
    program = units.exec_start(unit)
    assert program.startswith(f"{units.PREFIX}/bin/"), program
    assert (prefix / "bin" / Path(program).name).is_file(), f"the wheel installs no {Path(program).name}"
    assert (prefix / "share" / "petguard" / "systemd" / unit).read_text() == (units.UNITS / unit).read_text()
    if units.ANALYZE is None:
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    units.verify(unit, prefix, tmp_path)
