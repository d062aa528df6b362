// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * DeepSeek V4's chat encoding, as its official encoding_dsv4.py renders it
 * (encode_messages with no context): tool messages merged into user turns
 * as <tool_result> blocks in call order, earlier reasoning dropped before
 * the last user turn (kept when any message has tools), tools described
 * in the system message with DSML calls, thinking switched by the token
 * after <｜Assistant｜>.  tests/unit/chat_test.c checks it against goldens
 * that script produced.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

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

static const char *const task_names[] = { "action", "query", "authority", "domain", "title",
					  "read_url" };
static const char *const task_tokens[] = { "<｜action｜>", "<｜query｜>", "<｜authority｜>",
					   "<｜domain｜>", "<｜title｜>", "<｜read_url｜>" };

/* ---- a growing string ---- */

struct sb {
	char *s;
	size_t len, cap;
	int failed;
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
	if (b->failed || !n)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;
		char *grown = realloc(b->s, cap);

		if (!grown) {
			b->failed = 1;
			return;
		}
		b->s = grown;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = 0;
}

static void sb_add(struct sb *b, const char *s)
{
	if (s)
		sb_put(b, s, strlen(s));
}

static void sb_add_free(struct sb *b, char *s)
{
	if (!s)
		b->failed = 1;
	sb_add(b, s);
	free(s);
}

/* ---- the messages, as the encoder sees them after its preprocessing ---- */

enum block_type { BLOCK_TEXT, BLOCK_TOOL_RESULT };

struct block {
	enum block_type type;
	char *text;			/* text, or the tool result's rendered content */
	const char *tool_use_id;
};

struct cmsg {
	const char *role;
	const json_t *src;		/* the caller's message (tools, tool_calls...) */
	char *content;			/* NULL: Python None */
	char *reasoning;		/* NULL: absent (or dropped) */
	const json_t *tools;		/* array or NULL */
	const json_t *tool_calls;	/* array or NULL */
	const json_t *response_format;
	int task;			/* index in task_names, -1 none */
	int wo_eos;
	struct block *blocks;
	size_t n_blocks;
	int has_blocks;
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

static struct cmsg *push_msg(struct render *r)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct cmsg *grown = realloc(r->m, cap * sizeof(*grown));

		if (!grown)
			return NULL;
		r->m = grown;
		r->cap = cap;
	}
	memset(&r->m[r->n], 0, sizeof(r->m[0]));
	r->m[r->n].task = -1;
	return &r->m[r->n++];
}

static int add_block(struct cmsg *m, enum block_type type, char *text, const char *id)
{
	struct block *grown = realloc(m->blocks, (m->n_blocks + 1) * sizeof(*grown));

	if (!grown) {
		free(text);
		return -ENOMEM;
	}
	m->blocks = grown;
	m->blocks[m->n_blocks++] = (struct block){ type, text, id };
	m->has_blocks = 1;
	return 0;
}

/*
 * Message text: a string; null (Python None, kept as NULL); or OpenAI's
 * list of parts, whose text parts are joined with "\n" (our choice: the
 * official encoder takes strings only).  *ok = 0 for anything else.
 */
static char *content_text(const json_t *c, int *ok, int *is_null)
{
	*ok = 1;
	*is_null = 0;
	if (!c || json_is_null(c)) {
		*is_null = 1;
		return NULL;
	}
	if (json_is_string(c))
		return strndup(json_string_value(c), json_string_length(c));
	if (json_is_array(c)) {
		struct sb b = { 0 };
		size_t i;
		json_t *p;

		json_array_foreach(c, i, p) {
			const json_t *t = json_object_get(p, "text");
			const char *type = json_string_value(json_object_get(p, "type"));

			if (!type || strcmp(type, "text") || !json_is_string(t)) {
				free(b.s);
				*ok = 0;
				return NULL;
			}
			if (i)
				sb_put(&b, "\n", 1);
			sb_put(&b, json_string_value(t), json_string_length(t));
		}
		if (b.failed) {
			free(b.s);
			*ok = 0;
			return NULL;
		}
		return b.s ? b.s : strdup("");
	}
	*ok = 0;
	return NULL;
}

/* A tool result's content as render_message writes it: a string; a list
 * of blocks (text parts joined by "\n\n", others "[Unsupported type]");
 * Python's str(None) for null. */
