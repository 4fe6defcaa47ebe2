"""The real cheroot server on 127.0.0.1:<free port> and on a unix socket, started and stopped; and
``start_api`` from configuration (secret files checked)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest
from oslo_config import cfg

from petguard.api.server import ApiServer, ServerSettings
from petguard.conf import opts
from petguard.daemon import api_backend
from petguard.errors import ConfigError
from tests.functional.api.conftest import TOKEN, Api


def test_tcp_server_started_and_stopped(api: Api) -> None:
    api.tick()
    app = api.client._transport.app  # type: ignore[attr-defined]
    server = ApiServer(app, ServerSettings(bind="127.0.0.1:0")).start()
    try:
        base = f"http://{server.address}"
        assert server.address.startswith("127.0.0.1:") and not server.address.endswith(":0")
        response = httpx.get(f"{base}/v1/hosts", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert response.status_code == 200 and response.json()["hosts"]
        assert httpx.get(f"{base}/v1/hosts", timeout=5).status_code == 401
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/healthz", timeout=2)


def test_unix_socket_server(api: Api, tmp_path: Path) -> None:
    api.tick()
    path = str(tmp_path / "petguard.sock")
    app = api.client._transport.app  # type: ignore[attr-defined]
    server = ApiServer(app, ServerSettings(socket=path)).start()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport, base_url="http://petguard", timeout=5) as client:
            response = client.post(
                "/v1/hosts/cmp1/requests",
                json={"kind": "maintenance_on", "reason": "over the socket"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert response.status_code == 202
    finally:
        server.stop()
    assert not os.path.exists(path)


def test_an_address_in_use_is_a_config_error(api: Api) -> None:
    app = api.client._transport.app  # type: ignore[attr-defined]
    first = ApiServer(app, ServerSettings(bind="127.0.0.1:0")).start()
    try:
        with pytest.raises(ConfigError, match="the API cannot listen on 127.0.0.1:"):
            ApiServer(app, ServerSettings(bind=first.address)).start()
    finally:
        first.stop()


def _conf(tmp_path: Path, **api_options: object) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    opts.register(conf)
    conf([], project="petguard-test")
    for name, value in api_options.items():
        conf.set_override(name, value, group="api")
    return conf


def test_start_api_from_configuration(api: Api, tmp_path: Path) -> None:
    token_file = tmp_path / "api-token"
    token_file.write_text("ops s3cret-token\n")
    token_file.chmod(0o644)
    conf = _conf(tmp_path, token_file=str(token_file), bind="127.0.0.1:0")
    with pytest.raises(ConfigError, match=r"is open to other users \(mode 0644\).* chmod 640"):
        api_backend.start_api(conf, api.harness.store, api.harness.loop)
    token_file.chmod(0o600)
    server = api_backend.start_api(conf, api.harness.store, api.harness.loop)
    try:
        api.tick()
        headers = {"Authorization": "Bearer s3cret-token"}
        base = f"http://{server.address}"
        assert httpx.get(f"{base}/v1/status", headers=headers, timeout=5).json()["tick_ok"] is True
        assert "petguard_ticks_total" in httpx.get(f"{base}/metrics", timeout=5).text
    finally:
        server.stop()
    with pytest.raises(ConfigError, match=r"\[api\] token_file .* cannot be read"):
        api_backend.start_api(_conf(tmp_path, token_file=str(tmp_path / "none")), api.harness.store, api.harness.loop)
