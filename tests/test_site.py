"""The course site (``make site``): built from executed notebooks without running them, and checked page by page in
headless Chromium. The browser tests use the system's Chromium (.ci/install-browser installs it, run by `make test`)
and are skipped, saying so, when it is missing."""

import base64
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from seedlings_utils.config import GITHUB_REF, GITHUB_REPO
from tools import site
from tools.lessons import lesson_notebooks

REPO = Path(__file__).resolve().parents[1]
WIDGET = "application/vnd.jupyter.widget-view+json"


def png(green: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (30, green, 60)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def executed_notebook(name: str, data_dir: str = "/home/someone/seedlings-data") -> dict:
    """A small notebook as papermill leaves it: title with Colab button, parameters, injected parameters, a
    progress-bar widget, TensorFlow's start-up noise and a real warning on stderr, a figure and a table."""
    colab = f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{GITHUB_REF}/notebooks/{name}"
    md = lambda text: {"cell_type": "markdown", "metadata": {}, "source": text}  # noqa: E731
    code = lambda text, outputs=(), tags=(): {  # noqa: E731
        "cell_type": "code", "metadata": {"tags": list(tags)}, "execution_count": 1, "source": text,
        "outputs": list(outputs)}
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "papermill": {"parameters": {"DATA_DIR": data_dir}},
        "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {
            "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_a", "IPY_MODEL_b", "IPY_MODEL_c"]}},
            "a": {"model_name": "HTMLModel", "state": {"value": "synthetic seedlings: 100%"}},
            "b": {"model_name": "FloatProgressModel", "state": {"value": 280, "max": 280}},
            "c": {"model_name": "HTMLModel", "state": {"value": " 280/280 [00:01&lt;00:00, 190img/s]"}}}}}},
        "cells": [
            md(f"# {name[:2]} · A lesson\n\n<a href=\"{colab}\"><img src=\"https://www.tensorflow.org/images/"
               "colab_logo_32px.png\" />Run in Google Colab</a>\n\nSee [the next one](06_train_and_evaluate_a_cnn"
               ".ipynb) and [the code](../seedlings_utils/dataset.py)."),
            code("DATA_DIR = \"\"\nEPOCHS = 40", tags=["parameters"]),
            code(f"# Parameters\nDATA_DIR = \"{data_dir}\"\nEPOCHS = 3\n", tags=["injected-parameters"]),
            code("make_data()", [
                {"output_type": "display_data", "metadata": {}, "data": {
                    WIDGET: {"model_id": "box", "version_major": 2, "version_minor": 0}, "text/plain": "0%|"}},
                {"output_type": "stream", "name": "stderr", "text": "WARNING: All log messages before absl::"
                 "InitializeLog() is called are written to STDERR\nI0000 cudart_stub.cc:31] no cuda\n"},
                {"output_type": "stream", "name": "stderr", "text": "UserWarning: you should call super()\n"},
                {"output_type": "stream", "name": "stdout", "text": f"{data_dir}/raw: 240 images\n"}]),
            code("plot()", [{"output_type": "display_data", "metadata": {}, "data": {
                "image/png": png(int(name[:2]) * 10), "text/plain": "<Figure>"}}]),
            code("table()", [{"output_type": "execute_result", "execution_count": 1, "metadata": {}, "data": {
                "text/html": "<table><tr><th>species</th><th>n</th></tr><tr><td>Maize</td><td>11</td></tr></table>",
                "text/plain": "table"}}]),
        ]}


def write_executed(folder: Path) -> Path:
    """Two real lesson names with small executed notebooks (the checker knows the repository's lessons)."""
    folder.mkdir()
    for path in lesson_notebooks()[4:6]:
        (folder / path.name).write_text(json.dumps(executed_notebook(path.name)))
    return folder


