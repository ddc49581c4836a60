/*
 * HTTP/1.1 on top of http-parser 2.9.4: client requests in, Gateway
 * answers in, response heads out.  Pure: no sockets, no globals.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <http_parser.h>

#include "brokerd.h"

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

/* Request reader state that the shared header does not need to show. */
struct reqctx {
	http_parser	 hp;
	struct http_reader *rd;
	struct buf	 value;		/* header value accumulation */
	struct buf	 url;
	size_t		 line_start;	/* offset of the current head line */
	int		 first_line_done;
	int		 skipped_crlf;	/* one leading empty line tolerated */
	int		 headers_done;	/* http-parser passed the head */
	int		 body_seen;	/* a body byte arrived */
	int		 chunked;	/* validate chunked framing */
	enum chunk_state cstate;
	uint64_t	 csize;		/* current chunk size / remaining */
	unsigned	 cdigits;
	size_t		 cline;		/* bytes in the current chunk line */
	size_t		 ctrailer;	/* bytes of trailers so far */
	uint64_t	 cbody;		/* declared chunk bytes so far */
	int		 pend_status;	/* framing fault found ahead */
	const char	*pend_msg;
};

/* Response reader state. */
struct respctx {
	http_parser	 hp;
	struct http_resp_reader *rr;
	int		 interim;	/* the current message is a 1xx */
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

static int	resp_on_message_begin(http_parser *);
static int	resp_on_header_field(http_parser *, const char *, size_t);
static int	resp_on_header_value(http_parser *, const char *, size_t);
static int	resp_on_headers_complete(http_parser *);
static int	resp_on_body(http_parser *, const char *, size_t);
static int	resp_on_message_complete(http_parser *);

static const http_parser_settings resp_settings = {
	.on_message_begin = resp_on_message_begin,
	.on_header_field = resp_on_header_field,
	.on_header_value = resp_on_header_value,
	.on_headers_complete = resp_on_headers_complete,
	.on_body = resp_on_body,
	.on_message_complete = resp_on_message_complete,
};

/* ---------------------------------------------------------- requests */

static void
headers_free(struct http_header *h, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
}

/* http-parser drops the OWS before a field value, not the OWS after it. */
static void
ows_trim(struct buf *b)
{
	while (b->len > 0 &&
	    (b->data[b->len - 1] == ' ' || b->data[b->len - 1] == '\t'))
		b->data[--b->len] = '\0';
}

static int
headers_add(struct http_header **h, size_t *n, const char *name,
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
	headers_free(req->headers, req->nheaders);
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
	struct reqctx	*cx = rd->parser;

	http_request_free(rd->req);
	rd->req = NULL;
	buf_release(&rd->head, HTTP_READER_KEEP);
	buf_release(&rd->field, HTTP_READER_KEEP);
	rd->in_body = 0;
	rd->done = 0;
	rd->last_was_value = 0;
	rd->nhost = 0;
	rd->has_cl = 0;
	rd->has_te = 0;
	rd->continue_sent = 0;
	if (cx == NULL)
		return;
	buf_release(&cx->value, HTTP_READER_KEEP);
	buf_release(&cx->url, HTTP_READER_KEEP);
	cx->line_start = 0;
	cx->first_line_done = 0;
	cx->skipped_crlf = 0;
	cx->headers_done = 0;
	cx->body_seen = 0;
	cx->chunked = 0;
	cx->cstate = CH_SIZE;
	cx->csize = 0;
	cx->cdigits = 0;
	cx->cline = 0;
	cx->ctrailer = 0;
	cx->cbody = 0;
	cx->pend_status = 0;
	cx->pend_msg = NULL;
	http_parser_init(&cx->hp, HTTP_REQUEST);
	cx->hp.data = cx;
}

void
http_reader_init(struct http_reader *rd, size_t max_header, size_t max_body)
{
	struct reqctx	*cx;

	memset(rd, 0, sizeof(*rd));
	buf_init(&rd->head);
	buf_init(&rd->field);
	rd->max_header_bytes = max_header;
	rd->max_body_bytes = max_body;
	if ((cx = calloc(1, sizeof(*cx))) != NULL) {
		cx->rd = rd;
		buf_init(&cx->value);
		buf_init(&cx->url);
	}
	rd->parser = cx;
	rd_reset(rd);
}

void
http_reader_free(struct http_reader *rd)
{
	struct reqctx	*cx = rd->parser;

	http_request_free(rd->req);
	rd->req = NULL;
	buf_free(&rd->head);
	buf_free(&rd->field);
	if (cx != NULL) {
		buf_free(&cx->value);
		buf_free(&cx->url);
		free(cx);
	}
	rd->parser = NULL;
}

static int
is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
	    (c >= 'a' && c <= 'z'))
		return (1);
	return (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int
is_ctl(unsigned char c)
{
	return ((c < 0x20 && c != '\t') || c == 0x7f);
}

/*
 * Read a Transfer-Encoding value into counts: chunked codings, whether one
 * is not last, unknown codings.  Parameters (";q=...") are not allowed on
 * chunked and make any other coding unknown anyway.
 */
static int
te_scan(const char *v, size_t len, int *nchunked, int *chunked_last,
    int *unknown)
{
	size_t	 i = 0, s, e;

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
				(*nchunked)++;
				*chunked_last = 1;
			} else {
				(*unknown)++;
				*chunked_last = 0;
			}
		}
		if (i >= len)
			break;
		i++;	/* the comma */
	}
	return (0);
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
 * The complete raw head (request line, fields, empty line; every line end
 * is CRLF, checked while it arrived).  Refuse what http-parser would let
 * through: obs-fold, bad field names (space before the colon), control
 * characters in values, repeated Host, CL with TE, unknown codings.
 */
