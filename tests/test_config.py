"""Registries, configuration errors and option precedence."""

import sys

import pytest

import run_recbole_genrec
from recbole_genrec import registry
from recbole_genrec.cli import parse_overrides
from recbole_genrec.config import DATASET_ROOT, PROPERTIES, ConfigError, GenRecConfig
from recbole_genrec.trainer import SequentialTrainer


# -- registries ---------------------------------------------------------------------

def test_classic_models_resolve_to_recbole():
    from recbole.model.sequential_recommender import BERT4Rec, SASRec
    assert registry.get_model("SASRec") is SASRec
    assert registry.get_model("BERT4Rec") is BERT4Rec
    assert not registry.is_generative(SASRec)
    assert registry.get_trainer(SASRec) is SequentialTrainer
    names = registry.model_names()
    assert "SASRec" in names and "BERT4Rec" in names and "GRU4Rec" in names


def test_generative_models_resolve_first():
    for name, cls in registry.GENERATIVE_MODELS.items():
        assert registry.get_model(name) is cls
        assert registry.is_generative(cls)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError) as e:
        registry.get_model("SASRek")
    msg = str(e.value)
    assert "unknown model 'SASRek'" in msg and "--model" in msg
    for name in ("SASRec", "BERT4Rec", "GRU4Rec", *registry.GENERATIVE_MODELS):
        assert name in msg


def test_unknown_model_through_the_entry_point():
    # not RecBole's unrelated "No module named lightgbm" failure
    with pytest.raises(ValueError, match=r"unknown model 'Nope'.*SASRec"):
        run_recbole_genrec.main(["--model=Nope", "--dataset=Office"])


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError) as e:
        registry.get_loss("apoa")
    msg = str(e.value)
    assert "unknown loss 'apoa'" in msg and "--loss" in msg and "Valid losses:" in msg
    for name in registry.loss_names():
        assert name in msg
    for name in registry.loss_names():
        assert registry.get_loss(name) is registry.LOSSES[name]


def test_unknown_loss_for_a_generative_model():
    if not registry.GENERATIVE_MODELS:
        pytest.skip("no generative model registered yet")
    model = sorted(registry.GENERATIVE_MODELS)[0]
    with pytest.raises(ValueError, match=r"unknown loss 'apoa' \(option --loss\)"):
        GenRecConfig(model, "Office", cmd_overrides={"loss": "apoa"})
    if registry.loss_names():  # a combination: each part is checked
        with pytest.raises(ValueError, match=r"unknown loss 'nope'"):
            GenRecConfig(model, "Office",
                         cmd_overrides={"loss": f"{registry.loss_names()[0]}+nope"})


def test_loss_with_a_classic_model_is_an_error():
    with pytest.raises(ConfigError, match=r"--loss=ce applies to generative models only; SASRec"):
        GenRecConfig("SASRec", "Office", cmd_overrides={"loss": "ce"})
    with pytest.raises(ConfigError, match=r"--loss=ce"):
        GenRecConfig("BERT4Rec", "Office", config_dict={"loss": "ce"})


def test_init_from_with_a_classic_model_is_an_error(tmp_path):
    # (it used to fail later with "'SequentialTrainer' object has no attribute ...")
    with pytest.raises(ConfigError, match=r"--init_from=x\.pth applies to generative models"):
        GenRecConfig("SASRec", "Office", cmd_overrides={"init_from": "x.pth"})
    path = tmp_path / "mine.yaml"
    path.write_text("init_from: y.pth\n")
    with pytest.raises(ConfigError, match=r"--init_from=y\.pth"):
        GenRecConfig("BERT4Rec", "Office", config_file_list=[str(path)])


# -- unknown options and malformed files ---------------------------------------------

def test_unknown_option_in_overrides_with_suggestion():
    with pytest.raises(ConfigError) as e:
        GenRecConfig("SASRec", "Office", cmd_overrides={"epoch": "1"})
    msg = str(e.value)
    assert "unknown option 'epoch'" in msg and "did you mean" in msg and "epochs" in msg


def test_unknown_option_in_config_dict():
    with pytest.raises(ConfigError, match=r"unknown option 'hiden_size'.*did you mean.*hidden_size"):
        GenRecConfig("SASRec", "Office", config_dict={"hiden_size": 8})


def test_unknown_option_in_config_file_names_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("epochs: 3\nlearing_rate: 0.01\n")
    with pytest.raises(ConfigError) as e:
        GenRecConfig("SASRec", "Office", config_file_list=[str(path)])
    msg = str(e.value)
    assert f"unknown option 'learing_rate' in {path}" in msg and "learning_rate" in msg


