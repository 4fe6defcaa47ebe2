"""The child-process protocol without a process: request encoding, the child's ``serve`` and the
parent's ``decode_reply``, including that no message crossing the boundary carries the password."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from petguard import errors
from petguard.fencing import child
from petguard.fencing.base import FenceDevice, Op, PowerState
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


def round_trip(op: Op) -> PowerState | None:
    request = child.encode_request(FakeDriver(), DEVICE, op, 3.0)
    reply = child.serve(request)
    return child.decode_reply((json.dumps(reply) + "\n").encode(), b"", 0, DEVICE, op)


def test_request_names_the_driver_class_and_carries_the_record() -> None:
    request = json.loads(child.encode_request(FakeDriver(), DEVICE, Op.POWER_OFF, 2.5))

    assert request["target"] == "petguard.fencing.fake:FakeDriver"
    assert request["op"] == "power_off" and request["timeout"] == 2.5
    assert request["device"]["password"] == SECRET  # stdin only, see FenceRunner
    assert request["device"]["options"] == {"k": "v"}


def test_power_state_and_power_off_round_trip() -> None:
    REGISTRY.script(DEVICE.address, DEVICE.port)

    assert round_trip(Op.POWER_STATE) is PowerState.ON
    assert round_trip(Op.POWER_OFF) is None
    assert round_trip(Op.POWER_STATE) is PowerState.OFF


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
        round_trip(Op.POWER_OFF)

    assert type(caught.value) is expected
    assert caught.value.context == {"host": "cmp1", "driver": "fake"}


def test_temporary_errors_keep_their_delay() -> None:
    reply = child._error_reply(errors.BmcUnreachable("slow", delay=2.5), SECRET)

    assert reply == {"ok": False, "error": "BmcUnreachable", "message": "slow", "delay": 2.5}
    with pytest.raises(errors.BmcUnreachable) as caught:
        child.decode_reply(json.dumps(reply).encode(), b"", 0, DEVICE, Op.POWER_OFF)
    assert caught.value.delay == 2.5


def test_a_drivers_own_subclass_travels_as_its_nearest_known_class() -> None:
    class VendorAuthError(errors.BmcAuthError):
        pass

    assert child._error_reply(VendorAuthError("no"), SECRET)["error"] == "BmcAuthError"


def test_unexpected_exceptions_become_fencing_errors_without_the_secret() -> None:
    request = json.loads(child.encode_request(FakeDriver(), DEVICE, Op.POWER_OFF, 1.0))
    request["target"] = "petguard.fencing.no_such_module:Driver"

    reply = child.serve(json.dumps(request))

    assert reply["ok"] is False and reply["error"] == "FencingError"
    assert "ModuleNotFoundError" in reply["message"]


def test_a_target_that_is_not_a_driver_is_refused() -> None:
    request = json.loads(child.encode_request(FakeDriver(), DEVICE, Op.POWER_OFF, 1.0))
    request["target"] = "petguard.errors:PetguardError"

    assert child.serve(json.dumps(request))["error"] == "FencingError"


def test_garbage_request_is_a_reply_not_a_crash() -> None:
    reply = child.serve("not json")

    assert reply["ok"] is False and reply["error"] == "FencingError"


def test_messages_are_scrubbed_of_the_password() -> None:
    leaky = json.dumps({"ok": False, "error": "FencingError", "message": f"bad {SECRET} here"})

    with pytest.raises(errors.FencingError) as caught:
        child.decode_reply(leaky.encode(), b"", 0, DEVICE, Op.POWER_STATE)

    assert SECRET not in str(caught.value)
    assert "***" in str(caught.value)


def test_no_reply_is_a_fencing_error_with_a_scrubbed_stderr_tail() -> None:
    with pytest.raises(errors.FencingError) as caught:
        child.decode_reply(b"", f"Traceback ... {SECRET}\nImportError: boom".encode(), 1, DEVICE, Op.POWER_STATE)

    assert "exited with code 1" in str(caught.value) and "boom" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_child_killed_by_a_signal_is_worth_retrying() -> None:
    with pytest.raises(errors.BmcUnreachable):
        child.decode_reply(b"", b"", -9, DEVICE, Op.POWER_STATE)


def test_anything_besides_the_reply_on_stdout_is_malformed() -> None:
    # The child keeps fd 1 for its reply alone (_claim_stdout): a second line means the protocol
    # broke, and a reading is believed only from a well-formed reply.
    noise = b'some library print\n{"ok": true, "power": "off"}\n'

    with pytest.raises(errors.FencingError, match="malformed reply .more than one line"):
        child.decode_reply(noise, b"", 0, DEVICE, Op.POWER_STATE)


def test_the_fake_runs_in_process() -> None:
    REGISTRY.script(DEVICE.address, DEVICE.port, power=PowerState.OFF)
    runner = child.FenceRunner(lambda name: FakeDriver())

    # Popen is refused by the unit-test guard: this proves no child was started.
    assert runner.run("fake", DEVICE, Op.POWER_STATE, 1.0) is PowerState.OFF


# -- a reply is believed only when well-formed (FENCE-04, FENCE-05) ----------------------------

FENCE_04 = pytest.mark.fault(
    "FENCE-04",
    guarantee="4",
    injected="a fence child replies power 'Off' or delay 'soon' (malformed)",
    expected="a FencingError for that device: the level fails, AWAITING_CONFIRM with an alert, no crashed lane",
)


@FENCE_04
@pytest.mark.parametrize(
    ("reply", "op", "words"),
    [
        ('{"ok": true, "power": "Off"}', Op.POWER_STATE, "power is not one of"),
        ('{"ok": true, "power": "OFF"}', Op.POWER_STATE, "power is not one of"),
        ('{"ok": true}', Op.POWER_STATE, "power is not one of"),
        ('{"ok": true, "power": ["off"]}', Op.POWER_STATE, "power is not one of"),
        ('{"ok": true, "power": "off"}', Op.POWER_OFF, "a power-off answer carries no power state"),
        ('{"ok": true, "power": "off", "error": "x"}', Op.POWER_STATE, "unexpected keys"),
        ('{"ok": true, "power": "on", "power": "off"}', Op.POWER_STATE, "a key appears twice"),
        ('{"ok": "yes", "power": "off"}', Op.POWER_STATE, "'ok' is neither true nor false"),
        ('{"ok": 1, "power": "off"}', Op.POWER_STATE, "'ok' is neither true nor false"),
        ('{"ok": false, "error": "BmcUnreachable", "delay": "soon"}', Op.POWER_OFF, "delay is not"),
        ('{"ok": false, "error": "BmcUnreachable", "delay": NaN}', Op.POWER_OFF, "delay is not"),
        ('{"ok": false, "error": "BmcUnreachable", "delay": -1}', Op.POWER_OFF, "delay is not"),
        ('{"ok": false, "error": "BmcUnreachable", "delay": 1e400}', Op.POWER_OFF, "delay is not"),
        ('{"ok": false, "error": "BmcUnreachable", "delay": true}', Op.POWER_OFF, "delay is not"),
        ('{"ok": false, "error": ["x"]}', Op.POWER_OFF, "must be strings"),
        ('["ok", true]', Op.POWER_STATE, "not a JSON object"),
        ('{"ok": true, "power": "off"', Op.POWER_STATE, "not JSON"),
        ("[" * 100_000, Op.POWER_STATE, "not JSON"),
    ],
)
def test_a_malformed_reply_is_a_fencing_error(reply: str, op: Op, words: str) -> None:
    with pytest.raises(errors.FencingError) as caught:
        child.decode_reply(reply.encode(), b"", 0, DEVICE, op)

    assert type(caught.value) is errors.FencingError
    assert "malformed reply" in str(caught.value) and words in str(caught.value)
    assert caught.value.context == {"host": "cmp1", "driver": "fake"}


@FENCE_04
def test_a_malformed_reply_is_not_echoed_with_a_secret() -> None:
    leaky = json.dumps({"ok": True, "power": SECRET}).encode()

    with pytest.raises(errors.FencingError) as caught:
        child.decode_reply(leaky, b"", 0, DEVICE, Op.POWER_STATE)

    assert SECRET not in str(caught.value) and "***" in str(caught.value)


@pytest.mark.fault(
    "FENCE-05",
    guarantee="1",
    injected="a fence child prints an OFF reply, then exits non-zero or is killed",
    expected="not a reading: an error, never one of the OFF readings that confirm",
)
@pytest.mark.parametrize("code", [1, 2, -9, -15, None])
def test_an_off_reply_from_a_child_that_then_failed_is_not_a_reading(code: int | None) -> None:
    with pytest.raises(errors.FencingError, match=f"answered off but then exited with code {code}"):
        child.decode_reply(b'{"ok": true, "power": "off"}\n', b"", code, DEVICE, Op.POWER_STATE)


@pytest.mark.fault(
    "FENCE-10",
    guarantee="4",
    injected="a fence agent or child prints bytes that are not UTF-8",
    expected="decoded with replacement: an error or a reading, never an exception out of the call",
)
def test_undecodable_child_output_is_an_error_not_an_exception() -> None:
    with pytest.raises(errors.FencingError, match="malformed reply"):
        child.decode_reply(b'{"ok": true, "power": "of\xff"}', b"\xfe", 0, DEVICE, Op.POWER_STATE)
    with pytest.raises(errors.FencingError, match="stderr ends with: \ufffd"):
        child.decode_reply(b"", b"\xfe", 1, DEVICE, Op.POWER_STATE)


def test_secret_options_never_cross_the_boundary() -> None:
    device = FenceDevice(**{**DEVICE.__dict__, "options": {"community": "comm-Hq83-private"}})
    request = json.loads(child.encode_request(FakeDriver(), device, Op.POWER_OFF, 1.0))
    request["target"] = "petguard.fencing.no_such_module_comm-Hq83-private:Driver"

    reply = child.serve(json.dumps(request))

    assert "comm-Hq83-private" not in json.dumps(reply)
    assert "comm-Hq83-private" not in repr(device)
