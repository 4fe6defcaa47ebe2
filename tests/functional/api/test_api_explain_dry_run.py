"""``GET /v1/explain/{host}`` of a host that has not failed: a dry run of its evacuation, read-only."""

from __future__ import annotations

from tests.functional.api.conftest import Api

PET = {"petguard:pet": "true"}


def test_dry_run_of_a_healthy_host_says_what_would_happen_to_each_server_and_changes_nothing(api: Api) -> None:
    nova = api.compute
    members = [nova.add_server(f"anti-{i}", "cmp1", metadata=PET) for i in (1, 2)]
    nova.add_group("ha-anti", "anti-affinity", members)
    nova.add_server("db", "cmp1", metadata={**PET, "petguard:tier": "0", "petguard:priority": "5"})
    nova.add_server("web", "cmp1", metadata={**PET, "petguard:tier": "1"})
    nova.add_server("local", "cmp1", metadata=PET, image_id="img-1")
    nova.add_server("gpu", "cmp1", metadata=PET, flavor_extra_specs={"resources:VGPU": "1"})
    nova.add_server("cattle", "cmp1")
    api.tick()
    calls_before = dict(nova.calls)

    answer = api.client.get("/v1/explain/cmp1").json()

    rows = {r["server_name"]: r for r in answer["if_failed"]}
    assert [r["server_name"] for r in answer["if_failed"]] == [
        "db",
        "anti-1",
        "gpu",
        "anti-2",
        "web",
        "cattle",
        "local",
    ]
    assert {n: (r["decision"], r["wave"]) for n, r in rows.items()} == {
        "db": ("evacuate", 0), "anti-1": ("evacuate", 0), "gpu": ("evacuate", 0), "anti-2": ("evacuate", 1),
        "web": ("evacuate", 2), "cattle": ("stay", None), "local": ("stay", None),
    }  # fmt: skip
    assert rows["anti-2"]["group"] == "ha-anti-gid" and rows["anti-2"]["group_policy"] == "anti-affinity"
    assert rows["gpu"]["classes"] == ["boot_from_volume", "devices"]
    assert rows["local"]["classes"] == ["local_disk"] and "petguard:allow_data_loss" in rows["local"]["reason"]
    assert rows["db"]["priority"] == 5 and rows["web"]["tier"] == 1 and rows["cattle"]["classes"] == []
    lines = "\n".join(answer["lines"])
    assert "if cmp1 failed now" in lines and "5 of 7 server(s) would be evacuated in 3 wave(s)" in lines
    assert "anti-2 (anti-2-id): evacuate in wave 1" in lines and "group ha-anti (anti-affinity)" in lines
    # read-only: one more listing of the host's servers, nothing else asked of Nova
    changed = {k: v - calls_before.get(k, 0) for k, v in nova.calls.items() if v != calls_before.get(k, 0)}
    assert changed == {"servers_on": 1}
    assert nova.evacuate_calls == {} and api.harness.store.incidents(None, 10) == []


def test_when_nova_cannot_be_read_the_dry_run_says_so_and_the_rest_is_answered(api: Api) -> None:
    api.tick()
    nova = api.compute
    nova.unavailable = True
    try:
        answer = api.client.get("/v1/explain/cmp2").json()
    finally:
        nova.unavailable = False
    assert answer["if_failed"] == []
    assert any("cannot tell, Nova could not list its servers" in line for line in answer["lines"])
    assert answer["subject"] == "host" and answer["state"] == "up"


def test_dry_run_shows_each_pets_readiness_and_malformed_readiness_metadata(api: Api) -> None:
    nova = api.compute
    nova.add_server(
        "db", "cmp1", metadata={**PET, "petguard:ready_check": "tcp:5432"}, addresses=("10.0.0.5", "10.0.1.5")
    )
    nova.add_server(
        "web",
        "cmp1",
        metadata={**PET, "petguard:ready_check": "http://203.0.113.7:8080/health", "petguard:ready_delay": "10"},
    )
    nova.add_server("typo", "cmp1", metadata={**PET, "petguard:ready_check": "tcp:postgres"})
    nova.add_server("plain", "cmp1", metadata=PET)
    nova.add_server("off", "cmp1", vm_state="stopped", metadata={**PET, "petguard:ready_check": "tcp:22"})
    api.tick()

    lines = {line.split(" (")[0].strip(): line for line in api.client.get("/v1/explain/cmp1").json()["lines"]}

    assert lines["db"].endswith("; ready check tcp 10.0.0.5:5432")
    assert lines["web"].endswith("; ready check http 203.0.113.7:8080/health; ready delay 10 s")
    assert "petguard:ready_check='tcp:postgres' is not a readiness check" in lines["typo"]
    assert "ready" not in lines["plain"]
    assert "ready check tcp" in lines["off"] and lines["off"].endswith("; not waited for: it comes back stopped")
    assert "waited" not in lines["db"]


def test_the_dry_run_shows_each_moves_target_hint_and_where_it_comes_from(api: Api) -> None:
    nova = api.compute
    nova.add_server("fast", "cmp1", metadata={**PET, "petguard:target": "aggregate:fast"})
    nova.add_server("typo", "cmp1", metadata={**PET, "petguard:target": "aggregat:fast"})
    nova.add_server("plain", "cmp1", metadata=PET)
    api.tick()

    answer = api.client.get("/v1/explain/cmp1").json()

    rows = {r["server_name"]: r for r in answer["if_failed"]}
    assert (rows["fast"]["target_hint"], rows["fast"]["target_hint_source"]) == (
        "aggregate:fast",
        "metadata petguard:target",
    )
    assert rows["typo"]["target_hint"] == "" and "'aggregat:fast' is not" in rows["typo"]["target_hint_note"]
    assert rows["plain"]["target_hint"] == "" and rows["plain"]["target_hint_note"] == ""
    lines = "\n".join(answer["lines"])
    assert "to target hint aggregate:fast (from metadata petguard:target)" in lines
    assert "plain (plain-id): evacuate in wave 0 (tier 0, priority 0; boot_from_volume) to the scheduler's choice:" in (
        lines
    )
