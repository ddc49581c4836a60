/*
 * One Gateway connection's state machine: non-blocking TCP connect (every
 * address of the host in turn), the TLS handshake (settings and
 * verification in tls.c), writing the request once, reading the answer
 * (buffered or streamed), idling kept-alive, and closing with an exact
 * error.  The pool, pacing and dispatch that hand requests to connections
 * are upstream.c's.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <mbedtls/error.h>
#include <mbedtls/ssl.h>

#include "brokerd.h"
#include "dial.h"
#include "tls.h"
#include "tlsio.h"
#include "upstream_int.h"

#define UP_READ_CHUNK		16384
#define UP_IDLE_RELEASE_MS	1000	/* idle so long: read-ahead freed */

static void	conn_io_cb(struct ev_loop *, ev_io *, int);
static void	conn_timer_cb(struct ev_loop *, ev_timer *, int);
static void	conn_write(struct conn *);

/* ------------------------------------------------------------ helpers */

/* Messages for logs and errmsg: cut when too long, which is harmless. */
static void __attribute__((format(printf, 3, 4)))
msgf(char *out, size_t len, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(out, len, fmt, ap);
	va_end(ap);
}


static int
method_idempotent(const char *m)
{
	return (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0);
}


/* --------------------------------------------------------- connections */

/*
 * The first byte of a request left: its pacing slot counts from now.
 * Until then the slot was held unstamped, so a queued request may be
 * able to go sooner than the queue's timer thought: offer it again.
 */
static void
conn_sent(void *arg)
{
	struct conn	*c = arg;
	struct pace	*p;

	if (c->state == CONN_BUSY && !c->wrote) {
		c->wrote = 1;
		if (c->req != NULL && c->req->granted) {
			p = c->req->pace;
			pace_sent(p, &c->req->ticket, now_ms());
			if (pace_waiting(p))
				upstream_kick(c->up);
		}
	}
}

/*
 * Moved in place, as client.c moves its own: ev_timer_again adjusts the
 * armed timer where it lies, cheaper than a stop and a start (twice a
 * request: the answer's timeout, then the idle release).  conn_timer_cb
 * stops it, so that it fires once.  0 ms: a failure reported from the
 * loop (conn_fail_later), at once.
 */
static void
conn_timer(struct conn *c, unsigned ms)
{
	struct ev_loop	*loop = c->up->loop;

	if (ms > 0) {
		c->timer.repeat = ms / 1000.0;
		ev_timer_again(loop, &c->timer);
		return;
	}
	ev_timer_stop(loop, &c->timer);
	ev_timer_set(&c->timer, 0., 0.);
	ev_timer_start(loop, &c->timer);
}

