"""How quick the Textual face is: time to first screen, and the longest event-loop stall while steps apply.

Prints one line per measure and exits 0 (a benchmark, not a timed test):

* ``first screen``: a fresh interpreter imports the app and runs it headless until its
  first screen is mounted, against the same for a bare ``textual.app.App``; medians of
  interleaved rounds, and their ratio (aim under 1.5).
* ``event-loop stall``: the lab (2 simulated nodes behind the real Apache httpd) with every
  step applied through the app, each plan confirmed as an admin would; a 10 ms timer in
  the app records the longest gap between its ticks while the engine works in its thread
  worker (aim under 100 ms). Skipped, with the reason, when Apache is not installed.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before any import the measure should include

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROUNDS = 7
TICK = 0.01


# --- time to first screen ---------------------------------------------------------------


async def _first_screen(kind: str) -> None:
    if kind == "bare":
        from textual.app import App

        app = App()
    else:
        from screens.app import create_app

        app = create_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()  # the first screen is mounted and drawn once
        print(f"{(time.perf_counter() - STARTED) * 1000:.1f}", flush=True)


def first_screen_ms(kind: str, state_home: str) -> float:
    done = subprocess.run([sys.executable, __file__, "--first-screen", kind], capture_output=True, text=True,
                          check=True, env={**os.environ, "XDG_STATE_HOME": state_home})
    return float(done.stdout.strip().splitlines()[-1])


def bench_first_screen() -> None:
    with tempfile.TemporaryDirectory(prefix="clbw-bench-") as state_home:
        first_screen_ms("bare", state_home), first_screen_ms("wizard", state_home)  # warm the page cache
        bare, wizard = [], []
        for _ in range(ROUNDS):
            bare.append(first_screen_ms("bare", state_home))
            wizard.append(first_screen_ms("wizard", state_home))
    ratio = statistics.median(wizard) / statistics.median(bare)
    print(f"bench_ui: first screen {statistics.median(wizard):.0f} ms, bare Textual app "
          f"{statistics.median(bare):.0f} ms, ratio {ratio:.2f} (aim < 1.5)", flush=True)


# --- the longest stall while the lab's steps apply ------------------------------------------


async def _apply_lab_steps(lab: object) -> tuple[float, int, str]:
    from screens.app import create_app
    from screens.dialogs.confirm_plan import ConfirmPlanScreen
    from screens.steps.summary import SummaryScreen

    app = create_app(state=lab.state_path, answers_file=lab.answers_path, lab=lab)  # type: ignore[attr-defined]
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        if app.busy:
            gaps.append(now - last[0])
        last[0] = now

    admin_done = False
    async with app.run_test(size=(100, 30)) as pilot:
        app.set_interval(TICK, tick)
        await pilot.pause()
        await pilot.press("a")  # every step, in order
        deadline = time.monotonic() + 180
        while not isinstance(app.screen, SummaryScreen) and time.monotonic() < deadline:
            if isinstance(app.screen, ConfirmPlanScreen) and app.screen.is_mounted:
                await pilot.press("y")
            progress = app.session.progress.get("base-url") if app.session else None
            if not admin_done and progress is not None and "waiting for the base URL" in str(progress):
                # Play the admin who changes the base URL in Confluence (a request to the lab node).
                await asyncio.to_thread(lab.set_base_url_as_admin)  # type: ignore[attr-defined]
                admin_done = True
            if not app.busy and app.session is not None and app.session.first_not_done() is not None \
                    and not isinstance(app.screen, ConfirmPlanScreen):
                break  # a step stopped (failed or declined): report what was measured
            await pilot.pause(0.05)
        await pilot.pause(0.2)  # let the last screen settle before the app closes
        verdict = ("every step done" if app.session and app.session.first_not_done() is None
                   else f"stopped before {app.session.first_not_done() if app.session else '?'}")
    return max(gaps, default=0.0), len(gaps), verdict


def bench_stall() -> None:
    from wizard.errors import WizardError
    from wizard.lab.cluster import Lab

    with tempfile.TemporaryDirectory(prefix="clbw-bench-lab-") as root:
        os.environ["XDG_STATE_HOME"] = str(Path(root) / "xdg")
        try:
            lab = Lab(root=Path(root) / "lab", nodes=2).start()
        except WizardError as error:
            print(f"bench_ui: event-loop stall not measured: {error.message}", flush=True)
            return
        try:
            largest, ticks, verdict = asyncio.run(_apply_lab_steps(lab))
        finally:
            lab.stop()
    print(f"bench_ui: largest event-loop stall while the lab's steps apply {largest * 1000:.0f} ms "
          f"({ticks} ticks of {TICK * 1000:.0f} ms, {verdict}; aim < 100 ms)", flush=True)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--first-screen":
        asyncio.run(_first_screen(sys.argv[2]))
        return
    bench_first_screen()
    bench_stall()


if __name__ == "__main__":
    main()
