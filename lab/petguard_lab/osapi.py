"""A tiny stdlib (urllib) client for the lab's Keystone, Nova and Glance APIs.

Used by the lab itself: to create the service users and the catalog
(idempotently), to wait until the computes are up and mapped, and by
``petguard-lab demo`` (servers, server groups, a flavor, an image).  Tests
should use openstacksdk with ``$LAB/clouds.yaml`` instead.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from petguard_lab.settings import (
    ADMIN_PASSWORD,
    DEMO_PASSWORD,
    REGION,
    SERVICE_PASSWORD,
    LabConfig,
    LabError,
)

#: service users (password SERVICE_PASSWORD, project "service", roles admin+service)
SERVICE_USERS = ("nova", "placement", "glance", "neutron")
#: catalog: (service type, name, lab port key, path)
CATALOG = (
    ("identity", "keystone", "keystone", "/v3"),
    ("compute", "nova", "nova_api", "/v2.1"),
    ("placement", "placement", "placement", ""),
    ("image", "glance", "glance", ""),
    ("network", "neutron", "neutron", ""),
)


class HttpError(LabError):
    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url} -> HTTP {status}: {body[:300]}")
        self.status = status


def request(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One HTTP request with a JSON body (or ``raw`` octets); returns (status, headers, decoded
    JSON or None)."""
    data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if raw is not None:
        req.add_header("Content-Type", "application/octet-stream")
    elif data is not None:
        req.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, dict(resp.headers), json.loads(raw) if raw.strip() else None
    except urllib.error.HTTPError as exc:
        raise HttpError(method, url, exc.code, exc.read().decode(errors="replace")) from exc


class Keystone:
    """Admin-scoped token plus the few identity calls the lab needs."""

    def __init__(self, cfg: LabConfig) -> None:
        self.cfg = cfg
        self.base = cfg.auth_url
        self.token = self._token("admin", ADMIN_PASSWORD, "admin")

    def _token(self, user: str, password: str, project: str) -> str:
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}},
        }}
        _, headers, _ = request("POST", self.base + "/auth/tokens", body)
        return headers["X-Subject-Token"]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return request(method, self.base + path, body, {"X-Auth-Token": self.token})[2]

    def _find(self, collection: str, **filters: str) -> dict[str, Any] | None:
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        items = self.call("GET", f"/{collection}?{query}")[collection]
        return items[0] if items else None

    def _ensure(self, collection: str, singular: str, body: dict[str, Any],
                **filters: str) -> str:
        found = self._find(collection, **filters)
        if found:
            return str(found["id"])
        return str(self.call("POST", f"/{collection}", {singular: body})[singular]["id"])

    def setup(self) -> None:
        """Projects, roles, users and the service catalog (idempotent)."""
        projects = {
            name: self._ensure("projects", "project",
                               {"name": name, "domain_id": "default"}, name=name)
            for name in ("admin", "service", "demo")
        }
        roles = {
            name: self._ensure("roles", "role", {"name": name}, name=name)
            for name in ("admin", "member", "reader", "service")
        }

        def user(name: str, password: str, project: str, role_names: tuple[str, ...]) -> None:
            uid = self._ensure("users", "user", {
                "name": name, "password": password, "domain_id": "default",
                "default_project_id": projects[project]}, name=name)
            for role in role_names:
                self.call("PUT", f"/projects/{projects[project]}/users/{uid}/roles/{roles[role]}")

        for name in SERVICE_USERS:
            user(name, SERVICE_PASSWORD, "service", ("admin", "service"))
        user("demo", DEMO_PASSWORD, "demo", ("member", "reader"))

        for stype, name, port_key, path in CATALOG:
            sid = self._ensure("services", "service", {"type": stype, "name": name}, type=stype)
            url = self.cfg.url(port_key) + path
            for interface in ("public", "internal", "admin"):
                ep = self._find("endpoints", service_id=sid, interface=interface)
                if ep is None:
                    self.call("POST", "/endpoints", {"endpoint": {
                        "service_id": sid, "interface": interface, "url": url,
                        "region_id": REGION}})
                elif ep["url"] != url:
                    self.call("PATCH", f"/endpoints/{ep['id']}", {"endpoint": {"url": url}})


class Nova:
    """Admin calls to the lab's compute API."""

    MICROVERSION = "2.53"

    def __init__(self, cfg: LabConfig, keystone: Keystone | None = None) -> None:
        self.keystone = keystone or Keystone(cfg)
        self.base = cfg.url("nova_api") + "/v2.1"

    def get(self, path: str) -> Any:
        headers = {"X-Auth-Token": self.keystone.token,
                   "OpenStack-API-Version": f"compute {self.MICROVERSION}"}
        return request("GET", self.base + path, headers=headers, timeout=10)[2]

    def call(self, method: str, path: str, body: Any = None, microversion: str | None = None,
             timeout: float = 30.0) -> Any:
        """Any compute API call as admin, at ``microversion`` (default MICROVERSION)."""
        headers = {"X-Auth-Token": self.keystone.token,
                   "OpenStack-API-Version": f"compute {microversion or self.MICROVERSION}"}
        return request(method, self.base + path, body, headers=headers, timeout=timeout)[2]

    def delete_service(self, service_id: str) -> None:
        headers = {"X-Auth-Token": self.keystone.token,
                   "OpenStack-API-Version": f"compute {self.MICROVERSION}"}
        request("DELETE", f"{self.base}/os-services/{service_id}", headers=headers, timeout=30)

    def compute_services(self) -> dict[str, dict[str, Any]]:
        """nova-compute services by host."""
        services = self.get("/os-services?binary=nova-compute")["services"]
        return {svc["host"]: svc for svc in services}

    def hypervisor_hosts(self) -> set[str]:
        """Hosts listed in GET /os-hypervisors (= mapped to a cell)."""
        hypervisors = self.get("/os-hypervisors")["hypervisors"]
        return {hv["hypervisor_hostname"] for hv in hypervisors}


class Glance:
    """The few image calls the demo needs (admin)."""

    def __init__(self, cfg: LabConfig, keystone: Keystone | None = None) -> None:
        self.keystone = keystone or Keystone(cfg)
        self.base = cfg.url("glance") + "/v2"

    def _call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Any:
        headers = {"X-Auth-Token": self.keystone.token}
        return request(method, self.base + path, body, headers=headers, raw=raw)[2]

    def find(self, name: str) -> dict[str, Any] | None:
        """The active image called ``name``, if there is one."""
        images = self._call("GET", f"/images?name={name}")["images"]
        return next((i for i in images if i.get("status") == "active"), None)

    def create(self, name: str, data: bytes, **properties: str) -> str:
        """Create and upload a raw image; return its id."""
        image = self._call("POST", "/images", {
            "name": name, "disk_format": "raw", "container_format": "bare", **properties})
        self._call("PUT", f"/images/{image['id']}/file", raw=data)
        return str(image["id"])

    def delete(self, image_id: str) -> None:
        self._call("DELETE", f"/images/{image_id}")
