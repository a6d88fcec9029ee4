"""tuning.compare: the table's numbers (means, std, best baseline, improvement, p-values,
Holm, markers) from fabricated result JSONs, and 2 real tiny runs x 2 seeds end to end."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tuning import compare
from tuning import significance as sig

N_USERS = 400
SEEDS = [2020, 2021, 2022]
METRICS = ["recall@10", "ndcg@10", "recall@20", "ndcg@20"]


def fake_ranks(rng, hit_prob, max_rank):
    return np.where(rng.random(N_USERS) < hit_prob, rng.integers(1, max_rank + 1, N_USERS), 0)


def fake_result(model, loss, seed, ranks, rng):
    """A result JSON as quick_start.run writes it (users in a seed-specific order)."""
    order = rng.permutation(N_USERS)
    users = [f"u{i}" for i in order]
    ranks = [int(ranks[i]) for i in order]
    test = {f"{m}@{k}": round(float(sig.per_user_values(ranks, f"{m}@{k}").mean()), 4)
            for m in ("recall", "ndcg", "hit", "mrr") for k in (5, 10, 20)}
    return {"model": model, "dataset": "Tiny", "loss": loss,
            "config": {"seed": seed, "topk": [5, 10, 20], "epochs": 1},
            "valid": {}, "test": test,
            "per_user": {"test": {"user_id": users, "target_rank": ranks}}}


# SASRec: many hits spread over ranks 1-20 (best recall@20); BERT4Rec: fewer hits, all in
# the top 5 (best NDCG@10 and recall@10); TIGER:apao: clearly better than both.
FAKE_RUNS = {"SASRec": (None, 0.35, 20), "BERT4Rec": (None, 0.25, 5), "TIGER:apao": ("apao", 0.5, 5)}


@pytest.fixture
def fake_results(tmp_path):
    results_dir = tmp_path / "results"
    rng = np.random.default_rng(0)
    for spec, (loss, hit_prob, max_rank) in FAKE_RUNS.items():
        run = compare.parse_run(spec)
        for seed in SEEDS:
            path = compare.result_path(results_dir, run, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            ranks = fake_ranks(rng, hit_prob, max_rank)
            path.write_text(json.dumps(fake_result(run.model, loss, seed, ranks, rng)))
    return results_dir


def run_compare(results_dir, out, *extra):
    return compare.main(["--dataset=Tiny", "--seeds=3", "--runs", *FAKE_RUNS,
                         f"--results_dir={results_dir}", f"--out={out}", "--no_train",
                         "--epochs=1", *extra])


def load(results_dir, spec):
    run = compare.parse_run(spec)
    return [json.loads(compare.result_path(results_dir, run, s).read_text()) for s in SEEDS]


def read_csv(path):
    with open(path, newline="") as f:
        return {(r["run"], r["metric"]): r for r in csv.DictReader(f)}


def test_run_specs_and_seeds():
    assert compare.parse_run("TIGER") == compare.RunSpec("TIGER", "TIGER", None, None)
    assert compare.parse_run("TIGER:apao").loss == "apao"
    with pytest.raises(ValueError, match="not found"):
        compare.parse_run("TIGER:apao:missing.yaml")
    assert compare.parse_seeds("3") == [2020, 2021, 2022]
    assert compare.parse_seeds("1,7,42") == [1, 7, 42]
    with pytest.raises(ValueError):
        compare.parse_seeds("1,1")
    runs = [compare.parse_run(s) for s in ("TIGER:ce", "TIGER:apao", "SASRec", "TIGER")]
    assert compare.assign_roles(runs, None) == {
        "TIGER:ce": "baseline", "TIGER:apao": "method", "SASRec": "baseline", "TIGER": "baseline"}
    assert compare.assign_roles(runs, [runs[2]])["SASRec"] == "method"


@pytest.mark.parametrize("test", sorted(sig.TESTS))
def test_table_numbers_from_fabricated_results(fake_results, tmp_path, test):
    out = tmp_path / "out"
    table = run_compare(fake_results, out, f"--test={test}")
    rows = read_csv(out / "table.csv")
    data = {spec: load(fake_results, spec) for spec in FAKE_RUNS}
    values = {(spec, m): [r["test"][m] for r in data[spec]] for spec in FAKE_RUNS for m in METRICS}

    assert table.best_baseline("recall@20") == "SASRec"
    assert table.best_baseline("ndcg@10") == "BERT4Rec"
    p_values = []
    for m in METRICS:
        for spec in FAKE_RUNS:
            row = rows[spec, m]
            assert float(row["mean"]) == pytest.approx(np.mean(values[spec, m]))
            assert float(row["std"]) == pytest.approx(np.std(values[spec, m], ddof=1))
        method, best = rows["TIGER:apao", m], table.best_baseline(m)
        assert method["role"] == "method" and method["best_baseline"] == best
        base_mean = np.mean(values[best, m])
        assert float(method["improvement_pct"]) == pytest.approx(
            100 * (np.mean(values["TIGER:apao", m]) - base_mean) / base_mean)
        # the p-value, recomputed here straight from scipy.stats
        if test == "welch":
            ref = stats.ttest_ind(values["TIGER:apao", m], values[best, m], equal_var=False)
        elif test == "one_sample":
            ref = stats.ttest_1samp(values["TIGER:apao", m], base_mean)
        else:
            per_user = {}
            for spec in ("TIGER:apao", best):
                per_user[spec] = np.mean([
                    [dict(zip(r["per_user"]["test"]["user_id"],
                              sig.per_user_values(r["per_user"]["test"]["target_rank"], m)))[f"u{i}"]
                     for i in range(N_USERS)] for r in data[spec]], axis=0)
            scipy_test = stats.ttest_rel if test == "paired_t" else stats.wilcoxon
            ref = scipy_test(per_user["TIGER:apao"], per_user[best])
        assert float(method["p_value"]) == pytest.approx(ref.pvalue)
        assert float(method["statistic"]) == pytest.approx(ref.statistic)
        assert method["test"] == test and float(method["alpha"]) == 0.01
        p_values.append(ref.pvalue)
    adjusted = sig.holm(p_values)
    for m, p in zip(METRICS, adjusted):
        assert float(rows["TIGER:apao", m]["p_holm"]) == pytest.approx(p)
        assert rows["TIGER:apao", m]["significant"] == str(bool(p < 0.01))
    assert rows["SASRec", "ndcg@10"]["p_value"] == ""  # baselines are not tested

    markdown = (out / "table.md").read_text()
    assert sig.DESCRIPTIONS[test] in markdown and "alpha = 0.01" in markdown
    assert "Holm-Bonferroni correction across the 4 (method, metric) cells" in markdown
    assert "| SASRec | baseline |" in markdown and "| TIGER:apao | method |" in markdown
    assert "seeds 2020, 2021, 2022" in markdown and "--epochs=1" in markdown



def test_default_test_is_welch_over_seeds_and_paired_over_users_for_one_seed(fake_results,
                                                                             tmp_path):
    """The default (--test=auto) accounts for the seed variance when there are seeds to
    measure it (once it was the one-sample test, which takes the baseline mean as exact)."""
    run_compare(fake_results, tmp_path / "three")
    assert read_csv(tmp_path / "three" / "table.csv")["TIGER:apao", "ndcg@10"]["test"] == "welch"
    compare.main(["--dataset=Tiny", "--seeds=1", "--runs", *FAKE_RUNS,
                  f"--results_dir={fake_results}", f"--out={tmp_path / 'one'}", "--no_train",
                  "--epochs=1"])
    assert read_csv(tmp_path / "one" / "table.csv")["TIGER:apao", "ndcg@10"]["test"] == "paired_t"
    run_compare(fake_results, tmp_path / "paper", "--test=one_sample")  # still an option
    assert read_csv(tmp_path / "paper" / "table.csv")["TIGER:apao", "ndcg@10"]["test"] == \
        "one_sample"


@pytest.mark.parametrize("test", sorted(sig.TESTS))
def test_every_table_says_what_was_tested_and_what_the_test_ignores(fake_results, tmp_path,
                                                                   test):
    run_compare(fake_results, tmp_path, f"--test={test}")
    line = next(line for line in (tmp_path / "table.md").read_text().splitlines()
                if line.startswith("Tested: "))
    assert sig.DESCRIPTIONS[test] in line and f"it ignores {sig.IGNORES[test]}" in line


def test_planted_improvement_is_marked_and_null_is_not(fake_results, tmp_path):
    table = run_compare(fake_results, tmp_path / "a", "--test=paired_t")
    assert all(table.cells["TIGER:apao", m].significant for m in METRICS)
    improv = next(line for line in (tmp_path / "a" / "table.md").read_text().splitlines()
                  if line.startswith("| Improv. of TIGER:apao"))
    assert improv.count("%†") == len(METRICS)

    # a "method" drawn from SASRec's own distribution, against SASRec: nothing significant
    run = compare.parse_run("SASRec::" + str(_write(tmp_path / "same.yaml", "epochs: 1\n")))
    rng = np.random.default_rng(1)
    for seed in SEEDS:
        path = compare.result_path(fake_results, run, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(fake_result("SASRec", None, seed, fake_ranks(rng, 0.35, 20), rng)))
    for test in ("wilcoxon", "welch"):
        table = compare.main(["--dataset=Tiny", "--seeds=3", "--runs", "SASRec",
                              "--methods", run.spec, f"--results_dir={fake_results}",
                              f"--out={tmp_path / test}", "--no_train", "--epochs=1",
                              f"--test={test}"])
        assert not any(table.cells["SASRec::same.yaml", m].significant for m in METRICS)
        assert "†" not in (tmp_path / test / "table.md").read_text().split("Mean ±")[0]


def test_missing_results_print_the_commands(fake_results, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--dataset=Tiny", "--seeds=4", "--runs", "SASRec", "--methods", "TIGER:apao",
                      f"--results_dir={fake_results}", f"--out={tmp_path}", "--no_train",
                      "--epochs=1"])
    assert exit_info.value.code == 2
    printed = capsys.readouterr().out
    assert "2 result(s) missing" in printed
    assert ("python run_recbole_genrec.py --model=TIGER --dataset=Tiny --loss=apao --epochs=1 "
            f"--seed=2023 --result_file={fake_results}/TIGER-apao/seed2023.json") in printed


def test_stale_results_are_refused(fake_results, tmp_path):
    with pytest.raises(ValueError, match="stored result has epochs=1, this comparison needs 2"):
        compare.main(["--dataset=Tiny", "--seeds=3", "--runs", *FAKE_RUNS, "--no_train",
                      f"--results_dir={fake_results}", f"--out={tmp_path}", "--epochs=2"])


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_two_tiny_runs_two_seeds_end_to_end(tiny_dataset, tmp_path):
    """Trains SASRec and GRU4Rec (tiny sizes in their YAML) for 2 seeds, then compares;
    a second call reuses the stored results."""
    sasrec = _write(tmp_path / "sasrec.yaml", "hidden_size: 8\ninner_size: 16\nn_layers: 1\n"
                                              "n_heads: 1\n")
    gru = _write(tmp_path / "gru.yaml", "hidden_size: 8\nembedding_size: 8\n")
    out = tmp_path / "cmp"
    argv = ["--dataset=Tiny", "--seeds=2", "--runs", f"GRU4Rec::{gru}",
            "--methods", f"SASRec::{sasrec}", f"--out={out}", "--test=paired_t", "--alpha=0.05",
            "--epochs=1", "--train_batch_size=64", f"--data_path={tiny_dataset.data_path}"]
    table = compare.main(argv)
    files = sorted((out / "runs").rglob("seed*.json"))
    assert [f"{p.parent.name}/{p.name}" for p in files] == [
        "GRU4Rec-default-gru/seed2020.json", "GRU4Rec-default-gru/seed2021.json",
        "SASRec-default-sasrec/seed2020.json", "SASRec-default-sasrec/seed2021.json"]
    assert not list((out / "runs").rglob("*.pth")), "checkpoints are removed"
    rows = read_csv(out / "table.csv")
    for spec in ("GRU4Rec::gru.yaml", "SASRec::sasrec.yaml"):
        results = [json.loads(p.read_text()) for p in files if spec.split(":")[0] in p.parent.name]
        assert [r["config"]["seed"] for r in results] == [2020, 2021]
        assert results[0]["config"]["hidden_size"] == 8
        for m in METRICS:
            assert float(rows[spec, m]["mean"]) == pytest.approx(
                np.mean([r["test"][m] for r in results]))
    method = rows["SASRec::sasrec.yaml", "ndcg@10"]
    assert method["role"] == "method" and method["best_baseline"] == "GRU4Rec::gru.yaml"
    assert 0 <= float(method["p_value"]) <= 1 and method["test"] == "paired_t"
    markdown = (out / "table.md").read_text()
    assert "over 2 seed(s)" in markdown and "alpha = 0.05" in markdown

    stamps = [p.stat().st_mtime_ns for p in files]
    again = compare.main(argv + ["--no_train"])
    assert [p.stat().st_mtime_ns for p in files] == stamps
    cell = ("SASRec::sasrec.yaml", "ndcg@10")
    assert again.cells[cell].p_value == table.cells[cell].p_value
