"""Load fence drivers by name from the entry-point group ``petguard.fencing``.

Only names listed in configuration (``[fencing] enabled_drivers``) are loaded, so a stray plug-in
installed on the host never fences anything. Every failure is a ``DriverLoadError`` that names the
driver and says what to do. The composition root and ``petguard-manage config check`` call this;
``petguard.fencing.child.FenceRunner`` takes the resulting lookup.
"""

from __future__ import annotations

from collections.abc import Collection
from importlib import metadata

from petguard import errors
from petguard.fencing import base

GROUP = "petguard.fencing"


def available() -> list[str]:
    """Names of every installed fence driver (enabled or not), sorted."""
    return sorted(ep.name for ep in metadata.entry_points(group=GROUP))


def load_driver(name: str, enabled: Collection[str]) -> base.FenceDriver:
    """Instantiate the driver registered as ``name``.

    :raises petguard.errors.DriverLoadError: not enabled, not installed, fails to import, or is not
        a FenceDriver.
    """
    if name not in enabled:
        raise errors.DriverLoadError(
            f"fence driver {name!r} is not enabled; add it to [fencing] enabled_drivers "
            f"(enabled now: {', '.join(sorted(enabled)) or 'none'})",
            driver=name,
        )
    entry_point = _find(name)
    try:
        cls = entry_point.load()
    except Exception as exc:  # any import failure of a plug-in is a load failure
        raise errors.DriverLoadError(
            f"fence driver {name!r} ({entry_point.value}) failed to import: "
            f"{type(exc).__name__}: {exc}; check that its package and dependencies are installed",
            driver=name,
        ) from exc
    return _instantiate(name, entry_point.value, cls)


def _find(name: str) -> metadata.EntryPoint:
    matches = metadata.entry_points(group=GROUP, name=name)
    if not matches:
        raise errors.DriverLoadError(
            f"fence driver {name!r} is not installed (no entry point {name!r} in group {GROUP!r}; "
            f"installed: {', '.join(available()) or 'none'}); install the package that provides "
            "it or fix the driver name",
            driver=name,
        )
    return next(iter(matches))


def _instantiate(name: str, value: str, cls: object) -> base.FenceDriver:
    if not (isinstance(cls, type) and issubclass(cls, base.FenceDriver)):
        raise errors.DriverLoadError(
            f"fence driver {name!r} ({value}) is not a petguard.fencing.base.FenceDriver; "
            "fix the entry point or the plug-in",
            driver=name,
        )
    try:
        return cls()
    except Exception as exc:  # a plug-in constructor may fail in any way
        raise errors.DriverLoadError(
            f"fence driver {name!r} ({value}) could not be created: {type(exc).__name__}: {exc}",
            driver=name,
        ) from exc
