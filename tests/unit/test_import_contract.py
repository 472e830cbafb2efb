"""The core knows no screen: importing every core module loads no UI or cloud library."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import wizard

FORBIDDEN = ("textual", "questionary", "boto3", "botocore", "paramiko")


def core_modules() -> list[str]:
    return sorted(info.name for info in pkgutil.walk_packages(wizard.__path__, "wizard.")
                  if info.name != "wizard.__main__")


def test_core_modules_are_found() -> None:
    modules = core_modules()
    assert "wizard.engine.runner" in modules and "wizard.steps.preflight" in modules


def test_importing_every_core_module_loads_no_ui_or_cloud_library() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {core_modules()!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_help_loads_no_ui_or_cloud_library() -> None:
    script = (
        "import json, sys\n"
        "from wizard.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "usage: confluence-lb-wizard" in done.stdout
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []
