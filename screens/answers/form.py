"""A form built from field specs, checked as you type, with each problem shown under its field.

Every form of the inventory (the setup, a node, the Apache options, the ALB
options) is one of these over one section of the answers dictionary. The form
only turns widgets into answers and problems into words next to the fields;
the checks themselves are ``wizard.answers.find_problems``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, Select, Static

from wizard.answers.draft import get_key, set_key
from wizard.answers.forms import FieldSpec, slug, to_answer, to_widget_text
from wizard.errors import Problem


class FormView(Vertical):
    """Fields for one section (``prefix``: "", ``nodes[0]``, ``balancer.apache``) of the answers."""

    DEFAULT_CSS = """
    FormView { height: auto; }
    FormView .field-row { height: auto; margin-top: 1; }
    FormView .field-row > Label { width: 22; padding-right: 1; text-style: bold; }
    FormView .field-row > Input, FormView .field-row > Select, FormView .field-row > Checkbox { width: 1fr; }
    FormView .help { color: $text-muted; padding-left: 22; }
    FormView .problem { color: $error; height: auto; padding-left: 22; }
    FormView .problem.empty { display: none; }
    FormView .hidden { display: none; }
    """

    @dataclass
    class Changed(Message):
        """The admin changed a field of this form."""

        form: FormView
        key: str

        @property
        def control(self) -> FormView:
            return self.form

    def __init__(self, specs: list[FieldSpec], *, prefix: str = "", values: dict[str, Any] | None = None,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.specs = specs
        self.prefix = prefix
        self.initial = values or {}
        self.touched: set[str] = set()
        self._by_widget: dict[str, FieldSpec] = {}
        self._shown: dict[str, str] = {}
        # Widgets report their first value as a change when they mount; only what the
        # admin changes afterwards counts as touched.
        self._ready = False

    def widget_id(self, spec: FieldSpec) -> str:
        return f"{self.id or 'form'}--{slug(spec.key)}"

    def compose(self) -> ComposeResult:
        for spec in self.specs:
            widget_id = self.widget_id(spec)
            self._by_widget[widget_id] = spec
            value = get_key(self.initial, spec.key)
            group = f" {spec.group}" if spec.group else ""
            # Flat: a row, its help, its problem (no wrapper per field: a form of 14 answers mounts
            # noticeably faster); a group is shown or hidden through the class on all three.
            with Horizontal(classes=f"field-row{group}", id=f"{widget_id}-field"):
                # Compact widgets: one line per answer keeps a form usable at 80x24.
                yield Label(spec.label if spec.kind != "bool" else "", markup=False)
                if spec.kind == "bool":
                    yield Checkbox(spec.label, value=bool(value), id=widget_id, compact=True)
                elif spec.kind == "choice":
                    yield Select([(shown, val) for shown, val in spec.choices], id=widget_id,
                                 value=value if value in [v for _, v in spec.choices] else Select.NULL,
                                 prompt=spec.placeholder or "Choose", compact=True)
                else:
                    yield Input(to_widget_text(spec, value), placeholder=spec.placeholder, id=widget_id,
                                compact=True)
            if spec.help:
                yield Static(spec.help, classes=f"help{group}", markup=False)
            yield Static("", classes=f"problem empty{group}", id=f"{widget_id}-problem", markup=False)

    def on_mount(self) -> None:
        self.call_after_refresh(self._set_ready)

    def _set_ready(self) -> None:
        self._ready = True

    # Reading and writing the section.

    def spec(self, key: str) -> FieldSpec:
        return next(s for s in self.specs if s.key == key)

    def raw_value(self, spec: FieldSpec) -> Any:
        widget = self.query_one(f"#{self.widget_id(spec)}")
        if isinstance(widget, Select):
            return None if widget.value is Select.NULL else widget.value
        if isinstance(widget, (Input, Checkbox)):
            return widget.value
        return None

    def values(self) -> dict[str, Any]:
        """The section as answers: nested keys, unanswered ones left out."""
        section: dict[str, Any] = {}
        for spec in self.specs:
            if self.is_hidden(spec):
                continue
            set_key(section, spec.key, to_answer(spec, self.raw_value(spec)))
        return section

    def merge_into(self, section: dict[str, Any]) -> dict[str, Any]:
        """``section`` with this form's fields replaced (keys the form does not show are kept)."""
        merged = dict(section)
        for spec in self.specs:
            set_key(merged, spec.key, None if self.is_hidden(spec) else to_answer(spec, self.raw_value(spec)))
        return {k: v for k, v in merged.items() if v not in ({}, None)}

    def set_value(self, key: str, value: Any) -> None:
        spec = self.spec(key)
        widget = self.query_one(f"#{self.widget_id(spec)}")
        if isinstance(widget, Checkbox):
            widget.value = bool(value)
        elif isinstance(widget, Select):
            widget.value = value if value is not None else Select.NULL
        elif isinstance(widget, Input):
            widget.value = to_widget_text(spec, value)

    def is_hidden(self, spec: FieldSpec) -> bool:
        return self.query_one(f"#{self.widget_id(spec)}-field").has_class("hidden")

    def show_group(self, group: str, shown: bool) -> None:
        for widget in self.query(f".{group}"):
            widget.set_class(not shown, "hidden")

    # Problems.

    def field_for(self, problem: Problem) -> FieldSpec | None:
        """The field a problem belongs to (the longest key that covers it), if it is in this form."""
        key = problem.key
        if self.prefix:
            if not key.startswith(self.prefix + ".") and not key.startswith(self.prefix + "["):
                return None
            key = key[len(self.prefix) + 1:] if key.startswith(self.prefix + ".") else key[len(self.prefix):]
        best = None
        for spec in self.specs:
            covers = key == spec.key or key.startswith((spec.key + ".", spec.key + "["))
            if covers and (best is None or len(spec.key) > len(best.key)):
                best = spec
        return best

    def show_problems(self, problems: list[Problem], *, reveal_missing: bool = False) -> list[Problem]:
        """Show each problem under its field; return those that belong to no field of this form.

        A missing answer is shown once its field was touched (or ``reveal_missing``),
        so a fresh form is not a wall of red; a wrong answer is shown at once.
        """
        per_field: dict[str, list[str]] = {}
        elsewhere = []
        for problem in problems:
            spec = self.field_for(problem)
            if spec is None or self.is_hidden(spec):
                elsewhere.append(problem)
                continue
            if problem.missing and not (reveal_missing or spec.key in self.touched):
                continue
            per_field.setdefault(spec.key, []).append(problem.message)
        for spec in self.specs:
            text = "\n".join(f"⚠ {message}" for message in per_field.get(spec.key, []))
            if self._shown.get(spec.key, "") == text:
                continue  # an unchanged line is not redrawn: the form stays quick as you type
            self._shown[spec.key] = text
            line = self.query_one(f"#{self.widget_id(spec)}-problem", Static)
            line.update(text)
            line.set_class(not text, "empty")
        return elsewhere

    # Changes.

    def _changed(self, widget_id: str | None) -> None:
        spec = self._by_widget.get(widget_id or "")
        if spec is None:
            return
        if self._ready:
            self.touched.add(spec.key)
        self.post_message(self.Changed(self, spec.key))

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def field_changed(self, event: Input.Changed | Select.Changed | Checkbox.Changed) -> None:
        if event.control is not None and event.control.id in self._by_widget:
            event.stop()
            self._changed(event.control.id)
