"""How much `confluence-lb-wizard --help` costs against a bare interpreter start.

Prints the ratio of median wall times, measured in one run with the two
commands interleaved so machine noise hits both alike. The aim is under 3: the
command must not load Textual, boto3 or paramiko to print its help.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time

ROUNDS = 15


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    command = shutil.which("confluence-lb-wizard", path=os.path.dirname(sys.executable)) \
        or shutil.which("confluence-lb-wizard")
    if command is None:
        sys.exit("bench_help: confluence-lb-wizard is not installed in this environment")
    bare, helped = [], []
    wall([sys.executable, "-c", "pass"])  # warm the page cache for both
    wall([command, "--help"])
    for _ in range(ROUNDS):
        bare.append(wall([sys.executable, "-c", "pass"]))
        helped.append(wall([command, "--help"]))
    ratio = statistics.median(helped) / statistics.median(bare)
    print(f"bench_help: --help {statistics.median(helped) * 1000:.0f} ms, bare python "
          f"{statistics.median(bare) * 1000:.0f} ms, ratio {ratio:.2f} (aim < 3)")


if __name__ == "__main__":
    main()
