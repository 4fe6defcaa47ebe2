"""The runner never gives a pet up while the cloud is merely down (evacuate.outage, docs/evacuation.md).

Each test stops a part of the control plane in the in-memory Nova while an incident's moves run: the
pets must all be recovered when it returns, each with exactly one evacuation Nova carried out, and
the wait must have been announced. Controls: a real refusal (NoValidHost in a healthy cloud) is still
final at once, and a wait has a deadline.
"""

from __future__ import annotations

import dataclasses

import pytest

from petguard.cloud import ActionEvent, PowerGoal, RequestTrace
from petguard.errors import NovaError, NovaUnavailable
from petguard.evacuate.run import Evacuator, RunPolicy
from petguard.journal import STUCK, MoveRecord, MoveStatus
from tests.fakes import FakeClock, FakeCompute
from tests.unit.evacuate.stubs import MovesStore

POLICY = RunPolicy(max_parallel=2, poll_interval=1.0, move_timeout=600, stuck_after=90, cloud_wait_timeout=1800)


class _Nova(FakeCompute):
    """The in-memory Nova with outages that end at a moment of the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(["cmp1", "cmp2", "cmp3", "cmp4"], evacuation_steps=3)
        self.clock = clock
        self.computes_down_until = 0.0  # every other compute's heartbeat stale (RabbitMQ, Nova's DB)
        self.placement_down_until = 0.0
        self.is_alive = lambda host: host != "cmp1" and self.clock.now() >= self.computes_down_until

    def check_placement(self) -> str:
        self.placement_down = self.clock.now() < self.placement_down_until
        return super().check_placement()

    def get_server(self, server_id: str):  # type: ignore[no-untyped-def]
        self.placement_down = self.clock.now() < self.placement_down_until
        return super().get_server(server_id)


def incident(names: list[str]) -> tuple[_Nova, MovesStore, FakeClock]:
    clock = FakeClock(start=1_000.0)
    nova = _Nova(clock)
    for name in names:
        nova.add_server(name, "cmp1", metadata={"petguard:pet": "true"})
    nova.services["cmp1"].forced_down = True
    moves = [MoveRecord(1, f"{n}-id", n, 0, PowerGoal.RUNNING, MoveStatus.PLANNED, "cmp1") for n in names]
    return nova, MovesStore(moves), clock


def run(nova: FakeCompute, store: MovesStore, clock: FakeClock, policy: RunPolicy = POLICY) -> None:
    Evacuator(nova, store, clock, policy).run(1, since=0.0)  # type: ignore[arg-type]


def assert_recovered_once(nova: FakeCompute, store: MovesStore) -> None:
    for move in store.rows.values():
        assert move.status is MoveStatus.DONE, move
        assert nova.servers[move.server_id].host not in (None, "cmp1")
        done = [m for m in nova.migrations if m.server_id == move.server_id and m.status == "done"]
        assert len(done) == 1, (move.server_id, nova.migrations)
        assert move.waiting == "" and move.waiting_since is None


@pytest.mark.fault(
    "NOVA-01",
    guarantee="4",
    injected="nova-api answers every evacuate with HTTP 500 for a while (Keystone down: its call to Neutron fails)",
    expected="a wait, not an attempt: every pet recovered once when it answers again; the wait announced",
)
def test_a_500_from_nova_api_is_a_wait_not_an_attempt() -> None:
    nova, store, clock = incident(["a", "b"])
    nova.evacuate_errors = [NovaUnavailable("evacuate: HTTP 500: ConnectFailure (fake)", status=500)] * 8
    run(nova, store, clock)
    assert_recovered_once(nova, store)
    assert all(m.attempts == 1 for m in store.rows.values())  # 8 refusals, one request Nova took each
    assert store.kinds().count("waiting_for_cloud") == 1 and store.kinds().count("cloud_answers") == 1
    assert "evacuation_failed" not in store.kinds()


@pytest.mark.fault(
    "NOVA-02",
    guarantee="4",
    injected="Keystone refuses petguard's token (HTTP 401) on the evacuate requests for a while",
    expected="a wait with an announcement, not a failure; the pets recovered once Keystone accepts it again",
)
def test_a_refused_token_is_a_wait() -> None:
    nova, store, clock = incident(["a"])
    nova.evacuate_errors = [NovaError("evacuate: Keystone refused to authenticate (fake)", status=401)] * 3
    run(nova, store, clock)
    assert_recovered_once(nova, store)
    assert "Keystone refused" in store.events[0][1]


@pytest.mark.fault(
    "NOVA-03",
    guarantee="4",
    injected="nova-conductor's call to the scheduler times out (MessagingTimeout): migration failed, server ERROR "
    "on the dead host",
    expected="a wait: asked again after Nova's records show nothing moved; exactly one successful evacuation",
)
def test_a_messaging_timeout_is_asked_again_not_final() -> None:
    nova, store, clock = incident(["a", "b"])
    nova.scheduler_faults = ["MessagingTimeout: Timed out waiting for a reply to message ID 1f2e (fake)"]
    run(nova, store, clock)
    assert_recovered_once(nova, store)
    assert sum(nova.evacuate_calls.values()) == 3  # one of them twice: the first ended failed


@pytest.mark.fault(
    "NOVA-04",
    guarantee="4",
    injected="placement stopped mid-evacuation: the scheduler answers NoValidHost, placement does not answer "
    "petguard either",
    expected="NoValidHost judged a wait (placement silent), not 'no room'; every pet recovered once placement is "
    "back",
)
def test_no_valid_host_while_placement_is_silent_is_a_wait() -> None:
    nova, store, clock = incident(["a", "b", "c"])
    nova.placement_down_until = clock.now() + 2  # down when the scheduler runs, back 2 s later... and
    nova.evacuation_steps = 2
    run(nova, store, clock)
    assert_recovered_once(nova, store)
    assert "placement" in store.events[0][1]


@pytest.mark.fault(
    "NOVA-05",
    guarantee="4",
    injected="every other compute looks down in Nova (RabbitMQ stopped) when the fence is confirmed, for 40 s",
    expected="no evacuation request is sent while no compute is up; all sent once they are, each recovered once",
)
def test_requests_are_held_while_no_other_compute_is_up() -> None:
    nova, store, clock = incident(["a", "b"])
    back = clock.now() + 40
    nova.computes_down_until = back
    sent_at: list[float] = []
    real_evacuate = nova.evacuate

    def evacuate(server_id: str, host: str | None = None) -> str:
        sent_at.append(clock.now())
        return real_evacuate(server_id, host)

    nova.evacuate = evacuate  # type: ignore[method-assign]
    run(nova, store, clock)
    assert_recovered_once(nova, store)
    assert sent_at and min(sent_at) >= back
    assert "no other nova-compute is up" in store.events[0][1]


@pytest.mark.fault(
    "NOVA-06",
    guarantee="4",
    injected="a NoValidHost produced while every other compute looked down (RabbitMQ back, computes not yet "
    "reported), judged after they came back",
    expected="judged when first seen (a wait), so the request is sent again once computes are up; no pet lost",
)
def test_no_valid_host_seen_during_the_outage_is_judged_then() -> None:
    nova, store, clock = incident(["a"])
    nova.evacuation_steps = 2
    real_evacuate = nova.evacuate

    def evacuate(server_id: str, host: str | None = None) -> str:
        request = real_evacuate(server_id, host)
        if nova.evacuate_calls[server_id] == 1:  # the computes' heartbeats go stale right after it is taken
            nova.computes_down_until = clock.now() + 30
        return request

    nova.evacuate = evacuate  # type: ignore[method-assign]
    run(nova, store, clock)
    assert_recovered_once(nova, store)
    assert nova.evacuate_calls["a-id"] == 2


@pytest.mark.fault(
    "CP-08",
    guarantee="4",
    injected="Nova's database down right after a request is taken: the scheduler answers NoValidHost (no compute "
    "up) while petguard cannot read anything, and by its next look every compute is up again",
    expected="judged by what the cloud was while Nova handled the request (a wait), not by its state at the next "
    "look: sent again, the pet recovered once",
)
def test_no_valid_host_produced_while_petguard_could_not_look_is_a_wait() -> None:
    nova, store, clock = incident(["a"])
    nova.evacuation_steps = 2
    outage_until = [0.0]
    real_evacuate, real_get = nova.evacuate, nova.get_server

    def evacuate(server_id: str, host: str | None = None) -> str:
        request = real_evacuate(server_id, host)
        if nova.evacuate_calls[server_id] == 1:  # Nova's database goes down right after it is taken
            outage_until[0] = nova.computes_down_until = clock.now() + 20
        return request

    def get_server(server_id: str):  # type: ignore[no-untyped-def]
        if clock.now() < outage_until[0]:
            with nova._lock:
                nova._progress(server_id)  # Nova's scheduler goes on; petguard cannot see it
            raise NovaUnavailable("show server: HTTP 503 (fake: Nova's database is down)", status=503)
        return real_get(server_id)

    nova.evacuate = evacuate  # type: ignore[method-assign]
    nova.get_server = get_server  # type: ignore[method-assign]
    run(nova, store, clock)
    assert_recovered_once(nova, store)
    assert nova.evacuate_calls["a-id"] == 2
    assert "evacuation_failed" not in store.kinds()


def test_an_outage_during_the_request_buys_one_more_request_not_a_loop() -> None:
    """Control: no room stays no room. An outage while Nova held the first request earns the pet one
    more request; the second NoValidHost, made in a healthy cloud, is final."""
    nova, store, clock = incident(["a"])
    nova.evacuation_steps = 5  # Nova answers at the 4th look, 3 s after taking the request
    for host in ("cmp2", "cmp3", "cmp4"):
        nova.services[host].status = "disabled"  # up (heartbeats flow) but nobody takes servers
    real_evacuate = nova.evacuate

    def evacuate(server_id: str, host: str | None = None) -> str:
        request = real_evacuate(server_id, host)
        if nova.evacuate_calls[server_id] == 1:  # seen by a look in flight, over before Nova answers
            nova.computes_down_until = clock.now() + 2.5
        return request

    nova.evacuate = evacuate  # type: ignore[method-assign]
    run(nova, store, clock)
    move = store.rows["a-id"]
    assert move.status is MoveStatus.FAILED and "no host can take it" in move.reason
    assert nova.evacuate_calls["a-id"] == 2


def test_no_valid_host_in_a_healthy_cloud_is_still_final() -> None:
    """Control: no room stays no room; nothing waits for ever."""
    nova, store, clock = incident(["a"])
    for host in ("cmp2", "cmp3", "cmp4"):
        nova.services[host].status = "disabled"  # up (heartbeats flow) but nobody takes servers
    run(nova, store, clock)
    move = store.rows["a-id"]
    assert move.status is MoveStatus.FAILED
    assert "no host can take it" in move.reason
    assert nova.evacuate_calls["a-id"] == 1


@pytest.mark.fault(
    "NOVA-07",
    guarantee="4",
    injected="Nova answers 5xx to every evacuate for longer than [evacuation] cloud_wait_timeout",
    expected="the move fails only then, with a reason naming the option; the wait was announced before",
)
def test_a_wait_has_a_deadline() -> None:
    nova, store, clock = incident(["a"])
    nova.evacuate_errors = [NovaUnavailable("evacuate: HTTP 503 (fake)", status=503)] * 1000
    run(nova, store, clock, RunPolicy(poll_interval=1.0, cloud_wait_timeout=300))
    move = store.rows["a-id"]
    assert move.status is MoveStatus.FAILED
    assert "cloud_wait_timeout" in move.reason
    assert store.kinds()[0] == "waiting_for_cloud"
    assert 300 <= clock.now() - 1_000.0 <= 300 + 2 * POLICY.wait_backoff_max


@pytest.mark.fault(
    "NOVA-08",
    guarantee="4",
    injected="a request lost between nova-api and nova-conductor: migration 'accepted' with no destination for ever",
    expected="flagged stuck after stuck_after with an evacuation_stuck event naming the commands; it gives its "
    "slot back, so the other pets are recovered",
)
def test_a_stuck_request_is_flagged_and_gives_its_slot_back() -> None:
    nova, store, clock = incident(["lost", "b", "c"])
    nova.lose_requests = {"lost-id"}
    run(nova, store, clock, RunPolicy(max_parallel=1, poll_interval=1.0, stuck_after=90))
    assert store.rows["b-id"].status is MoveStatus.DONE and store.rows["c-id"].status is MoveStatus.DONE
    lost = store.rows["lost-id"]
    assert lost.status is MoveStatus.ACCEPTED and lost.waiting.startswith(STUCK)
    stuck = [text for kind, text in store.events if kind == "evacuation_stuck"]
    assert len(stuck) == 1 and "petguard host resend cmp1" in stuck[0]
    before = clock.now()
    run(nova, store, clock)  # a later run looks once and does not hold a slot
    assert clock.now() - before < 5
    assert [kind for kind, _ in store.events].count("evacuation_stuck") == 1
    assert nova.evacuate_calls["lost-id"] == 1  # never sent twice by petguard


@pytest.mark.fault(
    "CP-09",
    guarantee="2",
    injected="RabbitMQ stopped while nova-api cast a request: petguard's evacuate call got no answer, Nova keeps the "
    "request 'accepted' and nothing moves it for minutes after RabbitMQ is back (nova-api may still hold the cast)",
    expected="never sent again by petguard (in the lab, a cast nova-api held was delivered after the computes' "
    "heartbeats had resumed: a resend rebuilt a pet twice); flagged stuck for an operator, the other pets go on",
)
def test_a_request_whose_answer_never_came_is_never_sent_again() -> None:
    nova, store, clock = incident(["held", "b"])
    nova.lose_requests = {"held-id"}
    real_evacuate = nova.evacuate

    def evacuate(server_id: str, host: str | None = None) -> str:
        nova.lose_evacuate_response = server_id == "held-id"
        if server_id == "held-id":
            clock.sleep(30)  # nova-api's worker hangs on the cast until RabbitMQ is back
        return real_evacuate(server_id, host)

    nova.evacuate = evacuate  # type: ignore[method-assign]
    run(nova, store, clock, RunPolicy(max_parallel=1, poll_interval=1.0, stuck_after=90))
    assert store.rows["b-id"].status is MoveStatus.DONE
    held = store.rows["held-id"]
    assert held.status is MoveStatus.ACCEPTED and held.stuck
    assert "migration mig-" in held.waiting  # the stuck reason names Nova's 'accepted' migration
    assert nova.evacuate_calls["held-id"] == 1


def test_placement_that_refuses_the_question_does_not_hold_evacuations() -> None:
    """A placement policy that forbids petguard's probe (403) is not an outage: nothing is held."""
    nova, store, clock = incident(["a"])

    def forbidden() -> str:
        raise NovaError("ask placement whether it answers: HTTP 403 (fake)", status=403)

    nova.check_placement = forbidden  # type: ignore[method-assign]
    run(nova, store, clock)
    assert_recovered_once(nova, store)
    assert "waiting_for_cloud" not in store.kinds()


