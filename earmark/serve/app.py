"""A small web app over a trained run: a page to drop audio on, and a JSON endpoint for programs.

::

    GET  /               the page (drag-and-drop or file input -> top-k bars + spectrogram)
    GET  /healthz        {"status": "ok"}
    GET  /api/info       the run: model, features, labels, limits
    GET  /api/openapi.json  the API's OpenAPI schema
    POST /api/predict    multipart/form-data with a file field ``file`` -> top-k labels and probabilities;
                         ``?spectrogram=true`` adds the log-mel spectrogram as a base64 PNG

The model is loaded once, when the app is created. Every prediction goes through
:func:`earmark.predict.clip_proba` (windows and aggregation as ``earmark predict``). An upload is
streamed into a file inside a fresh ``tempfile.TemporaryDirectory`` (deleted after the request),
its size checked while it is read; the client's file name is shown back, never used as a path.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
import threading
import time
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from earmark.checks import is_int, is_number
from earmark.errors import AudioDecodeError, ConfigError, DataError

__all__ = ["create_app"]

_MB = 1024 * 1024
_BODY_SLACK = 64 * 1024  # bytes of multipart framing (boundaries, part headers, small fields) allowed beyond the file
_SPECTROGRAM_SR = 22050
_NAME_MAX = 200


class UploadError(Exception):
    """A request the app refuses, with its HTTP status and a message for the person sending it."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message
        super().__init__(message)


def display_name(raw: str | None) -> str:
    """The client's file name reduced to something safe to show: its last path component, no
    control characters, at most 200 characters; ``"upload"`` when nothing is left. Never a path."""
    name = re.split(r"[\\/]", raw or "")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if name in ("", ".", ".."):
        return "upload"
    return name[:_NAME_MAX]


def _suffix(name: str) -> str:
    """A harmless extension for the temporary file (``.wav``), or none: letters and digits only."""
    m = re.search(r"\.([A-Za-z0-9]{1,8})$", name)
    return "." + m.group(1).lower() if m else ""


class _FilePart:
    """Callbacks for python-multipart's streaming parser that keep the first ``file`` field.

    Its bytes go straight to ``dest_dir / ("upload" + suffix)``; every other field is read and
    dropped. Raises :class:`UploadError` (413) as soon as the file passes ``limit`` bytes.
    """

    def __init__(self, dest_dir: Path, limit: int):
        self.dest_dir = dest_dir
        self.limit = limit
        self.raw_name: str | None = None
        self.path: Path | None = None
        self.size = 0
        self._fh = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._writing = False

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self._begin, "on_header_field": self._field, "on_header_value": self._value,
                "on_header_end": self._header_end, "on_headers_finished": self._headers_done,
                "on_part_data": self._data, "on_part_end": self._end}

    def _begin(self) -> None:
        self._disposition = b""

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_done(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._disposition)
        is_file = options.get(b"name") == b"file" and b"filename" in options
        self._writing = is_file and self.path is None
        if self._writing:
            self.raw_name = options[b"filename"].decode("utf-8", "replace")
            self.path = self.dest_dir / ("upload" + _suffix(display_name(self.raw_name)))
            self._fh = open(self.path, "xb")  # noqa: SIM115  (closed in _end / close: it spans callbacks)

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._writing:
            return
        self.size += end - start
        if self.size > self.limit:
            raise UploadError(413, f"upload too large: {display_name(self.raw_name)} is more than "
                                   f"{_mb(self.limit)} MB, the limit of this server (--max-mb)")
        self._fh.write(data[start:end])

    def _end(self) -> None:
        if self._writing:
            self._fh.close()
            self._fh = None
            self._writing = False

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / _MB:g}"


