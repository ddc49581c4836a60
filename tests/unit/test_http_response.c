/*
 * http_response.c: the Gateway answer reader.  Every answer is fed whole
 * and one byte at a time, and both must agree.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brokerd.h"

#define MAXB	1048576

struct routcome {
	enum http_feed	 r;
	int		 error;
	int		 started;
	struct http_response *resp;
	size_t		 used;
};

static struct routcome
rfeed(const char *s, size_t len, size_t step, size_t max, int head, int eof)
{
	struct http_resp_reader rr;
	struct routcome	 o;
	size_t		 off = 0, n, used;

	memset(&o, 0, sizeof(o));
	http_resp_reader_init(&rr, max, head);
	o.r = HTTP_FEED_MORE;
	while (off < len) {
		n = step == 0 ? len - off : step;
		if (n > len - off)
			n = len - off;
		o.r = http_resp_reader_feed(&rr, s + off, n, &used);
		off += used;
		if (o.r != HTTP_FEED_MORE)
			break;
	}
	if (o.r == HTTP_FEED_MORE && eof)
		o.r = http_resp_reader_eof(&rr);
	o.used = off;
	o.error = rr.error;
	o.started = rr.started;
	if (o.r == HTTP_FEED_DONE)
		o.resp = http_resp_reader_take(&rr);
	http_resp_reader_free(&rr);
	return (o);
}

static struct http_response *
rexpect_ok(const char *s, int head, int eof)
{
	struct routcome	 a, b;

	a = rfeed(s, strlen(s), 0, MAXB, head, eof);
	b = rfeed(s, strlen(s), 1, MAXB, head, eof);
	cr_assert_eq(a.r, HTTP_FEED_DONE, "error %d", a.error);
	cr_assert_eq(b.r, HTTP_FEED_DONE);
	cr_assert_eq(a.resp->body.len, b.resp->body.len);
	cr_assert_eq(a.resp->status, b.resp->status);
	cr_assert_eq(a.resp->nset_cookies, b.resp->nset_cookies);
	http_response_free(b.resp);
	return (a.resp);
}

Test(http_response, content_length)
{
	struct http_response *r;

	r = rexpect_ok("HTTP/1.1 200 OK\r\nContent-Type: application/json;"
	    " charset=utf-8\r\nContent-Length: 15\r\n\r\n{\"authent\":true}",
	    0, 0);
	cr_assert_eq(r->status, 200);
	cr_assert_str_eq(r->content_type, "application/json; charset=utf-8");
	cr_assert_eq(r->body.len, 15);
	cr_assert_eq(r->content_length, 15);
	cr_assert_eq(r->keep_alive, 1);
	cr_assert_eq(r->retry_after_s, 0);
	http_response_free(r);
}

Test(http_response, chunked)
{
	struct http_response *r;

	r = rexpect_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "3\r\n[1,\r\n2;x=y\r\n2]\r\n0\r\nX-T: 1\r\n\r\n", 0, 0);
	cr_assert_str_eq(r->body.data, "[1,2]");
	cr_assert_eq(r->content_length, -1);
	cr_assert_null(r->content_type);
	cr_assert_eq(r->keep_alive, 1);
	http_response_free(r);
}

Test(http_response, close_delimited)
{
	struct routcome	 o;
	struct http_response *r;
	static const char in[] = "HTTP/1.1 200 OK\r\n\r\nuntil the end";

	r = rexpect_ok(in, 0, 1);
	cr_assert_str_eq(r->body.data, "until the end");
	cr_assert_eq(r->keep_alive, 0);
	http_response_free(r);

	/* Without the close it is not complete. */
	o = rfeed(in, sizeof(in) - 1, 0, MAXB, 0, 0);
	cr_assert_eq(o.r, HTTP_FEED_MORE);
	cr_assert_eq(o.started, 1);
}

Test(http_response, eof_too_early)
{
	struct routcome	 o;
	struct http_resp_reader rr;
	static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
	    "short";

	o = rfeed(in, sizeof(in) - 1, 0, MAXB, 0, 1);
	cr_assert_eq(o.r, HTTP_FEED_ERROR);
	cr_assert_eq(o.error, 1);
	o = rfeed("HTTP/1.1 200 OK\r\nContent-", 26, 0, MAXB, 0, 1);
	cr_assert_eq(o.r, HTTP_FEED_ERROR);

	/* Closed before any byte: not started (a pooled connection died). */
	http_resp_reader_init(&rr, MAXB, 0);
	cr_assert_eq(http_resp_reader_eof(&rr), HTTP_FEED_ERROR);
	cr_assert_eq(rr.started, 0);
	http_resp_reader_free(&rr);
}

