/*
 * stream*.c with times passed in: reference counting of upstream
 * subscriptions, union of fields, cached values, filtering, conflation,
 * the 1008 verdict, limits, the rate limit, replay, renewal, history ids
 * and the SSE query.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"

static int	 closed;
static uint16_t	 closed_code;

static void
on_close(void *owner, struct stream_sub *s, uint16_t code, const char *why)
{
	(void)owner;
	(void)s;
	(void)why;
	closed++;
	closed_code = code;
}

static struct stream *
hub(size_t conflate, size_t maxbuf)
{
	struct stream_limits	 l;
	struct stream_callbacks	 cb = { NULL, on_close };

	stream_limits_default(&l);
	if (conflate)
		l.conflate_bytes = conflate;
	if (maxbuf)
		l.max_buffer_bytes = maxbuf;
	closed = 0;
	return (stream_new(&l, &cb));
}

static void
say(struct stream *st, struct stream_sub *s, const char *m, uint64_t now)
{
	cr_assert_eq(stream_sub_message(st, s, m, strlen(m), now), 0);
}

static void
gw(struct stream *st, const char *m)
{
	struct stream_gw_info gi;

	cr_assert_eq(stream_gateway_message(st, m, strlen(m), 0, &gi), 0);
}

/* Every message queued upstream, joined by '\n'. */
static char *
ups(struct stream *st)
{
	static struct buf all;
	struct buf	 b;
	int		 of;

	buf_reset(&all);
	buf_puts(&all, "");
	buf_init(&b);
	while (stream_up_take(st, &b, &of) == 1) {
		buf_append(&all, b.data, b.len);
		buf_puts(&all, "\n");
	}
	buf_free(&b);
	return (all.data);
}

static int
collect(void *arg, const struct stream_out *o)
{
	struct buf	*b = arg;

	buf_append(b, o->head, o->hlen);
	buf_append(b, o->json, o->len);
	buf_append(b, o->tail, o->tlen);
	return (buf_puts(b, "\n"));
}

/* Everything queued for a subscriber, one message a line. */
static char *
got(struct stream *st, struct stream_sub *s)
{
	static struct buf b;

	buf_reset(&b);
	buf_puts(&b, "");
	while (stream_sub_take(st, s, 1 << 20, collect, &b) > 0)
		;
	return (b.data);
}

static int
count(const char *hay, const char *needle)
{
	int	 n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay++;
	}
	return (n);
}

Test(stream, hundred_subscribers_ten_conids_ten_upstream)
{
	struct stream	*st = hub(0, 0);
	struct stream_sub *s[100];
	char		 m[64];
	int		 i;

	for (i = 0; i < 100; i++) {
		s[i] = stream_sub_new(st, STREAM_ENC_WS, NULL);
		snprintf(m, sizeof(m), "smd+%d+{\"fields\":[\"31\"]}",
		    1000 + i % 10);
		say(st, s[i], m, 0);
	}
	cr_assert_eq(count(ups(st), "smd+"), 10);
	cr_assert_eq(stream_nconids(st), 10);
	gw(st, "{\"topic\":\"smd+1003\",\"conid\":1003,\"31\":\"1.5\"}");
	for (i = 0; i < 100; i++)
		cr_assert_eq(count(got(st, s[i]), "\"31\":\"1.5\""),
		    i % 10 == 3 ? 1 : 0);
	/* leaving: umd only when the last of a conid goes */
	for (i = 0; i < 100; i++)
		if (i % 10 == 3 && i != 93)
			stream_sub_free(st, s[i]);
	cr_assert_eq(count(ups(st), "umd+"), 0);
	stream_sub_free(st, s[93]);
	cr_assert_str_eq(ups(st), "umd+1003+{}\n");
	stream_free(st);
}