static char *tool_result_text(const json_t *c, int *ok)
{
	*ok = 1;
	if (!c)
		return strdup("");
	if (json_is_null(c))
		return strdup("None");
	if (json_is_string(c))
		return strndup(json_string_value(c), json_string_length(c));
	if (json_is_array(c)) {
		struct sb b = { 0 };
		size_t i;
		json_t *p;

		json_array_foreach(c, i, p) {
			const char *type = json_string_value(json_object_get(p, "type"));

			if (i)
				sb_add(&b, "\n\n");
			if (type && !strcmp(type, "text")) {
				const json_t *t = json_object_get(p, "text");

				if (t && !json_is_string(t)) {
					*ok = 0;
					free(b.s);
					return NULL;
				}
				sb_add(&b, t ? json_string_value(t) : "");
			} else {
				sb_add(&b, "[Unsupported ");
				sb_add(&b, type ? type : "None");
				sb_add(&b, "]");
			}
		}
		return b.failed ? (free(b.s), NULL) : b.s ? b.s : strdup("");
	}
	*ok = 0;
	return NULL;
}

/* merge_tool_messages: role "tool" becomes a tool_result block of a user
 * message; user text joins the previous user message's blocks. */
static int merge(struct render *r, const json_t *messages, const json_t *tools)
{
	size_t i;
	json_t *m;
	int tools_done = !tools;

	json_array_foreach(messages, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		struct cmsg *prev = r->n ? &r->m[r->n - 1] : NULL;
		const json_t *task = json_object_get(m, "task");
		int ok, is_null, ret;
		struct cmsg *c;
		char *text;

		if (!json_is_object(m))
			return fail(r, "messages[%zu] is not an object", i);
		if (!role)
			return fail(r, "messages[%zu] has no string 'role'", i);
		if (task && !json_is_null(task) && !json_is_string(task))
			return fail(r, "messages[%zu].task must be a string", i);
		if (!strcmp(role, "tool")) {
			const json_t *id = json_object_get(m, "tool_call_id");

			text = tool_result_text(json_object_get(m, "content"), &ok);
			if (!ok)
				return fail(r, "messages[%zu].content (tool) must be a string or a list "
					    "of blocks", i);
			if (id && !json_is_string(id)) {
				free(text);
				return fail(r, "messages[%zu].tool_call_id must be a string", i);
			}
			if (!text)
				return -ENOMEM;
			if (!(prev && !strcmp(prev->role, "user") && prev->has_blocks)) {
				prev = push_msg(r);
				if (!prev) {
					free(text);
					return -ENOMEM;
				}
				prev->role = "user";
			}
			ret = add_block(prev, BLOCK_TOOL_RESULT, text, id ? json_string_value(id) : "");
			if (ret)
				return ret;
			continue;
		}
		text = content_text(json_object_get(m, "content"), &ok, &is_null);
		if (!ok)
			return fail(r, "messages[%zu].content must be a string, null or a list of "
				    "text parts", i);
		if (!strcmp(role, "user")) {
			if (!json_object_get(m, "content"))
				text = strdup("");	/* Python: msg.get("content", "") */
			else if (is_null)
				return fail(r, "messages[%zu] (user): content is null", i);
			if (!text)
				return -ENOMEM;
			if (prev && !strcmp(prev->role, "user") && prev->has_blocks && prev->task < 0) {
				ret = add_block(prev, BLOCK_TEXT, text, NULL);
				if (ret)
					return ret;
				continue;
			}
			c = push_msg(r);
			if (!c) {
				free(text);
				return -ENOMEM;
			}
			c->role = "user";
			c->src = m;
			c->content = strdup(text);
			ret = add_block(c, BLOCK_TEXT, text, NULL);
			if (ret)
				return ret;
		} else {
			static const char *const roles[] = { "system", "developer", "assistant",
							     "latest_reminder" };
			const json_t *rc = json_object_get(m, "reasoning_content");
			int known = 0;

			for (int k = 0; k < 4; k++)
				if (!strcmp(role, roles[k])) {
					role = roles[k];
					known = 1;
				}
			if (!known) {
				free(text);
				return fail(r, "messages[%zu]: unknown role '%s'", i, role);
			}
			if (rc && !json_is_null(rc) && !json_is_string(rc)) {
				free(text);
				return fail(r, "messages[%zu].reasoning_content must be a string", i);
			}
			c = push_msg(r);
			if (!c) {
				free(text);
				return -ENOMEM;
			}
			c->role = role;
			c->src = m;
			c->content = text;
			if (rc && json_is_string(rc) && !(c->reasoning = strdup(json_string_value(rc))))
				return -ENOMEM;
			c->tools = json_object_get(m, "tools");
			c->tool_calls = json_object_get(m, "tool_calls");
			c->response_format = json_object_get(m, "response_format");
		}
		c = &r->m[r->n - 1];
		c->wo_eos = json_is_true(json_object_get(m, "wo_eos"));
		if (task && json_is_string(task)) {
			for (int k = 0; k < 6; k++)
				if (!strcmp(json_string_value(task), task_names[k]))
					c->task = k;
			if (c->task < 0)
				return fail(r, "messages[%zu]: invalid task '%s'", i,
					    json_string_value(task));
		}
		/* the request's tools go to the first message when it is the
		 * system message */
		if (!tools_done && r->n == 1 && !strcmp(c->role, "system")) {
			c->tools = tools;
			tools_done = 1;
		}
	}
	if (!tools_done) {	/* a system message in front carries them */
		struct cmsg *c = push_msg(r);

		if (!c)
			return -ENOMEM;
		memmove(&r->m[1], &r->m[0], (r->n - 1) * sizeof(*r->m));
		memset(&r->m[0], 0, sizeof(r->m[0]));
		r->m[0].role = "system";
		r->m[0].task = -1;
		r->m[0].tools = tools;
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

/* sort_tool_results_by_call_order: results reordered as the calls were. */
static void sort_results(struct render *r)
{
	const json_t *order = NULL;

	for (size_t i = 0; i < r->n; i++) {
		struct cmsg *m = &r->m[i];
		size_t nt = 0;

		if (!strcmp(m->role, "assistant") && json_array_size(m->tool_calls)) {
			order = m->tool_calls;
			continue;
		}
		if (strcmp(m->role, "user") || !m->has_blocks || !order)
			continue;
		for (size_t b = 0; b < m->n_blocks; b++)
			nt += m->blocks[b].type == BLOCK_TOOL_RESULT;
		if (nt < 2)
			continue;
		/* Python's sorted() is stable; key: the call's index, 0 if unknown
		 * (ids map to their last index, as the dict does) */
		{
			struct block *res = malloc(nt * sizeof(*res));
			int *key = malloc(nt * sizeof(*key));
			size_t k = 0;

			if (!res || !key) {
				free(res);
				free(key);
				continue;
			}
			for (size_t b = 0; b < m->n_blocks; b++) {
				if (m->blocks[b].type != BLOCK_TOOL_RESULT)
					continue;
				key[k] = 0;
				for (size_t c = 0; c < json_array_size(order); c++) {
					const char *id = call_id(json_array_get(order, c));

					if (id[0] && !strcmp(id, m->blocks[b].tool_use_id))
						key[k] = (int)c;
				}
				res[k++] = m->blocks[b];
			}
			for (size_t a = 1; a < nt; a++)	/* insertion sort: stable */
				for (size_t c = a; c > 0 && key[c - 1] > key[c]; c--) {
					struct block tb = res[c];
					int tk = key[c];

					res[c] = res[c - 1];
					key[c] = key[c - 1];
					res[c - 1] = tb;
					key[c - 1] = tk;
				}
			k = 0;
			for (size_t b = 0; b < m->n_blocks; b++)
				if (m->blocks[b].type == BLOCK_TOOL_RESULT)
					m->blocks[b] = res[k++];
			free(res);
			free(key);
		}
	}
}

static long last_user(const struct render *r)
{
	for (size_t i = r->n; i-- > 0;)
		if (!strcmp(r->m[i].role, "user") || !strcmp(r->m[i].role, "developer"))
			return (long)i;
	return -1;
}

/* _drop_thinking_messages: before the last user turn, assistant reasoning
 * goes and developer messages go. */
static void drop_thinking(struct render *r)
{
	long lu = last_user(r);
	size_t o = 0;

	for (size_t i = 0; i < r->n; i++) {
		struct cmsg *m = &r->m[i];
		int keep = !strcmp(m->role, "user") || !strcmp(m->role, "system") ||
			   !strcmp(m->role, "latest_reminder") || (long)i >= lu;

		if (!keep && !strcmp(m->role, "assistant")) {
			free(m->reasoning);
			m->reasoning = NULL;
			keep = 1;
		}
		if (keep)
			r->m[o++] = *m;
		else
			cmsg_free(m);
	}
	r->n = o;
}

static int render_tools(struct render *r, struct sb *b, const json_t *tools)
{
	size_t i;
	json_t *t;

	if (!json_is_array(tools))
		return fail(r, "'tools' must be a list");
	sb_add(b, tools_head);
	json_array_foreach(tools, i, t) {
		const json_t *fn = json_object_get(t, "function");

		if (!json_is_object(fn))
			return fail(r, "tools[%zu] has no 'function' object", i);
		if (i)
			sb_add(b, "\n");
		sb_add_free(b, chat_json_dumps(fn));
	}
	sb_add(b, tools_tail);
	return 0;
}

/* encode_arguments_to_dsml */
static int dsml_arguments(struct render *r, struct sb *b, const json_t *args)
{
	json_t *obj = NULL, *v;
	const char *k;
	int first = 1;

	if (json_is_string(args))
		obj = json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY,
				 NULL);
	if (obj && !json_is_object(obj)) {
		json_decref(obj);
		return fail(r, "tool call arguments must be a JSON object");
	}
	if (!obj)	/* not JSON: one parameter named "arguments" */
		obj = json_pack("{s:O}", "arguments", args ? args : json_null());
	if (!obj)
		return -ENOMEM;
	json_object_foreach(obj, k, v) {
		if (!first)
			sb_add(b, "\n");
		first = 0;
		sb_add(b, "<" CHAT_DSML "parameter name=\"");
		sb_add(b, k);
		sb_add(b, json_is_string(v) ? "\" string=\"true\">" : "\" string=\"false\">");
		if (json_is_string(v))
			sb_put(b, json_string_value(v), json_string_length(v));
		else
			sb_add_free(b, chat_json_dumps(v));
		sb_add(b, "</" CHAT_DSML "parameter>");
	}
	json_decref(obj);
	return 0;
}

static int render_calls(struct render *r, struct sb *b, const json_t *calls)
{
	size_t i;
	json_t *tc;

	if (!json_is_array(calls))
		return fail(r, "'tool_calls' must be a list");
	sb_add(b, "\n\n<" CHAT_DSML "tool_calls>\n");
	json_array_foreach(calls, i, tc) {
		const json_t *fn = json_object_get(tc, "function");
		const json_t *name = json_object_get(fn, "name");
		int ret;

		if (!json_is_object(fn) || !json_object_get(fn, "arguments") || !name)
			return fail(r, "tool_calls[%zu] needs function.name and function.arguments", i);
		if (i)
			sb_add(b, "\n");
		sb_add(b, "<" CHAT_DSML "invoke name=\"");
		if (json_is_string(name))
			sb_add(b, json_string_value(name));
		else
			sb_add_free(b, chat_json_dumps(name));
		sb_add(b, "\">\n");
		ret = dsml_arguments(r, b, json_object_get(fn, "arguments"));
		if (ret)
			return ret;
		sb_add(b, "\n</" CHAT_DSML "invoke>");
	}
	sb_add(b, "\n</" CHAT_DSML "tool_calls>");
	return 0;
}

static void response_format(struct sb *b, const json_t *rf)
{
	if (!rf || json_is_null(rf) || (json_is_object(rf) && !json_object_size(rf)) ||
	    (json_is_array(rf) && !json_array_size(rf)) || json_is_false(rf) ||
	    (json_is_string(rf) && !json_string_length(rf)))
		return;	/* Python: falsy */
	sb_add(b, "\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to "
		  "reply:\n");
	sb_add_free(b, chat_json_dumps(rf));
}

static int truthy_list(const json_t *v)
{
	return json_is_array(v) && json_array_size(v);
}

static int render_message(struct render *r, struct sb *b, size_t idx, const struct chat_opts *o,
			  int drop)
{
	const struct cmsg *m = &r->m[idx];
	long lu = last_user(r);
	int thinking = o->mode == CHAT_MODE_THINKING, ret = 0;

	if (idx == 0 && thinking && o->effort == CHAT_EFFORT_MAX)
		sb_add(b, effort_max);
	if (!strcmp(m->role, "system")) {
		sb_add(b, m->content);
		if (m->tools && !json_is_null(m->tools) && !(json_is_array(m->tools) &&
							     !json_array_size(m->tools))) {
			sb_add(b, "\n\n");
			ret = render_tools(r, b, m->tools);
		}
		response_format(b, m->response_format);
	} else if (!strcmp(m->role, "developer")) {
		if (!m->content || !m->content[0])
			return fail(r, "a developer message needs content");
		sb_add(b, CHAT_USER);
		sb_add(b, m->content);
		if (truthy_list(m->tools)) {
			sb_add(b, "\n\n");
			ret = render_tools(r, b, m->tools);
		}
		response_format(b, m->response_format);
	} else if (!strcmp(m->role, "user")) {
		sb_add(b, CHAT_USER);
		for (size_t k = 0; k < m->n_blocks; k++) {
			if (k)
				sb_add(b, "\n\n");
			if (m->blocks[k].type == BLOCK_TEXT) {
				sb_add(b, m->blocks[k].text);
			} else {
				sb_add(b, "<tool_result>");
				sb_add(b, m->blocks[k].text);
				sb_add(b, "</tool_result>");
			}
		}
	} else if (!strcmp(m->role, "latest_reminder")) {
		sb_add(b, LATEST_REMINDER);
		sb_add(b, m->content ? m->content : "None");
	} else {	/* assistant */
		int prev_task = idx > 0 && r->m[idx - 1].task >= 0;

		if (thinking && !prev_task && (!drop || (long)idx > lu)) {
			sb_add(b, m->reasoning);
			sb_add(b, CHAT_THINK_END);
		}
		sb_add(b, m->content);
		if (truthy_list(m->tool_calls))
			ret = render_calls(r, b, m->tool_calls);
		else if (m->tool_calls && !json_is_null(m->tool_calls) && !json_is_array(m->tool_calls))
			ret = fail(r, "'tool_calls' must be a list");
		if (!m->wo_eos)
			sb_add(b, CHAT_EOS);
	}
	if (ret)
		return ret;
	if (idx + 1 < r->n && strcmp(r->m[idx + 1].role, "assistant") &&
	    strcmp(r->m[idx + 1].role, "latest_reminder"))
		return 0;
	if (m->task >= 0) {
		if (m->task) {
			sb_add(b, task_tokens[m->task]);
		} else {
			sb_add(b, CHAT_ASSISTANT);
			sb_add(b, thinking ? CHAT_THINK_START : CHAT_THINK_END);
			sb_add(b, task_tokens[0]);
		}
	} else if (!strcmp(m->role, "user") || !strcmp(m->role, "developer")) {
		sb_add(b, CHAT_ASSISTANT);
		if (thinking && (!drop || (long)idx >= lu))
			sb_add(b, CHAT_THINK_START);
		else
			sb_add(b, CHAT_THINK_END);
	}
	return 0;
}

static int has_tools(const struct cmsg *m)
{
	return m->tools && !json_is_null(m->tools) && !(json_is_array(m->tools) &&
							!json_array_size(m->tools)) &&
	       !(json_is_object(m->tools) && !json_object_size(m->tools));
}

char *chat_render(const json_t *messages, const json_t *tools, const struct chat_opts *o,
		  char *err, size_t errlen)
{
	struct render r = { .err = err, .errlen = errlen };
	struct sb b = { 0 };
	int drop = !o->keep_thinking, ret;

	if (!json_is_array(messages) || !json_array_size(messages)) {
		fail(&r, "'messages' must be a non-empty list");
		return NULL;
	}
	ret = merge(&r, messages, tools && json_array_size(tools) ? tools : NULL);
	if (!ret) {
		sort_results(&r);
		for (size_t i = 0; i < r.n; i++)
			if (has_tools(&r.m[i]))
				drop = 0;
		if (o->mode == CHAT_MODE_THINKING && drop)
			drop_thinking(&r);
		if (!o->no_bos)
			sb_add(&b, CHAT_BOS);
		for (size_t i = 0; !ret && i < r.n; i++)
			ret = render_message(&r, &b, i, o, drop);
	}
	if (ret == -ENOMEM || (!ret && b.failed))
		fail(&r, "out of memory");
	for (size_t i = 0; i < r.n; i++)
		cmsg_free(&r.m[i]);
	free(r.m);
	if (ret || b.failed) {
		free(b.s);
		return NULL;
	}
	return b.s ? b.s : strdup("");
}

/* ---- output parsing ---- */

#define TOOLS_START "\n\n<" CHAT_DSML "tool_calls"
#define TOOLS_END "</" CHAT_DSML "tool_calls>"
#define INVOKE "<" CHAT_DSML "invoke"
#define INVOKE_END "</" CHAT_DSML "invoke"
#define PARAM "<" CHAT_DSML "parameter"
#define PARAM_END "/" CHAT_DSML "parameter"

/* _read_until_stop: the earliest of @stops at or after *pos; the text
 * before it in [*from, *to); *pos moves past it.  Returns the index of the
 * stop found, or -1 (then the text runs to the end). */
static int read_until(const char *t, size_t len, size_t *pos, const char *const *stops, int n,
		      size_t *from, size_t *to)
{
	size_t best = len;
	int which = -1;

	for (int i = 0; i < n; i++) {
		const char *hit = memmem(t + *pos, len - *pos, stops[i], strlen(stops[i]));

		if (hit && (size_t)(hit - t) < best) {
			best = (size_t)(hit - t);
			which = i;
		}
	}
	*from = *pos;
	*to = best;
	*pos = which < 0 ? len : best + strlen(stops[which]);
	return which;
}

static int seg_is(const char *t, size_t from, size_t to, const char *want)
{
	return to - from == strlen(want) && !memcmp(t + from, want, to - from);
}

/* ^\s*name="(.*?)">\n$ (Python's $ also matches before a final newline) */
static char *match_name(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && strchr(" \t\n\r\f\v", s[i]))
		i++;
	if (len - i < 6 || memcmp(s + i, "name=\"", 6))
		return NULL;
	i += 6;
	for (size_t k = i; k + 3 <= len; k++)
		if (!memcmp(s + k, "\">\n", 3) && (k + 3 == len || (k + 4 == len && s[k + 3] == '\n')))
			return strndup(s + i, k - i);
	return NULL;
}

