"""The JSON -> RecBole atomic-file converter (recbole_genrec/data/convert.py)."""

import csv
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import code_tokens, write_json_dataset
from recbole_genrec.config import PROJECT_ROOT
from recbole_genrec.data.convert import DatasetFormatError, convert, main

# users deliberately out of numeric order (and "10" < "2" as strings)
SEQUENCES = {10: [3, 1, 2, 1, 0], 2: [0, 4, 1, 3, 2, 5], 0: [5, 4, 3, 2, 1]}
CODES = {0: [1, 0, 3], 1: [2, 2, 0], 2: [0, 0, 0], 3: [3, 1, 2], 4: [1, 1, 1], 5: [0, 3, 2],
         6: [2, 0, 1]}  # item 6: in the catalogue, never interacted with
TEXTS = {
    0: {"title": 'The "Best" Stapler', "description": "line one\nline two\r\nend",
        "brand": "Acme\tCorp", "categories": "Office, Staplers"},
    1: {"title": "Plain pen", "description": "", "brand": None, "categories": "Pens"},
    2: {"title": 'Tab\tand "quote"', "description": "ok", "brand": "B", "categories": "C"},
    # items 3..6 have no text record
}


def read_atomic(path):
    """Read an atomic file as RecBole does (tab separated, all columns as strings)."""
    return pd.read_csv(path, delimiter="\t", dtype=str, engine="python", keep_default_na=False)


@pytest.fixture
def src(tmp_path):
    return write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES, TEXTS)


def test_round_trip_interactions(src, tmp_path):
    report = convert(src, tmp_path / "out", "Toy")
    inter = read_atomic(tmp_path / "out" / "Toy.inter")
    assert list(inter.columns) == ["user_id:token", "item_id:token", "timestamp:float"]
    # sorted by user (numerically), then position; timestamp = position in the sequence
    rows = [(int(u), int(i), float(t)) for u, i, t in inter.itertuples(index=False)]
    expected = [(u, item, float(pos)) for u in sorted(SEQUENCES)
                for pos, item in enumerate(SEQUENCES[u])]
    assert rows == expected
    # timestamps are written as integers (exact in RecBole's float32 storage)
    assert all("." not in t for t in inter["timestamp:float"])

    assert report.n_users == 3
    assert report.n_items == 7
    assert report.n_interactions == sum(map(len, SEQUENCES.values()))
    assert report.n_levels == 3
    assert report.items_without_interactions == 1
    assert report.files == [str(tmp_path / "out" / "Toy.inter"), str(tmp_path / "out" / "Toy.item")]
    assert "3 users, 7 items, 16 interactions, 3-level" in report.summary()


def test_round_trip_items_and_text(src, tmp_path):
    report = convert(src, tmp_path / "out", "Toy")
    item = read_atomic(tmp_path / "out" / "Toy.item")
    assert list(item.columns) == ["item_id:token", "sem_ids:token_seq", "title:token_seq",
                                  "description:token_seq", "brand:token_seq",
                                  "categories:token_seq"]
    assert [int(i) for i in item["item_id:token"]] == sorted(CODES)
    assert [list(map(int, s.split(" "))) for s in item["sem_ids:token_seq"]] == \
        [CODES[i] for i in sorted(CODES)]
    rows = {int(r["item_id:token"]): r for _, r in item.iterrows()}
    # quotes survive (CSV quoting undone by the pandas reader); tabs/newlines -> spaces
    assert rows[0]["title:token_seq"] == 'The "Best" Stapler'
    assert rows[0]["description:token_seq"] == "line one line two end"
    assert rows[0]["brand:token_seq"] == "Acme Corp"
    assert rows[2]["title:token_seq"] == 'Tab and "quote"'
    assert rows[1]["brand:token_seq"] == ""          # None -> empty
    assert rows[5]["title:token_seq"] == ""          # no text record -> empty fields
    # every line has the same number of tab-separated columns
    with open(tmp_path / "out" / "Toy.item", newline="") as f:
        assert {len(r) for r in csv.reader(f, delimiter="\t")} == {6}
    # fields changed: item 0 description + brand, item 2 title
    assert report.text_fields_whitespace_normalised == 3


def test_without_item_json_only_semantic_ids(tmp_path):
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES)
    report = convert(src, tmp_path / "out", "Toy")
    item = read_atomic(tmp_path / "out" / "Toy.item")
    assert list(item.columns) == ["item_id:token", "sem_ids:token_seq"]
    assert report.text_fields_whitespace_normalised == 0


