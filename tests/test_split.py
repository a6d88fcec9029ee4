"""The leave-one-out split (the protocol of docs/data.md) and the dataset's input checks.

Protocol: for each user the last item is the test target, the second last the
validation target, every earlier position (from the 2nd item) a training
target; the history is the last MAX_ITEM_LIST_LENGTH items before the target
(for the test target it includes the validation item).
"""

import pytest
from recbole.data import data_preparation
from recbole.data.dataset import SequentialDataset

from recbole_genrec.config import GenRecConfig
from recbole_genrec.data.convert import DatasetFormatError
from recbole_genrec.data.dataset import GenRecDataset

# item indices deliberately unordered, with repeats, and users of 5-7 items
HAND = {0: [1, 2, 3, 4, 5], 1: [6, 7, 8, 9, 10, 11, 12], 2: [3, 1, 4, 1, 5, 9]}
MAX_LEN = 3


def expected_split(sequences, max_len):
    """{user: {"train": [(target, history), ...], "valid": [...], "test": [...]}} by hand."""
    out = {}
    for user, seq in sequences.items():
        n = len(seq)
        row = lambda i: (seq[i], seq[max(0, i - max_len):i])  # noqa: E731
        out[user] = {"train": [row(i) for i in range(1, n - 2)],
                     "valid": [row(n - 2)], "test": [row(n - 1)]}
    return out


def split_rows(dataset):
    """{user: [(target, history), ...]} of a split dataset, as integer item tokens."""
    feat = dataset.inter_feat
    rows = {}
    for uid, iid, hist, length in zip(feat["user_id"], feat["item_id"],
                                      feat["item_id_list"], feat["item_length"]):
        user = int(dataset.id2token("user_id", uid))
        target = int(dataset.id2token("item_id", iid))
        # (a list index: numpy treats a 1-element tensor as a scalar index)
        history = [int(t) for t in dataset.id2token("item_id", hist[:length].tolist())]
        assert (hist[length:] == 0).all()  # padding after the history
        rows.setdefault(user, []).append((target, history))
    return rows


def observed_split(config, dataset_class=GenRecDataset):
    dataset = dataset_class(config)
    train, valid, test = data_preparation(config, dataset)
    observed = {}
    for name, data in (("train", train), ("valid", valid), ("test", test)):
        for user, rows in split_rows(data._dataset).items():
            observed.setdefault(user, {})[name] = sorted(rows) if name == "train" else rows
    return observed, (train, valid, test)


def config_for(data_path, name, model="SASRec", **options):
    return GenRecConfig(model, name, config_dict={"data_path": str(data_path), **options})


@pytest.fixture
def hand(tmp_path, make_dataset):
    make_dataset(tmp_path / "data", "Hand", HAND)
    return tmp_path / "data"


def test_split_targets_and_histories_exact(hand):
    config = config_for(hand, "Hand", MAX_ITEM_LIST_LENGTH=MAX_LEN)
    observed, (train, valid, test) = observed_split(config)
    expected = expected_split(HAND, MAX_LEN)
    for user in expected:
        expected[user]["train"] = sorted(expected[user]["train"])
    assert observed == expected
    # spot checks, written out by hand
    assert observed[1]["test"] == [(12, [9, 10, 11])]        # history incl. the valid item 11
    assert observed[1]["valid"] == [(11, [8, 9, 10])]
    assert observed[0]["train"] == [(2, [1]), (3, [1, 2])]  # from the 2nd item on
    assert observed[2]["test"] == [(9, [4, 1, 5])]
    assert len(train._dataset) == sum(len(s) - 3 for s in HAND.values())


def test_eval_loaders_rank_the_split_targets(hand):
    """The full-ranking loaders hand the trainer the same targets as the split datasets."""
    config = config_for(hand, "Hand", MAX_ITEM_LIST_LENGTH=MAX_LEN)
    _, (_, valid, test) = observed_split(config)
    for loader, position in ((valid, -2), (test, -1)):
        ds = loader._dataset
        targets = {}
        for interaction, _, positive_u, positive_i in loader:
            users = interaction["user_id"][positive_u]
            for u, i in zip(users, positive_i):
                targets[int(ds.id2token("user_id", u))] = int(ds.id2token("item_id", i))
        assert targets == {u: seq[position] for u, seq in HAND.items()}


def test_default_history_length_is_20(tmp_path, make_dataset):
    long = {0: list(range(30)), 1: list(range(29, -1, -1))}
    make_dataset(tmp_path / "data", "Long", long)
    config = config_for(tmp_path / "data", "Long")
    assert config["MAX_ITEM_LIST_LENGTH"] == 20
    observed, _ = observed_split(config)
    expected = expected_split(long, 20)
    for user in expected:
        expected[user]["train"] = sorted(expected[user]["train"])
    assert observed == expected