static void
conn_unlink(struct conn *c)
{
	struct upstream	*up = c->up;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else if (up->conns == c)
		up->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

static void
conn_link_head(struct conn *c)
{
	struct upstream	*up = c->up;

	c->prev = NULL;
	c->next = up->conns;
	if (up->conns != NULL)
		up->conns->prev = c;
	up->conns = c;
}

static struct conn *
conn_new(struct upstream *up)
{
	struct conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return (NULL);
	c->up = up;
	c->tls = up->tls;
	tls_ref(c->tls);
	tlsio_init(&c->tio, up->loop, conn_io_cb, c);
	c->tio.sent = conn_sent;
	c->state = CONN_CONNECTING;
	buf_init(&c->out);
	ev_init(&c->timer, conn_timer_cb);
	c->timer.data = c;
	conn_link_head(c);
	up->nconns++;
	return (c);
}

/* The request must have been detached first (c->req == NULL). */
void
conn_close(struct conn *c)
{
	struct upstream	*up = c->up;

	ev_timer_stop(up->loop, &c->timer);
	if (c->hs_done)
		tlsio_close_notify(&c->tio);
	if (c->ssl_init)
		mbedtls_ssl_free(&c->ssl);
	tlsio_close(&c->tio);
	if (c->ai != NULL)
		freeaddrinfo(c->ai);
	if (c->rd_init)
		http_resp_reader_free(&c->rd);
	buf_free(&c->out);
	conn_unlink(c);
	up->nconns--;
	tls_unref(c->tls);
	free(c);
}

/* Report a failure from the loop, not from the caller's stack. */
void
conn_fail_later(struct conn *c, enum upstream_error e, const char *msg)
{
	c->pending = 1;
	c->pending_err = e;
	snprintf(c->pending_msg, sizeof(c->pending_msg), "%s", msg);
	tlsio_watch(&c->tio, 0);
	conn_timer(c, 0);
}

/*
 * The first failure after an answer is a warning; the rest of the spell
 * (the nightly reset, a Gateway restart) is debug, so the log stays
 * readable.  The session watcher logs the state change at info.
 */
static void
conn_log_fail(struct conn *c, struct upstream_req *req, const char *msg)
{
	void	(*logf)(const char *, ...) __attribute__((format(printf, 1,
	    2)));

	logf = c->up->failing++ ? log_debug : log_warn;
	if (req != NULL)
		logf("gateway %s: %s %.*s: %s", c->tls->hostport,
		    req->method, (int)(req->target.len > 200 ? 200 :
		    req->target.len), req->target.data, msg);
	else
		logf("gateway %s: %s", c->tls->hostport, msg);
}

/* The connection is done for; its request (if any) fails with e. */
static void
conn_fail(struct conn *c, enum upstream_error e, const char *msg)
{
	struct upstream		*up = c->up;
	struct upstream_req	*req = c->req;

	conn_log_fail(c, req, msg);
	if (req != NULL) {
		c->req = NULL;
		req->conn = NULL;
		snprintf(req->errmsg, sizeof(req->errmsg), "%s", msg);
	}
	conn_close(c);
	if (req != NULL)
		upstream_finish(up, req, e, NULL);
	upstream_dispatch(up);
}

/* Try the next address of the host; -1 when none is left. */
static int
conn_connect_next(struct conn *c)
{
	struct addrinfo	*ai;
	int		 fd;

	while ((ai = c->ai_next) != NULL) {
		c->ai_next = ai->ai_next;
		if (c->tio.fd != -1)
			tlsio_close(&c->tio);
		if ((fd = dial_connect(ai)) == -1) {
			c->last_errno = errno;
			continue;
		}
		c->tio.fd = fd;
		tlsio_watch(&c->tio, EV_WRITE);
		return (0);
	}
	return (-1);
}

static int
conn_resolve(struct conn *c, char *msg, size_t msglen)
{
	int	 r;

	if ((r = dial_resolve(c->tls->host, c->tls->port, &c->ai)) != 0) {
		msgf(msg, msglen, "cannot resolve %s: %s",
		    c->tls->hostport, gai_strerror(r));
		return (-1);
	}
	c->ai_next = c->ai;
	return (0);
}

/*
 * A new connection for req (may be NULL).  Never calls back: a failure
 * found now is reported from the connection's timer.
 */
struct conn *
conn_open(struct upstream *up, struct upstream_req *req)
{
	struct conn	*c;
	char		 msg[256];

	if ((c = conn_new(up)) == NULL)
		return (NULL);
	c->req = req;
	if (req != NULL)
		req->conn = c;
	conn_timer(c, up->conf->gw_connect_timeout_ms);
	if (conn_resolve(c, msg, sizeof(msg)) == -1) {
		conn_fail_later(c, UPSTREAM_UNREACHABLE, msg);
		return (c);
	}
	if (conn_connect_next(c) == -1) {
		msgf(msg, sizeof(msg), "connect to %s: %s",
		    c->tls->hostport, strerror(c->last_errno));
		conn_fail_later(c, UPSTREAM_UNREACHABLE, msg);
	}
	return (c);
}

/* Forget the last exchange: what was written, read and streamed. */
static void
conn_reset(struct conn *c)
{
	c->out_off = 0;
	c->wrote = 0;
	c->write_started = 0;
	c->writing = 0;
	c->no_reuse = 0;
	c->head_seen = 0;
	c->streaming = 0;
	c->paused = 0;
	c->streamed = 0;
	if (c->out.cap > 65536)
		buf_free(&c->out);
	else
		buf_reset(&c->out);
}

/* Bind-time work: format the request, arm the reader and the timeout. */
int
conn_prepare(struct conn *c)
{
	struct upstream		*up = c->up;
	struct upstream_req	*req = c->req;

	conn_reset(c);
	c->writing = 1;
	req->streaming = 0;
	req->resp_length = -1;
	c->state = CONN_BUSY;
	if (upstream_write_request(up, &c->out, req, c->tls->host,
	    c->tls->port) == -1)
		return (-1);
	/* The reader and its buffers serve every answer on the connection. */
	if (c->rd_init)
		http_resp_reader_next(&c->rd, up->conf->max_response_bytes,
		    strcmp(req->method, "HEAD") == 0);
	else
		http_resp_reader_init(&c->rd, up->conf->max_response_bytes,
		    strcmp(req->method, "HEAD") == 0);
	c->rd_init = 1;
	conn_timer(c, up->conf->gw_timeout_ms);
	up->st.requests++;
	if (up->metrics != NULL)
		metrics_upstream(up->metrics, "requests");
	return (0);
}

/*
 * Kept alive: the read watcher stays armed, so that the Gateway's close
 * of an idle connection is seen (conn_idle_event) and the next request
 * costs no epoll_ctl; the timer gives the read-ahead memory back if the
 * connection stays idle.
 */
static void
conn_make_idle(struct conn *c)
{
	c->state = CONN_IDLE;
	c->pooled = 1;
	conn_reset(c);
	conn_timer(c, UP_IDLE_RELEASE_MS);
	tlsio_watch(&c->tio, EV_READ);
	conn_unlink(c);
	conn_link_head(c);
}

/*
 * A connection nobody waits for stays only under the current TLS settings:
 * one made under settings a reload replaced would hold a pool slot that no
 * request may take (req_start skips it) until the Gateway closes it.
 */
void
conn_park(struct conn *c)
{
	if (c->tls != c->up->tls)
		conn_close(c);
	else
		conn_make_idle(c);
}

/*
 * May req go on this kept-alive connection, which the Gateway may have
 * closed meanwhile?  A close that came while it idled and whose event
 * has run was read already (the read watcher stays armed:
 * conn_idle_event).  One on its way right now, or read by the kernel but
 * not yet by this loop turn, matters only to a request never sent twice:
 * a GET lost on a reused connection before any answer is sent once more
 * (conn_lost), but a POST written into a closed connection would be
 * "outcome unknown" though the Gateway never saw it.  So before a POST
 * and the like, however short the idle, a peek: would block means alive;
 * EOF, an alert (close_notify) or any stray byte means gone.
 */
int
conn_alive(struct conn *c, const struct upstream_req *req)
{
	char	 b;
	ssize_t	 n;

	if (tlsio_pending(&c->tio) > 0)
		return (0);
	if (method_idempotent(req->method))
		return (1);
	do
		n = recv(c->tio.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	return (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/*
 * A refused certificate is its own error (502 gateway_certificate); a
 * pin mismatch is also warned about once with both fingerprints, and the
 * one presented shows in /gateway/status.
 */
static void
conn_tls_error(struct conn *c, int ret)
{
	char			 msg[512], got[96], want[96];
	enum upstream_error	 e;

	e = tls_failure(&c->chk, ret, c->tio.sys_errno, msg, sizeof(msg));
	if (c->chk.pin_mismatch) {
		tls_hex_colon(c->chk.got, sizeof(c->chk.got), got,
		    sizeof(got));
		tls_hex_colon(c->tls->pin, sizeof(c->tls->pin), want,
		    sizeof(want));
		memcpy(c->up->st.fingerprint, got, sizeof(got));
		log_warn("gateway %s: certificate SHA-256 %s does not match "
		    "gateway.tls.pin_sha256 %s", c->tls->hostport, got, want);
	}
	conn_fail(c, e, msg);
}

static void
conn_handshake(struct conn *c)
{
	struct upstream		*up = c->up;
	const mbedtls_x509_crt	*peer;
	int			 ret;

	ret = tlsio_handshake(&c->tio, &c->ssl);
	if (tlsio_want(&c->tio, ret))
		return;
	if (ret != 0) {
		conn_tls_error(c, ret);
		return;
	}
	if (!tls_trusted(c->tls, &c->ssl)) {
		conn_tls_error(c, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
		return;
	}
	c->hs_done = 1;
	up->st.handshakes++;
	if (up->metrics != NULL)
		metrics_upstream(up->metrics, "handshakes");
	if (!c->chk.verified)
		up->st.resumed++;
	else if ((peer = mbedtls_ssl_get_peer_cert(&c->ssl)) != NULL)
		(void)tls_fingerprint(peer, up->st.fingerprint,
		    sizeof(up->st.fingerprint));
	if (c->tls == up->tls)
		tls_save_session(c->tls, &c->ssl);
	log_debug("gateway %s: TLS %s handshake done (%s)", c->tls->hostport,
	    c->chk.verified ? "full" : "resumed",
	    mbedtls_ssl_get_ciphersuite(&c->ssl));
	/* the records are tlsio's now: mbedTLS's 33 KiB of buffers go */
	mbedtls_ssl_free(&c->ssl);
	c->ssl_init = 0;
	if (c->req == NULL) {
		conn_park(c);
		upstream_dispatch(up);
		return;
	}
	if (conn_prepare(c) == -1) {
		conn_fail(c, UPSTREAM_UNREACHABLE, "out of memory");
		return;
	}
	conn_write(c);
}

static void
conn_connected(struct conn *c)
{
	int		 err;
	char		 msg[256];

	if ((err = dial_result(c->tio.fd)) != 0) {
		c->last_errno = err;
		if (conn_connect_next(c) == 0)
			return;
		msgf(msg, sizeof(msg), "connect to %s: %s",
		    c->tls->hostport, strerror(c->last_errno));
		conn_fail(c, UPSTREAM_UNREACHABLE, msg);
		return;
	}
	mbedtls_ssl_init(&c->ssl);
	c->ssl_init = 1;
	if (tls_start(c->tls, &c->ssl, &c->chk, &c->tio, tlsio_send,
	    tlsio_recv, msg, sizeof(msg)) == -1) {
		conn_fail(c, UPSTREAM_UNREACHABLE, msg);
		return;
	}
	c->state = CONN_HANDSHAKE;
	conn_handshake(c);
}

/* Take the request off a dead connection and send it on a fresh one. */
static void
conn_retry(struct conn *c, const char *why)
{
	struct upstream		*up = c->up;
	struct upstream_req	*req = c->req;

	c->req = NULL;
	req->conn = NULL;
	req->retried = 1;
	log_info("gateway %s: %s %.*s: %s before any answer; sending it once "
	    "more on a new connection", c->tls->hostport, req->method,
	    (int)(req->target.len > 200 ? 200 : req->target.len),
	    req->target.data, why);
	conn_close(c);
	if (conn_open(up, req) == NULL) {
		snprintf(req->errmsg, sizeof(req->errmsg), "out of memory");
		upstream_finish(up, req, UPSTREAM_UNREACHABLE, NULL);
		upstream_dispatch(up);
	}
}

/*
 * The connection broke while a request was on it.  A request is written
 * at most once: only a GET or HEAD on a reused connection that died
 * before any byte of the answer is sent again (the Gateway closed it
 * while idle), and any request of which no byte left at all.
 */
static void
conn_lost(struct conn *c, int ret)
{
	struct upstream_req	*req = c->req;
	char			 why[128], msg[256];
	int			 idem = method_idempotent(req->method);

	if (ret == 0 || ret == MBEDTLS_ERR_SSL_CONN_EOF)
		snprintf(why, sizeof(why), "the Gateway closed the "
		    "connection");
	else if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
		snprintf(why, sizeof(why), "the Gateway closed the "
		    "connection (close_notify)");
	else if (c->tio.sys_errno != 0)
		snprintf(why, sizeof(why), "%s", strerror(c->tio.sys_errno));
	else
		mbedtls_strerror(ret, why, sizeof(why));

	if (!c->rd.started) {
		if (!req->retried && (!c->wrote ||
		    (idem && c->pooled))) {
			conn_retry(c, why);
			return;
		}
		if (idem || !c->wrote) {
			snprintf(msg, sizeof(msg), "%s before the answer", why);
			conn_fail(c, UPSTREAM_UNREACHABLE, msg);
			return;
		}
		snprintf(msg, sizeof(msg), "%s after the request was sent; "
		    "its outcome is unknown", why);
		conn_fail(c, UPSTREAM_OUTCOME_UNKNOWN, msg);
		return;
	}
	if (idem) {
		snprintf(msg, sizeof(msg), "%s in the middle of the answer",
		    why);
		conn_fail(c, UPSTREAM_BAD_RESPONSE, msg);
		return;
	}
	snprintf(msg, sizeof(msg), "%s in the middle of the answer; the "
	    "request's outcome is unknown", why);
	conn_fail(c, UPSTREAM_OUTCOME_UNKNOWN, msg);
}

/*
 * An answer that cannot be read whole: the Gateway did act on the request,
 * so an order's outcome is unknown, whatever the answer's fault.
 */
static void
conn_bad_answer(struct conn *c)
{
	const char	*why;

	why = c->rd.error == 2 ? "the answer is larger than "
	    "limits.max_response_bytes" : "malformed HTTP answer";
	if (!method_idempotent(c->req->method)) {
		char	 msg[256];

		snprintf(msg, sizeof(msg), "%s; the request's outcome is "
		    "unknown", why);
		conn_fail(c, UPSTREAM_OUTCOME_UNKNOWN, msg);
		return;
	}
	conn_fail(c, c->rd.error == 2 ? UPSTREAM_TOO_LARGE :
	    UPSTREAM_BAD_RESPONSE, why);
}

static void
conn_write(struct conn *c)
{
	int	 ret;

	c->write_started = 1;
	while (c->out_off < c->out.len) {
		ret = tlsio_write(&c->tio,
		    (const unsigned char *)c->out.data + c->out_off,
		    c->out.len - c->out_off);
		if (ret > 0) {
			c->out_off += (size_t)ret;
			continue;
		}
		if (tlsio_want(&c->tio, ret))
			return;
		conn_lost(c, ret);
		return;
	}
	c->writing = 0;
	if (c->out.cap > 65536)
		buf_free(&c->out);
	tlsio_watch(&c->tio, EV_READ);
}

static void
conn_complete(struct conn *c)
{
	struct upstream		*up = c->up;
	struct upstream_req	*req = c->req;
	struct http_response	*resp;
	uint64_t		 ms;
	size_t			 i;
	int			 keep;

	resp = http_resp_reader_take(&c->rd);
	if (resp == NULL) {
		conn_fail(c, UPSTREAM_BAD_RESPONSE, "no answer parsed");
		return;
	}
	c->req = NULL;
	req->conn = NULL;
	c->served++;
	for (i = 0; i < resp->nset_cookies; i++)
		if (jar_absorb(&up->jar, resp->set_cookies[i].value,
		    time(NULL)) == -1)
			log_debug("gateway %s: Set-Cookie ignored",
			    c->tls->hostport);
	if (resp->status == 429) {
		ms = pace_breaker_ms(resp->retry_after_s);
		pace_breaker_open(upstream_pace(up), now_ms(), ms);
		if (up->metrics != NULL)
			metrics_upstream(up->metrics, "429");
		log_warn("gateway %s: 429 Too Many Requests on %s %.*s: only "
		    "the session watcher's calls go for %llu s",
		    c->tls->hostport, req->method,
		    (int)(req->target.len > 200 ? 200 : req->target.len),
		    req->target.data, (unsigned long long)(ms / 1000));
	}
	keep = resp->keep_alive && !c->no_reuse && c->tls == up->tls &&
	    up->nconns <= upstream_pool_size(up);
	if (keep)
		conn_make_idle(c);
	else
		conn_close(c);
	up->failing = 0;
	upstream_finish(up, req, UPSTREAM_OK, resp);
	upstream_dispatch(up);
}

/*
 * The final head is parsed: offer the body to req->on_head.  The bytes
 * of the body that came with the head stay in the reader for conn_stream.
 */
static void
conn_head(struct conn *c)
{
	struct upstream_req	*req = c->req;
	struct http_response	*resp = c->rd.resp;
	struct buf		 first;

	c->head_seen = 1;
	if (req->on_head != NULL && req->on_data != NULL) {
		req->resp_length = resp->content_length;
		first = resp->body;
		buf_init(&resp->body);
		if (req->on_head(req, resp) == 1) {
			c->streaming = 1;
			req->streaming = 1;
		}
		buf_free(&resp->body);
		resp->body = first;
	}
}

/* Hand the body bytes parsed so far to on_data; -1: the conn failed. */
static int
conn_stream(struct conn *c)
{
	struct upstream_req	*req = c->req;
	struct http_response	*resp = c->rd.resp;

	if (!c->streaming || resp == NULL || resp->body.len == 0)
		return (0);
	c->streamed += resp->body.len;
	if (c->streamed > c->up->conf->max_response_bytes) {
		conn_fail(c, UPSTREAM_TOO_LARGE, "the answer is larger than "
		    "limits.max_response_bytes (after part of it was "
		    "streamed)");
		return (-1);
	}
	if (req->on_data(req, resp->body.data, resp->body.len) == 0)
		c->paused = 1;
	buf_reset(&resp->body);
	return (0);
}

/*
 * Read while not paused.  mbedTLS may hold decrypted bytes the socket no
 * longer signals, so a paused connection is resumed with a fed event
 * (upstream_resume) and drains them here.
 */
static void
conn_read(struct conn *c)
{
	const unsigned char *b;
	size_t		 used;
	enum http_feed	 r;
	int		 ret;

	for (;;) {
		if (c->paused) {
			tlsio_watch(&c->tio, 0);
			return;
		}
		/* The answer is parsed where it was opened: no copy. */
		ret = tlsio_read_ref(&c->tio, &b, UP_READ_CHUNK);
		if (ret > 0) {
			r = http_resp_reader_feed(&c->rd, (const char *)b,
			    (size_t)ret, &used);
			if (r == HTTP_FEED_ERROR) {
				conn_bad_answer(c);
				return;
			}
			if (!c->head_seen && c->rd.resp != NULL &&
			    c->rd.resp->status >= 200)
				conn_head(c);
			if (conn_stream(c) == -1)
				return;
			if (r == HTTP_FEED_DONE) {
				if (used < (size_t)ret ||
				    tlsio_pending(&c->tio) > 0)
					c->no_reuse = 1;
				conn_complete(c);
				return;
			}
			continue;
		}
		if (tlsio_want(&c->tio, ret))
			return;
		if ((ret == 0 || ret == MBEDTLS_ERR_SSL_CONN_EOF ||
		    ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) &&
		    c->rd.started) {
			/* A close-delimited body ends here. */
			if (http_resp_reader_eof(&c->rd) == HTTP_FEED_DONE) {
				if (conn_stream(c) == -1)
					return;
				c->no_reuse = 1;
				conn_complete(c);
				return;
			}
		}
		conn_lost(c, ret);
		return;
	}
}

/* An idle connection became readable: the peer closed it (or misbehaves). */
static void
conn_idle_event(struct conn *c)
{
	struct upstream	*up = c->up;
	unsigned char	 b;
	int		 ret;

	ret = tlsio_read(&c->tio, &b, 1);
	if (ret == MBEDTLS_ERR_SSL_WANT_READ ||
	    ret == MBEDTLS_ERR_SSL_WANT_WRITE)
		return;
	log_debug("gateway %s: idle connection closed (%d)",
	    c->tls->hostport, ret);
	conn_close(c);
	upstream_kick(up);
}

static void
conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn	*c = w->data;

	(void)loop;
	(void)revents;
	if (c->pending)
		return;
	switch (c->state) {
	case CONN_CONNECTING:
		conn_connected(c);
		break;
	case CONN_HANDSHAKE:
		conn_handshake(c);
		break;
	case CONN_IDLE:
		conn_idle_event(c);
		break;
	case CONN_BUSY:
		if (c->writing)
			conn_write(c);
		else
			conn_read(c);
		break;
	}
}

static void
conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn	*c = w->data;
	struct upstream	*up = c->up;
	char		 msg[256];

	(void)revents;
	ev_timer_stop(loop, w);	/* once: conn_timer arms it to repeat */
	if (c->pending) {
		c->pending = 0;
		conn_fail(c, c->pending_err, c->pending_msg);
		return;
	}
	switch (c->state) {
	case CONN_CONNECTING:
	case CONN_HANDSHAKE:
		snprintf(msg, sizeof(msg), "no %s within %u ms "
		    "(gateway.connect_timeout_ms)", c->state ==
		    CONN_CONNECTING ? "TCP connection" : "TLS handshake",
		    up->conf->gw_connect_timeout_ms);
		conn_fail(c, UPSTREAM_UNREACHABLE, msg);
		break;
	case CONN_BUSY:
		snprintf(msg, sizeof(msg), "no complete answer within %u ms "
		    "(gateway.timeout_ms)", up->conf->gw_timeout_ms);
		if (c->req != NULL && c->wrote &&
		    !method_idempotent(c->req->method))
			snprintf(msg, sizeof(msg), "no complete answer within "
			    "%u ms (gateway.timeout_ms); the request was sent, "
			    "its outcome is unknown", up->conf->gw_timeout_ms);
		conn_fail(c, UPSTREAM_TIMEOUT, msg);
		break;
	case CONN_IDLE:
		tlsio_release(&c->tio);
		break;
	}
}
