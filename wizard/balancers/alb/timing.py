"""How long the ALB work waits, and how often it looks.

AWS takes minutes: a new balancer is ``provisioning`` for one to three, a
target passes its first health checks after two intervals (40 s here), and a
deleted balancer holds its network interfaces (and so its security group) for
a few more. The values are read at call time, so tests make them small.
"""

from __future__ import annotations

import time

#: Seconds between two looks at AWS while waiting.
POLL_SECONDS = 10.0
#: Until the balancer is active.
ACTIVE_TIMEOUT = 600.0
#: Until every target is healthy (a node still starting may take longer: verify tells).
HEALTHY_TIMEOUT = 600.0
#: Until a deleted resource is gone, or a resource in use is released.
DELETE_TIMEOUT = 900.0
#: A drained node: how much longer than the target group's deregistration delay AWS may take
#: to let go of its target.
DRAIN_MARGIN = 60.0
#: A node put back after its restart: until AWS reports its targets healthy (two health checks
#: 20 s apart, and a registration that takes AWS up to a minute or so).
UNDRAIN_TIMEOUT = 300.0


def now() -> float:
    return time.monotonic()


def sleep(seconds: float) -> None:
    time.sleep(seconds)
