"""Bad input as a user hits it (issue 21): each case ends in one line ``error: ...``
naming the input and what to do, exit status 2, and nothing already written is lost.
docs/reliability.md lists every case with its test."""

import json
import shutil

import pytest
import torch

from generative_setup import TINY_ARCH
from recbole_genrec.config import GenRecConfig
from recbole_genrec.data.convert import DatasetFormatError
from recbole_genrec.data.dataset import GenRecDataset
from recbole_genrec.errors import ConfigError, run_cli
from recbole_genrec.result_file import free_result_file
from run_recbole_genrec import main

TINY = ["--dataset=Tiny", "--show_progress=false", "--epochs=1", "--pruning_rate_users=0"]


def cli(argv, capsys) -> tuple[int, str]:
    """Exit status and the error line (stderr also holds the run's log in-process)."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(errors) == 1, errors
    return exit_info.value.code, errors[0]


@pytest.mark.parametrize("args, fragment", [
    (["--model=TIGERR"], "unknown model 'TIGERR' (option --model)"),
    (["--model=TIGER", "--loss=apa"], "unknown loss 'apa' (option --loss)"),
    (["--model=TIGER", "--loss=apao+apao"], "--loss=apao+apao: each loss may appear once"),
    (["--model=TIGER", "--loss=sdpo"], "sdpo compares the model with a frozen reference"),
    (["--model=TIGER", "--dataset=Nope"], "dataset 'Nope': neither"),
    (["--model=TIGER", "--eval_args={'split': {'LS': 'valid_and_test'}, 'order': 'TO', "
                       "'mode': 'uni100'}"], "evaluates with eval_args.mode=full only"),
])
def test_input_errors_exit_2_with_one_line(tiny_dataset, capsys, args, fragment):
    """Each exited 1 as "(unexpected) ... report it" (a ValueError, RuntimeError or
    FileNotFoundError); sdpo without --init_from only failed at the first training step."""
    code, err = cli(args + [f"--data_path={tiny_dataset.data_path}"]
                    + [a for a in TINY if not any(a.startswith(b.split("=")[0]) for b in args)],
                    capsys)
    assert code == 2, err
    assert err.startswith("error: ") and fragment in err and "unexpected" not in err


def write_inter(tiny_dataset, tmp_path, edit):
    """A copy of the tiny dataset whose .inter file's lines went through ``edit``."""
    root = tmp_path / "bad"
    shutil.copytree(tiny_dataset.folder, root / "Tiny")
    path = root / "Tiny" / "Tiny.inter"
    lines = path.read_text().splitlines()
    result = edit(lines, path)
    if result is not None:
        path.write_text("\n".join(result) + "\n")
    return root


def _drop_timestamp(lines, path):
    return lines[:4] + ["\t".join(lines[4].split("\t")[:2]) + "\t"] + lines[5:]


def _folder(lines, path):
    path.unlink()
    path.mkdir()


def _binary(lines, path):
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00\xd0\xff" * 30)


@pytest.mark.parametrize("edit, fragment", [
    (_drop_timestamp, "line 5 has no value for 'timestamp'"),
    (lambda lines, path: lines[:1], "no interactions (a header and no rows)"),
    (lambda lines, path: lines[:4] + [lines[4] + "\t7"] + lines[5:],
     "line 5 has 4 values, the header 3 fields"),
    (lambda lines, path: lines[:4] + [lines[4].split("\t")[0]] + lines[5:],
     "line 5 has 1 values, the header 3 fields"),
    (lambda lines, path: lines[:4] + [lines[4].rsplit("\t", 1)[0] + "\tyesterday"] + lines[5:],
     "Unable to convert column timestamp"),
    (lambda lines, path: [lines[0].replace("timestamp:float", "timestamp:floot")] + lines[1:],
     "type 'floot' is not one of"),
    (_folder, "a folder, not an atomic file"),
    (_binary, "cannot be read as an atomic file"),
])
def test_unreadable_or_incomplete_interaction_files_are_named(tiny_dataset, tmp_path, edit,
                                                              fragment):
    """A missing timestamp was filled with the column mean (the user's test item moved);
    an empty file, a malformed row, a folder or binary data ended in RecBole's or
    pandas' own exception (exit 1)."""
    root = write_inter(tiny_dataset, tmp_path, edit)
    config = GenRecConfig("TIGER", "Tiny", config_dict={"data_path": str(root)})
    with pytest.raises(DatasetFormatError, match="Tiny.inter") as error:
        GenRecDataset(config)
    assert fragment in str(error.value)


def test_rerun_with_a_typo_keeps_the_finished_result(tiny_dataset, tmp_path, capsys):
    """The name was claimed (status: running, then failed) before the dataset name was
    checked: a finished result was replaced by a failed stub."""
    finished = tmp_path / "r.json"
    finished.write_text(json.dumps({"status": "complete", "test": {"ndcg@10": 0.5}}))
    before = finished.read_text()
    code, err = cli(["--model=TIGER", "--dataset=Tyni", f"--data_path={tiny_dataset.data_path}",
                     f"--result_file={finished}", "--show_progress=false"], capsys)
    assert code == 2 and "dataset 'Tyni'" in err
    assert finished.read_text() == before