Test(stream, union_grows_and_each_gets_its_fields)
{
	struct stream	*st = hub(0, 0);
	struct stream_sub *a = stream_sub_new(st, STREAM_ENC_WS, NULL);
	struct stream_sub *b = stream_sub_new(st, STREAM_ENC_WS, NULL);
	const char	*ga;

	say(st, a, "smd+265598+{\"fields\":[\"31\"]}", 0);
	cr_assert_str_eq(ups(st), "smd+265598+{\"fields\":[\"31\"]}\n");
	say(st, b, "smd+265598+{\"fields\":[\"31\",\"84\"]}", 0);
	cr_assert_str_eq(ups(st), "smd+265598+{\"fields\":[\"31\",\"84\"]}\n");
	say(st, a, "smd+265598+{\"fields\":[\"31\"]}", 0);	/* no growth */
	cr_assert_str_eq(ups(st), "");
	gw(st, "{\"topic\":\"smd+265598\",\"conid\":265598,\"31\":\"10\","
	    "\"84\":\"9\",\"_updated\":5}");
	ga = got(st, a);
	cr_assert(strstr(ga, "\"31\":\"10\"") && !strstr(ga, "\"84\""),
	    "%s", ga);
	cr_assert(strstr(ga, "\"_updated\":5") && strstr(ga, "\"conid\""));
	cr_assert(strstr(got(st, b), "\"84\":\"9\""));
	/* an update of only a field a did not ask for: nothing for a */
	gw(st, "{\"topic\":\"smd+265598\",\"conid\":265598,\"84\":\"8\"}");
	cr_assert_str_eq(got(st, a), "");
	stream_free(st);
}

/*
 * The union changing without growing still asks the Gateway for what it
 * lacks: a subscriber trading 31 for 84, one leaving and another asking a
 * third field; repeating a subscription asks nothing.
 */
Test(stream, union_changed_not_grown_goes_up)
{
	struct stream	*st = hub(0, 0);
	struct stream_sub *a = stream_sub_new(st, STREAM_ENC_WS, NULL);
	struct stream_sub *b = stream_sub_new(st, STREAM_ENC_WS, NULL);
	struct stream_sub *c = stream_sub_new(st, STREAM_ENC_WS, NULL);

	say(st, a, "smd+265598+{\"fields\":[\"31\"]}", 0);
	cr_assert_str_eq(ups(st), "smd+265598+{\"fields\":[\"31\"]}\n");
	say(st, a, "smd+265598+{\"fields\":[\"31\"]}", 0);
	cr_assert_str_eq(ups(st), "");
	say(st, a, "smd+265598+{\"fields\":[\"84\"]}", 0);
	cr_assert_str_eq(ups(st), "smd+265598+{\"fields\":[\"84\"]}\n");
	say(st, b, "smd+265598+{\"fields\":[\"31\"]}", 0);
	cr_assert_str_eq(ups(st), "smd+265598+{\"fields\":[\"84\",\"31\"]}\n");
	say(st, a, "umd+265598+{}", 0);
	say(st, c, "smd+265598+{\"fields\":[\"86\"]}", 0);
	cr_assert_str_eq(ups(st), "smd+265598+{\"fields\":[\"31\",\"86\"]}\n");
	stream_free(st);
}

/*
 * An smd that picked an exchange (CONID@EXCH) ends with the umd a client
 * builds from the same conid: the Node client sends umd+CONID@EXCH+{}.
 */
Test(stream, umd_with_the_exchange_of_its_smd)
{
	struct stream	*st = hub(0, 0);
	struct stream_sub *a = stream_sub_new(st, STREAM_ENC_WS, NULL);

	say(st, a, "smd+265598@SMART+{\"fields\":[\"31\"]}", 0);
	cr_assert_str_eq(ups(st),
	    "smd+265598@SMART+{\"fields\":[\"31\"]}\n");
	say(st, a, "umd+265598@SMART+{}", 0);
	cr_assert_str_eq(ups(st), "umd+265598+{}\n");
	cr_assert_str_eq(got(st, a), "");
	cr_assert_eq(stream_nconids(st), 0);
	stream_free(st);
}

