"""Near duplicates: a 64-bit perceptual hash per image, a MinHash signature per text, and the clustering.

Scores (per record, in the workers: stage `near_duplicate_hashes`):
- `phash`: imagehash's 64-bit DCT pHash of the first image, as a signed 64-bit integer (DuckDB BIGINT).
  16-bit images are scaled to 8 bits by their own bit depth first, so a 12-bit DICOM and its 8-bit JPEG
  copy hash alike. A passthrough JPEG is hashed from its reduced decode (long side >= 256 px; the hash
  itself looks at 32x32), manifests/images.py.
- `text_minhash`: datasketch MinHash (`num_perm` 32-bit values, little-endian bytes) of the sample's text
  (all turns, lowercased, punctuation dropped) as character `shingle`-grams.

Decision (global, at finalisation, from those columns only; pipeline/engine/finalize.py):
- Candidate pairs never come from all pairs. Images: bit-sampling LSH for Hamming distance (Indyk and
  Motwani): `tables` keys of `bits` sampled bit positions each; two hashes within `max_distance` share
  at least one key with probability >= `recall` (the bits per key are derived from it); each key is a
  DuckDB equi-join, and every candidate is verified by its exact Hamming distance. Texts of records
  without an image: datasketch MinHashLSH (banded) at the Jaccard threshold, verified by the estimate.
  Cost grows with the records plus the true neighbours (pipeline/bench/near_duplicates.py).
- A pair is a near duplicate when, within one task family, the images are within `phash_max_distance`
  and (rule `image_and_text`) the texts within `text_jaccard`; records without an image by text alone.
  Rule `image`: by image alone (a VQA image with many questions then keeps one question only).
- Keep rule, per connected group: members in order of recipe source priority (earlier source first;
  sources not listed after), then more pixels, then smaller id. Greedily in that order, a member with an
  edge to an already kept member is rejected `near_duplicate` naming that member and the distance; so
  every rejected row is within the thresholds of the row it names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
from PIL import Image as PILImage

from manifests.images import CHECK_SIDE, draft_request, reduced_view
from manifests.records import Image, Record

_WORDS = re.compile(r"[^\w]+", re.UNICODE)
MINHASH_SEED = 1  # datasketch's default; fixed, so signatures agree across workers and runs
MINHASH_SCHEME = "affine32"  # datasketch 2: 32-bit values, stored as they are


# ---- per-record scores -------------------------------------------------------------------------


def _to_pil(image: Image) -> PILImage.Image | None:
    if image.pixels is not None:
        pixels = image.pixels
        if pixels.dtype == np.uint16:
            full = float((1 << max(1, min(16, image.bit_depth or 16))) - 1)
            pixels = np.clip(pixels.astype(np.float32) * (255.0 / full), 0, 255).astype(np.uint8)
        return PILImage.fromarray(pixels)
    if image.encoded is not None:  # a passthrough JPEG: the hash sees a 32x32 thumbnail, a reduced decode will do
        return reduced_view(image, *draft_request(image.width, image.height, CHECK_SIDE))
    return None


def phash_of_pil(picture: PILImage.Image) -> int:
    """imagehash's pHash (8x8 DCT bits of a 32x32 grey thumbnail) as a signed 64-bit integer."""
    import imagehash

    bits = imagehash.phash(picture.convert("L"), hash_size=8).hash.flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value - (1 << 64) if value >= 1 << 63 else value


def image_phash(image: Image) -> int | None:
    picture = _to_pil(image)
    return None if picture is None else phash_of_pil(picture)


def normalise_text(text: str) -> str:
    return " ".join(_WORDS.sub(" ", text.lower()).split())


def text_minhash(text: str, num_perm: int = 64, shingle: int = 5) -> bytes | None:
    """A MinHash signature of the text's character shingles; None for an empty text."""
    from datasketch import MinHash

    normal = normalise_text(text)
    if not normal:
        return None
    grams = {normal[i:i + shingle] for i in range(max(1, len(normal) - shingle + 1))}
    minhash = MinHash(num_perm=num_perm, seed=MINHASH_SEED, scheme=MINHASH_SCHEME)
    minhash.update_batch([gram.encode("utf-8") for gram in grams])
    return minhash.hashvalues.astype("<u4").tobytes()


