"""Run a notebook top to bottom, render it as HTML (nbconvert) and screenshot the page in a real browser.

    python docs/tools/notebook_screenshot.py notebooks/01_lenet5_cifar.ipynb docs/assets/notebook-lenet5.png

Executes the notebook in a fresh Jupyter kernel (nbclient) in a temporary folder, with the assignment's
settings unless ``--quick`` (``TF_ASSIGN2_NOTEBOOK_QUICK=1``), prints each cell's wall time, converts
the result to HTML and opens it in headless Chromium through Playwright (Debian's ``chromium``;
``pip install playwright nbconvert``), saving the whole page, or its first ``--height`` pixels, as a
PNG. The executed notebook is not kept in the repository: notebooks are stored without outputs.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path


def execute(path, folder, quick):
    import nbclient
    import nbformat

    if quick:
        os.environ["TF_ASSIGN2_NOTEBOOK_QUICK"] = "1"
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=3600, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    seconds = []
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            started = time.perf_counter()
            client.execute_cell(cell, index)
            seconds.append(round(time.perf_counter() - started, 1))
    print(f"{Path(path).name}: {len(notebook.cells)} cells, {sum(seconds):.0f} s; per cell {seconds}")
    return notebook


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook")
    parser.add_argument("out", help="the PNG to write")
    parser.add_argument("--quick", action="store_true", help="tiny settings (TF_ASSIGN2_NOTEBOOK_QUICK=1)")
    parser.add_argument("--height", type=int, default=None, help="only the first HEIGHT pixels of the page")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    import nbconvert
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="notebook-") as folder:
        notebook = execute(args.notebook, folder, args.quick)
        html, _ = nbconvert.HTMLExporter().from_notebook_node(notebook)
        page_path = Path(folder) / "notebook.html"
        page_path.write_text(html)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": args.height or 1200})
            page.goto(page_path.as_uri(), wait_until="networkidle")
            page.screenshot(path=args.out, full_page=args.height is None)
            browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
