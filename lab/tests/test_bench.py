"""Tests of `petguard-lab bench` without OpenStack: phase arithmetic, medians, the JSON shape."""

from __future__ import annotations

import json
import os
import re
import types
from typing import ClassVar

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


# -- the JSON's detection signal, per-arm figures and load averages ------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("cmp1 [incident 3]: failed (nova: nova-compute heartbeat missing (down for 6 s)); fencing "
         "it now; next: power off and read back OFF", "nova"),
        ("cmp1 [incident 3]: failed (nova-heartbeat: updated_at unchanged for more than 30 s (Nova "
         "still says up until its service_down_time) (down for 20 s)); fencing it now; next: x",
         "nova-heartbeat"),
        ("cmp1: failed (nova-heartbeat: updated_at unchanged for more than 6 s (Nova still says up "
         "until its service_down_time); agent: silent for more than 9 s (down for 7 s)); fencing "
         "it now", "agent+nova-heartbeat"),
        ("cmp1: failed (alert:HostDown: node exporter gone; nova: nova-compute heartbeat missing "
         "(down for 6 s)); fencing it now", "alert:HostDown+nova"),
        ("cmp1: failed (no signal); fencing it now", "unknown"),
        ("cmp1: suspect, looks down: nova: nova-compute heartbeat missing", None),
        (None, None),
    ],
)
def test_detected_by_names_the_signals_of_petguards_decision(line: str | None,
                                                             expected: str | None) -> None:
    assert bench.detected_by(line) == expected


def _run(i: int, offset: float, signal: str, load_end: float) -> dict[str, object]:
    phases = _petguard_run(offset)["phases"]
    assert isinstance(phases, dict)
    return bench.run_record(i, phases, (1.0, 2.0, 3.0), (load_end, 2.0, 3.0), 12.34, 100.04,
                            detected_by=signal, marks={})


def test_a_run_record_has_the_load_before_and_at_the_end() -> None:
    run = _run(1, 0.0, "nova-heartbeat", 4.567)
    assert run["load_avg"] == [1.0, 2.0, 3.0] and run["load_avg_end"] == [4.57, 2.0, 3.0]
    assert run["restore_s"] == 12.3 and run["wall_s"] == 100.0
    assert run["detected_by"] == "nova-heartbeat" and run["run"] == 1 and "marks" in run


def test_the_summary_carries_each_arm_and_what_detected_the_failure() -> None:
    petguard_runs = [_run(1, 0.0, "nova-heartbeat", 1.5), _run(2, 2.0, "nova-heartbeat", 2.5),
                     _run(3, 4.0, "nova", 3.5)]
    bare_runs = []
    for i, evacuate in enumerate((2.0, 3.0), start=1):
        phases = _bare_run(evacuate)["phases"]
        assert isinstance(phases, dict)
        bare_runs.append(bench.run_record(i, phases, (0.5, 0, 0), (0.75, 0, 0), 1, 2,
                                          detected_by=bench.BARE_DETECTED_BY))
    result = json.loads(json.dumps(bench.summarise({"pets": 20}, petguard_runs, bare_runs)))
    assert result["detected_by"] == {"nova": 1, "nova-heartbeat": 2}
    ours, bare = result["arms"]["petguard"], result["arms"]["bare_sdk"]
    for arm in (ours, bare):
        assert set(arm) == {"runs", "detected_by", "detect_p50_s", "fence_p50_s", "evacuate_p50_s",
                            "rto_s", "rto_p50_s", "load_avg_end"}
    assert ours["detected_by"] == ["nova-heartbeat", "nova-heartbeat", "nova"]
    assert ours["rto_s"] == result["rto_s"] == [90.0, 92.0, 94.0] and ours["rto_p50_s"] == 92.0
    assert ours["detect_p50_s"] == result["detect_p50_s"] == 81.0
    assert ours["fence_p50_s"] == result["fence_p50_s"] == 2.5
    assert ours["evacuate_p50_s"] == result["evacuate_p50_s"]
    assert ours["load_avg_end"] == [[1.5, 2.0, 3.0], [2.5, 2.0, 3.0], [3.5, 2.0, 3.0]]
    assert bare["detected_by"] == ["nova", "nova"] and bare["fence_p50_s"] is None
    assert bare["detect_p50_s"] == result["bare_sdk_nova_down_p50_s"] == 62.0
    assert bare["evacuate_p50_s"] == result["bare_sdk_evacuate_p50_s"] == 2.5
    assert bare["load_avg_end"] == [[0.75, 0, 0], [0.75, 0, 0]]
    assert result["overhead_ratio"] == pytest.approx(round(ours["evacuate_p50_s"] / 2.5, 2))
    # the keys docs/benchmarks.md and lab/README.md name are still there
    for key in ("runs", "rto_p50_s", "rto_min_s", "rto_max_s", "nova_down_p50_s",
                "force_down_p50_s", "disable_p50_s", "plan_p50_s", "evacuate_s",
                "bare_sdk_rto_s", "bare_sdk_rto_p50_s", "bare_sdk_evacuate_s", "petguard_runs",
                "bare_sdk_run_details"):
        assert key in result, key