/* ^ name="(.*?)" string="(true|false)">(.*?)<$ */
static int match_param(const char *s, size_t len, char **name, int *is_str, char **value)
{
	size_t end;

	if (len >= 1 && s[len - 1] == '<')
		end = len - 1;
	else if (len >= 2 && s[len - 1] == '\n' && s[len - 2] == '<')
		end = len - 2;
	else
		return -1;
	/* the value is lazy too: the first '<' that ends the text */
	for (size_t k = 0; k < end; k++)
		if (s[k] == '<' && (k == len - 1 || (k == len - 2 && s[len - 1] == '\n'))) {
			end = k;
			break;
		}
	if (len < 7 || memcmp(s, " name=\"", 7))
		return -1;
	for (size_t k = 7; k < end; k++) {
		static const char *const marks[] = { "\" string=\"true\">", "\" string=\"false\">" };

		for (int m = 0; m < 2; m++) {
			size_t ml = strlen(marks[m]);

			if (k + ml <= end && !memcmp(s + k, marks[m], ml)) {
				*name = strndup(s + 7, k - 7);
				*value = strndup(s + k + ml, end - k - ml);
				*is_str = !m;
				return *name && *value ? 0 : -1;
			}
		}
	}
	return -1;
}

struct calls {
	struct chat_tool_call *v;
	size_t n;
};

