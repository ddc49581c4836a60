/*
 * A client request's head, in one pass as its bytes arrive (http.c's
 * reader calls it): line ends, the request line's shape and version,
 * field names and values, Host, and what the framing fields say together.
 * These are the checks Debian's http-parser 2.9.4, built without
 * HTTP_PARSER_STRICT, does not make; http-parser reads the head only
 * after it passed them.  The fields are noted as offsets into the
 * request's raw head, which grows as bytes come.  Pure: no sockets, no
 * globals.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "http.h"
#include "http_int.h"

#define rd_fail	http_reader_fail

#define HC_OWS	1	/* SP, HTAB */
#define HC_CTL	2	/* the other controls and DEL: no field-value byte */

/* What a head byte is, for the loops over lines and values. */
static const unsigned char head_class[256] = {
	2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2,	/* 0x00 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,	/* 0x10 */
	1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x20 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x30 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x40 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x50 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x60 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,	/* 0x70 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x80 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x90 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xa0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xb0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xc0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xd0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xe0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xf0 */
};

/*
 * Read a Transfer-Encoding value into counts: chunked codings, whether one
 * is not last, unknown codings.  Parameters (";q=...") are not allowed on
 * chunked and make any other coding unknown anyway.
 */
static void
te_scan(const char *v, size_t len, struct te_count *te)
{
	size_t	 i = 0, s, e;

	while (i < len && (v[i] == ' ' || v[i] == '\t'))
		i++;
	if (i == len)
		te->empty = 1;
	for (;;) {
		while (i < len && (v[i] == ' ' || v[i] == '\t'))
			i++;
		s = i;
		while (i < len && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e > s) {
			if (e - s == 7 &&
			    strncasecmp(v + s, "chunked", 7) == 0) {
				te->nchunked++;
				te->chunked_last = 1;
			} else {
				te->unknown++;
				te->chunked_last = 0;
			}
		}
		if (i >= len)
			break;
		i++;	/* the comma */
	}
}

/* A reg-name byte of RFC 3986: unreserved, pct-encoded's '%', sub-delims. */
static const unsigned char host_reg[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x00 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x10 */
	0, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,	/* 0x20 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0,	/* 0x30 */
	0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0x40 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,	/* 0x50 */
	0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0x60 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0,	/* 0x70 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x80 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x90 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xa0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xb0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xc0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xd0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xe0 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0xf0 */
};

/*
 * RFC 9110 section 7.2: Host = uri-host [ ":" port ], uri-host an
 * IP-literal or a reg-name (RFC 3986); empty is allowed.  A value outside
 * that (a space, '@', '/') is a 400 on both listeners (RFC 9112 section
 * 3.2): the loopback-name check on TCP must not be the only thing
 * standing between it and the Gateway's Host header.
 */
static int
host_valid(const char *v, size_t len)
{
	size_t	 i = 0;

	if (len > 0 && v[0] == '[') {
		for (i = 1; i < len && v[i] != ']'; i++)
			if (!isxdigit((unsigned char)v[i]) && v[i] != ':' &&
			    v[i] != '.' && v[i] != 'v' && v[i] != 'V')
				return (0);
		if (i == len || i == 1)
			return (0);
		i++;
	} else {
		for (; i < len && v[i] != ':'; i++)
			if (!host_reg[(unsigned char)v[i]])
				return (0);
	}
	if (i < len && v[i++] != ':')
		return (0);
	for (; i < len; i++)
		if (v[i] < '0' || v[i] > '9')
			return (0);
	return (1);
}

/*
 * A field line is whole (offsets in s->f): Host, once and well-formed;
 * Content-Length and Transfer-Encoding noted; the field kept.
 */
