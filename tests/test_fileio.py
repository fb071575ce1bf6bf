import os

import pytest

from posedistill.fileio import atomic_open, atomic_write_json, atomic_write_with


def test_atomic_write_leaves_no_temp_file_on_error(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_open(target, "w") as f:
        f.write('{"half": ')
        raise RuntimeError("killed mid-write")
    assert target.read_text() == '{"a": 1}'  # the old file survives, never half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", [])
        atomic_write_with(tmp_path / "b.txt", lambda p: open(p, "w").close())
        # a writer that creates the file anew with mode 0o600, as safetensors' save_file does
        atomic_write_with(tmp_path / "c.bin", lambda p: (os.unlink(p), os.close(os.open(p, os.O_CREAT | os.O_WRONLY,
                                                                                        0o600))))  # fmt: skip
    finally:
        os.umask(umask)
    for name in ("a.json", "b.txt", "c.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
