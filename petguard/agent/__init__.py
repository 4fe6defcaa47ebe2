"""petguard-agent: the compute-node agent (libvirt domain events and heartbeats to the controllers)."""
