"""Everything the export takes from the rest of the wizard, in one place.

The export adds no logic of its own about Confluence, Apache or AWS: the Connector edit is
``wizard.confluence.serverxml``'s and the setenv.sh edit ``wizard.confluence.setenv``'s (both vendored
into Ansible modules), the vhost (and its drained variants) is rendered by the balancer step's own
``build_vhost``/``render_vhost`` from facts its own ``inspect`` reads, the nginx and HAProxy files are
rendered by their kind's own ``render`` from facts its own ``inspect`` reads, the HAProxy backends a
drain acts on are the HAProxy kind's own names, and the CloudFormation template is written from
``wizard.balancers.alb.desired``'s description.
Keeping every import of the engine here means a module moved to another package costs a
change in this file only.

Reading only: the hosts and AWS are inspected the way ``plan`` inspects them (the steps'
``inspect``), and nothing on them is changed.
"""

from __future__ import annotations

import inspect as _inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wizard.answers_model import Answers, Node
from wizard.transport.prompts import NO_PROMPTS, Prompts

#: The line of wizard.confluence.serverxml (and setenv) the vendoring replaces with a stand-alone error class.
_ERRORS_IMPORT = "from wizard.errors import BadInputError\n"
_FUTURE_IMPORT = "from __future__ import annotations\n"
#: wizard.confluence.setenv's other imports of the wizard: the answers' type (only in annotations, which
#: ``from __future__ import annotations`` never evaluates) and the one serverxml helper it calls, vendored
#: beside it.
_ANSWERS_IMPORT = "from wizard.answers_model import Answers\n"
_LAST_OPTION_IMPORT = "    from wizard.confluence.serverxml import _last_option\n"
_STANDALONE_ERROR = '''class BadInputError(Exception):
    """Stand-in for wizard.errors.BadInputError: a message and the next step (hint)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
'''


@dataclass(frozen=True)
class NodeExport:
    """What the playbook needs about one node, read from its own files."""

    node: Node
    server_xml_path: str
    confluence_port: int
    synchrony_port: int
    context_path: str
    status_url: str
    restart_command: str | None  # None with ``restart: manual`` and no command found
    setenv_path: str = ""
    #: The node's own Synchrony heartbeat (direct mode), waited for after its restart as the restart step does.
    heartbeat_url: str | None = None


@dataclass(frozen=True)
class ApacheExport:
    """The balancer's files and commands exactly as the balancer step would write and run them."""

    config_path: str
    vhost_text: str
    configtest: str
    reload: str
    module_commands: tuple[str, ...]  # a2enmod ... (Debian), in dependency order
    site_command: str | None  # a2ensite ... (Debian) when the site is not enabled yet
    modules_file: tuple[str, str] | None  # (path, text) on layouts that load modules from a file
    probe_address: str  # where the controller reaches Apache (as `verify` does)
    server_name: str
    listen_port: int
    redirect_ports: tuple[int, ...]
    https_origin: str
    #: node -> the vhost with that node's members in drain mode (``status=+D``), as the rolling restart
    #: writes it (``wizard.balancers.apache.drain``).
    drained_texts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HaproxyExport:
    """What the rolling restart needs to drain a node through HAProxy's runtime API."""

    admin_socket: str | None  # None: HAProxy cannot drain (no runtime API in the answers)
    backends: tuple[str, ...]  # the backends whose servers are the nodes, named after the nodes


@dataclass(frozen=True)
class ServedExport:
    """The nginx or HAProxy balancer's managed file and commands exactly as the balancer step would write and
    run them, and where the final checks reach it (as ``verify`` does)."""

    kind: str  # "nginx" or "haproxy"
    product: str  # "nginx", "HAProxy"
    config_path: str
    text: str  # the file, rendered by the kind's own ``render`` from facts its own ``inspect`` read
    configtest: str
    reload: str
    scheme: str  # "https" with TLS
    probe_address: str  # where the controller reaches the balancer (as `verify` does)
    host_header: str  # the public URL's Host header
    listen_port: int
    http_ports: tuple[int, ...]  # plain-HTTP ports that redirect to HTTPS (with TLS only)
    https_origin: str  # what a redirect's Location starts with, as the file writes it
    #: HAProxy: who may open the stats page (empty: nobody; there is none). None for nginx.
    stats_allow: tuple[str, ...] | None = None
    #: A kind that drains through its file (nginx): the file with each node drained, by node.
    drained_texts: dict[str, str] = field(default_factory=dict)


