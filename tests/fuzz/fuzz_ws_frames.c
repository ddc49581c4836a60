/*
 * libFuzzer: WebSocket frames in, on both sides: brokerd's client side of
 * the Gateway socket (bit 0 of the first byte set) and the server side of
 * a local subscriber.  The second byte says how many bytes each recv
 * gives, as a socket would split them.  Beyond no crash: every message
 * handed up is whole, at most max_msg_bytes, of a known opcode; text and
 * a close reason are UTF-8 (checked here again, by RFC 3629's table); a
 * close code is one a peer may send; and every frame brokerd writes back
 * is masked on the client side and unmasked on the server side.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "brokerd.h"
#include "ws.h"
#include "fuzz_feed.h"

#define MAX_MSG	4096

struct feed {
	struct fuzz_feed in;		/* first: fuzz_feed_recv's ctx */
	struct buf	 out;
};

static ssize_t
feed_send(void *ctx, const void *b, size_t len, int more)
{
	struct feed	*f = ctx;

	(void)more;
	if (buf_append(&f->out, b, len) == -1)
		return (WS_IO_ERROR);
	return ((ssize_t)len);
}

/* RFC 3629: no overlong form, no surrogate, nothing past U+10FFFF. */
static int
utf8(const unsigned char *s, size_t len)
{
	size_t		 i = 0, n, k;
	unsigned long	 c;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			n = 1, c = s[i] & 0x1f;
		else if (s[i] >= 0xe0 && s[i] <= 0xef)
			n = 2, c = s[i] & 0x0f;
		else if (s[i] >= 0xf0 && s[i] <= 0xf4)
			n = 3, c = s[i] & 0x07;
		else
			return (0);
		if (i + n >= len)
			return (0);
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return (0);
			c = c << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 && c < 0x800) || (n == 3 && c < 0x10000) ||
		    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
			return (0);
		i += n + 1;
	}
	return (1);
}

static void
on_msg(void *arg, int opcode, const char *m, size_t len, uint16_t code)
{
	(void)arg;
	if (len > MAX_MSG)
		abort();
	switch (opcode) {
	case WS_OP_TEXT:
		if (!utf8((const unsigned char *)m, len))
			abort();
		break;
	case WS_OP_CLOSE:
		if (!utf8((const unsigned char *)m, len))
			abort();
		if (code != 0 && code != 1000 && code != 1001 &&
		    code != 1002 && code != 1003 &&
		    !(code >= 1007 && code <= 1011) &&
		    !(code >= 3000 && code <= 4999))
			abort();
		break;
	case WS_OP_BINARY:
	case WS_OP_PING:
	case WS_OP_PONG:
		break;
	default:
		abort();
	}
}

/* Every frame written: the mask bit as the side requires. */
static void
check_out(const struct buf *b, int client)
{
	const unsigned char *p = (const unsigned char *)b->data;
	size_t		 off = 0, plen, hlen;

	while (off + 2 <= b->len) {
		if (((p[off + 1] & 0x80) != 0) != client)
			abort();
		plen = p[off + 1] & 0x7f;
		hlen = 2;
		if (plen == 126) {
			if (off + 4 > b->len)
				abort();
			plen = (size_t)p[off + 2] << 8 | p[off + 3];
			hlen = 4;
		} else if (plen == 127)
			abort();	/* brokerd sends nothing that long */
		hlen += client ? 4 : 0;
		off += hlen + plen;
	}
	if (off != b->len)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct feed	 f;
	struct ws_transport t = { fuzz_feed_recv, feed_send, NULL };
	struct ws	*ws;
	int		 client, i;

	if (size < 2)
		return (0);
	client = data[0] & 1;
	f.in.p = data + 2;
	f.in.len = size - 2;
	f.in.step = data[1];		/* 0: as much as asked */
	buf_init(&f.out);
	t.ctx = &f;
	if ((ws = ws_new(client, MAX_MSG, &t, on_msg, NULL)) == NULL)
		goto out;
	for (i = 0; i < 10000 && ws_read(ws) == 0 && f.in.len > 0; i++)
		while (ws_want_write(ws) && ws_write(ws) == 0 &&
		    ws_want_write(ws))
			;
	while (ws_want_write(ws) && ws_write(ws) == 0 && ws_want_write(ws))
		;
	check_out(&f.out, client);
	ws_free(ws);
out:
	buf_free(&f.out);
	return (0);
}
