"""The Apache form: where Apache runs, where the vhost goes, TLS, and who may open the balancer manager."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Static

from screens.answers.form import FormView
from screens.page import DraftPage
from wizard.answers.draft import balancer_section, under
from wizard.answers.forms import APACHE_FIELDS


class ApacheFormScreen(DraftPage):
    """ctrl+s saves the answers and opens the steps; escape goes back to the choice."""

    AUTO_FOCUS = "#apache--access-transport"

    BINDINGS = [Binding("ctrl+s", "finish", "Save and go to the steps"), Binding("escape", "back", "Back")]

    PREFIX = "balancer.apache"

    def compose_page(self) -> ComposeResult:
        section = balancer_section(self.draft, "apache")
        section.setdefault("access", {"transport": "ssh"})
        with VerticalScroll(id="apache-form"):
            yield Static("Apache httpd 2.4 with mod_proxy, mod_proxy_balancer, mod_headers and mod_rewrite. "
                         "Empty fields take the distribution's defaults, read from the Apache host.",
                         classes="intro", markup=False)
            yield FormView(APACHE_FIELDS, prefix=self.PREFIX, values=section, id="apache")
            yield Static("", id="apache-problems", classes="problem", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Save and go to the steps (ctrl+s)", variant="primary", id="finish")
                yield Button("Back (esc)", id="back")

    def on_mount(self) -> None:
        form = self.query_one(FormView)
        access = balancer_section(self.draft, "apache").get("access") or {}
        form.show_group("ssh", access.get("transport", "ssh") != "local")
        self.check()

    def check(self, *, reveal: bool = False) -> list:
        problems = under(self.draft.problems(), self.PREFIX)
        rest = self.query_one(FormView).show_problems(problems, reveal_missing=reveal)
        self.query_one("#apache-problems", Static).update("\n".join(f"⚠ {p}" for p in rest))
        return problems

    @on(FormView.Changed)
    def changed(self, event: FormView.Changed) -> None:
        form = event.form
        if event.key == "access.transport":
            form.show_group("ssh", form.raw_value(form.spec("access.transport")) != "local")
        self.draft.raw["balancer"]["apache"] = form.merge_into(balancer_section(self.draft, "apache"))
        self.check()
        self.draft_changed()

    @on(Button.Pressed, "#finish")
    def action_finish(self) -> None:
        if self.check(reveal=True) or self.draft.problems():
            self.notify("Fix the marked answers first.", severity="warning")
            return
        self.wizard.finish_draft(self.draft)

    @on(Button.Pressed, "#back")
    def action_back(self) -> None:
        self.dismiss(None)
