"""Detection: Nova's service record as a signal, folding signals, debouncing, the mass-failure brake and the
fence rate limit."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from petguard.cloud import ServiceRecord
from petguard.detect import (
    RATE_LIMIT,
    DetectionPolicy,
    FenceStart,
    Health,
    HostHealth,
    Signal,
    Verdict,
    assess,
    brake,
    combine,
    fence_rate_brake,
    nova_signal,
)

POLICY = DetectionPolicy()  # grace 30 s, 2 down samples, 2 up samples, brake > 2 hosts or > 34 %
U, D, X = Health.UP, Health.DOWN, Health.UNCERTAIN


def record(
    state: str = "up", forced_down: bool = False, status: str = "enabled", reason: str | None = None
) -> ServiceRecord:
    return ServiceRecord("cmp1", "svc-1", state, status, forced_down, updated_at=1.0, disabled_reason=reason)


# -- nova_signal -------------------------------------------------------------------------------------

PETGUARD_REASON = "petguard: incident 3: host fenced"
OTHER_REASON = "operator: BIOS update"

# (state, forced_down, status, disabled_reason) -> health
NOVA_TABLE = [
    ("up", False, "enabled", None, U),
    ("up", False, "disabled", OTHER_REASON, U),
    ("up", False, "disabled", PETGUARD_REASON, U),
    ("down", False, "enabled", None, D),
    ("down", False, "disabled", OTHER_REASON, D),
    ("down", False, "disabled", PETGUARD_REASON, D),
    ("weird", False, "enabled", None, X),
    ("", False, "enabled", None, X),
    ("UP", False, "enabled", None, X),  # Nova says "up" in lower case; anything else is not trusted
    # forced down: whose doing it is decides, not the heartbeat
    ("down", True, "disabled", PETGUARD_REASON, D),
    ("up", True, "disabled", PETGUARD_REASON, D),
    ("down", True, "enabled", PETGUARD_REASON, D),
    ("down", True, "disabled", OTHER_REASON, X),
    ("up", True, "disabled", OTHER_REASON, X),
    ("down", True, "disabled", None, X),
    ("down", True, "enabled", None, X),
    ("down", True, "disabled", "", X),
    ("down", True, "disabled", "not petguard", X),
    ("down", True, "disabled", "Petguard: capitalised is someone else", X),
]


@pytest.mark.parametrize(("state", "forced", "status", "reason", "expected"), NOVA_TABLE)
def test_nova_signal(state: str, forced: bool, status: str, reason: str | None, expected: Health) -> None:
    signal = nova_signal(record(state, forced, status, reason), now=42.0, policy=POLICY)
    assert signal == Signal("nova", "cmp1", expected, 42.0, signal.detail)
    assert signal.detail


def test_nova_signal_reason_marker_comes_from_policy() -> None:
    policy = DetectionPolicy(reason_marker="ha-bot")
    assert nova_signal(record("down", True, reason="ha-bot: x"), 0.0, policy).health is D
    assert nova_signal(record("down", True, reason=PETGUARD_REASON), 0.0, policy).health is X


# -- combine --------------------------------------------------------------------------------------------


def sig(health: Health, source: str = "nova") -> Signal:
    return Signal(source, "cmp1", health, 0.0, f"{source} says {health.value}")


COMBINE_TABLE: list[tuple[Sequence[Health], Health]] = [
    ((), X),
    ((U,), U),
    ((D,), D),
    ((X,), X),
    ((D, D), D),
    ((D, D, D), D),
    ((U, D), U),
    ((D, U), U),
    ((U, X), U),
    ((X, U, D), U),
    ((D, X), X),
    ((X, D), X),
    ((X, X), X),
]


@pytest.mark.parametrize(("healths", "expected"), COMBINE_TABLE)
def test_combine(healths: Sequence[Health], expected: Health) -> None:
    signals = [sig(h, f"s{i}") for i, h in enumerate(healths)]
    health, reason = combine(signals)
    assert health is expected
    assert reason


@pytest.mark.parametrize("healths", list(itertools.product([U, D, X], repeat=3)))
def test_combine_exhaustive_rule(healths: tuple[Health, ...]) -> None:
    health, _ = combine(sig(h, f"s{i}") for i, h in enumerate(healths))  # a generator is fine too
    if U in healths:
        assert health is U
    elif all(h is D for h in healths):
        assert health is D
    else:
        assert health is X


def test_combine_reason_names_the_deciding_sources() -> None:
    _, reason = combine([sig(D, "nova"), sig(U, "agent")])
    assert "agent" in reason and "nova" not in reason
    assert combine([]) == (X, "no signal")


# -- alerts are evidence, never by themselves a reason to call a host DOWN --------------------------------

ALERT_TABLE: list[tuple[Sequence[tuple[str, Health]], Health]] = [
    ((("alert:NodeDown", D),), X),  # an alert alone never makes a host DOWN
    ((("alert:NodeDown", D), ("alert:BmcUnreachable", D)), X),  # nor do several alerts
    ((("alert:NodeDown", D), ("nova", D)), D),  # an alert plus Nova DOWN: DOWN
    ((("alert:NodeDown", D), ("nova", U)), U),  # Nova UP wins
    ((("alert:NodeDown", D), ("nova", X)), X),  # Nova uncertain (forced down by someone): uncertain
    ((("alert:NodeDown", D), ("agent", D), ("nova", D)), D),
]


@pytest.mark.parametrize(("signals", "expected"), ALERT_TABLE)
def test_combine_with_alerts(signals: Sequence[tuple[str, Health]], expected: Health) -> None:
    health, reason = combine(sig(h, source) for source, h in signals)
    assert health is expected
    assert "alert:NodeDown" in reason or health is U  # UP names only the sources that said UP


def test_an_alert_alone_names_itself_in_the_reason() -> None:
    health, reason = combine([sig(D, "alert:NodeDown")])
    assert (health, reason) == (X, "alert:NodeDown: alert:NodeDown says down")


# -- assess ---------------------------------------------------------------------------------------------


def run(samples: Sequence[tuple[float, Health]], policy: DetectionPolicy = POLICY) -> list[HostHealth]:
    """Feed (time, health) samples through assess, returning the state after each."""
    state, out = HostHealth(), []
    for at, health in samples:
        state = assess(state, health, f"{health.value} at {at}", policy, at)
        out.append(state)
    return out


def verdicts(samples: Sequence[tuple[float, Health]], policy: DetectionPolicy = POLICY) -> list[Verdict]:
    return [h.verdict for h in run(samples, policy)]


V_UP, V_SUS, V_FAIL = Verdict.UP, Verdict.SUSPECT, Verdict.FAILED

ASSESS_TABLE = [
    # one DOWN is not enough (down_samples = 2)
    ("single down", [(0, D)], [V_UP]),
    ("two downs: suspect", [(0, D), (10, D)], [V_UP, V_SUS]),
    ("grace counted from the first down", [(0, D), (10, D), (29, D), (30, D)], [V_UP, V_SUS, V_SUS, V_FAIL]),
    ("grace passed before down_samples: failed at once", [(0, D), (31, D)], [V_UP, V_FAIL]),
    ("failed stays failed while down", [(0, D), (30, D), (60, D)], [V_UP, V_FAIL, V_FAIL]),
    ("isolated downs never add up", [(0, D), (10, U), (20, D), (30, U), (40, D)], [V_UP] * 5),
    ("uncertain holds a down streak", [(0, D), (10, X), (20, D)], [V_UP, V_UP, V_SUS]),
    ("uncertain holds suspect", [(0, D), (10, D), (20, X), (25, X)], [V_UP, V_SUS, V_SUS, V_SUS]),
    (
        "uncertain never fails a host by itself",
        [(0, D), (10, D)] + [(t, X) for t in range(20, 200, 10)],
        [V_UP, V_SUS] + [V_SUS] * 18,
    ),
    ("two ups clear a suspect", [(0, D), (10, D), (20, U), (30, U)], [V_UP, V_SUS, V_SUS, V_UP]),
    ("two ups clear a failed host", [(0, D), (40, D), (50, U), (60, U)], [V_UP, V_FAIL, None, V_UP]),
    ("ups must be consecutive", [(0, D), (10, D), (20, U), (25, D), (30, U), (35, D)], [V_UP, V_SUS] + [V_SUS] * 4),
]


@pytest.mark.parametrize(
    ("samples", "expected"), [(s, e) for _, s, e in ASSESS_TABLE], ids=[n for n, _, _ in ASSESS_TABLE]
)
def test_assess_debounces(samples: list[tuple[float, Health]], expected: list[Verdict | None]) -> None:
    got = verdicts(samples)
    assert [g if e is not None else None for g, e in zip(got, expected, strict=True)] == expected


def test_grace_boundary_exactly_at_grace_is_failed() -> None:
    policy = DetectionPolicy(grace_period=30.0, down_samples=2)
    assert verdicts([(100.0, D), (129.999, D)], policy) == [V_UP, V_SUS]
    assert verdicts([(100.0, D), (130.0, D)], policy) == [V_UP, V_FAIL]


@pytest.mark.parametrize("down_samples", [1, 2, 3, 5])
def test_down_samples_boundary(down_samples: int) -> None:
    policy = DetectionPolicy(down_samples=down_samples, grace_period=1000.0)
    got = verdicts([(float(t), D) for t in range(down_samples + 1)], policy)
    assert got == [V_UP] * (down_samples - 1) + [V_SUS, V_SUS]


@pytest.mark.parametrize("up_samples", [1, 2, 3, 5])
def test_up_samples_boundary(up_samples: int) -> None:
    policy = DetectionPolicy(up_samples=up_samples, down_samples=1, grace_period=1000.0)
    got = verdicts([(0.0, D)] + [(float(t), U) for t in range(1, up_samples + 1)], policy)
    assert got == [V_SUS] + [V_SUS] * (up_samples - 1) + [V_UP]


def test_grace_zero_and_one_sample_fails_on_first_down() -> None:
    policy = DetectionPolicy(grace_period=0.0, down_samples=1)
    assert verdicts([(5.0, D)], policy) == [V_FAIL]


def test_cleared_host_forgets_everything() -> None:
    *_, last = run([(0, D), (10, D), (20, U), (30, U)])
    assert last.down_streak == 0 and last.down_since is None and last.verdict is V_UP
    assert last.describe(30.0) == last.detail


def test_uncertain_keeps_counters_and_updates_detail() -> None:
    before = HostHealth(Verdict.SUSPECT, down_streak=3, up_streak=0, down_since=5.0, detail="old")
    after = assess(before, X, "no signal", POLICY, 100.0)
    assert after == HostHealth(Verdict.SUSPECT, 3, 0, None, "no signal")


def test_uncertain_time_never_counts_toward_grace() -> None:
    """A host seen down, then unclear for an hour, then down again gets a fresh grace period."""
    failed = HostHealth(Verdict.FAILED, down_streak=5, up_streak=0, down_since=0.0, detail="down")
    unclear = assess(failed, X, "forced down outside petguard", POLICY, 3600.0)
    assert unclear.verdict is Verdict.SUSPECT and unclear.down_since is None
    again = assess(unclear, D, "down", POLICY, 3601.0)
    assert again.verdict is Verdict.SUSPECT and again.down_since == 3601.0
    later = assess(again, D, "down", POLICY, 3601.0 + POLICY.grace_period)
    assert later.verdict is Verdict.FAILED


def test_describe_says_how_long() -> None:
    health = HostHealth(Verdict.SUSPECT, 2, 0, down_since=10.0, detail="nova: heartbeat missing")
    assert health.describe(55.0) == "nova: heartbeat missing (down for 45 s)"
    assert HostHealth().describe(0.0) == "healthy"


@pytest.mark.fault(
    "DET-03",
    guarantee="1",
    injected="a host's signals flap between down and up, never down for a whole grace period",
    expected="never judged failed, never fenced",
)
def test_flapping_before_suspect_never_fails() -> None:
    """down/up/down/up...: the down streak resets on every UP, so the host never becomes SUSPECT."""
    samples = [(float(t), D if t % 2 == 0 else U) for t in range(0, 600, 5)]
    assert set(verdicts(samples)) == {V_UP}


@pytest.mark.fault(
    "DET-03",
    guarantee="1",
    injected="a host's signals flap between down and up, never down for a whole grace period",
    expected="never judged failed, never fenced",
)
def test_flapping_suspect_host_is_never_failed() -> None:
    """A suspect host that heartbeats now and then is alive: every UP restarts the grace period.

    Nova reports a service up only after a heartbeat, so a host that flaps up/down is not dead; fencing
    it on a grace period counted across its heartbeats would fence a live host (RabbitMQ trouble looks
    exactly like this).
    """
    samples = [(0.0, D), (5.0, D)] + [(float(t), U if t % 10 == 0 else D) for t in range(10, 600, 5)]
    got = verdicts(samples)
    assert V_FAIL not in got
    assert got[1:] == [V_SUS] * (len(samples) - 1)  # still suspect: one UP does not clear it


def test_grace_restarts_after_an_up_tick() -> None:
    got = run([(0.0, D), (10.0, D), (20.0, U), (25.0, D), (54.0, D), (55.0, D)])
    assert [h.verdict for h in got] == [V_UP, V_SUS, V_SUS, V_SUS, V_SUS, V_FAIL]
    assert got[3].down_since == 25.0


def test_a_failed_host_that_heartbeats_is_not_failed_any_more() -> None:
    """A FAILED host held by the brake or the blackout must not be fenced in a tick where it says UP."""
    failed = HostHealth(Verdict.FAILED, down_streak=5, down_since=0.0, detail="down")
    after = assess(failed, U, "nova-compute heartbeating", POLICY, 100.0)
    assert after.verdict is V_SUS
    again = assess(after, D, "down", POLICY, 105.0)
    assert again.verdict is V_SUS  # the grace period runs again from 105


# -- brake ----------------------------------------------------------------------------------------------


def cloud(
    n: int, down: int = 0, failing: int | None = None, uncertain: int = 0
) -> tuple[dict[str, Health], dict[str, Verdict]]:
    """``n`` hosts; the first ``down`` report DOWN this tick; the first ``failing`` are not UP (suspect)."""
    failing = down if failing is None else failing
    names = [f"cmp{i:03d}" for i in range(n)]
    health = {name: D if i < down else (X if i < down + uncertain else U) for i, name in enumerate(names)}
    verdict = {name: V_SUS if i < failing else V_UP for i, name in enumerate(names)}
    return health, verdict


BRAKE_TABLE = [
    # (hosts, down now, suspect, engaged?, why)
    (0, 0, 0, False, "no hosts"),
    (1, 1, 1, False, "single-host cloud: its one host may be fenced"),
    (2, 1, 1, False, "two hosts, one dies: must not brake"),
    (2, 2, 2, True, "two hosts, both suspect: 100 % from two suspects"),
    (3, 1, 1, False, "one of three"),
    (3, 2, 2, True, "two of three: 67 % > 34 %"),
    (3, 3, 0, True, "three of three down at once: stale"),
    (3, 3, 3, True, "three of three suspect"),
    (10, 1, 1, False, "one of ten"),
    (10, 2, 2, False, "two of ten: 20 %, not more than 2 hosts"),
    (10, 3, 3, True, "three of ten: more than 2 hosts"),
    (10, 3, 0, False, "three of ten down this tick, not yet suspect"),
    (10, 8, 0, True, "eight of ten down at once: stale (>= 80 %)"),
    (10, 7, 0, False, "seven of ten down at once: below the stale fraction, none suspect yet"),
    (100, 80, 0, True, "RabbitMQ outage on a large cloud"),
    (100, 79, 0, False, "just below the stale fraction"),
    (100, 2, 2, False, "two of a hundred"),
    (100, 3, 3, True, "three of a hundred"),
    (5, 2, 2, True, "two of five: 40 % > 34 %"),
    (6, 2, 2, False, "two of six: 33 %"),
]


@pytest.mark.parametrize(
    ("n", "down", "failing", "engaged"), [r[:4] for r in BRAKE_TABLE], ids=[r[4] for r in BRAKE_TABLE]
)
def test_brake(n: int, down: int, failing: int, engaged: bool) -> None:
    health, verdict = cloud(n, down, failing)
    result = brake(health, verdict, POLICY)
    assert result.engaged is engaged
    assert bool(result.reason) is engaged


@pytest.mark.parametrize(
    ("max_hosts", "failing", "engaged"), [(0, 1, True), (1, 1, False), (1, 2, True), (4, 4, False), (4, 5, True)]
)
def test_brake_count_threshold_is_strictly_more_than(max_hosts: int, failing: int, engaged: bool) -> None:
    policy = DetectionPolicy(brake_max_hosts=max_hosts, brake_max_percent=100.0)
    health, verdict = cloud(1000, failing)
    assert brake(health, verdict, policy).engaged is engaged


@pytest.mark.parametrize(
    ("percent", "failing", "engaged"), [(20.0, 2, False), (19.9, 2, True), (50.0, 5, False), (49.0, 5, True)]
)
def test_brake_percent_threshold_is_strictly_more_than(percent: float, failing: int, engaged: bool) -> None:
    policy = DetectionPolicy(brake_max_hosts=1000, brake_max_percent=percent)
    health, verdict = cloud(10, failing)
    assert brake(health, verdict, policy).engaged is engaged


def test_percent_never_brakes_on_a_single_suspect() -> None:
    policy = DetectionPolicy(brake_max_hosts=1000, brake_max_percent=0.0)
    health, verdict = cloud(2, 1)
    assert not brake(health, verdict, policy).engaged


@pytest.mark.parametrize(("n", "stale_min", "engaged"), [(2, 3, False), (3, 3, True), (2, 2, True), (1, 1, True)])
def test_stale_check_needs_enough_hosts(n: int, stale_min: int, engaged: bool) -> None:
    policy = DetectionPolicy(stale_min_hosts=stale_min, brake_max_hosts=1000, brake_max_percent=100.0)
    health, verdict = cloud(n, down=n, failing=0)
    assert brake(health, verdict, policy).engaged is engaged


def test_stale_reason_says_what_is_probably_wrong() -> None:
    health, verdict = cloud(50, down=50, failing=0)
    result = brake(health, verdict, POLICY)
    assert result.engaged and "50 of 50" in result.reason and "RabbitMQ" in result.reason


def test_uncertain_hosts_are_not_down_for_the_stale_check() -> None:
    health, verdict = cloud(10, down=7, failing=0, uncertain=3)
    assert not brake(health, verdict, POLICY).engaged


def test_count_reason_names_the_hosts() -> None:
    health, verdict = cloud(10, 3)
    result = brake(health, verdict, POLICY)
    assert "cmp000, cmp001, cmp002" in result.reason


def test_hosts_out_of_service_are_excluded_by_the_caller() -> None:
    """The caller passes watched hosts only: a 3-host cloud with one host fenced is a 2-host cloud."""
    health, verdict = cloud(3, down=2, failing=2)
    assert brake(health, verdict, POLICY).engaged
    del health["cmp000"], verdict["cmp000"]  # cmp000 is FENCING: no longer watched
    assert not brake(health, verdict, POLICY).engaged


def test_failed_verdicts_count_like_suspect() -> None:
    health, verdict = cloud(10, 3)
    verdict = {h: (V_FAIL if v is V_SUS else v) for h, v in verdict.items()}
    assert brake(health, verdict, POLICY).engaged


# -- fence rate limit -----------------------------------------------------------------------------------

NOW = 100_000.0
HOUR = DetectionPolicy(fence_rate_max=3, fence_rate_window=3600.0)


def starts(*ages: float) -> list[FenceStart]:
    """Fences that started ``age`` seconds before NOW, on hosts old1, old2, ..."""
    return [FenceStart(f"old{i}", NOW - age) for i, age in enumerate(ages, 1)]


@pytest.mark.parametrize(
    ("ages", "to_fence", "engaged", "why"),
    [
        ((), ["cmp1"], False, "no fence yet"),
        ((600, 1200), ["cmp1"], False, "the third fence in an hour is allowed"),
        ((600, 1200, 1800), ["cmp1"], True, "the fourth is not"),
        ((600, 1200, 1800), [], False, "nobody to fence: nothing to brake"),
        ((600, 1200), ["cmp1", "cmp2"], True, "two at once would make four: all or nothing"),
        ((3600, 3700, 9000), ["cmp1"], False, "fences an hour old or older are out of the window"),
        ((3599, 3600, 3700), ["cmp1"], False, "one in the window"),
        ((-5, 10, 20), ["cmp1"], True, "a start stamped after now (clock stepped back) still counts"),
    ],
)
def test_fence_rate_brake(ages: Sequence[float], to_fence: list[str], engaged: bool, why: str) -> None:
    result = fence_rate_brake(starts(*ages), to_fence, 20, HOUR, NOW)
    assert result.engaged is engaged, why
    assert bool(result.reason) is engaged


def test_fence_rate_limit_zero_is_off() -> None:
    policy = DetectionPolicy(fence_rate_max=0)
    assert not fence_rate_brake(starts(*range(1, 50)), ["cmp1"], 20, policy, NOW).engaged


def test_a_single_host_cloud_is_never_rate_braked() -> None:
    assert not fence_rate_brake(starts(60, 120, 180, 240), ["cmp1"], 1, HOUR, NOW).engaged
    assert fence_rate_brake(starts(60, 120, 180, 240), ["cmp1"], 2, HOUR, NOW).engaged


def test_rate_reason_names_the_fences_the_limit_and_the_way_out() -> None:
    started = [FenceStart("cmp1", NOW - 1800), FenceStart("cmp2", NOW - 1200), FenceStart("cmp3", NOW - 600)]
    result = fence_rate_brake(started, ["cmp4"], 20, HOUR, NOW)
    assert result.reason.startswith(RATE_LIMIT)
    assert "3 fences started in the last 60 min (cmp1, cmp2, cmp3)" in result.reason
    assert "cmp4 would be next" in result.reason
    assert "[detection] fence_rate_max = 3 per fence_rate_window = 3600 s" in result.reason
    assert "`petguard brake override`" in result.reason


def test_rate_reason_names_a_host_fenced_twice_once() -> None:
    started = [FenceStart("cmp1", NOW - 300), FenceStart("cmp1", NOW - 200), FenceStart("cmp1", NOW - 100)]
    result = fence_rate_brake(started, ["cmp2"], 2, HOUR, NOW)
    assert "3 fences started in the last 60 min (cmp1)" in result.reason


@pytest.mark.parametrize(("window", "text"), [(3600.0, "60 min"), (7200.0, "2 h"), (90.0, "90 s"), (600.0, "10 min")])
def test_rate_reason_says_the_window_as_an_operator_reads_it(window: float, text: str) -> None:
    policy = DetectionPolicy(fence_rate_max=1, fence_rate_window=window)
    result = fence_rate_brake(starts(1), ["cmp1"], 20, policy, NOW)
    assert f"in the last {text} " in result.reason
