/*
 * Client requests in, on top of http-parser 2.9.4.  Pure: no sockets, no
 * globals.
 *
 * Debian's http-parser is built without HTTP_PARSER_STRICT: it takes bare
 * LF as a line end, folds obs-fold lines into the value, allows space
 * before a header's colon, and in chunked bodies accepts any two bytes
 * after chunk data and an LF inside chunk extensions.  Each of these lets
 * two parsers disagree on where a request ends (request smuggling), so the
 * request reader checks the raw head and the chunked framing itself and
 * hands http-parser only what passed.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "http.h"

#define HTTP_MAX_TARGET		8192	/* longer request target: 414 */
#define HTTP_MAX_CHUNK_LINE	4096	/* chunk size line with extensions */
#define HTTP_READER_KEEP	2048	/* room kept between requests */

/* Chunked framing check, run on body bytes before http-parser sees them. */
enum chunk_state {
	CH_SIZE = 0,		/* hex digits of a chunk size */
	CH_EXT,			/* after the size: BWS, ";ext", until CR */
	CH_SIZE_LF,		/* CR seen after the size line */
	CH_DATA,		/* chunk data */
	CH_DATA_CR,		/* CRLF after chunk data */
	CH_DATA_LF,
	CH_TRAILER,		/* trailer lines after the last chunk */
	CH_TRAILER_LF,
	CH_END_LF,		/* final CRLF */
	CH_DONE
};

/* Where the chunked framing check is; all zero for a new body. */
struct chunker {
	enum chunk_state state;
	uint64_t	 size;		/* current chunk size / remaining */
	unsigned	 digits;
	size_t		 line;		/* bytes in the current chunk line */
	size_t		 trailer;	/* bytes of trailers so far */
	uint64_t	 body;		/* declared chunk bytes so far */
	int		 pend_status;	/* framing fault found ahead */
	const char	*pend_msg;
};

/* Per-request state of the reader: all zero for a new request. */
struct req_state {
	int		 last_was_value;
	int		 in_body;	/* the head is through */
	size_t		 nhost;
	int		 has_cl;
	int		 has_te;
	size_t		 line_start;	/* offset of the current head line */
	int		 first_line_done;
	int		 skipped_crlf;	/* one leading empty line tolerated */
	int		 headers_done;	/* http-parser passed the head */
	int		 body_seen;	/* a body byte arrived */
	int		 chunked;	/* validate chunked framing */
	struct chunker	 ck;
};

/* Request reader state that the header does not need to show. */
struct http_reqctx {
	http_parser	 hp;
	struct http_reader *rd;
	struct buf	 field;		/* header name accumulation */
	struct buf	 value;		/* header value accumulation */
	struct buf	 url;
	struct req_state s;
};

/* What a head's Transfer-Encoding fields said, all of them together. */
struct te_count {
	int		 nchunked;	/* chunked codings */
	int		 chunked_last;	/* the last coding is chunked */
	int		 unknown;	/* other codings */
	int		 empty;		/* an empty field */
};

static int	req_on_url(http_parser *, const char *, size_t);
static int	req_on_header_field(http_parser *, const char *, size_t);
static int	req_on_header_value(http_parser *, const char *, size_t);
static int	req_on_headers_complete(http_parser *);
static int	req_on_body(http_parser *, const char *, size_t);
static int	req_on_message_complete(http_parser *);

static const http_parser_settings req_settings = {
	.on_url = req_on_url,
	.on_header_field = req_on_header_field,
	.on_header_value = req_on_header_value,
	.on_headers_complete = req_on_headers_complete,
	.on_body = req_on_body,
	.on_message_complete = req_on_message_complete,
};