Test(http_response, set_cookies_collected)
{
	struct http_response *r;

	r = rexpect_ok("HTTP/1.1 200 OK\r\nSet-Cookie: SBID=abc; Path=/\r\n"
	    "Content-Length: 0\r\nset-cookie: x-sess-uuid=0.1; Secure\r\n"
	    "SET-COOKIE: JSESSIONID=zz\r\n\r\n", 0, 0);
	cr_assert_eq(r->nset_cookies, 3);
	cr_assert_str_eq(r->set_cookies[0].value, "SBID=abc; Path=/");
	cr_assert_str_eq(r->set_cookies[1].value, "x-sess-uuid=0.1; Secure");
	cr_assert_str_eq(r->set_cookies[2].value, "JSESSIONID=zz");
	cr_assert_eq(r->body.len, 0);
	http_response_free(r);
}

Test(http_response, retry_after)
{
	struct http_response *r;
	char		 in[256], date[64];
	time_t		 t;
	struct tm	 tm;

	r = rexpect_ok("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 120\r\n"
	    "Content-Length: 0\r\n\r\n", 0, 0);
	cr_assert_eq(r->status, 429);
	cr_assert_eq(r->retry_after_s, 120);
	http_response_free(r);

	t = time(NULL) + 300;
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	snprintf(in, sizeof(in), "HTTP/1.1 503 x\r\nRetry-After: %s\r\n"
	    "Content-Length: 0\r\n\r\n", date);
	r = rexpect_ok(in, 0, 0);
	cr_assert_geq(r->retry_after_s, 295);
	cr_assert_leq(r->retry_after_s, 300);
	http_response_free(r);

	/* A date in the past: at least 1 s. */
	r = rexpect_ok("HTTP/1.1 429 x\r\nRetry-After: Sun, 06 Nov 1994 "
	    "08:49:37 GMT\r\nContent-Length: 0\r\n\r\n", 0, 0);
	cr_assert_eq(r->retry_after_s, 1);
	http_response_free(r);

	r = rexpect_ok("HTTP/1.1 429 x\r\nRetry-After: soon\r\n"
	    "Content-Length: 0\r\n\r\n", 0, 0);
	cr_assert_eq(r->retry_after_s, 0);
	http_response_free(r);
}

Test(http_response, interim_skipped)
{
	struct http_response *r;

	r = rexpect_ok("HTTP/1.1 100 Continue\r\n\r\n"
	    "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
	    "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}", 0, 0);
	cr_assert_eq(r->status, 201);
	cr_assert_str_eq(r->body.data, "{}");
	http_response_free(r);
}

Test(http_response, no_body_answers)
{
	struct http_response *r;
	struct routcome	 o;
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n"
	    "\r\n";

	r = rexpect_ok(head, 1, 0);
	cr_assert_eq(r->body.len, 0);
	cr_assert_eq(r->keep_alive, 1);
	http_response_free(r);

	r = rexpect_ok("HTTP/1.1 204 No Content\r\n\r\n", 0, 0);
	cr_assert_eq(r->status, 204);
	http_response_free(r);
	r = rexpect_ok("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
	    0, 0);
	cr_assert_eq(r->status, 304);
	http_response_free(r);

	/* A GET's answer with that head is still waiting for its body. */
	o = rfeed(head, sizeof(head) - 1, 0, MAXB, 0, 0);
	cr_assert_eq(o.r, HTTP_FEED_MORE);
}

Test(http_response, too_large)
{
	struct routcome	 o;
	struct buf	 b;
	int		 i;

	o = rfeed("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", 39, 0, 10, 0,
	    0);
	cr_assert_eq(o.r, HTTP_FEED_ERROR);
	cr_assert_eq(o.error, 2);

	buf_init(&b);
	buf_puts(&b, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (i = 0; i < 5; i++)
		buf_puts(&b, "4\r\nabcd\r\n");
	buf_puts(&b, "0\r\n\r\n");
	o = rfeed(b.data, b.len, 0, 19, 0, 0);
	cr_assert_eq(o.r, HTTP_FEED_ERROR);
	cr_assert_eq(o.error, 2);
	o = rfeed(b.data, b.len, 3, 20, 0, 0);
	cr_assert_eq(o.r, HTTP_FEED_DONE);
	http_response_free(o.resp);

	o = rfeed("HTTP/1.1 200 OK\r\n\r\n0123456789ab", 31, 0, 10, 0, 1);
	cr_assert_eq(o.r, HTTP_FEED_ERROR);
	cr_assert_eq(o.error, 2);
	buf_free(&b);
}

Test(http_response, malformed)
{
	static const char *const bad[] = {
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n"
		    "\r\nhello!",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"SSH-2.0-OpenSSH_9.2\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
		    "Connection: upgrade\r\n\r\n",
	};
	struct routcome	 o;
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = rfeed(bad[i], strlen(bad[i]), 0, MAXB, 0, 1);
		cr_assert_eq(o.r, HTTP_FEED_ERROR, "case %zu", i);
		cr_assert_eq(o.error, 1, "case %zu", i);
		o = rfeed(bad[i], strlen(bad[i]), 1, MAXB, 0, 1);
		cr_assert_eq(o.r, HTTP_FEED_ERROR, "case %zu bytewise", i);
	}
}

