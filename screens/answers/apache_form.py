"""The forms of the balancers on a machine you run (Apache, nginx, HAProxy): where it runs, the file the
wizard writes, TLS, and the kind's own keys."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Static

from screens.answers.form import FormView
from screens.page import DraftPage
from wizard.answers.draft import balancer_section, under
from wizard.answers.forms import APACHE_FIELDS, HAPROXY_FIELDS, NGINX_FIELDS


class ApacheFormScreen(DraftPage):
    """ctrl+s saves the answers and opens the steps; escape goes back to the choice."""

    #: The balancer kind (the answers' section under ``balancer``), its fields and its introduction.
    KIND = "apache"
    FIELDS = APACHE_FIELDS
    INTRO = ("Apache httpd 2.4 with mod_proxy, mod_proxy_balancer, mod_headers and mod_rewrite. "
             "Empty fields take the distribution's defaults, read from the Apache host.")

    AUTO_FOCUS = "#apache--access-transport"

    BINDINGS = [Binding("ctrl+s", "finish", "Save and go to the steps"), Binding("escape", "back", "Back")]

    @property
    def prefix(self) -> str:
        """Where the kind's answers are: balancer.<kind>."""
        return f"balancer.{self.KIND}"

    def compose_page(self) -> ComposeResult:
        section = balancer_section(self.draft, self.KIND)
        section.setdefault("access", {"transport": "ssh"})
        with VerticalScroll(id=f"{self.KIND}-form"):
            yield Static(self.INTRO, classes="intro", markup=False)
            yield FormView(self.FIELDS, prefix=self.prefix, values=section, id=self.KIND)
            yield Static("", id=f"{self.KIND}-problems", classes="problem", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Save and go to the steps (ctrl+s)", variant="primary", id="finish")
                yield Button("Back (esc)", id="back")

    def on_mount(self) -> None:
        form = self.query_one(FormView)
        access = balancer_section(self.draft, self.KIND).get("access") or {}
        form.show_group("ssh", access.get("transport", "ssh") != "local")
        self.check()

    def check(self, *, reveal: bool = False) -> list:
        problems = under(self.draft.problems(), self.prefix)
        rest = self.query_one(FormView).show_problems(problems, reveal_missing=reveal)
        self.query_one(f"#{self.KIND}-problems", Static).update("\n".join(f"⚠ {p}" for p in rest))
        return problems

    @on(FormView.Changed)
    def changed(self, event: FormView.Changed) -> None:
        form = event.form
        if event.key == "access.transport":
            form.show_group("ssh", form.raw_value(form.spec("access.transport")) != "local")
        self.draft.raw["balancer"][self.KIND] = form.merge_into(balancer_section(self.draft, self.KIND))
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


class NginxFormScreen(ApacheFormScreen):
    KIND = "nginx"
    FIELDS = NGINX_FIELDS
    INTRO = ("nginx (open source) with the map, proxy and ssl modules. Stickiness comes from a route cookie "
             "mapped to one upstream per node; health checks are passive only.")
    AUTO_FOCUS = "#nginx--access-transport"


class HaproxyFormScreen(ApacheFormScreen):
    KIND = "haproxy"
    FIELDS = HAPROXY_FIELDS
    INTRO = ("HAProxy 2.x: cookie stickiness and active health checks on /status. With the runtime API socket "
             "a node can be drained without a reload.")
    AUTO_FOCUS = "#haproxy--access-transport"
