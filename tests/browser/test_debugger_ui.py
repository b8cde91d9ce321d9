"""JupyterLab's visual debugger on the Kiln kernel, seen through headless Chromium.

Opens notebooks/05-debugging.ipynb in the JupyterLab that test_jupyterlab.py's `server`
fixture starts, switches the debugger on with the notebook toolbar's bug button, runs
the cell defining smooth() and energy(), sets a breakpoint by clicking the gutter of
smooth()'s line 5, runs the cell that calls energy(), and checks the debugger sidebar:
the call stack (smooth, energy, the cell), the variables panel (smooth's locals with
their values, the tensor acc expanded to shape, dtype, device), then next, continue, removing the breakpoint and continuing to the end.
The screenshot of the stop (variables panel included) is kept in ARTIFACTS as
05-debugger.png. Run through tests/browser/run.sh.
"""
import re
import shutil
import time

import pytest
from playwright.sync_api import sync_playwright

from test_jupyterlab import ARTIFACTS, CHROMIUM, ROOT, TMP, TOKEN, server  # noqa: F401 (a fixture)

NOTEBOOK = ROOT / "notebooks" / "05-debugging.ipynb"
STEP_S = 60  # each wait for the debugger's panels
# the notebook panel in front (a workspace restored from another test may hold more)
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def wait_for(what, fn, seconds=STEP_S):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what} (last seen: {last!r})")


def wait_idle(pg, seconds, message):
    wait_for(message, lambda: pg.eval_on_selector_all(
        f"{PANEL} .jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator",
        "els => els.map(e => e.getAttribute('data-status'))") == ["idle"], seconds)


def poll(fn, seconds):
    """fn() once it is true within seconds, else None (no failure)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.3)
    return None


def open_notebook(pg, server):
    pg.set_default_timeout(60_000)
    # a workspace of its own, reset: only this notebook is open
    pg.goto(f"{server['base']}/lab/workspaces/kiln-debugger/tree/{NOTEBOOK.name}?reset&token={TOKEN}",
            timeout=120_000)
    pg.wait_for_selector(f"{PANEL} .jp-Notebook .jp-Cell", timeout=120_000)
    deadline = time.monotonic() + 90
    while True:
        name = pg.locator(f"{PANEL} .jp-NotebookPanel-toolbar .jp-KernelName").first
        if name.count() and name.inner_text().strip() == "Kiln":
            break
        dialog = pg.locator(".jp-Dialog")
        if dialog.count():
            dialog.first.locator(".jp-mod-accept").click()
        if time.monotonic() > deadline:
            pytest.fail("the notebook's kernel is not Kiln")
        time.sleep(0.5)
    wait_idle(pg, 90, "the Kiln kernel did not become idle after starting")


def run_cell(pg, cell):
    cell.locator(".cm-content").first.click()
    pg.keyboard.press("Shift+Enter")


def prompt(cell):
    return cell.locator(".jp-InputArea-prompt").first.inner_text()


def debugger_ready(pg, cell):
    """The debugger is on for the notebook: the sidebar's title names it and the cell's
    editor has the breakpoint gutter."""
    title = pg.locator(".jp-DebuggerSidebar")
    return (title.count() and "05-debugging" in title.first.inner_text().lower()
            and cell.locator(".cm-gutter.cm-breakpoint-gutter").count() > 0)


def ensure_debugger(pg, bug, cell):
    """Switches the debugger on with the bug button unless it is on. A click while the
    kernel connection settles can leave it off again, or pressed with no session (the
    sidebar titled "-"): then the button goes off and on again."""
    if debugger_ready(pg, cell):
        return
    for attempt in range(3):
        if attempt:
            print(f"the debugger was not on for the notebook: the bug button again (try {attempt + 1})")
        if bug.get_attribute("aria-pressed") == "true":
            bug.click()  # off, to start again
            pg.wait_for_timeout(1000)
        bug.click()
        pg.wait_for_selector(".jp-DebuggerSidebar", state="visible")
        if poll(lambda: debugger_ready(pg, cell), 20):
            return
    pytest.fail("three clicks of the bug button started no debugger session for the notebook")


def click_gutter(pg, cell, line):
    """Clicks the breakpoint gutter beside the line-th line (1-based) of cell's editor."""
    box = cell.locator(".cm-line").nth(line - 1).bounding_box()
    gutter = cell.locator(".cm-gutter.cm-breakpoint-gutter").first.bounding_box()
    assert box and gutter, "the cell has no breakpoint gutter (is the debugger on?)"
    pg.mouse.click(gutter["x"] + gutter["width"] / 2, box["y"] + box["height"] / 2)


def texts(pg, selector):
    return pg.eval_on_selector_all(selector, "els => els.map(e => e.textContent.trim())")


