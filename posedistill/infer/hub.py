"""Model files from a local path or a URL: a download cache with a progress bar and a sha256 check.

``resolve_model(path_or_url)`` returns a local file:

- a local ``.onnx`` (or any file) is returned as it is;
- the name of a model shipped in the repository's ``models/`` (``pp-tinypose``,
  :data:`posedistill.infer.named_models.NAMED_MODELS`) is its file there (a local path of that name wins);
- an ``http(s)://`` / ``file://`` URL is downloaded once into ``<cache>/hub/`` (``~/.cache/posedistill`` by
  default, or ``$POSEDISTILL_CACHE``): streamed to a temporary file next to the target, checked, then renamed, so
  an interrupted download never leaves a file that looks complete;
- an mmdeploy SDK zip (the format of the official RTMPose / DWPose / RTMW / YOLOX ONNX releases: a folder with
  ``end2end.onnx``, ``pipeline.json``, ``deploy.json``, ``detail.json``), local or downloaded, is unpacked into
  ``<cache>/hub/<zip name>/`` and the path of its ONNX file is returned (``pipeline.json`` lands next to it, where
  :func:`posedistill.infer.onnx_model.read_sdk_pipeline` finds it).

With ``sha256`` given, the downloaded (or local) file must have that digest (a prefix of at least 8 hex digits is
accepted, like the ``-c8b76419`` tags in OpenMMLab file names); a mismatch deletes the cached copy and raises.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from posedistill.errors import PoseDataError
from posedistill.fileio import atomic_write_text

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class ModelDownloadError(PoseDataError):
    """A model that cannot be fetched, unpacked or verified; names the URL or file."""


def default_cache_dir() -> Path:
    """``$POSEDISTILL_CACHE`` or ``~/.cache/posedistill``."""
    env = os.environ.get("POSEDISTILL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "posedistill"


def is_url(s: str | Path) -> bool:
    return isinstance(s, str) and urllib.parse.urlparse(s).scheme in ("http", "https", "file")


def sha256sum(path: str | Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _check_sha(path: Path, sha256: str | None, source: str) -> None:
    if not sha256:
        return
    want = sha256.lower().strip()
    if len(want) < 8 or any(c not in "0123456789abcdef" for c in want):
        raise ValueError(f"sha256 must be hex digits (8 to 64), got {sha256!r}")
    got = sha256sum(path)
    if not got.startswith(want):
        raise ModelDownloadError(source, f"sha256 mismatch: expected {want}, got {got}")


def _url_filename(url: str) -> str:
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not name or name in (".", ".."):
        name = "model-" + hashlib.sha256(url.encode()).hexdigest()[:16]
    return name


def download(
    url: str, dest: str | Path, sha256: str | None = None, progress: bool = True, timeout: float = 60.0
) -> Path:
    """Stream ``url`` to ``dest`` (temp file + rename) with a tqdm progress bar, then check ``sha256``."""
    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                req = urllib.request.Request(url, headers={"User-Agent": "posedistill"})
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    total = int(resp.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                              disable=not progress, leave=False) as bar:  # fmt: skip
                        while block := resp.read(_CHUNK):
                            out.write(block)
                            bar.update(len(block))
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
                raise ModelDownloadError(url, f"download failed: {e}") from None
            if total is not None and out.tell() != total:
                raise ModelDownloadError(url, f"download truncated: got {out.tell()} of {total} bytes")
            out.flush()
            os.fsync(out.fileno())
        _check_sha(tmp, sha256, url)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    log.info("downloaded %s -> %s", url, dest)
    return dest


def extract_sdk_zip(zip_path: str | Path, dest_dir: str | Path) -> Path:
    """Unpack the ONNX file and JSON side files of an mmdeploy SDK zip into ``dest_dir`` (flattened, by base name,
    so no member can escape the folder); returns the ONNX path. Written to a temp folder, then renamed."""
    zip_path, dest_dir = Path(zip_path), Path(dest_dir)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            onnx = [m for m in members if m.filename.lower().endswith(".onnx")]
            if not onnx:
                names = ", ".join(m.filename for m in members[:10])
                raise ModelDownloadError(zip_path, f"no .onnx file in the zip (members: {names})")
            # prefer mmdeploy's end2end.onnx when a zip holds several
            main = next((m for m in onnx if Path(m.filename).name == "end2end.onnx"), onnx[0])
            wanted = [main] + [m for m in members if m.filename.lower().endswith(".json")]
            dest_dir.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.", dir=dest_dir.parent))
            try:
                for m in wanted:
                    with zf.open(m) as src, open(tmp / Path(m.filename).name, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
                if dest_dir.exists():
                    shutil.rmtree(dest_dir)
                os.replace(tmp, dest_dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    except zipfile.BadZipFile as e:
        raise ModelDownloadError(zip_path, f"not a valid zip file: {e}") from None
    return dest_dir / Path(main.filename).name


def _zip_onnx(zip_path: Path, cache: Path) -> Path:
    """The ONNX of an SDK zip, unpacked once into the cache; the folder is keyed by the zip's absolute path, size
    and modification time, so a changed zip is unpacked again without hashing it on every call."""
    st = zip_path.stat()
    key = hashlib.sha256(f"{zip_path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    dest = cache / f"{zip_path.stem}-{key}"
    stamp = dest / ".complete"
    if stamp.is_file():
        onnx = dest / stamp.read_text(encoding="utf-8").strip()
        if onnx.is_file():
            return onnx
    onnx = extract_sdk_zip(zip_path, dest)
    atomic_write_text(stamp, onnx.name)
    return onnx


def resolve_model(
    path_or_url: str | Path,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """A local path for a model given as a path or URL (see the module docstring).

    Args:
        path_or_url: local file, ``http(s)://`` or ``file://`` URL; ``.zip`` = mmdeploy SDK archive.
        sha256: expected digest (or a prefix of ≥ 8 hex digits) of the file as given (the zip for archives).
        cache_dir: cache root (default :func:`default_cache_dir`).
        progress: show a tqdm bar while downloading.

    Returns:
        the model file (the extracted ``.onnx`` for zips).
    """
    cache = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / "hub"
    if is_url(path_or_url):
        url = str(path_or_url)
        target = cache / _url_filename(url)
        if target.is_file():
            try:
                _check_sha(target, sha256, str(target))
            except ModelDownloadError:
                log.warning("%s: cached copy does not match sha256 %s; downloading again", target, sha256)
                target.unlink()
        if not target.is_file():
            download(url, target, sha256=sha256, progress=progress)
        local = target
    else:
        local = Path(path_or_url).expanduser()
        if not local.exists():
            from posedistill.infer.named_models import NAMED_MODELS, named_model

            named = named_model(str(path_or_url))
            if named is None:
                raise ModelDownloadError(
                    local, f"no such file (give a local path, an http(s):// URL or a shipped model's name: "
                    f"{', '.join(sorted(NAMED_MODELS))})"
                )  # fmt: skip
            local = Path(named)
        if local.is_file():
            _check_sha(local, sha256, str(local))
    if local.is_file() and zipfile.is_zipfile(local):
        return _zip_onnx(local, cache)
    return local
