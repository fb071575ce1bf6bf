"""Disk cache of a frozen teacher's outputs, addressed by the content of the input crop.

DWPose runs a frozen teacher on every training crop: the big teacher in stage 1 (its forward costs more than the
small student's forward and backward together), the stage-1 student in stage 2 (where it is nearly the whole
cost: only a head trains). A frozen teacher in eval mode is a pure function of its input, so its outputs can be
stored and reused whenever the *same crop* comes again.

**What makes a hit sound.** The key of a sample is a hash of the exact bytes of its input tensor (float32, C×h×w),
so a hit can only return what the teacher computes for that very input; the cache file itself is specific to the
teacher's weights and architecture (:func:`teacher_fingerprint`) and to the autocast dtype. Nothing about the
data pipeline is assumed: if augmentation changes, crops change, keys change, and the cache simply misses.

**When it helps.** The loader draws each sample's augmentation from ``(train.seed, epoch, index)``
(:mod:`posedistill.data.loader`), so two runs with the same data, seed, input size and augmentation see
byte-identical crops. Then the second run reuses every teacher output:

- several students distilled from one teacher with the same seed (the paper's l → t / s / m stage-1 runs);
- stage 2 repeated from one stage-1 model (head-init option, learning rate, epochs; a longer run reuses the
  epochs the shorter one stored);
- a run restarted from scratch after a crash or a config fix.

Within one run it never hits (each epoch draws new augmentations), and runs with different seeds share nothing.
Its price is disk: per sample the last teacher map (C×h/32×w/32) and both SimCC rows (K×(2w + 2h)), e.g. 36 KB +
25 KB in float32 for an RTMPose-m teacher on LSP-14 at 128×96, times samples × epochs. ``float16`` storage halves
that and rounds every stored value (relative error up to 2^-11 ≈ 4.9e-4).

**Runtime teachers** (an ncnn / ONNX model run outside torch, :mod:`posedistill.distill.runtime_teacher`, e.g.
PP-TinyPose) go through the same :func:`cached_forward`: what is stored is what the KD loss consumes, their SimCC
logits (``("simcc_x", "simcc_y")``; a heatmap teacher's already converted to the student's bins), and the file is
named by :meth:`~posedistill.distill.runtime_teacher.RuntimeTeacher.fingerprint` (the model files' bytes, their
contract, flip test and the conversion settings). There the cache saves the teacher's forward and the conversion.

Storage: one SQLite file per (teacher, autocast dtype, storage dtype) under the cache folder, one row per sample
(16-byte key, the arrays' bytes). SQLite commits are atomic, so an interrupted run leaves a valid cache; several
processes (DDP ranks) may share it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

STORAGE_DTYPES = {"float32": np.float32, "float16": np.float16}


def teacher_fingerprint(model: nn.Module, extra: str = "") -> str:
    """Hex digest of the model's architecture (``build_args`` or class name) and every tensor of its state dict."""
    h = hashlib.blake2b(digest_size=16)
    args = getattr(model, "build_args", None)
    h.update(json.dumps(args if args is not None else type(model).__name__, sort_keys=True).encode())
    h.update(extra.encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


def sample_keys(images: Tensor) -> list[bytes]:
    """One 16-byte content hash per sample of ``images`` (B, ...), over its float32 bytes and shape."""
    arr = images.detach().to("cpu", torch.float32).contiguous().numpy()
    shape = str(arr.shape[1:]).encode()
    return [hashlib.blake2b(shape + row.tobytes(), digest_size=16).digest() for row in arr]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    lookup_seconds: float = 0.0  # hashing + reading + decoding
    store_seconds: float = 0.0  # encoding + writing
    compute_seconds: float = 0.0  # teacher forwards on the misses

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


class TeacherCache:
    """Per-sample teacher outputs in ``<root>/<fingerprint>-<autocast>-<dtype>.sqlite``.

    Args:
        root: cache folder (created).
        fingerprint: what identifies the teacher (:func:`teacher_fingerprint`).
        names: the output names, in the order they are stored (e.g. ``("feat", "simcc_x", "simcc_y")``).
        dtype: ``"float32"`` (exact) or ``"float16"`` storage.
    """

    def __init__(self, root: str | Path, fingerprint: str, names: Sequence[str], dtype: str = "float32") -> None:
        if dtype not in STORAGE_DTYPES:
            raise ValueError(f"teacher cache dtype must be one of {sorted(STORAGE_DTYPES)}, got {dtype!r}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fingerprint = fingerprint
        self.names = tuple(names)
        self.dtype = dtype
        self.np_dtype = STORAGE_DTYPES[dtype]
        self.stats = CacheStats()
        self._shapes: dict[str, tuple[int, ...]] | None = None
        self._conn: dict[str, sqlite3.Connection] = {}

    # ------------------------------------------------------------------------------------------ storage
    def path(self, autocast: str = "float32") -> Path:
        return self.root / f"{self.fingerprint}-{autocast}-{self.dtype}.sqlite"

    def _db(self, autocast: str) -> sqlite3.Connection:
        if autocast not in self._conn:
            conn = sqlite3.connect(self.path(autocast), timeout=60.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
            conn.execute("CREATE TABLE IF NOT EXISTS entries (key BLOB PRIMARY KEY, data BLOB NOT NULL)")
            conn.commit()
            self._conn[autocast] = conn
        return self._conn[autocast]

    def _check_shapes(self, conn: sqlite3.Connection, shapes: dict[str, tuple[int, ...]]) -> None:
        """Record the per-sample shapes on first write; refuse a file written with other shapes."""
        row = conn.execute("SELECT value FROM meta WHERE name = 'shapes'").fetchone()
        wanted = {n: list(s) for n, s in shapes.items()}
        if row is None:
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('shapes', ?)", (json.dumps(wanted),))
            conn.commit()
        elif json.loads(row[0]) != wanted:
            raise ValueError(f"{self.path()}: the cache holds outputs of shapes {row[0]}, this run has {wanted}")

    def _stored_shapes(self, conn: sqlite3.Connection) -> dict[str, tuple[int, ...]] | None:
        row = conn.execute("SELECT value FROM meta WHERE name = 'shapes'").fetchone()
        if row is None:
            return None
        return {n: tuple(s) for n, s in json.loads(row[0]).items()}

    def __len__(self) -> int:
        return sum(c.execute("SELECT COUNT(*) FROM entries").fetchone()[0] for c in self._conn.values())

    def close(self) -> None:
        for conn in self._conn.values():
            conn.close()
        self._conn.clear()

    def __getstate__(self) -> dict:  # connections do not cross processes; each process reopens
        state = dict(self.__dict__)
        state["_conn"] = {}
        return state

    # ------------------------------------------------------------------------------------------ access
    def get(self, keys: Sequence[bytes], autocast: str = "float32") -> list[dict[str, np.ndarray] | None]:
        """The stored outputs of each key (arrays without the batch axis), or None where absent."""
        conn = self._db(autocast)
        shapes = self._stored_shapes(conn)
        if shapes is None or not keys:
            return [None] * len(keys)
        found: dict[bytes, bytes] = {}
        for i in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            chunk = list(keys[i : i + 500])
            marks = ",".join("?" * len(chunk))
            found.update(conn.execute(f"SELECT key, data FROM entries WHERE key IN ({marks})", chunk).fetchall())
        sizes = [int(np.prod(shapes[n])) for n in self.names]
        out: list[dict[str, np.ndarray] | None] = []
        for k in keys:
            blob = found.get(k)
            if blob is None:
                out.append(None)
                continue
            flat = np.frombuffer(blob, dtype=self.np_dtype)
            arrays, start = {}, 0
            for name, size in zip(self.names, sizes):
                arrays[name] = flat[start : start + size].reshape(shapes[name])
                start += size
            out.append(arrays)
        return out

    def put(self, keys: Sequence[bytes], outputs: dict[str, Tensor], autocast: str = "float32") -> None:
        """Store row ``i`` of every output under ``keys[i]`` (existing keys are kept)."""
        conn = self._db(autocast)
        arrays = {n: outputs[n].detach().to("cpu", torch.float32).numpy().astype(self.np_dtype) for n in self.names}
        self._check_shapes(conn, {n: a.shape[1:] for n, a in arrays.items()})
        rows = [(k, b"".join(arrays[n][i].tobytes() for n in self.names)) for i, k in enumerate(keys)]
        conn.executemany("INSERT OR IGNORE INTO entries VALUES (?, ?)", rows)
        conn.commit()


def autocast_tag(device_type: str) -> str:
    """The dtype a forward runs in right now on ``device_type`` (part of the cache identity)."""
    if torch.is_autocast_enabled(device_type):
        return str(torch.get_autocast_dtype(device_type)).replace("torch.", "")
    return "float32"


def cached_forward(
    cache: TeacherCache | None, forward: Callable[[Tensor], dict[str, Tensor]], images: Tensor
) -> dict[str, Tensor]:
    """``forward(images)`` (a dict of (B, ...) tensors), computing only the samples the cache lacks.

    Hits come back as float32 tensors on ``images``' device; every returned tensor is detached. The teacher must be
    in eval mode, so that a sample's outputs do not depend on the rest of its batch.
    """
    if cache is None:
        with torch.no_grad():
            return forward(images)
    t0 = time.perf_counter()
    tag = autocast_tag(images.device.type)
    keys = sample_keys(images)
    rows = cache.get(keys, tag)
    miss = [i for i, r in enumerate(rows) if r is None]
    cache.stats.lookup_seconds += time.perf_counter() - t0
    cache.stats.hits += len(keys) - len(miss)
    cache.stats.misses += len(miss)
    computed: dict[str, Tensor] = {}
    if miss:
        t1 = time.perf_counter()
        with torch.no_grad():
            computed = forward(images if len(miss) == len(keys) else images[miss])
        cache.stats.compute_seconds += time.perf_counter() - t1
        t2 = time.perf_counter()
        cache.put([keys[i] for i in miss], computed, tag)
        cache.stats.store_seconds += time.perf_counter() - t2
        if len(miss) == len(keys):
            return {n: v.detach() for n, v in computed.items()}
    t3 = time.perf_counter()
    out: dict[str, Tensor] = {}
    where = {i: j for j, i in enumerate(miss)}
    for name in cache.names:
        parts = []
        for i, r in enumerate(rows):
            if r is None:
                parts.append(computed[name][where[i]].detach().float())
            else:
                parts.append(torch.from_numpy(r[name].astype(np.float32)).to(images.device))
        out[name] = torch.stack(parts)
    cache.stats.lookup_seconds += time.perf_counter() - t3
    return out
