"""Metrics against hand-computed numbers, unseen labels, NaN refusal, and the confusion plots as real PNGs."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from earmark.errors import DataError
from earmark.evaluate import compute_metrics, misclassified, plot_confusion, plot_confusion_pair, read_metrics, write_metrics

LABELS = ["a", "b", "c", "d"]
Y = ["a", "a", "b", "b", "c", "d"]
#                  a     b     c     d        true -> predicted, top-3 hit?
PROBA = np.array([[0.70, 0.20, 0.10, 0.00],  # a -> a, yes
                  [0.15, 0.60, 0.20, 0.05],  # a -> b, yes (b, c, a)
                  [0.10, 0.80, 0.05, 0.05],  # b -> b, yes
                  [0.50, 0.05, 0.30, 0.15],  # b -> a, no  (a, c, d)
                  [0.10, 0.10, 0.70, 0.10],  # c -> c, yes
                  [0.20, 0.15, 0.60, 0.05]])  # d -> c, no  (c, a, b)
IDS = [f"clip{i}" for i in range(6)]


def test_metrics_match_hand_computed_values():
    m = compute_metrics(Y, PROBA, LABELS, split="val", top_k=(1, 3), inference_ms_per_clip=1.23456789, params=4200)
    assert list(m) == ["split", "n", "accuracy", "top_k_accuracy", "macro_f1", "labels", "confusion_matrix",
                       "per_class", "inference_ms_per_clip", "params"]
    assert m["split"] == "val" and m["n"] == 6 and m["labels"] == LABELS
    assert m["accuracy"] == 0.5
    assert m["top_k_accuracy"] == {"1": 0.5, "3": 0.666667}
    assert m["confusion_matrix"] == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]]
    assert m["per_class"] == {
        "a": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
        "b": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
        "c": {"precision": 0.5, "recall": 1.0, "f1": 0.666667, "support": 1},
        "d": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
    }
    assert m["macro_f1"] == 0.416667  # (0.5 + 0.5 + 2/3 + 0) / 4
    assert m["inference_ms_per_clip"] == 1.234568 and m["params"] == 4200
    assert "unseen_labels" not in m


def test_macro_f1_agrees_with_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    labels = [f"k{i}" for i in range(7)]
    y = rng.choice(labels, size=200)
    proba = rng.dirichlet(np.ones(7), size=200)
    m = compute_metrics(y, proba, labels)
    pred = np.asarray(labels)[proba.argmax(1)]
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-6)
    assert m["accuracy"] == m["top_k_accuracy"]["1"]


def test_top_k_is_clipped_to_the_number_of_classes_and_still_reported():
    m = compute_metrics(Y, PROBA, LABELS, top_k=(1, 3, 10))
    assert m["top_k_accuracy"] == {"1": 0.5, "3": 0.666667, "10": 1.0}
    two = compute_metrics(["x", "y"], [[0.9, 0.1], [0.8, 0.2]], ["x", "y"], top_k=(1, 5))
    assert two["top_k_accuracy"] == {"1": 0.5, "5": 1.0}
    with pytest.raises(DataError, match="top_k"):
        compute_metrics(Y, PROBA, LABELS, top_k=(0,))


def test_unseen_labels_are_errors_and_listed_not_a_crash():
    proba = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]]
    y = ["a", "b", "x", "x", "y"]
    m = compute_metrics(y, proba, ["a", "b"], ids=[f"c{i}" for i in range(5)])
    assert m["accuracy"] == 0.4
    assert m["top_k_accuracy"] == {"1": 0.4, "3": 0.4}  # top-3 clipped to 2 classes: still never right
    assert m["unseen_labels"] == {"x": 2, "y": 1}
    assert m["unseen_examples"] == ["c2", "c3", "c4"]
    assert m["confusion_matrix"] == [[1, 0], [0, 1]]  # square over the model's labels
    assert m["unseen_confusion"] == {"x": [1, 1], "y": [1, 0]}
    assert sum(map(sum, m["confusion_matrix"])) + sum(m["unseen_labels"].values()) == m["n"] == 5
    assert m["per_class"]["a"] == {"precision": 0.333333, "recall": 1.0, "f1": 0.5, "support": 1}
    assert m["per_class"]["x"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert m["macro_f1"] == 0.291667  # (0.5 + 2/3 + 0 + 0) / 4


def test_unseen_examples_stop_at_20_and_need_ids():
    y = ["new"] * 25 + ["a"]
    proba = np.tile([1.0, 0.0], (26, 1))
    m = compute_metrics(y, proba, ["a", "b"], ids=[f"id{i}" for i in range(26)])
    assert m["unseen_labels"] == {"new": 25}
    assert m["unseen_examples"] == [f"id{i}" for i in range(20)]
    assert "unseen_examples" not in compute_metrics(y, proba, ["a", "b"])


def test_a_class_absent_and_never_predicted_does_not_lower_macro_f1():
    m = compute_metrics(["a", "b"], [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]], ["a", "b", "c"])
    assert m["macro_f1"] == 1.0 and m["accuracy"] == 1.0
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_bad_inputs_are_named():
    with pytest.raises(DataError, match=r"shape"):
        compute_metrics(Y, PROBA[:, :3], LABELS)
    with pytest.raises(DataError, match="NaN"):
        compute_metrics(Y, np.where(np.eye(6, 4) > 0, np.nan, PROBA), LABELS)
    with pytest.raises(DataError, match="empty"):
        compute_metrics([], np.zeros((0, 4)), LABELS)
    with pytest.raises(DataError, match="unique"):
        compute_metrics(Y, PROBA, ["a", "b", "a", "d"])
    with pytest.raises(DataError, match="ids"):
        compute_metrics(Y, PROBA, LABELS, ids=["x"])
    with pytest.raises(DataError, match="inference_ms_per_clip"):
        compute_metrics(Y, PROBA, LABELS, inference_ms_per_clip=float("nan"))


def test_misclassified_lists_the_most_confident_mistakes_first():
    wrong = misclassified(Y, PROBA, LABELS, IDS)
    assert wrong == [
        {"id": "clip1", "true": "a", "predicted": "b", "confidence": 0.6},
        {"id": "clip5", "true": "d", "predicted": "c", "confidence": 0.6},
        {"id": "clip3", "true": "b", "predicted": "a", "confidence": 0.5},
    ]
    assert misclassified(Y, PROBA, LABELS, IDS, n=2) == wrong[:2]
    assert misclassified(["zzz"], [[0.7, 0.3]], ["a", "b"], ["u"])[0]["true"] == "zzz"


def test_write_metrics_round_trips_and_is_readable(tmp_path):
    m = compute_metrics(Y, PROBA, LABELS, ids=IDS, params=np.int64(12))
    path = write_metrics(m, tmp_path / "run" / "metrics.json")
    text = path.read_text()
    assert "[1, 1, 0, 0]" in text  # matrix rows stay on one line
    assert json.loads(text) == m == read_metrics(path)
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temp file left


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), np.float32("nan")])
def test_write_metrics_refuses_nan_and_writes_nothing(tmp_path, bad):
    m = compute_metrics(Y, PROBA, LABELS)
    m["per_class"]["b"]["f1"] = bad
    path = tmp_path / "metrics.json"
    with pytest.raises(DataError, match=r"per_class\.b\.f1"):
        write_metrics(m, path)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_write_metrics_keeps_the_old_file_when_refusing(tmp_path):
    path = write_metrics(compute_metrics(Y, PROBA, LABELS), tmp_path / "metrics.json")
    before = path.read_text()
    with pytest.raises(DataError, match="accuracy"):
        write_metrics({"accuracy": math.nan}, path)
    assert path.read_text() == before


def test_read_metrics_errors(tmp_path):
    with pytest.raises(DataError, match="no such metrics file"):
        read_metrics(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_metrics(tmp_path / "bad.json")


def _png_size(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        return im.size


def test_confusion_plots_are_real_pngs_that_grow_with_classes(tmp_path):
    small = compute_metrics(Y, PROBA, LABELS)
    p_small = plot_confusion(small["confusion_matrix"], small["labels"], tmp_path / "small.png")

    rng = np.random.default_rng(1)
    labels = [f"artist_{i:02d}_long_name" for i in range(20)]
    y = rng.choice(labels, size=400)
    big = compute_metrics(y, rng.dirichlet(np.ones(20), size=400), labels)
    p_big = plot_confusion(big["confusion_matrix"], labels, tmp_path / "plots" / "big.png", normalize=True, title="20")
    p_pair = plot_confusion_pair(big["confusion_matrix"], labels, tmp_path / "pair.png")

    (w_small, h_small), (w_big, h_big), (w_pair, _) = map(_png_size, (p_small, p_big, p_pair))
    assert w_big > w_small and h_big > h_small
    assert w_pair > 1.5 * w_big
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["big.png", "pair.png", "plots", "small.png"]


def test_confusion_plot_handles_empty_rows_and_many_classes(tmp_path):
    m = np.zeros((3, 3), dtype=int)
    m[0, 0] = 4  # classes 1 and 2 have no examples: normalised rows are 0, not NaN
    _png_size(plot_confusion(m, ["x", "y", "z"], tmp_path / "z.png", normalize=True))
    many = np.random.default_rng(0).integers(0, 5, size=(40, 40))
    _png_size(plot_confusion_pair(many, [f"c{i}" for i in range(40)], tmp_path / "many.png"))  # no annotations


def test_confusion_plot_rejects_mismatched_input(tmp_path):
    with pytest.raises(DataError, match="3 labels"):
        plot_confusion(np.eye(2), ["a", "b", "c"], tmp_path / "x.png")
    with pytest.raises(DataError, match="square"):
        plot_confusion(np.ones((2, 3)), ["a", "b"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plots_leave_pyplot_alone(tmp_path):
    code = (
        "import sys; from earmark.evaluate import plot_confusion_pair; "
        f"plot_confusion_pair([[1, 2], [0, 3]], ['a', 'b'], {str(tmp_path / 'p.png')!r}); "
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert _png_size(tmp_path / "p.png")[0] > 0
