/*
 * http_write.c: every head brokerd writes (to clients, to the Gateway),
 * and the token and field-value rules they and the readers share.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerd.h"

Test(http_format, reasons)
{
	static const int used[] = { 100, 200, 201, 202, 203, 204, 205, 206,
	    301, 302, 303, 304, 400, 401, 402, 403, 404, 405, 406, 407, 408,
	    409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 423, 425,
	    426, 428, 429, 431, 500, 501, 502, 503, 504 };
	size_t		 i;

	for (i = 0; i < sizeof(used) / sizeof(used[0]); i++) {
		cr_assert_not_null(http_reason(used[i]));
		cr_assert_str_neq(http_reason(used[i]), "Client Error",
		    "%d", used[i]);
		cr_assert_str_neq(http_reason(used[i]), "Server Error",
		    "%d", used[i]);
	}
	cr_assert_str_eq(http_reason(200), "OK");
	cr_assert_str_eq(http_reason(421), "Misdirected Request");
	cr_assert_str_eq(http_reason(423), "Locked");
	cr_assert_str_eq(http_reason(429), "Too Many Requests");
	cr_assert_str_eq(http_reason(431), "Request Header Fields Too Large");
	cr_assert_str_eq(http_reason(504), "Gateway Timeout");
	cr_assert_str_eq(http_reason(599), "Server Error");
}

Test(http_format, response_head)
{
	struct buf	 b;

	buf_init(&b);
	cr_assert_eq(http_response_head(&b, 200, "application/json", 34, 1,
	    NULL), 0);
	cr_assert_str_eq(b.data, "HTTP/1.1 200 OK\r\n"
	    "Content-Type: application/json\r\nContent-Length: 34\r\n"
	    "Connection: keep-alive\r\n\r\n");
	buf_reset(&b);
	cr_assert_eq(http_response_head(&b, 429, "application/json", 0, 0,
	    "Retry-After: 5\r\n"), 0);
	cr_assert_str_eq(b.data, "HTTP/1.1 429 Too Many Requests\r\n"
	    "Content-Type: application/json\r\nContent-Length: 0\r\n"
	    "Connection: close\r\nRetry-After: 5\r\n\r\n");
	buf_reset(&b);
	cr_assert_eq(http_response_head(&b, 100, NULL, 0, 1, NULL), 0);
	cr_assert_str_eq(b.data, "HTTP/1.1 100 Continue\r\n\r\n");
	buf_reset(&b);
	cr_assert_eq(http_response_head(&b, 204, NULL, 0, 1, NULL), 0);
	cr_assert_str_eq(b.data, "HTTP/1.1 204 No Content\r\n"
	    "Connection: keep-alive\r\n\r\n");

	/* Appends; a Content-Type that would split the head is refused. */
	buf_reset(&b);
	buf_puts(&b, "x");
	cr_assert_eq(http_response_head(&b, 200, "text/plain\r\nSet-Cookie: a",
	    0, 1, NULL), -1);
	cr_assert_str_eq(b.data, "x");
	cr_assert_eq(http_response_head(&b, 200, NULL, 0, 1, NULL), 0);
	cr_assert_str_eq(b.data, "xHTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
	    "Connection: keep-alive\r\n\r\n");
	buf_free(&b);
}

/* The head of a streamed answer: chunked, or ended by the close. */
Test(http_format, unframed_heads)
{
	struct http_head h = { .status = 200, .content_type = "text/plain",
	    .framing = HTTP_FRAME_CHUNKED, .keep_alive = 1 };
	struct buf	 b;

	buf_init(&b);
	cr_assert_eq(http_write_head_buf(&b, &h), 0);
	cr_assert_str_eq(b.data, "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
	    "Connection: keep-alive\r\n\r\n");
	buf_reset(&b);
	h.framing = HTTP_FRAME_CLOSE;
	h.keep_alive = 0;
	cr_assert_eq(http_write_head_buf(&b, &h), 0);
	cr_assert_str_eq(b.data, "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain\r\nConnection: close\r\n\r\n");
	/* 204 and 304 carry no framing field of either kind. */
	buf_reset(&b);
	h.status = 204;
	h.content_type = NULL;
	h.framing = HTTP_FRAME_CHUNKED;
	cr_assert_eq(http_write_head_buf(&b, &h), 0);
	cr_assert_str_eq(b.data, "HTTP/1.1 204 No Content\r\n"
	    "Connection: close\r\n\r\n");
	buf_free(&b);
}

/* Fixed memory (listen.c's refusals): snprintf's contract, same bytes. */
Test(http_format, fixed_memory)
{
	struct http_head h = { .status = 503 };
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Length: 0\r\nConnection: close\r\n\r\n";
	char		 out[128], small[8];
	struct buf	 b;

	cr_assert_eq(http_write_head(out, sizeof(out), &h),
	    (int)sizeof(busy) - 1);
	cr_assert_str_eq(out, busy);
	cr_assert_eq(http_write_head(NULL, 0, &h), (int)sizeof(busy) - 1);
	memset(small, 'x', sizeof(small));
	cr_assert_eq(http_write_head(small, sizeof(small), &h),
	    (int)sizeof(busy) - 1, "the length it needs");
	cr_assert_eq(small[sizeof(small) - 1], '\0');
	buf_init(&b);
	cr_assert_eq(http_write_head_buf(&b, &h), 0);
	cr_assert_str_eq(b.data, busy);
	cr_assert_eq(b.len, sizeof(busy) - 1);
	buf_free(&b);
	h.status = 99;
	cr_assert_eq(http_write_head(out, sizeof(out), &h), -1);
	h.status = 1000;
	cr_assert_eq(http_write_head(out, sizeof(out), &h), -1);
}

