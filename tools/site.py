"""The course as a static site (``make site``), and its check in a real browser (``make site-check``).

    python -m tools.site build [--executed DATA_DIR/executed_notebooks] [--out build/site]
    python -m tools.site check [--out build/site] [--screenshots build/site/screenshots]

``build`` never runs a notebook: it takes the copies that ``make lessons`` executed (papermill writes them
to ``DATA_DIR/executed_notebooks``), writes a Sphinx project into ``OUT/src`` (``conf.py``, the README as
the home page, the lessons in order, then the pages of ``docs/`` and CONTRIBUTING.md) and builds it with
myst-nb (execution off) and sphinx-book-theme into ``OUT/html``; open ``OUT/html/index.html``. It also
writes ``OUT/site.json``: each lesson page with the number of figures and tables its executed notebook has,
which ``check`` compares with what the browser shows.

``check`` serves ``OUT/html`` on localhost and opens every page in headless Chromium (Playwright driving the
system's Chromium; no browser is downloaded). It reports a console error or uncaught exception, any request
for something outside the site, an image that does not render, a broken internal link or anchor, a lesson
page with fewer figures or tables than its notebook, previous/next links out of lesson order, and a Colab or
GitHub link whose path is not the notebook's (or not a file of the repository).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from seedlings_utils.config import GITHUB_REF, GITHUB_REPO, REPO_URL
from seedlings_utils.data_dirs import default_data_dir
from seedlings_utils.platform_info import TERMINAL_NOISE

from .paths import BUILD_DIR, NOTEBOOKS_DIR, REPO_ROOT, lesson_notebooks

DEFAULT_OUT = BUILD_DIR / "site"
COLAB_PREFIX = "https://colab.research.google.com/github/"
DOCS_DIR = REPO_ROOT / "docs"
#: The pages of docs/ in the site's reading order, after the lessons; any other docs/*.md follows, by name.
DOCS_ORDER = ("summary", "parameters", "benchmark", "versions", "library-or-ours")
#: Pages from the top of the repository, after docs/ (repository path -> site page).
TOP_PAGES = {"CONTRIBUTING.md": "contributing.md"}

#: Flags that let Chromium run headless as root on a machine without a network (see README).
CHROMIUM_FLAGS = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# The badges and icons the notebooks and the README load from other sites, replaced by local copies so that
# the site works offline and tells no other site who reads it.
_COLAB_ICON = """<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32" viewBox="0 0 32 32">
<path d="M13 9.5a7 7 0 1 0 0 13" fill="none" stroke="#e8710a" stroke-width="4" stroke-linecap="round"/>
<path d="M19 9.5a7 7 0 1 1 0 13" fill="none" stroke="#f9ab00" stroke-width="4" stroke-linecap="round"/>
</svg>
"""
_SOURCE_ICON = """<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32" viewBox="0 0 32 32">
<circle cx="16" cy="16" r="15" fill="#24292f"/>
<path d="M12.5 11 8 16l4.5 5M19.5 11l4.5 5-4.5 5" fill="none" stroke="#fff" stroke-width="2.4"
 stroke-linecap="round" stroke-linejoin="round"/>
</svg>
"""
_COLAB_BADGE = """<svg xmlns="http://www.w3.org/2000/svg" width="117" height="20" viewBox="0 0 117 20">
<rect width="117" height="20" rx="3" fill="#555"/><rect x="22" width="95" height="20" rx="3" fill="#f9ab00"/>
<rect x="22" width="6" height="20" fill="#f9ab00"/>
<path d="M9.2 6.2a4 4 0 1 0 0 7.6" fill="none" stroke="#e8710a" stroke-width="2.2" stroke-linecap="round"/>
<path d="M12.8 6.2a4 4 0 1 1 0 7.6" fill="none" stroke="#f9ab00" stroke-width="2.2" stroke-linecap="round"/>
<text x="69.5" y="14" fill="#fff" font-family="DejaVu Sans,Verdana,Geneva,sans-serif" font-size="11"
 text-anchor="middle">Open in Colab</text>