def test_failed_stub_does_not_push_the_default_name(tmp_path):
    """An input error left a failed stub under the default name; the next run took -2."""
    default = tmp_path / "TIGER-Tiny-ce.json"
    default.write_text(json.dumps({"status": "failed", "epochs_done": 0, "error": "x"}))
    assert free_result_file(default) == default
    default.write_text(json.dumps({"status": "failed", "epochs_done": 2}))  # resumable work
    assert free_result_file(default) == tmp_path / "TIGER-Tiny-ce-2.json"


def test_narrow_beam_and_untested_users_are_marked(tmp_path, make_dataset):
    """beam_size 5 < max(topk) 20 was only warned (recall@20 counted the beam's 5
    items); a user with a single interaction left the test without a word."""
    from conftest import tiny_sequences_and_codes
    from recbole_genrec.quick_start import run

    sequences, codes = tiny_sequences_and_codes()
    sequences[99] = [3]  # one interaction: no training, validation or test row
    make_dataset(tmp_path / "data", "Tiny", sequences, codes)
    result = run("TIGER", "Tiny", config_dict={
        "data_path": str(tmp_path / "data"), **TINY_ARCH["TIGER"], "epochs": 1,
        "beam_size": 5, "pruning_rate_users": 0, "show_progress": False},
        result_file=tmp_path / "r.json")
    stored = json.loads((tmp_path / "r.json").read_text())
    assert stored["beam_limited"] == {"beam_size": 5, "metrics": [
        m for m in result["test"] if int(m.split("@")[1]) > 5]}
    assert stored["users_not_tested"] == 1
    assert len(set(stored["per_user"]["test"]["user_id"])) == len(sequences) - 1


def resumable_state(tiny_dataset, tmp_path):
    """A 2-epoch run's training state, set back to just after epoch 0 (as if killed)."""
    from generative_setup import build, build_trainer

    config, model, train, valid, _ = build("TIGER", tiny_dataset, loss="ce", epochs=2,
                                           checkpoint_dir=str(tmp_path / "saved"))
    trainer = build_trainer(config, model)
    trainer.fit(train, valid, saved=True)
    state = torch.load(trainer.last_model_file, weights_only=False)
    state.update(epoch=0, training_done=False, valid_history=state["valid_history"][:1],
                 epoch_times=state["epoch_times"][:1], valid_times=state["valid_times"][:1],
                 fit_s=100.0)
    torch.save(state, trainer.last_model_file)
    return trainer.last_model_file, state


def test_resume_continues_fit_time_and_refuses_more_epochs_or_a_missing_best(tiny_dataset,
                                                                            tmp_path):
    """fit_s in valid_history restarted from 0 after a resume; a run whose best checkpoint
    was removed trained the remaining epochs, then failed at the test; a larger --epochs
    was refused with a generic message (extending is refused on purpose: the schedule is
    laid over the epochs)."""
    from generative_setup import build, build_trainer

    last, state = resumable_state(tiny_dataset, tmp_path)
    config, model, train, valid, _ = build("TIGER", tiny_dataset, loss="ce", epochs=2,
                                           checkpoint_dir=str(tmp_path / "saved"))
    trainer = build_trainer(config, model)
    trainer.resume_from(last)
    trainer.fit(train, valid, saved=True)
    assert [h["epoch"] for h in trainer.valid_history] == [0, 1]
    assert trainer.valid_history[1]["fit_s"] > 100.0

    config, model, *_ = build("TIGER", tiny_dataset, loss="ce", epochs=3,
                              checkpoint_dir=str(tmp_path / "saved"))
    with pytest.raises(ConfigError, match="trained for epochs=2, this run asks for 3.*keeps "
                                          "its epochs"):
        build_trainer(config, model).resume_from(last)

    torch.save(state, last)  # after epoch 0 again
    (tmp_path / "saved" / state["best_model_file"].split("/")[-1]).unlink()
    config, model, *_ = build("TIGER", tiny_dataset, loss="ce", epochs=2,
                              checkpoint_dir=str(tmp_path / "saved"))
    with pytest.raises(ConfigError, match="best checkpoint .* is missing"):
        build_trainer(config, model).resume_from(last)


def test_shared_semantic_ids_under_the_error_rule_are_an_input_error():
    """sem_id_collision=error with shared codes exited 1 (a ValueError)."""
    from recbole_genrec.data.semantic_ids import disambiguate
    from recbole_genrec.errors import UserError

    shared = torch.tensor([[-1, -1], [0, 1], [0, 1]])
    with pytest.raises(UserError, match="shared by several items.*sem_id_collision=extra_level"):
        disambiguate(shared, "error")


def test_compare_on_results_of_other_users_exits_2(tmp_path, capsys):
    """A user mismatch between two runs' per-user ranks exited 1 as "(unexpected)"."""
    from tuning import compare

    for spec, users in (("SASRec", ["u1", "u2", "u3"]), ("TIGER:apao", ["u1", "u2", "u9"])):
        run = compare.parse_run(spec)
        path = compare.result_path(tmp_path / "runs", run, 2020)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "status": "complete", "model": run.model, "dataset": "Tiny", "loss": run.loss,
            "config": {"seed": 2020, "topk": [10]}, "test": {"ndcg@10": 0.1},
            "per_user": {"test": {"user_id": users, "target_rank": [1, 0, 2]}}}))
    with pytest.raises(SystemExit) as exit_info:
        run_cli(compare.main, ["--dataset=Tiny", "--seeds=1", "--runs", "SASRec", "TIGER:apao",
                               f"--results_dir={tmp_path / 'runs'}", f"--out={tmp_path}",
                               "--no_train", "--table_metrics", "ndcg@10"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith("error: the runs evaluate different users")
