// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * DeepSeek V4's chat encoding, as its official encoding_dsv4.py renders it
 * (encode_messages with no context): tool messages merged into user turns
 * as <tool_result> blocks in call order, earlier reasoning (and developer
 * turns) dropped before the last user turn unless some message has tools,
 * tools described in the system message with DSML calls, thinking switched
 * by the token after <｜Assistant｜>.  Where the Python code reads a value
 * with `x or ""`, `if x:` or str(x), the same truthiness and spelling are
 * used here.  The output parser is in chat_parse.c, json.dumps in pyjson.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "chat_buf.h"

#define LATEST_REMINDER "<｜latest_reminder｜>"

static const char effort_max[] =
	"Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
	"You MUST be very thorough in your thinking and comprehensively decompose the problem to "
	"resolve the root cause, rigorously stress-testing your logic against all potential paths, "
	"edge cases, and adversarial scenarios.\n"
	"Explicitly write out your entire deliberation process, documenting every intermediate step, "
	"considered alternative, and rejected hypothesis to ensure absolutely no assumption is left "
	"unchecked.\n\n";

static const char tools_head[] =
	"## Tools\n\n"
	"You have access to a set of tools to help answer the user's question. You can invoke tools "
	"by writing a \"<" CHAT_DSML "tool_calls>\" block like the following:\n\n"
	"<" CHAT_DSML "tool_calls>\n"
	"<" CHAT_DSML "invoke name=\"$TOOL_NAME\">\n"
	"<" CHAT_DSML "parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</"
	CHAT_DSML "parameter>\n"
	"...\n"
	"</" CHAT_DSML "invoke>\n"
	"<" CHAT_DSML "invoke name=\"$TOOL_NAME2\">\n"
	"...\n"
	"</" CHAT_DSML "invoke>\n"
	"</" CHAT_DSML "tool_calls>\n\n"
	"String parameters should be specified as is and set `string=\"true\"`. For all other types "
	"(numbers, booleans, arrays, objects), pass the value in JSON format and set "
	"`string=\"false\"`.\n\n"
	"If thinking_mode is enabled (triggered by " CHAT_THINK_START "), you MUST output your "
	"complete reasoning inside " CHAT_THINK_START "..." CHAT_THINK_END " BEFORE any tool calls or "
	"final response.\n\n"
	"Otherwise, output directly after " CHAT_THINK_END " with tool calls or final response.\n\n"
	"### Available Tool Schemas\n\n";
static const char tools_tail[] =
	"\n\nYou MUST strictly follow the above defined tool name and parameter schemas to invoke "
	"tool calls.\n";
static const char response_format_head[] =
	"## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n";

static const char *const task_names[] = { "action", "query", "authority", "domain", "title",
					  "read_url" };
static const char *const task_tokens[] = { "<｜action｜>", "<｜query｜>", "<｜authority｜>",
					   "<｜domain｜>", "<｜title｜>", "<｜read_url｜>" };

/* ---- Python semantics of JSON values ---- */

/* `if v:` */
static bool py_truthy(const json_t *v)
{
	switch (v ? json_typeof(v) : JSON_NULL) {
	case JSON_OBJECT: return json_object_size(v) > 0;
	case JSON_ARRAY: return json_array_size(v) > 0;
	case JSON_STRING: return json_string_length(v) > 0;
	case JSON_INTEGER: return json_integer_value(v) != 0;
	case JSON_REAL: return json_real_value(v) != 0;
	case JSON_TRUE: return true;
	default: return false;
	}
}

/* str(v) of a string or scalar (what str.format writes), malloc'd; NULL
 * for a list or dict, whose Python repr we do not reproduce. */
static char *py_str(const json_t *v)
{
	switch (v ? json_typeof(v) : JSON_NULL) {
	case JSON_STRING: return strndup(json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
	case JSON_REAL: return chat_json_dumps(v);	/* int and float repr == JSON */
	case JSON_TRUE: return strdup("True");
	case JSON_FALSE: return strdup("False");
	case JSON_NULL: return strdup("None");
	default: return NULL;
	}
}

/* A JSON string holding a NUL byte: the prompt is a C string, so such text
 * is refused (Python would keep the character). */
static bool has_nul(const json_t *v)
{
	return json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v);
}

