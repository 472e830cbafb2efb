"""``export --format ansible``: a playbook, an inventory, the vhost and a Connector module.

The files say what ``apply`` would do, in Ansible's terms (ansible-core only, no collection):

* ``library/clbw_connector.py``: the wizard's own server.xml editor (``wizard.confluence.serverxml``,
  vendored whole) as a module: the same minimal edit of one Connector start tag, with
  check mode and --diff;
* play 1, over the nodes with ``serial: 1``: the Connector edit, then, only where it
  changed something, the restart command and a wait for ``/status`` to leave RUNNING and
  answer RUNNING again before the next node (``restart: manual``: the admin restarts it,
  the play waits the same way);
* play 2, on the Apache host: the modules and site the balancer step would enable, the
  vhost rendered now by the balancer step itself (``templates/``, shipped as it is), the
  configuration test before any reload (a failing test puts the previous file back), and
  the reload only when something changed;
* play 3, on the controller: the final checks through the balancer as ``uri`` tasks.

Idempotent by construction: each task compares before it changes, so a second run
reports ``changed=0``. Every value that comes from the answers is marked ``!unsafe`` in
the inventory, so Ansible never evaluates it as a template.
"""

from __future__ import annotations

import posixpath
from typing import Any

from wizard.answers_model import Access, Answers
from wizard.export.project import ApacheExport, NodeExport, Session, vendored_serverxml

MODULE_FILE = "library/clbw_connector.py"
NODES_GROUP = "confluence_nodes"
BALANCER_GROUP = "confluence_balancer"
BALANCER_HOST = "balancer"  # a reserved node name, so it never collides with a node
#: How often the plays look at /status while a node restarts (seconds).
POLL_SECONDS = 1
#: How long the final checks wait for Apache's graceful reload to take over (as `verify` does).
CHECK_RETRIES = 10


class Unsafe(str):
    """A string Ansible must take literally (dumped with the ``!unsafe`` tag)."""