class Session:
    """Read-only access to the setup's machines, closed with ``close`` (or ``with``)."""

    def __init__(self, answers: Answers, prompts: Prompts = NO_PROMPTS) -> None:
        from wizard.engine.step import Context
        from wizard.transport.pool import HostPool

        self.answers = answers
        self.hosts = HostPool(answers, prompts=prompts)
        self.ctx = Context(answers=answers, hosts=self.hosts)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.hosts.close()

    # Nodes.

    def nodes(self) -> list[NodeExport]:
        """Every node's files read (and refused) the way the connector and restart steps read them."""
        from wizard.confluence.checks import synchrony_heartbeat_url
        from wizard.confluence.nodes import read_node_facts
        from wizard.confluence.serverxml import ServerXmlError, plan_connector_edit
        from wizard.steps.connector import Wanted, check_context_path, setenv_change
        from wizard.steps.restart import detect_restart_command

        answers = self.answers
        wanted = Wanted.of(answers)

        def read(node: Node) -> NodeExport:
            host = self.hosts.node(node)
            facts = read_node_facts(host, node, answers)
            check_context_path(node, facts, answers)
            try:  # the same refusals as `plan`: a file the edit cannot be made on stops the export
                plan_connector_edit(facts.text, port=facts.confluence_port, proxy_name=wanted.proxy_name,
                                    proxy_port=wanted.proxy_port, scheme=wanted.scheme)
            except ServerXmlError as exc:
                raise ServerXmlError(f"{node.name}: {facts.server_xml_path}: {exc.message}", exc.hint) from exc
            setenv_change(answers, node, facts)  # the same refusals as `plan` for bin/setenv.sh
            if answers.restart == "manual":
                command = None
            else:
                command, _source = detect_restart_command(host, node)
            return NodeExport(node=node, server_xml_path=facts.server_xml_path, confluence_port=facts.confluence_port,
                              synchrony_port=facts.synchrony_port, context_path=facts.context_path,
                              status_url=facts.status_url(node.address), restart_command=command,
                              setenv_path=facts.setenv_path,
                              heartbeat_url=(synchrony_heartbeat_url(node, facts, "direct")
                                             if answers.synchrony.mode == "direct" else None))

        return self.ctx.for_each_node(read)

    # Apache.

    def apache(self) -> ApacheExport:
        """The vhost rendered from what the Apache host says, with the step's own refusals."""
        from wizard.balancers.apache import step
        from wizard.balancers.apache.undo import site_of
        from wizard.balancers.apache.vhost import build_vhost, render_vhost
        from wizard.confluence.checks import apache_probe_address

        answers = self.answers
        facts = step.STEP.inspect(self.ctx)
        vhost = build_vhost(answers, facts)
        step.refuse_what_cannot_work(answers, facts, vhost)
        text = render_vhost(vhost)
        apache = facts.apache
        modules = step.modules_to_enable(answers, apache)
        module_commands: tuple[str, ...] = ()
        modules_file = None
        if modules and apache.layout.module_mechanism == "a2enmod":
            module_commands = tuple(apache.layout.enable_module_command(m) for m in modules)
        elif modules and apache.layout.module_mechanism == "modules-file" and apache.modules_file:
            modules_file = (apache.modules_file, step.modules_file_text(answers, apache, modules))
        site_command = None
        if apache.enabler and not apache.site_enabled:
            site_command = apache.enabler.enable_command(site_of(apache.config_path))
        # One node drained at a time: the roll is serial and puts each node back before the next.
        drained = {node.name: render_vhost(build_vhost(answers, facts, frozenset({node.name})))
                   for node in answers.nodes}
        return ApacheExport(
            config_path=apache.config_path, vhost_text=text, configtest=apache.commands.configtest,
            reload=apache.commands.reload, module_commands=module_commands, site_command=site_command,
            modules_file=modules_file, probe_address=apache_probe_address(self.ctx),
            server_name=vhost.server_name, listen_port=vhost.listen_port, redirect_ports=vhost.redirect_ports,
            https_origin=vhost.https_origin, drained_texts=drained)

    # HAProxy.

    def haproxy(self) -> HaproxyExport:
        """The runtime API's socket and the backends a drain acts on (nothing is read: the file is
        ``served``'s)."""
        from wizard.balancers.haproxy.config import backend_names

        options = self.answers.balancer.haproxy
        assert options is not None
        return HaproxyExport(admin_socket=options.admin_socket,
                             backends=backend_names(self.answers.name, self.answers.synchrony.mode == "direct"))

    # nginx and HAProxy.

    def served(self) -> ServedExport:
        """The nginx or HAProxy file rendered from what the balancer's machine says, with the plan's own
        refusals (reading only, as ``plan`` does)."""
        from wizard.balancers.kind import kind_for
        from wizard.balancers.served import ServedFileKind

        answers = self.answers
        step = kind_for(answers)
        assert isinstance(step, ServedFileKind), f"{answers.balancer.kind} is not an nginx/HAProxy kind"
        facts = step.inspect(self.ctx)
        step.plan(answers, facts)  # the same refusals as `plan` (another setup's file, a name taken, too old)
        endpoint = step.endpoint(self.ctx)
        # The kind's own model of its file: rendered as `render` renders it, and the redirect's origin as it
        # writes it.
        config = step.config(answers, facts)
        stats: tuple[str, ...] | None = None
        if answers.balancer.haproxy is not None and answers.balancer.kind == "haproxy":
            stats = tuple(answers.balancer.haproxy.stats_allow)
        # One node drained at a time: the roll is serial and puts each node back before the next.
        drained = ({node.name: step.render_drained(answers, facts, frozenset({node.name})) for node in answers.nodes}
                   if step.drains_through_file(answers) else {})
        return ServedExport(
            kind=step.kind, product=step.product, config_path=facts.server.config_path,
            text=step.render_config(config), configtest=facts.server.configtest, reload=facts.server.reload,
            scheme=endpoint.scheme, probe_address=endpoint.address, host_header=endpoint.host_header,
            listen_port=endpoint.port, http_ports=endpoint.http_ports,
            https_origin=config.https_origin, stats_allow=stats, drained_texts=drained)

    # AWS.

    def alb_desired(self) -> Any:
        """``wizard.balancers.alb.desired.Desired`` for these answers, from what AWS and the nodes say."""
        from wizard.balancers.alb.desired import build_desired
        from wizard.balancers.alb.step import STEP

        return build_desired(self.answers, STEP.inspect(self.ctx))


