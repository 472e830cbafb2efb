"""The inventory as line prompts: the same fields as the Textual forms, asked one by one with questionary.

Every answer is checked as it is typed (``wizard.answers.find_problems`` on the
answers so far) and the draft is saved after each one, as in the full-screen
face. The ALB's VPC, subnets, instances, certificate and security group are
picked from lists read from AWS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

import yaml

from wizard.answers.draft import Draft, get_key, set_key, under
from wizard.balancers.alb.choices import AwsLists, read_lists
from wizard.answers.forms import (
    ALB_FIELDS,
    EXPLANATIONS,
    SERVED_FIELDS,
    GROUP_SWITCHES,
    NO_CERTIFICATE,
    NODE_FIELDS,
    SETUP_FIELDS,
    FieldSpec,
    to_answer,
    to_widget_text,
)
from wizard.confluence.node_reading import read_node
from wizard.engine.redact import redact
from wizard.errors import BadInputError, WizardError

#: How often one answer may be asked again before the prompts give up (a loop guard).
MAX_TRIES = 3


class Asker:
    """questionary's prompts, on the given input and output (a pipe in tests), never swallowing Ctrl-C."""

    def __init__(self, input: Any = None, output: Any = None, out: TextIO | None = None) -> None:
        self.kwargs = {"input": input, "output": output} if input is not None else {}
        self.out = out

    def say(self, text: str = "") -> None:
        """Print a line for the admin, secrets masked (plans, undo commands and errors quote
        commands and servers' answers; what runs is never this text)."""
        print(redact(text), file=self.out, flush=True)

    def text(self, message: str, default: str = "", validate: Callable[[str], Any] | None = None) -> str:
        import questionary

        return str(questionary.text(message, default=default, validate=validate, **self.kwargs).unsafe_ask())

    def password(self, message: str) -> str:
        import questionary

        return str(questionary.password(message, **self.kwargs).unsafe_ask())

    def confirm(self, message: str, default: bool = False) -> bool:
        import questionary

        return bool(questionary.confirm(message, default=default, **self.kwargs).unsafe_ask())

    def select(self, message: str, choices: list[tuple[str, Any]], default: Any = None) -> Any:
        import questionary

        options = [questionary.Choice(title, value=value) for title, value in choices]
        chosen = next((o for o in options if o.value == default), None)
        return questionary.select(message, choices=options, default=chosen, **self.kwargs).unsafe_ask()

    def checkbox(self, message: str, choices: list[tuple[str, Any, bool]]) -> list[Any]:
        import questionary

        options = [questionary.Choice(title, value=value, checked=checked) for title, value, checked in choices]
        return list(questionary.checkbox(message, choices=options, **self.kwargs).unsafe_ask())


def _key(prefix: str, spec: FieldSpec) -> str:
    return f"{prefix}.{spec.key}" if prefix else spec.key


def problem_for(draft: Draft, key: str) -> str | None:
    """The first problem of exactly this answer (missing or wrong), in the admin's words."""
    for problem in under(draft.problems(), key):
        return problem.message
    return None


def ask_field(asker: Asker, draft: Draft, prefix: str, spec: FieldSpec) -> None:
    """One answer, checked as typed; the draft keeps it and is saved."""
    key = _key(prefix, spec)
    current = get_key(draft.raw, key)
    if spec.kind == "bool":
        set_key(draft.raw, key, to_answer(spec, asker.confirm(spec.label + "?", default=bool(current))))
    elif spec.kind == "choice":
        set_key(draft.raw, key, asker.select(spec.label, list(spec.choices), default=current))
    else:
        def validate(text: str) -> Any:
            trial = draft.with_value(key, to_answer(spec, text))
            return problem_for(trial, key) or True

        hint = f" ({spec.placeholder})" if spec.placeholder else ""
        typed = asker.text(f"{spec.label}{hint}:", default=to_widget_text(spec, current), validate=validate)
        set_key(draft.raw, key, to_answer(spec, typed))
    draft.save()


def shown(draft: Draft, prefix: str, spec: FieldSpec) -> bool:
    """Whether a field is asked at all: SSH answers only for SSH, the database only for its route."""
    if spec.group not in GROUP_SWITCHES:
        return True
    key, values = GROUP_SWITCHES[spec.group]
    switch = key if spec.group == "postgres" else _key(prefix, FieldSpec(key, ""))
    return get_key(draft.raw, switch) in values


