/*
 * A hostile Gateway (gwsim behaviour "raw"): each broken answer is a 502
 * gateway_bad_response, never cached, its connection never used again, and
 * an order that meets one is gateway_outcome_unknown.  The two answers
 * HTTP allows (1xx interim answers, a close-delimited body) pass whole.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "harness.h"

static const char *const key_all[] = { "X-Bridge-Key: " TEST_KEY, NULL };
static const char *const key_json[] = { "X-Bridge-Key: " TEST_KEY,
	"Content-Type: application/json", NULL };

static const char routes[] =
    "routes:\n"
    "  - { prefix: /hostile/, to: /v1/api/hostile/, methods: { GET: read, "
    "POST: trade }, cache_ms: 60000 }\n";

static char *
error_code(const struct resp *r)
{
	json_t		*j;
	json_error_t	 je;
	char		*code = NULL;

	if ((j = json_loadb(r->body, r->len, 0, &je)) == NULL)
		return (NULL);
	if (json_is_string(json_object_get(j, "error")))
		code = strdup(json_string_value(json_object_get(j, "error")));
	json_decref(j);
	return (code);
}

static void
expect(const struct resp *r, long status, const char *code)
{
	char	*got;

	cr_assert_eq(r->status, status, "%ld %s", r->status, r->body);
	got = error_code(r);
	cr_assert(got != NULL && strcmp(got, code) == 0, "%s", r->body);
	free(got);
}

/*
 * The simulator's connection numbers: every request on a connection that
 * carried a raw answer must come before that answer (none after it).
 */
static int
reused_after_raw(const struct gwsim *g, int *nraw)
{
	char	*out = NULL;
	json_t	*j, *log, *e;
	size_t	 i, k;
	int	 bad = 0;

	*nraw = 0;
	cr_assert_eq(gwsim_ctl(g, "GET", "/counters", NULL, &out), 0);
	j = json_loads(out, 0, NULL);
	free(out);
	cr_assert_not_null(j);
	log = json_object_get(j, "log");
	json_array_foreach(log, i, e) {
		const char *st = json_string_value(json_object_get(e,
		    "status"));
		json_int_t conn = json_integer_value(json_object_get(e,
		    "conn"));

		if (st == NULL || strncmp(st, "raw ", 4) != 0)
			continue;
		(*nraw)++;
		for (k = i + 1; k < json_array_size(log); k++)
			if (json_integer_value(json_object_get(
			    json_array_get(log, k), "conn")) == conn)
				bad++;
	}
	json_decref(j);
	return (bad);
}

static void
start(struct gwsim *g, struct brokerd *b, const char *rawcase)
{
	char	 beh[128];

	cr_assert_eq(gwsim_start(g, "self"), 0);
	cr_assert_eq(brokerd_start(b, g, routes), 0);
	snprintf(beh, sizeof(beh), "{\"raw\":\"%s\",\"paths\":[\"/hostile/\"]}",
	    rawcase);
	cr_assert_eq(gwsim_ctl(g, "POST", "/behaviour", beh, NULL), 0);
}

/* A broken answer: 502 each time, the Gateway asked each time. */
static void
broken(const char *rawcase)
{
	struct gwsim	 g;
	struct brokerd	 b;
	struct resp	 r;
	int		 nraw;

	start(&g, &b, rawcase);
	cr_assert_eq(req_unix(&b, "GET", "/hostile/a", key_all, NULL, 0, &r),
	    0);
	expect(&r, 502, "gateway_bad_response");
	resp_free(&r);
	cr_assert_eq(req_unix(&b, "GET", "/hostile/a", key_all, NULL, 0, &r),
	    0);
	expect(&r, 502, "gateway_bad_response");
	resp_free(&r);
	cr_assert_eq(gwsim_count(&g, "GET /v1/api/hostile/a"), 2,
	    "a broken answer was cached");

	cr_assert_eq(req_unix(&b, "POST", "/hostile/order", key_json,
	    "{\"side\":\"BUY\"}", 14, &r), 0);
	expect(&r, 502, "gateway_outcome_unknown");
	resp_free(&r);

	/* the pool goes on with new connections */
	cr_assert_eq(gwsim_ctl(&g, "POST", "/behaviour", "{\"raw\":null}",
	    NULL), 0);
	cr_assert_eq(req_unix(&b, "GET", "/hostile/b", key_all, NULL, 0, &r),
	    0);
	cr_assert_eq(r.status, 404, "%ld %s", r.status, r.body);
	resp_free(&r);
	cr_assert_eq(reused_after_raw(&g, &nraw), 0,
	    "a connection was used after a broken answer");
	cr_assert_eq(nraw, 3);
	brokerd_stop(&b);
	gwsim_stop(&g);
}

/* An unusual but lawful answer: passed on whole. */
static void
lawful(const char *rawcase)
{
	struct gwsim	 g;
	struct brokerd	 b;
	struct resp	 r;

	start(&g, &b, rawcase);
	cr_assert_eq(req_unix(&b, "GET", "/hostile/a", key_all, NULL, 0, &r),
	    0);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	cr_assert_eq(r.len, 12);
	cr_assert_str_eq(r.body, "{\"raw\":true}");
	resp_free(&r);
	cr_assert_eq(req_unix(&b, "POST", "/hostile/order", key_json,
	    "{\"side\":\"BUY\"}", 14, &r), 0);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	cr_assert_str_eq(r.body, "{\"raw\":true}");
	resp_free(&r);
	brokerd_stop(&b);
	gwsim_stop(&g);
}

Test(hostile, content_length_and_transfer_encoding, .timeout = 60)
{
	broken("cl_te");
}

Test(hostile, body_shorter_than_content_length, .timeout = 60)
{
	broken("short_body");
}

Test(hostile, header_line_without_colon, .timeout = 60)
{
	broken("no_colon");
}

Test(hostile, ten_megabyte_header, .timeout = 60)
{
	broken("huge_header");
}

Test(hostile, interim_1xx_answers_are_skipped, .timeout = 60)
{
	lawful("interim");
}

Test(hostile, close_delimited_body_is_whole, .timeout = 60)
{
	lawful("close_delimited");
}
