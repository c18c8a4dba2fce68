"""The results file, version 1: the contract between the harness and the leaderboard.

One JSON file per run of one variant under one profile, stored at
``data/results/<base_model.id>/<variant.id>/<profile>/<run_id>.json``.

This pydantic model is the single definition. The JSON Schema in
``data/schema/results-v1.schema.json`` is generated from it
(``kompakt schema``) and a test fails when the two drift apart. Every model
forbids unknown keys, so a misspelt key is an error, not a silently dropped
field. Every field carries its documentation in ``description``; the schema
reference page of the site is generated from those texts.

Changing the meaning of a field or removing one needs a new schema version:
add ``ResultsFileV2`` beside this one, keep v1 readable, and key the
validation rules in ``leaderboard/rules.py`` by version.
"""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION = 1

#: Identifiers become folder and file names and URLs: letters, digits, dot, dash and
#: underscore only, starting with a letter or digit, so no path trick (``..``, ``/``,
#: NUL) can pass, and no HTML can hide in them.
Slug = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$"),
]
#: Free text shown to readers (names, notes, citations). It is escaped wherever it is
#: shown; the length cap keeps a hostile file from bloating every page.
Text = Annotated[str, StringConstraints(max_length=2000)]
ShortText = Annotated[str, StringConstraints(max_length=300)]
#: Parameter values of a compression step: JSON scalars or short lists of them.
Scalar = Union[bool, int, float, str, None]
ParamValue = Union[Scalar, list[Scalar]]