static void calls_free(struct chat_tool_call *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].arguments);
	}
	free(v);
}

/* parse_tool_calls from just after "<｜DSML｜tool_calls"; 0 with *pos after
 * the end tag, or -1 on a format error. */
static int parse_calls(const char *t, size_t len, size_t *pos, struct calls *out)
{
	static const char *const s_invoke[] = { INVOKE, TOOLS_END };
	static const char *const s_param[] = { PARAM, INVOKE_END };
	static const char *const s_pend[] = { PARAM_END };

	while (*pos < len) {
		size_t f, e;
		int stop = read_until(t, len, pos, s_invoke, 2, &f, &e);
		char *name;
		struct sb args = { 0 };
		char **seen = NULL;
		size_t n_seen = 0;
		int bad = 0;

		if (!seg_is(t, f, e, ">\n"))
			return -1;
		if (stop == 1)
			return 0;
		if (stop < 0)
			return -1;
		stop = read_until(t, len, pos, s_param, 2, &f, &e);
		name = match_name(t + f, e - f);
		if (!name)
			return -1;
		sb_add(&args, "{");
		while (stop == 0 && !bad) {
			char *pn = NULL, *pv = NULL;
			int is_str;

			read_until(t, len, pos, s_pend, 1, &f, &e);
			if (match_param(t + f, e - f, &pn, &is_str, &pv)) {
				free(pn);
				free(pv);
				bad = 1;
				break;
			}
			for (size_t k = 0; k < n_seen; k++)
				if (!strcmp(seen[k], pn))
					bad = 1;
			{
				char **grown = realloc(seen, (n_seen + 1) * sizeof(*seen));

				if (!grown)
					bad = 1;
				else
					(seen = grown)[n_seen++] = pn;
			}
			if (bad) {
				free(pv);
				break;
			}
			if (n_seen > 1)
				sb_add(&args, ", ");
			sb_add_free(&args, chat_json_string(pn, strlen(pn)));
			sb_add(&args, ": ");
			if (is_str)
				sb_add_free(&args, chat_json_string(pv, strlen(pv)));
			else
				sb_add(&args, pv);
			free(pv);
			stop = read_until(t, len, pos, s_param, 2, &f, &e);
			if (!seg_is(t, f, e, ">\n"))
				bad = 1;
		}
		sb_add(&args, "}");
		for (size_t k = 0; k < n_seen; k++)
			free(seen[k]);
		free(seen);
		if (bad || args.failed) {
			free(name);
			free(args.s);
			return -1;
		}
		{
			struct chat_tool_call *grown = realloc(out->v, (out->n + 1) * sizeof(*grown));

			if (!grown) {
				free(name);
				free(args.s);
				return -1;
			}
			out->v = grown;
			out->v[out->n++] = (struct chat_tool_call){ name, args.s };
		}
	}
	return 0;
}

