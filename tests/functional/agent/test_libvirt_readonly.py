"""The agent needs no libvirt group: as an unprivileged user with no supplementary group, its watcher
(``LibvirtWatch``) connects to libvirtd's read-only socket and receives a real domain's events, while
the read-write socket (which the libvirt group would open, about root on the host) stays closed to it.

systemd/petguard-agent.service therefore has no ``SupplementaryGroups=libvirt``. The lab's libvirtd
has no polkit (no D-Bus here): ``auth_unix_ro = "none"``, the read-only socket 0777 and the
read-write one 0700 stand for a compute node's rules, where polkit's ``org.libvirt.unix.monitor``
allows any user on the read-only socket (``/usr/share/polkit-1/actions/org.libvirt.unix.policy``,
socket mode 0666 with systemd's libvirtd-ro.socket) and ``org.libvirt.unix.manage`` the libvirt
group only on the read-write one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.functional.agent import libvirtlab

NOBODY = 65534
CHILD = """
import json, sys, time
import libvirt
from petguard.agent.libvirt_watch import LibvirtWatch
from petguard.agent.main import EventIds

ro_uri, rw_uri = sys.argv[1:3]
try:
    libvirt.open(rw_uri)
    print(json.dumps({"rw": "opened"}), flush=True)
except libvirt.libvirtError as exc:
    print(json.dumps({"rw": str(exc)[:300]}), flush=True)
emit = lambda event: print(json.dumps(event.to_wire()), flush=True)
watch = LibvirtWatch(ro_uri, emit, EventIds(), keepalive_interval=2, keepalive_count=2).start()
deadline = time.monotonic() + 30
while not watch.connected and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"connected": watch.connected, "uid": __import__("os").getuid(),
                  "groups": __import__("os").getgroups()}), flush=True)
time.sleep(60)
"""


@pytest.mark.fault(
    "AGENT-05",
    guarantee="8",
    injected="the agent's unit adds the libvirt group (read-write libvirt, about root) and shows it other processes",
    expected="no SupplementaryGroups; ProtectProc=invisible; StateDirectoryMode=0750; the unit still verifies",
)
def test_events_need_only_the_read_only_socket(libvirtd: libvirtlab.Libvirtd, tmp_path: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to run the watcher as an unprivileged user")
    import libvirt

    # The lab's socket directory is under root's private pytest directory; hard links in a directory
    # anyone may traverse reach the same sockets (their own modes still apply).
    public = Path(tempfile.mkdtemp(prefix="petguard-ro-"))
    public.chmod(0o755)
    for name in ("libvirt-sock-ro", "libvirt-sock"):
        os.link(libvirtd.sock_dir / name, public / name)
    ro_uri = f"qemu:///system?socket={public}/libvirt-sock-ro"
    rw_uri = f"qemu:///system?socket={public}/libvirt-sock"
    child = subprocess.Popen(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
         sys.executable, "-c", CHILD, ro_uri, rw_uri],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/", env={"PATH": os.environ["PATH"],
                                                                              "HOME": "/nonexistent"},
    )
    name = f"pg-ro-{os.getpid()}"
    conn = libvirt.open(libvirtd.uri)
    domain = None
    try:
        assert child.stdout is not None
        rw = json.loads(child.stdout.readline())
        assert rw["rw"] != "opened" and "Permission denied" in rw["rw"], rw
        ready = json.loads(child.stdout.readline())
        assert ready == {"connected": True, "uid": NOBODY, "groups": []}, ready
        image = libvirtlab.build_guest(tmp_path / "guest", name)
        domain = conn.createXML(libvirtlab.domain_xml(name, image, action=None))
        deadline = time.monotonic() + 30
        seen = []
        while time.monotonic() < deadline:
            event = json.loads(child.stdout.readline())
            seen.append(event)
            if event.get("domain_name") == name and event.get("detail") == "started":
                break
        assert any(e.get("domain_name") == name and e.get("detail") == "started" for e in seen), seen
    finally:
        child.kill()
        _, err = child.communicate(timeout=10)
        if domain is not None:
            domain.destroy()
        conn.close()
        shutil.rmtree(public)