class Strict(BaseModel):
    """Base for everything a person or the harness writes: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- base model


class BaseModelInfo(Strict):
    id: Slug = Field(description="Identifier of the base model, used in paths and URLs, e.g. `llama-3-8b-instruct`.")
    name: ShortText = Field(description="Display name, e.g. `Llama 3 8B Instruct`.")
    source: Literal["hub", "local", "gguf", "unknown"] = Field(
        description="Where the weights came from: a model hub id, a local folder, a GGUF file, or unknown (reported results that do not say)."
    )
    source_ref: ShortText | None = Field(
        default=None, description="The hub id, folder name or GGUF file name the weights were loaded from."
    )
    revision: ShortText | None = Field(default=None, description="Hub revision (commit) of the weights, if loaded from a hub.")
    content_hash: ShortText | None = Field(
        default=None, description="sha256 of the weight files as loaded (`sha256:<hex>`), so two runs can prove they used the same weights."
    )
    parameters: int | None = Field(default=None, gt=0, description="Number of parameters of the uncompressed model.")
    notes: Text | None = Field(default=None, description="Anything a reader must know about the base model (e.g. that it is itself dequantized from Q4_1).")


# --------------------------------------------------------------------------- variant


class Step(Strict):
    method: Slug = Field(
        description="Compression method of this step; one of the names in `kompakt methods` (e.g. `awq`, `prune_depth`, `lora`)."
    )
    params: dict[Slug, ParamValue] = Field(
        default_factory=dict,
        description="The method's parameters as used, e.g. `{bits: 4, group_size: 128}`; parameters the source does not state are left out, never guessed.",
    )
    library: ShortText | None = Field(default=None, description="Library and version that carried out the step, e.g. `llm-compressor 0.9.0`.")
    record: dict[Slug, ParamValue] = Field(
        default_factory=dict,
        description="What the step found or produced, e.g. the layers a pruning step removed and their angular distances, data hashes, loss.",
    )
    notes: Text | None = Field(default=None, description="Free-text remarks on the step.")


class Variant(Strict):
    id: Slug = Field(description="Identifier of the variant within its base model, e.g. `prune-8-lora-awq4`.")
    is_reference: bool = Field(
        description="True for the uncompressed reference variant that deltas are computed against; it must have no steps."
    )
    steps: list[Step] = Field(
        default_factory=list, max_length=32, description="The lineage: the ordered compression steps that turned the base model into this variant."
    )
    notes: Text | None = Field(default=None, description="Remarks on the variant.")
    content_hash: ShortText | None = Field(
        default=None,
        description="sha256 of the variant's weight files as stored when measured (`sha256:<hex>`: its safetensors files, or its GGUF file), "
        "so that two results files of one variant can prove they measured the same build. A step that rounds floats the "
        "CPU computed (GPTQ, training) can build other weights from the same recipe on another host. Null for the reference "
        "(the base model's `content_hash` is its hash) and in files written before 2026-12-04.",
    )


# --------------------------------------------------------------------------- hardware and software


class Accelerator(Strict):
    name: ShortText = Field(description="Accelerator model as the driver names it, e.g. `NVIDIA A100-SXM4-80GB`.")
    memory_bytes: int | None = Field(default=None, gt=0, description="Memory of one accelerator in bytes.")
    count: int = Field(default=1, ge=1, description="Number of accelerators used.")
    driver: ShortText | None = Field(default=None, description="Driver and runtime version, e.g. `CUDA 12.4, driver 550.54`.")


class Hardware(Strict):
    accelerator: Accelerator | None = Field(default=None, description="The accelerator used, or null for a CPU-only run.")
    cpu_model: ShortText | None = Field(default=None, description="CPU model name, e.g. `AMD EPYC 7B13`.")
    cpu_cores: int | None = Field(default=None, ge=1, description="Number of CPU cores available to the run.")
    cpu_isa: ShortText | None = Field(
        default=None,
        description="The CPU's vector instruction sets that decide which kernels run, e.g. `avx2 fma` or `avx2 fma avx512f "
        "avx512_bf16`, from /proc/cpuinfo (null: not recorded, as in files written before 2026-12-03). Hosts with one model "
        "name can differ (a cloud VM can move between them): speed figures are set side by side only from the same host.",
    )
    ram_bytes: int | None = Field(default=None, gt=0, description="Host memory in bytes.")
    os: ShortText | None = Field(default=None, description="Operating system and kernel.")
    other_than_profile: bool = Field(
        default=False,
        description="True when the run was made on hardware other than the profile names (`--allow-other-hardware`); the leaderboard then labels the row with the real hardware.",
    )
    notes: Text | None = Field(default=None, description="Remarks, e.g. how a reported source describes its hardware.")


class Software(Strict):
    python: ShortText | None = Field(default=None, description="Python version.")
    torch: ShortText | None = Field(default=None, description="PyTorch version.")
    transformers: ShortText | None = Field(default=None, description="transformers version.")
    lm_eval: ShortText | None = Field(default=None, description="lm-evaluation-harness version; accuracies are only compared between equal versions.")
    kompakt: ShortText | None = Field(default=None, description="kompakt version that wrote the file.")
    kompakt_git_sha: ShortText | None = Field(default=None, description="git commit of kompakt that wrote the file.")
    other: dict[Slug, ShortText] = Field(default_factory=dict, description="Other relevant packages and their versions (backend libraries, CUDA, llama.cpp).")


# --------------------------------------------------------------------------- provenance


class Measured(Strict):
    kind: Literal["measured"] = Field(description="Measured by running the kompakt harness.")
    command: Text = Field(description="The command line that produced the file.")
    date: _dt.datetime = Field(description="When the run finished (ISO 8601 with time zone).")
    by: ShortText | None = Field(default=None, description="Who ran it (a name or handle), for contributed results.")


class Citation(Strict):
    title: ShortText = Field(description="Title of the document.")
    authors: ShortText = Field(description="Authors as printed.")
    year: int = Field(ge=1900, le=2100, description="Year of publication.")
    publisher: ShortText | None = Field(default=None, description="Institution, venue or publisher.")
    table: ShortText | None = Field(default=None, description="Table (or figure) the numbers come from, e.g. `Tabelle 2.2`.")
    page: int | None = Field(default=None, ge=1, description="Page of that table.")
    url: ShortText | None = Field(default=None, description="Where the document can be read, if public.")


class Reported(Strict):
    kind: Literal["reported"] = Field(description="Transcribed from a publication; never shown as measured.")
    citation: Citation = Field(description="Where the numbers were published.")
    date: _dt.date = Field(description="Date of the publication.")
    transcribed_by: ShortText | None = Field(default=None, description="Who transcribed the numbers.")


Provenance = Annotated[Union[Measured, Reported], Field(discriminator="kind")]


# --------------------------------------------------------------------------- status


class Status(Strict):
    code: Literal["ok", "does_not_fit", "failed"] = Field(
        description="`ok`: measured (metrics may still be partial); `does_not_fit`: the variant needs more memory than the profile allows; `failed`: building, loading or measuring failed."
    )
    reason: Text | None = Field(default=None, description="Why the run did not finish (required unless `ok`).")
    memory_needed_bytes: int | None = Field(default=None, gt=0, description="For `does_not_fit`: the memory the variant needed.")
    memory_budget_bytes: int | None = Field(default=None, gt=0, description="For `does_not_fit`: the budget it had to fit into.")


# --------------------------------------------------------------------------- metrics


class TaskAccuracy(Strict):
    task: Slug = Field(description="lm-eval task name as run, e.g. `arc_challenge`, or kompakt's own name for a variant task (e.g. `hellaswag_llamacpp`).")
    metric: Slug = Field(description="lm-eval metric name, e.g. `acc`, `acc_norm`, `mc2` (truthfulqa_mc2 reports `acc`, recorded as `acc`).")
    value: float = Field(description="The score, a fraction in [0, 1].")
    stderr: float | None = Field(default=None, description="Standard error of the score as lm-eval computes it (bootstrap or analytic), in the same unit.")
    n: int | None = Field(default=None, ge=1, description="Number of samples scored.")
    num_fewshot: int | None = Field(default=None, ge=0, description="Few-shot examples per prompt; null when the source does not say.")
    limit: int | None = Field(default=None, ge=1, description="`--limit` of the run: only the first `limit` samples were scored. Null means the full test set.")
    task_version: ShortText | None = Field(default=None, description="Version of the task definition (lm-eval's `version`), so scores from different versions are not mixed.")
    notes: Text | None = Field(default=None, description="Remarks, e.g. on how a reported score was labelled.")
    chance_level: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description=(
            "What answering without knowledge scores on the documents scored, computed from the data when measured: the mean of "
            "1 / number of choices, or for TruthfulQA's mc2 the mean share of true answers among the choices. The site marks a "
            "score whose distance from it is not significant as at chance. Null: not computed (reported results, older files)."
        ),
    )


class Perplexity(Strict):
    task: Slug = Field(description="Task or corpus measured, e.g. `wikitext` (lm-eval's wikitext-2 document-level task).")
    word_perplexity: float | None = Field(default=None, description="lm-eval's word perplexity: exp(total negative log-likelihood / number of words). Lower is better.")
    byte_perplexity: float | None = Field(default=None, description="lm-eval's byte perplexity: exp(total NLL / number of UTF-8 bytes). Lower is better.")
    bits_per_byte: float | None = Field(default=None, description="Total NLL in bits / number of UTF-8 bytes. Lower is better.")
    token_perplexity: float | None = Field(
        default=None,
        description="Token-level perplexity at a fixed context length, as quantization papers quote it; depends on the tokenizer, so only comparable within one base model.",
    )
    context_length: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Window in tokens: for `token_perplexity` the fixed window length; for lm-eval's word and byte perplexity the "
            "rolling window (the model's `max_length` in lm-eval). Figures with different windows are not compared; null: not recorded."
        ),
    )
    limit: int | None = Field(default=None, ge=1, description="Number of documents scored if not all.")
    task_version: ShortText | None = Field(default=None, description="Version of the task definition.")
    notes: Text | None = Field(default=None, description="Remarks.")
    parallel_language: Slug | None = Field(
        default=None,
        description=(
            "For a perplexity of parallel text (the same passages in several languages, e.g. `flores_ppl`): the language of "
            "this entry as a FLORES-200 code (`eng_Latn`, `deu_Latn`). Its figures are stored under the `parallel_` metrics, "
            "never mixed with the WikiText perplexities; `context_length` is then the longest passage scored, in tokens."
        ),
    )
    documents: int | None = Field(default=None, ge=1, description="Documents (passages) scored, each whole from its first token.")
    tokens: int | None = Field(default=None, ge=1, description="Tokens scored.")
    words: int | None = Field(default=None, ge=1, description="Whitespace-separated words in the text scored.")
    tokens_per_word: float | None = Field(
        default=None, gt=0, description="Tokens per word of this text under the model's tokenizer (German usually costs more than English)."
    )


class Memory(Strict):
    weights_bytes: int | None = Field(default=None, gt=0, description="Bytes of the weights as stored in memory (packed low-bit weights with their scales and zeros count as such).")
    disk_bytes: int | None = Field(default=None, gt=0, description="Size of the artifact on disk.")
    peak_device_allocated_bytes: int | None = Field(default=None, gt=0, description="Peak accelerator memory allocated during generation.")
    peak_device_reserved_bytes: int | None = Field(default=None, gt=0, description="Peak accelerator memory reserved by the allocator during generation.")
    peak_host_bytes: int | None = Field(default=None, gt=0, description="Peak resident host memory (RSS) of the process during generation.")
    context_length: int | None = Field(default=None, ge=1, description="Context length (prompt plus generated tokens) at which the peaks were measured.")


class Stat(Strict):
    value: float = Field(description="The figure: the median over `repeats` runs when measured, or the number as published.")
    p90: float | None = Field(default=None, description="90th percentile over the repeats.")
    min: float | None = Field(default=None, description="Smallest of the repeats.")
    max: float | None = Field(default=None, description="Largest of the repeats.")
    repeats: int | None = Field(default=None, ge=1, description="Number of timed repeats after warm-up.")


class PairedFigure(Strict):
    speedup: float = Field(
        gt=0,
        description="The variant against its reference, as the ratio of the medians of the two sides' block figures: variant / reference for a rate, reference / variant for a time, so above 1 is faster.",
    )
    ci_low: float = Field(gt=0, description="Lower end of the speed-up's confidence interval (`confidence_level` of the paired record), from a bootstrap over the paired blocks, widened to the batch-means interval over the passes where `method` says so.")
    ci_high: float = Field(gt=0, description="Upper end of the speed-up's confidence interval. An interval that contains 1.0 is no measurable difference from the reference.")
    blocks: int = Field(ge=2, description="Pairs of blocks the speed-up is computed from (one reference block and the variant block timed next to it).")
    variant_blocks: list[float] = Field(max_length=1000, description="The variant's figure in each block (the median of the block's repeats), in timing order.")
    reference_blocks: list[float] = Field(
        max_length=1000,
        description="The reference's paired timings: its figure in each block (the median of the block's repeats), in timing order; block i was timed next to the variant's block i.",
    )
    pass_speedups: list[Annotated[float, Field(gt=0)]] | None = Field(
        default=None,
        max_length=100,
        description="Each pass's own speed-up (the ratio of medians of the pairs timed in it), in pass order; absent when the pairs were timed in one "
        "pass. With 3 or more, the interval covers their batch-means t-interval (`method` says so). Optional, added in schema v1.",
    )


class PairedSpeed(Strict):
    reference: ShortText = Field(description="What the variant was timed against: the reference's variant id and the artifact or file that ran.")
    aa_check: bool = Field(
        default=False,
        description="True when the timed variant is the reference itself, loaded a second time (an A/A check: its speed-up should read 1.00 within the interval).",
    )
    loading: Literal["same_process", "process_per_block"] = Field(
        description="How the two sides ran: both models loaded at once in one process, or each block in a process of its own (when the two do not fit in memory together).",
    )
    repeats_per_block: int = Field(ge=1, description="Timed repeats in each block, after the block's own warm-up.")
    warmup_per_block: int = Field(ge=0, description="Untimed runs at the start of each block.")
    passes: int = Field(
        default=1,
        ge=1,
        description="In how many passes, minutes apart and each in a process of its own, the pairs were timed; the figures pool the pairs of "
        "every pass (1: one stretch of time, as in every file before passes existed).",
    )
    confidence_level: float = Field(gt=0, lt=1, description="Confidence level of every interval here, e.g. 0.95.")
    method: ShortText = Field(description="How the intervals were computed (the bootstrap and its settings).")
    decode_tokens_per_s: PairedFigure | None = Field(default=None, description="Paired speed-up of decode tokens/s.")
    prefill_tokens_per_s: PairedFigure | None = Field(default=None, description="Paired speed-up of prefill tokens/s.")
    time_to_first_token_ms: PairedFigure | None = Field(default=None, description="Paired speed-up of the time to first token (reference time / variant time).")
    weights_ratio: float | None = Field(
        default=None, gt=0, description="Weights bytes of the variant / of the reference on this backend (memory needs no pairing; recorded beside the speed-ups)."
    )
    peak_memory_ratio: float | None = Field(
        default=None, gt=0, description="Peak memory while generating, variant / reference, where the reference's peak was measured in the same run."
    )
    bandwidth_gbps: list[float] | None = Field(
        default=None,
        max_length=1000,
        description="Memory bandwidth of each pair of blocks the speed-ups use, aligned with the block lists: the median of the copy probes before "
        "its reference block, before its variant block and after it, in GB/s (STREAM copy convention). Absent in files timed before the probe.",
    )
    bandwidth_floor_gbps: float | None = Field(
        default=None,
        gt=0,
        description="Pairs whose bandwidth read below this (a fixed share of the highest probe of the run) were timed while other work on the host "
        "drew on the memory bus; they are left out of the speed-ups and counted in `left_out_pairs`.",
    )
    left_out_pairs: int = Field(default=0, ge=0, description="Pairs timed below `bandwidth_floor_gbps` and left out of the speed-ups.")
    bus_headroom_share: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Pairs below `bandwidth_floor_gbps` still count when neither side drew more than this share of the bandwidth their "
        "probe read (bytes read per decoding step, the weights, times steps per second): the bus, even contended, did not limit them. "
        "Absent in files timed before this rule, where the floor alone decided.",
    )
    headroom_pairs: int | None = Field(
        default=None,
        ge=0,
        description="Of the pairs the speed-ups use, how many were below `bandwidth_floor_gbps` and count by `bus_headroom_share`.",
    )
    left_out_decode_speedup: float | None = Field(
        default=None,
        gt=0,
        description="Decode speed-up over the left-out pairs alone (ratio of medians, no interval; at least two pairs): how the variant "
        "compares while the memory bus is contended. It differs from `decode_tokens_per_s.speedup` when one side is memory-bound and the other is not.",
    )
    bandwidth_contended: bool = Field(
        default=False,
        description="True when too few pairs reached `bandwidth_floor_gbps` before the timing cap (the memory bus contended throughout): the "
        "record then has no speed-ups, says why in `speedup_absent_reason`, and counts every pair in `left_out_pairs`, their own ratio in "
        "`left_out_decode_speedup`. Files written before `speedup_absent_reason` existed counted every pair in the speed-ups instead "
        "(`left_out_pairs` 0); the leaderboard shows those figures as the contended bus's, not as speed-ups.",
    )
    speedup_absent_reason: ShortText | None = Field(
        default=None,
        description="Why the record has no speed-ups, e.g. `3 of 60 pairs reached 61 GB/s of memory bandwidth before the timing cap, fewer "
        "than the 10 a speed-up needs: the memory bus was contended throughout`. Absent when it has them.",
    )


class Throughput(Strict):
    backend: ShortText | None = Field(default=None, description="Inference backend and its settings, e.g. `pytorch` or `llama.cpp`; the same variant on two backends is two entries.")
    batch_size: int | None = Field(default=None, ge=1, description="Sequences generated at once.")
    prompt_tokens: int | None = Field(default=None, ge=1, description="Prompt length in tokens.")
    generated_tokens: int | None = Field(default=None, ge=1, description="New tokens generated per sequence.")
    prefill_tokens_per_s: Stat | None = Field(default=None, description="Prompt tokens processed per second in the prefill.")
    decode_tokens_per_s: Stat | None = Field(default=None, description="Generated tokens per second after the first token (per sequence times batch size).")
    generate_tokens_per_s: Stat | None = Field(
        default=None,
        description="Generated tokens per second over the whole generate call including prefill, as many tools and publications report it.",
    )
    time_to_first_token_ms: Stat | None = Field(default=None, description="Milliseconds from the call to the first generated token.")
    ms_per_token: Stat | None = Field(default=None, description="Milliseconds per generated token in the decode phase.")
    bandwidth_bound_share: float | None = Field(
        default=None,
        gt=0,
        description="Decode tokens/s at batch 1 as a share of the memory-bandwidth bound (bandwidth / weights bytes).",
    )
    paired: PairedSpeed | None = Field(
        default=None,
        description="The variant timed against its reference in alternating blocks in the same run (same backend, threads, prompt, lengths and batch size): speed-ups with confidence intervals and the reference's paired timings. Absent in files from before paired timing and for figures timed alone.",
    )
    notes: Text | None = Field(default=None, description="Remarks, e.g. how the source measured it.")


class Energy(Strict):
    joules_per_token: float = Field(description="Energy per generated token in joules.")
    source: Literal["nvml", "rapl", "reported"] = Field(description="Where the energy reading came from.")
    batch_size: int | None = Field(default=None, ge=1, description="Batch size of the measured generation.")


class DistributionDistance(Strict):
    task: Slug = Field(description="Task that measured it, e.g. `wikitext2_kl` (kompakt's fixed WikiText-2 slice).")
    kl_mean: float = Field(
        description="Mean over the slice's tokens of KL(reference || variant) of the next-token distribution, in nats, computed "
        "from the reference's top `top_k` log-probabilities plus its remaining mass (a lower bound of the full-vocabulary KL; "
        "see `kl_gap_bound`). Lower is better; 0 for the reference itself."
    )
    kl_stderr: float | None = Field(
        default=None,
        description="Standard error of `kl_mean` over windows (tokens of one window are not independent): the standard "
        "deviation of the per-window means divided by the square root of the number of windows; null with one window.",
    )
    kl_median: float = Field(description="Median over tokens of the per-token KL, in nats.")
    kl_p99: float = Field(description="99th percentile over tokens of the per-token KL, in nats: how bad the worst tokens get.")
    top1_agreement: float = Field(description="Share of tokens where the variant and the reference put the same token first, in [0, 1].")
    tokens: int = Field(ge=1, description="Tokens (next-token distributions) compared.")
    windows: int = Field(ge=1, description="Windows of `context_length` tokens scored.")
    context_length: int = Field(ge=2, description="Tokens per window; each window is scored on its own.")
    top_k: int = Field(ge=1, description="Log-probabilities of the reference kept per token (its k most likely tokens); the rest is one bucket of remaining mass.")
    tail_mass_mean: float | None = Field(
        default=None, description="Mean over tokens of the reference's probability mass outside its top `top_k` tokens (the part the KL sees only as one bucket)."
    )
    kl_gap_bound: float | None = Field(
        default=None,
        description="Mean over tokens of a proven upper bound on how far `kl_mean` can fall below the full-vocabulary KL: per token "
        "r * max(0, log(min(1, p_k / r)) - log(q_min / q_rest)), with r the reference's remaining mass, p_k its k-th probability, "
        "q_rest the variant's mass outside the reference's top k and q_min the variant's smallest probability there.",
    )
    slice: ShortText = Field(description="The text scored, e.g. `WikiText-2 raw test, first 32 windows of 512 tokens`.")
    reference_sha256: ShortText | None = Field(
        default=None, description="sha256 of the cached reference distributions compared against, so figures against the same reference can be told apart from others."
    )
    limit: int | None = Field(default=None, ge=1, description="Windows scored when fewer than the slice's (`--limit`); null: the whole slice.")
    task_version: ShortText | None = Field(default=None, description="Version of kompakt's slice definition.")
    notes: Text | None = Field(default=None, description="Remarks.")


class PerSampleFile(Strict):
    path: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}\.parquet$")] = Field(
        description="File name of the per-sample results (Parquet), in the same folder as the results file and named from the "
        "run id: `<run_id>.samples.parquet`. One row per task and document: the per-choice log-likelihoods, the answer chosen "
        "under acc and acc_norm and lm-eval's per-document metric values (`kompakt.samples` describes the columns)."
    )
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] = Field(description="sha256 of the file's bytes (lower-case hex).")
    rows: int = Field(ge=0, description="Rows in the file: the sum over its tasks of each task's `n`.")


class Metrics(Strict):
    accuracy: list[TaskAccuracy] = Field(default_factory=list, max_length=200, description="Accuracy per task and metric.")
    perplexity: list[Perplexity] = Field(default_factory=list, max_length=50, description="Perplexity measurements, one per task or corpus.")
    memory: Memory | None = Field(default=None, description="Memory figures.")
    throughput: list[Throughput] = Field(default_factory=list, max_length=100, description="Speed figures, one entry per backend, batch size and length.")
    energy: list[Energy] = Field(default_factory=list, max_length=50, description="Energy figures where they could be read.")
    distribution_distance: list[DistributionDistance] | None = Field(
        default=None, max_length=20,
        description="How far the variant's next-token distribution lies from the reference's on a fixed text slice (KL divergence, top-1 agreement); null or absent: not measured.",
    )
    reported_mean_accuracy: float | None = Field(
        default=None,
        description="For reported results: the average exactly as the source prints it. kompakt computes its own mean from the tasks and shows both when they differ.",
    )


# --------------------------------------------------------------------------- the file


class ResultsFile(Strict):
    """One run of one variant of one base model under one hardware profile."""

    schema_version: Literal[1] = Field(description="Version of this format. Always 1 for this schema.")
    run_id: Slug = Field(description="Unique id of the run; also the file name (`<run_id>.json`).")
    status: Status = Field(description="Whether the run produced measurements.")
    base_model: BaseModelInfo = Field(description="The uncompressed model the variant was made from.")
    variant: Variant = Field(description="The compressed variant and its lineage.")
    profile: Slug = Field(
        description="Hardware profile (a file in `data/profiles/`), or `unspecified` for reported results whose source does not say where it measured."
    )
    hardware: Hardware | None = Field(default=None, description="The hardware the run really used, as detected (required for measured results).")
    software: Software = Field(default_factory=Software, description="Software versions used.")
    provenance: Provenance = Field(description="How the numbers came to be: measured by the harness, or reported in a publication.")
    duplicate_of: Slug | None = Field(
        default=None,
        description="Run id of another results file this one restates (e.g. a summary table repeating an earlier table, rounded). Restated runs are kept in the database but not ranked.",
    )
    metrics: Metrics = Field(default_factory=Metrics, description="The measurements; every section is optional so partial runs are valid.")
    notes: list[Text] = Field(default_factory=list, max_length=50, description="Remarks a reader must see, e.g. inconsistencies in a reported source.")
    per_sample: PerSampleFile | None = Field(
        default=None,
        description="Per-document results of the multiple-choice tasks, in a Parquet file beside this one; the leaderboard pairs them "
        "with the reference's (flips, paired confidence intervals and tests). Absent: no paired figures for this run.",
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the results file, as committed in ``data/schema/``."""
    schema = ResultsFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "kompakt results file, version 1"
    return schema