static int
head_scan(struct http_reader *rd)
{
	const char	*p = rd->head.data, *end = p + rd->head.len;
	const char	*eol, *colon, *q, *e;
	int		 nchunked = 0, chunked_last = 0, unknown = 0;
	int		 te_empty = 0;

	/* Skip the request line. */
	if ((eol = memmem(p, (size_t)(end - p), "\r\n", 2)) == NULL)
		return (rd_fail(rd, 400, "incomplete request head"));
	for (p = eol + 2; p < end; p = eol + 2) {
		eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (eol == NULL)
			return (rd_fail(rd, 400, "incomplete request head"));
		if (eol == p)
			break;		/* the empty line */
		if (*p == ' ' || *p == '\t')
			return (rd_fail(rd, 400,
			    "obsolete line folding in header"));
		if ((colon = memchr(p, ':', (size_t)(eol - p))) == NULL)
			return (rd_fail(rd, 400, "header line without colon"));
		if (colon == p)
			return (rd_fail(rd, 400, "empty header name"));
		for (q = p; q < colon; q++)
			if (!is_tchar((unsigned char)*q))
				return (rd_fail(rd, 400,
				    "invalid character in header name"));
		for (q = colon + 1; q < eol; q++)
			if (is_ctl((unsigned char)*q))
				return (rd_fail(rd, 400,
				    "control character in header value"));
		if (colon - p == 4 && strncasecmp(p, "Host", 4) == 0) {
			if (++rd->nhost > 1)
				return (rd_fail(rd, 400, "more than one Host"));
			for (q = colon + 1; q < eol && (*q == ' ' ||
			    *q == '\t'); q++)
				;
			for (e = eol; e > q && (e[-1] == ' ' ||
			    e[-1] == '\t'); e--)
				;
			if (!host_valid(q, (size_t)(e - q)))
				return (rd_fail(rd, 400, "invalid Host"));
		} else if (colon - p == 14 &&
		    strncasecmp(p, "Content-Length", 14) == 0) {
			rd->has_cl = 1;
		} else if (colon - p == 17 &&
		    strncasecmp(p, "Transfer-Encoding", 17) == 0) {
			rd->has_te = 1;
			q = colon + 1;
			while (q < eol && (*q == ' ' || *q == '\t'))
				q++;
			if (q == eol)
				te_empty = 1;
			te_scan(q, (size_t)(eol - q), &nchunked, &chunked_last,
			    &unknown);
		}
	}
	if (p >= end)
		return (rd_fail(rd, 400, "incomplete request head"));
	if (rd->has_cl && rd->has_te)
		return (rd_fail(rd, 400,
		    "both Content-Length and Transfer-Encoding"));
	if (rd->has_te) {
		if (te_empty || nchunked > 1 ||
		    (nchunked == 1 && !chunked_last))
			return (rd_fail(rd, 400, "invalid Transfer-Encoding"));
		if (unknown > 0)
			return (rd_fail(rd, 501,
			    "transfer coding not implemented"));
	}
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
		if (is_ctl((unsigned char)l[i]) || l[i] == '\t')
			return (rd_fail(rd, 400,
			    "control character in request line"));
	sp1 = memchr(l, ' ', len);
	if (sp1 == NULL)
		return (len > HTTP_MAX_TARGET ? rd_fail(rd, 414,
		    "request target too long") : 0);
	sp2 = memrchr(l, ' ', len);
	if (sp2 == sp1)
		sp2 = l + len;
	if ((size_t)(sp2 - sp1 - 1) > HTTP_MAX_TARGET)
		return (rd_fail(rd, 414, "request target too long"));
	return (0);
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
	struct reqctx	*cx = rd->parser;
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
			if (!cx->first_line_done && pos > HTTP_MAX_TARGET)
				return (rd_fail(rd, 414,
				    "request target too long"));
			return (rd_fail(rd, 431, "request head too large"));
		}
		if (!cx->first_line_done && pos - cx->line_start >
		    HTTP_MAX_TARGET + 64)
			return (rd_fail(rd, 414, "request target too long"));
		prev = c;
		if (c != '\n')
			continue;
		if (buf_append(&rd->head, data, i + 1) == -1)
			return (rd_fail(rd, 400, "out of memory"));
		pos = rd->head.len;
		if (pos - cx->line_start == 2) {
			/* An empty line. */
			if (!cx->first_line_done) {
				if (cx->skipped_crlf)
					return (rd_fail(rd, 400,
					    "empty request line"));
				cx->skipped_crlf = 1;
				buf_reset(&rd->head);
				cx->line_start = 0;
				return ((ssize_t)(i + 1));
			}
			*complete = 1;
			return ((ssize_t)(i + 1));
		}
		if (!cx->first_line_done) {
			cx->first_line_done = 1;
			if (request_line_check(rd, cx->line_start,
			    pos - 2) == -1)
				return (-1);
		}
		cx->line_start = pos;
		return ((ssize_t)(i + 1));
	}
	if (buf_append(&rd->head, data, len) == -1)
		return (rd_fail(rd, 400, "out of memory"));
	return ((ssize_t)len);
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
	struct reqctx	*cx = rd->parser;
	const char	*why;
	size_t		 i = 0, n;
	unsigned char	 c;
	int		 v, status = 400;

	while (i < len && cx->cstate != CH_DONE) {
		c = (unsigned char)data[i];
		switch (cx->cstate) {
		case CH_SIZE:
			if (isxdigit(c)) {
				v = isdigit(c) ? c - '0' :
				    tolower(c) - 'a' + 10;
				why = "chunk size too large";
				if (cx->csize > (UINT64_MAX >> 4))
					goto bad;
				cx->csize = cx->csize * 16 + (uint64_t)v;
				cx->cdigits++;
			} else if (cx->cdigits > 0 && (c == ';' || c == ' ')) {
				/* http-parser takes no HTAB here: nor do we. */
				cx->cstate = CH_EXT;
			} else if (cx->cdigits > 0 && c == '\r') {
				cx->cstate = CH_SIZE_LF;
			} else {
				why = "invalid chunk size";
				goto bad;
			}
			why = "chunk line too long";
			if (++cx->cline > HTTP_MAX_CHUNK_LINE)
				goto bad;
			break;
		case CH_EXT:
			why = "invalid chunk extension";
			if (c == '\r')
				cx->cstate = CH_SIZE_LF;
			else if (is_ctl(c))
				goto bad;
			why = "chunk line too long";
			if (++cx->cline > HTTP_MAX_CHUNK_LINE)
				goto bad;
			break;
		case CH_SIZE_LF:
			why = "bare CR in chunk size";
			if (c != '\n')
				goto bad;
			cx->cline = 0;
			cx->cdigits = 0;
			if (cx->csize == 0) {
				cx->cstate = CH_TRAILER;
				break;
			}
			if (cx->csize > rd->max_body_bytes ||
			    cx->cbody > rd->max_body_bytes - cx->csize) {
				status = 413;
				why = "body too large";
				goto bad;
			}
			cx->cbody += cx->csize;
			cx->cstate = CH_DATA;
			break;
		case CH_DATA:
			n = len - i;
			if ((uint64_t)n > cx->csize)
				n = (size_t)cx->csize;
			cx->csize -= n;
			i += n;
			if (cx->csize == 0)
				cx->cstate = CH_DATA_CR;
			continue;
		case CH_DATA_CR:
		case CH_DATA_LF:
			why = "missing CRLF after chunk data";
			if (c != (cx->cstate == CH_DATA_CR ? '\r' : '\n'))
				goto bad;
			cx->cstate = cx->cstate == CH_DATA_CR ? CH_DATA_LF :
			    CH_SIZE;
			break;
		case CH_TRAILER:
			if (cx->cline == 0 && c == '\r') {
				cx->cstate = CH_END_LF;
				break;
			}
			why = "obsolete line folding in trailer";
			if (cx->cline == 0 && (c == ' ' || c == '\t'))
				goto bad;
			why = "control character in trailer";
			if (c == '\r')
				cx->cstate = CH_TRAILER_LF;
			else if (is_ctl(c))
				goto bad;
			cx->cline++;
			if (++cx->ctrailer > rd->max_header_bytes) {
				status = 431;
				why = "trailers too large";
				goto bad;
			}
			break;
		case CH_TRAILER_LF:
		case CH_END_LF:
			why = "bare CR in trailers";
			if (c != '\n')
				goto bad;
			cx->cline = 0;
			cx->cstate = cx->cstate == CH_END_LF ? CH_DONE :
			    CH_TRAILER;
			break;
		case CH_DONE:
			break;
		}
		i++;
	}
	return (i);
