/*
 * Every head brokerd writes: its answers' heads to clients, and its
 * requests' heads to the Gateway; and the token and field-value rules that
 * keep what it writes, and what it reads, from bending a head.  Pure: no
 * sockets, no globals.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "brokerd.h"

/* RFC 9110 section 5.6.2's tchar, by byte. */
const unsigned char http_tchar_tab[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x00 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x10 */
	0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0,	/* 0x20 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,	/* 0x30 */
	0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0x40 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,	/* 0x50 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0x60 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,	/* 0x70 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x80 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x90 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xa0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xb0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xc0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xd0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xe0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xf0 */
};

int
http_tchar(int c)
{
	return (c >= 0 && c < 256 && http_tchar_tab[c]);
}

/*
 * field-vchar, SP and HTAB (RFC 9110 section 5.5), obs-text included: a
 * Gateway's reason or a client's UTF-8 passes.  NUL, CR, LF, the other
 * controls and DEL do not: a value with one could end the line early.
 */
int
http_field_char(int c)
{
	c &= 0xff;
	return ((c >= 0x20 || c == '\t') && c != 0x7f);
}

/* Eight bytes at a time while none is a control or DEL (HTAB is one). */
int
http_field_ok(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t		 i = 0;

	while (i < len) {
		i += http_span_plain(p + i, len - i, 0x20);
		if (i < len && !http_field_char(p[i++]))
			return (0);
	}
	return (1);
}

const char *
http_reason(int status)
{
	switch (status) {
	case 100: return ("Continue");
	case 101: return ("Switching Protocols");
	case 200: return ("OK");
	case 201: return ("Created");
	case 202: return ("Accepted");
	case 203: return ("Non-Authoritative Information");
	case 204: return ("No Content");
	case 205: return ("Reset Content");
	case 206: return ("Partial Content");
	case 301: return ("Moved Permanently");
	case 302: return ("Found");
	case 303: return ("See Other");
	case 304: return ("Not Modified");
	case 307: return ("Temporary Redirect");
	case 308: return ("Permanent Redirect");
	case 400: return ("Bad Request");
	case 401: return ("Unauthorized");
	case 402: return ("Payment Required");
	case 403: return ("Forbidden");
	case 404: return ("Not Found");
	case 405: return ("Method Not Allowed");
	case 406: return ("Not Acceptable");
	case 407: return ("Proxy Authentication Required");
	case 408: return ("Request Timeout");
	case 409: return ("Conflict");
	case 410: return ("Gone");
	case 411: return ("Length Required");
	case 412: return ("Precondition Failed");
	case 413: return ("Content Too Large");
	case 414: return ("URI Too Long");
	case 415: return ("Unsupported Media Type");
	case 416: return ("Range Not Satisfiable");
	case 417: return ("Expectation Failed");
	case 421: return ("Misdirected Request");
	case 422: return ("Unprocessable Content");
	case 423: return ("Locked");
	case 425: return ("Too Early");
	case 426: return ("Upgrade Required");
	case 428: return ("Precondition Required");
	case 429: return ("Too Many Requests");
	case 431: return ("Request Header Fields Too Large");
	case 500: return ("Internal Server Error");
	case 501: return ("Not Implemented");
	case 502: return ("Bad Gateway");
	case 503: return ("Service Unavailable");
	case 504: return ("Gateway Timeout");
	case 505: return ("HTTP Version Not Supported");
	default:
		break;
	}
	if (status >= 100 && status < 200)
		return ("Informational");
	if (status >= 200 && status < 300)
		return ("Success");
	if (status >= 300 && status < 400)
		return ("Redirection");
	if (status >= 400 && status < 500)
		return ("Client Error");
	return ("Server Error");
}

/* Appends pieces to fixed memory, snprintf(3)-like: len counts all. */
struct head_out {
	char		*p;
	size_t		 cap;
	size_t		 len;
};

/*
 * The piece whole when it fits: inlined, a constant piece is then copied
 * by a few moves instead of a call to memcpy with a length known late.
 */
static inline void
head_put(struct head_out *o, const char *s, size_t n)
{
	size_t	 room;

	if (o->len <= o->cap && n <= o->cap - o->len)
		memcpy(o->p + o->len, s, n);
	else if (o->len < o->cap) {
		room = o->cap - o->len;
		memcpy(o->p + o->len, s, room);
	}
	o->len += n;
}

static void
head_puts(struct head_out *o, const char *s)
{
	head_put(o, s, strlen(s));
}

