#!/usr/bin/python
# -*- coding: utf-8 -*-
"""clbw_watch: watch a Confluence node's /status through its restart: seen going down, then RUNNING again.

Written by confluence-lb-wizard's `export --format ansible`. The playbook starts it in the background
(``async``, on the controller, where the wizard's own restart step looks from) just BEFORE the node's
restart command runs, and collects it after: many restart commands return before Confluence has even
stopped, and a quick restart can be over between two looks of a task that only starts once the command
returned. Like the restart step's watcher, it looks every ``poll`` seconds and counts anything but a
RUNNING answer (no connection, STARTING, an error page) as down; a node never seen down was not restarted,
and the roll stops there rather than take the old process for the new one. Needs Python 3.9 or later.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: clbw_watch
short_description: Wait until a Confluence node was seen leaving RUNNING and answers RUNNING again
options:
  url: {description: The node's /status URL., required: true, type: str}
  timeout: {description: Seconds for each of the two waits (down, then RUNNING)., required: true, type: int}
  poll: {description: Seconds between two looks., type: float, default: 0.2}
"""

import json
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule


def _state(url: str) -> str:
    """``/status``'s state when it answers 200 with JSON, else what was seen instead."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"}),
                                    timeout=5) as answer:
            body = answer.read(65536)
    except urllib.error.HTTPError as exc:
        try:
            return f"HTTP {exc.code} ({json.loads(exc.read(65536)).get('state', '')})"
        except (ValueError, AttributeError, OSError):
            return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"no answer ({getattr(exc, 'reason', exc)})"
    try:
        state = json.loads(body).get("state")
    except (ValueError, AttributeError):
        return "HTTP 200 without a state"
    return state if isinstance(state, str) else "HTTP 200 without a state"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "timeout": {"type": "int", "required": True},
            "poll": {"type": "float", "required": False, "default": 0.2},
        },
        supports_check_mode=False,
    )
    url, timeout, poll = module.params["url"], module.params["timeout"], max(0.05, module.params["poll"])
    deadline = time.monotonic() + timeout
    seen = _state(url)
    while seen == "RUNNING":
        if time.monotonic() >= deadline:
            module.fail_json(msg=f"{url} kept answering RUNNING for {timeout} s: the node was not restarted (the "
                                 "restart command does not seem to restart Confluence, or the restart was too quick "
                                 "to be seen), so its changes may not be in effect. Run the restart command by hand "
                                 "and check that Confluence stops and starts again.", seen_down=False)
        time.sleep(poll)
        seen = _state(url)
    down = seen
    deadline = time.monotonic() + timeout
    while seen != "RUNNING":
        if time.monotonic() >= deadline:
            module.fail_json(msg=f"the node did not answer RUNNING at {url} within {timeout} s after its restart "
                                 f"(last seen: {seen}). Look at its atlassian-confluence.log.", seen_down=True,
                             last=seen)
        time.sleep(poll)
        seen = _state(url)
    module.exit_json(changed=False, seen_down=True, down=down, msg=f"seen down ({down}), then RUNNING")


if __name__ == "__main__":
    main()
