"""Run sushy-tools' Redfish emulator (fake systems driver) for petguard's functional tests.

Started by ``tests/functional/redfish_peer.py`` as ``python sushy_emulator.py --config FILE``. Two
changes to the stock fake driver, from the environment:

* ``PETGUARD_SUSHY_APPLY_DELAY`` (seconds, default 0): the stock driver applies a power change
  ``random.randint(1, 11)`` seconds later (notes/bmc-peers.md §8); tests want it at once (or fixed).
* ``PETGUARD_SUSHY_STUCK_ON`` (comma-separated system uuids): ForceOff is accepted (204) and never
  applied, like a BMC that acknowledges power-off while the host keeps running.
* ``PETGUARD_SUSHY_POWERING_OFF`` (comma-separated system uuids): ForceOff is accepted (204) and the
  system reports ``PoweringOff`` from then on, for ever (a host that hangs in its shutdown).
"""

from __future__ import annotations

import os
from typing import Any

from sushy_tools.emulator import main as emulator
from sushy_tools.emulator.resources.systems import fakedriver

APPLY_DELAY = int(os.environ.get("PETGUARD_SUSHY_APPLY_DELAY", "0"))
STUCK_ON = frozenset(filter(None, os.environ.get("PETGUARD_SUSHY_STUCK_ON", "").split(",")))
POWERING_OFF = frozenset(filter(None, os.environ.get("PETGUARD_SUSHY_POWERING_OFF", "").split(",")))


class _FixedDelay:
    """Stands in for the fake driver's ``random`` module: a fixed apply delay."""

    @staticmethod
    def randint(low: int, high: int) -> int:
        return APPLY_DELAY


_original_set_power_state = fakedriver.FakeDriver.set_power_state


def _set_power_state(self: Any, identity: str, state: str) -> None:
    if identity in STUCK_ON:
        return  # accepted, never carried out
    if identity in POWERING_OFF and state in ("ForceOff", "GracefulShutdown"):
        self._update(identity, power_state="PoweringOff", pending_power=None)  # and it never ends
        return
    _original_set_power_state(self, identity, state)


fakedriver.random = _FixedDelay  # type: ignore[assignment]
fakedriver.FakeDriver.set_power_state = _set_power_state  # type: ignore[method-assign]

if __name__ == "__main__":
    emulator.main()
