"""Tests of wizard.answers: reading, checking, writing and merging answers files."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from wizard.answers import (
    answers_to_yaml,
    find_problems,
    load_answers,
    load_answers_file,
    merge,
    missing_keys,
    validate,
)
from wizard.answers_model import (
    Access,
    AlbOptions,
    Answers,
    ApacheOptions,
    BaseUrl,
    Node,
    PublicUrl,
    Synchrony,
    Tls,
)
from wizard.errors import EXIT_BAD_INPUT, AnswersError, Problem

# The documented example (docs/reference.md), split into its apache and alb variants. The
# contract's AWS ids (i-0abc123, vpc-0abc, sg-0nodes) are placeholders that a
# real account never hands out, so real-shaped ids stand in for them.
APACHE_YAML = """\
version: 1
name: wiki-prod
public_url: https://wiki.example.com
synchrony:
  mode: direct
  port: 8091
restart: rolling
nodes:
  - name: node1
    address: 10.0.1.11
    install_dir: /opt/atlassian/confluence
    confluence_port: 8090
    synchrony_port: 8091
    restart_command: sudo systemctl restart confluence
    access:
      transport: ssh
      host: node1.internal
      user: confluence
      port: 22
      key_file: ~/.ssh/id_ed25519
      known_hosts: ~/.ssh/known_hosts
      proxy_jump: bastion.example.com
      sudo: false
  - name: node2
    address: 10.0.1.12
base_url:
  method: guided
balancer:
  kind: apache
  apache:
    access: {transport: ssh, host: lb1.internal, user: root}
    config_path: /etc/apache2/sites-available/confluence-lb.conf
    server_name: wiki.example.com
    listen_port: 443
    tls: {certificate_file: /etc/ssl/wiki.crt, key_file: /etc/ssl/wiki.key}
    manager_allow: [127.0.0.1]
    configtest_command: apache2ctl -t
    reload_command: apache2ctl graceful
"""

ALB_YAML = """\
version: 1
name: wiki-prod
public_url: https://wiki.example.com/confluence
nodes:
  - name: node1
    address: 10.0.1.11
    instance_id: i-0123456789abcdef0
  - name: node2
    address: 10.0.1.12
    instance_id: i-0fedcba9
balancer:
  kind: alb
  alb:
    name: confluence
    region: eu-west-1
    profile: prod
    vpc_id: vpc-0123456789abcdef0
    subnet_ids: [subnet-0a1b2c3d, subnet-0e1f2a3b]
    scheme: internet-facing
    certificate_arn: arn:aws:acm:eu-west-1:123456789012:certificate/abc
    node_security_group_id: sg-0123456789abcdef0
    idle_timeout: 300