/* ---- the messages, as the encoder sees them after merge_tool_messages ---- */

enum role { R_SYSTEM, R_DEVELOPER, R_USER, R_ASSISTANT, R_REMINDER, R_OTHER };

struct block {
	bool tool_result;
	char *text;		/* the text, or the tool result's rendered content */
	const char *tool_use_id;
};

struct cmsg {
	enum role role;
	const char *role_name;	/* for messages; NULL when "role" is not a string */
	bool keep_on_drop;	/* R_OTHER "direct_search_results": kept, then refused */
	char *content;		/* NULL: Python None */
	char *reasoning;	/* NULL: None (or dropped) */
	const json_t *tools, *tool_calls, *response_format;
	const json_t *task;	/* NULL: None */
	bool wo_eos;
	struct block *blocks;	/* user turns */
	size_t n_blocks;
};

struct render {
	struct cmsg *m;
	size_t n, cap;
	char *err;
	size_t errlen;
};

static int fail(struct render *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct render *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (r->err && r->errlen)
		vsnprintf(r->err, r->errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static void cmsg_free(struct cmsg *m)
{
	free(m->content);
	free(m->reasoning);
	for (size_t i = 0; i < m->n_blocks; i++)
		free(m->blocks[i].text);
	free(m->blocks);
}

/* A zeroed message at index @at (the end, or 0 for the tools' system). */
static struct cmsg *insert_msg(struct render *r, size_t at)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct cmsg *grown = realloc(r->m, cap * sizeof(*grown));

		if (!grown)
			return NULL;
		r->m = grown;
		r->cap = cap;
	}
	memmove(&r->m[at + 1], &r->m[at], (r->n - at) * sizeof(*r->m));
	memset(&r->m[at], 0, sizeof(*r->m));
	r->n++;
	return &r->m[at];
}

/* Takes @text (freed on failure). */
static int add_block(struct cmsg *m, bool tool_result, char *text, const char *id)
{
	struct block *grown = realloc(m->blocks, (m->n_blocks + 1) * sizeof(*grown));

	if (!grown) {
		free(text);
		return -ENOMEM;
	}
	m->blocks = grown;
	m->blocks[m->n_blocks++] = (struct block){ tool_result, text, id };
	return 0;
}

/*
 * A message's content under the API's types: a string; null (*out NULL);
 * or OpenAI's list of text parts, joined with "\n" (our rule: the official
 * encoder takes strings only).  -EINVAL for any other value, -EILSEQ for
 * text with a NUL byte.
 */
static int content_text(const json_t *c, char **out)
{
	struct chat_buf b = { 0 };
	size_t i;
	json_t *p;

	*out = NULL;
	if (!c || json_is_null(c))
		return 0;
	if (has_nul(c))
		return -EILSEQ;
	if (json_is_string(c)) {
		*out = strndup(json_string_value(c), json_string_length(c));
		return *out ? 0 : -ENOMEM;
	}
	if (!json_is_array(c))
		return -EINVAL;
	json_array_foreach(c, i, p) {
		const json_t *t = json_object_get(p, "text");
		const char *type = json_string_value(json_object_get(p, "type"));

		if (!type || strcmp(type, "text") || !json_is_string(t) || has_nul(t)) {
			free(b.s);
			return has_nul(t) ? -EILSEQ : -EINVAL;
		}
		if (i)
			cbuf_put(&b, "\n", 1);
		cbuf_put(&b, json_string_value(t), json_string_length(t));
	}
	*out = cbuf_take(&b);
	return *out ? 0 : -ENOMEM;
}

/* A tool message's content as render_message writes it in <tool_result>:
 * a string; "" when absent; str(None) for null; a list of blocks with text
 * parts joined by "\n\n" and others as "[Unsupported <type>]". */
