"""Preflight: before anything changes, is everything the later steps need there?

It reaches every node and the balancer host, and looks for the files and
commands the later steps will use. It changes nothing; a failed check fails the
step, so the setup stops before it touches a single machine.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import replace

from wizard.answers_model import Answers, Node
from wizard.confluence import checks as confluence_checks
from wizard.confluence.nodes import read_node_facts
from wizard.engine.model import BALANCER, WORKSTATION, Check, Plan
from wizard.engine.step import Context, Step
from wizard.errors import WizardError
from wizard.transport.hosts import Host

DEFAULT_APACHE_COMMANDS = ("apache2ctl", "apachectl", "httpd", "apache2")


def server_xml_path(node: Node) -> str:
    return posixpath.join(node.install_dir, "conf", "server.xml")


def first_word(command: str) -> str:
    """The program a shell command line runs, past ``sudo`` and ``VAR=value`` prefixes."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command.split()[0] if command.split() else ""
    for word in words:
        if word == "sudo" or word.startswith("-") or ("=" in word and not word.startswith("/")):
            continue
        return word
    return ""


def find_program(host: Host, program: str) -> str | None:
    """Where ``program`` (a name looked up in PATH, or a full path) is on ``host``; None if nowhere."""
    if not program:
        return None
    if program.startswith("/"):
        return program if host.exists(program) else None
    return host.which(program)


class Preflight(Step[list[Check]]):
    name = "preflight"
    title = "Preflight checks"
    explanation = ("Reaches every node and the balancer and checks that the files and commands the "
                   "later steps need are there, which Confluence version each node runs (and that it has "
                   "the Synchrony mode of the answers), and that Synchrony answers its heartbeat where the "
                   "balancer will send the editor: on each node in direct mode, on each machine of the "
                   "standalone cluster in standalone mode. It changes nothing.")
    read_only = True

    def inspect(self, ctx: Context) -> list[Check]:
        checks: list[Check] = []
        for node_checks in ctx.for_each_node(lambda node: self._node_checks(ctx, node)):
            checks += node_checks
        checks += standalone_synchrony_checks(ctx)
        checks += self._balancer_checks(ctx)
        return checks

    def plan(self, answers: Answers, facts: list[Check]) -> Plan:
        failed = [check for check in facts if not check.passed]
        summary = (f"{len(facts)} check(s) passed" if not failed
                   else f"{len(failed)} of {len(facts)} check(s) failed")
        return Plan(step=self.name, summary=summary, checks=list(facts),
                    noop_reason="Preflight only reads; it changes nothing.")

    def verify(self, ctx: Context) -> list[Check]:
        return self.inspect(ctx)

    # Nodes.

    def _node_checks(self, ctx: Context, node: Node) -> list[Check]:
        ctx.progress(self.name, node.name, "checking")
        try:
            host = ctx.hosts.node(node)
            reached = host.run("echo clbw-ok", timeout=30.0)
        except WizardError as exc:
            return [Check("reachable", node.name, False, exc.message,
                          exc.hint or "Check the node's access block in the answers file.")]
        if "clbw-ok" not in reached.stdout:
            return [Check("reachable", node.name, False,
                          f"`echo` answered {reached.exit_status}: {reached.stderr.strip()[:200]}",
                          "Log in to the node by hand with the same user and look at what the shell prints.")]
        checks = [Check("reachable", node.name, True, f"reached {host.where}")]
        checks += _file_checks(host, node)
        checks.append(_restart_check(host, node, ctx.answers))
        if ctx.answers.base_url.method == "postgres" and node is ctx.answers.nodes[0]:
            checks.append(_psql_check(host, node, ctx.answers))
        checks += synchrony_checks(host, node, ctx.answers)
        return checks

    # Balancer.

    def _balancer_checks(self, ctx: Context) -> list[Check]:
        balancer = ctx.answers.balancer
        if balancer.kind == "apache" and balancer.apache is not None:
            return _apache_checks(ctx)
        if balancer.kind == "alb" and balancer.alb is not None:
            return [_aws_credentials_check(balancer.alb.profile)]
        if balancer.kind in _SERVED_CHECKS and balancer.host_options is not None:
            return _SERVED_CHECKS[balancer.kind](ctx)
        return []


