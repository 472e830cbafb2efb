"""The header of every file the wizard owns on a balancer (Apache's vhost, nginx's and HAProxy's file):
the line that names the setup, and the line that names the nodes a rolling restart has drained.

The plan reads them back to tell its own file from an admin's (or another setup's), and a drain
that rewrites the file reads which nodes the file has out before it changes one.
"""

from __future__ import annotations

import re

#: The first line of every file the wizard owns; ``{setup}`` is the setup's name.
HEADER_LINE = "# Managed by confluence-lb-wizard for the setup {setup}. Do not edit by hand."
_HEADER_RE = re.compile(r"^# Managed by confluence-lb-wizard for the setup (\S+?)\.?\s", re.MULTILINE)
#: The header line of a file whose drain rewrites it (nginx; HAProxy without admin_socket), naming the
#: nodes a rolling restart has drained (each kind's template writes it from its config's ``drained``).
_DRAINED_LINE = re.compile(r"^# Drained for a rolling restart: (.+)$", re.MULTILINE)


def managed_setup(text: str) -> str | None:
    """The setup named in the wizard's header of a file, or None when the file is not the wizard's."""
    match = _HEADER_RE.search(text[:2000] + "\n")
    return match[1] if match else None


def drained_named(text: str) -> frozenset[str]:
    """The nodes a wizard's file ``text`` names as drained in its header (none when it names none)."""
    match = _DRAINED_LINE.search(text)
    return frozenset(match[1].split(", ")) if match else frozenset()