class _NoisyBench:
    """A bench that prints as the lab does: install messages, progress, a child's output on fd 1."""

    result: ClassVar[dict[str, object]] = {"rto_p50_s": 1.0, "detected_by": {"nova": 1}}
    fail = False

    def __init__(self, lab: object, options: bench.BenchOptions, out: object) -> None:
        self.out = out

    def run(self) -> dict[str, object]:
        print("installing python3-dev (log: install.log)")  # lab.install: print() to stdout
        print("[bench 00:00:00] progress", file=self.out)
        os.write(1, b"+ a child process writes on its inherited stdout\n")
        if self.fail:
            raise bench.BenchError("the lab fell over")
        return self.result


@pytest.mark.parametrize("fail", [False, True], ids=["result", "error"])
def test_bench_json_puts_only_the_json_object_on_stdout(
        fail: bool, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "Bench", _NoisyBench)
    monkeypatch.setattr(_NoisyBench, "fail", fail)
    rc = bench.run(types.SimpleNamespace(), bench.BenchOptions(json=True))  # type: ignore[arg-type]
    out, err = capfd.readouterr()
    assert "installing python3-dev" in err and "progress" in err and "a child process" in err
    if fail:
        assert rc == 1 and out == "" and "the lab fell over" in err
    else:
        assert rc == 0 and json.loads(out) == _NoisyBench.result
    print("stdout works again after the bench")
    assert capfd.readouterr().out == "stdout works again after the bench\n"


def test_without_json_the_progress_stays_on_stdout(capfd: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "Bench", _NoisyBench)
    monkeypatch.setattr(bench, "report", lambda result, out: print("the table", file=out))
    assert bench.run(types.SimpleNamespace(), bench.BenchOptions()) == 0  # type: ignore[arg-type]
    out, _ = capfd.readouterr()
    assert "installing python3-dev" in out and "a child process" in out and "the table" in out


def test_the_bench_reads_the_decision_line_with_its_mark() -> None:
    """The decision line is where the JSON's detected_by comes from: kept as the bench reads."""
    from petguard_lab.petguard_proc import LogLine

    rules = [(key, re.compile(p.format(v=bench.host_pattern("cmp1")))) for key, p in bench._RULES]
    fatal = [re.compile(p.format(v=bench.host_pattern("cmp1"))) for p in bench._FATAL]
    decision = ("cmp1 [incident 3]: failed (nova-heartbeat: updated_at unchanged for more than "
                "30 s (Nova still says up until its service_down_time) (down for 20 s)); fencing "
                "it now; next: power off and read back OFF")
    lines = [LogLine(5.0, "INFO", "petguard", "cmp1: suspect, looks down: nova-heartbeat: x"),
             LogLine(25.0, "INFO", "petguard", decision),
             LogLine(28.0, "INFO", "petguard", "cmp2: failed (nova: y); fencing it now")]
    marks: dict[str, float] = {}
    found = bench.note_marks(lines, rules, fatal, marks)
    assert found == decision and marks == {"suspect": 5.0, "decide": 25.0}
    assert bench.detected_by(found) == "nova-heartbeat"
    assert bench.note_marks([], rules, fatal, marks) is None
    with pytest.raises(bench.BenchError, match="fence not confirmed"):
        bench.note_marks([LogLine(30.0, "ERROR", "petguard", "cmp1: fence not confirmed: z")],
                         rules, fatal, marks)
