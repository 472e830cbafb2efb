"""``export --format ansible``: a playbook, an inventory, the vhost and the wizard's editors as modules.

The files say what ``apply`` would do, in Ansible's terms (ansible-core only, no collection):

* ``library/clbw_connector.py``: the wizard's own server.xml editor (``wizard.confluence.serverxml``,
  vendored whole) as a module: the same minimal edit of one Connector start tag, with
  check mode and --diff;
* ``library/clbw_setenv.py``: the wizard's own setenv.sh editor (``wizard.confluence.setenv``,
  vendored whole): the Synchrony option of the mode as one marked line, nothing else changed;
* ``library/clbw_haproxy.py`` (HAProxy with ``admin_socket``): drain and ready through the runtime API;
* play 1, over the nodes with ``serial: 1`` and ``any_errors_fatal``: the Connector and setenv.sh
  edits, then, only where one changed something, the rolling restart as the restart step does it
  behind a live balancer: drain the node (Apache: the vhost with its members at ``status=+D``;
  nginx: its file with the node's servers ``down``; each tested and gracefully reloaded; HAProxy:
  the runtime API), wait ``restart_drain``, restart, wait
  for ``/status`` to leave RUNNING and answer RUNNING again (and, in direct mode, the node's own
  Synchrony heartbeat), put it back; a node that does not come back stops the roll and stays
  drained (``restart: manual``: the admin restarts it, the play waits the same way). An edit module
  leaves ``.confluence-lb-wizard-restart-owed`` beside server.xml before it changes a file, and the
  play removes it once the node is back: a run stopped or killed between an edit and the restart
  restarts that node next time, though its files are already as wanted;
* play 2, on the Apache host: the modules and site the balancer step would enable, the
  vhost rendered now by the balancer step itself (``templates/``, shipped as it is), the
  configuration test before any reload (a failing test puts the previous file back), and
  the reload only when something changed;
* or play 2, on the nginx or HAProxy host: the kind's managed file rendered now by the kind's own
  ``render`` (``templates/``), written through a symbolic link as ``apply`` does, the answers'
  configuration test before the reload (a failing test or reload puts the previous file back);
* play 3, on the controller: the final checks through the balancer as ``uri`` tasks.

Idempotent by construction: each task compares before it changes, so a second run
reports ``changed=0``. Every value that comes from the answers is marked ``!unsafe`` in
the inventory, so Ansible never evaluates it as a template.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from wizard.answers_model import Access, Answers
from wizard.export.project import (
    ApacheExport,
    HaproxyExport,
    NodeExport,
    ServedExport,
    Session,
    vendored_serverxml,
    vendored_setenv,
)

MODULE_FILE = "library/clbw_connector.py"
SETENV_MODULE_FILE = "library/clbw_setenv.py"
WATCH_MODULE_FILE = "library/clbw_watch.py"
HAPROXY_MODULE_FILE = "library/clbw_haproxy.py"
#: The module files: the wizard's own code, whose source names keystorePass and the like.
MODULE_FILES = (MODULE_FILE, SETENV_MODULE_FILE, WATCH_MODULE_FILE, HAPROXY_MODULE_FILE)
NODES_GROUP = "confluence_nodes"
BALANCER_GROUP = "confluence_balancer"
BALANCER_HOST = "balancer"  # a reserved node name, so it never collides with a node
#: How often the plays look at /status and the Synchrony heartbeat while a node restarts (seconds).
POLL_SECONDS = 1
#: How often the watcher of a restarting node looks at its /status (seconds): often enough that a quick
#: restart is seen, as the restart step's own watcher does.
WATCH_POLL_SECONDS = 0.2
#: How long the final checks wait for Apache's graceful reload to take over (as `verify` does).
CHECK_RETRIES = 10


@dataclass(frozen=True)
class FileDrain:
    """A balancer whose roll drains a node by rewriting its managed file (Apache's vhost, nginx's file):
    what the roll writes, and how the play names it."""

    product: str  # "Apache", "nginx"
    thing: str  # "vhost", "nginx configuration"
    source: str  # the template of the file with no node drained
    text: str
    drained_texts: dict[str, str]  # the file with each node drained, by node
    how: str  # what a drain does, for site.yml's heading


def file_drain(apache: ApacheExport | None, served: ServedExport | None) -> FileDrain | None:
    if apache is not None:
        return FileDrain("Apache", "vhost", vhost_source(apache), apache.vhost_text, apache.drained_texts,
                         "the vhost with its members at status=+D")
    if served is not None and served.drained_texts:
        how = ("its file with the node's servers down in every upstream" if served.kind == "nginx" else
               "its file with the node's servers disabled (in maintenance: no admin_socket in the answers)")
        return FileDrain(served.product, f"{served.product} configuration", served_source(served), served.text,
                         served.drained_texts, how)
    return None


class Unsafe(str):
    """A string Ansible must take literally (dumped with the ``!unsafe`` tag)."""


def dump_yaml(data: Any, header: str) -> str:
    """YAML for Ansible: key order kept, ``Unsafe`` strings tagged, a comment header on top."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True  # a shared dict is written out where it is used: no &id001 anchors for a reader to follow

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


