#!/usr/bin/env python
"""Transcribe tables 2.2 to 2.9 of Schmitt (2024) into kompakt results files.

Source: Thomas Schmitt, "Effiziente Reduktion großer Sprachmodelle: Methodenvergleich
und Anwendungsstrategien für Energieoptimierung und Hardware-Kompatibilität",
Masterarbeit, Fachhochschule Südwestfalen, submitted 15 August 2024
(text copy: shared/seeds/002_5897606aec170cf0.txt).

The tables below are the transcription: one literal row per printed table row,
every number exactly as printed with its decimal comma turned into a point
("0,7395" -> 0.7395, "0,6400" -> 0.6400). Nothing is computed, rounded or
reconciled; where the thesis contradicts itself, the run's notes say so.

Usage:
    python scripts/transcribe_thesis.py [OUTPUT_ROOT]   # default: data/results

Writes one JSON file per run to
``<OUTPUT_ROOT>/<base_model.id>/<variant.id>/<profile>/<run_id>.json`` and
prints how many numbers of each table landed in the files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from kompakt.atomic import write_text  # noqa: E402
from kompakt.results import ResultsFile  # noqa: E402

# ============================================================================ source

CITATION = {
    "title": "Effiziente Reduktion großer Sprachmodelle: Methodenvergleich und Anwendungsstrategien für Energieoptimierung und Hardware-Kompatibilität",
    "authors": "Thomas Schmitt",
    "year": 2024,
    "publisher": "Fachhochschule Südwestfalen (Masterarbeit)",
}
#: Submission date ("Eingereicht: 15. August 2024").
PUBLICATION_DATE = "2024-08-15"
#: Page of each table, from the thesis's Tabellenverzeichnis.
PAGES = {"2.2": 16, "2.3": 17, "2.4": 18, "2.5": 18, "2.6": 19, "2.7": 20, "2.8": 21, "2.9": 22}

# ============================================================================ base models

#: The thesis gives no hub ids and no parameter counts.
BASE_MODELS = {
    "llama-3-8b-instruct": "Llama 3 8B Instruct",
    "mistral-7b-instruct-v0.2": "Mistral 7B Instruct v0.2",
    "llama-2-7b-chat": "Llama 2 7B chat",
}
L3, MI, L2 = "llama-3-8b-instruct", "mistral-7b-instruct-v0.2", "llama-2-7b-chat"

# ============================================================================ variants

_PRUNED = {
    "method": "prune_depth",
    "params": {},
    "notes": "Neither the number of layers removed nor how they were chosen is stated for this model (table 2.3's models were pruned with PruneMe; table 2.4 names no tool).",
}
_LORA = {"method": "lora", "params": {}, "notes": "LoRA settings (rank, training data, steps) not stated."}
_AWQ = {"method": "awq", "params": {"bits": 4}, "library": "AutoAWQ", "notes": "Group size and calibration data not stated."}

VARIANTS: dict[str, dict[str, Any]] = {
    "reference": {"is_reference": True, "steps": []},
    "awq-4bit": {
        "is_reference": False,
        "steps": [_AWQ],
        "notes": "AWQ 4 bit with AutoAWQ (table 2.2's caption: 'Für die Quantisierung wurde das Verfahren AutoAWQ verwendet').",
    },
    "prune-8": {
        "is_reference": False,
        "steps": [{"method": "prune_depth", "params": {"n_layers": 8, "selection": "angular_distance"}, "library": "PruneMe"}],
        "notes": "8 decoder layers removed 'mittels PrunMe' (table 2.3); which layers is not stated.",
    },
    "prune-12": {
        "is_reference": False,
        "steps": [{"method": "prune_depth", "params": {"n_layers": 12, "selection": "angular_distance"}, "library": "PruneMe"}],
        "notes": "12 decoder layers removed 'mittels PrunMe' (table 2.3); which layers is not stated.",
    },
    "pruned": {
        "is_reference": False,
        "steps": [_PRUNED],
        "notes": "The thesis does not say how many layers this model lost; its scores (table 2.4) differ from both rows of table 2.3 (8 and 12 layers removed), so it is kept apart from prune-8 and prune-12.",
    },
    "pruned-lora": {
        "is_reference": False,
        "steps": [_PRUNED, _LORA],
        "notes": "The 'pruned' model (layer count not stated) healed with LoRA (table 2.4, 'pruned + lora').",
    },
    "pruned-lora-distill": {
        "is_reference": False,
        "steps": [_PRUNED, _LORA, {"method": "distill", "params": {}, "notes": "Teacher, loss, temperature and data not stated."}],
        "notes": "The pruned + LoRA model further trained by knowledge distillation (table 2.5, 'pruned lora dist').",
    },
    "pruned-lora-awq": {
        "is_reference": False,
        "steps": [_PRUNED, _LORA, _AWQ],
        "notes": "The pruned + LoRA model quantized with AWQ 4 bit ('pruned + lora + awq'); AutoAWQ per table 2.9's caption.",
    },
    "lora": {
        "is_reference": False,
        "steps": [_LORA],
        "notes": "Table 2.8's 'lora' column: LoRA applied to the reference model. The thesis reports no accuracies for it.",
    },
    "qlora": {
        "is_reference": False,
        "steps": [{"method": "qlora", "params": {}, "notes": "QLoRA settings (rank, training data, steps) not stated."}],
        "notes": "Table 2.8's 'qlora' column: QLoRA applied to the reference model. The thesis reports no accuracies for it.",
    },
    "reference-4bit": {
        "is_reference": False,
        "steps": [{"method": "load_4bit", "params": {"bits": 4}, "notes": "How the model was loaded in 4 bit (library, format) is not stated."}],
        "notes": "Table 2.9's 'Referenz' on the T4: figure 2.3's caption says the reference models were loaded in 4-bit mode there because the GPU memory would not have sufficed otherwise. Not the uncompressed reference, so is_reference is false.",
    },
}

# ============================================================================ hardware profiles

UNSPECIFIED = "unspecified"
HARDWARE = {
    "a100": {
        "accelerator": {"name": "NVIDIA A100 80GB", "memory_bytes": 85899345920, "driver": "CUDA 11.7"},
        "notes": "Table 2.8 is introduced as 'ermittelt auf einer Nvidia A100 80GB GPU (CUDA 11.7)'; its caption mentions a T4 GPU (see the run's notes).",
    },
    "t4": {"accelerator": {"name": "NVIDIA T4 15GB", "driver": "CUDA 12.x"}, "notes": "Google Colab"},
}
#: Profile of each table: the accuracy and perplexity tables do not say where they were measured.
PROFILE = {"2.2": UNSPECIFIED, "2.3": UNSPECIFIED, "2.4": UNSPECIFIED, "2.5": UNSPECIFIED, "2.6": UNSPECIFIED, "2.7": UNSPECIFIED, "2.8": "a100", "2.9": "t4"}

# ============================================================================ the tables

#: Accuracy columns, in the thesis's order, with the lm-eval metric each is recorded as.
TASKS = (("winogrande", "acc"), ("truthfulqa_mc2", "acc"), ("hellaswag", "acc_norm"), ("arc_challenge", "acc_norm"))
ACC_NORM_NOTE = "The thesis names only the task; recorded as acc_norm because the reference's score matches lm-eval's zero-shot acc_norm, not acc."

# Accuracy rows: model, variant, scores (winogrande, truthfulqa_mc2, hellaswag, arc_challenge),
# their standard errors (the italic row under each score row), Durchschnitt.

# Tabelle 2.2 (p. 16): AWQ 4 bit against the reference models.
TABLE_2_2 = [
    (MI, "reference", (0.7395, 0.6682, 0.8365, 0.5606), (0.0123, 0.0152, 0.0037, 0.0145), 0.7012),  # Mistral 7 Referenz
    (MI, "awq-4bit", (0.7403, 0.6752, 0.8310, 0.5700), (0.0123, 0.0151, 0.0037, 0.0145), 0.7041),  # Mistral 7 AWQ
    (L3, "reference", (0.7206, 0.5165, 0.7582, 0.5674), (0.0126, 0.0152, 0.0043, 0.0145), 0.6407),  # Llama 3 Referenz
    (L3, "awq-4bit", (0.7356, 0.5099, 0.7532, 0.5572), (0.0124, 0.0152, 0.0043, 0.0145), 0.6390),  # Llama 3 AWQ
    (L2, "reference", (0.6646, 0.4532, 0.7547, 0.4420), (0.0133, 0.0156, 0.0043, 0.0145), 0.5786),  # Llama 2 Referenz
    (L2, "awq-4bit", (0.6456, 0.4509, 0.7481, 0.4462), (0.0134, 0.0156, 0.0043, 0.0145), 0.5727),  # Llama 2 AWQ
]

# Tabelle 2.3 (p. 17): depth pruning with PruneMe. Rows: model, "Layers Pruned", scores, standard errors, Durchschnitt.
LAYERS_PRUNED = {0: "reference", 8: "prune-8", 12: "prune-12"}
TABLE_2_3 = [
    (L3, 0, (0.7206, 0.5165, 0.7582, 0.5674), (0.0126, 0.0152, 0.0043, 0.0145), 0.6407),  # Llama 3 8B
    (L3, 8, (0.6369, 0.5211, 0.5897, 0.4283), (0.0135, 0.0159, 0.0049, 0.0145), 0.5440),
    (L3, 12, (0.5706, 0.5201, 0.4204, 0.3208), (0.0139, 0.0164, 0.0049, 0.0136), 0.4580),
    (MI, 0, (0.7395, 0.6682, 0.8365, 0.5606), (0.0123, 0.0152, 0.0037, 0.0145), 0.7012),  # Mistral 7 B
    (MI, 8, (0.6811, 0.6313, 0.6646, 0.4044), (0.0131, 0.0158, 0.0047, 0.0143), 0.5954),
    (MI, 12, (0.5943, 0.5543, 0.3239, 0.3677), (0.0138, 0.0167, 0.0047, 0.0141), 0.4601),
]

# Tabelle 2.4 (p. 18): LoRA on the pruned models (each standard error printed in the cell after its score).
TABLE_2_4 = [
    (L3, "pruned", (0.7111, 0.5000, 0.6255, 0.4625), (0.0127, 0.0157, 0.0048, 0.0146), 0.5748),
    (L3, "pruned-lora", (0.7316, 0.5189, 0.7269, 0.4974), (0.0125, 0.0151, 0.0044, 0.0146), 0.6187),
    (MI, "pruned", (0.7072, 0.6370, 0.7298, 0.4599), (0.0128, 0.0158, 0.0044, 0.0146), 0.6335),
    (MI, "pruned-lora", (0.7174, 0.5774, 0.7457, 0.4855), (0.0127, 0.0154, 0.0043, 0.0146), 0.6315),
    (L2, "pruned", (0.6409, 0.4955, 0.6384, 0.3968), (0.0135, 0.0159, 0.0048, 0.0143), 0.5429),
    (L2, "pruned-lora", (0.6732, 0.4886, 0.7082, 0.4206), (0.0132, 0.0154, 0.0045, 0.0144), 0.5727),
]

# Tabelle 2.5 (p. 18): knowledge distillation on the pruned + LoRA models (standard-error rows labelled "Fehler").
TABLE_2_5 = [
    (L3, "pruned-lora", (0.7316, 0.5189, 0.7269, 0.4974), (0.0125, 0.0151, 0.0044, 0.0146), 0.6187),  # LLama 3 8B pruned lora
    (L3, "pruned-lora-distill", (0.6535, 0.4425, 0.6645, 0.4386), (0.0134, 0.0166, 0.0047, 0.0145), 0.5498),  # LLama 3 8B pruned lora dist
    (MI, "pruned-lora", (0.7174, 0.5774, 0.7457, 0.4855), (0.0127, 0.0154, 0.0043, 0.0146), 0.6315),  # Mistral pruned lora
    (MI, "pruned-lora-distill", (0.6330, 0.4654, 0.6694, 0.4437), (0.0135, 0.0162, 0.0047, 0.0145), 0.5529),  # Mistral pruned lora dist
]

# Tabelle 2.6 (p. 19): the Llama 3 8B Instruct variants side by side.
TABLE_2_6 = [
    (L3, "reference", (0.7210, 0.5160, 0.7580, 0.5670), (0.0130, 0.0150, 0.0040, 0.0150), 0.6400),  # referenz
    (L3, "pruned", (0.7110, 0.5000, 0.6250, 0.4620), (0.0130, 0.0160, 0.0050, 0.0150), 0.5700),
    (L3, "awq-4bit", (0.7370, 0.5099, 0.7529, 0.5580), (0.0124, 0.0152, 0.0043, 0.0145), 0.6395),
    (L3, "pruned-lora", (0.7320, 0.5190, 0.7270, 0.4970), (0.0130, 0.0150, 0.0040, 0.0150), 0.6200),  # pruned + lora
    (L3, "pruned-lora-awq", (0.7230, 0.5270, 0.7320, 0.4870), (0.0130, 0.0150, 0.0040, 0.0150), 0.6200),  # pruned + lora + awq
]

# Tabelle 2.7 (p. 20): wikitext perplexity of the Llama 3 8B Instruct variants.
# Rows: label as printed, variant, bits_per_byte, byte_perplexity, word_perplexity.
TABLE_2_7 = [
    ("Referenz", "reference", 0.62, 1.54, 9.94),
    ("AWQ", "awq-4bit", 0.63, 1.55, 10.30),
    ("pruned", "pruned", 1.08, 2.11, 53.86),
    ("prune + lora", "pruned-lora", 0.71, 1.64, 13.96),
    ("prune + lora + awq", "pruned-lora-awq", 0.70, 1.62, 13.24),
]

# Tabelle 2.8 (p. 21): "Token pro Sekunde" on the A100. Columns as printed, and the variant each is.
TABLE_2_8_COLUMNS = [
    ("Referenz", "reference"),
    ("awq*", "awq-4bit"),
    ("pruned", "pruned"),
    ("lora", "lora"),
    ("qlora", "qlora"),
    ("Pruned + lora", "pruned-lora"),
    ("Pruned + lora +awq*", "pruned-lora-awq"),
]
TABLE_2_8 = [
    (L3, (27.35, 2.40, 34.42, 15.99, 29.39, 36.08, 3.03)),  # Llama-3-8B-Instruct
    (MI, (35.03, 2.47, 41.35, 33.86, 31.60, 38.50, 3.01)),  # Mistral-7B-Instruct-v0.2
    (L2, (31.42, 1.40, 38.22, 17.01, 28.41, 40.03, 1.84)),  # Llama-2-7b-chat (printed with decimal points)
]

# Tabelle 2.9 (p. 22): "Token pro Sekunde" on a T4 in Google Colab. Rows: model, Verfahren as printed, variant, value.
TABLE_2_9 = [
    (L3, "Referenz", "reference-4bit", 10.22),  # Llama 3 8B
    (L3, "prune + lora + awq", "pruned-lora-awq", 33.34),
    (MI, "Referenz", "reference-4bit", 11.10),  # Mistral-7B-Instruct-v02
    (MI, "prune + lora + awq", "pruned-lora-awq", 38.99),
]

#: Numbers printed in each table, counted by hand from the thesis (the self-check compares).
EXPECTED_COUNTS = {"2.2": 54, "2.3": 54, "2.4": 54, "2.5": 36, "2.6": 45, "2.7": 15, "2.8": 21, "2.9": 4}

THROUGHPUT_NOTE = "The thesis reports 'Token pro Sekunde' without prompt length, generated length, batch size or repeats."


def run_id(table: str, model: str, variant: str) -> str:
    return f"schmitt2024-t{table.replace('.', '-')}-{model}-{variant}"


# ============================================================================ restatements and notes

#: Rows that restate a row of an earlier table: run id -> run id of the row restated.
DUPLICATES = {
    run_id("2.3", L3, "reference"): run_id("2.2", L3, "reference"),
    run_id("2.3", MI, "reference"): run_id("2.2", MI, "reference"),
    run_id("2.5", L3, "pruned-lora"): run_id("2.4", L3, "pruned-lora"),
    run_id("2.5", MI, "pruned-lora"): run_id("2.4", MI, "pruned-lora"),
    run_id("2.6", L3, "reference"): run_id("2.2", L3, "reference"),
    run_id("2.6", L3, "pruned"): run_id("2.4", L3, "pruned"),
    run_id("2.6", L3, "awq-4bit"): run_id("2.2", L3, "awq-4bit"),
    run_id("2.6", L3, "pruned-lora"): run_id("2.4", L3, "pruned-lora"),
}

_STARRED = (
    "Table 2.8 is introduced as measured on an NVIDIA A100 80GB (CUDA 11.7), but its caption says the models marked * "
    "(this column) were loaded in 4 bit because the T4 GPU used lacked the memory for their native size. Recorded as printed."
)
_LLAMA2_POINTS = "Table 2.8 prints the Llama-2-7b-chat row with decimal points (e.g. 31.42) where the other rows use decimal commas; read as decimals, as printed."
_T24_CELLS = "Table 2.4 prints each standard error in the same cell after its score."
_T25_FEHLER = "Table 2.5 labels its standard-error rows 'Fehler'."
_T26_ROUNDED = "scores and standard errors agree with it to three decimals (within rounding), the average to two; table 2.6 prints them all with four digits"

#: Remarks per run, where the thesis needs explaining or contradicts itself.
NOTES: dict[str, list[str]] = {
    run_id("2.2", L2, "awq-4bit"): [
        "Table 2.2 prints this row's standard errors in a row without the 'Standard Fehler' label; read as standard errors by position.",
    ],
    run_id("2.3", L3, "reference"): [
        "Table 2.3's 'Layers Pruned 0' row for 'Llama 3 8B' restates table 2.2's Llama 3 reference; all nine values identical.",
    ],
    run_id("2.3", MI, "reference"): [
        "Table 2.3's 'Layers Pruned 0' row for 'Mistral 7 B' restates table 2.2's Mistral 7 reference; all nine values identical.",
    ],
    run_id("2.3", L3, "prune-8"): [
        "Table 2.3 labels the model 'Llama 3 8B'; taken as Llama 3 8B Instruct because its 0-layer row equals table 2.2's Llama 3 reference.",
    ],
    run_id("2.3", L3, "prune-12"): [
        "Table 2.3 labels the model 'Llama 3 8B'; taken as Llama 3 8B Instruct because its 0-layer row equals table 2.2's Llama 3 reference.",
    ],
    run_id("2.3", MI, "prune-8"): [
        "Table 2.3 labels the model 'Mistral 7 B'; taken as Mistral 7B Instruct v0.2 because its 0-layer row equals table 2.2's Mistral 7 reference.",
    ],
    run_id("2.3", MI, "prune-12"): [
        "Table 2.3 labels the model 'Mistral 7 B'; taken as Mistral 7B Instruct v0.2 because its 0-layer row equals table 2.2's Mistral 7 reference.",
    ],
    run_id("2.4", L3, "pruned"): [
        _T24_CELLS,
        "Table 2.4 does not say how many layers this 'pruned' model lost, and its scores match neither pruned row of table 2.3 for Llama 3 8B: "
        "8 layers there: winogrande 0.6369, truthfulqa_mc2 0.5211, hellaswag 0.5897, arc_challenge 0.4283, average 0.5440; "
        "12 layers: 0.5706, 0.5201, 0.4204, 0.3208, average 0.4580; here: 0.7111, 0.5000, 0.6255, 0.4625, average 0.5748.",
    ],
    run_id("2.4", L3, "pruned-lora"): [_T24_CELLS],
    run_id("2.4", MI, "pruned"): [
        _T24_CELLS,
        "Table 2.4 does not say how many layers this 'pruned' model lost, and its scores match neither pruned row of table 2.3 for Mistral 7 B: "
        "8 layers there: winogrande 0.6811, truthfulqa_mc2 0.6313, hellaswag 0.6646, arc_challenge 0.4044, average 0.5954; "
        "12 layers: 0.5943, 0.5543, 0.3239, 0.3677, average 0.4601; here: 0.7072, 0.6370, 0.7298, 0.4599, average 0.6335.",
    ],
    run_id("2.4", MI, "pruned-lora"): [_T24_CELLS],
    run_id("2.4", L2, "pruned"): [
        _T24_CELLS,
        "Table 2.4 does not say how many layers this 'pruned' model lost; table 2.3 has no Llama 2 rows to compare with.",
    ],
    run_id("2.4", L2, "pruned-lora"): [_T24_CELLS],
    run_id("2.5", L3, "pruned-lora"): [
        "Table 2.5's row 'LLama 3 8B pruned lora' restates table 2.4's Llama 3 8B Instruct 'pruned + lora' row; all nine values identical.",
        _T25_FEHLER,
    ],
    run_id("2.5", L3, "pruned-lora-distill"): [
        "Labelled 'LLama 3 8B pruned lora dist' in table 2.5; taken as Llama 3 8B Instruct because the table's 'pruned lora' row equals table 2.4's Llama 3 8B Instruct 'pruned + lora'.",
        _T25_FEHLER,
    ],
    run_id("2.5", MI, "pruned-lora"): [
        "Table 2.5's row 'Mistral pruned lora' restates table 2.4's Mistral 7B Instruct v0.2 'pruned + lora' row; all nine values identical.",
        _T25_FEHLER,
    ],
    run_id("2.5", MI, "pruned-lora-distill"): [
        "Labelled 'Mistral pruned lora dist' in table 2.5; taken as Mistral 7B Instruct v0.2 because the table's 'pruned lora' row equals table 2.4's Mistral 7B Instruct v0.2 'pruned + lora'.",
        _T25_FEHLER,
    ],
    run_id("2.6", L3, "reference"): [
        f"Table 2.6's 'referenz' row restates table 2.2's Llama 3 reference, rounded: {_T26_ROUNDED} "
        "(e.g. winogrande 0.7210 here, 0.7206 there; average 0.6400 here, 0.6407 there).",
    ],
    run_id("2.6", L3, "pruned"): [
        f"Table 2.6's 'pruned' row restates table 2.4's Llama 3 8B Instruct 'pruned' row, rounded: {_T26_ROUNDED} "
        "(e.g. hellaswag 0.6250 here, 0.6255 there; average 0.5700 here, 0.5748 there).",
    ],
    run_id("2.6", L3, "awq-4bit"): [
        "Table 2.6's 'awq' row restates table 2.2's Llama 3 AWQ row but differs from it beyond rounding: winogrande 0.7370 here vs 0.7356 in table 2.2, "
        "hellaswag 0.7529 vs 0.7532, arc_challenge 0.5580 vs 0.5572, average 0.6395 vs 0.6390; truthfulqa_mc2 (0.5099) and all four standard errors are identical. "
        "Unlike the other restated rows of table 2.6 this row is not rounded. Recorded as printed; the thesis does not say which measurement is right.",
    ],
    run_id("2.6", L3, "pruned-lora"): [
        f"Table 2.6's 'pruned + lora' row restates table 2.4's Llama 3 8B Instruct 'pruned + lora' row (also restated in table 2.5), rounded: {_T26_ROUNDED} "
        "(e.g. winogrande 0.7320 here, 0.7316 there; average 0.6200 here, 0.6187 there).",
    ],
    run_id("2.6", L3, "pruned-lora-awq"): [
        "The only accuracies the thesis gives for this variant. Printed like the rounded rows of table 2.6 (scores and standard errors apparently rounded to three decimals, "
        "the average to two: the four scores themselves average 0.61725). Its standard-error row is labelled 'Standard fehler'.",
    ],
    run_id("2.7", L3, "pruned"): [
        "Labelled 'pruned' in table 2.7; taken to be the same model as table 2.4's 'pruned' (number of layers removed not stated).",
    ],
    run_id("2.7", L3, "pruned-lora"): [
        "Labelled 'prune + lora' in table 2.7; taken to be the same model as table 2.4's 'pruned + lora'.",
    ],
    run_id("2.7", L3, "pruned-lora-awq"): [
        "Labelled 'prune + lora + awq' in table 2.7; taken to be the same model as table 2.6's 'pruned + lora + awq'.",
    ],
    run_id("2.9", L3, "reference-4bit"): [
        "Table 2.9 calls this model 'Referenz'; figure 2.3's caption says the reference models were loaded in 4-bit mode on the T4 because the GPU memory would not have sufficed otherwise, so it is recorded as variant reference-4bit.",
    ],
    run_id("2.9", MI, "reference-4bit"): [
        "Table 2.9 calls this model 'Referenz'; figure 2.3's caption says the reference models were loaded in 4-bit mode on the T4 because the GPU memory would not have sufficed otherwise, so it is recorded as variant reference-4bit.",
    ],
    run_id("2.9", L3, "pruned-lora-awq"): [
        "The same variant runs at 3.03 tokens/s in table 2.8 (A100, column marked * for 4-bit loading) and at 33.34 here on the T4; "
        "table 2.9's caption says the CUDA 12.x drivers on Colab made the AutoAWQ Python module usable. Recorded as printed.",
    ],
    run_id("2.9", MI, "pruned-lora-awq"): [
        "The same variant runs at 3.01 tokens/s in table 2.8 (A100, column marked * for 4-bit loading) and at 38.99 here on the T4; "
        "table 2.9's caption says the CUDA 12.x drivers on Colab made the AutoAWQ Python module usable. Recorded as printed.",
    ],
}
for _model, _values in TABLE_2_8:
    for (_label, _variant), _value in zip(TABLE_2_8_COLUMNS, _values):
        _extra = ([_STARRED] if _label.endswith("*") else []) + ([_LLAMA2_POINTS] if _model == L2 else [])
        if _extra:
            NOTES.setdefault(run_id("2.8", _model, _variant), []).extend(_extra)

# ============================================================================ building the files


def _provenance(table: str) -> dict[str, Any]:
    return {
        "kind": "reported",
        "citation": {**CITATION, "table": f"Tabelle {table}", "page": PAGES[table]},
        "date": PUBLICATION_DATE,
        "transcribed_by": "kompakt",
    }


def _result(table: str, model: str, variant: str, metrics: dict[str, Any]) -> dict[str, Any]:
    rid = run_id(table, model, variant)
    profile = PROFILE[table]
    data: dict[str, Any] = {
        "schema_version": 1,
        "run_id": rid,
        "status": {"code": "ok"},
        "base_model": {"id": model, "name": BASE_MODELS[model], "source": "unknown"},
        "variant": {"id": variant, **VARIANTS[variant]},
        "profile": profile,
        "provenance": _provenance(table),
        "metrics": metrics,
        "notes": NOTES.get(rid, []),
    }
    if profile in HARDWARE:
        data["hardware"] = HARDWARE[profile]
    if rid in DUPLICATES:
        data["duplicate_of"] = DUPLICATES[rid]
    return data


def _accuracy_metrics(scores: tuple[float, ...], stderrs: tuple[float, ...], mean: float) -> dict[str, Any]:
    entries = []
    for (task, metric), value, stderr in zip(TASKS, scores, stderrs, strict=True):
        entry: dict[str, Any] = {"task": task, "metric": metric, "value": value, "stderr": stderr}
        if metric == "acc_norm":
            entry["notes"] = ACC_NORM_NOTE
        entries.append(entry)
    return {"accuracy": entries, "reported_mean_accuracy": mean}


def _throughput_metrics(value: float) -> dict[str, Any]:
    return {"throughput": [{"generate_tokens_per_s": {"value": value}, "notes": THROUGHPUT_NOTE}]}


def build() -> list[tuple[str, ResultsFile]]:
    """Every run as (table, validated results file), in table order."""
    raw: list[tuple[str, dict[str, Any]]] = []
    for table, rows in (("2.2", TABLE_2_2), ("2.4", TABLE_2_4), ("2.5", TABLE_2_5), ("2.6", TABLE_2_6)):
        for model, variant, scores, stderrs, mean in rows:
            raw.append((table, _result(table, model, variant, _accuracy_metrics(scores, stderrs, mean))))
    for model, layers, scores, stderrs, mean in TABLE_2_3:
        raw.append(("2.3", _result("2.3", model, LAYERS_PRUNED[layers], _accuracy_metrics(scores, stderrs, mean))))
    for _label, variant, bpb, byte_ppl, word_ppl in TABLE_2_7:
        perplexity = {"task": "wikitext", "bits_per_byte": bpb, "byte_perplexity": byte_ppl, "word_perplexity": word_ppl}
        raw.append(("2.7", _result("2.7", L3, variant, {"perplexity": [perplexity]})))
    for model, values in TABLE_2_8:
        for (_label, variant), value in zip(TABLE_2_8_COLUMNS, values, strict=True):
            raw.append(("2.8", _result("2.8", model, variant, _throughput_metrics(value))))
    for model, _label, variant, value in TABLE_2_9:
        raw.append(("2.9", _result("2.9", model, variant, _throughput_metrics(value))))
    raw.sort(key=lambda item: list(PAGES).index(item[0]))
    return [(table, ResultsFile.model_validate(data)) for table, data in raw]


def relative_path(result: ResultsFile) -> Path:
    return Path(result.base_model.id) / result.variant.id / result.profile / f"{result.run_id}.json"


def render(result: ResultsFile) -> str:
    return result.model_dump_json(indent=2, exclude_none=True) + "\n"


# ============================================================================ self-check


def _numbers_in(result: ResultsFile) -> int:
    """Numbers from the thesis's tables that a results file holds."""
    m = result.metrics
    count = sum(1 + (a.stderr is not None) for a in m.accuracy)
    count += m.reported_mean_accuracy is not None
    count += sum(sum(getattr(p, f) is not None for f in ("bits_per_byte", "byte_perplexity", "word_perplexity")) for p in m.perplexity)
    count += sum(t.generate_tokens_per_s is not None for t in m.throughput)
    return count


