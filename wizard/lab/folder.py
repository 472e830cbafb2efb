"""The lab's folder between runs: what a lab remembers, and the lock that keeps one lab per folder.

``confluence-lb-wizard lab`` keeps its lab in one folder per balancer, so that an admin
who quits in the middle and runs the command again comes back to the same cluster: the
same nodes on the same ports (the answers and the state file still describe them), their
install files as the wizard left them, Apache's site, and the base URL saved in the
simulated database. ``lab.json`` records what is not in a file already: the ports and
the base URL.

A lab can come back only when nothing it needs has changed under it: the same
balancer and node count, its files all there, and every one of its ports free. The
reason it cannot is said to the admin (``why_not_resumable``), and a fresh lab starts.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from wizard.errors import WizardError
from wizard.lab.processes import port_is_free

RECORD_NAME = "lab.json"
LOCK_NAME = "lab.lock"
#: Bumped when the record's shape changes; a record of another format starts a fresh lab.
RECORD_FORMAT = 1


@dataclass(frozen=True)
class NodePorts:
    name: str
    confluence_port: int
    synchrony_port: int


@dataclass(frozen=True)
class LabRecord:
    """What a lab remembers between runs (``lab.json``)."""

    balancer: str
    nodes: tuple[NodePorts, ...]
    base_url: str
    server_id: str
    apache_port: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"format": RECORD_FORMAT, "balancer": self.balancer,
                "nodes": [{"name": n.name, "confluence_port": n.confluence_port,
                           "synchrony_port": n.synchrony_port} for n in self.nodes],
                "apache_port": self.apache_port, "base_url": self.base_url, "server_id": self.server_id}

    @classmethod
    def from_json(cls, raw: Any) -> LabRecord:
        """The record; ValueError (with what is wrong) for anything else."""
        if not isinstance(raw, dict) or raw.get("format") != RECORD_FORMAT:
            raise ValueError("it was written by another version of the wizard")
        try:
            nodes = tuple(NodePorts(str(n["name"]), _port(n["confluence_port"]), _port(n["synchrony_port"]))
                          for n in raw["nodes"])
            apache_port = raw.get("apache_port")
            return cls(balancer=str(raw["balancer"]), nodes=nodes, base_url=str(raw["base_url"]),
                       server_id=str(raw["server_id"]),
                       apache_port=None if apache_port is None else _port(apache_port))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"it is incomplete ({exc})") from exc

    def ports(self) -> list[tuple[int, str]]:
        """Every port the lab listens on, with whose it is."""
        found = [(p, f"{n.name}'s {what}") for n in self.nodes
                 for p, what in ((n.confluence_port, "Confluence"), (n.synchrony_port, "Synchrony"))]
        if self.apache_port is not None:
            found.append((self.apache_port, "Apache's"))
        return found


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise TypeError(f"{value!r} is not a port")
    return value


def load_record(root: Path) -> LabRecord | None:
    """The record in ``root``; None when there is none. ValueError when it cannot be used."""
    path = root / RECORD_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"{path} cannot be read ({exc.strerror})") from exc
    try:
        return LabRecord.from_json(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc.msg})") from exc


def save_record(root: Path, record: LabRecord) -> None:
    """Write ``lab.json`` atomically: a lab killed mid-write leaves the old record or the new."""
    path = root / RECORD_NAME
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(record.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(temp, path)


def why_not_resumable(record: LabRecord, *, balancer: str, nodes: int | None,
                      install_files: list[Path]) -> str | None:
    """Why the lab in the record cannot come back as it was, or None when it can."""
    if record.balancer != balancer:
        return f"it was an {record.balancer} lab and this one is {balancer}"
    if balancer == "alb":
        # moto keeps AWS in the lab's memory: the load balancer went with the last run.
        return "the simulated AWS of an ALB lab lives only as long as the lab runs"
    if nodes is not None and nodes != len(record.nodes):
        return f"it had {len(record.nodes)} node(s) and {nodes} were asked for"
    missing = [path for path in install_files if not path.is_file()]
    if missing:
        return f"{missing[0]} is gone"
    taken = [f"{port} ({whose})" for port, whose in record.ports() if not port_is_free(port)]
    if taken:
        return f"port {', '.join(taken)} is taken by another program"
    return None


class FolderLock:
    """One running lab per folder: a second one would find the ports taken and start afresh
    over the first one's state. The kernel drops the lock when the lab's process ends, even
    killed."""

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_NAME
        self._file: TextIO | None = None

    def acquire(self) -> None:
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise WizardError(f"Cannot lock the lab's folder {self.path.parent}: {exc.strerror}.") from exc
            raise WizardError(f"A lab is already running in {self.path.parent} ({holder}).",
                              "Use that one, or quit its wizard first and run `confluence-lb-wizard lab` "
                              "again.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