static int tool_result_text(struct render *r, size_t idx, const json_t *c, char **out)
{
	struct chat_buf b = { 0 };
	size_t i;
	json_t *p;

	*out = NULL;
	if (has_nul(c))
		return fail(r, "messages[%zu].content holds a NUL character", idx);
	if (!c)
		*out = strdup("");
	else if (json_is_null(c))
		*out = strdup("None");
	else if (json_is_string(c))
		*out = strndup(json_string_value(c), json_string_length(c));
	else if (!json_is_array(c))
		return fail(r, "messages[%zu].content (tool) must be a string, null or a list", idx);
	else {
		json_array_foreach(c, i, p) {
			const json_t *type = json_object_get(p, "type");
			const json_t *t = json_object_get(p, "text");
			char *s;

			if (!json_is_object(p)) {
				free(b.s);
				return fail(r, "messages[%zu].content[%zu] must be an object", idx, i);
			}
			if (i)
				cbuf_add(&b, "\n\n");
			if (json_is_string(type) && !strcmp(json_string_value(type), "text")) {
				if ((t && !json_is_string(t)) || has_nul(t)) {
					free(b.s);
					return fail(r, "messages[%zu].content[%zu].text must be a "
						    "string without NUL", idx, i);
				}
				if (t)
					cbuf_put(&b, json_string_value(t), json_string_length(t));
				continue;
			}
			if (!(s = py_str(type))) {
				free(b.s);
				return fail(r, "messages[%zu].content[%zu].type must be a string",
					    idx, i);
			}
			cbuf_add(&b, "[Unsupported ");
			cbuf_add(&b, s);
			cbuf_add(&b, "]");
			free(s);
		}
		*out = cbuf_take(&b);
	}
	return *out ? 0 : -ENOMEM;
}

#define REQUEST_TOOLS ((size_t)-1)

/* What the official code needs of a truthy "tools": a list of objects
 * with a "function" (any value; it is dumped as it is).  @idx: the
 * message, or REQUEST_TOOLS. */
static int check_tools(struct render *r, size_t idx, const json_t *tools)
{
	size_t i;
	json_t *t;

	if (!py_truthy(tools))
		return 0;
	if (!json_is_array(tools))
		return fail(r, "messages[%zu].tools must be a list", idx);
	json_array_foreach(tools, i, t)
		if (!json_object_get(t, "function")) {
			if (idx == REQUEST_TOOLS)
				return fail(r, "tools[%zu] has no 'function'", i);
			return fail(r, "messages[%zu].tools[%zu] has no 'function'", idx, i);
		}
	return 0;
}

/* A truthy "tool_calls": a list of objects whose "function" object has a
 * "name" (a string: the API's type) and "arguments" (any value). */
static int check_calls(struct render *r, size_t idx, const json_t *calls)
{
	size_t i;
	json_t *tc;

	if (!py_truthy(calls))
		return 0;
	if (!json_is_array(calls))
		return fail(r, "messages[%zu].tool_calls must be a list", idx);
	json_array_foreach(calls, i, tc) {
		const json_t *fn = json_object_get(tc, "function");

		if (!json_is_object(tc) || !json_is_object(fn) || !json_object_get(fn, "arguments") ||
		    !json_object_get(fn, "name"))
			return fail(r, "messages[%zu].tool_calls[%zu] needs function.name and "
				    "function.arguments", idx, i);
		if (!json_is_string(json_object_get(fn, "name")) ||
		    has_nul(json_object_get(fn, "name")))
			return fail(r, "messages[%zu].tool_calls[%zu].function.name must be a "
				    "string", idx, i);
	}
	return 0;
}

static enum role role_of(const char *name, bool *keep_on_drop)
{
	static const struct { const char *name; enum role role; } roles[] = {
		{ "system", R_SYSTEM }, { "developer", R_DEVELOPER }, { "user", R_USER },
		{ "assistant", R_ASSISTANT }, { "latest_reminder", R_REMINDER },
	};

	*keep_on_drop = name && !strcmp(name, "direct_search_results");
	for (size_t i = 0; name && i < sizeof(roles) / sizeof(roles[0]); i++)
		if (!strcmp(name, roles[i].name))
			return roles[i].role;
	return R_OTHER;
}

