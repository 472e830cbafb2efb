"""One node of the inventory: its answers, checked as you type, and what was read from it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Label, Static

from screens.answers.form import FormView
from screens.dialogs.dialog import Dialog
from screens.messages import NodeRead
from wizard.answers.draft import Draft, under
from wizard.answers.forms import NODE_FIELDS
from wizard.confluence.node_reading import read_node

if TYPE_CHECKING:
    from screens.app import WizardApp
    from wizard.transport.prompts import Prompts


class NodeFormScreen(Dialog["tuple[dict[str, Any], tuple[bool, str] | None] | None"]):
    """ctrl+s keeps the node, ctrl+r reads its files now, escape leaves the inventory as it was."""

    AUTO_FOCUS = "#node--name"

    BINDINGS = [Binding("ctrl+s", "save", "Keep node"), Binding("ctrl+r", "read", "Read from node"),
                Binding("escape", "cancel", "Cancel")]

    def __init__(self, draft: Draft, index: int, node: dict[str, Any] | None = None,
                 read: tuple[bool, str] | None = None) -> None:
        super().__init__()
        self.draft = draft
        self.index = index
        self.node = node or {"access": {"transport": "ssh"}}
        self.read = read

    @property
    def prefix(self) -> str:
        return f"nodes[{self.index}]"

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="form-dialog"):
            yield Label(f"Node {self.node.get('name') or self.index + 1}", id="dialog-title", markup=False)
            with VerticalScroll(id="node-fields"):
                yield FormView(NODE_FIELDS, prefix=self.prefix, values=self.node, id="node")
                yield Label("What was read from the node")
                yield Static(self.read[1] if self.read else "Not read yet: ctrl+r reads server.xml and setenv.sh "
                             "(nothing is changed).", id="node-read", markup=False)
            with Horizontal(id="dialog-buttons"):
                yield Button("Keep (ctrl+s)", variant="primary", id="save")
                yield Button("Read (ctrl+r)", id="read")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        form = self.query_one(FormView)
        form.show_group("ssh", self.node.get("access", {}).get("transport", "ssh") != "local")
        self.check()

    def node_answers(self) -> dict[str, Any]:
        return self.query_one(FormView).merge_into(self.node)

    def check(self, *, reveal: bool = False) -> list[Any]:
        """Show this node's problems under its fields; the problems, for saving."""
        trial = self.draft.with_value(self.prefix, self.node_answers())
        problems = under(trial.problems(), self.prefix)
        rest = self.query_one(FormView).show_problems(problems, reveal_missing=reveal)
        # A problem of the node as a whole (a duplicate name) has no field of its own.
        self.query_one("#dialog-title", Label).update(
            f"Node {self.node_answers().get('name') or self.index + 1}"
            + (f"  ⚠ {rest[0].message}" if rest else ""))
        return problems

    @on(FormView.Changed)
    def changed(self, event: FormView.Changed) -> None:
        if event.key == "access.transport":
            transport = self.query_one(FormView).raw_value(self.query_one(FormView).spec("access.transport"))
            event.form.show_group("ssh", transport != "local")
        self.check()

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        if self.check(reveal=True):
            self.notify("Fix the marked answers first.", severity="warning")
            return
        self.answer((self.node_answers(), self.read))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.answer(None)

    @on(Button.Pressed, "#read")
    def action_read(self) -> None:
        if self.check(reveal=True):
            self.notify("Fix the marked answers first.", severity="warning")
            return
        self.query_one("#node-read", Static).update("Reading…")
        self.read_in_worker(self.node_answers(), self.draft.raw.get("synchrony"),
                            cast("WizardApp", self.app).prompts)

    @work(thread=True, exclusive=True, group="read-node", exit_on_error=False)
    def read_in_worker(self, node: dict[str, Any], synchrony: dict[str, Any] | None,
                       prompts: Prompts) -> None:
        ok, summary = read_node(node, synchrony, prompts)
        self.post_message(NodeRead(str(node.get("name")), summary, ok))

    @on(NodeRead)
    def node_read(self, message: NodeRead) -> None:
        self.read = (message.ok, message.summary)
        self.query_one("#node-read", Static).update(("" if message.ok else "✘ ") + message.summary)