def synchrony_checks(host: Host, node: Node, answers: Answers) -> list[Check]:
    """The node's Confluence version against the Synchrony mode, and (direct) its Synchrony's heartbeat.

    Nothing to say when the node's files cannot be read: the file checks above say why.
    """
    try:
        facts = read_node_facts(host, node, answers)
    except WizardError:
        return []
    mode = answers.synchrony.mode
    version, seen = confluence_checks.read_version(node, facts)
    found = [confluence_checks.version_check(node.name, version, seen, mode)]
    if mode == "direct":
        # Its own name: verify makes the same probe later, and each check is made once per run.
        found.append(replace(confluence_checks.node_synchrony(node, facts, mode),
                             name=confluence_checks.NODE_SYNCHRONY_FIRST))
    return found


def standalone_synchrony_checks(ctx: Context) -> list[Check]:
    """In standalone mode, each Synchrony machine's own heartbeat (its address and port), probed at
    once: a machine that does not answer is named, and fails the preflight before anything changes."""
    synchrony = ctx.answers.synchrony
    if synchrony.mode != "standalone" or not synchrony.nodes:
        return []
    from concurrent.futures import ThreadPoolExecutor

    ctx.progress("preflight", WORKSTATION, "checking the standalone Synchrony machines' heartbeat")
    with ThreadPoolExecutor(max_workers=min(8, len(synchrony.nodes))) as pool:
        return list(pool.map(lambda machine: confluence_checks.machine_synchrony(machine, synchrony),
                             synchrony.nodes))


def _file_checks(host: Host, node: Node) -> list[Check]:
    if not host.is_dir(node.install_dir):
        return [Check("install directory", node.name, False, f"{node.install_dir} is not a directory",
                      "Set nodes[].install_dir to the Confluence installation directory "
                      "(the one holding conf/server.xml).")]
    checks = [Check("install directory", node.name, True, node.install_dir)]
    path = server_xml_path(node)
    try:
        data = host.read_bytes(path)
    except WizardError as exc:
        return checks + [Check("server.xml readable", node.name, False, exc.message, exc.hint or "")]
    checks.append(Check("server.xml readable", node.name, True, f"{path} ({len(data)} bytes)"))
    quoted = shlex.quote(path)
    writable = host.run(f"test -w {quoted} && test -w {shlex.quote(posixpath.dirname(path))}")
    checks.append(Check(
        "server.xml writable", node.name, writable.ok,
        f"{path} is writable" if writable.ok else f"{path} or its folder is not writable by {host.where}",
        "" if writable.ok else
        "Run the wizard as the user that owns the install, or set `sudo: true` in the node's access."))
    return checks


def _restart_check(host: Host, node: Node, answers: Answers) -> Check:
    if answers.restart == "manual":
        return Check("restart command", node.name, True, "restart: manual (the admin restarts the node)")
    if node.restart_command:
        program = first_word(node.restart_command)
        found = find_program(host, program)
        return Check("restart command", node.name, found is not None,
                     f"{program} found at {found}" if found else f"{program or node.restart_command!r} not found",
                     "" if found else "Install it or correct nodes[].restart_command.")
    script = posixpath.join(node.install_dir, "bin", "start-confluence.sh")
    if host.exists(script):
        return Check("restart command", node.name, True, f"will use {node.install_dir}/bin/stop- and start-confluence.sh")
    unit = host.run("systemctl cat confluence.service >/dev/null 2>&1")
    if unit.ok:
        return Check("restart command", node.name, True, "will use the systemd unit confluence.service")
    return Check("restart command", node.name, False,
                 f"no restart_command, no {script}, no systemd unit confluence.service",
                 "Set nodes[].restart_command to the command that restarts Confluence on this node, "
                 "or use `restart: manual`.")


