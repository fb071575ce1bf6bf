"""Sidecar files: the I/O contract of a model file that cannot say it itself (ncnn ``.param`` / ``.bin``, ONNX files
without posedistill metadata, detectors).

One schema for every kind of model, JSON or YAML::

    {
      "kind": "pose",                                # pose | detector
      "format": "ncnn",                              # ncnn | onnx
      "model_file": "pp-tinypose_256x192_ncnn.param",  # the file described (ncnn: the .param); lookup by name
      "sha256": "7e418f7ee6e8...",                   # its digest; lookup by content, checked when given
      "input_names": ["image"],
      "output_names": ["save_infer_model/scale_0.tmp_1"],
      "input_size": [192, 256],                      # (w, h): the crop (pose) or the letterbox canvas (detector)
      "color": "rgb",                                # channel order the network expects: rgb | bgr
      "mean": [123.675, 116.28, 103.53],             # per channel, on 0-255 pixels, in that channel order;
      "std": [58.395, 57.12, 57.375],                #   null for both = raw 0-255 pixels
      "output_kind": "heatmap",                      # pose: heatmap | simcc
      "layout": "coco",                              # pose: posedistill.layouts name
      "decoder": "argmax+dark",                      # pose: heatmap argmax+dark | argmax+quarter; simcc argmax
      "heatmap_stride": 4,                           # heatmap: input pixels per heatmap pixel (default 4)
      "sigma": 2.0,                                  # heatmap: σ in heatmap pixels (sets DARK's blur, default 2)
      "split_ratio": 2.0,                            # simcc: bins per input pixel (default 2)
      "udp": false,                                  # pose: UDP crops / decoding (default false)
      "bbox_padding": 1.25,                          # pose: box enlargement before the crop (default 1.25)
      "resize": "letterbox",                         # detector: how the image becomes the input (letterbox)
      "pad_value": 114,                              # detector: letterbox fill (default 114)
      "name": "...", "source": "...", "license": "...", "notes": "..."   # free text
    }

Lookup (:func:`find_sidecar`): ``<stem>.json`` / ``.yaml`` / ``.yml`` or ``<file name>.json`` next to the model
file; then the sidecars shipped in the repository under ``models/sidecars/``, matched by the model's file name or
sha256 (so read-only model folders need no file of ours). A sidecar found by name whose ``sha256`` does not match
the file is skipped with a warning.

Checks: :func:`load_sidecar` rejects a missing file, bad JSON / YAML, unknown or missing fields and wrong types,
naming the file and the field. :func:`check_names` compares the input / output names with what the model has (for
ncnn: the blobs of the ``.param`` file, :func:`ncnn_blobs`) and :func:`check_pose_outputs` the input size with the
output shapes of one dry run. Every error is a :class:`SidecarError` (a ``PoseDataError``, hence a ``ValueError``).
numpy-free, torch-free.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posedistill.errors import PoseDataError

log = logging.getLogger(__name__)

SIDECAR_SUFFIXES = (".json", ".yaml", ".yml")
REPO_SIDECAR_DIR = Path(__file__).resolve().parents[2] / "models" / "sidecars"
KINDS = ("pose", "detector")
FORMATS = ("ncnn", "onnx")
COLORS = ("rgb", "bgr")
OUTPUT_KINDS = ("heatmap", "simcc")
DECODERS = {"heatmap": ("argmax+dark", "argmax+quarter"), "simcc": ("argmax",)}
RESIZES = ("letterbox",)
INFO_FIELDS = ("name", "source", "license", "notes")
COMMON_FIELDS = ("kind", "format", "model_file", "sha256", "input_names", "output_names", "input_size", "color",
                 "mean", "std", *INFO_FIELDS)  # fmt: skip
POSE_FIELDS = ("output_kind", "layout", "decoder", "heatmap_stride", "sigma", "split_ratio", "udp", "bbox_padding")
DETECTOR_FIELDS = ("resize", "pad_value")
REQUIRED = {
    "pose": ("kind", "format", "input_names", "output_names", "input_size", "color", "output_kind", "layout"),
    "detector": ("kind", "format", "input_names", "output_names", "input_size", "color"),
}


class SidecarError(PoseDataError):
    """A sidecar that is missing, unreadable, malformed or does not fit its model; names the file and the field."""


@dataclass(frozen=True)
class ModelSidecar:
    """A parsed, validated sidecar (see the module docstring for the meaning of every field).

    Attributes:
        path: the sidecar file.
        kind: ``"pose"`` or ``"detector"``.
        format: ``"ncnn"`` or ``"onnx"``.
        input_names, output_names: the graph's blob / tensor names (pose heatmap: one output; simcc: x, y).
        input_size: (w, h) in pixels.
        color: ``"rgb"`` or ``"bgr"``, the channel order the network takes.
        mean, std: per-channel normalisation on 0-255 pixels in that order; None = raw pixels.
        model_file, sha256: what the sidecar describes (lookup keys), or None.
        output_kind, layout, decoder, heatmap_stride, sigma, split_ratio, udp, bbox_padding: pose models.
        resize, pad_value: detectors.
        info: the free-text fields (name, source, license, notes).
    """

    path: str
    kind: str
    format: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    input_size: tuple[int, int]
    color: str
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    model_file: str | None = None
    sha256: str | None = None
    output_kind: str | None = None
    layout: str | None = None
    decoder: str | None = None
    heatmap_stride: float = 4.0
    sigma: float = 2.0
    split_ratio: float = 2.0
    udp: bool = False
    bbox_padding: float = 1.25
    resize: str = "letterbox"
    pad_value: float = 114.0
    info: tuple[tuple[str, str], ...] = ()

    @property
    def to_rgb(self) -> bool:
        """The network takes RGB (posedistill's crops are BGR and are swapped)."""
        return self.color == "rgb"

    def codec_config(self, output_shapes: Sequence[Sequence[int]]) -> dict[str, Any]:
        """The :func:`posedistill.codecs.build_codec` config of a pose model, given its per-crop output shapes
        ((K, H', W') for heatmaps, (K, Wx) and (K, Wy) for SimCC)."""
        w, h = self.input_size
        if self.output_kind == "heatmap":
            hh, hw = (int(v) for v in output_shapes[0][-2:])
            return {"type": "heatmap", "input_size": [w, h], "heatmap_size": [hw, hh], "sigma": self.sigma,
                    "unbiased": self.decoder == "argmax+dark", "udp": self.udp}  # fmt: skip
        return {"type": "simcc", "input_size": [w, h], "sigma": [4.9, 5.66], "split_ratio": self.split_ratio}


# ---------------------------------------------------------------------------------------------- parsing


def _fail(path: Path | str, problem: str, field: str | None = None) -> SidecarError:
    return SidecarError(path, problem, field=field)


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SidecarError(path, "no such sidecar file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SidecarError(path, f"cannot read the sidecar: {e}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        raise SidecarError(path, f"not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {e}") from None
    if not isinstance(doc, dict):
        raise SidecarError(path, f"a sidecar is a mapping of fields, got {type(doc).__name__}")
    return doc


def _choice(path: Path, doc: dict, key: str, choices: Sequence[str], default: str | None = None) -> str | None:
    v = doc.get(key, default)
    if v is None:
        return None
    if not isinstance(v, str) or v.lower() not in choices:
        raise _fail(path, f"must be one of {list(choices)}, got {v!r}", key)
    return v.lower()


def _names(path: Path, doc: dict, key: str) -> tuple[str, ...]:
    v = doc[key]
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(s, str) and s for s in v):
        raise _fail(path, f"must be a non-empty list of names, got {v!r}", key)
    return tuple(v)


def _number(path: Path, doc: dict, key: str, default: float, positive: bool = True) -> float:
    v = doc.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or (positive and v <= 0) or v != v:
        raise _fail(path, f"must be a {'positive ' if positive else ''}number, got {v!r}", key)
    return float(v)


def _triple(path: Path, doc: dict, key: str) -> tuple[float, float, float] | None:
    v = doc.get(key)
    if v is None:
        return None
    if (
        not isinstance(v, list) or len(v) != 3
        or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
    ):  # fmt: skip
        raise _fail(path, f"must be 3 numbers (one per channel) or null, got {v!r}", key)
    if key == "std" and any(x <= 0 for x in v):
        raise _fail(path, f"must be positive, got {v!r}", key)
    return (float(v[0]), float(v[1]), float(v[2]))


def parse_sidecar(doc: dict[str, Any], path: str | Path = "<sidecar>") -> ModelSidecar:
    """Validate a sidecar mapping (as read from JSON / YAML) → :class:`ModelSidecar`."""
    path = Path(path)
    kind = _choice(path, doc, "kind", KINDS)
    if kind is None:
        raise _fail(path, f"missing; one of {list(KINDS)}", "kind")
    allowed = set(COMMON_FIELDS) | set(POSE_FIELDS if kind == "pose" else DETECTOR_FIELDS)
    unknown = sorted(set(doc) - allowed)
    if unknown:
        other = set(DETECTOR_FIELDS if kind == "pose" else POSE_FIELDS)
        hint = [f"{u!r} is a {'detector' if kind == 'pose' else 'pose'} field" for u in unknown if u in other]
        raise _fail(path, f"unknown field(s) {unknown} for kind {kind!r}" + (f" ({'; '.join(hint)})" if hint else "")
                    + f"; known: {sorted(allowed)}")  # fmt: skip
    missing = [k for k in REQUIRED[kind] if doc.get(k) is None]
    if missing:
        raise _fail(path, f"missing required field(s) {missing} for kind {kind!r}")
    fmt = _choice(path, doc, "format", FORMATS)
    size = doc["input_size"]
    if (
        not isinstance(size, list) or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):  # fmt: skip
        raise _fail(path, f"must be [w, h], two positive integers, got {size!r}", "input_size")
    mean, std = _triple(path, doc, "mean"), _triple(path, doc, "std")
    if (mean is None) != (std is None):
        raise _fail(path, "give both mean and std, or neither (raw 0-255 pixels)", "mean" if mean is None else "std")
    sha = doc.get("sha256")
    if sha is not None and (
        not isinstance(sha, str) or len(sha) < 8 or any(c not in "0123456789abcdef" for c in sha.lower())
    ):
        raise _fail(path, f"must be hex digits (8 to 64), got {sha!r}", "sha256")
    model_file = doc.get("model_file")
    if model_file is not None and (not isinstance(model_file, str) or Path(model_file).name != model_file):
        raise _fail(path, f"must be a bare file name, got {model_file!r}", "model_file")
    for key in INFO_FIELDS:
        if key in doc and not isinstance(doc[key], str):
            raise _fail(path, f"must be text, got {doc[key]!r}", key)
    inputs, outputs = _names(path, doc, "input_names"), _names(path, doc, "output_names")
    if len(inputs) != 1:
        raise _fail(path, f"exactly one input is supported, got {list(inputs)}", "input_names")
    kw: dict[str, Any] = {}
    if kind == "pose":
        out_kind = _choice(path, doc, "output_kind", OUTPUT_KINDS)
        assert out_kind is not None
        want = 1 if out_kind == "heatmap" else 2
        if len(outputs) != want:
            what = "one heatmap output" if want == 1 else "two outputs (simcc_x, simcc_y)"
            raise _fail(path, f"a {out_kind} model has {what}, got {list(outputs)}", "output_names")
        layout = doc["layout"]
        from posedistill.layouts import get_layout

        try:
            get_layout(layout)
        except (KeyError, TypeError) as e:
            raise _fail(path, str(e.args[0] if e.args else e), "layout") from None
        decoder = _choice(path, doc, "decoder", DECODERS[out_kind], DECODERS[out_kind][0])
        udp = doc.get("udp", False)
        if not isinstance(udp, bool):
            raise _fail(path, f"must be true or false, got {udp!r}", "udp")
        kw = {
            "output_kind": out_kind, "layout": layout, "decoder": decoder, "udp": udp,
            "heatmap_stride": _number(path, doc, "heatmap_stride", 4.0),
            "sigma": _number(path, doc, "sigma", 2.0),
            "split_ratio": _number(path, doc, "split_ratio", 2.0),
            "bbox_padding": _number(path, doc, "bbox_padding", 1.25),
        }  # fmt: skip
    else:
        kw = {
            "resize": _choice(path, doc, "resize", RESIZES, "letterbox"),
            "pad_value": _number(path, doc, "pad_value", 114.0, positive=False),
        }
    return ModelSidecar(
        path=str(path), kind=kind, format=fmt or "onnx", input_names=inputs, output_names=outputs,
        input_size=(int(size[0]), int(size[1])), color=_choice(path, doc, "color", COLORS) or "rgb", mean=mean,
        std=std, model_file=model_file, sha256=None if sha is None else sha.lower(),
        info=tuple((k, doc[k]) for k in INFO_FIELDS if k in doc), **kw,
    )  # fmt: skip


def load_sidecar(path: str | Path) -> ModelSidecar:
    """Read and validate a sidecar file (``.json``, ``.yaml`` or ``.yml``); :class:`SidecarError` on any problem."""
    path = Path(path)
    return parse_sidecar(_read_mapping(path), path)


# ---------------------------------------------------------------------------------------------- lookup


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, memoised per (path, size, modification time)."""
    st = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def canonical_model_file(path: str | Path) -> Path:
    """The file a sidecar describes: an ncnn ``.bin`` stands for the ``.param`` next to it."""
    p = Path(path)
    if p.suffix.lower() == ".bin" and p.with_suffix(".param").is_file():
        return p.with_suffix(".param")
    return p


def _neighbours(model: Path) -> list[Path]:
    names = [model.stem + s for s in SIDECAR_SUFFIXES] + [model.name + ".json"]
    return [model.with_name(n) for n in names if model.with_name(n) != model]


def _repo_sidecars(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SIDECAR_SUFFIXES and p.is_file())


def _sha_matches(want: str | None, model: Path) -> bool:
    return want is None or file_sha256(model).startswith(want)


def find_sidecar(model_path: str | Path, search_dirs: Sequence[str | Path] | None = None) -> Path | None:
    """The sidecar of ``model_path``, or None.

    Looks next to the model (``<stem>.json`` / ``.yaml`` / ``.yml``, ``<file name>.json``; a JSON / YAML file there
    without a ``kind`` field is not a sidecar and is passed over), then in ``search_dirs`` (default: the repository's
    ``models/sidecars/``) for a sidecar whose ``model_file`` is the model's file name (and whose ``sha256``, when
    given, matches), else one whose ``sha256`` matches the file's content."""
    model = canonical_model_file(model_path)
    for cand in _neighbours(model):
        if cand.is_file():
            if "kind" in _read_mapping(cand):  # a broken file there is an error: it was meant as the sidecar
                return cand
            log.debug("%s: no 'kind' field, not a sidecar", cand)
    dirs = [Path(d) for d in search_dirs] if search_dirs is not None else [REPO_SIDECAR_DIR]
    candidates: list[tuple[Path, dict[str, Any]]] = []
    for d in dirs:
        for p in _repo_sidecars(d):
            try:
                candidates.append((p, _read_mapping(p)))
            except SidecarError as e:
                log.warning("ignoring an unreadable sidecar: %s", e)
    if not model.is_file():
        return None
    for p, doc in candidates:
        if doc.get("model_file") == model.name:
            sha = doc.get("sha256")
            if isinstance(sha, str) and not _sha_matches(sha.lower(), model):
                log.warning("%s: describes a file named %s but with another sha256; not used for %s", p, model.name,
                            model)  # fmt: skip
                continue
            return p
    with_sha = [(p, doc["sha256"].lower()) for p, doc in candidates if isinstance(doc.get("sha256"), str)]
    if with_sha:
        digest = file_sha256(model)
        for p, sha in with_sha:
            if digest.startswith(sha):
                return p
    return None


