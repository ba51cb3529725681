"""``ge2e``: the GE2E speaker encoder of Resemblyzer (Wan et al., 2018), with its own mel front end.

A 3-layer LSTM trained with the generalised end-to-end loss for speaker verification (LibriSpeech and
VoxCeleb 1/2); its 256-d embedding describes the voice (timbre, register, gender), not what is said.
The modules and parameter names are those of ``VoiceEncoder`` in Resemblyzer 0.1.4
(``resemblyzer/voice_encoder.py``), so its checkpoint ``pretrained.pt`` (a dict whose
``"model_state"`` is the state_dict; shipped inside the Resemblyzer wheel on PyPI) loads with strict
key matching::

    similarity_weight           (1,)          GE2E loss scale w (training only; unused for embeddings)
    similarity_bias             (1,)          GE2E loss offset b (training only; unused for embeddings)
    lstm.weight_ih_l0           (1024, 40)    LSTM(40, 256, 3 layers, batch_first), gates i, f, g, o
    lstm.weight_hh_l0           (1024, 256)
    lstm.bias_ih_l0, bias_hh_l0 (1024,)
    lstm.*_l1, lstm.*_l2                      layers 2 and 3 (input 256)
    linear.weight, linear.bias  (256, 256), (256,)

The front end (16 kHz only, nothing learnt, not in the state_dict): per clip, volume normalisation to
-30 dBFS, increase only (``dBFS = 10 log10(mean(y**2))``; a quieter clip is scaled up to -30 dBFS, a
louder one is left as it is, a silent one stays silent); then a power mel spectrogram as Resemblyzer's
``librosa.feature.melspectrogram(y, sr=16000, n_fft=400, hop_length=160, n_mels=40)``: centred frames
of 25 ms every 10 ms with reflect padding (the librosa 0.6 / 0.7 default the weights were trained with;
librosa >= 0.10 pads with zeros), periodic Hann window, ``|STFT|**2``, 40 Slaney mel filters 0-8000 Hz
(:func:`~earmark.features.dsp.mel_filters`). It is not logarithmic.

Partials (Resemblyzer's ``compute_partial_slices``, ``rate=1.3``, ``min_coverage=0.75``): windows of
160 frames (1.6 s) every 77 frames (1 / 1.3 s); the last one is dropped when less than 75 % of it lies
inside the clip, unless it is the only one, and the waveform is zero-padded to the end of the last
one, so any clip of at least one sample gives at least one partial (:func:`partial_slices`). Each
partial gives ``relu(linear(h_n of the last LSTM layer))``, L2-normalised; the clip's embedding (cut
``embedding``, the only one) is the mean of its partials' embeddings, L2-normalised: 256-d, every
entry >= 0, unit norm. ``embed(x, partial=..., rate=..., weighting=...)`` takes other partials
(seconds, partials per second; :func:`partial_frames`) and can weight each partial's embedding by the
power of its samples (``weighting="energy"``; the mean is unweighted, ``"equal"``, as in Resemblyzer):
on sung 3 s clips of voices not heard in training, partials of 0.6 s five times a second, weighted by
energy, tell gender better than Resemblyzer's 1.6 s (BENCHMARKS.md).

Left out: Resemblyzer's voice-activity trimming of long silences (``trim_long_silences``, webrtcvad, a
C extension): it is made for speech, and pauses are part of music clips. Its resampling is the
caller's (earmark loads audio at the feature's rate).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from earmark.checks import is_number
from earmark.errors import ConfigError, DataError
from earmark.features.dsp import mel_filters
from earmark.models.pretrained.base import BACKBONES, Backbone, BackboneSpec

__all__ = ["WEIGHTINGS", "Ge2e", "check_weighting", "normalize_volume", "partial_frames", "partial_slices"]

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms: samples per mel frame
N_MELS = 40
HIDDEN = 256
N_LAYERS = 3
EMBEDDING_DIM = 256
PARTIAL_S = 1.6  # seconds: 160 mel frames
RATE = 1.3  # partials per second
MIN_COVERAGE = 0.75
TARGET_DBFS = -30.0


def partial_frames(partial: float = PARTIAL_S, rate: float = RATE) -> tuple[int, int]:
    """Length and step in mel frames (10 ms) of partials of ``partial`` seconds, ``rate`` per second.

    Resemblyzer's are 1.6 s (160 frames) at 1.3 per second (a step of ``round(16000 / 1.3 / 160)`` = 77
    frames). Shorter partials give more of them per clip to average; the encoder was trained on 1.6 s.

    Raises
    ------
    ConfigError
        ``partial`` not between 0.1 and 10 s, or ``rate`` not between ``1 / partial`` (partials that
        just touch: they may overlap, never leave a gap) and 100 per second (a step of one frame).
    """
    if not is_number(partial) or not 0.1 <= partial <= 10.0:
        raise ConfigError(f"ge2e: partial must be a length in seconds from 0.1 to 10 (Resemblyzer: {PARTIAL_S}), "
                          f"got {partial!r}")
    frames = int(round(partial * SAMPLE_RATE / HOP))
    lowest, highest = SAMPLE_RATE / HOP / frames, SAMPLE_RATE / HOP
    if not is_number(rate) or not lowest <= rate <= highest:
        raise ConfigError(f"ge2e: rate must be {lowest:.4g} to {highest:g} partials per second for partials "
                          f"of {partial} s (a step of 1 to {frames} frames; Resemblyzer: {RATE}), got {rate!r}")
    return frames, min(frames, int(round((SAMPLE_RATE / rate) / HOP)))


WEIGHTINGS = ("equal", "energy")


def check_weighting(weighting: str) -> None:
    """``weighting`` must be one of :data:`WEIGHTINGS` (how the partials' embeddings are averaged)."""
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"ge2e: weighting must be one of {', '.join(WEIGHTINGS)} (Resemblyzer: equal), "
                          f"got {weighting!r}")


