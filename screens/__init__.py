"""The faces an admin sees: the Textual app (``screens.app``) and plain prompts (``screens.plain``).

They import the core (``wizard``); the core never imports them.
"""