def _psql_check(host: Host, node: Node, answers: Answers) -> Check:
    """The base-url step's postgres method runs psql on the first node: is it there?

    Only the client is looked for: reaching the database needs its password (from the
    node's ~/.pgpass) and, for the update, Confluence stopped, which the step itself checks.
    """
    command = answers.base_url.db.psql
    program = first_word(command)
    found = find_program(host, program)
    return Check("psql (base URL in the database)", node.name, found is not None,
                 f"{program} found at {found}" if found else f"{program or command!r} not found on {node.name}",
                 "" if found else
                 f"Install the PostgreSQL client on {node.name} (apt-get install postgresql-client, or dnf "
                 "install postgresql), set base_url.database.psql to its full path, or use "
                 "base_url.method: guided.")


def _apache_checks(ctx: Context) -> list[Check]:
    apache = ctx.answers.balancer.apache
    assert apache is not None
    host, checks = _reach_balancer(ctx, "Apache")
    if host is None:
        return checks
    if apache.config_path:
        folder = posixpath.dirname(apache.config_path)
        is_dir = host.is_dir(folder)
        checks.append(Check("Apache config folder", BALANCER, is_dir,
                            f"{folder} {'exists' if is_dir else 'does not exist'}",
                            "" if is_dir else "Install Apache httpd 2.4, or correct balancer.apache.config_path."))
    for label, command in (("Apache config test command", apache.configtest_command),
                           ("Apache reload command", apache.reload_command)):
        candidates = (first_word(command),) if command else DEFAULT_APACHE_COMMANDS
        found = next(((c, where) for c in candidates if (where := host.which(c))), None)
        checks.append(Check(
            label, BALANCER, found is not None,
            f"{found[0]} at {found[1]}" if found else f"none of {', '.join(candidates)} found",
            "" if found else "Install Apache httpd 2.4 (apt install apache2, or dnf install httpd)."))
    return checks


def _reach_balancer(ctx: Context, product: str) -> tuple[Host | None, list[Check]]:
    """The balancer host and the "reachable" check (the host is None when it cannot be reached)."""
    try:
        host = ctx.hosts.balancer()
        reached = host.run("echo clbw-ok", timeout=30.0)
    except WizardError as exc:
        return None, [Check("reachable", BALANCER, False, exc.message,
                            exc.hint or f"Check balancer.{ctx.answers.balancer.kind}.access in the answers file.")]
    if "clbw-ok" not in reached.stdout:
        return None, [Check("reachable", BALANCER, False, reached.stderr.strip()[:200] or "no answer",
                            f"Log in to the {product} host by hand and look at what the shell prints.")]
    return host, [Check("reachable", BALANCER, True, f"reached {host.where}")]


def _nginx_checks(ctx: Context) -> list[Check]:
    from wizard.balancers.nginx.facts import MINIMUM_VERSION, configure_arguments, nginx_commands, parse_version

    options = ctx.answers.balancer.nginx
    assert options is not None
    host, checks = _reach_balancer(ctx, "nginx")
    if host is None:
        return checks
    checks.append(_folder_check(host, options.config_path, "nginx", "apt-get install nginx"))
    commands = nginx_commands(options)
    text = _program_and_version(host, checks, "nginx", options.configtest_command, commands.version,
                                "apt-get install nginx (or dnf install nginx)")
    if text is None:
        return checks
    version = parse_version(text)
    arguments = configure_arguments(text)
    checks.append(_version_check("nginx", version, MINIMUM_VERSION, commands.version, text))
    needs = [("the map and proxy modules (sticky sessions, proxying)",
              "--without-http_map_module" not in arguments and "--without-http_proxy_module" not in arguments)]
    if options.tls is not None:
        needs.append(("TLS (the SSL module)", "--with-http_ssl_module" in arguments or "built with OpenSSL" in text))
    for what, present in needs:
        checks.append(Check(f"nginx has {what}", BALANCER, present,
                            f"`{commands.version}`: " + ("built in" if present else "missing"),
                            "" if present else "Install a standard nginx build (the distributions' packages)."))
    checks.append(Check("nginx health checks", BALANCER, True,
                        "passive only in open-source nginx: a node is skipped after failed connections, never "
                        "probed; the wizard's verify checks each node's /status itself"))
    return checks