@pytest.mark.fault(
    "NOVA-09",
    guarantee="4",
    injected="Keystone refuses petguard's token (401) on the reads that follow an evacuation in flight",
    expected="the move waits (announced) and follows the evacuation to the end when reads work again",
)
def test_a_refused_token_while_following_is_a_wait() -> None:
    nova, store, clock = incident(["a"])
    refusals = iter(range(4))
    real_get = nova.get_server

    def get_server(server_id: str):  # type: ignore[no-untyped-def]
        if nova.evacuate_calls.get(server_id) and next(refusals, None) is not None:
            raise NovaError("show server: Keystone refused to authenticate (fake)", status=401)
        return real_get(server_id)

    nova.get_server = get_server  # type: ignore[method-assign]
    run(nova, store, clock)
    assert_recovered_once(nova, store)
    assert store.kinds().count("waiting_for_cloud") == 1


@pytest.mark.fault(
    "NOVA-10",
    guarantee="4",
    injected="every evacuate request hangs in nova-api (RabbitMQ gone: its RPC cast waits), 4 moves in parallel",
    expected="at most max_requests_in_flight (2) requests hang at once, so nova-api keeps workers for the loop's "
    "reading of the compute services",
)
def test_hanging_requests_never_take_every_nova_api_worker() -> None:
    import threading
    import time

    nova, store, clock = incident(["a", "b", "c", "d"])
    in_flight, most = [0], [0]
    lock = threading.Lock()
    real_evacuate = nova.evacuate

    def evacuate(server_id: str, host: str | None = None) -> str:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.05)  # a real wait: the other moves' threads run meanwhile
        with lock:
            in_flight[0] -= 1
        return real_evacuate(server_id, host)

    nova.evacuate = evacuate  # type: ignore[method-assign]
    run(nova, store, clock, RunPolicy(max_parallel=4, poll_interval=1.0))
    assert_recovered_once(nova, store)
    assert most[0] == 2
