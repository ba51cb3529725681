"""Manifest: defaults, validation, relative paths and CSV / JSONL round trips."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from earmark.data import Manifest
from earmark.errors import DataError
from tests.conftest import music_like


@pytest.fixture
def clips(tmp_path, write_audio):
    y = music_like(sr=8000, duration=0.05)
    return [write_audio(f"audio/{c}/{i}.wav", y, 8000) for c in ("NA", "None") for i in range(3)]


def _frame(paths, **extra):
    df = pd.DataFrame({"path": [str(p) for p in paths],
                       "label": [os.path.basename(os.path.dirname(p)) for p in paths]})
    for k, v in extra.items():
        df[k] = v
    return df


def test_defaults_from_frame(tmp_path, clips):
    m = Manifest.from_frame(_frame(clips), tmp_path)
    assert list(m.df.columns[:5]) == ["id", "path", "label", "split", "group"]
    assert m.ids[0] == "audio/NA/0"
    assert set(m.splits) == {"train"}
    assert list(m.groups) == list(m.ids)
    assert m.classes == ["NA", "None"] and len(m) == 6
    assert m.paths() == [str(p) for p in clips]
    assert m.missing_files() == []


def test_frame_is_copied_not_modified(tmp_path, clips):
    df = _frame(clips)
    Manifest.from_frame(df, tmp_path)
    assert list(df.columns) == ["path", "label"]


@pytest.mark.parametrize("ext", [".csv", ".jsonl", ".tsv"])
def test_round_trip_keeps_labels_and_relative_paths(tmp_path, clips, ext):
    df = _frame(clips, offset=[0.0, 0.5, "", 1, 2, 3], duration=[1.0] * 6, pitch=[60, 61, 62, 63, 64, 65])
    df.loc[2, "label"] = ""  # unlabelled clip
    m = Manifest.from_frame(df, tmp_path)
    out = m.write(tmp_path / f"manifest{ext}")
    back = Manifest.read(tmp_path / f"manifest{ext}")
    assert back.paths() == m.paths() == out.paths()
    assert list(back.labels) == ["NA", "NA", "", "None", "None", "None"]  # "NA"/"None" stay labels
    assert back.classes == ["NA", "None"]
    assert list(back.ids) == list(m.ids) and list(back.groups) == list(m.groups)
    assert back.df["offset"].isna().tolist() == [False, False, True, False, False, False]
    assert back.df["offset"].dtype == float and back.df["duration"].tolist() == [1.0] * 6
    assert [str(v) for v in back.df["pitch"]] == [str(v) for v in range(60, 66)]
    stored = (pd.read_json(tmp_path / f"manifest{ext}", lines=True) if ext == ".jsonl"
              else pd.read_csv(tmp_path / f"manifest{ext}", sep="\t" if ext == ".tsv" else ","))
    assert stored["path"][0] == "audio/NA/0.wav"
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


def test_paths_outside_the_folder_are_absolute(tmp_path, clips):
    m = Manifest.from_frame(_frame(clips), tmp_path)
    sub = tmp_path / "lists" / "m.csv"
    m.write(sub)
    assert pd.read_csv(sub)["path"][0] == str(clips[0])
    assert Manifest.read(sub).paths() == m.paths()
    # moving it back under the audio folder makes them relative again
    Manifest.read(sub).write(tmp_path / "audio" / "m.csv")
    assert pd.read_csv(tmp_path / "audio" / "m.csv")["path"][0] == "NA/0.wav"


def test_relative_paths_resolve_against_root(tmp_path, clips):
    m = Manifest.from_frame(pd.DataFrame({"path": ["NA/0.wav", "../elsewhere/x.wav"], "label": ["a", "b"]}),
                            tmp_path / "audio")
    assert m.paths() == [str(clips[0]), str(tmp_path / "elsewhere" / "x.wav")]
    assert m.missing_files() == [(m.ids[1], str(tmp_path / "elsewhere" / "x.wav"))]


def test_write_overwrites_atomically(tmp_path, clips):
    target = tmp_path / "m.csv"
    target.write_text("old")
    Manifest.from_frame(_frame(clips), tmp_path).write(target)
    assert len(Manifest.read(target)) == 6
    assert sorted(os.listdir(tmp_path)) == ["audio", "m.csv"]


def test_duplicate_ids_named_with_count(tmp_path):
    df = pd.DataFrame({"id": [f"d{i % 7}" for i in range(14)] + ["ok"], "path": [f"{i}.wav" for i in range(15)],
                       "label": "x"})
    with pytest.raises(DataError, match=r"7 duplicate ids \(14 rows\), e.g. 'd0', 'd1', 'd2', 'd3', 'd4' \.\.\."):
        Manifest.from_frame(df, tmp_path)


def test_missing_column_names_it_and_found_columns(tmp_path):
    with pytest.raises(DataError, match=r"missing required column 'label'.*found \['path', 'genre'\]"):
        Manifest.from_frame(pd.DataFrame({"path": ["a.wav"], "genre": ["rock"]}), tmp_path)
    (tmp_path / "m.csv").write_text("file,label\na.wav,x\n")
    with pytest.raises(DataError, match=r"m.csv: missing required column 'path'.*found \['file', 'label'\]"):
        Manifest.read(tmp_path / "m.csv")


@pytest.mark.parametrize("col,value,match", [
    ("offset", "soon", r"offset: expected a number of seconds, got 'soon' for ids 'b'"),
    ("offset", -1.0, r"offset: expected a finite number of seconds >= 0, got -1.0 for ids 'b'"),
    ("duration", 0.0, r"duration: expected a finite number of seconds > 0, got 0.0 for ids 'b'"),
    ("duration", np.inf, r"duration: .* got inf"),
])
def test_bad_offset_duration_names_row(tmp_path, col, value, match):
    df = pd.DataFrame({"id": ["a", "b"], "path": ["a.wav", "b.wav"], "label": "x", col: [1.0, value]})
    with pytest.raises(DataError, match=match):
        Manifest.from_frame(df, tmp_path)


def test_bad_offset_in_file_names_the_file(tmp_path):
    (tmp_path / "m.csv").write_text("id,path,label,offset\na,a.wav,x,1\nb,b.wav,x,1.5s\n")
    with pytest.raises(DataError, match=r"m.csv: offset: .*'1.5s' for ids 'b'"):
        Manifest.read(tmp_path / "m.csv")


def test_empty_path_is_an_error(tmp_path):
    with pytest.raises(DataError, match="empty path"):
        Manifest.from_frame(pd.DataFrame({"path": ["a.wav", ""], "label": "x"}), tmp_path)


def test_read_errors(tmp_path):
    with pytest.raises(DataError, match="manifest not found"):
        Manifest.read(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty file"):
        Manifest.read(tmp_path / "empty.csv")
    (tmp_path / "bad.jsonl").write_text('{"path": "a.wav", "label": "x"}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: expected a JSON object"):
        Manifest.read(tmp_path / "bad.jsonl")


def test_select(tmp_path, clips):
    df = _frame(clips, split=["train", "test"] * 3)
    m = Manifest.from_frame(df, tmp_path)
    assert len(m.select(split="train")) == 3
    assert len(m.select(split=["train", "test"], label="NA")) == 3
    assert m.select(split="test").root == m.root
    with pytest.raises(DataError, match="no clips with split 'valid'; splits present: test, train"):
        m.select(split="valid")
    with pytest.raises(DataError, match="no column 'genre'"):
        m.select(genre="rock")


def test_empty_split_and_group_cells_get_defaults(tmp_path):
    df = pd.DataFrame({"id": ["a", "b"], "path": ["a.wav", "b.wav"], "label": "x", "split": ["test", ""],
                       "group": ["", "band"]})
    m = Manifest.from_frame(df, tmp_path)
    assert list(m.splits) == ["test", "train"] and list(m.groups) == ["a", "band"]


def test_fold_column_is_int_after_read(tmp_path, clips):
    Manifest.from_frame(_frame(clips, fold=[0, 1, 2, 0, 1, 2]), tmp_path).write(tmp_path / "m.csv")
    assert Manifest.read(tmp_path / "m.csv").df["fold"].tolist() == [0, 1, 2, 0, 1, 2]


def test_select_compares_as_text_and_json_suffix_is_refused(tmp_path, clips):
    m = Manifest.from_frame(_frame(clips, pitch=[60, 61, 60, 61, 60, 61]), tmp_path)
    assert len(m.select(pitch=60)) == 3
    m.write(tmp_path / "m.csv")
    assert len(Manifest.read(tmp_path / "m.csv").select(pitch=[60])) == 3  # "60" after a CSV round trip
    with pytest.raises(DataError, match="not .json"):
        m.write(tmp_path / "m.json")