async def receive_upload(request: Request, dest_dir: Path, limit: int) -> tuple[Path, str, int]:
    """Stream a multipart request's ``file`` field into ``dest_dir``; ``(path, display name, size)``.

    Raises
    ------
    UploadError
        413 when the declared or the streamed size passes ``limit`` (checked while reading), 415
        for a body that is not ``multipart/form-data``, 400 for a missing ``file`` field or an empty file.
    """
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        shown = ctype.decode("latin-1") or "no content type"
        raise UploadError(415, f"expected a multipart/form-data upload with a file field named 'file', got {shown}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + _BODY_SLACK:
        raise UploadError(413, f"upload too large: {int(declared) / _MB:.1f} MB sent, the limit of this server "
                               f"is {_mb(limit)} MB (--max-mb)")

    part = _FilePart(dest_dir, limit)
    parser = MultipartParser(params[b"boundary"], part.callbacks())
    total = 0
    from starlette.requests import ClientDisconnect

    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit + _BODY_SLACK:
                raise UploadError(413, f"upload too large: more than {_mb(limit)} MB, the limit of this server (--max-mb)")
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise UploadError(400, f"malformed multipart upload: {exc}") from None
    except ClientDisconnect:
        raise UploadError(400, "the upload was interrupted before it ended") from None
    finally:
        part.close()
    if part.path is None:
        raise UploadError(400, "expected a file field named 'file' in the multipart upload")
    name = display_name(part.raw_name)
    if part.size == 0:
        raise UploadError(400, f"empty upload: {name} has 0 bytes")
    return part.path, name, part.size


def create_app(
    run_dir: str | os.PathLike,
    *,
    max_mb: float = 50,
    top_k: int = 5,
    warmup: bool = True,
    tmp_root: str | os.PathLike | None = None,
) -> FastAPI:
    """The web app of a trained run (a ``fastapi.FastAPI``, served by uvicorn).

    Parameters
    ----------
    run_dir : path
        Run folder written by ``earmark train``, or a fusion of runs (``earmark fuse``); loaded once,
        here, with :func:`earmark.fuse.load_run`.
    max_mb : float
        Largest upload accepted, in MiB; larger ones get 413 while they are being read.
    top_k : int
        Labels returned in ``top_k`` (at most the number of labels; ``?top_k=`` overrides per request).
    warmup : bool
        Predict 3 s of quiet noise (and draw its spectrogram) before serving, so the first request
        does not pay the one-off costs.
    tmp_root : path, optional
        Folder in which each request's temporary directory is made (default: the system's).

    Returns
    -------
    fastapi.FastAPI
        ``app.state.run`` holds the loaded :class:`~earmark.run.Run` (or :class:`~earmark.fuse.FusedRun`).

    Raises
    ------
    DataError
        ``run_dir`` is not a finished run.
    ConfigError
        ``max_mb`` or ``top_k`` is not positive.
    """
    from earmark.fuse import FusedRun, load_run
    from earmark.serve.page import PAGE

    if not is_number(max_mb) or max_mb <= 0:
        raise ConfigError(f"serve: max_mb must be > 0, got {max_mb!r}")
    if not is_int(top_k) or top_k < 1:
        raise ConfigError(f"serve: top_k must be an integer >= 1, got {top_k!r}")
    if isinstance(max_mb, np.generic):  # plain numbers in the JSON of /api/info
        max_mb = max_mb.item()
    top_k = int(top_k)
    limit = int(max_mb * _MB)
    run = load_run(run_dir)
    labels = run.labels
    cfg = run.config  # a fusion's first run: its eval window settings are shown
    info = {
        "run": Path(run_dir).resolve().name,
        "model": str(run.meta.get("model") or cfg.model.name),
        "features": run.feature_names,
        "feature_params": cfg.features.params,
        "labels": labels,
        "window_s": cfg.eval.window,
        "hop_s": cfg.eval.hop,
        "aggregate": cfg.eval.aggregate,
        "top_k": min(top_k, len(labels)),
        "max_mb": max_mb,
    }
    if isinstance(run, FusedRun):  # each run's own feature, parameters and weight
        info["feature_params"] = None
        info["runs"] = [{"run": r.dir.name, "model": r.meta.get("model"), "features": r.config.features.name,
                         "feature_params": r.config.features.params, "weight": float(w)}
                        for r, w in zip(run.runs, run.weights)]
    lock = threading.Lock()  # one prediction at a time: torch already uses every core for one

    def predict(path: Path, name: str, k: int, spectrogram: bool) -> dict[str, Any]:
        from earmark.audio import info as audio_info
        from earmark.predict import clip_proba

        t0 = time.perf_counter()
        try:
            with lock:
                proba, n_windows = clip_proba(run, path)
            duration = audio_info(path).duration
        except AudioDecodeError as exc:
            reason = exc.reason
            if reason.startswith("cannot decode (") and reason.endswith(")"):
                reason = reason[len("cannot decode (") : -1]  # "could not decode x: cannot decode (...)" says it twice
            raise UploadError(415, f"could not decode {name}: {reason}") from None
        except DataError as exc:
            raise UploadError(422, str(exc).replace(str(path), name)) from None
        ms = (time.perf_counter() - t0) * 1e3
        proba = np.asarray(proba, dtype=np.float64)
        order = np.argsort(-proba, kind="stable")[:k]
        out: dict[str, Any] = {
            "file": name,
            "top_k": [{"label": labels[i], "probability": float(proba[i])} for i in order],
            "labels": labels,
            "probabilities": [float(p) for p in proba],
            "n_windows": int(n_windows),
            "duration_s": float(duration),
            "ms": ms,
        }
        if spectrogram:
            out["spectrogram"] = spectrogram_png(path, name)
        return out

    def spectrogram_png(path: Path, name: str) -> str:
        from earmark.audio import load
        from earmark.evaluate.audio_plots import figure_png, plot_spectrogram

        y = load(path, sr=_SPECTROGRAM_SR)
        return base64.b64encode(figure_png(plot_spectrogram(y, _SPECTROGRAM_SR, title=name))).decode("ascii")

    if warmup:
        _warm_up(run, predict, tmp_root)

    # No Swagger/ReDoc pages: they load their scripts from a CDN, and this app must work offline.
    app = FastAPI(title=f"earmark: {info['run']}", description="Label music audio with a trained earmark run.",
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.run = run

    @app.exception_handler(UploadError)
    async def _refused(request: Request, exc: UploadError):
        headers = {"Connection": "close"} if exc.status == 413 else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/info")
    async def api_info() -> dict[str, Any]:
        return info

    @app.post("/api/predict")
    async def api_predict(
        request: Request,
        spectrogram: bool = Query(False, description="Add the log-mel spectrogram as a base64 PNG."),
        k: int = Query(info["top_k"], alias="top_k", ge=1, description="How many labels in top_k."),
    ) -> JSONResponse:
        """Multipart upload with a file field ``file`` -> the run's top-k labels with probabilities."""
        with tempfile.TemporaryDirectory(prefix="earmark-serve-", dir=tmp_root) as tmp:
            path, name, _ = await receive_upload(request, Path(tmp), limit)
            return JSONResponse(await run_in_threadpool(predict, path, name, min(k, len(labels)), spectrogram))

    return app


def _warm_up(run, predict, tmp_root) -> None:
    """One prediction (and one spectrogram) on 3 s of quiet noise at 22.05 kHz, so that first-call
    costs (lazy imports, resampler and window caches, torch's first pass) are paid before serving."""
    from earmark.audio import save
    from earmark.errors import EarmarkError

    seconds = max(3.0, run.config.eval.window or 0.0)
    y = 0.01 * np.random.default_rng(0).standard_normal(int(seconds * _SPECTROGRAM_SR))
    with tempfile.TemporaryDirectory(prefix="earmark-serve-", dir=tmp_root) as tmp:
        path = Path(tmp) / "warmup.wav"
        save(path, y.astype(np.float32), _SPECTROGRAM_SR)
        try:
            predict(path, "warmup.wav", 1, True)
        except (EarmarkError, UploadError):
            pass  # a model that cannot take this audio says so on real requests