static int
head_field(struct http_reader *rd)
{
	struct req_state *s = &rd->parser->s;
	struct http_request *req = rd->req;
	const char	*name = req->raw.data + s->f.name;
	const char	*value = req->raw.data + s->f.value;

	switch (s->f.name_len) {
	case 4:
		if (strncasecmp(name, "Host", 4) != 0)
			break;
		if (++s->nhost > 1)
			return (rd_fail(rd, 400, "more than one Host"));
		if (!host_valid(value, s->f.value_len))
			return (rd_fail(rd, 400, "invalid Host"));
		break;
	case 14:
		if (strncasecmp(name, "Content-Length", 14) == 0)
			s->has_cl = 1;
		break;
	case 17:
		if (strncasecmp(name, "Transfer-Encoding", 17) == 0) {
			s->has_te = 1;
			te_scan(value, s->f.value_len, &s->te);
		}
		break;
	}
	if (http_request_push(req, &s->f) == -1)
		return (rd_fail(rd, 400, "out of memory"));
	return (0);
}

/*
 * The whole head passed the line checks: what only the fields together
 * say.  CL with TE, and unknown codings, are refused.
 */
int
http_head_done(struct http_reader *rd)
{
	struct req_state *s = &rd->parser->s;

	if (s->has_cl && s->has_te)
		return (rd_fail(rd, 400,
		    "both Content-Length and Transfer-Encoding"));
	if (s->has_te) {
		if (s->te.empty || s->te.nchunked > 1 ||
		    (s->te.nchunked == 1 && !s->te.chunked_last))
			return (rd_fail(rd, 400, "invalid Transfer-Encoding"));
		if (s->te.unknown > 0)
			return (rd_fail(rd, 501,
			    "transfer coding not implemented"));
	}
	return (0);
}

/*
 * HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3), checked here:
 * http-parser built without its strict checks reads any bytes as "HTTP/",
 * even across the line's end, and would then see another request line
 * than this one.
 */
static int
version_check(struct http_reader *rd, const char *v, size_t len)
{
	if (len != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' ||
	    v[5] > '9' || v[6] != '.' || v[7] < '0' || v[7] > '9')
		return (rd_fail(rd, 400, "malformed HTTP version"));
	if (v[5] != '1')
		return (rd_fail(rd, 400, "only HTTP/1.x is served"));
	return (0);
}

/*
 * The request line (l, len bytes without CRLF) is whole: a target over
 * HTTP_MAX_TARGET is 414, and the version must be HTTP/1.x.  Its bytes
 * were checked as they came: http-parser takes HTAB and FF inside the
 * target, and the Gateway's request line must not get them.
 */
static int
request_line_check(struct http_reader *rd, const char *l, size_t len)
{
	const struct req_state *s = &rd->parser->s;

	if (s->sp1 == 0 || s->sp1 == s->sp2)
		return (len > HTTP_MAX_TARGET ? rd_fail(rd, 414,
		    "request target too long") : rd_fail(rd, 400,
		    "malformed request line"));
	if (s->sp2 - s->sp1 - 1 > HTTP_MAX_TARGET)
		return (rd_fail(rd, 414, "request target too long"));
	return (version_check(rd, l + s->sp2, len - s->sp2));
}

/*
 * Request line bytes up to a control byte (HTAB included): 1 stopped at
 * one (p[*j]), 0 more needed, -1 the line is too long.
 */
static int
line0_bytes(struct req_state *s, const unsigned char *p, size_t *j,
    size_t end)
{
	size_t	 lim = end < HTTP_MAX_TARGET + 64 ? end : HTTP_MAX_TARGET + 64;
	size_t	 i;

	for (i = *j; i < lim; i++) {
		i += http_span_plain(p + i, lim - i, 0x21);
		if (i == lim)
			break;
		if (head_class[p[i]] == 0)
			continue;
		if (p[i] != ' ') {
			*j = i;
			return (1);
		}
		if (s->sp1 == 0)
			s->sp1 = i + 1;
		s->sp2 = i + 1;
	}
	*j = i;
	return (lim < end ? -1 : 0);
}

