"""Augmentations: shapes and dtypes, explicit randomness, and that each one does what it says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import music_like

from earmark.augment import (
    AUGMENTATIONS,
    add_background,
    copy_rng,
    offline_copies,
    Augmentation,
    Compose,
    add_noise,
    as_generator,
    compose,
    filter_augment,
    gain,
    make_augmentation,
    mixup,
    pitch_shift,
    random_crop,
    spec_augment,
    spec_augment_copies,
    spec_augment_dataset,
    time_stretch,
)
from earmark.errors import ConfigError, DataError

SR = 16000

# name -> (function, parameters) for the contract tests over every waveform augmentation
WAVEFORM = {
    "crop": (random_crop, {"length": 6000}),
    "noise": (add_noise, {"snr_db": (5, 25)}),
    "pink_noise": (add_noise, {"snr_db": (5, 25), "color": "pink"}),
    "gain": (gain, {"db": 6}),
    "time_stretch": (time_stretch, {"rate": (0.8, 1.25), "sr": SR}),
    "pitch_shift": (pitch_shift, {"semitones": (-2, 2), "sr": SR}),
}


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    """(3, 8000) float32: three different half-second music-like clips."""
    return np.stack([music_like(SR, 0.5, f0, seed=i) for i, f0 in enumerate((110.0, 220.0, 330.0))])


def _snr_db(clean: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    clean = clean.astype(np.float64)
    noise = noisy.astype(np.float64) - clean
    return 10 * np.log10(np.mean(clean**2, axis=-1) / np.mean(noise**2, axis=-1))


# ---------------------------------------------------------------- contract: every waveform one


@pytest.mark.parametrize("name", list(WAVEFORM))
def test_waveform_shapes_dtypes_and_kinds(name, clips):
    fn, kw = WAVEFORM[name]
    n_out = kw.get("length", clips.shape[-1])
    for x in (clips, clips.astype(np.float64), clips[0], clips.reshape(1, 3, -1)):
        out = fn(x, rng=0, **kw)
        assert isinstance(out, np.ndarray) and out.dtype == x.dtype
        assert out.shape == x.shape[:-1] + (n_out,)
        assert np.isfinite(out).all()
    t = torch.from_numpy(clips).double()
    out = fn(t, rng=torch.Generator().manual_seed(0), **kw)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == (3, n_out)
    # the input is never modified
    before = clips.copy()
    fn(clips, rng=1, **kw)
    np.testing.assert_array_equal(clips, before)


@pytest.mark.parametrize("name", list(WAVEFORM))
def test_waveform_determinism(name, clips):
    fn, kw = WAVEFORM[name]
    if name == "crop":
        kw = {"length": 3000}  # enough spare samples for offsets to differ
    a, b, c = (fn(clips, rng=seed, **kw) for seed in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # a NumPy Generator is advanced; the same generator state gives the same output
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    np.testing.assert_array_equal(fn(clips, rng=g1, **kw), fn(clips, rng=g2, **kw))
    assert not np.array_equal(fn(clips, rng=g1, **kw), fn(clips, rng=np.random.default_rng(3), **kw))
    # torch Generators too
    t1, t2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    np.testing.assert_array_equal(fn(clips, rng=t1, **kw), fn(clips, rng=t2, **kw))


def test_as_generator_kinds():
    assert as_generator(5).integers(1 << 30) == as_generator(5).integers(1 << 30)
    g = np.random.default_rng(0)
    assert as_generator(g) is g
    t = torch.Generator().manual_seed(1)
    first = as_generator(t).integers(1 << 30)
    assert as_generator(torch.Generator().manual_seed(1)).integers(1 << 30) == first
    assert as_generator(t).integers(1 << 30) != first  # the torch generator was advanced
    for bad in ("seed", True, 1.5):
        with pytest.raises(ConfigError, match="rng"):
            as_generator(bad)


# ---------------------------------------------------------------- crop


def test_random_crop_is_a_window_and_pads_short_clips():
    y = np.arange(100, dtype=np.float32)[None].repeat(4, 0) + 1  # no zeros in the signal
    out = random_crop(y, 30, rng=0)
    starts = out[:, 0] - 1
    for row, s in zip(out, starts):
        np.testing.assert_array_equal(row, np.arange(s, s + 30) + 1)
    assert len(set(starts.tolist())) > 1  # per item: independent offsets
    shared = random_crop(y, 30, rng=0, per_item=False)
    assert len(set(shared[:, 0].tolist())) == 1

    padded = random_crop(y[:, :10], 25, rng=0)
    assert padded.shape == (4, 25)
    for row in padded:
        nz = np.flatnonzero(row)
        np.testing.assert_array_equal(row[nz], np.arange(10, dtype=np.float32) + 1)
        assert nz[-1] - nz[0] == 9
    assert random_crop(np.zeros(0, np.float32), 5, rng=0).tolist() == [0] * 5


# ---------------------------------------------------------------- noise


@pytest.mark.parametrize("color", ["white", "pink"])
def test_add_noise_achieves_the_snr(color, clips):
    for snr in (0.0, 12.0, 30.0):
        out = add_noise(clips, snr, rng=1, color=color)
        np.testing.assert_allclose(_snr_db(clips, out), snr, atol=0.5)
    # a range is drawn per clip, inside the range, different per clip
    got = _snr_db(clips, add_noise(clips, (10, 30), rng=2, color=color))
    assert ((got > 9.5) & (got < 30.5)).all() and np.ptp(got) > 0.1
    # per_item=False: one SNR against the whole array's power
    out = add_noise(clips, 20.0, rng=3, color=color, per_item=False)
    total = 10 * np.log10(np.mean(clips.astype(np.float64) ** 2) / np.mean((out - clips).astype(np.float64) ** 2))
    assert abs(total - 20.0) < 0.5


def test_pink_noise_has_a_falling_spectrum():
    x = np.random.default_rng(0).standard_normal(2**15)
    power = {c: np.abs(np.fft.rfft(add_noise(x, 0.0, rng=0, color=c) - x)) ** 2 for c in ("white", "pink")}
    ratio = {c: p[10:100].mean() / p[10000:11000].mean() for c, p in power.items()}
    assert ratio["pink"] > 50 and 0.5 < ratio["white"] < 2


def test_add_noise_keeps_silence_silent():
    silent = np.zeros((2, 1000), np.float32)
    for color in ("white", "pink"):
        out = add_noise(silent, 10.0, rng=0, color=color)
        assert np.isfinite(out).all() and not out.any()
    one = add_noise(np.ones(1, np.float32), 10.0, rng=0, color="pink")
    assert np.isfinite(one).all()


# ---------------------------------------------------------------- gain


TONES = (440.0, 1250.0)  # one per background file: the residual's frequency tells which file was mixed in


@pytest.fixture(scope="module")
def backgrounds(tmp_path_factory) -> Path:
    """A folder of two real audio files: a 440 Hz tone of 0.1 s at 16 kHz (shorter than the clips: looped)
    and a 1250 Hz tone of 2 s at 22.05 kHz (resampled to 16 kHz), plus a text file that is not audio."""
    root = tmp_path_factory.mktemp("backgrounds")
    for (f0, sr, seconds), name in zip(((TONES[0], SR, 0.1), (TONES[1], 22050, 2.0)), ("short.wav", "sub/long.flac")):
        t = np.arange(int(sr * seconds)) / sr
        (root / name).parent.mkdir(exist_ok=True)
        sf.write(root / name, (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), sr)
    (root / "notes.txt").write_text("not audio")
    return root


def _strongest_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SR)[spec.argmax()])


def test_add_background_mixes_a_file_at_the_snr(clips, backgrounds):
    y = np.tile(clips, (8, 1))  # 24 clips
    out = add_background(y, str(backgrounds), 10, rng=0, sr=SR)
    assert out.shape == y.shape and out.dtype == y.dtype
    residual = (out - y).astype(np.float64)
    np.testing.assert_allclose(10 * np.log10(np.mean(y.astype(np.float64) ** 2, 1) / np.mean(residual**2, 1)), 10, atol=1e-3)
    peaks = [_strongest_hz(r) for r in residual]
    for p in peaks:
        assert min(abs(p - f) for f in TONES) < 5  # each residual is one of the two files
    assert {min(TONES, key=lambda f: abs(p - f)) for p in peaks} == set(TONES)  # both are drawn
    short = [r for r, p in zip(residual, peaks) if abs(p - TONES[0]) < 5][0]
    np.testing.assert_allclose(short[1600:], short[:-1600], atol=1e-6)  # the 0.1 s file, looped
    np.testing.assert_array_equal(add_background(y, str(backgrounds), 10, rng=0, sr=SR), out)
    assert not np.array_equal(add_background(y, str(backgrounds), 10, rng=1, sr=SR), out)
    snrs = 10 * np.log10(np.mean(y.astype(np.float64) ** 2, 1)
                         / np.mean((add_background(y, str(backgrounds), (0, 20), rng=2, sr=SR) - y) ** 2, 1))
    assert snrs.min() >= -1e-3 and snrs.max() <= 20 + 1e-3 and snrs.std() > 2


def test_add_background_list_shared_draw_silence_and_tensors(clips, backgrounds):
    stereo = clips[:2]
    shared = add_background(stereo, [str(backgrounds / "sub" / "long.flac")], 6, rng=0, sr=SR, per_item=False)
    residual = shared - stereo
    np.testing.assert_allclose(residual[0], residual[1], atol=1e-7)  # one excerpt, one scale for both channels
    assert abs(_strongest_hz(residual[0]) - TONES[1]) < 5
    silent = np.zeros((2, 4000), np.float32)
    np.testing.assert_array_equal(add_background(silent, str(backgrounds), 10, rng=0, sr=SR), silent)
    T = torch.from_numpy(clips.copy())
    out = add_background(T, str(backgrounds), 10, rng=3, sr=SR)
    assert isinstance(out, torch.Tensor) and out.dtype == T.dtype
    np.testing.assert_allclose(out.numpy(), add_background(clips, str(backgrounds), 10, rng=3, sr=SR), rtol=1e-6)


def test_add_background_bad_files(tmp_path, clips, backgrounds):
    with pytest.raises(ConfigError, match=r"add_background: files: .*'/no/such/dir' \(no such folder\)"):
        add_background(clips, "/no/such/dir", 10, rng=0, sr=SR)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"files: .*empty: no audio files found"):
        make_augmentation("background", files=str(tmp_path / "empty"), snr_db=10)
    with pytest.raises(ConfigError, match=r"files: no such file: '.*gone\.wav' \(and 1 more\)"):
        make_augmentation("background", files=[str(backgrounds / "short.wav"), "gone.wav", "gone2.wav"], snr_db=10)
    with pytest.raises(ConfigError, match=r"files: expected a folder of audio files or a non-empty list"):
        make_augmentation("background", files=[], snr_db=10)
    with pytest.raises(ConfigError, match=r"add_background: sr: expected a positive integer"):
        add_background(clips, str(backgrounds), 10, rng=0, sr=0)
    with pytest.raises(ConfigError, match=r"files: expected \{label: NAME\} \(the training clips of one class\), got \{'lable': 'x'\}"):
        make_augmentation("background", files={"lable": "x"}, snr_db=10)
    aug = make_augmentation("background", files={"label": "instrumental"}, snr_db=10)  # for train.copies to resolve
    with pytest.raises(ConfigError, match=r"names training clips; only train.copies resolves it"):
        aug(clips, rng=0, sr=SR)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(DataError, match=r"broken\.wav"):  # found when it is drawn, named
        add_background(clips, [str(broken)], 10, rng=0, sr=SR)


def test_background_files_in_a_config_are_relative_to_it(tmp_path, backgrounds, monkeypatch):
    import shutil

    from earmark.config import load_config

    project = tmp_path / "project"
    shutil.copytree(backgrounds, project / "bg")
    (project / "m.csv").write_text("path,label\nbg/short.wav,a\n")
    (project / "exp.yaml").write_text(
        "data: {manifest: m.csv}\n"
        "train:\n"
        "  augment: [{name: background, files: bg, snr_db: 10}]\n"
        "  copies: {n: 1, augment: [{name: background, files: [bg/short.wav, bg/sub/long.flac], snr_db: [0, 10]}]}\n")
    monkeypatch.chdir(tmp_path)  # elsewhere than the config
    cfg = load_config(project / "exp.yaml")
    assert cfg.train.augment[0]["files"] == str(project / "bg")
    assert cfg.train.copies.augment[0]["files"] == [str(project / "bg" / "short.wav"), str(project / "bg" / "sub" / "long.flac")]
    # given with --set, from the current directory, as data.manifest
    monkeypatch.chdir(project / "bg")
    cfg = load_config(project / "exp.yaml", ["train.augment=[{name: background, files: sub, snr_db: 3}]"])
    assert cfg.train.augment[0]["files"] == str(project / "bg" / "sub")
    (project / "exp.yaml").write_text("data: {manifest: m.csv}\ntrain: {copies: {n: 1, augment: [{name: background, files: nope, snr_db: 5}]}}\n")
    with pytest.raises(ConfigError, match=r"train\.copies\.augment\[0\]\.files: .*project/nope' \(no such folder\)"):
        load_config(project / "exp.yaml")


def test_gain_is_exact_in_db(clips):
    fixed = gain(clips.astype(np.float64), (6, 6), rng=0)
    np.testing.assert_allclose(20 * np.log10(np.abs(fixed) / np.abs(clips)), 6.0, atol=1e-6)
    fixed = gain(clips, (-3.5, -3.5), rng=0)
    np.testing.assert_allclose(20 * np.log10(np.abs(fixed) / np.abs(clips)), -3.5, atol=1e-4)
    # a number is a ± range: one exact factor per clip, inside [-6, 6] dB, different per clip
    out = gain(clips.astype(np.float64), 6, rng=4)
    ratio_db = 20 * np.log10(np.abs(out) / np.abs(clips))
    per_clip = ratio_db[:, 0]
    np.testing.assert_allclose(ratio_db - per_clip[:, None], 0.0, atol=1e-9)
    assert (np.abs(per_clip) <= 6).all() and np.ptp(per_clip) > 0.1
    shared = gain(clips.astype(np.float64), 6, rng=4, per_item=False)
    assert np.ptp(20 * np.log10(np.abs(shared) / np.abs(clips))) < 1e-9


# ---------------------------------------------------------------- time stretch / pitch shift


def _pulse_rate(y: np.ndarray, sr: int) -> float:
    """Pulses per second: the peak of the spectrum of the 10 ms RMS envelope."""
    hop = sr // 100
    env = np.sqrt(np.square(y[: len(y) // hop * hop]).reshape(-1, hop).mean(1))
    spec = np.abs(np.fft.rfft(env - env.mean(), 2**16))
    return np.argmax(spec) * 100 / 2**16


def test_time_stretch_changes_tempo_and_keeps_length():
    # a 1 kHz tone pulsing twice a second (smooth envelope: a phase vocoder keeps it intact)
    sr, rate0, n = 16000, 2.0, 4 * 16000
    t = np.arange(n) / sr
    y = (np.sin(2 * np.pi * 1000 * t) * np.sin(np.pi * t * rate0) ** 4).astype(np.float32)
    assert abs(_pulse_rate(y, sr) / rate0 - 1) < 0.02
    for rate in (1.25, 0.8):
        out = time_stretch(y, rate, rng=0, sr=sr)
        assert out.shape == y.shape and out.dtype == y.dtype
        valid = min(n, int(n / rate))  # faster: the end is zero padding
        assert not out[valid + 100 :].any()
        assert abs(_pulse_rate(out[:valid], sr) / (rate0 * rate) - 1) < 0.03
    np.testing.assert_array_equal(time_stretch(y, 1.0, rng=0, sr=sr), y)


def _peak_hz(y: np.ndarray, sr: int) -> tuple[float, float]:
    mid = y[len(y) // 2 - 8192 : len(y) // 2 + 8192]
    spec = np.abs(np.fft.rfft(mid * np.hanning(mid.size)))
    return np.argmax(spec) * sr / mid.size, sr / mid.size


@pytest.mark.parametrize("semitones", [3.0, -5.0])
def test_pitch_shift_moves_a_pure_tone(semitones):
    sr = 22050
    y = (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(sr) / sr)).astype(np.float32)
    out = pitch_shift(y, semitones, rng=0, sr=sr)
    assert out.shape == y.shape and out.dtype == np.float32
    got, bin_hz = _peak_hz(out, sr)
    assert abs(got - 440.0 * 2 ** (semitones / 12)) <= bin_hz


def _resonances(f: np.ndarray) -> np.ndarray:
    """The test vowel's spectral envelope: resonances at 600 and 1800 Hz over a small floor."""
    return 1 / (1 + ((f - 600) / 250) ** 2) + 0.5 / (1 + ((f - 1800) / 300) ** 2) + 0.01


