#!/usr/bin/env python3
"""HF `tokenizers` results for the tokenizer corpus (tests/fixtures/tokenizer/).

For each case: ids with special tokens matched, ids with special tokens
split as text, and the decode of the ids with and without specials.  Raw
byte cases are decoded with errors="replace" first (what the C tokenizer
does with invalid UTF-8).  Also decodes random id sequences (lossy UTF-8).

usage: expect.py TOKENIZER_JSON CASES_JSON OUT_JSON
"""
import json
import random
import sys

import tokenizers
from tokenizers import Tokenizer


def main():
    tok_path, cases_path, out = sys.argv[1:4]
    tok = Tokenizer.from_file(tok_path)
    plain = Tokenizer.from_file(tok_path)
    plain.encode_special_tokens = True
    with open(cases_path) as f:
        cases = json.load(f)["cases"]
    res = []
    for c in cases:
        text = c["text"] if "text" in c else bytes.fromhex(c["hex"]).decode("utf-8", "replace")
        ids = tok.encode(text, add_special_tokens=False).ids
        ids_plain = plain.encode(text, add_special_tokens=False).ids
        res.append({"name": c["name"], "ids": ids, "ids_nospecial": ids_plain,
                    "decoded": tok.decode(ids, skip_special_tokens=False),
                    "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
    rng = random.Random(7)
    n = tok.get_vocab_size()
    rand = []
    for i in range(100):
        ids = [rng.randrange(n) for _ in range(rng.randrange(1, 40))]
        rand.append({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                     "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
    with open(out, "w") as f:
        json.dump({"tokenizers_version": tokenizers.__version__, "cases": res,
                   "random_decode": rand}, f, ensure_ascii=False)
        f.write("\n")
    print(f"{out}: {len(res)} cases, tokenizers {tokenizers.__version__}")


if __name__ == "__main__":
    main()
