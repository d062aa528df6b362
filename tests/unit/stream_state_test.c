// SPDX-License-Identifier: MIT
/* api_stream_state(): when an SSE stream is finished, when it is quiet long
 * enough for the API's keep-alive (OpenAI comment, Anthropic ping), and
 * that the quiet clock restarts on writes. */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "kselftest_harness.h"

#define SEC 1000000000ull

static void push_text(struct gen_request *r, const char *text)
{
	struct gen_event *ev = calloc(1, sizeof(*ev));

	ev->text = strdup(text);
	ev->text_len = strlen(text);
	gen_request_push(r, ev);
}

/* takes whatever is there without waiting */
static size_t take(struct gen_request *r)
{
	struct gen_event *ev;
	size_t n = gen_request_take(r, &ev, 0);

	gen_events_free(ev, n);
	return n;
}

TEST(events_move_the_clock)
{
	struct gen_request *r = gen_request_new();
	uint64_t last = srv_now_ns() - 100 * SEC;
	size_t n;

	ASSERT_NE(NULL, r);
	push_text(r, "a");
	n = take(r);
	ASSERT_EQ(1, n);
	/* events taken: more to come, not idle however old the last write */
	EXPECT_EQ(API_STREAM_MORE, api_stream_state(r, n, &last, SEC));
	EXPECT_LT(srv_now_ns() - last, SEC / 2);
	gen_request_put(r);
}

TEST(quiet_stream_is_idle_once)
{
	struct gen_request *r = gen_request_new();
	uint64_t last = srv_now_ns() - 2 * SEC;

	ASSERT_NE(NULL, r);
	EXPECT_EQ(API_STREAM_IDLE, api_stream_state(r, 0, &last, SEC));
	EXPECT_LT(srv_now_ns() - last, SEC / 2);
	/* the keep-alive was a write: not idle again right away */
	EXPECT_EQ(API_STREAM_MORE, api_stream_state(r, 0, &last, SEC));
	/* quiet, but not for long enough */
	last = srv_now_ns() - SEC / 2;
	EXPECT_EQ(API_STREAM_MORE, api_stream_state(r, 0, &last, SEC));
	gen_request_put(r);
}

TEST(done_only_when_every_event_is_taken)
{
	struct gen_request *r = gen_request_new();
	uint64_t last = srv_now_ns();
	size_t n;

	ASSERT_NE(NULL, r);
	push_text(r, "a");
	push_text(r, "b");
	gen_request_finish(r, FINISH_STOP, NULL);
	/* finished, but two events still queued */
	EXPECT_EQ(API_STREAM_MORE, api_stream_state(r, 0, &last, 100 * SEC));
	n = take(r);
	EXPECT_EQ(2, n);
	EXPECT_EQ(API_STREAM_DONE, api_stream_state(r, n, &last, 100 * SEC));
	/* done wins over idle */
	last = srv_now_ns() - 200 * SEC;
	EXPECT_EQ(API_STREAM_DONE, api_stream_state(r, 0, &last, 100 * SEC));
	gen_request_put(r);
}

TEST(failed_generation_is_done)
{
	struct gen_request *r = gen_request_new();
	uint64_t last = srv_now_ns();

	ASSERT_NE(NULL, r);
	gen_request_finish(r, FINISH_ERROR, "engine failed");
	EXPECT_EQ(API_STREAM_DONE, api_stream_state(r, take(r), &last, SEC));
	EXPECT_EQ(FINISH_ERROR, r->finish);
	gen_request_put(r);
}

TEST_HARNESS_MAIN
