"""TLS options: both files or neither, what an https:// or http:// bind asks, a unix socket never TLS,
the clients' CA file (agent, CLI), and how an untrusted certificate is recognised behind httpx's errors."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import cast

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from oslo_config import cfg

from petguard import tls
from petguard.agent import opts as agent_opts
from petguard.agent.report import AgentStatus, Buffer, Reporter, ReportSettings
from petguard.api.server import ServerSettings, bind_scheme, parse_bind
from petguard.cli.client import Client, parse_url
from petguard.cli.errors import ClientError
from petguard.conf import opts
from petguard.daemon import check
from petguard.errors import ConfigError
from tests.unit.cli.runner import run_cli


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    """A matching certificate and key (0600)."""
    issued = trustme.CA().issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    return str(cert), str(key)


def test_neither_file_is_plain_http() -> None:
    assert tls.server_context(None, None) is None
    assert ServerSettings().tls_context() is None


@pytest.mark.fault(
    "TLS-07",
    guarantee="-",
    injected="[api] tls_cert_file without tls_key_file, or the key without the certificate",
    expected="ConfigError naming the option that is set and the one missing: both or neither",
)
@pytest.mark.parametrize(("given", "missing"), [("tls_cert_file", "tls_key_file"), ("tls_key_file", "tls_cert_file")])
def test_one_file_without_the_other_is_refused(files: tuple[str, str], given: str, missing: str) -> None:
    cert, key = files
    settings = ServerSettings(**{given: cert if given == "tls_cert_file" else key})  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as refused:
        settings.tls_context()
    assert str(refused.value) == (
        f"[api] {given} is set but [api] {missing} is not: TLS needs both (the certificate and its private key), "
        "or neither for plain HTTP"
    )


@pytest.mark.fault(
    "TLS-09",
    guarantee="-",
    injected="[api] tls_key_file is an encrypted (passphrase) PEM key",
    expected="ConfigError at start saying so and how to write it unencrypted; OpenSSL never prompts on the "
    "terminal (a hang of config check or of the daemon in a shell)",
)
def test_an_encrypted_key_is_refused_not_prompted_for(files: tuple[str, str], tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(Path(files[1]).read_bytes(), password=None)
    encrypted = tmp_path / "encrypted-key.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    encrypted.chmod(0o600)
    refused = rf"^\[api\] tls_key_file {encrypted} is encrypted \(it asks for a passphrase\)"
    with pytest.raises(ConfigError, match=refused):
        tls.server_context(files[0], str(encrypted))


def test_both_files_give_tls_1_2_at_least(files: tuple[str, str]) -> None:
    context = ServerSettings(tls_cert_file=files[0], tls_key_file=files[1]).tls_context()
    assert context is not None and context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert tls.client_context(None, "x").minimum_version is ssl.TLSVersion.TLSv1_2


@pytest.mark.fault(
    "TLS-08",
    guarantee="-",
    injected="[api] bind = https://HOST:PORT without the TLS files; http://HOST:PORT with them",
    expected="ConfigError: the bind asks for TLS and says which options to set / asks for plain HTTP while "
    "tls_cert_file is set",
)
def test_the_bind_scheme_must_agree_with_the_files(files: tuple[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"bind = https://127.0.0.1:8795 asks for TLS: set \[api\] tls_cert_file"):
        ServerSettings(bind="https://127.0.0.1:8795").tls_context()
    with pytest.raises(ConfigError, match=r"asks for plain HTTP but \[api\] tls_cert_file is set: bind https://"):
        ServerSettings(bind="http://127.0.0.1:8795", tls_cert_file=files[0], tls_key_file=files[1]).tls_context()
    assert ServerSettings(bind="https://127.0.0.1:8795", tls_cert_file=files[0], tls_key_file=files[1]).tls_context()


@pytest.mark.parametrize(
    ("bind", "scheme", "address"),
    [
        ("127.0.0.1:8795", None, ("127.0.0.1", 8795)),
        ("https://10.0.0.5:8795", "https", ("10.0.0.5", 8795)),
        ("http://[::1]:8795/", "http", ("::1", 8795)),
    ],
)
def test_a_bind_may_say_its_scheme(bind: str, scheme: str | None, address: tuple[str, int]) -> None:
    assert (bind_scheme(bind), parse_bind(bind)) == (scheme, address)


def test_a_unix_socket_never_uses_tls(files: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    settings = ServerSettings(socket="/run/petguard/api.sock", tls_cert_file=files[0], tls_key_file=files[1])
    with caplog.at_level(logging.WARNING):
        assert settings.tls_context() is None
    assert "a unix socket ([api] socket) has no TLS" in caplog.text


def test_config_check_has_one_tls_line(files: tuple[str, str], tmp_path: Path) -> None:
    conf = cfg.ConfigOpts()
    opts.register(conf)
    conf([], project="petguard-test")
    assert check._tls(conf).line() == (
        "OK      api tls: off: plain HTTP on 127.0.0.1:8795 (set [api] tls_cert_file and tls_key_file for TLS)"
    )
    conf.set_override("tls_cert_file", files[0], group="api")
    conf.set_override("tls_key_file", files[1], group="api")
    assert check._tls(conf).line() == (
        f"OK      api tls: {files[0]} and its key match; TLS 1.2 or newer only on 127.0.0.1:8795"
    )
    Path(files[1]).chmod(0o640)
    assert check._tls(conf).level == check.Level.OK
    Path(files[1]).chmod(0o604)
    open_key = check._tls(conf).line()
    assert open_key.startswith(f"ERROR   api tls: [api] tls_key_file: {files[1]} is open to other users")
    conf.set_override("tls_key_file", None, group="api")
    no_key = check._tls(conf).line()
    assert no_key.startswith("ERROR   api tls: [api] tls_cert_file is set but [api] tls_key_file is not")


# -- the clients ----------------------------------------------------------------------------------------
def test_a_bad_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^\[agent\] ca_file {tmp_path}/none.pem cannot be read: No such file"):
        tls.client_context(str(tmp_path / "none.pem"), "[agent] ca_file")
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    with pytest.raises(ConfigError, match=rf"^\[agent\] ca_file {junk} holds no PEM certificate"):
        tls.client_context(str(junk), "[agent] ca_file")


def test_the_cli_says_which_ca_file_it_cannot_read(tmp_path: Path) -> None:
    result = run_cli(["--ca-file", str(tmp_path / "none.pem"), "host", "list"], url="https://127.0.0.1:1")
    assert result.code == 1
    assert result.err == (
        f"petguard: --ca-file / PETGUARD_CA_FILE {tmp_path}/none.pem cannot be read: No such file or directory\n"
    )


def test_the_cli_reads_no_ca_file_for_a_unix_socket(tmp_path: Path) -> None:
    client = Client(parse_url(f"unix://{tmp_path}/none.sock"), lambda: "t", ca_file=str(tmp_path / "none.pem"))
    assert isinstance(client._default_transport(), httpx.HTTPTransport)  # no ClientError: the CA file is unused
    tcp = Client(parse_url("https://127.0.0.1:1"), lambda: "t", ca_file=str(tmp_path / "none.pem"))
    with pytest.raises(ClientError, match="none.pem cannot be read"):
        tcp._default_transport()


def test_the_agent_refuses_to_start_with_a_ca_file_it_cannot_read(tmp_path: Path) -> None:
    settings = ReportSettings(urls=("https://ctl1:8795",), host="cmp1", sender="cmp1", key="k",
                              ca_file=str(tmp_path / "none.pem"))
    with pytest.raises(ConfigError, match=r"^\[agent\] ca_file .*none.pem cannot be read: No such file"):
        Reporter(settings, cast(Buffer, None), lambda: AgentStatus(True, ()))


def test_the_agent_has_a_ca_file_option_and_no_way_to_skip_verification() -> None:
    names = {o.name for o in agent_opts.agent_opts}
    assert "ca_file" in names
    assert not {n for n in names if "insecure" in n or "verify" in n}


def test_untrusted_finds_the_verification_failure_behind_httpx() -> None:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "self-signed certificate"
    try:
        try:
            raise cause
        except ssl.SSLError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as wrapped:
        found = tls.untrusted(wrapped)
    assert found is cause and tls.reason(cause) == "self-signed certificate"
    assert tls.untrusted(httpx.ConnectError("connection refused")) is None