@pytest.mark.fault(
    "SHOW-01",
    guarantee="4",
    injected="Nova answers 5xx to every evacuate for longer than [evacuation] cloud_wait_timeout",
    expected="the failed move waits for nothing any more, and no cloud_answers event (good news) follows its "
    "evacuation_failed: the cloud never answered",
)
def test_a_wait_that_ends_in_failure_is_not_good_news() -> None:
    nova, store, clock = incident(["a"])
    nova.evacuate_errors = [NovaUnavailable("evacuate: HTTP 503 (fake)", status=503)] * 1000
    run(nova, store, clock, RunPolicy(poll_interval=1.0, cloud_wait_timeout=300))
    move = store.rows["a-id"]
    assert move.status is MoveStatus.FAILED
    assert (move.waiting, move.waiting_since) == ("", None)  # host show, explain and metrics: not waiting
    assert store.kinds() == ["waiting_for_cloud", "evacuation_failed"]


@pytest.mark.fault(
    "SHOW-02",
    guarantee="4",
    injected="a wait ends in failure (cloud_wait_timeout); the operator re-runs the evacuation while the cloud "
    "still cannot answer",
    expected="the new wait is announced again (a second waiting_for_cloud), not silent because the first was",
)
def test_a_wait_after_a_failed_wait_is_announced_again() -> None:
    nova, store, clock = incident(["a"])
    nova.evacuate_errors = [NovaUnavailable("evacuate: HTTP 503 (fake)", status=503)] * 1000
    evacuator = Evacuator(nova, store, clock, RunPolicy(poll_interval=1.0, cloud_wait_timeout=300))  # type: ignore[arg-type]
    evacuator.run(1, since=0.0)
    assert store.rows["a-id"].status is MoveStatus.FAILED
    store.rows["a-id"] = dataclasses.replace(store.rows["a-id"], status=MoveStatus.PLANNED, reason="")  # a rerun
    evacuator.run(1, since=0.0)
    assert store.kinds() == ["waiting_for_cloud", "evacuation_failed", "waiting_for_cloud", "evacuation_failed"]