/*
 * A head longer than the room first reserved is written again whole, after
 * what the buffer held; a large Content-Length in decimal.
 */
Test(http_format, long_head_appended)
{
	struct http_head h = { .status = 200, .content_type = "text/plain",
	    .framing = HTTP_FRAME_LENGTH,
	    .content_length = 18446744073709551615ULL, .keep_alive = 1 };
	char		 extra[600], want[800];
	struct buf	 b;
	size_t		 i;

	extra[0] = '\0';
	for (i = 0; i < 25; i++)	/* 500 bytes */
		strcat(extra, "X-Long: 0123456789\r\n");
	snprintf(want, sizeof(want), "prefixHTTP/1.1 200 OK\r\nContent-Type: "
	    "text/plain\r\nContent-Length: 18446744073709551615\r\n"
	    "Connection: keep-alive\r\n%s\r\n", extra);
	h.extra = extra;
	buf_init(&b);
	cr_assert_eq(buf_puts(&b, "prefix"), 0);
	cr_assert_eq(http_write_head_buf(&b, &h), 0);
	cr_assert_str_eq(b.data, want);
	cr_assert_eq(b.len, strlen(want));
	h.content_type = "bad\r\n";
	cr_assert_eq(http_write_head_buf(&b, &h), -1);
	cr_assert_eq(b.len, strlen(want), "nothing appended");
	cr_assert_str_eq(b.data, want);
	buf_free(&b);
}

/* RFC 9110 section 5.6.2: tchar, exactly, for every byte. */
Test(http_rules, tchar)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";
	int		 c, want;

	for (c = 0; c < 256; c++) {
		want = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		    (c >= 'a' && c <= 'z') ||
		    (c != 0 && strchr(extra, c) != NULL);
		cr_assert_eq(http_tchar(c) != 0, want, "byte 0x%02x", c);
	}
}

/*
 * The one field-value rule.  The three copies it replaces (value_safe in
 * http.c, field_ok in upstream.c, the loop in client.c) agreed: HTAB,
 * SP and obs-text pass, the other controls and DEL do not.  RFC 9110
 * section 5.5 says the same.
 */
Test(http_rules, field_value)
{
	int		 c, want;

	for (c = 0; c < 256; c++) {
		want = c == '\t' || (c >= 0x20 && c != 0x7f);
		cr_assert_eq(http_field_char(c) != 0, want, "byte 0x%02x", c);
	}
	cr_assert(http_field_ok("a\tb \x80\xff", 6));
	cr_assert_not(http_field_ok("a\x7f", 2));
	cr_assert_not(http_field_ok("a\0b", 3), "a NUL inside the length");
	cr_assert(http_field_ok("a\0b", 1));
	cr_assert_not(http_field_ok("a\r\nb", 4));
	cr_assert(http_field_ok("", 0));
}

/* Every head refuses a Content-Type the rule refuses, and only that. */
Test(http_rules, heads_use_the_rule)
{
	static const char *const bad[] = { "a\x7f", "a\rb", "a\nb", "a\x01" };
	static const char *const good[] = { "a\tb", "text/plain; q=\"\xe9\"" };
	struct http_head h = { .status = 200, .framing = HTTP_FRAME_CLOSE };
	struct http_out_request r = { .method = "GET", .target = "/",
	    .target_len = 1 };
	struct buf	 b;
	size_t		 i;

	buf_init(&b);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h.content_type = bad[i];
		r.content_type = bad[i];
		cr_assert_eq(http_write_head_buf(&b, &h), -1, "%zu", i);
		cr_assert_eq(http_response_head(&b, 200, bad[i], 0, 1, NULL),
		    -1);
		cr_assert_eq(http_write_request_check(&r), -1);
		cr_assert_eq(b.len, 0);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		h.content_type = good[i];
		r.content_type = good[i];
		buf_reset(&b);
		cr_assert_eq(http_write_head_buf(&b, &h), 0, "%zu", i);
		cr_assert_eq(http_write_request_check(&r), 0);
	}
	buf_free(&b);
}

Test(http_request_head, refused)
{
	struct http_out_request r = { .method = "GET", .target = "/",
	    .target_len = 1 };

	cr_assert_eq(http_write_request_check(&r), 0);
	r.method = "";
	cr_assert_eq(http_write_request_check(&r), -1);
	r.method = "G(T";
	cr_assert_eq(http_write_request_check(&r), -1);
	r.method = "GET";
	r.target = "/a b";
	r.target_len = 4;
	cr_assert_eq(http_write_request_check(&r), -1);
	r.target = "/a\x80";
	r.target_len = 3;
	cr_assert_eq(http_write_request_check(&r), 0, "obs-text in target");
	r.target = "x";
	r.target_len = 1;
	cr_assert_eq(http_write_request_check(&r), -1);
	r.target = "/";
	r.target_len = 0;
	cr_assert_eq(http_write_request_check(&r), -1);
	r.target_len = 1;
	r.accept = "a\nb";
	cr_assert_eq(http_write_request_check(&r), -1);
}
