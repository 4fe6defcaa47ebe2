"""Tests of `petguard-lab bench` without OpenStack: phase arithmetic, medians, the JSON shape."""

from __future__ import annotations

import json
import re
import types

import pytest

from petguard_lab import bench
from petguard_lab.cli import build_parser

CUT = 1_000.0


def _petguard_run(offset: float) -> dict[str, object]:
    marks = {"nova_down": 60.0, "suspect": 61.0, "decide": 81.0, "fenced": 83.5, "forced": 83.55,
             "disabled": 83.6, "plan": 83.8, "first_accepted": 84.5, "last_active": 90.0 + offset}
    return {"phases": bench.petguard_phases(CUT, {k: CUT + v for k, v in marks.items()})}


def _bare_run(evacuate: float) -> dict[str, object]:
    times = {"cut": CUT, "nova_down": CUT + 62.0, "forced_down": CUT + 62.1,
             "evacuate_first_sent": CUT + 62.1, "evacuate_last_accepted": CUT + 63.0,
             "last_active": CUT + 62.1 + evacuate}
    return {"phases": bench.bare_phases(times)}


def test_petguard_phases_add_up_to_the_rto() -> None:
    phases = _petguard_run(0.0)["phases"]
    assert isinstance(phases, dict)
    assert phases["detect"] == 81.0
    assert phases["fence"] == 2.5
    assert phases["evacuate"] == pytest.approx(6.2)
    parts = sum(phases[p] for p in bench.PETGUARD_PHASES)
    assert parts == pytest.approx(phases["rto"]) == pytest.approx(90.0)


def test_a_missing_mark_leaves_its_phases_empty() -> None:
    phases = bench.petguard_phases(CUT, {"decide": CUT + 5, "last_active": CUT + 9})
    assert phases["detect"] == 5.0 and phases["rto"] == 9.0
    assert phases["fence"] is None and phases["evacuate"] is None


def test_bare_phases() -> None:
    phases = _bare_run(2.5)["phases"]
    assert isinstance(phases, dict)
    assert phases["nova_down"] == 62.0
    assert phases["evacuate"] == 2.5
    assert phases["rto"] == pytest.approx(64.6)


def test_p50_and_spread() -> None:
    assert bench.p50([]) is None
    assert bench.p50([3.0, 1.0, 2.0]) == 2.0
    assert bench.p50([4.0, 1.0, 2.0, 3.0]) == 2.5  # even count: mean of the middle two
    assert bench.spread([2.0, 9.0, 4.0]) == {"p50": 4.0, "min": 2.0, "max": 9.0}


def test_summary_has_the_documented_keys_and_the_ratio() -> None:
    petguard_runs = [_petguard_run(x) for x in (0.0, 1.0, 2.0, 3.0, 4.0)]
    bare_runs = [_bare_run(x) for x in (2.0, 3.0, 4.0)]
    settings = {"pets": 20, "report_interval_s": 10, "service_down_time_s": 60,
                "grace_period_s": 20}
    result = json.loads(json.dumps(bench.summarise(settings, petguard_runs, bare_runs)))
    for key in ("runs", "pets", "rto_s", "rto_p50_s", "detect_p50_s", "fence_p50_s",
                "evacuate_p50_s", "bare_sdk_evacuate_p50_s", "overhead_ratio",
                "report_interval_s", "service_down_time_s", "grace_period_s"):
        assert key in result, key
    assert result["runs"] == 5 and result["pets"] == 20
    assert result["rto_s"] == [90.0, 91.0, 92.0, 93.0, 94.0]
    assert result["rto_p50_s"] == 92.0
    assert result["evacuate_p50_s"] == pytest.approx(8.2)
    assert result["bare_sdk_evacuate_p50_s"] == 3.0
    assert result["overhead_ratio"] == pytest.approx(round(8.2 / 3.0, 2))


def test_no_bare_runs_means_no_ratio() -> None:
    result = bench.summarise({}, [_petguard_run(0.0)], [])
    assert result["bare_sdk_evacuate_p50_s"] is None and result["overhead_ratio"] is None


def test_defaults_are_novas_heartbeats_20_pets_5_runs() -> None:
    args = build_parser().parse_args(["bench"])
    assert (args.report_interval, args.service_down_time) == (10, 60)
    assert (args.pets, args.runs) == (20, 5)
    assert bench.BenchOptions().grace == 20
    assert bench.BenchOptions(report_interval=2, service_down_time=10).grace == 6
    assert bench.BenchOptions(grace_period=30).grace == 30


def test_the_bench_turns_the_fence_rate_limit_off_unless_told_otherwise() -> None:
    """Every run fences the victim: 5 runs in a few minutes would meet the default 3 per hour."""
    def overrides(*options: str) -> dict[str, str]:
        holder = types.SimpleNamespace(o=bench.BenchOptions(petguard_options=options))
        return bench.Bench._petguard_overrides(holder)  # type: ignore[arg-type]

    assert overrides()["detection.fence_rate_max"] == "0"
    assert overrides("detection.fence_rate_max=2")["detection.fence_rate_max"] == "2"


def test_the_bench_tells_petguard_novas_report_interval() -> None:
    """petguard's own heartbeat staleness is 3 x report_interval: the lab's, not the default."""
    def interval(**options: object) -> str:
        holder = types.SimpleNamespace(o=bench.BenchOptions(**options))  # type: ignore[arg-type]
        overrides = bench.Bench._petguard_overrides(holder)  # type: ignore[arg-type]
        return overrides["detection.report_interval"]

    assert interval(report_interval=2, service_down_time=10) == "2"
    assert interval(petguard_options=("detection.report_interval=5",)) == "5"


def test_petguard_option_parsing() -> None:
    assert bench.parse_option("evacuation.max_parallel=20") == ("evacuation", "max_parallel", "20")
    with pytest.raises(bench.BenchError):
        bench.parse_option("max_parallel=20")


def test_log_rules_match_petguard_lines_with_and_without_the_incident() -> None:
    rules = {key: re.compile(pattern.format(v=bench.host_pattern("cmp1")))
             for key, pattern in bench._RULES}
    lines = {
        "decide": "cmp1 [incident 3]: failed (nova: nova-compute heartbeat missing (down for "
                  "6 s)); fencing it now; next: power off and read back OFF",
        "fenced": "cmp1 [incident 3]: fenced: fence level 1 of 1: power read back OFF 3 times in "
                  "a row, 2.8 s after power-off was sent; host is fenced, evacuation may start",
        "forced": "cmp1: compute service forced down [req-1]; next: disable it",
        "first_accepted": "cmp1 [incident 3]: evacuation of bench-02 (846f1ad5) accepted by "
                          "Nova [req-2]; next: follow it until it is on another host",
        "plan": "cmp1 [incident 12]: plan: 20 pet(s) to evacuate (bench-01), 0 server(s) left: "
                "none",
    }
    for key, line in lines.items():
        assert rules[key].search(line), key
    assert not rules["forced"].search("cmp10: compute service forced down [req-1]")