/* ---- the incremental parser (chat_parse runs it over the whole text) ---- */

enum phase { P_REASONING, P_CONTENT, P_TOOLS, P_DONE };

struct chat_stream {
	enum chat_mode mode;
	enum phase phase;
	struct sb buf;		/* everything fed */
	size_t pos;		/* parsed up to here */
	size_t tools_at;	/* where the tool block starts */
	int malformed;
	struct sb reasoning, content;	/* all emitted, for the final check */
};

struct chat_stream *chat_stream_new(enum chat_mode mode)
{
	struct chat_stream *s = calloc(1, sizeof(*s));

	if (s) {
		s->mode = mode;
		s->phase = mode == CHAT_MODE_THINKING ? P_REASONING : P_CONTENT;
	}
	return s;
}

void chat_stream_free(struct chat_stream *s)
{
	if (!s)
		return;
	free(s->buf.s);
	free(s->reasoning.s);
	free(s->content.s);
	free(s);
}

void chat_events_clear(struct chat_events *ev)
{
	free(ev->reasoning);
	free(ev->content);
	calls_free(ev->calls, ev->n_calls);
	memset(ev, 0, sizeof(*ev));
}

static int ev_add(char **dst, size_t *dlen, struct sb *all, const char *s, size_t n)
{
	char *grown;

	if (!n)
		return 0;
	grown = realloc(*dst, *dlen + n + 1);
	if (!grown)
		return -1;
	memcpy(grown + *dlen, s, n);
	*dlen += n;
	grown[*dlen] = 0;
	*dst = grown;
	sb_put(all, s, n);
	return all->failed ? -1 : 0;
}

