"""The inventory: the setup's name and public URL, and its nodes (add, edit, remove), checked as you type.

The answers are built here as the same dictionary an answers file holds; the
checks are ``wizard.answers.find_problems``, each problem shown next to its
field. What was read from each node is shown in the nodes table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, DataTable, Label, Static

from screens.answers.form import FormView
from screens.answers.node_form import NodeFormScreen
from screens.messages import NodeRead
from screens.page import DraftPage
from wizard.answers.draft import Draft, under
from wizard.answers.forms import SETUP_FIELDS
from wizard.confluence.node_reading import one_line, read_node

if TYPE_CHECKING:
    from wizard.transport.prompts import Prompts


class NodeTable(DataTable[Text]):
    """The nodes; enter edits the highlighted one, delete removes it, r reads it again."""

    BINDINGS = [Binding("enter", "edit", "Edit node"), Binding("delete,x", "remove", "Remove node"),
                Binding("r", "read", "Read node")]

    def action_edit(self) -> None:
        self.screen.edit_node(self.cursor_row)  # type: ignore[attr-defined]

    def action_remove(self) -> None:
        self.screen.remove_node(self.cursor_row)  # type: ignore[attr-defined]

    def action_read(self) -> None:
        self.screen.read_again(self.cursor_row)  # type: ignore[attr-defined]


NEW_INTRO = ("Describe the cluster. Everything is checked as you type and saved as you go; nothing is changed "
             "on any machine until a step's plan is shown and you confirm it.")
# The setup keeps the answers its steps were done with until the new ones are complete and saved;
# the changes meanwhile are kept beside them (``edit_draft_path``), so quitting loses none.
EDIT_INTRO = ("Change what you need; everything is checked as you type and your changes are kept as you go. "
              "The setup keeps its current answers until you save the new ones with ctrl+s on the balancer's "
              "page. Nothing is changed on any machine until a step's plan is shown and you confirm it.")


class InventoryScreen(DraftPage):
    """The first page of a setup's answers; ctrl+n goes on to the balancer."""

    BINDINGS = [Binding("ctrl+o", "add_node", "Add node"), Binding("ctrl+n", "next", "Next"),
                Binding("escape", "back", "Back")]

    def __init__(self, draft: Draft) -> None:
        super().__init__(draft)
        #: node name -> (read ok, or None while reading; what was read)
        self.readings: dict[str, tuple[bool | None, str]] = {}
        #: node name -> the serial of its newest read; results of older reads are dropped.
        self.latest_read: dict[str, int] = {}
        self.read_serial = 0
        self.reveal = False
        # Editing: the name is fixed, so the first answer to change is the public URL.
        self.AUTO_FOCUS = "#setup--public-url" if draft.editing else "#setup--name"  # type: ignore[misc]

    def compose_page(self) -> ComposeResult:
        with VerticalScroll(id="inventory"):
            yield Static(EDIT_INTRO if self.draft.editing else NEW_INTRO, classes="intro", markup=False)
            yield FormView(SETUP_FIELDS, values=self.draft.raw, id="setup")
            yield Label("Nodes", classes="section")
            yield NodeTable(id="nodes", cursor_type="row", zebra_stripes=True)
            yield Static("", id="nodes-problems", classes="problem", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Add node (ctrl+o)", id="add-node")
                yield Button("Next: the balancer (ctrl+n)", variant="primary", id="next")
                yield Button("Back (esc)", id="back")

    def on_mount(self) -> None:
        table = self.query_one(NodeTable)
        table.add_columns("Name", "Address", "Reached by", "Read from the node")
        if self.draft.editing:
            self.query_one("#setup--name").disabled = True  # the name names the state file
        self.query_one("#setup", FormView).show_group("postgres", self.postgres())
        self.fill_table()
        self.check()
        for index in range(len(self.draft.nodes)):
            self.read_again(index, quietly=True)

    # The nodes table.

    def fill_table(self) -> None:
        table = next(self.query(NodeTable).results(NodeTable), None)
        if table is None:  # a reading that arrived as the screen closed
            return
        table.clear()
        for index, node in enumerate(self.draft.nodes):
            access = node.get("access") or {}
            user = access.get("user")
            reached = "local" if access.get("transport") == "local" else (
                f"ssh {f'{user}@' if user else ''}"
                f"{access.get('host') or node.get('address', '')}")
            ok, summary = self.readings.get(str(node.get("name")), (None, "not read yet"))
            shown = one_line(summary) if ok else ("✘ " + summary.splitlines()[0] if ok is False else summary)
            # Text cells: what was typed or read is shown as it is, never read as markup.
            cells = (str(node.get("name", "")), str(node.get("address", "")), reached, shown[:60])
            table.add_row(*[Text(cell) for cell in cells], key=str(index))

    def check(self) -> None:
        problems = self.draft.problems()
        setup_problems = [p for p in problems if not p.key.startswith(("balancer", "nodes"))]
        self.query_one("#setup", FormView).show_problems(setup_problems, reveal_missing=self.reveal)
        node_problems = under(problems, "nodes")
        lines = []
        for problem in node_problems:
            if problem.key == "nodes" and not (self.reveal or self.draft.nodes):
                continue  # "add a node" is said once the admin tries to go on
            lines.append(f"⚠ {problem}")
        self.query_one("#nodes-problems", Static).update("\n".join(lines))

    def postgres(self) -> bool:
        return (self.draft.raw.get("base_url") or {}).get("method") == "postgres"

    @on(FormView.Changed, "#setup")
    def setup_changed(self, event: FormView.Changed) -> None:
        if event.key == "base_url.method":
            # The database's answers belong to the database route only (guided refuses them).
            method = event.form.raw_value(event.form.spec("base_url.method"))
            event.form.show_group("postgres", method == "postgres")
        self.draft.raw = event.form.merge_into(self.draft.raw)
        self.check()
        self.draft_changed()

    # Adding, editing, removing nodes.

    @on(Button.Pressed, "#add-node")
    def action_add_node(self) -> None:
        self.edit_node(len(self.draft.nodes))

    def edit_node(self, index: int) -> None:
        nodes = self.draft.nodes
        node = nodes[index] if 0 <= index < len(nodes) else None
        known = self.readings.get(str(node.get("name"))) if node else None
        read = (known[0], known[1]) if known and known[0] is not None else None

        def done(result: tuple[dict[str, Any], tuple[bool, str] | None] | None) -> None:
            if result is None:
                return
            answers, reading = result
            if index < len(nodes):
                nodes[index] = answers
            else:
                nodes.append(answers)
            if reading is not None:
                self.readings[str(answers.get("name"))] = reading
            self.fill_table()
            self.query_one(NodeTable).move_cursor(row=index)
            self.check()
            self.draft_changed()
            if reading is None:
                self.read_again(index)

        self.app.push_screen(NodeFormScreen(self.draft, index if node else len(nodes), node, read), done)

    def remove_node(self, index: int) -> None:
        nodes = self.draft.nodes
        if not 0 <= index < len(nodes):
            return
        removed = nodes.pop(index)
        self.readings.pop(str(removed.get("name")), None)
        self.latest_read.pop(str(removed.get("name")), None)
        self.fill_table()
        self.check()
        self.draft_changed()
        self.notify(f"Removed {removed.get('name') or 'the node'} from the inventory.")

    def read_again(self, index: int, *, quietly: bool = False) -> None:
        nodes = self.draft.nodes
        if 0 <= index < len(nodes) and not under(self.draft.problems(), f"nodes[{index}]"):
            name = str(nodes[index].get("name"))
            self.readings[name] = (None, "reading…")
            # Only the newest read of a node is shown: an older one that ends later is dropped.
            self.read_serial += 1
            self.latest_read[name] = self.read_serial
            self.fill_table()
            self.read_in_worker(dict(nodes[index]), self.draft.raw.get("synchrony"), self.read_serial,
                                self.wizard.prompts)
        elif not quietly:
            self.notify("Complete the node's answers before reading it.", severity="warning")

    @work(thread=True, group="read-node", exit_on_error=False)
    def read_in_worker(self, node: dict[str, Any], synchrony: dict[str, Any] | None, serial: int,
                       prompts: Prompts) -> None:
        ok, summary = read_node(node, synchrony, prompts)
        self.post_message(NodeRead(str(node.get("name")), summary, ok, serial))

    @on(NodeRead)
    def node_read(self, message: NodeRead) -> None:
        if message.serial and message.serial != self.latest_read.get(message.name):
            return  # a newer read of this node is under way (or the node was removed)
        self.readings[message.name] = (message.ok, message.summary)
        self.fill_table()

    # Moving on.

    @on(Button.Pressed, "#next")
    def action_next(self) -> None:
        problems = [p for p in self.draft.problems() if not p.key.startswith("balancer")]
        if problems:
            self.reveal = True
            self.check()
            self.notify(f"{len(problems)} answer(s) to fix or give first; they are marked.", severity="warning")
            return
        self.save_draft()
        from screens.answers.balancer_choice import BalancerChoiceScreen

        self.app.push_screen(BalancerChoiceScreen(self.draft))

    @on(Button.Pressed, "#back")
    def action_back(self) -> None:
        self.save_draft()
        self.dismiss(None)
