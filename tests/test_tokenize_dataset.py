"""A user's own RecBole dataset end to end: import_atomic -> tokenize -> TIGER; the
missing-sem_ids error; the converter's report on imported codes."""

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_sequences_and_codes, write_json_dataset
from generative_setup import TINY_ARCH
from recbole_genrec.data.convert import DatasetFormatError, convert
from recbole_genrec.data.convert import main as convert_main
from recbole_genrec.data.import_atomic import import_atomic
from recbole_genrec.quick_start import run
from recbole_genrec.tokenizer.settings import load_settings
from recbole_genrec.tokenizer.tokenize_dataset import tokenize_dataset


def write_raw_atomic(folder, name="Mine"):
    """A RecBole-style raw dataset: Unix timestamps (with ties), ratings, item titles,
    no semantic IDs.  Returns (folder, sequences in time order)."""
    sequences, _ = tiny_sequences_and_codes()
    folder.mkdir(parents=True)
    rows = [(pos, user, f"{user + 1}\t{item + 1}\t3\t{880_000_000 + 60 * (pos // 2)}")
            for user, seq in sequences.items() for pos, item in enumerate(seq)]
    # users interleaved (and not in id order); each user's rows in sequence order, two
    # per timestamp, so ties must keep their file order
    lines = [line for _, _, line in sorted(rows, key=lambda r: (r[0], -r[1]))]
    (folder / f"{name}.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "\n".join(lines) + "\n")
    items = sorted({i for s in sequences.values() for i in s})
    (folder / f"{name}.item").write_text(
        "item_id:token\ttitle:token_seq\n" + "".join(f"{i + 1}\tthing {i}\n" for i in items))
    (folder / f"{name}.user").write_text("user_id:token\tage:token\n1\t20\n")
    return folder, sequences


def tiger_options(data_path):
    return {"data_path": str(data_path), **TINY_ARCH["TIGER"], "train_batch_size": 64,
            "micro_batch_size": 32, "eval_batch_size": 64, "epochs": 1, "beam_size": 20,
            "pruning_rate_users": 8}


def test_import_atomic_orders_by_time_and_keeps_columns(tmp_path):
    src, sequences = write_raw_atomic(tmp_path / "raw" / "Mine")
    report = import_atomic(src, tmp_path / "data" / "Mine")
    inter = pd.read_csv(tmp_path / "data" / "Mine" / "Mine.inter", sep="\t", dtype=str)
    assert list(inter.columns) == ["user_id:token", "item_id:token", "timestamp:float",
                                   "rating:float", "source_timestamp:float"]
    for user, seq in sequences.items():
        rows = inter[inter["user_id:token"] == str(user + 1)]
        assert rows["item_id:token"].astype(int).tolist() == [i + 1 for i in seq]
        assert rows["timestamp:float"].astype(int).tolist() == list(range(len(seq)))
    assert report.n_interactions == sum(map(len, sequences.values()))
    assert report.same_time_interactions > 0
    assert (tmp_path / "data" / "Mine" / "Mine.user").is_file()
    assert "interactions share their user's timestamp" in report.summary()


def test_import_atomic_refuses_items_without_a_row(tmp_path):
    src, _ = write_raw_atomic(tmp_path / "raw" / "Mine")
    lines = (src / "Mine.item").read_text().splitlines()
    (src / "Mine.item").write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(DatasetFormatError, match="has no row; .* interactions affected"):
        import_atomic(src, tmp_path / "data" / "Mine")


def test_tiger_without_sem_ids_names_the_tokenize_command_then_runs(tmp_path):
    src, _ = write_raw_atomic(tmp_path / "raw" / "Mine")
    data = tmp_path / "data"
    import_atomic(src, data / "Mine")
    for model in ("TIGER", "SASRec"):
        extra = tiger_options(data) if model == "TIGER" else {"data_path": str(data)}
        with pytest.raises(DatasetFormatError) as caught:
            run(model, "Mine", config_dict=extra, saved=False)
        message = str(caught.value)
        assert "missing required field 'sem_ids'" in message
        assert f"python -m recbole_genrec.tokenize --dataset=Mine --data_path={data}" in message

    n_items = len(pd.read_csv(data / "Mine" / "Mine.item", sep="\t"))
    embeddings = np.random.default_rng(0).normal(size=(n_items, 8)).astype(np.float32)
    np.save(tmp_path / "emb.npy", embeddings)
    tokenize_dataset(load_settings({"dataset": "Mine", "data_path": str(data),
                                    "embeddings": str(tmp_path / "emb.npy"),
                                    "levels": 3, "codebook_size": 4}), log=lambda *a: None)
    result = run("TIGER", "Mine", config_dict=tiger_options(data), saved=False)
    assert set(result["test"]) >= {"recall@10", "ndcg@10"}


def test_first_use_of_an_atomic_shared_dataset_imports_it_then_asks_for_codes(
        tmp_path, monkeypatch):
    write_raw_atomic(tmp_path / "shared" / "Mine")
    monkeypatch.setattr("recbole_genrec.quick_start.SHARED_DATA", tmp_path / "shared")
    data = tmp_path / "data"
    with pytest.raises(DatasetFormatError, match="python -m recbole_genrec.tokenize "
                                                 f"--dataset=Mine --data_path={data}"):
        run("TIGER", "Mine", config_dict=tiger_options(data), saved=False)
    assert (data / "Mine" / "Mine.inter").is_file() and (data / "Mine" / "Mine.item").is_file()


def test_ml_100k_is_read_from_data_path_not_recboles_bundled_copy(tmp_path):
    from recbole_genrec.config import GenRecConfig
    config = GenRecConfig("SASRec", "ml-100k", config_dict={"data_path": str(tmp_path)})
    assert config["data_path"] == str(tmp_path / "ml-100k")


def test_missing_item_file_names_the_tokenize_command(tmp_path):
    src, _ = write_raw_atomic(tmp_path / "raw" / "Mine")
    import_atomic(src, tmp_path / "data" / "Mine")
    (tmp_path / "data" / "Mine" / "Mine.item").unlink()
    with pytest.raises(DatasetFormatError, match="Mine.item: file not found .*\n.*"
                                                 "python -m recbole_genrec.tokenize"):
        run("TIGER", "Mine", config_dict=tiger_options(tmp_path / "data"), saved=False)


def test_converter_reports_shared_codes(tmp_path, capsys):
    sequences = {0: [0, 1, 2, 3, 4], 1: [4, 3, 2, 1, 0]}
    codes = {0: [1, 2], 1: [1, 2], 2: [1, 2], 3: [0, 1], 4: [3, 3]}
    src = write_json_dataset(tmp_path / "src", "Dup", sequences, codes)
    report = convert(src, tmp_path / "out", "Dup")
    assert report.code_quality["collisions"]["items_sharing_a_code"] == 3
    assert report.code_quality["collisions"]["largest_group"] == 3
    assert "3 of 5 items share 1 full codes (largest group: 3 items)" in report.summary()
    convert_main(["--src", str(src), "--dst", str(tmp_path / "out2"), "--name", "Dup"])
    out = capsys.readouterr().out
    assert "Dup imported codes: 5 items, 2 levels" in out
    assert "fan-out" in out
