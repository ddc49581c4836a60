/*
 * ws.c and ws_handshake.c through an in-memory transport: a client and a
 * server endpoint joined by two byte pipes, and raw frames written by
 * hand where the edge case is a frame wslay's client would never send.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "ws.h"

struct pipe {
	struct buf	 in;	/* bytes to read */
	struct buf	*out;	/* where writes go */
	int		 eof;
};

struct got {
	int		 n;
	int		 opcode[16];
	char		 msg[16][256];
	size_t		 len[16];
	uint16_t	 code;
};

static ssize_t
mem_recv(void *ctx, void *b, size_t len)
{
	struct pipe	*p = ctx;

	if (p->in.len == 0)
		return (p->eof ? 0 : WS_IO_AGAIN);
	if (len > p->in.len)
		len = p->in.len;
	memcpy(b, p->in.data, len);
	buf_consume(&p->in, len);
	return ((ssize_t)len);
}

static ssize_t
mem_send(void *ctx, const void *b, size_t len, int more)
{
	struct pipe	*p = ctx;

	(void)more;
	if (buf_append(p->out, b, len) == -1)
		return (WS_IO_ERROR);
	return ((ssize_t)len);
}

static void
on_msg(void *arg, int opcode, const char *m, size_t len, uint16_t code)
{
	struct got	*g = arg;

	if (g->n == 16)
		return;
	g->opcode[g->n] = opcode;
	g->len[g->n] = len;
	memcpy(g->msg[g->n], m, len < 255 ? len : 255);
	g->n++;
	if (opcode == WS_OP_CLOSE)
		g->code = code;
}

static struct pipe	 cp, sp;	/* client's and server's inputs */
static struct got	 cg, sg;
static struct ws	*cli, *srv;

static void
setup(void)
{
	struct ws_transport ct = { mem_recv, mem_send, &cp };
	struct ws_transport st = { mem_recv, mem_send, &sp };

	memset(&cp, 0, sizeof(cp));
	memset(&sp, 0, sizeof(sp));
	memset(&cg, 0, sizeof(cg));
	memset(&sg, 0, sizeof(sg));
	buf_init(&cp.in);
	buf_init(&sp.in);
	cp.out = &sp.in;
	sp.out = &cp.in;
	cli = ws_new(1, 1024, &ct, on_msg, &cg);
	srv = ws_new(0, 1024, &st, on_msg, &sg);
	cr_assert(cli != NULL && srv != NULL);
}

static void
teardown(void)
{
	ws_free(cli);
	ws_free(srv);
	buf_free(&cp.in);
	buf_free(&sp.in);
}

/* A client frame written by hand: fin, opcode, masked or not. */
static void
raw_frame(int fin, int opcode, int masked, const char *p, size_t len)
{
	unsigned char	 h[8], key[4] = { 1, 2, 3, 4 }, c;
	size_t		 i;

	h[0] = (fin ? 0x80 : 0) | opcode;
	h[1] = (masked ? 0x80 : 0) | (unsigned char)len;
	cr_assert(len < 126);
	buf_append(&sp.in, h, 2);
	if (masked)
		buf_append(&sp.in, key, 4);
	for (i = 0; i < len; i++) {
		c = (unsigned char)p[i] ^ (masked ? key[i % 4] : 0);
		buf_append(&sp.in, &c, 1);
	}
}

TestSuite(ws, .init = setup, .fini = teardown);

