"""``cnn14`` and ``cnn14_16k``: PANNs' CNN14 (Kong et al., 2020), with its own log-mel front end.

The modules and parameter names are those of ``Cnn14`` / ``Cnn14_16k`` in ``audioset_tagging_cnn``
(``pytorch/models.py``) and of torchlibrosa's ``Spectrogram`` / ``LogmelFilterBank``, so the
official checkpoints (``Cnn14_mAP=0.431.pth``, ``Cnn14_16k_mAP=0.438.pth``: a dict whose ``"model"``
is the state_dict) load with strict key matching::

    spectrogram_extractor.stft.conv_real.weight   (n_fft // 2 + 1, 1, n_fft)   DFT x periodic Hann
    spectrogram_extractor.stft.conv_imag.weight   (n_fft // 2 + 1, 1, n_fft)
    logmel_extractor.melW                         (n_fft // 2 + 1, 64)         librosa (Slaney) mel filters
    bn0.*                                         BatchNorm2d(64) over the mel bands
    conv_block1..6.{conv1,conv2}.weight           3x3, no bias; channels 64, 128, 256, 512, 1024, 2048
    conv_block1..6.{bn1,bn2}.*
    fc1.*                                         Linear(2048, 2048)
    fc_audioset.*                                 Linear(2048, 527)

The front end: a centred STFT (reflect padding) as two strided ``conv1d`` whose kernels are the
real and imaginary DFT basis times a periodic Hann window, power spectrum, mel projection and
``10 log10(max(1e-10, S))`` (``ref=1``, no ``top_db``). The parameter-free SpecAugment and mixup
layers of PANNs (training only) are left out.

Forward as PANNs: bn0 over mel bands, six conv blocks (2x2 average pooling after blocks 1-5, none
after block 6, dropout 0.2 between blocks), mean over frequency, max + mean over time, dropout 0.5,
``relu(fc1)``: that is the 2048-d embedding (cut ``fc1``, the only one). ``fc_audioset`` (AudioSet
tagging head) is kept for the checkpoint and :meth:`Cnn14.forward`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from earmark.features.dsp import mel_filters
from earmark.models.pretrained.base import BACKBONES, Backbone, BackboneSpec

__all__ = ["Cnn14", "ConvBlock", "LogmelFilterBank", "STFT", "Spectrogram", "stft_kernels"]

# The 10-s AudioSet clips of PANNs; 527 AudioSet classes.
N_CLASSES = 527


def stft_kernels(n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary DFT kernels times a periodic Hann window, as torchlibrosa's ``STFT``.

    Returns
    -------
    real, imag : torch.Tensor, shape (n_fft // 2 + 1, 1, n_fft), float32
        ``real[k, 0, n] = w[n] cos(2 pi k n / n_fft)``, ``imag[k, 0, n] = -w[n] sin(2 pi k n / n_fft)``
        (the ``exp(-2 pi i k n / N)`` convention of ``numpy.fft``), ``w`` the periodic Hann window
        (``scipy.signal.get_window("hann", n_fft, fftbins=True)``).
    """
    n = np.arange(n_fft)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)
    k = np.arange(n_fft // 2 + 1)
    # k * n reduced mod n_fft keeps the phase exact in float64 for large FFTs.
    phase = 2.0 * np.pi * ((k[:, None] * n[None, :]) % n_fft) / n_fft
    real = np.cos(phase) * window[None, :]
    imag = -np.sin(phase) * window[None, :]
    as_kernel = lambda a: torch.from_numpy(a.astype(np.float32)).unsqueeze(1)  # noqa: E731
    return as_kernel(real), as_kernel(imag)


class STFT(nn.Module):
    """Centred STFT as two strided ``conv1d`` (torchlibrosa's ``STFT``; parameters ``conv_real``, ``conv_imag``).

    Parameters
    ----------
    n_fft : int
        Frame length (also the window length).
    hop_length : int
        Frame step.
    pad_mode : {"reflect", "constant"}
        How the ``n_fft // 2`` samples added at each end are filled.
    """

    def __init__(self, n_fft: int, hop_length: int, pad_mode: str = "reflect"):
        super().__init__()
        self.n_fft, self.hop_length, self.pad_mode = n_fft, hop_length, pad_mode
        bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, kernel_size=n_fft, stride=hop_length, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, kernel_size=n_fft, stride=hop_length, bias=False)
        real, imag = stft_kernels(n_fft)
        with torch.no_grad():
            self.conv_real.weight.copy_(real)
            self.conv_imag.weight.copy_(imag)
        self.requires_grad_(False)  # torchlibrosa's freeze_parameters=True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, n_samples)`` -> real and imaginary parts, each ``(batch, 1, n_frames, n_fft // 2 + 1)``.

        ``n_frames = 1 + n_samples // hop_length``; reflect padding needs ``n_samples > n_fft // 2``.
        """
        x = F.pad(x[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode=self.pad_mode)
        real = self.conv_real(x)[:, None].transpose(2, 3)
        imag = self.conv_imag(x)[:, None].transpose(2, 3)
        return real, imag


class Spectrogram(nn.Module):
    """Power spectrogram (torchlibrosa's ``Spectrogram``, power 2): ``(batch, n)`` -> ``(batch, 1, n_frames, n_fft // 2 + 1)``."""

    def __init__(self, n_fft: int, hop_length: int, pad_mode: str = "reflect"):
        super().__init__()
        self.stft = STFT(n_fft, hop_length, pad_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(x)
        return real * real + imag * imag


class LogmelFilterBank(nn.Module):
    """Mel projection and dB (torchlibrosa's ``LogmelFilterBank``; parameter ``melW``).

    ``10 log10(max(amin, S @ melW)) - 10 log10(max(amin, ref))``, ``top_db=None``.

    Parameters
    ----------
    sr, n_fft, n_mels, fmin, fmax :
        Mel filters as ``librosa.filters.mel`` (Slaney scale and area normalisation).
    ref, amin : float
        dB reference and floor.
    """

    def __init__(self, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, ref: float = 1.0,
                 amin: float = 1e-10):
        super().__init__()
        melW = mel_filters(sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False, norm="slaney")
        self.melW = nn.Parameter(torch.from_numpy(np.ascontiguousarray(melW.T)), requires_grad=False)
        self.ref, self.amin = float(ref), float(amin)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        """``(..., n_fft // 2 + 1)`` power -> ``(..., n_mels)`` dB."""
        mel = torch.matmul(power, self.melW)
        return 10.0 * torch.log10(mel.clamp_min(self.amin)) - 10.0 * math.log10(max(self.amin, self.ref))


class ConvBlock(nn.Module):
    """Two 3x3 convolutions (no bias) with batch norm and ReLU, then average pooling."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        for conv in (self.conv1, self.conv2):
            nn.init.xavier_uniform_(conv.weight)  # PANNs' init_layer

    def forward(self, x: torch.Tensor, pool_size: tuple[int, int] = (2, 2)) -> torch.Tensor:
        x = F.relu_(self.bn1(self.conv1(x)))
        x = F.relu_(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool_size)


class Cnn14(Backbone):
    """PANNs' CNN14 on waveforms; the embedding is ``relu(fc1)`` (2048-d).

    Parameters
    ----------
    sample_rate, window_size, hop_size, mel_bins, fmin, fmax :
        The log-mel front end (CNN14: 32000, 1024, 320, 64, 50, 14000; CNN14_16k: 16000, 512, 160,
        64, 50, 8000).
    arch : str
        Registered name.

    Notes
    -----
    Input ``(batch, n_samples)``; ``n_frames = 1 + n_samples // hop_size`` must be >= 32 (five 2x2
    poolings), so :attr:`min_samples` is ``31 * hop_size`` (0.31 s).
    """

    def __init__(self, sample_rate: int, window_size: int, hop_size: int, mel_bins: int, fmin: float,
                 fmax: float, arch: str = "cnn14"):
        super().__init__()
        self.arch, self.cut = arch, "fc1"
        self.sample_rate, self.embedding_dim = int(sample_rate), 2048
        self.min_samples = 31 * hop_size
        self.spectrogram_extractor = Spectrogram(window_size, hop_size, pad_mode="reflect")
        self.logmel_extractor = LogmelFilterBank(sample_rate, window_size, mel_bins, fmin, fmax)
        self.bn0 = nn.BatchNorm2d(mel_bins)
        channels = (1, 64, 128, 256, 512, 1024, 2048)
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", ConvBlock(channels[i], channels[i + 1]))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, N_CLASSES)
        for fc in (self.fc1, self.fc_audioset):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)

    def logmel(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_samples)`` -> log-mel ``(batch, 1, n_frames, mel_bins)`` in dB (before ``bn0``)."""
        return self.logmel_extractor(self.spectrogram_extractor(x))

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.logmel(x).transpose(1, 3)
        x = self.bn0(x).transpose(1, 3)
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x, pool_size=(2, 2) if i < 6 else (1, 1))
            x = F.dropout(x, p=0.2, training=self.training)
        x = x.mean(dim=3)
        x = x.amax(dim=2) + x.mean(dim=2)
        x = F.dropout(x, p=0.5, training=self.training)
        return F.relu_(self.fc1(x))

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """As PANNs: ``{"clipwise_output": (batch, 527) sigmoid, "embedding": (batch, 2048)}``."""
        emb = self._features(x)
        return {"clipwise_output": torch.sigmoid(self.fc_audioset(emb)),
                "embedding": F.dropout(emb, p=0.5, training=self.training)}


def _cnn14(cut: str) -> Cnn14:
    return Cnn14(32000, 1024, 320, 64, 50, 14000, arch="cnn14")


def _cnn14_16k(cut: str) -> Cnn14:
    return Cnn14(16000, 512, 160, 64, 50, 8000, arch="cnn14_16k")


BACKBONES.register("cnn14", BackboneSpec(
    "cnn14", _cnn14, ("fc1",), 32000, "cnn14",
    "PANNs CNN14 (AudioSet), 32 kHz log-mel 64 (window 1024, hop 320, 50-14000 Hz) -> 2048"))
BACKBONES.register("cnn14_16k", BackboneSpec(
    "cnn14_16k", _cnn14_16k, ("fc1",), 16000, "cnn14_16k",
    "PANNs CNN14_16k (AudioSet), 16 kHz log-mel 64 (window 512, hop 160, 50-8000 Hz) -> 2048"))
