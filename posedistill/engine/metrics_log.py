"""The run's metrics: ``metrics.jsonl`` (one JSON object per line) and, when installed, TensorBoard events.

Records (every one has ``type``, ``epoch`` (0-based) and ``global_iter`` (optimizer steps done)):

- ``train``: every ``log_interval`` iterations: ``iter`` (in the epoch), ``lr``, ``loss`` (the sum) and every loss
  term averaged over the interval (and over processes), ``time`` / ``data_time`` (s per iteration), ``grad_norm``
  when clipping, ``elapsed`` (s since the run started).
- ``epoch``: at the end of each epoch, the epoch means of the same terms and ``epoch_time``.
- ``val``: the validation metrics of the epoch (e.g. ``AP``, ``PCK``) and ``best`` so far.

The log is appended one whole line per write (a log, not a document: rewriting it atomically on every line would
cost O(n²)); a crash can only cut the last line, and a resumed run drops every record after the checkpoint it
resumes from (:meth:`MetricsLog.truncate_after`), rewriting the file atomically.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from posedistill.fileio import atomic_write_text


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLog:
    def __init__(self, path: str | Path, tensorboard: bool = False, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:  # tensorboard is optional
                    SummaryWriter = None
                if SummaryWriter is not None:
                    self._tb = SummaryWriter(str(self.path.parent / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        line = json.dumps({k: _clean(v) for k, v in record.items()}) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
        if self._tb is not None:
            kind = record.get("type", "train")
            step = int(record.get("global_iter", 0))
            for k, v in record.items():
                if k not in ("type", "epoch", "global_iter", "iter") and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"{kind}/{k}", v, step)
            self._tb.flush()

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash
                continue
        return out

    def truncate_after(self, global_iter: int) -> None:
        """Keep only records up to ``global_iter`` (and the val/epoch records of that point); drop cut lines."""
        if not self.enabled or not self.path.is_file():
            return
        keep = [r for r in self.read() if int(r.get("global_iter", 0)) <= global_iter]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