@pytest.mark.fault(
    "CP-12",
    guarantee="4",
    injected="nova-conductor fails a request nova-api took (Keystone gone: ConnectFailure from Neutron): migration "
    "'accepted' and the server 'rebuilding' for ever; Nova's instance action says its conductor event ended in Error "
    "and no compute started it",
    expected="proved dead from Nova's own record: the server's state reset and the evacuation asked again (not an "
    "attempt), recovered once within seconds, not handed to an operator as stuck",
)
def test_a_request_that_died_in_nova_conductor_is_asked_again() -> None:
    nova, store, clock = incident(["dead", "b"])
    nova.conductor_failures = {"dead-id"}
    run(nova, store, clock)
    assert_recovered_once(nova, store)
    assert nova.evacuate_calls["dead-id"] == 2 and nova.resets == ["dead-id"]
    assert store.rows["dead-id"].attempts <= 1
    assert "evacuation_stuck" not in store.kinds() and "evacuation_resent" in store.kinds()
    assert clock.now() - 1_000.0 < 30, "proved within seconds, not after stuck_after"


@pytest.mark.parametrize(
    "events",
    [
        (),  # nova-conductor never got it (nova-api may still hold the cast: CP-09)
        (ActionEvent("rebuild_server", False),),  # the conductor is still at it (or died mid-way: no result)
        # a compute has it
        (ActionEvent("rebuild_server", True, "Error"), ActionEvent("compute_rebuild_instance", False)),
        (ActionEvent("rebuild_server", True, "Success"),),  # cast to a compute
    ],
    ids=["no-event", "conductor-unfinished", "compute-started", "conductor-success"],
)
@pytest.mark.fault(
    "CP-13",
    guarantee="2",
    injected="a request stays 'accepted' while Nova's record does not prove it dead: no conductor event, an unfinished "
    "one, a compute event, or a conductor success",
    expected="never sent again: flagged stuck for an operator after stuck_after, exactly one evacuate",
)
def test_a_request_not_proved_dead_is_never_sent_again(events: tuple[ActionEvent, ...]) -> None:
    nova, store, clock = incident(["held"])
    nova.lose_requests = {"held-id"}
    real_evacuate = nova.evacuate

    def evacuate(server_id: str, host: str | None = None) -> str:
        request_id = real_evacuate(server_id, host)
        nova.actions[server_id][-1] = RequestTrace(request_id, "evacuate", events)
        return request_id

    nova.evacuate = evacuate  # type: ignore[method-assign]
    run(nova, store, clock, RunPolicy(max_parallel=1, poll_interval=1.0, stuck_after=90))
    assert store.rows["held-id"].stuck
    assert nova.evacuate_calls["held-id"] == 1 and not nova.resets


