"""The fence-driver contract: the plug-in interface every fencing adapter implements (pure domain).

Drivers are registered as entry points in the group ``petguard.fencing`` and loaded by name
(``petguard.fencing.loader``). A driver only talks to its device; the procedure
(``petguard.fencing.procedure``) decides when to power off, how often to read the power state back
and when to give up. "The device accepted the command" is never confirmation: only OFF readings are.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Mapping
from typing import ClassVar


class PowerState(enum.StrEnum):
    """A host's power as a fence device reports it. POWERING_OFF is not OFF."""

    ON = "on"
    OFF = "off"
    POWERING_OFF = "powering_off"
    UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True)
class FenceDevice:
    """One fence device of one host (a BMC, a PDU outlet ...). The password never appears in repr."""

    host: str
    driver: str
    address: str
    port: int
    username: str
    password: str = dataclasses.field(repr=False)
    options: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        """A log-safe one-line description (no secret)."""
        return f"{self.driver}://{self.username}@{self.address}:{self.port} (host {self.host})"


class FenceDriver(abc.ABC):
    """Power control of one kind of fence device.

    Every method must be safe to repeat: fence devices re-execute retransmitted requests.
    """

    #: Run each call in a short-lived child process with a hard deadline (for libraries that can
    #: hang or deadlock a process, such as pyghmi). In-memory drivers set this to False.
    isolate: ClassVar[bool] = True

    @abc.abstractmethod
    def validate(self, device: FenceDevice) -> None:
        """Check the device record offline (no network).

        :raises petguard.errors.ConfigError: the record is incomplete or malformed.
        """

    @abc.abstractmethod
    def power_state(self, device: FenceDevice, timeout: float) -> PowerState:
        """Read the host's power state once.

        :raises petguard.errors.BmcUnreachable: no answer within ``timeout``.
        :raises petguard.errors.BmcAuthError: credentials refused.
        :raises petguard.errors.FencingError: the device answered with an error.
        """

    @abc.abstractmethod
    def power_off(self, device: FenceDevice, timeout: float) -> None:
        """Ask the device to cut power now (hard off, not ACPI). Returning is not confirmation.

        :raises petguard.errors.BmcUnreachable: no answer within ``timeout``.
        :raises petguard.errors.BmcAuthError: credentials refused.
        :raises petguard.errors.FencingError: the device refused the command.
        """
