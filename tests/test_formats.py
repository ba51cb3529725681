"""Dataset formats: each builds a tiny real dataset in its layout and checks labels, groups, splits
and the manifest round trip."""

from __future__ import annotations

import csv
import json
import os
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from earmark.data import FORMATS, Manifest, prepare
from earmark.data.formats import format_options
from earmark.errors import ConfigError, DataError
from tests.conftest import music_like

SR = 16000


@pytest.fixture
def tone():
    return music_like(sr=SR, duration=0.05, f0=330.0)


def _straddling_groups(m: Manifest) -> list[str]:
    per_group = m.df.groupby("group")["split"].nunique()
    return sorted(per_group[per_group > 1].index)


def _check_round_trip(m: Manifest, path: Path) -> Manifest:
    written = m.write(path)
    back = Manifest.read(path)
    assert back.paths() == m.paths() == written.paths()
    for col in ("id", "label", "split", "group"):
        assert list(back.df[col]) == list(m.df[col]), col
    assert list(back.df.columns) == list(m.df.columns)
    assert back.df.astype(str).equals(written.df.astype(str))
    return back


# ------------------------------------------------------------------ dataset builders
def make_folder(root: Path, write, y, classes=("bass", "brass", "NA"), per_class=5) -> Path:
    for c in classes:
        for i in range(per_class):
            sub = f"take{i % 2}/" if c == "bass" else ""
            write(f"{root.name}/{c}/{sub}{c}_{i}.wav", y, SR)
    return root


NSYNTH_INSTRUMENTS = [("bass", "electronic", 1), ("bass", "acoustic", 2), ("bass", "synthetic", 3),
                      ("brass", "acoustic", 4), ("brass", "synthetic", 5), ("brass", "acoustic", 6),
                      ("string", "acoustic", 7), ("string", "acoustic", 8)]
FAMILIES = ["bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead",
            "vocal"]
SOURCES = ["acoustic", "electronic", "synthetic"]


def make_nsynth(folder: Path, write, y, instruments=NSYNTH_INSTRUMENTS, pitches=(60, 64, 67)) -> Path:
    """One NSynth folder in the real schema: examples.json keyed by note_str + audio/<note_str>.wav."""
    examples = {}
    for fam, src, inst in instruments:
        for pitch in pitches:
            vel = 100 if pitch % 2 else 75
            note_str = f"{fam}_{src}_{inst:03d}-{pitch:03d}-{vel:03d}"
            write(_rel(write, folder / "audio" / f"{note_str}.wav"), y, SR)
            examples[note_str] = {
                "note": inst * 1000 + pitch, "note_str": note_str, "instrument": inst,
                "instrument_str": f"{fam}_{src}_{inst:03d}", "pitch": pitch, "velocity": vel, "sample_rate": SR,
                "instrument_family": FAMILIES.index(fam), "instrument_family_str": fam,
                "instrument_source": SOURCES.index(src), "instrument_source_str": src,
                "qualities": [0, 1, 0, 0, 0, 0, 0, 0, 0, 0], "qualities_str": ["bright"],
            }
    (folder / "examples.json").write_text(json.dumps(examples, indent=2))
    return folder


def _rel(write, path: Path) -> str:
    """The name to give ``write_audio`` (relative to its tmp_path) for an absolute ``path``."""
    return str(path.relative_to(write.tmp_path))


# The real FMA tracks.csv column layout (52 columns under 4 groups).
FMA_COLUMNS = {
    "album": ["comments", "date_created", "date_released", "engineer", "favorites", "id", "information", "listens",
              "producer", "tags", "title", "tracks", "type"],
    "artist": ["active_year_begin", "active_year_end", "associated_labels", "bio", "comments", "date_created",
               "favorites", "id", "latitude", "location", "longitude", "members", "name", "related_projects",
               "tags", "website", "wikipedia_page"],
    "set": ["split", "subset"],
    "track": ["bit_rate", "comments", "composer", "date_created", "date_recorded", "duration", "favorites",
              "genre_top", "genres", "genres_all", "information", "interest", "language_code", "license",
              "listens", "lyricist", "number", "publisher", "tags", "title"],
}
# (track_id, artist_id, genre_top, split, subset)
FMA_TRACKS = [
    (2, 1, "Hip-Hop", "training", "small"), (3, 1, "Hip-Hop", "training", "small"),
    (5, 1, "Hip-Hop", "training", "small"), (10, 6, "Pop", "training", "small"),
    (20, 6, "Pop", "validation", "medium"), (26, 7, "Pop", "test", "small"),
    (30, 7, "Pop", "test", "small"), (46, 9, "Hip-Hop", "validation", "small"),
    (1040, 12, "Rock", "training", "small"), (1041, 12, "Rock", "training", "large"),
    (1082, 13, "Rock", "test", "small"), (2001, 14, "", "training", "large"),
]


