"""The command line (README.md, "The command line"; docs/reference.md for every verb).

Argument parsing and dispatch only. The faces (Textual in ``screens``, the
questionary prompts in ``screens.plain``) are imported lazily, so ``--help``
and the headless verbs never load a UI library.
"""

from __future__ import annotations

# `--help` must cost little more than the interpreter itself (tests/bench/bench_help.py):
# only argparse and the step names load before the arguments are parsed; everything a
# verb needs (json, pathlib, the error family, the engine) is imported inside it, and
# even `typing` stays out (type checkers honour a plain TYPE_CHECKING constant).
import argparse
import sys

from wizard import TOOL_NAME, __version__
from wizard.exit_codes import EXIT_INTERRUPTED, EXIT_OK

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

EPILOG = """exit status: 0 done (apply/verify: every check passed); 1 a step failed (its change
was undone or never made); 2 bad input (nothing changed); 3 a verification check
failed; 130 interrupted (state saved, resumable)."""


def build_parser() -> argparse.ArgumentParser:
    from wizard.steps import STEP_NAMES

    state_help = ("the state file (default: ~/.local/state/confluence-lb-wizard/<setup>.state.json, "
                  "or the only state file there)")
    parser = argparse.ArgumentParser(
        prog=TOOL_NAME,
        description="Put Confluence Data Center and Synchrony behind Apache httpd or an AWS "
                    "Application Load Balancer, one checked and undoable step at a time. "
                    "Without a command it opens the full-screen wizard.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"{TOOL_NAME} {__version__}")
    parser.add_argument("--state", metavar="PATH", help=state_help)
    parser.add_argument("--plain", action="store_true",
                        help="the same flow as plain line prompts instead of the full-screen app")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=description, epilog=EPILOG,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--version", action="version", version=f"{TOOL_NAME} {__version__}")
        sub.add_argument("--state", metavar="PATH", help=state_help)
        return sub

    plan = command("plan", "print every change the steps would make; changes nothing",
                   "Read everything, change nothing, and print every change the steps would make.")
    plan.add_argument("--answers", metavar="FILE", required=True, help="the answers file (YAML or JSON)")
    plan.add_argument("--only", nargs="+", metavar="STEP", choices=STEP_NAMES, help="plan only these steps")

    apply = command("apply", "run the steps headless: plan, show, confirm, apply, verify",
                    "Plan, show, confirm (or --yes), apply and verify each step, resuming at the "
                    "first step not yet done.")
    apply.add_argument("--answers", metavar="FILE", required=True, help="the answers file (YAML or JSON)")
    apply.add_argument("--yes", action="store_true", help="apply without asking for confirmation")
    apply.add_argument("--only", nargs="+", metavar="STEP", choices=STEP_NAMES,
                       help=f"run only these steps ({', '.join(STEP_NAMES)})")

    status = command("status", "the checklist: every step with its status and when",
                     "Print every step with its status and when it last changed.")
    status.add_argument("--json", action="store_true", help="print JSON (its shape: docs/reference.md)")

    verify = command("verify", "run the final tests and health checks (read-only)",
                     "Run every step's checks against the machines; changes nothing there. "
                     "Results are recorded in the state file when there is one.")
    verify.add_argument("--answers", metavar="FILE", help="the answers file (instead of --state)")
    verify.add_argument("--json", action="store_true", help="print JSON (its shape: docs/reference.md)")

    runbook = command("runbook", "export the runbook of what was done",
                      "Write the runbook of this setup: every step, its changes, how to undo them "
                      "by hand, and the check results.")
    runbook.add_argument("--format", choices=("md", "html"), default="md", help="md (default) or html")
    runbook.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")

    rollback = command("rollback", "undo applied steps, newest first (or one step)",
                       "Undo what the steps changed, newest first, or only STEP's changes.")
    rollback.add_argument("step", nargs="?", choices=STEP_NAMES, metavar="STEP", help="only this step")
    rollback.add_argument("--yes", action="store_true", help="roll back without asking for confirmation")

    restart = command("restart", "restart the nodes one at a time, each drained in a live balancer first",
                      "Restart the nodes one at a time (all of them, or the --node ones): behind a live balancer "
                      "each is drained first, given restart_drain seconds, restarted, waited for until /status "
                      "answers RUNNING and its Synchrony its heartbeat, and put back; then the next. A balancer "
                      "that cannot drain is planned NO DRAIN. Resumes "
                      "with a node an interrupted roll left drained. A restart has nothing to roll back.")
    restart.add_argument("--answers", metavar="FILE", help="the answers file (instead of --state)")
    restart.add_argument("--yes", action="store_true", help="restart without asking for confirmation")
    restart.add_argument("--node", nargs="+", metavar="NAME", action="extend",
                         help="only these nodes (nodes[].name), restarted even when no change needs it")

    lab = command("lab", "start the built-in lab (a simulated cluster on this machine) and open the wizard on it",
                  "Start simulated Confluence nodes on this machine's loopback, behind the real Apache httpd "
                  "(or an AWS ALB simulated by moto), write answers for them, and open the wizard on it. "
                  "Everything the lab starts stops when the wizard exits; its folder stays, and running "
                  "`lab` again comes back to it where you left off (an Apache lab; an ALB lab starts afresh).")
    lab.add_argument("--nodes", type=int, default=None, metavar="N",
                     help="how many nodes (default: as many as the lab you come back to, or 2)")
    lab.add_argument("--balancer", choices=("apache", "alb", "nginx", "haproxy"), default="apache",
                     help="apache: the real Apache httpd of this machine (default); nginx, haproxy: the real "
                          "nginx or HAProxy of this machine; alb: AWS simulated by moto")
    lab.add_argument("--plain", action="store_true", help="plain line prompts instead of the full-screen app")
    lab.add_argument("--fresh", action="store_true",
                     help="start over with a new lab instead of coming back to the last one (its state file "
                          "is kept beside as lab.state.json.old)")
    lab.add_argument("--headless", action="store_true",
                     help="no wizard: apply every step with --yes, print the result, stop (for CI and demos)")
    lab.add_argument("--only", nargs="+", metavar="STEP", choices=STEP_NAMES,
                     help="with --headless: apply only these steps")

    export = command("export", "write the setup as an Ansible playbook or a CloudFormation template",
                     "Write what `apply` would do as files for another engine: an Ansible playbook with its "
                     "inventory, the vhost and the wizard's server.xml and setenv.sh editors as modules, with a "
                     "drained rolling restart (--format ansible), or a CloudFormation "
                     "template for the AWS load balancer (--format cloudformation). Reads the hosts and AWS "
                     "like `plan`; changes nothing there.")
    export.add_argument("--format", choices=("ansible", "cloudformation"), required=True,
                        help="ansible (nodes and Apache) or cloudformation (the ALB)")
    export.add_argument("--answers", metavar="FILE", help="the answers file (instead of --state)")
    export.add_argument("-o", "--output", metavar="DIR", required=True,
                        help="the folder to write (created when missing; refused unless empty or an earlier export)")

    commands.add_parser(
        "schema", help="print the answers file's JSON Schema",
        description="Print the JSON Schema (draft 2020-12) of the answers file: the same rules `plan` and "
                    "`apply` enforce, for editors and CI to check an answers file with.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    ).add_argument("--version", action="version", version=f"{TOOL_NAME} {__version__}")

    init = commands.add_parser(
        "init", help="write a commented answers file with every key",
        description="Write a commented answers file: every key, its default and what it is for, with a "
                    "`# yaml-language-server: $schema=...` line so editors complete and check it. With -o "
                    "FILE the schema is written beside FILE (confluence-lb-wizard.schema.json).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    init.add_argument("--version", action="version", version=f"{TOOL_NAME} {__version__}")
    init.add_argument("-o", "--output", metavar="FILE", help="write to FILE (never over an existing file) "
                                                             "instead of standard output")
    init.add_argument("--balancer", choices=("apache", "alb", "nginx", "haproxy"), default="apache",
                      help="the balancer kind to fill in (the other kind's keys stay commented out)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from wizard.errors import WizardError

    handler: Callable[[argparse.Namespace], int] = {
        None: run_wizard, "plan": cmd_plan, "apply": cmd_apply, "status": cmd_status,
        "verify": cmd_verify, "runbook": cmd_runbook, "rollback": cmd_rollback, "lab": cmd_lab,
        "restart": cmd_restart,
        "schema": cmd_schema, "init": cmd_init, "export": cmd_export,
    }[args.command]
    try:
        return handler(args)
    except WizardError as exc:
        # A failure can quote a command or a server's answer.
        from wizard.engine.redact import redact

        print(f"{TOOL_NAME}: {redact(exc.for_admin())}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"\n{TOOL_NAME}: interrupted; the state is saved. Run the same command to resume.",
              file=sys.stderr)
        return EXIT_INTERRUPTED


# Helpers shared by the verbs.

def command_line() -> str:
    return " ".join([TOOL_NAME, *sys.argv[1:]])


def load_answers(path: str):  # -> Answers
    from wizard.answers import load_answers_file, validate

    return validate(load_answers_file(path), source=path)


def find_state_file(explicit: str | None) -> Path:
    """``--state`` if given, else the only state file in the default folder."""
    from pathlib import Path

    from wizard.errors import StateError

    if explicit:
        return Path(explicit).expanduser()
    from wizard.engine.state import default_state_path

    folder = default_state_path("x").parent
    found = sorted(folder.glob("*.state.json")) if folder.is_dir() else []
    if len(found) == 1:
        return found[0]
    if not found:
        raise StateError(f"No state file given and none in {folder}.",
                         "Pass --state PATH, or start a setup with `apply --answers FILE`.")
    raise StateError(f"Several setups have state in {folder}: "
                     + ", ".join(p.name for p in found) + ".", "Choose one with --state PATH.")


def state_for_answers(explicit: str | None, answers) -> Path:
    from pathlib import Path

    from wizard.engine.state import default_state_path

    return Path(explicit).expanduser() if explicit else default_state_path(answers.name)


def answers_from_state(store):  # -> (State, Answers)
    from wizard.answers import validate

    state = store.load()
    return state, validate(state.answers, source=str(store.path))


def setup_of(args: argparse.Namespace):  # -> (Answers, Path)
    """The setup a verb works on: ``--answers FILE`` (its state file beside, or ``--state``), or the
    answers an existing state file (``--state``, or the only one there is) was made with."""
    from wizard.engine.state import StateStore

    if args.answers:
        answers = load_answers(args.answers)
        return answers, state_for_answers(args.state, answers)
    path = find_state_file(args.state)
    return answers_from_state(StateStore(path))[1], path


def open_runner(answers, state_path: Path, *, read_only: bool = False, events=None):
    """A runner for a headless verb; SSH asks on the terminal when there is one."""
    from wizard.engine.runner import Runner
    from wizard.engine.state import StateStore
    from wizard.report import EventPrinter

    return Runner(answers, StateStore(state_path), events=events or EventPrinter(),
                  prompts=terminal_prompts(), command=command_line(), read_only=read_only)


def confirm_on_terminal(question: str) -> bool:
    print(f"{question} [y/N] ", end="", flush=True)
    try:
        reply = sys.stdin.readline()
    except KeyboardInterrupt:
        return False
    return reply.strip().lower() in ("y", "yes")


class TerminalPrompts:
    """SSH's questions (a key's passphrase, an unknown host key) asked on this terminal.

    Nodes are reached in parallel, so the questions are serialised with a lock.
    """

    can_ask = True

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()

    def passphrase(self, prompt: str) -> str | None:
        """The passphrase typed (not echoed), or None when the admin gives none."""
        import getpass

        with self._lock:
            try:
                return getpass.getpass(f"{prompt}: ") or None
            except (EOFError, KeyboardInterrupt):
                return None

    def trust_host_key(self, error) -> bool:
        """Show the unknown key's fingerprint and ask whether to trust it."""
        with self._lock:
            print(f"\n{error.message}", flush=True)
            # True makes wizard.transport.ssh add the key to that host's known_hosts file.
            return confirm_on_terminal(f"Trust this {error.key_type} key ({error.fingerprint}) "
                                       "and add it to known_hosts?")


def terminal_prompts():  # -> wizard.transport.prompts.Prompts
    """On a terminal, ask for key passphrases and unknown host keys instead of failing.

    Without a terminal nobody is asked: an encrypted key or an unknown host key
    then fails with the fingerprint and how to trust it (exit 2).
    """
    if not sys.stdin.isatty():
        from wizard.transport.prompts import NO_PROMPTS

        return NO_PROMPTS
    return TerminalPrompts()


def require_terminal_or_yes(yes: bool, verb: str) -> None:
    from wizard.errors import BadInputError

    if not yes and not sys.stdin.isatty():
        raise BadInputError(f"`{verb}` needs confirmation, and there is no terminal to ask on.",
                            "Review the plan with `plan --answers FILE`, then run again with --yes.")


def face(name: str):  # -> the face's module
    """A face, loaded only when it is used (Textual or questionary then loads with it).

    By name, because the faces build on the core and not the other way round: the core
    imports no screen (the import contracts in pyproject.toml hold it to that).
    """
    from importlib import import_module

    return import_module({"textual": "screens.app", "prompts": "screens.plain.flow"}[name])


# The verbs.

def run_wizard(args: argparse.Namespace) -> int:
    if args.plain:
        return face("prompts").run_prompts(state=args.state)
    return face("textual").run_app(state=args.state)


def cmd_plan(args: argparse.Namespace) -> int:
    answers = load_answers(args.answers)
    runner = open_runner(answers, state_for_answers(args.state, answers), read_only=True)
    with runner:
        plans = runner.plan(args.only)
    changes = sum(len(plan.changes) for plan in plans)
    print(f"\n{changes} change(s) planned over {len(plans)} step(s); nothing was changed.")
    # Preflight's checks decide whether apply may start (the final checks of verify fail, of
    # course, before anything is applied): a failed one stops apply, so plan says so and fails.
    failed = [(plan.step, check) for plan in plans if plan.step == "preflight"
              for check in plan.checks if not check.passed]
    if failed:
        from wizard.exit_codes import EXIT_STEP_FAILED
        from wizard.report import format_checks

        print(f"\n{len(failed)} check(s) failed in preflight; `apply` would stop at preflight:\n"
              f"{format_checks([check for _, check in failed])}\n\nFix what they say, then run `plan` again.")
        return EXIT_STEP_FAILED
    return EXIT_OK


def cmd_apply(args: argparse.Namespace) -> int:
    from wizard.engine.redact import redact

    answers = load_answers(args.answers)
    require_terminal_or_yes(args.yes, "apply")

    def confirm(plan) -> bool:
        return args.yes or confirm_on_terminal(f"Apply the {plan.step} changes above?")

    with open_runner(answers, state_for_answers(args.state, answers)) as runner:
        outcome = runner.apply(args.only, confirm=confirm)
        print(f"\n{redact(outcome.message)}")
        print(f"State: {runner.store.path}")
    return outcome.exit_status


def cmd_status(args: argparse.Namespace) -> int:
    import json

    from wizard.engine.state import StateStore
    from wizard.report import format_status
    from wizard.steps import available

    path = find_state_file(args.state)
    state = StateStore(path).load()
    names = available() + [name for name in state.steps if name not in available()]
    if args.json:
        steps = []
        for name in names:
            record = state.steps.get(name)
            steps.append({"name": name, "status": record.status if record else "pending",
                          "updated": record.updated if record else None,
                          "summary": record.summary if record else ""})
        print(json.dumps({"setup": state.setup, "state_file": str(path), "steps": steps}, indent=2))
    else:
        print(format_status(state, names, str(path)))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from wizard.engine.redact import redact
    from wizard.engine.state import redact_state
    from wizard.report import format_checks

    answers, path = setup_of(args)
    events = (lambda event: None) if args.json else None
    with open_runner(answers, path, read_only=not path.exists(), events=events) as runner:
        outcome = runner.verify()
    if args.json:
        print(json.dumps({"passed": outcome.exit_status == EXIT_OK,
                          "checks": [redact_state(check.to_dict()) for check in outcome.checks]}, indent=2))
    else:
        print(f"\n{format_checks(outcome.checks)}\n\n{redact(outcome.message)}")
    return outcome.exit_status


def cmd_runbook(args: argparse.Namespace) -> int:
    from wizard.engine.state import StateStore
    from wizard.runbook import build_runbook, write_runbook

    state = StateStore(find_state_file(args.state)).load()
    text = build_runbook(state, args.format)
    if args.output:
        write_runbook(text, args.output)
        print(f"Runbook written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from wizard.engine.redact import redact
    from wizard.engine.state import StateStore

    path = find_state_file(args.state)
    _, answers = answers_from_state(StateStore(path))
    require_terminal_or_yes(args.yes, "rollback")

    def confirm(step: str, actions) -> bool:
        print(f"\nRolling back {step} will:")
        for action in actions:
            print(f"  - [{action.target}] {redact(action.description)}")
        return args.yes or confirm_on_terminal(f"Undo these {len(actions)} change(s) of {step}?")

    with open_runner(answers, path) as runner:
        outcome = runner.rollback(args.step, confirm=confirm)
        print(f"\n{redact(outcome.message)}")
    return outcome.exit_status


def cmd_restart(args: argparse.Namespace) -> int:
    from wizard.engine.redact import redact
    from wizard.steps.restart import RestartStep

    answers, path = setup_of(args)
    require_terminal_or_yes(args.yes, "restart")

    def confirm(plan) -> bool:
        return args.yes or confirm_on_terminal("Restart the nodes as planned above?")

    only = tuple(dict.fromkeys(args.node)) if args.node else None
    with open_runner(answers, path) as runner:
        outcome = runner.run_step(RestartStep(only), confirm=confirm)
        print(f"\n{redact(outcome.message)}")
        print(f"State: {runner.store.path}")
    return outcome.exit_status


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wizard.errors import BadInputError
    from wizard.export import run_export

    if args.answers and args.state:
        raise BadInputError("`export` takes the answers from --answers FILE or from --state PATH, not both.",
                            "Drop one of them.")
    answers, _ = setup_of(args)
    written = run_export(args.format, answers, Path(args.output).expanduser(), terminal_prompts())
    print(f"Wrote {len(written)} file(s) to {args.output}:", file=sys.stderr)
    for path in written:
        print(f"  {path}", file=sys.stderr)
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from wizard.answers.schema import answers_schema_json

    sys.stdout.write(answers_schema_json())
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from wizard.answers.files import write_answers_template
    from wizard.answers.schema import SCHEMA_FILE_NAME
    from wizard.answers.template import answers_template

    if not args.output:
        sys.stdout.write(answers_template(args.balancer))
        print(f"# Save the schema beside it: {TOOL_NAME} schema > {SCHEMA_FILE_NAME}", file=sys.stderr)
        return EXIT_OK
    answers_path, schema_path = write_answers_template(args.output, args.balancer)
    print(f"Wrote {answers_path} (every key, commented) and its schema {schema_path}.\n"
          f"Fill in the required keys, then: {TOOL_NAME} plan --answers {answers_path}", file=sys.stderr)
    return EXIT_OK


def cmd_lab(args: argparse.Namespace) -> int:
    """Start the lab, open a face on it (or apply headless), and stop the lab whatever happens."""
    from wizard.errors import BadInputError
    from wizard.lab.cluster import Lab, default_lab_root, run_headless, stop_on_signals

    if args.state:
        raise BadInputError("`lab` keeps its state in the lab's own folder; --state does not apply to it.",
                            "Run `confluence-lb-wizard lab` without --state; it comes back to its own state.")
    if args.only and not args.headless:
        raise BadInputError("--only goes with --headless: the wizard itself offers every step.",
                            "Run `confluence-lb-wizard lab --headless --only STEP ...`, or drop --only.")
    if not args.headless and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise BadInputError("`confluence-lb-wizard lab` opens the wizard on the lab, which needs a terminal, "
                            "and there is none here.",
                            "Run `confluence-lb-wizard lab --headless` to start the lab, apply every step with "
                            "--yes, print the result and stop.")
    lab = Lab(default_lab_root(args.balancer), nodes=args.nodes, balancer=args.balancer, resume=not args.fresh)
    try:
        with stop_on_signals():
            lab.start()
            print(lab.describe(), flush=True)
            if args.headless:
                return run_headless(lab, args.only)
            if args.plain:
                lab.prepare_state()
                return face("prompts").run_prompts(state=str(lab.state_path))
            app = face("textual").create_app(state=lab.state_path, answers_file=str(lab.answers_path), lab=lab)

            def quit_app() -> None:
                # A signal handler runs between two steps of the app's event loop: hand the
                # exit to the loop rather than raise in the middle of it.
                import asyncio

                try:
                    asyncio.get_running_loop().call_soon_threadsafe(
                        lambda: app.exit(return_code=EXIT_INTERRUPTED))
                except RuntimeError:
                    raise KeyboardInterrupt from None

            with stop_on_signals(quit_app):
                app.run()
            return app.return_code or EXIT_OK
    except KeyboardInterrupt:
        print(f"\n{TOOL_NAME}: interrupted; stopping the lab.", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        lab.stop()
        print(lab.farewell(), file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
