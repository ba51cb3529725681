"""`earmark report` / `write_report` on real (tiny) runs: sections, embedded media, missing pieces, the browser view."""

from __future__ import annotations

import csv
import json
import re
import shutil
from html import unescape
from pathlib import Path

import numpy as np
import pytest
import yaml

from earmark.cli import main
from earmark.data.demo import make_demo_dataset
from earmark.errors import DataError
from earmark.evaluate.report import SECTIONS, write_report
from test_train_classical import _config as classical_config
from test_train_network import _config as network_config

IDS = [sid for sid, _ in SECTIONS]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n_per_class=10, duration=1.0, seed=2)


@pytest.fixture(scope="module")
def classical_run(tmp_path_factory, demo) -> Path:
    """A logistic regression on excerpts (``offset``/``duration`` columns) of the demo clips."""
    from earmark.data import Manifest

    root = tmp_path_factory.mktemp("classical")
    m = Manifest.read(demo)
    df = m.df.assign(offset=0.1, duration=0.8)
    excerpts = Manifest.from_frame(df, m.root).write(root / "excerpts.csv")
    cfg = classical_config(root, excerpts.root / "excerpts.csv", model={"name": "logreg"},
                           train={"search": {"enabled": False}})
    assert main(["train", str(cfg), "--out", str(root / "run"), "--no-progress"]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def network_run(tmp_path_factory, demo) -> Path:
    root = tmp_path_factory.mktemp("network")
    cfg = network_config(root, demo, train={"epochs": 2})
    assert main(["train", str(cfg), "--out", str(root / "run"), "--no-progress"]) == 0
    return root / "run"


def _sections(html: str) -> dict[str, str]:
    """``{section id: its html, entities unescaped}`` of a report page."""
    parts = re.findall(r'<section id="([a-z]+)">(.*?)</section>', html, flags=re.S)
    return {sid: unescape(body) for sid, body in parts}


def _copy(run: Path, tmp_path: Path, name: str = "copy") -> Path:
    dest = tmp_path / name
    shutil.copytree(run, dest)
    return dest


def test_train_writes_a_complete_classical_report(classical_run):
    html = (classical_run / "report.html").read_text()
    sections = _sections(html)
    assert list(sections) == IDS
    assert "error while drawing" not in html and "http://" not in html and "https://" not in html
    assert "not available" in sections["curves"] and "classical model (logreg)" in sections["curves"]
    for sid in ("metrics", "confusion", "tsne", "confused", "examples", "model", "failures", "config"):
        assert "not available" not in sections[sid], sid
    assert sections["confusion"].count("data:image/png;base64,") == 1
    assert "t-SNE of the classifier's input features (mfcc, pooled, then scaler" in sections["tsne"]
    assert "all 15 evaluated clips" in sections["tsne"]
    assert sections["examples"].count("data:image/png;base64,") == 5  # one per class
    assert sections["examples"].count("<audio") == 5 and 'src="data:audio/' in sections["confused"]
    assert "macro F1" in sections["metrics"] and "plucked" in sections["metrics"]
    assert "logreg" in sections["model"] and "ms per clip" in sections["model"]
    assert "every clip was used" in sections["failures"]
    assert "manifest:" in sections["config"]


def test_evaluate_writes_predictions_with_one_probability_per_class(classical_run):
    metrics = json.loads((classical_run / "metrics.json").read_text())
    with open(classical_run / "predictions-test.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    labels = metrics["labels"]
    assert list(rows[0]) == ["id", "path", "label", "predicted", "offset", "duration", *(f"p:{label}" for label in labels)]
    assert {(r["offset"], r["duration"]) for r in rows} == {("0.1", "0.8")}
    assert len(rows) == metrics["n"] and all(Path(r["path"]).is_absolute() for r in rows)
    proba = np.array([[float(r[f"p:{label}"]) for label in labels] for r in rows])
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-4)
    assert [r["predicted"] for r in rows] == [labels[i] for i in proba.argmax(axis=1)]
    correct = np.mean([r["predicted"] == r["label"] for r in rows])
    assert correct == pytest.approx(metrics["accuracy"])


def test_network_report_has_curves_and_tsne_at_epoch_1_and_the_end(network_run):
    from earmark.run import Run
    from earmark.train.checkpoint import load_checkpoint

    epoch1 = load_checkpoint(network_run / "epoch1.pt")
    final = Run.load(network_run).model.model_.state_dict()
    assert epoch1.keys() == final.keys()
    assert any(not np.array_equal(epoch1[k].numpy(), final[k].numpy()) for k in final)  # epoch 2 changed them
    sections = _sections((network_run / "report.html").read_text())
    assert "not available" not in "".join(sections[s] for s in ("curves", "tsne", "confused", "examples"))
    assert sections["curves"].count("data:image/png") == 1 and "2 epoch(s)" in sections["curves"]
    assert sections["tsne"].count("data:image/png") == 2
    assert "after epoch 1" in sections["tsne"] and "final model" in sections["tsne"]
    assert "cnn_small" in sections["model"] and "input shape" in sections["model"]


def test_tsne_on_a_stratified_subsample_says_so(classical_run, tmp_path):
    out = write_report(classical_run, out=tmp_path / "small.html", max_tsne=10, seed=3)
    tsne = _sections(out.read_text())["tsne"]
    assert "10 of 15 evaluated clips, stratified by class (seed 3)" in tsne


def test_missing_pieces_are_marked_not_available(classical_run, tmp_path):
    run = _copy(classical_run, tmp_path)
    for name in ("metrics.json", "predictions-test.csv", "failures.csv", "report.html", "confusion.png"):
        (run / name).unlink()
    page = write_report(run)
    assert page == run / "report.html"
    sections = _sections(page.read_text())
    assert list(sections) == IDS
    for sid in ("metrics", "confusion", "confused"):
        assert "not available: no metrics.json" in sections[sid] and "earmark evaluate" in sections[sid], sid
    assert "not available: no failures.csv" in sections["failures"]
    # the evaluated clips are read from the manifest's test split instead of the predictions
    assert "data:image/png" in sections["tsne"] and sections["examples"].count("<audio") == 5
    assert "not available" not in sections["model"] and "not measured" in sections["model"]

    manifest = yaml.safe_load((run / "config.yaml").read_text())["data"]["manifest"]
    assert main(["evaluate", str(run), "--manifest", manifest, "--no-progress"]) == 0  # refreshes the report
    sections = _sections(page.read_text())
    assert "not available" not in sections["metrics"] + sections["confused"]


def test_network_run_without_epoch1_history_or_feature_store(network_run, tmp_path):
    run = _copy(network_run, tmp_path)
    (run / "epoch1.pt").unlink()
    (run / "history.csv").unlink()
    sections = _sections(write_report(run).read_text())
    assert "data:image/png" in sections["curves"]  # from the history kept in net/net.json
    assert sections["tsne"].count("data:image/png") == 1 and "epoch-1 view is not available" in sections["tsne"]

    config = yaml.safe_load((run / "config.yaml").read_text())
    config["features"]["store"] = str(tmp_path / "gone")
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    sections = _sections(write_report(run).read_text())
    assert "not available: the feature store" in sections["tsne"] and "is gone" in sections["tsne"]
    assert not (tmp_path / "gone").exists()  # the report extracts nothing


def test_unloadable_model_keeps_the_metrics(classical_run, tmp_path):
    run = _copy(classical_run, tmp_path)
    (run / "model.skops").unlink()
    sections = _sections(write_report(run).read_text())
    assert "not available" not in sections["metrics"] + sections["confusion"] + sections["confused"]
    assert "not available: the model cannot be loaded" in sections["tsne"]
    assert "not available: the model cannot be loaded" in sections["model"] and "logreg" in sections["model"]


def test_missing_or_empty_run_folder_is_a_data_error(tmp_path, capsys):
    with pytest.raises(DataError, match="no such run folder"):
        write_report(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a run folder"):
        write_report(tmp_path / "empty")
    assert main(["report", str(tmp_path / "nowhere")]) == 1
    assert "no such run folder" in capsys.readouterr().err


def test_refresh_report_warns_instead_of_raising(tmp_path):
    from earmark.evaluate.report import refresh_report

    with pytest.warns(UserWarning, match="report could not be written.*earmark report"):
        assert refresh_report(tmp_path / "nowhere") is None


def test_cli_report_writes_the_page(classical_run, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["report", str(classical_run), "--out", str(out), "--max-tsne", "50"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out.replace("\n", "")
    assert out.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.browser
def test_report_renders_in_chromium_without_errors(network_run):
    from browser import open_page

    with open_page((network_run / "report.html").resolve().as_uri()) as p:
        page = p.page
        p.screenshot("report-network")
        assert p.console_errors == [] and p.failed_requests == []
        assert page.eval_on_selector_all("section", "els => els.map(e => e.id)") == IDS
        sizes = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
        assert len(sizes) >= 1 + 1 + 2 + 5 and all(done and width > 100 for done, width in sizes)
        page.wait_for_function("Array.from(document.querySelectorAll('audio')).every(a => a.readyState >= 1)",
                               timeout=10_000)
        durations = page.eval_on_selector_all("audio", "els => els.map(e => e.duration)")
        assert durations and all(0.5 < d <= 5.01 for d in durations)  # decodable 1 s clips
        assert page.locator("nav.toc a").count() == len(IDS)
        assert page.locator("#examples figure").count() == 5