void
http_headers_free(struct http_header *h, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

/* http-parser drops the OWS before a field value, not the OWS after it. */
void
http_ows_trim(struct buf *b)
{
	while (b->len > 0 &&
	    (b->data[b->len - 1] == ' ' || b->data[b->len - 1] == '\t'))
		b->data[--b->len] = '\0';
}

/* Append a copy of name and value; -1 (nothing added) out of memory. */
int
http_headers_add(struct http_header **h, size_t *n, const char *name,
    size_t namelen, const char *value, size_t valuelen)
{
	struct http_header *nh;
	char		*nm, *val;

	if ((nm = strndup(name, namelen)) == NULL)
		return (-1);
	if ((val = strndup(value, valuelen)) == NULL) {
		free(nm);
		return (-1);
	}
	nh = reallocarray(*h, *n + 1, sizeof(**h));
	if (nh == NULL) {
		free(nm);
		free(val);
		return (-1);
	}
	nh[*n].name = nm;
	nh[*n].value = val;
	*h = nh;
	(*n)++;
	return (0);
}

const char *
http_request_header(const struct http_request *req, const char *name)
{
	size_t	 i;

	for (i = 0; i < req->nheaders; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return (req->headers[i].value);
	return (NULL);
}

/* Frees the request and the struct itself (it came from the reader). */
void
http_request_free(struct http_request *req)
{
	if (req == NULL)
		return;
	free(req->path);
	free(req->query);
	free(req->url);
	http_headers_free(req->headers, req->nheaders);
	buf_free(&req->body);
	free(req);
}

static int
rd_fail(struct http_reader *rd, int status, const char *msg)
{
	if (rd->err_status != 0)
		return (-1);	/* keep the first cause */
	rd->err_status = status;
	rd->err_msg = msg;
	switch (status) {
	case 413:
		rd->err_code = "body_too_large";
		break;
	case 414:
		rd->err_code = "uri_too_long";
		break;
	case 431:
		rd->err_code = "headers_too_large";
		break;
	case 501:
		rd->err_code = "not_implemented";
		break;
	default:
		rd->err_status = 400;
		rd->err_code = "bad_request";
		break;
	}
	return (-1);
}

/*
 * The per-request part of the reader, ready for the next request.  Room
 * an ordinary head fits in is kept, so a kept-alive connection allocates
 * nothing per request; a large head's room goes back.
 */
static void
rd_reset(struct http_reader *rd)
{
	struct http_reqctx *cx = rd->parser;

	http_request_free(rd->req);
	rd->req = NULL;
	buf_release(&rd->head, HTTP_READER_KEEP);
	rd->done = 0;
	rd->continue_sent = 0;
	if (cx == NULL)
		return;
	buf_release(&cx->field, HTTP_READER_KEEP);
	buf_release(&cx->value, HTTP_READER_KEEP);
	buf_release(&cx->url, HTTP_READER_KEEP);
	memset(&cx->s, 0, sizeof(cx->s));
	http_parser_init(&cx->hp, HTTP_REQUEST);
	cx->hp.data = cx;
}

void
http_reader_init(struct http_reader *rd, size_t max_header, size_t max_body)
{
	struct http_reqctx *cx;

	memset(rd, 0, sizeof(*rd));
	buf_init(&rd->head);
	rd->max_header_bytes = max_header;
	rd->max_body_bytes = max_body;
	if ((cx = calloc(1, sizeof(*cx))) != NULL) {
		cx->rd = rd;
		buf_init(&cx->field);
		buf_init(&cx->value);
		buf_init(&cx->url);
	}
	rd->parser = cx;
	rd_reset(rd);
}

void
http_reader_free(struct http_reader *rd)
{
	struct http_reqctx *cx = rd->parser;

	http_request_free(rd->req);
	rd->req = NULL;
	buf_free(&rd->head);
	if (cx != NULL) {
		buf_free(&cx->field);
		buf_free(&cx->value);
		buf_free(&cx->url);
		free(cx);
	}
	rd->parser = NULL;
}

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
	static const char	 reg[] = "-._~%!$&'()*+,;=";
	size_t			 i = 0;

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
			if (!isalnum((unsigned char)v[i]) &&
			    strchr(reg, v[i]) == NULL)
				return (0);
	}
	if (i < len && v[i++] != ':')
		return (0);
	for (; i < len; i++)
		if (!isdigit((unsigned char)v[i]))
			return (0);
	return (1);
}

/*
 * One field line of the head, p to eol (no CRLF): a token name right
 * before the colon, a value without control characters; Host, once and
 * well-formed; Content-Length and Transfer-Encoding noted.
 */
static int
head_field(struct http_reader *rd, const char *p, const char *eol,
    struct te_count *te)
{
	struct http_reqctx *cx = rd->parser;
	const char	*colon, *q, *e;

