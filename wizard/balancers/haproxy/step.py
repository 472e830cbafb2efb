"""Balancer, HAProxy kind: one file of frontends and backends loaded by one of HAProxy's ``-f``,
written, tested with ``haproxy -c``, then reloaded (``wizard.balancers.served`` holds the order);
``drain`` and ``undrain`` take a node out of and back into service through the runtime API, or,
without ``admin_socket``, through the file (its servers ``disabled``, tested and reloaded)."""

from __future__ import annotations

from typing import Any

from wizard.answers_model import Answers, HaproxyOptions, Node
from wizard.balancers.haproxy.config import backend_names, build, render_config, synchrony_backend
from wizard.balancers.haproxy.facts import (
    MINIMUM_VERSION,
    bound_ports,
    read_haproxy_facts,
)
from wizard.balancers.haproxy.runtime import server_states, set_state
from wizard.balancers.kind import DrainSupport
from wizard.balancers.served import Facts, Refusal, ServedFileKind, ServerFacts
from wizard.confluence.probes import Endpoint
from wizard.engine.model import BALANCER, Check
from wizard.engine.step import Context
from wizard.errors import WizardError
from wizard.transport.hosts import Host

STATS_CHECK = "HAProxy stats page closed to everyone not in stats_allow"
HEALTH_CHECK = "HAProxy's active health checks see every node UP"


