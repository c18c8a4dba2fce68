"""Test helper: ``kompakt bench``'s orchestration in a process of its own, on the tiny model.

``python fresh_process_bench.py MODEL DATA RESULTS VARIANT[,VARIANT...]`` measures the variants (``reference``,
``rtn4``: round-to-nearest at 4 bits in groups of 32, packed) on ARC-Challenge and the KL task with a small slice
(4 windows of 64 tokens, the top 32 log-probabilities), measuring again rather than reading the measurement
cache; it prints ``{variant: results file}`` as JSON. ``KOMPAKT_CACHE`` (the reference distributions among
it) is the caller's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RTN4 = "variants:\n  - id: rtn4\n    steps:\n      - method: rtn\n        params: {bits: 4, group_size: 32}\n"


def main(argv: list[str]) -> None:
    import yaml

    from harness.build.artifacts import build, reference_artifact
    from harness.build.base_model import BaseModelSpec, resolve
    from harness.build.recipes import parse_recipe
    from harness.run import bench
    from kompakt.profiles import get_profile

    model, data, results, variants = argv
    base = resolve(BaseModelSpec(source=model, id="tiny-llama"), show_progress=False)
    recipe = parse_recipe(Path(results) / "rtn4.yaml", yaml.safe_load(RTN4))
    jobs = []
    for v in variants.split(","):
        if v == "reference":
            jobs.append(bench.VariantJob("reference", artifact=reference_artifact(base), is_reference=True))
        else:
            jobs.append(bench.VariantJob(v, build=lambda v=v: build(recipe, v, base=base, show_progress=False)))
    config = bench.BenchConfig(
        profile=get_profile("cpu"), tasks=["arc_challenge", "wikitext2_kl"], data_dir=Path(data), batch_size=8,
        results_root=Path(results), command="fresh_process_bench", use_cache=False, threads=1,
        kl_windows=4, kl_context=64, kl_top_k=32, reference_path=base.path,
    )
    outcomes = bench.run_bench(jobs, config, say=lambda _: None)
    print(json.dumps({o.variant_id: str(o.path) for o in outcomes}))


if __name__ == "__main__":
    main(sys.argv[1:])
