/*
 * The Gateway connection pool: non-blocking TCP and mbedTLS 2.28 on the
 * libev loop (settings and verification in tls.c), kept-alive connections
 * used one request at a time, the cookie jar replayed (jar.c), and exact
 * errors.  Every request, the session watcher's too, passes pace.c before
 * a connection is handed out, and is written at most once.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>

#include "brokerd.h"
#include "tls.h"

#define UP_READ_CHUNK		16384

enum conn_state {
	CONN_CONNECTING = 0,	/* TCP connect in progress */
	CONN_HANDSHAKE,		/* TLS handshake */
	CONN_IDLE,		/* kept alive, no request */
	CONN_BUSY		/* one request: writing, then reading */
};

struct conn {
	struct upstream		*up;
	struct tls		*tls;
	enum conn_state		 state;
	int			 fd;
	int			 io_fd;		/* fd the watcher was set on */
	int			 io_events;	/* 0: stopped */
	ev_io			 io;
	ev_timer		 timer;
	struct addrinfo		*ai;
	struct addrinfo		*ai_next;	/* next address to try */
	int			 last_errno;
	int			 ssl_init;
	int			 hs_done;
	mbedtls_ssl_context	 ssl;
	struct tls_check	 chk;		/* what the handshake saw */
	int			 sys_errno;	/* from the bio callbacks */
	struct upstream_req	*req;
	struct buf		 out;		/* request head and body */
	size_t			 out_off;
	int			 writing;
	int			 write_started;	/* mbedtls_ssl_write called */
	int			 wrote;		/* a byte of the request left */
	struct http_resp_reader	 rd;
	int			 rd_init;
	int			 head_seen;	/* the final head was parsed */
	int			 streaming;	/* body goes to req->on_data */
	int			 paused;	/* on_data asked to wait */
	uint64_t		 streamed;	/* body bytes handed on */
	int			 no_reuse;
	unsigned		 served;	/* answers completed */
	int			 pooled;	/* has been idle: a reuse */
	int			 pending;	/* fail from the timer */
	enum upstream_error	 pending_err;
	char			 pending_msg[512];
	struct conn		*next;
	struct conn		*prev;
};

/* A pace object and the requests still queued in or granted by it. */
struct pace_slot {
	struct pace		*pace;
	unsigned		 users;
	struct pace_slot	*next;
};

struct upstream {
	struct ev_loop		*loop;
	const struct config	*conf;
	struct metrics		*metrics;
	struct tls_rng		 rng;
	struct tls		*tls;		/* current */
	struct conn		*conns;		/* idle ones most recent first */
	unsigned		 nconns;
	struct pace_slot	*paces;		/* first: the current one */
	struct jar		 jar;
	struct upstream_req	*dq_head;	/* errors to report */
	struct upstream_req	*dq_tail;
	ev_timer		 kick;		/* 0 s: deferred work */
	ev_timer		 pace_timer;
	int			 dispatching;
	int			 redispatch;
	int			 failing;	/* since the last answer */
	struct upstream_stats	 st;
};

static void	conn_io_cb(struct ev_loop *, ev_io *, int);
static void	conn_timer_cb(struct ev_loop *, ev_timer *, int);
static void	conn_close(struct conn *);
static void	conn_write(struct conn *);
static void	dispatch(struct upstream *);
static void	kick(struct upstream *);

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

/* ------------------------------------------------------------ cookie jar */

void
upstream_jar_clear(struct upstream *up)
{
	jar_free(&up->jar);
}

/* ------------------------------------------------------ request format */

static int
method_idempotent(const char *m)
{
	return (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0);
}

/* The request as http_write.c sees it; -1 when method has no NUL. */
static int
req_head(const struct upstream_req *req, struct http_out_request *out)
{
	if (memchr(req->method, '\0', sizeof(req->method)) == NULL)
		return (-1);
	out->method = req->method;
	out->target = req->target.data != NULL ? req->target.data : "";
	out->target_len = req->target.len;
	out->accept = req->accept;
	out->content_type = req->content_type;
	out->body = req->body.data;
	out->body_len = req->body.len;
	return (0);
}

