"""The engine: steps' shape (Step, Context, Journal), the runner, the state file, undo, safe file writes.

It knows no step, balancer, lab or screen: they build on it.
"""