</svg>
"""
STATIC_FILES = {"colab-icon.svg": _COLAB_ICON, "source-icon.svg": _SOURCE_ICON, "open-in-colab.svg": _COLAB_BADGE}
LOCAL_IMAGES = {
    "https://www.tensorflow.org/images/colab_logo_32px.png": "colab-icon.svg",
    "https://www.tensorflow.org/images/GitHub-Mark-32px.png": "source-icon.svg",
    "https://colab.research.google.com/assets/colab-badge.svg": "open-in-colab.svg",
}

# Room for the lessons' code (lines of up to 120 characters fit at 1440 px), figures within the column.
CUSTOM_CSS = """\
html { --pst-sidebar-secondary: 14rem; }
@media (min-width: 992px) { .bd-sidebar-primary { flex-basis: 15rem; max-width: 15rem; } }
.bd-main .bd-content .bd-article-container { max-width: 72em; }
.bd-article div.highlight pre, .bd-article .cell_output pre { font-size: 0.75rem; line-height: 1.45; }
.bd-article .cell_output img { max-width: 100%; height: auto; }
.bd-article table td, .bd-article table th { vertical-align: top; }
.bd-article .cell_output .output.stream pre, .bd-article .cell_output .output.text_plain pre { font-size: 0.85em; }
.bd-article table img { display: inline; vertical-align: middle; margin: 0 .3em 0 0; }
.bd-article table a img { height: 1.4em; width: auto; }
"""

CONF_PY = '''\
# Written by tools/site.py: edit that file, not this one.
project = {title!r}
html_title = {title!r}
html_show_copyright = False
extensions = ["myst_nb", "sphinx.ext.githubpages"]  # githubpages: the .nojekyll file GitHub Pages needs
exclude_patterns = ["_build"]
root_doc = "index"
html_theme = "sphinx_book_theme"
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_last_updated_fmt = None
html_show_sphinx = False
nb_execution_mode = "off"          # the pages show the notebooks as `make lessons` executed them
nb_merge_streams = True
nb_ipywidgets_js = {{}}              # no widget scripts from a CDN: site.py turns progress bars into text
html_context = {{"default_mode": "light"}}
myst_heading_anchors = 3           # GitHub-style anchors, so the README's #section links work here too
myst_enable_extensions = ["colon_fence"]
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]
html_sidebars = {{"**": ["navbar-logo.html", "sbt-sidebar-nav.html"]}}  # search: once, in the header
html_theme_options = {{
    "repository_url": {repo_url!r},
    "repository_branch": {branch!r},
    "path_to_docs": "",
    "use_repository_button": True,
    "use_download_button": True,
    "launch_buttons": {{"colab_url": "https://colab.research.google.com"}},
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "footer_content_items": ["extra-footer"],
    "extra_footer": {footer!r},
}}
'''


class SiteError(RuntimeError):
    """The site cannot be built as asked; the message says what to do."""


# ----------------------------------------------------------------------------------------------------- build


def executed_copies(executed_dir: Path, notebooks_dir: Path = NOTEBOOKS_DIR, partial: bool = False) -> list[Path]:
    """The executed copy of every numbered lesson, in order. Without ``partial`` every lesson must have one that
    ran to its end; with it, lessons missing or stopped by an error are left out (with a warning)."""
    found, problems = [], []
    for source in lesson_notebooks(notebooks_dir):
        copy = executed_dir / source.name
        if not copy.is_file():
            problems.append(f"{source.name}: no executed copy in {executed_dir}")
            continue
        nb = json.loads(copy.read_text(encoding="utf-8"))
        if any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", [])):
            problems.append(f"{source.name}: its executed copy stops with an error")
            continue
        found.append(copy)
    if problems and not partial:
        raise SiteError("The site shows the lessons as `make lessons` ran them, and some did not run:\n  "
                        + "\n  ".join(problems) + "\nRun `make lessons` first (or pass --partial to leave them out).")
    for problem in problems:
        print(f"warning: left out {problem}", file=sys.stderr)
    if not found:
        raise SiteError(f"No executed lessons in {executed_dir}: run `make lessons` first.")
    return found


def doc_sources(repo: Path = REPO_ROOT) -> dict[str, str]:
    """The site's pages besides the lessons: repository path -> page path (``README.md -> index.md``), in reading
    order (the README, then docs/ in ``DOCS_ORDER``, then CONTRIBUTING.md)."""
    docs = sorted((repo / "docs").glob("*.md"), key=lambda p: (DOCS_ORDER.index(p.stem) if p.stem in DOCS_ORDER
                                                                else len(DOCS_ORDER), p.name))
    pages = {"README.md": "index.md", **{f"docs/{p.name}": f"docs/{p.name}" for p in docs}}
    return pages | {path: page for path, page in TOP_PAGES.items() if (repo / path).is_file()}


def doc_assets(repo: Path = REPO_ROOT) -> list[str]:
    """The files under docs/ that its pages show (plots), by repository path: the site carries copies."""
    return sorted(p.relative_to(repo).as_posix() for p in (repo / "docs").rglob("*")
                  if p.is_file() and p.suffix != ".md" and not p.name.startswith("."))


_LINK = re.compile(r"(\]\()([^)\s]+)(\))|((?:src|href)=\")([^\"]+)(\")")


def rewrite_links(text: str, source: str, page: str, doc_pages: dict[str, str]) -> str:
    """Make the links of a README or notebook markdown cell work on the site.

    ``source`` is the file's path in the repository, ``page`` its page's path in the site (both POSIX,
    relative), ``doc_pages`` maps repository paths to site pages (``README.md -> index.md``) and to the files the
    site carries (the plots of docs/). Badges and icons from other sites become local copies; links to a lesson,
    the README or a page of docs/ stay links between pages; links to other files of the repository go to GitHub
    (there is no copy of them on the site).
    """
    depth = page.count("/")

    def replace(match: re.Match) -> str:
        markdown = match.group(1) is not None
        before, target, after = match.group(1, 2, 3) if markdown else match.group(4, 5, 6)
        if target in LOCAL_IMAGES:
            return f"{before}{'../' * depth}_static/{LOCAL_IMAGES[target]}{after}"
        if re.match(r"[a-z]+:|#|/", target):
            return match.group(0)
        path, _, fragment = target.partition("#")
        repo_path = os.path.normpath(os.path.join(os.path.dirname(source), unquote(path))).replace(os.sep, "/")
        fragment = f"#{fragment}" if fragment else ""
        if repo_path in doc_pages:
            rel = os.path.relpath(doc_pages[repo_path], os.path.dirname(page) or ".").replace(os.sep, "/")
            if not markdown and rel.endswith((".md", ".ipynb")):  # raw HTML is not resolved by Sphinx: the built page
                rel = rel.rsplit(".", 1)[0] + ".html"
            return f"{before}{rel}{fragment}{after}"
        if (REPO_ROOT / repo_path).exists() and not repo_path.startswith(".."):
            kind = "tree" if (REPO_ROOT / repo_path).is_dir() else "blob"
            return f"{before}{REPO_URL}/{kind}/{GITHUB_REF}/{repo_path}{fragment}{after}"
        return match.group(0)

    return _LINK.sub(replace, text)


def injected_settings(cell: dict) -> list[str]:
    """The ``NAME = value`` lines papermill injected, less ``DATA_DIR`` (a path on the machine that ran them)."""
    lines = "".join(cell["source"]).splitlines()
    return [line.strip() for line in lines if re.match(r"\s*[A-Z_]+ = ", line) and not line.startswith("DATA_DIR")]


def scrub_paths(text: str, data_dir: str | None) -> str:
    """Replace the absolute paths of the machine that ran the lessons by what a reader knows: paths in the
    course's folder become relative to it (``data/raw``), a ``DATA_DIR`` elsewhere becomes ``DATA_DIR``."""
    if data_dir and not Path(data_dir).is_relative_to(REPO_ROOT):
        text = text.replace(data_dir.rstrip("/"), "DATA_DIR")
    return text.replace(f"{REPO_ROOT}/", "").replace(str(REPO_ROOT), ".")


