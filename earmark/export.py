"""Export a trained network (or seed ensemble) for use without earmark.

* ``torchscript``: the whole model, waveform in, probabilities out — the feature front end (e.g.
  ``fbank``, written in torch) is part of the traced graph. Input: float32 ``(batch, n_samples)`` at the
  feature's rate, exactly the length the export was traced with (``export.json``: ``n_samples``).
* ``onnx``: the network (and the ensemble average), features in, probabilities out. ONNX has no
  portable real FFT, so the front end stays outside; ``export.json`` is its recipe and
  :func:`onnx_features` implements it: ``get_feature(name)(load(path, sr=sr), **params)``, centre-cropped
  or zero-padded to ``frames``, as float32 ``(batch, frames, bins)``; for a run trained on separated
  vocals (``audio.separate``) the recipe's ``separate`` settings are applied first. Such a run cannot be
  exported as TorchScript (the separation is not a traceable graph): that is refused.

Both write ``export.json`` beside the model: format, labels (the output columns), feature, params, sr,
frames, n_samples and separate (null, or the resolved separation settings).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from earmark.audio.separate import apply_separation, resolve_separation
from earmark.errors import ConfigError
from earmark.features.base import get_feature
from earmark.fsutil import atomic_path, atomic_write_text
from earmark.run import Run

FORMATS = ("onnx", "torchscript")


class _Probabilities(nn.Module):
    """Softmax of one network, or the mean of several (a seed ensemble), on fixed-size features."""

    def __init__(self, nets: list[nn.Module]):
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.softmax(n(features), dim=-1) for n in self.nets]).mean(dim=0)


class _EndToEnd(nn.Module):
    """Waveform -> feature front end -> centre crop / pad to ``frames`` -> probabilities."""

    def __init__(self, head: _Probabilities, feature: str, params: dict[str, Any], frames: int | None):
        super().__init__()
        self.head, self.params, self.frames = head, params, frames
        self.fn = get_feature(feature).fn

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        S = self.fn(waveform, **self.params)
        if self.frames is not None:
            n = S.shape[-2]
            if n >= self.frames:
                start = (n - self.frames) // 2
                S = S[..., start : start + self.frames, :]
            else:
                S = nn.functional.pad(S, (0, 0, 0, self.frames - n))
        return self.head(S)


def _networks(run: Run) -> list[nn.Module]:
    if not run.is_network:
        raise ConfigError(f"{run.dir}: export needs a network run (model.name: cnn_small, resnet34, ...); "
                          "classical models are saved as model.skops and used through `earmark predict`")
    members = getattr(run.model, "members", None) or [run.model]
    return [m.model_.eval() for m in members]


def _samples_for(feature: str, params: dict[str, Any], frames: int) -> int:
    """Smallest waveform length whose feature has ``frames`` frames (found on silence)."""
    fn, lo, hi = get_feature(feature).fn, 1, 1
    count = lambda n: fn(np.zeros((1, n), np.float32), **params).shape[-2]  # noqa: E731
    while count(hi) < frames:
        lo, hi = hi, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if count(mid) < frames else (lo, mid)
    return hi


def export(run_dir: str | os.PathLike, fmt: str, out: str | os.PathLike | None = None) -> Path:
    """Write the run's network as ``fmt`` (``onnx`` or ``torchscript``) and ``export.json`` beside it.

    Returns the model file's path (default ``RUN/model.onnx`` or ``RUN/model.pt``).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "onnx":
        import importlib.util

        missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(f"--format onnx needs {', '.join(missing)}: pip install 'earmark[export]'")
    run = Run.load(run_dir)
    cfg = run.config
    separation = resolve_separation(cfg.audio.separate)
    if separation is not None and fmt == "torchscript":
        raise ConfigError(f"{run_dir}: this run separates vocals before its feature (audio.separate: "
                          f"{separation['method']}), a step a traced TorchScript graph cannot hold; use --format "
                          "onnx, whose export.json recipe includes it (earmark.export.onnx_features applies it)")
    spec = get_feature(cfg.features.name)
    params = spec.resolve(cfg.features.params)
    sr = params.pop("sr")
    first = (getattr(run.model, "members", None) or [run.model])[0]
    frames = cfg.features.frames or first.input_shape_[0]
    head = _Probabilities(_networks(run)).eval()
    n_samples = _samples_for(cfg.features.name, {"sr": sr, **params}, frames)
    out = Path(out) if out else Path(run_dir) / ("model.onnx" if fmt == "onnx" else "model.pt")
    with torch.no_grad(), atomic_path(out) as tmp:
        if fmt == "torchscript":
            model = _EndToEnd(head, cfg.features.name, {"sr": sr, **params}, cfg.features.frames).eval()
            with warnings.catch_warnings():
                # The trace is for one input length by design (export.json: n_samples), and PyTorch 2.13
                # marks torch.jit as deprecated; neither warning is news to the person exporting.
                warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
                warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.jit")
                traced = torch.jit.trace(model, torch.zeros(1, n_samples), check_trace=False)
            traced.save(str(tmp))
        else:
            example = torch.zeros(1, *first.input_shape_)
            program = torch.onnx.export(head, (example,), dynamo=True, input_names=["features"], output_names=["proba"],
                                        dynamic_shapes={"features": {0: torch.export.Dim("batch")}}, verbose=False)
            program.save(str(tmp))
    info = {"format": fmt, "labels": [str(c) for c in run.model.classes_], "feature": cfg.features.name,
            "params": params, "sr": sr, "frames": int(frames), "n_samples": int(n_samples), "separate": separation,
            "input": "waveform (batch, n_samples) float32" if fmt == "torchscript" else "features (batch, frames, bins) float32",
            "output": "probabilities (batch, n_labels)"}
    atomic_write_text(out.with_name("export.json"), json.dumps(info, indent=2) + "\n")
    return out


def onnx_features(waveform: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """The ONNX export's front end (``export.json`` recipe): ``(batch, n_samples)`` at ``info["sr"]`` ->
    float32 ``(batch, frames, bins)``."""
    waveform = apply_separation(np.atleast_2d(waveform).astype(np.float32), info["sr"], info.get("separate"))
    S = np.asarray(get_feature(info["feature"]).fn(waveform, sr=info["sr"],
                                                    **info["params"]))
    n, frames = S.shape[-2], info["frames"]
    if n >= frames:
        start = (n - frames) // 2
        return np.ascontiguousarray(S[..., start : start + frames, :])
    return np.pad(S, [(0, 0)] * (S.ndim - 2) + [(0, frames - n), (0, 0)])
