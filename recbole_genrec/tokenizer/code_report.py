"""Quality report of a semantic-ID code table ``codes [n_items, n_levels]``.

Per level: codes used, usage entropy (bits) and perplexity (``2 ** entropy``,
the number of equally used codes with the same entropy), the largest number of
items on one code, the number of distinct prefixes up to that level and the
trie's fan-out (children per node of the previous level: level 1 fans out from
the root).  For full codes: how many items share their code with another item
(collision rate), how many codes are shared and the largest such group -- with
the default ``sem_id_collision=extra_level`` that group size is the number of
tokens the appended disambiguation level needs.

The same report serves the tokenizer (plus reconstruction error and wall time,
added by the caller) and the converter, for codes it imports.
"""

import numpy as np


def code_quality(codes, codebook_size: int | None = None) -> dict:
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] == 0:
        raise ValueError(f"codes: expected a non-empty [n_items, n_levels] table, got "
                         f"shape {codes.shape}")
    n_items, n_levels = codes.shape
    levels = []
    parent = np.zeros(n_items, dtype=np.int64)  # prefix id of each item (root: 0)
    for level in range(n_levels):
        _, counts = np.unique(codes[:, level], return_counts=True)
        p = counts / n_items
        entropy = float(-(p * np.log2(p)).sum())
        # prefix ids up to this level: (parent prefix, code) pairs, densely renumbered
        pairs = np.stack([parent, codes[:, level].astype(np.int64)], axis=1)
        unique_pairs, prefix = np.unique(pairs, axis=0, return_inverse=True)
        _, children = np.unique(unique_pairs[:, 0], return_counts=True)
        levels.append({
            "level": level + 1,
            "codes_used": int(len(counts)),
            "usage_entropy_bits": entropy,
            "perplexity": float(2.0 ** entropy),
            "largest_code_items": int(counts.max()),
            "distinct_prefixes": int(len(unique_pairs)),
            "fanout_mean": float(children.mean()),
            "fanout_max": int(children.max()),
        })
        parent = prefix.reshape(-1).astype(np.int64)
    _, full_counts = np.unique(parent, return_counts=True)
    shared = full_counts[full_counts > 1]
    return {
        "items": int(n_items),
        "levels": int(n_levels),
        "codebook_size": codebook_size,
        "per_level": levels,
        "collisions": {
            "distinct_codes": int(len(full_counts)),
            "items_sharing_a_code": int(shared.sum()),
            "collision_rate": float(shared.sum() / n_items),
            "shared_codes": int(len(shared)),
            "largest_group": int(full_counts.max()),
        },
    }


def collision_summary(report: dict) -> str:
    c = report["collisions"]
    if c["items_sharing_a_code"] == 0:
        return "every item has its own code"
    return (f"{c['items_sharing_a_code']} of {report['items']} items share "
            f"{c['shared_codes']} full codes (largest group: {c['largest_group']} items); "
            f"with sem_id_collision=extra_level the dataset appends a disambiguation "
            f"level of up to {c['largest_group']} tokens")


def format_report(report: dict, title: str = "semantic-ID quality") -> str:
    """The report as printed: a header line, one row per level, collisions, extras."""
    size = report.get("codebook_size")
    lines = [f"{title}: {report['items']} items, {report['levels']} levels"
             + (f", codebook size {size}" if size else "")]
    lines.append("  level  codes used  entropy(bits)  perplexity  max items/code  "
                 "prefixes  fan-out mean/max")
    for lv in report["per_level"]:
        used = f"{lv['codes_used']}" + (f"/{size}" if size else "")
        lines.append(f"  {lv['level']:>5}  {used:>10}  {lv['usage_entropy_bits']:>13.3f}  "
                     f"{lv['perplexity']:>10.1f}  {lv['largest_code_items']:>14}  "
                     f"{lv['distinct_prefixes']:>8}  {lv['fanout_mean']:>8.2f}/{lv['fanout_max']}")
    c = report["collisions"]
    lines.append(f"  full codes: {c['distinct_codes']} distinct; collision rate "
                 f"{c['collision_rate']:.4f} ({collision_summary(report)})")
    if "reconstruction" in report:
        r = report["reconstruction"]
        lines.append(f"  reconstruction: mse {r['mse']:.6g}, unexplained variance "
                     f"{r['unexplained_variance']:.4f}")
    if "collision_handling" in report:
        h = report["collision_handling"]
        lines.append(f"  collision handling: {h['rule']}: {h['summary']}")
    if "wall_time_s" in report:
        lines.append("  wall time: " + ", ".join(
            f"{k} {v:.1f} s" for k, v in report["wall_time_s"].items()))
    return "\n".join(lines)


def reconstruction_error(embeddings: np.ndarray, reconstructed: np.ndarray,
                         chunk: int = 65536) -> dict:
    """Mean squared L2 error per item, and the fraction of the embeddings' variance
    (around their mean) that the reconstruction leaves unexplained (in float64, by
    chunks of rows)."""
    n = len(embeddings)
    mean = np.zeros(embeddings.shape[1])
    for start in range(0, n, chunk):
        mean += embeddings[start:start + chunk].sum(axis=0, dtype=np.float64)
    mean /= n
    err = spread = 0.0
    for start in range(0, n, chunk):
        x = embeddings[start:start + chunk].astype(np.float64)
        err += float(((x - reconstructed[start:start + chunk]) ** 2).sum())
        spread += float(((x - mean) ** 2).sum())
    return {"mse": err / n, "unexplained_variance": err / spread if spread > 0 else 0.0}
