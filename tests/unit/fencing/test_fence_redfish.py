"""The Redfish adapter without a BMC: the power-state table, the record checks, and sushy's errors
mapped once into petguard's tree (with messages that say what to do and never hold the password)."""

from __future__ import annotations

import pytest
import requests
import sushy
from sushy import exceptions as sushy_exceptions

from petguard import errors
from petguard.fencing import redfish
from petguard.fencing.base import FenceDevice, PowerState

SECRET = "pw-Zq8-never-logged"
DEVICE = FenceDevice(
    "cmp1", "redfish", "10.0.0.5", 443, "root", SECRET, {"system": "/redfish/v1/Systems/abc", "verify": "false"}
)


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        (sushy.PowerState.ON, PowerState.ON),
        (sushy.PowerState.OFF, PowerState.OFF),
        (sushy.PowerState.POWERING_OFF, PowerState.POWERING_OFF),
        (sushy.PowerState.POWERING_ON, PowerState.ON),
        (sushy.PowerState.PAUSED, PowerState.ON),
        ("Off", PowerState.OFF),
        ("PoweringOff", PowerState.POWERING_OFF),
        ("Sleeping", PowerState.UNKNOWN),
        (None, PowerState.UNKNOWN),
    ],
)
def test_power_state_table(raw: object, state: PowerState) -> None:
    assert redfish.map_power_state(raw) is state


def test_every_sushy_power_state_is_in_the_table_and_only_off_is_off() -> None:
    assert set(redfish.POWER_STATE_MAP) == set(sushy.PowerState)
    assert [k for k, v in redfish.POWER_STATE_MAP.items() if v is PowerState.OFF] == [sushy.PowerState.OFF]


def test_a_good_record_passes() -> None:
    redfish.RedfishDriver().validate(DEVICE)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"port": 0}, "port 0 is outside"),
        ({"password": ""}, "username or password is empty"),
        ({"options": {"scheme": "ftp"}}, "scheme 'ftp'"),
        ({"options": {"sytem": "1"}}, "unknown option(s) sytem"),
        ({"options": {"verify": " "}}, "verify is empty"),
    ],
)
def test_record_problems_are_named(changes: dict[str, object], words: str) -> None:
    record = {**DEVICE.__dict__, **changes}
    with pytest.raises(errors.ConfigError, match="Redfish record of host cmp1 is invalid") as caught:
        redfish.RedfishDriver().validate(FenceDevice(**record))  # type: ignore[arg-type]
    assert words in str(caught.value)


def test_urls_and_system_paths() -> None:
    assert redfish.base_url(DEVICE) == "https://10.0.0.5:443"
    assert redfish.base_url(FenceDevice("h", "redfish", "::1", 8000, "u", "p", {"scheme": "http"})) == (
        "http://[::1]:8000"
    )
    assert redfish.system_path(DEVICE) == "/redfish/v1/Systems/abc"
    assert redfish.system_path(FenceDevice("h", "redfish", "a", 1, "u", "p", {"system": "1"})) == (
        "/redfish/v1/Systems/1"
    )
    assert redfish.system_path(FenceDevice("h", "redfish", "a", 1, "u", "p")) is None


class _Response:
    """Just enough of a requests.Response for sushy's HTTPError constructors."""

    def __init__(self, status: int) -> None:
        self.status_code = status

    def json(self) -> dict[str, object]:
        return {"error": {"message": "no", "code": "Base.1.0.GeneralError"}}


def _connection_error() -> sushy_exceptions.ConnectionError:
    try:
        try:
            raise requests.exceptions.ConnectTimeout("timed out")
        except requests.exceptions.ConnectTimeout as inner:
            raise sushy_exceptions.ConnectionError(url="https://10.0.0.5/redfish/v1/", error=inner) from inner
    except sushy_exceptions.ConnectionError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "cls", "words"),
    [
        (sushy_exceptions.AccessError("GET", "/x", _Response(401)), errors.BmcAuthError, "refused the credentials"),
        (
            sushy_exceptions.ResourceNotFoundError("GET", "/x", _Response(404)),
            errors.FencingError,
            "no ComputerSystem at /redfish/v1/Systems/abc",
        ),
        (_connection_error(), errors.BmcUnreachable, "could not be reached for 'power off' (ConnectTimeout)"),
        (sushy_exceptions.ServerSideError("POST", "/x", _Response(503)), errors.BmcUnreachable, "HTTP 503"),
        (sushy_exceptions.MissingActionError(action="#ComputerSystem.Reset", resource="/x"), errors.FencingError,
         "refused 'power off'"),
        (OSError("boom"), errors.BmcUnreachable, "could not be reached"),
        (ValueError("odd"), errors.FencingError, "unexpected ValueError"),
    ],
)
def test_sushy_errors_are_mapped_once(exc: BaseException, cls: type[errors.PetguardError], words: str) -> None:
    mapped = redfish._map_error(exc, DEVICE, "power off")

    assert type(mapped) is cls
    assert words in str(mapped)
    assert SECRET not in str(mapped)
    if isinstance(mapped, errors.Temporary):
        assert mapped.delay > 0


def test_not_found_message_says_where_to_look() -> None:
    mapped = redfish._map_error(sushy_exceptions.ResourceNotFoundError("GET", "/x", _Response(404)), DEVICE, "read")

    assert "set options.system to a path listed under https://10.0.0.5:443/redfish/v1/Systems" in str(mapped)