/*
 * merge_tool_messages: a "tool" message becomes a tool_result block of the
 * user message before it (or of a new one); a user message's text joins
 * the previous user message when that one has no task.  Other messages are
 * kept as they are; an unknown role is refused only where render_message
 * would meet it (drop_thinking may remove it first, as in Python).
 */
static int merge(struct render *r, const json_t *messages)
{
	size_t i;
	json_t *m;

	json_array_foreach(messages, i, m) {
		const json_t *role_v = json_object_get(m, "role");
		const char *role_name = json_string_value(role_v);
		struct cmsg *prev = r->n ? &r->m[r->n - 1] : NULL;
		const json_t *rc = json_object_get(m, "reasoning_content");
		const json_t *id = json_object_get(m, "tool_call_id");
		const json_t *task = json_object_get(m, "task");
		bool keep;
		enum role role;
		struct cmsg *c;
		char *text;
		int ret;

		if (!json_is_object(m))
			return fail(r, "messages[%zu] must be an object", i);
		if (json_is_null(task))
			task = NULL;
		role = role_of(role_name, &keep);
		if (role_name && !strcmp(role_name, "tool")) {
			if (id && !json_is_null(id) && !json_is_string(id))
				return fail(r, "messages[%zu].tool_call_id must be a string", i);
			ret = tool_result_text(r, i, json_object_get(m, "content"), &text);
			if (ret)
				return ret;
			if (!prev || prev->role != R_USER) {
				prev = insert_msg(r, r->n);
				if (!prev) {
					free(text);
					return -ENOMEM;
				}
				prev->role = R_USER;
				prev->role_name = "user";
			}
			ret = add_block(prev, true, text, json_is_string(id) ?
					json_string_value(id) : "");
			if (ret)
				return ret;
			continue;
		}
		ret = content_text(json_object_get(m, "content"), &text);
		if (ret == -EINVAL)
			return fail(r, "messages[%zu].content must be a string, null or a list of "
				    "text parts", i);
		if (ret == -EILSEQ)
			return fail(r, "messages[%zu].content holds a NUL character", i);
		if (ret)
			return ret;
		if (role == R_USER) {
			if (!json_object_get(m, "content")) {
				text = strdup("");	/* msg.get("content", "") */
				if (!text)
					return -ENOMEM;
			} else if (!text) {
				return fail(r, "messages[%zu]: a user message's content cannot be "
					    "null", i);
			}
			/* every user message here has blocks */
			if (prev && prev->role == R_USER && !prev->task) {
				ret = add_block(prev, false, text, NULL);
				if (ret)
					return ret;
				continue;
			}
			c = insert_msg(r, r->n);
			if (!c) {
				free(text);
				return -ENOMEM;
			}
			c->role = R_USER;
			c->role_name = "user";
			c->task = task;
			c->wo_eos = py_truthy(json_object_get(m, "wo_eos"));
			ret = add_block(c, false, text, NULL);
			if (ret)
				return ret;
			continue;
		}
		if ((rc && !json_is_null(rc) && !json_is_string(rc)) || has_nul(rc)) {
			free(text);
			return fail(r, "messages[%zu].reasoning_content must be a string", i);
		}
		c = insert_msg(r, r->n);
		if (!c) {
			free(text);
			return -ENOMEM;
		}
		c->role = role;
		c->role_name = role_name;
		c->keep_on_drop = keep;
		c->content = text;
		if (json_is_string(rc) && !(c->reasoning = strdup(json_string_value(rc))))
			return -ENOMEM;
		c->tools = json_object_get(m, "tools");
		c->tool_calls = json_object_get(m, "tool_calls");
		c->response_format = json_object_get(m, "response_format");
		c->task = task;
		c->wo_eos = py_truthy(json_object_get(m, "wo_eos"));
		ret = check_tools(r, i, c->tools);
		if (!ret)
			ret = check_calls(r, i, c->tool_calls);
		if (ret)
			return ret;
	}
	return 0;
}