"""


def apache_raw() -> dict[str, Any]:
    return yaml.safe_load(APACHE_YAML)


def alb_raw() -> dict[str, Any]:
    return yaml.safe_load(ALB_YAML)


def problem_for(raw: Any, key: str) -> Problem:
    """The one problem reported for ``key``; fails listing all problems otherwise."""
    problems = find_problems(raw)
    matching = [p for p in problems if p.key == key]
    assert len(matching) == 1, f"expected one problem for {key}, got: {[str(p) for p in problems]}"
    return matching[0]


def keys_of(raw: Any) -> list[str]:
    return [p.key for p in find_problems(raw)]


def write(tmp_path: Path, text: str, name: str = "answers.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --------------------------------------------------------------------------
# The full examples
# --------------------------------------------------------------------------


def test_full_apache_example_loads_into_dataclasses(tmp_path: Path) -> None:
    answers = load_answers(write(tmp_path, APACHE_YAML))

    assert isinstance(answers, Answers)
    assert answers.version == 1
    assert answers.name == "wiki-prod"
    assert answers.public_url == PublicUrl(url="https://wiki.example.com", scheme="https",
                                           host="wiki.example.com", port=443, context_path="")
    assert answers.synchrony == Synchrony(mode="direct", port=8091)
    assert answers.restart == "rolling"
    assert answers.base_url == BaseUrl(method="guided")

    node1, node2 = answers.nodes
    assert node1 == Node(
        name="node1", address="10.0.1.11", instance_id=None, install_dir="/opt/atlassian/confluence",
        confluence_port=8090, synchrony_port=8091, restart_command="sudo systemctl restart confluence",
        access=Access(transport="ssh", host="node1.internal", user="confluence", port=22,
                      key_file="~/.ssh/id_ed25519", known_hosts="~/.ssh/known_hosts",
                      proxy_jump="bastion.example.com", sudo=False))
    # node2 gives only name and address: every default of the model applies.
    assert node2 == Node(name="node2", address="10.0.1.12")
    assert node2.access == Access()
    assert node2.install_dir == "/opt/atlassian/confluence"
    assert node2.confluence_port is None

    assert answers.balancer.kind == "apache"
    assert answers.balancer.alb is None
    assert answers.balancer.apache == ApacheOptions(
        access=Access(transport="ssh", host="lb1.internal", user="root"),
        config_path="/etc/apache2/sites-available/confluence-lb.conf",
        server_name="wiki.example.com", listen_port=443,
        tls=Tls(certificate_file="/etc/ssl/wiki.crt", key_file="/etc/ssl/wiki.key"),
        manager_allow=["127.0.0.1"], configtest_command="apache2ctl -t",
        reload_command="apache2ctl graceful")


def test_full_alb_example_loads_with_defaults() -> None:
    answers = validate(alb_raw())

    # Absent sections take the model's defaults.
    assert answers.synchrony == Synchrony()
    assert answers.restart == "rolling"
    assert answers.base_url == BaseUrl()
    assert answers.public_url.context_path == "/confluence"
    assert answers.public_url.join("/status") == "https://wiki.example.com/confluence/status"
    assert [n.instance_id for n in answers.nodes] == ["i-0123456789abcdef0", "i-0fedcba9"]
    assert answers.balancer.kind == "alb"
    assert answers.balancer.apache is None
    assert answers.balancer.alb == AlbOptions(
        name="confluence", region="eu-west-1", profile="prod", vpc_id="vpc-0123456789abcdef0",
        subnet_ids=["subnet-0a1b2c3d", "subnet-0e1f2a3b"], scheme="internet-facing",
        certificate_arn="arn:aws:acm:eu-west-1:123456789012:certificate/abc",
        node_security_group_id="sg-0123456789abcdef0", idle_timeout=300)


def test_alb_optional_keys_take_defaults() -> None:
    raw = alb_raw()
    for key in ("name", "profile", "scheme", "node_security_group_id", "idle_timeout"):
        del raw["balancer"]["alb"][key]
    alb = validate(raw).balancer.alb
    assert alb is not None
    assert alb.name is None  # the setup's name is used, and "wiki-prod" fits AWS's rules
    assert alb.scheme == "internet-facing"
    assert alb.idle_timeout == 300
    assert alb.profile is None


def test_json_answers_file_is_read(tmp_path: Path) -> None:
    import json

    path = write(tmp_path, json.dumps(alb_raw()), "answers.json")
    assert load_answers(path) == validate(alb_raw())


def test_blank_optional_values_count_as_absent() -> None:
    raw = apache_raw()
    raw["nodes"][1].update({"confluence_port": None, "access": None, "install_dir": None})
    raw["synchrony"] = None
    answers = validate(raw)
    assert answers.nodes[1] == Node(name="node2", address="10.0.1.12")
    assert answers.synchrony == Synchrony()


def test_context_path_trailing_slash_and_port() -> None:
    raw = apache_raw()
    raw["public_url"] = "https://Wiki.Example.com:8443/wiki/"
    url = validate(raw).public_url
    assert (url.host, url.port, url.context_path) == ("wiki.example.com", 8443, "/wiki")
    assert url.url == "https://Wiki.Example.com:8443/wiki/"  # kept as written


# --------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------


def test_missing_file_is_an_answers_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(AnswersError) as info:
        load_answers_file(path)
    assert info.value.exit_code == EXIT_BAD_INPUT
    assert "does not exist" in info.value.problems[0].message
    assert str(path) in str(info.value)


def test_directory_is_an_answers_error(tmp_path: Path) -> None:
    with pytest.raises(AnswersError) as info:
        load_answers_file(tmp_path)
    assert "directory" in info.value.problems[0].message


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "name: wiki\npublic_url: [https://x\nrestart: rolling\n")
    with pytest.raises(AnswersError) as info:
        load_answers_file(path)
    message = info.value.problems[0].message
    assert "not valid YAML" in message
    assert "line 3" in message
    assert "column" in message


def test_tab_indentation_gets_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "name: wiki\n\tpublic_url: https://x\n")
    with pytest.raises(AnswersError) as info:
        load_answers_file(path)
    assert "line 2" in info.value.problems[0].message
    assert "spaces, not tabs" in info.value.problems[0].message


def test_duplicate_key_is_reported_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "name: one\npublic_url: https://x\nname: two\n")
    with pytest.raises(AnswersError) as info:
        load_answers_file(path)
    message = info.value.problems[0].message
    assert "'name' a second time" in message
    assert "line 3" in message and "first at line 1" in message


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        common: &common {user: confluence, port: 22}
        other: {<<: *common, port: 2222}
        """)
    assert load_answers_file(path)["other"] == {"user": "confluence", "port": 2222}