def sidecar_for(
    model_path: str | Path, sidecar: str | Path | ModelSidecar | None = None, required: bool = False,
    kind: str | None = None,
) -> ModelSidecar | None:  # fmt: skip
    """The sidecar of a model: ``sidecar`` when given (a path or a parsed one), else :func:`find_sidecar`.

    ``required``: raise a :class:`SidecarError` that says where to put one when there is none. ``kind``: the kind
    the caller needs (``pose`` / ``detector``); another kind is an error."""
    if isinstance(sidecar, ModelSidecar):
        sc: ModelSidecar | None = sidecar
    elif sidecar is not None:
        sc = load_sidecar(sidecar)
    else:
        found = find_sidecar(model_path)
        sc = None if found is None else load_sidecar(found)
    if sc is None:
        if required:
            model = canonical_model_file(model_path)
            raise SidecarError(
                model, f"no sidecar describes this model's inputs and outputs: write {model.with_suffix('.json')} "
                f"(or one in {REPO_SIDECAR_DIR} with model_file {model.name!r}); schema: posedistill/infer/sidecar.py"
            )  # fmt: skip
        return None
    if kind is not None and sc.kind != kind:
        raise _fail(sc.path, f"describes a {sc.kind} model, but {model_path} is used as a {kind} model", "kind")
    return sc