def widget_text(output: dict, widgets: dict) -> str | None:
    """A saved progress bar (tqdm's widget: description, bar, counts) as one line of text, from the widget
    state papermill stored; None when the output is not one."""
    ref = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
    state = widgets.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    if not ref or ref.get("model_id") not in state:
        return None
    parts = []
    for child in state[ref["model_id"]].get("state", {}).get("children", []):
        model = state.get(child.removeprefix("IPY_MODEL_"), {})
        fields = model.get("state", {})
        if model.get("model_name") == "FloatProgressModel" and fields.get("max"):
            done = round(20 * min(1.0, fields.get("value", 0) / fields["max"]))
            parts.append("|" + "█" * done + " " * (20 - done) + "|")
        elif "value" in fields:
            parts.append(html.unescape(re.sub(r"<[^>]+>", "", str(fields["value"]))).replace("\xa0", " ").strip())
    return " ".join(p for p in parts if p) or None


def clean_stream(text: str) -> str:
    """stderr less the start-up lines of TensorFlow and the kernel (``make lessons`` hides them too)."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not TERMINAL_NOISE.search(line))


def site_notebook(nb: dict, name: str, doc_pages: dict[str, str]) -> dict:
    """The executed notebook as its page shows it: local icons, working links, the injected parameters as a
    note, no machine-specific paths in outputs, no papermill bookkeeping."""
    cells, data_dir = [], None
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags:
            source = "".join(cell["source"])
            found = re.search(r"^DATA_DIR = (['\"])(.*)\1$", source, re.M)
            data_dir = found.group(2) if found else None
            settings = ", ".join(f"`{s}`" for s in injected_settings(cell))
            cells.append({"cell_type": "markdown", "metadata": {}, "id": cell.get("id", "injected"), "source": (
                ":::{note}\nThis page shows a run with the quick settings of `make lessons`, which papermill put in"
                f" place of the values above: {settings}. Its numbers are those of a small synthetic run on a"
                " laptop CPU; the values above are the full recipe.\n:::")})
            continue
        cell = json.loads(json.dumps(cell))
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
        if cell["cell_type"] == "markdown":
            cell["source"] = rewrite_links("".join(cell["source"]), f"notebooks/{name}", f"notebooks/{name}",
                                           doc_pages)
        cells.append(cell)
    widgets = nb.get("metadata", {}).get("widgets", {})
    for cell in cells:
        outputs = []
        for output in cell.get("outputs", []):
            if "application/vnd.jupyter.widget-view+json" in output.get("data", {}):
                text = widget_text(output, widgets)
                if text is None:
                    continue
                output = {"output_type": "stream", "name": "stdout", "text": text + "\n"}
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                output["text"] = clean_stream("".join(output["text"]))
                if not output["text"].strip():
                    continue
            outputs.append(output)
        if cell["cell_type"] == "code":
            cell["outputs"] = outputs
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = scrub_paths("".join(output["text"]), data_dir)
            for mime in ("text/plain", "text/html", "text/markdown"):
                if mime in output.get("data", {}):
                    output["data"][mime] = scrub_paths("".join(output["data"][mime]), data_dir)
    metadata = {k: v for k, v in nb.get("metadata", {}).items() if k not in ("papermill", "widgets")}
    return {**nb, "metadata": metadata, "cells": cells}


def count_outputs(nb: dict) -> dict[str, int]:
    """How many figures (image outputs) and tables (HTML tables) the notebook's outputs hold."""
    figures = tables = 0
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            figures += any(mime.startswith("image/") for mime in data)
            tables += "<table" in "".join(data.get("text/html", ""))
    return {"figures": figures, "tables": tables}


