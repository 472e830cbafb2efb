"""The exit statuses every verb keeps (README.md and docs/reference.md), importable at no cost."""

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_CHECK_FAILED = 3
EXIT_INTERRUPTED = 130
