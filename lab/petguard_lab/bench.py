"""`petguard-lab bench`: how long petguard takes, from a host's power loss to its last pet ACTIVE
elsewhere, on the lab's real Nova, and how that compares with a bare openstacksdk script.

One invocation measures one setting of Nova's heartbeats (``--report-interval`` /
``--service-down-time``, default Nova's own 10 s / 60 s).  If the running lab has other
settings, ``Lab.up`` restarts only the Nova services with the new ones (MariaDB, RabbitMQ,
Keystone, Placement, Glance and the BMCs keep running); run every run of one setting, then switch.

Two arms, each ``--runs`` times (default 5), each run with ``--pets`` pets (default 20, metadata
``petguard:pet=true``) booted on the victim (mv 2.74 ``host``):

* **petguard**: ``petguard-daemon`` runs from this venv with a copy of the lab's petguard.conf
  (``$LAB/petguard/bench.conf``: its own journal ``bench.sqlite`` and log
  ``$LAB/log/petguard-bench.log``, ``[detection] grace_period`` from ``--grace-period``,
  ``fence_rate_max = 0`` (every run fences a host: the rate limit would hold the 4th), other
  options from ``--petguard-option``).  The bench cuts the victim's power (``Lab.fail(host,
  "power")``) and reads the phases from petguard's log lines (millisecond timestamps) and the end
  from Nova's API: *detect* = power cut -> petguard decides to fence; *fence* = -> power read
  back OFF; *force_down* = -> service forced down; *disable* = -> service disabled; *plan* = ->
  plan logged (the moves start right after); *evacuate* = plan -> last pet ACTIVE on another host
  with no task (polled every ``--poll`` s); *rto* = power cut -> last pet ACTIVE elsewhere.
  Between runs: heal + ``petguard-manage request HOST restore`` + wait until it is up and
  enabled, then the servers are deleted.
* **bare SDK** (``petguard_lab.bare_sdk``, a subprocess; petguard not running): power cut ->
  wait for Nova to report the service down -> force down -> evacuate every pet at once at mv 2.94
  -> wait for all ACTIVE elsewhere.  *evacuate* = first evacuate request -> last pet ACTIVE.
  Between runs: heal, wait for a heartbeat, un-force, delete the servers.

``overhead_ratio`` = petguard's evacuate p50 / the bare script's evacuate p50.  The load average
is recorded before and at the end of every run (other work shares this machine).  What detected
the failure (``detected_by``) is read from petguard's decision line ("failed (SIGNAL: ...);
fencing it now"), which names the signals that decided.  petguard is never imported.

``--json``: only the JSON object goes to stdout; the progress, the lab's own messages (install,
start) and the output of the processes it starts go to stderr (``stdout_to_stderr``).
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

from petguard_lab import petguard_proc, scenario
from petguard_lab.lab import Lab
from petguard_lab.settings import LabError

PREFIX = "bench-"
FLAVOR = "bench.tiny"
IMAGE = "bench-img"
NOVA_DEFAULT_REPORT_INTERVAL = 10
NOVA_DEFAULT_SERVICE_DOWN_TIME = 60
#: phases of a petguard run, in order; each one ends at the mark of the same name
PETGUARD_PHASES = ("detect", "fence", "force_down", "disable", "plan", "evacuate")
BARE_PHASES = ("nova_down", "force_down", "evacuate")


class BenchError(LabError):
    """The bench cannot go on; the message says why and what to do."""


def default_grace(report_interval: int) -> int:
    """petguard's grace period for a heartbeat setting: twice report_interval, at least 6 s.

    It must exceed the spread of the heartbeats (report_interval plus Nova's 1 s rounding), or a
    control-plane outage could fence the first host to look down before the brake sees the others
    (docs/lab.md); 6 s is what the lab tier uses with 2/10.
    """
    return max(6, 2 * report_interval)


# ------------------------------------------------------------------------------- statistics
def p50(values: Sequence[float]) -> float | None:
    """The median, or None for no values."""
    return round(statistics.median(values), 3) if values else None


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """p50, min and max of ``values`` (None when empty)."""
    return {"p50": p50(values), "min": round(min(values), 3) if values else None,
            "max": round(max(values), 3) if values else None}


def column(runs: Iterable[dict[str, Any]], key: str) -> list[float]:
    """``run["phases"][key]`` of every run that has it."""
    return [float(r["phases"][key]) for r in runs if r["phases"].get(key) is not None]


def petguard_phases(cut: float, marks: dict[str, float]) -> dict[str, float | None]:
    """Phase durations of one petguard run from the epoch times of its marks.

    Marks: ``nova_down`` (Nova reports the service down), ``suspect``, ``decide`` (fencing it now),
    ``fenced`` (read back OFF), ``forced``, ``disabled``, ``plan``, ``first_accepted``,
    ``last_active``.  A phase is None when a mark is missing.
    """
    def between(a: str | None, b: str) -> float | None:
        start = cut if a is None else marks.get(a)
        end = marks.get(b)
        return None if start is None or end is None else round(end - start, 3)

    disabled_or_forced = "disabled" if "disabled" in marks else "forced"
    return {
        "nova_down": between(None, "nova_down"),
        "suspect": between(None, "suspect"),
        "detect": between(None, "decide"),
        "fence": between("decide", "fenced"),
        "force_down": between("fenced", "forced"),
        "disable": between("forced", "disabled"),
        "plan": between(disabled_or_forced, "plan"),
        "evacuate": between("plan", "last_active"),
        "evacuate_from_first_accept": between("first_accepted", "last_active"),
        "rto": between(None, "last_active"),
    }


def bare_phases(times: dict[str, float]) -> dict[str, float | None]:
    """Phase durations of one bare-SDK run from the script's epoch times."""
    def between(a: str, b: str) -> float | None:
        return round(times[b] - times[a], 3) if a in times and b in times else None

    return {
        "nova_down": between("cut", "nova_down"),
        "force_down": between("nova_down", "forced_down"),
        "evacuate": between("evacuate_first_sent", "last_active"),
        "evacuate_requests": between("evacuate_first_sent", "evacuate_last_accepted"),
        "rto": between("cut", "last_active"),
    }


#: petguard's decision line: ``HOST: failed (SOURCE: detail; SOURCE: detail (down for N s)); fencing
#: it now`` (decide.py; the journal's ``fence_started`` event carries the same text).
_DECISION = re.compile(r"failed \((?P<why>.*)\); fencing it now")
#: a signal's source at the start of each "; "-separated part (nova, nova-heartbeat, agent,
#: alert:KIND)
_SOURCE = re.compile(r"(?:^|; )([a-z][\w-]*(?::[\w.-]+)?): ")
#: what the bare script waits for before it acts: Nova reporting the service down
BARE_DETECTED_BY = "nova"


def detected_by(decision: str | None) -> str | None:
    """The detection signal(s) that decided, from petguard's decision log line: its sources joined
    with "+" (``nova-heartbeat``, ``nova``, ``agent+nova`` ...); None without a decision line."""
    match = _DECISION.search(decision or "")
    if match is None:
        return None
    why = re.sub(r" \(down for \d+ s\)$", "", match["why"])
    sources = list(dict.fromkeys(_SOURCE.findall(why)))
    return "+".join(sorted(sources)) or "unknown"


def loadavg() -> list[float]:
    """The load average now (1, 5, 15 minutes), rounded for the JSON."""
    return [round(x, 2) for x in os.getloadavg()]


def run_record(i: int, phases: dict[str, float | None], load_before: Sequence[float],
               load_end: Sequence[float], restore_s: float, wall_s: float,
               **extra: Any) -> dict[str, Any]:
    """One run of either arm as the JSON has it: ``load_avg`` before the run (boot included),
    ``load_avg_end`` at its end (after the restore and the clean-up), and ``extra``."""
    return {"run": i, "phases": phases, "load_avg": [round(x, 2) for x in load_before],
            "load_avg_end": [round(x, 2) for x in load_end], "restore_s": round(restore_s, 1),
            "wall_s": round(wall_s, 1), **extra}


def arm_summary(runs: list[dict[str, Any]], detect: str) -> dict[str, Any]:
    """One arm's figures: the medians, the RTO of every run, what detected the failure and the
    load average at the end of every run (``detect``: the phase that ends at the arm's decision)."""
    rto = column(runs, "rto")
    return {
        "runs": len(runs),
        "detected_by": [r.get("detected_by") for r in runs],
        "detect_p50_s": p50(column(runs, detect)),
        "fence_p50_s": p50(column(runs, "fence")),
        "evacuate_p50_s": p50(column(runs, "evacuate")),
        "rto_s": rto,
        "rto_p50_s": p50(rto),
        "load_avg_end": [r.get("load_avg_end") for r in runs],
    }


def summarise(settings: dict[str, Any], petguard_runs: list[dict[str, Any]],
              bare_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The bench's JSON object: settings, per-run figures, medians and the overhead ratio."""
    rto = column(petguard_runs, "rto")
    evacuate = column(petguard_runs, "evacuate")
    bare_evacuate = column(bare_runs, "evacuate")
    evac_p50, bare_p50 = p50(evacuate), p50(bare_evacuate)
    result: dict[str, Any] = {
        **settings,
        "runs": len(petguard_runs),
        "rto_s": rto,
        "rto_p50_s": p50(rto),
        "rto_min_s": spread(rto)["min"],
        "rto_max_s": spread(rto)["max"],
        "nova_down_p50_s": p50(column(petguard_runs, "nova_down")),
        "detect_p50_s": p50(column(petguard_runs, "detect")),
        "fence_p50_s": p50(column(petguard_runs, "fence")),
        "force_down_p50_s": p50(column(petguard_runs, "force_down")),
        "disable_p50_s": p50(column(petguard_runs, "disable")),
        "plan_p50_s": p50(column(petguard_runs, "plan")),
        "evacuate_p50_s": evac_p50,
        "evacuate_s": evacuate,
        "bare_sdk_runs": len(bare_runs),
        "bare_sdk_rto_s": column(bare_runs, "rto"),
        "bare_sdk_rto_p50_s": p50(column(bare_runs, "rto")),
        "bare_sdk_nova_down_p50_s": p50(column(bare_runs, "nova_down")),
        "bare_sdk_evacuate_s": bare_evacuate,
        "bare_sdk_evacuate_p50_s": bare_p50,
        "overhead_ratio": round(evac_p50 / bare_p50, 2) if evac_p50 and bare_p50 else None,
        # how many of petguard's runs each signal decided (per run: arms.petguard.detected_by)
        "detected_by": dict(sorted(Counter(str(r.get("detected_by"))
                                           for r in petguard_runs).items())),
        "arms": {"petguard": arm_summary(petguard_runs, "detect"),
                 "bare_sdk": arm_summary(bare_runs, "nova_down")},
        "petguard_runs": petguard_runs,
        "bare_sdk_run_details": bare_runs,
    }
    return result


# ------------------------------------------------------------------------------------ options
@dataclasses.dataclass
class BenchOptions:
    """Command-line options of ``petguard-lab bench``."""

    report_interval: int = NOVA_DEFAULT_REPORT_INTERVAL
    service_down_time: int = NOVA_DEFAULT_SERVICE_DOWN_TIME
    pets: int = 20
    runs: int = 5
    bare_runs: int | None = None  # default: runs
    grace_period: int | None = None  # default: default_grace(report_interval)
    petguard_options: tuple[str, ...] = ()  # "section.key=value"
    victim: str | None = None
    computes: int | None = None
    poll: float = 0.25
    leave_up: bool = False
    json: bool = False

    @property
    def grace(self) -> int:
        return self.grace_period if self.grace_period is not None else default_grace(
            self.report_interval)


def parse_option(text: str) -> tuple[str, str, str]:
    """``section.key=value`` -> (section, key, value)."""
    match = re.fullmatch(r"(\w+)\.(\w+)=(.*)", text)
    if not match:
        raise BenchError(f"--petguard-option {text!r}: expected SECTION.KEY=VALUE, e.g. "
                         "evacuation.max_parallel=20")
    return match[1], match[2], match[3]


# -------------------------------------------------------------------------------------- bench
_RULES: tuple[tuple[str, str], ...] = (
    ("suspect", r"^{v}: suspect, looks down"),
    ("decide", r"^{v}: failed \(.*\); fencing it now"),
    ("off_sent", r"^fence .*\(host {v}\): power-off sent and accepted"),
    ("fenced", r"^{v}: fenced: .*power read back OFF"),
    ("forced", r"^{v}: compute service forced down"),
    ("disabled", r"^{v}: compute service disabled"),
    ("plan", r"^{v}: plan: \d+ pet"),
    ("first_accepted", r"^{v}: evacuation of \S+ \(\S+\) accepted by Nova"),
    ("finished", r"^{v}: evacuation finished"),
)
_FATAL: tuple[str, ...] = (
    r"^{v}: fence not confirmed", r"^{v}: evacuation of \S+ \(\S+\) failed",
    r"^mass-failure brake engaged",
)


def note_marks(entries: Iterable[petguard_proc.LogLine],
               rules: Sequence[tuple[str, re.Pattern[str]]], fatal: Sequence[re.Pattern[str]],
               marks: dict[str, float]) -> str | None:
    """Note in ``marks`` the first time each rule's line appears among petguard's log ``entries``;
    return the decision line ("failed (...); fencing it now": it names the signals that decided),
    if one is among them.

    :raises BenchError: a fatal line (the run cannot end well).
    """
    decision = None
    for entry in entries:
        for key, rule in rules:
            if rule.search(entry.message):
                marks.setdefault(key, entry.at)
                if key == "decide" and decision is None:
                    decision = entry.message
        if any(rule.search(entry.message) for rule in fatal):
            raise BenchError(f"petguard: {entry.message}")
    return decision


def host_pattern(host: str) -> str:
    """How petguard's log names ``host`` at the start of a line: ``cmp1`` or, while it has an
    open incident, ``cmp1 [incident 7]``."""
    return re.escape(host) + r"(?: \[incident \d+\])?"


class Bench:
    """One ``petguard-lab bench`` invocation against one lab."""

    def __init__(self, lab: Lab, options: BenchOptions, out: TextIO) -> None:
        self.lab = lab
        self.o = options
        self.out = out
        self.conf = lab.cfg.petguard_dir / "bench.conf"
        self.journal = lab.cfg.petguard_dir / "bench.sqlite"
        self.log_file = lab.cfg.log / "petguard-bench.log"
        self.daemon = petguard_proc.Daemon(self.conf, lab.cfg.run / "petguard-daemon-bench.pid",
                                           lab.cfg.log / "petguard-bench.out")
        self.victim = ""
        self.cloud: scenario.Cloud | None = None
        self.flavor = self.image = ""
        self.timings: dict[str, float] = {}

    def say(self, text: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=self.out, flush=True)

    # ------------------------------------------------------------------ the whole bench
    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        load_start = os.getloadavg()
        self.lab.verbose = not self.o.json
        brought_up = self._lab_up()
        try:
            cloud = self.cloud = scenario.Cloud(self.lab, PREFIX, FLAVOR, IMAGE)
            self.flavor, self.image = cloud.flavor(), cloud.image()
            self._unlimit_quotas(cloud)
            self._reset(cloud)
            petguard_runs = self._petguard_arm(cloud)
            bare_runs = self._bare_arm(cloud)
        finally:
            if self.daemon.pid is not None:
                self.daemon.stop()
        if brought_up and not self.o.leave_up:
            t = time.monotonic()
            self.say("taking the lab down (the bench brought it up)")
            self.lab.down()
            self.timings["lab_down_s"] = round(time.monotonic() - t, 1)
        self.timings["bench_s"] = round(time.monotonic() - started, 1)
        settings = {
            "pets": self.o.pets,
            "victim": self.victim,
            "computes": len(self.lab.compute_names),
            "report_interval_s": self.lab.cfg.report_interval,
            "service_down_time_s": self.lab.cfg.service_down_time,
            "grace_period_s": self.o.grace,
            "petguard_options": self._petguard_overrides(),
            "load_avg_start": [round(x, 2) for x in load_start],
            "load_avg_end": loadavg(),
            "timings": self.timings,
        }
        return summarise(settings, petguard_runs, bare_runs)

    def _lab_up(self) -> bool:
        running = self.lab.pid("nova-api") is not None
        before = (self.lab.cfg.report_interval, self.lab.cfg.service_down_time)
        wanted = (self.o.report_interval, self.o.service_down_time)
        self.lab.install()
        if not running:
            self.say("starting the lab (about 30-60 s)")
        elif before != wanted:
            self.say(f"the running lab has heartbeats {before[0]}/{before[1]} s: restarting the "
                     f"Nova services with {wanted[0]}/{wanted[1]} s")
        t = time.monotonic()
        self.lab.up(computes=self.o.computes, report_interval=wanted[0],
                    service_down_time=wanted[1], accept_forced_down=True)
        key = "lab_up_s" if not running else (
            "lab_reconfigure_s" if before != wanted else "lab_check_s")
        self.timings[key] = round(time.monotonic() - t, 1)
        names = self.lab.compute_names
        if len(names) < 2:
            raise BenchError(f"the bench needs at least 2 computes, the lab has {len(names)}; "
                             "run with --computes 3 (or more)")
        self.victim = self.o.victim or names[0]
        if self.victim not in names:
            raise BenchError(f"--victim {self.victim}: not a lab compute ({', '.join(names)})")
        return not running

    def _unlimit_quotas(self, cloud: scenario.Cloud) -> None:
        """The admin project's default quota is 10 instances: lift instances, cores and RAM."""
        projects = cloud.nova.keystone.call("GET", "/projects?name=admin")["projects"]
        if not projects:
            raise BenchError("Keystone has no project 'admin'; run `petguard-lab up` again")
        body = {"quota_set": {"instances": -1, "cores": -1, "ram": -1}}
        cloud.nova.call("PUT", f"/os-quota-sets/{projects[0]['id']}", body, microversion="2.1")

    def _reset(self, cloud: scenario.Cloud) -> None:
        """Start from a clean lab: no bench daemon, no bench servers, every compute powered, up,
        un-forced and enabled (a run interrupted earlier may have left any of these)."""
        old = self.daemon.pid
        if old is not None:
            self.daemon.stop()
            self.say(f"stopped a bench petguard-daemon left by an interrupted run (pid {old})")
        started = time.time()
        for host in self.lab.compute_names:
            if not self.lab.bmc_power(host) or self.lab.pid(f"nova-compute-{host}") is None:
                self.lab.heal(host)
        services = cloud.services()
        held = [h for h in self.lab.compute_names if services[h]["forced_down"]
                or services[h]["status"] != "enabled"]
        if held:
            self.lab.wait_computes_up(held, since=started, accept_forced_down=True, timeout=180)
            for host in held:
                sid = str(cloud.services()[host]["id"])
                cloud.update_service(sid, {"forced_down": False})
                cloud.update_service(sid, {"status": "enabled"})
            self.say(f"returned {', '.join(held)} to service (left held by an earlier run)")
        self.lab.wait_computes_up(timeout=180)
        removed = cloud.delete_everything()
        if removed:
            self.say(f"deleted {removed} server(s) left by an earlier run")

    def _boot(self, cloud: scenario.Cloud) -> None:
        """Boot the pets on the victim; a boot that lands in ERROR (the host's
        COMPUTE_STATUS_DISABLED trait can lag its enabling) is deleted and retried."""
        names = [f"{PREFIX}{i:02d}" for i in range(1, self.o.pets + 1)]
        for attempt in range(4):
            present = cloud.servers()
            for name in names:
                if name not in present:
                    cloud.boot(name, self.victim, self.flavor, self.image,
                               {"petguard:pet": "true"})
            try:
                cloud.wait_status(dict.fromkeys(names, "ACTIVE"), timeout=180)
                return
            except LabError:
                if attempt == 3:
                    raise
            errored = [s for s in cloud.servers().values() if s["status"] == "ERROR"]
            for raw in errored:
                cloud.nova.call("DELETE", f"/servers/{raw['id']}", microversion="2.1")
            scenario.wait("the failed boots to be deleted", lambda: not any(
                s["status"] == "ERROR" for s in cloud.servers().values()), 60)
            self.say(f"{len(errored)} boot(s) failed (No valid host?); retrying in 5 s")
            time.sleep(5)

    def _timeout(self) -> float:
        return self.lab.cfg.service_down_time + self.o.grace + 300.0

    # ------------------------------------------------------------------ petguard arm
    def _petguard_overrides(self) -> dict[str, str]:
        # The bench fences the victim once per run, --runs times in a few minutes, on purpose: the
        # fence rate limit (3 per hour by default) would hold the 4th run. --petguard-option wins.
        # petguard's own heartbeat staleness (3 x report_interval) needs the lab's report_interval.
        overrides = {
            "detection.grace_period": str(self.o.grace),
            "detection.fence_rate_max": "0",
            "detection.report_interval": str(self.o.report_interval),
        }
        for text in self.o.petguard_options:
            section, key, value = parse_option(text)
            overrides[f"{section}.{key}"] = value
        return overrides

    def _write_conf(self) -> None:
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(self.lab.conf_file)
        parser.set("DEFAULT", "log_file", str(self.log_file))
        parser.set("database", "connection", f"sqlite:///{self.journal}")
        for dotted, value in self._petguard_overrides().items():
            section, key = dotted.split(".", 1)
            if section != "DEFAULT" and not parser.has_section(section):
                parser.add_section(section)
            parser.set(section, key, value)
        with self.conf.open("w") as handle:
            parser.write(handle)

    def _petguard_arm(self, cloud: scenario.Cloud) -> list[dict[str, Any]]:
        self._write_conf()
        self.journal.unlink(missing_ok=True)
        petguard_proc.manage(self.conf, "db-upgrade")
        pid = scenario.start_daemon(self.daemon, self.log_file)
        self.say(f"petguard-daemon (pid {pid}) runs with {self.conf} (grace_period "
                 f"{self.o.grace} s); log {self.log_file}")
        scenario.wait("petguard to watch every host",
                      lambda: scenario.all_watched(self.conf, self.lab.compute_names), 120)
        runs = []
        try:
            for i in range(1, self.o.runs + 1):
                runs.append(self._petguard_run(cloud, i))
        finally:
            self.daemon.stop()
        return runs

    def _petguard_run(self, cloud: scenario.Cloud, i: int) -> dict[str, Any]:
        t_run = time.monotonic()
        load = os.getloadavg()
        self._boot(cloud)
        scenario.wait("petguard to watch every host",
                      lambda: scenario.all_watched(self.conf, self.lab.compute_names), 120)
        pets = {s["id"]: name for name, s in cloud.servers().items()}
        v = self.victim
        rules = [(key, re.compile(p.format(v=host_pattern(v)))) for key, p in _RULES]
        fatal = [re.compile(p.format(v=host_pattern(v))) for p in _FATAL]
        follower = petguard_proc.LogFollower(self.log_file)
        marks: dict[str, float] = {}
        decision: str | None = None  # the decision line names the signals that decided
        arrived: dict[str, float] = {}
        cut = time.time()
        self.lab.fail(v, "power")
        deadline = time.monotonic() + self._timeout()
        while not (len(arrived) == len(pets) and "finished" in marks):
            try:
                found = note_marks(follower.entries(), rules, fatal, marks)
            except BenchError as exc:
                raise BenchError(f"run {i}: {exc}; see {self.log_file}") from None
            decision = decision or found  # the first decision line (there is one per run)
            now = time.time()
            if "nova_down" not in marks:
                svc = cloud.services()[v]
                if svc["state"] == "down" and not svc["forced_down"]:
                    marks["nova_down"] = now
            if "forced" in marks and len(arrived) < len(pets):
                for sid, raw in {s["id"]: s for s in cloud.servers().values()}.items():
                    host, status = scenario.where(raw)
                    if sid in pets and sid not in arrived and status == "ACTIVE" and \
                            host != v and raw.get("OS-EXT-STS:task_state") is None:
                        arrived[sid] = now
            if time.monotonic() > deadline:
                raise BenchError(f"run {i}: not recovered after {self._timeout():.0f} s "
                                 f"({len(arrived)} of {len(pets)} pets back, marks "
                                 f"{sorted(marks)}); see {self.log_file}")
            if self.daemon.pid is None:
                raise BenchError(f"petguard-daemon died; see {self.log_file}")
            time.sleep(self.o.poll)
        marks["last_active"] = max(arrived.values())
        phases = petguard_phases(cut, marks)
        t_restore = time.monotonic()
        scenario.restore_host(self.lab, cloud, self.conf, v, "petguard-lab bench: next run",
                              timeout=300)
        restore_s = time.monotonic() - t_restore
        cloud.delete_everything()
        run = run_record(i, phases, load, os.getloadavg(), restore_s, time.monotonic() - t_run,
                         detected_by=detected_by(decision),
                         marks={k: round(t - cut, 3) for k, t in sorted(marks.items(),
                                                                      key=lambda kv: kv[1])})
        self.say(f"petguard run {i}/{self.o.runs}: rto {phases['rto']:.2f} s = detect "
                 f"{phases['detect']} + fence {phases['fence']} + force_down "
                 f"{phases['force_down']} + disable {phases['disable']} + plan {phases['plan']} + "
                 f"evacuate {phases['evacuate']} s (load {load[0]:.2f}; run took "
                 f"{run['wall_s']} s)")
        return run

    # ------------------------------------------------------------------ bare SDK arm
    def _bare_arm(self, cloud: scenario.Cloud) -> list[dict[str, Any]]:
        n = self.o.runs if self.o.bare_runs is None else self.o.bare_runs
        return [self._bare_run(cloud, i, n) for i in range(1, n + 1)]

    def _bare_run(self, cloud: scenario.Cloud, i: int, n: int) -> dict[str, Any]:
        t_run = time.monotonic()
        load = os.getloadavg()
        self._boot(cloud)
        v = self.victim
        argv = [sys.executable, "-m", "petguard_lab.bare_sdk", "--clouds-yaml",
                str(self.lab.clouds_yaml), "--host", v, "--prefix", PREFIX,
                "--poll", str(self.o.poll), "--timeout", str(self._timeout())]
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        stderr_file = self.lab.cfg.log / "bench-bare-sdk.err"
        with stderr_file.open("w") as err, subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                env=env) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            try:
                ready = json.loads(proc.stdout.readline() or "{}")
                if not ready.get("ready") or ready.get("pets") != self.o.pets:
                    raise BenchError(f"the bare SDK script did not start ({ready}); see "
                                     f"{stderr_file}")
                cut = time.time()
                self.lab.fail(v, "power")
                proc.stdin.write(f"{cut}\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                rc = proc.wait(timeout=60)
            except BaseException:
                proc.kill()
                raise
        if rc or not line:
            raise BenchError(f"the bare SDK script failed (exit {rc}); see {stderr_file}")
        times = json.loads(line)
        phases = bare_phases(times)
        t_restore = time.monotonic()
        healed = time.time()
        self.lab.heal(v)
        self.lab.wait_computes_up([v], since=healed, accept_forced_down=True, timeout=180)
        cloud.update_service(str(cloud.services()[v]["id"]), {"forced_down": False})
        self.lab.wait_computes_up([v], timeout=60)
        restore_s = time.monotonic() - t_restore
        cloud.delete_everything()
        run = run_record(i, phases, load, os.getloadavg(), restore_s, time.monotonic() - t_run,
                         detected_by=BARE_DETECTED_BY)
        self.say(f"bare SDK run {i}/{n}: rto {phases['rto']:.2f} s = nova_down "
                 f"{phases['nova_down']} + force_down {phases['force_down']} + evacuate "
                 f"{phases['evacuate']} s (load {load[0]:.2f}; run took {run['wall_s']} s)")
        return run


# ------------------------------------------------------------------------------------ output
def report(result: dict[str, Any], out: TextIO) -> None:
    """A human-readable summary of ``result``."""
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    print(f"\npetguard-lab bench: {result['pets']} pets on {result['victim']} "
          f"({result['computes']} computes), Nova heartbeats {result['report_interval_s']}/"
          f"{result['service_down_time_s']} s, petguard grace_period "
          f"{result['grace_period_s']} s", file=out)
    print(f"{'phase (p50, s)':<34} {'petguard':>9} {'bare SDK':>9}", file=out)
    rows = [
        ("power cut -> Nova reports down", result["nova_down_p50_s"],
         result["bare_sdk_nova_down_p50_s"]),
        ("detect (cut -> decision to fence)", result["detect_p50_s"], None),
        ("fence (off + read back)", result["fence_p50_s"], None),
        ("force down", result["force_down_p50_s"], None),
        ("disable", result["disable_p50_s"], None),
        ("plan", result["plan_p50_s"], None),
        ("evacuate (-> last pet ACTIVE)", result["evacuate_p50_s"],
         result["bare_sdk_evacuate_p50_s"]),
        ("RTO (cut -> last pet ACTIVE)", result["rto_p50_s"], result["bare_sdk_rto_p50_s"]),
    ]
    for name, ours, bare in rows:
        print(f"{name:<34} {fmt(ours):>9} {fmt(bare):>9}", file=out)
    print(f"RTO per run: {', '.join(fmt(x) for x in result['rto_s'])} s; overhead ratio "
          f"(evacuate p50 / bare) {result['overhead_ratio']}", file=out)
    print("detected by (petguard's runs): " + (", ".join(
        f"{signal} {n}" for signal, n in result["detected_by"].items()) or "-"), file=out)
    print(f"load average at start {result['load_avg_start']}, at end {result['load_avg_end']}",
          file=out)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout meanwhile to stderr: Python's prints (the lab's install
    and progress messages) and file descriptor 1 (what a child process inherits), so that the
    JSON printed afterwards is all that stdout carries."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run(lab: Lab, options: BenchOptions) -> int:
    """``petguard-lab bench``; returns the exit status. With ``--json`` only the JSON object goes to
    stdout: the progress, the lab's own messages and any error go to stderr."""
    out = sys.stderr if options.json else sys.stdout
    bench = Bench(lab, options, out)
    try:
        with stdout_to_stderr() if options.json else contextlib.nullcontext():
            result = bench.run()
    except (LabError, OSError) as exc:
        print(f"\npetguard-lab bench: {exc}", file=out, flush=True)
        print("petguard-daemon was stopped; the lab stays as it is: `petguard-lab bench` again "
              "cleans up and starts over, `petguard-lab down` stops the lab.", file=out,
              flush=True)
        return 1
    if options.json:
        print(json.dumps(result, indent=2), flush=True)
    else:
        report(result, out)
    return 0
