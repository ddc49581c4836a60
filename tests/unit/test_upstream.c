/*
 * upstream.c's pure pieces: the request head written to the Gateway.
 * The cookie jar is tested in test_jar.c, fingerprints in test_tls.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "brokerd.h"

static struct buf out;

static void
setup(void)
{
	buf_init(&out);
}

static void
teardown(void)
{
	buf_free(&out);
}

/* ------------------------------------------------------ request head */

static struct upstream_req req;

static void
req_setup(void)
{
	setup();
	upstream_req_init(&req);
}

static void
req_teardown(void)
{
	upstream_req_free(&req);
	teardown();
}

static void
set(const char *method, const char *target)
{
	snprintf(req.method, sizeof(req.method), "%s", method);
	buf_reset(&req.target);
	cr_assert_eq(buf_puts(&req.target, target), 0);
}

TestSuite(format, .init = req_setup, .fini = req_teardown);

Test(format, get_minimal)
{
	set("GET", "/v1/api/iserver/accounts?x=1");
	cr_assert_eq(upstream_format_request(&out, &req, "127.0.0.1", "5000",
	    NULL), 0);
	cr_assert_str_eq(out.data,
	    "GET /v1/api/iserver/accounts?x=1 HTTP/1.1\r\n"
	    "Host: 127.0.0.1:5000\r\n"
	    "User-Agent: brokerd/" BROKERD_VERSION "\r\n"
	    "Accept: */*\r\n"
	    "Connection: keep-alive\r\n"
	    "\r\n");
}

Test(format, empty_post_says_length_zero)
{
	static const char *const m[] = { "POST", "PUT", "PATCH", "DELETE" };
	size_t	 i;

	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		set(m[i], "/v1/api/tickle");
		buf_reset(&out);
		cr_assert_eq(upstream_format_request(&out, &req, "127.0.0.1",
		    "5000", ""), 0);
		cr_assert(strstr(out.data, "\r\nContent-Length: 0\r\n") !=
		    NULL, "%s", m[i]);
		cr_assert(strstr(out.data, "Cookie") == NULL);
	}
}

Test(format, body_type_accept_cookie)
{
	static const char body[] = "{\"orders\":[]}\0binary";

	set("POST", "/v1/api/iserver/account/DU1/orders");
	cr_assert_eq(buf_append(&req.body, body, sizeof(body)), 0);
	req.content_type = strdup("application/json");
	req.accept = strdup("application/json");
	cr_assert_eq(upstream_format_request(&out, &req, "localhost", "5000",
	    "x-sess-uuid=1; a=2"), 0);
	cr_assert(strstr(out.data, "\r\nContent-Type: application/json\r\n"));
	cr_assert(strstr(out.data, "\r\nAccept: application/json\r\n"));
	cr_assert(strstr(out.data, "\r\nContent-Length: 21\r\n"));
	cr_assert(strstr(out.data, "\r\nCookie: x-sess-uuid=1; a=2\r\n"));
	cr_assert(strstr(out.data, "\r\nHost: localhost:5000\r\n"));
	cr_assert_eq(out.len, strstr(out.data, "\r\n\r\n") - out.data + 4 +
	    sizeof(body));
	cr_assert_eq(memcmp(out.data + out.len - sizeof(body), body,
	    sizeof(body)), 0);
}

Test(format, get_with_body_says_length)
{
	set("GET", "/x");
	cr_assert_eq(buf_puts(&req.body, "abc"), 0);
	cr_assert_eq(upstream_format_request(&out, &req, "h", "1", NULL), 0);
	cr_assert(strstr(out.data, "\r\nContent-Length: 3\r\n"));
}

