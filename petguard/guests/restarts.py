"""The instance-health executor: applies ``petguard.guests.policy`` to the agents' events (procedure).

``InstanceHealth.run_once()`` takes the agents' unprocessed domain events (oldest first), runs the
pure policy on each, and carries out what it decides:

* a restart is written ahead (the server's state says "restart pending" and the restart is counted)
  before Nova is asked, so the limits hold across a daemon restart; Nova's answer then clears the
  pending mark and the restart is recorded as an event (with Nova's request id);
* a restart that Nova could not be asked for (Nova unreachable) stays pending and is tried again on
  the next run, until ``restart_timeout``; one Nova refused is recorded as ``instance_restart_failed``;
* events that only need recording become journal events (which reach the webhooks).

Events are marked processed after their batch; a crash in between replays them, and the policy knows
a failure it already handled. ``start()`` runs it in its own thread every ``interval`` seconds (its
own lane: a slow Nova never delays the control loop's tick).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Protocol

from petguard.clock import Clock
from petguard.cloud import Server
from petguard.compute import Compute
from petguard.duty import DutyThread
from petguard.errors import NotFound, NovaUnavailable, PetguardError
from petguard.guests import policy as health
from petguard.guests.policy import AgentEventRecord, Assessment, HealthPolicy, Intent, RestartHow, ServerHealth
from petguard.journal import HostRecord

LOG = logging.getLogger(__name__)


class InstanceJournal(Protocol):
    """What the executor needs from the journal (``SqlStore`` implements it)."""

    def pending_agent_events(self, limit: int = 200) -> list[AgentEventRecord]: ...

    def finish_agent_events(self, ids: Sequence[int], at: float) -> None: ...

    def instance_health(self, server_ids: Sequence[str]) -> dict[str, ServerHealth]: ...

    def pending_restarts(self) -> list[ServerHealth]: ...

    def save_instance_health(self, states: Sequence[ServerHealth], at: float) -> None: ...

    def record_event(self, host: str | None, incident_id: int | None, kind: str, message: str, at: float) -> None: ...

    def load_hosts(self) -> dict[str, HostRecord]: ...


class _NovaDown(Exception):
    """Nova could not be read: stop this run; the event is processed again next time."""


class InstanceHealth(DutyThread):
    """Runs the instance-health policy over the agents' events."""

    thread_name = "instance-health"

    def __init__(
        self,
        compute: Compute,
        journal: InstanceJournal,
        clock: Clock,
        policy: HealthPolicy,
        *,
        batch: int = 200,
        interval: float = 1.0,
    ) -> None:
        self._compute = compute
        self._journal = journal
        self._clock = clock
        self._policy = policy
        self._batch = batch
        self._interval = interval
        super().__init__()

    # -- its own lane (DutyThread runs _run) ----------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once() >= self._batch
            except PetguardError as exc:
                LOG.warning("instance health: %s; trying again in %.0f s", exc, self._interval)
                busy = False
            except Exception:
                LOG.exception("instance health: unexpected error; trying again in %.0f s", self._interval)
                busy = False
            if not busy:
                self._stop.wait(self._interval)

    # -- one run --------------------------------------------------------------------------------
    def run_once(self) -> int:
        """Process one batch of events (and retry pending restarts); returns how many events."""
        now = self._clock.now()
        self._retry_pending(now)
        records = self._journal.pending_agent_events(self._batch)
        if not records:
            return 0
        hosts = self._journal.load_hosts()
        states = self._journal.instance_health(sorted({r.event.domain_uuid for r in records}))
        changed: dict[str, ServerHealth] = {}
        done: list[int] = []
        try:
            for record in records:
                self._handle(record, states, changed, hosts, now)
                done.append(record.id)
        except _NovaDown as exc:
            LOG.warning("instance health: cannot read Nova (%s); the event waits for the next run", exc)
        finally:
            self._journal.save_instance_health(list(changed.values()), now)
            self._journal.finish_agent_events(done, now)
        return len(done)

    def _handle(
        self,
        record: AgentEventRecord,
        states: dict[str, ServerHealth],
        changed: dict[str, ServerHealth],
        hosts: dict[str, HostRecord],
        now: float,
    ) -> None:
        uuid = record.event.domain_uuid
        before = states.get(uuid)
        state = dataclasses.replace(before or ServerHealth(uuid), host=record.host)
        assessment = health.assess(state, record.event, self._policy, now)
        if assessment.intent is Intent.RESTART:
            assessment = self._gate(assessment, record.host, hosts, now)
        if assessment.intent is Intent.NOTE:
            self._note(record.host, assessment, now)
        elif assessment.message:
            LOG.debug("instance health: %s", assessment.message)
        new = assessment.state
        if assessment.intent is Intent.RESTART and new.pending is not None:
            new = self._restart(new, assessment.message, now)
        if new != before:
            changed[uuid] = new
        states[uuid] = new

    def _gate(self, assessment: Assessment, host: str, hosts: dict[str, HostRecord], now: float) -> Assessment:
        server = self._server(assessment.state.server_id)
        record = hosts.get(host)
        how, why = health.gate(server, host, record.host.state if record is not None else None, self._policy)
        if how is None:
            return health.skipped(assessment.state, why)
        pending = health.restart_requested(assessment.state, how, now)
        return dataclasses.replace(assessment, state=pending, message=f"{assessment.message}: {why}")

    def _server(self, server_id: str) -> Server | None:
        try:
            return self._compute.get_server(server_id)
        except NotFound:
            return None
        except NovaUnavailable as exc:
            raise _NovaDown(str(exc)) from exc

    def _note(self, host: str, assessment: Assessment, now: float) -> None:
        log = LOG.warning if assessment.kind != "instance_restart_skipped" else LOG.info
        log("instance health: %s", assessment.message)
        self._journal.record_event(host, None, assessment.kind, assessment.message, now)

    # -- restarts -------------------------------------------------------------------------------
    def _restart(self, state: ServerHealth, message: str, now: float) -> ServerHealth:
        """Write ahead, ask Nova, record the answer."""
        self._journal.save_instance_health([state], now)
        return self._send(state, message, now)

    def _send(self, state: ServerHealth, message: str, now: float) -> ServerHealth:
        how = state.pending
        assert how is not None
        try:
            if how is RestartHow.START:
                request_id = self._compute.start_server(state.server_id)
            else:
                request_id = self._compute.reboot_server(state.server_id, hard=True)
        except NovaUnavailable as exc:
            LOG.warning("instance health: %s; Nova did not answer (%s); trying again on the next run", message, exc)
            return state
        except PetguardError as exc:
            failed = dataclasses.replace(state, pending=None, phase=health.Phase.LEFT)
            text = f"{message}; Nova refused the {how.value.replace('_', ' ')}: {exc}; restart it by hand"
            LOG.error("instance health: %s", text)
            self._journal.record_event(state.host, None, "instance_restart_failed", text, now)
            return failed
        text = f"{message}; Nova accepted the {how.value.replace('_', ' ')} ({request_id})"
        LOG.warning("instance health: %s", text)
        self._journal.record_event(state.host, None, "instance_restart", text, now)
        sent = health.restart_sent(state)
        self._journal.save_instance_health([sent], now)
        return sent

    def _retry_pending(self, now: float) -> None:
        for state in self._journal.pending_restarts():
            label = state.name or state.server_id
            started = state.restarts[-1] if state.restarts else now
            if now - started > self._policy.restart_timeout:
                text = (
                    f"{label}: Nova did not accept the restart within {self._policy.restart_timeout:.0f} s "
                    "([instance_health] restart_timeout); petguard stops trying: restart it by hand"
                )
                LOG.error("instance health: %s", text)
                self._journal.record_event(state.host, None, "instance_restart_failed", text, now)
                self._journal.save_instance_health(
                    [dataclasses.replace(state, pending=None, phase=health.Phase.LEFT)], now
                )
                continue
            self._send(state, f"{label}: {state.failure}; retrying the restart", now)
