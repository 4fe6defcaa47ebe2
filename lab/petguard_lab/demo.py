"""`petguard-lab demo`: one host loses its power, petguard recovers its pets on the lab's real Nova.

What it does, in order (each step prints short sentences, no tracebacks):

1. installs the lab if needed and brings it up (or reuses a running one);
2. runs ``petguard-manage db-upgrade`` and starts ``petguard-daemon`` from this venv, with the
   lab's ``$LAB/petguard/petguard.conf`` (PID in ``$LAB/run/petguard-daemon.pid``, log in
   ``$LAB/log/petguard-daemon.log``);
3. cleans up after an earlier run: returns hosts petguard still holds to service (heal, then
   ``petguard-manage request HOST restore``), deletes the ``demo-*`` servers and group;
4. boots pets and non-pets on the victim host (pinned with the mv 2.74 ``host`` field) and one
   anti-affinity partner elsewhere, and waits until petguard watches every host;
5. cuts the victim's power (``Lab.fail(host, "power")``) and prints a live timeline built from
   Nova's API and petguard's INFO log until every pet is back;
6. prints every server before -> after with petguard's recorded reason
   (``petguard-manage incident-show``) and the number of evacuations Nova recorded;
7. unless ``--keep``: powers the victim on, asks petguard to restore it, deletes the servers,
   stops the daemon (by PID) and takes the lab down if the demo brought it up.

The lab never imports petguard: petguard's programs run as subprocesses (``petguard_proc``), Nova
and Glance are spoken to with the lab's stdlib client (``osapi``).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from petguard_lab import petguard_proc, scenario
from petguard_lab.lab import Lab
from petguard_lab.scenario import nova_epoch as _epoch
from petguard_lab.scenario import where as _where
from petguard_lab.settings import LabError

PREFIX = "demo-"
FLAVOR = "demo.tiny"
IMAGE = "demo-img"
GROUP = "demo-anti-affinity"


@dataclasses.dataclass(frozen=True)
class DemoServer:
    """One server the demo boots, and why it is (not) a pet, in plain words."""

    name: str
    on_victim: bool
    why: str
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    tags: tuple[str, ...] = ()
    stopped: bool = False
    grouped: bool = False

    @property
    def pet(self) -> bool:
        return bool(self.metadata.get("petguard:pet") == "true"
                    or self.metadata.get("HA_Enabled") == "True" or "evacuable" in self.tags)


SERVERS: tuple[DemoServer, ...] = (
    DemoServer("demo-db", True, "pet (metadata petguard:pet=true), priority 10: moves first",
               {"petguard:pet": "true", "petguard:priority": "10"}),
    DemoServer("demo-web", True, "pet (metadata petguard:pet=true), priority 5",
               {"petguard:pet": "true", "petguard:priority": "5"}),
    DemoServer("demo-masakari", True, "pet by Masakari's convention (metadata HA_Enabled=True)",
               {"HA_Enabled": "True"}),
    DemoServer("demo-tagged", True, "pet by Red Hat's convention (server tag evacuable)",
               tags=("evacuable",)),
    DemoServer("demo-stopped", True, "pet, but stopped: it must come back stopped",
               {"petguard:pet": "true"}, stopped=True),
    DemoServer("demo-scratch", True, "not a pet (no HA metadata): petguard must leave it"),
    DemoServer("demo-anti-1", True, "pet in an anti-affinity group: must not land next to "
               "demo-anti-2", {"petguard:pet": "true"}, grouped=True),
    DemoServer("demo-anti-2", False, "pet in the same group, on a healthy host: not touched",
               {"petguard:pet": "true"}, grouped=True),
)


class DemoError(LabError):
    """The demo cannot go on; the message says why and what to do."""


# ------------------------------------------------------------------------------------- output
class Printer:
    """Headings, sentences, tables, and the timeline with times relative to the power cut."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.t0: float | None = None
        self.timeline: list[dict[str, Any]] = []

    def heading(self, text: str) -> None:
        print(f"\n== {text} ==", file=self.out, flush=True)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def event(self, at: float, text: str, *details: str) -> None:
        """One timeline line: ``+12.3 s  text``; ``at`` is a time.time() value."""
        assert self.t0 is not None
        rel = at - self.t0
        self.timeline.append({"t": round(rel, 1), "event": text, "details": list(details)})
        print(f"  +{rel:5.1f} s  {text}", file=self.out, flush=True)
        for detail in details:
            print(f"             {detail}", file=self.out, flush=True)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
        for row in [header, *rows]:
            cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[-1]]
            print("  " + "  ".join(cells).rstrip(), file=self.out, flush=True)