/* Every byte of a POST's head, and a DELETE's without body or cookie. */
Test(format, exact_bytes)
{
	set("POST", "/v1/x");
	req.content_type = strdup("application/json");
	cr_assert_eq(buf_puts(&req.body, "{\"a\":1}"), 0);
	cr_assert_eq(upstream_format_request(&out, &req, "::1", "5000", "s=1"),
	    0);
	cr_assert_str_eq(out.data, "POST /v1/x HTTP/1.1\r\n"
	    "Host: [::1]:5000\r\n"
	    "User-Agent: brokerd/" BROKERD_VERSION "\r\n"
	    "Accept: */*\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: 7\r\n"
	    "Cookie: s=1\r\n"
	    "Connection: keep-alive\r\n\r\n{\"a\":1}");
	buf_reset(&out);
	set("DELETE", "/v1/x");
	buf_reset(&req.body);
	free(req.content_type);
	req.content_type = NULL;
	req.accept = strdup("application/json");
	cr_assert_eq(upstream_format_request(&out, &req, "h", "1", ""), 0);
	cr_assert_str_eq(out.data, "DELETE /v1/x HTTP/1.1\r\nHost: h:1\r\n"
	    "User-Agent: brokerd/" BROKERD_VERSION "\r\n"
	    "Accept: application/json\r\nContent-Length: 0\r\n"
	    "Connection: keep-alive\r\n\r\n");
	buf_reset(&out);
	cr_assert_eq(upstream_format_request(&out, &req, "h", "1", "a\nb"),
	    -1, "a cookie may not bend the head");
	cr_assert_eq(out.len, 0);
}

Test(format, ipv6_host_in_brackets)
{
	set("GET", "/");
	cr_assert_eq(upstream_format_request(&out, &req, "::1", "5000", NULL),
	    0);
	cr_assert(strstr(out.data, "\r\nHost: [::1]:5000\r\n"));
}

Test(format, nothing_bends_the_head)
{
	static const char *const targets[] = {
		"/a b", "/a\r\nX: 1", "", "a", "/\x7f", "/\t",
	};
	size_t	 i;

	for (i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		set("GET", targets[i]);
		buf_reset(&out);
		cr_assert_eq(upstream_format_request(&out, &req, "h", "1",
		    NULL), -1, "target %zu", i);
		cr_assert_eq(out.len, 0);
	}
	set("GE T", "/");
	cr_assert_eq(upstream_format_request(&out, &req, "h", "1", NULL), -1);
	set("", "/");
	cr_assert_eq(upstream_format_request(&out, &req, "h", "1", NULL), -1);
	set("GET", "/");
	req.content_type = strdup("text/plain\r\nX-Evil: 1");
	cr_assert_eq(upstream_format_request(&out, &req, "h", "1", NULL), -1);
	free(req.content_type);
	req.content_type = NULL;
	req.accept = strdup("a\nb");
	cr_assert_eq(upstream_format_request(&out, &req, "h", "1", NULL), -1);
	free(req.accept);
	req.accept = NULL;
	cr_assert_eq(upstream_format_request(&out, &req, "h", "1", "a=1\r\n"),
	    -1);
	cr_assert_eq(out.len, 0);
	cr_assert_eq(upstream_format_request(&out, &req, "h", "1", "a=1"), 0);
}

Test(format, appends_to_existing)
{
	cr_assert_eq(buf_puts(&out, "prefix"), 0);
	set("GET", "/");
	cr_assert_eq(upstream_format_request(&out, &req, "h", "1", NULL), 0);
	cr_assert(strncmp(out.data, "prefixGET / HTTP/1.1\r\n", 22) == 0);
	set("GET", "/ x");
	cr_assert_eq(upstream_format_request(&out, &req, "h", "1", NULL), -1);
	cr_assert(strncmp(out.data, "prefixGET", 9) == 0, "kept on failure");
}

Test(req, free_frees_strings_and_nulls_them)
{
	struct upstream_req r;

	upstream_req_init(&r);
	r.content_type = strdup("a/b");
	r.accept = strdup("c/d");
	cr_assert_eq(buf_puts(&r.target, "/x"), 0);
	upstream_req_free(&r);
	cr_assert_null(r.content_type);
	cr_assert_null(r.accept);
	cr_assert_eq(r.target.len, 0);
	upstream_req_free(&r);		/* twice is harmless */
}
