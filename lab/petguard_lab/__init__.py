"""petguard-lab: a real OpenStack (Nova 34) control plane on loopback for testing petguard.

Tests use the `Lab` class::

    from petguard_lab import Lab
    lab = Lab("/var/tmp/petguard-lab")
    lab.up(computes=3)
    lab.fail("cmp1", "power")
    lab.heal("cmp1")
    lab.down()

petguard_lab never imports petguard; it only writes files petguard reads.
"""

from petguard_lab.bmcs import BMC_MODES
from petguard_lab.components import COMPONENTS
from petguard_lab.faults import FAIL_MODES
from petguard_lab.lab import Lab
from petguard_lab.settings import LabConfig, LabError

__all__ = ["BMC_MODES", "COMPONENTS", "FAIL_MODES", "Lab", "LabConfig", "LabError"]
