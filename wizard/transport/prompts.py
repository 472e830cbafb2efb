"""The questions SSH may have to ask the admin: an encrypted key's passphrase, an unknown host key.

Each face answers them its own way (a terminal prompt, a Textual dialog, a
questionary prompt) and hands its answerer to the ``Runner`` (or the
``HostPool``), which passes it to every SSH host it builds. Nothing is
installed module-wide, so two runs in one process never share answers.
Without a face (a headless run) ``NO_PROMPTS`` answers: an encrypted key is
refused with how to load it into ssh-agent, an unknown host key with its
fingerprint and how to trust it.
"""

from __future__ import annotations

from typing import Protocol

from wizard.errors import HostKeyError


class Prompts(Protocol):
    """What a face answers for SSH. Called from worker threads, possibly several at once."""

    #: False when nobody is there to answer: an encrypted key is then reported (load it into
    #: ssh-agent) rather than asked for, which tells the admin more than "no passphrase given".
    can_ask: bool

    def passphrase(self, prompt: str) -> str | None:
        """The passphrase for the key named in ``prompt``, or None when the admin cancels."""
        ...

    def trust_host_key(self, error: HostKeyError) -> bool:
        """True when the admin compared the fingerprint in ``error`` and trusts the key.

        True makes the SSH transport add the key to that host's known_hosts file.
        """
        ...


class NoPrompts:
    """Nobody to ask (headless): no passphrase, no unknown host key trusted."""

    can_ask = False

    def passphrase(self, prompt: str) -> str | None:
        """Never a passphrase: there is nobody to type it."""
        return None

    def trust_host_key(self, error: HostKeyError) -> bool:
        """Never trusted: the run fails with the fingerprint and how to add the key."""
        return False


NO_PROMPTS: Prompts = NoPrompts()
