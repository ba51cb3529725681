"""The one HTML page of ``earmark serve``: drop an audio file, see the top labels and its spectrogram.

Plain HTML, CSS and JavaScript in one string (no CDN, no package data): it works offline and ships
with the module. It talks to the app's own JSON endpoints: ``GET /api/info`` and
``POST /api/predict?spectrogram=true``.
"""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>earmark</title>
<style>
  :root { --accent: #2563eb; --muted: #6b7280; --line: #e5e7eb; }
  * { box-sizing: border-box; }
  body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #111827;
         background: #f9fafb; }
  main { max-width: 880px; margin: 0 auto; padding: 24px 20px 48px; }
  h1 { font-size: 1.5rem; margin: 0 0 4px; }
  #info { color: var(--muted); margin: 0 0 20px; font-size: 0.95rem; }
  #drop { display: block; border: 2px dashed #9ca3af; border-radius: 12px; padding: 36px 20px; text-align: center;
          background: #fff; cursor: pointer; transition: background 0.15s, border-color 0.15s; }
  #drop.over { border-color: var(--accent); background: #eff6ff; }
  #drop p { margin: 0 0 10px; font-size: 1.1rem; }
  #drop small { color: var(--muted); }
  #status { margin: 16px 0 0; min-height: 1.4em; color: var(--muted); }
  #error { margin: 16px 0 0; padding: 12px 14px; border-radius: 8px; background: #fef2f2; color: #991b1b;
           border: 1px solid #fecaca; }
  #result { margin-top: 20px; background: #fff; border: 1px solid var(--line); border-radius: 12px; padding: 20px; }
  #result h2 { margin: 0; font-size: 1.4rem; }
  #meta { color: var(--muted); font-size: 0.9rem; margin: 4px 0 16px; }
  .bar-row { display: grid; grid-template-columns: 160px 1fr 64px; align-items: center; gap: 10px; margin: 6px 0; }
  .bar-label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .bar-track { background: #f3f4f6; border-radius: 6px; height: 18px; overflow: hidden; }
  .bar-fill { background: var(--accent); height: 100%; border-radius: 6px; min-width: 2px; }
  .bar-row:first-child .bar-label { font-weight: 600; }
  .bar-value { text-align: right; font-variant-numeric: tabular-nums; }
  #spectrogram { display: block; width: 100%; height: auto; margin-top: 18px; border-radius: 6px; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<main>
  <h1>earmark</h1>
  <p id="info">Loading model information&hellip;</p>
  <label id="drop" for="file">
    <p>Drop an audio file here, or click to choose one</p>
    <small id="limits">WAV, FLAC, Ogg, MP3, AIFF</small>
    <input id="file" name="file" type="file" accept="audio/*,.wav,.flac,.ogg,.mp3,.aiff,.aif" hidden>
  </label>
  <p id="status" aria-live="polite"></p>
  <div id="error" role="alert" hidden></div>
  <section id="result" hidden>
    <h2 id="top-label"></h2>
    <p id="meta"></p>
    <div id="bars"></div>
    <img id="spectrogram" alt="Log-mel spectrogram of the uploaded clip">
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let maxBytes = Infinity;

function percent(p) { return (100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1) + "%"; }

function showError(message) {
  $("status").textContent = "";
  $("error").textContent = message;
  $("error").hidden = false;
}

function showResult(r) {
  $("top-label").textContent = r.top_k.length ? r.top_k[0].label : "(no labels)";
  const parts = [r.file, r.duration_s.toFixed(2) + " s",
                 r.n_windows + (r.n_windows === 1 ? " window" : " windows"), r.ms.toFixed(1) + " ms"];
  $("meta").textContent = parts.join(" \\u00b7 ");
  const bars = $("bars");
  bars.replaceChildren();
  for (const item of r.top_k) {
    const row = document.createElement("div");
    row.className = "bar-row";
    const label = document.createElement("span");
    label.className = "bar-label";
    label.textContent = item.label;
    label.title = item.label;
    const track = document.createElement("div");
    track.className = "bar-track";
    const fill = document.createElement("div");
    fill.className = "bar-fill";
    fill.style.width = (100 * item.probability).toFixed(1) + "%";
    track.appendChild(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = percent(item.probability);
    row.append(label, track, value);
    bars.appendChild(row);
  }
  const img = $("spectrogram");
  if (r.spectrogram) { img.src = "data:image/png;base64," + r.spectrogram; img.hidden = false; }
  else { img.removeAttribute("src"); img.hidden = true; }
  $("status").textContent = "";
  $("result").hidden = false;
}

async function send(file) {
  $("error").hidden = true;
  if (!file) return;
  if (file.size > maxBytes) {
    showError("upload too large: " + file.name + " is " + (file.size / 1048576).toFixed(1) +
              " MB, the limit is " + (maxBytes / 1048576) + " MB");
    return;
  }
  $("status").textContent = "Analysing " + file.name + "\\u2026";
  const form = new FormData();
  form.append("file", file, file.name);
  let response, body;
  try {
    response = await fetch("api/predict?spectrogram=true", { method: "POST", body: form });
    body = await response.json();
  } catch (err) {
    showError("the server did not answer: " + err);
    return;
  }
  if (!response.ok) { showError(body && body.detail ? String(body.detail) : "error " + response.status); return; }
  showResult(body);
}

const drop = $("drop");
$("file").addEventListener("change", (e) => { send(e.target.files[0]); e.target.value = ""; });
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
  e.preventDefault(); drop.classList.add("over");
}));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => {
  e.preventDefault(); drop.classList.remove("over");
}));
drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) send(e.dataTransfer.files[0]); });
// a file dropped next to the area must not navigate away from the page
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());

fetch("api/info").then((r) => r.json()).then((info) => {
  maxBytes = info.max_mb * 1048576;
  $("info").textContent = "Model " + info.model + " on " + info.features + " features \\u00b7 " +
    info.labels.length + " labels: " + info.labels.join(", ");
  $("limits").textContent = "WAV, FLAC, Ogg, MP3, AIFF \\u00b7 up to " + info.max_mb + " MB";
}).catch((err) => { $("info").textContent = "could not read /api/info: " + err; });
</script>
</body>
</html>
"""
