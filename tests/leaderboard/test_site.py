"""The generated site: a real MkDocs build, escaping, offline plots, reproducibility, atomicity."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from kompakt import paths
from leaderboard import site as site_module
from leaderboard.site import GRID_ASSETS, SiteError, build_site, grid_library
from leaderboard.synthetic import make_result

HOSTILE = "<script>alert(1)</script>"


def html_files(site: Path) -> dict[str, bytes]:
    return {str(p.relative_to(site)): p.read_bytes() for p in sorted(site.rglob("*")) if p.suffix in {".html", ".xml", ".json", ".csv"}}


@pytest.fixture
def built(results_root, small_set, write, tmp_path):
    hostile = make_result("evil", "reference", "cpu", run_id="evil-1")
    hostile["base_model"]["name"] = HOSTILE
    hostile["notes"] = ['<img src=x onerror="alert(2)">']
    hostile["variant"]["notes"] = "</script><script>alert(3)</script>"
    write(hostile)
    result = build_site(results_root, tmp_path / "build" / "site")
    return result


def test_build_passes_strict_and_writes_pages(built):
    site = built.site_dir
    for page in ("index.html", "leaderboard/index.html", "models/tiny/index.html", "models/evil/index.html", "methods/awq/index.html", "hardware/cpu/index.html", "methodology/index.html", "contributing/index.html", "schema/index.html", "downloads/index.html"):
        assert (site / page).is_file(), page
    for download in ("leaderboard.csv", "leaderboard.parquet", "runs.parquet", "metrics.parquet", "kompakt.duckdb"):
        assert (site / "downloads" / download).stat().st_size > 0


def test_numbers_reach_the_pages(built, small_set):
    page = (built.site_dir / "models" / "tiny" / "index.html").read_text()
    for result in small_set:
        value = result["metrics"]["accuracy"][0]["value"]
        assert f"{value:.4f}" in page
    board = (built.site_dir / "leaderboard" / "index.html").read_text()
    body = board.split('id="kt-leaderboard"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert body.count("<tr>") == 4


def test_hostile_strings_are_escaped_everywhere(built):
    for name, content in html_files(built.site_dir).items():
        if name.endswith(".csv"):
            continue  # the CSV download is data: it holds the name exactly as submitted
        text = content.decode("utf-8", "replace")
        assert HOSTILE not in text, name
        assert "onerror=\"alert(2)\">" not in text.replace("&quot;", '"').replace("&lt;img", ""), name
        assert "<script>alert(3)" not in text, name
    page = (built.site_dir / "models" / "evil" / "index.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_plotly_bundled_once_and_never_from_a_cdn(built):
    site = built.site_dir
    bundles = list(site.rglob("plotly*.js"))
    assert [b.name for b in bundles] == ["plotly.min.js"]
    size = bundles[0].stat().st_size
    for name, content in html_files(site).items():
        text = content.decode("utf-8", "replace")
        assert "cdn.plot.ly" not in text and "fonts.googleapis" not in text, name
        assert len(content) < size / 2, f"{name} seems to inline plotly"
    page = (site / "models" / "tiny" / "index.html").read_text()
    figures = re.findall(r'<script type="application/json" id="(k[0-9a-f]+)">(.*?)</script>', page, re.S)
    assert len(figures) == 3
    for _, body in figures:
        figure = json.loads(body)
        points = sum(1 for trace in figure["data"] if trace["mode"] == "markers" for x in trace["x"] if x is not None)
        assert points == 3


def test_no_page_over_one_megabyte(built):
    for name, content in html_files(built.site_dir).items():
        assert len(content) < 1_000_000, name


def test_builds_are_reproducible(results_root, small_set, tmp_path):
    a = build_site(results_root, tmp_path / "a" / "site")
    b = build_site(results_root, tmp_path / "b" / "site")
    files_a, files_b = html_files(a.site_dir), html_files(b.site_dir)
    assert files_a.keys() == files_b.keys()
    differing = [name for name in files_a if files_a[name] != files_b[name]]
    assert differing == []


def test_bad_file_keeps_the_old_site(built, results_root, write):
    site = built.site_dir
    before = hashlib.sha256((site / "leaderboard" / "index.html").read_bytes()).hexdigest()
    write('{"schema_version": 1', "tiny/reference/cpu/bad.json")
    with pytest.raises(SiteError):
        build_site(results_root, site)
    assert hashlib.sha256((site / "leaderboard" / "index.html").read_bytes()).hexdigest() == before


def test_real_data_builds(tmp_path):
    """The committed results in data/ (the thesis and anything measured) build into a strict site."""
    result = build_site(paths.results_dir(), tmp_path / "site")
    assert (result.site_dir / "leaderboard" / "index.html").is_file()


def test_the_grid_library_is_shipped_once_with_its_licence(built):
    site = built.site_dir
    info, files = grid_library()
    shipped = sorted(p.relative_to(site).as_posix() for p in site.rglob("tabulator*") if p.is_file())
    assert shipped == [f"{GRID_ASSETS}/tabulator.min.css", f"{GRID_ASSETS}/tabulator.min.js"]
    assert (site / GRID_ASSETS / "tabulator.min.js").read_bytes() == files["tabulator.min.js"].read_bytes()
    licence = (site / GRID_ASSETS / "LICENSE.txt").read_text()
    assert "MIT License" in licence and "Permission is hereby granted" in licence
    lock = json.loads((paths.REPO_ROOT / "frontend" / "package-lock.json").read_text())
    assert info.version == lock["packages"]["node_modules/tabulator-tables"]["version"]
    board = (site / "leaderboard" / "index.html").read_text()
    assert f'src="../{GRID_ASSETS}/tabulator.min.js"' in board and f'href="../{GRID_ASSETS}/tabulator.min.css"' in board
    downloads = (site / "downloads" / "index.html").read_text()
    assert f"tabulator-tables {info.version}, MIT licence" in downloads and "plotly.js" in downloads
    for name, content in html_files(site).items():
        assert len(content) < (site / GRID_ASSETS / "tabulator.min.js").stat().st_size / 2, f"{name} seems to inline the grid"
        assert b"unpkg.com" not in content and b"cdn.jsdelivr" not in content, name


def test_pages_show_byte_perplexity_lineage_in_one_line_and_the_overview(built):
    page = (built.site_dir / "models" / "tiny" / "index.html").read_text()
    assert 'data-key="byte_ppl"' in page and ">1.8000<" in page
    assert ">AWQ 4-bit g128</small>" in page  # the lineage in one line ...
    assert "<code>awq(bits=4, group_size=128)</code>" in page  # ... and in full under the table
    home = (built.site_dir / "index.html").read_text()
    figure = json.loads(re.search(r'<script type="application/json" id="overview">(.*?)</script>', home, re.S).group(1))
    points = sum(1 for trace in figure["data"] if trace["mode"] == "markers" for x in trace["x"] if x is not None)
    assert points == 2 == figure["layout"]["meta"]["points"]  # tiny's awq-4bit and prune-8; the references are the dashed lines
    assert 'id="kt-newest"' in home


def test_without_the_grid_library_the_build_stops_and_says_how_to_get_it(results_root, small_set, tmp_path, monkeypatch):
    frontend = tmp_path / "frontend"
    frontend.mkdir()
    (frontend / "package-lock.json").write_text(json.dumps({"packages": {"node_modules/tabulator-tables": {"version": "6.5.3"}}}))
    monkeypatch.setattr(site_module, "FRONTEND", frontend)
    with pytest.raises(SiteError, match=r"tabulator-tables 6.5.3 is not installed .*setup-frontend.sh.*--no-grid"):
        build_site(results_root, tmp_path / "build" / "site")
    assert not (tmp_path / "build").exists()  # stopped before writing anything
    installed = frontend / "node_modules" / "tabulator-tables"
    installed.mkdir(parents=True)
    (installed / "package.json").write_text(json.dumps({"version": "6.4.0"}))
    with pytest.raises(SiteError, match=r"is tabulator-tables 6.4.0, but .*package-lock.json pins 6.5.3"):
        build_site(results_root, tmp_path / "build" / "site")
    plain = build_site(results_root, tmp_path / "plain" / "site", grid=False).site_dir
    board = (plain / "leaderboard" / "index.html").read_text()
    assert "tabulator" not in board and 'id="kt-leaderboard"' in board
    assert not (plain / GRID_ASSETS).exists()


def test_a_variant_on_two_backends_is_two_rows_on_the_pages(results_root, write, tmp_path):
    for backend, decode in (("pytorch", 20.0), ("llama.cpp", 70.0)):
        r = make_result("twob", "reference", "cpu", run_id=f"twob-{backend.replace('.', '')}")
        r["metrics"]["throughput"][0].update(backend=backend, decode_tokens_per_s={"value": decode})
        write(r)
    site = build_site(results_root, tmp_path / "build" / "site").site_dir
    page = (site / "models" / "twob" / "index.html").read_text()
    assert page.count('kompakt-backend">llama.cpp</span>') == 1
    assert page.count('kompakt-backend">pytorch</span>') == 1
    assert "70.0" in page and "20.0" in page
    board = (site / "leaderboard" / "index.html").read_text()
    assert 'data-key="backend" data-group="provenance" data-kind="choice"' in board
    assert board.count("<td>pytorch</td>") == 1 and board.count("<td>llama.cpp</td>") == 1


def test_paired_figures_and_kl_reach_the_pages(results_root, tmp_path):
    """A reference and two variants with per-sample results and a KL: the leaderboard and the model page show the
    changes (significant only by the rule), the flips and the KL, and the model page plots KL against weights memory."""
    import copy

    from leaderboard.synthetic import attach_samples, sample_rows, write_result

    rows = sample_rows({"winogrande": 60, "arc_challenge": 200, "truthfulqa_mc2": 20, "hellaswag": 40})
    lossy = copy.deepcopy(rows)
    for r in [r for r in lossy if r["task"] == "arc_challenge" and r["acc"] == 1.0][:30]:
        r.update(choice=(r["choice"] + 1) % 4, choice_norm=(r["choice"] + 1) % 4, acc=0.0, acc_norm=0.0)
    for variant, samples, kl in (("reference", rows, 0.0), ("rtn-int8", copy.deepcopy(rows), 0.01), ("awq-4bit", lossy, 0.2)):
        result = make_result("tiny", variant, "cpu")
        result["metrics"]["distribution_distance"] = [{
            "task": "wikitext2_kl", "kl_mean": kl, "kl_stderr": kl / 10, "kl_median": kl / 2, "kl_p99": kl * 4,
            "top1_agreement": 1 - kl, "tokens": 16384, "windows": 32, "context_length": 512, "top_k": 1024,
            "slice": "WikiText-2 raw test, the first 32 windows of 512 tokens"}]
        attach_samples(results_root, result, samples)
        write_result(results_root, result)
    site = build_site(results_root, tmp_path / "build" / "site").site_dir
    board = (site / "leaderboard" / "index.html").read_text()
    assert "ARC-Challenge acc_norm -15.0 points" in board and "no measurable change" in board
    assert "0.2000" in board and "same top token 80.0" in board
    assert 'data-key="kl"' in board and 'data-key="flips"' in board and 'data-key="changes"' in board
    page = (site / "models" / "tiny" / "index.html").read_text()
    assert "KL divergence from the reference vs weights memory" in page and "KL (nats), lower is better" in page
    assert (site / "downloads" / "paired.parquet").stat().st_size > 0


def test_german_figures_reach_the_model_page_with_their_licence_note(results_root, write, tmp_path):
    """The language section: the German tasks, the parallel perplexities, a plot, and the Okapi/XNLI licence note."""
    for variant, scale in (("reference", 1.0), ("awq-4bit", 1.2)):
        r = make_result("de", variant, "cpu")
        r["metrics"]["accuracy"].append({"task": "arc_de", "metric": "acc_norm", "value": 0.26, "stderr": 0.013, "n": 1169, "chance_level": 0.25})
        r["metrics"]["accuracy"].append({"task": "xnli_de", "metric": "acc", "value": 0.36, "stderr": 0.01, "n": 2490, "chance_level": 1 / 3})
        r["metrics"]["perplexity"] += [
            {"task": f"flores_ppl_{lang}", "token_perplexity": ppl * scale ** (1 + (lang == "deu_Latn")), "context_length": 300,
             "parallel_language": lang, "documents": 488, "tokens": 40000, "words": 20000, "tokens_per_word": 2.0}
            for lang, ppl in (("eng_Latn", 20.0), ("deu_Latn", 40.0))
        ]
        write(r)
    site = build_site(results_root, tmp_path / "build" / "site").site_dir
    page = (site / "models" / "de" / "index.html").read_text()
    assert "German and English" in page
    assert "CC BY-NC 4.0, non-commercial use only" in page and "XNLI (German) (xnli_de)" in page
    assert "at chance" in page and "1.200" in page  # arc_de at chance; German x1.44 against English x1.2
    method = (site / "methodology" / "index.html").read_text()
    assert 'id="german-against-english"' in method and "CC BY-NC 4.0" in method and 'id="chance-level"' in method