def test_recbole_reads_converted_files(src, tmp_path):
    """The converted files load in RecBole with every field intact."""
    from recbole_genrec.config import GenRecConfig
    from recbole_genrec.data.dataset import GenRecDataset

    convert(src, tmp_path / "data" / "Toy", "Toy")
    config = GenRecConfig("SASRec", "Toy", config_dict={
        "data_path": str(tmp_path / "data"),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"],
                     "item": ["item_id", "sem_ids", "title", "brand"]}})
    dataset = GenRecDataset(config)
    assert dataset.inter_num == 16
    assert dataset.user_num == 3 + 1  # + padding
    item_feat = dataset.item_feat
    iid = dataset.token2id("item_id", "0")
    title = dataset.id2token("title", item_feat["title"][iid][item_feat["title"][iid] > 0])
    assert " ".join(title) == 'The "Best" Stapler'
    sem = dataset.id2token("sem_ids", item_feat["sem_ids"][iid])
    assert list(map(int, sem)) == CODES[0]


def test_cli_main(src, tmp_path, capsys):
    main(["--src", str(src), "--dst", str(tmp_path / "cli"), "--name", "Toy"])
    out = capsys.readouterr().out
    assert "Toy: 3 users, 7 items, 16 interactions" in out
    assert f"wrote {tmp_path / 'cli' / 'Toy.inter'}" in out
    assert (tmp_path / "cli" / "Toy.item").is_file()


def test_cli_name_defaults_to_src_folder(tmp_path):
    src = write_json_dataset(tmp_path / "Shop", "Shop", SEQUENCES, CODES)
    proc = subprocess.run([sys.executable, "-m", "recbole_genrec.data.convert",
                           "--src", str(src), "--dst", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "Shop: 3 users" in proc.stdout
    assert (tmp_path / "out" / "Shop.inter").is_file()


# -- bad input: every error names the file and the offending item/field -----------

def test_item_without_semantic_id(tmp_path):
    codes = {i: c for i, c in CODES.items() if i != 4}
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, codes)
    with pytest.raises(DatasetFormatError) as e:
        convert(src, tmp_path / "out", "Toy")
    msg = str(e.value)
    assert "Toy.index.rq-kmeans.json" in msg and "item 4" in msg and "no semantic ID" in msg
    assert not (tmp_path / "out" / "Toy.inter").exists()  # nothing half-written


def test_semantic_ids_of_unequal_length(tmp_path):
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES)
    index = src / "Toy.index.rq-kmeans.json"
    raw = json.loads(index.read_text())
    raw["3"] = code_tokens([3, 1, 2, 0])
    index.write_text(json.dumps(raw))
    with pytest.raises(DatasetFormatError) as e:
        convert(src, tmp_path / "out", "Toy")
    msg = str(e.value)
    assert str(index) in msg and "item 3" in msg and "unequal length" in msg


@pytest.mark.parametrize("bad", [["<a_1>", "b_2", "<c_3>"], ["<a_1>", 2, "<c_3>"], []])
def test_malformed_code_tokens(tmp_path, bad):
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES)
    index = src / "Toy.index.rq-kmeans.json"
    raw = json.loads(index.read_text())
    raw["2"] = bad
    index.write_text(json.dumps(raw))
    with pytest.raises(DatasetFormatError, match=r"Toy\.index\.rq-kmeans\.json: item 2"):
        convert(src, tmp_path / "out", "Toy")


@pytest.mark.parametrize("which", ["inter", "index.rq-kmeans", "item"])
def test_malformed_json(tmp_path, which):
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES, TEXTS)
    path = src / f"Toy.{which}.json"
    path.write_text(path.read_text()[:-5])  # truncated
    with pytest.raises(DatasetFormatError) as e:
        convert(src, tmp_path / "out", "Toy")
    assert str(path) in str(e.value) and "not valid JSON" in str(e.value)


def test_non_integer_user_key(tmp_path):
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES)
    (src / "Toy.inter.json").write_text(json.dumps({"0": [1, 2], "alice": [3, 4]}))
    with pytest.raises(DatasetFormatError) as e:
        convert(src, tmp_path / "out", "Toy")
    msg = str(e.value)
    assert "Toy.inter.json" in msg and "user key 'alice'" in msg


def test_non_integer_item_key(tmp_path):
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES)
    index = src / "Toy.index.rq-kmeans.json"
    raw = json.loads(index.read_text())
    raw["item7"] = code_tokens([1, 2, 3])
    index.write_text(json.dumps(raw))
    with pytest.raises(DatasetFormatError) as e:
        convert(src, tmp_path / "out", "Toy")
    msg = str(e.value)
    assert "Toy.index.rq-kmeans.json" in msg and "item key 'item7'" in msg


