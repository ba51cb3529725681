"""`earmark fuse`: a network and a classical model on different features, fused, evaluated and used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from earmark.cli import main
from earmark.data import Manifest
from earmark.data.demo import make_demo_dataset
from earmark.errors import ConfigError, DataError
from earmark.fuse import FusedRun, fuse_runs, load_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A demo dataset, a cnn_small on fbank and a logreg on mfcc statistics trained on it (and evaluated)."""
    root = tmp_path_factory.mktemp("fuse")
    manifest = make_demo_dataset(root / "demo", n_per_class=10, duration=1.0, seed=3)
    common = {"data": {"manifest": str(manifest)}}
    configs = {
        "net": {**common, "features": {"name": "fbank", "frames": 96, "jobs": 1, "store": str(root / "store")},
                "model": {"name": "cnn_small"},
                "train": {"seed": 0, "epochs": 2, "batch_size": 16, "lr": 2e-3, "schedule": None, "val_fraction": 0.2}},
        "logreg": {**common, "features": {"name": "mfcc", "jobs": 1, "store": str(root / "store")},
                   "model": {"name": "logreg"}, "train": {"seed": 0, "search": {"enabled": False}}},
    }
    out = {"root": root, "manifest": manifest}
    for name, raw in configs.items():
        cfg = root / f"{name}.yaml"
        cfg.write_text(yaml.safe_dump(raw))
        assert main(["train", str(cfg), "--out", str(root / name), "--no-progress"]) == 0
        out[name] = root / name
    return out


def _proba(path: Path) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    df = pd.read_csv(path, dtype={"id": str}).set_index("id").sort_index()
    cols = [c for c in df.columns if c.startswith("p:")]
    return df, df[cols].to_numpy(), cols


def test_fusion_is_the_weighted_mean_of_its_runs(runs, tmp_path, capsys):
    fused = tmp_path / "fused"
    assert main(["fuse", str(runs["net"]), str(runs["logreg"]), "--out", str(fused), "--weights", "3,1"]) == 0
    assert "fusion.json" in capsys.readouterr().out
    info = json.loads((fused / "fusion.json").read_text())
    assert not any(Path(r).is_absolute() for r in info["runs"])  # relative to the fusion's folder
    assert [(fused / r).resolve() for r in info["runs"]] == [runs["net"].resolve(), runs["logreg"].resolve()]
    assert info["weights"] == [0.75, 0.25] and info["models"] == ["cnn_small", "logreg"]

    assert main(["evaluate", str(fused), "--manifest", str(runs["manifest"]), "--no-progress"]) == 0
    metrics = json.loads((fused / "metrics.json").read_text())
    assert metrics["model"] == "fusion: cnn_small + logreg" and metrics["features"] == "fbank + mfcc"
    assert metrics["n"] == 15 and metrics["n_failed"] == 0 and len(metrics["members"]) == 2
    net_m = json.loads((runs["net"] / "metrics.json").read_text())
    log_m = json.loads((runs["logreg"] / "metrics.json").read_text())
    assert [m["accuracy"] for m in metrics["members"]] == [net_m["accuracy"], log_m["accuracy"]]
    assert [m["run"] for m in metrics["members"]] == ["net", "logreg"]
    assert metrics["params"] == net_m["params"] + log_m["params"]

    # the fused probabilities, recomputed from what each run wrote when it was evaluated on its own
    df, p, cols = _proba(fused / "predictions-test.csv")
    _, p_net, cols_net = _proba(runs["net"] / "predictions-test.csv")
    _, p_log, cols_log = _proba(runs["logreg"] / "predictions-test.csv")
    assert cols == cols_net == cols_log
    expected = 0.75 * p_net + 0.25 * p_log
    np.testing.assert_allclose(p, expected, atol=2e-6)
    labels = [c[2:] for c in cols]
    assert list(df["predicted"]) == [labels[i] for i in expected.argmax(1)]
    assert metrics["accuracy"] == pytest.approx(np.mean(df["predicted"] == df["label"]), abs=1e-6)

    # the report (refreshed by evaluate) has the fusion's metrics and points to each run's own report
    page = (fused / "report.html").read_text()
    assert "fusion: cnn_small + logreg" in page and f"{runs['logreg'].resolve()}/report.html" in page
    assert "<h3>Fused runs</h3>" in page and "Ensemble members" not in page

    # compare lists the fusion like any evaluated run
    assert main(["compare", str(fused), str(runs["net"]), str(runs["logreg"])]) == 0
    assert "fusion" in capsys.readouterr().out


def test_predict_with_a_fusion(runs, tmp_path):
    fused = tmp_path / "fused"
    fuse_runs([runs["net"], runs["logreg"]], fused)
    m = Manifest.read(runs["manifest"]).select(split="test")
    files = [str(p) for p in m.paths()[:3]]
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    rows = {}
    for name, run in (("fused", fused), ("net", runs["net"]), ("logreg", runs["logreg"])):
        rc = main(["predict", str(run), *files, str(tmp_path / "broken.wav"), "--out", str(tmp_path / f"{name}.csv"),
                   "--top-k", "5"])
        assert rc == 1  # the broken file is listed and skipped, the others predicted
        rows[name] = pd.read_csv(tmp_path / f"{name}.csv", dtype={"id": str}).set_index("id")

    def proba(df: pd.DataFrame) -> dict:
        return {i: {r[f"top{k}"]: r[f"p{k}"] for k in range(1, 6)} for i, r in df.iterrows()}

    fused_p, net_p, log_p = proba(rows["fused"]), proba(rows["net"]), proba(rows["logreg"])
    assert set(fused_p) == set(net_p) and len(fused_p) == 3
    for clip, ps in fused_p.items():
        for label, value in ps.items():
            assert value == pytest.approx(0.5 * net_p[clip][label] + 0.5 * log_p[clip][label], abs=2e-6)


