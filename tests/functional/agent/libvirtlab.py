"""A real libvirtd for the agent's tests, started without systemd (../shared/notes/libvirt-watchdog.md).

* ``Libvirtd`` runs ``/usr/sbin/libvirtd`` in a private mount namespace, so its compiled-in paths
  (/run/libvirt, /etc/libvirt, /var/lib/libvirt, ...) are bind mounts of a test directory and nothing
  collides with another libvirtd on the machine. /run/libvirt is a bind of ``base/run`` that persists
  across restarts (a restarted daemon re-attaches to running QEMUs). QEMU runs as root with no
  security driver and no cgroups; ``stdio_handler = "file"`` because no virtlogd runs.
* ``build_guest`` assembles ``wdtboot.S`` (a boot sector that arms the i6300esb watchdog and never
  feeds it; ``panic=True`` also triggers pvpanic) into a 1 MiB raw disk.
* ``domain_xml`` is a 32 MiB TCG (``type='qemu'``) domain, as Nova writes the watchdog for
  ``hw:watchdog_action``.

Everything started here is stopped by PID; domains are destroyed and undefined.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

HERE = Path(__file__).parent
LIBVIRTD = "/usr/sbin/libvirtd"
QEMU = "/usr/bin/qemu-system-x86_64"
BINDS = {"run": "/run/libvirt", "etc": "/etc/libvirt", "lib": "/var/lib/libvirt", "log": "/var/log/libvirt",
         "cache": "/var/cache/libvirt"}


def missing_tools() -> list[str]:
    """What this tier needs and the machine lacks (apt: libvirt-daemon-system qemu-system-x86 ...)."""
    needed = [LIBVIRTD, QEMU, "/usr/bin/unshare", "/usr/bin/gcc", "/usr/bin/ld"]
    missing = [path for path in needed if not os.path.exists(path)]
    try:
        import libvirt  # noqa: F401
    except ImportError:
        missing.append("python module libvirt (pip install libvirt-python; needs libvirt-dev pkg-config)")
    if os.geteuid() != 0:
        missing.append("root (a private mount namespace for libvirtd)")
    return missing


class Libvirtd:
    """One privileged libvirtd in its own mount namespace; ``uri`` reaches it from outside."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock_dir = base / "sock"
        self.uri = f"qemu:///system?socket={self.sock_dir}/libvirt-sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts: list[float] = []

    def prepare(self) -> Libvirtd:
        for name in [*BINDS, "sock"]:
            (self.base / name).mkdir(parents=True, exist_ok=True)
        etc = self.base / "etc"
        shutil.copytree("/etc/libvirt", etc, dirs_exist_ok=True, symlinks=True)
        for autostart in etc.glob("qemu/networks/autostart/*"):
            autostart.unlink()
        (etc / "libvirtd.conf").write_text(
            f'unix_sock_dir = "{self.sock_dir}"\n'
            'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
            # Read-write for root only, as the libvirt group (or polkit's manage rule) gates it on a
            # compute node; read-only for anyone (test_libvirt_readonly.py: the agent needs no more).
            'unix_sock_rw_perms = "0700"\nunix_sock_ro_perms = "0777"\n'
            f'log_outputs = "3:file:{self.base}/libvirtd.log"\n'
        )
        (etc / "qemu.conf").write_text(
            'stdio_handler = "file"\ncgroup_controllers = [ ]\nremember_owner = 0\n'
            'user = "root"\ngroup = "root"\ndynamic_ownership = 0\nsecurity_driver = "none"\n'
        )
        return self

    def start(self, timeout: float = 60.0) -> float:
        """Start libvirtd and wait until it answers; returns the seconds it took."""
        started = time.monotonic()
        mounts = " && ".join(
            ["mount -t tmpfs -o mode=755 tmpfs /run", "mkdir -p /run/libvirt"]
            + [f"mount --bind {self.base / name} {target}" for name, target in BINDS.items()]
        )
        script = f"{mounts} && exec {LIBVIRTD} -f {self.base}/etc/libvirtd.conf -p {self.base}/libvirtd.pid"
        log = open(self.base / "libvirtd.stdout", "ab")
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "--", "/bin/sh", "-c", script],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._wait_ready(timeout)
        took = time.monotonic() - started
        self.starts.append(took)
        return took

    def _wait_ready(self, timeout: float) -> None:
        import libvirt

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"libvirtd exited with {self.proc.returncode}; see {self.base}/libvirtd.log")
            try:
                conn = libvirt.open(self.uri)
                conn.getLibVersion()
                conn.close()
                return
            except libvirt.libvirtError:
                time.sleep(0.2)
        raise RuntimeError(f"libvirtd did not answer within {timeout} s; see {self.base}/libvirtd.log")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        """Stop the daemon by its PID (QEMUs it started keep running, as in production)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> float:
        self.stop()
        return self.start()


def build_guest(directory: Path, name: str, *, panic: bool = False) -> Path:
    """Assemble the boot sector into ``directory/name.img`` (1 MiB raw disk)."""
    directory.mkdir(parents=True, exist_ok=True)
    obj, binary, image = directory / f"{name}.o", directory / f"{name}.bin", directory / f"{name}.img"
    defines = ["-DPANIC"] if panic else []
    subprocess.run(["gcc", *defines, "-c", str(HERE / "wdtboot.S"), "-o", str(obj)], check=True)
    subprocess.run(["ld", "-m", "elf_x86_64", "-Ttext=0x7c00", "--oformat", "binary", "-o", str(binary), str(obj)],
                   check=True)
    code = binary.read_bytes()
    assert len(code) == 512 and code[-2:] == b"\x55\xaa", "the boot sector must be 512 bytes with its signature"
    image.write_bytes(code + b"\0" * (1024 * 1024 - 512))
    return image


def domain_xml(
    name: str,
    image: Path,
    *,
    action: str | None,
    panic: bool = False,
    on_crash: str = "destroy",
    domain_uuid: str | None = None,
) -> str:
    """A tiny TCG domain booting ``image``; ``action`` None: no watchdog device."""
    watchdog = f"<watchdog model='i6300esb' action='{action}'/>" if action else ""
    panic_device = "<panic model='isa'><address type='isa' iobase='0x505'/></panic>" if panic else ""
    return f"""<domain type='qemu'>
  <name>{name}</name><uuid>{domain_uuid or uuid.uuid4()}</uuid>
  <memory unit='MiB'>32</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>{on_crash}</on_crash>
  <devices>
    <emulator>{QEMU}</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/>
      <source file='{image}'/><target dev='hda' bus='ide'/></disk>
    <serial type='file'><source path='{image.with_suffix(".serial.log")}'/></serial>
    {watchdog}{panic_device}
    <memballoon model='none'/>
  </devices>
</domain>"""


def destroy_all(daemon: Libvirtd) -> None:
    """Destroy and undefine every domain of this daemon (its QEMUs stop with them)."""
    import libvirt

    if daemon.proc is None:
        return
    try:
        conn = libvirt.open(daemon.uri)
    except libvirt.libvirtError:
        return
    try:
        for dom in conn.listAllDomains(0):
            try:
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
            except libvirt.libvirtError:
                pass
    finally:
        conn.close()


def qemu_pid(daemon: Libvirtd, name: str) -> int:
    """The PID of a running domain's QEMU (libvirt's pid file under /run/libvirt/qemu)."""
    return int((daemon.base / "run" / "qemu" / f"{name}.pid").read_text().strip())
