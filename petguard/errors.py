"""petguard's own exception tree: the foundation every other module raises from.

Library errors (pyghmi, openstacksdk, SQLAlchemy ...) are mapped into this tree once, inside their
adapter, and chained with ``from``. Errors are sorted by what the caller should do next::

    PetguardError
    ├── Temporary(delay)          worth retrying after ``delay`` seconds (tenacity retries only these)
    │   ├── BmcUnreachable        the BMC did not answer in time
    │   └── NovaUnavailable       Nova/Keystone did not answer, or answered 5xx
    └── Permanent                 retrying will not help; escalate
        ├── ConfigError           bad configuration or inventory: says what and how to fix it
        ├── InvalidTransition     an edge that its table does not allow (host lifecycle, move, loan)
        ├── StaleWrite            a compare-and-set found the row in another state than the writer read
        ├── FencingError          the fence device refused, or the power state could not be confirmed
        │   └── BmcAuthError      wrong user name or password
        ├── DriverLoadError       a fence driver named in config cannot be loaded
        ├── NovaError             Nova refused a request (4xx)
        │   └── NovaConflict      Nova refused because of the resource's current state (409 and friends)
        ├── StaleEpoch            a write from an older leadership epoch was refused
        └── NotFound              a host, server or incident that does not exist

Context lives in attributes (``host``, ``driver``, ``server``, ``request_id``), never secrets. No HTTP
codes here: the API maps these to status codes in its own table.
"""

from __future__ import annotations


class PetguardError(Exception):
    """Base of every error petguard raises on purpose."""

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return self.message


class Temporary(PetguardError):
    """A failure worth retrying; ``delay`` is the suggested wait in seconds."""

    def __init__(self, message: str, delay: float = 1.0, **context: object) -> None:
        super().__init__(message, **context)
        self.delay = delay


class Permanent(PetguardError):
    """A failure that retrying will not fix: escalate to the next level or to an operator."""


class BmcUnreachable(Temporary):
    """The BMC did not answer before the deadline."""


class NovaUnavailable(Temporary):
    """Nova or Keystone could not be reached, or answered with a server error."""


class ConfigError(Permanent):
    """Configuration or inventory is invalid; the message says what is wrong and what to do."""


class InvalidTransition(Permanent):
    """A transition table (the host lifecycle, a move, a reserved host's loan) does not allow this edge."""


class StaleWrite(Permanent):
    """A compare-and-set write was refused: the row is no longer in the state the writer read.

    Another writer moved it on; nothing was overwritten. The writer re-reads the journal before acting
    again (``move``/``expected``/``actual`` in the context say which row and how it differed).
    """


class FencingError(Permanent):
    """The fence device refused, or power-off could not be confirmed."""


class BmcAuthError(FencingError):
    """The BMC rejected the user name or password."""


class DriverLoadError(Permanent):
    """A fence driver named in configuration could not be loaded."""


class NovaError(Permanent):
    """Nova refused a request."""


class NovaConflict(NovaError):
    """Nova refused because of the current state of the resource (e.g. 409, service still up)."""


class StaleEpoch(Permanent):
    """A write carried an older leadership epoch than the store's and was refused."""


class NotFound(Permanent):
    """The named host, server or incident does not exist."""
