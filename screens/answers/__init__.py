"""The forms that write a setup's answers: the inventory, a node, the balancer (Apache or ALB).

What each form asks is declared in ``wizard.answers.forms``; the draft being
edited is ``wizard.answers.draft``.
"""