Test(ws, rfc6455_accept_key)
{
	char	 out[WS_ACCEPT_LEN + 1];

	cr_assert_eq(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
	cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Test(ws, text_round_trip_both_ways)
{
	cr_assert_eq(ws_send_text(cli, "smd+1+{}", 8), 0);
	cr_assert_eq(ws_write(cli), 0);
	cr_assert_eq(ws_read(srv), 0);
	cr_assert_eq(sg.n, 1);
	cr_assert_eq(sg.opcode[0], WS_OP_TEXT);
	cr_assert_str_eq(sg.msg[0], "smd+1+{}");
	cr_assert_eq(ws_send_text(srv, "{\"topic\":\"x\"}", 13), 0);
	cr_assert_eq(ws_write(srv), 0);
	cr_assert_eq(ws_read(cli), 0);
	cr_assert_str_eq(cg.msg[0], "{\"topic\":\"x\"}");
}

Test(ws, server_refuses_unmasked_frames_1002)
{
	raw_frame(1, 1, 0, "tic", 3);
	ws_read(srv);
	cr_assert_eq(sg.n, 0, "an unmasked frame was delivered");
	cr_assert_eq(ws_close_code_sent(srv), WS_CLOSE_PROTOCOL);
}

Test(ws, client_refuses_masked_frames)
{
	unsigned char	 h[] = { 0x81, 0x83, 1, 2, 3, 4, 't' ^ 1, 'i' ^ 2,
	    'c' ^ 3 };

	buf_append(&cp.in, h, sizeof(h));
	ws_read(cli);
	cr_assert_eq(cg.n, 0);
	cr_assert_eq(ws_close_code_sent(cli), WS_CLOSE_PROTOCOL);
}

Test(ws, fragments_reassembled_with_a_ping_between)
{
	raw_frame(0, 1, 1, "smd+", 4);
	raw_frame(1, 9, 1, "p", 1);
	raw_frame(0, 0, 1, "265598", 6);
	raw_frame(1, 0, 1, "+{}", 3);
	cr_assert_eq(ws_read(srv), 0);
	cr_assert_eq(sg.n, 2);
	cr_assert_eq(sg.opcode[0], WS_OP_PING);
	cr_assert_str_eq(sg.msg[1], "smd+265598+{}");
	/* the pong went out by itself */
	cr_assert_eq(ws_read(cli), 0);
	cr_assert_eq(cg.n, 1);
	cr_assert_eq(cg.opcode[0], WS_OP_PONG);
	cr_assert_str_eq(cg.msg[0], "p");
}

Test(ws, close_handshake_with_code_and_reason)
{
	cr_assert_eq(ws_close(srv, WS_CLOSE_POLICY, "too slow"), 0);
	cr_assert_eq(ws_write(srv), 0);
	ws_read(cli);
	cr_assert_eq(cg.n, 1);
	cr_assert_eq(cg.opcode[0], WS_OP_CLOSE);
	cr_assert_eq(cg.code, WS_CLOSE_POLICY);
	cr_assert_str_eq(cg.msg[0], "too slow");
	/* the client answered; the server, having both, is done */
	ws_read(srv);
	cr_assert_eq(ws_close_code_received(srv), WS_CLOSE_POLICY);
	cr_assert(ws_done(srv));
}

Test(ws, oversize_message_1009)
{
	char	 big[2000];

	memset(big, 'a', sizeof(big));
	cr_assert_eq(ws_send_text(cli, big, sizeof(big)), 0);
	ws_write(cli);
	ws_read(srv);
	cr_assert_eq(sg.n, 0);
	cr_assert_eq(ws_close_code_sent(srv), WS_CLOSE_TOO_BIG);
}

Test(ws, invalid_utf8_text_1007)
{
	raw_frame(1, 1, 1, "a\xc3\x28", 3);
	ws_read(srv);
	cr_assert_eq(sg.n, 0, "invalid UTF-8 was delivered");
	cr_assert_eq(ws_close_code_sent(srv), WS_CLOSE_BAD_DATA);
}

Test(ws, utf8_rules)
{
	cr_assert(ws_utf8_ok("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
	cr_assert(!ws_utf8_ok("\xc0\xaf", 2));		/* overlong */
	cr_assert(!ws_utf8_ok("\xed\xa0\x80", 3));	/* surrogate */
	cr_assert(!ws_utf8_ok("\xf4\x90\x80\x80", 4));	/* > U+10FFFF */
	cr_assert(!ws_utf8_ok("\xe2\x82", 2));		/* cut short */
}

Test(ws, eof_ends_the_connection)
{
	sp.eof = 1;
	cr_assert_eq(ws_read(srv), -1);
	cr_assert(ws_done(srv));
}

static struct http_request *
upgrade_request(const char *version, const char *key, const char *conn)
{
	struct http_request *r = http_request_new();

	cr_assert_not_null(r);
	snprintf(r->method, sizeof(r->method), "GET");
	r->http_minor = 1;
	http_request_add_header(r, "Host", "x");
	http_request_add_header(r, "Upgrade", "websocket");
	http_request_add_header(r, "Connection", conn);
	if (version != NULL)
		http_request_add_header(r, "Sec-WebSocket-Version", version);
	if (key != NULL)
		http_request_add_header(r, "Sec-WebSocket-Key", key);
	return (r);
}

Test(ws, upgrade_check_and_answer)
{
	struct http_request *r;
	struct buf	 b;
	const char	*why;

	r = upgrade_request("13", "dGhlIHNhbXBsZSBub25jZQ==",
	    "keep-alive, Upgrade");
	cr_assert_eq(ws_upgrade_check(r, &why), 0);
	buf_init(&b);
	cr_assert_eq(ws_upgrade_answer(&b, r), 0);
	cr_assert(strstr(b.data, "HTTP/1.1 101 ") == b.data);
	cr_assert(strstr(b.data, "Sec-WebSocket-Accept: "
	    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
	/* brokerd's client side accepts that very answer */
	size_t used;
	cr_assert_eq(ws_client_answer(b.data, b.len,
	    "dGhlIHNhbXBsZSBub25jZQ==", &used), 0);
	cr_assert_eq(used, b.len);
	cr_assert_eq(ws_client_answer(b.data, b.len,
	    "AAAAAAAAAAAAAAAAAAAAAA==", &used), -1);
	cr_assert_eq(ws_client_answer(b.data, b.len - 1,
	    "dGhlIHNhbXBsZSBub25jZQ==", &used), 1);
	buf_free(&b);
	http_request_free(r);
	r = upgrade_request("8", "dGhlIHNhbXBsZSBub25jZQ==", "Upgrade");
	cr_assert_eq(ws_upgrade_check(r, &why), 426);
	http_request_free(r);
	r = upgrade_request("13", "c2hvcnQ=", "Upgrade");
	cr_assert_eq(ws_upgrade_check(r, &why), 400);
	http_request_free(r);
	r = upgrade_request("13", "dGhlIHNhbXBsZSBub25jZQ==", "keep-alive");
	cr_assert_eq(ws_upgrade_check(r, &why), 400);
	http_request_free(r);
}

/* A 101 whose status line is its only line: refused, not read past. */
Test(ws, client_answer_without_header_lines)
{
	static const char a[] = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
	static const char b[] = "HTTP/1.1 101\r\n\r\n";
	size_t	 used;

	cr_assert_eq(ws_client_answer(a, sizeof(a) - 1,
	    "dGhlIHNhbXBsZSBub25jZQ==", &used), -1);
	cr_assert_eq(ws_client_answer(b, sizeof(b) - 1,
	    "dGhlIHNhbXBsZSBub25jZQ==", &used), -1);
}

/*
 * A NUL ends the value C reads, not the field: "<right key>\0junk" must
 * not pass for the right key; nor a head past 8 KiB that came whole.
 */
Test(ws, client_answer_nul_and_size)
{
	static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
	static const char nul[] = "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\0junk\r\n\r\n";
	const char	*key = "dGhlIHNhbXBsZSBub25jZQ==";
	struct buf	 b;
	size_t		 used;

	cr_assert_eq(ws_client_answer(ok, sizeof(ok) - 1, key, &used), 0);
	cr_assert_eq(ws_client_answer(nul, sizeof(nul) - 1, key, &used), -1);
	buf_init(&b);
	cr_assert_eq(buf_append(&b, ok, sizeof(ok) - 3), 0);
	while (b.len < 9000)
		cr_assert_eq(buf_append(&b, "X-Pad: 0123456789\r\n", 19), 0);
	cr_assert_eq(buf_append(&b, "\r\n", 2), 0);
	cr_assert_eq(ws_client_answer(b.data, b.len, key, &used), -1);
	buf_free(&b);
}

Test(ws, client_request_head)
{
	char		 key[WS_KEY_LEN + 1];
	struct buf	 b;

	cr_assert_eq(ws_client_key(key), 0);
	cr_assert_eq(strlen(key), WS_KEY_LEN);
	buf_init(&b);
	cr_assert_eq(ws_client_request(&b, "127.0.0.1", "5000", "/v1/api/ws",
	    key, "api={\"session\":\"abc\"}", "brokerd/0.1.0"), 0);
	cr_assert(strncmp(b.data, "GET /v1/api/ws HTTP/1.1\r\n"
	    "Host: 127.0.0.1:5000\r\n", 47) == 0);
	cr_assert(strstr(b.data, "Cookie: api={\"session\":\"abc\"}\r\n"));
	cr_assert(strstr(b.data, "Sec-WebSocket-Version: 13\r\n"));
	cr_assert(strstr(b.data, "\r\nUser-Agent: brokerd/0.1.0\r\n"));
	buf_reset(&b);
	cr_assert_eq(ws_client_request(&b, "::1", "5000", "/v1/api/ws", key,
	    "a=b\r\nX: y", "brokerd"), -1);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(ws_client_request(&b, "::1", "5000", "/v1/api/ws", key,
	    "", "brokerd\r\nX: y"), -1);
	cr_assert_eq(b.len, 0);
	buf_free(&b);
}
