"""The welcome screen: start a new setup, resume a saved one (with its progress), or open the lab.

The saved setups are read from their state files in a thread worker: the
screen is up at once with the choices that need no reading, and the setups to
resume (and an unfinished new one) join the list when they have been read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Label, OptionList, Static
from textual.widgets.option_list import Option

from screens.messages import SetupsFound
from screens.steps.words import local_datetime
from screens.title_bar import TitleBar

if TYPE_CHECKING:
    from screens.app import WizardApp
    from wizard.session import SavedSetup

INTRO = ("Put Confluence Data Center and Synchrony behind a load balancer (Apache httpd or an AWS "
         "Application Load Balancer), one checked, undoable step at a time. Every change is shown before it "
         "is made, and the progress is saved after each one: quit whenever you like and come back.")


@dataclass(frozen=True)
class Choice:
    """What the admin picked on the welcome screen."""

    kind: str  # new | draft | resume | open | lab
    path: Path | None = None
    balancer: str = "apache"


#: The choices that need nothing read first, in the order shown.
FIXED = [("new", "Start a new setup: describe the nodes and the balancer", Choice("new")),
         ("open", "Open an answers file (a partial one is fine: the wizard asks for the rest)", Choice("open")),
         ("lab", "Open the lab: a simulated cluster on this machine behind a real Apache httpd",
          Choice("lab", balancer="apache")),
         ("lab-alb", "Open the lab with an AWS load balancer simulated by moto (nothing reaches AWS)",
          Choice("lab", balancer="alb"))]


class WelcomeScreen(Screen[None]):
    """Pick what to do; the app carries it out (opening a setup may show an error dialog)."""

    AUTO_FOCUS = "#start"
    BINDINGS = [Binding("enter", "select", "Choose"), Binding("o", "open_file", "Open a file"),
                Binding("q", "app.quit", "Quit")]

    def __init__(self) -> None:
        super().__init__()
        self.choices: dict[str, Choice] = {key: choice for key, _, choice in FIXED}
        #: The saved setups are read (the list is complete).
        self.ready = False

    def compose(self) -> ComposeResult:
        yield TitleBar()
        with Vertical(id="welcome"):
            yield Static(INTRO, id="welcome-text", markup=False)
            yield Label("What would you like to do? (↑ ↓ to choose, enter to go)")
            yield OptionList(*[Option(prompt, id=key) for key, prompt, _ in FIXED], id="start")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.find_setups()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def find_setups(self) -> None:
        from wizard.answers.draft import draft_path
        from wizard.session import saved_setups

        try:
            setups, draft = saved_setups(), draft_path()
        except OSError:  # an unreadable folder: offer what needs no reading
            setups, draft = [], None
        self.post_message(SetupsFound(setups, draft if draft is not None and draft.exists() else None))

    def on_setups_found(self, message: SetupsFound) -> None:
        self.add_setups(message.setups, message.draft)

    def add_setups(self, setups: list[SavedSetup], draft: Path | None) -> None:
        """The setups to resume (and an unfinished new one) after "Start a new setup"; resuming is
        the likeliest wish when there is something to resume, so it is highlighted."""
        lists = self.query("#start").results(OptionList)
        start = next(lists, None)
        if start is None:  # the screen was closed while the setups were being read
            return
        found: list[Option] = []
        if draft is not None:
            self.choices["draft"] = Choice("draft", draft)
            found.append(Option("Continue the new setup you started (its answers are saved)", id="draft"))
        for index, setup in enumerate(setups):
            when = local_datetime(setup.updated)
            key = f"resume-{index}"
            self.choices[key] = Choice("resume", setup.path)
            found.append(Option(Text(f"Resume {setup.setup}: {setup.done} of {setup.total} steps done"
                                     + (f", last change {when}" if when else ", not started")), id=key))
        if found:
            start.clear_options()
            start.add_options([found[0]] if draft is not None else [])
            start.add_options([Option(prompt, id=key) for key, prompt, _ in FIXED[:1]])
            start.add_options(found[1:] if draft is not None else found)
            start.add_options([Option(prompt, id=key) for key, prompt, _ in FIXED[1:]])
            start.highlighted = 0 if draft is not None else 1
        self.ready = True

    @on(OptionList.OptionSelected, "#start")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        choice = self.choices[event.option.id or "new"]
        if choice.kind == "open":
            self.action_open_file()
        else:
            cast("WizardApp", self.app).start_from_welcome(choice)

    def action_select(self) -> None:
        self.query_one("#start", OptionList).action_select()

    def action_open_file(self) -> None:
        from screens.dialogs.open_file import OpenFileScreen

        def opened(path: Path | None) -> None:
            if path is not None:
                cast("WizardApp", self.app).open_answers_file(path)

        self.app.push_screen(OpenFileScreen(), opened)