def dump_yaml(data: Any, header: str) -> str:
    """YAML for Ansible: key order kept, ``Unsafe`` strings tagged, a comment header on top."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def unsafe(dumper: yaml.SafeDumper, value: Unsafe) -> yaml.ScalarNode:
        return dumper.represent_scalar("!unsafe", str(value), style="'")

    Dumper.add_representer(Unsafe, unsafe)
    body = yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=110,
                     allow_unicode=True)
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return f"{comments}---\n{body}"


# --------------------------------------------------------------------------- inventory


def connection_vars(access: Access, default_host: str) -> dict[str, Any]:
    """Ansible's connection variables for one access block of the answers."""
    if access.transport == "local":
        found: dict[str, Any] = {"ansible_connection": "local",
                                 "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    else:
        found = {"ansible_host": access.host or default_host}
        if access.port:
            found["ansible_port"] = access.port
        if access.user:
            found["ansible_user"] = access.user
        if access.key_file:
            found["ansible_ssh_private_key_file"] = Unsafe(access.key_file)
        options = []
        if access.known_hosts:
            options.append(f"-o UserKnownHostsFile={access.known_hosts}")
        if access.proxy_jump:
            options.append(f"-J {access.proxy_jump}")
        if options:
            found["ansible_ssh_common_args"] = Unsafe(" ".join(options))
    if access.sudo:
        found["ansible_become"] = True
    return found


def inventory(answers: Answers, nodes: list[NodeExport], apache: ApacheExport | None) -> dict[str, Any]:
    url = answers.public_url
    hosts: dict[str, Any] = {}
    for item in nodes:
        node = item.node
        entry = connection_vars(node.access, node.address)
        entry.update({
            "clbw_server_xml": Unsafe(item.server_xml_path),
            "clbw_confluence_port": item.confluence_port,
            "clbw_status_url": Unsafe(item.status_url),
        })
        if item.restart_command is not None:
            entry["clbw_restart_command"] = Unsafe(item.restart_command)
        hosts[node.name] = entry
    children: dict[str, Any] = {NODES_GROUP: {"hosts": hosts}}
    if apache is not None:
        options = answers.balancer.apache
        assert options is not None
        entry = connection_vars(options.access, "")
        entry.update({"clbw_config_path": Unsafe(apache.config_path),
                      "clbw_configtest": Unsafe(apache.configtest), "clbw_reload": Unsafe(apache.reload)})
        if apache.modules_file:
            entry["clbw_modules_file"] = Unsafe(apache.modules_file[0])
        children[BALANCER_GROUP] = {"hosts": {BALANCER_HOST: entry}}
    return {"all": {
        "vars": {"clbw_setup": Unsafe(answers.name), "clbw_proxy_name": Unsafe(url.host),
                 "clbw_proxy_port": url.port, "clbw_scheme": Unsafe(url.scheme)},
        "children": children}}


# --------------------------------------------------------------------------- the plays


def _status_task(name: str, until: str, retries: int) -> dict[str, Any]:
    return {"name": name,
            "ansible.builtin.uri": {"url": "{{ clbw_status_url }}", "return_content": True,
                                    "status_code": [-1, 200, 404, 500, 502, 503], "timeout": 5},
            "delegate_to": "localhost", "register": "clbw_status",
            "until": until, "retries": retries, "delay": POLL_SECONDS, "failed_when": False,
            "when": "not ansible_check_mode"}


_RUNNING = "clbw_status.status == 200 and (clbw_status.json | default({})).state | default('') == 'RUNNING'"


def nodes_play(answers: Answers) -> dict[str, Any]:
    """The Connector edit and the rolling restart, one node at a time."""
    retries = max(1, answers.restart_timeout // POLL_SECONDS)
    changed = "clbw_connector_edit is changed and not ansible_check_mode"
    tasks: list[dict[str, Any]] = [{
        "name": "Set proxyName, proxyPort and scheme on the Connector (only its start tag changes)",
        "clbw_connector": {"path": "{{ clbw_server_xml }}", "port": "{{ clbw_confluence_port }}",
                           "proxy_name": "{{ clbw_proxy_name }}", "proxy_port": "{{ clbw_proxy_port }}",
                           "scheme": "{{ clbw_scheme }}"},
        "register": "clbw_connector_edit"}]
    if answers.restart == "manual":
        tasks.append({"name": "Restart Confluence on this node now, your usual way (the play waits for it)",
                      "ansible.builtin.debug": {"msg": "The Connector changed: restart Confluence on "
                                                       "{{ inventory_hostname }}; the play waits until /status "
                                                       "leaves RUNNING and answers RUNNING again."},
                      "when": changed})
    else:
        tasks.append({"name": "Restart Confluence (the Connector change takes effect only then)",
                      "ansible.builtin.shell": "{{ clbw_restart_command }}",
                      "when": changed})
    # A restart command often returns before Confluence has even stopped: RUNNING right
    # after it is the old process. Seeing the node leave RUNNING first proves the restart.
    down = _status_task("Wait until the node leaves RUNNING (the old Tomcat has stopped)", f"not ({_RUNNING})",
                        retries)
    down["when"] = changed
    up = _status_task("Wait until /status answers RUNNING again before the next node", _RUNNING, retries)
    up["when"] = changed
    tasks += [down, up]
    return {"name": "Tomcat Connector on every node, then a rolling restart", "hosts": NODES_GROUP,
            "serial": 1, "gather_facts": False, "any_errors_fatal": True, "tasks": tasks}


def vhost_source(apache: ApacheExport) -> str:
    return f"templates/{posixpath.basename(apache.config_path)}"


def apache_play(apache: ApacheExport) -> dict[str, Any]:
    """Modules, site and vhost as the balancer step writes them; test first, then reload."""
    tasks: list[dict[str, Any]] = []
    registered: list[str] = []
    for index, command in enumerate(apache.module_commands):
        var = f"clbw_module_{index}"
        tasks.append({"name": f"Enable an Apache module: {command}", "ansible.builtin.command": command,
                      "register": var, "changed_when": f"'already enabled' not in {var}.stdout"})
        registered.append(var)
    write: list[dict[str, Any]] = []
    if apache.modules_file:
        write.append({"name": "Load the modules the vhost needs that no other file loads",
                      "ansible.builtin.copy": {"src": "templates/clbw-modules.conf",
                                               "dest": "{{ clbw_modules_file }}", "backup": True},
                      "register": "clbw_modules_file_written"})
        registered.append("clbw_modules_file_written")
    write.append({"name": "Write the vhost exactly as `confluence-lb-wizard apply` renders it",
                  "ansible.builtin.copy": {"src": vhost_source(apache), "dest": "{{ clbw_config_path }}",
                                           "backup": True},
                  "register": "clbw_vhost"})
    registered.append("clbw_vhost")
    if apache.site_command:
        write.append({"name": f"Enable the site: {apache.site_command}",
                      "ansible.builtin.command": apache.site_command, "register": "clbw_site",
                      "changed_when": "'already enabled' not in clbw_site.stdout"})
        registered.append("clbw_site")
    any_changed = " or ".join(f"({var} is changed)" for var in registered)
    write.append({"name": "Test Apache's configuration before anything is reloaded",
                  "ansible.builtin.shell": "{{ clbw_configtest }}", "changed_when": False,
                  "when": f"({any_changed}) and not ansible_check_mode"})
    rescue = [
        {"name": "Put the previous vhost back (Apache was not reloaded and serves what it served)",
         "ansible.builtin.copy": {"src": "{{ clbw_vhost.backup_file }}", "dest": "{{ clbw_config_path }}",
                                  "remote_src": True},
         "when": "clbw_vhost.backup_file is defined"},
        {"name": "Remove the new vhost (there was none before)",
         "ansible.builtin.file": {"path": "{{ clbw_config_path }}", "state": "absent"},
         "when": "clbw_vhost is changed and clbw_vhost.backup_file is not defined"},
        {"name": "Stop: the configuration test failed",
         "ansible.builtin.fail": {"msg": "Apache's configuration test failed, so Apache was NOT reloaded; the "
                                         "previous vhost is back. Fix what the test said, then run again."}}]
    tasks.append({"name": "The vhost, tested before Apache reloads", "block": write, "rescue": rescue})
    tasks.append({"name": "Reload Apache with the tested configuration", "ansible.builtin.shell": "{{ clbw_reload }}",
                  "when": f"({any_changed}) and not ansible_check_mode"})
    return {"name": "Apache httpd in front of the nodes", "hosts": BALANCER_GROUP, "gather_facts": False,
            "tasks": tasks}


def checks_play(answers: Answers, apache: ApacheExport) -> dict[str, Any]:
    """The balancer's final checks, from the controller, by address with the vhost's Host header."""
    options = answers.balancer.apache
    assert options is not None
    tls = options.tls is not None
    address = apache.probe_address
    host = f"[{address}]" if ":" in address else address
    base = f"{'https' if tls else 'http'}://{host}:{apache.listen_port}"
    context = answers.public_url.context_path
    heartbeat = ("/synchrony/heartbeat" if answers.synchrony.mode in ("direct", "standalone")
                 else f"{context}/synchrony-proxy/heartbeat")
    common = {"headers": {"Host": apache.server_name}, "validate_certs": False, "follow_redirects": "none",
              "timeout": 5, "return_content": True}

    def check(name: str, path: str, register: str, until: str, *, url_base: str = base,
              codes: list[int] | None = None) -> dict[str, Any]:
        return {"name": name,
                "ansible.builtin.uri": {"url": Unsafe(url_base + path), **common,
                                        "status_code": codes or [200]},
                "register": register, "until": until, "retries": CHECK_RETRIES, "delay": 1}

    tasks = [
        check("Confluence answers /status RUNNING through the balancer, with a ROUTEID cookie (sticky sessions)",
              f"{context}/status", "clbw_check_status",
              "(clbw_check_status.json | default({})).state | default('') == 'RUNNING' and "
              "'ROUTEID=' in clbw_check_status.set_cookie | default('')"),
        check(f"Synchrony's heartbeat answers OK through the balancer ({heartbeat})", heartbeat,
              "clbw_check_heartbeat", "clbw_check_heartbeat.content | trim | lower == 'ok'"),
        check("/balancer-manager is closed to everyone not in manager_allow", "/balancer-manager",
              "clbw_check_manager", "clbw_check_manager.status in [401, 403, 404]"
              + (" or clbw_check_manager.status == 200" if options.manager_allow else ""),
              codes=[200, 401, 403, 404] if options.manager_allow else [401, 403, 404]),
    ]
    probe = "/clbw-redirect-check?keep=1&and=2"
    for port in apache.redirect_ports:
        register = f"clbw_check_redirect_{port}"
        tasks.append(check(f"HTTP on port {port} redirects to HTTPS, keeping path and query", probe, register,
                           f"{register}.location | default('') == '{apache.https_origin}{probe}'",
                           url_base=f"http://{host}:{port}", codes=[301]))
    return {"name": "Final checks through the balancer", "hosts": "localhost", "gather_facts": False,
            "connection": "local", "tasks": tasks}


# --------------------------------------------------------------------------- the files


def build(answers: Answers, session: Session) -> dict[str, str]:
    """Every file of the Ansible export, by relative path."""
    nodes = session.nodes()
    apache = session.apache() if answers.balancer.kind == "apache" else None
    plays = [nodes_play(answers)]
    files: dict[str, str] = {}
    if apache is not None:
        plays += [apache_play(apache), checks_play(answers, apache)]
        files[vhost_source(apache)] = apache.vhost_text
        if apache.modules_file:
            files["templates/clbw-modules.conf"] = apache.modules_file[1]
    header = (f"Written by confluence-lb-wizard `export --format ansible` for the setup {answers.name}.\n"
              "Run: ansible-playbook -i inventory.yml site.yml (add --check --diff to see the changes first).\n"
              "Needs ansible-core only; library/ holds the Connector module.")
    if answers.balancer.kind == "alb":
        header += ("\nThe AWS load balancer is not in this playbook: export it with --format cloudformation "
                   "(or let `apply --only balancer` build it).")
    files["site.yml"] = dump_yaml(plays, header)
    files["inventory.yml"] = dump_yaml(inventory(answers, nodes, apache),
                                       f"The machines of the setup {answers.name}, as its answers reach them.")
    files[MODULE_FILE] = connector_module()
    return files


def connector_module() -> str:
    """The module file: its own code around the vendored wizard.confluence.serverxml (compiled to be sure)."""
    from wizard.render import templates_dir

    body = (templates_dir() / "export" / "ansible" / "clbw_connector.py").read_text(encoding="utf-8")
    marker = "# @@VENDORED@@\n"
    assert body.count(marker) == 1, "the module template lost its marker"
    text = body.replace(marker, vendored_serverxml())
    compile(text, MODULE_FILE, "exec")
    return text
