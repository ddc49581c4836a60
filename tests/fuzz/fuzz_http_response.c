/*
 * libFuzzer: the Gateway answer reader.  The first byte chooses HEAD or
 * not, a small or large body cap and where the input is cut; the end of
 * input is the peer closing.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "brokerd.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_resp_reader rr;
	struct http_response *resp;
	const char	*p;
	size_t		 cut, off = 0, end, used, len, i;
	enum http_feed	 r = HTTP_FEED_MORE;

	if (size < 2)
		return (0);
	p = (const char *)data + 2;
	len = size - 2;
	cut = len ? data[1] % (len + 1) : 0;
	http_resp_reader_init(&rr, (data[0] & 2) ? 64 : 1 << 20, data[0] & 1);
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
		if (resp->body.len > ((data[0] & 2) ? 64u : 1u << 20))
			__builtin_trap();
		http_response_free(resp);
	}
	http_resp_reader_free(&rr);
	return (0);
}
