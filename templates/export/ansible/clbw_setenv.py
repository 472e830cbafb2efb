#!/usr/bin/python
# -*- coding: utf-8 -*-
"""clbw_setenv: the Synchrony option of one setup in Confluence's bin/setenv.sh, as a minimal edit.

Written by confluence-lb-wizard's `export --format ansible`. The edit is the wizard's own
(``wizard.confluence.setenv``, vendored below at export time): each option this setup needs is one
marked line (``CATALINA_OPTS="-D<name>=<value> ${CATALINA_OPTS}"  # added by confluence-lb-wizard for
the setup <name>``) inserted after the file's last top-level ``CATALINA_OPTS=`` assignment; every other
byte stays as it was. An option the admin already sets is left alone (another service URL is refused);
with no options (Synchrony direct) only this setup's own lines are taken out. A file the editor cannot
read unambiguously (an unfinished quote, no top-level CATALINA_OPTS=, not UTF-8) is refused, never
rewritten on a guess. Supports check mode and --diff (secret-looking values are masked in the diff).
Needs Python 3.9 or later on the node.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: clbw_setenv
short_description: Minimal edit of the Synchrony options in Confluence's bin/setenv.sh (confluence-lb-wizard)
description:
  - Adds the marked line of each option this setup needs after the last top-level CATALINA_OPTS=,
    and removes this setup's own lines no longer needed; nothing else in the file changes.
options:
  path: {description: The setenv.sh to edit (a symbolic link's target is written)., required: true, type: path}
  setup: {description: The setup's name (it marks the lines this setup owns)., required: true, type: str}
  options:
    description: Option name -> value (synchrony.service.url, synchrony.proxy.enabled); empty removes this
      setup's lines.
    type: dict
    default: {}
  backup: {description: Keep a copy of the file as it was before a change., type: bool, default: false}
  restart_marker:
    description: A file written on the node before the file changes, so a play killed before the node's
      restart still knows the restart is owed (returned as restart_owed while it exists).
    type: path
"""

# ---------------------------------------------------------------- vendored from wizard.confluence.setenv
# @@VENDORED@@
# ---------------------------------------------------------------- end of the vendored code

import json  # noqa: E402 - after the vendored code, which must stay one verbatim block
import os  # noqa: E402
import re as _re  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# Values that must not reach a terminal or a CI log through --diff (a database password in CATALINA_OPTS...).
_SECRET_VALUE = _re.compile(r"""(\b[\w.-]*(?:pass|password|passwd|pwd|secret|token|key)[\w.-]*=)("[^"]*"|'[^']*'|[^\s"']*)""",
                            _re.IGNORECASE)
_SETUP = _re.compile(r"[A-Za-z0-9._-]+")


def _masked(text: str) -> str:
    return _SECRET_VALUE.sub(lambda m: f"{m[1]}********", text)


# @@ATOMIC_WRITE@@


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "setup": {"type": "str", "required": True},
            "options": {"type": "dict", "required": False, "default": {}},
            "backup": {"type": "bool", "required": False, "default": False},
            "restart_marker": {"type": "path", "required": False, "default": None},
        },
        supports_check_mode=True,
    )
    params = module.params
    setup = params["setup"]
    # A value may arrive as YAML read it (true, not "true"): written the way the wizard writes it.
    wanted = {str(name): (value if isinstance(value, str) else json.dumps(value))
              for name, value in (params["options"] or {}).items()}
    # The same values the wizard would write, or nothing: the line is built from them.
    if not _SETUP.fullmatch(setup):
        module.fail_json(msg=f"setup {setup!r} is not a setup name (letters, digits, '.', '_', '-').")
    for name, value in wanted.items():
        if name not in OPTIONS or not _SAFE_VALUE.fullmatch(value):
            module.fail_json(msg=f"the option -D{name}={value} is not one this module writes "
                                 f"({', '.join(OPTIONS)}, with a plain URL or true as the value).")
    # The wizard writes the target of a symbolic link, so the link stays a link.
    path = os.path.realpath(params["path"])
    if not os.path.exists(path):
        if wanted:
            shown = ", ".join(f"-D{k}={v}" for k, v in wanted.items())
            module.fail_json(msg=f"{path} does not exist, and this setup needs {shown} in it. Nothing was changed. "
                                 "(Check nodes[].install_dir: Confluence's installation folder holds bin/setenv.sh.)")
        module.exit_json(changed=False, path=path, msg="no setenv.sh and no option to add: nothing to do",
                         restart_owed=bool(params["restart_marker"]) and os.path.exists(params["restart_marker"]))
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError as exc:
        module.fail_json(msg=f"cannot read {path}: {exc.strerror or exc}")
    try:
        text = decode_setenv(data)
        edit = plan_setenv_edit(text, setup=setup, wanted=wanted)
    except SetenvError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        module.fail_json(msg=f"{path}: {exc.message}{hint}")
    result = {"changed": edit.changed, "path": path, "msg": edit.describe() or "; ".join(edit.notes) or "as wanted",
              "added": [list(a) for a in edit.added], "removed": [list(r) for r in edit.removed],
              "notes": list(edit.notes)}
    if module._diff and edit.changed:
        result["diff"] = {"before_header": path, "after_header": path,
                          "before": _masked(text.replace("\r", "")), "after": _masked(edit.new_text.replace("\r", ""))}
    marker = params["restart_marker"]
    if edit.changed and not module.check_mode:
        if params["backup"]:
            result["backup_file"] = module.backup_local(path)
        if marker:
            _owe_restart(module, marker, path)
        _write(module, path, edit.new_text.encode("utf-8"))
    result["restart_owed"] = bool(marker) and os.path.exists(marker)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