static void
head_putu(struct head_out *o, unsigned long long v)
{
	char	 tmp[24], *d = tmp + sizeof(tmp);

	do {
		*--d = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	head_put(o, d, (size_t)(tmp + sizeof(tmp) - d));
}

/*
 * A 1xx is a status line (plus extra) only; 204 and 304 carry no
 * Content-Length nor Transfer-Encoding (RFC 9110 sections 8.6 and 15.4.5,
 * RFC 9112 section 6.1).  A Content-Type with a control character (it may
 * come from the Gateway) is refused.  Pieces appended in one pass, no
 * printf: this is every answer's head; a caller with no memory to spare
 * (listen.c's refusals) writes the same heads.
 */
int
http_write_head(char *out, size_t cap, const struct http_head *h)
{
	struct head_out	 o = { out, cap, 0 };

	if (h->status < 100 || h->status > 999)
		return (-1);
	if (h->content_type != NULL && !http_field_ok(h->content_type,
	    strlen(h->content_type)))
		return (-1);
	head_put(&o, "HTTP/1.1 ", 9);
	head_putu(&o, (unsigned long long)h->status);
	head_put(&o, " ", 1);
	head_puts(&o, http_reason(h->status));
	head_put(&o, "\r\n", 2);
	if (h->status >= 200) {
		if (h->content_type != NULL) {
			head_put(&o, "Content-Type: ", 14);
			head_puts(&o, h->content_type);
			head_put(&o, "\r\n", 2);
		}
		if (h->status == 204 || h->status == 304)
			;
		else if (h->framing == HTTP_FRAME_CHUNKED)
			head_put(&o, "Transfer-Encoding: chunked\r\n", 28);
		else if (h->framing == HTTP_FRAME_LENGTH) {
			head_put(&o, "Content-Length: ", 16);
			head_putu(&o, (unsigned long long)h->content_length);
			head_put(&o, "\r\n", 2);
		}
		if (h->keep_alive)
			head_put(&o, "Connection: keep-alive\r\n", 24);
		else
			head_put(&o, "Connection: close\r\n", 19);
	}
	if (h->extra != NULL)
		head_puts(&o, h->extra);
	head_put(&o, "\r\n", 2);
	if (o.len > INT_MAX)
		return (-1);
	if (cap > 0)
		out[o.len < cap ? o.len : cap - 1] = '\0';
	return ((int)o.len);
}

/* Written straight into the buffer's room; again only when it did not fit. */
int
http_write_head_buf(struct buf *b, const struct http_head *h)
{
	size_t	 room;
	int	 n;

	if (buf_reserve(b, 192) == -1)
		return (-1);
	room = b->cap - b->len;
	if ((n = http_write_head(b->data + b->len, room, h)) == -1) {
		b->data[b->len] = '\0';
		return (-1);
	}
	if ((size_t)n >= room) {
		b->data[b->len] = '\0';
		if (buf_reserve(b, (size_t)n) == -1 ||
		    http_write_head(b->data + b->len, (size_t)n + 1, h) != n)
			return (-1);
	}
	b->len += (size_t)n;
	return (0);
}

int
http_response_head(struct buf *b, int status, const char *content_type,
    size_t content_length, int keep_alive, const char *extra)
{
	struct http_head h = {
		.status = status,
		.content_type = content_type,
		.framing = HTTP_FRAME_LENGTH,
		.content_length = content_length,
		.keep_alive = keep_alive,
		.extra = extra,
	};

	return (http_write_head_buf(b, &h));
}

/* ------------------------------------------------- requests to the Gateway */

/* Nothing the caller put in may bend the request head. */
int
http_write_request_check(const struct http_out_request *r)
{
	const unsigned char *p;
	size_t		 i;

	if (r->method[0] == '\0')
		return (-1);
	for (p = (const unsigned char *)r->method; *p != '\0'; p++)
		if (!http_tchar(*p))
			return (-1);
	if (r->target_len == 0 || r->target[0] != '/')
		return (-1);
	for (p = (const unsigned char *)r->target, i = 0; i < r->target_len;
	    i++) {
		i += http_span_plain(p + i, r->target_len - i, 0x21);
		if (i < r->target_len && (p[i] <= 0x20 || p[i] == 0x7f))
			return (-1);
	}
	if (r->content_type != NULL && !http_field_ok(r->content_type,
	    strlen(r->content_type)))
		return (-1);
	if (r->accept != NULL && !http_field_ok(r->accept, strlen(r->accept)))
		return (-1);
	return (0);
}
