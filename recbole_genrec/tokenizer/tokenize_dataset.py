"""One tokenizer run: ``<D>.item`` -> embeddings -> codes -> ``sem_ids`` column + report.

Every check on the input runs before anything is written: a text field that is
not in the file, no text field at all, an ``.npy`` with the wrong row count or
non-finite values, a codebook larger than the number of items.  Items whose
text fields are all empty are counted (and still coded).

Fewer items than ``codebook_size`` is refused rather than shrunk silently:
k-means cannot place more centroids than items, and a smaller codebook is a
different tokenizer, so the error names the largest valid value for the user
to choose.

Outputs, next to ``<D>.item``: the rewritten ``<D>.item`` (only ``sem_ids``
changes; the first run keeps the original as ``<D>.item.orig``) and
``<D>.tokenizer.json`` -- the settings, the encoder, the command that
reproduces the codes, a hash of the codes, the quality report and wall times.
"""

import hashlib
import json
from pathlib import Path
from time import perf_counter

import numpy as np

from recbole_genrec import commands
from recbole_genrec.errors import ConfigError, DatasetFormatError
from recbole_genrec.tokenizer.code_report import (
    code_quality,
    collision_summary,
    format_report,
    reconstruction_error,
)
from recbole_genrec.tokenizer.collisions import reassign_last_level
from recbole_genrec.tokenizer.item_file import (
    TEXT_TYPES,
    ItemFile,
    original_copy_path,
    read_item_file,
    write_sem_ids,
)
from recbole_genrec.tokenizer.rq_kmeans import rq_kmeans
from recbole_genrec.tokenizer.rq_vae import rq_vae
from recbole_genrec.tokenizer.settings import TokenizerSettings
from recbole_genrec.tokenizer.text_embeddings import CACHE_FOLDER, compose_texts, embed_texts

ITEM_FIELD = "item_id"


def tokenize_dataset(settings: TokenizerSettings, log=print) -> dict:
    """Run the tokenizer; returns the report (also written to ``settings.report_path``)."""
    start = perf_counter()
    item_file = read_item_file(settings.item_path, ITEM_FIELD)
    if settings.report_only:
        return report_existing_codes(item_file, settings.sem_id_field, log)
    n_items = len(item_file)
    if n_items < settings.codebook_size:
        raise ConfigError(
            f"{settings.item_path}: {n_items} items but --codebook_size="
            f"{settings.codebook_size}: k-means cannot make more codes than items; choose "
            f"--codebook_size={n_items} or less (refused rather than shrunk silently)")

    source = load_embeddings(settings, item_file, log)
    embeddings = source.pop("embeddings")
    check_finite(embeddings, source.get("embeddings_file") or "the encoder's output",
                 item_file)
    embed_s = perf_counter() - start

    log(f"quantizing {n_items} items x {embeddings.shape[1]} dims: {settings.method}, "
        f"{settings.levels} levels x {settings.codebook_size} codes, seed {settings.seed}"
        + (", balanced" if settings.balanced else ""))
    quantize_start = perf_counter()
    quantization = quantize(embeddings, settings)
    quantize_s = perf_counter() - quantize_start
    codes, handling = handle_collisions(quantization, embeddings, settings.collision)

    quality = code_quality(codes, settings.codebook_size)
    quality["reconstruction"] = reconstruction_error(embeddings,
                                                     quantization.reconstruct(codes))
    quality["collision_handling"] = handling
    quality["wall_time_s"] = {"embeddings": embed_s, "quantizer": quantize_s,
                              "total": perf_counter() - start}
    report = {
        "dataset": settings.dataset,
        "item_file": str(settings.item_path),
        "original_copy": str(original_copy_path(settings.item_path)),
        "sem_id_field": settings.sem_id_field,
        "command": reproduce_command(settings),
        "settings": settings.quantizer_settings(),
        "input": source,
        "codes_sha256": hashlib.sha256(np.ascontiguousarray(codes).tobytes()).hexdigest(),
        "quality": quality,
        "details": quantization.details,
    }
    write_sem_ids(item_file, codes, settings.sem_id_field, ITEM_FIELD)
    settings.report_path.write_text(json.dumps(report, indent=1))
    log(format_report(quality, f"{settings.dataset} {settings.method}"))
    log(f"wrote {settings.sem_id_field} to {settings.item_path} (original kept as "
        f"{report['original_copy']}), report {settings.report_path}")
    return report


def report_existing_codes(item_file: ItemFile, sem_field: str, log=print) -> dict:
    codes = parse_codes(item_file, sem_field)
    quality = code_quality(codes)
    log(format_report(quality, f"{item_file.path} ({sem_field})"))
    return {"item_file": str(item_file.path), "quality": quality}


def parse_codes(item_file: ItemFile, sem_field: str) -> np.ndarray:
    rows = [s.split() for s in item_file.column(sem_field)]
    lengths = {len(r) for r in rows}
    if len(lengths) != 1 or 0 in lengths:
        raise DatasetFormatError(f"{item_file.path}: '{sem_field}' values must all have the "
                                 f"same, non-zero number of codes; found lengths "
                                 f"{sorted(lengths)}")
    try:
        return np.array(rows, dtype=np.int64)
    except ValueError:
        raise DatasetFormatError(f"{item_file.path}: '{sem_field}' holds non-integer "
                                 "codes") from None


