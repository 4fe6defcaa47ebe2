"""The API's default port: one port for the daemon, the agent and the CLI, used by no OpenStack service.

The OpenStack ports below are the services' defaults as kolla-ansible deploys them
(``ansible/group_vars/all.yml``), plus the projects' own defaults where kolla moves them (Placement's
8778) and retired ones (EC2 API 8773, Ceilometer API 8777); 8786 is Manila's, which petguard used
before.
"""

from __future__ import annotations

import urllib.parse

import pytest
from oslo_config import cfg

from petguard.agent import opts as agent_opts
from petguard.api import server
from petguard.cli import client
from petguard.conf import opts

#: Default ports of OpenStack services (API and other listeners) a controller may run.
OPENSTACK_PORTS = frozenset(
    {
        80, 443, 1234, 1789, 5000, 5050, 5672, 6080, 6082, 6083, 6385, 6666, 8000, 8004, 8041, 8042, 8070,
        8080, 8082, 8089, 8386, 8773, 8774, 8775, 8776, 8777, 8778, 8779, 8780, 8786, 8787, 8799, 8889,
        8977, 8989, 8999, 9001, 9090, 9292, 9311, 9322, 9393, 9511, 9517, 9696, 9777, 9876, 9890, 9998,
        9999, 15868, 35357,
    }
)


def _port(url_or_bind: str) -> int:
    parsed = urllib.parse.urlsplit(url_or_bind if "://" in url_or_bind else f"tcp://{url_or_bind}")
    assert parsed.port is not None
    return parsed.port


def _default(options: list[cfg.Opt], name: str) -> object:
    return next(option.default for option in options if option.name == name)


@pytest.mark.fault(
    "START-08",
    guarantee="-",
    injected="petguard's API on its default port beside an OpenStack service on the same controller",
    expected="the default port is none of OpenStack's (8786 was Manila's), and the daemon, the [api] bind "
    "option, the agent's controller_urls and the CLI's default URL all name the same one",
)
def test_one_default_port_that_no_openstack_service_uses() -> None:
    api_options = next(group_opts for group, group_opts in opts.list_opts() if group == "api")
    agent_options = next(group_opts for group, group_opts in agent_opts.list_opts() if group == "agent")
    [agent_url] = _default(list(agent_options), "controller_urls")  # type: ignore[misc]
    ports = {
        "DEFAULT_BIND": _port(server.DEFAULT_BIND),
        "[api] bind": _port(str(_default(list(api_options), "bind"))),
        "[agent] controller_urls": _port(str(agent_url)),
        "CLI DEFAULT_URL": _port(client.DEFAULT_URL),
    }
    assert len(set(ports.values())) == 1, ports
    assert server.DEFAULT_PORT not in OPENSTACK_PORTS
    assert set(ports.values()) == {server.DEFAULT_PORT}