def _haproxy_checks(ctx: Context) -> list[Check]:
    from wizard.balancers.haproxy.facts import MINIMUM_VERSION, haproxy_commands, has_feature, parse_version

    options = ctx.answers.balancer.haproxy
    assert options is not None
    host, checks = _reach_balancer(ctx, "HAProxy")
    if host is None:
        return checks
    checks.append(_folder_check(host, options.config_path, "HAProxy", "apt-get install haproxy"))
    commands = haproxy_commands(options)
    text = _program_and_version(host, checks, "haproxy", options.configtest_command, commands.version,
                                "apt-get install haproxy (or dnf install haproxy)")
    if text is None:
        return checks
    checks.append(_version_check("HAProxy", parse_version(text), MINIMUM_VERSION, commands.version, text))
    if options.tls is not None:
        present = has_feature(text, "OPENSSL")
        checks.append(Check("HAProxy has TLS (OpenSSL)", BALANCER, present,
                            f"`{commands.version}`: " + ("+OPENSSL" if present else "no +OPENSSL in the feature list"),
                            "" if present else "Install a HAProxy built with OpenSSL (the distributions' are)."))
    if options.admin_socket:
        exists = host.exists(options.admin_socket)
        checks.append(Check("HAProxy runtime API socket", BALANCER, exists,
                            f"{options.admin_socket} {'exists' if exists else 'does not exist'}",
                            "" if exists else "Start HAProxy with `stats socket " + options.admin_socket
                            + " mode 660 level admin` in its global section, or leave admin_socket out."))
    return checks


def _program_and_version(host: Host, checks: list[Check], program: str, configtest_command: str,
                         version_command: str, install: str) -> str | None:
    """Check that ``program`` is installed (appended to ``checks``) and return what its version command
    prints (stdout and stderr: nginx -V and haproxy -vv differ in which they use); None when it is missing."""
    found = _program_check(host, program, configtest_command, install)
    checks.append(found)
    if not found.passed:
        return None
    result = host.run(version_command, timeout=60.0)
    return result.stdout + "\n" + result.stderr


def _folder_check(host: Host, config_path: str, product: str, install: str) -> Check:
    folder = posixpath.dirname(config_path)
    is_dir = host.is_dir(folder)
    return Check(f"{product} config folder", BALANCER, is_dir, f"{folder} {'exists' if is_dir else 'does not exist'}",
                 "" if is_dir else f"Create it and make {product} load it, or correct config_path ({install} "
                                   "creates the distribution's folders).")


def _program_check(host: Host, program: str, command: str, install: str) -> Check:
    words = shlex.split(command) if command else []
    named = next((w for w in words if posixpath.basename(w) == program), program)
    where = find_program(host, named)
    return Check(f"{program} program", BALANCER, where is not None,
                 f"{named} at {where}" if where else f"{named} not found", "" if where else f"Install it: {install}.")


def _version_check(product: str, version: tuple[int, ...] | None, minimum: tuple[int, ...], command: str,
                   text: str) -> Check:
    shown = ".".join(map(str, version)) if version else "unknown"
    passed = version is not None and version >= minimum
    return Check(f"{product} version", BALANCER, passed,
                 f"{product} {shown} (`{command}`)" if version else f"`{command}` printed no version: {text.strip()[:200]}",
                 "" if passed else f"The wizard needs {product} {'.'.join(map(str, minimum))} or later: upgrade it.")


_SERVED_CHECKS = {"nginx": _nginx_checks, "haproxy": _haproxy_checks}


def _aws_credentials_check(profile: str | None) -> Check:
    import boto3  # only ALB setups pay for boto3
    from botocore.exceptions import BotoCoreError

    try:
        credentials = boto3.Session(profile_name=profile).get_credentials()
    except BotoCoreError as exc:
        return Check("AWS credentials", WORKSTATION, False, str(exc),
                     "Configure the profile (aws configure --profile NAME, or aws sso login).")
    if credentials is None:
        return Check("AWS credentials", WORKSTATION, False, "no credentials found in the standard chain",
                     "Set AWS_PROFILE, run `aws configure` or `aws sso login`, or use an instance role.")
    return Check("AWS credentials", WORKSTATION, True,
                 f"credentials from {getattr(credentials, 'method', 'the standard chain')}")


STEP = Preflight()
