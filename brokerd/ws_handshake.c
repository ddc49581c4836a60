/*
 * The WebSocket opening handshakes (RFC 6455 section 4) as pure functions:
 * a local client's upgrade request checked and answered 101, and brokerd's
 * own upgrade request to the Gateway with the check of its answer.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>

#include "ws.h"

#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

int
ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1])
{
	unsigned char	 in[64 + sizeof(WS_GUID)], md[20];
	size_t		 klen, olen;

	klen = strlen(key);
	if (klen > 64)
		return (-1);
	memcpy(in, key, klen);
	memcpy(in + klen, WS_GUID, sizeof(WS_GUID) - 1);
	if (mbedtls_sha1_ret(in, klen + sizeof(WS_GUID) - 1, md) != 0)
		return (-1);
	if (mbedtls_base64_encode((unsigned char *)out, WS_ACCEPT_LEN + 1,
	    &olen, md, sizeof(md)) != 0 || olen != WS_ACCEPT_LEN)
		return (-1);
	out[WS_ACCEPT_LEN] = '\0';
	return (0);
}

/* Is tok one of the comma-separated tokens of v (case-insensitive)? */
static int
ws_has_token(const char *v, const char *tok)
{
	size_t		 tlen = strlen(tok), n;
	const char	*p = v;

	while (v != NULL && *p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		n = strcspn(p, ",");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == tlen && strncasecmp(p, tok, n) == 0)
			return (1);
		p += strcspn(p, ",");
	}
	return (0);
}

/* RFC 6455 4.2.1: the key is base64 of exactly 16 bytes. */
static int
ws_key_ok(const char *key)
{
	unsigned char	 raw[32];
	size_t		 olen;

	if (key == NULL || strlen(key) != WS_KEY_LEN)
		return (0);
	if (mbedtls_base64_decode(raw, sizeof(raw), &olen,
	    (const unsigned char *)key, WS_KEY_LEN) != 0)
		return (0);
	return (olen == 16);
}

/* 1 when the request asks for an upgrade to websocket at all. */
static int
ws_upgrade_wanted(const struct http_request *req)
{
	return (ws_has_token(http_request_header(req, "Upgrade"),
	    "websocket"));
}

int
ws_upgrade_check(const struct http_request *req, const char **why)
{
	const char	*v;

	if (strcmp(req->method, "GET") != 0) {
		*why = "a WebSocket handshake is a GET";
		return (400);
	}
	if (req->http_minor < 1) {
		*why = "a WebSocket handshake needs HTTP/1.1";
		return (400);
	}
	if (!ws_upgrade_wanted(req)) {
		*why = "Upgrade: websocket missing";
		return (400);
	}
	if (!ws_has_token(http_request_header(req, "Connection"), "upgrade")) {
		*why = "Connection: upgrade missing";
		return (400);
	}
	v = http_request_header(req, "Sec-WebSocket-Version");
	if (v == NULL || strcmp(v, "13") != 0) {
		*why = "Sec-WebSocket-Version must be 13";
		return (426);
	}
	if (!ws_key_ok(http_request_header(req, "Sec-WebSocket-Key"))) {
		*why = "Sec-WebSocket-Key must be base64 of 16 bytes";
		return (400);
	}
	*why = NULL;
	return (0);
}

int
ws_upgrade_answer(struct buf *b, const struct http_request *req)
{
	char	 accept[WS_ACCEPT_LEN + 1];

	if (ws_accept_key(http_request_header(req, "Sec-WebSocket-Key"),
	    accept) == -1)
		return (-1);
	return (buf_printf(b, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n\r\n", accept));
}

int
ws_client_key(char out[WS_KEY_LEN + 1])
{
	unsigned char	 raw[16];
	size_t		 olen;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return (-1);
	if (mbedtls_base64_encode((unsigned char *)out, WS_KEY_LEN + 1, &olen,
	    raw, sizeof(raw)) != 0 || olen != WS_KEY_LEN)
		return (-1);
	return (0);
}

int
ws_client_request(struct buf *b, const char *host, const char *port,
    const char *path, const char *key, const char *cookie,
    const char *user_agent)
{
	const char	*lb, *rb;
	size_t		 i, start = b->len;

	if (cookie == NULL)
		cookie = "";
	if (path[0] != '/' || !http_field_ok(host, strlen(host)) ||
	    !http_field_ok(port, strlen(port)) || !ws_key_ok(key) ||
	    !http_field_ok(cookie, strlen(cookie)) || *user_agent == '\0' ||
	    !http_field_ok(user_agent, strlen(user_agent)))
		return (-1);
	for (i = 0; path[i] != '\0'; i++)
		if (path[i] <= ' ' || path[i] == 0x7f)
			return (-1);
	lb = strchr(host, ':') != NULL ? "[" : "";
	rb = *lb != '\0' ? "]" : "";
	if (buf_printf(b, "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\n"
	    "User-Agent: %s\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n", path, lb, host, rb, port,
	    user_agent, key) == -1 ||
	    (*cookie != '\0' && buf_printf(b, "Cookie: %s\r\n",
	    cookie) == -1) ||
	    buf_puts(b, "\r\n") == -1) {
		buf_truncate(b, start);
		return (-1);
	}
	return (0);
}

/* The value of a header line "name: value" if the name is this one. */
static int
ws_head_field(const char *line, size_t len, const char *name, char *out,
    size_t cap)
{
	size_t	 n = strlen(name), vlen;

	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return (0);
	line += n + 1;
	len -= n + 1;
	while (len > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	vlen = len < cap - 1 ? len : cap - 1;
	memcpy(out, line, vlen);
	out[vlen] = '\0';
	return (1);
}

int
ws_client_answer(const char *p, size_t len, const char *key, size_t *used)
{
	char		 want[WS_ACCEPT_LEN + 1], accept[64] = "";
	char		 upgrade[64] = "", conn[128] = "";
	const char	*end, *line, *eol;

	if ((end = memmem(p, len, "\r\n\r\n", 4)) == NULL)
		return (len > 8192 ? -1 : 1);
	*used = end - p + 4;
	/* A NUL would end a value early: "<key>\0junk" read as "<key>". */
	if (*used > 8192 || memchr(p, '\0', *used) != NULL)
		return (-1);
	if (*used < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0 ||
	    ws_accept_key(key, want) == -1)
		return (-1);
	/* no line after the status line: no accept key either */
	if ((line = memchr(p, '\n', end - p)) == NULL)
		return (-1);
	line++;
	while (line < end + 2) {
		eol = memchr(line, '\r', end + 2 - line);
		if (eol == NULL)
			break;
		if (!ws_head_field(line, eol - line, "Sec-WebSocket-Accept",
		    accept, sizeof(accept)) &&
		    !ws_head_field(line, eol - line, "Upgrade", upgrade,
		    sizeof(upgrade)))
			ws_head_field(line, eol - line, "Connection", conn,
			    sizeof(conn));
		line = eol + 2;
	}
	if (strcmp(accept, want) != 0 || !ws_has_token(upgrade, "websocket") ||
	    !ws_has_token(conn, "upgrade"))
		return (-1);
	return (0);
}
