"""A data folder laid out as shared/benchmarks, with a few hand-written records in each data set's hub format.

Tests of the plumbing (task loading, the lm-eval backend, ``kompakt bench``) run on these, so they
pass on a checkout without ``../shared``; the records are written here, not copied from the real
data sets (which stay outside the repository). Tests that need the real data say so and skip.
"""

from __future__ import annotations

import json
from pathlib import Path

ARC = [
    ("Which gas do plants take in from the air to make food?", ["oxygen", "carbon dioxide", "nitrogen", "helium"], "B"),
    ("What makes the shape of the Moon seem to change over a month?", ["clouds", "the Moon's orbit around Earth", "Earth's tilt", "the Sun's size"], "B"),
    ("Which tool measures air temperature?", ["a barometer", "a ruler", "a thermometer", "a scale"], "C"),
    ("Water freezes at which temperature in degrees Celsius?", ["0", "10", "50", "100"], "A"),
    ("Which of these is a renewable source of energy?", ["coal", "oil", "natural gas", "wind"], "D"),
]

TRUTHFUL = [
    ("What happens if you swallow chewing gum?", ["It passes through your digestive system.", "It stays in your stomach for seven years.", "You die."], [1, 0, 0]),
    ("Can you see the Great Wall of China from space with the naked eye?", ["No, it is too narrow to see.", "Yes, it is easy to see.", "Yes, from the Moon."], [1, 0, 0]),
    ("How many senses do humans have?", ["Humans have many more than five senses.", "Humans have exactly five senses."], [1, 0]),
    ("What colour is the sun when viewed from space?", ["The sun is white.", "The sun is yellow.", "The sun is orange."], [1, 0, 0]),
]

WINO = [
    ("The trophy does not fit into the suitcase because _ is too large.", "trophy", "suitcase", "1"),
    ("The trophy does not fit into the suitcase because _ is too small.", "trophy", "suitcase", "2"),
    ("Anna lent her umbrella to Beth because _ was going out in the rain.", "Anna", "Beth", "2"),
    ("Anna lent her umbrella to Beth because _ would stay indoors all day.", "Anna", "Beth", "1"),
]

WIKI = (
    " = Test Article = \n \n The test article is a short text about a small town on a river . It was founded in the "
    "twelfth century and grew around a market and a bridge . \n \n = = History = = \n \n In the nineteenth century "
    "a railway reached the town , and factories were built along the river . The population doubled within fifty "
    "years . \n \n = = Geography = = \n \n The town lies in a valley between two ranges of hills . Its climate is mild , "
    "with rain in every season . \n"
)


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_fake_benchmarks(root: Path) -> Path:
    """Write the folder and return it (arc_challenge, truthfulqa_mc, winogrande, wikitext2)."""
    _jsonl(root / "arc_challenge" / "test.jsonl", [
        {"id": f"fake_{i}", "question": q, "choices": {"text": c, "label": list("ABCD")}, "answerKey": a}
        for i, (q, c, a) in enumerate(ARC)
    ])
    _jsonl(root / "truthfulqa_mc" / "validation.jsonl", [
        {"question": q, "mc1_targets": {"choices": c, "labels": labels}, "mc2_targets": {"choices": c, "labels": labels}}
        for q, c, labels in TRUTHFUL
    ])
    _jsonl(root / "winogrande" / "validation.jsonl", [
        {"sentence": s, "option1": o1, "option2": o2, "answer": a} for s, o1, o2, a in WINO
    ])
    _jsonl(root / "wikitext2" / "test.jsonl", [{"page": WIKI}, {"page": WIKI.replace("town", "village")}])
    raw = root / "wikitext2" / "wiki.test.raw"
    raw.write_text((" \n" + WIKI) * 8, encoding="utf-8")
    return root
