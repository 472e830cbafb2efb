"""The balancers, one package per kind behind one shape (``wizard.balancers.kind.BalancerKind``).

A new kind goes in a package of its own here (facts, plan, apply, checks, undo), registers in
``wizard.balancers.kind.KINDS``, and imports no other kind.
"""
