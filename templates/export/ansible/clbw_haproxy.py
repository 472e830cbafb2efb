#!/usr/bin/python
# -*- coding: utf-8 -*-
"""clbw_haproxy: take one node out of HAProxy, or make it ready again, through the runtime API.

Written by confluence-lb-wizard's `export --format ansible`, for the rolling restart: the same
commands the wizard's own restart sends (``wizard.balancers.haproxy.runtime``):
``set server <backend>/<node> state maint|ready`` on each of the setup's backends, over the
``stats socket ... level admin`` of HAProxy's global section. The node's current state is read first
(``show servers state``: its administrative flags, whatever its health checks say right now), so a node
already in the wanted state is not touched and the task reports no change. Maintenance, not HAProxy's
``drain`` state: drain keeps sending a node the users its cookie names, who would meet its 503 STARTING
answers while it restarts; ``drain`` is accepted for an admin's own use.

When the socket is missing, refuses the connection, or HAProxy has none of the setup's backends,
HAProxy is not serving this setup yet (the balancer step was not applied): the module changes nothing
and says so (``live: false``), and the roll restarts the node without a drain, as the wizard's own
restart does before its balancer is live. Supports check mode. Needs Python 3.9 or later.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: clbw_haproxy
short_description: Take a node out of HAProxy (or ready it again) through the runtime API (confluence-lb-wizard)
options:
  socket: {description: HAProxy's admin socket (stats socket ... level admin)., required: true, type: path}
  backends: {description: The setup's backends the node is a server of., required: true, type: list, elements: str}
  server: {description: The node's server name (the node's name in the answers)., required: true, type: str}
  state:
    description: "maint: no request at all; drain: only users whose cookie names it; ready: back in service."
    required: true
    type: str
    choices: [maint, drain, ready]
"""

import errno
import re
import socket

from ansible.module_utils.basic import AnsibleModule

#: What a backend or server name may be (the wizard's own names): nothing that could end a command early.
_NAME = re.compile(r"[A-Za-z0-9._:-]+")
#: ``srv_admin_state`` flags (HAProxy's SRV_ADMF_*) set by ``state drain`` and ``state maint``: ready clears both.
_FORCED_MAINT = 0x01
_FORCED_DRAIN = 0x08


class _NotServing(Exception):
    """The runtime API is not there (HAProxy not running, or not with this socket)."""


def _command(path: str, line: str) -> str:
    """Send one runtime API command, HAProxy's answer (text)."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(10)
    try:
        try:
            client.connect(path)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
                raise _NotServing(f"{path}: {exc.strerror}") from exc
            raise
        client.sendall(line.encode("utf-8") + b"\n")
        chunks = []
        while True:
            chunk = client.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        client.close()
    return b"".join(chunks).decode("utf-8", "replace")


def _states(path: str) -> dict:
    """(backend, server) -> the server's administrative flags (``srv_admin_state`` of ``show servers state``)."""
    lines = _command(path, "show servers state").splitlines()
    header = next((line[1:].split() for line in lines if line.startswith("#")), None)
    if not header or "be_name" not in header or "srv_name" not in header or "srv_admin_state" not in header:
        raise OSError(f"`show servers state` answered something else: {' '.join(lines)[:200]}")
    backend, server, admin = (header.index(k) for k in ("be_name", "srv_name", "srv_admin_state"))
    found = {}
    for line in lines:
        fields = line.split()
        if line.startswith("#") or len(fields) < len(header) or not fields[admin].isdigit():
            continue
        found[(fields[backend], fields[server])] = int(fields[admin])
    return found


def _describe(flags: int) -> str:
    if flags & _FORCED_MAINT:
        return "maint"
    return "drain" if flags & _FORCED_DRAIN else "ready"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "socket": {"type": "path", "required": True},
            "backends": {"type": "list", "elements": "str", "required": True},
            "server": {"type": "str", "required": True},
            "state": {"type": "str", "required": True, "choices": ["maint", "drain", "ready"]},
        },
        supports_check_mode=True,
    )
    params = module.params
    path, server, wanted = params["socket"], params["server"], params["state"]
    backends = list(params["backends"])
    bad = [name for name in backends + [server] if not _NAME.fullmatch(name)]
    if bad:
        module.fail_json(msg=f"not a backend or server name of the wizard: {', '.join(map(repr, bad))}")
    try:
        states = _states(path)
    except _NotServing as exc:
        module.exit_json(changed=False, live=False, states={},
                         msg=f"HAProxy's runtime API does not answer ({exc}): it is not serving this setup, "
                             "so there is nothing to drain.")
    except OSError as exc:
        module.fail_json(msg=f"HAProxy's runtime API at {path} did not answer: {exc}. Check that HAProxy runs "
                             f"with `stats socket {path} ... level admin` in its global section and that this "
                             "user may open it; the node was not restarted.")
    present = {backend: states.get((backend, server)) for backend in backends}
    if not any(status is not None for status in present.values()):
        module.exit_json(changed=False, live=False, states={},
                         msg=f"HAProxy has no server {server} in {', '.join(backends)}: the balancer step was not "
                             "applied, so HAProxy sends this node no users yet.")
    missing = [backend for backend, status in present.items() if status is None]
    if missing:
        module.fail_json(msg=f"HAProxy has no server {server} in {', '.join(missing)} (it has it in the other "
                             "backends): its configuration is not the wizard's for these answers. Apply the "
                             "balancer step (`confluence-lb-wizard apply --only balancer`), then run again; the "
                             "node was not restarted.")
    shown = {backend: _describe(flags) for backend, flags in present.items()}
    todo = [backend for backend, state in shown.items() if state != wanted]
    if not module.check_mode:
        for backend in todo:
            answer = _command(path, f"set server {backend}/{server} state {wanted}").strip()
            if answer:
                module.fail_json(msg=f"HAProxy refused `set server {backend}/{server} state {wanted}`: {answer[:300]}",
                                 states=shown)
    module.exit_json(changed=bool(todo), live=True, states=shown,
                     drained=any(state in ("maint", "drain") for state in shown.values()),
                     msg=(f"{server}: {wanted} in {', '.join(todo)}" if todo else
                          f"{server} is already {wanted} in {', '.join(backends)}"))


if __name__ == "__main__":
    main()
