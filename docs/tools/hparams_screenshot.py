"""Screenshot of TensorBoard's HParams dashboard over a sweep, in a real (headless) browser.

    python docs/tools/hparams_screenshot.py runs/sweeps/cifar_optimizers docs/hparams.png

Starts TensorBoard on 127.0.0.1, opens its HParams tab in Chromium through Playwright (Debian's
``chromium`` package; ``pip install playwright``), waits for the table to fill, and saves a PNG.
"""

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SHOWN_METRICS = {"run/test_accuracy": True, "validation.epoch_accuracy": True, "train.epoch_epoch_seconds": False,
                 "train.epoch_learning_rate": False, "train.epoch_rss_mb": False, "train.epoch_starter_loss": False}


def constant_hparams(url):
    """The hyperparameters with one value in every run (TensorBoard's own 'differs' flag)."""
    request = urllib.request.Request(f"{url}/data/plugin/hparams/experiment", b'{"experimentName": ""}',
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        infos = json.loads(response.read())["hparamInfos"]
    return [info["name"] for info in infos if not info.get("differs")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir")
    parser.add_argument("out")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--view", default="table", choices=["table", "parallel-coordinates", "scatter"])
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    board = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", args.logdir, "--host", "127.0.0.1",
                              "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):  # wait until it serves
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                time.sleep(1)
        time.sleep(10)  # let it read the event files
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 2000, "height": 1150})
            page.goto(f"{url}/#hparams", wait_until="networkidle")
            page.wait_for_timeout(8000)
            # Show what the sweep varies and what it measured, not what it holds fixed or bookkeeping.
            for name, wanted in [*((n, False) for n in constant_hparams(url)), *SHOWN_METRICS.items()]:
                box = page.get_by_role("checkbox", name=name, exact=True)
                if box.count() == 1 and box.is_checked() != wanted:
                    box.click()
                    page.wait_for_timeout(300)
            if args.view != "table":
                page.get_by_text("PARALLEL COORDINATES VIEW" if args.view == "parallel-coordinates"
                                 else "SCATTER PLOT MATRIX VIEW").click()
                page.wait_for_timeout(5000)
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        board.terminate()
        board.wait(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