Test(stream, late_subscriber_gets_cached_values_first)
{
	struct stream	*st = hub(0, 0);
	struct stream_sub *a = stream_sub_new(st, STREAM_ENC_WS, NULL);
	struct stream_sub *b;
	const char	*gb;

	say(st, a, "smd+1+{\"fields\":[\"31\",\"84\",\"86\"]}", 0);
	gw(st, "{\"topic\":\"smd+1\",\"conid\":1,\"31\":\"1\",\"84\":\"2\"}");
	gw(st, "{\"topic\":\"smd+1\",\"conid\":1,\"31\":\"3\"}");
	b = stream_sub_new(st, STREAM_ENC_WS, NULL);
	say(st, b, "smd+1+{\"fields\":[\"31\",\"84\"]}", 0);
	cr_assert_str_eq(ups(st),
	    "smd+1+{\"fields\":[\"31\",\"84\",\"86\"]}\n");
	gb = got(st, b);
	cr_assert_eq(count(gb, "\n"), 1, "%s", gb);
	cr_assert(strstr(gb, "\"31\":\"3\"") && strstr(gb, "\"84\":\"2\"") &&
	    strstr(gb, "\"topic\":\"smd+1\""), "%s", gb);
	stream_free(st);
}

/* A stalled subscriber: past conflate_bytes each field's newest only. */
Test(stream, conflation_never_older_after_newer)
{
	struct stream	*st = hub(200, 1 << 20);
	struct stream_sub *slow = stream_sub_new(st, STREAM_ENC_WS, NULL);
	struct stream_sub *fast = stream_sub_new(st, STREAM_ENC_WS, NULL);
	char		 m[128], *g, *p;
	int		 i, last, v;

	say(st, slow, "smd+7+{\"fields\":[\"31\",\"84\"]}", 0);
	say(st, fast, "smd+7+{\"fields\":[\"31\",\"84\"]}", 0);
	for (i = 1; i <= 500; i++) {
		snprintf(m, sizeof(m), "{\"topic\":\"smd+7\",\"conid\":7,"
		    "\"%s\":\"%d\"}", i % 3 ? "31" : "84", i);
		gw(st, m);
		cr_assert_eq(count(got(st, fast), "\"conid\""), 1,
		    "the fast subscriber missed tick %d", i);
	}
	cr_assert_lt(stream_sub_queued(slow), 400);
	cr_assert_gt(stream_counters(st)->conflated, 400);
	g = got(st, slow);
	for (last = 0, p = g; (p = strstr(p, "\"31\":\"")) != NULL; p++) {
		v = atoi(p + 6);
		cr_assert_gt(v, last, "31 went back from %d to %d", last, v);
		last = v;
	}
	cr_assert_eq(last, 500, "the newest 31 is not the last: %d", last);
	cr_assert(strstr(g, "\"84\":\"498\""));
	cr_assert_eq(closed, 0);
	stream_free(st);
}

/*
 * P&L past conflate_bytes: spl's args hold one object per account, and a
 * message that names one account must not wipe the other's newest value.
 */
Test(stream, conflation_keeps_each_account_of_spl)
{
	struct stream	*st = hub(200, 1 << 20);
	struct stream_sub *s = stream_sub_new(st, STREAM_ENC_WS, NULL);
	char		 m[160], *g;
	int		 i;

	say(st, s, "spl+{}", 0);
	ups(st);
	for (i = 1; i <= 20; i++) {
		snprintf(m, sizeof(m), "{\"topic\":\"spl\",\"args\":"
		    "{\"DU%d.Core\":{\"dpl\":%d,\"upl\":%d}}}",
		    i % 2 + 1, i, i);
		gw(st, m);
	}
	cr_assert_gt(stream_counters(st)->conflated, 0);
	g = got(st, s);
	cr_assert(strstr(g, "\"DU1.Core\":{\"dpl\":20,\"upl\":20}"), "%s", g);
	cr_assert(strstr(g, "\"DU2.Core\":{\"dpl\":19,\"upl\":19}"), "%s", g);
	stream_free(st);
}

/*
 * A subscriber that reads a little now and then, its queue going over
 * conflate_bytes and back under: a tick queued while under it must not
 * be overtaken by a later tick merged into an older queued message.
 */
