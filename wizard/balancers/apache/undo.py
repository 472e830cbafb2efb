"""What undoes the Apache work, recorded before each change: structured records, never commands.

A reload, a site and a module to disable are recorded by name; the commands are built
from the answers and the host's layout when they are performed, so nothing the state
file says is ever run as it is. Also here: the Debian site the vhost is enabled as.
"""
from __future__ import annotations

import posixpath
from typing import Any

from wizard.answers_model import Answers, ApacheOptions
from wizard.balancers.apache.facts import (
    LAYOUTS,
    ApacheError,
    Layout,
    SiteEnabler,
    checked_site_name,
    resolve_config_path,
)
from wizard.balancers.apache.vhost import MODULE_ORDER
from wizard.balancers.reload_marker import pending_reload as pending_reload_of
from wizard.engine.model import BALANCER, UndoAction
from wizard.engine.undo import legacy_command_error
from wizard.errors import WizardError

#: The undo kind of the final reload (performed by this step, see ``undo``).
RELOAD_UNDO = "apache-reload"


#: The undo kinds of enabling the vhost's site and a module (Debian): what to disable, by name;
#: the command is built from the answers' layout when it is performed.
SITE_UNDO = "apache-site"


MODULE_UNDO = "apache-module"


def pending_reload(record: Any) -> str | None:
    """The reload id of an Apache apply stopped before its reload (see ``reload_marker``)."""
    return pending_reload_of(record, RELOAD_UNDO)


def apache_options(answers: Answers) -> ApacheOptions:
    options = answers.balancer.apache
    if options is None:
        raise WizardError("The answers have no balancer.apache section, so the Apache balancer cannot be undone.",
                          "Roll back with the answers of the setup that applied it.")
    return options


def site_of(config_path: str) -> str:
    """The Debian site name of the vhost file (its name without .conf), checked for a command line."""
    return checked_site_name(posixpath.basename(config_path).removesuffix(".conf"))


def debian_config_path(answers: Answers) -> str:
    path = apache_options(answers).config_path or LAYOUTS["debian"].default_config_path
    assert path is not None
    return path


def expected_site(answers: Answers) -> str | None:
    """The only site this setup enables: the one of config_path (or of the Debian default)."""
    try:
        return site_of(debian_config_path(answers))
    except ApacheError:
        return None


def site_enabler(layout: Layout, answers: Answers) -> SiteEnabler | None:
    """How config_path's folder is enabled on this layout (a2ensite, a2enconf), if it is."""
    return layout.enabler_for(debian_config_path(answers) if layout.name == "debian"
                              else resolve_config_path(layout, apache_options(answers)))


#: Every module the wizard may switch on: its own, and what Debian's .load files make them need.
KNOWN_MODULES = frozenset(MODULE_ORDER) | frozenset(
    {"socache_shmcb", "setenvif", "mime", "proxy_connect", "proxy_hcheck", "watchdog", "authn_core"})


def reload_undo(answers: Answers, token: str) -> UndoAction:
    """The undo of the reload: test the restored files and reload, with the answers' commands (or the
    layout's, chosen when it is performed), never a command stored in the state file."""
    options = apache_options(answers)
    configtest = options.configtest_command or "Apache's own configuration test for its layout"
    reload = options.reload_command or "its graceful reload"
    return UndoAction(
        kind=RELOAD_UNDO, target=BALANCER,
        description=f"Test the restored Apache configuration ({configtest}) and reload Apache with it ({reload}).",
        manual=(f"{options.configtest_command} && {options.reload_command}"
                if options.configtest_command and options.reload_command
                else "apache2ctl -t && apache2ctl graceful (Debian), httpd -t && apachectl graceful (RHEL)"),
        data={"reload_id": token})


def site_undo(answers: Answers, site: str) -> UndoAction:
    enabler = site_enabler(LAYOUTS["debian"], answers) or LAYOUTS["debian"].site_enablers[0]
    command = enabler.disable_command(site)
    return UndoAction(kind=SITE_UNDO, target=BALANCER,
                      description=f"Disable the Apache site {site}, which the wizard enabled ({command}).",
                      manual=command, data={"site": site})


def module_undo(answers: Answers, module: str) -> UndoAction:
    command = LAYOUTS["debian"].disable_module_command(module)
    return UndoAction(kind=MODULE_UNDO, target=BALANCER,
                      description=f"Switch the Apache module {module} off again, which the wizard switched on "
                                  f"({command}).",
                      manual=command, data={"module": module})


def disable_command(layout: Layout, answers: Answers, action: UndoAction) -> str | None:
    """The command undoing a site or module record on this layout, built from checked names."""
    if action.kind == SITE_UNDO:
        enabler = site_enabler(layout, answers)
        return enabler.disable_command(action.data["site"]) if enabler else None
    return layout.disable_module_command(action.data["module"]) if layout.module_disable else None


def vet_legacy_run(answers: Answers, action: UndoAction, label: str) -> UndoAction:
    """An older version's ``run`` record: never run. When its text is exactly the command this
    version would build itself (a2dissite of the answers' site, a2dismod of a known module), the
    structured action is performed instead; anything else is refused with what to run by hand."""
    command = action.data.get("command")
    site = expected_site(answers)
    debian = LAYOUTS["debian"]
    if action.target == BALANCER and isinstance(command, str):
        enabler = site_enabler(debian, answers)
        if site is not None and enabler is not None and command == enabler.disable.format(name=site):
            return site_undo(answers, site)
        for module in sorted(KNOWN_MODULES):
            if command == (debian.module_disable or "").format(module=module):
                return module_undo(answers, module)
    raise legacy_command_error(action, label)


EDITED_HINT = ("The state file was edited by hand or does not belong to these answers. Find out what that change was "
           "and undo it by hand if it was made, then remove the record from the state file.")