def test_a_dead_request_that_is_not_the_servers_newest_is_not_petguards_to_send_again() -> None:
    """An operator evacuated the server by hand after petguard's request died: that request is theirs."""
    nova, store, clock = incident(["held"])
    nova.lose_requests = {"held-id"}
    real_evacuate = nova.evacuate

    def evacuate(server_id: str, host: str | None = None) -> str:
        request_id = real_evacuate(server_id, host)
        died = (ActionEvent("rebuild_server", True, "Error"),)
        nova.actions[server_id][-1] = RequestTrace(request_id, "evacuate", died)
        nova.actions[server_id].append(RequestTrace("req-operator", "evacuate", ()))
        return request_id

    nova.evacuate = evacuate  # type: ignore[method-assign]
    run(nova, store, clock, RunPolicy(max_parallel=1, poll_interval=1.0, stuck_after=90))
    assert store.rows["held-id"].stuck
    assert nova.evacuate_calls["held-id"] == 1 and not nova.resets


@pytest.mark.fault(
    "CP-14",
    guarantee="4",
    injected="Keystone down for minutes while the rest of the cloud looks healthy: every request Nova takes ends "
    "failed on the destination with ConnectFailure (seen on the lab: 3 in 5 s, then 'Nova did not take the "
    "evacuation after 3 attempts')",
    expected="each is a wait, never an attempt, and asked again with a growing back-off (not every second): the pet "
    "is recovered once when Keystone is back",
)
def test_dependency_failures_of_accepted_requests_are_never_attempts() -> None:
    nova, store, clock = incident(["a"])
    nova.scheduler_faults = ["ConnectFailure: Unable to establish connection to http://127.0.0.1:5000 (fake)"] * 8
    run(nova, store, clock, RunPolicy(poll_interval=1.0, max_request_attempts=3, cloud_wait_timeout=1800))
    assert_recovered_once(nova, store)
    assert nova.evacuate_calls["a-id"] == 9  # 8 ended by the outage, then the one that moved it
    assert store.rows["a-id"].attempts <= 1
    assert clock.now() - 1_000.0 >= 60, "asked again with a growing back-off, not 8 times in a few seconds"


