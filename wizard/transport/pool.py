"""The machines of a run: one host object per machine, built on first use (local or SSH), closed at the end."""

from __future__ import annotations

import threading
from collections.abc import Callable

from wizard.answers_model import Access, Answers, Node
from wizard.errors import HostError
from wizard.transport.hosts import Host, LocalHost
from wizard.transport.prompts import NO_PROMPTS, Prompts

#: Builds the host for (label, access block, address to fall back on, who answers SSH's questions).
HostFactory = Callable[[str, Access, str, Prompts], Host]


def default_host_factory(label: str, access: Access, default_host: str,
                         prompts: Prompts = NO_PROMPTS) -> Host:
    """Build the host for an access block: local here, SSH through ``wizard.transport.ssh``."""
    if access.transport == "local":
        return LocalHost(label, sudo=access.sudo)
    try:
        from wizard.transport.ssh import SSHHost  # paramiko loads only when SSH is used
    except ImportError as exc:  # until the SSH transport is installed
        raise HostError(f"The SSH transport is not available: {exc}.",
                        "Reinstall confluence-lb-wizard with its dependencies (paramiko).") from exc
    return SSHHost(label, access, default_host, prompts=prompts)


class HostPool:
    """One host object per machine for a run, built on first use, closed at the end.

    Thread-safe: steps fan out over nodes in a thread pool and ask for hosts
    from several threads at once.
    """

    def __init__(self, answers: Answers, factory: HostFactory = default_host_factory, *,
                 prompts: Prompts = NO_PROMPTS) -> None:
        self.answers = answers
        self.factory = factory
        #: The face's answerer for SSH's questions, handed to every host built here.
        self.prompts = prompts
        self._hosts: dict[str, Host] = {}
        self._lock = threading.Lock()

    def node(self, node: Node | str) -> Host:
        if isinstance(node, str):
            node = self.answers.node(node)
        return self._get(node.name, node.access, node.access.host or node.address)

    def balancer(self) -> Host:
        options = self.answers.balancer.host_options
        if options is None:
            raise HostError("This setup's balancer is not a machine the wizard reaches (an ALB); there is no "
                            "balancer host to reach.")
        return self._get("balancer", options.access, options.access.host or "")

    def _get(self, label: str, access: Access, default_host: str) -> Host:
        with self._lock:
            host = self._hosts.get(label)
        if host is None:
            created = self.factory(label, access, default_host, self.prompts)
            with self._lock:
                host = self._hosts.setdefault(label, created)
            if host is not created:
                created.close()
        return host

    def close(self) -> None:
        with self._lock:
            hosts, self._hosts = list(self._hosts.values()), {}
        for host in hosts:
            try:
                host.close()
            except Exception:  # closing is best effort; the work is already done
                pass

    def __enter__(self) -> HostPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
