"""Nova said no, or the cloud cannot answer now: the one place an evacuation's setback is judged (pure).

An evacuation that did not happen is one of three things, and petguard must never mistake the second
for the first (that is how pets were given up while Keystone, nova-conductor, placement or RabbitMQ was
briefly down, docs/evacuation.md "When the cloud cannot answer"):

* **final** — Nova refused for a reason that will not change by waiting: a 4xx with a reason, or
  NoValidHost while other computes are up and placement answers ("no room stays no room");
* **wait** — the cloud cannot answer now: an unreachable or 5xx API, a refused token, a dependency
  failure inside Nova (``MessagingTimeout``, placement not responding, a database error), or a
  NoValidHost while no other compute is up in Nova's records or placement does not answer. A wait is
  never an attempt: the move backs off and asks again when the cloud answers, up to
  ``[evacuation] cloud_wait_timeout``, always after the checks of Nova's records that keep it exactly
  once;
* **retry** — Nova moved nothing for a reason that asking again may cure (the late server-group check
  bounced it, or a failure nobody recognises while the cloud looks healthy): asked again, counted
  against ``max_request_attempts``.

A request Nova took can also die inside Nova without any fault on the server: nova-conductor failed it
(Keystone gone while it asked Neutron, a database error) and left the migration 'accepted' and the
server 'rebuilding' for ever. ``died_in_conductor`` reads Nova's own record of the request (its
instance action): only when the conductor's step finished with an error and no compute ever started
the request is it proved that the request can no longer run, and asking again (after resetting the
server's task) is safe. Anything less (no conductor event: nova-api may still hold the cast; an
unfinished one; a compute event) proves nothing and the request is never sent again by petguard
alone. For those, an operator who has ended whatever may still hold the request (restarted nova-api
and nova-conductor) vouches for it (``petguard host resend HOST``): ``resend_on_the_operators_word`` then
still refuses when Nova's record shows a compute took the request, or that the server's newest
evacuation is someone else's.

The cloud's health is read, not guessed from Nova's fault text: ``CloudHealth`` is what the runner saw
of Nova's compute services and of placement itself when the setback was first seen, and
``sick_in_flight`` the first problem it saw while Nova held the request (an answer made during an
outage petguard could not watch, read once the cloud is back, is still judged a wait).
"""

from __future__ import annotations

import dataclasses
import enum

from petguard.cloud import RequestTrace
from petguard.errors import PetguardError, Temporary

#: nova-conductor's event of an evacuation (``rebuild_server``); a compute's events start with ``compute_``.
CONDUCTOR_EVENT = "rebuild_server"

#: Faults (lower case) of an evacuation that Nova's late server-group check on the destination refused:
#: the scheduler chose from a stale view of where the group's members are. Nova moved nothing.
SCHEDULING_RACE_FAULTS = ("group policy was violated",)

#: Faults (lower case) that say a part of the control plane failed while Nova handled the request:
#: RPC to the scheduler timed out (conductor or scheduler restarted, RabbitMQ gone), placement or the
#: database did not answer, a service could not reach Keystone or Neutron.
DEPENDENCY_FAULTS = (
    "messagingtimeout",
    "timed out waiting for a reply",
    "placement api service is not responding",
    "placement service",
    "dbconnectionerror",
    "connection refused",
    "connectfailure",
    "unable to establish connection",
    "service unavailable",
    "gateway timeout",
    "amqp",
)

#: Faults (lower case) of a scheduler that found no host.
NO_VALID_HOST_FAULTS = ("no valid host", "novalidhost")


class Judgement(enum.Enum):
    FINAL = "final"  # Nova said no: fail the move (or fall back from its target hint)
    WAIT = "wait"  # the cloud cannot answer now: back off, not an attempt
    RETRY = "retry"  # nothing moved; asking again may cure it: counted against max_request_attempts


@dataclasses.dataclass(frozen=True)
class Verdict:
    judgement: Judgement
    reason: str


@dataclasses.dataclass(frozen=True)
class CloudHealth:
    """What the runner saw of the cloud's ability to place a server (from Nova's and placement's answers).

    ``computes_up``: nova-compute services other than the failed host that Nova reports up and that
    are not forced down (enabled or not: a disabled compute still proves heartbeats flow);
    None when Nova's service list could not be read. ``placement``: "" when placement answered,
    else why not.
    """

    computes_up: int | None
    placement: str = ""

    @property
    def healthy(self) -> bool:
        return bool(self.computes_up) and not self.placement

    def problem(self) -> str:
        """Why the cloud cannot place a server now ("" when healthy)."""
        if self.computes_up is None:
            return "Nova's compute services cannot be read"
        if self.computes_up == 0:
            return (
                "no other nova-compute is up in Nova's records (their heartbeats are stale: "
                "RabbitMQ or Nova's database down?)"
            )
        if self.placement:
            return f"placement does not answer ({self.placement})"
        return ""


def _has(fault: str, markers: tuple[str, ...]) -> bool:
    lowered = fault.lower()
    return any(marker in lowered for marker in markers)


def _lost_scheduling_race(fault: str) -> bool:
    """Nova's late server-group check on the destination refused the server (Nova moved nothing)."""
    return _has(fault, SCHEDULING_RACE_FAULTS)


def judge_nothing_moved(
    fault: str, health: CloudHealth, attempts: int, max_attempts: int, sick_in_flight: str = ""
) -> Verdict:
    """An evacuation Nova ended with the server still on the failed host (its migration failed or the
    server is ERROR there, nothing in flight): final, wait, or ask again?

    ``attempts`` is how many requests Nova has taken for this move so far. ``sick_in_flight`` is the
    first problem the runner saw of the cloud while Nova held the request ("" if it saw none): Nova's
    answer was made then, so a cloud that looks healthy by the time the answer is read does not make
    it meaningful (a NoValidHost from a scheduler that saw no compute up is not "no room").
    """
    shown = fault or "no fault recorded"
    if _has(fault, DEPENDENCY_FAULTS):
        return Verdict(Judgement.WAIT, f"Nova could not finish the request for want of a dependency: {shown}")
    if not health.healthy:
        return Verdict(Judgement.WAIT, f"{health.problem()}; Nova's answer then: {shown}")
    if sick_in_flight and not _lost_scheduling_race(fault):
        return Verdict(
            Judgement.WAIT,
            f"the cloud could not place servers while Nova handled the request ({sick_in_flight}); "
            f"Nova's answer then: {shown}",
        )
    if _lost_scheduling_race(fault):
        if attempts < max_attempts:
            return Verdict(Judgement.RETRY, f"Nova's late server-group check refused it: {shown}")
        return Verdict(Judgement.FINAL, f"Nova's late server-group check refused it {attempts} times: {shown}")
    if _has(fault, NO_VALID_HOST_FAULTS):
        return Verdict(
            Judgement.FINAL,
            f"no host can take it while {health.computes_up} other compute(s) are up and placement answers: {shown}",
        )
    if attempts < max_attempts:
        return Verdict(Judgement.RETRY, f"Nova moved nothing: {shown}")
    return Verdict(Judgement.FINAL, f"Nova moved nothing after {attempts} request(s): {shown}")


def judge_request_error(exc: PetguardError, unanswered: str = "Nova did not take the request") -> Verdict:
    """Nova's synchronous answer to an evacuate request that it did not take: wait, or final?

    Temporary errors (unreachable, timeouts, 5xx: e.g. nova-api's call to Neutron failing while
    Keystone is down) are a wait; so is a 401 (Keystone refused petguard's token or credentials:
    while Keystone recovers, or until an operator fixes the credentials, with an alert). Any other
    refusal (4xx) is final.
    """
    if isinstance(exc, Temporary):
        return Verdict(Judgement.WAIT, f"{unanswered}: {exc}")
    if exc.context.get("status") == 401:
        return Verdict(Judgement.WAIT, f"Keystone refused petguard's credentials: {exc}")
    return Verdict(Judgement.FINAL, f"Nova refused the evacuation: {exc}")


def judge_before_request(health: CloudHealth) -> Verdict | None:
    """Hold a request the cloud cannot place now (a WAIT), or None to send it.

    Sending into a cloud whose computes all look down only earns a NoValidHost, and during a RabbitMQ
    outage the request may be dropped between nova-api and nova-conductor.
    """
    if health.healthy:
        return None
    return Verdict(Judgement.WAIT, health.problem())


def died_in_conductor(trace: RequestTrace, request_id: str) -> str | None:
    """Why Nova's record proves that request ``request_id`` can no longer run, or None.

    Proved only when ``trace`` is that request, nova-conductor's step of it finished with an error,
    and no compute ever started it (the conductor casts to the compute as its very last step).
    """
    if trace.request_id != request_id:
        return None  # the server's newest request is someone else's (an operator's own evacuate)
    conductor = [e for e in trace.events if e.name == CONDUCTOR_EVENT]
    if any(e.name.startswith("compute_") for e in trace.events):
        return None
    if not conductor or not all(e.finished and e.result == "Error" for e in conductor):
        return None
    return f"nova-conductor ended request {request_id} with an error and no compute started it"


def resend_on_the_operators_word(
    trace: RequestTrace | None, request_id: str | None, since: float
) -> tuple[bool, str]:
    """Whether a stuck request may be sent again now that an operator vouched nothing in Nova still
    holds it (``petguard host resend``), and why (the refusal names what Nova's record shows).

    ``trace`` is the server's newest evacuate request in Nova's record (None: Nova has none),
    ``request_id`` the move's request as petguard knows it (None: nova-api never answered), ``since``
    the moment (Nova's clock, with the skew allowance) from which a request belongs to this incident.
    The operator's word replaces only the proof that nothing will deliver the request late; what Nova
    recorded still counts: a compute that started it, or a newer request that is not petguard's.
    """
    older = trace is not None and trace.started_at is not None and trace.started_at < since
    if trace is not None and trace.request_id != request_id and older:
        trace = None  # an earlier failure's evacuation, long over: nothing of this incident's
    if trace is None:
        return True, "on the operator's word: Nova has no record of the request (nova-api never finished it)"
    if request_id is not None and trace.request_id != request_id:
        return False, f"the server's newest evacuation is request {trace.request_id}, not petguard's: someone else's"
    started = sorted({e.name for e in trace.events if e.name.startswith("compute_")})
    if started:
        return False, f"a compute took request {trace.request_id} ({', '.join(started)}): it runs or ran there"
    return True, f"on the operator's word: no compute ever started request {trace.request_id}"