def make_fma(root: Path, write, y, missing=(30,)) -> Path:
    """FMA layout: fma_metadata/tracks.csv with the real two-row header (+ 'track_id' third line) and
    fma_small/<tid//1000:03d>/<tid:06d>.mp3 for the small tracks (except ``missing``)."""
    meta = root / "fma_metadata"
    meta.mkdir(parents=True)
    cols = [(g, f) for g, fields in FMA_COLUMNS.items() for f in fields]
    with open(meta / "tracks.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([""] + [g for g, _ in cols])
        w.writerow([""] + [c for _, c in cols])
        w.writerow(["track_id"] + [""] * len(cols))
        for tid, aid, genre, split, subset in FMA_TRACKS:
            values = {("artist", "id"): aid, ("track", "genre_top"): genre, ("set", "split"): split,
                      ("set", "subset"): subset, ("artist", "name"): f"Artist {aid}",
                      ("artist", "bio"): "<p>Line one,\nline two, \"quoted\"</p>",
                      ("track", "genres"): "[21, 45]", ("track", "title"): f"Song, {tid}",
                      ("album", "id"): aid * 10, ("track", "tags"): "['a', 'b']"}
            w.writerow([tid] + [values.get(c, "") for c in cols])
    for tid, _, _, _, subset in FMA_TRACKS:
        if subset == "small" and tid not in missing:
            write(_rel(write, root / "fma_small" / f"{tid // 1000:03d}" / f"{tid:06d}.mp3"), y, SR)
    return root


GENRES = ("blues", "NA", "metal")


def make_gtzan(root: Path, write, y, per_genre=6, ext="wav") -> Path:
    for g in GENRES:
        for i in range(per_genre):
            write(_rel(write, root / "genres_original" / g / f"{g}.{i:05d}.{ext}"), y, SR)
    return root


def make_artist20(root: Path, write, y, artists=3, albums=4, tracks=2) -> Path:
    for a in range(artists):
        for b in range(albums):
            for t in range(tracks):
                write(_rel(write, root / "mp3s-32k" / f"artist_{a}" / f"album_{b}" / f"{t + 1:02d}-song.mp3"), y, SR)
    return root


def make_competition(root: Path, write, y, classes=("female", "male", "duet", "instrumental"), per_class=5,
                     n_test=4) -> Path:
    for c in classes:
        for i in range(per_class):
            write(_rel(write, root / "train" / c / f"{c}{i}.wav"), y, SR)
    for i in range(n_test):
        write(_rel(write, root / "test" / f"snippet{i:03d}.wav"), y, SR)
    return root


def make_labels_csv(root: Path, write, y, prefix="") -> Path:
    """The vocal-gender layout: labels.csv (file,label,voice_ids,split) + audio/*.wav."""
    rows = []
    for i in range(12):
        label = ["female", "male", "duet", "instrumental"][i % 4]
        voices = {"female": "slt", "male": "kal", "duet": "slt+kal", "instrumental": ""}[label]
        split = "val" if i >= 8 else "train"
        if split == "val":
            voices = {"slt": "ona", "kal": "nsh", "slt+kal": "ona+nsh", "": ""}[voices]
        write(_rel(write, root / "audio" / f"{i:05d}.wav"), y, SR)
        rows.append([f"{prefix}{i:05d}.wav", label, voices, split])
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "label", "voice_ids", "split"])
        w.writerows(rows)
    return root / "labels.csv"


@pytest.fixture
def write(write_audio, tmp_path):
    write_audio.tmp_path = tmp_path
    return write_audio


