#!/usr/bin/env python3
"""Writes the tokenizer test corpus (tests/fixtures/tokenizer/cases.json).

Hand-written cases for each pre-tokenizer path, plus a fixed sample of
fortunes (Debian `fortunes` data files).  Raw byte strings (invalid UTF-8)
are stored as hex.

usage: cases.py OUT FORTUNE_FILE...
"""
import json
import random
import sys

HAND = [
    ("empty", ""),
    ("ascii", "Hello, world! This is a test of the tokenizer."),
    ("leading-space", "   leading spaces and trailing   "),
    ("whitespace-runs", "a  b   c\t\td\n\ne\r\n\r\nf \n \n g     \n"),
    ("only-spaces", "        "),
    ("newlines", "\n\n\n"),
    ("digits", "1 12 123 1234 12345 123456 1234567 3.14159 -42 +7e10"),
    ("digits-mixed", "abc123def4567ghi89 v2.0.1 x86_64 2026-11-22T11:45:00Z"),
    ("unicode-digits", "٣٤٥ ๑๒๓ ①②③ Ⅻ ½ ²³"),
    ("cjk", "今天天气很好，我们去公园散步吧。"),
    ("cjk-mixed", "DeepSeek V4 支持 1M 词元上下文，并且速度很快！"),
    ("kana", "ひらがなカタカナ漢字まじりの文章です。ｶﾀｶﾅ"),
    ("korean", "서울은 한국의 수도입니다."),
    ("cyrillic-greek", "Привет, мир! Καλημέρα κόσμε."),
    ("rtl", "مرحبا بالعالم. שלום עולם."),
    ("devanagari", "नमस्ते दुनिया। यह हिंदी है।"),
    ("combining", "e\u0301 a\u0308 n\u0303 Z\u0351\u0352\u0353algo"),
    ("emoji", "😀 😃 🎉 👍🏽 👨‍👩‍👧‍👦 🇩🇪 ❤️ ✨ 🚀"),
    ("emoji-glued", "ok👍done🎉yes"),
    ("punct", "!!! ??? ... --- ,,, ;;; ::: ''' \"\"\" ((( ))) [[[ ]]] {{{ }}}"),
    ("punct-letters", "#include <stdio.h> @user $var %d &amp; *ptr /path/to ~home"),
    ("code-c", "int main(int argc, char **argv)\n{\n\treturn argc > 1 ? 0 : -1;\n}\n"),
    ("code-py", "def f(x):\n    return {'a': [1, 2, 3], \"b\": x ** 2}  # comment\n"),
    ("json", '{"model":"deepseek-v4","messages":[{"role":"user","content":"hi"}]}'),
    ("url", "https://api.deepseek.com/v1/chat/completions?stream=true&x=1#frag"),
    ("specials", "<｜begin▁of▁sentence｜>You are helpful.<｜User｜>Hi<｜Assistant｜></think>Hello!<｜end▁of▁sentence｜>"),
    ("specials-adjacent", "<｜User｜><｜User｜>x<｜Assistant｜><think>why</think>done"),
    ("specials-partial", "<｜User ｜> <｜Assist <think </think"),
    ("dsml", "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n<｜DSML｜parameter name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>"),
    ("fullwidth", "ＡＢＣ１２３！？　全角スペース"),
    ("control", "tab\there\x00nul\x07bell\x1besc\x7fdel"),
    ("zero-width", "zero\u200bwidth\u200cjoin\u200dhere\ufeffbom"),
    ("replacement-char", "already \ufffd here"),
    ("long-word", "a" * 3000),
    ("long-spaces", " " * 2000 + "x"),
    ("long-digits", "9" * 1001),
    ("long-mixed", ("The quick brown fox jumps over the lazy dog. 敏捷的棕色狐狸。 " * 40)),
    ("apostrophes", "don't won't it's I'm we'll they've you'd O'Neil's"),
    ("math", "∑_{i=1}^{n} x_i² ≤ √(n·∑x_i²) ∀ε>0 ∃δ"),
    ("private-use", "\ue000\uf8ff \U000f0000"),
]

RAW = [
    ("invalid-lone-continuation", b"abc\x80def"),
    ("invalid-truncated", b"caf\xc3"),
    ("invalid-overlong", b"\xc0\xafslash"),
    ("invalid-surrogate", b"x\xed\xa0\x80y"),
    ("invalid-mixed", b"\xff\xfe ok \xe4\xbd \xf0\x9f\x98 \xf4\x90\x80\x80 end"),
    ("invalid-cjk-cut", "今天".encode()[:-1] + "天气".encode()),
]


def main():
    out, files = sys.argv[1], sys.argv[2:]
    fortunes = []
    for p in sorted(files):
        with open(p, encoding="utf-8", errors="replace") as f:
            fortunes += [c for c in f.read().split("\n%\n") if c.strip()]
    rng = random.Random(20261122)
    sample = rng.sample(fortunes, 200)
    cases = [{"name": n, "text": t} for n, t in HAND]
    cases += [{"name": n, "hex": b.hex()} for n, b in RAW]
    cases += [{"name": f"fortune-{i}", "text": t} for i, t in enumerate(sample)]
    with open(out, "w") as f:
        json.dump({"cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
