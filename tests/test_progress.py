"""Progress while a run goes: bars with ETA for each long step, one log line per
epoch with the time left, torch threads."""

import io
from pathlib import Path

import pytest
import torch

from generative_setup import TINY_ARCH
from recbole_genrec import progress, torch_threads
from recbole_genrec.config import ConfigError
from recbole_genrec.progress import bars_enabled, format_duration, time_left
from recbole_genrec.quick_start import run
from recbole_genrec.torch_threads import set_torch_threads

FAST = {"train_batch_size": 64, "micro_batch_size": 32, "eval_batch_size": 64,
        "pruning_rate_users": 8}


def tiny_run(tiny, **overrides):
    config = {**tiny.config, **TINY_ARCH["TIGER"], **FAST, "loss": "apao", **overrides}
    return run("TIGER", tiny.name, config_dict=config)


def test_time_left_and_durations():
    assert time_left(30.0, 1, 4) == pytest.approx(90.0)
    assert time_left(30.0, 1, 4, budget=100) == pytest.approx(60.0)  # 2 more fit the budget
    assert time_left(30.0, 1, 4, budget=100, spent=15) == pytest.approx(90.0)  # CPU-time budget
    assert time_left(30.0, 1, 4, budget=50) == 0.0
    assert time_left(60.0, 2, 2) == 0.0
    assert time_left(0.0, 0, 4) is None  # nothing to extrapolate from yet
    assert [format_duration(s) for s in (3.24, 42, 225, 4500, None)] == \
        ["3.2s", "42s", "3m45s", "1h15m", "?"]


@pytest.mark.parametrize("setting, tty, shown", [
    (None, True, True), (None, False, False), (False, True, False), (True, False, True)])
def test_bars_default_to_terminals(monkeypatch, setting, tty, shown):
    stream = io.StringIO()
    stream.isatty = lambda: tty
    monkeypatch.setattr("sys.stderr", stream)
    assert bars_enabled(setting) is shown


class RecordedBars:
    """Stands in for tqdm: records each bar's description, total, progress, state."""

    def __init__(self):
        self.bars = []
        recorder = self

        class Bar:
            def __init__(self, total=None, desc="", unit="", disable=False, **kwargs):
                self.total, self.desc, self.unit, self.disable = total, desc, unit, disable
                self.n = 0
                recorder.bars.append(self)

            def update(self, n=1):
                self.n += n

            def set_postfix_str(self, *args, **kwargs):
                pass

            def close(self):
                pass

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.close()

        self.Bar = Bar

    def by_desc(self) -> dict:
        return {bar.desc: bar for bar in self.bars}


@pytest.mark.parametrize("show", [True, False])
def test_every_long_step_has_a_bar(tiny_dataset, monkeypatch, show):
    recorded = RecordedBars()
    monkeypatch.setattr(progress, "tqdm", recorded.Bar)
    result = tiny_run(tiny_dataset, epochs=2, show_progress=show)
    bars = recorded.by_desc()
    n_users = tiny_dataset.n_users
    n_train = sum(len(s) - 3 for s in tiny_dataset.sequences.values())  # leave-one-out targets
    expected = {"train epoch 0 (1/2)": ("sample", n_train),
                "train epoch 1 (2/2)": ("sample", n_train), "valid 0": ("user", n_users), "valid 1": ("user", n_users),
                "test": ("user", n_users), "exact ranking (PR@K)": ("user", 8)}
    assert set(bars) == set(expected)
    for desc, (unit, total) in expected.items():
        assert (bars[desc].unit, bars[desc].total, bars[desc].n) == (unit, total, total), desc
        assert bars[desc].disable is not show
    assert result["timings"]["epochs_run"] == 2


def test_one_log_line_per_epoch_with_the_time_left(tiny_dataset):
    tiny_run(tiny_dataset, epochs=3, show_progress=False)
    log = next(Path("log").rglob("*.log")).read_text()
    lines = [line.split("INFO  ", 1)[1] for line in log.splitlines() if "INFO  epoch " in line]
    assert [line.split(":")[0] for line in lines] == [
        "epoch 0 (1/3)", "epoch 1 (2/3)", "epoch 2 (3/3)"]
    assert all("train " in line and "| valid " in line and "ndcg@10" in line for line in lines)
    assert "left" in lines[0] and "left" in lines[1] and "left" not in lines[2]
    assert "epoch 0 training [" not in log  # RecBole's own lines only with verbose: true
    assert "T5Encoder(" not in log and "TIGER: " in log  # model summary, not the tree


def test_verbose_keeps_recboles_lines_and_the_model_tree(tiny_dataset):
    tiny_run(tiny_dataset, epochs=1, verbose=True)
    log = next(Path("log").rglob("*.log")).read_text()
    assert "epoch 0 training [" in log and "T5Encoder(" in log and "loss parts: ce" in log


class Lines:
    def __init__(self):
        self.lines = []

    def info(self, line):
        self.lines.append(line)


def test_threads_option(tiny_dataset):
    assert tiny_run(tiny_dataset, epochs=1, threads=1)["torch_threads"] == 1
    with pytest.raises(ConfigError, match=r"option threads=0 is not an int >= 1"):
        tiny_run(tiny_dataset, epochs=1, threads=0)
    assert set_torch_threads(2, Lines()) == 2 and torch.get_num_threads() == 2


@pytest.mark.parametrize("busy, omp, expected", [
    (0.0, None, 2),  # idle: torch's count
    (1.0, None, 1),  # another process on one of the 2 cores: one thread
    (3.0, None, 1),  # never below one
    (1.0, "2", 2),   # OMP_NUM_THREADS is a choice already made (tuning.reproduce)
])
def test_default_threads_leave_busy_cores_alone(monkeypatch, busy, omp, expected):
    torch.set_num_threads(2)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(torch_threads, "busy_cores", lambda: busy)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    if omp:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    logger = Lines()
    assert set_torch_threads(None, logger) == expected == torch.get_num_threads()
    assert bool(logger.lines) == (expected < 2)  # a lowered count is said in the log


def test_busy_cores_counts_other_running_tasks(monkeypatch):
    samples = iter(["0.5 0.4 0.3 3/120 999", "1.0 0.4 0.3 2/120 999", "1.0 0.4 0.3 3/120 999"])
    monkeypatch.setattr("builtins.open", lambda *a, **k: io.StringIO(next(samples)))
    assert torch_threads.busy_cores(samples=3, interval=0) == 2.0  # median 3, less this one