def _vouch(store: MovesStore, server_id: str, at: float) -> None:
    """What ``petguard host resend HOST`` writes in the journal (store.moves.vouch_resends): a stuck move
    vouched for."""
    move = store.rows[server_id]
    assert move.stuck, move
    store.rows[server_id] = dataclasses.replace(move, resend_vouched_at=at)


def _cut_inside_nova_api(nova: _Nova, server_id: str) -> None:
    """nova-api stopped mid-request: it set the server's task, then died before the action, the migration
    and the cast (Nova 34 compute/api.py: task, action, migration, cast); petguard's call got no answer."""
    real_evacuate = nova.evacuate

    def evacuate(sid: str, host: str | None = None) -> str:
        if sid == server_id and not nova.resets:
            nova.servers[sid] = dataclasses.replace(nova.servers[sid], task_state="rebuilding")
            raise NovaUnavailable("evacuate: connection aborted (fake)")
        return real_evacuate(sid, host)

    nova.evacuate = evacuate  # type: ignore[method-assign]


def _held_with(nova: _Nova, server_id: str, events: tuple[ActionEvent, ...]) -> None:
    """Nova took the request and lost it with this record of it (the database stopped as the conductor
    took it: no event; the conductor killed mid-way: an unfinished one)."""
    nova.lose_requests = {server_id}
    real_evacuate = nova.evacuate

    def evacuate(sid: str, host: str | None = None) -> str:
        request_id = real_evacuate(sid, host)
        if sid == server_id and not nova.resets:
            nova.actions[sid][-1] = RequestTrace(request_id, "evacuate", events)
        return request_id

    nova.evacuate = evacuate  # type: ignore[method-assign]