/* Field value bytes: OWS around it not counted; stops at a control byte. */
static void
value_bytes(struct req_state *s, const unsigned char *p, size_t *j,
    size_t end)
{
	size_t		 i = *j, last = 0, n;
	unsigned char	 k;

	if (!s->f_value) {
		while (i < end && head_class[p[i]] == HC_OWS)
			i++;
		if (i == end || head_class[p[i]] != 0) {
			*j = i;
			return;
		}
		s->f_value = 1;
		s->f.value = (unsigned)i;
	}
	while (i < end) {
		if ((n = http_span_plain(p + i, end - i, 0x21)) > 0) {
			i += n;
			last = i;
			continue;
		}
		if ((k = head_class[p[i]]) == 0)
			last = i + 1;
		else if (k == HC_CTL)
			break;
		i++;
	}
	*j = i;
	if (last != 0)
		s->f.value_len = (unsigned)(last - s->f.value);
}

/*
 * The request line's bytes, its CRLF, and an empty line before it (one is
 * tolerated).  Returns 0 to go on, 2 for more bytes, -1 refused.
 */
static int
head_line0(struct http_reader *rd, size_t *j, size_t *end)
{
	struct req_state *s = &rd->parser->s;
	struct buf	*raw = &rd->req->raw;
	const unsigned char *p = (const unsigned char *)raw->data;
	int		 c;

	if (s->hs == HS_LINE0) {
		if ((c = line0_bytes(s, p, j, *end)) == -1)
			return (rd_fail(rd, 414, "request target too long"));
		if (c == 0)
			return (2);
		if (p[*j] == '\n')
			return (rd_fail(rd, 400, "bare LF in request head"));
		if (p[*j] != '\r')
			return (rd_fail(rd, 400,
			    "control character in request line"));
		s->hs = HS_LINE0_LF;
		(*j)++;
		return (0);
	}
	if (p[*j] != '\n')
		return (rd_fail(rd, 400, "bare CR in request head"));
	if (*j == 1) {
		if (s->skipped_crlf)
			return (rd_fail(rd, 400, "empty request line"));
		s->skipped_crlf = 1;
		s->hs = HS_LINE0;
		buf_consume(raw, 2);
		*end -= 2;
		*j = 0;
		return (0);
	}
	if (request_line_check(rd, raw->data, *j - 1) == -1)
		return (-1);
	s->hs = HS_LINE;
	(*j)++;
	return (0);
}

/* A field line's first byte: a name, or the CR of the empty line. */
static int
head_line_start(struct http_reader *rd, int c, size_t j)
{
	struct req_state *s = &rd->parser->s;

	if (c == '\r') {
		s->hs = HS_END_LF;
		return (0);
	}
	if (c == '\n')
		return (rd_fail(rd, 400, "bare LF in request head"));
	if (c == ' ' || c == '\t')
		return (rd_fail(rd, 400, "obsolete line folding in header"));
	if (c == ':')
		return (rd_fail(rd, 400, "empty header name"));
	memset(&s->f, 0, sizeof(s->f));
	s->f.name = (unsigned)j;
	s->f_value = 0;
	s->hs = HS_NAME;
	return (0);
}

/*
 * A field line: the name's tchars up to the colon, the value up to CR,
 * then LF.  Returns 0 to go on, 2 for more bytes, -1 refused.
 */