def variables(pg):
    """{name: detail} of the variables panel's visible rows."""
    return dict(pg.eval_on_selector_all(
        ".jp-DebuggerVariables-body .jp-DebuggerVariables-name",
        """els => els.map(e => [e.textContent.trim(),
                               (e.parentElement.querySelector('.jp-DebuggerVariables-detail') || {}).textContent || ''])"""))


def toolbar_button(pg, caption):
    """A button of the debugger sidebar (the call stack's toolbar) by its tooltip."""
    button = pg.locator(f".jp-DebuggerSidebar [title^='{caption}']").first
    if not button.count():
        titles = pg.eval_on_selector_all(".jp-DebuggerSidebar [title]", "els => els.map(e => e.title)")
        pytest.fail(f"no {caption!r} button in the debugger sidebar; tooltips there: {titles}")
    return button


def test_debugger_in_jupyterlab(server):
    shutil.copy(NOTEBOOK, TMP / "root" / NOTEBOOK.name)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        pg = browser.new_page(viewport={"width": 1500, "height": 1000})
        try:
            flow(pg, server)
        except BaseException:  # pytest.fail's Failed too
            shot = ARTIFACTS / "05-debugger-failure.png"
            pg.screenshot(path=str(shot))
            print(f"screenshot at failure: {shot}\nJupyterLab log:\n" + server["log_tail"]())
            raise
        finally:
            browser.close()


def flow(pg, server):
    open_notebook(pg, server)
    bug = pg.locator(f"{PANEL} .jp-NotebookPanel-toolbar .jp-DebuggerBugButton").first
    wait_for("the debugger button to be enabled", lambda: bug.count() and bug.is_enabled()
             and "disabled" not in (bug.get_attribute("class") or ""))
    cells = pg.locator(f"{PANEL} .jp-Notebook .jp-CodeCell")
    ensure_debugger(pg, bug, cells.nth(0))
    define, call = cells.nth(0), cells.nth(1)
    run_cell(pg, define)
    wait_for("the defining cell to run", lambda: re.search(r"\[\d+\]", prompt(define)))
    wait_idle(pg, 60, "the kernel is busy after defining the functions")

    # a breakpoint on `acc = acc * momentum + g;` (line 5 of the cell); the editor may
    # still be settling after the run, so a click that did not register is repeated
    for attempt in range(3):
        ensure_debugger(pg, bug, define)
        click_gutter(pg, define, 5)
        if poll(lambda: any("5" in t for t in texts(pg, ".jp-DebuggerBreakpoint-line")), 10):
            break
    else:
        pytest.fail("three clicks in the gutter set no breakpoint")

    run_cell(pg, call)
    frames = wait_for("the call stack at the breakpoint",
                      lambda: (lambda f: f if "smooth" in f and "energy" in f else None)(
                          texts(pg, ".jp-DebuggerCallstackFrame-name")))
    assert frames[0] == "smooth", frames
    seen = wait_for("smooth()'s locals in the variables panel",
                    lambda: (lambda v: v if {"grads", "momentum", "acc", "step", "g"} <= set(v) else None)(
                        variables(pg)))
    assert seen["step"].strip() == "0", seen
    assert seen["momentum"].strip() == "0.9", seen
    # expand the tensor acc: its shape, dtype, device and statistics
    pg.locator(".jp-DebuggerVariables-body .jp-DebuggerVariables-name", has_text=re.compile(r"^acc$")).first.click()
    kids = wait_for("acc's children (shape, dtype, device)",
                    lambda: (lambda v: v if {"shape", "dtype", "device", "mean"} <= set(v) else None)(variables(pg)))
    assert (kids["shape"].strip(), kids["dtype"].strip(), kids["device"].strip()) == ("[4]", "f32", "cpu"), kids
    pg.wait_for_timeout(500)
    pg.screenshot(path=str(ARTIFACTS / "05-debugger.png"))
    print(f"screenshot: {ARTIFACTS / '05-debugger.png'}")

    # next: to `tensor g = grads[step];` of the next iteration (step 1)
    toolbar_button(pg, "Next").click()
    wait_for("step to become 1 after next",
             lambda: variables(pg).get("step", "").strip() == "1")
    # continue: the breakpoint again, same iteration
    toolbar_button(pg, "Continue").click()
    wait_for("the stop at the breakpoint again",
             lambda: (lambda f: f and f[0] == "smooth")(texts(pg, ".jp-DebuggerCallstackFrame-name"))
             and variables(pg).get("step", "").strip() == "1")
    # remove the breakpoint (click the gutter again), continue: the cell finishes
    click_gutter(pg, define, 5)
    wait_for("the breakpoint to go", lambda: not texts(pg, ".jp-DebuggerBreakpoint-line"))
    toolbar_button(pg, "Continue").click()
    wait_for("the calling cell to finish", lambda: re.search(r"\[\d+\]", prompt(call)))
    wait_idle(pg, 60, "the kernel is busy after the debugged cell")
    out = call.locator(".jp-OutputArea").inner_text()
    assert "true" in out, out