@pytest.mark.parametrize("text", ["- name: a\n- name: b\n", "just text\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    with pytest.raises(AnswersError) as info:
        load_answers_file(write(tmp_path, text))
    assert "must hold a mapping of answers" in info.value.problems[0].message


def test_empty_file_is_an_empty_partial_file(tmp_path: Path) -> None:
    assert load_answers_file(write(tmp_path, "# nothing yet\n")) == {}


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(AnswersError) as info:
        load_answers_file(path)
    assert "UTF-8" in info.value.problems[0].message


def test_load_answers_names_the_file_in_validation_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "name: wiki\n")
    with pytest.raises(AnswersError) as info:
        load_answers(path)
    assert f"in {path}" in str(info.value)


def test_validate_rejects_non_mapping_without_traceback() -> None:
    with pytest.raises(AnswersError) as info:
        validate(["not", "a", "mapping"])  # type: ignore[arg-type]
    assert info.value.problems[0].key == "(document)"
    assert "mapping" in info.value.problems[0].message


# --------------------------------------------------------------------------
# Missing keys, several problems at once
# --------------------------------------------------------------------------


def test_empty_document_lists_every_required_key_as_missing() -> None:
    problems = find_problems({})
    assert all(p.missing for p in problems)
    assert [p.key for p in problems] == ["name", "public_url", "nodes", "balancer"]
    assert all(p.message.startswith("is required: ") for p in problems)
    assert missing_keys({}) == ["name", "public_url", "nodes", "balancer"]


def test_missing_keys_inside_sections() -> None:
    raw = {
        "name": "wiki",
        "public_url": "http://wiki.example.com",
        "nodes": [{"name": "node1"}, {"address": "10.0.0.2"}],
        "balancer": {"kind": "alb", "alb": {"subnet_ids": []}},
    }
    assert missing_keys(raw) == [
        "nodes[0].address", "nodes[1].name",
        "balancer.alb.region", "balancer.alb.vpc_id", "balancer.alb.subnet_ids",
    ]
    problem = problem_for(raw, "balancer.alb.subnet_ids")
    assert problem.missing and "two availability zones" in problem.message


def test_missing_kind_block_is_missing() -> None:
    raw = apache_raw()
    del raw["balancer"]["apache"]
    problem = problem_for(raw, "balancer.apache")
    assert problem.missing
    raw = alb_raw()
    del raw["balancer"]["alb"]
    assert problem_for(raw, "balancer.alb").missing


def test_blank_required_text_counts_as_missing() -> None:
    raw = apache_raw()
    raw["name"] = "   "
    assert problem_for(raw, "name").missing


def test_several_problems_are_all_reported_in_one_error() -> None:
    raw = apache_raw()
    raw["restart"] = "sometimes"
    raw["nodes"][0]["access"]["port"] = 70000
    raw["nodes"][1]["install_dir"] = "opt/confluence"
    raw["balancer"]["apache"]["listen_port"] = "443"
    del raw["public_url"]
    raw["public_ulr"] = "https://wiki.example.com"

    with pytest.raises(AnswersError) as info:
        validate(raw, source="answers.yaml")
    keys = {p.key for p in info.value.problems}
    assert keys == {"restart", "nodes[0].access.port", "nodes[1].install_dir",
                    "balancer.apache.listen_port", "public_url", "public_ulr"}
    text = str(info.value)
    assert "5 invalid answer(s) in answers.yaml" in text
    assert "1 missing answer(s) in answers.yaml" in text
    assert "public_url: is required" in text


# --------------------------------------------------------------------------
# Unknown keys and secrets
# --------------------------------------------------------------------------


def test_unknown_key_suggests_close_match() -> None:
    raw = apache_raw()
    raw["public_ulr"] = raw.pop("public_url")
    problem = problem_for(raw, "public_ulr")
    assert "did you mean 'public_url'?" in problem.message
    assert problem_for(raw, "public_url").missing


def test_unknown_nested_keys_are_named_by_path() -> None:
    raw = apache_raw()
    raw["nodes"][1]["adress"] = "x"
    raw["balancer"]["apache"]["acess"] = {}
    raw["synchrony"]["prot"] = 1
    assert "did you mean 'address'?" in problem_for(raw, "nodes[1].adress").message
    assert "did you mean 'access'?" in problem_for(raw, "balancer.apache.acess").message
    assert "did you mean 'port'?" in problem_for(raw, "synchrony.prot").message


def test_unknown_key_that_belongs_one_level_down() -> None:
    raw = apache_raw()
    raw["nodes"][1]["user"] = "confluence"
    assert "under 'access'" in problem_for(raw, "nodes[1].user").message


def test_unknown_key_without_close_match_lists_known_keys() -> None:
    raw = alb_raw()
    raw["balancer"]["alb"]["colour"] = "blue"
    message = problem_for(raw, "balancer.alb.colour").message
    assert "is not a known answer" in message and "region" in message and "subnet_ids" in message


@pytest.mark.parametrize("path, key", [
    ((), "password"),
    (("nodes", 0, "access"), "passphrase"),
    (("nodes", 0, "access"), "key_passphrase"),
    (("balancer", "apache", "access"), "sudo_password"),
    (("balancer", "apache"), "api_token"),
])
def test_secret_keys_are_rejected_anywhere(path: tuple[Any, ...], key: str) -> None:
    raw = apache_raw()
    target: Any = raw
    for step in path:
        target = target[step]
    target[key] = "hunter2"
    dotted = ".".join(str(s) for s in path).replace(".0", "[0]")
    full = f"{dotted}.{key}" if dotted else key
    problem = problem_for(raw, full)
    assert "secrets are never read from the answers file" in problem.message
    assert "passphrase" in problem.message
    assert "hunter2" not in str(AnswersError(find_problems(raw)))


def test_aws_secret_points_to_credential_chain() -> None:
    raw = alb_raw()
    raw["balancer"]["alb"]["aws_secret_access_key"] = "wJalrXUtnFEMI/K7MDENG"
    problem = problem_for(raw, "balancer.alb.aws_secret_access_key")
    assert "credential chain" in problem.message
    assert "wJalr" not in problem.message


def test_secret_inside_an_unknown_section_is_still_found() -> None:
    raw = alb_raw()
    raw["extras"] = [{"aws_session_token": "abc"}]
    keys = keys_of(raw)
    assert "extras" in keys
    assert "extras[0].aws_session_token" in keys


def test_inline_private_key_is_rejected() -> None:
    raw = apache_raw()
    raw["nodes"][0]["access"]["key_file"] = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n"
    problems = [p for p in find_problems(raw) if p.key == "nodes[0].access.key_file"]
    assert any("private key" in p.message for p in problems)


# --------------------------------------------------------------------------
# Top-level rules
# --------------------------------------------------------------------------


@pytest.mark.parametrize("version, fragment", [(2, "version 1 answers files"), ("1", "must be the number 1"),
                                               (True, "must be the number 1")])
def test_version_must_be_1(version: Any, fragment: str) -> None:
    raw = apache_raw()
    raw["version"] = version
    assert fragment in problem_for(raw, "version").message


def test_version_is_optional() -> None:
    raw = apache_raw()
    del raw["version"]
    assert validate(raw).version == 1


@pytest.mark.parametrize("name", ["wiki prod", "-wiki", "", "x" * 65, "wiki/prod", "wiki:prod"])
def test_bad_setup_names(name: str) -> None:
    raw = apache_raw()
    raw["name"] = name
    problem = problem_for(raw, "name")
    if name:
        assert "letters, digits" in problem.message
    else:
        assert problem.missing


@pytest.mark.parametrize("name", ["w", "wiki.prod_2", "Wiki-Prod", "9" + "x" * 63])
def test_good_setup_names(name: str) -> None:
    raw = apache_raw()
    raw["name"] = name
    assert validate(raw).name == name


def test_setup_name_must_be_text() -> None:
    raw = apache_raw()
    raw["name"] = 2024
    message = problem_for(raw, "name").message
    assert "must be a name" in message and "quotes" in message


@pytest.mark.parametrize("url, fragment", [
    ("wiki.example.com", "must start with https:// or http://"),
    ("ftp://wiki.example.com", "must start with https:// or http://"),
    ("https://", "must name a host"),
    ("https://wiki.example.com/?a=1", "must not have a ?query"),
    ("https://wiki.example.com/#top", "must not have a #fragment"),
    ("https://admin:pw@wiki.example.com", "user name or password"),
    ("https://wiki.example.com:0", "from 1 to 65535"),
    ("https://wiki.example.com:99999", "from 1 to 65535"),
    ("https://wiki.example.com:https", "from 1 to 65535"),
    ("https://wiki example.com", "without spaces"),
    ("https://wiki_.-x/", "valid host"),
    ("https://wiki.example.com/a b", "without spaces"),
    ("https://wiki.example.com/../x", "context path"),
    ("https://wiki.example.com/wiki%20x", "context path"),
    (443, "must be a URL"),
])
def test_bad_public_urls(url: Any, fragment: str) -> None:
    raw = apache_raw()
    raw["public_url"] = url
    assert fragment in problem_for(raw, "public_url").message


@pytest.mark.parametrize("url, port, context", [
    ("http://wiki.example.com", 80, ""),
    ("http://10.0.0.5:8080/confluence", 8080, "/confluence"),
    ("http://[fd00::5]:8080/", 8080, ""),
    ("HTTP://wiki.example.com/a/b", 80, "/a/b"),
])
def test_good_public_urls(url: str, port: int, context: str) -> None:
    raw = apache_raw()
    raw["public_url"] = url
    del raw["balancer"]["apache"]["tls"]  # plain HTTP: no certificate
    parsed = validate(raw).public_url
    assert (parsed.port, parsed.context_path, parsed.scheme) == (port, context, "http")


def test_synchrony_rules() -> None:
    raw = apache_raw()
    raw["synchrony"] = {"mode": "proxy", "port": 0}
    assert "'direct' or 'internal-proxy'" in problem_for(raw, "synchrony.mode").message
    assert "from 1 to 65535" in problem_for(raw, "synchrony.port").message
    raw["synchrony"] = {"mode": "internal-proxy"}
    assert validate(raw).synchrony == Synchrony(mode="internal-proxy", port=8091)


def test_section_of_wrong_type() -> None:
    raw = apache_raw()
    raw["synchrony"] = "direct"
    raw["base_url"] = ["guided"]
    assert "must be a mapping" in problem_for(raw, "synchrony").message
    assert "must be a mapping" in problem_for(raw, "base_url").message


def test_restart_and_base_url_choices() -> None:
    raw = apache_raw()
    raw["restart"] = "Rolling"
    raw["base_url"] = {"method": "mysql"}
    assert "did you mean 'rolling'?" in problem_for(raw, "restart").message
    assert "'guided' or 'postgres'" in problem_for(raw, "base_url.method").message
    raw["restart"] = "manual"
    raw["base_url"] = {"method": "postgres"}
    answers = validate(raw)
    assert (answers.restart, answers.base_url.method) == ("manual", "postgres")


# --------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("nodes, missing", [(None, True), ([], True), ("node1", False), ({"name": "a"}, False)])
def test_nodes_must_be_a_non_empty_list(nodes: Any, missing: bool) -> None:
    raw = apache_raw()
    raw["nodes"] = nodes
    problem = problem_for(raw, "nodes")
    assert problem.missing is missing
    assert ("is required" if missing else "must be a list") in problem.message


def test_node_entry_must_be_a_mapping() -> None:
    raw = apache_raw()
    raw["nodes"].append("node3")
    assert "must be a mapping describing one node" in problem_for(raw, "nodes[2]").message


def test_node_names_unique_ignoring_case() -> None:
    raw = apache_raw()
    raw["nodes"][1]["name"] = "NODE1"
    message = problem_for(raw, "nodes[1].name").message
    assert "already the name" in message and "nodes[0]" in message


@pytest.mark.parametrize("name", ["node 1", "node/1", "nöde"])
def test_bad_node_names(name: str) -> None:
    raw = apache_raw()
    raw["nodes"][1]["name"] = name
    assert "letters, digits" in problem_for(raw, "nodes[1].name").message


@pytest.mark.parametrize("name", ["balancer", "Workstation"])
def test_reserved_node_names(name: str) -> None:
    raw = apache_raw()
    raw["nodes"][1]["name"] = name
    assert "choose another name" in problem_for(raw, "nodes[1].name").message


def test_node_addresses_unique() -> None:
    raw = apache_raw()
    raw["nodes"][1]["address"] = "10.0.1.11"
    assert "already the address of nodes[0]" in problem_for(raw, "nodes[1].address").message


@pytest.mark.parametrize("address, fragment", [
    ("http://10.0.1.12", "without a scheme such as http://: write '10.0.1.12'"),
    ("https://node2.internal:8090/", "write 'node2.internal'"),
    ("10.0.1.12:8090", "without a port: write '10.0.1.12'"),
    ("node2.internal:8090", "without a port: write 'node2.internal'"),
    ("[fd00::2]:8090", "without brackets"),
    ("node2/x", "without a path"),
    ("node 2", "without spaces"),
    ("root@node2", "access.user"),
    ("-node2", "like node1.internal"),
    (1012, "must be a host name or IP address"),
])
def test_bad_node_addresses(address: Any, fragment: str) -> None:
    raw = apache_raw()
    raw["nodes"][1]["address"] = address
    assert fragment in problem_for(raw, "nodes[1].address").message


@pytest.mark.parametrize("address", ["node2", "node2.internal.example.com", "fd00::2", "ip-10-0-1-12.ec2.internal"])
def test_good_node_addresses(address: str) -> None:
    raw = apache_raw()
    raw["nodes"][1]["address"] = address
    assert validate(raw).nodes[1].address == address


@pytest.mark.parametrize("instance_id", ["i-0abc123", "i-XYZ12345", "0123456789abcdef0", "i-" + "a" * 18])
def test_bad_instance_ids(instance_id: str) -> None:
    raw = alb_raw()
    raw["nodes"][0]["instance_id"] = instance_id
    assert "EC2 instance id" in problem_for(raw, "nodes[0].instance_id").message


def test_instance_ids_unique() -> None:
    raw = alb_raw()
    raw["nodes"][1]["instance_id"] = raw["nodes"][0]["instance_id"]
    assert "already the instance_id" in problem_for(raw, "nodes[1].instance_id").message


def test_instance_id_with_apache_is_only_format_checked() -> None:
    raw = apache_raw()
    raw["nodes"][0]["instance_id"] = "i-0123456789abcdef0"
    assert validate(raw).nodes[0].instance_id == "i-0123456789abcdef0"
    raw["nodes"][0]["instance_id"] = "i-bad"
    assert keys_of(raw) == ["nodes[0].instance_id"]


def test_node_install_dir_and_command() -> None:
    raw = apache_raw()
    raw["nodes"][0]["install_dir"] = "confluence"
    raw["nodes"][0]["restart_command"] = "   "
    raw["nodes"][1]["install_dir"] = "/opt/confluence/"
    assert "absolute path" in problem_for(raw, "nodes[0].install_dir").message
    assert "must not be empty" in problem_for(raw, "nodes[0].restart_command").message
    del raw["nodes"][0]["install_dir"], raw["nodes"][0]["restart_command"]
    assert validate(raw).nodes[1].install_dir == "/opt/confluence"


@pytest.mark.parametrize("field", ["confluence_port", "synchrony_port"])
@pytest.mark.parametrize("value, fragment", [
    ("8090", "without quotes"), (True, "true/false"), (8090.5, "the number 8090.5"), (0, "not 0"),
    (65536, "not 65536"), ([8090], "a list"),
])
def test_node_ports(field: str, value: Any, fragment: str) -> None:
    raw = apache_raw()
    raw["nodes"][1][field] = value
    message = problem_for(raw, f"nodes[1].{field}").message
    assert "from 1 to 65535" in message and fragment in message


# --------------------------------------------------------------------------
# Access
# --------------------------------------------------------------------------


def test_access_rules() -> None:
    raw = apache_raw()
    raw["nodes"][0]["access"] = {
        "transport": "telnet", "host": "ssh://node1", "user": "con fluence", "port": "22",
        "key_file": ".ssh/id_ed25519", "known_hosts": "known_hosts", "proxy_jump": "",
        "sudo": "yes please",
    }
    prefix = "nodes[0].access."
    assert "'ssh' or 'local'" in problem_for(raw, prefix + "transport").message
    assert "without a scheme" in problem_for(raw, prefix + "host").message
    assert "without spaces" in problem_for(raw, prefix + "user").message
    assert "without quotes" in problem_for(raw, prefix + "port").message
    assert "start with ~" in problem_for(raw, prefix + "key_file").message
    assert "start with ~" in problem_for(raw, prefix + "known_hosts").message
    assert "must not be empty" in problem_for(raw, prefix + "proxy_jump").message
    assert "true or false" in problem_for(raw, prefix + "sudo").message


def test_access_host_with_user_is_pointed_at_user() -> None:
    raw = apache_raw()
    raw["nodes"][0]["access"]["host"] = "confluence@node1"
    assert "put the user name in 'user'" in problem_for(raw, "nodes[0].access.host").message


def test_access_keeps_paths_as_written_and_local_transport() -> None:
    raw = apache_raw()
    raw["nodes"][0]["access"]["key_file"] = "/home/admin/.ssh/id_rsa"
    raw["nodes"][1]["access"] = {"transport": "local", "sudo": True}
    answers = validate(raw)
    assert answers.nodes[0].access.key_file == "/home/admin/.ssh/id_rsa"
    assert answers.nodes[0].access.known_hosts == "~/.ssh/known_hosts"
    assert answers.nodes[1].access == Access(transport="local", sudo=True)


def test_access_must_be_a_mapping() -> None:
    raw = apache_raw()
    raw["nodes"][1]["access"] = "ssh"
    assert "must be a mapping" in problem_for(raw, "nodes[1].access").message


# --------------------------------------------------------------------------
# Balancer: kind, Apache
# --------------------------------------------------------------------------


def test_balancer_required_and_kind_required() -> None:
    raw = apache_raw()
    del raw["balancer"]
    assert problem_for(raw, "balancer").missing
    raw["balancer"] = {"apache": apache_raw()["balancer"]["apache"]}
    assert problem_for(raw, "balancer.kind").missing


def test_balancer_kind_choice() -> None:
    raw = apache_raw()
    raw["balancer"]["kind"] = "traefik"
    assert "'apache' or 'alb' or 'nginx' or 'haproxy'" in problem_for(raw, "balancer.kind").message


def test_nginx_and_haproxy_need_their_own_block_and_refuse_apaches() -> None:
    raw = apache_raw()
    raw["balancer"]["kind"] = "nginx"
    assert set(keys_of(raw)) == {"balancer.apache", "balancer.nginx"}
    raw["balancer"]["nginx"] = raw["balancer"].pop("apache")
    raw["balancer"]["nginx"].pop("manager_allow", None)
    raw["balancer"]["nginx"]["config_path"] = "/etc/nginx/conf.d/wiki.conf"
    assert keys_of(raw) == []


def test_haproxy_tls_is_one_pem_or_the_key_beside_it() -> None:
    raw = apache_raw()
    raw["public_url"] = "https://wiki.example.com"
    raw["balancer"] = {"kind": "haproxy", "haproxy": {"access": {"host": "lb1"}, "tls": {
        "certificate_file": "/etc/ssl/wiki.crt", "key_file": "/etc/ssl/wiki.key"}}}
    assert "wiki.crt.key" in problem_for(raw, "balancer.haproxy.tls.key_file").message
    for key in ("/etc/ssl/wiki.crt", "/etc/ssl/wiki.crt.key"):
        raw["balancer"]["haproxy"]["tls"]["key_file"] = key
        assert keys_of(raw) == []


def test_haproxy_stats_allow_never_everyone_even_in_halves() -> None:
    raw = apache_raw()
    raw["balancer"] = {"kind": "haproxy", "haproxy": {"access": {"host": "lb1"},
                                                      "stats_allow": ["0.0.0.0/1", "128.0.0.0/1"]}}
    assert "every IPv4 address" in problem_for(raw, "balancer.haproxy.stats_allow").message


def test_balancer_kind_missing_still_checks_the_blocks() -> None:
    raw = apache_raw()
    del raw["balancer"]["kind"]
    raw["balancer"]["apache"]["listen_port"] = -1
    assert set(keys_of(raw)) == {"balancer.kind", "balancer.apache.listen_port"}


def test_block_of_the_other_kind_is_a_problem() -> None:
    raw = apache_raw()
    raw["balancer"]["alb"] = alb_raw()["balancer"]["alb"]
    message = problem_for(raw, "balancer.alb").message
    assert "remove it or change kind" in message
    raw = alb_raw()
    raw["balancer"]["apache"] = apache_raw()["balancer"]["apache"]
    assert "remove it or change kind" in problem_for(raw, "balancer.apache").message


def test_apache_access_required_with_host_for_ssh() -> None:
    raw = apache_raw()
    del raw["balancer"]["apache"]["access"]
    assert problem_for(raw, "balancer.apache.access").missing
    raw["balancer"]["apache"]["access"] = {"transport": "ssh", "user": "root"}
    problem = problem_for(raw, "balancer.apache.access.host")
    assert problem.missing and "no node address to default to" in problem.message
    raw["balancer"]["apache"]["access"] = {"transport": "local"}
    assert validate(raw).balancer.apache.access == Access(transport="local")  # type: ignore[union-attr]


@pytest.mark.parametrize("key, value, fragment", [
    ("config_path", "sites-available/confluence.conf", "absolute path"),
    ("config_path", "/etc/apache2/sites-available/confluence", "ending in .conf"),
    ("server_name", "https://wiki.example.com", "without a scheme: write 'wiki.example.com'"),
    ("server_name", "wiki example", "like wiki.example.com"),
    ("listen_port", 0, "from 1 to 65535"),
    ("configtest_command", "", "must not be empty"),
    ("reload_command", ["apache2ctl", "graceful"], "must be a command line"),
    ("tls", "/etc/ssl/wiki.crt", "must be a mapping"),
    ("manager_allow", "127.0.0.1", "must be a list of IP addresses"),
])
def test_apache_rules(key: str, value: Any, fragment: str) -> None:
    raw = apache_raw()
    raw["balancer"]["apache"][key] = value
    assert fragment in problem_for(raw, f"balancer.apache.{key}").message


def test_apache_tls_paths() -> None:
    raw = apache_raw()
    raw["balancer"]["apache"]["tls"] = {"certificate_file": "wiki.crt"}
    assert "absolute path" in problem_for(raw, "balancer.apache.tls.certificate_file").message
    assert problem_for(raw, "balancer.apache.tls.key_file").missing


@pytest.mark.parametrize("entry, fragment", [
    ("all", "must be restricted"),
    ("0.0.0.0/0", "must be restricted"),
    ("::/0", "must be restricted"),
    ("10.1", "CIDR network"),
    ("localhost", "CIDR network"),
    (127, "in text"),
])
def test_manager_allow_entries(entry: Any, fragment: str) -> None:
    raw = apache_raw()
    raw["balancer"]["apache"]["manager_allow"] = ["127.0.0.1", entry]
    assert fragment in problem_for(raw, "balancer.apache.manager_allow[1]").message


def test_manager_allow_accepts_ips_and_networks() -> None:
    raw = apache_raw()
    raw["balancer"]["apache"]["manager_allow"] = ["127.0.0.1", "10.0.0.0/24", "10.0.0.7/24", "::1", "fd00::/8"]
    assert validate(raw).balancer.apache.manager_allow == [  # type: ignore[union-attr]
        "127.0.0.1", "10.0.0.0/24", "10.0.0.7/24", "::1", "fd00::/8"]


def test_apache_optional_keys_take_defaults() -> None:
    raw = apache_raw()
    raw["balancer"]["apache"] = {"access": {"host": "lb1"}, "tls": raw["balancer"]["apache"]["tls"]}
    apache = validate(raw).balancer.apache
    assert apache == ApacheOptions(access=Access(host="lb1"), tls=apache.tls)  # type: ignore[union-attr]
    assert apache.manager_allow == []  # type: ignore[union-attr]


def test_https_with_apache_needs_tls() -> None:
    raw = apache_raw()
    del raw["balancer"]["apache"]["tls"]
    problem = problem_for(raw, "balancer.apache.tls")
    assert problem.missing
    assert "certificate_file and key_file" in problem.message
    assert "http:// public_url" in problem.message


def test_http_with_apache_tls_is_inconsistent() -> None:
    raw = apache_raw()
    raw["public_url"] = "http://wiki.example.com"
    assert "https:// public_url" in problem_for(raw, "balancer.apache.tls").message


# --------------------------------------------------------------------------
# Balancer: ALB
# --------------------------------------------------------------------------


@pytest.mark.parametrize("key, value, fragment", [
    ("region", "Ireland", "AWS region name"),
    ("region", "eu-west", "AWS region name"),
    ("vpc_id", "vpc-0abc", "8 or 17 hex digits"),
    ("vpc_id", "0123456789abcdef0", "VPC id"),
    ("subnet_ids", "subnet-0a1b2c3d", "must be a list of subnet ids"),
    ("subnet_ids", ["subnet-0a1b2c3d"], "at least two availability zones"),
    ("subnet_ids", ["subnet-0a1b2c3d", "subnet-0a1b2c3d"], "more than once"),
    ("scheme", "public", "'internet-facing' or 'internal'"),
    ("certificate_arn", "arn:aws:iam::123456789012:server-certificate/x", "ACM certificate ARN"),
    ("certificate_arn", "arn:aws:acm:eu-west-1:1234:certificate/x", "ACM certificate ARN"),
    ("certificate_arn", "arn:aws:acm:us-east-1:123456789012:certificate/x", "in region us-east-1"),
    ("node_security_group_id", "sg-0nodes", "security group id"),
    ("idle_timeout", 0, "from 1 to 4000"),
    ("idle_timeout", 4001, "from 1 to 4000"),
    ("idle_timeout", "300", "without quotes"),
    ("profile", "my profile", "without spaces"),
    ("name", "confluence_lb", "1 to 32 letters, digits and hyphens"),
    ("name", "-confluence", "not starting or ending with a hyphen"),
    ("name", "x" * 33, "1 to 32"),
    ("name", "internal-wiki", "reserves names starting with 'internal-'"),
])
def test_alb_rules(key: str, value: Any, fragment: str) -> None:
    raw = alb_raw()
    raw["balancer"]["alb"][key] = value
    assert fragment in problem_for(raw, f"balancer.alb.{key}").message


def test_subnet_entries_are_checked_one_by_one() -> None:
    raw = alb_raw()
    raw["balancer"]["alb"]["subnet_ids"] = ["subnet-0a1b2c3d", "subnet-xyz", 42]
    assert set(keys_of(raw)) == {"balancer.alb.subnet_ids[1]", "balancer.alb.subnet_ids[2]"}


def test_certificate_region_must_match_alb_region() -> None:
    raw = alb_raw()
    raw["balancer"]["alb"]["certificate_arn"] = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    message = problem_for(raw, "balancer.alb.certificate_arn").message
    assert "us-east-1" in message and "eu-west-1" in message and "its own region" in message


def test_govcloud_and_china_partitions() -> None:
    raw = alb_raw()
    raw["balancer"]["alb"]["region"] = "us-gov-west-1"
    raw["balancer"]["alb"]["certificate_arn"] = "arn:aws-us-gov:acm:us-gov-west-1:123456789012:certificate/x"
    assert validate(raw).balancer.alb.region == "us-gov-west-1"  # type: ignore[union-attr]


def test_https_with_alb_needs_certificate() -> None:
    raw = alb_raw()
    del raw["balancer"]["alb"]["certificate_arn"]
    problem = problem_for(raw, "balancer.alb.certificate_arn")
    assert problem.missing and "ACM certificate" in problem.message and "http://" in problem.message
    raw["public_url"] = "http://wiki.example.com"
    assert validate(raw).balancer.alb.certificate_arn is None  # type: ignore[union-attr]


def test_http_with_alb_certificate_is_inconsistent() -> None:
    raw = alb_raw()
    raw["public_url"] = "http://wiki.example.com"
    assert "https:// public_url" in problem_for(raw, "balancer.alb.certificate_arn").message


def test_setup_name_that_cannot_name_an_alb() -> None:
    raw = alb_raw()
    del raw["balancer"]["alb"]["name"]
    raw["name"] = "wiki.prod"
    problem = problem_for(raw, "balancer.alb.name")
    assert "set balancer.alb.name" in problem.message
    assert "'wiki.prod'" in problem.message
    raw["name"] = "w" * 40
    assert "set balancer.alb.name" in problem_for(raw, "balancer.alb.name").message
    raw["balancer"]["alb"]["name"] = "wiki-prod"
    assert validate(raw).balancer.alb.name == "wiki-prod"  # type: ignore[union-attr]


def test_setup_name_is_not_checked_as_alb_name_for_apache() -> None:
    raw = apache_raw()
    raw["name"] = "wiki.prod_" + "x" * 40
    assert validate(raw).name == raw["name"]


# --------------------------------------------------------------------------
# Ports: a property
# --------------------------------------------------------------------------


@settings(max_examples=200)
@given(port=st.one_of(st.integers(min_value=-10, max_value=70000), st.integers()))
def test_any_port_is_valid_iff_in_range(port: int) -> None:
    raw = apache_raw()
    raw["synchrony"]["port"] = port
    raw["nodes"][0]["access"]["port"] = port
    raw["balancer"]["apache"]["listen_port"] = port
    keys = keys_of(raw)
    if 1 <= port <= 65535:
        assert keys == []
        answers = validate(raw)
        assert answers.synchrony.port == port
        assert answers.nodes[0].access.port == port
    else:
        assert sorted(keys) == ["balancer.apache.listen_port", "nodes[0].access.port", "synchrony.port"]


@given(value=st.one_of(st.text(), st.floats(), st.booleans(), st.lists(st.integers(), max_size=2)))
def test_non_integer_ports_are_problems_never_exceptions(value: Any) -> None:
    raw = apache_raw()
    raw["nodes"][0]["confluence_port"] = value
    problems = find_problems(raw)
    assert [p.key for p in problems] == ["nodes[0].confluence_port"]
    assert "port number from 1 to 65535" in problems[0].message


@settings(max_examples=100)
@given(doc=st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10))
def test_arbitrary_documents_never_raise_anything_but_answers_error(doc: Any) -> None:
    raw = apache_raw()
    raw["balancer"]["apache"]["tls"] = doc
    raw["nodes"][0] = doc if isinstance(doc, dict) else raw["nodes"][0]
    try:
        validate(raw)
    except AnswersError as exc:
        assert exc.problems


