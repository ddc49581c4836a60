/*
 * upstream.c's pure pieces: the cookie jar, the request head written to
 * the Gateway, the colon hex of fingerprints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "brokerd.h"

#define NOW	((time_t)1764050710)	/* 2025-11-25T06:05:10Z */

static struct upstream_jar jar;
static struct buf out;

static void
setup(void)
{
	upstream_jar_init(&jar);
	buf_init(&out);
}

static void
teardown(void)
{
	upstream_jar_free(&jar);
	buf_free(&out);
}

static const char *
jar_text(void)
{
	buf_reset(&out);
	cr_assert_eq(upstream_jar_format(&jar, &out), 0);
	return (out.data != NULL ? out.data : "");
}

TestSuite(jar, .init = setup, .fini = teardown);

Test(jar, keeps_name_value_only)
{
	cr_assert_eq(upstream_jar_absorb(&jar,
	    "x-sess-uuid=0.1234.5678; Path=/; Secure; HttpOnly", NOW), 0);
	cr_assert_str_eq(jar_text(), "x-sess-uuid=0.1234.5678");
}

Test(jar, empty_jar_formats_to_nothing)
{
	cr_assert_str_eq(jar_text(), "");
}

Test(jar, replaced_by_name_order_kept)
{
	cr_assert_eq(upstream_jar_absorb(&jar, "a=1", NOW), 0);
	cr_assert_eq(upstream_jar_absorb(&jar, "b=2; Path=/", NOW), 0);
	cr_assert_eq(upstream_jar_absorb(&jar, " a = 3 ; Secure", NOW), 0);
	cr_assert_str_eq(jar_text(), "a=3; b=2");
	cr_assert_eq(jar.n, 2);
}

Test(jar, names_are_case_sensitive)
{
	cr_assert_eq(upstream_jar_absorb(&jar, "A=1", NOW), 0);
	cr_assert_eq(upstream_jar_absorb(&jar, "a=2", NOW), 0);
	cr_assert_str_eq(jar_text(), "A=1; a=2");
}

Test(jar, max_age_zero_or_negative_removes)
{
	cr_assert_eq(upstream_jar_absorb(&jar, "a=1", NOW), 0);
	cr_assert_eq(upstream_jar_absorb(&jar, "b=2", NOW), 0);
	cr_assert_eq(upstream_jar_absorb(&jar, "a=; Max-Age=0", NOW), 0);
	cr_assert_str_eq(jar_text(), "b=2");
	cr_assert_eq(upstream_jar_absorb(&jar, "b=x; max-age=-1", NOW), 0);
	cr_assert_str_eq(jar_text(), "");
	/* Removing what is not there is fine and adds nothing. */
	cr_assert_eq(upstream_jar_absorb(&jar, "c=3; Max-Age=0", NOW), 0);
	cr_assert_eq(jar.n, 0);
}

Test(jar, expires_in_the_past_removes)
{
	cr_assert_eq(upstream_jar_absorb(&jar, "a=1", NOW), 0);
	cr_assert_eq(upstream_jar_absorb(&jar,
	    "a=deleted; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/", NOW),
	    0);
	cr_assert_eq(jar.n, 0);
	cr_assert_eq(upstream_jar_absorb(&jar, "b=1", NOW), 0);
	cr_assert_eq(upstream_jar_absorb(&jar,
	    "b=2; expires=Tuesday, 25-Nov-25 06:05:09 GMT", NOW), 0);
	cr_assert_eq(jar.n, 0);
}

Test(jar, expires_in_the_future_keeps)
{
	cr_assert_eq(upstream_jar_absorb(&jar,
	    "a=1; Expires=Wed, 26 Nov 2025 06:05:10 GMT", NOW), 0);
	cr_assert_str_eq(jar_text(), "a=1");
	/* An unreadable date is ignored, the cookie kept. */
	cr_assert_eq(upstream_jar_absorb(&jar, "b=2; Expires=soon", NOW), 0);
	cr_assert_str_eq(jar_text(), "a=1; b=2");
}

Test(jar, max_age_wins_over_expires)
{
	cr_assert_eq(upstream_jar_absorb(&jar,
	    "a=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=60", NOW), 0);
	cr_assert_str_eq(jar_text(), "a=1");
	cr_assert_eq(upstream_jar_absorb(&jar,
	    "a=1; Max-Age=0; Expires=Wed, 26 Nov 2025 06:05:10 GMT", NOW), 0);
	cr_assert_eq(jar.n, 0);
}

Test(jar, malformed_or_dangerous_refused)
{
	static const char *const bad[] = {
		"novalue",
		"=1",
		"a b=1",
		"a=1\r\nX-Injected: yes",
		"a=1\nb",
		"a=x y",
		"a\x01=1",
		"",
		";a=1",
	};
	size_t	 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(upstream_jar_absorb(&jar, bad[i], NOW), -1,
		    "accepted: %s", bad[i]);
	cr_assert_eq(jar.n, 0);
}

Test(jar, empty_value_kept)
{
	cr_assert_eq(upstream_jar_absorb(&jar, "a=", NOW), 0);
	cr_assert_str_eq(jar_text(), "a=");
}

Test(jar, bounded)
{
	char	 c[32];
	int	 i, refused = 0;

	for (i = 0; i < 200; i++) {
		snprintf(c, sizeof(c), "c%d=%d", i, i);
		if (upstream_jar_absorb(&jar, c, NOW) == -1)
			refused++;
	}
	cr_assert(jar.n < 200 && refused == 200 - (int)jar.n);
	/* A known name is still replaced when full. */
	cr_assert_eq(upstream_jar_absorb(&jar, "c0=new", NOW), 0);
	cr_assert(strncmp(jar_text(), "c0=new; ", 8) == 0);
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

/* ------------------------------------------------------------- hex */

Test(hex, colon_upper_case)
{
	unsigned char	 b[32];
	char		 s[96];
	size_t		 i;

	for (i = 0; i < sizeof(b); i++)
		b[i] = (unsigned char)(i * 8 + 10);
	upstream_hex_colon(b, sizeof(b), s, sizeof(s));
	cr_assert_eq(strlen(s), 95);
	cr_assert(strncmp(s, "0A:12:1A:22:", 12) == 0);
	cr_assert_str_eq(s + 93, "02");
	upstream_hex_colon((const unsigned char *)"\xff\x00", 2, s, sizeof(s));
	cr_assert_str_eq(s, "FF:00");
}

Test(hex, never_overflows)
{
	unsigned char	 b[32] = { 0xab, 0xcd, 0xef };
	char		 s[8];

	memset(s, 'x', sizeof(s));
	upstream_hex_colon(b, sizeof(b), s, sizeof(s));
	cr_assert_str_eq(s, "AB:CD");
	upstream_hex_colon(b, sizeof(b), s, 1);
	cr_assert_str_eq(s, "");
	upstream_hex_colon(b, 0, s, sizeof(s));
	cr_assert_str_eq(s, "");
}