bad:
	cx->pend_status = status;
	cx->pend_msg = why;
	return (i);
}

/* Run http-parser on bytes that passed our checks; map its verdict. */
static ssize_t
parse_run(struct http_reader *rd, const char *data, size_t len)
{
	struct reqctx	*cx = rd->parser;
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
	struct reqctx	*cx = rd->parser;
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
		if (!rd->in_body) {
			n = head_take(rd, data + off, len - off, &complete);
			if (n == -1)
				goto fail;
			off += (size_t)n;
			if (!complete)
				continue;
			if (head_scan(rd) == -1)
				goto fail;
			rd->in_body = 1;
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
		if (cx->chunked)
			want = chunk_check(rd, data + off, want);
		cx->body_seen = 1;
		/* Zero bytes would tell http-parser the peer closed. */
		n = want > 0 ? parse_run(rd, data + off, want) : 0;
		if (n == -1)
			goto fail;
		off += (size_t)n;
		if (cx->pend_status != 0) {
			rd_fail(rd, cx->pend_status, cx->pend_msg);
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
	const struct reqctx *cx = rd->parser;

	return (cx != NULL && rd->req != NULL && cx->headers_done &&
	    !rd->done && rd->req->expect_continue && !rd->continue_sent &&
	    !cx->body_seen && rd->err_status == 0);
}

const struct http_request *
http_reader_current(const struct http_reader *rd)
{
	const struct reqctx *cx = rd->parser;

	if (cx == NULL || !cx->headers_done || rd->err_status != 0)
		return (NULL);
	return (rd->req);
}

static int
req_on_url(http_parser *hp, const char *at, size_t len)
{
	struct reqctx	*cx = hp->data;

	if (buf_append(&cx->url, at, len) == -1)
		return (rd_fail(cx->rd, 400, "out of memory"));
	return (0);
}

/* A field and its value are complete: keep them (not trailers). */
static int
req_header_flush(struct reqctx *cx)
{
	struct http_reader *rd = cx->rd;

	if (!rd->last_was_value)
		return (0);
	ows_trim(&cx->value);
	if (rd->req == NULL &&
	    (rd->req = calloc(1, sizeof(*rd->req))) == NULL)
		return (rd_fail(rd, 400, "out of memory"));
	if (headers_add(&rd->req->headers, &rd->req->nheaders,
	    rd->field.data, rd->field.len, cx->value.data ? cx->value.data :
	    "", cx->value.len) == -1)
		return (rd_fail(rd, 400, "out of memory"));
	buf_reset(&rd->field);
	buf_reset(&cx->value);
	rd->last_was_value = 0;
	return (0);
}

static int
req_on_header_field(http_parser *hp, const char *at, size_t len)
{
	struct reqctx	*cx = hp->data;

	if (cx->headers_done)
		return (0);	/* trailers: dropped */
	if (req_header_flush(cx) == -1)
		return (-1);
	if (buf_append(&cx->rd->field, at, len) == -1)
		return (rd_fail(cx->rd, 400, "out of memory"));
	return (0);
}

static int
req_on_header_value(http_parser *hp, const char *at, size_t len)
{
	struct reqctx	*cx = hp->data;

	if (cx->headers_done)
		return (0);
	cx->rd->last_was_value = 1;
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
	struct reqctx	*cx = hp->data;
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
	cx->headers_done = 1;	/* later header callbacks are trailers */
	if (hp->http_major != 1)
		return (rd_fail(rd, 400, "unsupported HTTP version"));
	if (hp->http_minor >= 1 && rd->nhost == 0)
		return (rd_fail(rd, 400, "missing Host"));
	/* RFC 9112 section 6.1: an HTTP/1.0 peer may not know chunked. */
	if (hp->http_minor == 0 && rd->has_te)
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
		cx->chunked = 1;
	return (0);
}

static int
req_on_body(http_parser *hp, const char *at, size_t len)
{
	struct reqctx	*cx = hp->data;
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
	struct reqctx	*cx = hp->data;

	if (cx->rd->req == NULL)
		return (rd_fail(cx->rd, 400, "malformed request"));
	cx->rd->req->keep_alive = http_should_keep_alive(hp);
	http_parser_pause(hp, 1);
	return (0);
}

/* --------------------------------------------------------- responses */

/* Frees the answer and the struct itself. */
void
http_response_free(struct http_response *resp)
{
	if (resp == NULL)
		return;
	free(resp->content_type);
	headers_free(resp->set_cookies, resp->nset_cookies);
	buf_free(&resp->body);
	free(resp);
}

static void
rr_reset(struct http_resp_reader *rr)
{
	struct respctx	*cx = rr->parser;

	http_response_free(rr->resp);
	rr->resp = NULL;
	rr->started = 0;
	rr->done = 0;
	rr->error = 0;
	buf_reset(&rr->field);
	buf_reset(&rr->value);
	rr->last_was_value = 0;
	if (cx != NULL) {
		cx->interim = 0;
		http_parser_init(&cx->hp, HTTP_RESPONSE);
		cx->hp.data = cx;
	}
}

void
http_resp_reader_init(struct http_resp_reader *rr, size_t max,
    int head_request)
{
	struct respctx	*cx;

	memset(rr, 0, sizeof(*rr));
	buf_init(&rr->field);
	buf_init(&rr->value);
	rr->max_bytes = max;
	rr->head_request = head_request;
	if ((cx = calloc(1, sizeof(*cx))) != NULL)
		cx->rr = rr;
	rr->parser = cx;
	rr_reset(rr);
}

void
http_resp_reader_free(struct http_resp_reader *rr)
{
	http_response_free(rr->resp);
	rr->resp = NULL;
	buf_free(&rr->field);
	buf_free(&rr->value);
	free(rr->parser);
	rr->parser = NULL;
}

/*
 * Retry-After: delta-seconds, or an HTTP-date (IMF-fixdate, RFC 850,
 * asctime) turned into seconds from now, at least 1.  0 when unreadable.
 */
static unsigned
retry_after_parse(const char *v)
{
	static const char *const fmts[] = {
		"%a, %d %b %Y %H:%M:%S GMT",
		"%A, %d-%b-%y %H:%M:%S GMT",
		"%a %b %e %H:%M:%S %Y",
	};
	struct tm	 tm;
	const char	*end;
	unsigned long long s = 0;
	time_t		 t, now;
	size_t		 i;

	while (*v == ' ' || *v == '\t')
		v++;
	if (isdigit((unsigned char)*v)) {
		for (; isdigit((unsigned char)*v); v++) {
			s = s * 10 + (unsigned)(*v - '0');
			if (s > 86400ULL * 365)
				s = 86400ULL * 365;
		}
		while (*v == ' ' || *v == '\t')
			v++;
		return (*v == '\0' ? (unsigned)s : 0);
	}
	for (i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(v, fmts[i], &tm);
		if (end == NULL)
			continue;
		while (*end == ' ' || *end == '\t')
			end++;
		if (*end != '\0')
			continue;
		if ((t = timegm(&tm)) == (time_t)-1)
			return (0);
		now = time(NULL);
		if (t <= now)
			return (1);
		if (t - now > 86400 * 365)
			return (86400 * 365);
		return ((unsigned)(t - now));
	}
	return (0);
}

static int
resp_header_flush(struct respctx *cx)
{
	struct http_resp_reader *rr = cx->rr;
	struct http_response *resp = rr->resp;
	const char	*v;

	if (!rr->last_was_value)
		return (0);
	ows_trim(&rr->value);
	v = rr->value.data ? rr->value.data : "";
	rr->last_was_value = 0;
	if (strcasecmp(rr->field.data, "Set-Cookie") == 0) {
		if (headers_add(&resp->set_cookies, &resp->nset_cookies,
		    "Set-Cookie", 10, v, rr->value.len) == -1)
			goto fail;
	} else if (strcasecmp(rr->field.data, "Content-Type") == 0) {
		if (resp->content_type == NULL &&
		    (resp->content_type = strdup(v)) == NULL)
			goto fail;
	} else if (strcasecmp(rr->field.data, "Retry-After") == 0)
		resp->retry_after_s = retry_after_parse(v);
	buf_reset(&rr->field);
	buf_reset(&rr->value);
	return (0);
fail:
	rr->error = 1;
	return (-1);
}

static int
resp_on_message_begin(http_parser *hp)
{
	struct respctx	*cx = hp->data;
	struct http_resp_reader *rr = cx->rr;

	/* A new message: after a 1xx, the real answer starts afresh. */
	http_response_free(rr->resp);
	buf_reset(&rr->field);
	buf_reset(&rr->value);
	rr->last_was_value = 0;
	cx->interim = 0;
	if ((rr->resp = calloc(1, sizeof(*rr->resp))) == NULL) {
		rr->error = 1;
		return (-1);
	}
	rr->resp->content_length = -1;
	return (0);
}

static int
resp_on_header_field(http_parser *hp, const char *at, size_t len)
{
	struct respctx	*cx = hp->data;

	if (cx->rr->resp == NULL || resp_header_flush(cx) == -1)
		return (-1);
	if (buf_append(&cx->rr->field, at, len) == -1) {
		cx->rr->error = 1;
		return (-1);
	}
	return (0);
}

static int
resp_on_header_value(http_parser *hp, const char *at, size_t len)
{
	struct respctx	*cx = hp->data;

	cx->rr->last_was_value = 1;
	if (buf_append(&cx->rr->value, at, len) == -1) {
		cx->rr->error = 1;
		return (-1);
	}
	return (0);
}

/* 1 tells http-parser there is no body: HEAD, 1xx, 204, 304. */
static int
resp_on_headers_complete(http_parser *hp)
{
	struct respctx	*cx = hp->data;
	struct http_resp_reader *rr = cx->rr;

	if (rr->resp == NULL || resp_header_flush(cx) == -1)
		return (-1);
	rr->resp->status = hp->status_code;
	if (hp->status_code == 101 || hp->status_code < 100) {
		rr->error = 1;		/* no protocol switch with brokerd */
		return (-1);
	}
	if (hp->status_code < 200) {
		cx->interim = 1;
		return (1);
	}
	if ((hp->flags & F_CONTENTLENGTH) && !rr->head_request &&
	    hp->status_code != 204 && hp->status_code != 304 &&
	    hp->content_length > rr->max_bytes) {
		rr->error = 2;
		return (-1);
	}
	if (rr->head_request || hp->status_code == 204 ||
	    hp->status_code == 304)
		return (1);
	if ((hp->flags & F_CONTENTLENGTH) && !(hp->flags & F_CHUNKED))
		rr->resp->content_length = (long long)hp->content_length;
	return (0);
}

static int
resp_on_body(http_parser *hp, const char *at, size_t len)
{
	struct respctx	*cx = hp->data;
	struct http_resp_reader *rr = cx->rr;

	if (len > rr->max_bytes || rr->resp->body.len > rr->max_bytes - len) {
		rr->error = 2;
		return (-1);
	}
	if (buf_append(&rr->resp->body, at, len) == -1) {
		rr->error = 1;
		return (-1);
	}
	return (0);
}

static int
resp_on_message_complete(http_parser *hp)
{
	struct respctx	*cx = hp->data;
	struct http_resp_reader *rr = cx->rr;

	if (cx->interim)
		return (0);	/* 100 Continue and friends: read on */
	rr->resp->keep_alive = http_should_keep_alive(hp);
	rr->done = 1;
	http_parser_pause(hp, 1);
	return (0);
}

enum http_feed
http_resp_reader_feed(struct http_resp_reader *rr, const char *data,
    size_t len, size_t *used)
{
	struct respctx	*cx = rr->parser;
	enum http_errno	 e;
	size_t		 n;

	*used = 0;
	if (cx == NULL)
		rr->error = 1;
	else
		cx->rr = rr;
	if (rr->error)
		return (HTTP_FEED_ERROR);
	if (rr->done)
		return (HTTP_FEED_DONE);
	if (len == 0)
		return (HTTP_FEED_MORE);
	rr->started = 1;
	n = http_parser_execute(&cx->hp, &resp_settings, data, len);
	*used = n;
	e = HTTP_PARSER_ERRNO(&cx->hp);
	if (e == HPE_PAUSED && rr->done)
		return (HTTP_FEED_DONE);
	if (e != HPE_OK || rr->error) {
		if (rr->error == 0)
			rr->error = 1;
		return (HTTP_FEED_ERROR);
	}
	if (n != len) {
		rr->error = 1;
		return (HTTP_FEED_ERROR);
	}
	return (HTTP_FEED_MORE);
}

enum http_feed
http_resp_reader_eof(struct http_resp_reader *rr)
{
	struct respctx	*cx = rr->parser;

	if (rr->done)
		return (HTTP_FEED_DONE);
	if (cx == NULL || rr->error || !rr->started || rr->resp == NULL) {
		if (rr->error == 0)
			rr->error = 1;
		return (HTTP_FEED_ERROR);
	}
	/* Zero bytes tell http-parser the peer closed. */
	http_parser_execute(&cx->hp, &resp_settings, NULL, 0);
	if (rr->done)
		return (HTTP_FEED_DONE);
	if (rr->error == 0)
		rr->error = 1;
	return (HTTP_FEED_ERROR);
}

struct http_response *
http_resp_reader_take(struct http_resp_reader *rr)
{
	struct http_response *resp;

	if (!rr->done)
		return (NULL);
	resp = rr->resp;
	rr->resp = NULL;
	rr_reset(rr);
	return (resp);
}

/* -------------------------------------------------------- formatting */

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

/* A header value we write must not end the line early. */
static int
value_safe(const char *s)
{
	for (; *s != '\0'; s++)
		if (is_ctl((unsigned char)*s))
			return (0);
	return (1);
}

/*
 * A 1xx is a status line (plus extra) only; 204 and 304 carry no
 * Content-Length (RFC 9110 sections 8.6 and 15.4.5).  A Content-Type with
 * a control character (it may come from the Gateway) is refused: -1.
 */
int
http_response_head(struct buf *b, int status, const char *content_type,
    size_t content_length, int keep_alive, const char *extra)
{
	size_t	 start = b->len;

	if (status < 100 || status > 999)
		return (-1);
	if (content_type != NULL && !value_safe(content_type))
		return (-1);
	if (buf_printf(b, "HTTP/1.1 %d %s\r\n", status,
	    http_reason(status)) == -1)
		goto fail;
	if (status >= 200) {
		if (content_type != NULL &&
		    buf_printf(b, "Content-Type: %s\r\n", content_type) == -1)
			goto fail;
		if (status != 204 && status != 304 &&
		    buf_printf(b, "Content-Length: %zu\r\n",
		    content_length) == -1)
			goto fail;
		if (buf_puts(b, keep_alive ? "Connection: keep-alive\r\n" :
		    "Connection: close\r\n") == -1)
			goto fail;
	}
	if (extra != NULL && buf_puts(b, extra) == -1)
		goto fail;
	if (buf_puts(b, "\r\n") == -1)
		goto fail;
	return (0);
fail:
	buf_truncate(b, start);
	return (-1);
}
