/*
 * libFuzzer: both WebSocket opening handshakes.  The first byte chooses:
 *
 * 0: the rest is the Gateway's answer to brokerd's upgrade, checked by
 *    ws_client_answer as it arrives (cut where the second byte says, then
 *    whole).  1 (more) only while no CRLFCRLF has come; cut or whole, the
 *    same verdict; a yes must be an "HTTP/1.1 101" head ending at *used,
 *    with the accept key of our key in it.
 * 1: the rest is a local client's request: when ws_upgrade_check takes
 *    it, it is a GET in HTTP/1.1 with a key that is base64 of 16 bytes,
 *    and the 101 ws_upgrade_answer writes is one brokerd's own client
 *    check takes.
 * 2: the rest, split at NUL bytes, is the host, port (when gateway.url's
 *    check takes them), path, cookie and User-Agent of brokerd's own
 *    upgrade request: when ws_client_request writes it, the head must
 *    read back as exactly one request that ws_upgrade_check takes, with
 *    the Cookie and User-Agent given.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/base64.h>

#include "brokerd.h"
#include "value.h"
#include "ws.h"

#define KEY	"dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT	"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="	/* RFC 6455 1.3 */

static void
gateway_answer(const char *p, size_t len, size_t cut)
{
	const char	*end;
	size_t		 used = 0, used2 = 0;
	int		 r, r2;

	r = ws_client_answer(p, len, KEY, &used);
	end = memmem(p, len, "\r\n\r\n", 4);
	if (r == 1 && end != NULL)
		abort();
	if (r == 0) {
		if (end == NULL || used != (size_t)(end - p) + 4 ||
		    used > len || memcmp(p, "HTTP/1.1 101", 12) != 0 ||
		    memmem(p, used, ACCEPT, strlen(ACCEPT)) == NULL)
			abort();
	}
	/* the same bytes, as far as the cut: more, or the same verdict */
	r2 = ws_client_answer(p, cut, KEY, &used2);
	if (r2 != 1 && (r2 != r || (r == 0 && used2 != used)))
		abort();
	if (r2 == 1 && end != NULL && (size_t)(end - p) + 4 <= cut)
		abort();
}

static void
client_request(const char *p, size_t len)
{
	struct http_reader rd;
	struct http_request *req;
	struct buf	 b;
	const char	*why, *key;
	unsigned char	 raw[32];
	size_t		 used, olen;

	http_reader_init(&rd, 8192, 1024);
	if (http_reader_feed(&rd, p, len, &used) != HTTP_FEED_DONE ||
	    (req = http_reader_take(&rd)) == NULL) {
		http_reader_free(&rd);
		return;
	}
	if (ws_upgrade_check(req, &why) == 0) {
		key = http_request_header(req, "Sec-WebSocket-Key");
		if (strcmp(req->method, "GET") != 0 ||
		    req->http_minor != 1 || key == NULL ||
		    mbedtls_base64_decode(raw, sizeof(raw), &olen,
		    (const unsigned char *)key, strlen(key)) != 0 ||
		    olen != 16)
			abort();
		buf_init(&b);
		if (ws_upgrade_answer(&b, req) == -1 ||
		    ws_client_answer(b.data, b.len, key, &used) != 0 ||
		    used != b.len)
			abort();
		buf_free(&b);
	} else if (why == NULL)
		abort();
	http_reader_recycle(&rd, req);
	http_reader_free(&rd);
}

/* A field value as read back: the blanks around it are not its own. */
static int
same_value(const char *got, const char *want)
{
	size_t	 n;

	while (*want == ' ' || *want == '\t')
		want++;
	n = strlen(want);
	while (n > 0 && (want[n - 1] == ' ' || want[n - 1] == '\t'))
		n--;
	return (strlen(got) == n && memcmp(got, want, n) == 0);
}

static void
own_request(const char *p, size_t len)
{
	struct http_reader rd;
	struct http_request *req;
	struct buf	 b;
	const char	*f[5], *v, *reason;
	char		*s, url[160], host[128], port[16], why[160];
	size_t		 i, used;

	if ((s = malloc(len + 1)) == NULL)
		return;
	memcpy(s, p, len);
	s[len] = '\0';
	f[0] = s;
	for (i = 1; i < 5; i++)
		f[i] = f[i - 1] + strlen(f[i - 1]) +
		    (f[i - 1] + strlen(f[i - 1]) < s + len);
	/* brokerd's host and port are gateway.url's, as value.c read them */
	snprintf(url, sizeof(url), strchr(f[0], ':') != NULL ?
	    "https://[%s]:%s" : "https://%s:%s", f[0], f[1]);
	if (strlen(f[0]) > 100 || strlen(f[1]) > 10 || value_https_url(url,
	    host, sizeof(host), port, sizeof(port), why, sizeof(why)) == -1) {
		free(s);
		return;
	}
	buf_init(&b);
	if (ws_client_request(&b, host, port, f[2], KEY, f[3], f[4]) == 0) {
		http_reader_init(&rd, 65536, 1024);
		if (http_reader_feed(&rd, b.data, b.len, &used) !=
		    HTTP_FEED_DONE || used != b.len ||
		    (req = http_reader_take(&rd)) == NULL)
			abort();
		if (ws_upgrade_check(req, &reason) != 0 ||
		    strcmp(req->url, f[2]) != 0)
			abort();
		v = http_request_header(req, "Cookie");
		if (*f[3] != '\0' && (v == NULL || !same_value(v, f[3])))
			abort();
		v = http_request_header(req, "User-Agent");
		if (v == NULL || !same_value(v, f[4]))
			abort();
		http_reader_recycle(&rd, req);
		http_reader_free(&rd);
	}
	buf_free(&b);
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*p = (const char *)data + 2;
	size_t		 len;

	if (size < 2)
		return (0);
	len = size - 2;
	switch (data[0] % 3) {
	case 0:
		gateway_answer(p, len, len ? data[1] % (len + 1) : 0);
		break;
	case 1:
		client_request(p, len);
		break;
	default:
		own_request(p, len);
		break;
	}
	return (0);
}
