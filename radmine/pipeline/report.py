"""The self-contained HTML report of ``radmine mine``.

Everything is read back from the output folder the steps wrote; images are
embedded as base64 PNG so the single ``report.html`` can be mailed to a
colleague. Sections whose step did not run are left out with a note.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from radmine._io import atomic_write_text
from radmine.pipeline import artifacts
from radmine.pipeline.artifacts import Artifact
from radmine.pipeline.config import CLUSTER_SPACES

logger = logging.getLogger(__name__)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em} th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f5f5f5} .note{color:#777;font-style:italic} .grid{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;padding:6px;width:250px;font-size:.85em} .card img{max-width:100%;display:block;margin-bottom:4px}
.bar{background:#4c78a8;height:10px;display:inline-block;vertical-align:middle}
"""


def _img_tag(path: str | Path | None, max_size: int = 240, alt: str = "") -> str:
    """An ``<img>`` with the picture inlined as base64 PNG (thumbnail), or a note if unreadable."""
    if path is None or (isinstance(path, float)) or not Path(str(path)).is_file():
        return f"<div class='note'>image not available{(': ' + html.escape(alt)) if alt else ''}</div>"
    try:
        p = Path(str(path))
        if p.suffix.lower() in (".dcm", ""):
            from PIL import Image

            from radmine.pixels import load_pixels

            arr = load_pixels(p)
            if arr.ndim == 3:
                arr = arr[0]
            img = Image.fromarray((arr.clip(0, 1) * 255).astype("uint8"))
        else:
            from PIL import Image

            img = Image.open(p)
            img.load()
        img.thumbnail((max_size, max_size))
        if img.mode not in ("L", "RGB"):
            img = img.convert("RGB")
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"
    except Exception as err:  # one unreadable image must not break the report
        logger.debug("report: cannot embed %s: %s", path, err)
        return f"<div class='note'>image could not be decoded: {html.escape(alt)}</div>"


def _table(df: pd.DataFrame, max_rows: int = 30) -> str:
    if df is None or not len(df):
        return "<p class='note'>(empty)</p>"
    return df.head(max_rows).to_html(index=False, escape=True, border=0)


def _pairs_text(v):
    """``'[["liver", 524], ["mass", 198]]'`` -> ``'liver 524, mass 198'`` (the paper's cluster naming style)."""
    if isinstance(v, str) and v.startswith("["):
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            return v
    if isinstance(v, (list, tuple)):
        out = []
        for item in v:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                w, c = item
                out.append(f"{w} {c:.3g}" if isinstance(c, float) else f"{w} {c}")
            else:
                out.append(str(item))
        return ", ".join(out)
    return v


def _read(out: Path, artifact: Artifact):
    """``artifact`` as read from ``out``, or None when its step has not written it."""
    return artifact.read(out) if artifact.exists(out) else None


def _skipped_steps(manifest: dict) -> dict[str, str]:
    """``{step: reason}`` of the steps that finished with nothing to do."""
    out = {}
    for name, entry in manifest.get("steps", {}).items():
        info = entry.get("info") if isinstance(entry, dict) else None
        if isinstance(info, dict) and info.get("skipped"):
            out[name] = str(info["skipped"])
    return out


def _missing(step: str, skipped: dict[str, str] | None = None) -> str:
    reason = (skipped or {}).get(step)
    if reason:
        return f"<p class='note'>The {step} step was skipped: {html.escape(reason)}.</p>"
    return f"<p class='note'>The {step} step has not run for this corpus.</p>"


