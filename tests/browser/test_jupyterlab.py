"""notebooks/02-inspect.ipynb in a real JupyterLab, seen through headless Chromium.

Starts JupyterLab on a free port with a token (root: a temporary folder holding a copy
of the notebook), opens the notebook with Playwright (Chromium from /usr/bin/chromium;
no browser is downloaded), runs every cell with Run -> Run All Cells, waits until each
code cell has its execution count and the kernel is idle, then checks the rendered
outputs in the DOM and keeps a screenshot. Run through tests/browser/run.sh, which sets
up the temporary Jupyter folders and the kernelspec.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "02-inspect.ipynb"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("ARTIFACTS", ROOT / "build" / "browser"))
TMP = Path(os.environ.get("KILN_BROWSER_TMP") or "/tmp/kiln-browser-tests")
TOKEN = "kiln-browser-test-" + os.urandom(8).hex()
SERVER_START_S = 120     # JupyterLab's first start can take 20-40 s on a cold machine
RUN_ALL_S = 180          # every cell of the notebook, kernel start included

# JupyterLab user settings: no news or update toasts over the notebook, and every cell
# kept in the DOM (no windowing), so the checks below see all outputs.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings":
        {"windowingMode": "none"},
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def code_cells(nb_path):
    nb = json.loads(nb_path.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.fixture(scope="module")
def server():
    """JupyterLab on a free port; always killed (its whole process group) at the end."""
    root_dir = TMP / "root"
    root_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(NOTEBOOK, root_dir / NOTEBOOK.name)
    settings = Path(os.environ.get("JUPYTERLAB_SETTINGS_DIR", TMP / "lab-settings"))
    for rel, value in LAB_SETTINGS.items():
        plugin, name = rel.rsplit("/", 1)
        (settings / plugin).mkdir(parents=True, exist_ok=True)
        (settings / plugin / name).write_text(json.dumps(value))
    port = free_port()
    log_path = TMP / "jupyterlab.log"
    log = open(log_path, "w")
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", "--port-retries=0", f"--ServerApp.token={TOKEN}",
           f"--ServerApp.root_dir={root_dir}",
           "--LabApp.news_url=", "--allow-root"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings)))
    base = f"http://127.0.0.1:{port}"

    def log_tail():
        log.flush()
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])

    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with status {proc.returncode} while starting:\n"
                            + log_tail())
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer on {base} within {SERVER_START_S} s:\n"
                            + log_tail())
            time.sleep(0.5)
        yield {"base": base, "log_tail": log_tail}
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass
        log.close()


@pytest.fixture(scope="module")
def page(server):
    """The notebook opened in JupyterLab with every cell run; screenshot kept at the end."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 1000})
            console = []
            frames = []   # kernel messages seen by the page, for failure messages
            pg.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(
                f if isinstance(f, str) else f.decode("utf-8", "replace"))))
            pg.kiln_frames = frames
            pg.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
            try:
                run_notebook(pg, server)
            except Exception:
                shot = ARTIFACTS / "02-inspect-failure.png"
                pg.screenshot(path=str(shot))
                print(f"screenshot at failure: {shot}\nbrowser console errors:\n"
                      + "\n".join(console[-20:]) + "\nJupyterLab log:\n" + server["log_tail"]())
                raise
            yield pg
            screenshot(pg, ARTIFACTS / "02-inspect.png")
        finally:
            browser.close()


def run_notebook(pg, server):
    pg.set_default_timeout(60_000)
    pg.goto(f"{server['base']}/lab/tree/{NOTEBOOK.name}?token={TOKEN}", timeout=120_000)
    pg.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    # the kernel: JupyterLab picks "kiln" from the notebook's metadata; accept the
    # kernel picker if it asks anyway (it preselects the notebook's kernel)
    deadline = time.monotonic() + 90
    while True:
        name = pg.locator(".jp-NotebookPanel-toolbar .jp-KernelName").first
        text = name.inner_text().strip() if name.count() else ""
        if text == "Kiln":
            break
        dialog = pg.locator(".jp-Dialog")
        if dialog.count():
            body = dialog.first.inner_text()
            if "Kiln" not in body:
                pytest.fail(f"JupyterLab's kernel picker does not offer Kiln:\n{body}")
            dialog.first.locator(".jp-mod-accept").click()
        if time.monotonic() > deadline:
            pytest.fail(f"the notebook's kernel is {text!r}, not 'Kiln' (kernelspec not found?)")
        time.sleep(0.5)
    wait_idle(pg, 90, "the Kiln kernel did not become idle after starting")
    # Run -> Run All Cells
    pg.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    pg.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    n = len(code_cells(NOTEBOOK))
    deadline = time.monotonic() + RUN_ALL_S
    while True:
        prompts = pg.eval_on_selector_all(
            ".jp-Notebook .jp-CodeCell .jp-InputArea-prompt", "els => els.map(e => e.textContent)")
        done = [p for p in prompts if re.search(r"\[\d+\]", p)]
        if len(prompts) == n and len(done) == n:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"after {RUN_ALL_S} s only {len(done)} of {n} code cells have run; "
                        f"prompts: {prompts}")
        time.sleep(0.5)
    wait_idle(pg, 60, "the kernel is still busy after every cell has its execution count")
    pg.wait_for_timeout(1000)  # let renderers (images) finish