Test(stream, conflation_around_the_threshold_never_older)
{
	struct stream	*st = hub(200, 1 << 20);
	struct stream_sub *s = stream_sub_new(st, STREAM_ENC_WS, NULL);
	struct buf	 b;
	char		 m[128], *p;
	int		 i, last, v;

	buf_init(&b);
	buf_puts(&b, "");
	say(st, s, "smd+7+{\"fields\":[\"31\",\"84\"]}", 0);
	for (i = 1; i <= 600; i++) {
		snprintf(m, sizeof(m), "{\"topic\":\"smd+7\",\"conid\":7,"
		    "\"%s\":\"%d\"}", i % 4 ? "31" : "84", i);
		gw(st, m);
		/* one message taken every other tick, two every 7th */
		if (i % 2 == 0)
			cr_assert_eq(stream_sub_take(st, s, 1, collect, &b), 1);
		if (i % 7 == 0)
			(void)stream_sub_take(st, s, 1, collect, &b);
	}
	while (stream_sub_take(st, s, 1 << 20, collect, &b) > 0)
		;
	cr_assert_gt(stream_counters(st)->conflated, 0);
	for (last = 0, p = b.data; (p = strstr(p, "\"31\":\"")) != NULL;
	    p++) {
		v = atoi(p + 6);
		cr_assert_gt(v, last, "31 went back from %d to %d", last, v);
		last = v;
	}
	cr_assert_eq(last, 599, "the newest 31 is not the last: %d", last);
	buf_free(&b);
	stream_free(st);
}

Test(stream, orders_never_dropped_verdict_1008)
{
	struct stream	*st = hub(100, 2000);
	struct stream_sub *slow = stream_sub_new(st, STREAM_ENC_WS, NULL);
	struct stream_sub *fast = stream_sub_new(st, STREAM_ENC_WS, NULL);
	int		 i, of;
	struct buf	 b;

	say(st, slow, "sor+{}", 0);
	say(st, fast, "sor+{}", 0);
	buf_init(&b);
	cr_assert_eq(stream_up_take(st, &b, &of), 1);
	cr_assert_str_eq(b.data, "sor+{}");
	cr_assert_eq(of, 1, "sor must follow orders?force=true");
	buf_free(&b);
	for (i = 0; i < 40 && closed == 0; i++) {
		gw(st, "{\"topic\":\"sor\",\"args\":[{\"orderId\":1,"
		    "\"status\":\"Submitted\"}]}");
		got(st, fast);
	}
	cr_assert_eq(closed, 1);
	cr_assert_eq(closed_code, 1008);
	cr_assert_eq(stream_counters(st)->conflated, 0);
	cr_assert_eq(stream_counters(st)->dropped, 1);
	stream_free(st);
}

/*
 * One sor is shared: a subscriber's filters must not narrow it for the
 * others, who would miss orders without a word.
 */
Test(stream, sor_filters_not_shared)
{
	struct stream	*st = hub(0, 0);
	struct stream_sub *a = stream_sub_new(st, STREAM_ENC_WS, NULL);
	struct stream_sub *b = stream_sub_new(st, STREAM_ENC_WS, NULL);

	say(st, a, "sor+{\"filters\":[\"filled\"]}", 0);
	say(st, b, "sor+{}", 0);
	cr_assert_str_eq(ups(st), "sor+{}\n");
	gw(st, "{\"topic\":\"sor\",\"args\":[{\"orderId\":1,"
	    "\"status\":\"Cancelled\"}]}");
	cr_assert(strstr(got(st, b), "Cancelled"));
	stream_sub_free(st, b);
	stream_sub_free(st, a);
	cr_assert_str_eq(ups(st), "uor+{}\n");
	stream_free(st);
}

