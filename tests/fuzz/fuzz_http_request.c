/*
 * libFuzzer: the client request reader.  The first two bytes choose where
 * the rest is cut (into up to three pieces, as a socket would deliver it);
 * every complete request is taken and freed, pipelining included.  The
 * same input fed whole must give the same requests and the same verdict.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "brokerd.h"

struct summary {
	unsigned	 nreq;
	size_t		 body_bytes;
	size_t		 headers;
	int		 err_status;
	int		 last;		/* last enum http_feed */
};

static void
check(const struct http_request *req)
{
	size_t	 i;

	/* Touch everything, so ASan sees bad pointers. */
	if (req->path == NULL || req->url == NULL || strlen(req->method) == 0)
		__builtin_trap();
	for (i = 0; i < req->nfields; i++)
		if (strlen(http_field_name(req, i)) !=
		    req->fields[i].name_len ||
		    strlen(http_field_value(req, i)) !=
		    req->fields[i].value_len)
			__builtin_trap();
	(void)http_request_header(req, "Host");
	if (req->query != NULL)
		(void)strlen(req->query);
	if (req->body.len > 0 && req->body.data[req->body.len] != '\0')
		__builtin_trap();
}

static void
run(const char *p, const size_t cut[3], struct summary *s)
{
	struct http_reader rd;
	struct http_request *req;
	size_t		 off = 0, end, used, i;
	enum http_feed	 r = HTTP_FEED_MORE;

	memset(s, 0, sizeof(*s));
	http_reader_init(&rd, 2048, 4096);
	for (i = 0; i < 3; i++) {
		end = cut[i];
		while (off < end) {
			r = http_reader_feed(&rd, p + off, end - off, &used);
			if (used > end - off)
				__builtin_trap();
			off += used;
			(void)http_reader_wants_continue(&rd);
			if (http_reader_current(&rd) != NULL)
				check(http_reader_current(&rd));
			if (r == HTTP_FEED_ERROR) {
				if (rd.err_status == 0 || rd.err_code == NULL)
					__builtin_trap();
				s->err_status = rd.err_status;
				goto out;
			}
			if (r == HTTP_FEED_DONE) {
				if ((req = http_reader_take(&rd)) == NULL)
					__builtin_trap();
				check(req);
				s->nreq++;
				s->body_bytes += req->body.len;
				s->headers += req->nfields;
				http_reader_recycle(&rd, req);
				continue;
			}
			if (off != end)
				__builtin_trap();	/* MORE uses all */
		}
	}
out:
	s->last = (int)r;
	http_reader_free(&rd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct summary	 a, b;
	const char	*p;
	size_t		 cut[3], whole[3], len, t;

	if (size < 2)
		return (0);
	p = (const char *)data + 2;
	len = size - 2;
	cut[0] = len ? data[0] % (len + 1) : 0;
	cut[1] = len ? data[1] % (len + 1) : 0;
	if (cut[0] > cut[1]) {
		t = cut[0];
		cut[0] = cut[1];
		cut[1] = t;
	}
	cut[2] = len;
	whole[0] = whole[1] = whole[2] = len;
	run(p, cut, &a);
	run(p, whole, &b);
	if (a.nreq != b.nreq || a.body_bytes != b.body_bytes ||
	    a.headers != b.headers || a.err_status != b.err_status)
		__builtin_trap();
	return (0);
}
