/*
 * libFuzzer: a client's request target against the default route table
 * (route_strip_v1, route_match, route_method_scope, route_target), the
 * path read by the real request reader.  Beyond no crash: a path that
 * matches a route is already what a Gateway would normalise it to (no
 * dot or empty segment, no backslash or ';', no escaped unreserved byte,
 * slash or '%'), so it cannot reach another route's endpoint; and the
 * Gateway target written for it starts with the route's `to` and holds
 * no byte that could bend the request line (space, control, DEL).  The
 * reader passes 8-bit bytes in a query through, as http-parser does.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerd.h"
#include "value.h"

static struct route	*routes;
static size_t		 nroutes;

/* 1 when a Gateway's decoding and dot-segment removal would change p. */
static int
changes(const char *p, size_t len)
{
	static const char unres[] = "-._~/\\%";
	size_t	 i;
	int	 hi, lo, d;

	for (i = 0; i < len; i++) {
		if (p[i] == '\\' || p[i] == ';')
			return (1);
		if (p[i] == '%') {
			if (i + 2 >= len)
				return (1);
			hi = value_hexval((unsigned char)p[i + 1]);
			lo = value_hexval((unsigned char)p[i + 2]);
			if (hi < 0 || lo < 0)
				return (1);
			d = hi << 4 | lo;
			if (d == 0 || (d >= '0' && d <= '9') ||
			    (d >= 'A' && d <= 'Z') || (d >= 'a' && d <= 'z') ||
			    strchr(unres, d) != NULL)
				return (1);
		}
		if (p[i] != '/')
			continue;
		if (i + 1 < len && p[i + 1] == '/')
			return (1);
		if (i + 1 < len && p[i + 1] == '.' && (i + 2 == len ||
		    p[i + 2] == '/' || (p[i + 2] == '.' && (i + 3 == len ||
		    p[i + 3] == '/'))))
			return (1);
	}
	return (0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_reader rd;
	struct http_request *req;
	const struct route *r;
	struct buf	 out;
	struct buf	 head;
	const char	*path;
	size_t		 len, used, i;
	unsigned	 scope;

	if (routes == NULL && route_defaults(&routes, &nroutes) == -1)
		abort();
	/* the target goes into a request line, as a client sends it */
	buf_init(&head);
	if (buf_puts(&head, "GET ") == -1 ||
	    buf_append(&head, data, size) == -1 ||
	    buf_puts(&head, " HTTP/1.1\r\nHost: localhost\r\n\r\n") == -1)
		abort();
	http_reader_init(&rd, 16384, 1024);
	if (http_reader_feed(&rd, head.data, head.len, &used) !=
	    HTTP_FEED_DONE || (req = http_reader_take(&rd)) == NULL)
		goto out;
	len = strlen(req->path);
	path = route_strip_v1(req->path, &len);
	if ((r = route_match(routes, nroutes, path, len)) != NULL) {
		if (changes(path, len) || len < r->prefix_len ||
		    memcmp(path, r->prefix, r->prefix_len) != 0)
			abort();
		(void)route_method_scope(r, req->method, &scope);
		buf_init(&out);
		if (route_target(r, path, len, req->query, &out) == 0) {
			if (out.len < r->to_len ||
			    memcmp(out.data, r->to, r->to_len) != 0)
				abort();
			for (i = 0; i < out.len; i++)
				if ((unsigned char)out.data[i] <= ' ' ||
				    (unsigned char)out.data[i] == 0x7f)
					abort();
		}
		buf_free(&out);
	}
	http_reader_recycle(&rd, req);
out:
	http_reader_free(&rd);
	buf_free(&head);
	return (0);
}