def _vowel(f0: float, sr: int, seconds: float = 1.0) -> np.ndarray:
    """Harmonics of ``f0`` up to 6 kHz shaped by :func:`_resonances`, plus a little breath noise."""
    t = np.arange(int(sr * seconds)) / sr
    f = f0 * np.arange(1, int(6000 / f0))
    y = (np.sin(2 * np.pi * f[:, None] * t) * _resonances(f)[:, None]).sum(0)
    y += 0.002 * np.random.default_rng(0).standard_normal(t.size)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def _partials_db(y: np.ndarray, sr: int, f0: float) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, levels in dB) of the partials of ``f0`` under 4 kHz in the middle of ``y``."""
    mid = y[len(y) // 4 : 3 * len(y) // 4]
    spec = np.abs(np.fft.rfft(mid * np.hanning(mid.size)))
    f = f0 * np.arange(1, int(4000 / f0))
    bins = np.round(f * mid.size / sr).astype(int)
    return f, 20 * np.log10(np.stack([spec[bins - 2], spec[bins - 1], spec[bins], spec[bins + 1], spec[bins + 2]]).max(0))


def _misfit_db(levels: np.ndarray, envelope: np.ndarray) -> float:
    """RMS distance (dB, overall level removed) between partial levels and an envelope."""
    d = levels - 20 * np.log10(envelope)
    return float(np.sqrt(np.mean((d - d.mean()) ** 2)))


@pytest.mark.parametrize("f0,semitones", [(110.0, 5.0), (200.0, -5.0)])
def test_pitch_shift_can_keep_the_formants(f0, semitones):
    sr, r = 16000, 2 ** (semitones / 12)
    y = _vowel(f0, sr)
    moved = pitch_shift(y, semitones, rng=0, sr=sr)  # plain: the resonances move with the pitch
    kept = pitch_shift(y, semitones, rng=0, sr=sr, formants="keep")
    assert kept.shape == y.shape and kept.dtype == np.float32 and np.isfinite(kept).all()
    f, moved_db = _partials_db(moved, sr, f0 * r)  # the new partials carry the energy: the pitch moved
    _, kept_db = _partials_db(kept, sr, f0 * r)
    assert _misfit_db(moved_db, _resonances(f / r)) < _misfit_db(moved_db, _resonances(f)) - 3  # formants moved
    assert _misfit_db(kept_db, _resonances(f)) < 3.0  # formants stayed: within 3 dB of the original envelope
    assert _misfit_db(kept_db, _resonances(f / r)) > 5.0
    rows = pitch_shift(np.stack([y, y[::-1].copy()]), semitones, rng=0, sr=sr, formants="keep", per_item=False)
    np.testing.assert_allclose(rows[0], kept, atol=1e-5)


def test_pitch_shift_formants_option_is_checked():
    y = _vowel(150.0, SR, 0.5)
    np.testing.assert_array_equal(pitch_shift(y, 0.0, rng=0, sr=SR, formants="keep"), y)
    with pytest.raises(ConfigError, match="formants"):
        pitch_shift(y, 2.0, rng=0, sr=SR, formants="sideways")
    with pytest.raises(ConfigError, match=r"train.augment\[0\].formants"):
        compose([{"name": "pitch_shift", "semitones": 2, "formants": "up"}])


def test_offline_copy_settings_and_generators():
    copies = offline_copies([{"name": "pitch_shift", "semitones": 3, "formants": "keep"}, "spec_augment"], 2, seed=5)
    assert [c["copy"] for c in copies] == [0, 1] and {c["seed"] for c in copies} == {5}
    assert copies[0]["steps"][0] == {"name": "pitch_shift", "semitones": [3.0, 3.0], "formants": "keep"}
    assert offline_copies([], 0, seed=0) == []
    a, b = copy_rng(copies[0], "clip1"), copy_rng(copies[0], "clip1")
    assert a.random() == b.random()
    assert copy_rng(copies[0], "clip1").random() != copy_rng(copies[1], "clip1").random()
    assert copy_rng(copies[0], "clip1").random() != copy_rng(copies[0], "clip2").random()
    with pytest.raises(ConfigError, match=r"train.copies.augment: mixup"):
        offline_copies([{"name": "mixup"}], 1, seed=0)
    with pytest.raises(ConfigError, match=r"train.copies.augment: 2 copies need at least one"):
        offline_copies([], 2, seed=0)
    with pytest.raises(ConfigError, match=r"train.copies.augment\[0\].name"):
        offline_copies([{"name": "pitch_shfit"}], 1, seed=0)


# ---------------------------------------------------------------- SpecAugment


def _masked(S: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per item: boolean masked frames (time,) and masked bins (bins,), for mask_value=0 on S > 0."""
    zero = out == 0
    return zero.all(axis=-1), zero.all(axis=-2)


