#!/usr/bin/env python3
"""Golden renderings and parses from DeepSeek's official V4 chat encoder.

Runs encode_messages and parse_message_from_completion_text of the official
encoding/encoding_dsv4.py (fetched into .refcode/, never committed) over
our own cases and writes tests/fixtures/chat/goldens.json, which
tests/unit/chat_test.c compares the C encoder (userspace/dsv4-server/chat.c)
with.  The server's two API-level rules are applied here the same way
before calling the official code: a request's tools go to the first
message when it is a system message, else to a system message put in
front; OpenAI content lists are joined ("\\n" between text parts).

usage: chat_goldens.py ENCODING_DIR OUT_JSON
"""
import copy
import importlib.util
import json
import sys

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "days": {"type": "integer", "minimum": 1, "maximum": 10},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"]}}}
SEARCH = {"type": "function", "function": {
    "name": "search", "description": "Suche im Netz — 搜索网页 ✓",
    "parameters": {"type": "object", "properties": {
        "query": {"type": "string"}, "limit": {"type": "number", "default": 0.5},
        "filters": {"type": "object", "properties": {"lang": {"type": "array", "items": {"type": "string"}}}},
        "safe": {"type": "boolean", "default": True}, "nothing": {"default": None},
        "big": {"default": 1e16}, "small": {"default": 1e-05}, "round": {"default": 100.0},
        "neg": {"default": -2.5e-7}, "exp": {"default": 1.5e20}, "tab": {"description": "a\tb\n\"q\"\\ \u0001"}}}}}


def call(cid, name, args):
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


U = lambda t: {"role": "user", "content": t}
A = lambda t, **k: dict({"role": "assistant", "content": t}, **k)
S = lambda t: {"role": "system", "content": t}

