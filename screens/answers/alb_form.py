"""The ALB form: the VPC, subnets, instances, certificate and security group, picked from lists read from AWS.

The lists are read in a thread worker (``wizard.balancers.alb.choices`` over ``wizard.transport.aws``);
until they arrive, what the answers already hold is shown as the choice, so an
answers file or the lab opens with its values in place.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Label, Select, SelectionList, Static

from screens.answers.form import FormView
from screens.dialogs.error import as_admin_error
from screens.messages import AwsListsFailed, AwsListsRead
from screens.page import DraftPage
from wizard.answers.draft import balancer_section, set_key, under
from wizard.answers.forms import ALB_FIELDS, NO_CERTIFICATE
from wizard.balancers.alb.choices import AwsLists, Item, read_lists

PREFIX = "balancer.alb"

# Which problem line shows the problems of which key.
_PROBLEM_LINES = {"vpc_id": "#vpc-problem", "subnet_ids": "#subnets-problem",
                  "certificate_arn": "#certificate-problem", "node_security_group_id": "#sg-problem"}


class AlbFormScreen(DraftPage):
    """ctrl+r reads the lists from AWS; ctrl+s saves the answers and opens the steps."""

    AUTO_FOCUS = "#alb--name"

    BINDINGS = [Binding("ctrl+r", "read_aws", "Read lists from AWS"),
                Binding("ctrl+s", "finish", "Save and go to the steps"), Binding("escape", "back", "Back")]

    def __init__(self, draft: Any) -> None:
        super().__init__(draft)
        self.lists: AwsLists | None = None
        self.reveal = False
        # Filling the lists sets widget values; those are not the admin's choices.
        self._filling = False

    @property
    def section(self) -> dict[str, Any]:
        return balancer_section(self.draft, "alb")

    def compose_page(self) -> ComposeResult:
        section = self.section
        section.setdefault("scheme", "internet-facing")  # the default, shown rather than blank
        with VerticalScroll(id="alb-form"):
            yield Static("The load balancer is built in the VPC of the nodes. Pick from what AWS holds; "
                         "nothing is created until the balancer step's plan is shown and you confirm it.",
                         classes="intro", markup=False)
            yield FormView(ALB_FIELDS, prefix=PREFIX, values=section, id="alb")
            with Horizontal(classes="buttons"):
                yield Button("Read lists from AWS (ctrl+r)", id="read-aws")
            yield Static("", id="aws-status", markup=False)
            yield Label("VPC", classes="section")
            yield Select(self.known(section.get("vpc_id")), id="vpc", prompt="Read the lists from AWS (ctrl+r)", compact=True)
            yield Static("", id="vpc-problem", classes="problem", markup=False)
            yield Label("Subnets: two or more, in different availability zones", classes="section")
            yield SelectionList[str](*[(Text(s), s, True) for s in section.get("subnet_ids") or []], id="subnets")
            yield Static("", id="subnets-problem", classes="problem", markup=False)
            yield Label("The nodes' instances (without one, a node is registered by its address)",
                        classes="section")
            for index, node in enumerate(self.draft.nodes):
                with Horizontal(classes="instance-row"):
                    yield Label(str(node.get("name", index + 1)), classes="instance-node", markup=False)
                    yield Select(self.known(node.get("instance_id")), id=f"instance-{index}",
                                 prompt=f"by address {node.get('address', '')}", compact=True)
            yield Static("", id="instances-problem", classes="problem", markup=False)
            yield Label("Certificate for HTTPS (ACM, issued)", classes="section")
            yield Select(self.known(section.get("certificate_arn")) + [(Text("none: plain HTTP"), NO_CERTIFICATE)],
                         id="certificate", prompt="Read the lists from AWS (ctrl+r)", compact=True)
            yield Static("", id="certificate-problem", classes="problem", markup=False)
            yield Label("The nodes' security group (opened to the balancer on the node ports)", classes="section")
            yield Select(self.known(section.get("node_security_group_id")), id="node-sg",
                         prompt="Read the lists from AWS (ctrl+r)", compact=True)
            yield Static("", id="sg-problem", classes="problem", markup=False)
            yield Static("", id="alb-problems", classes="problem", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Save and go to the steps (ctrl+s)", variant="primary", id="finish")
                yield Button("Back (esc)", id="back")

    @staticmethod
    def known(value: str | None) -> list[tuple[Text, str]]:
        return [(Text(f"{value}  (from the answers)"), value)] if value else []

    def on_mount(self) -> None:
        self._filling = True
        for select_id, key in (("#vpc", "vpc_id"), ("#certificate", "certificate_arn"),
                               ("#node-sg", "node_security_group_id")):
            if self.section.get(key):
                self.query_one(select_id, Select).value = self.section[key]
        for index, node in enumerate(self.draft.nodes):
            if node.get("instance_id"):
                self.query_one(f"#instance-{index}", Select).value = node["instance_id"]
        self.call_after_refresh(self._done_filling)
        self.check()
        if self.section.get("region"):
            self.action_read_aws()

    def _done_filling(self) -> None:
        self._filling = False

    # Reading AWS.

    @on(Button.Pressed, "#read-aws")
    def action_read_aws(self) -> None:
        region = self.section.get("region")
        if not region or under(self.draft.problems(), f"{PREFIX}.region"):
            self.query_one("#aws-status", Static).update("Give the region first.")
            return
        self.query_one("#aws-status", Static).update(f"Reading VPCs, subnets, instances, certificates and "
                                                    f"security groups in {region}…")
        self.read_in_worker(region, self.section.get("profile"))

    @work(thread=True, exclusive=True, group="aws-lists", exit_on_error=False)
    def read_in_worker(self, region: str, profile: str | None) -> None:
        try:
            lists = read_lists(region, profile)
        except Exception as exc:  # an AwsError says what to do; anything else still reaches the admin as words
            self.post_message(AwsListsFailed(as_admin_error(exc)))
            return
        self.post_message(AwsListsRead(lists))

    @on(AwsListsFailed)
    def lists_failed(self, message: AwsListsFailed) -> None:
        error = message.error
        self.query_one("#aws-status", Static).update(
            f"✘ {error.message}" + (f"\nNext: {error.hint}" if error.hint else ""))

    @on(AwsListsRead)
    def lists_read(self, message: AwsListsRead) -> None:
        self.lists = lists = message.lists
        self.query_one("#aws-status", Static).update(
            f"Read from {lists.region}: {len(lists.vpcs)} VPC(s), {len(lists.subnets)} subnet(s), "
            f"{len(lists.instances)} instance(s), {len(lists.certificates)} certificate(s).")
        self._filling = True
        vpc = self.query_one("#vpc", Select)
        # Labels as Text: a Name tag read from AWS is shown as written, never read as markup.
        vpc.set_options([(Text(item.label), item.id) for item in lists.vpcs])
        current = self.section.get("vpc_id")
        if current in {item.id for item in lists.vpcs}:
            vpc.value = current
        elif len(lists.vpcs) == 1:
            vpc.value = lists.vpcs[0].id
        self._set_options("#certificate", list(lists.certificates), self.section.get("certificate_arn"),
                          extra=[(Text("none: plain HTTP"), NO_CERTIFICATE)])
        self.fill_vpc_lists()
        self.call_after_refresh(self._done_filling)
        self.sync_from_widgets()

    def _set_options(self, selector: str, items: list[Item], current: str | None,
                     extra: list[tuple[Text, str]] | None = None) -> None:
        select = self.query_one(selector, Select)
        select.set_options([(Text(item.label), item.id) for item in items] + (extra or []))
        if current and current in {item.id for item in items}:
            select.value = current

    def fill_vpc_lists(self) -> None:
        """The subnets, instances and security groups of the chosen VPC."""
        if self.lists is None:
            return
        vpc_value = self.query_one("#vpc", Select).value
        vpc_id = vpc_value if isinstance(vpc_value, str) else None
        lists = self.lists
        chosen = set(self.section.get("subnet_ids") or [])
        subnets = self.query_one("#subnets", SelectionList)
        subnets.clear_options()
        subnets.add_options([(Text(item.label), item.id, item.id in chosen)
                             for item in lists.in_vpc(lists.subnets, vpc_id)])
        instances = lists.in_vpc(lists.instances, vpc_id)
        for index, node in enumerate(self.draft.nodes):
            current = node.get("instance_id") or next(
                (item.id for item in instances if item.address and item.address == node.get("address")), None)
            self._set_options(f"#instance-{index}", instances, current)
        self._set_options("#node-sg", lists.in_vpc(lists.security_groups, vpc_id),
                          self.section.get("node_security_group_id"))

    # Choices into the answers.

    def sync_from_widgets(self) -> None:
        section = self.section
        vpc = self.query_one("#vpc", Select).value
        section["vpc_id"] = vpc if isinstance(vpc, str) else section.get("vpc_id")
        subnets = list(self.query_one("#subnets", SelectionList).selected)
        if subnets or self.lists is not None:
            section["subnet_ids"] = subnets
        certificate = self.query_one("#certificate", Select).value
        if certificate == NO_CERTIFICATE:
            section.pop("certificate_arn", None)
        elif isinstance(certificate, str):
            section["certificate_arn"] = certificate
        group = self.query_one("#node-sg", Select).value
        if isinstance(group, str):
            section["node_security_group_id"] = group
        for index in range(len(self.draft.nodes)):
            instance = self.query_one(f"#instance-{index}", Select).value
            set_key(self.draft.raw, f"nodes[{index}].instance_id", instance if isinstance(instance, str) else None)
        for key in [k for k, v in section.items() if v in (None, [], "")]:
            section.pop(key)
        self.check()
        self.draft_changed()

    @on(Select.Changed, "#vpc")
    def vpc_changed(self) -> None:
        if not self._filling:
            self.fill_vpc_lists()
            self.sync_from_widgets()

    @on(Select.Changed, "#certificate, #node-sg, .instance-row Select")
    @on(SelectionList.SelectedChanged, "#subnets")
    def list_changed(self) -> None:
        if not self._filling:
            self.sync_from_widgets()

    @on(FormView.Changed)
    def fields_changed(self, event: FormView.Changed) -> None:
        self.draft.raw["balancer"]["alb"] = event.form.merge_into(self.section)
        self.check()
        self.draft_changed()

    # Problems.

    def check(self, *, reveal: bool = False) -> list:
        reveal = reveal or self.reveal
        problems = self.draft.problems()
        mine = under(problems, PREFIX)
        rest = self.query_one(FormView).show_problems(mine, reveal_missing=reveal)
        lines: dict[str, list[str]] = {selector: [] for selector in _PROBLEM_LINES.values()}
        lines["#instances-problem"] = []
        general = []
        for problem in rest + [p for p in problems if ".instance_id" in p.key]:
            key = problem.key.removeprefix(PREFIX + ".")
            field = key.split(".")[0].split("[")[0]
            if problem.missing and not reveal:
                continue
            if ".instance_id" in problem.key:
                lines["#instances-problem"].append(f"⚠ {problem}")
            elif field in _PROBLEM_LINES:
                lines[_PROBLEM_LINES[field]].append(f"⚠ {problem.message}")
            else:
                general.append(f"⚠ {problem}")
        for selector, messages in lines.items():
            self.query_one(selector, Static).update("\n".join(messages))
        self.query_one("#alb-problems", Static).update("\n".join(general))
        return mine

    @on(Button.Pressed, "#finish")
    def action_finish(self) -> None:
        self.sync_from_widgets()
        if self.draft.problems():
            self.reveal = True
            self.check(reveal=True)
            self.notify("Fix the marked answers first.", severity="warning")
            return
        self.wizard.finish_draft(self.draft)

    @on(Button.Pressed, "#back")
    def action_back(self) -> None:
        self.dismiss(None)
