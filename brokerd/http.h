/*
 * HTTP/1.1 as brokerd speaks it, on top of http-parser 2.9.4: client
 * requests in (http.c), the Gateway's answers in (http_response.c), every
 * head brokerd writes (http_write.c).  A building block in the manner of
 * redis' ae.h: no sockets, no event loop, no globals, nothing of brokerd.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"

/*
 * Whether one of the eight bytes at p is below lo (lo <= 128) or DEL: a
 * word at a time for the loops over heads, which are mostly plain bytes.
 * The answer is exact (bytes of 0x80 and above are neither).
 */
static inline int
http_word_ctl(const unsigned char *p, unsigned lo)
{
	const uint64_t	 ones = 0x0101010101010101ULL;
	const uint64_t	 highs = 0x8080808080808080ULL;
	uint64_t	 w, d;

	memcpy(&w, p, sizeof(w));
	if (((w - ones * lo) & ~w & highs) != 0)
		return (1);
	d = w ^ (ones * 0x7f);
	return (((d - ones) & ~d & highs) != 0);
}

/* How many of p's first len bytes, eight at a time, are >= lo and not DEL. */
static inline size_t
http_span_plain(const unsigned char *p, size_t len, unsigned lo)
{
	size_t	 i = 0;

	while (len - i >= 8 && !http_word_ctl(p + i, lo))
		i += 8;
	return (i);
}

struct http_header {
	char		*name;
	char		*value;
};

enum http_feed {
	HTTP_FEED_MORE = 0,	/* all input used, message not complete */
	HTTP_FEED_DONE,		/* a message is complete (see *used) */
	HTTP_FEED_ERROR		/* the reader says why */
};

/* ------------------------------------------------------------- http.c */

/*
 * A request's header field: offsets into its raw head (offsets, so that
 * they stay right while the head grows), each NUL-ended in place once the
 * head is complete.
 */
struct http_field {
	unsigned	 name;
	unsigned	 name_len;
	unsigned	 value;		/* OWS around it not included */
	unsigned	 value_len;
};

/* One parsed client request. */
struct http_request {
	char		 method[16];
	char		*path;		/* raw path (not decoded), no query */
	char		*query;		/* raw query without '?', or NULL */
	char		*url;		/* raw request target */
	struct buf	 raw;		/* the head as read, split in place;
					   path and query after it */
	struct http_field *fields;
	size_t		 nfields;
	size_t		 fields_cap;
	uint64_t	 name_bits;	/* http_name_bit of every field */
	struct buf	 body;
	int		 http_minor;	/* 0 or 1 */
	int		 keep_alive;
	int		 expect_continue;
};

/*
 * A field name's bit among 64, by its length and first byte in any case:
 * a request without the bit has no field of that name, so most lookups
 * (of fields a request does not carry) end without a pass over them.
 */
static inline uint64_t
http_name_bit(const char *name, size_t len)
{
	return ((uint64_t)1 << ((len * 7 + ((unsigned char)name[0] | 0x20)) &
	    63));
}

/* The value of the first field called name (len bytes, any case), or NULL. */
const char	*http_request_field(const struct http_request *,
		    const char *name, size_t len);

/*
 * The value of the first field called name (any case), or NULL.  Inline,
 * so the length of a literal name is known when compiling.
 */
static inline const char *
http_request_header(const struct http_request *req, const char *name)
{
	return (http_request_field(req, name, strlen(name)));
}
/* Field i's name and value. */
#define http_field_name(r, i)	((r)->raw.data + (r)->fields[(i)].name)
#define http_field_value(r, i)	((r)->raw.data + (r)->fields[(i)].value)
/* A request built by hand (tests, tools): empty, then fields appended. */
struct http_request *http_request_new(void);
int		 http_request_add_header(struct http_request *,
		    const char *name, const char *value);
void		 http_request_free(struct http_request *);	/* and struct */

struct http_reqctx;		/* http.c: http-parser and framing checks */

/*
 * Incremental request reader.  It checks the raw head itself, in one pass
 * as it arrives, where Debian's http-parser 2.9.4 is lax (obs-fold, space
 * before colon, bare CR/LF, control characters, missing or repeated Host,
 * the request line's shape) before handing the head to http-parser.  A
 * request taken and given back (http_reader_recycle) is reused, so a
 * kept-alive connection allocates nothing per request.
 */
struct http_reader {
	struct http_reqctx *parser;	/* owned */
	size_t		 max_header_bytes;
	size_t		 max_body_bytes;
	struct http_request *req;	/* being built */
	struct http_request *spare;	/* given back, reused next */
	int		 done;
	int		 err_status;	/* 400, 413, 414, 431, 501 */
	const char	*err_code;	/* "bad_request", ... */
	const char	*err_msg;
	int		 continue_sent;	/* caller sets when it answered 100 */
};

void		 http_reader_init(struct http_reader *, size_t max_header,
		    size_t max_body);
void		 http_reader_free(struct http_reader *);
/*
 * Feed bytes.  *used tells how many were consumed.  On HTTP_FEED_DONE take
 * the request with http_reader_take() and feed the rest (pipelining).
 * After the head of a request with "Expect: 100-continue" is read,
 * http_reader_wants_continue() is true until the caller sets continue_sent.
 */
