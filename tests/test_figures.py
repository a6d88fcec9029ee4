"""tuning/figures.py: each figure from fabricated result JSONs -- a valid PNG, and a CSV whose
numbers are checked against hand-computed ones; write_all skips figures without inputs."""

import csv

import pytest

from tuning import figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def result(model, loss, seed, history=None, prefix=None, pr=None):
    out = {"model": model, "loss": loss, "config": {"seed": seed}, "timings": {"epochs_run": 2}}
    if history is not None:
        out["valid_history"] = history
    if prefix is not None or pr is not None:
        out["diagnostics"] = {k: v for k, v in (("prefix_recall", prefix), ("pruning_rate", pr))
                              if v is not None}
    return out


def history(*ndcgs):
    return [{"epoch": e, "ndcg@10": v, "recall@10": 2 * v} for e, v in enumerate(ndcgs)]


def pruning(**cells):
    """pruning(k5=(targets, rate), ...) -> a result's pruning_rate dict."""
    out = {"users": 8}
    for key, (targets, rate) in cells.items():
        out[f"targets@{key[1:]}"], out[f"@{key[1:]}"] = targets, rate
    return out


RUNS = [
    ("TIGER:ce", result("TIGER", "ce", 1, history(0.010, 0.020, 0.025),
                        {"@10": [0.9, 0.6, 0.3], "@5": [0.5, 0.2, 0.1]},
                        pruning(k5=(4, 0.25), k10=(5, 0.2), k20=(6, 0.5)))),
    ("TIGER:ce", result("TIGER", "ce", 2, history(0.012, 0.018),
                        {"@10": [0.7, 0.4, 0.1], "@5": [0.5, 0.2, 0.1]},
                        pruning(k5=(0, None), k10=(4, 0.5), k20=(8, 0.25)))),
    ("TIGER:apao", result("TIGER", "apao", 1, None,  # an old JSON: no valid_history
                          {"@10": [0.95, 0.7, 0.5]},
                          pruning(k5=(0, None), k10=(0, None), k20=(0, None)))),
    ("SASRec", result("SASRec", None, 1, history(0.03, 0.04))),
]

SWEEP = {"label": "TIGER:apao", "checkpoint": "saved/TIGER.pth", "device": "cpu",
         "rows": [{"beam_size": b, "recall@10": r, "ndcg@10": n, "users_per_s": u}
                  for b, r, n, u in [(20, 0.05, 0.03, 90.0), (5, 0.03, 0.02, 300.0),
                                     (50, 0.055, 0.031, 40.0), (10, 0.045, 0.028, 180.0)]]}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_written(paths, name):
    png, table = paths
    assert (png.name, table.name) == (f"{name}.png", f"{name}.csv")
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000
    return read_csv(table)


def test_training_curves(tmp_path):
    rows = check_written(figures.training_curves(RUNS, tmp_path), "training_curves")
    assert list(rows[0]) == ["label", "seed", "epoch", "ndcg@10"]
    got = [(r["label"], int(r["seed"]), int(r["epoch"]), float(r["ndcg@10"])) for r in rows]
    assert got == [("TIGER:ce", 1, 0, 0.010), ("TIGER:ce", 1, 1, 0.020), ("TIGER:ce", 1, 2, 0.025),
                   ("TIGER:ce", 2, 0, 0.012), ("TIGER:ce", 2, 1, 0.018),
                   ("SASRec", 1, 0, 0.03), ("SASRec", 1, 1, 0.04)]  # TIGER:apao has none
    rows = read_csv(figures.training_curves(RUNS, tmp_path, metric="recall@10")[1])
    assert float(rows[0]["recall@10"]) == pytest.approx(0.02)


def test_prefix_recall_mean_and_std_over_seeds(tmp_path):
    rows = check_written(figures.prefix_recall(RUNS, tmp_path), "prefix_recall")
    assert list(rows[0]) == ["label", "level", "mean", "std", "n_seeds"]
    assert [(r["label"], int(r["level"])) for r in rows] == (
        [("TIGER:ce", m) for m in (1, 2, 3)] + [("TIGER:apao", m) for m in (1, 2, 3)])
    ce = rows[:3]  # seeds (0.9, 0.7), (0.6, 0.4), (0.3, 0.1): std = 0.2 / sqrt(2)
    assert [float(r["mean"]) for r in ce] == pytest.approx([0.8, 0.5, 0.2])
    assert [float(r["std"]) for r in ce] == pytest.approx([0.141421] * 3)
    assert {r["n_seeds"] for r in ce} == {"2"}
    apao = rows[3:]  # one seed: mean = the value, std undefined
    assert [float(r["mean"]) for r in apao] == pytest.approx([0.95, 0.7, 0.5])
    assert {(r["std"], r["n_seeds"]) for r in apao} == {("", "1")}
    rows = read_csv(figures.prefix_recall(RUNS, tmp_path, k=5)[1])
    assert [(r["label"], float(r["mean"]), r["std"]) for r in rows] == [
        ("TIGER:ce", 0.5, "0.0"), ("TIGER:ce", 0.2, "0.0"), ("TIGER:ce", 0.1, "0.0")]


