/*
 * One client connection: read, parse, keep-alive, timers, linger, and the
 * queue of its exchanges, written out in the order the requests came.
 * Who may ask what is admit.c's, brokerd's own paths builtin.c's, the
 * Gateway's forward.c's.
 */
#include <sys/socket.h>

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brokerd.h"

#define CLIENT_READ_CHUNK	16384
#define CLIENT_MAX_PIPELINE	32	/* exchanges queued per connection */
#define CLIENT_LINGER_MS	2000	/* discard what follows a closing answer */
#define CLIENT_TRIM_PEAK	256	/* bursts this large are trimmed */

static void	client_process(struct client *);

/*
 * Host first (a misdirected request learns nothing more), then brokerd's
 * own paths, then who asks for which route.
 */
static void
client_dispatch(struct exchange *x)
{
	struct client		*c = x->c;
	struct server		*srv = c->srv;
	struct http_request	*r = x->req;
	struct admit_verdict	 v;
	const char		*path;
	size_t			 len;

	if (admit_host(r, c->peer.is_unix, &v) == -1) {
		exchange_verdict(x, &v);
		return;
	}
	len = strlen(r->path);
	path = route_strip_v1(r->path, &len);
	if (sub_answer(x, path) || builtin_answer(x, path))
		return;
	(void)admit_request(srv->conf, session_status(srv->session), &c->peer,
	    &c->memo, r, path, &v);
	if (v.route != NULL) {
		x->route = v.route->prefix;
		x->conf = config_ref(srv->conf);	/* holds the route */
	}
	if (exchange_verdict(x, &v) == -1)
		return;
	x->trade = (v.need & SCOPE_TRADE) != 0;
	/* The route maps the client path; forward the stripped form. */
	if (path != r->path) {
		memmove(r->path, path, len + 1);
	}
	forward_request(x, v.route);
}

/*
 * Waiting on the Gateway (which has its own timeout) or on the answer's
 * writing: no timer of the client's.  One still armed is left to run
 * rather than stopped and started again (twice a request): if it fires
 * in this state, client_timer_cb does nothing, and the next state arms
 * it afresh.
 */
static int
client_waiting(const struct client *c)
{
	return (!c->in_request && c->in.len == 0 && c->nrequests > 0 &&
	    c->head != NULL);
}

/*
 * Seconds left before a client that takes no byte of its answer is
 * closed: a buffered answer (up to limits.max_response_bytes) is held
 * while its connection lives, so one that never reads must not keep it.
 */
static double
client_send_left(const struct client *c)
{
	return (c->srv->conf->send_timeout_ms / 1000.0 -
	    (ev_now(c->srv->loop) - c->sent_at));
}

static void
client_arm_timer(struct client *c)
{
	const struct config	*conf = c->srv->conf;
	double			 t;

	if (ev_is_active(&c->wio)) {
		/* The socket is full: the client must keep taking bytes. */
		t = client_send_left(c);
		if (t < 0.001)
			t = 0.001;
	} else if (c->in_request || c->in.len > 0 || c->nrequests == 0) {
		/*
		 * From the first byte, or for a new connection from accept:
		 * slow drips and silent sockets do not extend it.
		 */
		t = conf->header_timeout_ms / 1000.0 -
		    (ev_now(c->srv->loop) - c->req_start);
		if (t < 0.001)
			t = 0.001;
	} else if (c->head == NULL)
		t = conf->idle_timeout_ms / 1000.0;
	else
		return;		/* waiting on the Gateway: client_waiting */
	if (t > 0) {
		/*
		 * Moved in place, cheaper than a stop and a start (once or
		 * twice a request); client_timer_cb stops it: it fires once.
		 */
		c->timer.repeat = t;
		ev_timer_again(c->srv->loop, &c->timer);
		return;
	}
	ev_timer_stop(c->srv->loop, &c->timer);
	ev_timer_set(&c->timer, 0., 0.);
	ev_timer_start(c->srv->loop, &c->timer);
}