def test_classic_and_generative_configs_share_the_dataset(hand):
    """SASRec/BERT4Rec (and generative models) load through the same dataset config."""
    sasrec = config_for(hand, "Hand")
    bert = config_for(hand, "Hand", model="BERT4Rec")
    for key in ("load_col", "eval_args", "MAX_ITEM_LIST_LENGTH", "sem_id_field"):
        assert sasrec[key] == bert[key]
    assert sasrec["load_col"]["item"] == ["item_id", "sem_ids"]


def test_split_identical_with_and_without_item_file(tiny_dataset):
    """Loading the .item file (needed by generative models for sem_ids) drops nothing."""
    with_item = config_for(tiny_dataset.data_path, tiny_dataset.name)
    assert "item" in with_item["load_col"]
    without_item = config_for(tiny_dataset.data_path, tiny_dataset.name,
                              load_col={"inter": ["user_id", "item_id", "timestamp"]})
    split_with, _ = observed_split(with_item)
    split_without, _ = observed_split(without_item)
    assert split_with == split_without
    assert split_with == {u: {k: sorted(v) if k == "train" else v for k, v in s.items()}
                          for u, s in expected_split(tiny_dataset.sequences, 20).items()}


def _drop_item_row(folder, name, token):
    path = folder / f"{name}.item"
    lines = path.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if ln.split("\t")[0] != token]
    assert len(kept) == len(lines) - 1
    path.write_text("".join(kept))
    return path


def test_recbole_alone_would_drop_interactions(tiny_dataset):
    """The trap this project guards against: RecBole's own dataset silently drops the
    interactions of an item missing from the .item file."""
    _drop_item_row(tiny_dataset.folder, tiny_dataset.name, "7")
    config = config_for(tiny_dataset.data_path, tiny_dataset.name)
    n = sum(len(s) for s in tiny_dataset.sequences.values())
    dropped = sum(s.count(7) for s in tiny_dataset.sequences.values())
    assert dropped > 0
    assert SequentialDataset(config).inter_num == n - dropped


def test_item_missing_from_item_file_is_an_error(tiny_dataset):
    path = _drop_item_row(tiny_dataset.folder, tiny_dataset.name, "7")
    config = config_for(tiny_dataset.data_path, tiny_dataset.name)
    with pytest.raises(DatasetFormatError) as e:
        GenRecDataset(config)
    msg = str(e.value)
    assert str(path) in msg and "item '7'" in msg and "no row" in msg


def _rewrite_column(path, column, transform):
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    out = []
    for i, line in enumerate(lines):
        cells = line.split("\t")
        cells = transform(i, header, cells)
        out.append("\t".join(cells))
    path.write_text("\n".join(out) + "\n")


def test_requested_column_missing_in_header(tiny_dataset):
    path = tiny_dataset.folder / f"{tiny_dataset.name}.item"
    _rewrite_column(path, "sem_ids", lambda i, header, cells: cells[:1])  # drop sem_ids
    config = config_for(tiny_dataset.data_path, tiny_dataset.name)
    with pytest.raises(DatasetFormatError) as e:
        GenRecDataset(config)
    msg = str(e.value)
    assert str(path) in msg and "sem_ids" in msg and "missing required field" in msg


def test_missing_timestamp_column_in_inter(tiny_dataset):
    path = tiny_dataset.folder / f"{tiny_dataset.name}.inter"
    _rewrite_column(path, "timestamp", lambda i, header, cells: cells[:2])
    config = config_for(tiny_dataset.data_path, tiny_dataset.name)
    with pytest.raises(DatasetFormatError) as e:
        GenRecDataset(config)
    assert str(path) in str(e.value) and "timestamp" in str(e.value)


def test_unequal_length_semantic_ids_in_item_file(tiny_dataset):
    path = tiny_dataset.folder / f"{tiny_dataset.name}.item"

    def shorten_item_5(i, header, cells):
        if cells[0] == "5":
            cells[1] = " ".join(cells[1].split(" ")[:2])
        return cells
    _rewrite_column(path, "sem_ids", shorten_item_5)
    config = config_for(tiny_dataset.data_path, tiny_dataset.name)
    with pytest.raises(DatasetFormatError) as e:
        GenRecDataset(config)
    msg = str(e.value)
    assert str(path) in msg and "unequal length" in msg and "item '5' has 2 levels" in msg


def test_empty_semantic_id_in_item_file(tiny_dataset):
    path = tiny_dataset.folder / f"{tiny_dataset.name}.item"

    def blank_item_9(i, header, cells):
        if cells[0] == "9":
            cells[1] = ""
        return cells
    _rewrite_column(path, "sem_ids", blank_item_9)
    config = config_for(tiny_dataset.data_path, tiny_dataset.name)
    with pytest.raises(DatasetFormatError) as e:
        GenRecDataset(config)
    assert str(path) in str(e.value) and "item '9' has an empty 'sem_ids'" in str(e.value)