def write_sources(executed: list[Path], src: Path, repo: Path = REPO_ROOT) -> dict:
    """Write the Sphinx project into ``src``; returns the manifest (pages in reading order, expected outputs)."""
    if src.exists():
        shutil.rmtree(src)
    (src / "_static").mkdir(parents=True)
    (src / "notebooks").mkdir()
    for name, text in STATIC_FILES.items():
        (src / "_static" / name).write_text(text)
    (src / "_static" / "course.css").write_text(CUSTOM_CSS)

    lesson_pages = [f"notebooks/{p.name}" for p in executed]
    sources = doc_sources(repo)
    assets = doc_assets(repo)
    doc_pages = {**sources, **{page: page for page in lesson_pages}, **{asset: asset for asset in assets}}
    for asset in assets:
        (src / asset).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / asset, src / asset)
    readme = (repo / "README.md").read_text(encoding="utf-8")
    title = re.search(r"^# (.+)$", readme, re.M).group(1).strip()
    other_pages = [page for path, page in sources.items() if path != "README.md"]
    toctree = ["", "```{toctree}", ":hidden:", ":maxdepth: 1", ""]
    toctree += [p.removesuffix(".ipynb") for p in lesson_pages] + [p.removesuffix(".md") for p in other_pages]
    for path, page in sources.items():
        text = rewrite_links((repo / path).read_text(encoding="utf-8"), path, page, doc_pages)
        if page == "index.md":
            text += "\n".join(toctree + ["```", ""])
        (src / page).parent.mkdir(parents=True, exist_ok=True)
        (src / page).write_text(text, encoding="utf-8")

    lessons = []
    for path in executed:
        nb = json.loads(path.read_text(encoding="utf-8"))
        (src / "notebooks" / path.name).write_text(json.dumps(site_notebook(nb, path.name, doc_pages), indent=1),
                                                   encoding="utf-8")
        lessons.append({"page": f"notebooks/{path.stem}.html", "notebook": f"notebooks/{path.name}",
                        **count_outputs(nb)})
    footer = (f'<p>Built by <code>make site</code> from the lessons as <code>make lessons</code> ran them. The course,'
              f' its code and its issues: <a href="{REPO_URL}">{GITHUB_REPO}</a>.</p>')
    (src / "conf.py").write_text(CONF_PY.format(title=title, repo_url=REPO_URL, branch=GITHUB_REF, footer=footer))
    order = (["index.html"] + [lesson["page"] for lesson in lessons]
             + [page.removesuffix(".md") + ".html" for page in other_pages])
    return {"title": title, "order": order, "lessons": lessons}