def partial_slices(n_samples: int, rate: float = RATE, min_coverage: float = MIN_COVERAGE,
                   partial: float = PARTIAL_S) -> list[tuple[int, int]]:
    """Mel-frame ranges of the partials of a clip of ``n_samples`` at 16 kHz (Resemblyzer's rule).

    Parameters
    ----------
    n_samples : int
        Length of the clip, >= 1.
    rate : float
        Partials per second (Resemblyzer: 1.3); see :func:`partial_frames`.
    min_coverage : float
        In (0, 1]: the last partial is kept when at least this share of its samples lies inside the
        clip (or when it is the only one).
    partial : float
        Length of a partial in seconds (Resemblyzer: 1.6); see :func:`partial_frames`.

    Returns
    -------
    list of (start, stop)
        Mel frames ``[start, stop)``, ``stop - start = round(100 partial)``; samples
        ``[160 start, 160 stop)``, which may reach past the clip (zero-pad it to ``160 * stop`` of the
        last one).

    Raises
    ------
    DataError
        ``n_samples`` < 1, or ``min_coverage`` out of range.
    ConfigError
        ``partial`` or ``rate`` out of range (:func:`partial_frames`).
    """
    n_samples = int(n_samples)
    if n_samples < 1:
        raise DataError(f"ge2e partials: expected a clip of at least 1 sample, got {n_samples}")
    if not 0.0 < min_coverage <= 1.0:
        raise DataError(f"ge2e partials: min_coverage must be in (0, 1], got {min_coverage!r}")
    length, frame_step = partial_frames(partial, rate)
    n_frames = math.ceil((n_samples + 1) / HOP)
    steps = max(1, n_frames - length + frame_step + 1)
    slices = [(i, i + length) for i in range(0, steps, frame_step)]
    coverage = (n_samples - slices[-1][0] * HOP) / (length * HOP)
    if coverage < min_coverage and len(slices) > 1:
        slices.pop()
    return slices


def normalize_volume(x: torch.Tensor, target_dbfs: float = TARGET_DBFS) -> torch.Tensor:
    """Scale each clip of ``x`` (``(batch, n_samples)``) up to ``target_dbfs``, never down.

    Resemblyzer's ``normalize_volume(wav, -30, increase_only=True)``: ``dBFS = 10 log10(mean(y**2))``;
    a clip below the target is multiplied by ``10 ** ((target - dBFS) / 20)``, a louder one is returned
    as it is. An all-zero clip stays all zero (no division by zero).
    """
    power = x.pow(2).mean(dim=-1, keepdim=True)
    target = 10.0 ** (target_dbfs / 10.0)
    quiet = (power > 0) & (power <= target)
    gain = torch.where(quiet, torch.sqrt(target / torch.where(quiet, power, torch.ones_like(power))),
                       torch.ones_like(power))
    return x * gain