def _runs(mask: np.ndarray) -> list[int]:
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).tolist()


def test_spec_augment_masks_bands_and_frames():
    rng = np.random.default_rng(0)
    S = rng.uniform(1, 2, (64, 100, 40)).astype(np.float32)
    kw = {"freq_masks": 2, "freq_width": 8, "time_masks": 3, "time_width": 10, "mask_value": 0.0}
    out = spec_augment(S, rng=1, **kw)
    assert out.shape == S.shape and out.dtype == S.dtype
    frames, bins = _masked(S, out)
    max_runs = [0, 0]
    for i in range(S.shape[0]):
        masked = frames[i][:, None] | bins[i][None, :]
        assert ((out[i] == 0) == masked).all()  # only masked entries changed ...
        np.testing.assert_array_equal(out[i][~masked], S[i][~masked])  # ... the rest exactly kept
        for mask, n_masks, width, slot in ((bins[i], 2, 8, 0), (frames[i], 3, 10, 1)):
            runs = _runs(mask)
            assert len(runs) <= n_masks and mask.sum() <= n_masks * width
            assert all(r <= width for r in runs) or len(runs) < n_masks  # a wider run = overlapping masks
            max_runs[slot] = max(max_runs[slot], len(runs))
    assert max_runs == [2, 3]  # over 64 items the full number of separate masks is seen
    # independent masks per item
    assert len({frames[i].tobytes() + bins[i].tobytes() for i in range(S.shape[0])}) > 32
    shared = spec_augment(S, rng=1, per_item=False, **kw)
    f2, b2 = _masked(S, shared)
    assert (f2 == f2[0]).all() and (b2 == b2[0]).all()


