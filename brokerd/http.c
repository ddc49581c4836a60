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
 *
 * The head is read in one pass as it arrives, into the request's own
 * buffer; its fields are offsets into it, NUL-ended in place once the head
 * is whole.  A request given back is kept for the next, so a kept-alive
 * connection allocates nothing per request.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "http.h"
#include "http_int.h"

#define rd_fail	http_reader_fail

#define HTTP_MAX_CHUNK_LINE	4096	/* chunk size line with extensions */
#define HTTP_READER_KEEP	4096	/* a kept request's room, each buffer */
#define HTTP_KEEP_FIELDS	64	/* ... and fields */

static int	req_on_url(http_parser *, const char *, size_t);
static int	req_on_headers_complete(http_parser *);
static int	req_on_body(http_parser *, const char *, size_t);
static int	req_on_message_complete(http_parser *);

/* The head's fields are ours already: no field callbacks. */
static const http_parser_settings req_settings = {
	.on_url = req_on_url,
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

/*
 * The first field called name, in any case.  Bytes equal but for case
 * are equal once bit 0x20 is set in both, so that test on the first byte
 * skips most fields before strncasecmp, never a match.
 */
const char *
http_request_field(const struct http_request *req, const char *name,
    size_t len)
{
	const struct http_field *f;
	size_t		 i;
	int		 c0;

	if (len == 0 || (req->name_bits & http_name_bit(name, len)) == 0)
		return (NULL);
	c0 = (unsigned char)name[0] | 0x20;
	for (i = 0; i < req->nfields; i++) {
		f = &req->fields[i];
		if (f->name_len == len &&
		    ((unsigned char)req->raw.data[f->name] | 0x20) == c0 &&
		    strncasecmp(req->raw.data + f->name, name, len) == 0)
			return (req->raw.data + f->value);
	}
	return (NULL);
}

struct http_request *
http_request_new(void)
{
	struct http_request *req;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		return (NULL);
	buf_init(&req->raw);
	buf_init(&req->body);
	return (req);
}

int
http_request_push(struct http_request *req, const struct http_field *f)
{
	struct http_field *nf;
	size_t		 cap;

	if (req->nfields == req->fields_cap) {
		cap = req->fields_cap ? req->fields_cap * 2 : 16;
		if ((nf = reallocarray(req->fields, cap, sizeof(*nf))) ==
		    NULL)
			return (-1);
		req->fields = nf;
		req->fields_cap = cap;
	}
	req->fields[req->nfields++] = *f;
	if (f->name_len > 0)
		req->name_bits |= http_name_bit(req->raw.data + f->name,
		    f->name_len);
	return (0);
}

/* Append "name\0value\0" to raw and a field on them. */
int
http_request_add_header(struct http_request *req, const char *name,
    const char *value)
{
	struct http_field f;
	size_t		 start = req->raw.len;

	f.name = (unsigned)req->raw.len;
	f.name_len = (unsigned)strlen(name);
	f.value = f.name + f.name_len + 1;
	f.value_len = (unsigned)strlen(value);
	if (buf_append(&req->raw, name, f.name_len + 1) == -1 ||
	    buf_append(&req->raw, value, f.value_len + 1) == -1 ||
	    http_request_push(req, &f) == -1) {
		buf_truncate(&req->raw, start);
		return (-1);
	}
	return (0);
}

/* Frees the request and the struct itself. */
void
http_request_free(struct http_request *req)
{
	if (req == NULL)
		return;
	buf_free(&req->raw);
	free(req->fields);
	buf_free(&req->body);
	free(req);
}

/* Empty for the next request; its room stays. */
static void
req_clear(struct http_request *req)
{
	req->method[0] = '\0';
	req->path = req->query = req->url = NULL;
	buf_reset(&req->raw);
	req->nfields = 0;
	req->name_bits = 0;
	buf_reset(&req->body);
	req->http_minor = req->keep_alive = req->expect_continue = 0;
}

int
http_reader_fail(struct http_reader *rd, int status, const char *msg)
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

/* The request the next head goes into: the one kept, or a new one. */
static int
rd_req(struct http_reader *rd)
{
	if (rd->req != NULL)
		return (0);
	if ((rd->req = rd->spare) != NULL) {
		rd->spare = NULL;
		return (0);
	}
	if ((rd->req = http_request_new()) == NULL)
		return (rd_fail(rd, 400, "out of memory"));
	return (0);
}

/* The per-request part of the reader, ready for the next request. */
static void
rd_reset(struct http_reader *rd)
{
	struct http_reqctx *cx = rd->parser;

	http_reader_recycle(rd, rd->req);
	rd->req = NULL;
	rd->done = 0;
	rd->continue_sent = 0;
	if (cx == NULL)
		return;
	memset(&cx->s, 0, sizeof(cx->s));
	http_parser_init(&cx->hp, HTTP_REQUEST);
	cx->hp.data = cx;
}

/*
 * Kept when nothing is kept yet and its room is ordinary; a large head's
 * or body's room goes back.
 */
void
http_reader_recycle(struct http_reader *rd, struct http_request *req)
{
	if (req == NULL)
		return;
	if (rd->spare != NULL || req->raw.cap > HTTP_READER_KEEP ||
	    req->body.cap > HTTP_READER_KEEP ||
	    req->fields_cap > HTTP_KEEP_FIELDS) {
		http_request_free(req);
		return;
	}
	req_clear(req);
	rd->spare = req;
}

void
http_reader_init(struct http_reader *rd, size_t max_header, size_t max_body)
{
	struct http_reqctx *cx;

	memset(rd, 0, sizeof(*rd));
	rd->max_header_bytes = max_header;
	rd->max_body_bytes = max_body;
	if ((cx = calloc(1, sizeof(*cx))) != NULL)
		cx->rd = rd;
	rd->parser = cx;
	rd_reset(rd);
}

void
http_reader_free(struct http_reader *rd)
{
	http_request_free(rd->req);
	http_request_free(rd->spare);
	rd->req = rd->spare = NULL;
	free(rd->parser);
	rd->parser = NULL;
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

/* The head is whole and passed: http-parser reads it. */
static int
head_parse(struct http_reader *rd)
{
	struct req_state *s = &rd->parser->s;
	struct buf	*raw = &rd->req->raw;
	size_t		 len = raw->len;
	ssize_t		 n;

	if (http_head_done(rd) == -1)
		return (-1);
	s->in_body = 1;
	/*
	 * Room for the path and query after the head, taken before
	 * http-parser runs over raw: its callbacks must not move it.
	 */
	if (buf_reserve(raw, s->sp2 - s->sp1 + 8) == -1)
		return (rd_fail(rd, 400, "out of memory"));
	if ((n = parse_run(rd, raw->data, len)) == -1)
		return (-1);
	if ((size_t)n != len && !rd->done)
		return (rd_fail(rd, 400, "malformed request head"));
	return (0);
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
			if (rd_req(rd) == -1)
				goto fail;
			n = http_head_take(rd, data + off, len - off,
			    &complete);
			if (n == -1)
				goto fail;
			off += (size_t)n;
			if (complete && head_parse(rd) == -1)
				goto fail;
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

/* The target, where http-parser found it in the raw head. */
static int
req_on_url(http_parser *hp, const char *at, size_t len)
{
	struct http_reqctx *cx = hp->data;
	struct req_state *s = &cx->s;
	const char	*raw = cx->rd->req->raw.data;

	if (s->url_len == 0)
		s->url = (size_t)(at - raw);
	else if (at != raw + s->url + s->url_len)
		return (rd_fail(cx->rd, 400, "malformed request target"));
	s->url_len += len;
	return (0);
}

/* Append len bytes and a NUL to raw, within the room head_parse took. */
static char *
req_tail(struct buf *raw, const char *p, size_t len)
{
	char	*at;

	if (raw->cap - raw->len < len + 2)
		return (NULL);
	at = raw->data + raw->len;
	memcpy(at, p, len);
	at[len] = '\0';
	raw->len += len + 1;
	raw->data[raw->len] = '\0';
	return (at);
}

/*
 * Split the target into path and query, copied after the head.  In
 * absolute-form ("http://host/p?q", RFC 9112 section 3.2.2) the path starts
 * after the authority; a fragment is never part of either.
 */
static int
req_split_url(struct http_request *req, size_t len)
{
	struct http_parser_url u;
	const char	*url = req->url, *q, *h;
	size_t		 plen;

	if (url[0] != '/') {
		http_parser_url_init(&u);
		if (http_parser_parse_url(url, len, 0, &u) == 0 &&
		    (u.field_set & (1 << UF_SCHEMA)) &&
		    (u.field_set & (1 << UF_PATH))) {
			url += u.field_data[UF_PATH].off;
			len -= u.field_data[UF_PATH].off;
		}
	}
	if ((h = memchr(url, '#', len)) != NULL)
		len = (size_t)(h - url);
	q = memchr(url, '?', len);
	plen = q ? (size_t)(q - url) : len;
	if ((req->path = req_tail(&req->raw, url, plen)) == NULL)
		return (-1);
	if (q != NULL && (req->query = req_tail(&req->raw, q + 1,
	    len - plen - 1)) == NULL)
		return (-1);
	return (0);
}

/*
 * The head is read: its fields NUL-ended in place (the colon, the byte
 * after a value), the target too (the space after it), path and query
 * after the head.  raw does not move from here on.
 */
static int
req_strings(struct http_reader *rd)
{
	struct req_state *s = &rd->parser->s;
	struct http_request *req = rd->req;
	char		*raw = req->raw.data;
	size_t		 i;

	for (i = 0; i < req->nfields; i++) {
		raw[req->fields[i].name + req->fields[i].name_len] = '\0';
		raw[req->fields[i].value + req->fields[i].value_len] = '\0';
	}
	if (s->url_len == 0 || s->url + s->url_len >= s->sp2)
		return (rd_fail(rd, 400, "malformed request target"));
	raw[s->url + s->url_len] = '\0';
	req->url = raw + s->url;
	if (req_split_url(req, s->url_len) == -1)
		return (rd_fail(rd, 400, "out of memory"));
	return (0);
}

static int
req_on_headers_complete(http_parser *hp)
{
	struct http_reqctx *cx = hp->data;
	struct http_reader *rd = cx->rd;
	struct http_request *req = rd->req;
	const char	*v, *m;
	size_t		 len;

	cx->s.headers_done = 1;
	if (hp->http_major != 1)
		return (rd_fail(rd, 400, "unsupported HTTP version"));
	if (hp->http_minor >= 1 && cx->s.nhost == 0)
		return (rd_fail(rd, 400, "missing Host"));
	/* RFC 9112 section 6.1: an HTTP/1.0 peer may not know chunked. */
	if (hp->http_minor == 0 && cx->s.has_te)
		return (rd_fail(rd, 400, "Transfer-Encoding in HTTP/1.0"));
	m = http_method_str((enum http_method)hp->method);
	if ((len = strlen(m)) >= sizeof(req->method))
		return (rd_fail(rd, 400, "method not supported"));
	memcpy(req->method, m, len + 1);
	if (req_strings(rd) == -1)
		return (-1);
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

	if (!cx->s.headers_done)
		return (rd_fail(cx->rd, 400, "malformed request"));
	cx->rd->req->keep_alive = http_should_keep_alive(hp);
	http_parser_pause(hp, 1);
	return (0);
}