# ------------------------------------------------------------------ contract: every format round-trips
BUILDERS = {
    "folder": lambda root, w, y: (make_folder(root, w, y), {}),
    "csv": lambda root, w, y: (make_labels_csv(root, w, y, prefix="audio/"),
                               {"path_col": "file", "group_col": "voice_ids"}),
    "nsynth": lambda root, w, y: (make_nsynth(root, w, y), {}),
    "fma": lambda root, w, y: (make_fma(root, w, y), {}),
    "gtzan": lambda root, w, y: (make_gtzan(root, w, y), {}),
    "artist20": lambda root, w, y: (make_artist20(root, w, y), {}),
    "competition": lambda root, w, y: (make_competition(root, w, y), {}),
}


def test_every_registered_format_has_a_contract_test():
    assert sorted(BUILDERS) == FORMATS.names()


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("ext", [".csv", ".jsonl"])
def test_format_contract(name, ext, tmp_path, write, tone):
    src, options = BUILDERS[name](tmp_path / "data", write, tone)
    out = tmp_path / "manifests" / f"{name}{ext}"
    m = prepare(name, src, out=out, **options)
    assert out.is_file() and len(m) > 0
    assert m.root == out.parent
    assert _straddling_groups(m) == []
    assert m.df["id"].is_unique
    labelled = m.df[m.df["label"] != ""]
    assert len(labelled) > 0 and "unlabelled" not in set(labelled["split"])
    assert all(os.path.isabs(p) for p in m.paths())
    assert len(m.missing_files()) <= 1  # the FMA fixture leaves one track's audio out on purpose
    _check_round_trip(m, tmp_path / "again" / f"{name}{ext}")
    again = prepare(name, src, **options)  # deterministic, and the in-memory manifest matches
    assert list(again.df["split"]) == list(m.df["split"]) and again.paths() == m.paths()


# ------------------------------------------------------------------ folder
def test_folder(tmp_path, write, tone):
    src = make_folder(tmp_path / "clips", write, tone)
    m = prepare("folder", src)
    assert m.classes == ["NA", "bass", "brass"]
    assert "bass/take0/bass_0" in set(m.ids)
    assert Counter(m.splits) == {"train": 12, "test": 3}
    for c in m.classes:
        assert Counter(m.select(label=c).splits) == {"train": 4, "test": 1}
    assert list(m.groups) == list(m.ids)
    by_parent = prepare("folder", src, group_by="parent", split="group")
    assert by_parent.df.set_index("id")["group"]["bass/take1/bass_1"] == "bass/take1"
    assert _straddling_groups(by_parent) == []


def test_folder_options_and_errors(tmp_path, write, tone):
    src = make_folder(tmp_path / "clips", write, tone)
    m = prepare("folder", src, fractions={"train": 0.6, "val": 0.2, "test": 0.2}, seed=5, folds=5)
    assert Counter(m.splits) == {"train": 9, "val": 3, "test": 3}
    assert sorted(Counter(m.df["fold"]).values()) == [3] * 5
    with pytest.raises(ConfigError, match=r"unknown option 'group'; accepted options are group_by"):
        prepare("folder", src, group="parent")
    with pytest.raises(ConfigError, match="format 'folder' has no target option"):
        prepare("folder", src, target="pitch")
    with pytest.raises(ConfigError, match="did you mean 'folder'"):
        prepare("foldr", src)
    with pytest.raises(ConfigError, match="group_by"):
        prepare("folder", src, group_by="album")
    with pytest.raises(ConfigError, match="fractions: must sum to 1"):
        prepare("folder", src, fractions={"train": 0.5})
    with pytest.raises(ConfigError, match="folds=7: every class needs at least 7 clips; 'NA' has 5"):
        prepare("folder", src, folds=7)


