"""The API over TLS on 127.0.0.1, with a CA and certificates this test makes (trustme): the CLI and an
agent's heartbeat with the right CA; the wrong CA, plain HTTP, a stalled handshake, and files the
daemon must refuse at start (a key open to others, a certificate and key that do not match)."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from oslo_config import cfg

from petguard import tls
from petguard.agent.report import AgentStatus, Buffer, Reporter, ReportSettings
from petguard.api.server import ApiServer, ServerSettings
from petguard.conf import opts
from petguard.daemon import api_backend
from petguard.errors import ConfigError
from tests.functional.api.conftest import HOST_KEYS, Api
from tests.unit.cli.runner import run_cli, write_token

TOKEN = "op-token-functional"  # conftest's operator token


class Pki:
    """A CA, the daemon's certificate and key (0600) signed by it, and the CA's certificate for clients."""

    def __init__(self, directory: Path, name: str = "petguard") -> None:
        self.ca = trustme.CA(organization_name=f"{name} test CA")
        issued = self.ca.issue_cert("127.0.0.1", "localhost")
        self.cert = directory / f"{name}-cert.pem"
        self.key = directory / f"{name}-key.pem"
        self.ca_file = directory / f"{name}-ca.pem"
        issued.cert_chain_pems[0].write_to_path(str(self.cert))
        issued.private_key_pem.write_to_path(str(self.key))
        self.key.chmod(0o600)
        self.ca.cert_pem.write_to_path(str(self.ca_file))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@pytest.fixture
def served(api: Api, pki: Pki) -> Iterator[ApiServer]:
    """The api fixture's app served over TLS on 127.0.0.1:<free port>."""
    app = api.client._transport.app  # type: ignore[attr-defined]
    settings = ServerSettings(
        bind="https://127.0.0.1:0", tls_cert_file=str(pki.cert), tls_key_file=str(pki.key), request_timeout=2.0
    )
    server = ApiServer(app, settings).start()
    api.tick()
    try:
        yield server
    finally:
        server.stop()


def reporter(url: str, ca_file: Path | None, tmp_path: Path) -> Reporter:
    settings = ReportSettings(
        urls=(url,), host="cmp1", sender="agent-cmp1", key=HOST_KEYS["agent-cmp1"], timeout=3.0,
        ca_file=str(ca_file) if ca_file else None,
    )
    return Reporter(settings, Buffer(tmp_path / "buffer.sqlite", 100), lambda: AgentStatus(True, ()), version="test")


def test_the_cli_and_an_agent_heartbeat_over_tls_with_the_right_ca(
    api: Api, served: ApiServer, pki: Pki, tmp_path: Path
) -> None:
    assert served.url.startswith("https://127.0.0.1:")
    token = write_token(tmp_path, TOKEN)
    listed = run_cli(["--ca-file", str(pki.ca_file), "host", "list", "-f", "value", "-c", "Name"], url=served.url,
                     token_file=token)
    assert (listed.code, listed.out, listed.err) == (0, "cmp1\ncmp2\ncmp3\ncmp4\ncmp5\n", "")
    agent = reporter(served.url, pki.ca_file, tmp_path)
    try:
        assert agent.send_heartbeat()
    finally:
        agent.stop()
    assert [a["host"] for a in api.client.get("/v1/agents").json()["agents"]] == ["cmp1"]