static void
client_reading(struct client *c, int on)
{
	if (on && !c->reading && !c->closing) {
		ev_io_start(c->srv->loop, &c->rio);
		c->reading = 1;
	} else if (!on && c->reading) {
		ev_io_stop(c->srv->loop, &c->rio);
		c->reading = 0;
	}
}

/*
 * A burst of connections leaves its freed memory scattered through the
 * heap, where glibc keeps it (it gives back only the heap's top).  Once
 * the burst has mostly gone, hand the free pages back in one pass; a few
 * milliseconds, once per burst, never per request.
 */
static void
client_trim(struct server *srv)
{
	if (srv->npeak < CLIENT_TRIM_PEAK || srv->nclients > srv->npeak / 16)
		return;
	malloc_trim(0);
	srv->npeak = srv->nclients;
}

static void
client_free(struct client *c)
{
	struct server	*srv = c->srv;
	struct exchange	*x, *nx;

	ev_io_stop(srv->loop, &c->rio);
	ev_io_stop(srv->loop, &c->wio);
	ev_timer_stop(srv->loop, &c->timer);
	for (x = c->head; x != NULL; x = nx) {
		nx = x->next;
		exchange_free(x);
	}
	exchange_drop_spare(c);
	http_reader_free(&c->rd);
	buf_free(&c->in);
	auth_memo_clear(&c->memo);
	if (c->fd != -1)
		close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	srv->nclients--;
	if (!c->peer.is_unix)
		srv->nclients_tcp--;
	free(c);
	client_trim(srv);
}

/*
 * After an answer that closes, send the FIN but keep reading (and
 * discarding) for up to CLIENT_LINGER_MS when the client may still be
 * sending: a bad request's rest, pipelined requests.  Closing with unread
 * bytes makes TCP send a reset, which can destroy the answer before the
 * client reads it, and a Unix-socket client's next write fails with EPIPE
 * before it reads the answer (RFC 9112 section 9.6).
 */
static void
client_linger(struct client *c)
{
	struct exchange	*x, *nx;

	shutdown(c->fd, SHUT_WR);
	if ((!c->closing && c->in.len == 0) || c->srv->draining) {
		client_free(c);
		return;
	}
	for (x = c->head; x != NULL; x = nx) {
		nx = x->next;
		exchange_free(x);
	}
	c->head = c->tail = NULL;
	c->nexchanges = 0;
	c->closing = 1;
	c->lingering = 1;
	buf_reset(&c->in);
	ev_io_stop(c->srv->loop, &c->wio);
	ev_timer_stop(c->srv->loop, &c->timer);
	ev_timer_set(&c->timer, CLIENT_LINGER_MS / 1000.0, 0.);
	ev_timer_start(c->srv->loop, &c->timer);
	if (!c->reading) {
		ev_io_start(c->srv->loop, &c->rio);
		c->reading = 1;
	}
}

/*
 * An answer is ready: write it from this loop turn's pending callbacks
 * (never from inside the caller, which may be another object's callback),
 * without starting the write watcher.  libev turns every start and stop
 * into an epoll_ctl(2); the watcher runs only while the socket is full.
 */
void
client_want_write(struct client *c)
{
	/* Fed once a turn: a streamed answer's head and body both ask. */
	if (!ev_is_active(&c->wio) && !ev_is_pending(&c->wio))
		ev_feed_event(c->srv->loop, &c->wio, EV_WRITE);
}

/*
 * Write what is ready, in order; close when an answer said so.  While the
 * socket is full the timer counts limits.send_timeout_ms from the last
 * byte the client took.
 */
