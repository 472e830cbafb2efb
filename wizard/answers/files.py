"""Writing ``init``'s answers file and its schema beside it, never over anything of the admin's."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from wizard.answers.schema import SCHEMA_FILE_NAME, answers_schema_json
from wizard.answers.template import answers_template
from wizard.errors import BadInputError


def write_answers_template(output: str, kind: str) -> tuple[Path, Path]:
    """Write the commented answers file to ``output`` and the schema beside it; both paths back.

    The answers file is created, never replaced (an admin's filled-in file must not be lost to a
    second ``init``); the schema beside it is the wizard's own and is replaced atomically, so an
    older version's schema is brought up to date.
    """
    answers_path = Path(output).expanduser()
    schema_path = answers_path.parent / SCHEMA_FILE_NAME
    if not answers_path.parent.is_dir():
        raise BadInputError(f"The folder of {answers_path} does not exist.",
                            f"Create it first (mkdir -p {answers_path.parent}), or choose another -o FILE.")
    try:
        # O_EXCL: never over an existing file; O_NOFOLLOW: never through a planted symlink.
        fd = os.open(answers_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        raise BadInputError(f"{answers_path} exists already; init never writes over a file.",
                            "Choose another -o FILE, or move the existing one away first.") from None
    except OSError as exc:
        raise BadInputError(f"Cannot create {answers_path}: {exc.strerror or exc}.",
                            "Choose a folder you can write to with -o FILE.") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(answers_template(kind))
    handle_fd, temp = tempfile.mkstemp(prefix=f".{SCHEMA_FILE_NAME}.", dir=schema_path.parent)
    try:
        with os.fdopen(handle_fd, "w", encoding="utf-8") as handle:
            handle.write(answers_schema_json())
        os.chmod(temp, 0o644)
        os.replace(temp, schema_path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return answers_path, schema_path
