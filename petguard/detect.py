"""Detection: from signals about each host, decide UP / SUSPECT / FAILED, and when to brake (pure domain).

Signals come from independent sources: Nova's compute service record (``nova_signal``), petguard's
own reading of that record's heartbeat (``heartbeat_signal``, see below), the petguard agent's
heartbeats (``agent_signal``), alerts, and the host's power as its BMC reads it (``bmc_signal``,
below). Later sources only need to produce ``Signal`` values; ``combine`` and ``assess`` do not change:

* ``combine`` folds one tick's signals for one host into a single ``Health``: any source that says
  UP wins (a live agent on a host whose nova-compute died is not a dead host); the host is DOWN only
  when every source that spoke says DOWN and at least one of them is not an alert (``alert:<kind>``:
  an alert is evidence, never by itself a reason to fence); otherwise it is UNCERTAIN.
* ``assess`` debounces over ticks: ``down_samples`` consecutive DOWN ticks make a host SUSPECT, and
  a SUSPECT host becomes FAILED once it has been down for ``grace_period`` seconds without a single
  UP tick in between (a host that heartbeats is alive). ``up_samples`` consecutive UP ticks clear it;
  fewer leave it SUSPECT (never FAILED) with its grace period restarted. UNCERTAIN holds the verdict
  and the counters as they are.
* ``service_signals`` is what one Nova service record says: Nova's own ``state``, and petguard's own
  staleness reading of its ``updated_at``. Nova calls a service down only ``service_down_time``
  (60 s by default) after its last heartbeat; petguard remembers (``observe_heartbeat``, on its own
  clock) when it last saw ``updated_at`` CHANGE and calls the service DOWN once it has not changed for
  ``heartbeat_stale_after`` seconds (3 x ``report_interval``, 30 s by default). Both read the same
  evidence with two thresholds, so the rule is one-sided: a stale heartbeat replaces Nova's lagging
  "up" with a ``nova-heartbeat`` DOWN signal; a fresh one, or one petguard has not yet seen change,
  says nothing, and Nova's own ``state`` (and its forced-down handling) decides as before. The
  heartbeat signal can only bring DOWN earlier; it never makes a host UP. ``updated_at`` is never
  compared with petguard's clock (Nova's database clock may differ by hours): only its changes count,
  in either direction.
* ``bmc_signal`` is one reading of the host's power through its fence devices (``PowerReading``),
  taken read-only by the loop only while some source says the host is DOWN. It never votes in
  ``combine`` (a powered-on host may be hung, a BMC that cannot be read says nothing about the host):
  OFF is DOWN, ON and unreadable are UNCERTAIN, and none of them can make a host DOWN or UP. OFF only
  corroborates: ``assess`` lets a host that every other source calls DOWN fail ``bmc_settle`` seconds
  into its down episode instead of ``grace_period``, when the OFF was read during that episode.
  ``bmc_settle`` (at least ``report_interval``) leaves the brake the time it needs to see a mass
  failure whole: hosts that lost power together go stale over one ``report_interval``.
* ``brake`` is the mass-failure brake (guarantee 3): when too many hosts look down at once, or
  (nearly) all of them do, as in a RabbitMQ or database outage, nobody is fenced.
* ``fence_rate_brake`` is the same brake over time: when a host would be fenced but
  ``fence_rate_max`` fences already started within ``fence_rate_window`` seconds (a rolling failure:
  a bad kernel update, a failing top-of-rack switch, a power feed dropping hosts one by one), nobody
  more is fenced.

Nothing here does I/O, reads a clock or reads config: callers pass ``now`` and a policy.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping, Sequence

from petguard.cloud import ServiceRecord


class Health(enum.StrEnum):
    """What one source, or all sources together, say about a host in one tick."""

    UP = "up"
    DOWN = "down"
    UNCERTAIN = "uncertain"


class Verdict(enum.StrEnum):
    """Detection's conclusion about a host after debouncing."""

    UP = "up"
    SUSPECT = "suspect"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class Signal:
    """One source's statement about one host at one time."""

    source: str
    host: str
    health: Health
    at: float
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class DetectionPolicy:
    """How cautious detection is; built from config by ``petguard.conf.policies``."""

    grace_period: float = 30.0
    down_samples: int = 2
    up_samples: int = 2
    #: The brake engages when more than this many hosts are suspect or failed at once ...
    brake_max_hosts: int = 2
    #: ... or more than this percentage of all monitored hosts.
    brake_max_percent: float = 34.0
    #: Nova looks stale everywhere (a control-plane outage) when at least this fraction of hosts
    #: report DOWN in the same tick; needs at least ``stale_min_hosts`` hosts to apply.
    stale_fraction: float = 0.8
    stale_min_hosts: int = 3
    #: The service reason petguard writes when it disables a host starts with this marker, so a
    #: forced-down host is recognised as petguard's own doing.
    reason_marker: str = "petguard"
    #: A host's petguard agent is silent (DOWN) when its last heartbeat is older than this.
    agent_stale_after: float = 20.0
    #: The brake engages when a host would be fenced while this many fences already started within
    #: ``fence_rate_window`` seconds (0: no rate limit).
    fence_rate_max: int = 3
    fence_rate_window: float = 3600.0
    #: Nova's ``[DEFAULT] report_interval`` on the computes: how often ``updated_at`` moves.
    report_interval: float = 10.0
    #: A service whose ``updated_at`` petguard has not seen change for longer than this is DOWN by the
    #: ``nova-heartbeat`` signal (0: the signal is off). 3 x ``report_interval`` by default.
    heartbeat_stale_after: float = 30.0
    #: Ticks in a row whose reading of Nova failed before petguard calls itself blind and says so
    #: once (``petguard.sight``); the ticks decide nothing either way.
    blind_after: int = 3
    #: A host down by every other source whose BMC read OFF during this down episode fails this many
    #: seconds into the episode instead of ``grace_period`` (never sooner than ``down_samples`` ticks).
    bmc_settle: float = 15.0


