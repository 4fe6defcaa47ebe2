"""The petguard lab's virt driver: Nova's FakeDriver with a persistent host.

This file is not imported by petguard_lab: ``petguard-lab install`` copies it
into the lab venv as ``nova/virt/labfake.py`` (Nova only loads drivers from
``nova.virt``) and the computes use ``compute_driver = labfake.LabFakeDriver``.

Two things differ from the stock FakeDriver, so that a killed compute behaves
like a rebooted hypervisor:

* the compute node UUID is the persistent local node identity
  (``$state_path/compute_id``, as with libvirt), so a restarted nova-compute
  is recognised instead of refusing to start ("No local node identity found");
* the fake guests are kept in ``$state_path/labfake_instances.json``, so after a
  restart the compute still "runs" the guests that were evacuated away while it
  was dead, and Nova's start-up cleanup really destroys them.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import nova.conf
from nova.compute import power_state
from nova.virt import fake, node
from oslo_log import log as logging

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)
GUESTS_FILE = "labfake_instances.json"


class LabFakeDriver(fake.FakeDriver):
    """FakeDriver whose node identity and guests survive a process restart."""

    def __init__(self, virtapi: Any, read_only: bool = False) -> None:
        super().__init__(virtapi, read_only=read_only)
        self._guests_lock = threading.Lock()
        self._guests_path = os.path.join(CONF.state_path, GUESTS_FILE)
        # guests spawned by this process: only their flavor resources are claimed
        self._claimed: set[str] = set()
        self._load_guests()

    # ------------------------------------------------------------ persistence
    def _load_guests(self) -> None:
        try:
            with open(self._guests_path) as handle:
                saved = json.load(handle)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            LOG.warning("labfake: ignoring unreadable %s: %s", self._guests_path, exc)
            return
        for uuid, guest in saved.items():
            self.instances[uuid] = fake.FakeInstance(guest["name"], guest["state"], uuid)
        LOG.info("labfake: %d guest(s) still on this host after restart: %s",
                 len(saved), ", ".join(sorted(saved)) or "-")

    def _save_guests(self) -> None:
        with self._guests_lock:
            data = {
                uuid: {"name": guest.name, "state": guest.state}
                for uuid, guest in self.instances.items()
            }
            os.makedirs(CONF.state_path, exist_ok=True)
            tmp = self._guests_path + ".tmp"
            with open(tmp, "w") as handle:
                json.dump(data, handle)
            os.replace(tmp, self._guests_path)

    # ------------------------------------------------------- node identity
    def get_available_resource(self, nodename: str) -> dict[str, Any]:
        resources = super().get_available_resource(nodename)
        if resources:
            resources["uuid"] = node.get_local_node_uuid()
        return resources

    def get_nodenames_by_uuid(self, refresh: bool = False) -> dict[str, str]:
        return {node.get_local_node_uuid(): name for name in self.get_available_nodes()}

    # ------------------------------------------- guest lifecycle (persisted)
    def spawn(self, context: Any, instance: Any, *args: Any, **kwargs: Any) -> None:
        super().spawn(context, instance, *args, **kwargs)
        self._claimed.add(instance.uuid)
        self._save_guests()

    def destroy(self, context: Any, instance: Any, *args: Any, **kwargs: Any) -> None:
        if instance.uuid in self.instances and instance.uuid not in self._claimed:
            # a guest loaded from disk: FakeDriver would release its flavor's
            # resources, which were never claimed in this process
            del self.instances[instance.uuid]
        else:
            super().destroy(context, instance, *args, **kwargs)
        self._claimed.discard(instance.uuid)
        self._save_guests()

    def power_off(self, instance: Any, *args: Any, **kwargs: Any) -> None:
        super().power_off(instance, *args, **kwargs)
        self._save_guests()

    def power_on(self, context: Any, instance: Any, *args: Any, **kwargs: Any) -> None:
        super().power_on(context, instance, *args, **kwargs)
        self._save_guests()

    def reboot(self, context: Any, instance: Any, *args: Any, **kwargs: Any) -> None:
        super().reboot(context, instance, *args, **kwargs)
        if instance.uuid in self.instances:
            self.instances[instance.uuid].state = power_state.RUNNING
        self._save_guests()

    def finish_migration(self, context: Any, migration: Any, instance: Any,
                         *args: Any, **kwargs: Any) -> None:
        super().finish_migration(context, migration, instance, *args, **kwargs)
        self._claimed.add(instance.uuid)
        self._save_guests()

    def confirm_migration(self, context: Any, migration: Any, instance: Any,
                          network_info: Any) -> None:
        super().confirm_migration(context, migration, instance, network_info)
        self._save_guests()
