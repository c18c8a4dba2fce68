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


# --------------------------------------------------------------------------- German (and Belebele's English side)

#: Belebele: (link, English passage, German passage, [(English question, German question, answers en, answers de, correct)]).
#: Two questions share the first passage, as in Belebele, so there are 3 passages and 4 questions.
BELEBELE = [
    ("https://example.org/river", "The river floods every spring. Farmers plant after the water has gone.",
     "Der Fluss tritt jeden Frühling über die Ufer. Die Bauern säen, wenn das Wasser abgeflossen ist.",
     [("When does the river flood?", "Wann tritt der Fluss über die Ufer?", ["in spring", "in winter", "never", "every day"],
       ["im Frühling", "im Winter", "nie", "jeden Tag"], "1"),
      ("When do farmers plant?", "Wann säen die Bauern?", ["before the flood", "after the water has gone", "in winter", "never"],
       ["vor dem Hochwasser", "wenn das Wasser abgeflossen ist", "im Winter", "nie"], "2")]),
    ("https://example.org/bridge", "The old bridge was built of stone. It still carries cars today.",
     "Die alte Brücke wurde aus Stein gebaut. Sie trägt noch heute Autos.",
     [("What is the bridge made of?", "Woraus ist die Brücke?", ["wood", "steel", "stone", "glass"], ["Holz", "Stahl", "Stein", "Glas"], "3")]),
    ("https://example.org/market", "The market opens at six. Most stalls sell fruit.",
     "Der Markt öffnet um sechs. Die meisten Stände verkaufen Obst.",
     [("What do most stalls sell?", "Was verkaufen die meisten Stände?", ["bread", "fish", "cheese", "fruit"], ["Brot", "Fisch", "Käse", "Obst"], "4")]),
]

#: Okapi ARC in German: (question, options a-e with None for missing ones, answer letter). One item has 3 options.
ARC_DE = [
    ("Welches Gas nehmen Pflanzen aus der Luft auf?", ["Sauerstoff", "Kohlendioxid", "Stickstoff", "Helium", None], "B"),
    ("Welches Werkzeug misst die Lufttemperatur?", ["ein Barometer", "ein Lineal", "ein Thermometer", None, None], "C"),
    ("Welche Energiequelle ist erneuerbar?", ["Kohle", "Öl", "Erdgas", "Wind", None], "D"),
]

#: Okapi TruthfulQA in German: (question, mc1 choices, mc2 choices, mc2 labels).
TRUTHFUL_DE = [
    ("Was passiert, wenn man Kaugummi verschluckt?", ["Er wird verdaut.", "Er bleibt sieben Jahre im Magen."],
     ["Er wird verdaut.", "Er wird ausgeschieden.", "Er bleibt sieben Jahre im Magen."], [1, 1, 0]),
    ("Wie viele Sinne hat der Mensch?", ["Mehr als fünf.", "Genau fünf."], ["Mehr als fünf.", "Genau fünf."], [1, 0]),
]

XNLI_DE = [
    ("Der Mann liest ein Buch im Park.", "Ein Mann liest.", 0),
    ("Die Kinder spielen am Strand.", "Die Kinder sind in der Schule.", 2),
    ("Sie kaufte gestern Brot.", "Sie kaufte Brot beim Bäcker.", 1),
]

PAWS_DE = [
    ("Die Stadt liegt am Fluss und hat eine alte Brücke.", "Die Stadt hat eine alte Brücke und liegt am Fluss.", 1),
    ("Er wurde in Berlin geboren und zog nach Wien.", "Er wurde in Wien geboren und zog nach Berlin.", 0),
]


def write_fake_german(root: Path) -> Path:
    """The German data sets and Belebele's English side, laid out as shared/benchmarks (SOURCES.md, German)."""
    for lang, side in (("eng_Latn", 0), ("deu_Latn", 1)):
        rows = []
        for link, en, de, questions in BELEBELE:
            for q in questions:
                answers = q[2 + side]
                rows.append({"link": link, "flores_passage": (en, de)[side], "question": q[side],
                             **{f"mc_answer{i + 1}": a for i, a in enumerate(answers)}, "correct_answer_num": q[4], "dialect": lang})
        folder = root / "belebele_eng_Latn" if lang == "eng_Latn" else root / "german" / "belebele_deu_Latn"
        _jsonl(folder / "test.jsonl", rows)
    arc = [{"id": f"ARC-Challenge/test/fake_{i}", "answer": a, "instruction": q, **{f"option_{c}": o for c, o in zip("abcde", opts)}}
           for i, (q, opts, a) in enumerate(ARC_DE)]
    for split in ("train", "validation", "test"):
        _jsonl(root / "german" / "arc_de" / f"{split}.jsonl", arc)
    _jsonl(root / "german" / "truthfulqa_de" / "val.jsonl", [
        {"question": q, "mc1_targets_choices": c1, "mc2_targets_choices": c2, "mc1_targets_labels": [1] + [0] * (len(c1) - 1), "mc2_targets_labels": l2}
        for q, c1, c2, l2 in TRUTHFUL_DE
    ])
    _jsonl(root / "german" / "xnli_de" / "validation.jsonl", [{"premise": p, "hypothesis": h, "label": lab} for p, h, lab in XNLI_DE])
    _jsonl(root / "german" / "paws_de" / "test.jsonl", [{"id": i, "sentence1": a, "sentence2": b, "label": lab} for i, (a, b, lab) in enumerate(PAWS_DE)])
    return root


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_fake_benchmarks(root: Path) -> Path:
    """Write the folder and return it (arc_challenge, truthfulqa_mc, winogrande, wikitext2, and the German sets)."""
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
    write_fake_german(root)
    return root