/* Bytes at the end of t[0..len) that could begin one of @stops. */
static size_t hold(const char *t, size_t len, const char *const *stops, int n)
{
	size_t h = 0;

	for (int i = 0; i < n; i++) {
		size_t sl = strlen(stops[i]);

		for (size_t k = sl - 1 < len ? sl - 1 : len; k > h; k--)
			if (!memcmp(t + len - k, stops[i], k)) {
				h = k;
				break;
			}
	}
	return h;
}

static int advance(struct chat_stream *s, struct chat_events *ev, int final)
{
	static const char *const r_stops[] = { CHAT_THINK_END, TOOLS_START, CHAT_EOS };
	static const char *const c_stops[] = { TOOLS_START, CHAT_EOS };
	const char *t = s->buf.s ? s->buf.s : "";
	size_t len = s->buf.len;

	for (;;) {
		if (s->phase == P_REASONING || s->phase == P_CONTENT) {
			int reasoning = s->phase == P_REASONING;
			const char *const *stops = reasoning ? r_stops : c_stops;
			int n = reasoning ? 3 : 2;
			size_t p = s->pos, f, e, h;
			int which = read_until(t, len, &p, stops, n, &f, &e);
			char **dst = reasoning ? &ev->reasoning : &ev->content;
			size_t *dlen = reasoning ? &ev->reasoning_len : &ev->content_len;
			struct sb *all = reasoning ? &s->reasoning : &s->content;

			if (which < 0) {
				h = final ? 0 : hold(t, len, stops, n);
				if (ev_add(dst, dlen, all, t + s->pos, len - h - s->pos))
					return -1;
				s->pos = len - h;
				if (final) {
					if (reasoning)
						s->malformed = 1;	/* no </think> */
					s->phase = P_DONE;
				}
				return 0;
			}
			if (ev_add(dst, dlen, all, t + f, e - f))
				return -1;
			if (!strcmp(stops[which], CHAT_THINK_END)) {
				s->pos = p;
				s->phase = P_CONTENT;
			} else if (!strcmp(stops[which], TOOLS_START)) {
				if (reasoning)
					s->malformed = 1;
				s->tools_at = e;
				s->pos = p;
				s->phase = P_TOOLS;
			} else {	/* EOS */
				if (reasoning)
					s->malformed = 1;
				s->pos = p;
				s->phase = P_DONE;
			}
			continue;
		}
		if (s->phase == P_TOOLS) {
			struct calls c = { 0 };
			size_t p = s->pos;

			if (!final)
				return 0;
			if (parse_calls(t, len, &p, &c) == 0) {
				size_t rest = len - p;

				ev->calls = c.v;
				ev->n_calls = c.n;
				if (!(rest == 0 || (rest == strlen(CHAT_EOS) &&
						    !memcmp(t + p, CHAT_EOS, rest)))) {
					s->malformed = 1;
					/* text after the block: keep it as content */
					if (ev_add(&ev->content, &ev->content_len, &s->content, t + p,
						   rest))
						return -1;
				}
			} else {
				calls_free(c.v, c.n);
				s->malformed = 1;
				/* a broken block stays text */
				if (ev_add(&ev->content, &ev->content_len, &s->content, t + s->tools_at,
					   len - s->tools_at))
					return -1;
			}
			s->pos = len;
			s->phase = P_DONE;
			return 0;
		}
		/* P_DONE: anything after EOS is unexpected */
		if (s->pos < len)
			s->malformed = 1;
		s->pos = len;
		return 0;
	}
}

