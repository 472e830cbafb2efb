"""The built-in lab: a simulated Confluence Data Center cluster on this machine, for the wizard to work on.

``confluence-lb-wizard lab`` starts a ``Lab`` and opens the wizard on it; tests and
demos use the class directly::

    with Lab(nodes=2, balancer="apache") as lab:
        ...  # lab.answers_path is a complete answers file for it

What runs (all on 127.0.0.1, all stopped by ``stop()``, nothing left behind):

* N simulated nodes (``wizard.lab.node``), each with an install folder holding the
  stock ``conf/server.xml`` and ``bin/setenv.sh`` on its own free ports, a Confluence
  port and a Synchrony port. Nodes are reached with the local transport and restarted
  with ``touch <install>/restart-requested``. They share one "database": the base URL
  every node's applinks manifest reports, which starts as the first node's own address
  (as on a fresh install) and is changed in General Configuration (the guided
  base-url step sends the admin there) or with ``Lab.base_url``.
* For ``balancer="apache"``: the real Apache httpd of this machine, self-contained, on
  a free loopback port (``wizard.lab.apache``). The public URL is
  ``http://localhost:<port>`` (plain HTTP).
* For ``balancer="nginx"`` or ``"haproxy"``: the real nginx or HAProxy of this machine,
  self-contained, on a free loopback port (``wizard.lab.proxies``); the public URL is
  ``http://localhost:<port>`` too.
* For ``balancer="alb"``: moto's AWS server in this process (``wizard.lab.aws``), with
  a VPC, two subnets in two zones, the nodes' security group, one instance per node
  and an issued certificate. AWS is simulated: nothing reaches real AWS, and no
  traffic flows through the simulated balancer, so checks that send requests
  through it cannot pass.

A lab started with ``resume=True`` comes back as the last lab in ``root`` left it
(``wizard.lab.folder``): the same ports, install files, Apache site, base URL and
state file, so the wizard resumes where the admin quit. ``confluence-lb-wizard lab``
does that in its folder per balancer (``default_lab_root``). Otherwise, or when the
last lab cannot come back (``resume_note`` says why), ``start()`` begins a fresh
cluster in ``root``: the install files are written anew, the Apache sites folder is
emptied, and a state file left by an earlier lab is moved aside
(``lab.state.json.old``), since its nodes are gone.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from wizard.answers import answers_to_yaml, validate
from wizard.errors import BadInputError, WizardError
from wizard.lab.apache import LabApache, find_apache
from wizard.lab.aws import LabAws
from wizard.lab.files import server_xml
from wizard.lab.folder import FolderLock, LabRecord, NodePorts, load_record, save_record, why_not_resumable
from wizard.lab.node import THREAD_PREFIX, Connector, LabDatabase, LabNode
from wizard.lab.proxies import LabHaproxy, LabNginx, LabProxy, find_program

#: The setup's name in the lab's answers (and so its state file's name).
SETUP_NAME = "lab"
#: The public host name of the ALB lab (a name no real DNS answers for).
ALB_DOMAIN = "wiki.lab.example"
BALANCERS = ("apache", "alb", "nginx", "haproxy")
#: The lab's nginx and HAProxy classes, by balancer kind.
PROXIES: dict[str, type[LabProxy]] = {"nginx": LabNginx, "haproxy": LabHaproxy}
MAX_NODES = 16
#: The faults ``Lab.inject`` knows, each described in its docstring.
FAULTS = ("node-down", "synchrony-down", "wrong-base-url", "manager-exposed", "no-stickiness",
          "no-websocket-route", "connector-not-restarted", "connector-not-edited")
#: The base URL the ``wrong-base-url`` fault sets: an old domain, as after a migration.
WRONG_BASE_URL = "http://confluence-old.lab.example:8090"


def default_lab_parent() -> Path:
    """Where labs without an explicit root live: ``$XDG_STATE_HOME/confluence-lb-wizard/lab``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "confluence-lb-wizard" / "lab"


def default_lab_root(balancer: str) -> Path:
    """The folder ``confluence-lb-wizard lab`` keeps its lab in, one per balancer, so that
    running the command again resumes it."""
    return default_lab_parent() / balancer


def _new_root() -> Path:
    """A fresh folder for one lab, beside the wizard's state (or in the temp folder when that is not writable)."""
    parent = default_lab_parent()
    try:
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Path(tempfile.mkdtemp(prefix="lab-", dir=parent))
    except OSError:
        return Path(tempfile.mkdtemp(prefix="confluence-lb-wizard-lab-"))