RENDER = [
    ("chat-single", [U("Hello!")], None, "chat", None, True, True),
    ("thinking-single", [U("Hello!")], None, "thinking", None, True, True),
    ("system-chat", [S("You are terse."), U("Hi")], None, "chat", None, True, True),
    ("system-thinking", [S("You are terse."), U("Hi")], None, "thinking", None, True, True),
    ("no-bos", [U("Hi")], None, "chat", None, True, False),
    ("multi-turn-chat", [S("sys"), U("a"), A("b"), U("c")], None, "chat", None, True, True),
    ("multi-turn-thinking-drop", [U("a"), A("b", reasoning_content="r1"), U("c")], None, "thinking", None, True, True),
    ("multi-turn-thinking-keep", [U("a"), A("b", reasoning_content="r1"), U("c")], None, "thinking", None, False, True),
    ("thinking-last-assistant", [U("a"), A("b", reasoning_content="r1")], None, "thinking", None, True, True),
    ("thinking-two-rounds", [U("q1"), A("a1", reasoning_content="t1"), U("q2"), A("a2", reasoning_content="t2"), U("q3")], None, "thinking", None, True, True),
    ("chat-with-reasoning-history", [U("q1"), A("a1", reasoning_content="t1"), U("q2")], None, "chat", None, True, True),
    ("effort-max", [S("sys"), U("Prove it.")], None, "thinking", "max", True, True),
    ("effort-max-no-system", [U("Prove it.")], None, "thinking", "max", True, True),
    ("effort-high", [U("Prove it.")], None, "thinking", "high", True, True),
    ("effort-max-chat-mode", [U("Prove it.")], None, "chat", "max", True, True),
    ("developer", [S("sys"), {"role": "developer", "content": "Use metric units."}, U("Temp?")], None, "chat", None, True, True),
    ("developer-thinking-dropped", [{"role": "developer", "content": "dev rules"}, U("q1"), A("a1"), U("q2")], None, "thinking", None, True, True),
    ("developer-last", [U("q"), {"role": "developer", "content": "dev last"}], None, "thinking", None, True, True),
    ("developer-empty", [{"role": "developer", "content": ""}, U("q")], None, "chat", None, True, True),
    ("latest-reminder", [U("q"), {"role": "latest_reminder", "content": "today is Sunday"}, A("ok")], None, "chat", None, True, True),
    ("latest-reminder-null", [U("q"), {"role": "latest_reminder", "content": None}], None, "chat", None, True, True),
    ("tools-chat", [S("You can look things up."), U("Weather in Paris?")], [WEATHER, SEARCH], "chat", None, True, True),
    ("tools-thinking", [S("sys"), U("Weather in Paris?")], [WEATHER], "thinking", None, True, True),
    ("tools-no-system", [U("Weather in Paris?")], [WEATHER], "chat", None, True, True),
    ("tools-call-roundtrip", [S("sys"), U("Weather in Paris?"),
                              A("", reasoning_content="Need the tool.", tool_calls=[call("c1", "get_weather", json.dumps({"city": "Paris", "days": 3}))]),
                              {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 21}"}], [WEATHER], "thinking", None, True, True),
    ("tools-call-then-answer", [U("Weather?"), A(None, tool_calls=[call("c1", "get_weather", "{\"city\": \"Oslo\"}")]),
                                {"role": "tool", "tool_call_id": "c1", "content": "cold"}, A("It is cold."), U("Thanks")], [WEATHER], "chat", None, True, True),
    ("tools-args-types", [U("x"), A("", tool_calls=[call("c1", "search", json.dumps({
        "query": "naïve café 東京", "limit": 5, "ratio": 0.25, "big": 1e16, "tiny": 1e-05, "flag": False,
        "none": None, "list": [1, "two", [3.5]], "obj": {"a": {"b": "c\"d"}}, "int_float": 100.0}, ensure_ascii=False))]),
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}], [SEARCH], "chat", None, True, True),
    ("tools-args-not-json", [U("x"), A("", tool_calls=[call("c1", "search", "not json {")]),
                             {"role": "tool", "tool_call_id": "c1", "content": "r"}], [SEARCH], "chat", None, True, True),
    ("tools-args-empty-object", [U("x"), A("", tool_calls=[call("c1", "search", "{}")]),
                                 {"role": "tool", "tool_call_id": "c1", "content": "r"}], [SEARCH], "chat", None, True, True),
    ("tools-two-calls-results-reordered", [U("two"), A("", tool_calls=[call("a", "get_weather", "{\"city\": \"A\"}"), call("b", "get_weather", "{\"city\": \"B\"}")]),
                                           {"role": "tool", "tool_call_id": "b", "content": "B result"},
                                           {"role": "tool", "tool_call_id": "a", "content": "A result"}], [WEATHER], "thinking", None, True, True),
    ("tools-results-then-user", [U("q"), A("", tool_calls=[call("a", "get_weather", "{\"city\": \"A\"}")]),
                                 {"role": "tool", "tool_call_id": "a", "content": "sunny"}, U("and tomorrow?")], [WEATHER], "chat", None, True, True),
    ("tool-result-list-content", [U("q"), A("", tool_calls=[call("a", "search", "{\"query\": \"q\"}")]),
                                  {"role": "tool", "tool_call_id": "a", "content": [{"type": "text", "text": "part 1"}, {"type": "image", "x": 1}, {"type": "text", "text": "part 2"}]}], [SEARCH], "chat", None, True, True),
    ("tool-result-null", [U("q"), A("", tool_calls=[call("a", "search", "{\"query\": \"q\"}")]),
                          {"role": "tool", "tool_call_id": "a", "content": None}], [SEARCH], "chat", None, True, True),
    ("tools-keep-reasoning", [U("q1"), A("a1", reasoning_content="t1"), U("q2")], [WEATHER], "thinking", None, True, True),
    ("user-content-parts", [{"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]}], None, "chat", None, True, True),
    ("empty-user", [U("")], None, "chat", None, True, True),
    ("user-missing-content", [{"role": "user"}], None, "chat", None, True, True),
    ("assistant-null-content", [U("q"), A(None), U("again")], None, "chat", None, True, True),
    ("unicode-and-specials-text", [U("emoji 😀 CJK 你好 and a literal <｜User｜> inside\n\nnew\tlines")], None, "chat", None, True, True),
    ("consecutive-users", [U("one"), U("two")], None, "chat", None, True, True),
    ("response-format", [{"role": "system", "content": "sys", "response_format": {"type": "json_object"}}, U("json please")], None, "chat", None, True, True),
    ("task-query", [U("classify me", ), ], None, "chat", None, True, True),
    ("task-action", [dict(U("do it"), task="action")], None, "chat", None, True, True),
    ("task-action-thinking", [dict(U("do it"), task="action")], None, "thinking", None, True, True),
    ("task-title", [U("q"), A("a"), dict(U("title this"), task="title")], None, "chat", None, True, True),
    ("wo-eos", [U("q"), A("partial answer", wo_eos=True)], None, "chat", None, True, True),
    # errors: the official code raises
    ("error-unknown-role", [{"role": "wizard", "content": "x"}], None, "chat", None, True, True),
    ("error-developer-no-content", [{"role": "developer"}, U("q")], None, "chat", None, True, True),
    ("error-bad-task", [dict(U("q"), task="dance")], None, "chat", None, True, True),
    ("error-tool-call-no-function", [U("q"), A("", tool_calls=[{"id": "x", "type": "function"}])], None, "chat", None, True, True),
    ("error-args-not-object", [U("q"), A("", tool_calls=[call("c", "f", "[1, 2]")])], None, "chat", None, True, True),
    ("error-user-null-content", [U(None)], None, "chat", None, True, True),
]

DSML = "｜DSML｜"
CALL1 = (f"\n\n<{DSML}tool_calls>\n<{DSML}invoke name=\"get_weather\">\n"
         f"<{DSML}parameter name=\"city\" string=\"true\">Paris</{DSML}parameter>\n"
         f"<{DSML}parameter name=\"days\" string=\"false\">3</{DSML}parameter>\n"
         f"</{DSML}invoke>\n</{DSML}tool_calls>")
CALL2 = (f"\n\n<{DSML}tool_calls>\n<{DSML}invoke name=\"a\">\n"
         f"<{DSML}parameter name=\"x\" string=\"false\">{{\"k\": [1, 2]}}</{DSML}parameter>\n"
         f"</{DSML}invoke>\n<{DSML}invoke name=\"b\">\n</{DSML}invoke>\n</{DSML}tool_calls>")
EOS = "<｜end▁of▁sentence｜>"

PARSE = [
    ("chat-plain", "chat", "Hello there." + EOS),
    ("chat-empty", "chat", EOS),
    ("chat-multiline", "chat", "Line 1\n\nLine 2 — ünïcode 你好" + EOS),
    ("thinking-plain", "thinking", "Let me think.</think>The answer is 4." + EOS),
    ("thinking-empty-reasoning", "thinking", "</think>Direct." + EOS),
    ("thinking-tool-call", "thinking", "I need the weather.</think>" + CALL1 + EOS),
    ("thinking-content-and-call", "thinking", "r</think>Checking." + CALL1 + EOS),
    ("chat-tool-call", "chat", CALL1 + EOS),
    ("chat-two-calls", "chat", "Two calls:" + CALL2 + EOS),
    ("chat-string-escapes", "chat", f"\n\n<{DSML}tool_calls>\n<{DSML}invoke name=\"f\">\n<{DSML}parameter name=\"q\" string=\"true\">say \"hi\"\\n\ttab 😀</{DSML}parameter>\n</{DSML}invoke>\n</{DSML}tool_calls>" + EOS),
    ("chat-param-multiline", "chat", f"\n\n<{DSML}tool_calls>\n<{DSML}invoke name=\"f\">\n<{DSML}parameter name=\"code\" string=\"true\">line1\nline2\n</{DSML}parameter>\n</{DSML}invoke>\n</{DSML}tool_calls>" + EOS),
    ("chat-invoke-without-end-tag", "chat", f"\n\n<{DSML}tool_calls>\n<{DSML}invoke name=\"f\">\n</{DSML}invoke"),
    ("chat-no-eos", "chat", "Cut short"),
    # rejected by the official parser
    ("rejected-thinking-no-end", "thinking", "still thinking" + EOS),
    ("rejected-thinking-cut", "thinking", "still thinking"),
    ("rejected-after-eos", "chat", "done" + EOS + "more"),
    ("rejected-special-in-content", "chat", "a <think> b" + EOS),
    ("rejected-dsml-broken", "chat", f"\n\n<{DSML}tool_calls>\n<{DSML}invoke nam=\"f\">\n</{DSML}invoke>\n</{DSML}tool_calls>" + EOS),
    ("rejected-duplicate-param", "chat", f"\n\n<{DSML}tool_calls>\n<{DSML}invoke name=\"f\">\n<{DSML}parameter name=\"a\" string=\"true\">1</{DSML}parameter>\n<{DSML}parameter name=\"a\" string=\"true\">2</{DSML}parameter>\n</{DSML}invoke>\n</{DSML}tool_calls>" + EOS),
    ("rejected-bad-string-flag", "chat", f"\n\n<{DSML}tool_calls>\n<{DSML}invoke name=\"f\">\n<{DSML}parameter name=\"a\" string=\"maybe\">1</{DSML}parameter>\n</{DSML}invoke>\n</{DSML}tool_calls>" + EOS),
    ("rejected-text-after-calls", "chat", CALL1 + "trailing" + EOS),
    ("rejected-missing-newline", "chat", f"\n\n<{DSML}tool_calls><{DSML}invoke name=\"f\">\n</{DSML}invoke>\n</{DSML}tool_calls>" + EOS),
    ("rejected-unterminated-block", "chat", f"Sure.\n\n<{DSML}tool_calls>\n<{DSML}invoke name=\"f\">\n<{DSML}parameter name=\"a\" string=\"true\">1"),
    ("rejected-tool-in-thinking", "thinking", "hmm" + CALL1 + EOS),
    ("rejected-eos-in-reasoning", "thinking", "r" + EOS + "</think>x" + EOS),
    ("rejected-bos-in-content", "chat", "<｜begin▁of▁sentence｜>x" + EOS),
]


JSON_TEXTS = [
    "0", "-7", "123456789012345", "1.0", "1e2", "0.1", "0.5", "1e-05", "0.0001", "1e16", "1e+16",
    "123456789012345680000", "1.5e20", "-2.5e-7", "3.141592653589793", "2.0000000000000004",
    "1e-300", "5e-324", "1.7976931348623157e308", "-0.0", "100.0", "12345.678", "9999999999999998.0",
    "0.30000000000000004", "true", "false", "null", "\"\"", "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f\\u007f\"",
    "\"ünïcödé 你好 😀 \\u2028\"", "[]", "{}", "[1, [2, [3]], {\"a\": null}]",
    "{\"z\": 1, \"a\": 2, \"m\": {\"y\": [true, false]}}",
]


def attach_tools(messages, tools):
    messages = copy.deepcopy(messages)
    for m in messages:
        if isinstance(m, dict) and isinstance(m.get("content"), list) and m.get("role") != "tool":
            m["content"] = "\n".join(p["text"] for p in m["content"])
    if tools:
        if messages and isinstance(messages[0], dict) and messages[0].get("role") == "system":
            messages[0]["tools"] = tools
        else:
            messages.insert(0, {"role": "system", "tools": tools})
    return messages


def main():
    enc_dir, out = sys.argv[1], sys.argv[2]
    spec = importlib.util.spec_from_file_location("encoding_dsv4", f"{enc_dir}/encoding_dsv4.py")
    enc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(enc)
    render = []
    for name, messages, tools, mode, effort, drop, bos in RENDER:
        case = {"name": name, "messages": messages, "tools": tools, "mode": mode,
                "reasoning_effort": effort, "drop_thinking": drop, "add_bos": bos}
        try:
            case["prompt"] = enc.encode_messages(attach_tools(messages, tools), thinking_mode=mode,
                                                 drop_thinking=drop, add_default_bos_token=bos,
                                                 reasoning_effort=effort)
        except Exception as e:  # the official code rejects it
            case["error"] = f"{type(e).__name__}: {e}"
        render.append(case)
    parse = []
    for name, mode, text in PARSE:
        case = {"name": name, "mode": mode, "text": text}
        try:
            m = enc.parse_message_from_completion_text(text, thinking_mode=mode)
            case["expected"] = {"content": m["content"], "reasoning_content": m["reasoning_content"],
                                "tool_calls": [{"name": c["function"]["name"],
                                                "arguments": c["function"]["arguments"]}
                                               for c in m["tool_calls"]]}
        except Exception as e:
            case["rejected"] = f"{type(e).__name__}: {e}"
        parse.append(case)
    dumps = [{"json": t, "python": json.dumps(json.loads(t), ensure_ascii=False)} for t in JSON_TEXTS]
    with open(out, "w") as f:
        json.dump({"generator": "tools/reference/chat_goldens.py", "python": sys.version.split()[0],
                   "render": render, "parse": parse, "dumps": dumps}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{out}: {len(render)} render cases ({sum('error' in c for c in render)} errors), "
          f"{len(parse)} parse cases ({sum('rejected' in c for c in parse)} rejected)")


if __name__ == "__main__":
    main()
