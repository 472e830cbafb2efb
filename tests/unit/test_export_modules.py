"""The Ansible export's modules: the wizard's own editors vendored verbatim, editing exactly as the wizard does.

The modules run on nodes that have only Python and Ansible, so the editors are copied into them at export
time (``wizard.export.project``). These tests hold the copy to the original: every line of the editor's
source is in the module in order (only the named imports replaced), the module imports nothing of the
wizard, and the vendored editor, run on its own, plans the same edits (and the same refusals) as the
wizard's on generated files. tests/integration/test_export_ansible.py runs the modules through Ansible.
"""

from __future__ import annotations

import inspect
import re
import sys
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wizard.confluence import serverxml, setenv
from wizard.confluence.setenv import PROXY_ENABLED, SERVICE_URL, SetenvError, plan_setenv_edit
from wizard.errors import WizardError
from wizard.export import ansible, project

URL = "https://wiki.example.com/synchrony/v1"
REPLACED = ("from __future__ import annotations\n", "from wizard.errors import BadInputError\n",
            "from wizard.answers_model import Answers\n", "    from wizard.confluence.serverxml import _last_option\n")


def standalone(module_text: str, name: str = "clbw_module_under_test") -> types.ModuleType:
    """The module's code run on its own, as on a node (``main`` is not called): a module of its own, whose
    dataclasses resolve their names there, never in the wizard."""
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(module_text, name, "exec"), module.__dict__)  # noqa: S102 - our own generated module
    return module


def chunks(source: str, replaced: tuple[str, ...]) -> list[str]:
    """``source`` cut at each replaced line: what must be in the module, verbatim and in order."""
    pattern = "|".join(re.escape(line) for line in replaced)
    return [part for part in re.split(pattern, source) if part]


def test_the_setenv_module_vendors_the_wizards_editor_verbatim() -> None:
    module = ansible.setenv_module()
    position = 0
    for part in chunks(inspect.getsource(setenv), REPLACED):
        found = module.find(part, position)
        assert found >= 0, part[:200]
        position = found + len(part)
    for helper in (serverxml._active_shell, serverxml._last_option):  # the helpers it calls, beside it
        assert inspect.getsource(helper) in module
    assert not re.search(r"^\s*(from|import) wizard", module, re.MULTILINE)  # stand-alone on the node
    assert module.index("from __future__ import annotations") < module.index("def plan_setenv_edit")


def test_the_vendoring_refuses_an_editor_it_does_not_know(monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed import line is not replaced on a guess: the export stops with the wizard's own message."""
    real = project.Path.read_text

    def edited(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        text = real(self, *args, **kwargs)
        return text.replace("from wizard.answers_model import Answers\n", "from wizard import answers_model\n")

    monkeypatch.setattr(project.Path, "read_text", edited)
    with pytest.raises(WizardError, match="no longer has the imports the export vendors around"):
        ansible.setenv_module()


# Generated files around a CATALINA_OPTS line, as the wizard's own property test builds them, plus lines
# of this setup and of another, the admin's own flags and refusals.
_SAFE = st.characters(codec="utf-8", exclude_characters="\"'\\`$#(){}\r\x00")
_line = st.text(alphabet=_SAFE, max_size=30).map(lambda s: s.replace("\n", " "))
_lines = st.one_of(
    _line.map(lambda s: "# " + s), _line.map(lambda s: "X=" + s.replace(" ", "_")),
    st.sampled_from(['CATALINA_OPTS="-Xmx2g ${CATALINA_OPTS}"', "export CATALINA_OPTS", 'echo "a # b"',
                     'CATALINA_OPTS="-Dsynchrony.proxy.enabled=false ${CATALINA_OPTS}"',
                     'CATALINA_OPTS="-Dsynchrony.service.url=http://other/synchrony/v1 ${CATALINA_OPTS}"',
                     setenv.option_line("wiki", PROXY_ENABLED, "true"), setenv.option_line("other", PROXY_ENABLED, "true"),
                     setenv.option_line("wiki", SERVICE_URL, URL), 'CATALINA_OPTS="-Dx=1 ${CATALINA_OPTS}',
                     "if true; then", "fi", "CATALINA_OPTS='-Dsingle=1'", "  \\"]))


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_lines, max_size=10), crlf=st.booleans(), final_newline=st.booleans(),
       wanted=st.sampled_from([{}, {PROXY_ENABLED: "true"}, {SERVICE_URL: URL}]))
