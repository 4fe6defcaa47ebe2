"""The fault matrix: every test that injects a fault says which, and ``docs/faults.md`` is made from them.

A fault test carries ``@pytest.mark.fault(ID, guarantee=..., injected=..., expected=...)``: the fault's
id (``AREA-NN``, e.g. ``BMC-03``), the guarantee it attacks (``1``..``8`` of DESIGN.md/README, or
``-`` for robustness with no guarantee at stake), what is injected and what must happen. Several tests
may inject one fault (each must describe it the same way); one test may carry several faults.

``pytest --collect-only -q --write-faults docs/faults.md tests/unit tests/functional tests/lab``
writes the table (``./run test`` checks that it is up to date, like the lifecycle diagram). Where a
fault is injected (unit, functional with real peers, the real-Nova lab) comes from the test's folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FAULT_ID = re.compile(r"^[A-Z]+-\d{2,3}$")
GUARANTEES = {"1", "2", "3", "4", "5", "6", "7", "8", "-"}
TIERS = ("unit", "functional", "lab")


@dataclass
class Fault:
    """One injected fault as the table shows it; ``tests`` gathers every test that injects it."""

    id: str
    guarantee: str
    injected: str
    expected: str
    tests: dict[str, set[str]] = field(default_factory=dict)  # tier -> test node ids (no parameters)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--write-faults", metavar="PATH", help="write the fault matrix (docs/faults.md) to PATH")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fault(id, guarantee, injected, expected): the test injects this fault (docs/faults.md)"
    )
    config.addinivalue_line("markers", "faults_slow: a slow fault scenario (its own tier; ./run faults)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow fault tier runs only when asked for (``-m faults_slow``, ``./run faults``); the fault matrix still
    lists its faults (``--write-faults``)."""
    if "faults_slow" in (config.option.markexpr or "") or config.getoption("--write-faults"):
        return
    slow = [item for item in items if item.get_closest_marker("faults_slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("faults_slow")]


def _fault_of(mark: pytest.Mark, where: str) -> Fault:
    if len(mark.args) != 1 or set(mark.kwargs) != {"guarantee", "injected", "expected"}:
        raise pytest.UsageError(f"{where}: write @pytest.mark.fault(ID, guarantee=, injected=, expected=)")
    fault_id = str(mark.args[0])
    guarantee = str(mark.kwargs["guarantee"])
    if not FAULT_ID.match(fault_id):
        raise pytest.UsageError(f"{where}: fault id {fault_id!r} is not AREA-NN (e.g. BMC-03)")
    if guarantee not in GUARANTEES:
        raise pytest.UsageError(f"{where}: guarantee {guarantee!r} is not one of 1..8 or '-'")
    injected, expected = str(mark.kwargs["injected"]), str(mark.kwargs["expected"])
    if "|" in injected + expected or "\n" in injected + expected:
        raise pytest.UsageError(f"{where}: a fault's texts are one line without '|'")
    return Fault(fault_id, guarantee, injected, expected)


def _tier(item: pytest.Item) -> str:
    parts = Path(str(item.path)).parts
    below_tests = parts[parts.index("tests") + 1] if "tests" in parts[:-1] else ""
    return below_tests if below_tests in TIERS else "unit"


def collect_faults(items: list[pytest.Item]) -> dict[str, Fault]:
    """Every fault the items inject, checked: one id, one description."""
    faults: dict[str, Fault] = {}
    for item in items:
        for mark in item.iter_markers("fault"):
            fault = _fault_of(mark, item.nodeid)
            known = faults.setdefault(fault.id, fault)
            if (known.guarantee, known.injected, known.expected) != (fault.guarantee, fault.injected, fault.expected):
                raise pytest.UsageError(f"{item.nodeid}: fault {fault.id} is described differently elsewhere")
            test = item.nodeid.split("[", 1)[0]
            known.tests.setdefault(_tier(item), set()).add(test)
    return faults


def render(faults: dict[str, Fault]) -> str:
    """docs/faults.md: a summary, then one row per fault, by id."""
    ordered = sorted(faults.values(), key=lambda f: (f.id.split("-")[0], int(f.id.split("-")[1])))
    per_tier = {tier: sum(1 for f in ordered if tier in f.tests) for tier in TIERS}
    lines = [
        "# The fault matrix",
        "",
        "<!-- generated from the tests' @pytest.mark.fault markers by",
        "     pytest --collect-only -q --write-faults docs/faults.md tests/unit tests/functional tests/lab",
        "     (tests/conftest.py); ./run test checks it is up to date. Do not edit by hand. -->",
        "",
        "Every fault petguard is tested against: what is injected, where (unit: pure code or fakes at",
        "petguard's own seams; functional: real peers such as ipmi_sim, sushy-tools, fence-agents, etcd,",
        "SQLite/MariaDB; lab: the real Nova control plane of `petguard-lab`), the guarantee it attacks",
        "(README, \"What petguard guarantees\"; `-` where none is at stake), what must happen, and the",
        "tests that inject it.",
        "",
        f"{len(ordered)} faults: {per_tier['unit']} in unit tests, {per_tier['functional']} functional, "
        f"{per_tier['lab']} on the real-Nova lab (a fault injected in several tiers counts in each).",
        "",
        "| id | injected | where | guarantee | expected | tests |",
        "|---|---|---|---|---|---|",
    ]
    for fault in ordered:
        where = ", ".join(tier for tier in TIERS if tier in fault.tests)
        tests = "<br>".join(f"`{t}`" for tier in TIERS for t in sorted(fault.tests.get(tier, ())))
        lines.append(
            f"| {fault.id} | {fault.injected} | {where} | {fault.guarantee} | {fault.expected} | {tests} |"
        )
    return "\n".join(lines) + "\n"


def pytest_collection_finish(session: pytest.Session) -> None:
    target = session.config.getoption("--write-faults")
    faults = collect_faults(session.items)  # checks the markers on every run, not only when writing
    if target:
        Path(target).write_text(render(faults), encoding="utf-8")