static void
client_flush(struct client *c)
{
	struct exchange	*x, *x0 = c->head;
	size_t		 w0 = c->wpos;
	int		 rc;

	while ((x = c->head) != NULL && (x->done || x->streaming)) {
		if ((rc = buf_send(&x->out, c->fd, &c->wpos)) == 1) {
			forward_resume(x);
			if (!ev_is_active(&c->wio) || x != x0 || c->wpos != w0)
				c->sent_at = ev_now(c->srv->loop);
			ev_io_start(c->srv->loop, &c->wio);
			client_arm_timer(c);
			return;
		}
		if (rc == -1) {
			client_free(c);
			return;
		}
		if (!x->done) {
			/* Streaming: all written so far; more will come. */
			buf_reset(&x->out);
			c->wpos = 0;
			forward_resume(x);
			break;
		}
		c->wpos = 0;
		c->head = x->next;
		if (c->head == NULL)
			c->tail = NULL;
		c->nexchanges--;
		if (x->close) {
			exchange_free(x);
			client_linger(c);
			return;
		}
		exchange_free(x);
	}
	ev_io_stop(c->srv->loop, &c->wio);
	if (c->head == NULL && c->srv->draining) {
		client_free(c);
		return;
	}
	if (c->nexchanges < CLIENT_MAX_PIPELINE) {
		client_reading(c, 1);
		if (c->in.len > 0 && c->head == NULL) {
			client_process(c);
			return;
		}
	}
	client_arm_timer(c);
}

static void
client_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	client_flush(w->data);
}

/*
 * A stream took the connection (subscriber.c): the socket and the bytes
 * read past its head are the subscriber's, the rest of c goes.
 */
static void
client_handover(struct client *c, const char *rest, size_t len)
{
	struct sub	*s = c->upgraded;
	int		 fd = c->fd;

	c->upgraded = NULL;
	c->fd = -1;
	ev_io_stop(c->srv->loop, &c->rio);
	ev_io_stop(c->srv->loop, &c->wio);
	sub_adopt(s, fd, rest, len);	/* copies rest, which c may hold */
	client_free(c);
}

/*
 * Parse bytes into exchanges; returns how many were taken, or -1 when the
 * client is gone.  Bytes left over wait in c->in.
 */
static ssize_t
client_parse(struct client *c, const char *data, size_t len)
{
	struct exchange		*x;
	struct http_request	*req;
	enum http_feed		 rc;
	size_t			 off = 0, used;
	static const char	 cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

	while (off < len && !c->closing &&
	    c->nexchanges < CLIENT_MAX_PIPELINE) {
		if (!c->in_request) {
			c->in_request = 1;
			if (c->nrequests > 0)
				c->req_start = ev_now(c->srv->loop);
		}
		rc = http_reader_feed(&c->rd, data + off, len - off, &used);
		off += used;
		if (rc == HTTP_FEED_ERROR) {
			c->closing = 1;
			client_reading(c, 0);
			if ((x = exchange_new(c, NULL)) == NULL) {
				client_free(c);
				return (-1);
			}
			x->close = 1;
			exchange_error(x, c->rd.err_status, c->rd.err_code,
			    c->rd.err_msg ? c->rd.err_msg : "bad request",
			    NULL);
			return ((ssize_t)len);	/* the rest is dropped */
		}
		if (rc == HTTP_FEED_MORE) {
			if (http_reader_wants_continue(&c->rd) &&
			    c->head == NULL) {
				send(c->fd, cont, sizeof(cont) - 1,
				    MSG_NOSIGNAL);
				c->rd.continue_sent = 1;
			} else if (http_reader_wants_continue(&c->rd))
				c->rd.continue_sent = 1;
			break;
		}
		c->in_request = 0;
		c->nrequests++;
		if ((req = http_reader_take(&c->rd)) == NULL ||
		    (x = exchange_new(c, req)) == NULL) {
			http_request_free(req);
			client_free(c);
			return (-1);
		}
		if (c->srv->draining)
			x->close = 1;
		client_dispatch(x);
		if (c->upgraded != NULL) {
			client_handover(c, data + off, len - off);
			return (-1);
		}
	}
	return ((ssize_t)off);
}

static void
client_parsed(struct client *c)
{
	if (c->nexchanges >= CLIENT_MAX_PIPELINE)
		client_reading(c, 0);
	client_arm_timer(c);
}

/* Parse what waited in c->in; its memory goes once it is empty. */
static void
client_process(struct client *c)
{
	ssize_t	 n;

	if ((n = client_parse(c, c->in.data, c->in.len)) == -1)
		return;
	buf_consume(&c->in, (size_t)n);
	if (c->in.len == 0)
		buf_free(&c->in);
	client_parsed(c);
}