def load_embeddings(settings: TokenizerSettings, item_file: ItemFile, log=print) -> dict:
    """``{"embeddings": array, ...facts for the report}`` from ``--embeddings`` or text."""
    n_items = len(item_file)
    if settings.embeddings is not None:
        path = Path(settings.embeddings)
        if not path.is_file():
            raise ConfigError(f"--embeddings={path}: file not found")
        try:
            embeddings = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise DatasetFormatError(f"{path}: not a numeric .npy array ({e})") from None
        if embeddings.ndim != 2 or not np.issubdtype(embeddings.dtype, np.number):
            raise DatasetFormatError(f"{path}: expected a numeric [n_items, dim] array, got "
                                     f"shape {embeddings.shape} dtype {embeddings.dtype}")
        if len(embeddings) != n_items:
            raise DatasetFormatError(
                f"{path}: {len(embeddings)} rows, but {item_file.path} has {n_items} items "
                "(one row per item, in the .item file's row order)")
        digest = hashlib.sha256(np.ascontiguousarray(embeddings).tobytes()).hexdigest()
        return {"embeddings": embeddings.astype(np.float32), "source": "embeddings",
                "embeddings_file": str(path), "embeddings_sha256": digest,
                "embedding_dim": int(embeddings.shape[1])}

    fields = choose_text_fields(settings, item_file)
    texts, n_empty = compose_texts({f: item_file.column(f).tolist() for f in fields})
    if n_empty:
        log(f"warning: {n_empty} of {n_items} items have no text in {fields}; they are "
            "embedded as the empty text (one shared embedding) and still get codes")
    log(f"embedding {n_items} item texts from {fields} with {settings.encoder}")
    embeddings, encoder = embed_texts(texts, settings.encoder,
                                      settings.folder.parent / CACHE_FOLDER,
                                      settings.encode_batch_size)
    if encoder["cached"]:
        log(f"embeddings read from the cache {encoder['cache_file']}")
    return {"embeddings": embeddings, "source": "text", "text_fields": fields,
            "empty_texts": n_empty, "embedding_dim": int(embeddings.shape[1]),
            "encoder": encoder}


def choose_text_fields(settings: TokenizerSettings, item_file: ItemFile) -> list[str]:
    available = item_file.fields
    requested = settings.text_field_list
    if requested is None:
        fields = [f for f, t in available.items()
                  if t in TEXT_TYPES and f not in (ITEM_FIELD, settings.sem_id_field)]
        if not fields:
            raise DatasetFormatError(
                f"{item_file.path}: no text field (token / token_seq) besides "
                f"{ITEM_FIELD} and {settings.sem_id_field}; give --text_fields=... or "
                "--embeddings=FILE.npy")
        return fields
    missing = [f for f in requested if f not in available]
    if missing:
        raise DatasetFormatError(
            f"{item_file.path}: --text_fields names {missing}, not in the file; its "
            f"fields are {list(available)}")
    if not requested:
        raise ConfigError(f"--text_fields={settings.text_fields!r}: no field named")
    return requested


def check_finite(embeddings: np.ndarray, origin: str, item_file: ItemFile) -> None:
    bad = ~np.isfinite(embeddings).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        item = item_file.column(ITEM_FIELD).iloc[row]
        raise DatasetFormatError(
            f"{origin}: {int(bad.sum())} embedding rows hold NaN or infinite values "
            f"(first: row {row}, item {item!r}); nothing written")


def quantize(embeddings: np.ndarray, s: TokenizerSettings):
    if s.method == "rq-kmeans":
        return rq_kmeans(embeddings, s.levels, s.codebook_size, s.seed, balanced=s.balanced,
                         balanced_iters=s.balanced_iters, max_iter=s.kmeans_max_iter,
                         points_per_code=s.kmeans_points_per_code)
    return rq_vae(embeddings, s.levels, s.codebook_size, s.seed, s.rqvae_hidden,
                  s.rqvae_latent_dim, s.rqvae_epochs, s.rqvae_batch_size, s.rqvae_lr,
                  s.rqvae_beta, kmeans_max_iter=s.kmeans_max_iter,
                  points_per_code=s.kmeans_points_per_code)


def handle_collisions(quantization, embeddings: np.ndarray, rule: str):
    """-> (codes to write, facts about the collisions and what handling them cost)."""
    codes = quantization.codes
    found = code_quality(codes)
    facts = {"rule": rule, "found": found["collisions"]}
    if rule == "extra_level" or found["collisions"]["items_sharing_a_code"] == 0:
        facts["summary"] = ("codes written as found; " + collision_summary(found)
                            if found["collisions"]["items_sharing_a_code"] else
                            "no collision, no extra level")
        return codes, facts
    before = reconstruction_error(embeddings, quantization.reconstruct(codes))
    new_codes, moved = reassign_last_level(codes, quantization.last_input,
                                           quantization.last_codebook)
    after = reconstruction_error(embeddings, quantization.reconstruct(new_codes))
    facts.update(moved)
    facts["unexplained_variance_before"] = before["unexplained_variance"]
    facts["summary"] = (
        f"{moved['items_moved']} items moved to their next-nearest free last-level code "
        f"(mean extra squared distance {moved['mean_extra_sq_distance']:.4g}); unexplained "
        f"variance {before['unexplained_variance']:.4f} -> {after['unexplained_variance']:.4f}; "
        f"{moved['items_left_sharing']} items still share a code")
    return new_codes, facts


def reproduce_command(s: TokenizerSettings) -> str:
    parts = [f"--dataset={s.dataset}"]
    if s.data_path:
        parts.append(f"--data_path={s.data_path}")
    if s.embeddings:
        parts.append(f"--embeddings={s.embeddings}")
    else:
        if s.text_fields:
            parts.append(f"--text_fields={s.text_fields}")
        parts.append(f"--encoder={s.encoder}")
    for name, value in s.quantizer_settings().items():
        if isinstance(value, list):
            value = "[" + ",".join(map(str, value)) + "]"
        elif isinstance(value, bool):
            value = str(value).lower()
        parts.append(f"--{name}={value}")
    return commands.shown("tokenize", parts)