@dataclasses.dataclass(frozen=True)
class HostHealth:
    """Debouncing state of one host, carried from tick to tick."""

    verdict: Verdict = Verdict.UP
    down_streak: int = 0
    up_streak: int = 0
    down_since: float | None = None
    detail: str = ""

    def describe(self, now: float) -> str:
        """Why the verdict is what it is, for logs and operators."""
        if self.down_since is None:
            return self.detail or "healthy"
        return f"{self.detail} (down for {now - self.down_since:.0f} s)"


def nova_signal(record: ServiceRecord, now: float, policy: DetectionPolicy) -> Signal:
    """Turn Nova's service record into a signal.

    A service forced down by someone other than petguard is UNCERTAIN: an operator did that on
    purpose, and petguard does not fence on someone else's say-so.
    """
    if record.forced_down:
        reason = record.disabled_reason or ""
        if reason.startswith(policy.reason_marker):
            health, detail = Health.DOWN, "forced down by petguard"
        else:
            health, detail = Health.UNCERTAIN, "forced down outside petguard"
    elif record.state == "up":
        health, detail = Health.UP, "nova-compute heartbeating"
    elif record.state == "down":
        health, detail = Health.DOWN, "nova-compute heartbeat missing"
    else:
        health, detail = Health.UNCERTAIN, f"nova reports unknown state {record.state!r}"
    return Signal(source=NOVA_SOURCE, host=record.host, health=health, at=now, detail=detail)


#: The source of signals made from Nova's service record (its ``state`` and ``forced_down``).
NOVA_SOURCE = "nova"
#: The source of signals made from petguard's own reading of Nova's ``updated_at``.
HEARTBEAT_SOURCE = "nova-heartbeat"


@dataclasses.dataclass(frozen=True)
class HeartbeatSeen:
    """petguard's memory of one service's ``updated_at``, on petguard's own clock.

    ``updated_at`` is Nova's value, only ever compared with itself. ``changed_at`` is when (the end of
    the reading) petguard first saw the current value differ from the one before (None: no change seen
    yet, so no opinion). ``seen_at`` is when the latest reading that saw the value still unchanged
    began: staleness is ``seen_at - changed_at``, so a slow reading of Nova never stretches it.
    """

    updated_at: float | None
    changed_at: float | None = None
    seen_at: float = 0.0

    def unchanged_for(self) -> float | None:
        """Seconds petguard has seen ``updated_at`` stand still (None: it has not yet seen it change)."""
        if self.changed_at is None or self.updated_at is None:
            return None
        return max(0.0, self.seen_at - self.changed_at)


def observe_heartbeat(
    previous: HeartbeatSeen | None, updated_at: float | None, read_started: float, read_finished: float
) -> HeartbeatSeen:
    """Fold one reading of a service's ``updated_at`` into petguard's memory of it.

    Any difference is a change, backwards too (a database restored from a backup, another cell):
    Nova wrote the row, so something is alive. A missing value (None) forgets what was seen, and the
    first value after it, like the first value of a new host, waits for a change before it says anything.
    """
    if updated_at is None or previous is None or previous.updated_at is None:
        return HeartbeatSeen(updated_at, None, read_started)
    if updated_at != previous.updated_at:
        return HeartbeatSeen(updated_at, read_finished, read_started)
    return dataclasses.replace(previous, seen_at=read_started)