# ---------------------------------------------------------------------------------------------- checks


def ncnn_blobs(param_path: str | Path) -> tuple[list[str], list[str], list[str]]:
    """(input blobs, all blobs, output blobs) of a text ncnn ``.param`` file: inputs are the tops of ``Input``
    layers, outputs the blobs no layer consumes. Raises :class:`SidecarError` for a file that is not one."""
    path = Path(param_path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise SidecarError(path, f"cannot read the ncnn .param file: {e}") from None
    if not lines or lines[0].strip() != "7767517":
        raise SidecarError(path, "not a text ncnn .param file (the first line must be the magic number 7767517)")
    inputs: list[str] = []
    tops: list[str] = []
    consumed: set[str] = set()
    for n, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        try:
            n_bottom, n_top = int(parts[2]), int(parts[3])
        except (IndexError, ValueError):
            raise SidecarError(path, f"line {n} is not an ncnn layer line: {line[:80]!r}") from None
        bottoms, layer_tops = parts[4 : 4 + n_bottom], parts[4 + n_bottom : 4 + n_bottom + n_top]
        consumed.update(bottoms)
        tops.extend(layer_tops)
        if parts[0] == "Input":
            inputs.extend(layer_tops)
    return inputs, tops, [t for t in tops if t not in consumed]


def check_names(
    sc: ModelSidecar, inputs: Sequence[str], outputs: Sequence[str], model: str | Path,
    all_blobs: Sequence[str] | None = None,
) -> None:  # fmt: skip
    """Every input / output name of the sidecar must exist in the model. ``inputs`` / ``outputs`` are the model's
    input and output names; ``all_blobs`` (ncnn) the blobs that may be extracted (intermediate ones too)."""
    for name in sc.input_names:
        if name not in inputs:
            raise _fail(sc.path, f"unknown input name {name!r}: {model} has inputs {list(inputs)}", "input_names")
    extractable = set(all_blobs if all_blobs is not None else outputs)
    for name in sc.output_names:
        if name not in extractable:
            raise _fail(sc.path, f"unknown output name {name!r}: {model} has outputs {list(outputs)}",
                        "output_names")  # fmt: skip


def check_pose_outputs(sc: ModelSidecar, shapes: Sequence[Sequence[int]], model: str | Path) -> int:
    """Check the per-crop output shapes of one dry run at the sidecar's input size against the sidecar (K of the
    layout, heatmap size = input / heatmap_stride, SimCC bins = input × split_ratio); returns K."""
    from posedistill.layouts import get_layout

    w, h = sc.input_size
    k_layout = get_layout(str(sc.layout)).num_keypoints
    got = [tuple(int(v) for v in s) for s in shapes]
    if sc.output_kind == "heatmap":
        if len(got[0]) != 3:
            raise _fail(sc.path, f"{model}: the heatmap output should be K×H×W per crop, got {got[0]}", "output_names")
        k, hh, hw = got[0]
        s = sc.heatmap_stride
        if abs(hw * s - w) >= s or abs(hh * s - h) >= s:
            raise _fail(
                sc.path, f"input size (w, h) = {(w, h)} does not fit the model: at that size it outputs {hw}×{hh} "
                f"heatmaps (W×H), i.e. an input of about {(round(hw * s), round(hh * s))} at stride {s:g}",
                "input_size",
            )  # fmt: skip
    else:
        if len(got) != 2 or any(len(g) != 2 for g in got):
            raise _fail(sc.path, f"{model}: SimCC outputs should be K×bins each, got {got}", "output_names")
        (k, wx), (ky, wy) = got
        r = sc.split_ratio
        if k != ky or round(w * r) != wx or round(h * r) != wy:
            raise _fail(
                sc.path, f"input size (w, h) = {(w, h)} with split ratio {r:g} needs {round(w * r)} x bins and "
                f"{round(h * r)} y bins; the model outputs {got}", "input_size",
            )  # fmt: skip
    if k != k_layout:
        raise _fail(sc.path, f"layout {sc.layout!r} has {k_layout} keypoints but {model} predicts {k}", "layout")
    return k
