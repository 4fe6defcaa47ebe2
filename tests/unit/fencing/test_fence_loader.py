"""Loading fence drivers by name from entry points: only enabled names, and errors that say what
to do."""

from __future__ import annotations

from importlib import metadata
from unittest import mock

import pytest

from petguard import errors
from petguard.fencing import loader
from petguard.fencing.fake import FakeDriver
from petguard.fencing.ipmi import IpmiDriver


def test_enabled_installed_drivers_load() -> None:
    assert isinstance(loader.load_driver("fake", ["fake"]), FakeDriver)
    assert isinstance(loader.load_driver("ipmi", ["ipmi", "fake"]), IpmiDriver)


def test_installed_drivers_are_listed() -> None:
    assert {"fake", "ipmi"} <= set(loader.available())


def test_a_driver_not_enabled_is_refused() -> None:
    with pytest.raises(errors.DriverLoadError) as caught:
        loader.load_driver("ipmi", ["fake"])

    assert caught.value.context == {"driver": "ipmi"}
    assert "enabled_drivers" in str(caught.value)


def test_an_unknown_driver_names_the_installed_ones() -> None:
    with pytest.raises(errors.DriverLoadError) as caught:
        loader.load_driver("redfsh", ["redfsh"])

    assert "not installed" in str(caught.value) and "ipmi" in str(caught.value)


def _entry_point(value: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name="broken", value=value, group=loader.GROUP)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("petguard.fencing.no_such_module:Driver", "failed to import"),
        ("petguard.errors:PetguardError", "is not a petguard.fencing.base.FenceDriver"),
    ],
)
def test_broken_plugins_are_named(value: str, words: str) -> None:
    with mock.patch.object(
        loader.metadata,
        "entry_points",
        autospec=True,
        return_value=metadata.EntryPoints([_entry_point(value)]),
    ):
        with pytest.raises(errors.DriverLoadError) as caught:
            loader.load_driver("broken", ["broken"])

    assert words in str(caught.value) and "'broken'" in str(caught.value)
