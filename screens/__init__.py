"""The faces an admin sees: the Textual app and the plain prompts.

The Textual app lives at this level (``app``, its engine jobs, the welcome, the
page frame, the messages and the palette), its screens grouped by area:
``answers/`` (the forms that write the answers file), ``steps/`` (the checklist,
a step with its plan, progress and results), ``dialogs/`` (the modal questions).
``plain/`` is the questionary face (``--plain``). They import the core
(``wizard``); the core never imports them.
"""