def test_pruning_rate_ignores_none(tmp_path):
    rows = check_written(figures.pruning_rate(RUNS, tmp_path), "pruning_rate")
    assert list(rows[0]) == ["label", "k", "mean", "std", "n_seeds", "targets"]
    got = {(r["label"], int(r["k"])): r for r in rows}
    assert len(got) == 6
    # @5: seed 2 has no target in the exact top 5 (None) -> only seed 1's 0.25
    assert (float(got["TIGER:ce", 5]["mean"]), got["TIGER:ce", 5]["std"],
            got["TIGER:ce", 5]["n_seeds"], got["TIGER:ce", 5]["targets"]) == (0.25, "", "1", "4")
    assert float(got["TIGER:ce", 10]["mean"]) == pytest.approx(0.35)
    assert float(got["TIGER:ce", 10]["std"]) == pytest.approx(0.212132)  # 0.3 / sqrt(2)
    assert (got["TIGER:ce", 10]["n_seeds"], got["TIGER:ce", 10]["targets"]) == ("2", "9")
    assert float(got["TIGER:ce", 20]["mean"]) == pytest.approx(0.375)
    assert got["TIGER:ce", 20]["targets"] == "14"
    for k in (5, 10, 20):  # all None: an empty cell, no bar
        assert (got["TIGER:apao", k]["mean"], got["TIGER:apao", k]["std"],
                got["TIGER:apao", k]["n_seeds"]) == ("", "", "0")


def test_beam_sweep(tmp_path):
    rows = check_written(figures.beam_sweep(SWEEP, tmp_path), "beam_sweep")
    assert list(rows[0]) == ["label", "beam_size", "recall@10", "ndcg@10", "users_per_s"]
    assert [int(r["beam_size"]) for r in rows] == [5, 10, 20, 50]
    assert [float(r["users_per_s"]) for r in rows] == [300.0, 180.0, 90.0, 40.0]
    assert [float(r["recall@10"]) for r in rows] == [0.03, 0.045, 0.05, 0.055]
    assert {r["label"] for r in rows} == {"TIGER:apao"}


def write_trials(path):
    header = ["trial", "trial_id", "status", "apao_beta", "apao_eta", "objective", "error"]
    trials = [
        (0, "a", "COMPLETED", 0.1, 0.01, 0.02, ""),
        (1, "b", "COMPLETED", 0.1, 1.0, 0.04, ""),
        (2, "c", "COMPLETED", 0.2, 0.01, 0.03, ""),
        (3, "d", "ERROR", 0.2, 1.0, float("nan"), "RuntimeError: NaN loss"),
        (4, "e", "ERROR", 0.2, 0.1, "", "killed"),
    ]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *trials])
    return path


def test_sensitivity_skips_failed_trials(tmp_path):
    trials = write_trials(tmp_path / "trials.csv")
    rows = check_written(figures.sensitivity(trials, tmp_path / "out"), "sensitivity")
    assert list(rows[0]) == ["param", "value", "mean_objective", "max_objective", "n_trials"]
    assert [(r["param"], float(r["value"]), int(r["n_trials"])) for r in rows] == [
        ("apao_beta", 0.1, 2), ("apao_beta", 0.2, 1),  # the NaN and the empty objective left out
        ("apao_eta", 0.01, 2), ("apao_eta", 1.0, 1)]  # eta 0.1 had no scored trial: no point
    assert [float(r["mean_objective"]) for r in rows] == pytest.approx([0.03, 0.03, 0.025, 0.04])
    assert [float(r["max_objective"]) for r in rows] == pytest.approx([0.04, 0.03, 0.03, 0.04])
    rows = read_csv(figures.sensitivity(trials, tmp_path, params=("apao_beta", "missing"))[1])
    assert {r["param"] for r in rows} == {"apao_beta"}
    with pytest.raises(figures.NoData, match="no scored trial has a value of missing"):
        figures.sensitivity(trials, tmp_path, params=("missing",))


def test_write_all(tmp_path):
    trials = write_trials(tmp_path / "trials.csv")
    written, skipped = figures.write_all(RUNS, tmp_path / "all", sweep=SWEEP, trials_csv=trials)
    assert skipped == {}
    assert set(written) == {"training_curves", "prefix_recall", "pruning_rate", "beam_sweep",
                            "sensitivity"}
    for name, png in written.items():
        assert png == tmp_path / "all" / f"{name}.png" and png.read_bytes()[:8] == PNG_MAGIC
        assert png.with_suffix(".csv").is_file()


def test_write_all_skips_missing_inputs_and_says_why(tmp_path):
    classic_only = [("SASRec", result("SASRec", None, 1, history(0.03, 0.04))),
                    ("BERT4Rec", result("BERT4Rec", None, 1))]
    written, skipped = figures.write_all(classic_only, tmp_path,
                                         trials_csv=tmp_path / "absent.csv")
    assert set(written) == {"training_curves"}
    assert set(skipped) == {"prefix_recall", "pruning_rate", "beam_sweep", "sensitivity"}
    assert "generative" in skipped["prefix_recall"] and "generative" in skipped["pruning_rate"]
    assert skipped["beam_sweep"] == "no beam-size sweep given"
    assert "absent.csv does not exist" in skipped["sensitivity"]
    assert not (tmp_path / "prefix_recall.png").exists()

    written, skipped = figures.write_all([("BERT4Rec", result("BERT4Rec", None, 1, []))],
                                         tmp_path / "none")
    assert written == {}
    assert skipped["training_curves"] == "no run has a validation history of ndcg@10"
    assert skipped["sensitivity"] == "no trials.csv given"
