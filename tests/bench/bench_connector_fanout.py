"""How the connector step scales from 1 node to 8, over a real sshd.

The step reads, plans, writes and verifies every node in parallel
(``Context.for_each_node``), so 8 nodes should cost little more than one. This
starts a real sshd on 127.0.0.1 (tests/integration/sshd.py, loaded by path),
builds node installs under /tmp (conf/server.xml from the Confluence 7 fixture,
bin/setenv.sh), and times ``Runner.apply(["connector"])`` (inspect, plan, apply,
verify, with the SSH connections it opens) for 1 node and for 8 nodes, the two
interleaved so machine noise hits both alike. Every round starts from fresh
server.xml files and a fresh state file. Prints the medians and their ratio; the
aim is under 1.5.

Here the 8 "nodes" share one sshd and this machine's cores with the wizard, so the
8-node run is bound by CPU (the handshakes, sshd's sessions and sftp-servers), not by
waiting as with 8 real machines. A second line says how much: the CPU the wizard and
sshd spent per 8-node run, and the shortest the run could be on this machine's cores
if every bit of it ran in parallel.

Standalone: ``python tests/bench/bench_connector_fanout.py`` (no pytest needed).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

ROUNDS = 5
NODES = 8
HERE = Path(__file__).resolve().parent
FIXTURE = HERE.parent / "fixtures" / "serverxml" / "confluence-7-stock.xml"
SETENV = HERE.parent / "fixtures" / "serverxml" / "setenv.sh"


def load_sshd_helpers() -> types.ModuleType:
    """tests/integration/sshd.py, loaded by path. It imports pytest only to report
    failures; without pytest a stand-in turns ``pytest.fail`` into an exception."""
    try:
        import pytest  # noqa: F401
    except ImportError:
        shim = types.ModuleType("pytest")

        def fail(reason: str = "", pytrace: bool = True) -> None:
            raise RuntimeError(reason)

        shim.fail = fail  # type: ignore[attr-defined]
        sys.modules["pytest"] = shim
    name = "clbw_bench_sshd"
    spec = importlib.util.spec_from_file_location(name, HERE.parent / "integration" / "sshd.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Cluster:
    """``count`` node installs behind one sshd, and the answers that reach them."""

    def __init__(self, root: Path, count: int, bed, server, first_port: int) -> None:
        self.root = root / f"cluster-{count}"
        self.installs = []
        nodes = []
        known_hosts = bed.known_hosts(server)
        self.template = FIXTURE.read_bytes()
        for index in range(1, count + 1):
            install = self.root / f"node{index}"
            for folder in (install, install / "conf", install / "bin"):
                folder.mkdir(parents=True, exist_ok=True)
                folder.chmod(0o755)
            shutil.copyfile(SETENV, install / "bin" / "setenv.sh")
            port = first_port + index
            self.installs.append((install, port))
            nodes.append({"name": f"node{index}", "address": "127.0.0.1", "confluence_port": port,
                          "install_dir": str(install), "restart_command": "true",
                          "access": {"transport": "ssh", "host": "127.0.0.1", "port": server.port,
                                     "user": bed.login_user, "key_file": str(bed.client_key),
                                     "known_hosts": str(known_hosts)}})
        apache = self.root / "apache"
        apache.mkdir(parents=True, exist_ok=True)
        self.raw = {"version": 1, "name": f"bench-{count}", "public_url": "https://wiki.example.com",
                    "nodes": nodes,
                    "balancer": {"kind": "apache", "apache": {
                        "access": {"transport": "local"}, "config_path": str(apache / "lb.conf"),
                        "tls": {"certificate_file": str(apache / "wiki.crt"),
                                "key_file": str(apache / "wiki.key")}}}}
        self.round = 0

    def reset(self) -> Path:
        """Fresh server.xml files (no backups) and a fresh state file path."""
        for install, port in self.installs:
            conf = install / "conf"
            for leftover in conf.iterdir():
                leftover.unlink()
            server_xml = conf / "server.xml"
            server_xml.write_bytes(self.template.replace(b'port="8090"', f'port="{port}"'.encode()))
            server_xml.chmod(0o644)
        self.round += 1
        return self.root / "state" / f"round-{self.round}.state.json"


def time_connector(cluster: Cluster) -> float:
    from wizard.answers import validate
    from wizard.engine.runner import Runner
    from wizard.engine.state import StateStore

    state = cluster.reset()
    runner = Runner(validate(cluster.raw), StateStore(state), command="bench")
    runner.open()
    try:
        start = time.perf_counter()
        outcome = runner.apply(["connector"])
        elapsed = time.perf_counter() - start
    finally:
        runner.close(runner.exit_status)
    if outcome.exit_status != 0:
        raise RuntimeError(f"the connector step failed on {len(cluster.installs)} node(s): {outcome.message}")
    return elapsed


def cpu_per_run(cluster: Cluster, sshd_pid: int) -> tuple[float, float]:
    """CPU seconds of this process and of the sshd (with the sessions it reaped) per run."""
    def sshd_cpu() -> float:
        fields = Path(f"/proc/{sshd_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    client, server = time.process_time(), sshd_cpu()
    for _ in range(ROUNDS):
        time_connector(cluster)
    return (time.process_time() - client) / ROUNDS, (sshd_cpu() - server) / ROUNDS


def main() -> int:
    # The workstation's own SSH set-up (agent, ~/.ssh keys and config) stays out of the measurement.
    scratch = Path(tempfile.mkdtemp(prefix="clbw-bench-fanout-"))
    scratch.chmod(0o755)
    os.environ.pop("SSH_AUTH_SOCK", None)
    os.environ["CLBW_SSH_CONFIG"] = str(scratch / "no-ssh-config")
    (scratch / "home").mkdir()
    os.environ["HOME"] = str(scratch / "home")

    helpers = load_sshd_helpers()
    bed = None
    try:
        bed = helpers.SshTestbed.create()
        server = bed.start_sshd()
        one = Cluster(scratch, 1, bed, server, first_port=20000)
        many = Cluster(scratch, NODES, bed, server, first_port=21000)
        time_connector(one)  # warm up: imports (paramiko, httpx), page cache
        time_connector(many)
        singles, fanned = [], []
        for _ in range(ROUNDS):
            singles.append(time_connector(one))
            fanned.append(time_connector(many))
        single, fan = statistics.median(singles), statistics.median(fanned)
        print(f"bench_connector_fanout: 1 node {single * 1000:.0f} ms, {NODES} nodes {fan * 1000:.0f} ms, "
              f"ratio {fan / single:.2f} (aim < 1.5)")
        client, server_cpu = cpu_per_run(many, server.process.pid)
        cores = len(os.sched_getaffinity(0))
        print(f"bench_connector_fanout: per {NODES}-node run the wizard used {client * 1000:.0f} ms of CPU and "
              f"this machine's sshd {server_cpu * 1000:.0f} ms; on {cores} core(s) the run cannot take less than "
              f"{(client + server_cpu) / cores * 1000:.0f} ms")
        return 0
    except (Exception, getattr(helpers.pytest.fail, "Exception", Exception)) as exc:  # noqa: BLE001
        # A broken bench (sshd would not start, the step failed) says why, without a traceback.
        print(f"bench_connector_fanout: failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if bed is not None:
            bed.close()  # stops sshd (and every session it forked)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