def test_the_vendored_editor_plans_what_the_wizards_plans(lines, crlf, final_newline, wanted) -> None:
    vendored = _VENDORED
    newline = "\r\n" if crlf else "\n"
    text = newline.join(lines) + (newline if final_newline else "")
    try:
        expected = plan_setenv_edit(text, setup="wiki", wanted=wanted)
    except SetenvError as exc:
        with pytest.raises(vendored.SetenvError) as caught:
            vendored.plan_setenv_edit(text, setup="wiki", wanted=wanted)
        assert (caught.value.message, caught.value.hint) == (exc.message, exc.hint)
        return
    got = vendored.plan_setenv_edit(text, setup="wiki", wanted=wanted)
    assert (got.new_text, got.added, got.removed, got.notes) == \
        (expected.new_text, expected.added, expected.removed, expected.notes)


def test_the_vendored_editor_decodes_and_refuses_like_the_wizard() -> None:
    vendored = _VENDORED
    for data in (b"CATALINA_OPTS=\x00\n", b"CATALINA_OPTS=\xff\n"):
        with pytest.raises(SetenvError) as expected:
            setenv.decode_setenv(data)
        with pytest.raises(vendored.SetenvError) as caught:
            vendored.decode_setenv(data)
        assert caught.value.message == expected.value.message
    assert vendored.decode_setenv("é\n".encode()) == "é\n"


def test_the_modules_that_vendor_nothing_import_nothing_of_the_wizard() -> None:
    for name in ("clbw_watch.py", "clbw_haproxy.py"):
        text = ansible.plain_module(name, f"library/{name}")
        assert not re.search(r"^\s*(from|import) wizard", text, re.MULTILINE), name
        assert "AnsibleModule(" in text and "supports_check_mode" in text


_VENDORED = standalone(ansible.setenv_module())


def test_the_export_refuses_a_setenv_sh_apply_would_refuse_and_writes_nothing(tmp_path) -> None:
    """A node whose bin/setenv.sh the wizard cannot edit for the mode stops the export as it stops `plan`."""
    from wizard.answers import validate
    from wizard.export import run_export
    from wizard.lab.files import server_xml

    install = tmp_path / "node1"
    (install / "conf").mkdir(parents=True)
    (install / "bin").mkdir()
    (install / "conf" / "server.xml").write_text(server_xml(8090))
    (install / "bin" / "setenv.sh").write_text("#!/bin/sh\nJAVA_OPTS=-Xmx1g\n")  # no CATALINA_OPTS= to add after
    answers = validate({"name": "wiki", "public_url": "http://wiki.example.com", "synchrony": {"mode": "internal-proxy"},
                        "nodes": [{"name": "node1", "address": "127.0.0.1", "install_dir": str(install),
                                   "access": {"transport": "local"}, "restart_command": "true"}],
                        "balancer": {"kind": "nginx", "nginx": {"access": {"transport": "local"}}}})
    out = tmp_path / "out"
    with pytest.raises(SetenvError) as caught:
        run_export("ansible", answers, out)
    assert "node1" in caught.value.message and "no top-level CATALINA_OPTS" in caught.value.message
    assert not out.exists()


class _Nodes:
    """A stand-in for the export's read-only session: the nodes as read, no balancer to read."""

    def __init__(self, answers) -> None:  # type: ignore[no-untyped-def]
        from wizard.export.project import NodeExport

        self.answers = answers
        self.found = [NodeExport(node=node, server_xml_path=f"{node.install_dir}/conf/server.xml", confluence_port=8090,
                                 synchrony_port=8091, context_path="", status_url=f"http://{node.address}:8090/status",
                                 restart_command="systemctl restart confluence",
                                 setenv_path=f"{node.install_dir}/bin/setenv.sh",
                                 heartbeat_url=f"http://{node.address}:8091/synchrony/heartbeat")
                      for node in answers.nodes]

    def nodes(self):  # type: ignore[no-untyped-def]
        return self.found

    def haproxy(self):  # type: ignore[no-untyped-def]
        from wizard.export.project import Session

        return Session.haproxy(self)  # type: ignore[arg-type]

    def served(self):  # type: ignore[no-untyped-def]
        from wizard.export.project import ServedExport

        kind = self.answers.balancer.kind
        return ServedExport(kind=kind, product={"nginx": "nginx", "haproxy": "HAProxy"}[kind],
                            config_path=f"/etc/{kind}/conf.d/confluence-lb.conf", text=f"# {kind} file\n",
                            configtest=self.answers.balancer.host_options.configtest_command,
                            reload=self.answers.balancer.host_options.reload_command, scheme="http",
                            probe_address="lb1.internal", host_header="wiki.example.com", listen_port=80,
                            http_ports=(), https_origin="http://wiki.example.com",
                            stats_allow=() if kind == "haproxy" else None,
                            drained_texts={node.name: f"# {kind} file, {node.name} drained\n"
                                           for node in self.answers.nodes}
                            if kind == "nginx" or not self.answers.balancer.host_options.admin_socket else {})