def self_check(results: list[tuple[str, ResultsFile]]) -> dict[str, int]:
    """Count the numbers per table in the files and compare with the hand count; fail on any mismatch."""
    counts = {table: 0 for table in PAGES}
    for table, result in results:
        counts[table] += _numbers_in(result)
    ids = [r.run_id for _, r in results]
    problems = [f"table {t}: {counts[t]} numbers written, {EXPECTED_COUNTS[t]} printed" for t in PAGES if counts[t] != EXPECTED_COUNTS[t]]
    problems += [f"run id {rid} used twice" for rid in sorted({i for i in ids if ids.count(i) > 1})]
    problems += [f"{rid}: duplicate_of {target} is no run" for rid, target in DUPLICATES.items() if target not in ids or rid not in ids]
    problems += [f"notes for unknown run {rid}" for rid in NOTES if rid not in ids]
    if problems:
        raise SystemExit("self-check failed:\n  " + "\n  ".join(problems))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_root", nargs="?", type=Path, default=REPO_ROOT / "data" / "results", help="results root (default: data/results)")
    args = parser.parse_args(argv)
    results = build()
    counts = self_check(results)
    for _, result in results:
        write_text(args.output_root / relative_path(result), render(result))
    written = {relative_path(r) for _, r in results}
    stale = sorted(p.relative_to(args.output_root) for p in args.output_root.rglob("schmitt2024-*.json") if p.relative_to(args.output_root) not in written)
    for path in stale:
        print(f"warning: {path} is not produced by this script (stale?); left in place", file=sys.stderr)
    print(f"{len(results)} results files written under {args.output_root}")
    for table, count in counts.items():
        runs = sum(1 for t, _ in results if t == table)
        print(f"  Tabelle {table} (p. {PAGES[table]}): {count} numbers in {runs} files")
    print(f"  total: {sum(counts.values())} numbers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