def write_report(out: str | Path, *, n_examples: int | None = None, step_order: Sequence[str] | None = None) -> Path:
    """Write ``out/report.html`` from the tables the steps left in ``out``.

    Parameters
    ----------
    out : str or Path
        The ``radmine mine`` output folder.
    n_examples : int, optional
        Images per gallery (default: the run's ``report.n_examples``).
    step_order : sequence of str, optional
        Order of the steps in the run table (default: the run's ``run.steps``
        from ``out/config.json``); steps not listed come last.

    Returns
    -------
    Path
        The report file.
    """
    out = Path(out)
    cfg = _read(out, artifacts.CONFIG) or {}
    n = n_examples or cfg.get("report", {}).get("n_examples", 8)
    manifest = _read(out, artifacts.MANIFEST) or {"steps": {}}
    corpus = artifacts.CORPUS.read(out)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>radmine report: {html.escape(corpus.name)}</title>"
             f"<style>{CSS}</style></head><body>", f"<h1>radmine report — {html.escape(corpus.name)}</h1>"]

    # run summary
    if step_order is None:
        step_order = cfg.get("run", {}).get("steps", [])
    order = {name: i for i, name in enumerate(step_order)}
    done = sorted(manifest.get("steps", {}).items(), key=lambda kv: order.get(kv[0], len(order)))
    # paths inside the output folder are shown relative to it (the report may leave the machine)
    here = str(out.resolve()) + "/"
    rows = [{"step": k, "seconds": v.get("seconds"), "summary": json.loads(json.dumps(v.get("summary", "")).replace(here, ""))}
            for k, v in done]
    parts.append("<h2>Run</h2>" + _table(pd.DataFrame(rows)))
    skipped = _skipped_steps(manifest)
    if skipped:
        parts.append("<p>Skipped steps:</p><ul class='skipped'>" + "".join(
            f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in skipped.items()) + "</ul>")

    # corpus
    s = corpus.summary()
    parts.append("<h2>Corpus</h2>" + _table(pd.DataFrame([{"what": k, "value": json.dumps(v) if isinstance(v, dict) else v} for k, v in s.items()])))

    # links
    parts.append("<h2>Key images and their sentences</h2>")
    links = _read(out, artifacts.LINKS)
    if links is None or not len(links):
        parts.append(_missing("text", skipped))
    else:
        stats = links.groupby("method").agg(links=("image_id", "size"), resolved=("resolved", "sum")).reset_index()
        parts.append(_table(stats))
        images = corpus.images.set_index("image_id") if len(corpus.images) else None
        ok = links[links["resolved"].fillna(False).astype(bool)].drop_duplicates("image_id").head(n)
        cards = []
        for _, r in ok.iterrows():
            path = images.loc[r["image_id"], "path"] if images is not None and r["image_id"] in images.index else None
            sent = str(r.get("sentence", ""))[:400]
            cards.append(f"<div class='card'>{_img_tag(path, alt=str(r['image_id']))}<b>{html.escape(str(r['image_id']))}</b><br>{html.escape(sent)}</div>")
        parts.append("<div class='grid'>" + "".join(cards) + "</div>")

    # labels
    parts.append("<h2>Weak labels</h2>")
    prev = _read(out, artifacts.PREVALENCE)
    if prev is None:
        parts.append(_missing("labels", skipped))
    else:
        prev.columns = ["finding", "prevalence"][: len(prev.columns)] + list(prev.columns[2:])
        bars = "".join(
            f"<tr><td>{html.escape(str(r.finding))}</td><td>{r.prevalence:.3f}</td><td><span class='bar' style='width:{int(300 * r.prevalence)}px'></span></td></tr>"
            for r in prev.itertuples()
        )
        parts.append(f"<table><tr><th>finding</th><th>positive share</th><th></th></tr>{bars}</table>")
        ev = _read(out, artifacts.MESH_EVALUATION)
        if ev is not None:
            parts.append("<p>Against the MeSH reference:</p>" + _table(ev.round(3), 40))

    # topics
    parts.append("<h2>Topics</h2>")
    sel = _read(out, artifacts.TOPIC_SELECTION)
    if sel is not None:
        parts.append("<p>Choosing K:</p>" + _table(sel.round(4)))
    for level, table in ((1, artifacts.TOPIC_INFO), (2, artifacts.TOPIC_INFO_LEVEL2)):
        ti = _read(out, table)
        if ti is not None:
            cols = [c for c in ("topic", "size", "name") if c in ti.columns]
            parts.append(f"<h3>Level {level}</h3>" + _table(ti[cols] if cols else ti, 60))
    if sel is None and not artifacts.TOPIC_INFO.exists(out):
        parts.append(_missing("topics", skipped))

    # clusters
    parts.append("<h2>Image clusters</h2>")
    info = _read(out, artifacts.CLUSTER_INFO)
    if info is None:
        parts.append(_missing("cluster", skipped))
    else:
        space = manifest.get("steps", {}).get("cluster", {}).get("info", {}).get("space")
        if space in CLUSTER_SPACES:
            parts.append(f"<p>Clustered in {CLUSTER_SPACES[space]}.</p>")
        cols = [c for c in ("cluster", "size", "name", "top_words", "distinctive_words", "top_annotations") if c in info.columns]
        parts.append(_table(info[cols].map(_pairs_text), 60))
        hist = _read(out, artifacts.CLUSTER_HISTORY)
        if hist is not None:
            parts.append("<p>Convergence:</p>" + _table(hist.round(4)))
        if artifacts.CLUSTER_HISTORY_PLOT.exists(out):
            parts.append(_img_tag(artifacts.CLUSTER_HISTORY_PLOT.at(out), max_size=700, alt="cluster history"))
        mont = artifacts.MONTAGES.members(out)
        parts.append("<div class='grid'>" + "".join(
            f"<div class='card'>{_img_tag(m, max_size=400, alt=m.stem)}{html.escape(m.stem)}</div>" for m in mont) + "</div>")

    # image to text
    parts.append("<h2>Image → text</h2>")
    metrics = _read(out, artifacts.METRICS)
    if not metrics:
        parts.append(_missing("img2text", skipped))
    else:
        parts.append(_table(pd.DataFrame([{"metric": k, "value": round(v, 4) if isinstance(v, float) else v} for k, v in metrics.items()]), 40))
        desc = _read(out, artifacts.DESCRIBE)
        if desc is not None and len(desc):
            cards = []
            for _, r in desc.iterrows():
                text = {k: v for k, v in r.items() if k not in ("image_id", "path")}
                body = "<br>".join(f"<b>{html.escape(str(k))}</b>: {html.escape(str(v))[:300]}" for k, v in text.items())
                path = r.get("path")  # relative to the output folder
                path = out / str(path) if isinstance(path, str) and path else None
                cards.append(f"<div class='card'>{_img_tag(path, alt=str(r['image_id']))}{body}</div>")
            parts.append("<div class='grid'>" + "".join(cards) + "</div>")

    q = artifacts.QUARANTINE.at(out)
    parts.append("<h2>Quarantine</h2>")
    parts.append(_table(pd.read_csv(q), 50) if q.is_file() and q.stat().st_size > 30 else "<p class='note'>Nothing was skipped.</p>")
    # Lets a headless browser check that every embedded image decoded (see tests/test_report_browser.py).
    parts.append(
        "<script>window.addEventListener('load',function(){var im=Array.prototype.slice.call(document.images);"
        "var bad=im.filter(function(i){return !(i.complete&&i.naturalWidth>0);});"
        "document.body.setAttribute('data-images',im.length);document.body.setAttribute('data-broken',bad.length);});</script>"
    )
    parts.append("</body></html>")
    path = artifacts.REPORT.at(out)
    atomic_write_text(path, "\n".join(parts))
    return path
