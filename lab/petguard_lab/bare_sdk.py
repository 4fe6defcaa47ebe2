"""The reference for `petguard-lab bench`: the same recovery done by a bare openstacksdk script.

Run by the bench as a subprocess (``python -m petguard_lab.bare_sdk``), with the Python that runs
petguard-lab (openstacksdk comes with petguard; the lab CLI itself stays stdlib only, so this
module is never imported by it).  Protocol on stdin/stdout, one line each:

1. the script connects, authenticates and finds the pets on ``--host`` (servers named
   ``--prefix*``), then prints ``{"ready": true, "pets": N}``;
2. the bench cuts the host's power and writes the epoch time of the cut (one line);
3. the script polls ``GET /os-services`` every ``--poll`` s until Nova reports the host's
   nova-compute ``down``; forces it down (``PUT /os-services/{id}``, mv 2.53); sends every
   evacuation at once (one thread per pet, ``POST /servers/{id}/action {"evacuate": {}}`` at mv
   2.94, no target host); polls ``GET /servers/detail`` until every pet is ACTIVE on another host
   with no task; prints one JSON object of epoch times and exits 0.

No fencing, no disabling, no retries, no journal: the least a script can do, as fast as Nova
allows.  Everything the bench compares petguard with comes from here.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import time
from typing import Any

EVACUATE_MV = "2.94"


def _connect(clouds_yaml: str, cloud: str) -> Any:
    import openstack.config
    import openstack.connection

    region = openstack.config.OpenStackConfig(config_files=[clouds_yaml]).get_one(cloud=cloud)
    return openstack.connection.Connection(config=region)


def _get(conn: Any, path: str, microversion: str) -> Any:
    response = conn.compute.get(path, microversion=microversion)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path}: HTTP {response.status_code} {response.text[:200]}")
    return response.json()


def _pets(conn: Any, prefix: str) -> dict[str, dict[str, Any]]:
    raw = _get(conn, f"/servers/detail?all_tenants=1&name=^{prefix}", "2.53")["servers"]
    return {s["id"]: s for s in raw if str(s["name"]).startswith(prefix)}


def _service(conn: Any, host: str) -> dict[str, Any]:
    services = _get(conn, f"/os-services?binary=nova-compute&host={host}", "2.53")["services"]
    if not services:
        raise RuntimeError(f"Nova has no nova-compute service on {host}")
    return dict(services[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m petguard_lab.bare_sdk")
    parser.add_argument("--clouds-yaml", required=True)
    parser.add_argument("--cloud", default="petguard-lab")
    parser.add_argument("--host", required=True, help="the host whose power the bench cuts")
    parser.add_argument("--prefix", required=True, help="the pets' name prefix")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between two polls")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)

    conn = _connect(args.clouds_yaml, args.cloud)
    pets = {sid: s for sid, s in _pets(conn, args.prefix).items()
            if s.get("OS-EXT-SRV-ATTR:host") == args.host}
    _service(conn, args.host)  # authenticates and warms the connection
    print(json.dumps({"ready": True, "pets": len(pets)}), flush=True)
    cut = float(sys.stdin.readline())
    deadline = time.monotonic() + args.timeout
    result: dict[str, Any] = {"cut": cut, "pets": len(pets)}

    while True:  # 1. wait for Nova to notice
        svc = _service(conn, args.host)
        if svc["state"] == "down":
            result["nova_down"] = time.time()
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{args.host} not down in Nova after {args.timeout:.0f} s")
        time.sleep(args.poll)

    response = conn.compute.put(f"/os-services/{svc['id']}", json={"forced_down": True},
                                microversion="2.53")  # 2. force down
    if response.status_code != 200:
        raise SystemExit(f"force down: HTTP {response.status_code} {response.text[:200]}")
    result["forced_down"] = time.time()

    def evacuate(server_id: str) -> tuple[float, float, int]:
        sent = time.time()
        resp = conn.compute.post(f"/servers/{server_id}/action", json={"evacuate": {}},
                                 microversion=EVACUATE_MV)
        return sent, time.time(), int(resp.status_code)

    result["evacuate_first_sent"] = time.time()  # 3. every pet at once
    with concurrent.futures.ThreadPoolExecutor(max(1, len(pets))) as pool:
        answers = list(pool.map(evacuate, pets))
    refused = [code for _, _, code in answers if code != 200]
    if refused:
        raise SystemExit(f"{len(refused)} evacuation(s) refused: HTTP {sorted(set(refused))}")
    result["evacuate_last_accepted"] = max(done for _, done, _ in answers)

    arrived: dict[str, float] = {}  # 4. every pet ACTIVE on another host
    while len(arrived) < len(pets):
        now = time.time()
        for sid, raw in _pets(conn, args.prefix).items():
            if sid in pets and sid not in arrived and raw.get("status") == "ACTIVE" \
                    and raw.get("OS-EXT-SRV-ATTR:host") not in (None, args.host) \
                    and raw.get("OS-EXT-STS:task_state") is None:
                arrived[sid] = now
        if len(arrived) == len(pets):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(arrived)} of {len(pets)} pets back after "
                             f"{args.timeout:.0f} s")
        time.sleep(args.poll)
    result["last_active"] = max(arrived.values()) if arrived else time.time()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
