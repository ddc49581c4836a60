/*
 * The client request reader's insides, shared by http.c (the reader,
 * http-parser, chunked bodies) and http_head.c (the head's one pass), as
 * upstream_int.h is for the pool.  Nothing else includes it.
 */
#ifndef HTTP_INT_H
#define HTTP_INT_H

#include <sys/types.h>

#include <http_parser.h>

#define HTTP_MAX_TARGET		8192	/* longer request target: 414 */
#define HTTP_HEAD_BLOCK		1024	/* head bytes copied per scan */

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

/* Where the head's one pass is. */
enum head_state {
	HS_LINE0 = 0,		/* the request line */
	HS_LINE0_LF,		/* its CR seen */
	HS_LINE,		/* a field line's first byte, or the end's CR */
	HS_NAME,		/* a field name, up to its colon */
	HS_VALUE,		/* a field value, up to CR */
	HS_VALUE_LF,		/* its CR seen */
	HS_END_LF		/* the empty line's CR seen */
};

/* What a head's Transfer-Encoding fields said, all of them together. */
struct te_count {
	int		 nchunked;	/* chunked codings */
	int		 chunked_last;	/* the last coding is chunked */
	int		 unknown;	/* other codings */
	int		 empty;		/* an empty field */
};

/* Per-request state of the reader: all zero for a new request. */
struct req_state {
	enum head_state	 hs;
	int		 skipped_crlf;	/* one leading empty line tolerated */
	size_t		 sp1;		/* request line: first space + 1 */
	size_t		 sp2;		/* ... last space + 1 */
	struct http_field f;		/* the field being read */
	int		 f_value;	/* a value byte other than OWS seen */
	size_t		 nhost;
	int		 has_cl;
	int		 has_te;
	struct te_count	 te;
	size_t		 url;		/* http-parser's target: offset */
	size_t		 url_len;
	int		 in_body;	/* the head is through */
	int		 headers_done;	/* http-parser passed the head */
	int		 body_seen;	/* a body byte arrived */
	int		 chunked;	/* validate chunked framing */
	struct chunker	 ck;
};

/* Request reader state that the header does not need to show. */
struct http_reqctx {
	http_parser	 hp;
	struct http_reader *rd;
	struct req_state s;
};

/* 400-class refusal: the first cause is kept; always -1. */
int		 http_reader_fail(struct http_reader *, int status,
		    const char *msg);
/* Append a field to the request's list; -1 out of memory. */
int		 http_request_push(struct http_request *,
		    const struct http_field *);
/*
 * Take head bytes into rd->req's raw head until the empty line: the bytes
 * used, *complete at its end, or -1 (refused, rd says why).
 */
ssize_t		 http_head_take(struct http_reader *, const char *, size_t,
		    int *complete);
/* The whole head: what its framing fields say together; 0 or -1. */
int		 http_head_done(struct http_reader *);

#endif /* HTTP_INT_H */