Test(http_response, connection_close)
{
	struct http_response *r;

	r = rexpect_ok("HTTP/1.1 200 OK\r\nConnection: close\r\n"
	    "Content-Length: 2\r\n\r\nok", 0, 0);
	cr_assert_eq(r->keep_alive, 0);
	http_response_free(r);
	r = rexpect_ok("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0);
	cr_assert_eq(r->keep_alive, 0);
	http_response_free(r);
}

Test(http_response, reader_reusable)
{
	static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
	    "HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nb";
	struct http_resp_reader rr;
	struct http_response *r;
	size_t		 used, off;

	http_resp_reader_init(&rr, MAXB, 0);
	cr_assert_eq(http_resp_reader_feed(&rr, in, sizeof(in) - 1, &used),
	    HTTP_FEED_DONE);
	off = used;
	r = http_resp_reader_take(&rr);
	cr_assert_eq(r->status, 200);
	http_response_free(r);
	cr_assert_eq(rr.started, 0);
	cr_assert_eq(http_resp_reader_feed(&rr, in + off, sizeof(in) - 1 - off,
	    &used), HTTP_FEED_DONE);
	cr_assert_eq(off + used, sizeof(in) - 1);
	r = http_resp_reader_take(&rr);
	cr_assert_eq(r->status, 404);
	cr_assert_str_eq(r->body.data, "b");
	http_response_free(r);
	http_resp_reader_free(&rr);
}

/*
 * One reader for every answer of a connection (http_resp_reader_next):
 * the mode of the request changes between answers, and only the fields
 * read are taken, by their whole name, whatever the feed's cuts.
 */
Test(http_response, next_answer_same_reader)
{
	static const char a1[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	    "Content-Type: text/plain\r\n\r\n";
	static const char a2[] = "HTTP/1.1 429 Too Many\r\n"
	    "X-Content-Type: a/b\r\nContent-Type-Options: nosniff\r\n"
	    "Set-Cookie-Extension-Field-Name: no=1\r\n"
	    "Retry-After: 7\r\nContent-Type: application/json\r\n"
	    "Set-Cookie: SBID=1\r\nContent-Length: 2\r\n\r\n{}";
	struct http_resp_reader rr;
	struct http_response *r;
	size_t		 used, off, step;

	for (step = 1; step <= sizeof(a2); step += 6) {
		http_resp_reader_init(&rr, MAXB, 1);
		cr_assert_eq(http_resp_reader_feed(&rr, a1, sizeof(a1) - 1,
		    &used), HTTP_FEED_DONE);
		r = http_resp_reader_take(&rr);
		cr_assert_str_eq(r->content_type, "text/plain");
		cr_assert_eq(r->body.len, 0, "an answer to HEAD");
		http_response_free(r);

		http_resp_reader_next(&rr, MAXB, 0);
		for (off = 0; off < sizeof(a2) - 1; off += used) {
			used = 0;
			if (http_resp_reader_feed(&rr, a2 + off, step <
			    sizeof(a2) - 1 - off ? step : sizeof(a2) - 1 - off,
			    &used) != HTTP_FEED_MORE)
				break;
		}
		r = http_resp_reader_take(&rr);
		cr_assert_not_null(r, "step %zu", step);
		cr_assert_eq(r->status, 429);
		cr_assert_str_eq(r->content_type, "application/json");
		cr_assert_eq(r->retry_after_s, 7);
		cr_assert_eq(r->nset_cookies, 1);
		cr_assert_str_eq(r->set_cookies[0].value, "SBID=1");
		cr_assert_str_eq(r->body.data, "{}");
		http_response_free(r);
		http_resp_reader_free(&rr);
	}
}

/* A response head we write is read back by our own response reader. */
Test(http_response, reads_our_head)
{
	struct buf	 b;
	struct http_response *r;

	buf_init(&b);
	cr_assert_eq(http_response_head(&b, 403, "application/json", 2, 1,
	    NULL), 0);
	buf_puts(&b, "{}");
	r = rexpect_ok(b.data, 0, 0);
	cr_assert_eq(r->status, 403);
	cr_assert_str_eq(r->content_type, "application/json");
	cr_assert_str_eq(r->body.data, "{}");
	http_response_free(r);
	buf_free(&b);
}