def test_model_specific_option_is_known_only_for_that_model():
    GenRecConfig("BERT4Rec", "Office", cmd_overrides={"mask_ratio": "0.3"})
    with pytest.raises(ConfigError, match="unknown option 'mask_ratio'"):
        GenRecConfig("SASRec", "Office", cmd_overrides={"mask_ratio": "0.3"})


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("epochs: 3\nlearning_rate: [0.1, 0.2\n")
    with pytest.raises(ConfigError) as e:
        GenRecConfig("SASRec", "Office", config_file_list=[str(path)])
    assert str(e.value).startswith(f"{path}: malformed YAML")


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- epochs\n- 3\n")
    with pytest.raises(ConfigError, match=rf"{path}: expected a mapping"):
        GenRecConfig("SASRec", "Office", config_file_list=[str(path)])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .*nowhere\.yaml not found"):
        GenRecConfig("SASRec", "Office", config_file_list=[str(tmp_path / "nowhere.yaml")])


def test_malformed_yaml_through_the_entry_point(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("epochs: [\n")
    with pytest.raises(ConfigError, match="broken.yaml: malformed YAML"):
        run_recbole_genrec.main(["--model=SASRec", f"--config_files={path}"])


# -- command line --------------------------------------------------------------------

def test_parse_overrides():
    assert parse_overrides(["--epochs=2", "--model=SASRec", "--x=a=b", "--empty="]) == \
        {"epochs": "2", "model": "SASRec", "x": "a=b", "empty": ""}
    assert parse_overrides(["--epochs=2", "--epochs=2"]) == {"epochs": "2"}


@pytest.mark.parametrize("argv, fragment", [
    (["epochs=2"], "'epochs=2' is not of the form --key=value"),
    (["--epochs"], "'--epochs' is not of the form --key=value"),
    (["-e=2"], "'-e=2' is not of the form"),
    (["--=2"], "'--=2' is not of the form"),
    (["--epochs=2", "--epochs=3"], "option --epochs given twice"),
])
def test_parse_overrides_errors(argv, fragment):
    with pytest.raises(SystemExit) as e:
        parse_overrides(argv)
    assert fragment in str(e.value)


def test_config_ignores_sys_argv(monkeypatch):
    """RecBole's Config parses sys.argv; ours takes overrides explicitly."""
    monkeypatch.setattr(sys, "argv", ["pytest", "--epochs=5", "-q", "--tb=short"])
    config = GenRecConfig("SASRec", "Office")
    assert config["epochs"] == 200


# -- precedence ----------------------------------------------------------------------

def test_precedence(tmp_path):
    """RecBole default < properties/overall.yaml < --config_files < config_dict < command line."""
    path = tmp_path / "mine.yaml"
    path.write_text("epochs: 7\nlearning_rate: 0.01\nstopping_step: 4\ntrain_batch_size: 64\n")
    base = GenRecConfig("SASRec", "Office")
    assert base["MAX_ITEM_LIST_LENGTH"] == 20   # overall.yaml beats RecBole's 50
    assert base["epochs"] == 200                # overall.yaml
    assert base["hidden_size"] == 64            # RecBole's SASRec.yaml

    config = GenRecConfig("SASRec", "Office", config_file_list=[str(path)],
                          config_dict={"learning_rate": 0.002, "stopping_step": 9},
                          cmd_overrides={"stopping_step": "3", "hidden_size": "8"})
    assert config["train_batch_size"] == 64     # file beats RecBole default
    assert config["epochs"] == 7                # file beats overall.yaml
    assert config["learning_rate"] == 0.002     # config_dict beats file
    assert config["stopping_step"] == 3         # command line beats config_dict and file
    assert config["hidden_size"] == 8           # command line beats RecBole's model yaml
    assert isinstance(config["stopping_step"], int)


def test_later_config_file_wins(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("epochs: 7\nstopping_step: 2\n")
    b.write_text("epochs: 9\n")
    config = GenRecConfig("SASRec", "Office", config_file_list=[str(a), str(b)])
    assert config["epochs"] == 9 and config["stopping_step"] == 2


def test_protocol_defaults():
    config = GenRecConfig("SASRec", "Office")
    assert config["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert config["eval_args"]["order"] == "TO"
    assert config["eval_args"]["mode"] == {"valid": "full", "test": "full"}
    assert config["topk"] == [5, 10, 20]
    assert config["valid_metric"] == "NDCG@10"
    assert [m.lower() for m in config["metrics"]] == ["recall", "ndcg", "hit", "mrr"]
    assert config["data_path"] == str(DATASET_ROOT / "Office")
    assert config["loss"] is None
    assert (PROPERTIES / "overall.yaml").is_file()


def test_loss_from_config_file(tmp_path, tiny_dataset):
    """``loss:`` in a --config_files YAML selects the loss (and its property file)."""
    from recbole_genrec.config import GenRecConfig

    path = tmp_path / "exp.yaml"
    path.write_text("loss: bear\n")
    config = GenRecConfig("TIGER", tiny_dataset.name, config_file_list=[str(path)],
                          config_dict=tiny_dataset.config)
    assert config["loss"] == "bear" and config["bear_lambda"] is not None
    # the command line still wins
    config = GenRecConfig("TIGER", tiny_dataset.name, config_file_list=[str(path)],
                          config_dict=tiny_dataset.config, cmd_overrides={"loss": "msl"})
    assert config["loss"] == "msl" and config["msl_tau"] is not None