def test_spec_augment_mean_fill_disabled_masks_and_determinism():
    S = np.random.default_rng(0).normal(size=(3, 50, 20)).astype(np.float32)
    out = spec_augment(S, rng=3, freq_width=20, time_width=50)
    changed = out != S
    for i in range(3):
        np.testing.assert_allclose(out[i][changed[i]], S[i].mean(), rtol=1e-6)
    np.testing.assert_array_equal(spec_augment(S, rng=0, freq_masks=0, time_masks=0), S)
    np.testing.assert_array_equal(spec_augment(S, rng=5), spec_augment(S, rng=5))
    assert not np.array_equal(spec_augment(S, rng=5), spec_augment(S, rng=6))
    # a mask wider than the axis is clipped to it
    assert spec_augment(S, rng=0, freq_width=1000, time_width=1000).shape == S.shape


@pytest.mark.parametrize("fn", [spec_augment, filter_augment])
def test_spectrogram_augmentations_on_tensors_match_numpy_and_keep_grad(fn):
    S = np.random.default_rng(1).normal(size=(4, 30, 16)).astype(np.float32)
    T = torch.from_numpy(S).requires_grad_()
    out = fn(T, rng=9)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device == T.device
    np.testing.assert_allclose(out.detach().numpy(), fn(S, rng=9), rtol=1e-6)
    out.sum().backward()
    assert T.grad is not None
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    assert torch.equal(fn(T, rng=g1), fn(T, rng=g2))
    assert fn(T.detach().double(), rng=0).dtype == torch.float64
    with pytest.raises(ConfigError, match=rf"{fn.__name__}: S must have shape \(\.\.\., time, bins\)"):
        fn(np.zeros(10), rng=0)