def test_non_integer_item_in_sequence(tmp_path):
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES)
    (src / "Toy.inter.json").write_text(json.dumps({"0": [1, "2"], "1": [3, 4]}))
    with pytest.raises(DatasetFormatError, match=r"Toy\.inter\.json: user 0: item indices"):
        convert(src, tmp_path / "out", "Toy")


def test_empty_sequence(tmp_path):
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES)
    (src / "Toy.inter.json").write_text(json.dumps({"0": [1, 2], "5": []}))
    with pytest.raises(DatasetFormatError, match=r"Toy\.inter\.json: user 5"):
        convert(src, tmp_path / "out", "Toy")


def test_missing_required_file(tmp_path):
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES)
    (src / "Toy.index.rq-kmeans.json").unlink()
    with pytest.raises(DatasetFormatError, match=r"Toy\.index\.rq-kmeans\.json: file not found"):
        convert(src, tmp_path / "out", "Toy")


def test_item_json_not_an_object(tmp_path):
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES, TEXTS)
    (src / "Toy.item.json").write_text(json.dumps(["title"]))
    with pytest.raises(DatasetFormatError, match=r"Toy\.item\.json"):
        convert(src, tmp_path / "out", "Toy")
    (src / "Toy.item.json").write_text(json.dumps({"0": "just a title"}))
    with pytest.raises(DatasetFormatError, match=r"Toy\.item\.json: item 0"):
        convert(src, tmp_path / "out", "Toy")


# -- data that would be silently dropped is an error (issue 12) -------------------

def test_user_listed_three_times_is_an_error(tmp_path):
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES)
    (src / "Toy.inter.json").write_text('{"0": [1, 2], "1": [3, 4], "0": [5], "0": [2, 3]}')
    with pytest.raises(DatasetFormatError, match=r"key '0' is listed 3 times \(.*Toy\.inter\.json\)"
                                                 r"; merge its entries into one"):
        convert(src, tmp_path / "out", "Toy")
    assert not (tmp_path / "out").exists()  # nothing written


def test_same_user_under_two_spellings_is_an_error(tmp_path):
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES)
    (src / "Toy.inter.json").write_text(json.dumps({"7": [1, 2], "07": [3, 4]}))
    with pytest.raises(DatasetFormatError, match=r"user '07' is user 7 again"):
        convert(src, tmp_path / "out", "Toy")


def test_item_listed_twice_in_the_index_is_an_error(tmp_path):
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES)
    index = src / "Toy.index.rq-kmeans.json"
    index.write_text(index.read_text()[:-1] + ', "3": ["<a_0>", "<b_0>", "<c_0>"]}')
    with pytest.raises(DatasetFormatError, match=r"key '3' is listed 2 times"):
        convert(src, tmp_path / "out", "Toy")


@pytest.mark.parametrize("which, fragment", [("inter", "no users"), ("index.rq-kmeans", "no items")])
def test_empty_input_is_an_error(tmp_path, which, fragment):
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES)
    (src / f"Toy.{which}.json").write_text("{}")
    with pytest.raises(DatasetFormatError, match=fragment):
        convert(src, tmp_path / "out", "Toy")


def test_text_of_an_item_without_semantic_id_is_an_error(tmp_path):
    src = write_json_dataset(tmp_path / "src", "Toy", SEQUENCES, CODES,
                             {**TEXTS, 999: {"title": "ghost"}})
    with pytest.raises(DatasetFormatError, match=r"1 item text record\(s\) for items without a "
                                                 r"semantic ID \(first: 999\)"):
        convert(src, tmp_path / "out", "Toy")


def test_missing_source_folder_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "recbole_genrec.data.convert",
                           f"--src={tmp_path / 'nope'}", f"--dst={tmp_path / 'out'}"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: source folder {tmp_path / 'nope'} does not exist (--src); give the folder that "
        "holds <D>.inter.json and <D>.index.rq-kmeans.json (format: docs/data.md)"]


def test_atomic_item_file_with_a_repeated_item_is_an_error(tmp_path):
    from recbole_genrec.data.import_atomic import import_atomic

    src = tmp_path / "src"
    src.mkdir()
    (src / "Mine.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n1\t10\t5\n")
    (src / "Mine.item").write_text("item_id:token\ttitle:token_seq\n10\ta\n10\tb\n")
    with pytest.raises(DatasetFormatError, match=r"item '10' has 2 rows \(.*Mine\.item\)"):
        import_atomic(src, tmp_path / "out", "Mine")
    (src / "Mine.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n")
    with pytest.raises(DatasetFormatError, match=r"no interactions \(.*Mine\.inter\)"):
        import_atomic(src, tmp_path / "out", "Mine")
