"""Option types and ranges declared in the property files (recbole_genrec/option_specs.py)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_genrec.config import ConfigError, GenRecConfig
from recbole_genrec.option_specs import parse_spec, read_specs

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROPERTY_FILES = sorted((PROJECT_ROOT / "properties").rglob("*.yaml"))


@pytest.mark.parametrize("spec, good, bad", [
    ("float >= 0", [0, 0.5, 3], [-1e-9, "abc", True, float("nan"), float("inf"), None]),
    ("float > 0, < 1", [0.5, 1e-9], [0, 1, 2]),
    ("int >= 1", [1, 7], [0, 1.5, "2", False]),
    ("int >= 1 or ~", [None, 3], [0]),
    ("bool", [True, False], [0, 1, "true"]),
    ("pointwise | pairwise", ["pointwise", "pairwise"], ["x", None]),
])
def test_spec_accepts_exactly_its_range(spec, good, bad):
    parsed = parse_spec("opt", spec)
    assert all(parsed.accepts(v) for v in good), [v for v in good if not parsed.accepts(v)]
    assert not any(parsed.accepts(v) for v in bad), [v for v in bad if parsed.accepts(v)]


def test_spec_descriptions():
    assert parse_spec("a", "float > 0, <= 1").describe() == "a float > 0, <= 1"
    assert parse_spec("a", "int >= 1 or ~").describe() == "an int >= 1 or ~ (None)"
    assert parse_spec("a", "x | y").describe() == "one of x, y"


def test_malformed_spec_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: 1  # {integer >= 0} text\n")
    with pytest.raises(ValueError, match=r"bad.yaml:1: option spec \{integer >= 0\} of a"):
        read_specs(path)


@pytest.mark.parametrize("path", PROPERTY_FILES, ids=lambda p: p.name)
def test_every_property_file_parses_and_its_defaults_are_in_range(path):
    """Every declared default satisfies its own spec (a typo in a spec fails here)."""
    from recbole_genrec.config import read_yaml

    values = read_yaml(path)
    for name, spec in read_specs(path).items():
        if name in values:
            assert spec.accepts(values[name]), f"{spec.source}: default {values[name]!r}"


def test_numeric_options_of_every_loss_are_declared():
    """The bad values that issue 12 found silently training the wrong thing."""
    specs = {}
    for path in PROPERTY_FILES:
        specs.update(read_specs(path))
    for name, bad in [("apao_beta", -1), ("apao_eta", -5), ("pref_beta", -1), ("epochs", -1),
                      ("bear_xi", 0), ("msl_tau", 0), ("eval_chunk_users", 0),
                      ("learning_rate", 0), ("beam_size", "abc")]:
        assert name in specs and not specs[name].accepts(bad), name


@pytest.mark.parametrize("model, loss, option, value, fragment", [
    ("TIGER", "apao", "apao_beta", "-1", "apao_beta=-1 is not a float >= 0"),
    ("TIGER", "apao", "apao_beta", "abc", "apao_beta='abc' is not a float >= 0"),
    ("TIGER", "dpo", "pref_beta", "-1", "pref_beta=-1 is not a float > 0"),
    ("TIGER", "ce", "epochs", "-1", "epochs=-1 is not an int >= 0"),
    ("LlamaGR", "ce", "beam_size", "abc", "beam_size='abc' is not an int >= 1"),
    ("TIGER", "ce", "eval_chunk_users", "0", "eval_chunk_users=0 is not an int >= 1"),
    ("SASRec", None, "learning_rate", "-0.1", "learning_rate=-0.1 is not a float > 0"),
    ("SASRec", None, "train_batch_size", "0", "train_batch_size=0 is not an int >= 1"),
])
def test_config_rejects_out_of_range_values(model, loss, option, value, fragment):
    overrides = {option: value, **({"loss": loss} if loss else {})}
    with pytest.raises(ConfigError) as e:
        GenRecConfig(model, "Office", cmd_overrides=overrides)
    message = str(e.value)
    assert fragment in message and "(command line; range declared in properties/" in message


def test_value_from_a_config_file_names_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("apao_eta: -0.5\n")
    with pytest.raises(ConfigError, match=f"set in {path}"):
        GenRecConfig("TIGER", "Office", config_file_list=[str(path)], cmd_overrides={"loss": "apao"})


def test_cli_error_is_one_line_with_exit_code_2():
    proc = subprocess.run([sys.executable, "run_recbole_genrec.py", "--model=TIGER", "--loss=apao",
                           "--apao_beta=-1"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: option apao_beta=-1 is not a float >= 0 (command line; range declared in "
        "properties/loss/apao.yaml:3); give --apao_beta a float >= 0"]
    debug = subprocess.run([sys.executable, "run_recbole_genrec.py", "--model=TIGER",
                            "--loss=apao", "--apao_beta=-1", "--debug"],
                           cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr


@pytest.mark.parametrize("model, option, value, fragment", [
    ("SASRec", "n_layers", "-1", "n_layers=-1 is not an int >= 1"),
    ("SASRec", "hidden_dropout_prob", "1.5", "hidden_dropout_prob=1.5 is not a float >= 0, < 1"),
    ("BERT4Rec", "mask_ratio", "0", "mask_ratio=0 is not a float > 0, < 1"),
])
def test_recboles_own_model_options_are_checked(model, option, value, fragment):
    """RecBole's SASRec / BERT4Rec keep RecBole's values; their ranges are declared in
    properties/model/<M>.yaml and checked like every other option."""
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        GenRecConfig(model, "Office", cmd_overrides={option: value})
    GenRecConfig(model, "Office")  # RecBole's defaults are in range