def ask_fields(asker: Asker, draft: Draft, prefix: str, specs: list[FieldSpec]) -> None:
    for spec in specs:
        if shown(draft, prefix, spec):
            ask_field(asker, draft, prefix, spec)


def ask_node(asker: Asker, draft: Draft, index: int) -> None:
    nodes = draft.nodes
    if index == len(nodes):
        nodes.append({"access": {"transport": "ssh"}})
    asker.say(f"\nNode {index + 1}")
    ask_fields(asker, draft, f"nodes[{index}]", NODE_FIELDS)
    if not under(draft.problems(), f"nodes[{index}]") and asker.confirm(
            "Read what is on this node now (server.xml, setenv.sh; nothing is changed)?", default=True):
        ok, summary = read_node(dict(nodes[index]), draft.raw.get("synchrony"))
        asker.say(("" if ok else "✘ ") + summary.replace("\n", "\n  "))


def ask_nodes(asker: Asker, draft: Draft) -> None:
    while True:
        ask_node(asker, draft, len(draft.nodes))
        if not asker.confirm("Add another node?", default=len(draft.nodes) < 2):
            return


def ask_balancer(asker: Asker, draft: Draft) -> None:
    for title, explanation in EXPLANATIONS.values():
        asker.say(f"\n{title}: {explanation}")
    current = get_key(draft.raw, "balancer.kind")
    kind = asker.select("Which load balancer?", [(title, kind) for kind, (title, _) in EXPLANATIONS.items()],
                        default=current)
    set_key(draft.raw, "balancer.kind", kind)
    draft.save()
    if kind in SERVED_FIELDS:
        if get_key(draft.raw, f"balancer.{kind}.access") is None:
            set_key(draft.raw, f"balancer.{kind}.access", {"transport": "ssh"})
        ask_fields(asker, draft, f"balancer.{kind}", SERVED_FIELDS[kind])
    else:
        ask_fields(asker, draft, "balancer.alb", ALB_FIELDS)
        ask_alb_lists(asker, draft)


def ask_alb_lists(asker: Asker, draft: Draft) -> None:
    """The VPC, subnets, instances, certificate and security group, picked from what AWS holds."""
    region, profile = get_key(draft.raw, "balancer.alb.region"), get_key(draft.raw, "balancer.alb.profile")
    while True:
        asker.say(f"Reading VPCs, subnets, instances, certificates and security groups in {region}…")
        try:
            lists = read_lists(region, profile)
            break
        except WizardError as error:
            asker.say(f"✘ {error.message}" + (f"\n  -> {error.hint}" if error.hint else ""))
            if not asker.confirm("Try again?", default=True):
                raise BadInputError("The ALB's VPC, subnets and instances are picked from AWS, which could "
                                    "not be read.", error.hint) from error
    pick_from_lists(asker, draft, lists)


def pick_from_lists(asker: Asker, draft: Draft, lists: AwsLists) -> None:
    alb = "balancer.alb"
    vpc = asker.select("VPC of the nodes", [(item.label, item.id) for item in lists.vpcs],
                       default=get_key(draft.raw, f"{alb}.vpc_id"))
    set_key(draft.raw, f"{alb}.vpc_id", vpc)
    chosen = set(get_key(draft.raw, f"{alb}.subnet_ids") or [])
    subnets = asker.checkbox("Subnets (two or more, in different zones)",
                             [(item.label, item.id, item.id in chosen) for item in lists.in_vpc(lists.subnets, vpc)])
    set_key(draft.raw, f"{alb}.subnet_ids", subnets or None)
    instances = lists.in_vpc(lists.instances, vpc)
    for index, node in enumerate(draft.nodes):
        matched = node.get("instance_id") or next(
            (item.id for item in instances if item.address and item.address == node.get("address")), "")
        picked = asker.select(f"Instance of {node.get('name')}",
                              [(item.label, item.id) for item in instances]
                              + [(f"none: register it by its address {node.get('address')}", "")], default=matched)
        set_key(draft.raw, f"nodes[{index}].instance_id", picked or None)
    certificate = asker.select("Certificate for HTTPS", [(item.label, item.id) for item in lists.certificates]
                               + [("none: plain HTTP", NO_CERTIFICATE)],
                               default=get_key(draft.raw, f"{alb}.certificate_arn"))
    set_key(draft.raw, f"{alb}.certificate_arn", None if certificate == NO_CERTIFICATE else certificate)
    group = asker.select("The nodes' security group",
                         [(item.label, item.id) for item in lists.in_vpc(lists.security_groups, vpc)],
                         default=get_key(draft.raw, f"{alb}.node_security_group_id"))
    set_key(draft.raw, f"{alb}.node_security_group_id", group)
    draft.save()