int chat_stream_feed(struct chat_stream *s, const char *text, size_t len, struct chat_events *ev)
{
	memset(ev, 0, sizeof(*ev));
	sb_put(&s->buf, text, len);
	if (s->buf.failed || advance(s, ev, 0)) {
		chat_events_clear(ev);
		return -1;
	}
	return 0;
}

int chat_stream_finish(struct chat_stream *s, struct chat_events *ev)
{
	memset(ev, 0, sizeof(*ev));
	if (advance(s, ev, 1)) {
		chat_events_clear(ev);
		return -1;
	}
	return 0;
}

static int has_special(const struct sb *b)
{
	static const char *const sp[] = { CHAT_BOS, CHAT_EOS, CHAT_THINK_START, CHAT_THINK_END,
					  CHAT_DSML };

	for (int i = 0; i < 5; i++)
		if (b->s && strstr(b->s, sp[i]))
			return 1;
	return 0;
}

void chat_parse(const char *text, size_t len, enum chat_mode mode, struct chat_msg *out)
{
	struct chat_stream *s = chat_stream_new(mode);
	struct chat_events a = { 0 }, b = { 0 };

	memset(out, 0, sizeof(*out));
	if (!s || chat_stream_feed(s, text, len, &a) || chat_stream_finish(s, &b)) {
		chat_events_clear(&a);
		chat_events_clear(&b);
		chat_stream_free(s);
		out->content = strdup("");
		out->reasoning = strdup("");
		return;
	}
	out->reasoning = strdup(s->reasoning.s ? s->reasoning.s : "");
	out->content = strdup(s->content.s ? s->content.s : "");
	out->calls = b.calls;
	out->n_calls = b.n_calls;
	b.calls = NULL;
	b.n_calls = 0;
	out->well_formed = !s->malformed && !has_special(&s->reasoning) && !has_special(&s->content);
	chat_events_clear(&a);
	chat_events_clear(&b);
	chat_stream_free(s);
}

void chat_msg_free(struct chat_msg *m)
{
	free(m->content);
	free(m->reasoning);
	calls_free(m->calls, m->n_calls);
	memset(m, 0, sizeof(*m));
}