/* Nothing the caller put in may bend the request head. */
static int
req_valid(const struct upstream_req *req)
{
	struct http_out_request	 out;

	return (req_head(req, &out) == 0 &&
	    http_write_request_check(&out) == 0);
}

int
upstream_format_request(struct buf *out, const struct upstream_req *req,
    const char *host, const char *port, const char *cookie)
{
	struct http_out_request	 r;

	if (req_head(req, &r) == -1)
		return (-1);
	return (http_write_request(out, &r, host, port, cookie));
}

/* --------------------------------------------------------- connections */

static int
bio_send(void *arg, const unsigned char *p, size_t len)
{
	struct conn	*c = arg;
	ssize_t		 n;

	do
		n = send(c->fd, p, len, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n >= 0) {
		if (n > 0 && c->state == CONN_BUSY && !c->wrote) {
			c->wrote = 1;
			if (c->req != NULL && c->req->granted)
				pace_sent(c->req->pace, &c->req->ticket,
				    now_ms());
		}
		return ((int)n);
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return (MBEDTLS_ERR_SSL_WANT_WRITE);
	c->sys_errno = errno;
	if (errno == EPIPE || errno == ECONNRESET)
		return (MBEDTLS_ERR_NET_CONN_RESET);
	return (MBEDTLS_ERR_NET_SEND_FAILED);
}

static int
bio_recv(void *arg, unsigned char *p, size_t len)
{
	struct conn	*c = arg;
	ssize_t		 n;

	do
		n = recv(c->fd, p, len, 0);
	while (n == -1 && errno == EINTR);
	if (n >= 0)
		return ((int)n);
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return (MBEDTLS_ERR_SSL_WANT_READ);
	c->sys_errno = errno;
	if (errno == ECONNRESET || errno == EPIPE)
		return (MBEDTLS_ERR_NET_CONN_RESET);
	return (MBEDTLS_ERR_NET_RECV_FAILED);
}

static void
conn_watch(struct conn *c, int events)
{
	struct ev_loop	*loop = c->up->loop;

	if (c->io_events == events && c->io_fd == c->fd)
		return;
	ev_io_stop(loop, &c->io);
	c->io_events = 0;
	if (events == 0 || c->fd == -1)
		return;
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(loop, &c->io);
	c->io_events = events;
	c->io_fd = c->fd;
}

/* mbedTLS waits for the socket: watch for what it waits on.  1 if so. */
static int
conn_want(struct conn *c, int ret)
{
	if (ret == MBEDTLS_ERR_SSL_WANT_READ)
		conn_watch(c, EV_READ);
	else if (ret == MBEDTLS_ERR_SSL_WANT_WRITE)
		conn_watch(c, EV_WRITE);
	else
		return (0);
	return (1);
}

static void
conn_timer(struct conn *c, unsigned ms)
{
	ev_timer_stop(c->up->loop, &c->timer);
	ev_timer_set(&c->timer, ms / 1000.0, 0.);
	ev_timer_start(c->up->loop, &c->timer);
}

static unsigned
pool_size(const struct upstream *up)
{
	return (up->conf->gw_pool > 0 ? up->conf->gw_pool : 1);
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
	c->fd = -1;
	c->io_fd = -1;
	c->state = CONN_CONNECTING;
	buf_init(&c->out);
	ev_init(&c->io, conn_io_cb);
	c->io.data = c;
	ev_init(&c->timer, conn_timer_cb);
	c->timer.data = c;
	conn_link_head(c);
	up->nconns++;
	return (c);
}

/* The request must have been detached first (c->req == NULL). */
static void
conn_close(struct conn *c)
{
	struct upstream	*up = c->up;

	ev_io_stop(up->loop, &c->io);
	ev_timer_stop(up->loop, &c->timer);
	if (c->ssl_init) {
		if (c->hs_done)
			(void)mbedtls_ssl_close_notify(&c->ssl);
		mbedtls_ssl_free(&c->ssl);
	}
	if (c->fd != -1)
		close(c->fd);
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
static void
conn_fail_later(struct conn *c, enum upstream_error e, const char *msg)
{
	c->pending = 1;
	c->pending_err = e;
	snprintf(c->pending_msg, sizeof(c->pending_msg), "%s", msg);
	conn_watch(c, 0);
	conn_timer(c, 0);
}

static struct pace_slot *
slot_of(struct upstream *up, const struct pace *p)
{
	struct pace_slot *s;

	for (s = up->paces; s != NULL; s = s->next)
		if (s->pace == p)
			return (s);
	return (NULL);
}

/* Out of every queue: no connection, no deferred error, no grant. */
static void
req_detach(struct upstream_req *req)
{
	req->pace = NULL;
	req->granted = 0;
	req->deferred = 0;
	req->conn = NULL;
	req->next = NULL;
}

/* Give back the request's grant and its hold on the pace object. */
static void
req_release(struct upstream *up, struct upstream_req *req)
{
	struct pace_slot *s;

	if (req->pace != NULL) {
		if (req->granted)
			pace_release(req->pace, &req->ticket);
		if ((s = slot_of(up, req->pace)) != NULL && s->users > 0)
			s->users--;
	}
	req_detach(req);
}

/*
 * The single exit of a request: release its grant, forget it, count the
 * error, then call back.  Nothing of it is touched after the callback
 * (which usually frees it).
 */
static void
req_finish(struct upstream *up, struct upstream_req *req,
    enum upstream_error e, struct http_response *resp)
{
	req_release(up, req);
	switch (e) {
	case UPSTREAM_OK:
	case UPSTREAM_RATE_LIMITED:
	case UPSTREAM_CANCELLED:
		break;
	case UPSTREAM_TIMEOUT:
		up->st.errors++;
		if (up->metrics != NULL)
			metrics_upstream(up->metrics, "timeouts");
		break;
	default:
		up->st.errors++;
		if (up->metrics != NULL)
			metrics_upstream(up->metrics, "errors");
		break;
	}
	if (req->cb != NULL)
		req->cb(req, e, resp, req->arg);
	else if (resp != NULL) {
		http_response_free(resp);
	}
}

/* Queue an error for the kick timer (never inside upstream_submit). */
static void
req_defer(struct upstream *up, struct upstream_req *req,
    enum upstream_error e)
{
	req->deferred = (int)e;
	req->conn = NULL;
	req->next = NULL;
	if (up->dq_tail != NULL)
		up->dq_tail->next = req;
	else
		up->dq_head = req;
	up->dq_tail = req;
	kick(up);
}

static void
dq_remove(struct upstream *up, struct upstream_req *req)
{
	struct upstream_req *r, *prev = NULL;

	for (r = up->dq_head; r != NULL; prev = r, r = r->next) {
		if (r != req)
			continue;
		if (prev != NULL)
			prev->next = r->next;
		else
			up->dq_head = r->next;
		if (up->dq_tail == r)
			up->dq_tail = prev;
		r->next = NULL;
		return;
	}
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
		req_finish(up, req, e, NULL);
	dispatch(up);
}

/* Try the next address of the host; -1 when none is left. */
static int
conn_connect_next(struct conn *c)
{
	struct addrinfo	*ai;
	int		 fd, one = 1;

	while ((ai = c->ai_next) != NULL) {
		c->ai_next = ai->ai_next;
		if (c->fd != -1) {
			conn_watch(c, 0);
			close(c->fd);
			c->fd = -1;
		}
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1) {
			c->last_errno = errno;
			continue;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		c->fd = fd;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    errno == EINPROGRESS) {
			conn_watch(c, EV_WRITE);
			return (0);
		}
		c->last_errno = errno;
	}
	return (-1);
}

static int
conn_resolve(struct conn *c, char *msg, size_t msglen)
{
	struct addrinfo	 hints;
	int		 r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	r = getaddrinfo(c->tls->host, c->tls->port, &hints, &c->ai);
	if (r == EAI_NONAME) {
		/* A name: blocking, but /etc/hosts for localhost. */
		hints.ai_flags = AI_ADDRCONFIG;
		r = getaddrinfo(c->tls->host, c->tls->port, &hints, &c->ai);
	}
	if (r != 0) {
		c->ai = NULL;
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
static struct conn *
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
	if (c->rd_init) {
		http_resp_reader_free(&c->rd);
		c->rd_init = 0;
	}
	if (c->out.cap > 65536)
		buf_free(&c->out);
	else
		buf_reset(&c->out);
}

/* Bind-time work: format the request, arm the reader and the timeout. */
static int
conn_prepare(struct conn *c)
{
	struct upstream		*up = c->up;
	struct upstream_req	*req = c->req;
	struct buf		 ck;
	int			 rc;

	buf_init(&ck);
	conn_reset(c);
	c->writing = 1;
	req->streaming = 0;
	req->resp_length = -1;
	c->state = CONN_BUSY;
	if (jar_format(&up->jar, &ck) == -1) {
		buf_free(&ck);
		return (-1);
	}
	rc = upstream_format_request(&c->out, req, c->tls->host, c->tls->port,
	    ck.data);
	buf_free(&ck);
	if (rc == -1)
		return (-1);
	http_resp_reader_init(&c->rd, up->conf->max_response_bytes,
	    strcmp(req->method, "HEAD") == 0);
	c->rd_init = 1;
	conn_timer(c, up->conf->gw_timeout_ms);
	up->st.requests++;
	if (up->metrics != NULL)
		metrics_upstream(up->metrics, "requests");
	return (0);
}

static void
conn_make_idle(struct conn *c)
{
	c->state = CONN_IDLE;
	c->pooled = 1;
	conn_reset(c);
	ev_timer_stop(c->up->loop, &c->timer);
	conn_watch(c, EV_READ);
	conn_unlink(c);
	conn_link_head(c);
}

/*
 * A connection nobody waits for stays only under the current TLS settings:
 * one made under settings a reload replaced would hold a pool slot that no
 * request may take (req_start skips it) until the Gateway closes it.
 */
static void
conn_park(struct conn *c)
{
	if (c->tls != c->up->tls)
		conn_close(c);
	else
		conn_make_idle(c);
}

/*
 * A kept-alive connection the Gateway may have closed meanwhile: a peek
 * that would block means alive; EOF, an alert (close_notify) or any
 * stray byte means gone.
 */
static int
conn_alive(struct conn *c)
{
	char	 b;
	ssize_t	 n;

	if (mbedtls_ssl_get_bytes_avail(&c->ssl) > 0)
		return (0);
	do
		n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	return (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/*
 * A granted request takes a connection: the newest idle one that is still
 * alive, else one being opened for nobody, else a new one.  No callback.
 */
static void
req_start(struct upstream *up, struct upstream_req *req)
{
	struct conn	*c, *next;

	for (c = up->conns; c != NULL; c = next) {
		next = c->next;
		if (c->state != CONN_IDLE || c->req != NULL ||
		    c->tls != up->tls)
			continue;
		if (!conn_alive(c)) {
			log_debug("gateway %s: kept-alive connection closed "
			    "by the peer", c->tls->hostport);
			conn_close(c);
			continue;
		}
		c->req = req;
		req->conn = c;
		if (conn_prepare(c) == -1) {
			conn_fail_later(c, UPSTREAM_UNREACHABLE,
			    "out of memory");
			return;
		}
		conn_watch(c, EV_WRITE);
		return;
	}
	for (c = up->conns; c != NULL; c = c->next) {
		if ((c->state == CONN_CONNECTING ||
		    c->state == CONN_HANDSHAKE) && c->req == NULL &&
		    !c->pending && c->tls == up->tls) {
			c->req = req;
			req->conn = c;
			return;
		}
	}
	if (conn_open(up, req) == NULL) {
		snprintf(req->errmsg, sizeof(req->errmsg), "out of memory");
		req_defer(up, req, UPSTREAM_UNREACHABLE);
	}
}

/* Connections a grant could use now. */
static unsigned
pool_free(const struct upstream *up)
{
	const struct conn *c;
	unsigned	 n = 0, pool = pool_size(up);

	for (c = up->conns; c != NULL; c = c->next)
		if (c->req == NULL && !c->pending && c->state != CONN_BUSY &&
		    c->tls == up->tls)
			n++;
	if (up->nconns < pool)
		n += pool - up->nconns;
	return (n);
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

	e = tls_failure(&c->chk, ret, c->sys_errno, msg, sizeof(msg));
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

	ret = mbedtls_ssl_handshake(&c->ssl);
	if (conn_want(c, ret))
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
	ev_timer_stop(up->loop, &c->timer);
	if (c->req == NULL) {
		conn_park(c);
		dispatch(up);
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
	socklen_t	 len = sizeof(int);
	int		 err = 0;
	char		 msg[256];

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
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
	if (tls_start(c->tls, &c->ssl, &c->chk, c, bio_send, bio_recv, msg,
	    sizeof(msg)) == -1) {
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
		req_finish(up, req, UPSTREAM_UNREACHABLE, NULL);
		dispatch(up);
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
	else if (c->sys_errno != 0)
		snprintf(why, sizeof(why), "%s", strerror(c->sys_errno));
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
		ret = mbedtls_ssl_write(&c->ssl,
		    (const unsigned char *)c->out.data + c->out_off,
		    c->out.len - c->out_off);
		if (ret > 0) {
			c->out_off += (size_t)ret;
			continue;
		}
		if (conn_want(c, ret))
			return;
		conn_lost(c, ret);
		return;
	}
	c->writing = 0;
	if (c->out.cap > 65536)
		buf_free(&c->out);
	conn_watch(c, EV_READ);
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
	http_resp_reader_free(&c->rd);
	c->rd_init = 0;
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
		pace_breaker_open(up->paces->pace, now_ms(), ms);
		if (up->metrics != NULL)
			metrics_upstream(up->metrics, "429");
		log_warn("gateway %s: 429 Too Many Requests on %s %.*s: only "
		    "the session watcher's calls go for %llu s",
		    c->tls->hostport, req->method,
		    (int)(req->target.len > 200 ? 200 : req->target.len),
		    req->target.data, (unsigned long long)(ms / 1000));
	}
	keep = resp->keep_alive && !c->no_reuse && c->tls == up->tls &&
	    up->nconns <= pool_size(up);
	if (keep)
		conn_make_idle(c);
	else
		conn_close(c);
	up->failing = 0;
	req_finish(up, req, UPSTREAM_OK, resp);
	dispatch(up);
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
	unsigned char	 b[UP_READ_CHUNK];
	size_t		 used;
	enum http_feed	 r;
	int		 ret;

	for (;;) {
		if (c->paused) {
			conn_watch(c, 0);
			return;
		}
		ret = mbedtls_ssl_read(&c->ssl, b, sizeof(b));
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
				    mbedtls_ssl_get_bytes_avail(&c->ssl) > 0)
					c->no_reuse = 1;
				conn_complete(c);
				return;
			}
			continue;
		}
		if (conn_want(c, ret))
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

	ret = mbedtls_ssl_read(&c->ssl, &b, 1);
	if (ret == MBEDTLS_ERR_SSL_WANT_READ ||
	    ret == MBEDTLS_ERR_SSL_WANT_WRITE)
		return;
	log_debug("gateway %s: idle connection closed (%d)",
	    c->tls->hostport, ret);
	conn_close(c);
	kick(up);
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

	(void)loop;
	(void)revents;
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
		break;
	}
}

/* ------------------------------------------------------------ dispatch */

static void
kick(struct upstream *up)
{
	if (!ev_is_active(&up->kick)) {
		ev_timer_set(&up->kick, 0., 0.);
		ev_timer_start(up->loop, &up->kick);
	}
}

static void
kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct upstream		*up = w->data;
	struct upstream_req	*req;

	(void)loop;
	(void)revents;
	while ((req = up->dq_head) != NULL) {
		up->dq_head = req->next;
		if (up->dq_head == NULL)
			up->dq_tail = NULL;
		req->next = NULL;
		req_finish(up, req, (enum upstream_error)req->deferred, NULL);
	}
	dispatch(up);
}