def alb_constants() -> dict[str, Any]:
    """The ALB settings that are not in ``Desired`` itself (tag keys, the rule's first priority)."""
    from wizard.balancers.alb import desired, names

    return {"TAG_SETUP": names.TAG_SETUP, "TAG_MANAGED": names.TAG_MANAGED, "TAG_ROLE": names.TAG_ROLE,
            "RULE_PRIORITY": desired.RULE_PRIORITY, "STICKINESS": dict(desired.STICKINESS),
            "IDLE_TIMEOUT_KEY": desired.IDLE_TIMEOUT_KEY, "redirect_config": desired.redirect_config,
            "ROLE_SECURITY_GROUP": names.ROLE_SECURITY_GROUP, "ROLE_LOAD_BALANCER": names.ROLE_LOAD_BALANCER,
            "ROLE_SYNCHRONY_RULE": names.ROLE_SYNCHRONY_RULE}


def _vendored(module: Any, replacements: dict[str, str]) -> str:
    """``module``'s source with each of ``replacements`` made exactly once, and its ``__future__`` import
    taken out (the module file puts it first, where Python wants it).

    WizardError when a line to replace is not there exactly once: the editor changed in a way the
    vendoring does not know, and a module built on a guess could edit differently from the wizard.
    """
    from wizard.errors import WizardError

    source = Path(_inspect.getsourcefile(module) or "").read_text(encoding="utf-8")
    for old, new in {_FUTURE_IMPORT: "", **replacements}.items():
        if source.count(old) != 1:
            raise WizardError(f"{module.__name__} no longer has the imports the export vendors around, so the "
                              "Ansible module cannot be built.", "Report this as a bug; use `apply` meanwhile.")
        source = source.replace(old, new)
    return source


def vendored_serverxml() -> str:
    """wizard.confluence.serverxml's source, made stand-alone for a node that has only Python and Ansible.

    Two lines change, nothing else: the ``__future__`` import moves to the top of the module
    file (Python wants it first), and the import of the wizard's error family becomes a
    small class with the same ``message`` and ``hint``.
    """
    from wizard.confluence import serverxml

    return _vendored(serverxml, {_ERRORS_IMPORT: _STANDALONE_ERROR})


def vendored_setenv() -> str:
    """wizard.confluence.setenv's source, stand-alone: the setenv.sh editor ``apply`` uses, for the module.

    Besides the ``__future__`` import and the error class (as for serverxml), its import of the
    answers' type goes (annotations only), and the serverxml helper it imports (``_last_option``,
    reading an option outside comments, with ``_active_shell`` which it calls) is vendored in front of it.
    """
    from wizard.confluence import serverxml, setenv

    helper = "\n\n".join(_inspect.getsource(function) for function in (serverxml._active_shell, serverxml._last_option))
    body = _vendored(setenv, {_ERRORS_IMPORT: _STANDALONE_ERROR, _ANSWERS_IMPORT: "", _LAST_OPTION_IMPORT: ""})
    return f"{helper}\n\n{body}"


def validate_answers(raw: dict[str, Any], source: str) -> Answers:
    """Answers from a state file's record, checked as every verb checks them."""
    from wizard.answers import validate

    return validate(raw, source=source)


def header_line(setup: str) -> str:
    """The first line of the wizard's own files (also of the exported vhost)."""
    from wizard.balancers.apache.facts import HEADER_LINE

    return HEADER_LINE.format(setup=setup)
