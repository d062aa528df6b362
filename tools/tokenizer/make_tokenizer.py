#!/usr/bin/env python3
"""Builds a tokenizer.json with DeepSeek V4's structure using HF `tokenizers`.

Byte-level BPE; the pre-tokenizer is DeepSeek's Sequence of three Isolated
Split regexes (digits in runs of up to three, CJK/kana runs, the main split)
followed by ByteLevel without its own regex; ByteLevel decoder; BOS id 0 and
EOS id 1; V4's chat and DSML specials appended as added tokens.  Trained on
the text files given (the fortunes data files from Debian's `fortunes`
packages, plus corpus-extra.txt for non-English scripts).

usage: make_tokenizer.py OUT_DIR VOCAB_SIZE FILE...
"""
import json
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

MAIN_SPLIT = (r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+"
              r"|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
              r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
CJK_SPLIT = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"

BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
SPECIALS = ["<｜User｜>", "<｜Assistant｜>", "<｜latest_reminder｜>", "｜DSML｜",
            "<｜action｜>", "<｜query｜>", "<｜authority｜>", "<｜domain｜>",
            "<｜title｜>", "<｜read_url｜>", "<｜fim▁hole｜>", "<｜fim▁begin｜>",
            "<｜fim▁end｜>"]
# As in DeepSeek's releases, the thinking markers are added but not special.
NON_SPECIAL = ["<think>", "</think>"]


def read_corpus(paths):
    for p in paths:
        with open(p, encoding="utf-8", errors="replace") as f:
            text = f.read()
        # fortune files separate entries with a line holding '%'
        for chunk in text.split("\n%\n"):
            if chunk.strip():
                yield chunk


def build(paths, vocab_size):
    tok = Tokenizer(models.BPE(byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}{1,3}"), behavior="isolated", invert=False),
        pre_tokenizers.Split(Regex(CJK_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.Split(Regex(MAIN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False,
        special_tokens=[BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(read_corpus(paths), trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    tok.add_tokens([AddedToken(s, special=False, normalized=False) for s in NON_SPECIAL])
    return tok


def main():
    out, vocab_size, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    tok = build(paths, vocab_size)
    tok.save(f"{out}/tokenizer.json")
    assert tok.token_to_id(BOS) == 0 and tok.token_to_id(EOS) == 1
    cfg = {"add_bos_token": False, "add_eos_token": False, "bos_token": BOS, "eos_token": EOS,
           "pad_token": PAD, "model_max_length": 1048576,
           "tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
    with open(f"{out}/tokenizer_config.json", "w") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"{out}/tokenizer.json: {tok.get_vocab_size()} tokens")


if __name__ == "__main__":
    main()
