"""The fence-driver contract: the plug-in interface every fencing adapter implements (pure domain).

Drivers are registered as entry points in the group ``petguard.fencing`` and loaded by name
(``petguard.fencing.loader``). A driver only talks to its device; the procedure
(``petguard.fencing.procedure``) decides when to power off, how often to read the power state back
and when to give up. "The device accepted the command" is never confirmation: only OFF readings are.

The contract also names what crosses it: the driver operations a runner carries out (``Op``, so
that the procedure needs the runner's interface only, never the runner ``petguard.fencing.child``),
and the one result of a fence (``FenceResult``, with its ``LevelOutcome`` and per-device
``FenceOutcome``), which the procedure returns, the leader guard passes on and the host lane turns
into a lifecycle event (``FenceFn`` is the callable the lanes are given).
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Callable, Iterator, Mapping
from typing import ClassVar


class PowerState(enum.StrEnum):
    """A host's power as a fence device reports it. POWERING_OFF is not OFF."""

    ON = "on"
    OFF = "off"
    POWERING_OFF = "powering_off"
    UNKNOWN = "unknown"


class Op(enum.StrEnum):
    """The driver operations a runner can carry out (``petguard.fencing.child.FenceRunner``)."""

    POWER_STATE = "power_state"
    POWER_OFF = "power_off"


#: Words that make an option's value a secret when its name contains one (fence-agents'
#: ``community``, ``snmp_priv_passwd``, ``secret_key``, ``apikey``, ``token`` ...). Matching too
#: much only masks more; matching too little leaks (FENCE-09).
SECRET_OPTION_WORDS: tuple[str, ...] = ("pass", "secret", "community", "token", "key", "credential")


def is_secret_option(name: str) -> bool:
    """Whether option ``name`` holds a secret (pure). ``no_password``-style flags do not: masking
    their value ("1") would mask every 1 in a message."""
    lowered = name.lower()
    return not lowered.startswith("no_") and any(word in lowered for word in SECRET_OPTION_WORDS)


@dataclasses.dataclass(frozen=True)
class FenceDevice:
    """One fence device of one host (a BMC, a PDU outlet ...).

    Neither the password nor the options appear in repr: options may hold secrets too (an SNMP
    community, ``snmp_priv_passwd``); ``secrets()`` lists every value to mask in a message.
    """

    host: str
    driver: str
    address: str
    port: int
    username: str
    password: str = dataclasses.field(repr=False)
    options: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)

    def describe(self) -> str:
        """A log-safe one-line description (no secret)."""
        return f"{self.driver}://{self.username}@{self.address}:{self.port} (host {self.host})"

    def secrets(self) -> tuple[str, ...]:
        """Every secret of the record: the password and each option value that names a secret."""
        named = (value for key, value in self.options.items() if is_secret_option(key))
        return tuple(value for value in (self.password, *named) if value)


@dataclasses.dataclass(frozen=True)
class FenceTopology:
    """A host's ordered fence levels (Pacemaker's fencing topology).

    Level 1 is tried first; a level is confirmed only when every one of its devices reads back OFF
    (a host with dual power supplies behind two PDU outlets needs both); the first confirmed level
    ends fencing. ``delay`` is waited before level 1 (seconds; against two controllers fencing each
    other's hosts at once).
    """

    host: str
    levels: tuple[tuple[FenceDevice, ...], ...]
    delay: float = 0.0

    @classmethod
    def single(cls, device: FenceDevice) -> FenceTopology:
        """One level of one device (the inventory's ``bmc:`` shorthand)."""
        return cls(host=device.host, levels=((device,),))

    def devices(self) -> Iterator[tuple[int, int, FenceDevice]]:
        """Every device as (level number, device number, device), both counted from 1."""
        for level_no, level in enumerate(self.levels, start=1):
            for device_no, device in enumerate(level, start=1):
                yield level_no, device_no, device


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


@dataclasses.dataclass(frozen=True)
class FenceOutcome:
    """The result of fencing one device: confirmed only by N consecutive OFF readings."""

    confirmed: bool
    readings: tuple[PowerState, ...]
    attempts: int
    duration_s: float
    reason: str


@dataclasses.dataclass(frozen=True)
class LevelOutcome:
    """The result of one fence level: confirmed only when every device in it is."""

    level: int
    confirmed: bool
    devices: tuple[FenceOutcome, ...]
    duration_s: float
    reason: str


@dataclasses.dataclass(frozen=True)
class FenceResult:
    """The result of fencing one host through its levels: only ``confirmed`` lets evacuation start.

    The one result of a fence end to end: the procedure returns it (``levels`` says what each level
    did), a fence that is not attempted returns it with no level (no device in the inventory, not
    the leader), and the host lane turns it into its lifecycle event. ``reason`` is written for the
    operator.
    """

    host: str
    confirmed: bool
    reason: str
    levels: tuple[LevelOutcome, ...] = ()
    delay_s: float = 0.0
    duration_s: float = 0.0

    @property
    def failed_levels(self) -> tuple[str, ...]:
        """One line per failed level, for an event and an alert each."""
        return tuple(f"fence level {lv.level} failed: {lv.reason}" for lv in self.levels if not lv.confirmed)


#: fence(host) -> FenceResult: what the host lanes are given to fence a host with (built by
#: ``petguard.fencing.procedure.make_fence``, wrapped by the leader guard ``ha.guards.guard_fence``).
FenceFn = Callable[[str], FenceResult]