def _wait(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
    try:
        scenario.wait(what, check, timeout, interval)
    except DemoError:
        raise
    except LabError as exc:
        raise DemoError(str(exc)) from exc


# ---------------------------------------------------------------------------------- the cloud
class Cloud(scenario.Cloud):
    """The demo's Nova/Glance calls: ``demo-*`` servers, its flavor, image and group."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(lab, PREFIX, FLAVOR, IMAGE, GROUP)

    def boot_demo(self, server: DemoServer, host: str, flavor: str, image: str,
                  group: str) -> str:
        return self.boot(server.name, host, flavor, image, server.metadata, server.tags,
                         group if server.grouped else None)


# ----------------------------------------------------------------------------------- the demo
@dataclasses.dataclass
class DemoOptions:
    """Command-line options of ``petguard-lab demo``."""

    computes: int | None = None
    victim: str | None = None
    keep: bool = False
    json: bool = False
    timeout: float = 240.0


class Demo:
    """One run of the demo against one lab."""

    def __init__(self, lab: Lab, options: DemoOptions, out: TextIO) -> None:
        self.lab = lab
        self.options = options
        self.p = Printer(out)
        self.conf = lab.conf_file
        self.daemon = petguard_proc.Daemon(
            lab.conf_file, lab.cfg.run / "petguard-daemon.pid",
            lab.cfg.log / "petguard-daemon.out")
        self.log_file = lab.cfg.log / "petguard-daemon.log"
        self.brought_up = False
        self.timings: dict[str, float] = {}
        self.victim = ""
        self.other = ""
        self.before: dict[str, tuple[str, str]] = {}
        self.result: dict[str, Any] = {}

    # ------------------------------------------------------------------ steps
    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.lab.verbose = False  # the demo tells its own story
        try:
            self._lab_up()
            cloud = Cloud(self.lab)
            self._petguard_up(cloud)
            self._boot(cloud)
            self._fail_and_follow(cloud)
            self._report(cloud)
            if not self.options.keep:
                self._clean_up(cloud)
        finally:
            self._stop_daemon()  # also on errors and Ctrl-C; the lab stays up for a look
        if self.brought_up and not self.options.keep:
            t = time.monotonic()
            self.p.say("Taking the lab down (the demo brought it up) ...")
            self.lab.down()
            self.timings["lab down"] = time.monotonic() - t
        self.timings["demo, end to end"] = time.monotonic() - started
        self.p.heading("Timings")
        for what, seconds in self.timings.items():
            self.p.say(f"  {what:<46} {seconds:6.1f} s")
        self.result.update(victim=self.victim, timeline=self.p.timeline,
                           timings={k: round(v, 1) for k, v in self.timings.items()})
        return self.result

    def _lab_up(self) -> None:
        self.p.heading("1. The lab: a real OpenStack (Nova 34) on 127.0.0.1")
        t = time.monotonic()
        if self.lab.install():
            self.p.say("Installed the lab's OpenStack venv.")
        running = self.lab.pid("nova-api") is not None
        self.p.say("The lab is running: reusing it." if running else
                   "Starting the lab (about 30-60 s) ...")
        self.lab.up(computes=self.options.computes, accept_forced_down=True)
        self.brought_up = not running
        self.timings["lab install + up"] = time.monotonic() - t
        names = self.lab.compute_names
        if len(names) < 3:
            raise DemoError(f"the demo needs at least 3 compute hosts, the lab has {len(names)}; "
                            "run `petguard-lab demo --computes 3` (or more)")
        self.victim = self.options.victim or names[0]
        if self.victim not in names:
            raise DemoError(f"--victim {self.victim}: not a lab compute ({', '.join(names)})")
        self.other = next(h for h in names if h != self.victim)
        self.p.say(f"{len(names)} compute hosts ({', '.join(names)}), each with its own IPMI BMC "
                   "simulator; cutting a BMC's power kills that host's nova-compute.")
        self.p.say(f"The victim will be {self.victim}.")

    def _petguard_up(self, cloud: Cloud) -> None:
        self.p.heading("2. petguard")
        t = time.monotonic()
        old = self.daemon.pid
        if old is not None:
            self.daemon.stop()
            self.p.say(f"Stopped a petguard-daemon left by an interrupted demo (pid {old}).")
        petguard_proc.manage(self.conf, "db-upgrade")
        self._clear_foreign_holds(cloud)
        try:
            pid = scenario.start_daemon(self.daemon, self.log_file)
        except LabError as exc:
            raise DemoError(str(exc)) from exc
        self.result["daemon_pid"] = pid
        self.p.say(f"Started petguard-daemon (pid {pid}) with {self.conf}")
        self.p.say(f"Its log: {self.log_file}")
        self._return_hosts(cloud)
        removed = cloud.delete_everything()
        if removed:
            self.p.say(f"Deleted {removed} server(s) left by an earlier demo.")
        _wait("petguard to watch every host", self._all_watched, 60)
        self.p.say(f"petguard watches every host: {', '.join(self.lab.compute_names)} are up.")
        self.timings["petguard start + clean-up"] = time.monotonic() - t

    def _all_watched(self) -> bool:
        return scenario.all_watched(self.conf, self.lab.compute_names)

    def _clear_foreign_holds(self, cloud: Cloud) -> None:
        """A host forced down or disabled in Nova while petguard's journal does not hold it (the
        journal was reset): clear it through Nova before petguard starts, or petguard would take
        its own old mark for a fresh failure."""
        hosts = petguard_proc.host_list(self.conf)
        for name, svc in cloud.services().items():
            held = hosts.get(name) is not None and hosts[name].state != "up"
            if name in self.lab.compute_names and not held and (
                    svc.get("forced_down") or svc.get("status") == "disabled"):
                cloud.update_service(str(svc["id"]), {"forced_down": False})
                cloud.update_service(str(svc["id"]), {"status": "enabled"})
                self.p.say(f"{name} was forced down or disabled outside petguard's journal: "
                           "cleared it in Nova.")

    def _return_hosts(self, cloud: Cloud) -> None:
        """Bring every host petguard still holds (from an earlier demo) back into service."""
        deadline = time.monotonic() + 240
        asked: set[tuple[str, str]] = set()
        while True:
            hosts = petguard_proc.host_list(self.conf)
            services = cloud.services()
            pending = []
            for name in self.lab.compute_names:
                row = hosts.get(name)
                state = row.state if row else "up"
                svc = services.get(name, {})
                if state == "up" and svc.get("state") == "up" and svc.get("status") == "enabled":
                    continue
                pending.append(f"{name}: {state}")
                if state == "evacuated" and (name, state) not in asked:
                    self.lab.heal(name)
                    petguard_proc.manage(self.conf, "request", name, "restore",
                                         "--reason", "petguard-lab demo: clean up before a run")
                    self.p.say(f"{name} was still fenced by an earlier demo: powered it on and "
                               "asked petguard to restore it.")
                elif state == "awaiting_confirm" and (name, state) not in asked:
                    self.lab.heal(name)
                    petguard_proc.manage(self.conf, "request", name, "maintenance-on",
                                         "--reason", "petguard-lab demo: clean up before a run")
                elif state == "maintenance" and (name, state) not in asked:
                    petguard_proc.manage(self.conf, "request", name, "maintenance-off",
                                         "--reason", "petguard-lab demo: clean up before a run")
                asked.add((name, state))
            if not pending:
                return
            if time.monotonic() > deadline:
                raise DemoError(f"hosts did not come back: {', '.join(pending)}; see "
                                f"`petguard-manage --config-file {self.conf} host-list` and "
                                f"{self.log_file}")
            time.sleep(1)

    def _boot(self, cloud: Cloud) -> None:
        self.p.heading(f"3. Servers: pets and non-pets on {self.victim}")
        t = time.monotonic()
        flavor, image = cloud.flavor(), cloud.image()
        group = cloud.create_group()
        ids = {s.name: cloud.boot_demo(s, self.victim if s.on_victim else self.other, flavor, image,
                                  group) for s in SERVERS}

        def all_active() -> bool:
            servers = cloud.servers()
            failed = [n for n, s in servers.items() if s["status"] == "ERROR"]
            if failed:
                raise DemoError(f"Nova could not boot {', '.join(failed)}; see "
                                f"{self.lab.cfg.log}/nova-*.log")
            return len(servers) == len(SERVERS) and all(
                s["status"] == "ACTIVE" for s in servers.values())

        _wait("the servers to be ACTIVE", all_active, 120)
        for s in SERVERS:
            if s.stopped:
                cloud.action(ids[s.name], {"os-stop": None})
        _wait("the stopped pet to be SHUTOFF", lambda: all(
            cloud.servers()[s.name]["status"] == "SHUTOFF" for s in SERVERS if s.stopped), 60)
        self.timings["boot the servers"] = time.monotonic() - t
        servers = cloud.servers()
        self.before = {s.name: _where(servers[s.name]) for s in SERVERS}
        self.p.table(["SERVER", "HOST", "STATUS", "PET?", "WHY"], [
            [s.name, *self.before[s.name], "yes" if s.pet else "no", s.why] for s in SERVERS])

    # ------------------------------------------------------------------ the failure
    def _fail_and_follow(self, cloud: Cloud) -> None:
        v = self.victim
        self.p.heading(f"4. Power failure of {v}: live timeline")
        self.p.say("Times are seconds after the power cut.")
        follower = petguard_proc.LogFollower(self.log_file)
        watch = _Watch(self, cloud, follower)
        self.p.t0 = time.time()
        self.lab.fail(v, "power")
        self.p.event(self.p.t0, f"Power of {v} cut: its BMC reports power off and its "
                     "nova-compute is dead. Its servers are gone with it.")
        deadline = time.monotonic() + self.options.timeout
        while not watch.complete():
            if time.monotonic() > deadline:
                raise DemoError(
                    f"recovery not complete after {self.options.timeout:.0f} s; still waiting for: "
                    f"{watch.missing()}; see {self.log_file}")
            if self.daemon.pid is None:
                raise DemoError(f"petguard-daemon died; see {self.log_file} and "
                                f"{self.daemon.outfile}")
            time.sleep(0.3)
            watch.poll()
        total = time.time() - self.p.t0
        self.timings["power cut -> every pet recovered"] = total
        self.p.say(f"\nRecovery complete {total:.1f} s after the power cut.")

    # ------------------------------------------------------------------ the result
    def _report(self, cloud: Cloud) -> None:
        v = self.victim
        self.p.heading("5. Result: every server, before -> after")
        incident, moves, left = self._incident()
        servers = cloud.servers()
        since = self.p.t0 or 0.0
        counts: dict[str, int] = {}
        for m in cloud.evacuations(v):
            if _epoch(m.get("created_at")) >= since - 1:
                counts[m["instance_uuid"]] = counts.get(m["instance_uuid"], 0) + 1
        rows, table = [], []
        for s in SERVERS:
            raw = servers.get(s.name, {})
            after = _where(raw) if raw else ("-", "deleted")
            n = counts.get(str(raw.get("id")), 0)
            if s.name in moves:
                times = f"{n} evacuation{'s' if n != 1 else ''} in Nova"
                outcome = f"evacuated ({times}); {moves[s.name]}"
            elif s.name in left:
                outcome = f"left alone: {left[s.name]}"
            else:
                outcome = f"not on {v}: untouched"
            if s.grouped and s.on_victim:
                partner = servers.get("demo-anti-2", {})
                apart = _where(partner)[0] != after[0]
                outcome += f"; {'kept apart from' if apart else 'NEXT TO'} demo-anti-2"
            table.append([s.name, "yes" if s.pet else "no", " ".join(self.before[s.name]),
                          " ".join(after), outcome])
            rows.append({"name": s.name, "pet": s.pet, "before": self.before[s.name],
                         "after": after, "evacuations": n, "outcome": outcome})
        self.p.table(["SERVER", "PET?", "BEFORE", "AFTER", "OUTCOME"], table)
        svc = cloud.services().get(v, {})
        self.p.say(f"\n{v} in Nova: service {svc.get('state')}, {svc.get('status')}, forced_down="
                   f"{svc.get('forced_down')}; reason: {svc.get('disabled_reason')!r}")
        self.p.say(f"{v}'s BMC: power {'on' if self.lab.bmc_power(v) else 'off'}.")
        self.p.say(f"petguard's record: `petguard-manage --config-file {self.conf} incident-show "
                   f"{incident}`")
        self.result.update(incident=incident, servers=rows, victim_service=svc)

    def _incident(self) -> tuple[int, dict[str, str], dict[str, str]]:
        """The newest incident of the victim, its moves (name -> status/dest) and skips."""
        listing = petguard_proc.manage(self.conf, "incident-list", "--host", self.victim)
        first = listing.split()
        if not first or not first[0].isdigit():
            raise DemoError(f"petguard recorded no incident for {self.victim}")
        incident = int(first[0])
        moves: dict[str, str] = {}
        left: dict[str, str] = {}
        for line in petguard_proc.manage(self.conf, "incident-show", str(incident)).splitlines():
            move = re.match(r"^\s+move (\S+)\s+(\S+)\s+-> (\S+)\s*(.*)$", line)
            skip = re.match(r"^\s+left (\S+)\s+(.*)$", line)
            if move:
                name, status, dest, reason = move.groups()
                moves[name] = f"petguard: {status} on {dest}" + (f" ({reason})" if reason else "")
            elif skip:
                left[skip.group(1)] = skip.group(2)
        return incident, moves, left

    # ------------------------------------------------------------------ clean-up
    def _clean_up(self, cloud: Cloud) -> None:
        v = self.victim
        self.p.heading(f"6. Clean-up: {v} back into service")
        t = time.monotonic()
        self.p.say(f"Powering {v} on: its nova-compute starts and destroys the guests that were "
                   "evacuated (Nova marks their migrations 'completed'); asking petguard to "
                   f"restore it (`petguard-manage request {v} restore`) ...")
        try:
            scenario.restore_host(self.lab, cloud, self.conf, v,
                                  "petguard-lab demo: end of the demo")
        except LabError as exc:
            raise DemoError(str(exc)) from exc
        self.p.say(f"{v} is up and enabled again; petguard watches it.")
        removed = cloud.delete_everything()
        self.p.say(f"Deleted the {removed} demo servers and the server group.")
        self.timings["clean-up (restore + delete)"] = time.monotonic() - t

    def _stop_daemon(self) -> None:
        pid = self.daemon.pid
        if pid is None:
            return
        killed = self.daemon.stop()
        self.p.say(f"Stopped petguard-daemon (pid {pid}){' with SIGKILL' if killed else ''}.")


class _Watch:
    """Follows Nova and petguard's log during the failure and prints what happens, once each."""

    def __init__(self, demo: Demo, cloud: Cloud, follower: petguard_proc.LogFollower) -> None:
        self.demo = demo
        self.cloud = cloud
        self.follower = follower
        self.seen: set[str] = set()
        self.finished = False
        self.pets = {s.name for s in SERVERS if s.pet and s.on_victim}
        self.settled: set[str] = set()

    def once(self, key: str, at: float, text: str, *details: str) -> None:
        if key not in self.seen:
            self.seen.add(key)
            self.demo.p.event(at, text, *details)

    def complete(self) -> bool:
        return self.finished and self.settled == self.pets

    def missing(self) -> str:
        parts = [f"{n} to be back" for n in sorted(self.pets - self.settled)]
        if not self.finished:
            parts.append("petguard to finish the evacuation")
        return ", ".join(parts) or "nothing"

    def poll(self) -> None:
        for entry in self.follower.entries():
            self._log(entry)
        now = time.time()
        v = self.demo.victim
        svc = self.cloud.services().get(v, {})
        if svc.get("state") == "down" and not svc.get("forced_down"):
            self.once("nova-down", now, f"Nova now reports nova-compute on {v} as down (no "
                      f"heartbeat for {self.demo.lab.cfg.service_down_time} s, its "
                      "service_down_time).")
        if svc.get("forced_down") and svc.get("status") == "disabled":
            self.once("nova-disabled", now, f"Nova shows {v} forced down and disabled. Reason:",
                      f"\"{svc.get('disabled_reason')}\"")
        servers = self.cloud.servers()
        for name in sorted(self.pets - self.settled):
            raw = servers.get(name)
            if raw is None:
                continue
            host, status = _where(raw)
            if host != v and raw.get("OS-EXT-STS:task_state") is None and \
                    status == self.demo.before[name][1]:
                self.settled.add(name)
                was = self.demo.before[name]
                self.once(f"pet-{name}", now, f"{name} is {status} on {host} (was {was[1]} on "
                          f"{was[0]}).")

    def _log(self, e: petguard_proc.LogLine) -> None:
        # petguard names a host "cmp1" or, during an incident, "cmp1 [incident 7]".
        v = re.escape(self.demo.victim) + r"(?: \[incident \d+\])?"
        name = self.demo.victim
        m = e.message
        rules: list[tuple[str, Callable[[re.Match[str]], tuple[str, ...]]]] = [
            (rf"^{v}: suspect, looks down: (?:nova: )?(.*?)(?: \(down for \d+ s\))?; next:.*after "
             r"the (\d+) s grace", lambda g: (
                f"petguard suspects {name}: {g[1]}.",
                f"It waits {g[2]} s (its grace period) before fencing, in case the host comes "
                "back.")),
            (rf"^{v}: failed \((?:nova: )?(.*)\); fencing it now", lambda g: (
                f"petguard decides to fence {name}: {g[1]}.",)),
            (rf"^fence .*\(host {v}\): power-off sent and accepted", lambda g: (
                f"petguard sent 'power off' to {name}'s BMC (IPMI); it now reads the power "
                "state back.",)),
            (rf"^{v}: fenced: (?:fence level \d+ of \d+: )?power read back OFF (\d+) times",
             lambda g: (
                f"Fenced: {name}'s BMC read back power OFF {g[1]} times in a row (lab BMC: "
                f"power {'on' if self.demo.lab.bmc_power(name) else 'off'}).",
                "Only now may its servers be started elsewhere.")),
            (rf"^{v}: fence not confirmed: (.*)", lambda g: (
                f"petguard could NOT confirm that {name} is off: {g[1]}",)),
            (rf"^{v}: compute service forced down", lambda g: (
                f"petguard forced the nova-compute service on {name} down (Nova stops "
                "scheduling to it at once).",)),
            (rf"^{v}: compute service disabled", lambda g: (
                f"petguard disabled the nova-compute service on {name}.",)),
            (rf"^{v}: plan: (\d+) pet\(s\) to evacuate \((.*?)\), (\d+) server\(s\) left: (.*)$",
             self._plan),
            (rf"^{v}: evacuation of (\S+) \(\S+\) accepted by Nova", lambda g: (
                f"Nova accepted the evacuation of {g[1]}.",)),
            (rf"^{v}: evacuation of (\S+) \(\S+\) failed: (.*?); next:", lambda g: (
                f"The evacuation of {g[1]} FAILED: {g[2]}",)),
            (rf"^{v}: evacuation finished: (.*)", lambda g: (
                f"petguard: evacuation of {name} finished: {g[1]}.",)),
            (r"^mass-failure brake engaged", lambda g: (f"petguard: {m}",)),
        ]
        for pattern, render in rules:
            match = re.search(pattern, m)
            if match:
                if "evacuation finished" in pattern:
                    self.finished = True
                self.once(f"log-{m}", e.at, *render(match))
                return
        if e.level in ("WARNING", "ERROR") and name in m:
            self.once(f"log-{m}", e.at, f"petguard {e.level.lower()}: {m}")

    @staticmethod
    def _plan(g: re.Match[str]) -> tuple[str, ...]:
        details = [f"{g[1]} pet(s) to move, highest priority first: {g[2]}."]
        if g[3] != "0":
            details.append(f"{g[3]} server(s) left where they are:")
            details += [f"  {item}" for item in g[4].split("; ")]
        return ("petguard planned the evacuation:", *details)


def run(lab: Lab, options: DemoOptions) -> int:
    """``petguard-lab demo``; returns the exit status."""
    out = sys.stderr if options.json else sys.stdout
    demo = Demo(lab, options, out)
    try:
        result = demo.run()
    except (LabError, OSError) as exc:
        print(f"\npetguard-lab demo: {exc}", file=out, flush=True)
        print("The lab stays as it is for a look (petguard-daemon was stopped): "
              "`petguard-lab demo` again cleans up and starts over, `petguard-lab down` stops "
              "the lab.", file=out, flush=True)
        return 1
    if options.json:
        print(json.dumps(result, indent=2, default=str))
    if options.keep:
        out.write(
            f"\n--keep: the lab, the servers and the fenced {demo.victim} stay as they are.\n"
            f"  petguard-manage --config-file {lab.conf_file} host-list\n"
            "  petguard-lab status\n"
            "Run `petguard-lab demo` again to start over, or `petguard-lab down` to stop "
            "the lab.\n")
    return 0

