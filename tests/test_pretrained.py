"""Pretrained backbones (earmark.models.pretrained): shapes, official names, front ends, padding, loading."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import torch

from conftest import music_like
from earmark.errors import ConfigError, DataError
from earmark.features.image import to_image
from earmark.features.spectral import logmel
from earmark.models.pretrained import BACKBONES, KNOWN_WEIGHTS, create_backbone
from earmark.models.pretrained.cnn14 import stft_kernels
from earmark.models.pretrained.ge2e import normalize_volume, partial_frames, partial_slices
from earmark.models.pretrained.image_input import IMAGENET_MEAN, IMAGENET_STD, SpectrogramImage

CASES = [("cnn14", "fc1", 2048), ("cnn14_16k", "fc1", 2048), ("vgg16", "fc2", 4096), ("vgg16", "fc1", 4096),
         ("vgg16", "block5_pool", 512), ("resnet50", "avg_pool", 2048), ("resnet50", "layer3", 1024),
         ("ge2e", "embedding", 256)]


@functools.lru_cache(maxsize=3)
def backbone(name: str, cut: str):
    return create_backbone(name, cut=cut, weights="random")


def test_registry_and_bad_names():
    assert BACKBONES.names() == ["cnn14", "cnn14_16k", "ge2e", "resnet50", "vgg16"]
    assert {c for n in BACKBONES.names() for c in BACKBONES.get(n).cuts} == {c for _, c, _ in CASES}
    for name in BACKBONES.names():
        assert BACKBONES.get(name).weights in KNOWN_WEIGHTS
    with pytest.raises(ConfigError, match="did you mean 'vgg16'"):
        create_backbone("vgg61")
    with pytest.raises(ConfigError, match="unknown cut 'fc3'; valid: fc2, fc1, block5_pool"):
        create_backbone("vgg16", cut="fc3")
    with pytest.raises(ConfigError, match="for backbone 'vgg16', not 'resnet50'"):
        create_backbone("resnet50", weights="vgg16")


@pytest.mark.parametrize("name,cut,dim", CASES)
def test_output_shapes_for_several_lengths(name, cut, dim):
    net = backbone(name, cut)
    sr = net.sample_rate
    assert (net.embedding_dim, net.cut, net.arch, net.pretrained, net.training) == (dim, cut, name, False, False)
    assert sr == BACKBONES.get(name).sample_rate
    rng = np.random.default_rng(0)
    for n, batch in ((net.min_samples, 1), (int(0.75 * sr) + 17, 2)):
        x = torch.from_numpy((0.1 * rng.standard_normal((batch, n))).astype(np.float32))
        out = net.embed(x)
        assert out.shape == (batch, dim) and out.dtype == torch.float32 and torch.isfinite(out).all()
        assert not out.requires_grad
    one = net.embed(x[0].numpy())  # 1-D NumPy in -> (dim,)
    assert one.shape == (dim,)
    torch.testing.assert_close(one, out[0], rtol=1e-4, atol=1e-4)  # batch of 2 == one by one


@pytest.mark.parametrize("name,cut", [("cnn14_16k", "fc1"), ("resnet50", "layer3")])
def test_short_clip_is_zero_padded_with_a_warning(name, cut):
    net = backbone(name, cut)
    y = torch.from_numpy(music_like(net.sample_rate, 0.05)[None])
    assert y.shape[-1] < net.min_samples
    with pytest.warns(UserWarning, match=rf"{y.shape[-1]} samples .* receptive field of {net.min_samples} samples"):
        short = net.embed(y)
    padded = torch.nn.functional.pad(y, (0, net.min_samples - y.shape[-1]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # long enough: no warning
        torch.testing.assert_close(short, net.embed(padded))


def test_bad_waveforms_are_refused():
    net = backbone("resnet50", "layer3")
    with pytest.raises(DataError, match=r"resnet50: expected a waveform of shape \(batch, n_samples\)"):
        net.embed(torch.zeros(1, 2, 3000))
    with pytest.raises(DataError, match="NaN or Inf"):
        net.embed(torch.full((1, 3000), float("nan")))


def test_random_initialisation_is_seeded():
    a = create_backbone("cnn14_16k", seed=3).state_dict()
    b = create_backbone("cnn14_16k", seed=3).state_dict()
    c = create_backbone("cnn14_16k", seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["fc1.weight"], c["fc1.weight"])
    assert torch.equal(a["logmel_extractor.melW"], c["logmel_extractor.melW"])  # the front end is not random
    g3, g3b, g4 = (create_backbone("ge2e", seed=s).state_dict() for s in (3, 3, 4))
    assert all(torch.equal(g3[k], g3b[k]) for k in g3)
    assert not torch.equal(g3["lstm.weight_ih_l0"], g4["lstm.weight_ih_l0"])
    assert (g4["similarity_weight"].item(), g4["similarity_bias"].item()) == (10.0, -5.0)  # GE2E's initial w, b


# ------------------------------------------------------------------------ names and shapes of the official files


def test_cnn14_parameter_names_match_panns():
    sd = backbone("cnn14", "fc1").state_dict()
    expected = {"spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
                "logmel_extractor.melW", "fc1.weight", "fc1.bias", "fc_audioset.weight", "fc_audioset.bias"}
    expected |= {f"bn0.{s}" for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    for i in range(1, 7):
        expected |= {f"conv_block{i}.conv1.weight", f"conv_block{i}.conv2.weight"}
        expected |= {f"conv_block{i}.{bn}.{s}" for bn in ("bn1", "bn2")
                     for s in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    assert set(sd) == expected
    shapes = {"spectrogram_extractor.stft.conv_real.weight": (513, 1, 1024), "logmel_extractor.melW": (513, 64),
              "bn0.weight": (64,), "conv_block1.conv1.weight": (64, 1, 3, 3), "conv_block1.conv2.weight": (64, 64, 3, 3),
              "conv_block6.conv2.weight": (2048, 2048, 3, 3), "conv_block6.bn2.running_var": (2048,),
              "fc1.weight": (2048, 2048), "fc_audioset.weight": (527, 2048), "fc_audioset.bias": (527,)}
    for key, shape in shapes.items():
        assert tuple(sd[key].shape) == shape, key
    front = sum(sd[k].numel() for k in sd if k.startswith(("spectrogram_extractor", "logmel_extractor")))
    params = sum(p.numel() for p in backbone("cnn14", "fc1").parameters())
    assert params - front == 80_753_615  # PANNs' published count for CNN14
    sd16 = create_backbone("cnn14_16k").state_dict()
    assert set(sd16) == expected
    assert tuple(sd16["spectrogram_extractor.stft.conv_imag.weight"].shape) == (257, 1, 512)
    assert tuple(sd16["logmel_extractor.melW"].shape) == (257, 64)


def test_vgg16_and_resnet50_parameter_names_match_torchvision():
    vgg = backbone("vgg16", "fc2").state_dict()
    convs = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
    assert set(vgg) == {f"features.{i}.{s}" for i in convs for s in ("weight", "bias")} | {
        f"classifier.{i}.{s}" for i in (0, 3, 6) for s in ("weight", "bias")}
    for key, shape in {"features.0.weight": (64, 3, 3, 3), "features.28.weight": (512, 512, 3, 3),
                       "classifier.0.weight": (4096, 25088), "classifier.3.weight": (4096, 4096),
                       "classifier.6.weight": (1000, 4096)}.items():
        assert tuple(vgg[key].shape) == shape, key
    assert sum(v.numel() for v in vgg.values()) == 138_357_544
    res = backbone("resnet50", "layer3")
    sd = res.state_dict()
    assert len(sd) == 320 and sum(p.numel() for p in res.parameters()) == 25_557_032
    for key, shape in {"conv1.weight": (64, 3, 7, 7), "layer1.0.downsample.0.weight": (256, 64, 1, 1),
                       "layer3.5.bn3.running_var": (1024,), "layer4.2.conv3.weight": (2048, 512, 1, 1),
                       "fc.weight": (1000, 2048)}.items():
        assert tuple(sd[key].shape) == shape, key


# ------------------------------------------------------------------------ front ends


def test_stft_kernels_are_the_windowed_dft():
    n_fft = 64
    real, imag = stft_kernels(n_fft)
    frame = np.random.default_rng(0).standard_normal(n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    spectrum = np.fft.rfft(frame * window)
    np.testing.assert_allclose(real[:, 0].double().numpy() @ frame, spectrum.real, atol=1e-5)
    np.testing.assert_allclose(imag[:, 0].double().numpy() @ frame, spectrum.imag, atol=1e-5)


@pytest.mark.parametrize("name,sr,n_fft,hop,fmax", [("cnn14", 32000, 1024, 320, 14000), ("cnn14_16k", 16000, 512, 160, 8000)])
def test_cnn14_front_end_matches_librosa(name, sr, n_fft, hop, fmax):
    librosa = pytest.importorskip("librosa")
    net = create_backbone(name) if name == "cnn14_16k" else backbone(name, "fc1")
    y = music_like(sr, 1.3, f0=440.0, seed=5)
    ref = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, win_length=n_fft, window="hann",
                                         center=True, pad_mode="reflect", power=2.0, n_mels=64, fmin=50, fmax=fmax,
                                         htk=False, norm="slaney")
    ref_db = 10 * np.log10(np.maximum(1e-10, ref)).T
    with torch.no_grad():
        ours = net.logmel(torch.from_numpy(y)[None])[0, 0].numpy()
    assert ours.shape == ref_db.shape == (1 + y.size // hop, 64)
    np.testing.assert_allclose(ours, ref_db, atol=1e-3, rtol=0)


def test_spectrogram_image_is_the_fma_png_resized_and_normalised():
    y = torch.from_numpy(np.stack([music_like(22050, 1.0, seed=s) for s in range(2)]))
    front = SpectrogramImage()
    grey = front.grey(y)
    for i in range(2):
        png = to_image(logmel(y[i].numpy(), sr=22050, n_fft=2048, hop_length=512, n_mels=128), top_db=80.0)
        np.testing.assert_array_equal((grey[i].numpy() * 255).round().astype(np.uint8), png)
    img = front(y)
    assert img.shape == (2, 3, 224, 224)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    unit = img * std + mean
    assert unit.min() >= -1e-5 and unit.max() <= 1 + 1e-5
    torch.testing.assert_close(unit[:, 0], unit[:, 2])  # the grey picture on every channel
    assert not list(front.state_dict())  # adds nothing to a checkpoint


# ------------------------------------------------------------------------ loading its own weights


@pytest.mark.parametrize("name,cut", [("cnn14_16k", "fc1"), ("resnet50", "avg_pool"), ("ge2e", "embedding"),
                                      pytest.param("vgg16", "block5_pool", marks=pytest.mark.slow)])
def test_strict_load_of_its_own_state_dict(tmp_path, name, cut):
    src = create_backbone(name, cut=cut, seed=7)
    path = tmp_path / f"{name}.pth"
    if name.startswith("cnn14"):  # PANNs' wrapper
        obj = {"model": src.state_dict(), "iteration": 3}
    elif name == "ge2e":  # Resemblyzer's
        obj = {"model_state": src.state_dict(), "step": 5,
               "optimizer_state": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}}
    else:
        obj = src.state_dict()
    torch.save(obj, path)
    net = create_backbone(name, cut=cut, weights=path)
    assert net.pretrained and net.weights_source == str(path) and not net.training
    own, loaded = src.state_dict(), net.state_dict()
    assert all(torch.equal(own[k], loaded[k]) for k in own)
    y = torch.from_numpy(music_like(net.sample_rate, 0.5)[None])
    torch.testing.assert_close(net.embed(y), src.embed(y))


# ------------------------------------------------------------------------ ge2e (Resemblyzer's GE2E voice encoder)


@functools.lru_cache(maxsize=1)
def ge2e():
    return create_backbone("ge2e", seed=1)


def _at_dbfs(y: np.ndarray, dbfs: float) -> np.ndarray:
    return (y * 10 ** (dbfs / 20) / np.sqrt(np.mean(y.astype(np.float64) ** 2))).astype(np.float32)


def _reference_slices(n_samples: int, frames: int = 160, rate: float = 1.3) -> list[tuple[int, int]]:
    """Resemblyzer's ``compute_partial_slices(n_samples, rate=1.3, min_coverage=0.75)``, as written there
    (``frames`` is its ``partials_n_frames``, 160)."""
    n_frames = int(np.ceil((n_samples + 1) / 160))
    frame_step = int(np.round((16000 / rate) / 160))
    slices = [(i, i + frames) for i in range(0, max(1, n_frames - frames + frame_step + 1), frame_step)]
    if (n_samples - slices[-1][0] * 160) / (frames * 160) < 0.75 and len(slices) > 1:
        slices = slices[:-1]
    return slices


def test_ge2e_parameter_names_match_resemblyzer():
    sd = ge2e().state_dict()
    lstm = {f"lstm.{w}_{kind}_l{i}" for w in ("weight", "bias") for kind in ("ih", "hh") for i in range(3)}
    assert set(sd) == {"similarity_weight", "similarity_bias", "linear.weight", "linear.bias"} | lstm
    for key, shape in {"similarity_weight": (1,), "similarity_bias": (1,), "lstm.weight_ih_l0": (1024, 40),
                       "lstm.weight_hh_l0": (1024, 256), "lstm.weight_ih_l2": (1024, 256), "lstm.bias_hh_l1": (1024,),
                       "linear.weight": (256, 256), "linear.bias": (256,)}.items():
        assert tuple(sd[key].shape) == shape, key
    assert sum(v.numel() for v in sd.values()) == 1_423_618  # VoiceEncoder's parameters; no front end inside
    net = ge2e()
    assert (net.min_samples, net.sample_rate, tuple(net.mel_basis.shape)) == (1, 16000, (40, 201))


def test_ge2e_front_end_matches_librosa():
    librosa = pytest.importorskip("librosa")
    y = music_like(16000, 1.3, f0=330.0, seed=2) + 0.05 * np.random.default_rng(2).standard_normal(20800).astype(np.float32)
    ref = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=400, hop_length=160, n_mels=40, pad_mode="reflect").T
    with torch.no_grad():
        ours = ge2e().mel(torch.from_numpy(y)[None])[0].numpy()
    assert ours.shape == ref.shape == (1 + y.size // 160, 40)
    np.testing.assert_allclose(ours, ref, atol=1e-4 * ref.max(), rtol=0)


def test_ge2e_partial_slices():
    assert partial_slices(48000) == [(0, 160), (77, 237), (154, 314)]  # 3 s: three partials
    assert partial_slices(8000) == partial_slices(1) == [(0, 160)]  # 0.5 s, 1 sample: one, zero-padded to 1.6 s
    # A third partial starts at frame 154 (sample 24640) once n_frames = ceil((n + 1) / 160) > 154 + 160 - 78;
    # it is kept when (n - 24640) / 25600 >= 0.75, i.e. n >= 24640 + 19200 = 43840.
    assert partial_slices(43839) == [(0, 160), (77, 237)]  # coverage 19199 / 25600 < 0.75: dropped
    assert partial_slices(43840) == [(0, 160), (77, 237), (154, 314)]  # coverage exactly 0.75: kept
    for n in (1, 200, 8000, 19999, 20000, 25600, 37760, 43839, 43840, 48000, 160_000):
        assert partial_slices(n) == _reference_slices(n), n
    with pytest.raises(DataError, match="at least 1 sample, got 0"):
        partial_slices(0)


def test_ge2e_shorter_partials():
    assert partial_frames() == partial_frames(1.6, 1.3) == (160, 77)
    assert partial_frames(0.6, 5) == (60, 20) and partial_frames(0.1, 100) == (10, 1)
    # 3 s, partials of 0.6 s every 0.2 s: 13 of them; a 14th at frame 260 would cover 67 % < 75 %: dropped
    assert partial_slices(48000, rate=5, partial=0.6) == [(i, i + 60) for i in range(0, 241, 20)]
    for n in (1, 200, 5000, 9599, 9600, 41599, 48000, 160_000):
        for partial, rate in ((0.6, 5), (0.4, 10), (1.0, 1.0), (0.25, 4)):
            assert partial_slices(n, rate=rate, partial=partial) == _reference_slices(n, round(partial * 100), rate), (n, partial, rate)
    for bad in (0.05, 10.5, "1", True, float("nan")):
        with pytest.raises(ConfigError, match=f"partial must be a length in seconds from 0.1 to 10.*got {bad!r}"):
            partial_frames(bad, 1.3)
    for bad in (0.5, 101, 0, -1, "fast", None):  # 0.5/s leaves gaps between 1.6 s partials; 101/s is under a frame
        with pytest.raises(ConfigError, match=f"rate must be 0.625 to 100 partials per second.*got {bad!r}"):
            partial_frames(1.6, bad)


@pytest.mark.parametrize(("partial", "rate", "count", "weighting"),
                         [(1.6, 1.3, 3, "equal"), (0.6, 5, 13, "equal"), (0.6, 5, 13, "energy")])
def test_ge2e_embedding_equals_a_per_partial_reference(partial, rate, count, weighting):
    """Resemblyzer's embed_utterance written out clip by clip, partial by partial, on librosa's mel
    (with ``energy``: each partial's embedding weighted by the mean square of its padded samples)."""
    librosa = pytest.importorskip("librosa")
    net = ge2e()
    n = 46400  # 2.9 s: three partials of 1.6 s, the last one zero-padded (13 of 0.6 s, the last one too)
    frames = round(partial * 100)
    loud = music_like(16000, n / 16000, f0=196.0, seed=3)
    quiet = _at_dbfs(np.random.default_rng(3).standard_normal(n), -45.0)
    expected = []
    for wav in (loud, quiet):
        dbfs = 10 * np.log10(np.mean(wav.astype(np.float64) ** 2))
        wav = wav * 10 ** ((-30 - dbfs) / 20) if dbfs < -30 else wav
        slices = _reference_slices(len(wav), frames, rate)
        wav = np.pad(wav, (0, max(0, slices[-1][1] * 160 - len(wav)))).astype(np.float32)
        mel = librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=400, hop_length=160, n_mels=40, pad_mode="reflect").T
        partials, power = [], []
        with torch.no_grad():
            for start, stop in slices:
                _, (h, _) = net.lstm(torch.from_numpy(np.ascontiguousarray(mel[start:stop]))[None])
                e = torch.relu(net.linear(h[-1]))[0].numpy()
                partials.append(e / np.linalg.norm(e))
                power.append(np.mean(wav[start * 160:stop * 160].astype(np.float64) ** 2))
        mean = np.average(partials, axis=0, weights=power if weighting == "energy" else None)
        expected.append(mean / np.linalg.norm(mean))
    assert len(partials) == count
    out = net.embed(np.stack([loud, quiet]), partial=partial, rate=rate, weighting=weighting)
    assert out.shape == (2, 256) and (out >= 0).all()
    np.testing.assert_allclose(out.numpy(), np.stack(expected), atol=1e-5, rtol=0)


