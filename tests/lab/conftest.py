"""Fixtures of the lab tier: petguard against the real Nova of ``petguard-lab`` (marker ``lab``).

* ``lab`` (session): reuses a running lab when every compute is up, enabled and powered; otherwise
  brings it up (4 computes, so that one failed host stays under the mass-failure brake's limits of
  2 hosts / 34 %) and puts every compute back in service. It takes the lab down at the end only if
  it was not running before.
* ``sdk`` / ``nova`` (session): an openstacksdk connection as the lab's admin, and a thin reader of
  Nova's real state over it.
* ``assets`` (session): a flavor and an image with no HA marking, so a server is a pet only by its
  metadata.
* ``petguard`` (function): a fresh petguard-daemon process per test on a fresh journal (started by
  the test, stopped by PID afterwards); then the lab is put back (hosts healed, un-forced,
  enabled; RabbitMQ and BMCs normal) and the test's servers are deleted, so the next test starts
  clean.

Run: ``pytest -m lab -s tests/lab`` (``-s`` prints the measured timings at the end).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import openstack.connection
import pytest

pytest.importorskip("petguard_lab")

from petguard_lab import Lab, LabError, petguard_proc

from tests.lab.labkit import (
    PREFIX,
    TIMINGS,
    Nova,
    Petguard,
    connect,
    delete_leftovers,
    lab_ready,
    restore_lab,
)

#: Computes the tier needs; a running lab with fewer is grown to this many.
COMPUTES = 4


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    the_lab = Lab(os.environ.get("PETGUARD_LAB_DIR") or None, verbose=False)
    was_running = the_lab.pid("nova-api") is not None
    # a daemon that an interrupted run of this tier left behind
    petguard_proc.Daemon(Path(), the_lab.cfg.run / Petguard.PIDFILE, Path()).stop()
    if not (lab_ready(the_lab) and len(the_lab.compute_names) >= COMPUTES):
        started = time.monotonic()
        try:
            the_lab.up(computes=max(COMPUTES, len(the_lab.compute_names)), accept_forced_down=True)
            restore_lab(the_lab, Nova(connect(the_lab)))
        except LabError as exc:
            pytest.skip(f"petguard-lab is not usable: {exc}")
        TIMINGS["lab up"] = time.monotonic() - started
    yield the_lab
    if not was_running:
        the_lab.down()


@pytest.fixture(scope="session")
def sdk(lab: Lab) -> openstack.connection.Connection:
    """A plain SDK connection for the tests' own set-up and checks."""
    return connect(lab)


@pytest.fixture(scope="session")
def nova(sdk: openstack.connection.Connection) -> Nova:
    return Nova(sdk)


@pytest.fixture(scope="session")
def assets(sdk: openstack.connection.Connection) -> Iterator[tuple[str, str]]:
    """(flavor id, image id) with no ``evacuable`` marking."""
    delete_leftovers(sdk)
    tag = uuid.uuid4().hex[:8]
    flavor = sdk.compute.create_flavor(name=f"{PREFIX}-{tag}", ram=64, vcpus=1, disk=1)
    image = sdk.image.create_image(
        name=f"{PREFIX}-{tag}", data=b"\0" * 1024, disk_format="raw", container_format="bare", allow_duplicates=True
    )
    try:
        yield flavor.id, image.id
    finally:
        sdk.compute.delete_flavor(flavor.id, ignore_missing=True)
        sdk.image.delete_image(image.id, ignore_missing=True)


@pytest.fixture(scope="session")
def hosts(lab: Lab) -> tuple[str, list[str]]:
    """(victim, the other computes): the victim is ``$PETGUARD_LAB_VICTIM`` or the last compute."""
    names = list(lab.compute_names)
    victim = os.environ.get("PETGUARD_LAB_VICTIM") or names[-1]
    return victim, [h for h in names if h != victim]


@pytest.fixture
def petguard(lab: Lab, nova: Nova, tmp_path: Path) -> Iterator[Petguard]:
    """A petguard-daemon for one test (the test starts it: it may change the inventory first)."""
    daemon = Petguard(lab, tmp_path)
    try:
        yield daemon
    finally:
        daemon.stop()
        daemon.close()
        try:
            # first: Nova completes the evacuations of a host only while their servers exist
            restore_lab(lab, nova)
        finally:
            nova.delete_servers()  # even when the restore failed: the next test needs the quota


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The measured timings at the end of the run (a fixture's print was captured and never shown)."""
    if TIMINGS:
        terminalreporter.section("lab tier timings")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"  {what:<60} {seconds:8.2f} s")