Test(stream, limits_answered_with_system_error)
{
	struct stream_limits	 l;
	struct stream		*st;
	struct stream_sub	*s;

	stream_limits_default(&l);
	l.max_subscribers = 1;
	l.max_conids = 1;
	st = stream_new(&l, NULL);
	s = stream_sub_new(st, STREAM_ENC_WS, NULL);
	cr_assert(s != NULL);
	cr_assert_null(stream_sub_new(st, STREAM_ENC_WS, NULL));
	say(st, s, "smd+1+{\"fields\":[\"31\"]}", 0);
	ups(st);
	say(st, s, "smd+2+{\"fields\":[\"31\"]}", 0);
	cr_assert_str_eq(ups(st), "");
	cr_assert(strstr(got(st, s), "\"error\":\"too many conids"));
	say(st, s, "xyz+1", 0);
	say(st, s, "smd+1+{not json}", 0);
	say(st, s, "smd+1;rm+{\"fields\":[\"31\"]}", 0);
	cr_assert_str_eq(ups(st), "");
	cr_assert_eq(count(got(st, s), "\"topic\":\"system\",\"error\""), 3);
	stream_free(st);
}

Test(stream, twenty_per_second)
{
	struct stream	*st = hub(0, 0);
	struct stream_sub *s = stream_sub_new(st, STREAM_ENC_WS, NULL);
	int		 i;

	for (i = 0; i < 20; i++)
		say(st, s, i % 2 ? "upl+{}" : "spl+{}", 100 + i);
	cr_assert_eq(count(ups(st), "pl+"), 20);
	say(st, s, "spl+{}", 999);
	cr_assert_str_eq(ups(st), "");
	cr_assert(strstr(got(st, s), "more than 20"));
	say(st, s, "tic", 999);		/* keep-alives are not counted */
	cr_assert(strstr(got(st, s), "\"topic\":\"tic\""));
	say(st, s, "spl+{}", 1100);	/* a second after the first */
	cr_assert_str_eq(ups(st), "spl+{}\n");
	stream_free(st);
}

/* The smd commands of one /stream query are one request: not counted. */
Test(stream, sse_query_not_rate_limited)
{
	struct stream	*st = hub(0, 0);
	struct stream_sub *s = stream_sub_new(st, STREAM_ENC_SSE, NULL);
	struct stream_cmd *c;
	struct buf	 q;
	const char	*why;
	size_t		 n, i;

	buf_init(&q);
	for (i = 0; i < 30; i++)
		cr_assert_eq(buf_printf(&q, "%ssmd=%zu:31", i ? "&" : "",
		    1000 + i), 0);
	cr_assert_eq(stream_parse_query(q.data, &c, &n, &why), 0);
	cr_assert_eq(n, 30);
	for (i = 0; i < n; i++) {
		cr_assert_eq(stream_sub_command(st, s, &c[i], 100), 0);
		stream_cmd_free(&c[i]);
	}
	free(c);
	cr_assert_eq(count(ups(st), "smd+"), 30);
	cr_assert_null(strstr(got(st, s), "more than 20"));
	buf_free(&q);
	stream_free(st);
}

Test(stream, replay_and_renewal)
{
	struct stream	*st = hub(0, 0);
	struct stream_sub *s = stream_sub_new(st, STREAM_ENC_WS, NULL);
	char		*u;

	say(st, s, "smd+1+{\"fields\":[\"31\"]}", 0);
	say(st, s, "smd+2+{\"fields\":[\"84\"]}", 300000);
	say(st, s, "str+{}", 0);
	say(st, s, "ssd+DU1+{}", 0);
	ups(st);
	cr_assert_eq(stream_renew(st, 539999, 540000), 0);
	cr_assert_eq(stream_renew(st, 540000, 540000), 1);
	cr_assert_str_eq(ups(st), "smd+1+{\"fields\":[\"31\"]}\n");
	cr_assert_eq(stream_renew(st, 600000, 540000), 0);
	cr_assert_eq(stream_replay(st, 700000), 4);
	u = ups(st);
	cr_assert(strstr(u, "smd+1+") && strstr(u, "smd+2+") &&
	    strstr(u, "str+{}\n") && strstr(u, "ssd+DU1+{}\n"), "%s", u);
	stream_free(st);
}