# --------------------------------------------------------------------------
# Writing, merging
# --------------------------------------------------------------------------


@pytest.mark.parametrize("make_raw", [apache_raw, alb_raw])
def test_round_trip_through_yaml(make_raw: Any) -> None:
    answers = validate(make_raw())
    text = answers_to_yaml(answers)
    assert validate(yaml.safe_load(text)) == answers


def test_round_trip_of_minimal_answers_is_tidy() -> None:
    raw = {"name": "wiki", "public_url": "http://wiki.example.com",
           "nodes": [{"name": "n1", "address": "n1.internal"}],
           "balancer": {"kind": "apache", "apache": {"access": {"host": "lb"}}}}
    answers = validate(raw)
    text = answers_to_yaml(answers)
    assert "null" not in text
    assert "manager_allow" not in text  # empty list: same as absent
    assert "instance_id" not in text
    loaded = yaml.safe_load(text)
    assert list(loaded)[:3] == ["version", "name", "public_url"]
    assert list(loaded["nodes"][0])[:2] == ["name", "address"]
    assert validate(loaded) == answers


def test_round_trip_keeps_strings_that_look_like_other_types() -> None:
    raw = apache_raw()
    raw["name"] = "1.10"
    raw["nodes"][1]["name"] = "yes"
    raw["nodes"][1]["address"] = "fd00::12"
    answers = validate(raw)
    assert validate(yaml.safe_load(answers_to_yaml(answers))) == answers