class Lab:
    """A simulated cluster, its balancer (Apache or moto's ALB) and a complete answers file for it.

    ``root`` None: a new folder under ``$XDG_STATE_HOME/confluence-lb-wizard/lab`` (or
    the temp folder), removed by ``stop()`` unless ``keep``. A given ``root`` is never
    removed. ``resume``: come back as the last lab in ``root`` left it, when it can
    (the module's docstring). ``nodes`` None: the resumed lab's count, or 2. Nothing
    runs until ``start()`` (or ``with``).
    """

    def __init__(self, root: Path | None = None, *, nodes: int | None = None, balancer: str = "apache",
                 keep: bool = False, resume: bool = False) -> None:
        if balancer not in BALANCERS:
            raise BadInputError(f"The lab's balancer must be apache, alb, nginx or haproxy, not {balancer!r}.",
                                "Use --balancer apache (a real Apache httpd), nginx or haproxy (the real "
                                "server of this machine) or alb (AWS simulated by moto).")
        if nodes is not None and (isinstance(nodes, bool) or not isinstance(nodes, int)
                                  or not 1 <= nodes <= MAX_NODES):
            raise BadInputError(f"The lab runs 1 to {MAX_NODES} nodes, not {nodes!r}.",
                                "Use --nodes 2 (the default) or another small number.")
        self.balancer = balancer
        #: The node count asked for (None: the resumed lab's, or 2).
        self.asked_nodes = nodes
        self.resume = resume
        #: After ``start()``: whether the last lab in the folder came back.
        self.resumed = False
        #: After ``start()`` with ``resume``: why the last lab in the folder could not come back, or "".
        self.resume_note = ""
        self._owns_root = root is None
        self.root = Path(root).expanduser().resolve() if root is not None else _new_root()
        #: Keep the lab's folder (answers, state, logs) after ``stop()``; a given root is always kept.
        self.keep = keep or not self._owns_root
        self.database = LabDatabase(on_change=self._save_record)
        self._folder_lock = FolderLock(self.root)
        self._recording = False
        self._record_lock = threading.Lock()
        self.nodes: list[LabNode] = []
        self.apache: LabApache | None = None
        #: The lab's nginx or HAProxy (balancer "nginx" or "haproxy").
        self.proxy: LabProxy | None = None
        self.aws: LabAws | None = None
        self._started = False
        self._stopped = False
        self._healers: list[tuple[str, Callable[[], None]]] = []
        self._installed: dict[str, Connector] = {}
        self._lock = threading.RLock()
        #: Every thread this lab starts is named with this (``clbw-lab-<id>-...``).
        self.thread_prefix = f"{THREAD_PREFIX}-{secrets.token_hex(3)}"

    # Paths and addresses.

    @property
    def answers_path(self) -> Path:
        return self.root / "answers.yaml"

    @property
    def state_path(self) -> Path:
        return self.root / f"{SETUP_NAME}.state.json"

    @property
    def public_url(self) -> str:
        """What users type: Apache's loopback port (plain HTTP), or the ALB lab's HTTPS name."""
        if self.balancer == "alb":
            return f"https://{ALB_DOMAIN}"
        served = self.apache or self.proxy
        if served is None:
            raise WizardError("The lab's public URL is known once the lab has started.", "Call Lab.start() first.")
        return f"http://localhost:{served.port}"

    @property
    def base_url(self) -> str:
        """Confluence's base URL in the lab's shared database: what every node's manifest reports."""
        return self.database.base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        self.database.base_url = value

    def node(self, name: str) -> LabNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"The lab has no node {name!r} (its nodes: {', '.join(n.name for n in self.nodes)}).")

    # Life cycle.

    def start(self) -> Lab:
        """Nodes up, then Apache (or moto), then the answers written; WizardError (and nothing left
        running) when something cannot start, e.g. no Apache installed."""
        with self._lock:
            if self._started and not self._stopped:
                return self
            if self._stopped:
                raise WizardError("This lab was stopped; a stopped lab does not start again.",
                                  "Make a new Lab (its nodes get new ports).")
            self._started = True
            # A script that forgets stop() still leaves nothing running when it exits.
            atexit.register(self.stop)
            try:
                self._start()
            except BaseException:
                self.stop()
                raise
            return self

    def _start(self) -> None:
        # Fail before starting anything when the balancer's program is not installed.
        binary = find_apache() if self.balancer == "apache" else None
        proxy_class = PROXIES.get(self.balancer)
        proxy_binary = find_program(proxy_class.program, proxy_class.install_hint) if proxy_class else None
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._folder_lock.acquire()
        record = self._record_to_resume()
        self.resumed = record is not None
        if record is None:
            self._set_old_state_aside()
        count = len(record.nodes) if record is not None else self.asked_nodes or 2
        for index in range(1, count + 1):
            name = f"node{index}"
            ports = record.nodes[index - 1] if record is not None else NodePorts(name, 0, 0)
            node = LabNode(name, self.root / "nodes" / name, self.database, thread_prefix=self.thread_prefix,
                           confluence_port=ports.confluence_port, synchrony_port=ports.synchrony_port)
            self.nodes.append(node)
            node.start(reinstall=record is None)
            # What the node was installed with (the connector-not-restarted fault puts it back).
            self._installed[name] = Connector()
        if record is not None:
            self.database.server_id = record.server_id
            self.database.base_url = record.base_url
        else:
            # A freshly installed Confluence knows only its own address.
            self.database.base_url = self.nodes[0].url
        if binary is not None:
            apache = LabApache(self.root / "apache", binary=binary, thread_prefix=self.thread_prefix,
                               port=record.apache_port if record is not None else None)
            self.apache = apache
            if record is None and apache.sites_dir.is_dir():
                for old in apache.sites_dir.glob("*.conf"):
                    old.unlink()
            apache.start()
        elif proxy_class is not None:
            proxy = proxy_class(self.root / self.balancer, binary=proxy_binary, thread_prefix=self.thread_prefix,
                                port=record.apache_port if record is not None else None)
            self.proxy = proxy
            if record is None and proxy.sites_dir.is_dir():
                for old in proxy.sites_dir.glob(f"*{proxy.suffix}"):
                    old.unlink()
            proxy.start()
        else:
            self.aws = LabAws(self.root, thread_prefix=self.thread_prefix)
            self.aws.start([n.name for n in self.nodes], ALB_DOMAIN, SETUP_NAME)
        self._recording = True
        self._save_record()
        self.write_answers()

    def _record_to_resume(self) -> LabRecord | None:
        """The last lab's record when it can come back; otherwise None, with ``resume_note`` saying why."""
        if not self.resume:
            return None
        try:
            record = load_record(self.root)
        except ValueError as exc:
            self.resume_note = f"its record {exc}"
            return None
        if record is None:
            return None  # a new folder: nothing to come back to, nothing to explain
        install_files = [self.root / "nodes" / n.name / "conf" / "server.xml" for n in record.nodes]
        if self.balancer == "apache":
            install_files.append(self.root / "apache" / "main.conf")
        elif self.balancer in PROXIES:
            install_files.append(self.root / self.balancer / PROXIES[self.balancer].main_name)
        reason = why_not_resumable(record, balancer=self.balancer, nodes=self.asked_nodes,
                                   install_files=install_files)
        self.resume_note = reason or ""
        return None if reason else record

    def _save_record(self) -> None:
        """Write what this lab must remember to come back (its ports, the base URL) to ``lab.json``."""
        # Its own lock, not the lab's: a node's request thread saving a new base URL must not wait
        # for stop(), which holds the lab's lock while it joins that very thread.
        with self._record_lock:
            if not self._recording or self._stopped:
                return  # not before the lab has all its ports, nor after it stopped
            record = LabRecord(balancer=self.balancer, base_url=self.database.base_url,
                               server_id=self.database.server_id,
                               # The balancer's port (Apache's, nginx's or HAProxy's).
                               apache_port=(self.apache or self.proxy).port  # type: ignore[union-attr]
                               if (self.apache or self.proxy) is not None else None,
                               nodes=tuple(NodePorts(n.name, n.confluence_port, n.synchrony_port)
                                           for n in self.nodes))
            save_record(self.root, record)

    def _set_old_state_aside(self) -> None:
        # Its steps were done on nodes that are gone; resuming from it would skip work.
        if self.state_path.exists():
            self.state_path.replace(self.state_path.with_name(self.state_path.name + ".old"))

    def stop(self) -> None:
        """Everything down: Apache stopped (no process left), moto stopped, every node's threads
        joined, the environment restored, the folder removed unless kept. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            atexit.unregister(self.stop)
            self._healers.clear()
            try:
                if self.apache is not None:
                    self.apache.stop()
                if self.proxy is not None:
                    self.proxy.stop()
            finally:
                try:
                    for node in self.nodes:
                        node.stop()
                finally:
                    if self.aws is not None:
                        self.aws.stop()
                    self._folder_lock.release()
                    if not self.keep:
                        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._started and not self._stopped

    def threads(self) -> list[threading.Thread]:
        """This lab's threads still alive (each named ``<thread_prefix>-...``); none after ``stop()``."""
        return [t for t in threading.enumerate() if t.name.startswith(self.thread_prefix + "-") and t.is_alive()]

    # The answers.

    def answers(self) -> dict[str, Any]:
        """The lab's answers as an answers file holds them (complete: ``validate`` passes)."""
        nodes = []
        for node in self.nodes:
            entry: dict[str, Any] = {
                "name": node.name, "address": "127.0.0.1", "install_dir": str(node.install_dir),
                "confluence_port": node.confluence_port, "synchrony_port": node.synchrony_port,
                "restart_command": node.restart_command, "access": {"transport": "local"}}
            if self.aws is not None and self.aws.account is not None:
                entry["instance_id"] = self.aws.account.instance_ids[node.name]
            nodes.append(entry)
        balancer: dict[str, Any]
        if self.apache is not None:
            balancer = {"kind": "apache", "apache": {
                "access": {"transport": "local"}, "config_path": str(self.apache.config_path),
                "server_name": "localhost", "listen_port": self.apache.port,
                "configtest_command": self.apache.configtest_command,
                "reload_command": self.apache.reload_command}}
        elif self.proxy is not None:
            section: dict[str, Any] = {
                "access": {"transport": "local"}, "config_path": str(self.proxy.config_path),
                "server_name": "localhost", "listen_port": self.proxy.port,
                "configtest_command": self.proxy.configtest_command, "reload_command": self.proxy.reload_command}
            if isinstance(self.proxy, LabHaproxy):
                section["admin_socket"] = str(self.proxy.admin_socket)
            balancer = {"kind": self.balancer, self.balancer: section}
        else:
            assert self.aws is not None and self.aws.account is not None
            account = self.aws.account
            balancer = {"kind": "alb", "alb": {
                "name": "confluence-lab", "region": account.region, "vpc_id": account.vpc_id,
                "subnet_ids": account.subnet_ids, "scheme": "internet-facing",
                "certificate_arn": account.certificate_arn,
                "node_security_group_id": account.node_security_group_id, "idle_timeout": 300}}
        return {"version": 1, "name": SETUP_NAME, "public_url": self.public_url,
                "synchrony": {"mode": "direct", "port": 8091}, "restart": "rolling", "restart_timeout": 60,
                "nodes": nodes, "base_url": {"method": "guided"}, "balancer": balancer}

    def write_answers(self) -> Path:
        """Write ``answers.yaml``, checked by the same validation as any answers file."""
        answers = validate(self.answers(), source="the lab's answers")
        header = ("# The answers for the confluence-lb-wizard lab: simulated nodes on this machine.\n"
                  + ("# AWS is simulated by moto in the lab's process; nothing reaches real AWS.\n"
                     if self.balancer == "alb" else ""))
        self.answers_path.write_text(header + answers_to_yaml(answers), encoding="utf-8")
        return self.answers_path

    def prepare_state(self) -> Path:
        """Start the state file with the lab's answers (faces that resume from a state file need one)."""
        from wizard.engine.state import StateStore

        store = StateStore(self.state_path)
        with store:
            state = store.load_or_new(SETUP_NAME)
            state.answers = validate(self.answers(), source="the lab's answers").to_dict()
            store.save(state)
        return self.state_path

    # What the admin reads.

    def describe(self) -> str:
        """Where the lab is and how to use it, for the terminal."""
        summary = self.resume_summary()
        lines = [summary + "\n"] if summary else []
        lines += [f"The confluence-lb-wizard lab is running: {len(self.nodes)} simulated Confluence node(s) on "
                 "this machine, "
                 + (f"behind the real Apache httpd ({self.apache.binary}) on 127.0.0.1:{self.apache.port}."
                    if self.apache else
                    f"behind the real {self.proxy.program} ({self.proxy.binary}) on port {self.proxy.port}."
                    if self.proxy else "behind an AWS Application Load Balancer simulated by moto."),
                 "",
                 f"  lab folder   {self.root}"
                 + ("" if self.keep else "  (removed when the lab stops)"),
                 f"  answers      {self.answers_path}",
                 f"  state        {self.state_path}",
                 f"  public URL   {self.public_url}"]
        for node in self.nodes:
            lines.append(f"  {node.name:<12} Confluence {node.url}  Synchrony {node.synchrony_url}  "
                         f"install {node.install_dir}")
        where = f"General Configuration: {self.nodes[0].url}/admin/editgeneralconfig.action"
        how = (f"as a fresh install has it; change it in {where}" if self.base_url == self.nodes[0].url
               else f"set in {where}")
        lines += [f"  base URL     {self.base_url}  ({how})"]
        if self.base_url != self.public_url.rstrip("/"):
            # What the guided base-url step asks of the admin, without a browser (the lab needs no login).
            lines.append(f"               or from a shell: curl -d baseUrl={self.public_url} "
                         f"{self.nodes[0].url}/admin/editgeneralconfig.action")
        lines.append("  restart      touch <install>/restart-requested  (what the restart step runs)")
        if self.apache is not None:
            lines += [f"  Apache       {self.apache.main_conf}; the wizard writes {self.apache.config_path}",
                      "",
                      f"Open {self.public_url} in a browser once the balancer step is done."]
        elif self.proxy is not None:
            lines += [f"  {self.proxy.program:<12} {self.proxy.main_file}; the wizard writes {self.proxy.config_path}",
                      "",
                      f"Open {self.public_url} in a browser once the balancer step is done."]
        elif self.aws is not None:
            lines += [f"  moto         {self.aws.endpoint_url}  (AWS_ENDPOINT_URL for this process only)",
                      "",
                      "AWS is simulated by moto inside this process: nothing reaches real AWS and no real "
                      "credentials are used. The load balancer exists only in the simulation, so checks that "
                      "send traffic through it (heartbeat, WebSockets, stickiness) cannot pass here."]
        lines.append("Everything the lab started stops when the wizard exits.")
        return "\n".join(lines)

    def resume_summary(self) -> str:
        """Whether the last lab in the folder came back, and if not why (after ``start()``); "" for a new folder."""
        if not self.resumed and not self.resume_note:
            return ""
        if self.resumed:
            return (f"Resumed the lab in {self.root} as it was left: the same nodes and ports, their files, "
                    "the base URL and the wizard's progress. (`confluence-lb-wizard lab --fresh` starts over.)")
        aside = " (its state file is kept as lab.state.json.old)" if self.state_path.with_name(
            self.state_path.name + ".old").exists() else ""
        return (f"The last lab in {self.root} cannot come back as it was: {self.resume_note}. "
                f"A fresh lab starts instead{aside}.")

    def farewell(self) -> str:
        """What remains after ``stop()``: nothing running, and the folder if kept."""
        if self.keep and self.root.exists():
            # An ALB lab cannot come back: moto's AWS went with it.
            comeback = ("Run `confluence-lb-wizard lab` again to come back to it where you left off, or add "
                        "--fresh to start over.\n") if self.resume and self.balancer != "alb" else ""
            return (f"The lab has stopped; nothing of it is left running. Its files are kept in {self.root}.\n"
                    + comeback + f"The runbook of what was done: confluence-lb-wizard runbook --state {self.state_path}")
        return "The lab has stopped; nothing of it is left running."

    # Playing the admin (headless runs and demos).

    def set_base_url_as_admin(self, value: str | None = None) -> str:
        """Do what the guided base-url step asks of the admin: save the Server Base URL in General
        Configuration (a POST to the first node's form). Returns the URL set."""
        value = value or self.public_url
        node = self.nodes[0]
        data = urllib.parse.urlencode({"baseUrl": value}).encode()
        request = urllib.request.Request(f"{node.url}/admin/editgeneralconfig.action", data=data, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except OSError as exc:
            raise WizardError(f"Could not save the base URL in {node.name}'s General Configuration: {exc}.") from exc
        return value

    # Faults.

    def inject(self, fault: str, node: str | None = None) -> None:
        """Break one thing on purpose, so a check can be seen failing; ``heal()`` undoes every fault.

        ``node`` names the node of a node fault (the first node when None). The faults:

        * ``node-down``: the node's Confluence port stops answering (connections refused).
        * ``synchrony-down``: the node's Synchrony port stops answering.
        * ``wrong-base-url``: the shared base URL becomes an old domain (``WRONG_BASE_URL``),
          so every manifest reports it (the editor spins in real life).
        * ``manager-exposed``: a ``<Location /balancer-manager>`` with ``Require all granted``
          (the seed's sample) is added at the end of the wizard's vhost, and Apache reloaded:
          anyone may open the manager.
        * ``no-stickiness``: the ``Header add Set-Cookie "ROUTEID=..."`` line and every
          ``stickysession=ROUTEID`` are taken out of the vhost, and Apache reloaded.
        * ``no-websocket-route``: the WebSocket route lines (the ``ProxyPass`` of the upgrade
          style, or the seed's ``RewriteCond``/``RewriteRule``) are taken out of the vhost,
          and Apache reloaded: the upgrade no longer answers 101.
        * ``connector-not-restarted``: the node keeps running the Connector it was installed
          with although server.xml has the wizard's edit, as when the restart was skipped
          (needs the connector step applied first).
        * ``connector-not-edited``: the node's stock server.xml is put back and the node
          restarted, so it runs without proxyName/proxyPort/scheme.

        The Apache faults need the balancer step applied (the vhost must exist) and an
        Apache lab. A WizardError says so when a fault cannot be made.
        """
        if fault not in FAULTS:
            raise BadInputError(f"The lab knows no fault {fault!r}.", f"Faults: {', '.join(FAULTS)}.")
        with self._lock:
            if not self.running:
                raise WizardError("The lab is not running.", "Start it first (Lab.start()).")
            target = self.node(node) if node else self.nodes[0]
            undo = getattr(self, "_inject_" + fault.replace("-", "_"))(target)
            self._healers.append((fault, undo))

    def heal(self) -> None:
        """Undo every injected fault, newest first."""
        with self._lock:
            while self._healers:
                _, undo = self._healers.pop()
                undo()

    @property
    def faults(self) -> list[str]:
        """The faults in effect, oldest first."""
        return [fault for fault, _ in self._healers]

    def _inject_node_down(self, node: LabNode) -> Callable[[], None]:
        node.stop_confluence()
        return node.start_confluence

    def _inject_synchrony_down(self, node: LabNode) -> Callable[[], None]:
        node.stop_synchrony()
        return node.start_synchrony

    def _inject_wrong_base_url(self, node: LabNode) -> Callable[[], None]:
        before = self.base_url
        self.base_url = WRONG_BASE_URL

        def undo() -> None:
            self.base_url = before
        return undo

    def _inject_connector_not_restarted(self, node: LabNode) -> Callable[[], None]:
        in_file = node.load_connector()
        installed = self._installed[node.name]
        if in_file == installed:
            raise WizardError(f"{node.name}'s server.xml still has the Connector it was installed with, so there "
                              "is no change a skipped restart could leave out.",
                              "Apply the connector step first, then inject connector-not-restarted.")
        running = Connector(**_connector_arguments(node.running_connector))
        node.set_running_connector(installed)

        def undo() -> None:
            node.set_running_connector(running)
        return undo

    def _inject_connector_not_edited(self, node: LabNode) -> Callable[[], None]:
        before = node.server_xml_path.read_bytes()
        node.server_xml_path.write_text(server_xml(node.confluence_port, node.context_path), encoding="utf-8")
        node.restart()

        def undo() -> None:
            node.server_xml_path.write_bytes(before)
            node.restart()
        return undo

    def _inject_manager_exposed(self, node: LabNode) -> Callable[[], None]:
        def expose(text: str) -> str:
            block = ("\n    # Injected by the lab (fault manager-exposed): the seed's sample, open to anyone.\n"
                     "    <Location /balancer-manager>\n        SetHandler balancer-manager\n"
                     "        Require all granted\n    </Location>\n")
            # Inside the virtual host: a server-wide <Location> would lose to the vhost's own.
            end = text.rfind("</VirtualHost>")
            return text[:end] + block.lstrip("\n") + text[end:]
        return self._edit_vhost("manager-exposed", expose)

    def _inject_no_stickiness(self, node: LabNode) -> Callable[[], None]:
        def unstick(text: str) -> str:
            lines = [line for line in text.splitlines(keepends=True)
                     if not (line.strip().startswith("Header add Set-Cookie") and "ROUTEID" in line)]
            return "".join(lines).replace(" stickysession=ROUTEID", "")
        return self._edit_vhost("no-stickiness", unstick)

    def _inject_no_websocket_route(self, node: LabNode) -> Callable[[], None]:
        def unroute(text: str) -> str:
            kept: list[str] = []
            for line in text.splitlines(keepends=True):
                words = line.split()
                routes_ws = bool(words) and words[0] in ("ProxyPass", "RewriteRule") and any(
                    f"balancer://{name}" in line for name in ("synchrony-ws", "confluence-ws"))
                if not routes_ws:
                    kept.append(line)
                    continue
                if words[0] == "RewriteRule" and kept and kept[-1].split()[:1] == ["RewriteCond"]:
                    kept.pop()  # the rule's condition goes with it
            return "".join(kept)
        return self._edit_vhost("no-websocket-route", unroute)

    def _edit_vhost(self, fault: str, edit: Callable[[str], str]) -> Callable[[], None]:
        apache = self.apache
        if apache is None:
            raise WizardError(f"The fault {fault} breaks the Apache configuration; this lab's balancer is "
                              f"{self.balancer}.",
                              "Start an Apache lab (balancer='apache') to try it.")
        path = apache.config_path
        if not path.exists():
            raise WizardError(f"The fault {fault} edits the wizard's vhost {path}, which is not there yet.",
                              "Apply the balancer step first.")
        before = path.read_bytes()
        after = edit(before.decode("utf-8"))
        if after.encode("utf-8") == before:
            raise WizardError(f"The fault {fault} found nothing to change in {path}.",
                              "Heal the lab (or re-apply the balancer step) and try again.")
        path.write_text(after, encoding="utf-8")
        apache.reload()

        def undo() -> None:
            path.write_bytes(before)
            apache.reload()
        return undo


def _connector_arguments(running: dict[str, Any]) -> dict[str, Any]:
    return {"proxy_name": running["proxyName"], "proxy_port": running["proxyPort"],
            "scheme": running["scheme"], "secure": running["secure"]}


# --------------------------------------------------------------------------- the headless run


def run_headless(lab: Lab, only: list[str] | None = None, *, out: TextIO | None = None) -> int:
    """Apply every step (or ``only`` these) on a started lab, as ``apply --yes`` would; the exit status.

    The guided base-url step needs someone to change the base URL in Confluence; here
    the lab plays that admin first, and says so.
    """
    import sys

    from wizard.report import EventPrinter, format_checks
    from wizard.engine.runner import Runner
    from wizard.engine.state import StateStore
    from wizard.steps import available

    stream = out or sys.stdout
    answers = validate(lab.answers(), source=str(lab.answers_path))
    steps = [name for name in available() if not only or name in only]
    print(f"\nlab: applying {', '.join(steps)} with no questions asked (apply --yes).", file=stream, flush=True)
    if "base-url" in steps and answers.base_url.method == "guided":
        value = lab.set_base_url_as_admin(answers.public_url.url)
        print(f"lab: playing the admin for the guided base-url step: General Configuration > Server Base URL "
              f"set to {value}.", file=stream, flush=True)
    with Runner(answers, StateStore(lab.state_path), events=EventPrinter(stream),
                command="confluence-lb-wizard lab --headless") as runner:
        outcome = runner.apply(only or None)
    print(f"\n{outcome.message}", file=stream)
    failed = [check for check in outcome.checks if not check.passed]
    if failed:
        print(format_checks(failed), file=stream)
        if lab.balancer == "alb":
            print("lab: the ALB is simulated by moto and carries no traffic, so checks made through it cannot "
                  "pass here.", file=stream)
    print(f"State: {lab.state_path}", file=stream, flush=True)
    return outcome.exit_status


@contextmanager
def stop_on_signals(interrupt: Callable[[], None] | None = None) -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP (the terminal closed) end the run like Ctrl-C.

    Without this they would kill the process before its ``finally`` stops the lab, and
    Apache, in a session of its own, would keep running. ``interrupt`` replaces the
    default (raising KeyboardInterrupt), for a face with its own way to quit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if interrupt is not None:
            interrupt()
        else:
            raise KeyboardInterrupt

    wanted = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {sig: signal.signal(sig, handler) for sig in wanted}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
