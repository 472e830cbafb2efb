"""``confluence-lb-wizard export``: the setup as files for the engines teams already run.

``--format ansible`` writes a playbook, an inventory, the rendered vhost and the wizard's
editors as modules (``wizard.export.ansible``); ``--format cloudformation`` one template for the ALB
path (``wizard.export.cloudformation``). Exporting reads the hosts and AWS the way
``plan`` does and changes nothing on them. The output folder's rules live in
``wizard.export.folder``; everything taken from the rest of the wizard comes through
``wizard.export.project``.
"""

from __future__ import annotations

import re
from pathlib import Path

from wizard.answers_model import Answers
from wizard.transport.prompts import NO_PROMPTS, Prompts

FORMATS = ("ansible", "cloudformation")
_KEY_FILE_LINE = re.compile(r"^[ \t]*ansible_ssh_private_key_file: .*$", re.MULTILINE)


def check_no_secret(files: dict[str, str], skip: tuple[str, ...] = ()) -> None:
    """Refuse to write a file the wizard's secret masking would change (none should ever be)."""
    from wizard.engine.redact import redact
    from wizard.errors import WizardError

    for name, text in files.items():
        if name in skip:
            continue
        # The key file's path is the answers' key_file (a path, never the key); its variable's
        # name alone looks like a secret to the masking.
        text = _KEY_FILE_LINE.sub("", text)
        if redact(text) != text:
            raise WizardError(f"The exported {name} would hold something that looks like a secret, so nothing "
                              "was written.", "Report this as a bug; use `apply` meanwhile.")


def run_export(fmt: str, answers: Answers, folder: Path, prompts: Prompts = NO_PROMPTS) -> list[Path]:
    """Read what the files depend on, build them, and write them into ``folder``; returns the files written."""
    from wizard.export.folder import earlier_files, write_export
    from wizard.export.project import Session

    earlier_files(folder)  # refuse a folder that is not ours before reading any host
    with Session(answers, prompts) as session:
        if fmt == "ansible":
            from wizard.export import ansible

            files = ansible.build(answers, session)
            # The modules are the wizard's own editors; their source names keystorePass and the like.
            check_no_secret(files, skip=ansible.MODULE_FILES)
        elif fmt == "cloudformation":
            from wizard.export import cloudformation

            files = cloudformation.build(answers, session)
            check_no_secret(files)
        else:  # argparse's choices keep this from happening
            raise AssertionError(fmt)
    return write_export(folder, files, fmt=fmt, setup=answers.name)
