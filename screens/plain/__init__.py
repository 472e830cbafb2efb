"""The questionary face (``--plain``): the same flow as the Textual app, as line prompts.

``flow`` is the welcome and the checklist's actions; ``answers`` asks for the answers.
"""