def signature(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<u4")


def jaccard(a: bytes | None, b: bytes | None) -> float:
    """The MinHash estimate of the Jaccard similarity of two signatures (0 when either is missing)."""
    if a is None or b is None or len(a) != len(b):
        return 0.0
    return float(np.mean(signature(a) == signature(b)))


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()


def score_record(record: Record, num_perm: int, shingle: int) -> None:
    """The two score columns of a record (first image's pHash, text signature)."""
    images = record.images
    record.scores["phash"] = image_phash(images[0]) if images else None
    record.scores["text_minhash"] = text_minhash(record.text, num_perm, shingle)


# ---- candidate pairs, never all pairs ----------------------------------------------------------


def lsh_bits(max_distance: int, tables: int, recall: float) -> int:
    """Bits per key so that a pair at `max_distance` shares one of `tables` keys with `recall`."""
    per_table = 1.0 - (1.0 - recall) ** (1.0 / tables)
    keep = 1.0 - max_distance / 64.0
    if keep <= 0.0:
        return 1
    bits = int(math.floor(math.log(per_table) / math.log(keep))) if keep < 1.0 else 32
    return max(8, min(32, bits))


def _keys(hashes: np.ndarray, tables: int, bits: int, seed: int) -> np.ndarray:
    """`tables` x n keys: each table's `bits` sampled bit positions packed into an integer."""
    unsigned = hashes.astype(np.int64).view(np.uint64)
    rng = np.random.default_rng(seed)
    keys = np.empty((tables, len(hashes)), dtype=np.int64)
    for table in range(tables):
        positions = np.sort(rng.choice(64, size=bits, replace=False)).astype(np.uint64)
        key = np.zeros(len(hashes), dtype=np.uint64)
        for rank, position in enumerate(positions):
            key |= ((unsigned >> position) & np.uint64(1)) << np.uint64(rank)
        keys[table] = key.astype(np.int64)
    return keys


def hamming_pairs(left: np.ndarray, right: np.ndarray | None, max_distance: int, tables: int = 48,
                  recall: float = 0.98, seed: int = 0) -> pa.Table:
    """Pairs (i, j, distance) with Hamming distance <= max_distance, by bit-sampling LSH and DuckDB joins.

    `right` None: pairs within `left` (i < j). Otherwise pairs across (i into left, j into right).
    Candidates come from equal keys only; each is verified by its exact distance.
    """
    bits = lsh_bits(max_distance, tables, recall)
    con = duckdb.connect()

    def key_table(hashes: np.ndarray) -> pa.Table:
        keys = _keys(hashes, tables, bits, seed)
        n = len(hashes)
        return pa.table({"t": np.repeat(np.arange(tables, dtype=np.int16), n), "k": keys.reshape(-1),
                         "i": np.tile(np.arange(n, dtype=np.int64), tables)})

    con.register("lk", key_table(left))
    con.register("lh", pa.table({"i": np.arange(len(left), dtype=np.int64), "h": left.astype(np.int64)}))
    if right is None:
        rk, rh, order = "lk", "lh", "AND a.i < b.i"
    else:
        con.register("rk", key_table(right))
        con.register("rh", pa.table({"i": np.arange(len(right), dtype=np.int64), "h": right.astype(np.int64)}))
        rk, rh, order = "rk", "rh", ""
    return con.sql(
        f"""
        WITH cand AS (SELECT DISTINCT a.i AS i, b.i AS j FROM lk a JOIN {rk} b ON a.t = b.t AND a.k = b.k {order})
        SELECT cand.i, cand.j, bit_count(xor(x.h, y.h))::INTEGER AS distance
        FROM cand JOIN lh x ON x.i = cand.i JOIN {rh} y ON y.i = cand.j
        WHERE bit_count(xor(x.h, y.h)) <= {int(max_distance)}
        """
    ).to_arrow_table()


def text_pairs(signatures: Sequence[bytes], threshold: float, num_perm: int) -> list[tuple[int, int, float]]:
    """Pairs (i, j, Jaccard estimate) >= threshold within one list, by datasketch MinHashLSH (banded)."""
    from datasketch import LeanMinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes = []
    for index, blob in enumerate(signatures):
        minhash = LeanMinHash(seed=MINHASH_SEED, hashvalues=signature(blob), scheme=MINHASH_SCHEME)
        hashes.append(minhash)
        lsh.insert(index, minhash, check_duplication=False)
    pairs = []
    for index, minhash in enumerate(hashes):
        for other in lsh.query(minhash):
            if other > index:
                estimate = jaccard(signatures[index], signatures[other])
                if estimate >= threshold:
                    pairs.append((index, other, estimate))
    return pairs


# ---- the decision ------------------------------------------------------------------------------


@dataclass
class NearDuplicateRules:
    phash_max_distance: int = 8
    text_jaccard: float = 0.5
    rule: str = "image_and_text"  # or "image"
    num_perm: int = 64
    lsh_tables: int = 48
    lsh_recall: float = 0.98
    source_priority: tuple[str, ...] = ()
    hash_slices: bool = False  # slices of volumes take part only when True (else exact duplicates only)


def near_duplicate_rejections(rows: pa.Table, rules: NearDuplicateRules) -> pa.Table:
    """From rows (id, source, task_family, pixels, phash, text_minhash), the rejected ones and why.

    Returns a table (id, kept_id, detail). Deterministic: the same rows give the same answer.
    """
    columns = rows.to_pydict()
    n = len(columns["id"])
    if n == 0:
        return pa.table({"id": pa.array([], pa.string()), "kept_id": pa.array([], pa.string()),
                         "detail": pa.array([], pa.string())})
    ids, sources, families = columns["id"], columns["source"], columns["task_family"]
    phashes, texts, pixels = columns["phash"], columns["text_minhash"], columns["pixels"]
    edges: dict[int, list[tuple[int, str]]] = {}

    def add(i: int, j: int, detail: str) -> None:
        if families[i] != families[j]:
            return
        edges.setdefault(i, []).append((j, detail))
        edges.setdefault(j, []).append((i, detail))

    with_image = [i for i in range(n) if phashes[i] is not None]
    if with_image:
        hashes = np.array([phashes[i] for i in with_image], dtype=np.int64)
        pairs = hamming_pairs(hashes, None, rules.phash_max_distance, rules.lsh_tables, rules.lsh_recall)
        for a, b, distance in zip(*(pairs.column(c).to_numpy() for c in ("i", "j", "distance"))):
            i, j = with_image[int(a)], with_image[int(b)]
            if rules.rule == "image":
                add(i, j, f"pHash distance {int(distance)}")
                continue
            similarity = jaccard(texts[i], texts[j]) if texts[i] is not None or texts[j] is not None else 1.0
            if similarity >= rules.text_jaccard:
                add(i, j, f"pHash distance {int(distance)}, text Jaccard {similarity:.2f}")
    text_only = [i for i in range(n) if phashes[i] is None and texts[i] is not None]
    if text_only:
        for a, b, similarity in text_pairs([texts[i] for i in text_only], rules.text_jaccard, rules.num_perm):
            add(text_only[a], text_only[b], f"text Jaccard {similarity:.2f}")

    rank = {name: index for index, name in enumerate(rules.source_priority)}
    order = sorted(edges, key=lambda i: (rank.get(sources[i], len(rank)), -(pixels[i] or 0), ids[i]))
    position = {i: p for p, i in enumerate(order)}
    kept: set[int] = set()
    out_id, out_kept, out_detail = [], [], []
    for i in order:
        best = min(((position[j], j, detail) for j, detail in edges[i] if j in kept), default=None)
        if best is None:
            kept.add(i)
            continue
        _, j, detail = best
        out_id.append(ids[i])
        out_kept.append(ids[j])
        out_detail.append(f"near duplicate of {ids[j]} ({sources[j]}): {detail}")
    return pa.table({"id": pa.array(out_id, pa.string()), "kept_id": pa.array(out_kept, pa.string()),
                     "detail": pa.array(out_detail, pa.string())})


def reject_near_duplicates(con: duckdb.DuckDBPyConnection, rules: NearDuplicateRules, table: str = "chosen") -> int:
    """Apply the rule to the kept rows of `table` (manifest columns); returns how many were rejected."""
    rows = con.sql(
        f"""
        SELECT id, source, coalesce(task_family, '') AS task_family,
               coalesce(width, 0)::BIGINT * coalesce(height, 0)::BIGINT AS pixels, phash, text_minhash
        FROM {table} WHERE status = 'kept' AND (phash IS NOT NULL OR text_minhash IS NOT NULL)
          AND (slice_index IS NULL OR {bool(rules.hash_slices)}) ORDER BY id
        """
    ).to_arrow_table()
    rejected = near_duplicate_rejections(rows, rules)
    if rejected.num_rows == 0:
        return 0
    con.register("near_dup_rejected", rejected)
    con.execute(
        f"""
        UPDATE {table} SET status = 'rejected', reason = 'near_duplicate', detail = r.detail
        FROM near_dup_rejected r WHERE {table}.id = r.id
        """
    )
    con.unregister("near_dup_rejected")
    return rejected.num_rows
