"""How masking secrets scales: the time to redact 400 kB against 200 kB of adversarial text.

Every diff and state save goes through ``wizard.engine.redact``; a rule that re-scans
from every position would make a big server.xml diff hang a save. Linear cost
prints a ratio near 2 (aim < 3); quadratic cost prints about 4.
"""

from __future__ import annotations

import time

from wizard.engine.redact import redact

UNITS = ["a.b-c.", "-", "password", 'password="', '<property name="password ', "http://a", "-storepass ",
         "xpassword", "\n+aPassword", "SetEnv a_token ", "sshpass -v", "mysql x", "-u a:", "a_pwd=x ",
         "Header always set a_token", 'authorization "', "Private-Lines: 1\n"]


def cost(size: int) -> float:
    started = time.perf_counter()
    for unit in UNITS:
        redact(unit * (size // len(unit)))
    return time.perf_counter() - started


def main() -> None:
    cost(20_000)  # warm up the regular expressions
    small = min(cost(200_000) for _ in range(3))
    large = min(cost(400_000) for _ in range(3))
    print(f"bench_redact: 200 kB {small * 1000:.0f} ms, 400 kB {large * 1000:.0f} ms, "
          f"ratio {large / small:.2f} (aim < 3: linear)")


if __name__ == "__main__":
    main()
