"""The run report: one self-contained ``report.html`` per run (``earmark report RUN``; ``train`` writes it too).

Pictures are PNGs and sounds short Ogg/Vorbis clips, embedded as base64 ``data:`` URIs; the styles are
inline and there is no script, so the page opens offline, from a copied folder or a mail attachment.

Sections, with stable ids: ``metrics`` (accuracy, top-k, macro F1, per-class scores), ``confusion``
(counts and row-normalised), ``curves`` (loss, accuracy, learning rate per epoch), ``tsne`` (embeddings of
the evaluated clips by class: a network's penultimate layer after epoch 1 and at the end, a classical
model's input features), ``confused`` (the most confused class pairs, with misclassified clips to listen
to), ``examples`` (waveform, spectrogram and sound of one clip per class), ``model`` (parameters, speed,
search or training summary), ``failures`` and ``config``. A section the run cannot fill stays in the
page as "not available: <why>" -- a report never fails because a run lacks a piece.

Nothing is recomputed that the run folder holds: metrics come from ``metrics.json``, predictions from
``predictions-<split>.csv`` (both written by ``earmark evaluate``), features from the feature store
(read only; nothing is extracted). t-SNE runs on a stratified, seeded subsample of at most
``max_tsne`` clips, so a run with 10,000 evaluated clips reports in seconds.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import csv
import io
import json
import os
import time
import warnings
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from earmark.errors import DataError, EarmarkError
from earmark.evaluate.evaluate import PROBA_PREFIX
from earmark.evaluate.metrics import misclassified, read_metrics
from earmark.fsutil import atomic_write_text
from earmark.run import CONFIG_FILE, FUSION_FILE, MODEL_FILE, NET_DIR, Run

__all__ = ["REPORT_FILE", "SECTIONS", "html_page", "png_img", "refresh_report", "write_report"]

REPORT_FILE = "report.html"
#: ``(id, title)`` of every section, in page order.
SECTIONS = [
    ("metrics", "Metrics"),
    ("confusion", "Confusion matrix"),
    ("curves", "Training curves"),
    ("tsne", "t-SNE of the evaluated clips"),
    ("confused", "Most confused classes"),
    ("examples", "One example per class"),
    ("model", "Model, parameters and speed"),
    ("failures", "Clips that could not be used"),
    ("config", "Configuration"),
]
AUDIO_SR = 16000  # Hz of the embedded sounds: mono, the first AUDIO_SECONDS of the clip
AUDIO_SECONDS = 5.0
N_PAIRS = 5  # confused class pairs listed
CLIPS_PER_PAIR = 3  # misclassified clips to listen to per pair
MAX_EXAMPLE_CLASSES = 30
_MAX_FAILURE_ROWS = 20
_PCA_DIMS = 50  # t-SNE input is reduced to this many principal components first


class Absent(Exception):
    """Raised by a section builder when the run cannot fill the section; the message says why."""


# --------------------------------------------------------------------------- what the run folder holds


@dataclass
class _Inputs:
    """Everything a section may use, loaded once; a missing piece is None with the reason beside it."""

    dir: Path
    metrics: dict | None
    metrics_why: str
    run: Run | None
    run_why: str
    split: str | None
    clips: pd.DataFrame | None  # the evaluated clips: id, path, label, offset, duration (+ predicted)
    clips_why: str
    proba: np.ndarray | None  # (n_clips, n_classes), from predictions-<split>.csv
    proba_labels: list[str] | None
    proba_why: str


def _opt(v: Any) -> float | None:
    """A finite float, or None for a missing value (None, "", NaN)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def _opt_column(values: Any) -> pd.Series:
    """Optional seconds (offset / duration) as an object column: None stays None, never NaN (clip keys use it)."""
    return pd.Series([_opt(v) for v in values], dtype=object)


def _read_predictions(path: Path) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("id", "path", "label", "predicted") if c not in df.columns]
    prob_cols = [c for c in df.columns if c.startswith(PROBA_PREFIX)]
    if missing or not prob_cols:
        raise DataError(f"{path}: not a predictions file (missing {missing or 'the p:<label> columns'})")
    proba = df[prob_cols].astype(np.float64).to_numpy()
    clips = df[["id", "path", "label", "predicted"]].copy()
    for c in ("offset", "duration"):
        clips[c] = _opt_column(df[c] if c in df.columns else [None] * len(df))
    return clips, proba, [c[len(PROBA_PREFIX):] for c in prob_cols]