/*
 * Every connection reads into one shared chunk and the reader copies out
 * what it keeps, so an idle connection holds no read buffer: only a
 * pipelined remainder is kept, in c->in, and freed once parsed.
 */
static void
client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	static char	 chunk[CLIENT_READ_CHUNK];
	struct client	*c = w->data;
	ssize_t		 n, used;

	(void)loop;
	(void)revents;
	if (c->lingering) {
		n = recv(c->fd, chunk, sizeof(chunk), 0);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0)
			client_free(c);
		return;
	}
	n = recv(c->fd, chunk, sizeof(chunk), 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* The peer is gone (or half-closed): nothing more to do. */
		client_free(c);
		return;
	}
	if (c->in.len > 0) {
		if (buf_append(&c->in, chunk, (size_t)n) == -1) {
			client_free(c);
			return;
		}
		client_process(c);
		return;
	}
	if ((used = client_parse(c, chunk, (size_t)n)) == -1)
		return;
	if (used < n && buf_append(&c->in, chunk + used,
	    (size_t)(n - used)) == -1) {
		client_free(c);
		return;
	}
	client_parsed(c);
}

static void
client_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct client	*c = w->data;
	struct exchange	*x;

	(void)revents;
	ev_timer_stop(loop, w);	/* once: client_arm_timer arms it to repeat */
	if (!c->lingering && ev_is_active(&c->wio)) {
		if (client_send_left(c) > 0.001) {
			client_arm_timer(c);
			return;
		}
		metrics_send_timeout(c->srv->metrics);
		log_info("%s client took no byte of its answer for "
		    "limits.send_timeout_ms (%u ms): closed",
		    c->peer.is_unix ? "unix" : "tcp",
		    c->srv->conf->send_timeout_ms);
		client_free(c);
		return;
	}
	if (!c->lingering && client_waiting(c))
		return;
	if (c->lingering || (!c->in_request && c->in.len == 0)) {
		client_free(c);		/* idle, or done lingering */
		return;
	}
	c->closing = 1;
	client_reading(c, 0);
	buf_free(&c->in);
	if ((x = exchange_new(c, NULL)) == NULL) {
		client_free(c);
		return;
	}
	x->close = 1;
	exchange_error(x, 408, "request_timeout", "the request did not "
	    "arrive within limits.header_timeout_ms", NULL);
}

void
client_accept(struct server *srv, struct listener *l, int fd)
{
	struct client	*c;
	struct ucred	 cred;
	socklen_t	 len = sizeof(cred);

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->srv = srv;
	c->fd = fd;
	c->peer.is_unix = l->is_unix;
	if (c->peer.is_unix &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		c->peer.uid = cred.uid;
		c->peer.gid = cred.gid;
		c->peer.has_cred = 1;
	}
	buf_init(&c->in);
	http_reader_init(&c->rd, srv->conf->max_header_bytes,
	    srv->conf->max_body_bytes);
	ev_io_init(&c->rio, client_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, client_write_cb, fd, EV_WRITE);
	ev_timer_init(&c->timer, client_timer_cb, 0., 0.);
	c->rio.data = c;
	c->wio.data = c;
	c->timer.data = c;
	c->next = srv->clients;
	if (srv->clients != NULL)
		srv->clients->prev = c;
	srv->clients = c;
	if (++srv->nclients > srv->npeak)
		srv->npeak = srv->nclients;
	if (!c->peer.is_unix)
		srv->nclients_tcp++;
	c->req_start = ev_now(srv->loop);
	client_reading(c, 1);
	client_arm_timer(c);
}

/*
 * Draining: idle connections go now, the others after their answers
 * (exchange_answer marks them close while draining).
 */
void
client_close_all(struct server *srv)
{
	struct client	*c, *nc;

	for (c = srv->clients; c != NULL; c = nc) {
		nc = c->next;
		if (srv->draining && c->head != NULL) {
			client_reading(c, 0);
			c->closing = 1;
			continue;
		}
		client_free(c);
	}
}

