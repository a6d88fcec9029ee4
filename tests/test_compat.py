"""The RecBole 1.2.1 fixes of recbole_genrec/compat.py (and the traps they answer)."""

import importlib
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from recbole.config import Config
from recbole.data import data_preparation
from recbole.data.dataset import Dataset, SequentialDataset
from recbole.trainer import Trainer
from recbole.utils import init_seed

import recbole_genrec
from recbole_genrec import compat
from recbole_genrec.config import PROJECT_ROOT, GenRecConfig
from recbole_genrec.data.dataset import GenRecDataset
from recbole_genrec.registry import get_model
from recbole_genrec.trainer import SequentialTrainer

TINY_SASREC = {"hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1,
               "train_batch_size": 64, "eval_batch_size": 64, "epochs": 1}


# -- numpy 2 (RecBole issue #2215) ---------------------------------------------------

def test_numpy_legacy_aliases():
    # RecBole's own Config calls compatibility_settings(): np.float_ is gone in numpy 2
    assert not hasattr(np, "float_")
    config = Config(model="SASRec", dataset="ml-100k",
                    config_dict={"epochs": 1, "train_neg_sample_args": None})
    assert config["epochs"] == 1
    assert np.float is np.float64
    assert np.int is np.int_ and np.bool is np.bool_ and np.long is np.int_
    assert np.unicode is np.str_ and np.object is np.object_ and np.complex is np.complex128


# -- anomaly detection ---------------------------------------------------------------

def test_anomaly_detection_off_after_import():
    assert not torch.is_anomaly_enabled()
    get_model("SASRec")
    get_model("BERT4Rec")
    importlib.import_module("recbole.model.sequential_recommender.sine")
    assert not torch.is_anomaly_enabled()


def test_recbole_alone_turns_anomaly_detection_on():
    """The measured cause of RecBole's slow epochs, and the fix, in a fresh process."""
    script = (
        "import torch\n"
        "import recbole.model.sequential_recommender\n"
        "print(torch.is_anomaly_enabled())\n"
        "import recbole_genrec\n"
        "print(torch.is_anomaly_enabled())\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False"]


# -- checkpoints: plain data, loadable with weights_only=True -------------------------

def _trainer(tiny_dataset, seed):
    config = GenRecConfig("SASRec", tiny_dataset.name,
                          config_dict={**tiny_dataset.config, **TINY_SASREC, "seed": seed})
    init_seed(config["seed"], config["reproducibility"])
    dataset = GenRecDataset(config)
    train, valid, test = data_preparation(config, dataset)
    model = config.model_class(config, train._dataset)
    return config, SequentialTrainer(config, model), (train, valid, test)