def _slopes_change(row: np.ndarray) -> int:
    """Interior bins where a piecewise-linear row bends (its second difference is not ~0)."""
    return int((np.abs(np.diff(row, 2)) > 1e-4).sum())


def test_filter_augment_is_one_random_response_per_item():
    rng = np.random.default_rng(0)
    S = rng.normal(size=(200, 30, 40)).astype(np.float32)
    out = filter_augment(S, rng=1)
    assert out.shape == S.shape and out.dtype == S.dtype
    response = (out - S).astype(np.float64)
    # the same gain for every frame of an item: a filter, not a time-varying change
    np.testing.assert_allclose(response, response[:, :1, :].repeat(30, axis=1), atol=1e-5)
    r = response[:, 0, :]
    assert np.abs(r).max() <= 6 + 1e-5 and np.abs(r).max() > 5  # within +-db and using the range
    # linear: 3..6 bands = 4..7 breakpoints joined by straight lines (at most 5 interior bends)
    bends = [_slopes_change(row) for row in r]
    assert max(bends) <= 5 and min(bends) >= 1
    assert len({row.tobytes() for row in r}) == 200  # every item its own response
    np.testing.assert_array_equal(filter_augment(S, rng=1), out)
    shared = filter_augment(S, rng=1, per_item=False) - S
    np.testing.assert_allclose(shared, np.broadcast_to(shared[0, 0], S.shape), atol=1e-5)


