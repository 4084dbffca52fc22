"""The book of a run: one offline HTML site that ties a run folder together.

    python -m utils.pipeline.book [RUN]        # RUN: a run id or folder; default outputs/latest

``<run>/book/index.html`` shows a picture of the flow (notebooks -> datasets -> models ->
scoring, drawn from the catalog), each notebook's purpose, status and headline numbers, and
links to every executed notebook (rendered with a table of contents and foldable code), a
figure gallery, the dashboard, the teaching notes, and the manifest in readable form (what
ran, what was reused and why, versions, hashes). Everything is relative to the run folder and
needs no network: a run folder copied elsewhere keeps a working book.
"""
from __future__ import annotations

import argparse
import html
import json
import re
import sys
from pathlib import Path
from typing import Any

import mistune

from utils.core import paths
from utils.pipeline import catalog

BOOK_DIR = "book"
TEACHING_NOTES = paths.NOTEBOOKS_DIR / "TEACHING.md"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:0;color:#1f2933;background:#f7f8fa}
header{background:#1f4e79;color:#fff;padding:14px 24px}header a{color:#fff}
header h1{margin:0;font-size:22px}header p{margin:4px 0 0;font-size:13px;opacity:.9}
nav.top{font-size:14px;margin-top:6px}nav.top a{margin-right:16px}
main{max-width:1150px;margin:0 auto;padding:16px 24px}
.layout{display:flex;gap:24px}.toc{position:sticky;top:8px;align-self:flex-start;min-width:220px;max-width:260px;
font-size:13px;background:#fff;border:1px solid #d9dee4;padding:10px;max-height:92vh;overflow:auto}
.toc a{display:block;padding:2px 0;color:#1f4e79;text-decoration:none}.toc .h3{padding-left:12px}
.content{flex:1;min-width:0}
.card{background:#fff;border:1px solid #d9dee4;border-radius:6px;padding:12px 16px;margin:12px 0}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #d9dee4;padding:3px 8px;text-align:left}
th{background:#eef2f6}pre{background:#f1f3f5;padding:8px;overflow:auto;font-size:12.5px}
pre.stderr{background:#fff1f0}pre.error{background:#ffe3e3;color:#8a1c1c}
details.code summary{cursor:pointer;color:#52606d;font-size:12px}
img{max-width:100%}.gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{width:340px;margin:0;
background:#fff;border:1px solid #d9dee4;padding:6px}.gallery figcaption{font-size:12px;color:#52606d}
.status-executed{color:#1b6e3a}.status-reused{color:#1f4e79}.status-failed{color:#b91c1c}
.muted{color:#6b7785;font-size:12px}
"""


# --- reading the run -----------------------------------------------------------------------------


def _read(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def notebook_intro(notebook: dict) -> tuple[str, str]:
    """(title, first paragraph of purpose) from a notebook's first markdown cell."""
    first = next((_source(c) for c in notebook.get("cells", []) if c["cell_type"] == "markdown"), "")
    lines = first.strip().splitlines()
    title = lines[0].lstrip("# ").strip() if lines else ""
    paragraphs = "\n".join(lines[1:]).strip().split("\n\n")
    return title, " ".join(paragraphs[0].split()) if paragraphs and paragraphs[0] else ""


def slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "-", text.lower()).strip("-") or "section"


# --- one notebook as a page ----------------------------------------------------------------------


def render_notebook(notebook: dict, title: str) -> str:
    """An executed notebook as one HTML page: a table of contents, markdown, foldable code, outputs."""
    markdown = mistune.create_markdown(plugins=["table"])
    toc, body, used = [], [], set()
    for index, cell in enumerate(notebook.get("cells", [])):
        source = _source(cell)
        if cell["cell_type"] == "markdown":
            rendered = markdown(source)

            def anchor(match: re.Match) -> str:
                level, text = match.group(1), re.sub(r"<[^>]+>", "", match.group(2))
                ident = slug(text)
                while ident in used:
                    ident += "-1"
                used.add(ident)
                if level in ("1", "2", "3"):
                    toc.append((level, ident, text))
                return f'<h{level} id="{ident}">{match.group(2)}</h{level}>'

            body.append(re.sub(r"<h([1-6])>(.*?)</h\1>", anchor, rendered, flags=re.S))
        elif cell["cell_type"] == "code":
            tags = cell.get("metadata", {}).get("tags", [])
            label = ("parameters (defaults)" if "parameters" in tags else "parameters of this run (injected)"
                     if "injected-parameters" in tags else f"code [{cell.get('execution_count') or ' '}]")
            opened = "" if source.lstrip().startswith("# plumbing") or "parameters" in tags else " open"
            body.append(f'<details class="code"{opened}><summary>{label}</summary>'
                        f"<pre><code>{html.escape(source)}</code></pre></details>")
            body.extend(render_output(output) for output in cell.get("outputs", []))
    contents = "".join(f'<a class="h{level}" href="#{ident}">{html.escape(text)}</a>' for level, ident, text in toc)
    page = (f'<div class="layout"><nav class="toc"><b>Contents</b>{contents}</nav>'
            f'<div class="content">{"".join(body)}</div></div>')
    return layout(title, page)


def render_output(output: dict) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        text = "".join(output.get("text", ""))
        return f'<pre class="{html.escape(output.get("name", "stdout"))}">{html.escape(_ANSI.sub("", text))}</pre>'
    if kind == "error":
        trace = _ANSI.sub("", "\n".join(output.get("traceback", [])))
        return f'<pre class="error">{html.escape(trace or output.get("ename", "") + ": " + output.get("evalue", ""))}</pre>'
    data = output.get("data", {})
    if "image/png" in data:
        image = "".join(data["image/png"]) if isinstance(data["image/png"], list) else data["image/png"]
        return f'<img alt="figure" src="data:image/png;base64,{image.strip()}">'
    if "text/html" in data:
        markup = "".join(data["text/html"]) if isinstance(data["text/html"], list) else data["text/html"]
        return f'<div class="output">{markup}</div>'
    if "text/plain" in data:
        text = "".join(data["text/plain"]) if isinstance(data["text/plain"], list) else data["text/plain"]
        return f"<pre>{html.escape(text)}</pre>"
    return ""


# --- the flow picture ----------------------------------------------------------------------------


def flow_svg(linked: set[str] = frozenset()) -> str:
    """The steps in layers (by what they read), each edge labelled with the datasets it carries;
    the boxes of ``linked`` steps link to their notebook pages."""
    layers: dict[str, int] = {}
    for step in catalog.STEPS:
        layers[step.name] = 1 + max((layers[u] for u in catalog.upstream(step.name)), default=-1)
    columns: dict[int, list[str]] = {}
    for name, layer in layers.items():
        columns.setdefault(layer, []).append(name)
    width, box_w, box_h, gap_x = 1080, 170, 44, 290
    height = 170 + 120 * max(len(v) for v in columns.values())
    position = {}
    for layer, names in columns.items():
        for row, name in enumerate(names):
            position[name] = (20 + layer * gap_x, 90 + row * 120 + (height - 130 - 120 * len(names)) / 2)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             'aria-label="The flow of a run: notebooks, the datasets between them, the models, the scoring">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#52606d"/></marker></defs>']
    for step in catalog.STEPS:
        by_producer: dict[str, list[str]] = {}
        for name in step.reads:
            by_producer.setdefault(catalog.dataset(name).step, []).append(name)
        for producer, names in by_producer.items():
            (x1, y1), (x2, y2) = position[producer], position[step.name]
            sx, sy, ex, ey = x1 + box_w, y1 + box_h / 2, x2, y2 + box_h / 2
            # An edge between two boxes of one row that skips a layer arcs over the boxes between them.
            arc = layers[step.name] - layers[producer] > 1 and abs(sy - ey) < 1
            cy = min(y for _, y in position.values()) - 130 if arc else (sy + ey) / 2
            parts.append(f'<path d="M{sx},{sy} Q{(sx + ex) / 2},{cy} {ex},{ey}" fill="none" stroke="#9aa5b1" '
                         'marker-end="url(#arrow)"/>')
            label = ", ".join(names) if len(names) <= 2 else f"{names[0]}, ... ({len(names)} datasets)"
            lx, ly = (sx + ex) / 2, (sy + 2 * cy + ey) / 4 - 5  # the curve's midpoint, a little above
            parts.append(f'<text x="{lx}" y="{ly}" font-size="10" text-anchor="middle" '
                         f'fill="#52606d">{html.escape(label)}</text>')
    for step in catalog.STEPS:
        x, y = position[step.name]
        models = [d.model for d in catalog.produces(step.name) if d.model]
        fill = "#fde68a" if models else "#dbeafe" if step.name != "05_scoring" else "#dcfce7"
        box = (f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" fill="{fill}" stroke="#1f4e79"/>'
               f'<text x="{x + box_w / 2}" y="{y + 27}" font-size="14" text-anchor="middle">{step.name}</text>')
        parts.append(f'<a href="{step.name}.html">{box}</a>' if step.name in linked else box)
        if models:
            parts.append(f'<text x="{x + box_w / 2}" y="{y + box_h + 16}" font-size="11" text-anchor="middle" '
                         f'fill="#92400e">registers model {", ".join(models)}</text>')
    parts.append(f'<text x="20" y="{height - 10}" font-size="11" fill="#52606d">blue: data steps · yellow: model '
                 'steps (MLflow registry) · green: scoring and the dashboard · click a box for its notebook</text>')
    return "".join(parts) + "</svg>"


# --- the pages -----------------------------------------------------------------------------------


def layout(title: str, body: str, subtitle: str = "") -> str:
    """A page of the book (every page lives in ``<run>/book/``; the run's files are one level up)."""
    links = ('<a href="index.html">overview</a><a href="figures.html">figures</a>'
             '<a href="../dashboard.html">dashboard</a><a href="manifest.html">manifest</a>'
             '<a href="teaching.html">teaching notes</a>')
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<style>{CSS}</style></head><body><header><h1>{html.escape(title)}</h1>'
            f'{f"<p>{html.escape(subtitle)}</p>" if subtitle else ""}<nav class="top">{links}</nav></header>'
            f"<main>{body}</main></body></html>")


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                    for r in rows)
    return f"<table><tr>{head}</tr>{cells}</table>"


def _figures_of(record: dict) -> list[str]:
    return sorted(rel for rel in record.get("outputs", {}) if rel.startswith("figures/"))


def index_page(run: Path, manifest: dict, notebooks: dict[str, dict]) -> str:
    cards = []
    for step in catalog.STEPS:
        record = manifest.get("steps", {}).get(step.name, {})
        title, purpose = notebook_intro(notebooks.get(step.name, {}))
        metrics = _read(run / "metrics" / f"{step.name}.json", {})
        status = record.get("status", "not run")
        how = f"reused from {record['reused_from']}" if status == "reused" else \
            f"{record.get('seconds', 0):.0f} s, peak {record.get('peak_rss_mb') or 0:.0f} MB" if status == "executed" else ""
        numbers = _table([{"metric": k, "value": f"{v:.4g}"} for k, v in sorted(metrics.items())[:14]],
                         ["metric", "value"]) if metrics else '<p class="muted">no metrics</p>'
        more = f'<p class="muted">and {len(metrics) - 14} more in ../metrics.json</p>' if len(metrics) > 14 else ""
        link = (f'<a href="{step.name}.html">read the executed notebook</a>' if step.name in notebooks
                else '<span class="muted">not executed in this run folder</span>')
        cards.append(f'<div class="card"><h2 id="{step.name}">{html.escape(title or step.name)}</h2>'
                     f"{mistune.html(purpose or step.purpose)}"
                     f'<p><span class="status-{status}">{status}</span> {html.escape(how)} · {link} · '
                     f'{len(_figures_of(record))} figure(s)</p>{numbers}{more}</div>')
    scoring = manifest.get("promotions") or []
    promoted = "".join(f"<li>{html.escape(d['name'])} version {html.escape(str(d['version']))}: "
                       f"{html.escape(d['reason'])}</li>" for d in scoring) or "<li>none in this run</li>"
    if manifest.get("models"):  # per model: what happened to the alias, and which version scored this run
        promoted = "".join(f"<li>{html.escape(name)}: {html.escape(str(m.get('outcome')))}"
                           f'<br><span class="muted">{html.escape(str(m.get("scores_from") or ""))}</span></li>'
                           for name, m in manifest["models"].items())
    body = (f'<div class="card"><h2>The flow</h2>{flow_svg(set(notebooks))}</div>'
            f'<div class="card"><h2>Champions after this run</h2><ul>{promoted}</ul>'
            f'<p class="muted">aliases: {html.escape(json.dumps(manifest.get("aliases", {})))}</p></div>'
            + "".join(cards))
    subtitle = (f"run {manifest.get('run_id', run.name)} · profile {manifest.get('profile', '?')} · "
                f"{manifest.get('status', '?')} · commit {str((manifest.get('git') or {}).get('commit'))[:10]}")
    return layout("lead2value: the book of a run", body, subtitle=subtitle)


def figures_page(run: Path, manifest: dict) -> str:
    sections = []
    for step in catalog.STEPS:
        figures = _figures_of(manifest.get("steps", {}).get(step.name, {}))
        if not figures:
            continue
        items = []
        for rel in figures:
            name = Path(rel).stem
            if rel.endswith(".png"):
                items.append(f'<figure><a href="../{rel}"><img alt="{name}" src="../{rel}"></a>'
                             f"<figcaption>{html.escape(name)}</figcaption></figure>")
            else:
                items.append(f'<figure><a href="../{rel}">{html.escape(name)} (interactive)</a></figure>')
        sections.append(f'<h2 id="{step.name}">{step.name}</h2><div class="gallery">{"".join(items)}</div>')
    return layout("Figures of the run", "".join(sections) or "<p>no figures</p>")


def manifest_page(manifest: dict) -> str:
    steps = [{"step": name, "status": r.get("status"), "why": r.get("reason") or "",
              "reused from": r.get("reused_from") or "", "seconds": r.get("seconds"),
              "peak MB": r.get("peak_rss_mb") or "", "fingerprint": str(r.get("fingerprint", ""))[:12]}
             for name, r in manifest.get("steps", {}).items()]
    parameters = [{"step": s, "parameter": k, "value": v}
                  for s, values in manifest.get("parameters", {}).items() for k, v in values.items()]
    packages = [{"package": k, "version": v} for k, v in sorted(manifest.get("packages", {}).items())]
    outputs = [{"file": k, "sha256": v[:16]} for k, v in sorted(manifest.get("outputs", {}).items())]
    git = manifest.get("git") or {}
    facts = [{"what": "run", "value": manifest.get("run_id")}, {"what": "status", "value": manifest.get("status")},
             {"what": "started", "value": manifest.get("started")}, {"what": "seconds", "value": manifest.get("seconds")},
             {"what": "profile", "value": manifest.get("profile")},
             {"what": "overrides", "value": " ".join(manifest.get("overrides", [])) or "none"},
             {"what": "git commit", "value": git.get("commit")}, {"what": "uncommitted changes", "value": git.get("dirty")},
             {"what": "parameters hash", "value": manifest.get("parameters_hash")},
             {"what": "lock sha256", "value": manifest.get("lock_sha256")}, {"what": "python", "value": manifest.get("python")}]
    body = (f'<div class="card"><h2>The run</h2>{_table(facts, ["what", "value"])}</div>'
            f'<div class="card"><h2>What ran, what was reused and why</h2>'
            f'{_table(steps, ["step", "status", "why", "reused from", "seconds", "peak MB", "fingerprint"])}</div>'
            f'<div class="card"><h2>Parameters</h2>{_table(parameters, ["step", "parameter", "value"])}</div>'
            f'<div class="card"><h2>Packages</h2>{_table(packages, ["package", "version"])}</div>'
            f'<div class="card"><details><summary>Every output file and its sha256 ({len(outputs)})</summary>'
            f'{_table(outputs, ["file", "sha256"])}</details></div>')
    return layout("Manifest of the run", body)


def teaching_page() -> str:
    text = TEACHING_NOTES.read_text(encoding="utf-8") if TEACHING_NOTES.is_file() else "No teaching notes yet."
    return layout("Teaching notes", f'<div class="card">{mistune.create_markdown(plugins=["table"])(text)}</div>')


def build_book(run: Path) -> Path:
    """Write ``<run>/book/`` from the run folder; returns the index page."""
    run = Path(run)
    manifest = _read(run / "manifest.json", {})
    notebooks = {step.name: _read(run / "notebooks" / f"{step.name}.ipynb", None) for step in catalog.STEPS}
    notebooks = {name: nb for name, nb in notebooks.items() if nb is not None}
    book = run / BOOK_DIR
    book.mkdir(parents=True, exist_ok=True)
    for name, notebook in notebooks.items():
        title = notebook_intro(notebook)[0] or name
        (book / f"{name}.html").write_text(render_notebook(notebook, title), encoding="utf-8")
    (book / "figures.html").write_text(figures_page(run, manifest), encoding="utf-8")
    (book / "manifest.html").write_text(manifest_page(manifest), encoding="utf-8")
    (book / "teaching.html").write_text(teaching_page(), encoding="utf-8")
    index = book / "index.html"
    index.write_text(index_page(run, manifest, notebooks), encoding="utf-8")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write the HTML book of a run (default: outputs/latest)")
    parser.add_argument("run", nargs="?", default=str(paths.LATEST_LINK), help="a run id or folder")
    args = parser.parse_args(argv)
    run = Path(args.run) if Path(args.run).is_dir() else paths.RUNS_DIR / args.run
    if not (run / "manifest.json").is_file():
        print(f"error: no run at {run} (run `python run_all.py` first)", file=sys.stderr)
        return 2
    print(f"book: {build_book(run.resolve())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
