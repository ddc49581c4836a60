/*
 * libFuzzer: the fan-out fed outside input.  The input is split at
 * newlines; each line's first byte says what it is: 'W' raw bytes into
 * the server side of a WebSocket whose messages are subscriber 0's,
 * 'A'..'D' a message of subscriber 0..3, 'G' a Gateway message, 'T' the
 * subscribers drained, 'Q' an SSE query, 'X' subscriber 3 leaving, 'R' a
 * replay and a renewal.  Whatever they hold, a message brokerd sends the
 * Gateway must stay one line of printable text starting with a known
 * topic, and no subscriber queue may grow past max_buffer_bytes unseen.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"
#include "ws.h"
#include "fuzz_feed.h"

static struct stream	*st;
static struct stream_sub *subs[4];
static int		 closed[4];

static ssize_t
feed_send(void *ctx, const void *b, size_t len, int more)
{
	(void)ctx;
	(void)b;
	(void)more;
	return ((ssize_t)len);
}

static void
on_msg(void *arg, int opcode, const char *m, size_t len, uint16_t code)
{
	(void)arg;
	(void)code;
	if (opcode == WS_OP_TEXT && subs[0] != NULL)
		stream_sub_message(st, subs[0], m, len, 0);
}

static void
on_close(void *owner, struct stream_sub *s, uint16_t code, const char *why)
{
	(void)s;
	(void)why;
	if (code != 1008)
		abort();
	closed[(intptr_t)owner] = 1;
}

static int
drop(void *arg, const struct stream_out *o)
{
	(void)arg;
	(void)o;
	return (0);
}

static void
check_up(void)
{
	static const char *const ok[] = { "smd+", "umd+", "sor+", "uor+",
	    "str+", "utr+", "spl+", "upl+", "ssd+", "usd+", "sld+", "uld+",
	    "smh+", "umh+", "sbd+", "ubd+" };
	struct buf	 b;
	size_t		 i;
	int		 of;

	buf_init(&b);
	while (stream_up_take(st, &b, &of) == 1) {
		for (i = 0; i < b.len; i++)
			if ((unsigned char)b.data[i] < 0x20)
				abort();
		for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
			if (strncmp(b.data, ok[i], 4) == 0)
				break;
		if (i == sizeof(ok) / sizeof(ok[0]))
			abort();
	}
	buf_free(&b);
}

static void
line(const uint8_t *p, size_t len)
{
	struct stream_gw_info gi;
	struct stream_cmd *c;
	struct ws_transport t = { fuzz_feed_recv, feed_send, NULL };
	struct fuzz_feed f = { p + 1, len - 1, 0 };
	struct ws	*ws;
	const char	*why;
	char		*q;
	size_t		 n, i;

	switch (p[0]) {
	case 'W':
		t.ctx = &f;
		if ((ws = ws_new(0, 4096, &t, on_msg, NULL)) != NULL) {
			while (ws_read(ws) == 0 && f.len > 0)
				;
			ws_free(ws);
		}
		break;
	case 'A': case 'B': case 'C': case 'D':
		if (subs[p[0] - 'A'] != NULL)
			stream_sub_message(st, subs[p[0] - 'A'],
			    (const char *)p + 1, len - 1, len * 97);
		break;
	case 'G':
		stream_gateway_message(st, (const char *)p + 1, len - 1, 0,
		    &gi);
		break;
	case 'T':
		for (i = 0; i < 4; i++)
			if (subs[i] != NULL)
				stream_sub_take(st, subs[i], 1000, drop, NULL);
		break;
	case 'Q':
		if ((q = strndup((const char *)p + 1, len - 1)) == NULL)
			break;
		if (stream_parse_query(q, &c, &n, &why) == 0) {
			for (i = 0; i < n; i++) {
				if (subs[1] != NULL)
					stream_sub_command(st, subs[1], &c[i],
					    0);
				stream_cmd_free(&c[i]);
			}
			free(c);
		}
		free(q);
		break;
	case 'X':
		if (subs[3] != NULL)
			stream_sub_free(st, subs[3]);
		subs[3] = NULL;
		break;
	case 'R':
		stream_replay(st, len);
		stream_renew(st, len * 1000, 1);
		break;
	}
	check_up();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stream_limits	 l;
	struct stream_callbacks	 cb = { NULL, on_close };
	const uint8_t		*nl;
	intptr_t		 i;

	stream_limits_default(&l);
	l.max_conids = 8;
	l.conflate_bytes = 512;
	l.max_buffer_bytes = 4096;
	st = stream_new(&l, &cb);
	for (i = 0; i < 4; i++) {
		closed[i] = 0;
		subs[i] = stream_sub_new(st, i == 2 ? STREAM_ENC_SSE :
		    STREAM_ENC_WS, (void *)i);
	}
	while (size > 0) {
		nl = memchr(data, '\n', size);
		if (nl == NULL)
			nl = data + size;
		if (nl > data)
			line(data, nl - data);
		size -= nl - data + (nl < data + size);
		data = nl + 1;
	}
	for (i = 0; i < 4; i++)
		if (subs[i] != NULL && !closed[i] &&
		    stream_sub_queued(subs[i]) > l.max_buffer_bytes)
			abort();
	stream_free(st);
	return (0);
}
