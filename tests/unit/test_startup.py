"""petguard.startup: which exit status each error at start gives, and the journal bindings check."""

from __future__ import annotations

import importlib

import pytest

from petguard import errors, startup
from petguard.store.engine import StoreUnavailable


def _all_errors(base: type[errors.PetguardError]) -> list[type[errors.PetguardError]]:
    found = [base]
    for sub in base.__subclasses__():
        found.extend(_all_errors(sub))
    return found


@pytest.mark.fault(
    "START-06",
    guarantee="-",
    injected="every PetguardError subclass (petguard's own and the adapters') raised at start",
    expected="Temporary and its subclasses exit 75 (systemd restarts); every other error exits 78 (it does not)",
)
@pytest.mark.parametrize("error", _all_errors(errors.PetguardError), ids=lambda cls: cls.__name__)
def test_every_error_at_start_has_one_exit_status(error: type[errors.PetguardError]) -> None:
    exc = error("at start")
    expected = startup.TEMPFAIL if isinstance(exc, errors.Temporary) else startup.CONFIG
    assert startup.exit_status(exc) == expected


def test_the_errors_build_raises_are_classified_as_the_docs_say() -> None:
    assert startup.exit_status(StoreUnavailable("database down")) == 75
    assert startup.exit_status(errors.ConfigError("bad option")) == 78
    assert startup.exit_status(errors.DriverLoadError("no such driver")) == 78
    assert startup.exit_status(errors.Permanent("schema cannot be read")) == 78


def test_journal_check_passes_when_journal_is_off() -> None:
    startup.check_journal(False)


def test_journal_check_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> object:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(errors.ConfigError, match=r"pip install 'petguard\[journal\]'"):
        startup.check_journal(True)


def test_version_is_the_installed_distributions() -> None:
    assert startup.version()
