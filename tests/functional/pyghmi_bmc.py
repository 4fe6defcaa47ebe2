"""pyghmi's own BMC emulator (``pyghmi.ipmi.bmc.Bmc``) as a functional-test peer for petguard.

Run as a script, one BMC per process, bound to 127.0.0.1 only::

    python tests/functional/pyghmi_bmc.py --port 16300 --state DIR

``DIR/users.json`` holds ``{"user": "password"}`` (never argv); ``DIR/power`` holds 1 or 0;
``DIR/mode`` is one of normal | stuck_on | fail_set | fail_get | busy | flap | optimistic, read on
every request (flap and optimistic as in ``ipmisim_chassis.sh``: power-off acknowledged and not
carried out; the power reads OFF every other time, or for ``DIR/optimistic`` seconds from the
first reading after it).

Two server-side fixes of pyghmi 1.6.19 (notes/bmc-peers.md, section 2), so that pyghmi's own client
can talk to its own server the way it talks to ipmi_sim and real BMCs:

* Cipher suite: the stock server answers every RMCP+ Open Session Request with "status 0, suite 3"
  whatever was proposed; the client proposes SHA-256 first, trusts the 0 and then fails with
  ``struct.error``. Here a proposal other than HMAC-SHA1 / HMAC-SHA1-96 is answered with status 0x04
  (invalid authentication algorithm), as ipmi_sim does; the client then retries with SHA-1.
* Unknown user: the stock server ignores the RAKP1 and the client waits forever. Here it answers
  RAKP2 with status 0x0d (unauthorized name), as real BMCs do.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from pyghmi.ipmi import bmc
from pyghmi.ipmi.private import serversession

RAKP_AUTH_HMAC_SHA1 = 1
RAKP_INTEGRITY_HMAC_SHA1_96 = 1
STATUS_INVALID_AUTH_ALGORITHM = 0x04
STATUS_UNAUTHORIZED_NAME = 0x0D
CC_UNSPECIFIED = 0xFF
CC_NODE_BUSY = 0xC0


class CipherCheckingServerSession(serversession.ServerSession):
    """ServerSession that refuses what it cannot speak instead of pretending to accept it."""

    def create_open_session_response(self, request: bytearray) -> bytearray:
        # Open Session Request: [0] tag, [4:8] console session id, [12] authentication algorithm,
        # [20] integrity algorithm (IPMI 2.0 table 13-9).
        if request[12] != RAKP_AUTH_HMAC_SHA1 or request[20] != RAKP_INTEGRITY_HMAC_SHA1_96:
            self.clientsessionid = request[4:8]
            return bytearray([request[0], STATUS_INVALID_AUTH_ALGORITHM, 0, 0]) + request[4:8]
        response: bytearray = super().create_open_session_response(request)
        return response

    def _got_rakp1(self, data: Any) -> None:
        name_length = data[27]
        name = bytes(data[28 : 28 + name_length])
        if name_length and self.authdata.get(name.decode("utf-8", "replace")) is None:
            reply = bytearray([data[0], STATUS_UNAUTHORIZED_NAME, 0, 0]) + self.clientsessionid
            self.send_payload(reply, serversession.constants.payload_types["rakp2"], retry=False)
            return
        super()._got_rakp1(data)


# IpmiServer.sessionless_data creates sessions through this module-level name.
serversession.ServerSession = CipherCheckingServerSession


class FileBackedBmc(bmc.Bmc):
    """A BMC whose host power and fault mode live in files, so tests can watch and steer it."""

    def __init__(self, state: Path, users: dict[str, str], port: int) -> None:
        super().__init__(users, port=port, address="127.0.0.1")
        self._state = state

    def _mode(self) -> str:
        path = self._state / "mode"
        return path.read_text().strip() if path.exists() else "normal"

    def _log(self, call: str) -> None:
        with (self._state / "calls.log").open("a") as log:
            log.write(call + "\n")

    def get_power_state(self) -> str:
        path = self._state / "power"
        truth = "on" if not path.exists() or path.read_text().strip() == "1" else "off"
        mode = self._mode()
        if mode == "flap":
            turn = self._state / "flap_turn"
            first = not turn.exists() or turn.read_text().strip() == "0"
            turn.write_text("1\n" if first else "0\n")
            return "off" if first else truth
        sent, pending = self._state / "off_sent_at", self._state / "off_pending"
        if mode == "optimistic" and pending.exists():
            pending.unlink()
            sent.write_text(f"{time.time()}\n")
        if mode == "optimistic" and sent.exists():
            window = float((self._state / "optimistic").read_text())
            if time.time() - float(sent.read_text()) < window:
                return "off"
        return truth

    def get_chassis_status(self, session: Any) -> None:
        self._log("get power")
        if self._mode() == "fail_get":
            session.send_ipmi_response(code=CC_UNSPECIFIED)
            return
        super().get_chassis_status(session)

    def power_off(self) -> int:
        self._log("set power 0")
        mode = self._mode()
        if mode == "fail_set":
            return CC_UNSPECIFIED
        if mode == "busy":
            return CC_NODE_BUSY
        if mode == "optimistic":
            (self._state / "off_pending").write_text("1\n")
        if mode not in ("stuck_on", "flap", "optimistic"):
            (self._state / "power").write_text("0\n")
        return 0

    def power_on(self) -> int:
        self._log("set power 1")
        (self._state / "power").write_text("1\n")
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args()
    users = json.loads((args.state / "users.json").read_text())
    FileBackedBmc(args.state, users, args.port)
    FileBackedBmc.listen(timeout=30)


if __name__ == "__main__":
    main()
