"""HAProxy's runtime API (``admin_socket``): drain a node, make it ready again, read the servers' state.

The socket lives on the balancer host, so the command goes there over the host's own
transport: ``socat`` when it is installed, else ``python3``'s socket module (one of them is
on nearly every Linux host). Only commands the wizard builds from checked names are
sent; HAProxy answers an empty line when it accepted one.
"""

from __future__ import annotations

import csv
import io
import shlex

from wizard.errors import StepFailedError
from wizard.transport.hosts import Host

_PYTHON_CLIENT = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "s.settimeout(10)\n"
    "s.connect(sys.argv[1])\n"
    "s.sendall(sys.argv[2].encode() + b'\\n')\n"
    "out = b''\n"
    "while True:\n"
    "    chunk = s.recv(65536)\n"
    "    if not chunk:\n"
    "        break\n"
    "    out += chunk\n"
    "sys.stdout.write(out.decode('utf-8', 'replace'))\n")


class RuntimeApiError(StepFailedError):
    """HAProxy's runtime API could not be reached, or refused the command."""


def runtime_command(host: Host, socket_path: str, command: str) -> str:
    """Send one runtime API command; HAProxy's answer (text), or ``RuntimeApiError``."""
    sock, line = shlex.quote(socket_path), shlex.quote(command)
    script = (f"if command -v socat >/dev/null 2>&1; then printf '%s\\n' {line} | socat -t 10 stdio UNIX-CONNECT:{sock}; "
              f"elif command -v python3 >/dev/null 2>&1; then python3 -c {shlex.quote(_PYTHON_CLIENT)} {sock} {line}; "
              "else echo 'clbw: neither socat nor python3 on this host' >&2; exit 127; fi")
    result = host.run(script, timeout=30.0)
    if not result.ok:
        raise RuntimeApiError(
            f"HAProxy's runtime API at {socket_path} on {host.label} did not answer `{command}`: "
            f"{(result.stderr.strip() or result.stdout.strip() or 'no output')[:500]}",
            "Check that HAProxy runs with `stats socket " + socket_path + " ... level admin` in its global section, "
            "that the wizard's user may open the socket, and that socat or python3 is installed on the balancer.")
    return result.stdout


def set_state(host: Host, socket_path: str, backend: str, server: str, state: str) -> None:
    """``set server BACKEND/SERVER state drain|ready|maint``; ``RuntimeApiError`` when HAProxy refuses it."""
    answer = runtime_command(host, socket_path, f"set server {backend}/{server} state {state}").strip()
    if answer:
        raise RuntimeApiError(f"HAProxy refused `set server {backend}/{server} state {state}`: {answer[:300]}",
                              "Check that the balancer step was applied (the backend and server exist) and that "
                              "the socket is at level admin.")


def server_states(host: Host, socket_path: str) -> dict[tuple[str, str], str]:
    """(backend, server) -> status as ``show stat`` reports it (UP, DOWN, DRAIN, MAINT, ...)."""
    text = runtime_command(host, socket_path, "show stat").lstrip("# ")
    states: dict[tuple[str, str], str] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("svname") not in (None, "FRONTEND", "BACKEND"):
            states[(row["pxname"], row["svname"])] = row.get("status", "")
    return states
