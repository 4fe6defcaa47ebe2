"""The IPMI adapter with pyghmi mocked at its public entry point (``Command``, autospec): the
power-state table, the error mapping, bytes credentials, and offline validation."""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from pyghmi import exceptions as pyghmi_exceptions  # type: ignore[import-untyped]

from petguard import errors
from petguard.fencing import ipmi
from petguard.fencing.base import FenceDevice, PowerState

SECRET = "pw-Zq8-never-logged"
DEVICE = FenceDevice(
    host="cmp1", driver="ipmi", address="127.0.0.1", port=6230, username="admin", password=SECRET
)


@pytest.fixture
def command() -> Iterator[mock.MagicMock]:
    with (
        mock.patch.object(ipmi.pyghmi_command, "Command", autospec=True) as cls,
        mock.patch.object(ipmi, "_cap_io_waits", autospec=True),
    ):
        yield cls


def test_credentials_go_to_pyghmi_as_bytes(command: mock.MagicMock) -> None:
    command.return_value.get_power.return_value = {"powerstate": "on"}

    ipmi.IpmiDriver().power_state(DEVICE, 2.0)

    kwargs = command.call_args.kwargs
    assert kwargs["userid"] == b"admin" and kwargs["password"] == SECRET.encode()
    assert kwargs["bmc"] == "127.0.0.1" and kwargs["port"] == 6230


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("on", PowerState.ON),
        ("off", PowerState.OFF),
        ("softoff", PowerState.UNKNOWN),
        (None, PowerState.UNKNOWN),
    ],
)
def test_power_strings_map_through_the_table(
    command: mock.MagicMock, raw: str | None, state: PowerState
) -> None:
    command.return_value.get_power.return_value = {"powerstate": raw}

    assert ipmi.IpmiDriver().power_state(DEVICE, 2.0) is state


def test_power_off_never_waits_in_pyghmi_and_logs_out(command: mock.MagicMock) -> None:
    command.return_value.ipmi_session = mock.Mock(spec=["logout"])  # set in Command.__init__

    ipmi.IpmiDriver().power_off(DEVICE, 2.0)

    command.return_value.set_power.assert_called_once_with("off", wait=False)
    command.return_value.ipmi_session.logout.assert_called_once_with()


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (pyghmi_exceptions.IpmiException("Incorrect password provided"), errors.BmcAuthError),
        (pyghmi_exceptions.IpmiException("Unauthorized name in RAKP2"), errors.BmcAuthError),
        (pyghmi_exceptions.IpmiException("None"), errors.BmcUnreachable),
        (pyghmi_exceptions.IpmiException("Session no longer connected"), errors.BmcUnreachable),
        (pyghmi_exceptions.IpmiException("Node Busy"), errors.BmcUnreachable),
        (pyghmi_exceptions.IpmiException("Unspecified"), errors.FencingError),
        (struct.error("pack expected 32 items for packing (got 20)"), errors.BmcUnreachable),
        (TypeError("'<' not supported"), errors.BmcUnreachable),
        (OSError(101, "Network is unreachable"), errors.BmcUnreachable),
        (RuntimeError("surprise"), errors.FencingError),
    ],
)
def test_pyghmi_errors_are_mapped_once_and_chained(
    command: mock.MagicMock, raised: Exception, expected: type[errors.PetguardError]
) -> None:
    command.side_effect = raised

    with pytest.raises(expected) as caught:
        ipmi.IpmiDriver().power_state(DEVICE, 2.0)

    assert type(caught.value) is expected
    assert caught.value.__cause__ is raised
    assert caught.value.context == {"host": "cmp1", "driver": "ipmi"}
    assert SECRET not in str(caught.value)


def test_a_call_that_does_not_return_in_time_is_unreachable(command: mock.MagicMock) -> None:
    release = threading.Event()

    def hang(*args: Any, **kwargs: Any) -> dict[str, str]:
        release.wait(5)
        return {"powerstate": "on"}

    command.return_value.get_power.side_effect = hang
    try:
        with pytest.raises(errors.BmcUnreachable) as caught:
            ipmi.IpmiDriver().power_state(DEVICE, 0.05)
    finally:
        release.set()
    assert "within 0.1 s" in str(caught.value)


def test_validate_accepts_good_records() -> None:
    driver = ipmi.IpmiDriver()
    driver.validate(DEVICE)
    for address in ("10.1.2.3", "::1", "bmc-cmp1.example.org"):
        driver.validate(FenceDevice("h", "ipmi", address, 623, "u", "p"))


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("address", "not an address!", "address"),
        ("address", "", "address"),
        ("port", 0, "1-65535"),
        ("port", 70000, "1-65535"),
        ("username", "", "username"),
        ("password", "", "password"),
    ],
)
def test_validate_names_each_problem(field: str, value: object, words: str) -> None:
    record = {
        "host": "cmp1",
        "driver": "ipmi",
        "address": "127.0.0.1",
        "port": 623,
        "username": "u",
        "password": "p",
        field: value,
    }

    with pytest.raises(errors.ConfigError) as caught:
        ipmi.IpmiDriver().validate(FenceDevice(**record))  # type: ignore[arg-type]

    assert words in str(caught.value) and "cmp1" in str(caught.value)


def test_the_driver_asks_to_be_isolated() -> None:
    assert ipmi.IpmiDriver.isolate is True
