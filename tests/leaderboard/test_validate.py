"""Every validation rule, each with a file that breaks it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from leaderboard.loading import MAX_DEPTH, MAX_FILE_BYTES
from leaderboard.synthetic import make_result
from leaderboard.validate import validate_paths


def run(root: Path):
    return validate_paths([root], results_root=root).report


def errors_of(root: Path) -> list[str]:
    return [str(p) for p in run(root).errors]


def mutate(result: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(result)
    node = out
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return out


def test_valid_set_passes(results_root, small_set):
    report = run(results_root)
    assert report.files == 3
    assert report.problems == []


@pytest.mark.parametrize(
    ("path", "value", "needle", "json_path"),
    [
        ("metrics.accuracy.0.value", 1.5, "outside [0, 1]", "$.metrics.accuracy[0].value"),
        ("metrics.accuracy.0.value", -0.1, "outside [0, 1]", "$.metrics.accuracy[0].value"),
        ("metrics.accuracy.0.stderr", -0.01, "standard error", "$.metrics.accuracy[0].stderr"),
        ("metrics.perplexity.0.word_perplexity", 0.5, "below 1", "$.metrics.perplexity[0].word_perplexity"),
        ("metrics.perplexity.0.byte_perplexity", 0.99, "below 1", "$.metrics.perplexity[0].byte_perplexity"),
        ("metrics.perplexity.0.bits_per_byte", -1.0, "below 0", "$.metrics.perplexity[0].bits_per_byte"),
        ("metrics.throughput.0.decode_tokens_per_s.value", 0.0, "not positive", "$.metrics.throughput[0].decode_tokens_per_s.value"),
        ("metrics.throughput.0.decode_tokens_per_s.min", 99.0, "above max", "$.metrics.throughput[0].decode_tokens_per_s.min"),
        ("metrics.memory.weights_bytes", 0, "greater than 0", "$.metrics.memory.weights_bytes"),
        ("metrics.memory.disk_bytes", -5, "greater than 0", "$.metrics.memory.disk_bytes"),
        ("metrics.reported_mean_accuracy", 7.0, "outside [0, 1]", "$.metrics.reported_mean_accuracy"),
        ("status", {"code": "failed"}, "without a reason", "$.status.reason"),
        ("status", {"code": "does_not_fit", "reason": "OOM"}, "without the memory", "$.status.memory_needed_bytes"),
        ("status", {"code": "ok", "memory_needed_bytes": 5}, "memory figures", "$.status"),
        ("hardware", None, "without detected hardware", "$.hardware"),
        ("profile", "unspecified", "profile 'unspecified'", "$.profile"),
        ("schema_version", 2, "Input should be 1", "$.schema_version"),
        ("base_model.name", "x\u202ey", "bidirectional", "$.base_model.name"),
        ("base_model.name", "bell\x07", "control", "$.base_model.name"),
    ],
)
def test_value_rules(results_root, write, path, value, needle, json_path):
    result = mutate(make_result("m", "reference", "cpu"), path, value)
    write(result, f"m/reference/{result['profile']}/{result['run_id']}.json")
    errors = errors_of(results_root)
    assert any(needle in e and json_path in e for e in errors), errors


def test_unknown_key_is_an_error(results_root, write):
    result = make_result("m", "reference", "cpu")
    result["metrics"]["acuracy"] = []
    write(result)
    errors = errors_of(results_root)
    assert any("$.metrics.acuracy" in e and "unknown key" in e for e in errors), errors


def test_missing_field(results_root, write):
    result = make_result("m", "reference", "cpu")
    del result["provenance"]
    write(result)
    assert any("$.provenance" in e and "missing" in e for e in errors_of(results_root))


def test_unknown_method_suggests(results_root, write):
    result = make_result("m", "awq-4bit", "cpu")
    result["variant"]["steps"][0]["method"] = "awk"
    write(result)
    errors = errors_of(results_root)
    assert any("unknown method 'awk'" in e and "did you mean 'awq'" in e and "$.variant.steps[0].method" in e for e in errors), errors


def test_unknown_profile_suggests(results_root, write):
    result = mutate(make_result("m", "reference", "cpu"), "profile", "cpuu")
    write(result, f"m/reference/cpuu/{result['run_id']}.json")
    assert any("unknown profile 'cpuu'" in e and "did you mean 'cpu'" in e for e in errors_of(results_root))


def test_hardware_must_match_profile_unless_allowed(results_root, write):
    result = make_result("m", "reference", "t4")
    result["hardware"] = {"accelerator": {"name": "NVIDIA H100 80GB HBM3"}}
    path = write(result)
    assert any("is not what profile 't4' describes" in e for e in errors_of(results_root))
    result["hardware"]["other_than_profile"] = True
    path.write_text(json.dumps(result))
    assert errors_of(results_root) == []


def test_gpu_profile_without_accelerator(results_root, write):
    result = make_result("m", "reference", "a100")
    result["hardware"] = {"cpu_model": "x"}
    write(result)
    assert any("'CPU only'" in e for e in errors_of(results_root))


def test_reported_needs_where_in_the_source(results_root, write):
    result = make_result("m", "reference", "cpu")
    result["provenance"] = {"kind": "reported", "date": "2024-08-15", "citation": {"title": "T", "authors": "A", "year": 2024}}
    write(result)
    assert any("citation names neither" in e for e in errors_of(results_root))


def test_reported_without_citation(results_root, write):
    result = make_result("m", "reference", "cpu")
    result["provenance"] = {"kind": "reported", "date": "2024-08-15"}
    write(result)
    assert any("$.provenance.reported.citation" in e and "missing" in e for e in errors_of(results_root))


def test_reference_with_steps_and_variant_without(results_root, write):
    a = make_result("m", "reference", "cpu")
    a["variant"]["steps"] = [{"method": "rtn", "params": {"bits": 8}}]
    b = make_result("m", "awq-4bit", "cpu")
    b["variant"]["steps"] = []
    write(a)
    write(b)
    errors = errors_of(results_root)
    assert any("reference variant has compression steps" in e for e in errors)
    assert any("without steps that is not the reference" in e for e in errors)


def test_duplicate_accuracy_entry(results_root, write):
    result = make_result("m", "reference", "cpu")
    result["metrics"]["accuracy"].append(dict(result["metrics"]["accuracy"][0]))
    write(result)
    assert any("already given" in e for e in errors_of(results_root))


def test_token_perplexity_needs_context(results_root, write):
    result = make_result("m", "reference", "cpu")
    result["metrics"]["perplexity"] = [{"task": "wikitext", "token_perplexity": 12.0}]
    write(result)
    assert any("without its context length" in e for e in errors_of(results_root))


def test_file_must_lie_where_its_ids_say(results_root, write):
    result = make_result("m", "reference", "cpu")
    write(result, "m/other/cpu/x.json")
    errors = errors_of(results_root)
    assert any("file lies at m/other/cpu/x.json" in e for e in errors), errors


@pytest.mark.parametrize("run_id", ["../../etc/passwd", "a/b", "", ".hidden", "x" * 200, "<script>", "a b"])
def test_run_id_path_tricks(results_root, write, run_id):
    result = make_result("m", "reference", "cpu", run_id=run_id)
    write(result, "m/reference/cpu/trick.json")
    assert any("$.run_id" in e for e in errors_of(results_root))


def test_run_ids_unique_across_files(results_root, write):
    a = make_result("m", "reference", "cpu", run_id="same")
    b = make_result("m", "awq-4bit", "cpu", run_id="same")
    write(a)
    write(b)
    errors = errors_of(results_root)
    assert any("run id 'same' is also used by" in e for e in errors), errors


def test_duplicate_of_must_exist(results_root, write):
    write(make_result("m", "reference", "cpu", duplicate_of="nowhere"))
    assert any("restates run 'nowhere'" in e for e in errors_of(results_root))


def test_one_lineage_per_variant(results_root, write):
    a = make_result("m", "awq-4bit", "cpu")
    b = make_result("m", "awq-4bit", "a100")
    b["variant"]["steps"] = [{"method": "awq", "params": {"bits": 3}}]
    write(make_result("m", "reference", "cpu"))
    write(make_result("m", "reference", "a100"))
    write(a)
    write(b)
    assert any("has another lineage" in e for e in errors_of(results_root))


def test_measured_word_perplexity_without_its_window_is_a_warning(results_root, write):
    r = make_result("m", "reference", "cpu")
    r["metrics"]["perplexity"][0]["context_length"] = None
    write(r)
    report = run(results_root)
    assert report.errors == []
    assert any("without its rolling window" in str(w) and "context_length" in str(w) for w in report.warnings)


def test_missing_reference_is_a_warning(results_root, write):
    write(make_result("m", "awq-4bit", "cpu"))
    report = run(results_root)
    assert report.errors == []
    assert any("no reference variant under profile 'cpu'" in str(w) for w in report.warnings)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "invalid JSON at line 1"),
        ("[1, 2]", "top level is a JSON list"),
        ('{"a": NaN}', "NaN is not a number JSON allows"),
        ('{"a": Infinity}', "Infinity is not a number JSON allows"),
        ('{"a": 1e999}', "is not a finite number"),
        ('{"a": 1, "a": 2}', "appears twice"),
        ("[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5), "nested too deeply"),
        ("", "invalid JSON"),
    ],
)
def test_malformed_json(results_root, write, text, needle):
    write(text)
    errors = errors_of(results_root)
    assert any(needle in e and e.startswith("m/v/cpu/raw.json") for e in errors), errors


def test_not_utf8(results_root):
    path = results_root / "m" / "v" / "cpu" / "bin.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"a": "\xff\xfe"}')
    assert any("not UTF-8" in e for e in errors_of(results_root))


def test_huge_file(results_root, write):
    write(" " * (MAX_FILE_BYTES + 1) + "{}")
    assert any("bytes" in e and "at most" in e for e in errors_of(results_root))


def test_deep_nesting_does_not_crash(results_root, write):
    write("[" * 100_000 + "]" * 100_000)
    assert any("nested too deeply" in e for e in errors_of(results_root))


def test_symlink_is_refused(results_root, write, tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps(make_result("m", "reference", "cpu")))
    link = results_root / "m" / "reference" / "cpu" / "m-reference-cpu-0.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    assert any("symbolic link" in e for e in errors_of(results_root))


def test_missing_path(tmp_path):
    report = validate_paths([tmp_path / "nope"]).report
    assert any("no such file" in str(e) for e in report.errors)


def test_every_problem_names_file_and_path(results_root, write):
    result = make_result("m", "reference", "cpu")
    result["metrics"]["accuracy"][0]["value"] = 3
    write(result)
    for problem in run(results_root).errors:
        assert problem.file.endswith(".json")
        assert problem.path.startswith("$")
        assert problem.expected


def _paired_throughput(aa: bool = False, probed: dict[str, Any] | None = None, **figure: Any) -> dict[str, Any]:
    fig = {"speedup": 1.5, "ci_low": 1.4, "ci_high": 1.6, "blocks": 2, "variant_blocks": [30.0, 31.0], "reference_blocks": [20.0, 21.0], **figure}
    return {"backend": "pytorch", "batch_size": 1, "decode_tokens_per_s": {"value": 30.0},
            "paired": {"reference": "reference", "aa_check": aa, "loading": "same_process", "repeats_per_block": 3, "warmup_per_block": 1,
                       "confidence_level": 0.95, "method": "scipy.stats.bootstrap", "decode_tokens_per_s": fig, **(probed or {})}}


@pytest.mark.parametrize(
    ("variant", "throughput", "needle", "json_path"),
    [
        ("awq-4bit", _paired_throughput(ci_low=1.7), "is empty", "$.metrics.throughput[0].paired.decode_tokens_per_s.ci_low"),
        ("awq-4bit", _paired_throughput(variant_blocks=[30.0]), "1 block figures for 2 blocks", "$.metrics.throughput[0].paired.decode_tokens_per_s.variant_blocks"),
        ("awq-4bit", _paired_throughput(reference_blocks=[20.0, -1.0]), "not positive", "$.metrics.throughput[0].paired.decode_tokens_per_s.reference_blocks"),
        ("awq-4bit", _paired_throughput(aa=True), "A/A check in the file of a variant", "$.metrics.throughput[0].paired.aa_check"),
        ("awq-4bit", _paired_throughput(blocks=1, variant_blocks=[1.0], reference_blocks=[1.0]), "greater than or equal to 2",
         "$.metrics.throughput[0].paired.decode_tokens_per_s.blocks"),
        ("awq-4bit", _paired_throughput(probed={"bandwidth_gbps": [80.0]}), "1 bandwidth figures for the 2 pairs",
         "$.metrics.throughput[0].paired.bandwidth_gbps"),
        ("awq-4bit", _paired_throughput(probed={"bandwidth_gbps": [80.0, 0.0]}), "not positive", "$.metrics.throughput[0].paired.bandwidth_gbps"),
        ("awq-4bit", _paired_throughput(probed={"bandwidth_contended": True, "left_out_pairs": 3}), "contended throughout with 3 pair(s) left out",
         "$.metrics.throughput[0].paired.speedup_absent_reason"),
        ("awq-4bit", _paired_throughput(probed={"bandwidth_contended": True, "left_out_pairs": 3, "speedup_absent_reason": "too few"}),
         "a speed-up beside speedup_absent_reason", "$.metrics.throughput[0].paired.decode_tokens_per_s"),
        ("awq-4bit", {**_paired_throughput(), "paired": {**_paired_throughput()["paired"], "decode_tokens_per_s": None,
                                                         "speedup_absent_reason": "too few"}},
         "speedup_absent_reason given, bandwidth_contended false", "$.metrics.throughput[0].paired.bandwidth_contended"),
    ],
)
def test_paired_speedup_rules(results_root, write, variant, throughput, needle, json_path):
    result = make_result("m", variant, "cpu")
    result["metrics"]["throughput"] = [throughput]
    write(result, f"m/{variant}/cpu/{result['run_id']}.json")
    errors = errors_of(results_root)
    assert any(needle in e and json_path in e for e in errors), errors


def test_a_paired_speedup_is_optional_and_valid(results_root, write):
    """Files without paired timings (schema v1 as before) and files with them both validate."""
    ref = make_result("m", "reference", "cpu")
    ref["metrics"]["throughput"] = [_paired_throughput(aa=True)]
    var = make_result("m", "awq-4bit", "cpu")
    var["metrics"]["throughput"] = [_paired_throughput()]
    probed = make_result("m", "rtn-4bit", "cpu")
    probed["metrics"]["throughput"] = [_paired_throughput(probed={"bandwidth_gbps": [80.1, 79.5], "bandwidth_floor_gbps": 61.0,
                                                                  "left_out_pairs": 3, "left_out_decode_speedup": 2.1})]
    old = make_result("m", "gptq-4bit", "cpu")
    for r in (ref, var, probed, old):
        write(r, f"m/{r['variant']['id']}/cpu/{r['run_id']}.json")
    assert run(results_root).problems == []


# ----------------------------------------------------------------------------- one file against the whole results root


def named(path: Path, root: Path):
    """Validate one named file (or folder) with the cross-file rules judged against ``root``."""
    return validate_paths([path], results_root=root).report


def test_one_file_against_a_root_that_holds_its_reference(results_root, write):
    write(make_result("m", "reference", "cpu"))
    variant = write(make_result("m", "awq-4bit", "cpu"))
    report = named(variant, results_root)
    assert report.problems == []
    assert report.files == 1 and report.context_files == 1
    # without the root, the same file alone has no reference: the warning the root removes
    alone = validate_paths([variant]).report
    assert any("no reference variant" in str(w) for w in alone.warnings)


def test_a_lineage_conflict_with_another_file_names_both(results_root, write):
    write(make_result("m", "reference", "cpu"))
    existing = write(make_result("m", "awq-4bit", "a100"))
    conflicting = make_result("m", "awq-4bit", "cpu")
    conflicting["variant"]["steps"] = [{"method": "awq", "params": {"bits": 3, "group_size": 128}}]
    path = write(conflicting)
    report = named(path, results_root)
    errors = [str(e) for e in report.errors]
    assert len(errors) == 1, errors
    assert errors[0].startswith("m/awq-4bit/cpu/m-awq-4bit-cpu-0.json: $.variant.steps: error:")
    assert "m/awq-4bit/a100/m-awq-4bit-a100-0.json" in errors[0]
    assert "has another lineage in m/awq-4bit/a100/m-awq-4bit-a100-0.json: awq(bits=3, group_size=128) here, awq(bits=4, group_size=128) there" in errors[0]
    assert existing.exists()


def test_the_named_file_is_blamed_where_it_disagrees_with_the_tree(results_root, write):
    # the named file sorts before the existing one; the existing one's lineage still stands
    write(make_result("m", "awq-4bit", "t4"))
    early = make_result("m", "awq-4bit", "a100")
    early["variant"]["steps"] = [{"method": "awq", "params": {"bits": 3}}]
    path = write(early)
    errors = [e for e in named(path, results_root).errors if "has another lineage" in e.message]
    assert [e.file for e in errors] == ["m/awq-4bit/a100/m-awq-4bit-a100-0.json"]
    assert "m/awq-4bit/t4/m-awq-4bit-t4-0.json" in errors[0].message


def test_problems_of_other_files_are_not_reported(results_root, write):
    write(make_result("m", "reference", "cpu"))
    write("{broken", "m/other/cpu/broken.json")
    bad = make_result("x", "awq-4bit", "cpu")
    bad["metrics"]["accuracy"][0]["value"] = 1.5
    write(bad)
    variant = write(make_result("m", "prune-8", "cpu"))
    report = named(variant, results_root)
    assert report.problems == []
    # the whole root still reports all of them
    assert len(run(results_root).errors) == 2


def test_a_reused_run_id_is_reported_on_the_named_file(results_root, write):
    write(make_result("m", "reference", "cpu", run_id="taken"))
    path = write(make_result("m", "awq-4bit", "cpu", run_id="taken"))
    errors = [str(e) for e in named(path, results_root).errors]
    assert errors == ["m/awq-4bit/cpu/taken.json: $.run_id: error: run id 'taken' is also used by m/reference/cpu/taken.json (expected a unique run id)"]


def test_duplicate_of_finds_its_target_in_the_root(results_root, write):
    write(make_result("m", "reference", "cpu", run_id="original"))
    path = write(make_result("m", "reference", "cpu", run_id="restated", duplicate_of="original"))
    assert named(path, results_root).problems == []
    assert any("restates run 'original'" in str(e) for e in validate_paths([path]).report.errors)


def test_a_named_file_outside_the_root_is_checked_against_it(results_root, write, tmp_path):
    write(make_result("m", "reference", "cpu"))
    outside = tmp_path / "new.json"
    outside.write_text(json.dumps(make_result("m", "awq-4bit", "cpu")))
    report = named(outside, results_root)
    assert report.problems == [] and report.context_files == 1


def test_a_base_model_name_clash_is_reported_once_on_the_named_file(results_root, write):
    write(make_result("m", "reference", "cpu"))
    other = make_result("m", "awq-4bit", "cpu")
    other["base_model"]["name"] = "Another Name"
    path = write(other)
    warnings = named(path, results_root).warnings
    assert [(w.file, w.path) for w in warnings] == [("m/awq-4bit/cpu/m-awq-4bit-cpu-0.json", "$.base_model.name")]


def test_a_file_named_through_a_linked_folder_is_not_read_twice(results_root, write, tmp_path):
    write(make_result("m", "reference", "cpu"))
    write(make_result("m", "awq-4bit", "cpu"))
    link = tmp_path / "link"
    link.symlink_to(results_root, target_is_directory=True)
    report = named(link / "m" / "awq-4bit" / "cpu" / "m-awq-4bit-cpu-0.json", results_root)
    assert report.problems == [] and report.context_files == 1