enum http_feed	 http_reader_feed(struct http_reader *, const char *, size_t,
		    size_t *used);
struct http_request *http_reader_take(struct http_reader *);
/* A taken request is done with: kept for the next one, or freed. */
void		 http_reader_recycle(struct http_reader *,
		    struct http_request *);
int		 http_reader_wants_continue(const struct http_reader *);
/* Head of a request being read (for 100-continue / early refusal), or NULL */
const struct http_request *http_reader_current(const struct http_reader *);

/* Shared by the readers: a header list, and a value's trailing OWS. */
int		 http_headers_add(struct http_header **, size_t *,
		    const char *name, size_t namelen, const char *value,
		    size_t valuelen);
void		 http_headers_free(struct http_header *, size_t);
void		 http_ows_trim(struct buf *);

/* ---------------------------------------------------- http_response.c */

/* One parsed Gateway answer (buffered whole, capped). */
struct http_response {
	int		 status;
	char		*content_type;	/* or NULL; ctype_room or malloc'd */
	char		 ctype_room[48];	/* a Content-Type that fits */
	struct http_header *set_cookies;	/* Set-Cookie values, name unused */
	size_t		 nset_cookies;
	unsigned	 retry_after_s;	/* 0 if absent */
	int		 keep_alive;	/* the connection may be reused */
	long long	 content_length;	/* declared, or -1 (none, chunked) */
	struct buf	 body;
};

void		 http_response_free(struct http_response *);	/* and struct */

struct http_respctx;		/* http_response.c: http-parser, a field */

struct http_resp_reader {
	struct http_respctx *parser;	/* owned */
	size_t		 max_bytes;	/* body cap */
	int		 head_request;	/* answer to HEAD: no body */
	struct http_response *resp;
	int		 started;	/* a byte of the answer arrived */
	int		 done;
	int		 error;		/* 1 malformed, 2 too large */
};

void		 http_resp_reader_init(struct http_resp_reader *, size_t max,
		    int head_request);
void		 http_resp_reader_free(struct http_resp_reader *);
/* Ready for the next answer on the same connection, buffers kept. */
void		 http_resp_reader_next(struct http_resp_reader *, size_t max,
		    int head_request);
/* Like http_reader_feed; HTTP_FEED_ERROR with error 1 or 2. */
enum http_feed	 http_resp_reader_feed(struct http_resp_reader *, const char *,
		    size_t, size_t *used);
/* The peer closed: completes a close-delimited body, else error. */
enum http_feed	 http_resp_reader_eof(struct http_resp_reader *);
struct http_response *http_resp_reader_take(struct http_resp_reader *);

/* ------------------------------------------------------- http_write.c */

/* RFC 9110 section 5.6.2: a byte of a token (method, field name). */
int		 http_tchar(int);
extern const unsigned char http_tchar_tab[256];	/* the same, by byte */
/* RFC 9110 section 5.5: a byte of a field value (HTAB, obs-text: yes). */
int		 http_field_char(int);
/* 1 when every byte is a field-value byte: nothing can end the line. */
int		 http_field_ok(const char *, size_t);

const char	*http_reason(int status);

/* How the body after a response head ends. */
enum http_framing {
	HTTP_FRAME_LENGTH = 0,	/* Content-Length: content_length */
	HTTP_FRAME_CHUNKED,	/* Transfer-Encoding: chunked */
	HTTP_FRAME_CLOSE	/* with the connection */
};

struct http_head {
	int		 status;
	const char	*content_type;	/* or NULL */
	enum http_framing framing;
	size_t		 content_length;	/* HTTP_FRAME_LENGTH */
	int		 keep_alive;
	const char	*extra;		/* CRLF-terminated lines, or NULL */
};

/*
 * A response head: status line, Content-Type (if non-NULL), the framing,
 * Connection: keep-alive/close, extra, blank line.  A 1xx is the status
 * line and extra only; 204 and 304 carry no framing field.
 * http_write_head() is snprintf(3) for fixed memory: the length the head
 * takes (written when it fits in cap), -1 when the status is not 3 digits
 * or content_type holds a control character.  http_write_head_buf()
 * appends it, 0, or -1 with nothing appended.
 */
int		 http_write_head(char *, size_t cap, const struct http_head *);
int		 http_write_head_buf(struct buf *, const struct http_head *);
/* The same with Content-Length. */
int		 http_response_head(struct buf *, int status,
		    const char *content_type, size_t content_length,
		    int keep_alive, const char *extra);

/* A request brokerd sends the Gateway: only what it needs. */
struct http_out_request {
	const char	*method;	/* a token */
	const char	*target;	/* origin-form, "/..." */
	size_t		 target_len;
	const char	*accept;	/* NULL or "": any */
	const char	*content_type;	/* NULL or "": none */
	const char	*body;
	size_t		 body_len;
};

/* 0 when nothing in it can bend the request head, else -1. */
int		 http_write_request_check(const struct http_out_request *);
/* (upstream.c writes the request itself: upstream_format_request.) */

#endif /* HTTP_H */
