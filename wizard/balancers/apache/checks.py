"""The Apache kind's checks, made through Apache itself with the vhost's Host header: status,
Synchrony heartbeat, WebSocket upgrade, /balancer-manager closed, HTTP to HTTPS."""
from __future__ import annotations

import time
from collections.abc import Callable

from wizard.balancers.apache.facts import detect_layout, resolve_config_path
from wizard.balancers.apache.vhost import listen_port, redirect_ports_in, server_name
from wizard.confluence.checks import SYNCHRONY_KEEPS_SESSION, apache_probe_address, synchrony_paths
from wizard.confluence.probes import (
    HttpAnswer,
    confluence_state,
    heartbeat_ok,
    http_get,
    url_host,
    websocket_upgrade,
)
from wizard.engine.model import BALANCER, Check
from wizard.engine.step import Context
from wizard.errors import WizardError

#: How long a verify check retries while answers may still come from before the reload.
VERIFY_PATIENCE_SECONDS = 5.0


class ApacheChecks:
    """The balancer's checks, made through Apache itself with the vhost's Host header."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.answers = ctx.answers
        options = ctx.answers.balancer.apache
        assert options is not None
        self.options = options
        self.url = ctx.answers.public_url
        self.server_name = server_name(ctx.answers)
        self.port = listen_port(ctx.answers)
        self.tls = options.tls is not None
        self.address = url_host(apache_probe_address(ctx))
        self.base = f"{'https' if self.tls else 'http'}://{self.address}:{self.port}"
        self.nodes = {node.name for node in ctx.answers.nodes}

    def run(self) -> list[Check]:
        checks = [self.status(), self.heartbeat(), self.websocket(), self.manager()]
        if self.answers.synchrony.mode == "direct":
            checks.append(self.synchrony_cookie())
        if self.tls:
            checks.append(self.redirect())
        return checks

    def get(self, path: str, *, base: str | None = None) -> HttpAnswer:
        # By address with the vhost's Host header: what is checked is Apache's routing, not the
        # certificate (which names the public host, and may be self-signed in a lab).
        return http_get((base or self.base) + path, headers={"Host": self.server_name}, verify_tls=False,
                        limit=2000)

    def patiently(self, probe: Callable[[], HttpAnswer], ok: Callable[[HttpAnswer], bool]) -> HttpAnswer:
        """Right after a graceful reload an answer may still come from the old configuration."""
        deadline = time.monotonic() + VERIFY_PATIENCE_SECONDS
        answer = probe()
        while not ok(answer) and time.monotonic() < deadline:
            time.sleep(0.25)
            answer = probe()
        return answer

    def status(self) -> Check:
        path = f"{self.url.context_path}/status"
        answer = self.patiently(lambda: self.get(path), lambda a: confluence_state(a) == "RUNNING" and bool(_route(a)))
        running = confluence_state(answer) == "RUNNING"
        route = _route(answer)
        sticky = route in self.nodes
        seen = answer.seen + (f"; ROUTEID route {route!r}" if route else "; no ROUTEID cookie")
        fix = ""
        if not running:
            fix = ("Check that the nodes answer RUNNING on their own (`verify`), that Apache's error log shows no "
                   "proxy errors, then run `apply --only balancer` again.")
        elif not sticky:
            fix = "Sticky sessions are not working: run `apply --only balancer` to restore the wizard's vhost."
        return Check("Confluence /status RUNNING through the balancer, with a ROUTEID cookie", BALANCER,
                     running and sticky, seen, fix)

    def heartbeat(self) -> Check:
        path, _ = synchrony_paths(self.answers)
        answer = self.patiently(lambda: self.get(path), heartbeat_ok)
        fix = "" if heartbeat_ok(answer) else (
            "Synchrony does not answer through the balancer: check that "
            + ("each standalone Synchrony machine runs" if self.answers.synchrony.mode == "standalone"
               else "each node's Synchrony runs")
            + " and that the balancer host reaches its port"
            + (" (the Synchrony port must be open to the balancer)" if self.answers.synchrony.mode != "internal-proxy"
               else "") + ", then run `apply --only balancer` again.")
        return Check(f"Synchrony heartbeat OK through the balancer ({path})", BALANCER, heartbeat_ok(answer),
                     answer.seen, fix)

    def websocket(self) -> Check:
        _, path = synchrony_paths(self.answers)
        status, seen = 0, ""
        deadline = time.monotonic() + VERIFY_PATIENCE_SECONDS
        while True:
            status, seen = websocket_upgrade(self.address.strip("[]"), self.port, path, self.server_name,
                                             tls=self.tls)
            if status == 101 or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        passed = status == 101
        return Check(f"WebSocket upgrade through the balancer ({path})", BALANCER, passed, seen,
                     "" if passed else "The editor needs the WebSocket upgrade: run `apply --only balancer` to "
                                       "restore the wizard's vhost, and check the Synchrony balancer in it.")

    def synchrony_cookie(self) -> Check:
        """A Synchrony request whose route is gone (as when that node's Synchrony is down) must not
        re-set the Confluence session's ROUTEID: that would move the user's Confluence session to
        another node (their session lost, "XSRF check failed"). A route no node has stands in for it."""
        answer = http_get(self.base + "/synchrony/heartbeat", headers={"Host": self.server_name},
                          verify_tls=False, limit=2000, cookies={"ROUTEID": ".clbw-no-such-node"})
        reset = answer.cookie("ROUTEID")
        passed = answer.status is not None and reset is None
        seen = (answer.seen if answer.status is None else
                f"a Synchrony failover re-sets ROUTEID={reset}" if reset is not None else
                "a Synchrony failover re-sets only its own cookie"
                + (f" (SYNCROUTEID={answer.cookie('SYNCROUTEID')})" if answer.cookie("SYNCROUTEID") else ""))
        return Check(SYNCHRONY_KEEPS_SESSION, BALANCER, passed, seen,
                     "" if passed else
                     "The Synchrony balancers share Confluence's ROUTEID cookie: when one node's Synchrony is "
                     "down, a Synchrony request moves the user's Confluence session to another node. Give them a "
                     "cookie of their own scoped to /synchrony (`confluence-lb-wizard apply --only balancer` "
                     "writes SYNCROUTEID).")

    def manager(self) -> Check:
        answer = self.get("/balancer-manager")
        allowed = bool(self.options.manager_allow)
        passed = answer.status in (401, 403, 404) or (allowed and answer.status == 200)
        seen = answer.seen if answer.status != 200 else f"{answer.url}: HTTP 200 (the manager page)"
        if allowed and answer.status == 200:
            seen += " from this workstation, which manager_allow admits"
        return Check("/balancer-manager closed to everyone not in manager_allow", BALANCER, passed, seen,
                     "" if passed else "Anyone can disable nodes there: run `apply --only balancer` to restore "
                                       "the wizard's vhost (Require ip / Require all denied).")

    def redirect(self) -> Check:
        name = "HTTP redirects to HTTPS, keeping path and query"
        try:
            host = self.ctx.hosts.balancer()
            path = resolve_config_path(detect_layout(host, self.options), self.options)
            ports = redirect_ports_in(host.read_bytes(path).decode("utf-8", "replace")) if host.exists(path) else ()
        except WizardError as exc:
            return Check(name, BALANCER, False, exc.message, exc.hint or "")
        if not ports:
            return Check(name, BALANCER, False, f"no redirect to HTTPS in {path}",
                         "Run `apply --only balancer` to write the wizard's vhost.")
        https_origin = f"https://{self.url.host}" + ("" if self.url.port == 443 else f":{self.url.port}")
        probe = "/clbw-redirect-check?keep=1&and=2"
        def redirected(answer: HttpAnswer) -> bool:
            return answer.status == 301

        def probe_port(port: int) -> HttpAnswer:
            return self.patiently(lambda: self.get(probe, base=f"http://{self.address}:{port}"), redirected)

        answers = [probe_port(port) for port in ports]
        expected = https_origin + probe
        passed = all(a.status == 301 and a.headers.get("location") == expected for a in answers)
        seen = "; ".join(f"{a.url}: HTTP {a.status} -> {a.headers.get('location', a.error or '(no Location)')}"
                         for a in answers)
        return Check(name, BALANCER, passed, seen,
                     "" if passed else f"Expected 301 to {expected}: run `apply --only balancer` again.")


def _route(answer: HttpAnswer) -> str | None:
    """The node named by the ROUTEID cookie Apache set (``.node1``: the dot is Apache's separator)."""
    value = answer.cookie("ROUTEID")
    return value.lstrip(".") if value is not None else None