def test_filter_augment_step_bands_ranges_and_linear_scale():
    S = np.zeros((100, 5, 64), np.float32)
    step = filter_augment(S, rng=0, kind="step", bands=4, db=[-2, 3])[:, 0, :]
    for row in step:
        assert len(np.unique(row)) <= 4 and len(np.flatnonzero(np.diff(row))) == 3  # exactly four bands
    assert step.min() >= -2 - 1e-6 and step.max() <= 3 + 1e-6
    # one band = one gain over the whole axis; db=0 changes nothing
    one = filter_augment(S, rng=0, kind="step", bands=1)[:, 0, :]
    assert (one == one[:, :1]).all()
    np.testing.assert_array_equal(filter_augment(S + 1, rng=0, db=0), S + 1)
    # more bands than bins: one band per bin at most
    assert filter_augment(np.ones((2, 3, 2), np.float32), rng=0, bands=8).shape == (2, 3, 2)
    # a magnitude spectrogram is multiplied by the gain: the log-domain response, exactly
    M = np.random.default_rng(3).uniform(0.1, 1, (8, 4, 32))
    lin = filter_augment(M, rng=5, scale="linear")
    log = filter_augment(20 * np.log10(M), rng=5)
    np.testing.assert_allclose(20 * np.log10(lin), log, atol=1e-9)
    T = torch.from_numpy(M).requires_grad_()
    filter_augment(T, rng=5).sum().backward()
    np.testing.assert_array_equal(T.grad.numpy(), np.ones_like(M))  # an additive response passes gradients as is
    np.testing.assert_allclose(filter_augment(T.detach(), rng=5, scale="linear").numpy(), lin)


def test_spec_augment_offline_copies_and_dataset():
    S = np.random.default_rng(2).uniform(1, 2, (5, 40, 12)).astype(np.float32)
    copies = spec_augment_copies(S, 3, rng=0, mask_value=0.0)
    assert copies.shape == (4, 5, 40, 12)
    np.testing.assert_array_equal(copies[0], S)
    assert all((copies[j] == 0).any() and not np.array_equal(copies[j], copies[j + 1]) for j in range(1, 3))
    assert spec_augment_copies(S, 0, rng=0).shape == (1, 5, 40, 12)
    t = spec_augment_copies(torch.from_numpy(S), 2, rng=0)
    assert isinstance(t, torch.Tensor) and t.shape == (3, 5, 40, 12)

    y = np.array([0, 1, 2, 1, 0])
    X_aug, y_aug = spec_augment_dataset(S, y, 2, rng=0, mask_value=0.0)
    assert X_aug.shape == (15, 40, 12) and y_aug.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 1, 1, 1, 0, 0, 0]
    np.testing.assert_array_equal(X_aug[::3], S)  # each original first, then its copies
    for i in range(5):  # copies differ from the original only where masked
        copy = X_aug[3 * i + 1]
        np.testing.assert_array_equal(copy[copy != 0], S[i][copy != 0])
    Xt, yt = spec_augment_dataset(torch.from_numpy(S), torch.from_numpy(y), 1, rng=0)
    assert Xt.shape == (10, 40, 12) and yt.tolist() == [0, 0, 1, 1, 2, 2, 1, 1, 0, 0]
    with pytest.raises(DataError, match="one entry per example"):
        spec_augment_dataset(S, y[:3], 1, rng=0)
    with pytest.raises(ConfigError, match="k:"):
        spec_augment_copies(S, -1, rng=0)


# ---------------------------------------------------------------- mixup