static const char *call_id(const json_t *tc)
{
	const char *id = json_string_value(json_object_get(tc, "id"));

	if (!id || !id[0])
		id = json_string_value(json_object_get(json_object_get(tc, "function"), "id"));
	return id ? id : "";
}

/* sort_tool_results_by_call_order: a user turn's tool results reordered as
 * the calls of the last assistant turn with calls; results of unknown ids
 * sort as call 0 (Python's sorted() is stable). */
static int sort_results(struct render *r)
{
	const json_t *order = NULL;

	for (size_t i = 0; i < r->n; i++) {
		struct cmsg *m = &r->m[i];
		struct block *res;
		size_t *key, nt = 0, k = 0;

		if (m->role == R_ASSISTANT && py_truthy(m->tool_calls)) {
			order = m->tool_calls;
			continue;
		}
		if (m->role != R_USER || !order)
			continue;
		for (size_t b = 0; b < m->n_blocks; b++)
			nt += m->blocks[b].tool_result;
		if (nt < 2)
			continue;
		res = malloc(nt * sizeof(*res));
		key = malloc(nt * sizeof(*key));
		if (!res || !key) {
			free(res);
			free(key);
			return -ENOMEM;
		}
		for (size_t b = 0; b < m->n_blocks; b++) {
			if (!m->blocks[b].tool_result)
				continue;
			key[k] = 0;
			/* an id given twice maps to its last call, as in the dict */
			for (size_t c = 0; c < json_array_size(order); c++) {
				const char *id = call_id(json_array_get(order, c));

				if (id[0] && !strcmp(id, m->blocks[b].tool_use_id))
					key[k] = c;
			}
			res[k++] = m->blocks[b];
		}
		for (size_t a = 1; a < nt; a++)	/* insertion sort: stable */
			for (size_t c = a; c > 0 && key[c - 1] > key[c]; c--) {
				struct block tb = res[c];
				size_t tk = key[c];

				res[c] = res[c - 1];
				key[c] = key[c - 1];
				res[c - 1] = tb;
				key[c - 1] = tk;
			}
		k = 0;
		for (size_t b = 0; b < m->n_blocks; b++)
			if (m->blocks[b].tool_result)
				m->blocks[b] = res[k++];
		free(res);
		free(key);
	}
	return 0;
}

static long last_user(const struct render *r)
{
	for (size_t i = r->n; i-- > 0;)
		if (r->m[i].role == R_USER || r->m[i].role == R_DEVELOPER)
			return (long)i;
	return -1;
}

/* _drop_thinking_messages: before the last user turn, assistant reasoning
 * goes, and so do developer turns and unknown roles. */
static void drop_thinking(struct render *r)
{
	long lu = last_user(r);
	size_t o = 0;

	for (size_t i = 0; i < r->n; i++) {
		struct cmsg *m = &r->m[i];
		bool keep = m->role == R_USER || m->role == R_SYSTEM || m->role == R_REMINDER ||
			    m->keep_on_drop || (long)i >= lu;

		if (!keep && m->role == R_ASSISTANT) {
			free(m->reasoning);
			m->reasoning = NULL;
			keep = true;
		}
		if (keep)
			r->m[o++] = *m;
		else
			cmsg_free(m);
	}
	r->n = o;
}

static void render_tools(struct chat_buf *b, const json_t *tools)
{
	size_t i;
	json_t *t;

	cbuf_add(b, tools_head);
	json_array_foreach(tools, i, t) {
		if (i)
			cbuf_add(b, "\n");
		cbuf_add_free(b, chat_json_dumps(json_object_get(t, "function")));
	}
	cbuf_add(b, tools_tail);
}

/* encode_arguments_to_dsml: arguments that parse as a JSON object give one
 * parameter per key; anything else is one parameter named "arguments". */