def test_yaml_output_has_no_secret_and_is_safe_yaml() -> None:
    text = answers_to_yaml(validate(apache_raw()))
    assert "!!python" not in text
    assert not find_problems(yaml.safe_load(text))


def test_merge_deep_and_lists_replaced() -> None:
    defaults = {"name": "wiki", "balancer": {"kind": "alb", "alb": {"region": "eu-west-1",
                                                                    "subnet_ids": ["subnet-a", "subnet-b"]}},
                "nodes": [{"name": "n1"}]}
    overrides = {"balancer": {"alb": {"vpc_id": "vpc-01234567", "subnet_ids": ["subnet-c", "subnet-d"]}},
                 "nodes": [{"name": "n2", "address": "x"}], "name": None}
    original = copy.deepcopy(defaults)
    merged = merge(defaults, overrides)
    assert merged == {
        "name": "wiki",  # None means "not answered"
        "balancer": {"kind": "alb", "alb": {"region": "eu-west-1", "vpc_id": "vpc-01234567",
                                            "subnet_ids": ["subnet-c", "subnet-d"]}},
        "nodes": [{"name": "n2", "address": "x"}],
    }
    assert defaults == original
    merged["balancer"]["alb"]["subnet_ids"].append("subnet-e")
    assert overrides["balancer"]["alb"]["subnet_ids"] == ["subnet-c", "subnet-d"]