def test_folder_without_audio_names_folder_and_extensions(tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    (tmp_path / "empty" / "cls" / "notes.txt").write_text("not audio")
    with pytest.raises(DataError, match=r"empty: no audio files found; looked for \.wav, \.flac, .*\.au"):
        prepare("folder", tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        prepare("folder", tmp_path / "nope")


def test_folder_lists_without_decoding_and_case_insensitive(tmp_path, write, tone):
    src = tmp_path / "clips"
    write("clips/a/ok.WAV", tone, SR)
    write("clips/a/other.Flac", tone, SR)
    (src / "b").mkdir()
    (src / "b" / "garbage.wav").write_bytes(b"not audio at all")  # listed, not opened
    (src / "b" / "._garbage.wav").write_bytes(b"AppleDouble")      # hidden: skipped
    (src / "b" / "readme.md").write_text("skip me")
    m = prepare("folder", src, split="stratified", fractions={"train": 1.0})
    assert sorted(m.ids) == ["a/ok", "a/other", "b/garbage"]


def test_folder_files_outside_class_folders(tmp_path, write, tone):
    write("flat/x.wav", tone, SR)
    with pytest.raises(DataError, match="expected SRC/<class>/<file>.*1 audio files directly"):
        prepare("folder", tmp_path / "flat")
    write("flat/c/y.wav", tone, SR)
    with pytest.warns(UserWarning, match="skipped 1 audio files outside class sub-folders"):
        m = prepare("folder", tmp_path / "flat", fractions={"train": 1.0})
    assert list(m.ids) == ["c/y"]


def test_folder_is_fast_for_many_files(tmp_path):
    root = tmp_path / "many"
    for c in range(20):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(500):
            (root / f"c{c}" / f"{i}.wav").touch()  # empty: prepare never opens them
    t0 = time.perf_counter()
    m = prepare("folder", root, out=tmp_path / "many.csv")
    assert len(m) == 10_000
    assert time.perf_counter() - t0 < 10.0


# ------------------------------------------------------------------ csv
@pytest.mark.parametrize("prefix", ["", "audio/"])
def test_csv_mapped_columns(tmp_path, write, tone, prefix):
    path = make_labels_csv(tmp_path / "vg", write, tone, prefix=prefix)
    m = prepare("csv", path, path_col="file", group_col="voice_ids", audio_dir="audio")
    assert m.missing_files() == []
    assert m.classes == ["duet", "female", "instrumental", "male"]
    assert Counter(m.splits) == {"train": 8, "val": 4}  # its own split column is kept
    g = m.df.set_index("id")["group"]
    assert g.filter(like="00001").iloc[0] == "kal"
    instrumental = m.df[m.df["label"] == "instrumental"]
    assert list(instrumental["group"]) == list(instrumental["id"])  # empty voice_ids -> own group
    assert _straddling_groups(m) == []


def test_csv_defaults_extra_columns_and_errors(tmp_path, write, tone):
    for i in range(10):
        write(f"d/wav/{i}.wav", tone, SR)
    table = pd.DataFrame({"path": [f"wav/{i}.wav" for i in range(10)], "label": ["NA", "None"] * 5,
                          "singer": [f"s{i // 2}" for i in range(10)]})
    table.to_csv(tmp_path / "d" / "list.csv", index=False)
    m = prepare("csv", tmp_path / "d" / "list.csv")
    assert m.classes == ["NA", "None"] and list(m.ids[:2]) == ["wav/0", "wav/1"]
    assert Counter(m.splits) == {"train": 8, "test": 2}  # no split column: stratified 80/20
    assert list(m.df["singer"][:2]) == ["s0", "s0"]
    m2 = prepare("csv", tmp_path / "d" / "list.csv", group_col="singer", split="group",
                 fractions={"train": 0.6, "test": 0.4})
    assert _straddling_groups(m2) == []
    with pytest.raises(DataError, match=r"list.csv: expected a column 'file' \(path_col\); found columns "
                                        r"\['path', 'label', 'singer'\]"):
        prepare("csv", tmp_path / "d" / "list.csv", path_col="file")
    with pytest.raises(DataError, match="no split column"):
        prepare("csv", tmp_path / "d" / "list.csv", split="predefined")
    with pytest.raises(DataError, match="expected a CSV file; it is a folder"):
        prepare("csv", tmp_path / "d")
    m3 = prepare("csv", tmp_path / "d" / "list.csv", target="singer", split="stratified",
                 fractions={"train": 1.0})
    assert m3.classes == [f"s{i}" for i in range(5)]


# ------------------------------------------------------------------ nsynth
def test_nsynth_single_folder(tmp_path, write, tone):
    src = make_nsynth(tmp_path / "nsynth-mini", write, tone)
    m = prepare("nsynth", src)
    assert m.classes == ["bass", "brass", "string"]
    assert len(m) == 24 and m.missing_files() == []
    row = m.df.set_index("id").loc["bass_electronic_001-064-075"]
    assert (row["label"], row["group"], row["pitch"], row["velocity"]) == ("bass", "bass_electronic_001", 64, 75)
    assert row["instrument_source_str"] == "electronic"
    assert set(m.splits) == {"train", "test"} and _straddling_groups(m) == []  # split by instrument
    assert m.df.groupby("label")["split"].apply(lambda s: "train" in set(s)).all()
    src_m = prepare("nsynth", src, target="instrument_source")
    assert src_m.classes == ["acoustic", "electronic", "synthetic"]
    pitch = prepare("nsynth", src, target="pitch", split="stratified")
    assert pitch.classes == ["60", "64", "67"]
    back = _check_round_trip(m, tmp_path / "nsynth.csv")
    assert back.df["pitch"].tolist() == [str(p) for p in m.df["pitch"]]  # CSV extras come back as strings


def test_nsynth_parent_keeps_official_split(tmp_path, write, tone):
    make_nsynth(tmp_path / "ns" / "nsynth-train", write, tone, NSYNTH_INSTRUMENTS[:5])
    make_nsynth(tmp_path / "ns" / "nsynth-valid", write, tone, NSYNTH_INSTRUMENTS[5:7], pitches=(50,))
    make_nsynth(tmp_path / "ns" / "nsynth-test", write, tone, NSYNTH_INSTRUMENTS[7:], pitches=(40, 41))
    m = prepare("nsynth", tmp_path / "ns")
    assert Counter(m.splits) == {"train": 15, "val": 2, "test": 2}
    assert m.df.set_index("id")["split"]["string_acoustic_008-040-075"] == "test"


def test_nsynth_errors(tmp_path, write, tone):
    src = make_nsynth(tmp_path / "ns", write, tone, NSYNTH_INSTRUMENTS[:2], pitches=(60,))
    with pytest.raises(ConfigError, match="target: expected one of instrument_family, instrument_source, pitch"):
        prepare("nsynth", src, target="family")
    data = json.loads((src / "examples.json").read_text())
    del next(iter(data.values()))["instrument_str"]
    (src / "examples.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"examples.json: note 'bass_electronic_001-060-075' lacks field\(s\) "
                                        "instrument_str"):
        prepare("nsynth", src)
    (src / "examples.json").write_text(json.dumps(list(data)))
    with pytest.raises(DataError, match="expected NSynth's dict keyed by note_str; got a list"):
        prepare("nsynth", src)
    (tmp_path / "other").mkdir()
    with pytest.raises(DataError, match="expected an NSynth folder"):
        prepare("nsynth", tmp_path / "other")


# ------------------------------------------------------------------ fma
def test_fma_small_official_split(tmp_path, write, tone):
    src = make_fma(tmp_path / "fma", write, tone)
    m = prepare("fma", src)
    small = [t for t in FMA_TRACKS if t[4] == "small"]
    assert list(m.ids) == [f"{t[0]:06d}" for t in small]
    assert m.classes == ["Hip-Hop", "Pop", "Rock"]
    assert dict(zip(m.ids, m.splits))["000046"] == "val"
    assert set(m.splits) == {"train", "val", "test"}
    assert dict(zip(m.ids, m.groups))["001040"] == "12"
    assert m.paths()[-1] == str(src / "fma_small" / "001" / "001082.mp3")
    assert m.missing_files() == [("000030", str(src / "fma_small" / "000" / "000030.mp3"))]
    assert m.df["title"].iloc[0] == "Song, 2" and m.df["artist_name"].iloc[0] == "Artist 1"


def test_fma_subsets_nest(tmp_path, write, tone):
    src = make_fma(tmp_path / "fma", write, tone)
    with pytest.raises(DataError, match="expected an audio folder fma_medium/ or fma_large/"):
        prepare("fma", src, subset="medium")  # fma_small/ lacks the medium tracks
    medium = prepare("fma", src, subset="medium", audio_dir="fma_small")
    assert len(medium) == 10 and [i for i, _ in medium.missing_files()] == ["000020", "000030"]
    os.rename(src / "fma_small", src / "fma_large")  # fma_large/ holds every smaller subset's tracks
    small = prepare("fma", src, subset="small")
    assert small.paths()[0] == str(src / "fma_large" / "000" / "000002.mp3")
    large = prepare("fma", src, subset="large")
    assert len(large) == len(FMA_TRACKS)
    assert dict(zip(large.ids, large.labels))["002001"] == ""  # no genre_top: unlabelled
    assert dict(zip(large.ids, large.splits))["002001"] == "train"  # official split still kept
    with pytest.raises(ConfigError, match="subset: expected one of small, medium, large"):
        prepare("fma", src, subset="tiny")


def test_fma_errors(tmp_path, write, tone):
    src = make_fma(tmp_path / "fma", write, tone)
    bad = tmp_path / "bad"
    bad.mkdir()
    lines = (src / "fma_metadata" / "tracks.csv").read_text().splitlines(keepends=True)
    (bad / "tracks.csv").write_text(lines[0].replace("genre_top", "genre") +
                                    lines[1].replace("genre_top", "genre") + "".join(lines[2:]))
    with pytest.raises(DataError, match=r"tracks.csv: expected FMA's two-row header with \('track', 'genre_top'\); "
                                        r"found columns \('album', 'comments'\)"):
        prepare("fma", bad)
    (bad / "tracks.csv").write_text("id,title\n1,x\n")
    with pytest.raises(DataError, match=r"tracks.csv: expected FMA's two-row header .*found columns \['id', 'title'\]"):
        prepare("fma", bad)
    os.remove(bad / "tracks.csv")
    with pytest.raises(DataError, match="expected fma_metadata/tracks.csv or tracks.csv"):
        prepare("fma", bad)
    os.rename(src / "fma_small", src / "elsewhere")
    with pytest.raises(DataError, match=r"expected an audio folder fma_small/ or fma_medium/"):
        prepare("fma", src)
    m = prepare("fma", src, audio_dir="elsewhere")
    assert len(m.missing_files()) == 1


def test_fma_flat_header_styles_layout(tmp_path, write, tone):
    """The benchmark 'styles' layout: flat tracks.csv + audio/<tid//1000:03d>/<tid:06d>.wav."""
    root = tmp_path / "styles"
    rows = []
    for tid in range(1, 13):
        genre = ["bach_chorale", "irish_fiddle"][tid % 2]
        piece = tid // 3
        rows.append([tid, piece, genre, ["train", "val", "test", "train"][piece % 4], f"p{piece}", "piano", 1.0, 0.0])
        write(_rel(write, root / "audio" / f"{tid // 1000:03d}" / f"{tid:06d}.wav"), tone, SR)
    pd.DataFrame(rows, columns=["track_id", "piece_id", "genre", "split", "piece", "ensemble", "tempo_factor",
                                "start_s"]).to_csv(root / "tracks.csv", index=False)
    m = prepare("fma", root)
    assert m.missing_files() == [] and m.classes == ["bach_chorale", "irish_fiddle"]
    assert m.df.set_index("id")["group"]["000004"] == "1" and _straddling_groups(m) == []


# ------------------------------------------------------------------ gtzan
def test_gtzan_default_stratified(tmp_path, write, tone):
    src = make_gtzan(tmp_path / "gtzan", write, tone, per_genre=10)
    m = prepare("gtzan", src)
    assert m.classes == ["NA", "blues", "metal"] and len(m) == 30
    assert "blues/blues.00003" in set(m.ids)
    for g in m.classes:
        assert Counter(m.select(label=g).splits) == {"train": 8, "test": 2}


def test_gtzan_filtered_split_keeps_only_listed(tmp_path, write, tone):
    src = make_gtzan(tmp_path / "gtzan", write, tone, ext="au")  # original archive: .au; lists say .wav
    lists = tmp_path / "splits"
    lists.mkdir()
    (lists / "train_filtered.txt").write_text("".join(f"{g}/{g}.0000{i}.wav\n" for g in GENRES for i in (0, 1, 2)))
    (lists / "valid_filtered.txt").write_text("".join(f"{g}/{g}.00003.wav\n" for g in GENRES))
    (lists / "test_filtered.txt").write_text("".join(f"{g}/{g}.00004.wav\n" for g in GENRES) +
                                             "blues/blues.00099.wav\n")
    m = prepare("gtzan", src, split_dir=lists)
    assert Counter(m.splits) == {"train": 9, "val": 3, "test": 4}
    assert "metal/metal.00005" not in set(m.ids)  # not listed: a faulty clip, excluded
    assert m.paths()[0].endswith("blues/blues.00000.au")
    assert m.missing_files() == [("blues/blues.00099", str(src / "genres_original" / "blues" / "blues.00099.wav"))]
    rel = prepare("gtzan", src, split_dir="../splits")  # relative to the dataset folder
    assert list(rel.ids) == list(m.ids)
    with open(lists / "valid_filtered.txt", "a") as f:
        f.write("blues/blues.00000.wav\n")
    with pytest.raises(DataError, match="1 clips are listed twice"):
        prepare("gtzan", src, split_dir=lists)
    with pytest.raises(DataError, match="expected split lists train_filtered.txt"):
        prepare("gtzan", src, split_dir=tmp_path)


# ------------------------------------------------------------------ artist20
def test_artist20_album_split(tmp_path, write, tone):
    src = make_artist20(tmp_path / "artist20", write, tone, artists=3, albums=6, tracks=2)
    m = prepare("artist20", src)
    assert m.classes == ["artist_0", "artist_1", "artist_2"]
    assert dict(zip(m.ids, m.groups))["artist_1/album_2/01-song"] == "artist_1/album_2"
    assert _straddling_groups(m) == []  # no album in two splits
    for a in m.classes:  # 6 albums: 4 train, 1 val, 1 test
        albums = m.select(label=a).df.groupby("split")["group"].nunique().to_dict()
        assert albums == {"train": 4, "val": 1, "test": 1}
    songs = prepare("artist20", src, split_by="song")
    assert set(songs.splits) == {"train", "val", "test"} and _straddling_groups(songs) != []
    with pytest.raises(ConfigError, match="split_by: expected 'album' or 'song'"):
        prepare("artist20", src, split_by="track")


def test_artist20_too_shallow(tmp_path, write, tone):
    write("a20/artist/track.mp3", tone, SR)
    with pytest.raises(DataError, match="expected SRC/<artist>/<album>/<track>; 1 files"):
        prepare("artist20", tmp_path / "a20")


# ------------------------------------------------------------------ competition
def test_competition_folders(tmp_path, write, tone):
    src = make_competition(tmp_path / "comp", write, tone, per_class=10)
    m = prepare("competition", src, seed=8)
    un = m.select(split="unlabelled")
    assert len(un) == 4 and set(un.labels) == {""} and list(un.ids) == [f"test/snippet{i:03d}" for i in range(4)]
    lab = m.df[m.df["label"] != ""]
    assert Counter(lab["split"]) == {"train": 28, "val": 12}
    assert m.classes == ["duet", "female", "instrumental", "male"]
    m2 = prepare("competition", src, seed=8, folds=5)
    assert list(m2.df["fold"][m2.df["label"] == ""]) == [-1] * 4
    other = prepare("competition", src, seed=0)
    assert list(other.splits) != list(m.splits)


def test_competition_csv_train_and_explicit_test(tmp_path, write, tone):
    for i in range(8):
        write(f"comp/clips/{i}.wav", tone, SR)
    write("comp/hidden/x.wav", tone, SR)
    pd.DataFrame({"filename": [f"{i}.wav" for i in range(8)], "label": ["a", "b"] * 4}).to_csv(
        tmp_path / "comp" / "train.csv", index=False)
    m = prepare("competition", tmp_path / "comp", train="train.csv", test="hidden", path_col="filename",
                audio_dir="clips", fractions={"train": 0.5, "val": 0.5})
    assert m.missing_files() == []
    assert Counter(m.splits) == {"train": 4, "val": 4, "unlabelled": 1}
    assert "train/0" in set(m.ids) and "test/x" in set(m.ids)
    with pytest.raises(DataError, match="expected train/ and/or test/ folders"):
        prepare("competition", tmp_path / "comp" / "clips")


def test_format_options_lists_defaults():
    assert format_options("nsynth") == {"target": "instrument_family"}
    assert format_options("fma")["subset"] == "small"