def _manifest_clips(run: Run, split: str) -> pd.DataFrame:
    """The ``split`` clips of the run's manifest (when there are no predictions to read them from)."""
    from earmark.data import Manifest

    m = Manifest.read(run.config.data.manifest).select(split=split)
    clips = pd.DataFrame({"id": m.ids, "path": m.paths(), "label": m.labels})
    for c in ("offset", "duration"):
        clips[c] = _opt_column(m.df[c] if c in m.df.columns else [None] * len(m))
    return clips


def _load(run_dir: Path) -> _Inputs:
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such run folder")
    if not any((run_dir / name).exists() for name in (CONFIG_FILE, "metrics.json", MODEL_FILE, NET_DIR)):
        raise DataError(f"{run_dir}: not a run folder (no {CONFIG_FILE}, metrics.json, {MODEL_FILE} or {NET_DIR}/)")
    metrics, metrics_why = None, ""
    try:
        metrics = read_metrics(run_dir / "metrics.json")
    except DataError as exc:
        metrics_why = (f"no metrics.json in {run_dir}; run `earmark evaluate {run_dir} --manifest ...`"
                       if not (run_dir / "metrics.json").exists() else str(exc))
    run, run_why = None, ""
    try:
        run = Run.load(run_dir)
    except Exception as exc:  # noqa: BLE001 -- whatever stops the model loading, the rest of the report stands
        run_why = f"the model cannot be loaded ({exc})"
        if (run_dir / FUSION_FILE).is_file():
            from earmark.fuse import read_fusion

            with contextlib.suppress(DataError):
                run_why = ("a fusion of runs (earmark fuse): each fused run's own report has its training curves, "
                           "t-SNE and model details: " + ", ".join(f"{r}/report.html" for r in read_fusion(run_dir)[0]))
    split = metrics.get("split") if metrics else (run.config.data.test_split if run else None)
    clips = proba = proba_labels = None
    clips_why = proba_why = ""
    pred_path = run_dir / f"predictions-{split}.csv"
    if split and pred_path.is_file():
        try:
            clips, proba, proba_labels = _read_predictions(pred_path)
        except (DataError, ValueError, OSError) as exc:
            proba_why = str(exc)
    else:
        proba_why = (f"no predictions-{split}.csv in {run_dir} (`earmark evaluate` writes it)" if split
                     else "no evaluated split")
    if clips is None:
        try:
            if run is None or not split:
                raise Absent(run_why or "no evaluated split")
            clips = _manifest_clips(run, split)
        except (Absent, EarmarkError, OSError) as exc:
            clips_why = f"the evaluated clips are unknown: {proba_why}; {exc}"
    return _Inputs(run_dir, metrics, metrics_why, run, run_why, split, clips, clips_why, proba, proba_labels, proba_why)


# --------------------------------------------------------------------------- HTML pieces


def png_img(fig, alt: str, *, dpi: int = 100) -> str:
    """``<img>`` holding ``fig`` as a base64 PNG data URI."""
    from earmark.evaluate.audio_plots import figure_png

    data = base64.b64encode(figure_png(fig, dpi=dpi)).decode("ascii")
    return f'<img class="plot" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _audio_tag(y: np.ndarray) -> str:
    import soundfile as sf

    buf = io.BytesIO()
    if "OGG" in sf.available_formats():
        sf.write(buf, y, AUDIO_SR, format="OGG", subtype="VORBIS")
        mime = "audio/ogg"
    else:
        sf.write(buf, y, AUDIO_SR, format="WAV", subtype="PCM_16")
        mime = "audio/wav"
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<audio controls preload="metadata" src="data:{mime};base64,{data}"></audio>'


