"""The generators of the pretraining mixture, each a function of a seeded `random.Random`
(so the same seed gives the same bytes on every machine and every Python >= 3.10: no set
iteration, no `hash()`):

    stories.story                 short English stories (about 70 % of the characters)
    arithmetic.math_document      "Question: What is 37 + 48?\\nAnswer: 85" and word problems
                                  whose answer line shows the working (15 %)
    programs.code_sample          tiny Python programs followed by their printed output (10 %)
    passkey.passkey_document      long documents with a hidden pass key, for YaRN (5 %)

`minids.data` mixes them (GENERATORS, CORPUS_CHARS) and writes the corpus to disk.
"""