def test_ge2e_energy_weighting():
    net = ge2e()
    y = music_like(16000, 3.0, f0=150.0, seed=5)  # decays: the first partials are the loudest
    y[16000:24000] = 0.0  # a pause: its partials count little by energy, as much as the others when equal
    equal, energy = net.embed(y, partial=0.6, rate=5), net.embed(y, partial=0.6, rate=5, weighting="energy")
    assert abs(energy.norm().item() - 1.0) < 1e-5 and (equal - energy).abs().max() > 1e-3
    silent = torch.zeros(2, 48000)  # no energy anywhere: equal weights, no NaN
    torch.testing.assert_close(net.embed(silent, partial=0.6, rate=5, weighting="energy"),
                               net.embed(silent, partial=0.6, rate=5))
    with pytest.raises(ConfigError, match="weighting must be one of equal, energy .*got 'rms'"):
        net.embed(y, weighting="rms")


def test_ge2e_volume_is_raised_to_minus_30_dbfs_never_lowered():
    net = ge2e()
    y = music_like(16000, 1.6, seed=4)  # one partial, all inside the clip (no trailing zero-padding to forget it)
    at = {db: torch.from_numpy(_at_dbfs(y, db))[None] for db in (-50.0, -30.0, -10.0)}
    torch.testing.assert_close(normalize_volume(at[-50.0]), at[-30.0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(net.embed(at[-50.0]), net.embed(at[-30.0]), rtol=1e-5, atol=1e-6)
    assert torch.equal(normalize_volume(at[-10.0]), at[-10.0])  # louder: left as it is
    with torch.no_grad():
        assert not torch.allclose(net.mel(normalize_volume(at[-10.0])), net.mel(at[-30.0]), rtol=1e-3)
    assert (net.embed(at[-10.0]) - net.embed(at[-30.0])).abs().max() > 1e-3
    silent = normalize_volume(torch.zeros(2, 4000))
    assert torch.equal(silent, torch.zeros(2, 4000))
    out = net.embed(torch.zeros(2, 4000))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("n", [1, 8000])
def test_ge2e_short_clips_give_a_unit_embedding_without_warning(n):
    y = torch.from_numpy(music_like(16000, 1.0, seed=6)[:n])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ge2e().embed(y)
    assert out.shape == (256,) and torch.isfinite(out).all() and (out >= 0).all()
    assert abs(out.norm().item() - 1.0) < 1e-5