def test_mixup_convex_combination_and_soft_labels():
    y = np.array([0, 1, 2, 3, 1, 0, 2, 3])
    x = np.eye(4, dtype=np.float32)[y]  # x is the one-hot label: mixing x must give y_soft
    xm, ys = mixup(x, y, alpha=0.4, n_classes=4, rng=0)
    assert xm.shape == x.shape and xm.dtype == np.float32 and ys.shape == (8, 4) and ys.dtype == np.float32
    np.testing.assert_allclose(xm, ys, atol=1e-6)
    np.testing.assert_allclose(ys.sum(1), 1.0, atol=1e-6)
    assert (ys >= 0).all() and ((ys > 0).sum(1) <= 2).all()
    assert (ys.max(1) < 1).sum() >= 2  # some items really are mixed, with different weights per item
    assert len(np.unique(np.round(ys.max(1), 6))) > 2

    # convex: every mixed item lies between two items of the batch
    feats = np.random.default_rng(0).normal(size=(8, 3, 5)).astype(np.float64)
    fm, _ = mixup(feats, y, n_classes=4, rng=1)
    assert fm.dtype == np.float64
    assert all(
        any(np.allclose(fm[i], lam * feats[i] + (1 - lam) * feats[j])
            for j in range(8) for lam in [_solve_lambda(fm[i], feats[i], feats[j])])
        for i in range(8)
    )


