/*
 * libFuzzer: the Gateway answer reader.  The first byte chooses HEAD or
 * not and a small or large body cap, the second where the input is cut;
 * the end of input is the peer closing.  Cut or whole, the verdict and
 * the answer must be the same.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "brokerd.h"

struct summary {
	int		 r;
	int		 error;
	int		 status;
	size_t		 body_len;
	size_t		 ncookies;
	unsigned	 retry_after_s;
	int		 keep_alive;
};

static void
run(const char *p, size_t len, size_t cut, size_t max, int head,
    struct summary *s)
{
	struct http_resp_reader rr;
	struct http_response *resp;
	size_t		 off = 0, end, used, i;
	enum http_feed	 r = HTTP_FEED_MORE;

	memset(s, 0, sizeof(*s));
	http_resp_reader_init(&rr, max, head);
	for (i = 0; i < 2 && r == HTTP_FEED_MORE; i++) {
		end = i == 0 ? cut : len;
		if (off >= end)
			continue;
		r = http_resp_reader_feed(&rr, p + off, end - off, &used);
		if (used > end - off)
			__builtin_trap();
		off += used;
	}
	if (r == HTTP_FEED_MORE)
		r = http_resp_reader_eof(&rr);
	s->r = (int)r;
	s->error = rr.error;
	if (r == HTTP_FEED_ERROR && rr.error != 1 && rr.error != 2)
		__builtin_trap();
	if (r == HTTP_FEED_DONE) {
		if ((resp = http_resp_reader_take(&rr)) == NULL)
			__builtin_trap();
		if (resp->status < 200 || resp->status > 999)
			__builtin_trap();
		for (i = 0; i < resp->nset_cookies; i++)
			(void)strlen(resp->set_cookies[i].value);
		if (resp->content_type != NULL)
			(void)strlen(resp->content_type);
		if (resp->body.len > max)
			__builtin_trap();
		s->status = resp->status;
		s->body_len = resp->body.len;
		s->ncookies = resp->nset_cookies;
		s->retry_after_s = resp->retry_after_s;
		s->keep_alive = resp->keep_alive;
		http_response_free(resp);
	}
	http_resp_reader_free(&rr);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct summary	 a, b;
	const char	*p;
	size_t		 len, cut, max;
	int		 head;

	if (size < 2)
		return (0);
	p = (const char *)data + 2;
	len = size - 2;
	cut = len ? data[1] % (len + 1) : 0;
	max = (data[0] & 2) ? 64 : 1 << 20;
	head = data[0] & 1;
	run(p, len, cut, max, head, &a);
	run(p, len, len, max, head, &b);
	if (a.r != b.r || a.error != b.error || a.status != b.status ||
	    a.body_len != b.body_len || a.ncookies != b.ncookies ||
	    a.keep_alive != b.keep_alive)
		__builtin_trap();
	return (0);
}
