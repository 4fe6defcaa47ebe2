"""One rule for every secret file petguard reads (``secrets.too_open``), the same sentence everywhere.

Each reader is given the same secret in a file of each mode: owner and group may read it (0600, 0640,
0400, 0440 accepted); group write or any bit for others (0644, 0604, 0660, 0602, 0666) is refused,
before the secret is used, with the one sentence and the chmod that fixes it, and never the secret.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from petguard import secrets, tls
from petguard.agent.main import read_key
from petguard.cli.client import read_token
from petguard.cli.errors import ClientError
from petguard.errors import ConfigError
from petguard.fencing import inventory
from petguard.nova import compute
from petguard.webhooks.receivers import read_secret

SECRET = "Pr1vate-S3cret"
ACCEPTED = [0o600, 0o640, 0o400, 0o440]
REFUSED = [0o644, 0o604, 0o660, 0o602, 0o666]


def _errors(problems: list[inventory.Problem]) -> None:
    errors = [p.message for p in problems if p.severity is inventory.Severity.ERROR]
    if errors:
        raise ConfigError("; ".join(errors))


def _bmc_password_file(tmp_path: Path, secret_file: Path) -> None:
    inv = tmp_path / "inventory.yaml"
    inv.write_text(
        "hosts:\n  cmp1: {bmc: {driver: ipmi, address: 127.0.0.1, username: admin, "
        f"password_file: {secret_file}}}}}\n"
    )
    _errors(inventory.check_inventory(inv, ["ipmi"])[1])


INLINE_INVENTORY = (
    f"hosts:\n  cmp1: {{bmc: {{driver: ipmi, address: 127.0.0.1, username: admin, password: {SECRET}}}}}\n"
)
CLOUDS_YAML = (
    "clouds:\n  lab:\n    auth:\n      auth_url: http://127.0.0.1:5000/v3\n      username: petguard\n"
    f"      password: {SECRET}\n      project_name: service\n      user_domain_name: Default\n"
    "      project_domain_name: Default\n"
)


_ISSUED = trustme.CA().issue_cert("127.0.0.1")


def _tls_key_file(tmp_path: Path, key_file: Path) -> None:
    cert = tmp_path / "api-cert.pem"
    _ISSUED.cert_chain_pems[0].write_to_path(str(cert))
    tls.server_context(str(cert), str(key_file))


#: reader -> (the file's text, how the reader is called on (tmp_path, file)); a refusal raises
#: ConfigError or ClientError.
READERS: dict[str, tuple[str, Callable[[Path, Path], object]]] = {
    "[api] token_file": (SECRET, lambda _, f: secrets.load_secrets(str(f), "token", "[api] token_file")),
    "[api] alert_token_file": (SECRET, lambda _, f: secrets.load_secrets(str(f), "alert", "[api] alert_token_file")),
    "[api] hmac_key_file": (SECRET, lambda _, f: secrets.load_secrets(str(f), "hmac", "[api] hmac_key_file")),
    "[agent] hmac_key_file": (SECRET, lambda _, f: read_key(str(f))),
    "[api] tls_key_file": (_ISSUED.private_key_pem.bytes().decode(), _tls_key_file),
    "[webhook] secret_file": (SECRET, lambda _, f: read_secret(str(f), "[webhook:ops] secret_file")),
    "CLI token file": (SECRET, lambda _, f: read_token(f)),
    "BMC password_file": (SECRET, _bmc_password_file),
    "inventory with an inline password": (
        INLINE_INVENTORY,
        lambda _, f: _errors(inventory.check_inventory(f, ["ipmi"])[1]),
    ),
    "clouds.yaml": (CLOUDS_YAML, lambda _, f: compute.connect("lab", str(f))),  # no I/O beyond the file
}


def _read(reader: str, tmp_path: Path, mode: int) -> Path:
    text, read = READERS[reader]
    path = tmp_path / "secret"
    path.write_text(text + "\n")
    path.chmod(mode)
    read(tmp_path, path)
    return path


@pytest.mark.parametrize("mode", REFUSED, ids=lambda m: f"{m:04o}")
@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.fault(
    "SECRET-06",
    guarantee="5",
    injected="a secret file (token, agent or webhook key, the API's TLS key, BMC password file, inventory with "
    "an inline password, clouds.yaml) open to other users or writable by its group",
    expected="refused by every reader with the same sentence and the chmod that fixes it; the secret never shown",
)
def test_a_secret_file_open_to_others_is_refused_the_same_way_everywhere(
    tmp_path: Path, reader: str, mode: int
) -> None:
    path = tmp_path / "secret"
    with pytest.raises((ConfigError, ClientError)) as info:
        _read(reader, tmp_path, mode)
    message = str(info.value)
    who = "other users" if mode & 0o007 else "its group for writing"
    sentence = (
        f"{path} is open to {who} (mode {mode:04o}); a secret file may be read by its owner and group only: "
        f"run chmod 640 {path} (or 600)"
    )
    assert sentence in message, message
    assert SECRET not in message


@pytest.mark.parametrize("mode", ACCEPTED, ids=lambda m: f"{m:04o}")
@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_secret_file_for_owner_and_group_is_accepted(tmp_path: Path, reader: str, mode: int) -> None:
    _read(reader, tmp_path, mode)


def test_too_open_names_the_rule() -> None:
    assert secrets.too_open("/x", 0o100640) is None
    assert secrets.too_open("/x", 0o100600) is None
    assert secrets.too_open("/x", 0o100620) == (
        "/x is open to its group for writing (mode 0620); a secret file may be read by its owner and group only: "
        "run chmod 640 /x (or 600)"
    )
