#!/usr/bin/python
# -*- coding: utf-8 -*-
"""clbw_connector: point one Tomcat Connector of Confluence's conf/server.xml at the balancer.

Written by confluence-lb-wizard's `export --format ansible`. The edit is the wizard's own
(``wizard.confluence.serverxml``, vendored below at export time): only the start tag of the active
Connector changes (proxyName, proxyPort, scheme, and secure behind HTTPS); every other
byte of the file stays as it was: byte order mark, CRLF line ends, comments, the quotes
of each attribute, other Connectors. A file the editor cannot read unambiguously is
refused, never rewritten on a guess. Supports check mode and --diff (secret-looking
attribute values are masked in the diff). Needs Python 3.9 or later on the node.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: clbw_connector
short_description: Minimal edit of the Confluence Connector in server.xml (confluence-lb-wizard)
description:
  - Sets proxyName, proxyPort, scheme (and secure for https) on one active Connector of
    server.xml, changing only that start tag.
options:
  path: {description: The server.xml to edit (a symbolic link's target is written)., required: true, type: path}
  port: {description: The port of the Connector to edit; null picks the single plain-HTTP one., type: int}
  proxy_name: {description: The public host name., required: true, type: str}
  proxy_port: {description: The public port., required: true, type: int}
  scheme: {description: http or https., required: true, type: str, choices: [http, https]}
  restart_marker:
    description: A file written on the node before the file changes, so a play killed before the node's
      restart still knows the restart is owed (returned as restart_owed while it exists).
    type: path
"""

# ---------------------------------------------------------------- vendored from wizard.confluence.serverxml
# @@VENDORED@@
# ---------------------------------------------------------------- end of the vendored code

import os  # noqa: E402 - after the vendored code, which must stay one verbatim block
import re as _re  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# Attribute values that must not reach a terminal or a CI log through --diff (keystorePass...).
_SECRET_ATTRIBUTE = _re.compile(r"""(\b[\w.-]*(?:pass|password|secret|token|key)\w*\s*=\s*)(["'])(.*?)\2""",
                                _re.IGNORECASE)


def _masked(text: str) -> str:
    return _SECRET_ATTRIBUTE.sub(lambda m: f"{m[1]}{m[2]}********{m[2]}", text)


# @@ATOMIC_WRITE@@


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "port": {"type": "int", "required": False, "default": None},
            "proxy_name": {"type": "str", "required": True},
            "proxy_port": {"type": "int", "required": True},
            "scheme": {"type": "str", "required": True, "choices": ["http", "https"]},
            "restart_marker": {"type": "path", "required": False, "default": None},
        },
        supports_check_mode=True,
    )
    params = module.params
    # The wizard writes the target of a symbolic link, so the link stays a link.
    path = os.path.realpath(params["path"])
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError as exc:
        module.fail_json(msg=f"cannot read {path}: {exc.strerror or exc}")
    try:
        text, encoding = decode_server_xml(data)
        edit = plan_connector_edit(text, port=params["port"], proxy_name=params["proxy_name"],
                                   proxy_port=params["proxy_port"], scheme=params["scheme"])
        new_data = encode_server_xml(edit.new_text, encoding) if edit.changed else data
    except ServerXmlError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        module.fail_json(msg=f"{path}: {exc.message}{hint}")
    result = {"changed": edit.changed, "path": path, "port": edit.port, "line": edit.line,
              "msg": edit.reason,
              "attributes_changed": {k: list(v) for k, v in edit.attributes_changed.items()}}
    if module._diff and edit.changed:
        result["diff"] = {"before_header": path, "after_header": path,
                          "before": _masked(text.replace("\r", "")), "after": _masked(edit.new_text.replace("\r", ""))}
    marker = params["restart_marker"]
    if edit.changed and not module.check_mode:
        if marker:
            _owe_restart(module, marker, path)
        _write(module, path, new_data)
    result["restart_owed"] = bool(marker) and os.path.exists(marker)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