def observe_heartbeats(
    previous: Mapping[str, HeartbeatSeen],
    services: Iterable[ServiceRecord],
    read_started: float,
    read_finished: float,
) -> dict[str, HeartbeatSeen]:
    """One reading of every service: a host missing from it is forgotten (it starts afresh if it comes back)."""
    return {
        s.host: observe_heartbeat(previous.get(s.host), s.updated_at, read_started, read_finished) for s in services
    }


def heartbeat_signal(
    record: ServiceRecord, seen: HeartbeatSeen | None, now: float, policy: DetectionPolicy
) -> Signal | None:
    """DOWN when petguard has seen ``updated_at`` stand still for more than ``heartbeat_stale_after``.

    None (no opinion) in every other case: the signal is off, the service is forced down (whose doing
    it is decides, in ``nova_signal``), Nova does not say "up" (its own verdict stands), petguard has
    not yet seen the value change, or it changed recently. It is never UP: a moving ``updated_at`` is
    what Nova's "up" already says.
    """
    if policy.heartbeat_stale_after <= 0 or seen is None or record.forced_down or record.state != "up":
        return None
    still = seen.unchanged_for()
    if still is None or still <= policy.heartbeat_stale_after:
        return None
    detail = (
        f"updated_at unchanged for more than {policy.heartbeat_stale_after:.0f} s "
        "(Nova still says up until its service_down_time)"
    )
    return Signal(HEARTBEAT_SOURCE, record.host, Health.DOWN, now, detail)


def describe_heartbeat(seen: HeartbeatSeen | None, now: float, policy: DetectionPolicy) -> str:
    """petguard's reading of one service's heartbeat, for operators (``petguard explain HOST``)."""
    if policy.heartbeat_stale_after <= 0:
        return "off ([detection] heartbeat_stale_after = 0): Nova's own state decides"
    limit = f"stale after {policy.heartbeat_stale_after:.0f} s unchanged"
    if seen is None:
        return f"not read by this controller (it does not lead, or Nova does not list the host); {limit}"
    if seen.updated_at is None:
        return f"Nova gives no updated_at: no opinion; {limit}"
    still = seen.unchanged_for()
    if still is None:
        return f"updated_at not seen to change yet (since petguard started watching): no opinion; {limit}"
    ago = max(0.0, now - seen.changed_at) if seen.changed_at is not None else 0.0
    verdict = "stale: DOWN" if still > policy.heartbeat_stale_after else "fresh: no opinion, Nova's state decides"
    return f"updated_at last seen to change {ago:.0f} s ago, {verdict}; {limit}"


def service_signals(
    record: ServiceRecord, seen: HeartbeatSeen | None, now: float, policy: DetectionPolicy
) -> list[Signal]:
    """What one Nova service record says: Nova's signal, or the heartbeat's DOWN in place of Nova's "up".

    Nova's "up" only means "a heartbeat within service_down_time"; once petguard has seen the same
    heartbeat stand still for longer, that "up" is not evidence of life any more (``combine`` would
    let it outvote everything), so it gives way. Every other Nova signal stands unchanged.
    """
    stale = heartbeat_signal(record, seen, now, policy)
    if stale is not None:
        return [stale]
    return [nova_signal(record, now, policy)]


#: The source of signals made from petguard-agent heartbeats.
AGENT_SOURCE = "agent"


def agent_signal(host: str, last_heartbeat: float, now: float, policy: DetectionPolicy) -> Signal:
    """A host's agent heartbeat as a signal: UP while fresh, DOWN once older than ``agent_stale_after``.

    Hosts that never had an agent get no agent signal at all (Nova's signal alone decides). The
    detail has no running numbers, so a steady host's health does not change from tick to tick.
    """
    if now - last_heartbeat <= policy.agent_stale_after:
        return Signal(AGENT_SOURCE, host, Health.UP, now, "heartbeating")
    detail = f"silent for more than {policy.agent_stale_after:.0f} s"
    return Signal(AGENT_SOURCE, host, Health.DOWN, now, detail)


#: The source of signals made from a reading of the host's power through its fence devices.
BMC_SOURCE = "bmc"


class Power(enum.StrEnum):
    """What one reading of a host's power through its fence devices found."""

    OFF = "off"  # a level's every device read back OFF
    ON = "on"  # a device read ON (or powering off): the host has power
    UNREADABLE = "unreadable"  # no level could be read (error, timeout, no answer): no opinion


