"""petguard: instance HA for OpenStack pets (fence first, then evacuate, exactly once)."""

__version__ = "0.1.0"
