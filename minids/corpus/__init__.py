"""The generators of the pretraining mixture, each a function of a seeded `random.Random`
(so the same seed gives the same bytes on every machine and every Python >= 3.10: no set
iteration, no `hash()`):

    stories.story                 short English stories (about 67 % of the characters)
    arithmetic.math_document      arithmetic and word problems solved column by column:
                                  "55 + 87: 5 + 7 = 12, write 2 carry 1. ... Answer: 142" (19 %)
    programs.code_sample          tiny Python programs followed by their printed output (9.5 %)
    passkey.passkey_document      long documents with a hidden pass key, for YaRN (5 %)

`minids.data` mixes them (GENERATORS, CORPUS_CHARS) and writes the corpus to disk.
"""
