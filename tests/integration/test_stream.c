/*
 * Streamed answers, black-box (also run against the ASan + UBSan build):
 * a chunked answer passed on exactly, a client that leaves in the middle
 * of a stream (reading or paused), a Gateway that resets mid-body.  The
 * timing and memory checks live in tests/node/stream.test.mjs.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

static struct gwsim	 gw;
static struct brokerd	 bd;

static void
start(void)
{
	cr_assert_eq(gwsim_start(&gw, "self"), 0);
	cr_assert_eq(gwsim_ctl(&gw, "POST", "/behaviour",
	    "{\"rate_per_s\":0}", NULL), 0);
	cr_assert_eq(brokerd_start(&bd, &gw, "limits:\n  gateway_rate: off\n"
	    "  queue_ms: 5000\n"), 0);
}

static void
stop(void)
{
	brokerd_stop(&bd);
	gwsim_stop(&gw);
}

static void
behaviour(const char *json)
{
	cr_assert_eq(gwsim_ctl(&gw, "POST", "/behaviour", json, NULL), 0);
}

/* Byte i of a /__blob answer is i % 251. */
static int
blob_ok(const char *p, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] != i % 251)
			return (0);
	return (1);
}

/* Decode a chunked body in place; its length, or -1 if malformed. */
static ssize_t
unchunk(char *p, size_t len)
{
	size_t	 in = 0, out = 0, n;
	char	*end;

	for (;;) {
		n = strtoul(p + in, &end, 16);
		if (end == p + in || (size_t)(end - p) + 2 > len ||
		    strncmp(end, "\r\n", 2) != 0)
			return (-1);
		in = (size_t)(end - p) + 2;
		if (n == 0)
			return (in + 2 == len && strncmp(p + in, "\r\n", 2) == 0 ?
			    (ssize_t)out : -1);
		if (in + n + 2 > len || strncmp(p + in + n, "\r\n", 2) != 0)
			return (-1);
		memmove(p + out, p + in, n);
		out += n;
		in += n + 2;
	}
}

static void
send_get(int fd, const char *target)
{
	char	 req[512];
	int	 n;

	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n"
	    "X-Bridge-Key: %s\r\nCache-Control: no-cache\r\n"
	    "Connection: close\r\n\r\n", target, TEST_KEY);
	cr_assert(n > 0 && (size_t)n < sizeof(req));
	cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
}

/* Read up to want bytes (or until EOF / timeout); bytes read. */
static size_t
read_some(int fd, char *out, size_t want, int timeout_ms)
{
	struct pollfd	 p = { .fd = fd, .events = POLLIN };
	size_t		 got = 0;
	ssize_t		 n;
	double		 end = mono_s() + timeout_ms / 1000.0;

	while (got < want && mono_s() < end) {
		if (poll(&p, 1, 50) <= 0)
			continue;
		if ((n = recv(fd, out + got, want - got, 0)) <= 0)
			break;
		got += (size_t)n;
	}
	return (got);
}

static void
assert_healthy(void)
{
	struct resp	 r;
	const char	*nc[] = { "X-Bridge-Key: " TEST_KEY,
			    "Cache-Control: no-cache", NULL };

	cr_assert_eq(kill(bd.pid, 0), 0, "brokerd is gone");
	cr_assert_eq(req_unix(&bd, "GET", "/health", NULL, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	cr_assert_eq(req_unix(&bd, "GET", "/trsrv/__blob?bytes=300000", nc,
	    NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.len, 300000);
	cr_assert(blob_ok(r.body, r.len));
	resp_free(&r);
}

TestSuite(stream, .init = start, .fini = stop, .timeout = 60);

Test(stream, chunked_passes_exactly)
{
	const size_t	 n = 2000000, cap = n + 65536;
	char		*out, *body;
	ssize_t		 len, blen;

	static const char req[] = "GET /trsrv/__blob?bytes=2000000&chunked=1 "
	    "HTTP/1.1\r\nHost: localhost\r\nX-Bridge-Key: " TEST_KEY "\r\n"
	    "Cache-Control: no-cache\r\nConnection: close\r\n\r\n";

	cr_assert_not_null(out = malloc(cap));
	len = raw_unix(bd.sock, req, sizeof(req) - 1, out, cap - 1, 10000);
	cr_assert_gt(len, 0);
	out[len] = '\0';
	cr_assert(strncmp(out, "HTTP/1.1 200 ", 13) == 0, "%.80s", out);
	cr_assert_not_null(body = strstr(out, "\r\n\r\n"));
	*body = '\0';
	body += 4;
	cr_assert_not_null(strstr(out, "Transfer-Encoding: chunked"), "%s", out);
	cr_assert_null(strstr(out, "Content-Length"), "%s", out);
	blen = unchunk(body, (size_t)(out + len - body));
	cr_assert_eq(blen, (ssize_t)n, "decoded %zd", blen);
	cr_assert(blob_ok(body, n));
	free(out);
}

/* A client that reads part of a streamed answer, then leaves. */
Test(stream, client_leaves_mid_stream)
{
	char	*buf;
	int	 fd;

	behaviour("{\"drip_ms\":5,\"paths\":[\"/trsrv/__blob\"]}");
	cr_assert_not_null(buf = malloc(1 << 20));
	cr_assert((fd = connect_unix(bd.sock)) >= 0);
	send_get(fd, "/trsrv/__blob?bytes=4194304");
	cr_assert_gt(read_some(fd, buf, 200000, 5000), 100000,
	    "part of the answer arrives");
	close(fd);
	behaviour("{\"drip_ms\":0,\"paths\":null}");
	sleep_ms(100);
	assert_healthy();
	free(buf);
}

/* A client that reads nothing (the Gateway is paused), then leaves. */
Test(stream, paused_client_leaves)
{
	char	 buf[4096];
	int	 fd, i;

	for (i = 0; i < 3; i++) {
		cr_assert((fd = connect_unix(bd.sock)) >= 0);
		send_get(fd, "/trsrv/__blob?bytes=8388608");
		cr_assert_gt(read_some(fd, buf, sizeof(buf), 5000), 0);
		sleep_ms(300);
		close(fd);
	}
	sleep_ms(100);
	assert_healthy();
}

Test(stream, reset_mid_body_closes_the_client)
{
	char	*buf;
	size_t	 got;
	int	 fd;

	behaviour("{\"reset_mid_body\":true,\"paths\":[\"/trsrv/__blob\"]}");
	cr_assert_not_null(buf = malloc(2 << 20));
	cr_assert((fd = connect_unix(bd.sock)) >= 0);
	send_get(fd, "/trsrv/__blob?bytes=1048576");
	got = read_some(fd, buf, 2 << 20, 5000);
	close(fd);
	behaviour("{\"reset_mid_body\":false,\"paths\":null}");
	cr_assert(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
	cr_assert_lt(got, 1048576, "a short answer (%zu bytes)", got);
	cr_assert(brokerd_log_has(&bd, "broke off after"));
	assert_healthy();
	free(buf);
}