def _load_audio(row: Any) -> np.ndarray:
    """The first :data:`AUDIO_SECONDS` of a clip (its manifest excerpt), mono at :data:`AUDIO_SR`."""
    from earmark.audio import load

    offset, duration = _opt(row.offset) or 0.0, _opt(row.duration)
    duration = AUDIO_SECONDS if duration is None else min(AUDIO_SECONDS, duration)
    return load(row.path, sr=AUDIO_SR, offset=offset, duration=duration)


def _absent(why: str) -> str:
    return f'<p class="absent">not available: {escape(why)}</p>'


def _num(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{float(x):.{digits}f}"


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * float(x):.1f}%"


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    """A table of already-escaped cells; columns in ``numeric`` are right-aligned."""
    cls = lambda i: ' class="num"' if i in numeric else ""  # noqa: E731
    head = "".join(f"<th{cls(i)}>{h}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv(items: list[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in items if v is not None)
    return f'<table class="kv">{rows}</table>'


_CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --panel: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 15px/1.5 -apple-system, "Segoe UI", "Helvetica Neue", Arial, sans-serif; }
header { padding: 20px 40px 12px; background: var(--panel); border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; color: var(--muted); }
nav.toc { display: flex; flex-wrap: wrap; gap: 2px 18px; padding: 8px 40px; border-bottom: 1px solid var(--line);
          position: sticky; top: 0; background: #fff; z-index: 1; }
nav.toc a { color: var(--accent); text-decoration: none; white-space: nowrap; }
nav.toc a.off { color: var(--muted); }
main { max-width: 1240px; margin: 0 auto; padding: 0 40px 60px; }
section { margin-top: 28px; }
h2 { font-size: 20px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0 18px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 8px 16px; min-width: 120px; }
.card .v { font-size: 24px; font-weight: 600; }
.card .k { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 8px 0; }
th, td { padding: 4px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: var(--panel); }
.num { text-align: right; }
table.kv th { font-weight: 600; color: var(--muted); }
.bar { display: inline-block; height: 10px; background: var(--accent); border-radius: 2px; vertical-align: middle; }
img.plot { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 16px; }
figure { margin: 0; }
figcaption { color: var(--muted); font-size: 13px; margin: 4px 0; }
.absent { color: #7d4e00; background: #fff8c5; border: 1px solid #d4a72c; padding: 8px 12px; border-radius: 6px; }
.note { color: var(--muted); font-size: 13px; }
pre { background: var(--panel); border: 1px solid var(--line); padding: 12px; border-radius: 6px; overflow: auto; font-size: 13px; }
audio { width: 280px; height: 32px; vertical-align: middle; }
footer { color: var(--muted); font-size: 12px; padding: 20px 40px; border-top: 1px solid var(--line); }
"""


def html_page(title: str, subtitle: str, sections: list[tuple[str, str, str, bool]]) -> str:
    """A whole self-contained page: header, table of contents, ``(id, title, body html, available)`` sections."""
    from earmark import __version__

    toc = "".join(f'<a href="#{sid}"{"" if ok else " class=off"}>{escape(t)}</a>' for sid, t, _, ok in sections)
    body = "".join(f'<section id="{sid}"><h2>{escape(t)}</h2>{html}</section>' for sid, t, html, _ in sections)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="data:,"><title>{escape(title)}</title><style>{_CSS}</style></head>'
            f'<body><header><h1>{escape(title)}</h1><p>{subtitle}</p></header>'
            f'<nav class="toc">{toc}</nav><main>{body}</main>'
            f'<footer>Written by earmark {escape(__version__)} on {stamp}. Self-contained: '
            f'images and sounds are embedded.</footer></body></html>\n')


# --------------------------------------------------------------------------- sections


def _metrics(inp: _Inputs) -> str:
    m = inp.metrics
    if m is None:
        raise Absent(inp.metrics_why)
    cards = [("accuracy", _pct(m.get("accuracy")))]
    cards += [(f"top-{k}", _pct(v)) for k, v in (m.get("top_k_accuracy") or {}).items() if k != "1"]
    cards += [("macro F1", _num(m.get("macro_f1"))), (f"{m.get('split', '?')} clips", f"{int(m.get('n') or 0):,}")]
    if m.get("inference_ms_per_clip") is not None:
        cards.append(("ms / clip", f"{m['inference_ms_per_clip']:.1f}"))
    if m.get("params") is not None:
        cards.append(("parameters", f"{m['params']:,}"))
    html = '<div class="cards">' + "".join(f'<div class="card"><div class="v">{escape(v)}</div>'
                                          f'<div class="k">{escape(k)}</div></div>' for k, v in cards) + "</div>"
    rows = []
    for label, s in (m.get("per_class") or {}).items():
        f1 = float(s.get("f1", 0.0))
        rows.append([escape(label), _num(s.get("precision")), _num(s.get("recall")),
                     f'{_num(f1)} <span class="bar" style="width:{round(80 * f1)}px"></span>', f"{s.get('support', 0):,}"])
    html += "<h3>Per class</h3>" + _table(["class", "precision", "recall", "F1", "support"], rows, {1, 2, 3, 4})
    if m.get("unseen_labels"):
        unseen = ", ".join(f"{escape(k)} ({v})" for k, v in m["unseen_labels"].items())
        html += f'<p class="note">Labels the model never saw, counted as errors: {unseen}.</p>'
    if m.get("n_failed"):
        html += f'<p class="note">{m["n_failed"]} clip(s) could not be decoded and were left out (see below).</p>'
    return html


def _confusion(inp: _Inputs) -> str:
    from earmark.evaluate.plots import confusion_pair_figure

    if inp.metrics is None:
        raise Absent(inp.metrics_why)
    fig = confusion_pair_figure(inp.metrics["confusion_matrix"], inp.metrics["labels"])
    return (f'<p class="note">Rows: true class; columns: predicted class. Right: each row as a share of its true '
            f'class (the recall on the diagonal).</p>{png_img(fig, "confusion matrix")}')


def _is_network(run: Run) -> bool:
    """``run.is_network`` without importing torch for a classical run (as :meth:`Run.load` decides)."""
    return (run.dir / NET_DIR).is_dir() and run.is_network


def _read_history(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _member_dirs(run_dir: Path) -> list[Path]:
    """Training folders of an ensemble's members (where their history.csv and epoch1.pt are), else []."""
    path = run_dir / NET_DIR / "ensemble.json"
    if not path.is_file():
        return []
    members = json.loads(path.read_text(encoding="utf-8")).get("members", [])
    return [(run_dir / NET_DIR / m).resolve().parent for m in members]


def _curves(inp: _Inputs) -> str:
    from earmark.evaluate.plots import plot_training_curves

    run = inp.run
    if run is not None and not _is_network(run):
        raise Absent(f"a classical model ({run.meta.get('model')}) is fitted in one step, not epoch by epoch; "
                     "see the model section for its cross-validation")
    members = _member_dirs(inp.dir)
    if members:
        found = [d / "history.csv" for d in members if (d / "history.csv").is_file()]
        names = [f"member {i}" for i, d in enumerate(members) if (d / "history.csv").is_file()]
    else:
        found = [inp.dir / "history.csv"] if (inp.dir / "history.csv").is_file() else []
        names = ["network"]
    histories = [_read_history(p) for p in found]
    if not histories and run is not None:  # a run folder without history.csv: the history kept in net.json
        nets = run.model.members if members else [run.model]
        histories = [list(getattr(n, "history_", None) or []) for n in nets]
        names = [f"member {i}" for i in range(len(nets))]
    histories = [h for h in histories if h]
    if not histories:
        raise Absent(f"no history.csv in {inp.dir}" + (f" ({inp.run_why})" if run is None else ""))
    html = png_img(plot_training_curves(histories, names=names), "training curves")
    last_val = histories[0][-1].get("val_loss")
    best = run.meta.get("best_epoch") if run is not None else None
    notes = [f"{len(histories[0])} epoch(s)"]
    if best:
        notes.append(f"lowest validation loss after epoch {best}")
    if last_val is None or str(last_val).strip() in ("", "None"):
        notes.append("no validation split (train.val_fraction: 0)")
    if len(histories) > 1:
        notes.append(f"{len(histories)} ensemble members, one line each")
    return html + f'<p class="note">{escape("; ".join(notes))}.</p>'


def _subsample(labels: np.ndarray, n_max: int, seed: int) -> np.ndarray:
    """Sorted indices of a stratified, seeded subsample of at most about ``n_max`` items (all when fewer)."""
    from earmark.data.splits import stratified_split

    if len(labels) <= n_max:
        return np.arange(len(labels))
    frac = n_max / len(labels)
    split = stratified_split(np.asarray(labels, dtype=object), {"keep": frac, "rest": 1.0 - frac}, seed=seed)
    return np.flatnonzero(np.asarray(split) == "keep")


def _tsne_points(X: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    if X.shape[1] > _PCA_DIMS and len(X) > _PCA_DIMS:
        X = PCA(_PCA_DIMS, random_state=seed).fit_transform(X)
    perplexity = float(min(30.0, (len(X) - 1) / 3.0))
    method = "exact" if len(X) <= 250 else "barnes_hut"  # exact is faster on a few hundred points
    tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, method=method, random_state=seed)
    # One OpenMP thread: the same picture on every machine, and no spinning threads fighting over busy
    # cores (two threads on two loaded cores were 5x slower than one).
    with threadpool_limits(1, user_api="openmp"):
        return tsne.fit_transform(X)


def _tsne(inp: _Inputs, max_tsne: int, seed: int) -> str:
    from earmark.evaluate.plots import plot_embedding
    from earmark.features.store import Clip, FeatureStore

    run, clips = inp.run, inp.clips
    if run is None:
        raise Absent(inp.run_why)
    if clips is None:
        raise Absent(inp.clips_why)
    idx = _subsample(clips["label"].to_numpy(dtype=object), max_tsne, seed)
    sub = clips.iloc[idx]
    f = run.config.features
    if not Path(f.store).is_dir():
        raise Absent(f"the feature store {f.store} is gone (the report reads features, it does not extract them)")
    with FeatureStore(f.store, f.name, f.params, separate=run.config.audio.separate) as store:
        table = store.load([Clip(str(r.id), str(r.path), _opt(r.offset), _opt(r.duration)) for r in sub.itertuples()])
        have = np.array([a is not None for a in table.arrays], dtype=bool)
        if have.sum() < 5:
            raise Absent(f"{int(have.sum())} of {len(sub)} clips have features in {store.dir}; t-SNE needs at least 5")
        arrays = [np.asarray(a) for a in table.arrays if a is not None]
    y = sub["label"].to_numpy(dtype=object)[have]
    labels = inp.metrics["labels"] if inp.metrics else run.labels
    total, left_out = len(clips), len(sub) - len(arrays)
    what = (f"all {total:,} evaluated clips" if len(sub) == total else
            f"{len(sub):,} of {total:,} evaluated clips, stratified by class (seed {seed})")
    if left_out:
        what += f" ({left_out:,} without stored features left out)"
    figures = []
    if _is_network(run):
        members = getattr(run.model, "members", None)
        net = members[0] if members else run.model
        where = _member_dirs(inp.dir)[0] if members else inp.dir
        epoch1 = where / "epoch1.pt"
        if epoch1.is_file():
            from earmark.train.checkpoint import load_checkpoint

            first = copy.deepcopy(net)
            first.model_.load_state_dict(load_checkpoint(epoch1))
            figures.append(plot_embedding(_tsne_points(first.embed(arrays), seed), y, labels,
                                          title="penultimate layer after epoch 1"))
        title = "penultimate layer, final model" + (" (ensemble member 0)" if members else "")
        figures.append(plot_embedding(_tsne_points(net.embed(arrays), seed), y, labels, title=title))
        note = f"t-SNE of the network's penultimate-layer embeddings of {what}."
        if not epoch1.is_file():
            note += f" The epoch-1 view is not available: no {epoch1.name} in {where}."
    else:
        from earmark.features.pool import vectors

        X = vectors(arrays, f.pool)  # run.inputs() of a classical run
        model, steps = run.model, "standardised"
        if hasattr(model, "steps") and len(model.steps) > 1:
            X = model[:-1].transform(X)  # what the classifier itself sees: after scaler / selection / PCA
            steps = " -> ".join(name for name, _ in model.steps[:-1])
        else:
            from sklearn.preprocessing import StandardScaler

            X = StandardScaler().fit_transform(X)
        X = np.asarray(X, dtype=np.float64)
        figures.append(plot_embedding(_tsne_points(X, seed), y, labels, title=f"model input ({X.shape[1]} dims)"))
        note = (f"t-SNE of the classifier's input features ({f.name}, pooled, then {steps}; "
                f"{X.shape[1]} dimensions) of {what}.")
    imgs = "".join(f"<figure>{png_img(fig, 't-SNE ' + (fig.axes[0].get_title() or ''), dpi=90)}</figure>"
                   for fig in figures)
    return f'<p class="note">{escape(note)} Colour: true class.</p><div class="grid">{imgs}</div>'


def _confused(inp: _Inputs) -> str:
    m = inp.metrics
    if m is None:
        raise Absent(inp.metrics_why)
    cm = np.asarray(m["confusion_matrix"], dtype=np.int64)
    labels = list(m["labels"])
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:N_PAIRS]
    pairs = [(int(i), int(j)) for i, j in zip(*np.unravel_index(order, off.shape)) if off[i, j] > 0]
    if not pairs:
        return '<p>No clip of the evaluated split was misclassified.</p>'
    mistakes: list[dict] = []
    if inp.proba is not None:
        mistakes = misclassified(inp.clips["label"], inp.proba, inp.proba_labels, inp.clips["id"], n=None)
    rows_by_id = {str(r.id): r for r in inp.clips.itertuples()} if inp.proba is not None else {}
    html = '<p class="note">Off-diagonal cells of the confusion matrix, largest first; under each pair, the ' \
           'clips misclassified with the highest confidence (first 5 s, mono, 16 kHz).</p>'
    for i, j in pairs:
        share = off[i, j] / max(cm[i].sum(), 1)
        html += (f"<h3>{escape(labels[i])} &rarr; {escape(labels[j])}: {off[i, j]:,} clip(s), "
                 f"{_pct(share)} of {escape(labels[i])}</h3>")
        if inp.proba is None:
            html += _absent(f"clips to listen to: {inp.proba_why}")
            continue
        rows = []
        for x in [x for x in mistakes if x["true"] == labels[i] and x["predicted"] == labels[j]][:CLIPS_PER_PAIR]:
            r = rows_by_id[str(x["id"])]
            try:
                player = _audio_tag(_load_audio(r))
            except (EarmarkError, OSError) as exc:
                player = f'<span class="note">cannot play: {escape(str(exc))}</span>'
            rows.append([escape(str(x["id"])), f"{x['confidence']:.3f}", player])
        html += _table(["clip", "confidence", "listen"], rows, {1})
    return html


def _examples(inp: _Inputs) -> str:
    from earmark.evaluate.audio_plots import plot_spectrogram, plot_waveform
    from earmark.evaluate.plots import new_figure

    clips = inp.clips
    if clips is None:
        raise Absent(inp.clips_why)
    labels = list(inp.metrics["labels"]) if inp.metrics else sorted(set(clips["label"]) - {""})
    confidence = None
    if inp.proba is not None:  # the most confidently right clip of each class, else its first clip
        confidence = inp.proba.max(axis=1) * (clips["predicted"].to_numpy() == clips["label"].to_numpy())
    shown = labels[:MAX_EXAMPLE_CLASSES]
    figures = []
    for label in shown:
        idx = np.flatnonzero(clips["label"].to_numpy(dtype=object) == label)
        if len(idx) == 0:
            figures.append(f"<figure><figcaption>{escape(label)}</figcaption>"
                           f"{_absent('no clip of this class in the evaluated split')}</figure>")
            continue
        pick = idx[int(np.argmax(confidence[idx]))] if confidence is not None else idx[0]
        row = next(clips.iloc[[pick]].itertuples())
        try:
            y = _load_audio(row)
        except (EarmarkError, OSError) as exc:
            figures.append(f"<figure><figcaption>{escape(label)}</figcaption>{_absent(str(exc))}</figure>")
            continue
        fig = new_figure(6.4, 4.6)
        top, bottom = fig.subplots(2, 1, height_ratios=[1, 1.6])
        plot_waveform(y, AUDIO_SR, title=f"{label}: {row.id}", ax=top)
        plot_spectrogram(y, AUDIO_SR, ax=bottom, n_fft=1024, hop_length=256, n_mels=96)
        figures.append(f"<figure>{png_img(fig, 'example of ' + label, dpi=80)}"
                       f"<figcaption>{escape(label)} &middot; {escape(str(row.id))} {_audio_tag(y)}</figcaption></figure>")
    note = "One evaluated clip per class (the most confidently right one when predictions exist), first 5 s."
    if len(labels) > len(shown):
        note += f" The first {len(shown)} of {len(labels)} classes."
    return f'<p class="note">{escape(note)}</p><div class="grid">{"".join(figures)}</div>'


def _model(inp: _Inputs) -> str:
    run, m = inp.run, inp.metrics or {}
    if run is None and not m:
        raise Absent(inp.run_why)
    items: list[tuple[str, Any]] = [("model", m.get("model") or (run.meta.get("model") if run else None))]
    params = m.get("params")
    if params is None and run is not None:
        from earmark.models.classical import count_params

        params = count_params(run.model)
    items.append(("parameters", f"{params:,}" if params is not None else "-"))
    ms = m.get("inference_ms_per_clip")
    items.append(("inference time", f"{ms:.2f} ms per clip (median; decode, features, model)" if ms is not None
                  else "not measured (no metrics.json)"))
    if run is not None:
        f = run.config.features
        items += [("features", f"{f.name} {json.dumps(f.params)}" if f.params else f.name)]
        if _is_network(run):
            members = getattr(run.model, "members", None)
            net = members[0] if members else run.model
            o = net.options_
            items += [("network", f"{net.network} {json.dumps(net.network_params or {})}"),
                      ("input shape", str(tuple(net.input_shape_))),
                      ("training", f"{o.optimizer}, lr {o.lr:g}, batch {o.batch_size}, schedule {o.schedule}, "
                                   f"{len(net.history_)} epoch(s)"),
                      ("best epoch", net.best_epoch_)]
            if members:
                items.append(("ensemble", f"{len(members)} members, probabilities averaged"))
        else:
            f_pool = ", ".join(f.pool)
            items += [("pooling", f_pool), ("pipeline", " -> ".join(n for n, _ in getattr(run.model, "steps", [])) or None),
                      ("best parameters", json.dumps(run.meta.get("best_params")) if run.meta.get("best_params") else None),
                      ("cross-validation score", _num(run.meta.get("cv_score")) if run.meta.get("cv_score") is not None else None),
                      ("training clips", run.meta.get("n_train"))]
            per_model = run.meta.get("cv_per_model") or {}
            if per_model:
                items.append(("CV score per model", ", ".join(f"{k} {_num(v)}" for k, v in per_model.items())))
    html = _kv(items)
    if m.get("members"):  # an ensemble's networks, or a fusion's runs (named)
        fusion = any("run" in x for x in m["members"])
        html += ("<h3>Fused runs</h3>" if fusion else "<h3>Ensemble members</h3>") + _table(
            ["member", "accuracy"], [[escape(str(x.get("run", x["member"]))), _pct(x["accuracy"])] for x in m["members"]], {1})
    if run is None:
        html += _absent(inp.run_why)
    return html


def _failures(inp: _Inputs) -> str:
    files = [(inp.dir / "failures.csv", "training"), (inp.dir / f"failures-{inp.split}.csv", f"evaluation ({inp.split})")]
    found = [(p, what) for p, what in files if p.is_file()]
    if not found:
        raise Absent(f"no failures.csv in {inp.dir}")
    html = ""
    for path, what in found:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            html += f"<p>{escape(what.capitalize())}: every clip was used.</p>"
            continue
        html += f"<h3>{escape(what.capitalize())}: {len(rows):,} clip(s) left out</h3>"
        html += _table(["clip", "path", "reason"], [[escape(r.get("id", "")), escape(r.get("path", "")),
                                                     escape(r.get("reason", ""))] for r in rows[:_MAX_FAILURE_ROWS]])
        if len(rows) > _MAX_FAILURE_ROWS:
            html += f'<p class="note">The first {_MAX_FAILURE_ROWS}; all are in {escape(path.name)}.</p>'
    return html


def _config(inp: _Inputs) -> str:
    path = inp.dir / CONFIG_FILE
    if not path.is_file():
        raise Absent(f"no {CONFIG_FILE} in {inp.dir}")
    return f'<p class="note">Resolved: every default filled in.</p><pre>{escape(path.read_text(encoding="utf-8"))}</pre>'


# --------------------------------------------------------------------------- the page


def write_report(run_dir: str | os.PathLike, *, out: str | os.PathLike | None = None, max_tsne: int = 2000,
                 seed: int = 0) -> Path:
    """Write the run's self-contained HTML report (atomically).

    Parameters
    ----------
    run_dir : path
        A run folder written by ``earmark train`` (and ``earmark evaluate``).
    out : path, optional
        Where to write; default ``run_dir/report.html``.
    max_tsne : int, default 2000
        t-SNE uses a stratified subsample of at most this many evaluated clips (the page says so).
    seed : int, default 0
        Seed of the subsample and of t-SNE: the same run gives the same pictures.

    Returns
    -------
    Path
        The written page.

    Raises
    ------
    DataError
        ``run_dir`` does not exist or is not a run folder. Missing pieces of a run (no metrics.json, no
        history, no predictions, no feature store, a model that cannot be loaded) do not raise: their
        sections say "not available: <why>". An unexpected error inside one section is reported the
        same way (and as a warning), so the rest of the report is still written.
    """
    if isinstance(max_tsne, bool) or int(max_tsne) != max_tsne or max_tsne < 5:
        raise DataError(f"max_tsne: expected an integer >= 5, got {max_tsne!r}")
    run_dir = Path(run_dir)
    inp = _load(run_dir)
    builders: dict[str, Callable[[_Inputs], str]] = {
        "metrics": _metrics, "confusion": _confusion, "curves": _curves,
        "tsne": lambda i: _tsne(i, int(max_tsne), seed), "confused": _confused, "examples": _examples,
        "model": _model, "failures": _failures, "config": _config,
    }
    sections = []
    for sid, title in SECTIONS:
        try:
            html, ok = builders[sid](inp), True
        except Absent as exc:
            html, ok = _absent(str(exc)), False
        except Exception as exc:  # noqa: BLE001 -- one broken section must not cost the whole report
            warnings.warn(f"report section {sid!r} of {run_dir}: {type(exc).__name__}: {exc}", stacklevel=2)
            html, ok = _absent(f"error while drawing this section ({type(exc).__name__}: {exc})"), False
        sections.append((sid, title, html, ok))
    m = inp.metrics or {}
    model = m.get("model") or (inp.run.meta.get("model") if inp.run else None) or "unknown model"
    features = m.get("features") or (inp.run.config.features.name if inp.run else None) or "unknown features"
    subtitle = escape(f"{model} on {features}")
    if m:
        subtitle += escape(f" · {m.get('split')} split, {m.get('n', 0):,} clips · accuracy {_pct(m.get('accuracy'))}"
                           f" · macro F1 {_num(m.get('macro_f1'))}")
    subtitle += f' · <span class="note">{escape(str(run_dir.resolve()))}</span>'
    page = html_page(f"earmark report: {run_dir.resolve().name}", subtitle, sections)
    out = Path(out) if out is not None else run_dir / REPORT_FILE
    atomic_write_text(out, page)
    return out


def refresh_report(run_dir: str | os.PathLike) -> Path | None:
    """:func:`write_report` for the end of ``train`` / ``evaluate``: a failure is a warning, never an error.

    Returns the page, or None when it could not be written (the warning says why and that
    ``earmark report RUN`` retries); the run itself is complete either way.
    """
    try:
        return write_report(run_dir)
    except Exception as exc:  # noqa: BLE001 -- the run is saved; the report can be rebuilt with `earmark report`
        warnings.warn(f"{run_dir}: the report could not be written ({type(exc).__name__}: {exc}); "
                      f"the run is complete, retry with `earmark report {run_dir}`", stacklevel=2)
        return None