def inventory(answers: Answers, nodes: list[NodeExport], apache: ApacheExport | None,
              haproxy: HaproxyExport | None = None, served: ServedExport | None = None) -> dict[str, Any]:
    """Every machine the playbook reaches, with what the plays need about it (values tagged ``!unsafe``)."""
    from wizard.confluence.setenv import wanted_options

    url = answers.public_url
    drain = file_drain(apache, served)
    hosts: dict[str, Any] = {}
    for item in nodes:
        node = item.node
        entry = connection_vars(node.access, node.address)
        entry.update({
            "clbw_server_xml": Unsafe(item.server_xml_path),
            "clbw_setenv": Unsafe(item.setenv_path),
            "clbw_restart_marker": Unsafe(restart_marker(item.server_xml_path)),
            "clbw_confluence_port": item.confluence_port,
            "clbw_status_url": Unsafe(item.status_url),
        })
        if item.heartbeat_url is not None:
            entry["clbw_heartbeat_url"] = Unsafe(item.heartbeat_url)
        if item.restart_command is not None:
            entry["clbw_restart_command"] = Unsafe(item.restart_command)
        if drain is not None:
            entry["clbw_drained_sha256"] = _sha256(drain.drained_texts[node.name])
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
    elif served is not None or (haproxy is not None and haproxy.admin_socket):
        host_options = answers.balancer.host_options
        assert host_options is not None
        entry = connection_vars(host_options.access, "")
        if served is not None:
            entry.update({"clbw_config_path": Unsafe(served.config_path),
                          "clbw_configtest": Unsafe(served.configtest), "clbw_reload": Unsafe(served.reload)})
        if haproxy is not None and haproxy.admin_socket:
            entry.update({"clbw_admin_socket": Unsafe(haproxy.admin_socket),
                          "clbw_haproxy_backends": [Unsafe(name) for name in haproxy.backends]})
        children[BALANCER_GROUP] = {"hosts": {BALANCER_HOST: entry}}
    if drain is not None:
        # What the roll's drain compares the served file with: the file this export writes, and its
        # first line (the wizard's header naming the setup: the balancer is live for this setup).
        children[BALANCER_GROUP]["hosts"][BALANCER_HOST].update({
            "clbw_file_sha256": _sha256(drain.text), "clbw_file_header": Unsafe(drain.text.splitlines()[0] + "\n")})
    return {"all": {
        "vars": {"clbw_setup": Unsafe(answers.name), "clbw_proxy_name": Unsafe(url.host),
                 "clbw_proxy_port": url.port, "clbw_scheme": Unsafe(url.scheme),
                 "clbw_setenv_options": {name: Unsafe(value) for name, value in wanted_options(answers).items()},
                 "clbw_restart_drain": answers.restart_drain},
        "children": children}}


#: The file the edit modules leave beside server.xml before they change a file, and the roll removes once
#: the node answers RUNNING after its restart: a run killed in between still restarts the node next time.
RESTART_MARKER_NAME = ".confluence-lb-wizard-restart-owed"


def restart_marker(server_xml_path: str) -> str:
    return posixpath.join(posixpath.dirname(server_xml_path), RESTART_MARKER_NAME)


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- the plays


def no_drain_reason(answers: Answers, drain: FileDrain | None, haproxy: HaproxyExport | None) -> str | None:
    """Why the playbook's roll restarts the nodes without draining them, or None when it drains (through
    the balancer's file, or HAProxy's runtime API)."""
    kind = answers.balancer.kind
    if drain is not None or (kind == "haproxy" and haproxy is not None and haproxy.admin_socket):
        return None
    if kind != "alb":  # every other kind drains through its file or HAProxy's runtime API
        raise AssertionError(f"the export of a {kind} balancer has no drained file")
    return ("The AWS load balancer is not managed by this playbook (CloudFormation or `apply --only balancer` "
            "builds it), so the roll restarts each node WITHOUT draining it. To drain a node first, deregister "
            "its targets from the setup's target groups (`aws elbv2 deregister-targets`; the deregistration "
            "delay lets requests under way finish), run the playbook with --limit <node>, then register them "
            "again; or roll with `confluence-lb-wizard restart`.")


