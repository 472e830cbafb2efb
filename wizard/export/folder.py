"""The export's output folder: created when missing, refused when it holds anything but an earlier export.

Every export writes a manifest (``MANIFEST``) naming the tool, the format, the setup and
every file it wrote. A folder is accepted when it is missing, empty, or holds exactly the
files of an earlier export's manifest; those are replaced. Anything else in it (a file
the admin put there, another tool's output) makes the export refuse, with nothing
written, so an export never deletes or overwrites what it did not write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from wizard import TOOL_NAME, __version__
from wizard.errors import BadInputError

MANIFEST = ".confluence-lb-wizard-export.json"


def _listing(folder: Path) -> set[str]:
    """Every file under ``folder`` (relative, POSIX), directories left out."""
    found: set[str] = set()
    for root, _dirs, files in os.walk(folder):
        for name in files:
            found.add(Path(root, name).relative_to(folder).as_posix())
    return found


def earlier_files(folder: Path) -> list[str]:
    """The files of the earlier export in ``folder`` (empty for a missing or empty folder).

    Raises BadInputError when the folder is not a folder, or holds anything else.
    """
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise BadInputError(f"{folder} exists and is not a folder; the export writes a folder.",
                            "Pass -o a new folder (it is created) or the folder of an earlier export.")
    present = _listing(folder)
    if not present:
        return []
    hint = ("Pass -o a new or empty folder (it is created when missing), or the folder of an earlier "
            "export of this tool, which is replaced; nothing was written.")
    if MANIFEST not in present:
        shown = ", ".join(sorted(present)[:5]) + (" ..." if len(present) > 5 else "")
        raise BadInputError(f"{folder} is not empty and is not an earlier export of {TOOL_NAME} "
                            f"(no {MANIFEST}; it holds {shown}).", hint)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest.get("tool") != TOOL_NAME or not isinstance(files, list) \
                or not all(isinstance(f, str) for f in files):
            raise ValueError("not this tool's manifest")
    except (OSError, ValueError, KeyError, TypeError):
        raise BadInputError(f"{folder / MANIFEST} is not a manifest this tool wrote.", hint) from None
    others = present - set(files) - {MANIFEST}
    if others:
        shown = ", ".join(sorted(others)[:5]) + (" ..." if len(others) > 5 else "")
        raise BadInputError(f"{folder} holds an earlier export and files that are not part of it: {shown}.",
                            "Move those files elsewhere (an export replaces its folder), or pass -o "
                            "another folder; nothing was written.")
    return [f for f in files if f in present]


def write_export(folder: Path, files: dict[str, str], *, fmt: str, setup: str,
                 modes: dict[str, int] | None = None) -> list[Path]:
    """Replace the earlier export in ``folder`` (checked first) with ``files`` (relative path -> text)."""
    old = earlier_files(folder)
    for relative in files:
        if relative.startswith("/") or ".." in Path(relative).parts:
            raise AssertionError(f"an export file outside its folder: {relative}")
    folder.mkdir(parents=True, exist_ok=True)
    for relative in old:
        (folder / relative).unlink()
    (folder / MANIFEST).unlink(missing_ok=True)
    written = []
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        # newline="" : the text is written exactly as rendered (the vhost is compared byte for byte).
        with open(path, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        if modes and relative in modes:
            path.chmod(modes[relative])
        written.append(path)
    manifest = {"tool": TOOL_NAME, "version": __version__, "format": fmt, "setup": setup,
                "files": sorted(files)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    # Folders the earlier export made and this one does not use go too, when empty.
    for relative in old:
        parent = (folder / relative).parent
        while parent != folder and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    return written