@pytest.mark.parametrize("case", ["no-event", "conductor-unfinished", "cut-inside-nova-api"])
@pytest.mark.fault(
    "CP-15",
    guarantee="4",
    injected="a request Nova lost with no record that proves it dead (the database stopped as nova-conductor took "
    "it: no event; the conductor killed mid-way; nova-api stopped after it set the task and before the migration), "
    "flagged stuck; the operator restarts nova-api and nova-conductor and runs `petguard host resend HOST`",
    expected="on the next look: Nova's records checked, the server reset and asked again once (not an attempt), "
    "recovered with one evacuation that moved it; the vouch is spent by the new request",
)
def test_an_operator_vouched_resend_recovers_a_stuck_request(case: str) -> None:
    nova, store, clock = incident(["held", "b"])
    if case == "cut-inside-nova-api":
        _cut_inside_nova_api(nova, "held-id")
    else:
        events = () if case == "no-event" else (ActionEvent("rebuild_server", False),)
        _held_with(nova, "held-id", events)
    policy = RunPolicy(max_parallel=1, poll_interval=1.0, stuck_after=90)
    run(nova, store, clock, policy)
    assert store.rows["held-id"].stuck and store.rows["b-id"].status is MoveStatus.DONE
    run(nova, store, clock, policy)  # no vouch: a later look never sends it again
    assert not nova.resets
    _vouch(store, "held-id", clock.now())
    before = clock.now()
    run(nova, store, clock, policy)
    assert_recovered_once(nova, store)
    assert nova.resets == ["held-id"] and clock.now() - before < 30
    assert store.rows["held-id"].attempts == 1 and store.rows["held-id"].resend_vouched_at is None
    assert "evacuation_resent" in store.kinds() and "resend_refused" not in store.kinds()


@pytest.mark.parametrize("case", ["compute-took-it", "someone-elses-request", "moved-on"])
@pytest.mark.fault(
    "CP-16",
    guarantee="2",
    injected="an operator vouches for a stuck request (`petguard host resend`) that Nova's record shows is not lost: a "
    "compute took it (delivered late), the server's newest evacuation is someone else's, or its migration moved on",
    expected="never sent again: a resend_refused event naming what Nova shows, the vouch forgotten, exactly one "
    "evacuate from petguard",
)
def test_an_operator_vouch_never_overrides_what_nova_recorded(case: str) -> None:
    nova, store, clock = incident(["held"])
    _held_with(nova, "held-id", ())
    policy = RunPolicy(max_parallel=1, poll_interval=1.0, stuck_after=90)
    run(nova, store, clock, policy)
    assert store.rows["held-id"].stuck
    newest = nova.actions["held-id"][-1]
    migration = next(m for m in nova.migrations if m.server_id == "held-id")
    if case == "compute-took-it":
        late = (ActionEvent("rebuild_server", True, "Success"), ActionEvent("compute_rebuild_instance", False))
        nova.actions["held-id"][-1] = dataclasses.replace(newest, events=late)
    elif case == "someone-elses-request":
        nova.actions["held-id"].append(RequestTrace("req-operator", "evacuate", ()))
    else:
        nova.migrations[nova.migrations.index(migration)] = dataclasses.replace(migration, status="pre-migrating")
    _vouch(store, "held-id", clock.now())
    run(nova, store, clock, policy)
    assert nova.evacuate_calls["held-id"] == 1 and not nova.resets
    assert store.rows["held-id"].resend_vouched_at is None
    refused = [text for kind, text in store.events if kind == "resend_refused"]
    assert len(refused) == 1, store.events


