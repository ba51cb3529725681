"""Pretrained weights: the known files, their cache, checked downloads and weights-only loading.

Cache folder: ``cache=`` / ``--cache``, else ``$EARMARK_WEIGHTS_DIR``, else ``~/.cache/earmark/weights``.
A known file lives there under its official name (``Cnn14_mAP=0.431.pth``, ``vgg16-397923af.pth``), or,
for weights published inside an archive, under a name that says where they come from
(``resemblyzer-0.1.4-pretrained.pt``: ``resemblyzer/pretrained.pt`` in the Resemblyzer 0.1.4 wheel).

Checks (:data:`KNOWN_WEIGHTS`): every download is streamed to a temporary file in the cache folder,
and renamed to its final name only when all of these hold; otherwise it is deleted and the download
refused, so the cache never holds half a file:

- the byte count equals the server's ``Content-Length`` (a cut connection is a truncated file);
- the size equals the file's known size;
- its SHA-256 equals the known one. For the torchvision files the first 8 hex digits are in the
  file name (what torchvision itself checks); the full digests, and those of the Zenodo files, are
  the ones recorded by several independent public projects that downloaded them;
- for the Zenodo files, its MD5 equals the one Zenodo publishes for the record (3987831);
- for weights inside a zip archive (``ge2e``: a wheel on PyPI, whose SHA-256 PyPI publishes in its
  index), the checks above are those of the archive; then the member is streamed out of it into another
  temporary file in the cache folder and checked in turn (its size, and its SHA-256, which the wheel's
  ``RECORD`` also lists) before it is renamed to its final name. The archive is deleted in every case:
  only the final file is ever kept.

Loading is weights-only: ``torch.load(path, map_location="cpu", weights_only=True)`` (or
safetensors), so a checkpoint cannot run code. PANNs' checkpoints also hold their training sampler's
NumPy index arrays; NumPy's array, scalar and dtype reconstructors (data, not code) are allowed for
them, under their NumPy 1 and NumPy 2 names. A checkpoint whose keys or shapes differ from the
network's is refused with a message naming the first differences (:func:`load_strict`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import os
import pickle
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from earmark.errors import ConfigError, DataError
from earmark.fsutil import atomic_path, remove_stale_temporaries, temporary_path

__all__ = [
    "KNOWN_WEIGHTS",
    "RANDOM",
    "WeightsFile",
    "cached_path",
    "fetch_weights",
    "file_identity",
    "load_checkpoint",
    "load_strict",
    "resolve_weights",
    "weights_dir",
]

RANDOM = "random"
ENV_VAR = "EARMARK_WEIGHTS_DIR"


@dataclass(frozen=True)
class WeightsFile:
    """A known weights file.

    Attributes
    ----------
    name : str
        Short name (``"cnn14"``), used by ``earmark weights fetch NAME`` and ``weights: NAME``.
    backbone : str
        The backbone it belongs to.
    filename : str
        Official file name, kept in the cache.
    url : str
        Official download address.
    sha256 : str
        Full SHA-256 (lower-case hex).
    size : int or None
        Size in bytes.
    md5 : str or None
        MD5 published by the host (Zenodo), when it publishes one.
    source : str
        Where the weights come from, in words.
    member : str or None
        Path of the weights inside the downloaded zip archive (a wheel); None when the download is the
        weights file itself. With a member, ``url``, ``sha256``, ``size`` and ``md5`` describe the
        archive, and ``filename`` is the name the extracted member is kept under.
    member_sha256 : str or None
        SHA-256 of the member (lower-case hex).
    member_size : int or None
        Size of the member in bytes.
    """

    name: str
    backbone: str
    filename: str
    url: str
    sha256: str
    size: int | None = None
    md5: str | None = None
    source: str = ""
    member: str | None = None
    member_sha256: str | None = None
    member_size: int | None = None

    @property
    def checks(self) -> str:
        """The checks a download of this file passes, in words."""
        parts = []
        if self.size is not None:
            parts.append(f"size {self.size:,} B")
        parts.append(f"sha256 {self.sha256[:12]}...")
        if self.md5:
            parts.append(f"md5 {self.md5[:12]}... (published)")
        if self.member is None:
            return ", ".join(parts)
        inner = []
        if self.member_size is not None:
            inner.append(f"size {self.member_size:,} B")
        if self.member_sha256:
            inner.append(f"sha256 {self.member_sha256[:12]}...")
        return (f"archive {', '.join(parts)}; member {self.member}"
                + (f": {', '.join(inner)}" if inner else " (unchecked)"))

    def _member_file(self) -> "WeightsFile":
        """The expectations on the extracted member, as a file of its own (no MD5)."""
        return WeightsFile(self.name, self.backbone, self.filename, self.url, self.member_sha256 or "",
                           self.member_size, None, self.source)


_ZENODO = "https://zenodo.org/record/3987831/files/"
KNOWN_WEIGHTS: dict[str, WeightsFile] = {w.name: w for w in (
    WeightsFile("cnn14", "cnn14", "Cnn14_mAP=0.431.pth", _ZENODO + "Cnn14_mAP%3D0.431.pth?download=1",
                sha256="0dc499e40e9761ef5ea061ffc77697697f277f6a960894903df3ada000e34b31", size=327_428_481,
                md5="541141fa2ee191a88f24a3219fff024e",
                source="PANNs CNN14, AudioSet mAP 0.431 (Kong et al. 2020), Zenodo record 3987831, CC BY 4.0"),
    WeightsFile("cnn14_16k", "cnn14_16k", "Cnn14_16k_mAP=0.438.pth", _ZENODO + "Cnn14_16k_mAP%3D0.438.pth?download=1",
                sha256="e2ee543a27919542c2ea03eabaa70b24dcd4e6c8e05621de6b67a94e4c5058e6", size=358_668_570,
                md5="362fc5ff18f1d6ad2f6d464b45893f2c",
                source="PANNs CNN14 at 16 kHz, AudioSet mAP 0.438, Zenodo record 3987831, CC BY 4.0"),
    WeightsFile("vgg16", "vgg16", "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
                sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0", size=553_433_881,
                source="torchvision VGG16_Weights.IMAGENET1K_V1 (ImageNet top-1 71.6%)"),
    WeightsFile("resnet50", "resnet50", "resnet50-0676ba61.pth", "https://download.pytorch.org/models/resnet50-0676ba61.pth",
                sha256="0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a", size=102_530_333,
                source="torchvision ResNet50_Weights.IMAGENET1K_V1 (ImageNet top-1 76.1%)"),
    WeightsFile("ge2e", "ge2e", "resemblyzer-0.1.4-pretrained.pt",
                "https://files.pythonhosted.org/packages/d9/b5/d897d5de5b2123a1ad5d32e8e007d83f76582f5c32c60992577263bd7c7e/"
                "Resemblyzer-0.1.4-py3-none-any.whl",
                sha256="8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f", size=15_747_704,
                source="Resemblyzer 0.1.4 GE2E speaker encoder (LibriSpeech + VoxCeleb 1/2), inside its PyPI wheel, "
                       "Apache-2.0",
                member="resemblyzer/pretrained.pt",
                member_sha256="39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
                member_size=17_090_379),
)}


# --------------------------------------------------------------------------- the cache


def weights_dir(cache: str | os.PathLike | None = None) -> Path:
    """The weights cache folder: ``cache``, else ``$EARMARK_WEIGHTS_DIR``, else ``~/.cache/earmark/weights``."""
    if cache is not None and str(cache) != "":
        return Path(cache).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "earmark" / "weights"


def _known(name: str) -> WeightsFile:
    try:
        return KNOWN_WEIGHTS[name]
    except KeyError:
        raise ConfigError(f"unknown weights {name!r}; known: {', '.join(KNOWN_WEIGHTS)} "
                          f"(or give the path of a weights file)") from None


def cached_path(name: str, cache: str | os.PathLike | None = None) -> Path:
    """Where the known weights ``name`` live in the cache (whether or not they are there)."""
    return weights_dir(cache) / _known(name).filename


def resolve_weights(weights: str | os.PathLike | None, *, backbone: str | None = None,
                    cache: str | os.PathLike | None = None) -> Path | None:
    """The file that ``weights`` names, or None for random initialisation.

    Parameters
    ----------
    weights : None, "random", a known name or a path
        A known name (``"cnn14"``) is looked up in the cache, never downloaded here.
    backbone : str, optional
        The backbone the weights are for; a known name of another backbone is an error.
    cache : path, optional
        Cache folder (see :func:`weights_dir`).

    Raises
    ------
    ConfigError
        A known name that is not cached (the message says how to fetch it), a known name of another
        backbone, or a path that does not exist.
    """
    if weights is None or str(weights) == RANDOM:
        return None
    text = str(weights)
    if text in KNOWN_WEIGHTS:
        spec = KNOWN_WEIGHTS[text]
        if backbone is not None and spec.backbone != backbone:
            raise ConfigError(f"weights {text!r} are for backbone {spec.backbone!r}, not {backbone!r}")
        path = weights_dir(cache) / spec.filename
        if not path.is_file():
            by_hand = (f"download {spec.url} to that path" if spec.member is None else
                       f"download {spec.url} and extract its {spec.member} to that path")
            raise ConfigError(f"weights {text!r} are not in the cache ({path}); run `earmark weights fetch {text}` "
                              f"(or {by_hand}), or set `weights: random` for randomly initialised weights")
        return path
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(f"weights {text!r}: no such file, and not a known name ({', '.join(KNOWN_WEIGHTS)}) "
                          f"or 'random'")
    return path


def file_identity(path: str | os.PathLike) -> str:
    """``"<absolute path>|<size>|<mtime_ns>"``: changes whenever the file is replaced or edited."""
    path = Path(path).resolve()
    st = path.stat()
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


# --------------------------------------------------------------------------- downloading


def _digests(path: Path) -> tuple[str, str, int]:
    sha, md5, n = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
            n += len(block)
    return sha.hexdigest(), md5.hexdigest(), n


def _check(what: str, spec: WeightsFile, sha256: str, md5: str, size: int) -> None:
    """Raise DataError unless the size and digests are those of ``spec``."""
    if spec.size is not None and size != spec.size:
        raise DataError(f"{what}: {size:,} bytes, expected {spec.size:,}; refused")
    if sha256 != spec.sha256.lower():
        raise DataError(f"{what}: sha256 {sha256} does not match the expected {spec.sha256}; refused")
    if spec.md5 and md5 != spec.md5.lower():
        raise DataError(f"{what}: md5 {md5} does not match the published {spec.md5}; refused")


@contextlib.contextmanager
def _progress(enabled: bool, total: int | None, label: str) -> Iterator[Any]:
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import (BarColumn, DownloadColumn, Progress, TimeRemainingColumn,
                               TransferSpeedColumn)

    with Progress("[bold]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), transient=False) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def fetch_weights(name: str, *, cache: str | os.PathLike | None = None, url: str | None = None,
                  sha256: str | None = None, progress: bool = False, timeout: float = 60.0) -> Path:
    """Download the known weights ``name`` into the cache (checked; see the module docstring).

    A file already in the cache that passes the checks is kept; one that fails them is downloaded
    again (replaced only by a file that passes). For weights inside an archive (``member``), the
    archive is downloaded and checked, the member streamed out of it and checked, and only the member
    is kept, under ``filename``; the archive is deleted, also when anything fails.

    Parameters
    ----------
    name : str
        A key of :data:`KNOWN_WEIGHTS`.
    cache : path, optional
        Cache folder (see :func:`weights_dir`).
    url : str, optional
        Download from here instead (a mirror, a local server); the file is checked as the official one.
    sha256 : str, optional
        Expect this SHA-256 instead of the known file's (and skip its known size and MD5): for a
        mirror serving another build of the weights. For weights inside an archive it replaces the
        archive's SHA-256, and the member's known size and SHA-256 are skipped too; a file already in
        the cache cannot be checked then, and is downloaded again.
    progress : bool
        Show a progress bar (bytes, speed, time left).
    timeout : float
        Seconds without data before the connection is given up.

    Returns
    -------
    Path
        The cached file.

    Raises
    ------
    ConfigError
        Unknown name, or a malformed ``sha256``.
    DataError
        No connection (the message names the URL and where to put the file), an HTTP error, a
        truncated download, a size / checksum mismatch, or, for weights inside an archive, a download
        that is not a readable zip archive or lacks the member (the message names the URL and the
        member). Nothing is left in the cache.
    """
    known = _known(name)
    spec = known
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ConfigError(f"--sha256: expected 64 hex digits, got {sha256!r}")
        spec = dataclasses.replace(known, sha256=sha256, size=None, md5=None, member_sha256=None, member_size=None)
    url = url or known.url
    folder = weights_dir(cache)
    target = folder / known.filename
    if target.is_file() and (spec.member is None or spec.member_sha256):
        with contextlib.suppress(DataError):
            _check(str(target), spec if spec.member is None else spec._member_file(), *_digests(target))
            return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"weights cache {folder}: cannot create it ({exc.strerror or exc})") from None
    remove_stale_temporaries(folder)  # what a killed download left (a CNN14 is 300 MB)
    # The download is only ever kept by the rename below; the temporary name is deleted whatever happens.
    with temporary_path(folder, known.filename) as tmp:
        with open(tmp, "wb") as out:
            sha, md5, received, expected = _download(url, out, target, timeout, progress, name, spec.member)
            out.flush()
            os.fsync(out.fileno())
        what = f"{known.filename} from {url}" if spec.member is None else f"archive {url}"
        if expected is not None and received != expected:
            raise DataError(f"{what}: truncated download ({received:,} of {expected:,} bytes); refused, "
                            f"nothing kept — run the command again")
        _check(what, spec, sha, md5, received)
        if spec.member is None:
            os.replace(tmp, target)
        else:
            _extract_member(tmp, spec, url, target)
    return target


def _extract_member(archive: Path, spec: WeightsFile, url: str, target: Path) -> None:
    """Stream ``spec.member`` out of the zip ``archive`` into ``target``: a temporary file, checked, renamed."""
    member = str(spec.member)
    what = f"{member} in {url}"
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as out:
            sha, md5, n = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
            try:
                with zipfile.ZipFile(archive) as zf:
                    try:
                        info = zf.getinfo(member)
                    except KeyError:
                        raise DataError(f"archive {url}: no member {member!r} in it ({len(zf.namelist())} other "
                                        f"files); refused, nothing kept") from None
                    # The member's declared size bounds what is read (zipfile stops there and checks the CRC).
                    if spec.member_size is not None and info.file_size != spec.member_size:
                        raise DataError(f"{what}: {info.file_size:,} bytes, expected {spec.member_size:,}; refused")
                    with zf.open(info) as src:
                        for block in iter(lambda: src.read(1 << 20), b""):
                            out.write(block)
                            sha.update(block)
                            md5.update(block)
                            n += len(block)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                raise DataError(f"archive {url}: not a readable zip archive ({type(exc).__name__}: {exc}); "
                                f"refused, nothing kept") from None
            out.flush()
            os.fsync(out.fileno())
        if spec.member_sha256:
            _check(what, spec._member_file(), sha.hexdigest(), md5.hexdigest(), n)


def _download(url: str, out: Any, target: Path, timeout: float, progress: bool, name: str,
              member: str | None = None) -> tuple[str, str, int, int | None]:
    """Stream ``url`` into ``out``; returns (sha256, md5, bytes received, Content-Length or None)."""
    put = f"put it at {target}" if member is None else f"extract its {member} to {target}"
    offline = (f"; download {url} by other means and {put} "
               f"(or give a mirror with --url / url=)")
    request = urllib.request.Request(url, headers={"User-Agent": "earmark"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DataError(f"cannot download weights {name!r}: {url} answered HTTP {exc.code} {exc.reason}{offline}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"cannot download weights {name!r}: no connection to {url} ({reason}){offline}") from None
    sha, md5, received = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        try:
            with _progress(progress, expected, f"fetch {name}") as advance:
                while True:
                    block = response.read(1 << 20)
                    if not block:
                        break
                    out.write(block)
                    sha.update(block)
                    md5.update(block)
                    received += len(block)
                    advance(len(block))
        except (http.client.IncompleteRead, OSError, http.client.HTTPException) as exc:
            raise DataError(f"{target.name} from {url}: download interrupted after {received:,} bytes "
                            f"({type(exc).__name__}: {exc}); refused, nothing kept{offline}") from None
    return sha.hexdigest(), md5.hexdigest(), received, expected


# --------------------------------------------------------------------------- loading


def _numpy_data_globals() -> list[Any]:
    """NumPy's array / scalar / dtype reconstructors, under their NumPy 2 and NumPy 1 names."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1
        from numpy.core import multiarray  # type: ignore[no-redef]
    out: list[Any] = [np.ndarray, np.dtype]
    for fn in (multiarray._reconstruct, multiarray.scalar):
        out += [(fn, f"numpy.core.multiarray.{fn.__name__}"), (fn, f"numpy._core.multiarray.{fn.__name__}")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return out


def load_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state_dict in a weights file, loaded without running any code from it.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(path, map_location="cpu", weights_only=True)`` (NumPy arrays allowed, see the module
    docstring). A ``{"model": state_dict, ...}`` (PANNs), ``{"state_dict": ...}`` or ``{"model_state": ...}``
    (Resemblyzer) wrapper is unwrapped.

    Returns
    -------
    dict of str to torch.Tensor
        On the CPU.

    Raises
    ------
    DataError
        Missing or unreadable file, a pickle that needs anything but tensors, containers and NumPy
        arrays (refused: it could run code), or something other than a state_dict inside.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise DataError(f"{path}: reading .safetensors needs the 'safetensors' package (pip install safetensors)") from None
        try:
            obj: Any = load_file(str(path), device="cpu")
        except Exception as exc:
            raise DataError(f"{path}: not a readable safetensors file ({exc})") from None
    else:
        try:
            with torch.serialization.safe_globals(_numpy_data_globals()):
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            detail = next((line.strip() for line in str(exc).splitlines() if "Unsupported" in line or "global" in line.lower()),
                          str(exc).strip().splitlines()[-1] if str(exc).strip() else "")
            raise DataError(f"{path}: refused — not a weights-only checkpoint: loading it would run code or build "
                            f"objects earmark does not allow ({detail[:200]})") from None
        except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from None
    for key in ("model", "state_dict", "model_state"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping):
        raise DataError(f"{path}: expected a state_dict (a mapping of names to tensors), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise DataError(f"{path}: expected a state_dict of tensors; {len(bad)} entries are not tensors "
                        f"(e.g. {bad[0]!r}: {type(obj[bad[0]]).__name__})")
    return dict(obj)


def _first(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def load_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` into ``module`` requiring the same keys and shapes.

    Only ``*.num_batches_tracked`` entries may be missing (files written by old PyTorch versions);
    they keep the module's values.

    Raises
    ------
    DataError
        ``"<source>: 3 keys missing (a, b, c), 1 unexpected (x), shapes differ: fc1.weight expected
        (2048, 2048) got (1024, 2048)"``, with the first few of each.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k} expected {tuple(own[k].shape)} got {tuple(state_dict[k].shape)}"
              for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} key{'s' if len(missing) > 1 else ''} missing ({_first(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_first(unexpected)})")
        if shapes:
            parts.append(f"shapes differ: {_first(shapes)}")
        arch = getattr(module, "arch", type(module).__name__)
        raise DataError(f"{source}: does not match {arch}: " + ", ".join(parts))
    merged = {k: (state_dict[k] if k in state_dict else own[k]) for k in own}
    module.load_state_dict(merged, strict=True)