/*
 * A request pacing refused.  While the 429 breaker is open the client is
 * told so, and until when: "no slot came free" would send it back at once.
 */
static void
req_refused(struct upstream_req *req, int breaker, uint64_t retry_ms,
    const char *why)
{
	char	 until[32];

	req->retry_after_ms = retry_ms;
	req->paused = breaker;
	if (!breaker) {
		snprintf(req->errmsg, sizeof(req->errmsg), "%s", why);
		return;
	}
	status_time(time(NULL) + (time_t)((retry_ms + 999) / 1000), until,
	    sizeof(until));
	snprintf(req->errmsg, sizeof(req->errmsg), "the Gateway answered 429 "
	    "Too Many Requests: brokerd is pausing client calls until %s "
	    "(%llu s), as IBKR's penalty grows with every call it refuses",
	    until, (unsigned long long)((retry_ms + 999) / 1000));
}

static void
pace_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	dispatch(w->data);
}

/*
 * Serve the pace queues while connections are free: grants take a
 * connection, expired tickets get 429.  Older pace objects (replaced by a
 * reload) are served until their last request is gone.  One timer wakes
 * the queue when a window opens or a deadline passes.
 */
static void
dispatch(struct upstream *up)
{
	struct pace_slot	*s, **sp;
	struct pace_ticket	*t;
	struct upstream_req	*req;
	uint64_t		 now, next_ms, best;
	int			 expired;

	if (up->dispatching) {
		up->redispatch = 1;
		return;
	}
	up->dispatching = 1;
	do {
		up->redispatch = 0;
		best = 0;
		now = now_ms();
		for (s = up->paces; s != NULL; s = s->next) {
			for (;;) {
				t = pace_poll(s->pace, now, pool_free(up) > 0,
				    &expired, &next_ms);
				if (t == NULL)
					break;
				req = t->owner;
				if (expired) {
					req_refused(req, t->breaker,
					    t->retry_after_ms, "no pacing "
					    "slot within limits.queue_ms");
					req_finish(up, req,
					    UPSTREAM_RATE_LIMITED, NULL);
				} else {
					req->granted = 1;
					req_start(up, req);
				}
				now = now_ms();
			}
			if (next_ms > 0 && (best == 0 || next_ms < best))
				best = next_ms;
		}
	} while (up->redispatch);

	/* Retired pace objects nobody uses any more. */
	for (sp = &up->paces->next; (s = *sp) != NULL; ) {
		if (s->users == 0) {
			*sp = s->next;
			pace_free(s->pace);
			free(s);
		} else
			sp = &s->next;
	}
	ev_timer_stop(up->loop, &up->pace_timer);
	if (best > 0) {
		ev_timer_set(&up->pace_timer, best / 1000.0, 0.);
		ev_timer_start(up->loop, &up->pace_timer);
	}
	up->dispatching = 0;
}

