"""The balancer choice: Apache httpd or an AWS Application Load Balancer, each explained briefly."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from screens.page import DraftPage
from wizard.answers.draft import set_key
from wizard.answers.forms import EXPLANATIONS


class BalancerChoiceScreen(DraftPage):
    """enter picks the highlighted balancer and opens its form; escape goes back to the nodes."""

    BINDINGS = [Binding("escape", "back", "Back")]

    def compose_page(self) -> ComposeResult:
        with VerticalScroll(id="balancer-choice"):
            yield Static("Which load balancer will sit in front of the nodes?", classes="intro", markup=False)
            yield OptionList(*[Option(self.prompt(kind), id=kind) for kind in EXPLANATIONS], id="kinds")

    @staticmethod
    def prompt(kind: str) -> Text:
        title, explanation = EXPLANATIONS[kind]
        return Text.assemble((title, "bold"), "\n", (explanation, ""), "\n")

    def on_mount(self) -> None:
        kinds = self.query_one("#kinds", OptionList)
        kinds.focus()
        current = (self.draft.raw.get("balancer") or {}).get("kind")
        kinds.highlighted = list(EXPLANATIONS).index(current) if current in EXPLANATIONS else 0

    @on(OptionList.OptionSelected, "#kinds")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        kind = event.option.id or "apache"
        set_key(self.draft.raw, "balancer.kind", kind)
        self.save_draft()
        if kind in ("apache", "nginx", "haproxy"):
            from screens.answers.apache_form import ApacheFormScreen, HaproxyFormScreen, NginxFormScreen

            form = {"apache": ApacheFormScreen, "nginx": NginxFormScreen, "haproxy": HaproxyFormScreen}[kind]
            self.app.push_screen(form(self.draft))
        else:
            from screens.answers.alb_form import AlbFormScreen

            self.app.push_screen(AlbFormScreen(self.draft))

    def action_back(self) -> None:
        self.dismiss(None)