def _on_balancer(task: dict[str, Any]) -> dict[str, Any]:
    """``task`` run on the balancer host (its own connection and become settings) for the node of the turn."""
    return {**task, "delegate_to": BALANCER_HOST}


_B = f"hostvars['{BALANCER_HOST}']"


def tested_write(src: str, what: str, register: str, failed: str, *, product: str,
                 thing: str, delegate: bool = True) -> list[dict[str, Any]]:
    """Write ``src`` over the balancer's managed file, test the server's configuration, reload it; a failed
    test or reload puts the previous file back (or removes a file that was not there), reloads with it only
    when it was the new file's reload that failed, and stops with ``failed``: the order of
    ``wizard.balancers.reloading`` (and of ``wizard.balancers.apache.drain.set_drained``).

    ``delegate``: the tasks run on the balancer for the node of the turn (the drained roll), reading the
    balancer's variables through hostvars; else they run in a play on the balancer itself.
    """
    def at(task: dict[str, Any]) -> dict[str, Any]:
        return _on_balancer(task) if delegate else task

    def var(name: str) -> str:
        return "{{ " + (_B + "." if delegate else "") + name + " }}"

    changed = f"{register} is changed and not ansible_check_mode"
    steps = [
        # follow: a managed file that is a symbolic link (Debian's sites-enabled) stays one; its target is
        # written, as `apply` does.
        at({"name": f"Write the {thing} that would {what}",
            "ansible.builtin.copy": {"src": src, "dest": var("clbw_config_path"), "backup": True, "follow": True},
            "register": register}),
        at({"name": f"Test {product}'s configuration before the reload that would {what}",
            "ansible.builtin.shell": var("clbw_configtest"), "changed_when": False,
            "register": f"{register}_test", "when": changed}),
        at({"name": f"Reload {product} to {what}", "ansible.builtin.shell": var("clbw_reload"), "when": changed}),
    ]
    rescue = [
        at({"name": f"Put the previous {thing} back",
            "ansible.builtin.copy": {"src": "{{ " + register + ".backup_file }}", "dest": var("clbw_config_path"),
                                     "remote_src": True, "follow": True},
            "when": f"{register}.backup_file is defined"}),
        at({"name": f"Remove the new {thing} (there was none before)",
            "ansible.builtin.file": {"path": var("clbw_config_path"), "state": "absent"},
            "when": f"{register} is changed and {register}.backup_file is not defined"}),
        at({"name": f"Reload {product} with the previous {thing} (only when the new one's test had passed)",
            "ansible.builtin.shell": var("clbw_reload"), "failed_when": False,
            "when": f"{register}_test is defined and {register}_test is succeeded"}),
        {"name": "Stop the roll" if delegate else f"Stop: {product} kept its previous configuration",
         "ansible.builtin.fail": {"msg": failed}}]
    return [{"name": f"The {thing} that would {what}, tested before {product} reloads", "block": steps,
             "rescue": rescue}]


#: The watcher's job and its status, on the controller as the user running the playbook: the job's folder is
#: absolute, or "~" would be the node's login user's home for one task and the controller's for the other.
_ON_CONTROLLER: dict[str, Any] = {
    "delegate_to": "localhost", "become": False,
    "vars": {"ansible_async_dir": "{{ lookup('env', 'HOME') | default('~', true) }}/.ansible_async"}}
_HEARTBEAT_OK = ("clbw_heartbeat.status == 200 and (clbw_heartbeat.content | default('') | trim | lower) == 'ok'")