def build_site(executed_dir: str | Path | None = None, out: str | Path = DEFAULT_OUT, partial: bool = False,
               quiet: bool = True) -> Path:
    """Build the site from the executed lessons into ``out/html``; returns the path of its home page."""
    executed_dir = Path(executed_dir) if executed_dir else default_data_dir() / "executed_notebooks"
    out = Path(out).resolve()
    executed = executed_copies(executed_dir, partial=partial)
    manifest = write_sources(executed, out / "src")
    html_dir = out / "html"
    if html_dir.exists():
        shutil.rmtree(html_dir)
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-E", "-W", "--keep-going", "-j", "1",
               "-d", str(out / "doctrees"), str(out / "src"), str(html_dir)] + (["-q"] if quiet else [])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SiteError(f"sphinx-build failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    (out / "site.json").write_text(json.dumps(manifest, indent=1))
    return html_dir / "index.html"


# ----------------------------------------------------------------------------------------------------- check


def find_chromium() -> tuple[str | None, str]:
    """``(path, how)``: the system's Chromium (``$CHROMIUM`` first). It only looks: installing a browser is CI's job
    (``.ci/install-browser``, which ``make test`` runs). ``path`` is None when there is none; ``how`` then says why."""
    candidates = [os.environ.get("CHROMIUM", "")] + [shutil.which(name) or "" for name in CHROMIUM_NAMES]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate, f"found {candidate}"
    return None, ("no Chromium found: run .ci/install-browser (as root it apt-get installs Debian's chromium), "
                  "or set CHROMIUM=/path/to/chrome")


@contextlib.contextmanager
def serve(directory: Path):
    """Serve ``directory`` on a free localhost port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


# Every <img> made eager and awaited (with a deadline), then reported with its natural size and whether it is a
# cell's output; every link's resolved address; the previous/next links of the page.
_PAGE_SCRIPT = """async () => {
  const images = [...document.images];
  images.forEach(img => { img.loading = 'eager'; });
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener('load', done); img.addEventListener('error', done); setTimeout(done, 10000); })));
  const rendered = img => img.complete && img.naturalWidth > 0;
  return {
    images: images.map(img => ({src: img.currentSrc || img.src, ok: rendered(img),
                                output: !!img.closest('.cell_output')})),
    tables: document.querySelectorAll('.cell_output table').length,
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    prev: (document.querySelector('.prev-next-area a.left-prev') || {}).href || null,
    next: (document.querySelector('.prev-next-area a.right-next') || {}).href || null,
  };
}"""


def _page_path(html_dir: Path, url: str, base: str) -> Path:
    rel = unquote(urlsplit(url).path)[len(urlsplit(base).path):]
    path = html_dir / rel
    return path / "index.html" if path.is_dir() or not rel else path


@functools.lru_cache(maxsize=256)
def _ids(path: Path) -> frozenset[str]:
    return frozenset(re.findall(r"\bid=\"([^\"]+)\"", path.read_text(encoding="utf-8", errors="replace")))


def check_links(links: list[str], html_dir: Path, base: str, lesson: str | None) -> list[str]:
    """Problems with a page's links: internal ones must reach a file (and anchor); Colab links must open this
    lesson's notebook (on a lesson page) or some lesson's; GitHub links must name a path of the repository."""
    problems = []
    lesson_names = {p.name for p in lesson_notebooks()}
    for url in dict.fromkeys(links):
        if url.startswith(base):
            target = _page_path(html_dir, url.split("#")[0], base)
            fragment = unquote(urlsplit(url).fragment)
            if not target.is_file():
                problems.append(f"broken link {url[len(base):]}")
            elif fragment and target.suffix == ".html" and fragment not in _ids(target):
                problems.append(f"broken anchor {url[len(base):]}")
        elif url.startswith(COLAB_PREFIX):
            want = f"{GITHUB_REPO}/blob/{GITHUB_REF}/notebooks/"
            path = url[len(COLAB_PREFIX):].split("#")[0]
            name = path[len(want):] if path.startswith(want) else None
            if name is None or name not in lesson_names or (lesson and name != Path(lesson).name):
                problems.append(f"Colab link {url} does not open {lesson or 'a lesson notebook'}")
        elif url.startswith(f"{REPO_URL}/blob/") or url.startswith(f"{REPO_URL}/tree/"):
            rest = url[len(REPO_URL) + 6:].split("#")[0]
            branch, _, path = rest.partition("/")
            if branch != GITHUB_REF or not (REPO_ROOT / unquote(path)).exists():
                problems.append(f"GitHub link {url} names no file of the repository")
    return problems


_HTML_LINK = re.compile(r"<(?:a|img|link|script)\b[^>]*?\b(?:href|src)=\"([^\"]+)\"")


def check_links_offline(out: str | Path = DEFAULT_OUT) -> list[str]:
    """The link part of ``check``, without a browser: every link and image of every built page, as written in its
    HTML, must reach a file of the site (and anchor), and Colab and GitHub links must name the repository's files.
    Returns the problems found (none: all good)."""
    out = Path(out).resolve()
    html_dir, manifest = out / "html", json.loads((out / "site.json").read_text())
    lessons = {lesson["page"]: lesson["notebook"] for lesson in manifest["lessons"]}
    base = "http://site.invalid/"
    problems = [f"{page}: missing" for page in manifest["order"] if not (html_dir / page).is_file()]
    for path in sorted(html_dir.rglob("*.html")):
        name = path.relative_to(html_dir).as_posix()
        if name.startswith("_"):
            continue
        links = [urljoin(base + name, html.unescape(link)) for link in _HTML_LINK.findall(path.read_text())]
        problems += [f"{name}: {problem}" for problem in check_links(links, html_dir, base, lessons.get(name))]
    return problems


def check_site(out: str | Path = DEFAULT_OUT, screenshots: str | Path | None = None, chromium: str | None = None,
               only: list[str] | None = None, timeout_ms: int = 60_000) -> list[str]:
    """Open every page of the built site (or the ``only`` ones) in headless Chromium; returns the problems found
    (none: all good)."""
    from playwright.sync_api import sync_playwright

    out = Path(out).resolve()
    if not (out / "site.json").is_file():
        raise SiteError(f"No site in {out}: run `make site` first.")
    html_dir, manifest = out / "html", json.loads((out / "site.json").read_text())
    if chromium is None:
        chromium, how = find_chromium()
        if chromium is None:
            raise SiteError(how)
    pages = sorted(path.relative_to(html_dir).as_posix() for path in html_dir.rglob("*.html"))
    pages = [name for name in pages if not name.startswith("_")]  # _static/, _sources/: not pages
    lessons = {lesson["page"]: lesson for lesson in manifest["lessons"]}
    order = manifest["order"]
    problems = [f"{page}: missing" for page in order if page not in pages]
    if screenshots:
        Path(screenshots).mkdir(parents=True, exist_ok=True)
    with serve(html_dir) as base, sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, chromium_sandbox=False, args=CHROMIUM_FLAGS,
            viewport={"width": 1440, "height": 900})
        try:
            for name in pages if only is None else [name for name in pages if name in only]:
                found: list[str] = []
                page = context.new_page()
                page.set_default_timeout(timeout_ms)
                page.on("console", lambda m, found=found: m.type == "error" and found.append(f"console: {m.text}"))
                page.on("pageerror", lambda e, found=found: found.append(f"script error: {e}"))
                page.on("response", lambda r, found=found: r.status >= 400 and found.append(
                    f"HTTP {r.status} for {r.url}"))

                def outside(route) -> None:  # one argument: Playwright passes as many as the handler takes
                    found.append(f"requests {route.request.url} from outside the site")  # noqa: B023 (this page's)
                    route.abort()

                page.route(lambda url: not url.startswith(base) and not url.startswith("data:"), outside)
                page.goto(base + name, wait_until="load")
                info = page.evaluate(_PAGE_SCRIPT)
                found += [f"image does not render: {i['src']}" for i in info["images"] if not i["ok"]]
                lesson = lessons.get(name)
                found += check_links(info["links"], html_dir, base, lesson and lesson["notebook"])
                if lesson:
                    shown = sum(i["ok"] for i in info["images"] if i["output"])
                    if shown < lesson["figures"]:
                        found.append(f"shows {shown} of the notebook's {lesson['figures']} figures")
                    if info["tables"] < lesson["tables"]:
                        found.append(f"shows {info['tables']} of the notebook's {lesson['tables']} tables")
                    if not any(url.startswith(COLAB_PREFIX) for url in info["links"]):
                        found.append("has no Colab link")
                if name in order:
                    k = order.index(name)
                    for key, want in (("prev", order[k - 1] if k else None),
                                      ("next", order[k + 1] if k + 1 < len(order) else None)):
                        got = info[key] and info[key][len(base):].split("#")[0]
                        if got != want:
                            found.append(f"{key} link goes to {got}, not {want}")
                if screenshots:
                    page.screenshot(path=str(Path(screenshots) / (name.replace("/", "_") + ".png")), full_page=True)
                page.close()
                problems += [f"{name}: {problem}" for problem in dict.fromkeys(found)]
        finally:
            context.close()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("build", "check"))
    parser.add_argument("--executed", help="the executed notebooks (default: DATA_DIR/executed_notebooks)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="where the site goes (default: build/site)")
    parser.add_argument("--partial", action="store_true", help="leave out lessons that did not run")
    parser.add_argument("--screenshots", help="check: also save a full-page PNG of every page here")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            index = build_site(args.executed, args.out, partial=args.partial)
            print(f"The site is in {index.parent}: open {index}")
            return 0
        problems = check_site(args.out, args.screenshots)
    except SiteError as error:
        print(error, file=sys.stderr)
        return 1
    pages = len(json.loads((Path(args.out) / "site.json").read_text())["order"])
    print("\n".join(problems) if problems else f"OK: every page of {args.out} passed the browser check "
          f"({pages} course pages).")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