@pytest.mark.parametrize("kind, options, said", [
    ("alb", {"region": "eu-west-1", "vpc_id": "vpc-0123456789abcdef0",
             "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]},
     "deregister its targets from the setup's target groups"),
])
def test_a_balancer_that_cannot_drain_is_named_in_site_yml_and_the_roll_has_no_drain(kind, options, said) -> None:
    """The ALB: the roll restarts without a drain, and site.yml says so (and what the admin does instead);
    the playbook never touches the ALB."""
    import yaml

    from wizard.answers import validate

    section = {"access": {"host": "lb1.internal"}, **options} if kind != "alb" else options
    answers = validate({"name": "wiki", "public_url": "http://wiki.example.com",
                        "nodes": [{"name": "node1", "address": "10.0.1.11"}, {"name": "node2", "address": "10.0.1.12"}],
                        "balancer": {"kind": kind, kind: section}})
    files = ansible.build(answers, _Nodes(answers))  # type: ignore[arg-type]
    site = files["site.yml"]
    header = site.split("---\n", 1)[0]
    assert said in header.replace("\n# ", " "), header
    plays = yaml.safe_load(site.split("---\n", 1)[1].replace("!unsafe", ""))
    served = kind == "haproxy"
    assert [play["hosts"] for play in plays] == (["confluence_nodes", "confluence_balancer", "localhost"] if served
                                                 else ["confluence_nodes"])
    tasks = yaml.safe_dump(plays[0])
    assert "clbw_haproxy" not in tasks and "templates/drained" not in tasks and "pause" not in tasks
    assert "clbw_config_path" not in tasks  # the roll does not look at (or rewrite) the balancer's file
    assert plays[0]["serial"] == 1 and plays[0]["any_errors_fatal"] is True
    assert ("confluence_balancer" in files["inventory.yml"]) == served
    assert ("templates/confluence-lb.conf" in files) == served
    assert ansible.HAPROXY_MODULE_FILE not in files and ansible.SETENV_MODULE_FILE in files


@pytest.mark.parametrize("kind, how", [
    ("nginx", "drained in nginx first (its file with the node's servers down"),
    ("haproxy", "drained in HAProxy first (its file with the node's servers disabled"),
])
def test_the_roll_drains_each_node_through_the_file_tested_before_each_reload(kind, how) -> None:
    """nginx, and HAProxy without admin_socket, drain as Apache does: before a node's restart the file with that
    node out (templates/drained/), tested, reloaded, and put back after; only when the balancer serves the setup
    (its file is there) and only when the file is this export's; site.yml says how."""
    import yaml

    from wizard.answers import validate

    answers = validate({"name": "wiki", "public_url": "http://wiki.example.com",
                        "nodes": [{"name": "node1", "address": "10.0.1.11"}, {"name": "node2", "address": "10.0.1.12"}],
                        "balancer": {"kind": kind, kind: {"access": {"host": "lb1.internal"}}}})
    session = _Nodes(answers)
    files = ansible.build(answers, session)  # type: ignore[arg-type]
    served = session.served()
    assert {name: files[f"templates/drained/{name}.conf"] for name in ("node1", "node2")} == served.drained_texts
    header = files["site.yml"].split("---\n", 1)[0].replace("\n# ", " ")
    assert "No drain" not in header and how in header, header
    plays = yaml.safe_load(files["site.yml"].split("---\n", 1)[1].replace("!unsafe", ""))
    tasks = plays[0]["tasks"]
    names = [task["name"] for task in tasks]
    product = {"nginx": "nginx", "haproxy": "HAProxy"}[kind]
    drain = next(task for task in tasks if task["name"].startswith(f"The {product} configuration that would drain"))
    back = next(task for task in tasks if task["name"].startswith(f"The {product} configuration that would put"))
    restart = next(task for task in tasks if task["name"] == "Restart this node and wait for it")
    assert names.index(drain["name"]) < names.index(restart["name"]) < names.index(back["name"])
    write, test, reload = drain["block"]
    assert write["ansible.builtin.copy"]["src"] == "templates/drained/{{ inventory_hostname }}.conf"
    assert write["delegate_to"] == test["delegate_to"] == reload["delegate_to"] == "balancer"
    assert back["block"][0]["ansible.builtin.copy"]["src"] == "templates/confluence-lb.conf"
    assert drain["when"] == "clbw_restart and not ansible_check_mode and clbw_live and not clbw_left_drained"
    refused = next(task for task in tasks if task["name"].startswith(f"Stop: the live {product} configuration"))
    assert "clbw_haproxy" not in yaml.safe_dump(plays[0])  # no runtime API without admin_socket
    assert "clbw_file_now.stat.checksum != hostvars['balancer'].clbw_file_sha256" in refused["when"]
    inventory = yaml.safe_load(files["inventory.yml"].replace("!unsafe", ""))
    nodes = inventory["all"]["children"]["confluence_nodes"]["hosts"]
    assert all(len(nodes[name]["clbw_drained_sha256"]) == 64 for name in ("node1", "node2"))
    assert nodes["node1"]["clbw_drained_sha256"] != nodes["node2"]["clbw_drained_sha256"]


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_the_nginx_and_haproxy_play_tests_before_it_reloads_and_puts_the_previous_file_back(kind) -> None:
    """The balancer play writes the kind's rendered file (through a link, with a backup), runs the answers' test
    only after a change and before the reload, and on a failure puts the previous file back (or removes a new
    one), reloads only when the failure was the reload's, and stops; the answers' values reach the inventory
    tagged !unsafe; the final checks include HAProxy's closed stats page."""
    import yaml

    from wizard.answers import validate

    answers = validate({"name": "wiki", "public_url": "http://wiki.example.com",
                        "nodes": [{"name": "node1", "address": "10.0.1.11"}],
                        "balancer": {"kind": kind, kind: {"access": {"host": "lb1.internal"},
                                                          "configtest_command": "test-it {{ lookup('pipe', 'id') }}"}}})
    session = _Nodes(answers)
    files = ansible.build(answers, session)  # type: ignore[arg-type]
    served = session.served()
    assert files["templates/confluence-lb.conf"] == served.text
    assert "not in this playbook" not in files["site.yml"]
    plays = yaml.safe_load(files["site.yml"].split("---\n", 1)[1].replace("!unsafe", ""))
    balancer = plays[1]
    assert balancer["hosts"] == "confluence_balancer"
    (block,) = balancer["tasks"]
    write, test, reload = block["block"]
    assert write["ansible.builtin.copy"] == {"src": "templates/confluence-lb.conf", "dest": "{{ clbw_config_path }}",
                                             "backup": True, "follow": True}
    assert test["ansible.builtin.shell"] == "{{ clbw_configtest }}" and reload["ansible.builtin.shell"] == \
        "{{ clbw_reload }}"
    assert test["when"] == reload["when"] == "clbw_config is changed and not ansible_check_mode"
    restore, remove, reload_previous, stop = block["rescue"]
    assert restore["ansible.builtin.copy"]["src"] == "{{ clbw_config.backup_file }}" and \
        restore["ansible.builtin.copy"]["follow"] is True
    assert remove["ansible.builtin.file"]["state"] == "absent" and "backup_file is not defined" in remove["when"]
    assert reload_previous["when"] == "clbw_config_test is defined and clbw_config_test is succeeded"
    assert "ansible.builtin.fail" in stop
    checks = [task["name"] for task in plays[2]["tasks"]]
    assert checks[0].startswith("Confluence answers /status RUNNING") and "heartbeat" in checks[1]
    assert len(checks) == (3 if kind == "haproxy" else 2)
    if kind == "haproxy":
        assert plays[2]["tasks"][2]["until"].startswith("not (clbw_check_stats.status == 200")
    inventory = files["inventory.yml"]
    assert "clbw_configtest: !unsafe 'test-it {{ lookup(''pipe'', ''id'') }}'" in inventory, inventory