def test_a_bad_clip_is_listed_once_and_left_out(runs, tmp_path):
    m = Manifest.read(runs["manifest"])
    df = m.df.copy()
    df["path"] = m.paths()
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    bad = pd.DataFrame({"id": ["broken"], "path": [str(tmp_path / "broken.wav")], "label": ["organ"],
                        "split": ["test"], "group": ["broken"]})
    Manifest.from_frame(pd.concat([df, bad], ignore_index=True), tmp_path).write(tmp_path / "eval.csv")
    fused = tmp_path / "fused"
    fuse_runs([runs["net"], runs["logreg"]], fused)
    assert main(["evaluate", str(fused), "--manifest", str(tmp_path / "eval.csv"), "--no-progress"]) == 0
    metrics = json.loads((fused / "metrics.json").read_text())
    assert metrics["n"] == 15 and metrics["n_failed"] == 1
    failures = pd.read_csv(fused / "failures-test.csv")
    assert list(failures["path"]) == [str(tmp_path / "broken.wav")]


def test_bad_fusions_are_refused(runs, tmp_path, capsys):
    net, log = runs["net"], runs["logreg"]
    with pytest.raises(ConfigError, match="at least two runs"):
        fuse_runs([net], tmp_path / "f")
    with pytest.raises(ConfigError, match="more than once"):
        fuse_runs([net, net], tmp_path / "f")
    with pytest.raises(ConfigError, match="one weight per run"):
        fuse_runs([net, log], tmp_path / "f", weights=[1.0])
    with pytest.raises(ConfigError, match="positive finite"):
        fuse_runs([net, log], tmp_path / "f", weights=[1.0, 0.0])
    with pytest.raises(ConfigError, match="positive finite"):
        fuse_runs([net, log], tmp_path / "f", weights=[1.0, float("nan")])
    (tmp_path / "trained").mkdir()
    (tmp_path / "trained" / "config.yaml").write_text("{}")
    with pytest.raises(ConfigError, match="holds a trained run"):
        fuse_runs([net, log], tmp_path / "trained")
    with pytest.raises(ConfigError, match="is one of the fused runs"):
        fuse_runs([net, log], log)
    with pytest.raises(DataError, match="no such run folder"):
        fuse_runs([net, tmp_path / "missing"], tmp_path / "f")
    assert not (tmp_path / "f").exists()

    # a fusion of a fusion
    fuse_runs([net, log], tmp_path / "inner")
    with pytest.raises(ConfigError, match="itself a fusion"):
        fuse_runs([tmp_path / "inner", net], tmp_path / "outer")

    # runs that do not share their classes
    m = Manifest.read(runs["manifest"])
    df = m.df.copy()
    df["path"] = m.paths()
    Manifest.from_frame(df[df["label"] != "organ"].reset_index(drop=True), tmp_path).write(tmp_path / "four.csv")
    cfg = yaml.safe_load((runs["root"] / "logreg.yaml").read_text())
    cfg["data"]["manifest"] = str(tmp_path / "four.csv")
    (tmp_path / "four.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "four.yaml"), "--out", str(tmp_path / "four"), "--no-progress"]) == 0
    with pytest.raises(DataError, match=r"different classes \(only in the first: \['organ'\]; only in the second: none\)"):
        fuse_runs([net, tmp_path / "four"], tmp_path / "f2")

    # the CLI: one-line errors, exit 2 for a bad request
    capsys.readouterr()
    assert main(["fuse", str(net), str(log), "--out", str(tmp_path / "f3"), "--weights", "1,x"]) == 2
    assert "--weights: expected comma-separated numbers" in capsys.readouterr().err


def test_a_fusion_moved_with_its_runs_still_works(runs, tmp_path):
    tree = tmp_path / "before"
    for name in ("net", "logreg"):
        shutil.copytree(runs[name], tree / "runs" / name)
    fuse_runs([tree / "runs" / "net", tree / "runs" / "logreg"], tree / "fusions" / "both")
    assert json.loads((tree / "fusions" / "both" / "fusion.json").read_text())["runs"] == ["../../runs/net", "../../runs/logreg"]
    tree.rename(tmp_path / "after")
    fused = load_run(tmp_path / "after" / "fusions" / "both")
    assert [r.dir.resolve() for r in fused.runs] == [(tmp_path / "after" / "runs" / n).resolve() for n in ("net", "logreg")]


def test_a_moved_run_and_export_which_needs_one_run(runs, tmp_path, capsys):
    copy = tmp_path / "logreg"
    shutil.copytree(runs["logreg"], copy)
    fused = tmp_path / "fused"
    fuse_runs([runs["net"], copy], fused)
    assert isinstance(load_run(fused), FusedRun)
    shutil.rmtree(copy)
    with pytest.raises(DataError, match=f"fused run {copy} cannot be loaded"):
        load_run(fused)
    capsys.readouterr()
    assert main(["evaluate", str(fused), "--manifest", str(runs["manifest"]), "--no-progress"]) == 1
    assert f"fused run {copy} cannot be loaded" in capsys.readouterr().err

    fuse_runs([runs["net"], runs["logreg"]], fused)  # rewritten in place
    assert main(["export", str(fused), "--format", "onnx", "--out", str(tmp_path / "m")]) == 1
    assert "a fusion of runs (fusion.json)" in capsys.readouterr().err
    (fused / "fusion.json").write_text('{"runs": "nope"}')
    with pytest.raises(DataError, match="expected"):
        load_run(fused)
