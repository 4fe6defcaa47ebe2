"""What every petguard program does the same way at start: its version and its exit statuses.

Exit statuses follow ``sysexits.h`` so that systemd can tell a mistake an operator must fix from a
failure that a restart may cure (the units set ``RestartPreventExitStatus=78``):

======  ====================  ===============================================================
``0``   ``OK``                stopped cleanly (SIGTERM), or ``--help`` / ``--version``
``2``   ``USAGE``             the command line itself is wrong (argparse's own status)
``75``  ``TEMPFAIL``          a transient failure at start: ``petguard.errors.Temporary`` (the
                              database did not answer); systemd restarts the program
``78``  ``CONFIG``            a configuration error: oslo.config's errors, ``ConfigError`` and
                              every other ``Permanent`` error at start (retrying cannot help),
                              among them a login the database refuses (a wrong password);
                              systemd does not restart the program
======  ====================  ===============================================================

An unexpected exception (a bug) is left to Python: a traceback and status 1, which systemd restarts.
"""

from __future__ import annotations

import importlib
import importlib.metadata

from petguard import __version__
from petguard.errors import ConfigError, PetguardError, Temporary

OK = 0
#: argparse exits 2 on a bad command line, before petguard's code runs: kept for usage errors.
USAGE = 2
#: sysexits.h EX_TEMPFAIL: temporary failure, the user is invited to retry (systemd restarts).
TEMPFAIL = 75
#: sysexits.h EX_CONFIG: configuration error (``RestartPreventExitStatus=78`` in the units).
CONFIG = 78

#: The Python module oslo.log needs for ``use_journal`` (from PyPI's systemd-python, not "systemd").
JOURNAL_MODULE = "systemd.journal"


def version() -> str:
    """The installed distribution's version (``importlib.metadata``), or the source tree's when
    petguard runs from a checkout that is not installed."""
    try:
        return importlib.metadata.version("petguard")
    except importlib.metadata.PackageNotFoundError:
        return __version__


def exit_status(exc: PetguardError) -> int:
    """The exit status for an error that stopped a program before it ran.

    ``Temporary`` (worth retrying: the database is unreachable) gives ``TEMPFAIL``; everything else
    is ``Permanent`` (bad configuration or inventory, a schema to migrate, a driver that cannot be
    loaded), which a restart cannot cure: ``CONFIG``.
    """
    return TEMPFAIL if isinstance(exc, Temporary) else CONFIG


def check_journal(use_journal: bool) -> None:
    """Refuse ``use_journal = true`` without the systemd bindings oslo.log writes to the journal with.

    oslo.log would otherwise fail with a bare RuntimeError in the middle of setting up logging.

    :raises ConfigError: the bindings cannot be imported; says which extra or package to install.
    """
    if not use_journal:
        return
    try:
        importlib.import_module(JOURNAL_MODULE)
    except ImportError as exc:
        raise ConfigError(
            f"use_journal = true needs the systemd Python bindings, which cannot be imported ({exc}): "
            "install them with pip install 'petguard[journal]' (PyPI's systemd-python; building it needs "
            "Debian's libsystemd-dev, pkg-config and gcc), or set use_journal = false and let systemd "
            "collect stderr (use_stderr = true)"
        ) from exc