/* ------------------------------------------------------------ interface */

void
upstream_req_init(struct upstream_req *req)
{
	memset(req, 0, sizeof(*req));
	buf_init(&req->target);
	buf_init(&req->body);
}

void
upstream_req_free(struct upstream_req *req)
{
	buf_free(&req->target);
	buf_free(&req->body);
	free(req->content_type);
	req->content_type = NULL;
	free(req->accept);
	req->accept = NULL;
	config_unref(req->conf);
	req->conf = NULL;
}

void
upstream_submit(struct upstream *up, struct upstream_req *req)
{
	struct pace_slot *s = up->paces;
	uint64_t	 ra = 0, now;
	int		 r;

	req_detach(req);
	req->retried = 0;
	req->retry_after_ms = 0;
	req->paused = 0;
	req->errmsg[0] = '\0';
	memset(&req->ticket, 0, sizeof(req->ticket));
	req->ticket.owner = req;
	req->ticket.policy = req->policy;
	req->ticket.watcher = req->watcher;
	req->pace = s->pace;
	s->users++;

	if (!req_valid(req)) {
		snprintf(req->errmsg, sizeof(req->errmsg), "the request "
		    "cannot be written to the Gateway (method, target or a "
		    "header field)");
		req_defer(up, req, UPSTREAM_BAD_RESPONSE);
		return;
	}
	now = now_ms();
	if (pool_free(up) > 0)
		r = pace_acquire(s->pace, &req->ticket, now, &ra);
	else
		r = pace_enqueue(s->pace, &req->ticket, now, &ra);
	if (r == -1) {
		req_refused(req, req->ticket.breaker, ra, "pacing queue full");
		req_defer(up, req, UPSTREAM_RATE_LIMITED);
		return;
	}
	if (r == 1) {
		kick(up);		/* an older ticket may go; arm the timer */
		return;
	}
	req->granted = 1;
	req_start(up, req);
}