Test(stream, history_ids_per_subscriber)
{
	struct stream	*st = hub(0, 0);
	struct stream_sub *a = stream_sub_new(st, STREAM_ENC_WS, NULL);
	struct stream_sub *b = stream_sub_new(st, STREAM_ENC_WS, NULL);
	int		 i;

	say(st, a, "smh+1+{\"period\":\"1d\"}", 0);
	say(st, b, "smh+1+{\"period\":\"2d\"}", 0);
	cr_assert_eq(count(ups(st), "smh+1+"), 2);
	gw(st, "{\"topic\":\"smh+1\",\"serverId\":\"77\",\"data\":[]}");
	gw(st, "{\"topic\":\"smh+1\",\"serverId\":\"88\",\"data\":[]}");
	gw(st, "{\"topic\":\"smh+1\",\"serverId\":\"77\",\"data\":[1]}");
	cr_assert_eq(count(got(st, a), "\"77\""), 2);
	cr_assert_eq(count(got(st, b), "\"88\""), 1);
	say(st, b, "umh+77", 0);	/* not b's */
	cr_assert_str_eq(ups(st), "");
	say(st, a, "umh+77", 0);
	cr_assert_str_eq(ups(st), "umh+77\n");
	for (i = 0; i < 4; i++)
		say(st, a, "smh+2+{}", 0);
	cr_assert_eq(count(ups(st), "smh+"), 4);
	say(st, a, "smh+3+{}", 0);	/* the sixth */
	cr_assert_str_eq(ups(st), "");
	stream_sub_free(st, b);
	cr_assert_str_eq(ups(st), "umh+88\n");
	stream_free(st);
}

/*
 * A subscriber that leaves before the Gateway named its history stream:
 * the stream still ends upstream once its server id comes, and until
 * then it counts among the five the Gateway allows.
 */
Test(stream, history_left_before_its_server_id)
{
	struct stream	*st = hub(0, 0);
	struct stream_sub *a = stream_sub_new(st, STREAM_ENC_WS, NULL);
	struct stream_sub *b = stream_sub_new(st, STREAM_ENC_WS, NULL);
	int		 i;

	say(st, a, "smh+1+{\"period\":\"1d\"}", 0);
	for (i = 0; i < 4; i++)
		say(st, b, "smh+2+{}", 0);
	cr_assert_eq(count(ups(st), "smh+"), 5);
	stream_sub_free(st, a);
	cr_assert_str_eq(ups(st), "");
	say(st, b, "smh+3+{}", 0);	/* the Gateway still has five */
	cr_assert_str_eq(ups(st), "");
	cr_assert(strstr(got(st, b), "too many history"));
	gw(st, "{\"topic\":\"smh+1\",\"serverId\":\"55\",\"data\":[]}");
	cr_assert_str_eq(ups(st), "umh+55\n");
	cr_assert_str_eq(got(st, b), "");
	say(st, b, "smh+3+{}", 0);
	cr_assert_str_eq(ups(st), "smh+3+{}\n");
	stream_free(st);
}

Test(stream, everyone_gets_system_and_sse_encoding)
{
	struct stream	*st = hub(0, 0);
	struct stream_sub *w = stream_sub_new(st, STREAM_ENC_WS, NULL);
	struct stream_sub *e = stream_sub_new(st, STREAM_ENC_SSE, NULL);
	struct stream_gw_info gi;
	const char	*m = "{\"topic\":\"sts\","
	    "\"args\":{\"authenticated\":false}}";

	cr_assert_eq(stream_gateway_message(st, m, strlen(m), 0, &gi), 0);
	cr_assert(gi.sts && gi.authenticated == 0);
	cr_assert_str_eq(got(st, w), "{\"topic\":\"sts\",\"args\":"
	    "{\"authenticated\":false}}\n");
	cr_assert_str_eq(got(st, e), "event: sts\ndata: {\"topic\":\"sts\","
	    "\"args\":{\"authenticated\":false}}\n\n\n");
	stream_free(st);
}