def test_partial_file_completed_by_merge_validates() -> None:
    partial = alb_raw()
    del partial["balancer"]["alb"]["vpc_id"]
    del partial["nodes"]
    assert missing_keys(partial) == ["nodes", "balancer.alb.vpc_id"]
    answered = {"nodes": alb_raw()["nodes"], "balancer": {"alb": {"vpc_id": "vpc-0123456789abcdef0"}}}
    assert validate(merge(partial, answered)) == validate(alb_raw())


def test_merge_mapping_replaces_scalar_and_vice_versa() -> None:
    assert merge({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}
    assert merge({"a": {"b": 2}}, {"a": 3}) == {"a": 3}


def test_nodes_may_share_an_address_with_distinct_confluence_ports() -> None:
    raw = apache_raw()
    raw["nodes"][0]["confluence_port"] = 8090
    raw["nodes"][1]["address"] = raw["nodes"][0]["address"]
    raw["nodes"][1]["confluence_port"] = 8190
    assert "nodes[1].address" not in keys_of(raw)
    raw["nodes"][1]["confluence_port"] = 8090
    assert "its own confluence_port" in problem_for(raw, "nodes[1].address").message


def test_restart_timeout_defaults_and_is_bounded() -> None:
    assert validate(apache_raw()).restart_timeout == 900
    raw = apache_raw()
    raw["restart_timeout"] = 5
    assert "from 10 to 7200" in problem_for(raw, "restart_timeout").message
    raw["restart_timeout"] = 120
    assert validate(raw).restart_timeout == 120


def test_apache_http_port_is_an_optional_port() -> None:
    raw = apache_raw()
    assert validate(raw).balancer.apache.http_port is None
    raw["balancer"]["apache"]["http_port"] = 8080
    assert validate(raw).balancer.apache.http_port == 8080
    raw["balancer"]["apache"]["http_port"] = 0
    assert "port number" in problem_for(raw, "balancer.apache.http_port").message