def test_checkpoint_loads_with_weights_only(tiny_dataset, tmp_path):
    config, trainer, (train, valid, test) = _trainer(tiny_dataset, seed=1)
    trainer._train_epoch(train, 0)
    trainer.best_valid_score = 0.25
    path = tmp_path / "ckpt.pth"
    trainer._save_checkpoint(0, saved_model_file=str(path))

    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["epoch"] == 0 and checkpoint["best_valid_score"] == 0.25
    assert checkpoint["config"]["model"] == "SASRec"
    assert checkpoint["config"]["hidden_size"] == 8
    assert isinstance(checkpoint["config"]["eval_type"], str)  # enum stored by name
    assert set(checkpoint["state_dict"]) == set(trainer.model.state_dict())
    assert checkpoint["optimizer"]["state"]  # Adam moments after one epoch

    # a fresh model and trainer (another seed) resume from it
    _, resumed, _ = _trainer(tiny_dataset, seed=2)
    differs = any(not torch.equal(a, b) for a, b in zip(
        resumed.model.state_dict().values(), trainer.model.state_dict().values()))
    assert differs
    resumed.resume_checkpoint(str(path))
    assert resumed.start_epoch == 1 and resumed.best_valid_score == 0.25
    assert resumed.cur_step == trainer.cur_step
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    for a, b in zip(resumed.optimizer.state_dict()["state"].values(),
                    trainer.optimizer.state_dict()["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)

    # evaluate(load_best_model=True) reloads it too (RecBole's torch.load would fail)
    assert trainer.evaluate(test, load_best_model=True, model_file=str(path)) == \
        resumed.evaluate(test, load_best_model=False)


def test_recbole_trainer_reloads_its_best_checkpoint(tiny_dataset, tmp_path):
    """The trap: RecBole's Trainer pickled its Config, which torch.load's weights_only
    default refuses, so its own evaluate(load_best_model=True) failed.  Its checkpoints
    are plain data now: RecBole's fit -> evaluate path works, torch.load unpatched."""
    config, _, (train, valid, test) = _trainer(tiny_dataset, seed=1)
    model = config.model_class(config, train._dataset)
    trainer = Trainer(config, model)
    trainer.saved_model_file = str(tmp_path / "recbole.pth")
    trainer.fit(train, valid, verbose=False, saved=True)
    checkpoint = torch.load(trainer.saved_model_file, weights_only=True)
    assert checkpoint["config"]["model"] == "SASRec" and isinstance(checkpoint["config"], dict)
    result = trainer.evaluate(test, load_best_model=True)  # RecBole's own reload
    assert 0 <= result["ndcg@10"] <= 1
    resumed = Trainer(config, config.model_class(config, train._dataset))
    resumed.resume_checkpoint(trainer.saved_model_file)  # RecBole's own resume
    assert resumed.start_epoch == checkpoint["epoch"] + 1


def test_checkpoint_with_a_pickled_config_is_still_refused(tiny_dataset, tmp_path):
    """What is not covered: a checkpoint that holds RecBole's Config object (written
    without this project) is refused by weights_only loading, as torch intends."""
    config, _, _ = _trainer(tiny_dataset, seed=1)
    path = tmp_path / "pickled.pth"
    torch.save({"config": config, "state_dict": {}}, path)
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        torch.load(path, weights_only=True)


def test_torch_load_not_patched():
    assert torch.load.__module__ == "torch.serialization"


# -- pandas copy-on-write trap --------------------------------------------------------

GAP_ITEM = (
    "item_id:token\tsem_ids:token_seq\tbrand:token\ttitle:token_seq\n"
    "0\t0 0\tacme\tred pen\n"
    "1\t0 1\t\tblue pen\n"      # missing token value
    "2\t1 0\tacme\t\n"          # missing token_seq value
    "3\t1 1\tzeta\tink\n"
    "4\t2 0\t\tpaper\n"
    "5\t2 1\tzeta\tclip\n"
)


@pytest.fixture
def gap_config(tmp_path):
    folder = tmp_path / "data" / "Gap"
    folder.mkdir(parents=True)
    rows = [f"{u}\t{(u + p) % 6}\t{p}" for u in range(3) for p in range(5)]
    (folder / "Gap.inter").write_text(
        "user_id:token\titem_id:token\ttimestamp:float\n" + "\n".join(rows) + "\n")
    (folder / "Gap.item").write_text(GAP_ITEM)
    return GenRecConfig("SASRec", "Gap", config_dict={
        "data_path": str(tmp_path / "data"),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"],
                     "item": ["item_id", "sem_ids", "brand", "title"]}})


def _check_gap_dataset(dataset):
    data_preparation(dataset.config, dataset)
    item_feat = dataset.get_item_feature()
    brand = dict(zip(dataset.id2token("item_id", item_feat["item_id"][1:]),
                     dataset.id2token("brand", item_feat["brand"][1:])))
    assert brand == {"0": "acme", "1": "[PAD]", "2": "acme", "3": "zeta", "4": "[PAD]",
                     "5": "zeta"}
    assert int(item_feat["brand"].min()) >= 0  # no INT64_MIN
    title = item_feat["title"][dataset.token2id("item_id", "2")]
    assert (title == 0).all()  # empty token_seq: padding only


@pytest.mark.parametrize("copy_on_write", [False, True])
def test_missing_token_values(gap_config, copy_on_write):
    """Missing token / token_seq values load as padding, also when copy-on-write is on
    (the pandas 3 default, opt-in on pandas 2)."""
    with pd.option_context("mode.copy_on_write", copy_on_write):
        dataset = GenRecDataset(gap_config)
        _check_gap_dataset(dataset)


def test_recbole_alone_corrupts_under_copy_on_write(gap_config, monkeypatch):
    """The trap: RecBole's own fillna(inplace=True) is a no-op under copy-on-write;
    the methods compat puts in their place fill the same data correctly."""
    with pd.option_context("mode.copy_on_write", True):
        _check_gap_dataset(SequentialDataset(gap_config))
        for name, recbole_method in compat.RECBOLE_DATASET_METHODS.items():
            monkeypatch.setattr(Dataset, name, recbole_method)
        gap_config["load_col"]["item"] = ["item_id", "brand"]  # (title would crash outright)
        with pytest.warns(Warning, match="through chained assignment using an inplace method"):
            dataset = SequentialDataset(gap_config)
        data_preparation(gap_config, dataset)
        assert int(dataset.get_item_feature()["brand"].min()) == np.iinfo(np.int64).min


def test_dataset_loads_without_pandas_warnings(gap_config):
    """RecBole's chained-assignment fills and Series.agg(len) warned on every run."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        _check_gap_dataset(GenRecDataset(gap_config))


def test_pandas_3_is_refused(monkeypatch):
    assert int(pd.__version__.split(".")[0]) < 3  # the pinned stack
    monkeypatch.setattr(pd, "__version__", "3.0.0")
    with pytest.raises(ImportError, match=r"needs pandas < 3 \(found 3\.0\.0\)"):
        importlib.reload(compat)
    monkeypatch.undo()
    importlib.reload(compat)
    assert not torch.is_anomaly_enabled()
    assert recbole_genrec.compat is compat