class Ge2e(Backbone):
    """Resemblyzer's GE2E voice encoder on 16 kHz waveforms; the embedding is 256-d, non-negative, unit norm.

    Notes
    -----
    Any clip of at least one sample works (:attr:`min_samples` is 1): the partials zero-pad the clip
    themselves (a clip shorter than 1.2 s gives one partial of 1.6 s). All clips of a batch have the same
    length, so the partials are computed once per batch. :meth:`forward` takes mel spectrograms, as
    ``VoiceEncoder.forward``.
    """

    def __init__(self):
        super().__init__()
        self.arch, self.cut = "ge2e", "embedding"
        self.sample_rate, self.embedding_dim = SAMPLE_RATE, EMBEDDING_DIM
        self.min_samples = 1
        # GE2E's learnt similarity scale and offset (initialised as in the paper): part of the
        # checkpoint, used by the training loss only.
        self.similarity_weight = nn.Parameter(torch.tensor([10.0]))
        self.similarity_bias = nn.Parameter(torch.tensor([-5.0]))
        self.lstm = nn.LSTM(N_MELS, HIDDEN, N_LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN, EMBEDDING_DIM)
        melW = mel_filters(SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=SAMPLE_RATE / 2, htk=False,
                           norm="slaney")
        self.register_buffer("mel_basis", torch.from_numpy(melW), persistent=False)  # (40, 201)
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True), persistent=False)

    def mel(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_samples)`` -> power mel spectrogram ``(batch, 1 + n_samples // 160, 40)`` (not log).

        Reflect padding needs ``n_samples > 200``.
        """
        spec = torch.stft(x, n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, window=self.window, center=True,
                          pad_mode="reflect", return_complex=True)
        power = torch.view_as_real(spec).pow(2).sum(-1)  # (batch, 201, n_frames)
        return torch.matmul(self.mel_basis, power).transpose(1, 2)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Partial embeddings: mels ``(batch, n_frames, 40)`` -> ``(batch, 256)``, ``relu(linear(h_n))`` L2-normalised."""
        _, (hidden, _) = self.lstm(mels)
        return F.normalize(F.relu(self.linear(hidden[-1])), dim=1)

    def _embed(self, x: torch.Tensor, partial: float = PARTIAL_S, rate: float = RATE,
               weighting: str = "equal") -> torch.Tensor:
        """Mean of the partials' embeddings, L2-normalised; ``partial`` seconds each, ``rate`` per second.

        ``weighting="energy"`` weights each partial by the mean power of its samples (a partial where
        the voice pauses counts little; a silent clip falls back to equal weights).
        """
        check_weighting(weighting)
        x = normalize_volume(x)
        n = x.shape[-1]
        slices = partial_slices(n, rate=rate, partial=partial)
        end = slices[-1][1] * HOP
        if end > n:
            x = F.pad(x, (0, end - n))
        mel = self.mel(x)
        parts = torch.stack([mel[:, start:stop] for start, stop in slices], dim=1)  # (batch, partials, frames, 40)
        batch, n_parts, length = parts.shape[:3]
        emb = self(parts.reshape(batch * n_parts, length, N_MELS)).reshape(batch, n_parts, -1)
        if weighting == "equal":
            return F.normalize(emb.mean(dim=1), dim=1)
        power = torch.stack([x[:, start * HOP:stop * HOP].pow(2).mean(dim=-1) for start, stop in slices], dim=1)
        power = torch.where(power.sum(dim=1, keepdim=True) > 0, power, torch.ones_like(power))
        return F.normalize((emb * power.unsqueeze(-1)).sum(dim=1), dim=1)


def _ge2e(cut: str) -> Ge2e:
    return Ge2e()


BACKBONES.register("ge2e", BackboneSpec(
    "ge2e", _ge2e, ("embedding",), SAMPLE_RATE, "ge2e",
    "Resemblyzer GE2E speaker encoder (LibriSpeech + VoxCeleb), 16 kHz mel 40 (window 400, hop 160), "
    "LSTM 3x256 on 1.6 s partials -> 256"))
