"""Stories that end happily or sadly: a labelled data set for fine-tuning a classifier
(appendix A), made here, never downloaded.

A story is the corpus's opening and plot, then a last paragraph that turns it one way or
the other: label 1 for a happy ending, 0 for a sad one. The ending is one of several
sentences per side, in the story's own names, so the classifier has to read the end of the
text, not a fixed phrase. The same seed gives the same stories on every machine.
"""

import json
import random
from pathlib import Path

from minids.corpus.stories import OPENING, PLOTS, story_context, tell

LABELS = ("sad", "happy")  # label 0, label 1

ENDING = {
    "happy": """
{hero} laughed, and {friend} laughed too. || It was the best day {hero} could remember. || {hero} hugged {friend} and felt warm and glad. || {hero} skipped all the way home with a big smile.
From that day on, {hero} and {friend} were the best of friends. || That night {hero} fell asleep smiling. || {hero.His} heart was full of joy. || Everyone cheered, and {hero} felt proud and happy.
""",
    "sad": """
But the next day, {friend} moved far away. || Then the rain came and spoiled everything. || But {hero} lost {hero.his} way home in the dark. || Then {hero.his} {toy} broke into pieces.
{hero} sat alone and cried for a long time. || That night {hero} could not stop crying. || {hero.His} heart felt heavy and sad. || Nobody came, and {hero} felt lonely and afraid.
""",
}


def ending_story(rng: random.Random, label: int) -> str:
    """One story whose last paragraph is happy (label 1) or sad (label 0)."""
    context = story_context(rng)
    plot = tell(PLOTS[rng.choice(sorted(PLOTS))], context, rng)
    opening = tell(OPENING, context, rng)
    ending = tell(ENDING[LABELS[label]], context, rng)
    return "\n\n".join([" ".join(opening + plot[:1]), *plot[1:], *ending])


def sentiment_examples(n: int, seed: int = 0) -> list[dict]:
    """n examples {"text", "label"}, half of each label, in a seeded random order."""
    rng = random.Random(f"minids/sentiment/{seed}")
    labels = [i % 2 for i in range(n)]
    rng.shuffle(labels)
    return [{"text": ending_story(rng, label), "label": label} for label in labels]


def write_sentiment(folder, n_train: int = 400, n_test: int = 200, seed: int = 0) -> dict:
    """Write folder/train.jsonl and folder/test.jsonl (one {"text", "label"} a line), the
    test split drawn with another seed; returns {split: path}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n, split_seed in (("train", n_train, seed), ("test", n_test, seed + 1)):
        paths[split] = folder / f"{split}.jsonl"
        lines = (json.dumps(example) for example in sentiment_examples(n, split_seed))
        paths[split].write_text("".join(line + "\n" for line in lines))
    return paths
