"""Model download cache against an HTTP server on loopback: caching, sha256 checks (mismatch → deleted + error),
truncated and missing downloads, mmdeploy SDK zips (local and remote) with their pipeline.json."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from posedistill.infer.estimator import PoseEstimator
from posedistill.infer.export import export_onnx
from posedistill.infer.hub import ModelDownloadError, resolve_model, sha256sum

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")


class _Handler(http.server.SimpleHTTPRequestHandler):
    hits: ClassVar[dict[str, int]] = {}

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        _Handler.hits[self.path] = _Handler.hits.get(self.path, 0) + 1
        if self.path == "/truncated.onnx":  # announce 1000 bytes, send 10, hang up
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def dot_onnx(tmp_path_factory):
    from tests.test_estimator import DotModel

    return export_onnx(DotModel(17), tmp_path_factory.mktemp("m") / "dot.onnx", layout="coco",
                       input_size=(192, 256), dynamic_batch=True)  # fmt: skip


def _sdk_zip(onnx_path: Path, zip_path: Path, pipeline: dict | None) -> Path:
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.write(onnx_path, "rtmpose-x_sdk/end2end.onnx")
        if pipeline is not None:
            zf.writestr("rtmpose-x_sdk/pipeline.json", json.dumps(pipeline))
        zf.writestr("rtmpose-x_sdk/deploy.json", "{}")
    return zip_path


def test_local_path_is_returned_as_is(dot_onnx, tmp_path):
    assert resolve_model(dot_onnx, cache_dir=tmp_path) == dot_onnx
    assert resolve_model(str(dot_onnx), sha256=sha256sum(dot_onnx), cache_dir=tmp_path) == dot_onnx
    with pytest.raises(ModelDownloadError, match="sha256 mismatch"):
        resolve_model(dot_onnx, sha256="0" * 64, cache_dir=tmp_path)
    with pytest.raises(ModelDownloadError, match="no such file"):
        resolve_model(tmp_path / "missing.onnx", cache_dir=tmp_path)
    assert dot_onnx.is_file()  # a local file is never deleted


@pytest.mark.stress  # an HTTP server thread on a loopback port
def test_download_cache_and_sha(server, dot_onnx, tmp_path, capsys):
    root, base = server
    (root / "model.onnx").write_bytes(dot_onnx.read_bytes())
    digest = hashlib.sha256(dot_onnx.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    url = f"{base}/model.onnx"
    p = resolve_model(url, sha256=digest, cache_dir=cache)
    assert p == cache / "hub" / "model.onnx" and p.read_bytes() == dot_onnx.read_bytes()
    assert "model.onnx" in capsys.readouterr().err  # the progress bar
    n = _Handler.hits["/model.onnx"]
    assert resolve_model(url, sha256=digest[:8], cache_dir=cache) == p  # cached: no new request
    assert _Handler.hits["/model.onnx"] == n
    assert not list((cache / "hub").glob("*.part"))
    # the cached file runs
    res = PoseEstimator(url, detector=None, cache_dir=cache, progress=False)(np.zeros((100, 80, 3), np.uint8))
    assert res.keypoints.shape == (1, 17, 2)


@pytest.mark.stress  # an HTTP server thread on a loopback port
def test_sha_mismatch_deletes_and_raises(server, dot_onnx, tmp_path):
    root, base = server
    (root / "bad.onnx").write_bytes(dot_onnx.read_bytes())
    cache = tmp_path / "cache"
    with pytest.raises(ModelDownloadError, match=r"bad\.onnx.*sha256 mismatch: expected deadbeef"):
        resolve_model(f"{base}/bad.onnx", sha256="deadbeef", cache_dir=cache, progress=False)
    assert not any((cache / "hub").iterdir())  # neither the file nor a partial download is left
    # a cached copy that no longer matches is fetched again
    good = resolve_model(f"{base}/bad.onnx", cache_dir=cache, progress=False)
    good.write_bytes(b"corrupted")
    n = _Handler.hits["/bad.onnx"]
    assert resolve_model(f"{base}/bad.onnx", sha256=sha256sum(dot_onnx), cache_dir=cache, progress=False) == good
    assert _Handler.hits["/bad.onnx"] == n + 1 and good.read_bytes() == dot_onnx.read_bytes()
    with pytest.raises(ValueError, match="hex digits"):
        resolve_model(f"{base}/bad.onnx", sha256="xyz", cache_dir=cache)


@pytest.mark.stress  # an HTTP server thread on a loopback port
def test_missing_and_truncated_downloads(server, tmp_path):
    _, base = server
    with pytest.raises(ModelDownloadError, match=r"nothere\.onnx.*404"):
        resolve_model(f"{base}/nothere.onnx", cache_dir=tmp_path, progress=False)
    with pytest.raises(ModelDownloadError, match=r"truncated\.onnx"):
        resolve_model(f"{base}/truncated.onnx", cache_dir=tmp_path, progress=False)
    assert not any((tmp_path / "hub").iterdir())


@pytest.mark.stress  # an HTTP server thread on a loopback port
def test_sdk_zip_local_and_remote(server, dot_onnx, tmp_path):
    root, base = server
    pipeline = {"pipeline": {"tasks": [
        {"type": "Task", "module": "Transform", "transforms": [
            {"type": "LoadImageFromFile"},
            {"type": "TopDownGetBboxCenterScale", "padding": 1.5, "image_size": [192, 256]},
            {"type": "Normalize", "mean": [100.0, 110.0, 120.0], "std": [50.0, 55.0, 60.0], "to_rgb": True}]},
        {"type": "Task", "module": "mmpose", "component": "SimCCLabelDecode",
         "params": {"type": "SimCCLabel", "input_size": [192, 256], "simcc_split_ratio": 2.0}}]}}  # fmt: skip
    # an official file has no posedistill metadata: strip it so pipeline.json is what is read
    import onnx

    proto = onnx.load(str(dot_onnx))
    del proto.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(proto, str(plain))
    z = _sdk_zip(plain, tmp_path / "rtmpose-x_sdk.zip", pipeline)
    cache = tmp_path / "cache"
    onnx_path = resolve_model(z, cache_dir=cache)
    assert onnx_path.name == "end2end.onnx" and (onnx_path.parent / "pipeline.json").is_file()
    assert onnx_path.read_bytes() == plain.read_bytes()
    assert resolve_model(z, cache_dir=cache) == onnx_path  # unpacked once
    est = PoseEstimator(z, cache_dir=cache)
    assert est.info.padding == 1.5 and est.info.mean == (100.0, 110.0, 120.0) and est.info.std == (50.0, 55.0, 60.0)

    (root / "remote_sdk.zip").write_bytes(z.read_bytes())
    remote = resolve_model(f"{base}/remote_sdk.zip", sha256=sha256sum(z), cache_dir=cache, progress=False)
    assert remote.name == "end2end.onnx" and remote.read_bytes() == plain.read_bytes()

    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "no model here")
    with pytest.raises(ModelDownloadError, match=r"empty\.zip.*no \.onnx"):
        resolve_model(empty, cache_dir=cache)


def test_zip_members_cannot_escape(dot_onnx, tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(dot_onnx, "../../outside/end2end.onnx")
        zf.writestr("../../outside/pipeline.json", "{}")
    p = resolve_model(z, cache_dir=tmp_path / "cache")
    assert p.parent.parent == tmp_path / "cache" / "hub"
    assert not (tmp_path / "outside").exists()