	if (*p == ' ' || *p == '\t')
		return (rd_fail(rd, 400, "obsolete line folding in header"));
	if ((colon = memchr(p, ':', (size_t)(eol - p))) == NULL)
		return (rd_fail(rd, 400, "header line without colon"));
	if (colon == p)
		return (rd_fail(rd, 400, "empty header name"));
	for (q = p; q < colon; q++)
		if (!http_tchar((unsigned char)*q))
			return (rd_fail(rd, 400,
			    "invalid character in header name"));
	if (!http_field_ok(colon + 1, (size_t)(eol - colon - 1)))
		return (rd_fail(rd, 400, "control character in header value"));
	if (colon - p == 4 && strncasecmp(p, "Host", 4) == 0) {
		if (++cx->s.nhost > 1)
			return (rd_fail(rd, 400, "more than one Host"));
		for (q = colon + 1; q < eol && (*q == ' ' || *q == '\t'); q++)
			;
		for (e = eol; e > q && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		if (!host_valid(q, (size_t)(e - q)))
			return (rd_fail(rd, 400, "invalid Host"));
	} else if (colon - p == 14 &&
	    strncasecmp(p, "Content-Length", 14) == 0) {
		cx->s.has_cl = 1;
	} else if (colon - p == 17 &&
	    strncasecmp(p, "Transfer-Encoding", 17) == 0) {
		cx->s.has_te = 1;
		te_scan(colon + 1, (size_t)(eol - colon - 1), te);
	}
	return (0);
}

/*
 * The complete raw head (request line, fields, empty line; every line end
 * is CRLF, checked while it arrived).  Refuse what http-parser would let
 * through: obs-fold, bad field names (space before the colon), control
 * characters in values, repeated Host, CL with TE, unknown codings.
 */
static int
head_scan(struct http_reader *rd)
{
	struct http_reqctx *cx = rd->parser;
	const char	*p = rd->head.data, *end = p + rd->head.len;
	const char	*eol;
	struct te_count	 te;

	memset(&te, 0, sizeof(te));
	/* Skip the request line. */
	if ((eol = memmem(p, (size_t)(end - p), "\r\n", 2)) == NULL)
		return (rd_fail(rd, 400, "incomplete request head"));
	for (p = eol + 2; p < end; p = eol + 2) {
		eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (eol == NULL)
			return (rd_fail(rd, 400, "incomplete request head"));
		if (eol == p)
			break;		/* the empty line */
		if (head_field(rd, p, eol, &te) == -1)
			return (-1);
	}
	if (p >= end)
		return (rd_fail(rd, 400, "incomplete request head"));
	if (cx->s.has_cl && cx->s.has_te)
		return (rd_fail(rd, 400,
		    "both Content-Length and Transfer-Encoding"));
	if (cx->s.has_te) {
		if (te.empty || te.nchunked > 1 ||
		    (te.nchunked == 1 && !te.chunked_last))
			return (rd_fail(rd, 400, "invalid Transfer-Encoding"));
		if (te.unknown > 0)
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
 * The first line is complete: a target over HTTP_MAX_TARGET is 414.
 * http-parser takes HTAB and FF inside the target; the Gateway's request
 * line must not get them.
 */
static int
request_line_check(struct http_reader *rd, size_t start, size_t end)
{
	const char	*l = rd->head.data + start;
	const char	*sp1, *sp2;
	size_t		 len = end - start, i;

	for (i = 0; i < len; i++)
		if (!http_field_char((unsigned char)l[i]) || l[i] == '\t')
			return (rd_fail(rd, 400,
			    "control character in request line"));
	sp1 = memchr(l, ' ', len);
	sp2 = memrchr(l, ' ', len);
	if (sp1 == NULL || sp2 == sp1)
		return (len > HTTP_MAX_TARGET ? rd_fail(rd, 414,
		    "request target too long") : rd_fail(rd, 400,
		    "malformed request line"));
	if ((size_t)(sp2 - sp1 - 1) > HTTP_MAX_TARGET)
		return (rd_fail(rd, 414, "request target too long"));
	return (version_check(rd, sp2 + 1, (size_t)(l + len - sp2 - 1)));
}

/*
 * Take head bytes until the empty line.  Returns bytes used; *complete
 * when the head ended.  Line ends must be CRLF: a CR not followed by LF or
 * an LF without CR is refused at once, never waited on.
 */
static ssize_t
head_take(struct http_reader *rd, const char *data, size_t len,
    int *complete)
{
	struct http_reqctx *cx = rd->parser;
	size_t		 i, pos;
	unsigned char	 c, prev;

	*complete = 0;
	prev = rd->head.len ? (unsigned char)rd->head.data[rd->head.len - 1] :
	    0;
	for (i = 0; i < len; i++) {
		c = (unsigned char)data[i];
		if (prev == '\r' && c != '\n')
			return (rd_fail(rd, 400, "bare CR in request head"));
		if (c == '\n' && prev != '\r')
			return (rd_fail(rd, 400, "bare LF in request head"));
		pos = rd->head.len + i + 1;	/* head length with c */
		if (pos > rd->max_header_bytes) {
			if (!cx->s.first_line_done && pos > HTTP_MAX_TARGET)
				return (rd_fail(rd, 414,
				    "request target too long"));
			return (rd_fail(rd, 431, "request head too large"));
		}
		if (!cx->s.first_line_done && pos - cx->s.line_start >
		    HTTP_MAX_TARGET + 64)
			return (rd_fail(rd, 414, "request target too long"));
		prev = c;
		if (c != '\n')
			continue;
		if (buf_append(&rd->head, data, i + 1) == -1)
			return (rd_fail(rd, 400, "out of memory"));
		pos = rd->head.len;
		if (pos - cx->s.line_start == 2) {
			/* An empty line. */
			if (!cx->s.first_line_done) {
				if (cx->s.skipped_crlf)
					return (rd_fail(rd, 400,
					    "empty request line"));
				cx->s.skipped_crlf = 1;
				buf_reset(&rd->head);
				cx->s.line_start = 0;
				return ((ssize_t)(i + 1));
			}
			*complete = 1;
			return ((ssize_t)(i + 1));
		}
		if (!cx->s.first_line_done) {
			cx->s.first_line_done = 1;
			if (request_line_check(rd, cx->s.line_start,
			    pos - 2) == -1)
				return (-1);
		}
		cx->s.line_start = pos;
		return ((ssize_t)(i + 1));
	}
	if (buf_append(&rd->head, data, len) == -1)
		return (rd_fail(rd, 400, "out of memory"));
	return ((ssize_t)len);
}

/*
 * A byte of a chunk size line: hex digits without overflow, then
 * extensions without control characters, then CRLF.  NULL when it fits,
 * else why not (*status 413 past max_body).
 */
static const char *
chunk_size_line(struct chunker *ck, unsigned char c, size_t max_body,
    int *status)
{
	switch (ck->state) {
	case CH_SIZE:
		if (isxdigit(c)) {
			if (ck->size > (UINT64_MAX >> 4))
				return ("chunk size too large");
			ck->size = ck->size * 16 + (uint64_t)(isdigit(c) ?
			    c - '0' : tolower(c) - 'a' + 10);
			ck->digits++;
		} else if (ck->digits > 0 && (c == ';' || c == ' ')) {
			/* http-parser takes no HTAB here: nor do we. */
			ck->state = CH_EXT;
		} else if (ck->digits > 0 && c == '\r') {
			ck->state = CH_SIZE_LF;
		} else
			return ("invalid chunk size");
		break;
	case CH_EXT:
		if (c == '\r')
			ck->state = CH_SIZE_LF;
		else if (!http_field_char(c))
			return ("invalid chunk extension");
		break;
	default:	/* CH_SIZE_LF */
		if (c != '\n')
			return ("bare CR in chunk size");
		ck->line = 0;
		ck->digits = 0;
		if (ck->size == 0) {
			ck->state = CH_TRAILER;
			return (NULL);
		}
		if (ck->size > max_body || ck->body > max_body - ck->size) {
			*status = 413;
			return ("body too large");
		}
		ck->body += ck->size;
		ck->state = CH_DATA;
		return (NULL);
	}
	if (++ck->line > HTTP_MAX_CHUNK_LINE)
		return ("chunk line too long");
	return (NULL);
}

/*
 * A byte of the trailer section: header lines without obs-fold or control
 * characters, within max_header (*status 431), then the final CRLF.
 */
static const char *
chunk_trailer(struct chunker *ck, unsigned char c, size_t max_header,
    int *status)
{
	if (ck->state != CH_TRAILER) {	/* CH_TRAILER_LF, CH_END_LF */
		if (c != '\n')
			return ("bare CR in trailers");
		ck->line = 0;
		ck->state = ck->state == CH_END_LF ? CH_DONE : CH_TRAILER;
		return (NULL);
	}
	if (ck->line == 0 && c == '\r') {
		ck->state = CH_END_LF;
		return (NULL);
	}
	if (ck->line == 0 && (c == ' ' || c == '\t'))
		return ("obsolete line folding in trailer");
	if (c == '\r')
		ck->state = CH_TRAILER_LF;
	else if (!http_field_char(c))
		return ("control character in trailer");
	ck->line++;
	if (++ck->trailer > max_header) {
		*status = 431;
		return ("trailers too large");
	}
	return (NULL);
}

/*
 * Chunked framing, strictly: sizes in hex without overflow, extensions
 * without control characters, exactly CRLF after each line and after the
 * data, trailers as header lines.  Returns how many bytes of data belong
 * to this message (all, or up to the final CRLF), or the bytes before a
 * fault, noted in pend_status: http-parser still reads those, so whichever
 * of the two finds the first fault in the stream decides, however the
 * bytes were cut.
 */
static size_t
chunk_check(struct http_reader *rd, const char *data, size_t len)
{
	struct chunker	*ck = &rd->parser->s.ck;
	const char	*why = NULL;
	size_t		 i = 0, n;
	unsigned char	 c;
	int		 status = 400;

	while (i < len && ck->state != CH_DONE && why == NULL) {
		c = (unsigned char)data[i];
		switch (ck->state) {
		case CH_DATA:
			n = len - i;
			if ((uint64_t)n > ck->size)
				n = (size_t)ck->size;
			ck->size -= n;
			i += n;
			if (ck->size == 0)
				ck->state = CH_DATA_CR;
			continue;
		case CH_DATA_CR:
		case CH_DATA_LF:
			if (c != (ck->state == CH_DATA_CR ? '\r' : '\n'))
				why = "missing CRLF after chunk data";
			else
				ck->state = ck->state == CH_DATA_CR ?
				    CH_DATA_LF : CH_SIZE;
			break;
		case CH_TRAILER:
		case CH_TRAILER_LF:
		case CH_END_LF:
			why = chunk_trailer(ck, c, rd->max_header_bytes,
			    &status);
			break;
		default:
			why = chunk_size_line(ck, c, rd->max_body_bytes,
			    &status);
			break;
		}
		if (why == NULL)
			i++;
	}
	if (why != NULL) {
		ck->pend_status = status;
		ck->pend_msg = why;
	}
	return (i);
}

/* Run http-parser on bytes that passed our checks; map its verdict. */
static ssize_t
parse_run(struct http_reader *rd, const char *data, size_t len)
{
	struct http_reqctx *cx = rd->parser;
	enum http_errno	 e;
	size_t		 n;

	n = http_parser_execute(&cx->hp, &req_settings, data, len);
	e = HTTP_PARSER_ERRNO(&cx->hp);
	if (e == HPE_PAUSED) {
		rd->done = 1;
		return ((ssize_t)n);
	}
	if (e == HPE_OK)
		return ((ssize_t)n);
	if (rd->err_status != 0)
		return (-1);	/* a callback said why */
	switch (e) {
	case HPE_HEADER_OVERFLOW:
		return (rd_fail(rd, 431, "request head too large"));
	case HPE_INVALID_TRANSFER_ENCODING:
		return (rd_fail(rd, 400, "invalid Transfer-Encoding"));
	case HPE_UNEXPECTED_CONTENT_LENGTH:
		return (rd_fail(rd, 400, "conflicting Content-Length"));
	case HPE_INVALID_CONTENT_LENGTH:
		return (rd_fail(rd, 400, "invalid Content-Length"));
	case HPE_INVALID_CHUNK_SIZE:
		return (rd_fail(rd, 400, "invalid chunk size"));
	default:
		return (rd_fail(rd, 400, http_errno_description(e)));
	}
}

enum http_feed
http_reader_feed(struct http_reader *rd, const char *data, size_t len,
    size_t *used)
{
	struct http_reqctx *cx = rd->parser;
	size_t		 off = 0, want;
	ssize_t		 n;
	int		 complete;

	*used = 0;
	if (cx != NULL)
		cx->rd = rd;	/* the reader may have moved since init */
	if (cx == NULL && rd->err_status == 0)
		rd_fail(rd, 400, "out of memory");
	if (rd->err_status != 0)
		return (HTTP_FEED_ERROR);
	if (rd->done)
		return (HTTP_FEED_DONE);
	while (off < len && !rd->done) {
		if (!cx->s.in_body) {
			n = head_take(rd, data + off, len - off, &complete);
			if (n == -1)
				goto fail;
			off += (size_t)n;
			if (!complete)
				continue;
			if (head_scan(rd) == -1)
				goto fail;
			cx->s.in_body = 1;
			n = parse_run(rd, rd->head.data, rd->head.len);
			if (n == -1)
				goto fail;
			if ((size_t)n != rd->head.len && !rd->done) {
				rd_fail(rd, 400, "malformed request head");
				goto fail;
			}
			continue;
		}
		want = len - off;
		if (cx->s.chunked)
			want = chunk_check(rd, data + off, want);
		cx->s.body_seen = 1;
		/* Zero bytes would tell http-parser the peer closed. */
		n = want > 0 ? parse_run(rd, data + off, want) : 0;
		if (n == -1)
			goto fail;
		off += (size_t)n;
		if (cx->s.ck.pend_status != 0) {
			rd_fail(rd, cx->s.ck.pend_status, cx->s.ck.pend_msg);
			goto fail;
		}
		if (!rd->done && (size_t)n != want) {
			rd_fail(rd, 400, "malformed request body");
			goto fail;
		}
	}
	*used = off;
	return (rd->done ? HTTP_FEED_DONE : HTTP_FEED_MORE);
fail:
	*used = off;
	return (HTTP_FEED_ERROR);
}

struct http_request *
http_reader_take(struct http_reader *rd)
{
	struct http_request *req;

	if (!rd->done)
		return (NULL);
	req = rd->req;
	rd->req = NULL;
	rd_reset(rd);
	return (req);
}

int
http_reader_wants_continue(const struct http_reader *rd)
{
	const struct http_reqctx *cx = rd->parser;

	return (cx != NULL && rd->req != NULL && cx->s.headers_done &&
	    !rd->done && rd->req->expect_continue && !rd->continue_sent &&
	    !cx->s.body_seen && rd->err_status == 0);
}

const struct http_request *
http_reader_current(const struct http_reader *rd)
{
	const struct http_reqctx *cx = rd->parser;

	if (cx == NULL || !cx->s.headers_done || rd->err_status != 0)
		return (NULL);
	return (rd->req);
}

static int
req_on_url(http_parser *hp, const char *at, size_t len)
{
	struct http_reqctx *cx = hp->data;

	if (buf_append(&cx->url, at, len) == -1)
		return (rd_fail(cx->rd, 400, "out of memory"));
	return (0);
}

/* A field and its value are complete: keep them (not trailers). */
static int
req_header_flush(struct http_reqctx *cx)
{
	struct http_reader *rd = cx->rd;

	if (!cx->s.last_was_value)
		return (0);
	http_ows_trim(&cx->value);
	if (rd->req == NULL &&
	    (rd->req = calloc(1, sizeof(*rd->req))) == NULL)
		return (rd_fail(rd, 400, "out of memory"));
	if (http_headers_add(&rd->req->headers, &rd->req->nheaders,
	    cx->field.data, cx->field.len, cx->value.data ? cx->value.data :
	    "", cx->value.len) == -1)
		return (rd_fail(rd, 400, "out of memory"));
	buf_reset(&cx->field);
	buf_reset(&cx->value);
	cx->s.last_was_value = 0;
	return (0);
}

static int
req_on_header_field(http_parser *hp, const char *at, size_t len)
{
	struct http_reqctx *cx = hp->data;

	if (cx->s.headers_done)
		return (0);	/* trailers: dropped */
	if (req_header_flush(cx) == -1)
		return (-1);
	if (buf_append(&cx->field, at, len) == -1)
		return (rd_fail(cx->rd, 400, "out of memory"));
	return (0);
}

static int
req_on_header_value(http_parser *hp, const char *at, size_t len)
{
	struct http_reqctx *cx = hp->data;

	if (cx->s.headers_done)
		return (0);
	cx->s.last_was_value = 1;
	if (buf_append(&cx->value, at, len) == -1)
		return (rd_fail(cx->rd, 400, "out of memory"));
	return (0);
}

/*
 * Split the target into path and query.  In absolute-form
 * ("http://host/p?q", RFC 9112 section 3.2.2) the path starts after the
 * authority; a fragment is never part of either.
 */
static int
req_split_url(struct http_request *req)
{
	struct http_parser_url u;
	const char	*url = req->url, *q, *h;
	size_t		 len = strlen(url), plen;
	uint16_t	 off;

	if (url[0] != '/') {
		http_parser_url_init(&u);
		if (http_parser_parse_url(url, len, 0, &u) == 0 &&
		    (u.field_set & (1 << UF_SCHEMA)) &&
		    (u.field_set & (1 << UF_PATH))) {
			off = u.field_data[UF_PATH].off;
			url += off;
			len -= off;
		}
	}
	h = memchr(url, '#', len);
	if (h != NULL)
		len = (size_t)(h - url);
	q = memchr(url, '?', len);
	plen = q ? (size_t)(q - url) : len;
	if ((req->path = strndup(url, plen)) == NULL)
		return (-1);
	if (q != NULL &&
	    (req->query = strndup(q + 1, len - plen - 1)) == NULL)
		return (-1);
	return (0);
}

static int
req_on_headers_complete(http_parser *hp)
{
	struct http_reqctx *cx = hp->data;
	struct http_reader *rd = cx->rd;
	struct http_request *req;
	const char	*v;
	int		 len;

	if (req_header_flush(cx) == -1)
		return (-1);
	if (rd->req == NULL &&
	    (rd->req = calloc(1, sizeof(*rd->req))) == NULL)
		return (rd_fail(rd, 400, "out of memory"));
	req = rd->req;
	cx->s.headers_done = 1;	/* later header callbacks are trailers */
	if (hp->http_major != 1)
		return (rd_fail(rd, 400, "unsupported HTTP version"));
	if (hp->http_minor >= 1 && cx->s.nhost == 0)
		return (rd_fail(rd, 400, "missing Host"));
	/* RFC 9112 section 6.1: an HTTP/1.0 peer may not know chunked. */
	if (hp->http_minor == 0 && cx->s.has_te)
		return (rd_fail(rd, 400, "Transfer-Encoding in HTTP/1.0"));
	len = snprintf(req->method, sizeof(req->method), "%s",
	    http_method_str((enum http_method)hp->method));
	if (len < 0 || (size_t)len >= sizeof(req->method))
		return (rd_fail(rd, 400, "method not supported"));
	if ((req->url = strndup(cx->url.data ? cx->url.data : "",
	    cx->url.len)) == NULL || req_split_url(req) == -1)
		return (rd_fail(rd, 400, "out of memory"));
	req->http_minor = hp->http_minor;
	req->keep_alive = http_should_keep_alive(hp);
	v = http_request_header(req, "Expect");
	if (v != NULL && strcasecmp(v, "100-continue") == 0 &&
	    hp->http_minor >= 1)
		req->expect_continue = 1;
	if ((hp->flags & F_CONTENTLENGTH) &&
	    hp->content_length > rd->max_body_bytes)
		return (rd_fail(rd, 413, "body too large"));
	if (hp->flags & F_CHUNKED)
		cx->s.chunked = 1;
	return (0);
}

static int
req_on_body(http_parser *hp, const char *at, size_t len)
{
	struct http_reqctx *cx = hp->data;
	struct http_reader *rd = cx->rd;

	if (len > rd->max_body_bytes ||
	    rd->req->body.len > rd->max_body_bytes - len)
		return (rd_fail(rd, 413, "body too large"));
	if (buf_append(&rd->req->body, at, len) == -1)
		return (rd_fail(rd, 400, "out of memory"));
	return (0);
}

static int
req_on_message_complete(http_parser *hp)
{
	struct http_reqctx *cx = hp->data;

	if (cx->rd->req == NULL)
		return (rd_fail(cx->rd, 400, "malformed request"));
	cx->rd->req->keep_alive = http_should_keep_alive(hp);
	http_parser_pause(hp, 1);
	return (0);
}