@dataclasses.dataclass(frozen=True)
class PowerReading:
    """One read-only reading of ``host``'s power; ``at`` is when it began (petguard's clock).

    ``detail`` says what was read (device descriptions, error texts already stripped of secrets) and
    has no running numbers: it goes into the host's detail while the host is down.
    """

    host: str
    power: Power
    at: float
    detail: str = ""


def bmc_signal(reading: PowerReading) -> Signal:
    """A power reading as a signal: OFF is DOWN; ON and unreadable are UNCERTAIN; never UP.

    ON is no evidence of life (a hung kernel keeps its power), and a BMC that cannot be read says
    nothing about its host (the controller may be the one cut off). The signal's ``at`` is when the
    reading began, so that ``assess`` can tell whether it belongs to the current down episode.
    """
    if reading.power is Power.OFF:
        return Signal(BMC_SOURCE, reading.host, Health.DOWN, reading.at, f"power reads OFF ({reading.detail})")
    if reading.power is Power.ON:
        return Signal(BMC_SOURCE, reading.host, Health.UNCERTAIN, reading.at, f"power reads ON ({reading.detail})")
    return Signal(BMC_SOURCE, reading.host, Health.UNCERTAIN, reading.at, f"power unreadable ({reading.detail})")


def is_power_reading(signal: Signal) -> bool:
    """True for a BMC power reading: corroboration for ``assess``, never a vote in ``combine``."""
    return signal.source == BMC_SOURCE


def power_readings_now(signals: Iterable[Signal], previous: HostHealth, now: float) -> list[Signal]:
    """The power readings that belong to the down episode a DOWN tick at ``now`` continues (or starts).

    A reading that began before the episode (the host was down, came back, and is down again) is not
    evidence about this one.
    """
    start = previous.down_since if previous.down_since is not None else now
    return [s for s in signals if is_power_reading(s) and s.at >= start]


def combine(signals: Iterable[Signal]) -> tuple[Health, str]:
    """Fold one tick's signals about one host into one Health, with the reason.

    Power readings (``bmc``) are left out: they corroborate a DOWN in ``assess``, they never vote.
    """
    signals = [s for s in signals if not is_power_reading(s)]
    if not signals:
        return Health.UNCERTAIN, "no signal"
    ups = [s for s in signals if s.health is Health.UP]
    if ups:
        return Health.UP, "; ".join(f"{s.source}: {s.detail}" for s in ups)
    downs = [s for s in signals if s.health is Health.DOWN]
    if len(downs) == len(signals) and any(not is_alert(s) for s in downs):
        return Health.DOWN, "; ".join(f"{s.source}: {s.detail}" for s in downs)
    return Health.UNCERTAIN, "; ".join(f"{s.source}: {s.detail}" for s in signals)


#: Sources named ``alert:<kind>`` are alerts from Alertmanager or another sender: evidence only.
ALERT_SOURCE_PREFIX = "alert:"


def is_alert(signal: Signal) -> bool:
    """True for a signal that came from an alert (never by itself a reason to call a host DOWN)."""
    return signal.source.startswith(ALERT_SOURCE_PREFIX)


def assess(
    previous: HostHealth,
    health: Health,
    detail: str,
    policy: DetectionPolicy,
    now: float,
    powered_off_at: float | None = None,
) -> HostHealth:
    """Debounce one host's combined health for this tick into a verdict.

    ``powered_off_at``: when a reading that found the host's power OFF began (None: no such reading).
    On a DOWN tick it cuts the grace period down to ``bmc_settle``, if it began within this episode.
    """
    if health is Health.UNCERTAIN:
        # Time without a clear signal never counts toward the grace period: the next DOWN tick
        # starts it again (a host forced down by an operator for an hour is not fenced at once).
        held = Verdict.SUSPECT if previous.verdict is Verdict.FAILED else previous.verdict
        return dataclasses.replace(previous, verdict=held, down_since=None, detail=detail)
    if health is Health.UP:
        if previous.verdict is Verdict.UP and previous.down_streak == 0:
            # Steady state: the same value back, so nothing is written for a healthy host.
            return previous if previous.detail == detail else dataclasses.replace(previous, detail=detail)
        up_streak = previous.up_streak + 1
        if previous.verdict is Verdict.UP or up_streak >= policy.up_samples:
            return HostHealth(verdict=Verdict.UP, up_streak=min(up_streak, policy.up_samples), detail=detail)
        # Not cleared yet, but a host that heartbeats is alive now: it stays SUSPECT (never FAILED
        # in a tick where it says UP), and its grace period starts again at its next DOWN tick.
        return HostHealth(verdict=Verdict.SUSPECT, up_streak=up_streak, detail=detail)
    down_streak = previous.down_streak + 1
    down_since = previous.down_since if previous.down_since is not None else now
    verdict = previous.verdict
    if down_streak >= policy.down_samples:
        verdict = Verdict.SUSPECT
        off = powered_off_at is not None and powered_off_at >= down_since
        if now - down_since >= (min(policy.grace_period, policy.bmc_settle) if off else policy.grace_period):
            verdict = Verdict.FAILED
    return HostHealth(verdict=verdict, down_streak=down_streak, up_streak=0, down_since=down_since, detail=detail)