@pytest.fixture
def executed_dir(tmp_path) -> Path:
    return write_executed(tmp_path / "executed")


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    """The site built once from two executed lessons and the repository's pages; tests that break it copy it."""
    root = tmp_path_factory.mktemp("site")
    site.build_site(write_executed(root / "executed"), root / "site", partial=True)
    return root / "site"


# ----------------------------------------------------------------------------------------------- without a browser


def test_the_site_shows_the_readme_every_page_of_docs_and_contributing():
    pages = site.doc_sources()
    assert list(pages)[0] == "README.md" and pages["README.md"] == "index.md"
    assert {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")} | {"CONTRIBUTING.md"} <= set(pages)
    assert "docs/benchmark.md" in pages and pages["CONTRIBUTING.md"] == "contributing.md"
    assert "docs/benchmark/bench.png" in site.doc_assets()  # the generated page's plot travels with it
    text = "![plot](benchmark/bench.png) [home](../README.md#which-loader-when) [m](../CONTRIBUTING.md)"
    out = site.rewrite_links(text, "docs/benchmark.md", "docs/benchmark.md",
                             {**pages, "docs/benchmark/bench.png": "docs/benchmark/bench.png"})
    assert out == "![plot](benchmark/bench.png) [home](../index.md#which-loader-when) [m](../contributing.md)"


def test_links_become_pages_github_addresses_or_local_images():
    pages = {"README.md": "index.md", "notebooks/05_x.ipynb": "notebooks/05_x.ipynb"}
    text = ("[05](notebooks/05_x.ipynb) [dir](notebooks) [code](tools/site.py#L3) [web](https://x.org/a) "
            "![c](https://colab.research.google.com/assets/colab-badge.svg) [gone](nowhere.md) [here](#top)")
    out = site.rewrite_links(text, "README.md", "index.md", pages)
    assert "[05](notebooks/05_x.ipynb)" in out and "[web](https://x.org/a)" in out and "[here](#top)" in out
    assert f"[dir](https://github.com/{GITHUB_REPO}/tree/{GITHUB_REF}/notebooks)" in out
    assert f"[code](https://github.com/{GITHUB_REPO}/blob/{GITHUB_REF}/tools/site.py#L3)" in out
    assert "![c](_static/open-in-colab.svg)" in out and "[gone](nowhere.md)" in out  # the checker reports that one
    html = site.rewrite_links('<a href="../README.md"><img src="https://www.tensorflow.org/images/GitHub-Mark-32px'
                              '.png"/></a>', "notebooks/05_x.ipynb", "notebooks/05_x.ipynb", pages)
    assert html == '<a href="../index.html"><img src="../_static/source-icon.svg"/></a>'


def test_page_shows_outputs_without_noise_or_the_builders_paths():
    name = lesson_notebooks()[4].name
    nb = site.site_notebook(executed_notebook(name), name, {f"notebooks/{name}": f"notebooks/{name}"})
    text = json.dumps(nb, ensure_ascii=False)
    assert "/home/someone" not in text and "DATA_DIR/raw: 240 images" in text
    assert "widgets" not in nb["metadata"] and "papermill" not in nb["metadata"] and WIDGET not in text
    assert "synthetic seedlings: 100% |████████████████████| 280/280 [00:01<00:00, 190img/s]" in text
    assert "cudart_stub" not in text and "absl" not in text and "UserWarning: you should call super()" in text
    note = next(c for c in nb["cells"] if c["cell_type"] == "markdown" and "make lessons" in c["source"])
    assert "`EPOCHS = 3`" in note["source"] and "DATA_DIR" not in note["source"]
    assert "tensorflow.org" not in text and "../_static/colab-icon.svg" in text
    assert f"https://github.com/{GITHUB_REPO}/blob/{GITHUB_REF}/seedlings_utils/dataset.py" in text
    assert site.count_outputs(executed_notebook(name)) == {"figures": 1, "tables": 1}


def test_build_refuses_lessons_that_did_not_run(executed_dir):
    with pytest.raises(site.SiteError, match="make lessons"):
        site.executed_copies(executed_dir)  # most lessons have no executed copy here
    broken = json.loads((executed_dir / lesson_notebooks()[4].name).read_text())
    broken["cells"][-1]["outputs"].append({"output_type": "error", "ename": "E", "evalue": "", "traceback": []})
    (executed_dir / lesson_notebooks()[4].name).write_text(json.dumps(broken))
    assert [p.name for p in site.executed_copies(executed_dir, partial=True)] == [lesson_notebooks()[5].name]


# ---------------------------------------------------------------------------------------------------- in Chromium


@pytest.mark.slow
def test_the_built_site_has_every_page_and_every_link_resolves(built_site, tmp_path):
    manifest = json.loads((built_site / "site.json").read_text())
    docs = [f"docs/{p.stem}.html" for p in (REPO / "docs").glob("*.md")]
    assert manifest["order"][0] == "index.html" and set(docs) | {"contributing.html"} <= set(manifest["order"][3:])
    assert site.check_links_offline(built_site) == []
    benchmark = (built_site / "html" / "docs" / "benchmark.html").read_text()
    image = re.search(r'<img [^>]*src="\.\./(_images/bench[^"]*\.png)"', benchmark).group(1)
    assert (built_site / "html" / image).stat().st_size > 10_000  # the plot itself, not a broken reference
    broken = tmp_path / "site"
    shutil.copytree(built_site, broken)
    page = broken / "html" / "docs" / "parameters.html"
    page.write_text(page.read_text().replace("</body>", '<a href="../index.html#no-such-section">x</a>'
                                             '<a href="gone.html">y</a></body>'))
    (broken / "html" / "docs" / "versions.html").unlink()
    problems = site.check_links_offline(broken)
    assert "docs/parameters.html: broken anchor index.html#no-such-section" in problems
    assert "docs/parameters.html: broken link docs/gone.html" in problems and "docs/versions.html: missing" in problems


@pytest.mark.slow
def test_browser_check_passes_a_good_site_and_names_each_fault(built_site, tmp_path, chromium):
    out = tmp_path / "site"
    shutil.copytree(built_site, out)
    assert site.check_site(out, chromium=chromium) == []
    manifest = json.loads((out / "site.json").read_text())
    first, second = (lesson["page"] for lesson in manifest["lessons"])
    html = out / "html"
    # break one thing per page, then expect each fault named on its page
    page = (html / first).read_text()
    image = re.search(r'<img [^>]*src="\.\./(_images/[^"]+)"', page).group(1)
    (html / image).unlink()
    page = page.replace(f"blob/{GITHUB_REF}/{first.replace('.html', '.ipynb')}",
                        f"blob/{GITHUB_REF}/notebooks/99_elsewhere.ipynb")
    (html / first).write_text(page.replace("</body>", '<script>console.error("boom")</script></body>'))
    page = (html / second).read_text()
    page = re.sub(r"<table.*?</table>", "", page, count=1, flags=re.S)
    page = page.replace("</body>", '<a href="missing.html">x</a><img src="https://example.org/x.png"></body>')
    (html / second).write_text(page)
    (html / "docs" / "summary.html").unlink()
    problems = "\n".join(site.check_site(out, chromium=chromium, only=[first, second]))
    assert f"{first}: image does not render" in problems
    assert f"{first}: shows 0 of the notebook's 1 figures" in problems
    assert re.search(rf"{first}: Colab link \S+99_elsewhere.ipynb does not open", problems)
    assert f"{first}: console: boom" in problems
    assert f"{second}: shows 0 of the notebook's 1 tables" in problems
    assert f"{second}: broken link notebooks/missing.html" in problems
    assert f"{second}: requests https://example.org/x.png from outside the site" in problems
    assert "docs/summary.html: missing" in problems and f"{second}: broken link docs/summary.html" in problems
