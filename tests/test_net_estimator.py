"""NetClassifier (a network as a scikit-learn classifier), FeatureDataset and weights-only persistence."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from sklearn.base import clone

from earmark.data import Manifest
from earmark.data.feature_dataset import FeatureDataset
from earmark.errors import ConfigError, DataError, NotFittedError
from earmark.features.extract import extract
from earmark.features.store import FeatureStore
from earmark.models import count_params
from earmark.models.net_estimator import NetClassifier, load_net, save_net
from tests.conftest import music_like, spectrograms

FAST = {"epochs": 3, "lr": 3e-3, "batch_size": 16, "device": "cpu"}


@pytest.fixture(scope="module")
def fitted():
    X, y = spectrograms()
    return NetClassifier("cnn_small", trainer=FAST, seed=3).fit(X, y)


# ---------------------------------------------------------------- FeatureDataset


def test_feature_dataset_crops_and_pads_to_frames():
    arrays = [np.arange(50 * 4, dtype=np.float64).reshape(50, 4), np.ones((10, 4)), np.ones((32, 4))]
    for crop in ("random", "center", "start"):
        ds = FeatureDataset(arrays, [0, 1, 2], frames=32, crop=crop)
        for i in range(3):
            x, y = ds[i]
            assert x.shape == (32, 4) and x.dtype == torch.float32 and y == i
            assert ds.item_shape(i) == (32, 4)
    center = FeatureDataset(arrays, frames=32, crop="center")[0]
    np.testing.assert_array_equal(center.numpy(), arrays[0][9:41])
    start = FeatureDataset(arrays, frames=32, crop="start")[0]
    np.testing.assert_array_equal(start.numpy(), arrays[0][:32])
    padded = FeatureDataset(arrays, frames=32)[1].numpy()
    assert (padded[:10] == 1).all() and (padded[10:] == 0).all()
    x = FeatureDataset(arrays)[2]  # no frames: unchanged shape, labels optional
    assert isinstance(x, torch.Tensor) and x.shape == (32, 4)
    wave = FeatureDataset([np.zeros(1000), np.zeros(300)], frames=500)
    assert wave[0].shape == wave[1].shape == (500,)


def test_feature_dataset_random_crop_is_reproducible_per_epoch():
    arrays = [np.arange(400, dtype=np.float32).reshape(200, 2)] * 4
    ds = FeatureDataset(arrays, frames=20, crop="random", seed=5)
    first = [ds[i][0, 0].item() for i in range(4)]
    assert first == [ds[i][0, 0].item() for i in range(4)]  # same epoch, same crop
    assert first == [FeatureDataset(arrays, frames=20, seed=5)[i][0, 0].item() for i in range(4)]
    ds.set_epoch(1)
    assert first != [ds[i][0, 0].item() for i in range(4)]  # another epoch, another crop
    assert first != [FeatureDataset(arrays, frames=20, seed=6)[i][0, 0].item() for i in range(4)]


def test_feature_dataset_rejects_bad_input():
    with pytest.raises(ConfigError, match="crop"):
        FeatureDataset([np.zeros((5, 2))], crop="middle")
    with pytest.raises(ConfigError, match="frames"):
        FeatureDataset([np.zeros((5, 2))], frames=0)
    with pytest.raises(DataError, match=r"arrays\[1\]: missing"):
        FeatureDataset([np.zeros((5, 2)), None])
    with pytest.raises(DataError, match="labels"):
        FeatureDataset([np.zeros((5, 2))], [0, 1])
    with pytest.raises(DataError, match="labels"):
        FeatureDataset([np.zeros((5, 2))], [-1])
    with pytest.raises(IndexError):
        FeatureDataset([np.zeros((5, 2))])[1]


# ---------------------------------------------------------------- the estimator


def test_fit_predict_shapes_and_accuracy(fitted):
    Xt, yt = spectrograms(30, seed=1)
    proba = fitted.predict_proba(Xt)
    assert proba.shape == (30, 3) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert list(fitted.classes_) == ["bass", "brass", "flute"]
    pred = fitted.predict(list(Xt))  # a list of arrays works like a dense array
    assert pred.shape == (30,) and set(pred) <= set(fitted.classes_)
    assert fitted.score(Xt, yt) >= 0.8  # chance is 1/3
    assert fitted.embed(Xt).shape == (30, 128)
    assert len(fitted.history_) == 3 and fitted.history_[-1]["epoch"] == 3
    assert fitted.input_shape_ == (40, 16) and not fitted.model_.training
    assert count_params(fitted) == fitted.count_params() > 0


def test_same_seed_gives_identical_probabilities():
    X, y = spectrograms(24)
    pooled = X.mean(axis=1)  # ffnn on (n, bins) vectors
    kw = {"network": "ffnn", "network_params": {"widths": [16], "dropout": 0.1}, "trainer": FAST,
          "val_fraction": 0.25, "seed": 7}
    a = NetClassifier(**kw).fit(pooled, y)
    b = NetClassifier(**kw).fit(pooled, y)
    np.testing.assert_array_equal(a.predict_proba(pooled), b.predict_proba(pooled))
    assert a.history_[0]["val_loss"] is not None and a.best_epoch_ is not None
    c = NetClassifier(**{**kw, "seed": 8}).fit(pooled, y)
    assert not np.array_equal(a.predict_proba(pooled), c.predict_proba(pooled))


def test_clone_and_params_round_trip():
    est = NetClassifier("ffnn", {"widths": [8]}, trainer={"epochs": 2}, augment=["spec_augment"],
                        mixup_alpha=0.2, frames=30, val_fraction=0.2, seed=4)
    params = est.get_params()
    assert params["network_params"] == {"widths": [8]} and params["frames"] == 30
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    assert NetClassifier().set_params(**params).get_params() == params
    twin.set_params(seed=9, trainer={"epochs": 1})
    assert twin.seed == 9 and est.seed == 4 and est.trainer == {"epochs": 2}


def test_unfitted_use_raises_not_fitted():
    est = NetClassifier()
    X, _ = spectrograms(3)
    for call in (est.predict, est.predict_proba, est.embed):
        with pytest.raises(NotFittedError, match="not fitted"):
            call(X)
    with pytest.raises(NotFittedError):
        est.count_params()


def test_too_short_input_fails_before_training(tmp_path):
    X, y = spectrograms(6, frames=4)  # cnn_small pools three times: needs >= 8 frames
    est = NetClassifier("cnn_small", trainer=FAST, out_dir=tmp_path / "run")
    with pytest.raises(ConfigError, match=r"\(4, 16\).*time >= 8"):
        est.fit(X, y)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    assert not hasattr(est, "model_")


def test_fit_validates_its_input():
    X, y = spectrograms(6)
    with pytest.raises(DataError, match="6 clips but 5 labels"):
        NetClassifier(trainer=FAST).fit(X, y[:5])
    with pytest.raises(DataError, match="at least 2 classes"):
        NetClassifier(trainer=FAST).fit(X, ["a"] * 6)
    bad = X.copy()
    bad[0, 3, 2] = np.nan
    with pytest.raises(DataError, match=r"X\[0\].*NaN"):
        NetClassifier(trainer=FAST).fit(bad, y)
    with pytest.raises(DataError, match="different shapes.*frames"):
        NetClassifier(trainer=FAST).fit([X[0], X[1][:30], *X[2:]], y)
    with pytest.raises(ConfigError, match="train.lr"):
        NetClassifier(trainer={"lr": -1}).fit(X, y)
    with pytest.raises(ConfigError, match=r"augment\[0\].*frames"):
        NetClassifier(trainer=FAST, augment=[{"name": "crop", "length": 10}]).fit(X, y)


def test_augment_mixup_and_frames_train(tmp_path):
    X, y = spectrograms(12, frames=50)
    arrays = [x[: 30 + 3 * i] for i, x in enumerate(X)]  # variable lengths, cropped / padded to 36
    est = NetClassifier("cnn_small", trainer={**FAST, "epochs": 2}, augment=[{"name": "spec_augment", "time_width": 4}],
                        mixup_alpha=0.4, frames=36, out_dir=tmp_path / "run")
    est.fit(arrays, y)
    assert est.input_shape_ == (36, 16) and (tmp_path / "run" / "checkpoint.pt").is_file()
    assert est.predict_proba(arrays).shape == (12, 3)


def test_works_on_memory_mapped_features_from_a_store(tmp_path):
    rows = []
    for i in range(6):
        path = tmp_path / "audio" / f"clip{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, music_like(16000, 0.3 + 0.05 * i, f0=(110.0, 880.0)[i % 2], seed=i), 16000)
        rows.append({"path": f"audio/clip{i}.wav", "label": ("low", "high")[i % 2]})
    manifest = Manifest.from_frame(pd.DataFrame(rows), tmp_path)
    extract(manifest, "fbank", tmp_path / "store", jobs=1)
    with FeatureStore(tmp_path / "store", "fbank") as store:
        arrays = store.load(manifest).arrays
        assert all(isinstance(a, np.memmap) or isinstance(a.base, np.memmap) for a in arrays)
        assert len({a.shape[0] for a in arrays}) > 1
        ds = FeatureDataset(arrays, [0, 1] * 3, frames=32)
        assert ds[0][0].shape == (32, 40) and not isinstance(ds[0][0].numpy(), np.memmap)
        est = NetClassifier("cnn_small", trainer={**FAST, "epochs": 2}, frames=32)
        est.fit(arrays, manifest.df["label"])
        assert est.predict_proba(arrays).shape == (6, 2)
        assert set(est.predict(arrays)) <= {"high", "low"}


# ---------------------------------------------------------------- persistence


def test_save_load_round_trip(fitted, tmp_path):
    folder = save_net(tmp_path / "model", fitted)
    meta = json.loads((folder / "net.json").read_text())
    assert meta["network"] == "cnn_small" and meta["classes"] == ["bass", "brass", "flute"]
    assert meta["input_shape"] == [40, 16] and len(meta["history"]) == 3
    assert (folder / meta["weights"]).is_file()
    loaded = load_net(folder)
    Xt, _ = spectrograms(9, seed=2)
    np.testing.assert_array_equal(loaded.predict_proba(Xt), fitted.predict_proba(Xt))
    np.testing.assert_array_equal(loaded.predict(Xt), fitted.predict(Xt))
    assert loaded.get_params() == {**fitted.get_params(), "out_dir": None}
    assert loaded.count_params() == fitted.count_params()


def test_corrupt_or_foreign_weights_raise_data_error(fitted, tmp_path):
    folder = save_net(tmp_path / "model", fitted)
    weights = folder / json.loads((folder / "net.json").read_text())["weights"]
    weights.write_bytes(b"not a weights file at all")
    with pytest.raises(DataError, match=weights.name):
        load_net(folder)
    torch.save({"conv.weight": torch.zeros(3)}, weights)  # readable, but another network's weights
    with pytest.raises(DataError, match=weights.name):
        load_net(folder)
    (folder / "net.json").write_text("{broken")
    with pytest.raises(DataError, match="net.json"):
        load_net(folder)
    with pytest.raises(DataError, match="net.json"):
        load_net(tmp_path / "nowhere")


def test_inputs_are_standardised_inside_the_model_and_saved(tmp_path):
    from earmark.models.net_estimator import NetClassifier, Standardized, load_net, save_net

    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b"], 12)
    X = rng.normal(0, 1, (24, 20, 8)).astype(np.float32) * 30 - 80  # dB-like scale and offset
    X[y == "b", :, 2] += 20
    est = NetClassifier("cnn_small", trainer={"epochs": 1, "batch_size": 8, "schedule": None}, seed=0).fit(X, y)
    assert isinstance(est.model_, Standardized)
    np.testing.assert_allclose(est.model_.mean.numpy(), X.reshape(-1, 8).mean(0), atol=1e-3)
    np.testing.assert_allclose(est.model_.std.numpy(), X.reshape(-1, 8).std(0), rtol=1e-3)
    save_net(tmp_path / "net", est)
    again = load_net(tmp_path / "net")
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
    plain = NetClassifier("cnn_small", trainer={"epochs": 1, "batch_size": 8, "schedule": None}, standardize=False).fit(X, y)
    assert not isinstance(plain.model_, Standardized)


def test_copies_train_with_their_originals_and_never_with_validation_clips():
    X, y = spectrograms(30)
    rng = np.random.default_rng(1)
    copies = X + rng.normal(0, 0.1, X.shape).astype(np.float32)
    source = np.arange(30)
    clf = NetClassifier("cnn_small", trainer={**FAST, "epochs": 1}, seed=0, val_fraction=0.2)
    clf.fit(X, y, copies=(list(copies), source))
    assert clf.n_train_ == 24 + 24  # the 6 validation clips' copies are left out
    plain = NetClassifier("cnn_small", trainer={**FAST, "epochs": 1}, seed=0, val_fraction=0.2).fit(X, y)
    assert plain.n_train_ == 24
    # the same validation clips, so the same input statistics come from the originals only
    np.testing.assert_array_equal(clf.model_.mean.numpy(), plain.model_.mean.numpy())


@pytest.mark.parametrize("copies,message", [
    ((np.zeros((2, 40, 16), np.float32), np.array([0])), r"copies: 2 arrays but source indices of shape \(1,\)"),
    ((np.zeros((1, 40, 16), np.float32), np.array([30])), r"copies: source indices must be integers in \[0, 30\)"),
    ((np.zeros((1, 40, 8), np.float32), np.array([0])), r"copies\[0\]: shape \(40, 8\) does not match the clips' \(40, 16\)"),
    ((np.full((1, 40, 16), np.nan, np.float32), np.array([0])), r"copies\[0\]: contains 640 NaN"),
    ("x", "copies: expected"),
])
def test_bad_copies_are_refused_before_training(copies, message):
    X, y = spectrograms(30)
    with pytest.raises(DataError, match=message):
        NetClassifier("cnn_small", trainer=FAST).fit(X, y, copies=copies)


def test_groups_make_the_validation_hold_out_take_whole_groups():
    X, y = spectrograms(40)
    groups = np.array([f"{label}-{i % 4}" for i, label in enumerate(y)])  # 4 groups per class
    clf = NetClassifier("cnn_small", trainer={**FAST, "epochs": 1}, seed=0, val_fraction=0.25).fit(X, y, groups=groups)
    held, trained = set(groups[clf.val_index_]), set(np.delete(groups, clf.val_index_))
    assert held and not held & trained  # no group straddles training and validation
    assert set(y[clf.val_index_]) == set(y)  # stratified: every class validated
    plain = NetClassifier("cnn_small", trainer={**FAST, "epochs": 1}, seed=0, val_fraction=0.25).fit(X, y)
    assert set(groups[plain.val_index_]) & set(np.delete(groups, plain.val_index_))  # clip by clip: groups straddle
    unique = NetClassifier("cnn_small", trainer={**FAST, "epochs": 1}, seed=0, val_fraction=0.25)
    np.testing.assert_array_equal(unique.fit(X, y, groups=np.arange(40)).val_index_, plain.val_index_)
    with pytest.raises(DataError, match=r"groups: expected one group per clip \(40\)"):
        NetClassifier("cnn_small", trainer={**FAST, "epochs": 1}, val_fraction=0.25).fit(X, y, groups=groups[:5])
    with pytest.raises(DataError, match="in 1 groups leaves no validation clip"):
        NetClassifier("cnn_small", trainer={**FAST, "epochs": 1}, val_fraction=0.25).fit(X, y, groups=["one"] * 40)


def test_validation_data_replaces_the_hold_out():
    X, y = spectrograms(36)
    X_val, y_val = spectrograms(12, seed=5)
    clf = NetClassifier("cnn_small", trainer={**FAST, "epochs": 1}, seed=0).fit(X, y, validation_data=(X_val, y_val))
    assert clf.n_train_ == 36 and clf.val_index_ is None  # every clip trains
    # the epoch's validation scores are those of the trained network on the given clips
    assert clf.history_[0]["val_acc"] == pytest.approx(float(np.mean(clf.predict(X_val) == y_val)))
    assert clf.best_epoch_ == 1

    with pytest.raises(ConfigError, match="validation_data: given with val_fraction=0.2"):
        NetClassifier("cnn_small", trainer=FAST, val_fraction=0.2).fit(X, y, validation_data=(X_val, y_val))
    with pytest.raises(DataError, match=r"validation_data: label\(s\) \['oboe'\] are not among the training classes"):
        NetClassifier("cnn_small", trainer=FAST).fit(X, y, validation_data=(X_val, np.where(y_val == "bass", "oboe", y_val)))
    with pytest.raises(DataError, match=r"validation_data X\[0\]: shape \(40, 8\) does not match the training clips' \(40, 16\)"):
        NetClassifier("cnn_small", trainer=FAST).fit(X, y, validation_data=(X_val[:, :, :8], y_val))
    with pytest.raises(DataError, match="validation_data: 12 clips but labels of shape"):
        NetClassifier("cnn_small", trainer=FAST).fit(X, y, validation_data=(X_val, y_val[:3]))