@dataclasses.dataclass(frozen=True)
class Brake:
    """The mass-failure brake: while engaged, nobody is fenced."""

    engaged: bool
    reason: str = ""


def brake(
    health_by_host: Mapping[str, Health],
    verdicts: Mapping[str, Verdict],
    policy: DetectionPolicy,
) -> Brake:
    """Decide whether this tick looks like a mass failure (guarantee 3: never fence the cloud).

    ``health_by_host`` is this tick's combined health of every monitored host (hosts petguard has
    already taken out of service excluded); ``verdicts`` the debounced verdicts of the same hosts.
    """
    total = len(health_by_host)
    if total == 0:
        return Brake(False)
    down_now = sum(1 for h in health_by_host.values() if h is Health.DOWN)
    if total >= policy.stale_min_hosts and down_now >= policy.stale_fraction * total:
        return Brake(
            True,
            f"{down_now} of {total} hosts look down at once: Nova's heartbeats are stale nearly "
            "everywhere (RabbitMQ, database or nova-conductor outage?)",
        )
    failing = sorted(h for h, v in verdicts.items() if v is not Verdict.UP)
    percent = 100.0 * len(failing) / total
    if len(failing) > policy.brake_max_hosts:
        return Brake(
            True, f"{len(failing)} hosts suspect at once (limit {policy.brake_max_hosts}): {', '.join(failing)}"
        )
    if percent > policy.brake_max_percent and len(failing) > 1:
        return Brake(
            True,
            f"{percent:.0f}% of hosts suspect at once (limit {policy.brake_max_percent:.0f}%): {', '.join(failing)}",
        )
    return Brake(False)


#: Every rate-limit brake reason starts with this, so operators (and tests) can tell it from a mass failure.
RATE_LIMIT = "fence rate limit"


@dataclasses.dataclass(frozen=True)
class FenceStart:
    """A fence that started: a host entered FENCING (automatically or by an operator) at ``at``."""

    host: str
    at: float


def fence_rate_brake(
    started: Sequence[FenceStart],
    to_fence: Sequence[str],
    known_hosts: int,
    policy: DetectionPolicy,
    now: float,
) -> Brake:
    """Decide whether fencing ``to_fence`` now would exceed the fence rate limit (guarantee 3 over time).

    ``started`` are the fences the journal holds (any age: only those within the last
    ``fence_rate_window`` seconds count, including any started earlier in this tick); ``to_fence`` the
    hosts that this tick would start fencing; ``known_hosts`` the number of compute hosts petguard knows
    in any state. The brake is all or nothing, like the mass-failure brake: when the fences in the
    window plus those about to start exceed ``fence_rate_max``, none of them starts. A cloud of one host
    is never braked (nothing else could be failing with it), and ``fence_rate_max = 0`` turns the limit off.
    """
    if policy.fence_rate_max == 0 or not to_fence or known_hosts <= 1:
        return Brake(False)
    # A start stamped after ``now`` (a clock stepped back) still counts: it is recent, not old.
    recent = sorted((f for f in started if f.at > now - policy.fence_rate_window), key=lambda f: f.at)
    if len(recent) + len(to_fence) <= policy.fence_rate_max:
        return Brake(False)
    fenced = ", ".join(dict.fromkeys(f.host for f in recent)) or "none"
    return Brake(
        True,
        f"{RATE_LIMIT}: {len(recent)} fences started in the last {_span(policy.fence_rate_window)} ({fenced}) "
        f"and {', '.join(sorted(to_fence))} would be next (limit [detection] fence_rate_max = "
        f"{policy.fence_rate_max} per fence_rate_window = {policy.fence_rate_window:.0f} s): a rolling failure "
        "(kernel update, top-of-rack switch, power feed)? fencing nobody more until an operator looks; "
        "`petguard brake override` to fence anyway",
    )


def _span(seconds: float) -> str:
    """A window length as an operator reads it: "60 min", "2 h", "90 s"."""
    if seconds >= 7200 and seconds % 3600 == 0:
        return f"{seconds / 3600:.0f} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
