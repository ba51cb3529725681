"""Each classical recipe runs as it is on a tiny dataset in its own format (only the fold count is
lowered, because the fixtures hold a handful of albums / artists)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from earmark.cli import main
from earmark.data.demo import synth_note

RECIPES = Path(__file__).parents[1] / "recipes"
FAMILIES = ("plucked", "bowed", "organ")  # one synthetic "artist" / "genre" per family


def _clip(family: str, seed: int) -> np.ndarray:
    return synth_note(family, sr=22050, duration=1.5, rng=np.random.default_rng(seed))


@pytest.mark.slow
def test_artist20_task1_recipe(tmp_path, capsys):
    src = tmp_path / "artist20"
    for a, family in enumerate(FAMILIES):
        for album in range(6):
            for track in range(2):
                path = src / f"artist_{family}" / f"album_{album}" / f"{track:02d}-song.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, _clip(family, 100 * a + 10 * album + track), 22050)
    manifest = tmp_path / "artist20.csv"
    assert main(["prepare", "artist20", str(src), "--out", str(manifest)]) == 0
    run = tmp_path / "run"
    assert main(["train", str(RECIPES / "artist20_task1.yaml"), "--out", str(run), "--no-progress",
                 "--set", f"data.manifest={manifest}", "--set", "train.search.folds=2"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["features"] == "artist_stats" and set(metrics["top_k_accuracy"]) == {"1", "3"}
    assert metrics["accuracy"] > 0.5
    cv = (run / "cv_results.csv").read_text()
    assert all(name in cv for name in ("svm_rbf", "svm_linear", "svm_poly", "rf", "knn"))


def _fma_manifest(tmp_path: Path) -> Path:
    """A tiny FMA tree (tracks.csv with its two-row header + fma_small mp3s) and its manifest."""
    src = tmp_path / "fma"
    (src / "fma_metadata").mkdir(parents=True)
    header = [("", "track"), ("set", "split"), ("set", "subset"), ("artist", "id"), ("track", "genre_top")]
    rows = []
    tid = 1
    for g, family in enumerate(FAMILIES):
        for artist in range(4):
            for i in range(3):
                split = "test" if artist == 3 else ("validation" if artist == 2 and i == 0 else "training")
                rows.append((tid, split, "small", 10 * g + artist, family.title()))
                path = src / "fma_small" / f"{tid // 1000:03d}" / f"{tid:06d}.mp3"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, _clip(family, tid), 22050)
                tid += 1
    with open(src / "fma_metadata" / "tracks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([""] + [h[0] for h in header[1:]])
        w.writerow([""] + [h[1] for h in header[1:]])
        w.writerow(["track_id"] + [""] * (len(header) - 1))
        w.writerows(rows)
    manifest = tmp_path / "fma_small.csv"
    assert main(["prepare", "fma", str(src), "--out", str(manifest)]) == 0
    return manifest


@pytest.mark.slow
def test_fma_stats518_svm_recipe(tmp_path):
    manifest = _fma_manifest(tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(RECIPES / "fma_stats518_svm.yaml"), "--out", str(run), "--no-progress",
                 "--set", f"data.manifest={manifest}", "--set", "train.search.folds=2"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["features"] == "stats518" and metrics["model"] == "svm_rbf" and metrics["n"] == 9
    assert metrics["accuracy"] > 0.5


@pytest.mark.slow
def test_fma_resnet50_pca_svm_recipe_on_random_weights(tmp_path):
    """The transfer recipe end to end: embedding feature -> store -> PCA grid -> SVM (untrained backbone:
    no official weights can be downloaded in tests)."""
    manifest = _fma_manifest(tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(RECIPES / "fma_resnet50_pca_svm.yaml"), "--out", str(run), "--no-progress",
                 "--set", f"data.manifest={manifest}", "--set", "train.search.folds=2",
                 "--set", "features.params.weights=random"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["features"] == "embedding:resnet50:avg_pool" and metrics["model"] == "svm_rbf"
    assert metrics["n"] == 9
    params = json.loads(next((manifest.parent / "features").glob("embedding:resnet50:avg_pool-*/params.json")).read_text())
    assert "random" in json.dumps(params)  # the store records that the weights were random


def test_singer_gender_ge2e_recipe_fused_with_a_second_run(tmp_path):
    """The recipe's own workflow on a tiny competition folder: train the speaker-embedding model
    (untrained backbone: no weights are downloaded in tests), fuse it with another run, and write a
    submission for the unlabelled test folder from the fusion."""
    src = tmp_path / "comp"
    for c, family in zip(("female", "male", "duet"), FAMILIES):
        for i in range(6):
            path = src / "train" / c / f"{c}{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, _clip(family, 100 * len(c) + i), 22050)
    (src / "test").mkdir()
    for i in range(3):
        sf.write(src / "test" / f"snippet{i}.wav", _clip(FAMILIES[i], 900 + i), 22050)
    manifest = tmp_path / "singer.csv"
    assert main(["prepare", "competition", str(src), "--out", str(manifest), "--seed", "8"]) == 0
    common = ["--no-progress", "--set", f"data.manifest={manifest}", "--set", "train.search.folds=2"]
    assert main(["train", str(RECIPES / "singer_gender_ge2e_logreg.yaml"), "--out", str(tmp_path / "ge2e"), *common,
                 "--set", "features.params.weights=random"]) == 0
    metrics = json.loads((tmp_path / "ge2e" / "metrics.json").read_text())
    assert metrics["features"] == "embedding:ge2e" and metrics["model"] == "logreg" and metrics["split"] == "val"
    params = yaml.safe_load((tmp_path / "ge2e" / "config.yaml").read_text())["features"]["params"]
    assert (params["partial"], params["rate"], params["weighting"]) == (0.6, 5, "energy")  # not Resemblyzer's
    assert main(["train", str(RECIPES / "singer_gender_ge2e_logreg.yaml"), "--out", str(tmp_path / "mfcc"), *common,
                 "--set", "features.name=mfcc", "--set", "features.params={}"]) == 0
    assert main(["fuse", str(tmp_path / "ge2e"), str(tmp_path / "mfcc"), "--out", str(tmp_path / "fused")]) == 0
    assert main(["evaluate", str(tmp_path / "fused"), "--manifest", str(manifest), "--split", "val", "--no-progress"]) == 0
    fused = json.loads((tmp_path / "fused" / "metrics.json").read_text())
    assert fused["features"] == "embedding:ge2e + mfcc" and fused["n"] == metrics["n"]
    assert main(["predict", str(tmp_path / "fused"), str(src / "test"), "--submission",
                 "--out", str(tmp_path / "submission.csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "submission.csv")))
    assert [r["id"] for r in rows] == ["snippet0", "snippet1", "snippet2"]
    assert {r["label"] for r in rows} <= {"female", "male", "duet"}


def test_singer_gender_resnet34_recipe_with_background_copies(tmp_path):
    """The network recipe as it is, made small (one member, one epoch, a small network): vocals separated,
    two copies of every training clip with a training 'instrumental' clip mixed in, a submission CSV."""
    src = tmp_path / "comp"
    for c, family in zip(("female", "male", "duet", "instrumental"), (*FAMILIES, "struck")):
        for i in range(5):
            path = src / "train" / c / f"{c}{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, _clip(family, 100 * len(c) + i), 22050)
    (src / "test").mkdir()
    sf.write(src / "test" / "snippet0.wav", _clip("organ", 900), 22050)
    manifest = tmp_path / "singer.csv"
    assert main(["prepare", "competition", str(src), "--out", str(manifest), "--seed", "8"]) == 0
    run = tmp_path / "net"
    assert main(["train", str(RECIPES / "singer_gender_resnet34.yaml"), "--out", str(run), "--no-progress",
                 "--set", f"data.manifest={manifest}", "--set", "model.name=cnn_small", "--set", "model.params={}",
                 "--set", "train.epochs=1", "--set", "train.ensemble.members=1"]) == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["train"]["copies"]["n"] == 2 and config["audio"]["separate"]["method"] == "repet"
    n_train = json.loads((run / "net" / "net.json").read_text())["n_train"]
    train_clips = [r for r in csv.DictReader(open(manifest)) if r["split"] == "train"]
    assert n_train == 3 * len(train_clips)  # every training clip and its two background copies
    (copies,) = [json.loads(p.read_text()) for p in (manifest.parent / "features").glob("fbank-*/params.json")
                 if "augment" in p.read_text() and json.loads(p.read_text())["augment"]["copy"] == 0]
    backgrounds = copies["augment"]["steps"][0]["files"]
    assert backgrounds and all("/instrumental/" in f for f in backgrounds)
    assert len(backgrounds) == sum(r["label"] == "instrumental" for r in train_clips)  # the training split's only
    assert main(["predict", str(run), str(src / "test"), "--submission", "--out", str(tmp_path / "sub.csv")]) == 0
    assert [r["id"] for r in csv.DictReader(open(tmp_path / "sub.csv"))] == ["snippet0"]


def _nsynth_manifest(tmp_path: Path) -> Path:
    """A tiny NSynth folder in the real schema (examples.json + audio/), three instruments per family,
    and its manifest: prepare groups by instrument, so no instrument is in both train and test."""
    src = tmp_path / "nsynth-mini"
    examples = {}
    for k, family in enumerate(FAMILIES * 3):  # three instruments per family
        for pitch in (48, 60, 72):
            note = f"{family}_acoustic_{k:03d}-{pitch:03d}-100"
            path = src / "audio" / f"{note}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, synth_note(family, sr=16000, duration=1.0, rng=np.random.default_rng(k * 100 + pitch)), 16000)
            examples[note] = {"note_str": note, "instrument": k, "instrument_str": f"{family}_acoustic_{k:03d}",
                              "pitch": pitch, "velocity": 100, "sample_rate": 16000,
                              "instrument_family": k % 3, "instrument_family_str": family,
                              "instrument_source": 0, "instrument_source_str": "acoustic"}
    (src / "examples.json").write_text(json.dumps(examples))
    manifest = tmp_path / "data" / "nsynth.csv"
    assert main(["prepare", "nsynth", str(src), "--out", str(manifest)]) == 0
    return manifest


def test_nsynth_family_stats518_rf_recipe(tmp_path):
    """The recipe as it is on a tiny NSynth folder, only the fold count lowered."""
    manifest = _nsynth_manifest(tmp_path)
    run = tmp_path / "rf"
    assert main(["train", str(RECIPES / "nsynth_family_stats518_rf.yaml"), "--out", str(run), "--no-progress",
                 "--set", f"data.manifest={manifest}", "--set", "train.search.folds=2"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["features"] == "stats518" and metrics["model"] == "rf" and metrics["split"] == "test"
    test_notes = [r for r in csv.DictReader(open(manifest)) if r["split"] == "test"]
    assert metrics["n"] == len(test_notes) > 0 and set(metrics["top_k_accuracy"]) == {"1", "3"}
    cv = list(csv.DictReader(open(run / "cv_results.csv")))
    assert len(cv) == 6  # the rf grid: n_estimators 100/200/300 x max_depth None/20


def test_nsynth_family_resnet_compact_recipe(tmp_path):
    """The network recipe on a tiny NSynth folder, one epoch instead of 40: the unnormalised filterbank of
    1 s notes (99 frames) padded to the recipe's 296-frame crops, a compact ResNet, top-1/top-3 on test."""
    manifest = _nsynth_manifest(tmp_path)
    run = tmp_path / "resnet"
    assert main(["train", str(RECIPES / "nsynth_family_resnet_compact.yaml"), "--out", str(run), "--no-progress",
                 "--set", f"data.manifest={manifest}", "--set", "train.epochs=1"]) == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["features"]["params"] == {"normalize": False} and config["features"]["frames"] == 296
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["features"] == "fbank" and metrics["model"] == "resnet_compact" and metrics["split"] == "test"
    test_notes = [r for r in csv.DictReader(open(manifest)) if r["split"] == "test"]
    assert metrics["n"] == len(test_notes) > 0 and set(metrics["top_k_accuracy"]) == {"1", "3"}
    history = list(csv.DictReader(open(run / "history.csv")))
    assert len(history) == 1
    assert json.loads((run / "net" / "net.json").read_text())["input_shape"] == [296, 40]  # 99 frames padded