static int
head_field_bytes(struct http_reader *rd, size_t *j, size_t end)
{
	struct req_state *s = &rd->parser->s;
	const unsigned char *p = (const unsigned char *)rd->req->raw.data;
	size_t		 i;
	int		 c;

	switch (s->hs) {
	case HS_NAME:
		for (i = *j; i < end && http_tchar_tab[p[i]]; i++)
			;
		if ((*j = i) == end)
			return (2);
		if ((c = p[*j]) == ':') {
			s->f.name_len = (unsigned)(*j - s->f.name);
			s->hs = HS_VALUE;
		} else if (c == '\n')
			return (rd_fail(rd, 400, "bare LF in request head"));
		else if (c == '\r')
			return (rd_fail(rd, 400, "header line without colon"));
		else
			return (rd_fail(rd, 400,
			    "invalid character in header name"));
		break;
	case HS_VALUE:
		value_bytes(s, p, j, end);
		if (*j == end)
			return (2);
		if ((c = p[*j]) == '\n')
			return (rd_fail(rd, 400, "bare LF in request head"));
		if (c != '\r')
			return (rd_fail(rd, 400,
			    "control character in header value"));
		if (!s->f_value)
			s->f.value = (unsigned)*j;
		s->hs = HS_VALUE_LF;
		break;
	default:	/* HS_VALUE_LF */
		if (p[*j] != '\n')
			return (rd_fail(rd, 400, "bare CR in request head"));
		if (head_field(rd) == -1)
			return (-1);
		s->hs = HS_LINE;
		break;
	}
	(*j)++;
	return (0);
}

/*
 * The bytes raw[j..end) of the head, one pass, resumable at any byte: line
 * ends exactly CRLF (a bare CR or LF refused at once, never waited on),
 * no control character in the request line, field names of tchars right
 * up to the colon (no space before it, no obs-fold), values of
 * field-value bytes.  *j: where it stopped; 1 at the head's end, 0 when
 * more is needed, -1 refused.
 */
static int
head_bytes(struct http_reader *rd, size_t *j, size_t end)
{
	struct req_state *s = &rd->parser->s;
	int		 c, rc;

	while (*j < end) {
		c = (unsigned char)rd->req->raw.data[*j];
		switch (s->hs) {
		case HS_LINE0:
		case HS_LINE0_LF:
			rc = head_line0(rd, j, &end);
			break;
		case HS_LINE:
			if (head_line_start(rd, c, *j) == -1)
				return (-1);
			if (s->hs == HS_END_LF)
				(*j)++;	/* the CR; a name is read from here */
			rc = 0;
			break;
		case HS_END_LF:
			if (c != '\n')
				return (rd_fail(rd, 400,
				    "bare CR in request head"));
			(*j)++;
			return (1);
		default:
			rc = head_field_bytes(rd, j, end);
			break;
		}
		if (rc == -1)
			return (-1);
		if (rc == 2)
			return (0);
	}
	return (0);
}

/*
 * Take head bytes, a block at a time, into the request's raw head until
 * the empty line.  Returns the bytes used; *complete when the head ended.
 * The head may not pass max_header_bytes (431; 414 while still in the
 * request line past HTTP_MAX_TARGET).
 */
ssize_t
http_head_take(struct http_reader *rd, const char *data, size_t len,
    int *complete)
{
	struct req_state *s = &rd->parser->s;
	struct buf	*raw = &rd->req->raw;
	size_t		 off = 0, n, j;
	int		 rc;

	*complete = 0;
	while (off < len) {
		n = len - off;
		if (n > HTTP_HEAD_BLOCK)
			n = HTTP_HEAD_BLOCK;
		if (n > rd->max_header_bytes + 1 - raw->len)
			n = rd->max_header_bytes + 1 - raw->len;
		j = raw->len;
		if (buf_append(raw, data + off, n) == -1)
			return (rd_fail(rd, 400, "out of memory"));
		if ((rc = head_bytes(rd, &j, raw->len)) == -1)
			return (-1);
		if (rc == 1) {
			/* What follows the head is not used here. */
			off += n - (raw->len - j);
			buf_truncate(raw, j);
			if (raw->len > rd->max_header_bytes)
				return (rd_fail(rd, 431,
				    "request head too large"));
			*complete = 1;
			return ((ssize_t)off);
		}
		off += n;
		if (raw->len > rd->max_header_bytes) {
			if (s->hs <= HS_LINE0_LF && raw->len > HTTP_MAX_TARGET)
				return (rd_fail(rd, 414,
				    "request target too long"));
			return (rd_fail(rd, 431, "request head too large"));
		}
	}
	return ((ssize_t)off);
}

