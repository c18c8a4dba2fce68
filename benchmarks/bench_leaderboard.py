"""On-demand benchmark: validate, ingest and build for 1,000 / 10,000 / 50,000 synthetic results files.

Target (issue 2): 10,000 files from nothing to a built site in at most 60 s on a 2-core machine,
cost growing no faster than linearly, no page over 1 MB apart from the shared plotly bundle.

    python benchmarks/bench_leaderboard.py              # 1000 10000 50000
    python benchmarks/bench_leaderboard.py 1000 10000   # chosen sizes
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from leaderboard.site import build_site
from leaderboard.store import ingest
from leaderboard.synthetic import generate
from leaderboard.validate import validate_paths


def bench(count: int, work: Path) -> dict[str, float]:
    root = work / f"results-{count}"
    t0 = time.perf_counter()
    generate(root, count)
    t_gen = time.perf_counter() - t0

    t0 = time.perf_counter()
    report = validate_paths([root], results_root=root).report
    t_validate = time.perf_counter() - t0
    if report.errors:
        raise SystemExit(f"synthetic data invalid: {report.errors[:3]}")

    t0 = time.perf_counter()
    ingest(root, work / f"db-{count}.duckdb")
    t_ingest = time.perf_counter() - t0

    site = work / f"build-{count}" / "site"
    t0 = time.perf_counter()
    result = build_site(root, site)  # from nothing: ingest + pages + mkdocs
    t_build = time.perf_counter() - t0

    pages = [p for p in site.rglob("*.html")]
    biggest = max(pages, key=lambda p: p.stat().st_size)
    return {
        "files": count, "generate_s": t_gen, "validate_s": t_validate, "ingest_s": t_ingest, "build_s": t_build,
        "pages": len(pages), "largest_page_kb": biggest.stat().st_size / 1024, "largest_page": str(biggest.relative_to(site)),
        "generated_pages": result.pages,
    }


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000, 50000]
    work = Path(tempfile.mkdtemp(prefix="kompakt-bench-"))
    rows = []
    try:
        for n in sizes:
            row = bench(n, work)
            rows.append(row)
            print(f"{n} files: validate {row['validate_s']:.1f} s, ingest {row['ingest_s']:.1f} s, build {row['build_s']:.1f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| files | validate (s) | ingest (s) | build from nothing (s) | µs per file (build) | HTML pages | largest page |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['files']:,} | {r['validate_s']:.1f} | {r['ingest_s']:.1f} | {r['build_s']:.1f} | {1e6 * r['build_s'] / r['files']:,.0f} | {r['pages']:,} | {r['largest_page_kb']:.0f} KB ({r['largest_page']}) |")


if __name__ == "__main__":
    main()
