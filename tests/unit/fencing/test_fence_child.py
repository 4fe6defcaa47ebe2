"""The child-process protocol without a process: request encoding, the child's ``serve`` and the
parent's ``decode_reply``, including that no message crossing the boundary carries the password."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from petguard import errors
from petguard.fencing import child
from petguard.fencing.base import FenceDevice, PowerState
from petguard.fencing.fake import REGISTRY, Behaviour, FakeDriver

SECRET = "pw-Zq8-never-logged"
DEVICE = FenceDevice(
    host="cmp1",
    driver="fake",
    address="10.0.0.9",
    port=6230,
    username="admin",
    password=SECRET,
    options={"k": "v"},
)


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    REGISTRY.reset()
    yield
    REGISTRY.reset()


def round_trip(op: child.Op) -> PowerState | None:
    request = child.encode_request(FakeDriver(), DEVICE, op, 3.0)
    reply = child.serve(request)
    return child.decode_reply(json.dumps(reply) + "\n", "", 0, DEVICE)


def test_request_names_the_driver_class_and_carries_the_record() -> None:
    request = json.loads(child.encode_request(FakeDriver(), DEVICE, child.Op.POWER_OFF, 2.5))

    assert request["target"] == "petguard.fencing.fake:FakeDriver"
    assert request["op"] == "power_off" and request["timeout"] == 2.5
    assert request["device"]["password"] == SECRET  # stdin only, see FenceRunner
    assert request["device"]["options"] == {"k": "v"}


def test_power_state_and_power_off_round_trip() -> None:
    REGISTRY.script(DEVICE.address, DEVICE.port)

    assert round_trip(child.Op.POWER_STATE) is PowerState.ON
    assert round_trip(child.Op.POWER_OFF) is None
    assert round_trip(child.Op.POWER_STATE) is PowerState.OFF


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        (Behaviour.AUTH_FAILS, errors.BmcAuthError),
        (Behaviour.UNREACHABLE, errors.BmcUnreachable),
        (Behaviour.REFUSES_OFF, errors.FencingError),
    ],
)
def test_errors_come_back_as_the_same_class(
    behaviour: Behaviour, expected: type[errors.PetguardError]
) -> None:
    REGISTRY.script(DEVICE.address, DEVICE.port, behaviour)

    with pytest.raises(expected) as caught:
        round_trip(child.Op.POWER_OFF)

    assert type(caught.value) is expected
    assert caught.value.context == {"host": "cmp1", "driver": "fake"}


def test_temporary_errors_keep_their_delay() -> None:
    reply = child._error_reply(errors.BmcUnreachable("slow", delay=2.5), SECRET)

    assert reply == {"ok": False, "error": "BmcUnreachable", "message": "slow", "delay": 2.5}
    with pytest.raises(errors.BmcUnreachable) as caught:
        child.decode_reply(json.dumps(reply), "", 0, DEVICE)
    assert caught.value.delay == 2.5


def test_a_drivers_own_subclass_travels_as_its_nearest_known_class() -> None:
    class VendorAuthError(errors.BmcAuthError):
        pass

    assert child._error_reply(VendorAuthError("no"), SECRET)["error"] == "BmcAuthError"


def test_unexpected_exceptions_become_fencing_errors_without_the_secret() -> None:
    request = json.loads(child.encode_request(FakeDriver(), DEVICE, child.Op.POWER_OFF, 1.0))
    request["target"] = "petguard.fencing.no_such_module:Driver"

    reply = child.serve(json.dumps(request))

    assert reply["ok"] is False and reply["error"] == "FencingError"
    assert "ModuleNotFoundError" in reply["message"]


def test_a_target_that_is_not_a_driver_is_refused() -> None:
    request = json.loads(child.encode_request(FakeDriver(), DEVICE, child.Op.POWER_OFF, 1.0))
    request["target"] = "petguard.errors:PetguardError"

    assert child.serve(json.dumps(request))["error"] == "FencingError"


def test_garbage_request_is_a_reply_not_a_crash() -> None:
    reply = child.serve("not json")

    assert reply["ok"] is False and reply["error"] == "FencingError"


def test_messages_are_scrubbed_of_the_password() -> None:
    leaky = json.dumps({"ok": False, "error": "FencingError", "message": f"bad {SECRET} here"})

    with pytest.raises(errors.FencingError) as caught:
        child.decode_reply(leaky, "", 0, DEVICE)

    assert SECRET not in str(caught.value)
    assert "***" in str(caught.value)


def test_no_reply_is_a_fencing_error_with_a_scrubbed_stderr_tail() -> None:
    with pytest.raises(errors.FencingError) as caught:
        child.decode_reply("", f"Traceback ... {SECRET}\nImportError: boom", 1, DEVICE)

    assert "exited with code 1" in str(caught.value) and "boom" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_child_killed_by_a_signal_is_worth_retrying() -> None:
    with pytest.raises(errors.BmcUnreachable):
        child.decode_reply("", "", -9, DEVICE)


def test_library_noise_before_the_reply_is_ignored() -> None:
    noise = 'some library print\n{"ok": true, "power": "off"}\n'

    assert child.decode_reply(noise, "", 0, DEVICE) is PowerState.OFF


def test_the_fake_runs_in_process() -> None:
    REGISTRY.script(DEVICE.address, DEVICE.port, power=PowerState.OFF)
    runner = child.FenceRunner(lambda name: FakeDriver())

    # Popen is refused by the unit-test guard: this proves no child was started.
    assert runner.run("fake", DEVICE, child.Op.POWER_STATE, 1.0) is PowerState.OFF
