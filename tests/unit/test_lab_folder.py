"""What a lab remembers between runs (wizard/lab/folder.py): the record, the reasons it cannot
come back, and the one-lab-per-folder lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from wizard.errors import WizardError
from wizard.lab.folder import (
    RECORD_NAME,
    FolderLock,
    LabRecord,
    NodePorts,
    load_record,
    save_record,
    why_not_resumable,
)
from wizard.lab.processes import port_is_free

RECORD = LabRecord(balancer="apache", base_url="http://localhost:8080", server_id="A1B2-C3D4-E5F6-0708",
                   apache_port=8080, nodes=(NodePorts("node1", 8090, 8091), NodePorts("node2", 8092, 8093)))


def test_the_record_survives_a_round_trip_through_its_file(tmp_path: Path) -> None:
    assert load_record(tmp_path) is None  # a new folder has none
    save_record(tmp_path, RECORD)
    assert load_record(tmp_path) == RECORD
    assert [p.name for p in tmp_path.iterdir()] == [RECORD_NAME]  # no temp file left beside it


@pytest.mark.parametrize(("text", "reason"), [
    ("{not json", "is not JSON"),
    (json.dumps({"format": 99}), "another version of the wizard"),
    (json.dumps({"format": 1, "balancer": "apache"}), "incomplete"),
    (json.dumps({**RECORD.to_json(), "apache_port": "eighty"}), "incomplete"),
    (json.dumps({**RECORD.to_json(), "nodes": [{"name": "node1", "confluence_port": 70000,
                                                "synchrony_port": 8091}]}), "incomplete"),
])
def test_a_damaged_record_says_what_is_wrong(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / RECORD_NAME).write_text(text)
    with pytest.raises(ValueError, match=reason):
        load_record(tmp_path)


def free_record(tmp_path: Path) -> tuple[LabRecord, list[Path]]:
    """A record whose ports are free now, and its install files present."""
    ports = []
    for _ in range(5):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    record = LabRecord(balancer="apache", base_url="", server_id="x", apache_port=ports[4],
                       nodes=(NodePorts("node1", ports[0], ports[1]), NodePorts("node2", ports[2], ports[3])))
    files = [tmp_path / "node1.xml", tmp_path / "node2.xml"]
    for path in files:
        path.write_text("<Server/>")
    return record, files


def test_a_lab_comes_back_only_when_nothing_it_needs_changed(tmp_path: Path) -> None:
    record, files = free_record(tmp_path)
    assert why_not_resumable(record, balancer="apache", nodes=None, install_files=files) is None
    assert why_not_resumable(record, balancer="apache", nodes=2, install_files=files) is None
    assert why_not_resumable(record, balancer="alb", nodes=None, install_files=files) == \
        "it was an apache lab and this one is alb"
    alb = LabRecord(**{**record.__dict__, "balancer": "alb", "apache_port": None})
    assert "lives only as long as the lab runs" in why_not_resumable(alb, balancer="alb", nodes=None,
                                                                     install_files=files)
    assert why_not_resumable(record, balancer="apache", nodes=3, install_files=files) == \
        "it had 2 node(s) and 3 were asked for"
    files[1].unlink()
    assert why_not_resumable(record, balancer="apache", nodes=None, install_files=files) == f"{files[1]} is gone"


def test_a_taken_port_is_named_with_whose_it_is(tmp_path: Path) -> None:
    record, files = free_record(tmp_path)
    with socket.socket() as taker:
        taker.bind(("127.0.0.1", record.apache_port))
        taker.listen()
        assert not port_is_free(record.apache_port)
        assert why_not_resumable(record, balancer="apache", nodes=None, install_files=files) == \
            f"port {record.apache_port} (Apache's) is taken by another program"
    assert port_is_free(record.apache_port)


def test_one_lab_per_folder_and_a_killed_holder_never_keeps_it(tmp_path: Path) -> None:
    first, second = FolderLock(tmp_path), FolderLock(tmp_path)
    first.acquire()
    with pytest.raises(WizardError, match=f"already running in {tmp_path} \\(pid {os.getpid()}\\)"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()
    # A holder killed with SIGKILL: the kernel drops its lock.
    script = ("import sys, time\nfrom pathlib import Path\nfrom wizard.lab.folder import FolderLock\n"
              "lock = FolderLock(Path(sys.argv[1]))\nlock.acquire()\nprint('held', flush=True)\ntime.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WizardError, match=f"pid {holder.pid}"):
            FolderLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait(timeout=10)
    third = FolderLock(tmp_path)
    third.acquire()
    third.release()