def test_the_ca_file_comes_from_petguard_ca_file_too(
    served: ApiServer, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PETGUARD_CA_FILE", str(pki.ca_file))
    result = run_cli(["status", "-f", "json"], url=served.url, token_file=write_token(tmp_path, TOKEN))
    assert result.code == 0, result.err


@pytest.mark.fault(
    "TLS-01",
    guarantee="8",
    injected="the CLI reaches the daemon's https:// API with another CA's certificate, then with none "
    "(the system trust store)",
    expected="exit 1, one line naming the URL, OpenSSL's reason and --ca-file / PETGUARD_CA_FILE; no "
    "traceback, no token sent",
)
def test_the_cli_refuses_a_certificate_it_does_not_trust(served: ApiServer, tmp_path: Path) -> None:
    other = Pki(tmp_path, "other")
    token = write_token(tmp_path, TOKEN)
    for extra in (["--ca-file", str(other.ca_file)], []):
        result = run_cli([*extra, "host", "list"], url=served.url, token_file=token)
        assert result.code == 1 and result.out == ""
        assert result.err == (
            f"petguard: the petguard daemon at {served.url} has a TLS certificate this client does not trust "
            "(unable to get local issuer certificate): give the CA certificate that signed it with --ca-file "
            "or PETGUARD_CA_FILE\n"
        )


@pytest.mark.fault(
    "TLS-02",
    guarantee="8",
    injected="an agent's [agent] ca_file is another CA's certificate; the controller serves https://",
    expected="the heartbeat is not delivered, the agent's warning names the URL and [agent] ca_file; "
    "nothing reaches the journal",
)
def test_an_agent_refuses_a_controller_it_does_not_trust(
    api: Api, served: ApiServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent = reporter(served.url, Pki(tmp_path, "other").ca_file, tmp_path)
    try:
        assert not agent.send_heartbeat()
    finally:
        agent.stop()
    assert (
        f"{served.url}: the controller's TLS certificate is not trusted (unable to get local issuer certificate): "
        "set [agent] ca_file to the CA certificate that signed it"
    ) in caplog.text
    assert api.client.get("/v1/agents").json()["agents"] == []


@pytest.mark.fault(
    "TLS-03",
    guarantee="-",
    injected="plain HTTP (an old --url http://..., a monitor) to the TLS port",
    expected="400 saying the port is TLS only and to use https://; the next TLS client is served",
)
def test_plain_http_to_the_tls_port_fails_cleanly(served: ApiServer, pki: Pki) -> None:
    plain = served.url.replace("https://", "http://")
    answer = httpx.get(f"{plain}/healthz", timeout=5)
    assert answer.status_code == 400
    assert answer.text.startswith("This port serves the petguard API over TLS only: use https://")
    verify = tls.client_context(str(pki.ca_file), "test")
    assert httpx.get(f"{served.url}/healthz", verify=verify, timeout=5).status_code == 200


@pytest.mark.fault(
    "TLS-05",
    guarantee="8",
    injected="3 clients connect to the TLS port and send nothing (or stop mid-handshake); cheroot's builtin "
    "adapter does each handshake in its one accepting thread",
    expected="a TLS client is served at once meanwhile; the silent ones are cut off at request_timeout",
)
def test_a_stalled_handshake_does_not_hold_the_others(served: ApiServer, pki: Pki) -> None:
    host, port = served.address.rsplit(":", 1)
    silent = [socket.create_connection((host, int(port))) for _ in range(3)]
    silent[0].sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, then nothing
    try:
        verify = tls.client_context(str(pki.ca_file), "test")
        started = time.monotonic()
        assert httpx.get(f"{served.url}/healthz", verify=verify, timeout=5).status_code == 200
        assert time.monotonic() - started < 1.0
        for sock in silent:  # closed by the server within request_timeout (2 s) and a margin
            sock.settimeout(5)
            assert sock.recv(100) == b""
    finally:
        for sock in silent:
            sock.close()


@pytest.mark.fault(
    "TLS-10",
    guarantee="8",
    injected="a TLS client finishes its handshake, then sends its request headers a byte every 0.3 s "
    "(a slowloris inside TLS; [api] request_timeout = 2 s)",
    expected="cut off at request_timeout (408 or closed), as over plain HTTP (SLOW-01)",
)
def test_a_slowloris_inside_tls_is_cut_at_the_request_deadline(served: ApiServer, pki: Pki) -> None:
    host, port = served.address.rsplit(":", 1)
    verify = tls.client_context(str(pki.ca_file), "test")
    with verify.wrap_socket(socket.create_connection((host, int(port)), timeout=5), server_hostname=host) as sock:
        started = time.monotonic()
        answer = b""
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.3)
            if time.monotonic() - started > 6:
                break
            sock.settimeout(0.01)
            try:
                answer = sock.recv(200)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            finally:
                sock.settimeout(5)
            break
        elapsed = time.monotonic() - started
    assert elapsed < 4.0, f"still connected after {elapsed:.1f} s"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer


def test_tls_1_1_is_refused(served: ApiServer, pki: Pki) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(str(pki.ca_file))
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1: the server must refuse it
    with pytest.raises(httpx.ConnectError, match=r"(?i)protocol version|unsupported protocol|no protocols"):
        httpx.get(f"{served.url}/healthz", verify=old, timeout=5)


# -- from configuration: refused at start ---------------------------------------------------------------
def _conf(tmp_path: Path, pki: Pki, **api_options: object) -> cfg.ConfigOpts:
    token = write_token(tmp_path, "s3cret-token")
    conf = cfg.ConfigOpts()
    opts.register(conf)
    conf([], project="petguard-test")
    options = {"token_file": str(token), "bind": "127.0.0.1:0", "tls_cert_file": str(pki.cert),
               "tls_key_file": str(pki.key), **api_options}
    for name, value in options.items():
        conf.set_override(name, value, group="api")
    return conf


def test_start_api_serves_tls_from_configuration(api: Api, pki: Pki, tmp_path: Path) -> None:
    server = api_backend.start_api(_conf(tmp_path, pki), api.harness.store, api.harness.loop)
    try:
        api.tick()
        assert server.url.startswith("https://")
        verify = tls.client_context(str(pki.ca_file), "test")
        answer = httpx.get(f"{server.url}/v1/status", headers={"Authorization": "Bearer s3cret-token"},
                           verify=verify, timeout=5)
        assert answer.json()["tick_ok"] is True
    finally:
        server.stop()


@pytest.mark.fault(
    "TLS-04",
    guarantee="7",
    injected="[api] tls_key_file is mode 0644 (0620: group may write)",
    expected="the daemon refuses to start: ConfigError naming the file, its mode and chmod 640 (the one rule "
    "for secret files); nothing listens",
)
@pytest.mark.parametrize(("mode", "who"), [(0o644, "other users"), (0o620, "its group for writing")])
def test_a_key_open_to_others_is_refused_at_start(api: Api, pki: Pki, tmp_path: Path, mode: int, who: str) -> None:
    pki.key.chmod(mode)
    with pytest.raises(ConfigError) as refused:
        api_backend.start_api(_conf(tmp_path, pki), api.harness.store, api.harness.loop)
    assert str(refused.value) == (
        f"[api] tls_key_file: {pki.key} is open to {who} (mode {mode:04o}); a secret file may be read by its "
        f"owner and group only: run chmod 640 {pki.key} (or 600)"
    )


@pytest.mark.fault(
    "TLS-06",
    guarantee="-",
    injected="[api] tls_cert_file is another CA's certificate for the same name, not the one of tls_key_file",
    expected="the daemon refuses to start: ConfigError saying the key is not the certificate's; no key material "
    "in the message",
)
def test_a_certificate_and_key_that_do_not_match_are_refused_at_start(api: Api, pki: Pki, tmp_path: Path) -> None:
    other = Pki(tmp_path, "other")
    conf = _conf(tmp_path, pki, tls_cert_file=str(other.cert))
    with pytest.raises(ConfigError) as refused:
        api_backend.start_api(conf, api.harness.store, api.harness.loop)
    assert str(refused.value) == (
        f"[api] tls_key_file {pki.key} is not the private key of [api] tls_cert_file {other.cert}: "
        "give the key the certificate was issued for"
    )
    assert "PRIVATE KEY" not in str(refused.value)


def test_unreadable_tls_files_are_refused_at_start(api: Api, pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    for option, what in (("tls_cert_file", "tls_cert_file"), ("tls_key_file", "tls_key_file")):
        conf = _conf(tmp_path, pki, **{option: str(missing)})
        with pytest.raises(ConfigError, match=rf"^\[api\] {what} {missing} cannot be read: No such file"):
            api_backend.start_api(conf, api.harness.store, api.harness.loop)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"cannot be loaded \(.*\): both must be PEM files"):
        api_backend.start_api(_conf(tmp_path, pki, tls_cert_file=str(garbage)), api.harness.store, api.harness.loop)