def wait_idle(pg, seconds, message):
    deadline = time.monotonic() + seconds
    while True:
        status = pg.eval_on_selector_all(
            ".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator",
            "els => els.map(e => e.getAttribute('data-status'))")
        if status and status[0] == "idle":
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{message} (execution indicator: {status})")
        time.sleep(0.5)


def screenshot(pg, path):
    """The whole notebook: the viewport grows to the notebook's height (capped)."""
    height = pg.evaluate("""() => {
        const nb = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer')
                || document.querySelector('.jp-NotebookPanel-notebook');
        return nb ? nb.scrollHeight : 1000; }""")
    pg.set_viewport_size({"width": 1280, "height": max(1000, min(int(height) + 200, 12000))})
    pg.evaluate("""() => document.querySelectorAll('.jp-NotebookPanel .jp-WindowedPanel-outer,'
                                                 + ' .jp-NotebookPanel-notebook')
                          .forEach(e => { e.scrollTop = 0; })""")
    pg.wait_for_timeout(500)
    pg.screenshot(path=str(path))
    print(f"screenshot: {path}")


def outputs(pg, code_contains):
    """The output area of the first code cell whose source contains code_contains."""
    sources = code_cells(NOTEBOOK)
    idx = next((i for i, s in enumerate(sources) if code_contains in s), None)
    assert idx is not None, f"no code cell of {NOTEBOOK.name} contains {code_contains!r}"
    return pg.locator(".jp-Notebook .jp-CodeCell").nth(idx).locator(".jp-OutputArea")


def has_cell(code_contains):
    return any(code_contains in s for s in code_cells(NOTEBOOK))


def test_no_errors(page):
    errors = page.locator(".jp-Notebook .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    texts = [errors.nth(i).inner_text() for i in range(errors.count())]
    assert not texts, "cells wrote errors or to stderr:\n" + "\n---\n".join(texts)


def test_tensor_result(page):
    out = outputs(page, "reshape(arange(12), 3, 4)")
    text = out.inner_text()
    assert "16.5" in text or "5.5" in text, f"the 3x4 tensor is not in its output:\n{text}"
    tables = out.locator(".jp-RenderedHTMLCommon table")
    assert tables.count() >= 1, f"the 3x4 tensor is not shown as an HTML table:\n{out.inner_html()[:2000]}"
    assert tables.first.locator("td").count() >= 12, "the tensor's HTML table has fewer than 12 cells"


def test_whos(page):
    out = outputs(page, "%whos")
    text = out.inner_text()
    for name in ("a", "w", "steps", "lr", "name"):
        assert re.search(rf"(^|\s){name}(\s|$)", text, re.M), f"%whos does not list {name!r}:\n{text}"
    table = out.locator(".jp-RenderedHTMLCommon table")
    assert table.count() >= 1, f"%whos rendered no HTML table:\n{out.inner_html()[:2000]}"
    assert table.first.locator("tr").count() >= 6, "the %whos table has fewer rows than variables"


@pytest.mark.skipif(not has_cell("plot("), reason="the notebook has no plot cell")
def test_svg_plot(page):
    out = outputs(page, "plot(")
    svg = out.locator(".jp-RenderedSVG svg, img[src^='data:image/svg']")
    assert svg.count() >= 1, f"no SVG rendered in the plot cell's output:\n{out.inner_html()[:2000]}"


@pytest.mark.skipif(not has_cell("imshow("), reason="the notebook has no imshow cell")
def test_png_image(page):
    out = outputs(page, "imshow(")
    img = out.locator("img[src^='data:image/png']")
    assert img.count() >= 1, f"no <img> with a PNG data URL in the imshow cell's output:\n{out.inner_html()[:2000]}"
    size = img.first.evaluate("e => [e.naturalWidth, e.naturalHeight]")
    assert size[0] > 0 and size[1] > 0, f"the PNG did not decode in the browser (size {size})"


def test_display(page):
    out = outputs(page, "update_display(")
    text = out.inner_text()
    # display(a, id) then update_display(a * i, id) for i = 1..3: JupyterLab must show one
    # output, replaced in place by the last update (a * 3: 13.5 and 16.5 appear only there).
    assert "13.5" in text and "16.5" in text, f"the display was not replaced by the last update (a * 3):\n{text}"
    n = out.locator(".jp-OutputArea-child").count()
    seen = [f[:300] for f in getattr(page, "kiln_frames", []) if "display_data" in f]
    assert n == 1, (f"display + update_display gave {n} outputs, not 1:\n{text}\n"
                    "display messages received:\n" + "\n".join(seen))


def test_timing(page):
    assert "Wall time" in outputs(page, "%time ").inner_text()
    assert re.search(r"±.*per loop", outputs(page, "%timeit ").inner_text())