void
upstream_cancel(struct upstream *up, struct upstream_req *req)
{
	struct conn	*c;

	if (req->pace == NULL)
		return;			/* finished, or never submitted */
	if (req->deferred)
		dq_remove(up, req);
	else if (!req->granted)
		pace_cancel(req->pace, &req->ticket);
	else if ((c = req->conn) != NULL) {
		c->req = NULL;
		req->conn = NULL;
		if (c->pending)
			conn_close(c);
		else if (c->state == CONN_BUSY) {
			/* Not a byte given to mbedTLS yet: as good as idle.
			 * Else the answer is incomplete: never reuse. */
			if (c->writing && !c->write_started)
				conn_park(c);
			else
				conn_close(c);
		}
		/* Connecting: it becomes idle when ready. */
	}
	req_release(up, req);
	kick(up);
}

void
upstream_resume(struct upstream *up, struct upstream_req *req)
{
	struct conn	*c = req->conn;

	if (c == NULL || !c->paused || c->req != req)
		return;
	c->paused = 0;
	if (c->pending || c->state != CONN_BUSY)
		return;
	conn_watch(c, EV_READ);
	/* mbedTLS may already hold the next bytes: do not wait for the fd. */
	ev_feed_event(up->loop, &c->io, EV_READ);
}

struct pace *
upstream_pace(struct upstream *up)
{
	return (up->paces->pace);
}