class HaproxyBalancerStep(ServedFileKind):
    kind = "haproxy"
    product = "HAProxy"
    # Maintenance, not HAProxy's "drain" state: drain keeps sending a node the users its cookie names,
    # who would then meet its 503 STARTING answers while it restarts (until the health checks notice).
    drain_summary = ("HAProxy's runtime API sets the node's servers to maintenance (no reload): HAProxy sends it no "
                     "new request, sticky or not (those users are redispatched), the requests under way finish; "
                     "then back to ready")
    #: Without admin_socket the file drains: the node's servers ``disabled``, tested and reloaded.
    file_drain_summary = ("balancer.haproxy.admin_socket is not set, so the file drains: the node's servers start "
                          "in maintenance (disabled), tested with the configuration test and reloaded: HAProxy sends "
                          "it no new request, sticky or not, and the old process finishes the requests under way")
    file_drain_words = "disabled in the file"
    no_socket_remedy = ("set balancer.haproxy.admin_socket to the `stats socket PATH ... level admin` of HAProxy's "
                        "global section (Debian: /run/haproxy/admin.sock)")
    minimum_version = MINIMUM_VERSION
    minimum_needs = "http-check send"
    upgrade_hint = "Upgrade HAProxy (Debian 12 has 2.6)"
    reload_undo_kind = "haproxy-reload"
    title = "The load balancer (HAProxy)"
    explanation = ("Writes the HAProxy configuration for the setup: a frontend, Confluence and Synchrony backends "
                   "with the ROUTEID cookie for sticky sessions, active health checks on /status, WebSocket "
                   "timeouts, TLS when the public URL is https, and no stats page unless stats_allow. HAProxy tests "
                   "it before it is reloaded.")
    rollback_note = "HAProxy is back on the configuration it had before, tested and reloaded."

    def read_server(self, host: Host, answers: Answers) -> ServerFacts:
        return read_haproxy_facts(host, answers)

    def build_config(self, answers: Answers, facts: Facts, server_name: str, listen_port: int,
                     http_port: int | None, drained: frozenset[str] = frozenset()) -> Any:
        return build(answers, facts, server_name, listen_port, http_port, drained)

    def drains_through_file(self, answers: Answers) -> bool:
        return not haproxy_options(answers).admin_socket

    def render_config(self, config: Any) -> str:
        return render_config(config)

    def refusals(self, answers: Answers, facts: Facts) -> list[Refusal]:
        server = facts.server
        found = self.version_refusals(facts)
        config = self.config(answers, facts)
        ours = set(config.sections)
        ports = {config.listen_port} | ({config.http_port} if config.http_port else set())
        for section in server.extra.get("sections", ()):
            if section.kind in ("frontend", "backend", "listen") and section.name in ours:
                found.append(Refusal(
                    f"{section.file}:{section.line} already defines the {section.kind} {section.name}, a name the "
                    f"wizard's file uses for the setup {answers.name!r}. Nothing was changed.",
                    "Remove that section (a copy of the wizard's file under another name?), or give this setup "
                    "another name, then run the step again."))
                break
            clash = sorted(set(bound_ports(section)) & ports) if section.kind in ("frontend", "listen") else []
            if clash:
                found.append(Refusal(
                    f"{section.file}:{section.line}: the {section.kind} {section.name} already binds port "
                    f"{', '.join(map(str, clash))}, which the wizard's frontend needs; HAProxy would bind both and "
                    "split the traffic between them. Nothing was changed.",
                    "Move that frontend to another port (or remove it), or set balancer.haproxy.listen_port and "
                    "http_port to free ports, then run the step again."))
                break
        return found

    def plan_notes(self, answers: Answers, facts: Facts) -> str:
        synchrony = answers.synchrony
        if synchrony.mode == "standalone":
            machines = ", ".join(f"{m.name} {m.address}:{synchrony.port_of(m)}" for m in synchrony.nodes)
            return ("active health checks on /status (RUNNING); /synchrony to the standalone Synchrony cluster "
                    f"({machines}), round robin without a cookie, checked on /synchrony/heartbeat")
        return "active health checks on /status (RUNNING)"

    # Draining (the restart work drains a node with these): through the runtime API with
    # admin_socket (no reload), else through the file (wizard.balancers.file_drain).

    def drain_support(self, answers: Answers) -> DrainSupport:
        if self.drains_through_file(answers):
            return DrainSupport(True, self.file_drain_summary)
        return super().drain_support(answers)

    def _runtime(self, ctx: Context) -> tuple[Host, str]:
        options = haproxy_options(ctx.answers)
        if not options.admin_socket:
            raise WizardError("balancer.haproxy.admin_socket is not set, so HAProxy's runtime API cannot be asked.",
                              self.no_socket_remedy[0].upper() + self.no_socket_remedy[1:] + ".")
        return ctx.hosts.balancer(), options.admin_socket

    def _set(self, ctx: Context, node: str, state: str) -> None:
        ctx.answers.node(node)  # a node of these answers, or KeyError
        host, socket_path = self._runtime(ctx)
        # Only the backends whose servers are the nodes: in standalone mode the Synchrony backend's
        # servers are the Synchrony machines (one may even share a node's name), which a node's
        # restart leaves serving.
        for backend in backend_names(ctx.answers.name, ctx.answers.synchrony.mode == "direct"):
            set_state(host, socket_path, backend, node, state)

    def drain(self, ctx: Context, node: Node) -> None:
        """Send ``node`` no new request, sticky or not (the runtime API's ``maint``, or the file's ``disabled``).
        Draining a drained node changes nothing, so a resumed roll may call it again."""
        if self.drains_through_file(ctx.answers):
            super().drain(ctx, node)
        else:
            self._set(ctx, node.name, "maint")

    def undrain(self, ctx: Context, node: Node) -> None:
        """Put ``node`` back into service (``ready``, or the balancer step's file again)."""
        if self.drains_through_file(ctx.answers):
            super().undrain(ctx, node)
        else:
            self._set(ctx, node.name, "ready")

    def states(self, ctx: Context) -> dict[tuple[str, str], str]:
        """(backend, server) -> the state HAProxy reports for the setup's servers: the nodes', and in
        standalone mode the Synchrony machines' too (their health check is the heartbeat)."""
        host, socket_path = self._runtime(ctx)
        answers = ctx.answers
        backends = set(backend_names(answers.name, answers.synchrony.mode == "direct"))
        backends.update(filter(None, [synchrony_backend(answers.name, answers.synchrony.mode)]))
        return {key: value for key, value in server_states(host, socket_path).items() if key[0] in backends}

    # Checks.

    def own_checks(self, ctx: Context, endpoint: Endpoint) -> list[Check]:
        options = haproxy_options(ctx.answers)
        found = [self._stats_check(endpoint, options.stats_allow)]
        if options.admin_socket:
            found.append(self._health_check(ctx))
        return found

    def _stats_check(self, endpoint: Endpoint, allowed: list[str]) -> Check:
        from wizard.balancers.haproxy.config import STATS_PATH

        answer = endpoint.get(STATS_PATH)
        is_stats = answer.status == 200 and "Statistics Report" in answer.body
        if allowed:
            passed = is_stats or answer.status == 403
            seen = f"{answer.url}: HTTP {answer.status}" + (" (the stats page, for stats_allow)" if is_stats else "")
        else:
            passed = not is_stats
            seen = f"{answer.url}: HTTP {answer.status}" + (" (the stats page!)" if is_stats else ", no stats page")
        return Check(STATS_CHECK, BALANCER, passed, seen,
                     "" if passed else "Run `apply --only balancer` to restore the wizard's file (no stats page "
                                       "without stats_allow).")

    def _health_check(self, ctx: Context) -> Check:
        try:
            states = self.states(ctx)
        except WizardError as exc:
            return Check(HEALTH_CHECK, BALANCER, False, exc.message, exc.hint or "")
        seen = ", ".join(f"{backend}/{server} {state}" for (backend, server), state in sorted(states.items()))
        passed = bool(states) and all(state.startswith("UP") for state in states.values())
        return Check(HEALTH_CHECK, BALANCER, passed, seen or "no server of the setup in `show stat`",
                     "" if passed else "A node HAProxy marks DOWN fails its /status (or heartbeat) check: see the "
                                       "node checks (a standalone Synchrony machine DOWN fails its heartbeat: start "
                                       "Synchrony there); a node in DRAIN or MAINT was taken out on purpose "
                                       "(undrain it).")


STEP = HaproxyBalancerStep()


def haproxy_options(answers: Answers) -> HaproxyOptions:
    """The answers' HAProxy section (the kind's step only runs for a haproxy setup)."""
    options = answers.balancer.haproxy
    if options is None:
        raise WizardError("The answers have no balancer.haproxy section.",
                          "Use the answers of the setup that applied the HAProxy balancer.")
    return options