def nodes_play(answers: Answers, drain: FileDrain | None = None,
               haproxy: HaproxyExport | None = None) -> dict[str, Any]:
    """The Connector and setenv.sh edits, then the rolling restart, one node at a time; ``drain``: the
    balancer drains a node by rewriting its file (Apache, nginx), ``haproxy``: through its runtime API."""
    kind = answers.balancer.kind
    drains = no_drain_reason(answers, drain, haproxy) is None
    retries = max(1, answers.restart_timeout // POLL_SECONDS)
    run = "clbw_restart and not ansible_check_mode"
    tasks: list[dict[str, Any]] = [{
        "name": "Set proxyName, proxyPort and scheme on the Connector (only its start tag changes)",
        "clbw_connector": {"path": "{{ clbw_server_xml }}", "port": "{{ clbw_confluence_port }}",
                           "proxy_name": "{{ clbw_proxy_name }}", "proxy_port": "{{ clbw_proxy_port }}",
                           "scheme": "{{ clbw_scheme }}", "restart_marker": "{{ clbw_restart_marker }}"},
        "register": "clbw_connector_edit"}, {
        "name": f"Synchrony's options in bin/setenv.sh for synchrony.mode {answers.synchrony.mode} (one marked line "
                "each; only this setup's own lines are ever removed)",
        "clbw_setenv": {"path": "{{ clbw_setenv }}", "setup": "{{ clbw_setup }}",
                        "options": "{{ clbw_setenv_options }}", "backup": True,
                        "restart_marker": "{{ clbw_restart_marker }}"},
        "register": "clbw_setenv_edit"}]
    # Both edits take effect at the same restart; a run where neither changed restarts nothing, unless
    # an earlier run edited and was stopped (or killed) before the restart: the marker says so.
    changed = ("clbw_connector_edit is changed or clbw_setenv_edit is changed or clbw_connector_edit.restart_owed "
               "| default(false) or clbw_setenv_edit.restart_owed | default(false)")
    if drain is not None:
        product, thing = drain.product, drain.thing
        # The file the balancer serves says whether it is live for this setup (the wizard's file for it is
        # there: the roll drains only then, as the restart step does once the balancer step is done; a file
        # of the admin's own at config_path serves something else) and whether an earlier roll stopped with
        # this node drained: that node is restarted again (its restart may never have happened) and put back.
        tasks += [
            _on_balancer({"name": f"Look at the {thing} {product} serves: is the balancer live, is this node left "
                                  "drained?",
                          "ansible.builtin.stat": {"path": "{{ " + _B + ".clbw_config_path }}", "follow": True,
                                                   "get_checksum": True, "checksum_algorithm": "sha256"},
                          "register": "clbw_file_now"}),
            _on_balancer({"name": f"Read it: is it the wizard's {thing} for this setup?",
                          "ansible.builtin.slurp": {"src": "{{ " + _B + ".clbw_config_path }}"},
                          "register": "clbw_file_text", "when": "clbw_file_now.stat.exists"}),
            {"name": "Decide: restart this node? drain it first?", "ansible.builtin.set_fact": {
                "clbw_live": "{{ clbw_file_now.stat.exists and (clbw_file_text.content | default('') | b64decode)"
                             ".startswith(" + _B + ".clbw_file_header) }}",
                "clbw_left_drained": "{{ clbw_file_now.stat.exists and clbw_file_now.stat.checksum == "
                                     "clbw_drained_sha256 }}"}},
            {"name": "Restart when an edit changed something, or when an earlier roll stopped with it drained",
             "ansible.builtin.set_fact": {"clbw_restart": "{{ (" + changed + ") or clbw_left_drained }}"}},
            {"name": f"Stop: the live {thing} is not this export's, so it is not rewritten to drain this node",
             "ansible.builtin.fail": {"msg": (
                 "{{ " + _B + f".clbw_config_path }}}} on the balancer is not the {thing} this export writes (edited "
                 f"by hand, the answers changed since {product} was last configured, or an earlier roll left "
                 "another node drained), so it is not rewritten to drain {{ inventory_hostname }}, and "
                 "{{ inventory_hostname }} was not restarted (its edits are in place, not in effect; the next run "
                 "restarts it). Review the difference with `ansible-playbook -i inventory.yml site.yml --limit "
                 f"balancer --check --diff`, put this export's {thing} in place with `--limit balancer`, then run "
                 "the playbook again.")},
             "when": "clbw_restart and clbw_live and not clbw_left_drained and clbw_file_now.stat.checksum != "
                     + _B + ".clbw_file_sha256"}]
        drained_note = (f"{{{{ inventory_hostname }}}} STAYS DRAINED in {product} (it gets no users); when it "
                        "answers RUNNING, run the playbook again: it restarts {{ inventory_hostname }} once more and "
                        "puts it back.")
        tasks += tested_write(
            "templates/drained/{{ inventory_hostname }}.conf", "drain this node", "clbw_drain",
            f"Draining {{{{ inventory_hostname }}}} in {product} failed (see the task above), so it was not "
            f"restarted; the previous {thing} is back and {product} serves what it served. Fix what {product} "
            "said, then run again.", product=product, thing=thing)
        tasks[-1]["when"] = f"{run} and clbw_live and not clbw_left_drained"
        live = "clbw_live"
    elif kind == "haproxy" and drains:
        drained_note = ("{{ inventory_hostname }} STAYS DRAINED in HAProxy (in maintenance: it gets no users); when it "
                        "answers RUNNING, run the playbook again: it restarts {{ inventory_hostname }} once more "
                        "and puts it back.")
        haproxy_args = {"socket": "{{ " + _B + ".clbw_admin_socket }}", "backends": "{{ " + _B +
                        ".clbw_haproxy_backends }}", "server": "{{ inventory_hostname }}"}
        tasks += [
            _on_balancer({"name": "Ask HAProxy's runtime API whether it serves this setup and has this node drained",
                          "clbw_haproxy": {**haproxy_args, "state": "maint"}, "check_mode": True,
                          "changed_when": False, "register": "clbw_haproxy_now"}),
            {"name": "Decide: restart this node? drain it first?", "ansible.builtin.set_fact": {
                "clbw_live": "{{ clbw_haproxy_now.live }}",
                "clbw_left_drained": "{{ clbw_haproxy_now.live and clbw_haproxy_now.drained | default(false) }}"}},
            {"name": "Restart when an edit changed something, or when an earlier roll stopped with it drained",
             "ansible.builtin.set_fact": {"clbw_restart": "{{ (" + changed + ") or clbw_left_drained }}"}},
            _on_balancer({"name": "Drain this node in HAProxy (set server ... state maint: no request, sticky or not)",
                          "clbw_haproxy": {**haproxy_args, "state": "maint"}, "register": "clbw_drain",
                          "when": f"{run} and clbw_live"})]
        live = "clbw_live"
    else:
        drained_note = ""
        tasks.append({"name": "Restart when an edit changed something (this balancer cannot drain: see the top "
                              "of this file)",
                      "ansible.builtin.set_fact": {"clbw_restart": "{{ " + changed + " }}",
                                                   "clbw_left_drained": False}})
        live = "false"
    if drains:
        why = ("{{ " + _B + ".clbw_config_path }} is not there yet, or is not the wizard's file for this setup"
               if drain is not None
               else "{{ clbw_haproxy_now.msg }}")
        tasks.append({"name": "Say so when the balancer does not serve this setup yet (no drain, as the restart "
                              "step does before the balancer step)",
                      "ansible.builtin.debug": {"msg": "{{ inventory_hostname }} is restarted WITHOUT a drain: "
                                                       "the balancer does not serve this setup yet (" + why + ")."},
                      "when": f"{run} and not ({live})"})
        tasks.append({"name": "Give the requests under way restart_drain seconds to finish",
                      "ansible.builtin.pause": {"seconds": "{{ clbw_restart_drain }}"},
                      "when": f"{run} and {live} and clbw_restart_drain | int > 0"})
    # A node whose own Synchrony answers before its restart is waited for after it (direct mode),
    # as the restart step does: an editor sent to a node without its Synchrony cannot edit.
    restart: list[dict[str, Any]] = []
    if answers.synchrony.mode == "direct":
        tasks.append({"name": "Does this node's own Synchrony answer now? (then it is waited for after the restart)",
                      "ansible.builtin.uri": {"url": "{{ clbw_heartbeat_url }}", "return_content": True,
                                              "status_code": [-1, 200, 404, 500, 502, 503], "timeout": 5},
                      "delegate_to": "localhost", "register": "clbw_heartbeat_before", "failed_when": False,
                      "when": run})
    # A restart command often returns before Confluence has even stopped (RUNNING right after it is
    # the old process), and a quick restart can be over before a task started after the command
    # looks: the watcher runs on the controller from before the command until the node was seen
    # down and answers RUNNING again, as the restart step's own watcher does.
    watch_seconds = 2 * answers.restart_timeout + 60
    restart.append({"name": "Watch /status from here while the node restarts (it must be seen down, then RUNNING)",
                    "clbw_watch": {"url": "{{ clbw_status_url }}", "timeout": answers.restart_timeout,
                                   "poll": WATCH_POLL_SECONDS},
                    **_ON_CONTROLLER, "async": watch_seconds, "poll": 0, "register": "clbw_watch_job"})
    if answers.restart == "manual":
        restart.append({"name": "Restart Confluence on this node now, your usual way (the play waits for it)",
                        "ansible.builtin.debug": {"msg": "Restart Confluence on {{ inventory_hostname }} now; the "
                                                         "play waits until /status leaves RUNNING and answers "
                                                         "RUNNING again."}})
    else:
        restart.append({"name": "Restart Confluence (the Connector and setenv.sh changes take effect only then)",
                        "ansible.builtin.shell": "{{ clbw_restart_command }}"})
    restart.append({"name": "Wait until the node was seen going down and answers RUNNING again",
                    "ansible.builtin.async_status": {"jid": "{{ clbw_watch_job.ansible_job_id }}"},
                    **_ON_CONTROLLER, "register": "clbw_watched", "until": "clbw_watched.finished",
                    "retries": watch_seconds // POLL_SECONDS, "delay": POLL_SECONDS})
    if answers.synchrony.mode == "direct":
        restart.append({"name": "Wait until this node's own Synchrony answers its heartbeat",
                        "ansible.builtin.uri": {"url": "{{ clbw_heartbeat_url }}", "return_content": True,
                                                "status_code": [-1, 200, 404, 500, 502, 503], "timeout": 5},
                        "delegate_to": "localhost", "register": "clbw_heartbeat", "until": _HEARTBEAT_OK,
                        "retries": retries, "delay": POLL_SECONDS,
                        "when": "clbw_left_drained or (clbw_heartbeat_before.status | default(0)) == 200"})
    stopped = ("{{ inventory_hostname }} did not come back (see the task above): the roll stopped here and no "
               "later node was restarted. ")
    rescue: list[dict[str, Any]] = [{"name": "Stop the roll", "ansible.builtin.fail": {
        "msg": stopped + "When it answers RUNNING, run the playbook again."}}]
    if drained_note:
        rescue = [{"name": "Stop the roll, the node left drained", "ansible.builtin.fail": {
            "msg": stopped + drained_note}, "when": live}, {**rescue[0], "when": f"not ({live})"}]
    tasks.append({"name": "Restart this node and wait for it", "when": run, "block": restart, "rescue": rescue})
    if drain is not None:
        tasks += tested_write(
            drain.source, "put this node back", "clbw_undrain",
            f"{{{{ inventory_hostname }}}} restarted and answers, but putting it back in {drain.product} failed (see "
            f"the task above): it STAYS DRAINED. Fix what {drain.product} said, then run the playbook again (it "
            "restarts {{ inventory_hostname }} once more and puts it back).", product=drain.product, thing=drain.thing)
        tasks[-1]["when"] = f"{run} and clbw_live"
    elif kind == "haproxy" and drains:
        tasks.append(_on_balancer({"name": "Put this node back in HAProxy (set server ... state ready)",
                                   "clbw_haproxy": {**haproxy_args, "state": "ready"},
                                   "when": f"{run} and clbw_live"}))
    # Last, once the node answers and is back in the balancer: the restart is no longer owed.
    tasks.append({"name": "The restart is done: remove the marker that said it was owed",
                  "ansible.builtin.file": {"path": "{{ clbw_restart_marker }}", "state": "absent"}, "when": run})
    return {"name": "Tomcat Connector and setenv.sh on every node, then a rolling restart", "hosts": NODES_GROUP,
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
                  # follow: a vhost that is a symbolic link (Debian's sites-enabled) stays one; its
                  # target is written, as `apply` does.
                  "ansible.builtin.copy": {"src": vhost_source(apache), "dest": "{{ clbw_config_path }}",
                                           "backup": True, "follow": True},
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
                                  "remote_src": True, "follow": True},
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


def served_source(served: ServedExport) -> str:
    return f"templates/{posixpath.basename(served.config_path)}"


def served_play(served: ServedExport) -> dict[str, Any]:
    """nginx's or HAProxy's managed file as the balancer step writes it; the server's test, then the reload."""
    product = served.product
    failed = (f"{product}'s configuration test (or its reload) failed with the new file, so {product} keeps "
              "serving its previous configuration and the previous file is back. Fix what it said (see the task "
              "above), then run the playbook again.")
    tasks = tested_write(served_source(served), "serve this setup exactly as `confluence-lb-wizard apply` renders "
                         "it", "clbw_config", failed, product=product, thing=f"{product} configuration",
                         delegate=False)
    return {"name": f"{product} in front of the nodes", "hosts": BALANCER_GROUP, "gather_facts": False,
            "tasks": tasks}


def checks_play(answers: Answers, apache: ApacheExport) -> dict[str, Any]:
    """Apache's final checks, from the controller, by address with the vhost's Host header."""
    options = answers.balancer.apache
    assert options is not None
    scheme = "https" if options.tls is not None else "http"
    manager = ("/balancer-manager is closed to everyone not in manager_allow", "/balancer-manager",
               "clbw_check_manager", "clbw_check_manager.status in [401, 403, 404]"
               + (" or clbw_check_manager.status == 200" if options.manager_allow else ""),
               [200, 401, 403, 404] if options.manager_allow else [401, 403, 404])
    return final_checks_play(answers, scheme=scheme, address=apache.probe_address, port=apache.listen_port,
                             host_header=apache.server_name, redirect_ports=apache.redirect_ports,
                             https_origin=apache.https_origin, redirect_codes=[301], extra=[manager])


def served_checks_play(answers: Answers, served: ServedExport) -> dict[str, Any]:
    """nginx's or HAProxy's final checks, as ``verify`` makes them: by address with the public Host header
    (HAProxy: its stats page closed unless stats_allow)."""
    extra = []
    if served.stats_allow is not None:
        from wizard.balancers.haproxy.config import STATS_PATH

        is_stats = ("(clbw_check_stats.status == 200 and 'Statistics Report' in "
                    "(clbw_check_stats.content | default('')))")
        if served.stats_allow:
            extra.append((f"HAProxy's stats page ({STATS_PATH}) answers only stats_allow", STATS_PATH,
                          "clbw_check_stats", f"{is_stats} or clbw_check_stats.status == 403", _ANY_STATUS))
        else:
            extra.append((f"HAProxy has no stats page ({STATS_PATH}): stats_allow is empty", STATS_PATH,
                          "clbw_check_stats", f"not {is_stats}", _ANY_STATUS))
    return final_checks_play(answers, scheme=served.scheme, address=served.probe_address, port=served.listen_port,
                             host_header=served.host_header, redirect_ports=served.http_ports,
                             https_origin=served.https_origin, redirect_codes=[301, 308], extra=extra)


#: What a page the check judges by its content may answer (a connection refused fails the task).
_ANY_STATUS = [200, 301, 302, 303, 307, 308, 400, 401, 403, 404, 405, 500, 502, 503, 504]


def final_checks_play(answers: Answers, *, scheme: str, address: str, port: int, host_header: str,
                      redirect_ports: tuple[int, ...], https_origin: str, redirect_codes: list[int],
                      extra: list[tuple[str, str, str, str, list[int]]]) -> dict[str, Any]:
    """The balancer's final checks, from the controller, by ``address`` with ``host_header``: /status RUNNING
    with the ROUTEID cookie, Synchrony's heartbeat, then ``extra`` (name, path, register, until, codes),
    then the HTTPS redirect of each plain-HTTP port."""
    host = f"[{address}]" if ":" in address else address
    base = f"{scheme}://{host}:{port}"
    context = answers.public_url.context_path
    heartbeat = ("/synchrony/heartbeat" if answers.synchrony.mode in ("direct", "standalone")
                 else f"{context}/synchrony-proxy/heartbeat")
    common = {"headers": {"Host": host_header}, "validate_certs": False, "follow_redirects": "none",
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
    ]
    tasks += [check(name, path, register, until, codes=codes) for name, path, register, until, codes in extra]
    probe = "/clbw-redirect-check?keep=1&and=2"
    for http_port in redirect_ports:
        register = f"clbw_check_redirect_{http_port}"
        tasks.append(check(f"HTTP on port {http_port} redirects to HTTPS, keeping path and query", probe, register,
                           f"{register}.location | default('') == '{https_origin}{probe}'",
                           url_base=f"http://{host}:{http_port}", codes=redirect_codes))
    return {"name": "Final checks through the balancer", "hosts": "localhost", "gather_facts": False,
            "connection": "local", "tasks": tasks}


# --------------------------------------------------------------------------- the files


def build(answers: Answers, session: Session) -> dict[str, str]:
    """Every file of the Ansible export, by relative path."""
    nodes = session.nodes()
    kind = answers.balancer.kind
    apache = session.apache() if kind == "apache" else None
    haproxy = session.haproxy() if kind == "haproxy" else None
    served = session.served() if kind in ("nginx", "haproxy") else None
    drain = file_drain(apache, served)
    plays = [nodes_play(answers, drain, haproxy)]
    files: dict[str, str] = {}
    if drain is not None:
        for name, text in drain.drained_texts.items():
            files[f"templates/drained/{name}.conf"] = text
    if apache is not None:
        plays += [apache_play(apache), checks_play(answers, apache)]
        files[vhost_source(apache)] = apache.vhost_text
        if apache.modules_file:
            files["templates/clbw-modules.conf"] = apache.modules_file[1]
    if served is not None:
        plays += [served_play(served), served_checks_play(answers, served)]
        files[served_source(served)] = served.text
    header = (f"Written by confluence-lb-wizard `export --format ansible` for the setup {answers.name}.\n"
              "Run: ansible-playbook -i inventory.yml site.yml (add --check --diff to see the changes first).\n"
              "Needs ansible-core only; library/ holds the wizard's own editors of server.xml and setenv.sh"
              + (" and the HAProxy runtime API client" if haproxy is not None and haproxy.admin_socket else "")
              + " as modules.\n")
    if drain is not None:
        header += (f"Rolling restart: a node whose edits changed something is drained in {drain.product} first "
                   f"({drain.how}, from templates/drained/, tested, then a graceful reload), given restart_drain "
                   f"({answers.restart_drain} s) for the requests under way, restarted, waited for, and put back "
                   f"({drain.source}, tested, reloaded); only once the balancer is live (its {drain.thing} is "
                   "there). A node that does not come back stops the roll and stays drained; the next run restarts "
                   "it again and puts it back.\n")
    elif haproxy is not None and haproxy.admin_socket:
        header += ("Rolling restart: a node whose edits changed something is drained through HAProxy's runtime API "
                   f"({haproxy.admin_socket}: set server ... state maint), given restart_drain "
                   f"({answers.restart_drain} s), restarted, waited for, then set ready again; only once HAProxy "
                   "serves this setup. A node that does not come back stops the roll and stays drained; the next "
                   "run restarts it again and puts it back.\n")
    header += (f"A restart owed: the edit modules leave {RESTART_MARKER_NAME} beside server.xml before they change "
               "a file, and the roll removes it once the node is back, so a run stopped or killed between an edit and "
               "the node's restart restarts that node next time.\n")
    reason = no_drain_reason(answers, drain, haproxy)
    if reason:
        header += f"No drain: {reason}\n"
    if kind == "alb":
        header += ("The AWS load balancer is not in this playbook: export it with --format cloudformation "
                   "(or let `apply --only balancer` build it).\n")
    if served is not None:
        header += (f"{served.product}: its file ({served.config_path}) written exactly as `apply` renders it "
                   f"({served_source(served)}), `{served.configtest}` before `{served.reload}` (a failing test or "
                   "reload puts the previous file back), then the final checks through the balancer.\n")
    files["site.yml"] = dump_yaml(plays, header.rstrip("\n"))
    files["inventory.yml"] = dump_yaml(inventory(answers, nodes, apache, haproxy, served),
                                       f"The machines of the setup {answers.name}, as its answers reach them.")
    files[MODULE_FILE] = connector_module()
    files[SETENV_MODULE_FILE] = setenv_module()
    files[WATCH_MODULE_FILE] = plain_module("clbw_watch.py", WATCH_MODULE_FILE)
    if haproxy is not None and haproxy.admin_socket:
        files[HAPROXY_MODULE_FILE] = plain_module("clbw_haproxy.py", HAPROXY_MODULE_FILE)
    return files


def _module_template(name: str) -> str:
    from wizard.render import templates_dir

    return (templates_dir() / "export" / "ansible" / name).read_text(encoding="utf-8")


def _with_vendored(body: str, vendored: str, name: str) -> str:
    """The module template ``body`` with ``vendored`` in place of its marker and the shared atomic write
    in place of its own (compiled to be sure)."""
    parts = {"# @@VENDORED@@\n": vendored, "# @@ATOMIC_WRITE@@\n": _atomic_write()}
    text = body
    for marker, part in parts.items():
        assert text.count(marker) == 1, f"the module template {name} lost its marker {marker.strip()}"
        text = text.replace(marker, part)
    compile(text, name, "exec")
    return text


def _atomic_write() -> str:
    """The ``_write`` function of the file-editing modules, without its file's heading comment."""
    text = _module_template("_atomic_write.py")
    return text[text.index("def _write("):]


def connector_module() -> str:
    """The module file: its own code around the vendored wizard.confluence.serverxml."""
    return _with_vendored(_module_template("clbw_connector.py"), vendored_serverxml(), MODULE_FILE)


def setenv_module() -> str:
    """The setenv.sh module: its own code around the vendored wizard.confluence.setenv."""
    return _with_vendored(_module_template("clbw_setenv.py"), vendored_setenv(), SETENV_MODULE_FILE)


def plain_module(template: str, name: str) -> str:
    """A module that vendors nothing (the restart watcher, the HAProxy runtime API client), compiled to be sure."""
    text = _module_template(template)
    compile(text, name, "exec")
    return text