static int dsml_arguments(struct render *r, struct chat_buf *b, const json_t *args)
{
	json_t *obj = NULL, *v;
	const char *k;
	bool first = true;

	if (json_is_string(args))
		obj = json_loadb(json_string_value(args), json_string_length(args),
				 JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (obj && !json_is_object(obj)) {
		json_decref(obj);
		return fail(r, "tool call arguments must be a JSON object");
	}
	if (!obj)
		obj = json_pack("{s:O}", "arguments", args);
	if (!obj)
		return -ENOMEM;
	json_object_foreach(obj, k, v) {
		if (!first)
			cbuf_add(b, "\n");
		first = false;
		cbuf_add(b, "<" CHAT_DSML "parameter name=\"");
		cbuf_add(b, k);
		cbuf_add(b, json_is_string(v) ? "\" string=\"true\">" : "\" string=\"false\">");
		if (json_is_string(v))
			cbuf_put(b, json_string_value(v), json_string_length(v));
		else
			cbuf_add_free(b, chat_json_dumps(v));
		cbuf_add(b, "</" CHAT_DSML "parameter>");
	}
	json_decref(obj);
	return 0;
}

static int render_calls(struct render *r, struct chat_buf *b, const json_t *calls)
{
	size_t i;
	json_t *tc;

	cbuf_add(b, "\n\n<" CHAT_DSML "tool_calls>\n");
	json_array_foreach(calls, i, tc) {
		const json_t *fn = json_object_get(tc, "function");
		int ret;

		if (i)
			cbuf_add(b, "\n");
		cbuf_add(b, "<" CHAT_DSML "invoke name=\"");
		cbuf_add(b, json_string_value(json_object_get(fn, "name")));
		cbuf_add(b, "\">\n");
		ret = dsml_arguments(r, b, json_object_get(fn, "arguments"));
		if (ret)
			return ret;
		cbuf_add(b, "\n</" CHAT_DSML "invoke>");
	}
	cbuf_add(b, "\n</" CHAT_DSML "tool_calls>");
	return 0;
}

static void tools_and_format(struct chat_buf *b, const struct cmsg *m)
{
	if (py_truthy(m->tools)) {
		cbuf_add(b, "\n\n");
		render_tools(b, m->tools);
	}
	if (py_truthy(m->response_format)) {
		cbuf_add(b, "\n\n");
		cbuf_add(b, response_format_head);
		cbuf_add_free(b, chat_json_dumps(m->response_format));
	}
}

/* The task token, or -1 with the error set for a value not in the list. */
static int task_index(struct render *r, const json_t *task)
{
	for (int k = 0; k < 6; k++)
		if (json_is_string(task) && !strcmp(json_string_value(task), task_names[k]))
			return k;
	if (json_is_string(task))
		return fail(r, "invalid task '%s'", json_string_value(task));
	return fail(r, "'task' must be one of action, query, authority, domain, title, read_url");
}

static int render_message(struct render *r, struct chat_buf *b, size_t idx,
			  const struct chat_opts *o, bool drop)
{
	const struct cmsg *m = &r->m[idx];
	long lu = last_user(r);
	bool thinking = o->mode == CHAT_MODE_THINKING;
	int ret;

	if (idx == 0 && thinking && o->effort == CHAT_EFFORT_MAX)
		cbuf_add(b, effort_max);
	switch (m->role) {
	case R_SYSTEM:
		if (m->content)
			cbuf_add(b, m->content);
		tools_and_format(b, m);
		break;
	case R_DEVELOPER:
		if (!m->content || !m->content[0])
			return fail(r, "a developer message needs content");
		cbuf_add(b, CHAT_USER);
		cbuf_add(b, m->content);
		tools_and_format(b, m);
		break;
	case R_USER:
		cbuf_add(b, CHAT_USER);
		for (size_t k = 0; k < m->n_blocks; k++) {
			if (k)
				cbuf_add(b, "\n\n");
			if (m->blocks[k].tool_result)
				cbuf_add(b, "<tool_result>");
			cbuf_add(b, m->blocks[k].text);
			if (m->blocks[k].tool_result)
				cbuf_add(b, "</tool_result>");
		}
		break;
	case R_REMINDER:
		cbuf_add(b, LATEST_REMINDER);
		cbuf_add(b, m->content ? m->content : "None");
		break;
	case R_ASSISTANT: {
		/* after a task turn the answer is the task's, without thinking */
		bool prev_task = idx > 0 && r->m[idx - 1].task;

		if (thinking && !prev_task && (!drop || (long)idx > lu)) {
			if (m->reasoning)
				cbuf_add(b, m->reasoning);
			cbuf_add(b, CHAT_THINK_END);
		}
		if (m->content)
			cbuf_add(b, m->content);
		if (py_truthy(m->tool_calls)) {
			ret = render_calls(r, b, m->tool_calls);
			if (ret)
				return ret;
		}
		if (!m->wo_eos)
			cbuf_add(b, CHAT_EOS);
		break;
	}
	default:
		if (m->role_name)
			return fail(r, "unknown role '%s'", m->role_name);
		return fail(r, "a message's 'role' must be a string");
	}
	/* the turn's end: only before an assistant or reminder turn, or last */
	if (idx + 1 < r->n && r->m[idx + 1].role != R_ASSISTANT &&
	    r->m[idx + 1].role != R_REMINDER)
		return 0;
	if (m->task) {
		int t = task_index(r, m->task);

		if (t < 0)
			return t;
		if (t > 0) {
			cbuf_add(b, task_tokens[t]);
		} else {
			cbuf_add(b, CHAT_ASSISTANT);
			cbuf_add(b, thinking ? CHAT_THINK_START : CHAT_THINK_END);
			cbuf_add(b, task_tokens[0]);
		}
	} else if (m->role == R_USER || m->role == R_DEVELOPER) {
		cbuf_add(b, CHAT_ASSISTANT);
		cbuf_add(b, thinking && (!drop || (long)idx >= lu) ? CHAT_THINK_START :
			 CHAT_THINK_END);
	}
	return 0;
}

char *chat_render(const json_t *messages, const json_t *tools, const struct chat_opts *o,
		  char *err, size_t errlen)
{
	struct render r = { .err = err, .errlen = errlen };
	struct chat_buf b = { 0 };
	bool drop = !o->keep_thinking;
	int ret = 0;

	if (err && errlen)
		err[0] = 0;
	if (!json_is_array(messages) || !json_array_size(messages)) {
		fail(&r, "'messages' must be a non-empty list");
		return NULL;
	}
	if (tools && !json_is_null(tools) && !json_is_array(tools)) {
		fail(&r, "'tools' must be a list");
		return NULL;
	}
	ret = merge(&r, messages);
	/* request tools: on the first message when it is the system message
	 * (replacing its own), else on an empty system message put first */
	if (!ret && json_array_size(tools)) {
		struct cmsg *sys = r.m[0].role == R_SYSTEM ? &r.m[0] : insert_msg(&r, 0);

		if (!sys) {
			ret = -ENOMEM;
		} else {
			sys->role = R_SYSTEM;
			sys->role_name = "system";
			sys->tools = tools;
			ret = check_tools(&r, REQUEST_TOOLS, tools);
		}
	}
	if (!ret)
		ret = sort_results(&r);
	if (!ret) {
		for (size_t i = 0; i < r.n; i++)
			if (py_truthy(r.m[i].tools))
				drop = false;
		if (o->mode == CHAT_MODE_THINKING && drop)
			drop_thinking(&r);
		if (!o->no_bos)
			cbuf_add(&b, CHAT_BOS);
		for (size_t i = 0; !ret && i < r.n; i++)
			ret = render_message(&r, &b, i, o, drop);
	}
	if (ret == -ENOMEM || (!ret && b.failed))
		fail(&r, "out of memory");
	else if (!ret && b.len && memchr(b.s, 0, b.len))	/* from tool call arguments */
		ret = fail(&r, "the prompt would hold a NUL character");
	for (size_t i = 0; i < r.n; i++)
		cmsg_free(&r.m[i]);
	free(r.m);
	if (ret || b.failed) {
		free(b.s);
		return NULL;
	}
	return cbuf_take(&b);
}