void
upstream_stats(const struct upstream *up, struct upstream_stats *st)
{
	const struct conn *c;

	*st = up->st;
	st->idle = 0;
	st->busy = 0;
	for (c = up->conns; c != NULL; c = c->next) {
		if (c->state == CONN_IDLE)
			st->idle++;
		else if (c->req != NULL)
			st->busy++;
	}
}

/* A pace object for conf's global rate, queue_ms and slack. */
static struct pace_slot *
slot_new(const struct config *conf)
{
	struct pace_slot *s;
	unsigned	 max_queue;

	max_queue = conf->max_connections > 0 ? conf->max_connections : 1024;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return (NULL);
	if ((s->pace = pace_new(conf->gateway_rate, conf->queue_ms,
	    max_queue)) == NULL) {
		free(s);
		return (NULL);
	}
	pace_set_slack(s->pace, conf->rate_slack_ms);
	return (s);
}

struct upstream *
upstream_new(struct ev_loop *loop, const struct config *conf,
    struct metrics *m, char *err, size_t errlen)
{
	struct upstream	*up;

	if ((up = calloc(1, sizeof(*up))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (NULL);
	}
	up->loop = loop;
	up->conf = conf;
	up->metrics = m;
	jar_init(&up->jar);
	ev_init(&up->kick, kick_cb);
	up->kick.data = up;
	ev_init(&up->pace_timer, pace_timer_cb);
	up->pace_timer.data = up;
	if (tls_rng_init(&up->rng, "brokerd upstream", err, errlen) == -1 ||
	    (up->tls = tls_new(conf, &up->rng, err, errlen)) == NULL)
		goto fail;
	if ((up->paces = slot_new(conf)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return (up);
fail:
	upstream_free(up);
	return (NULL);
}

void
upstream_free(struct upstream *up)
{
	struct pace_slot	*s, *snext;
	struct upstream_req	*req;

	if (up == NULL)
		return;
	while (up->conns != NULL) {
		if ((req = up->conns->req) != NULL) {
			req->conn = NULL;
			req->pace = NULL;
			up->conns->req = NULL;
		}
		conn_close(up->conns);
	}
	while ((req = up->dq_head) != NULL) {
		up->dq_head = req->next;
		req->next = NULL;
		req->pace = NULL;
	}
	ev_timer_stop(up->loop, &up->kick);
	ev_timer_stop(up->loop, &up->pace_timer);
	for (s = up->paces; s != NULL; s = snext) {
		snext = s->next;
		pace_free(s->pace);
		free(s);
	}
	tls_unref(up->tls);
	jar_free(&up->jar);
	tls_rng_free(&up->rng);
	free(up);
}

/*
 * SIGHUP: new TLS settings only when they changed (then the saved session
 * goes too); the pace object takes the new limits in place, keeping what
 * was sent and its queue (a fresh one would let 2N through one window);
 * idle connections close, busy ones finish and close if their settings
 * are gone.
 */
int
upstream_reconfigure(struct upstream *up, const struct config *conf,
    char *err, size_t errlen)
{
	struct tls	*nt = NULL;
	struct conn	*c, *next;
	struct pace_limits l;

	if (!tls_same(up->tls, conf)) {
		if ((nt = tls_new(conf, &up->rng, err, errlen)) == NULL)
			return (-1);
	} else if (up->tls->mode == TLS_INSECURE)
		log_warn("gateway.tls.insecure is set: the Gateway's "
		    "certificate at %s is NOT verified", up->tls->hostport);
	memset(&l, 0, sizeof(l));
	l.global = conf->gateway_rate;
	l.slack_ms = conf->rate_slack_ms;
	l.queue_ms = conf->queue_ms;
	l.max_queue = conf->max_connections > 0 ? conf->max_connections : 1024;
	l.routes = conf->routes;
	l.nroutes = conf->nroutes;
	if (pace_update(up->paces->pace, &l) == -1) {
		tls_unref(nt);
		snprintf(err, errlen, "out of memory");
		return (-1);
	}
	if (nt != NULL) {
		/* Connections still under the old settings never resume. */
		tls_forget_session(up->tls);
		tls_unref(up->tls);
		up->tls = nt;
	}
	up->conf = conf;
	for (c = up->conns; c != NULL; c = next) {
		next = c->next;
		if (c->req == NULL && !c->pending &&
		    (c->state == CONN_IDLE || c->tls != up->tls))
			conn_close(c);
	}
	kick(up);
	return (0);
}
