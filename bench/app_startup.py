"""App start-up: time to the first rendered page and to the first verdict, in a real browser.

    python bench/app_startup.py [--runs-dir models] [--image <face.jpg>]

Starts ``streamlit run streamlit_app.py`` on a free port (headless) and drives Chromium with Playwright:

1. process start -> server answers /_stcore/health;
2. browser opens the app -> the Data explorer page has rendered its title and chart (aim <= 2 s);
3. a second visit (warm server, new session) -> first page rendered;
4. Detect page: file set on the uploader -> verdict shown (the first one loads TensorFlow and the model);
5. a second image -> verdict (warm detector).

Also times the entry point and first page through AppTest in a fresh interpreter (no browser).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"streamlit exited: {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit("streamlit did not start")


def apptest_first_run() -> float:
    code = (
        "import time; t = time.perf_counter()\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(REPO / 'streamlit_app.py')!r}, default_timeout=120).run()\n"
        "assert not at.exception, at.exception\n"
        "print(time.perf_counter() - t)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        sys.exit(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs-dir", default=os.environ.get("DFD_RUNS_DIR", str(REPO / "models")))
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--image", default=None)
    args = ap.parse_args()
    images = sorted((Path(args.data) / "faces-140k-mini" / "real-vs-fake" / "test").rglob("*.jpg"))
    first_image = Path(args.image) if args.image else images[0]
    second_image = images[1] if len(images) > 1 else first_image

    from playwright.sync_api import sync_playwright

    apptest_s = apptest_first_run()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DFD_RUNS_DIR": args.runs_dir}
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
    browser.new_page().close()  # the browser is up before the clock starts
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rows: list[tuple[str, float]] = []
    try:
        wait_health(url, proc)
        rows.append(("process start -> server healthy", time.perf_counter() - t0))
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        t1 = time.perf_counter()
        page.goto(url)
        page.get_by_role("heading", name="Data explorer").wait_for(timeout=120_000)
        rows.append(("open app -> first page title (cold server)", time.perf_counter() - t1))
        rows.append(("process start -> first page title", time.perf_counter() - t0))
        page.locator(".js-plotly-plot").first.wait_for(timeout=120_000)
        rows.append(("open app -> counts chart drawn (cold server)", time.perf_counter() - t1))
        rows.append(("process start -> counts chart drawn", time.perf_counter() - t0))
        page2 = browser.new_page(viewport={"width": 1300, "height": 1000})
        t2 = time.perf_counter()
        page2.goto(url)
        page2.get_by_role("heading", name="Data explorer").wait_for(timeout=120_000)
        rows.append(("new session -> first page title (warm server)", time.perf_counter() - t2))
        page2.locator(".js-plotly-plot").first.wait_for(timeout=120_000)
        rows.append(("new session -> counts chart drawn (warm server)", time.perf_counter() - t2))
        page2.close()

        t3 = time.perf_counter()
        page.goto(f"{url}/detect")
        page.get_by_role("heading", name="Detect").wait_for(timeout=60_000)
        uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]')
        with contextlib.suppress(Exception):  # no run with a model: the page says so instead
            uploader.wait_for(state="attached", timeout=30_000)
        if uploader.count() == 0:
            rows.append(("(no run with a model: no verdict timing)", float("nan")))
        else:
            t4 = time.perf_counter()
            uploader.set_input_files(str(first_image))
            page.get_by_text("P(fake) =").first.wait_for(timeout=180_000)
            rows.append(("Detect: upload -> first verdict (loads TF + model)", time.perf_counter() - t4))
            rows.append(("process start -> first verdict (after the steps above)", time.perf_counter() - t0))
            rows.append(("Detect page opened -> first verdict", time.perf_counter() - t3))
            t5 = time.perf_counter()
            uploader.set_input_files([str(first_image), str(second_image)])
            page.get_by_text(second_image.name).first.wait_for(timeout=60_000)
            page.wait_for_function("document.querySelectorAll('[data-testid=stAlertContentSuccess],"
                                   "[data-testid=stAlertContentError]').length >= 2", timeout=60_000)
            rows.append(("Detect: another image -> verdict (warm)", time.perf_counter() - t5))
    finally:
        browser.close()
        pw.stop()
        proc.terminate()
        proc.wait(timeout=30)
    print(f"runs: {args.runs_dir}; {os.cpu_count()} CPU cores")
    print(f"{'AppTest: entry point + first page, fresh interpreter':<56}{apptest_s:>8.2f} s")
    for label, secs in rows:
        print(f"{label:<56}{secs:>8.2f} s")


if __name__ == "__main__":
    main()
