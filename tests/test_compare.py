"""`compare_runs` / `earmark compare` over real run folders (metrics.json from compute_metrics, config.yaml)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import earmark.cli.compare  # noqa: F401  (registers `earmark compare` whatever earmark/cli/__init__ imports)
from earmark.cli import main
from earmark.errors import DataError
from earmark.evaluate import compare_runs, compute_metrics, to_markdown, write_metrics

LABELS = ["bass", "brass", "flute", "guitar"]


def _run(root: Path, name: str, n_correct: int, *, model, features="mfcc", ms=None, params=None, extra=None) -> Path:
    """A run folder whose test accuracy is n_correct / 10 (top-3 always 1.0 here: true label ranks 2nd)."""
    y = [LABELS[i % 4] for i in range(10)]
    proba = np.full((10, 4), 0.1)
    for i, label in enumerate(y):
        t = LABELS.index(label)
        proba[i, t if i < n_correct else (t + 1) % 4] = 0.7
        if i >= n_correct:
            proba[i, t] = 0.2
    m = compute_metrics(y, proba, LABELS, inference_ms_per_clip=ms, params=params)
    m.update(extra or {})
    run = root / name
    write_metrics(m, run / "metrics.json")
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"manifest": "m.csv"}, "features": {"name": features},
                                                     "model": model}))
    return run


@pytest.fixture
def runs(tmp_path):
    return [
        _run(tmp_path, "svm_run", 6, model={"name": "svm", "params": {"C": 1.0}}, ms=0.5, params=None),
        _run(tmp_path, "cnn_run", 9, model={"name": "cnn4"}, features="logmel", ms=3.14159, params=2_700_000),
        _run(tmp_path, "search_run", 7, model={"name": ["svm", "rf", "knn"]}),
        _run(tmp_path, "picked_run", 8, model={"name": ["svm", "rf"]}, extra={"model": "rf"}),
    ]


def test_compare_sorts_by_accuracy_with_the_documented_columns(runs):
    df = compare_runs(runs)
    assert list(df.columns) == ["run", "model", "features", "accuracy", "top-3", "macro F1", "ms/clip", "params"]
    assert list(df["run"]) == ["cnn_run", "picked_run", "search_run", "svm_run"]
    assert list(df["accuracy"]) == [0.9, 0.8, 0.7, 0.6]
    assert list(df["model"]) == ["cnn4", "rf", "svm/rf/knn", "svm"]
    assert list(df["features"]) == ["logmel", "mfcc", "mfcc", "mfcc"]
    assert list(df["top-3"]) == [1.0] * 4
    first = df.iloc[0]
    assert first["ms/clip"] == 3.14159 and first["params"] == 2_700_000
    assert pd.isna(df.iloc[3]["params"]) and df.iloc[3]["ms/clip"] == 0.5
    assert 0 < first["macro F1"] <= 1


def test_model_best_in_config_or_metrics_dict(tmp_path):
    a = _run(tmp_path, "a", 5, model={"name": ["svm", "rf"], "best": "svm"})
    b = _run(tmp_path, "b", 4, model="knn", extra={"model": {"best": "mlp", "score": 0.4}, "features": "stats518"})
    c = _run(tmp_path, "c", 3, model={"name": "rf"}, extra={"model": None})  # evaluate wrote no model name
    df = compare_runs([a, b, c])
    assert list(df["model"]) == ["svm", "mlp", "rf"]
    assert list(df["features"]) == ["mfcc", "stats518", "mfcc"]


def test_markdown_table(runs):
    md = to_markdown(compare_runs(runs))
    lines = md.splitlines()
    assert md.endswith("\n") and len(lines) == 2 + 4
    assert lines[0] == "| run | model | features | accuracy | top-3 | macro F1 | ms/clip | params |"
    assert lines[1] == "|:---|:---|:---|---:|---:|---:|---:|---:|"
    assert lines[2].startswith("| cnn_run | cnn4 | logmel | 0.9000 | 1.0000 |")
    assert lines[2].endswith("| 3.14 | 2,700,000 |")
    assert lines[5] == lines[5].replace("nan", "") and lines[5].endswith("| 0.50 | - |")
    assert all(line.count("|") == 9 for line in lines)


def test_markdown_escapes_pipes():
    md = to_markdown(pd.DataFrame({"model": ["a|b"], "accuracy": [0.5]}))
    assert md.splitlines()[2] == "| a\\|b | 0.5000 |"


def test_missing_metrics_json_names_the_run_and_the_fix(runs, tmp_path):
    empty = tmp_path / "not_evaluated"
    empty.mkdir()
    (empty / "config.yaml").write_text("model: {name: svm}\n")
    with pytest.raises(DataError, match=r"not_evaluated.*metrics\.json.*earmark evaluate"):
        compare_runs([*runs, empty])
    with pytest.raises(DataError, match="no such run folder"):
        compare_runs([tmp_path / "nowhere"])


def test_compare_without_config_still_reports_metrics(tmp_path):
    run = _run(tmp_path, "bare", 10, model="svm")
    (run / "config.yaml").unlink()
    row = compare_runs([run]).iloc[0]
    assert row["accuracy"] == 1.0 and row["model"] is None and row["features"] is None


def test_cli_compare_prints_and_writes_markdown_and_csv(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # rich wraps cells to the terminal width
    out = tmp_path / "tables" / "table.md"
    assert main(["compare", *map(str, runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cnn_run" in printed and "svm/rf/knn" in printed and "0.9000" in printed
    assert out.read_text() == to_markdown(compare_runs(runs))
    csv = pd.read_csv(out.with_suffix(".csv"))
    assert list(csv["run"]) == ["cnn_run", "picked_run", "search_run", "svm_run"]
    assert list(csv.columns)[3:6] == ["accuracy", "top-3", "macro F1"]


def test_cli_compare_missing_metrics_exits_1(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    assert main(["compare", str(tmp_path / "raw")]) == 1
    err = capsys.readouterr().err
    assert "metrics.json" in err and "earmark evaluate" in err


def test_cli_compare_to_a_folder_writes_page_tables_and_chart(runs, tmp_path, capsys):
    out = tmp_path / "comparison"
    assert main(["compare", *map(str, runs), "--out", str(out)]) == 0
    assert "index.html" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["accuracy.png", "index.html", "table.csv", "table.md"]
    assert (out / "table.md").read_text() == to_markdown(compare_runs(runs))
    assert list(pd.read_csv(out / "table.csv")["run"]) == ["cnn_run", "picked_run", "search_run", "svm_run"]
    assert (out / "accuracy.png").read_bytes().startswith(b"\x89PNG")
    html = (out / "index.html").read_text()
    assert html.count('src="data:image/png;base64,') == 1 and "http" not in html
    rows = [html.index(f">{name}<") for name in ("cnn_run", "picked_run", "search_run", "svm_run")]
    assert rows == sorted(rows)  # best accuracy first
    assert "2,700,000" in html and "svm/rf/knn" in html and "0.9000" in html


def test_compare_page_links_each_run_report(runs, tmp_path):
    from earmark.evaluate import write_comparison, write_report

    report = write_report(runs[1])  # a run folder holding only metrics.json and config.yaml
    assert "not available: the model cannot be loaded" in report.read_text()
    page = write_comparison(runs, tmp_path / "out")
    assert page == tmp_path / "out" / "index.html"
    html = page.read_text()
    assert '<a href="../cnn_run/report.html">cnn_run</a>' in html and 'href="../svm_run' not in html


def test_cli_compare_refuses_a_csv_out(runs, tmp_path, capsys):
    assert main(["compare", *map(str, runs), "--out", str(tmp_path / "table.csv")]) == 2
    assert "Markdown path" in capsys.readouterr().err


@pytest.mark.browser
def test_compare_page_renders_in_chromium(runs, tmp_path):
    from browser import open_page

    from earmark.evaluate import write_comparison

    page_path = write_comparison(runs, tmp_path / "cmp")
    with open_page(page_path.resolve().as_uri()) as p:
        p.screenshot("compare")
        assert p.console_errors == [] and p.failed_requests == []
        assert p.page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")[0] > 100
        assert p.page.locator("table tbody tr").count() == 4