def ask_new(asker: Asker, draft: Draft) -> None:
    """A whole new setup, in the order of the Textual forms."""
    asker.say("Describe the cluster. Each answer is checked as you type; nothing changes on any machine yet.")
    ask_fields(asker, draft, "", SETUP_FIELDS)
    if draft.nodes:
        asker.say(f"{len(draft.nodes)} node(s) already given.")
    else:
        ask_nodes(asker, draft)
    ask_balancer(asker, draft)
    complete(asker, draft)


# Which fields answer the problems of which part of the answers.
_SECTIONS: list[tuple[str, list[FieldSpec]]] = [
    *((f"balancer.{kind}", fields) for kind, fields in SERVED_FIELDS.items()), ("balancer.alb", ALB_FIELDS),
    ("", SETUP_FIELDS)]
_ALB_LISTED = ("vpc_id", "subnet_ids", "certificate_arn", "node_security_group_id")


def complete(asker: Asker, draft: Draft) -> None:
    """Ask for whatever is still missing or wrong, one problem at a time, until the answers are whole."""
    tries: dict[str, int] = {}
    while problems := draft.problems():
        problem = problems[0]
        tries[problem.key] = tries.get(problem.key, 0) + 1
        if tries[problem.key] > MAX_TRIES:
            raise BadInputError(f"{problem.key}: {problem.message}",
                                "Correct it in an answers file and open that file instead.")
        asker.say(f"\n! {problem}")
        _answer(asker, draft, problem.key)


def _answer(asker: Asker, draft: Draft, key: str) -> None:
    if key == "nodes":
        ask_nodes(asker, draft)
        return
    if key in ("balancer", "balancer.kind"):
        ask_balancer(asker, draft)
        return
    if key.startswith("nodes["):
        index = int(key[len("nodes["):key.index("]")])
        specs = _specs_for(NODE_FIELDS, key[key.index("]") + 2:] if "]." in key else "")
        if not specs or index >= len(draft.nodes):
            ask_node(asker, draft, min(index, len(draft.nodes)))
        else:
            for spec in specs:
                ask_field(asker, draft, f"nodes[{index}]", spec)
        return
    if key.startswith("balancer.alb.") and key.split(".")[2].split("[")[0] in _ALB_LISTED:
        ask_alb_lists(asker, draft)
        return
    for prefix, fields in _SECTIONS:
        if prefix and not key.startswith(prefix):
            continue
        specs = _specs_for(fields, key[len(prefix) + 1:] if prefix else key)
        if specs:
            for spec in specs:
                ask_field(asker, draft, prefix, spec)
            return
    # A key no form shows (rare): asked as YAML, so numbers and lists keep their type.
    default = yaml.safe_dump(get_key(draft.raw, key)).strip() if get_key(draft.raw, key) is not None else ""
    while True:
        typed = asker.text(f"{key} (YAML):", default=default)
        try:
            value = yaml.safe_load(typed) if typed.strip() else None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "not valid YAML"
            asker.say(f"  {key}: {problem}. Type a plain value (8090, a word, [a, b]) or quote it.")
            default = typed
            continue
        break
    set_key(draft.raw, key, value)
    draft.save()


def _specs_for(specs: list[FieldSpec], relative: str) -> list[FieldSpec]:
    """The fields that answer a problem at ``relative`` (itself, what it is part of, or its parts)."""
    if not relative:
        return []
    exact = [s for s in specs if relative == s.key or relative.startswith((s.key + ".", s.key + "["))]
    return exact or [s for s in specs if s.key.startswith(relative + ".")]