def _solve_lambda(m: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    d = (a - b).ravel()
    return 1.0 if not d.any() else float(np.clip(d @ (m - b).ravel() / (d @ d), 0, 1))


def test_mixup_determinism_torch_and_errors():
    y = np.array([0, 1, 2, 0])
    x = np.random.default_rng(0).normal(size=(4, 10)).astype(np.float32)
    a, b, c = (mixup(x, y, n_classes=3, rng=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    xt, yt = mixup(torch.from_numpy(x), torch.from_numpy(y), n_classes=3, rng=1)
    assert isinstance(xt, torch.Tensor) and yt.dtype == torch.float32 and yt.device == xt.device
    np.testing.assert_allclose(xt.numpy(), a[0], rtol=1e-6)
    np.testing.assert_allclose(yt.numpy(), a[1], rtol=1e-6)
    # soft targets can be mixed again
    _, again = mixup(x, a[1], n_classes=3, rng=3)
    np.testing.assert_allclose(again.sum(1), 1.0, atol=1e-6)
    with pytest.raises(DataError, match=r"labels must be in \[0, 3\)"):
        mixup(x, np.array([0, 1, 5, 0]), n_classes=3, rng=0)
    with pytest.raises(DataError):
        mixup(x, np.array([0, 1]), n_classes=3, rng=0)
    with pytest.raises(ConfigError, match="mixup: alpha: must be > 0"):
        mixup(x, y, alpha=0, n_classes=3, rng=0)


# ---------------------------------------------------------------- registry and compose


def test_registry_lookups():
    assert AUGMENTATIONS.names() == ["background", "crop", "filter_augment", "gain", "mixup", "noise", "pitch_shift",
                                     "spec_augment", "time_stretch"]
    assert AUGMENTATIONS.names("*_s*") == ["pitch_shift", "time_stretch"]
    aug = AUGMENTATIONS.create("noise", snr_db=[10, 30])
    assert isinstance(aug, Augmentation) and aug.kind == "waveform" and aug.params["snr_db"] == (10.0, 30.0)
    assert make_augmentation("spec_augment", time_width=5).kind == "spectrogram"
    with pytest.raises(ConfigError, match="did you mean 'noise'"):
        make_augmentation("nosie")
    with pytest.raises(ConfigError, match="augmentation 'noise': snr_db: expected low <= high"):
        make_augmentation("noise", snr_db=[30, 10])
    with pytest.raises(ConfigError, match="augmentation 'crop': length: required"):
        make_augmentation("crop")
    with pytest.raises(ConfigError, match="augmentation 'time_stretch': sr must be given"):
        make_augmentation("time_stretch", rate=1.1)(np.zeros(100, np.float32), rng=0)
    # direct calls validate too
    with pytest.raises(ConfigError, match="add_noise: color: expected one of 'white', 'pink'"):
        add_noise(np.zeros(10), 10, rng=0, color="brown")


def test_compose_pipeline_stages(clips):
    pipe = compose([{"name": "gain", "db": 6}, {"name": "noise", "snr_db": [10, 30]},
                    "spec_augment", {"name": "mixup", "alpha": 0.2}])
    assert isinstance(pipe, Compose) and len(pipe) == 4 and pipe.kinds == ("waveform", "spectrogram", "batch")
    assert pipe.to_config()[1] == {"name": "noise", "snr_db": [10.0, 30.0]}
    w1, w2 = pipe.waveform(clips, rng=0, sr=SR), pipe.waveform(clips, rng=0, sr=SR)
    np.testing.assert_array_equal(w1, w2)
    assert w1.shape == clips.shape and not np.array_equal(w1, clips)
    S = np.random.default_rng(0).uniform(1, 2, (3, 30, 10)).astype(np.float32)
    assert pipe.spectrogram(S, rng=0).shape == S.shape
    xm, ys = pipe.mix(S, np.array([0, 1, 1]), rng=0, n_classes=2)
    assert xm.shape == S.shape and ys.shape == (3, 2)
    with pytest.raises(ConfigError, match="waveform and spectrogram"):
        Compose(pipe.steps[:3])(clips, rng=0)
    with pytest.raises(ConfigError, match=r"\.mix"):
        pipe(clips, rng=0)
    empty = compose(None)
    assert len(empty) == 0 and empty(clips, rng=0) is clips
    assert compose([]).mix(S, [0, 1, 1], rng=0, n_classes=2)[1] == [0, 1, 1]


@pytest.mark.parametrize(
    "specs, message",
    [
        ([{"name": "gain", "db": 6}, {"name": "noise", "snr_db": "loud"}],
         r"train\.augment\[1\]\.snr_db: expected a number or a \(low, high\) pair, got 'loud'"),
        ([{"name": "noise", "snr_db": [10, 20, 30]}], r"train\.augment\[0\]\.snr_db: expected a number or a \(low, high\) pair"),
        ([{"name": "time_stretch", "rate": [0, 2]}], r"train\.augment\[0\]\.rate: must be > 0"),
        ([{"name": "spec_augment", "freq_masks": -1}], r"train\.augment\[0\]\.freq_masks: expected an integer >= 0, got -1"),
        ([{"name": "spec_augment", "mask_value": "max"}], r"train\.augment\[0\]\.mask_value: expected 'mean' or a finite number"),
        ([{"name": "crop", "length": 2.5}], r"train\.augment\[0\]\.length: expected a positive integer, got 2\.5"),
        ([{"name": "noise", "snr_db": 10, "snr": 3}], r"train\.augment\[0\]\.snr: unknown parameter; known: snr_db, color, per_item"),
        ([{"name": "pitch_shift", "semitones": 1, "sr": 16000}], r"train\.augment\[0\]\.sr: unknown parameter \(it is given"),
        ([{"name": "mixup", "alpha": -1}], r"train\.augment\[0\]\.alpha: must be > 0"),
        ([{"name": "filter_augment", "bands": 0}], r"train\.augment\[0\]\.bands: expected an integer >= 1 or a \(low, high\) pair"),
        ([{"name": "filter_augment", "bands": [6, 3]}], r"train\.augment\[0\]\.bands: expected low <= high"),
        ([{"name": "filter_augment", "bands": 2.5}], r"train\.augment\[0\]\.bands: expected an integer >= 1"),
        ([{"name": "filter_augment", "kind": "smooth"}], r"train\.augment\[0\]\.kind: expected one of 'linear', 'step'"),
        ([{"name": "filter_augment", "db": "loud"}], r"train\.augment\[0\]\.db: expected a number or a \(low, high\) pair"),
        ([{"name": "gain"}], r"train\.augment\[0\]\.db: required"),
        (["gain_db"], r"train\.augment\[0\]\.name: unknown augmentation 'gain_db'; did you mean 'gain'"),
        ([{"db": 3}], r"train\.augment\[0\]\.name: required"),
        ([3], r"train\.augment\[0\]: expected a mapping"),
        ({"name": "gain"}, r"train\.augment: expected a list"),
        (["mixup", "spec_augment"], r"train\.augment\[1\]: spectrogram augmentation 'spec_augment' cannot come after batch"),
    ],
)
def test_compose_errors_name_the_key_path(specs, message):
    with pytest.raises(ConfigError, match=message):
        compose(specs)


def test_compose_custom_key():
    with pytest.raises(ConfigError, match=r"^augment\[0\]\.db: "):
        compose([{"name": "gain", "db": "x"}], key="augment")


# minimal config for every registered augmentation (a new registration must be added here)
MINIMAL = {
    "crop": {"length": 4000},
    "noise": {"snr_db": [10, 20]},
    "gain": {"db": 6},
    "time_stretch": {"rate": [0.9, 1.1]},
    "pitch_shift": {"semitones": [-1, 1]},
    "background": {"snr_db": [5, 15]},  # + files: the backgrounds fixture
    "spec_augment": {},
    "filter_augment": {},
    "mixup": {"alpha": 0.4},
}


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_every_registered_augmentation_is_deterministic_and_finite(name, clips, backgrounds):
    assert name in MINIMAL, f"add {name!r} to MINIMAL"
    aug = make_augmentation(name, **MINIMAL[name], **({"files": str(backgrounds)} if name == "background" else {}))
    x = clips if aug.kind == "waveform" else np.abs(clips.reshape(3, 80, 100))
    args = (x, np.array([0, 1, 0])) if aug.kind == "batch" else (x,)
    run = lambda seed: aug(*args, rng=seed, sr=SR, n_classes=2)
    a, b, c = run(0), run(0), run(1)
    first = a[0] if aug.kind == "batch" else a
    assert np.isfinite(first).all() and first.dtype == np.float32
    np.testing.assert_array_equal(first, b[0] if aug.kind == "batch" else b)
    assert not np.array_equal(first, c[0] if aug.kind == "batch" else c)
    assert compose([aug.to_config()]).to_config() == [aug.to_config()]
