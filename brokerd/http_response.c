/*
 * The Gateway's answers in, on top of http-parser 2.9.4: one answer at a
 * time on a kept-alive connection, 1xx skipped, the body buffered up to a
 * cap.  Pure: no sockets, no globals.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <http_parser.h>

#include "http.h"

/* The fields brokerd reads in an answer; the rest are skipped unread. */
enum resp_field {
	RESP_OTHER = 0,
	RESP_SET_COOKIE,
	RESP_CONTENT_TYPE,
	RESP_RETRY_AFTER
};

/*
 * Response reader state that the header does not need to show.  It lives
 * as long as the connection (http_resp_reader_next), so the steady state
 * allocates nothing here: a field name is kept only as long as the
 * longest one read, and only those fields' values are copied.
 */
struct http_respctx {
	http_parser	 hp;
	struct http_resp_reader *rr;
	char		 field[16];	/* name so far, cut: RESP_OTHER */
	size_t		 field_len;
	enum resp_field	 which;		/* of the value being read */
	struct buf	 value;		/* value of a field read */
	int		 last_was_value;
	int		 interim;	/* the current message is a 1xx */
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

/* Frees the answer and the struct itself. */
void
http_response_free(struct http_response *resp)
{
	if (resp == NULL)
		return;
	if (resp->content_type != resp->ctype_room)
		free(resp->content_type);
	http_headers_free(resp->set_cookies, resp->nset_cookies);
	buf_free(&resp->body);
	free(resp);
}

/*
 * Ready for the next answer on the connection.  A failed allocation of
 * the context leaves it NULL: every feed is then an error.
 */
static void
rr_reset(struct http_resp_reader *rr)
{
	struct http_respctx *cx = rr->parser;

	http_response_free(rr->resp);
	rr->resp = NULL;
	rr->started = 0;
	rr->done = 0;
	rr->error = 0;
	if (cx == NULL)
		return;
	cx->field_len = 0;
	buf_reset(&cx->value);
	cx->last_was_value = 0;
	cx->interim = 0;
	http_parser_init(&cx->hp, HTTP_RESPONSE);
	cx->hp.data = cx;
}

void
http_resp_reader_init(struct http_resp_reader *rr, size_t max,
    int head_request)
{
	struct http_respctx *cx;

	memset(rr, 0, sizeof(*rr));
	rr->max_bytes = max;
	rr->head_request = head_request;
	if ((cx = calloc(1, sizeof(*cx))) != NULL) {
		cx->rr = rr;
		buf_init(&cx->value);
	}
	rr->parser = cx;
	rr_reset(rr);
}

void
http_resp_reader_next(struct http_resp_reader *rr, size_t max,
    int head_request)
{
	struct http_respctx *cx = rr->parser;

	rr_reset(rr);
	rr->max_bytes = max;
	rr->head_request = head_request;
	if (cx != NULL && cx->value.cap > 4096)
		buf_free(&cx->value);	/* one long cookie: not kept */
}

void
http_resp_reader_free(struct http_resp_reader *rr)
{
	struct http_respctx *cx = rr->parser;

	http_response_free(rr->resp);
	rr->resp = NULL;
	if (cx != NULL) {
		buf_free(&cx->value);
		free(cx);
	}
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
resp_header_flush(struct http_respctx *cx)
{
	struct http_resp_reader *rr = cx->rr;
	struct http_response *resp = rr->resp;
	const char	*v;

	if (!cx->last_was_value)
		return (0);
	cx->last_was_value = 0;
	cx->field_len = 0;
	if (cx->which == RESP_OTHER)
		return (0);
	http_ows_trim(&cx->value);
	v = cx->value.data ? cx->value.data : "";
	switch (cx->which) {
	case RESP_SET_COOKIE:
		if (http_headers_add(&resp->set_cookies, &resp->nset_cookies,
		    "Set-Cookie", 10, v, cx->value.len) == -1)
			goto fail;
		break;
	case RESP_CONTENT_TYPE:
		if (resp->content_type != NULL)
			break;
		/* Most fit the answer's own room: no allocation. */
		if (cx->value.len < sizeof(resp->ctype_room)) {
			memcpy(resp->ctype_room, v, cx->value.len + 1);
			resp->content_type = resp->ctype_room;
		} else if ((resp->content_type = strdup(v)) == NULL)
			goto fail;
		break;
	case RESP_RETRY_AFTER:
		resp->retry_after_s = retry_after_parse(v);
		break;
	case RESP_OTHER:
		break;
	}
	buf_reset(&cx->value);
	return (0);
fail:
	rr->error = 1;
	return (-1);
}

/* The field whose name was just read, once its value starts. */
static enum resp_field
resp_field_of(const struct http_respctx *cx)
{
	const char	*f = cx->field;
	size_t		 n = cx->field_len;

	if (n == 10 && strncasecmp(f, "Set-Cookie", n) == 0)
		return (RESP_SET_COOKIE);
	if (n == 12 && strncasecmp(f, "Content-Type", n) == 0)
		return (RESP_CONTENT_TYPE);
	if (n == 11 && strncasecmp(f, "Retry-After", n) == 0)
		return (RESP_RETRY_AFTER);
	return (RESP_OTHER);
}

static int
resp_on_message_begin(http_parser *hp)
{
	struct http_respctx *cx = hp->data;
	struct http_resp_reader *rr = cx->rr;

	/* A new message: after a 1xx, the real answer starts afresh. */
	http_response_free(rr->resp);
	rr->resp = NULL;
	cx->field_len = 0;
	buf_reset(&cx->value);
	cx->last_was_value = 0;
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
	struct http_respctx *cx = hp->data;

	if (cx->rr->resp == NULL || resp_header_flush(cx) == -1)
		return (-1);
	/* Longer than any field read: stays too long, RESP_OTHER. */
	if (len >= sizeof(cx->field) - cx->field_len)
		cx->field_len = sizeof(cx->field);
	else {
		memcpy(cx->field + cx->field_len, at, len);
		cx->field_len += len;
	}
	return (0);
}

static int
resp_on_header_value(http_parser *hp, const char *at, size_t len)
{
	struct http_respctx *cx = hp->data;

	if (!cx->last_was_value) {
		cx->last_was_value = 1;
		cx->which = resp_field_of(cx);
	}
	if (cx->which != RESP_OTHER && buf_append(&cx->value, at, len) == -1) {
		cx->rr->error = 1;
		return (-1);
	}
	return (0);
}

/* 1 tells http-parser there is no body: HEAD, 1xx, 204, 304. */
static int
resp_on_headers_complete(http_parser *hp)
{
	struct http_respctx *cx = hp->data;
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
	struct http_respctx *cx = hp->data;
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
	struct http_respctx *cx = hp->data;
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
	struct http_respctx *cx = rr->parser;
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
	struct http_respctx *cx = rr->parser;

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