Test(stream, sse_query)
{
	struct stream_cmd *c;
	size_t		 n, i;
	const char	*why;

	cr_assert_eq(stream_parse_query("smd=265598:31,84&smd=8314:31&sor=1"
	    "&str=1&spl=1&ssd=DU123&sld=DU123", &c, &n, &why), 0);
	cr_assert_eq(n, 7);
	cr_assert_eq(c[0].op, STREAM_OP_SMD);
	cr_assert_str_eq(c[0].conid, "265598");
	cr_assert_eq(c[0].nfields, 2);
	cr_assert_str_eq(c[0].fields[1], "84");
	cr_assert_eq(c[3].op, STREAM_OP_STR);
	cr_assert_str_eq(c[5].acct, "DU123");
	for (i = 0; i < n; i++)
		stream_cmd_free(&c[i]);
	free(c);
	cr_assert_eq(stream_parse_query("smd=1%3A31%2C84", &c, &n, &why), 0);
	cr_assert_eq(c[0].nfields, 2);
	free(c);
	cr_assert_eq(stream_parse_query("smd=1", &c, &n, &why), -1);
	cr_assert_eq(stream_parse_query("smd=x:31", &c, &n, &why), -1);
	cr_assert_eq(stream_parse_query("evil=1", &c, &n, &why), -1);
	cr_assert_eq(stream_parse_query("", &c, &n, &why), -1);
}

/*
 * A topic becomes the SSE "event:" line: one holding a newline would
 * forge events for every SSE subscriber.  Such a message is dropped and
 * counted, for everyone (a WebSocket subscriber too).
 */
Test(stream, control_byte_in_topic_dropped)
{
	struct stream	*st = hub(0, 0);
	struct stream_sub *w = stream_sub_new(st, STREAM_ENC_WS, NULL);
	struct stream_sub *e = stream_sub_new(st, STREAM_ENC_SSE, NULL);
	struct stream_gw_info gi;
	const char	*bad[] = {
		"{\"topic\":\"sor+\\nevent: str\\ndata: {}\\n\\nx\",\"a\":1}",
		"{\"topic\":\"sor+\\r\",\"a\":1}",
		"{\"topic\":\"system\\u0001\",\"a\":1}",
		"{\"topic\":\"smd+1@X\\n\",\"31\":\"1\"}",
	};
	size_t		 i;
	int		 flagged = 0;

	say(st, w, "sor+{}", 0);
	say(st, e, "sor+{}", 0);
	say(st, e, "smd+1+{\"fields\":[\"31\"]}", 0);
	(void)ups(st);
	(void)got(st, e);
	(void)got(st, w);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(stream_gateway_message(st, bad[i],
		    strlen(bad[i]), 0, &gi), 0);
		flagged += gi.bad_topic;
	}
	cr_assert_str_eq(got(st, e), "");
	cr_assert_str_eq(got(st, w), "");
	cr_assert_eq(flagged, 4);
	cr_assert_eq(stream_counters(st)->bad_topics, 4);
	gw(st, "{\"topic\":\"sor+{}\",\"a\":1}");
	cr_assert_str_eq(got(st, e), "event: sor+{}\ndata: "
	    "{\"topic\":\"sor+{}\",\"a\":1}\n\n\n");
	stream_free(st);
}

/*
 * The Gateway socket closed (idle close, drop): a history stream left
 * before its server id came ends with it, and no longer holds one of the
 * five places nor shows among the active ones.
 */
Test(stream, history_orphan_freed_when_the_socket_closes)
{
	struct stream	*st = hub(0, 0);
	struct stream_sub *a = stream_sub_new(st, STREAM_ENC_WS, NULL);
	struct stream_sub *b;
	struct buf	 act;
	int		 i;

	for (i = 0; i < 5; i++)
		say(st, a, "smh+1+{}", 0);
	stream_sub_free(st, a);
	cr_assert(stream_idle(st));
	buf_init(&act);
	cr_assert_eq(stream_active_json(st, &act), 0);
	cr_assert(strstr(act.data, "smh+1") != NULL);
	stream_up_forget(st);	/* what streamup does at the idle close */
	buf_reset(&act);
	cr_assert_eq(stream_active_json(st, &act), 0);
	cr_assert_str_eq(act.data, "[]");
	buf_free(&act);
	b = stream_sub_new(st, STREAM_ENC_WS, NULL);
	for (i = 0; i < 5; i++)
		say(st, b, "smh+2+{}", 0);
	cr_assert_eq(count(ups(st), "smh+2+"), 5);
	cr_assert_str_eq(got(st, b), "");
	stream_free(st);
}

