"""Balancer, nginx kind: one file of upstreams, maps and servers included inside ``http {}``,
written, tested with ``nginx -t``, then reloaded (``wizard.balancers.served`` holds the order)."""

from __future__ import annotations

from typing import Any

from wizard.answers_model import Answers
from wizard.balancers.nginx.config import build, render_config
from wizard.balancers.nginx.facts import (
    MINIMUM_VERSION,
    answers_to,
    file_is_read,
    read_nginx_facts,
)
from wizard.balancers.reloading import ReloadChange
from wizard.balancers.served import Facts, Refusal, ServedFileKind, ServerFacts
from wizard.errors import StepFailedError
from wizard.transport.hosts import Host

PASSIVE_HEALTH_NOTE = ("Health checks are passive only in open-source nginx: a node is skipped for a while after a "
                       "failed connection, never taken out by probing its /status")


class NginxBalancerStep(ServedFileKind):
    kind = "nginx"
    product = "nginx"
    drain_summary = ("its servers go down in every upstream of the file, tested with the configuration test and "
                     "gracefully reloaded: nginx sends it no new request, sticky or not, and the requests under "
                     "way finish on the old workers")
    # Open-source nginx has no runtime API: the file itself takes the node out.
    file_drain_words = "down in every upstream"
    minimum_version = MINIMUM_VERSION
    minimum_needs = ""
    upgrade_hint = "Upgrade nginx (the distributions' current packages are newer)"
    reload_undo_kind = "nginx-reload"
    title = "The load balancer (nginx)"
    explanation = ("Writes the nginx configuration for the setup: per-node upstreams with a ROUTEID cookie for sticky "
                   "sessions (open-source nginx has no sticky directive), the Synchrony routes and WebSocket, TLS "
                   "when the public URL is https. nginx tests it before it is reloaded. Health checks are passive "
                   "only in open-source nginx.")
    rollback_note = "nginx is back on the configuration it had before, tested and reloaded."

    def read_server(self, host: Host, answers: Answers) -> ServerFacts:
        return read_nginx_facts(host, answers)

    def build_config(self, answers: Answers, facts: Facts, server_name: str, listen_port: int,
                     http_port: int | None, drained: frozenset[str] = frozenset()) -> Any:
        return build(answers, facts, server_name, listen_port, http_port, drained)

    def render_config(self, config: Any) -> str:
        return render_config(config)

    def refusals(self, answers: Answers, facts: Facts) -> list[Refusal]:
        server = facts.server
        found = self.version_refusals(facts)
        config = self.config(answers, facts)
        taken_upstreams = sorted({u.name for u in config.upstreams} & set(server.extra.get("upstreams", ())))
        taken_variables = sorted(set(config.variables) & set(server.extra.get("variables", ())))
        if taken_upstreams or taken_variables:
            names = ", ".join(taken_upstreams + [f"${v}" for v in taken_variables])
            found.append(Refusal(
                f"Another file of nginx's configuration already defines {names}, names the wizard's file uses for the "
                f"setup {answers.name!r} (a second upstream of a name is an error; a second map variable silently "
                "wins). Nothing was changed.",
                "Remove that other definition (a copy of the wizard's file under another name?), or give this setup "
                "another name, then run the step again."))
        ports = {config.listen_port} | ({config.http_port} if config.http_port else set())
        for other in server.extra.get("servers", ()):
            if set(other.ports) & ports and answers_to(other.names, config.server_name):
                found.append(Refusal(
                    f"nginx already has a server for {config.server_name} on port "
                    f"{', '.join(str(p) for p in sorted(set(other.ports) & ports))}: {other.where}, which the wizard "
                    "did not write for this setup. nginx would answer with only one of the two. Nothing was changed.",
                    "Remove or disable that server block, or set balancer.nginx.config_path to its file so the "
                    "wizard replaces it (a backup is kept), then run the step again."))
                break
        return found

    def confirm_loaded(self, host: Host, answers: Answers, reload: ReloadChange) -> None:
        if not file_is_read(host, answers):
            raise StepFailedError(
                f"nginx does not read {self.options(answers).config_path} inside http {{}} (`nginx -T` does not show "
                "it there), so the new configuration would have no effect. Nothing was reloaded.",
                "Put config_path in a folder an include inside http {} covers (conf.d/*.conf on a stock install).")

    def plan_notes(self, answers: Answers, facts: Facts) -> str:
        synchrony = answers.synchrony
        if synchrony.mode == "standalone":
            machines = ", ".join(f"{m.name} {m.address}:{synchrony.port_of(m)}" for m in synchrony.nodes)
            return (f"{PASSIVE_HEALTH_NOTE}. /synchrony goes to the standalone Synchrony cluster ({machines}), "
                    "round robin without a cookie; its machines' health checks are passive too")
        return PASSIVE_HEALTH_NOTE


STEP = NginxBalancerStep()
