"""An open setup's steps: the checklist, a step with its plan and progress, the results and summary."""