/*
 * A history request the Gateway answers with an error (no server id) is
 * over: its owner gets the error and its place among the five is free;
 * one whose subscriber left and that the Gateway never names is given up
 * at the second renewal.  Either held a place while the socket lived.
 */
Test(stream, history_unnamed_error_or_silence_frees_its_place)
{
	struct stream	*st = hub(0, 0);
	struct stream_sub *a = stream_sub_new(st, STREAM_ENC_WS, NULL);
	struct stream_sub *b = stream_sub_new(st, STREAM_ENC_WS, NULL);
	int		 i;

	for (i = 0; i < 5; i++)
		say(st, a, "smh+9+{}", 0);
	stream_sub_free(st, a);
	cr_assert_eq(count(ups(st), "smh+9+"), 5);
	for (i = 0; i < 4; i++)
		gw(st, "{\"topic\":\"smh+9\",\"error\":\"no such conid\"}");
	say(st, b, "smh+2+{}", 0);
	cr_assert_str_eq(ups(st), "smh+2+{}\n", "the errors freed four places");
	gw(st, "{\"topic\":\"smh+2\",\"error\":\"bad period\"}");
	cr_assert(strstr(got(st, b), "bad period"), "its owner is told");
	for (i = 3; i <= 6; i++) {
		char	 m[32];

		snprintf(m, sizeof(m), "smh+%d+{}", i);
		say(st, b, m, 0);
	}
	cr_assert_eq(count(ups(st), "smh+"), 4, "four beside the last smh+9");
	say(st, b, "smh+7+{}", 0);
	cr_assert_str_eq(ups(st), "", "the last smh+9 still holds a place");
	stream_renew(st, 60000, UINT64_MAX);
	say(st, b, "smh+7+{}", 0);
	cr_assert_str_eq(ups(st), "", "given up at the second renewal only");
	stream_renew(st, 120000, UINT64_MAX);
	say(st, b, "smh+7+{}", 0);
	cr_assert_str_eq(ups(st), "smh+7+{}\n");
	stream_free(st);
}

/*
 * Per-account topics are bounded for the whole hub: past
 * max_account_topics a new one is answered with a system error and goes
 * nowhere; joining one already active, or a topic without an account,
 * still works, and a place freed is taken again.
 */
Test(stream, account_topics_bounded)
{
	struct stream_limits	 l;
	struct stream		*st;
	struct stream_sub	*a, *b;
	char			 m[64];
	int			 i;

	stream_limits_default(&l);
	l.max_account_topics = 3;
	l.max_cmds_per_s = 0;
	st = stream_new(&l, NULL);
	a = stream_sub_new(st, STREAM_ENC_WS, NULL);
	b = stream_sub_new(st, STREAM_ENC_WS, NULL);
	say(st, a, "ssd+DU1+{}", 0);
	say(st, a, "sld+DU1+{}", 0);
	say(st, a, "sbd+DU1+265598+SMART", 0);
	cr_assert_eq(count(ups(st), "+DU1"), 3);
	for (i = 2; i < 1000; i++) {
		snprintf(m, sizeof(m), "ssd+DU%d+{}", i);
		say(st, a, m, 0);
	}
	cr_assert_str_eq(ups(st), "");
	cr_assert_eq(count(got(st, a), "too many account topics"), 998);
	say(st, b, "ssd+DU1+{}", 0);	/* active: shared */
	say(st, b, "sor+{}", 0);
	cr_assert_str_eq(got(st, b), "");
	cr_assert_str_eq(ups(st), "sor+{}\n");
	say(st, a, "usd+DU1", 0);
	cr_assert_str_eq(ups(st), "");	/* b still has it */
	say(st, b, "usd+DU1", 0);
	cr_assert_str_eq(ups(st), "usd+DU1\n");
	say(st, b, "ssd+DU7+{}", 0);
	cr_assert_str_eq(ups(st), "ssd+DU7+{}\n");
	cr_assert_str_eq(got(st, b), "");
	stream_free(st);
}