def test_a_move_with_a_request_id_lists_the_hosts_evacuations_once_per_look() -> None:
    """Proving a request dead and finding Nova already has it read the same listing: one GET, not two.

    A REQUESTING move with a request id (a crash after Nova took it, or a request proved dead and
    about to be asked again) is checked against Nova's records before anything is sent; the host's
    evacuation migrations are a list of the whole host, read once for both checks."""
    nova, store, clock = incident(["a"])
    request_id = nova.evacuate("a-id")  # Nova took it; petguard crashed before the journal knew
    store.rows["a-id"] = dataclasses.replace(store.rows["a-id"], status=MoveStatus.REQUESTING, request_id=request_id)
    listings: list[int] = []
    real_update = store.update_move

    def update_move(*args: object, **fields: object) -> MoveRecord:
        listings.append(nova.calls.get("evacuations_from", 0))
        return real_update(*args, **fields)  # type: ignore[arg-type]

    store.update_move = update_move  # type: ignore[method-assign]
    run(nova, store, clock)
    assert_recovered_once(nova, store)
    assert nova.evacuate_calls["a-id"] == 1  # followed, never sent again
    assert listings[0] == 1, "the first look (REQUESTING -> ACCEPTED) listed the host's evacuations more than once"


@pytest.mark.fault(
    "CP-19",
    guarantee="4",
    injected="a move flagged stuck meets Nova unreachable (the operator restarts nova-api, as the stuck event tells "
    "them to) before the operator's `petguard host resend` (seen on the lab: the wait replaced the stuck flag, so "
    "the resend vouched for nothing and the pets stayed on the dead host)",
    expected="the move stays flagged stuck through the outage (no wait for the cloud replaces it, no slot held); "
    "the operator's vouch afterwards finds it and it is recovered once",
)
def test_a_stuck_move_keeps_its_flag_while_nova_is_unreachable() -> None:
    nova, store, clock = incident(["held"])
    _held_with(nova, "held-id", ())
    policy = RunPolicy(max_parallel=1, poll_interval=1.0, stuck_after=90)
    run(nova, store, clock, policy)
    assert store.rows["held-id"].stuck
    real_get = nova.get_server
    down = [True]

    def get_server(server_id: str):  # type: ignore[no-untyped-def]
        if down[0]:
            raise NovaUnavailable("show server: ConnectFailure: connection refused (fake)")
        return real_get(server_id)

    nova.get_server = get_server  # type: ignore[method-assign]
    before = clock.now()
    run(nova, store, clock, policy)
    assert store.rows["held-id"].stuck, store.rows["held-id"]
    assert clock.now() - before < 5, "a stuck move gives its slot back at once"
    assert "waiting_for_cloud" not in store.kinds()
    down[0] = False
    _vouch(store, "held-id", clock.now())
    run(nova, store, clock, policy)
    assert_recovered_once(nova, store)
    assert nova.resets == ["held-id"]


@pytest.mark.fault(
    "CP-20",
    guarantee="4",
    injected="nova-scheduler back after 3 min runs the stale calls of dead requests: their allocations collide and "
    "nova-conductor ends the live request with the server ERROR on the failed host, no task, and its migration "
    "still 'accepted' (Nova recorded the error on an older one); its conductor event ended in Error, no compute "
    "event (seen on the lab: 3 pets left there until move_timeout)",
    expected="proved dead from Nova's record and asked again at once (not an attempt), recovered once; without "
    "that proof it would be flagged stuck after stuck_after, never left to move_timeout",
)
def test_a_request_nova_ended_in_error_with_its_migration_still_accepted_is_asked_again() -> None:
    nova, store, clock = incident(["held", "b"])
    real_evacuate = nova.evacuate

    def evacuate(sid: str, host: str | None = None) -> str:
        first = sid == "held-id" and nova.evacuate_calls.get(sid, 0) == 0
        if first:
            nova.lose_requests = {sid}
        request_id = real_evacuate(sid, host)
        if first:
            died = (ActionEvent("rebuild_server", True, "Error"),)
            nova.actions[sid][-1] = RequestTrace(request_id, "evacuate", died)
            fault = "Failed to update allocations for consumer held-id: another process changed the consumer (fake)"
            nova.servers[sid] = dataclasses.replace(
                nova.servers[sid], vm_state="error", status="ERROR", task_state=None, fault=fault
            )
        return request_id

    nova.evacuate = evacuate  # type: ignore[method-assign]
    run(nova, store, clock, RunPolicy(max_parallel=1, poll_interval=1.0, stuck_after=90, move_timeout=600))
    assert_recovered_once(nova, store)
    assert nova.evacuate_calls["held-id"] == 2 and store.rows["held-id"].attempts == 1
    assert "evacuation_resent" in store.kinds() and "evacuation_stuck" not in store.kinds()
    assert clock.now() - 1_000.0 < 60, "asked again within seconds, not at move_timeout"
