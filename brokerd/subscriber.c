/*
 * Local subscribers (SPEC section 7): GET /ws (and /v1/api/ws) upgraded to
 * a WebSocket, and GET /stream answered as Server-Sent Events.  Admission
 * is a request's (key, peer, scope, Host); then client.c hands the socket
 * over and it lives here, outside the HTTP connection's timers: a stream
 * is exempt from idle_timeout_ms, pings keep it honest.  What a subscriber
 * receives comes from the hub (stream.c); its messages go to the hub, and
 * what the hub wants from the Gateway leaves through streamup.c.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brokerd.h"
#include "stream.h"
#include "streamup.h"
#include "ws.h"

#define SUB_LOW_BYTES	16384	/* refill wslay's queue below this */
#define SUB_BATCH_BYTES	65536	/* taken from the hub at once */
#define SUB_OUT_BYTES	65536	/* frames gathered for one send(2) */
#define SUB_PING_MS	30000u	/* WebSocket ping; twice unanswered: gone */
#define SUB_SSE_PING_S	15.	/* SSE comment line */
#define SUB_CLOSE_S	3.	/* wait this long for the closing handshake */
#define SUB_TRY_LATER	1013	/* RFC 6455 7.4.1: max_subscribers */
#define SUB_HOLD_BYTES	(256 * 1024)	/* queued in wslay: stop reading */

struct sub {
	struct server	*srv;
	int		 fd;
	struct admit_peer peer;
	char		 who[64];	/* key or peer name, never the key */
	unsigned char	 key_hash[32];	/* of the key it came with */
	int		 has_key;
	struct ws	*ws;		/* NULL: SSE */
	struct stream_sub *ss;		/* NULL once closing */
	struct stream_cmd *cmds;	/* SSE: the query's, applied at adopt */
	size_t		 ncmds;
	struct buf	 pre;		/* bytes read past the request head */
	struct buf	 out;		/* raw: the answer's head, SSE events */
	size_t		 opos;
	ev_io		 rio;
	ev_io		 wio;		/* only while the socket is full */
	ev_prepare	 flush;		/* queued this turn: write it */
	ev_timer	 ping;
	ev_timer	 linger;	/* closing: give up after SUB_CLOSE_S */
	int		 heard;		/* a byte read or taken since the ping */
	int		 full;		/* the last send(2) met a full socket */
	int		 closing;
	int		 refused;	/* max_subscribers: say so and close */
	uint16_t	 then_close;	/* once wslay's queue is empty */
	struct sub	*prev;
	struct sub	*next;
};

static void	sub_pump(struct sub *);
static void	sub_close(struct sub *, uint16_t, const char *);

static void
sub_free(struct sub *s)
{
	struct server	*srv = s->srv;
	size_t		 i;

	ev_io_stop(srv->loop, &s->rio);
	ev_io_stop(srv->loop, &s->wio);
	ev_prepare_stop(srv->loop, &s->flush);
	ev_timer_stop(srv->loop, &s->ping);
	ev_timer_stop(srv->loop, &s->linger);
	if (s->ss != NULL)
		stream_sub_free(srv->stream, s->ss);
	for (i = 0; i < s->ncmds; i++)
		stream_cmd_free(&s->cmds[i]);
	free(s->cmds);
	ws_free(s->ws);
	buf_free(&s->pre);
	buf_free(&s->out);
	if (s->fd != -1)
		close(s->fd);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->subs = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	srv->nsubs--;
	free(s);
	/* Unsubscriptions may be queued for the Gateway. */
	if (srv->streamup != NULL)
		streamup_wake(srv->streamup);
}

/* ---------------------------------------------------------- transport */

static ssize_t
sub_recv(void *ctx, void *p, size_t len)
{
	struct sub	*s = ctx;
	ssize_t		 n;

	if (s->pre.len > 0) {
		n = (ssize_t)(len < s->pre.len ? len : s->pre.len);
		memcpy(p, s->pre.data, (size_t)n);
		buf_consume(&s->pre, (size_t)n);
		if (s->pre.len == 0)
			buf_free(&s->pre);
		return (n);
	}
	/* wslay reads until the socket is dry: stop it too (sub_hold) */
	if (ws_queued_bytes(s->ws) > SUB_HOLD_BYTES)
		return (WS_IO_AGAIN);
	do
		n = recv(s->fd, p, len, 0);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return (errno == EAGAIN || errno == EWOULDBLOCK ?
		    WS_IO_AGAIN : WS_IO_ERROR);
	if (n > 0)
		s->heard = 1;
	return (n);
}

static int	sub_send_raw(struct sub *);

/*
 * wslay hands over one frame at a time: gather them in out, so that a
 * loop turn's frames leave in one send(2), not one each (under a tick
 * flood the system calls cost more than the rest of the fan-out).
 */
static ssize_t
sub_send(void *ctx, const void *p, size_t len, int more)
{
	struct sub	*s = ctx;

	(void)more;
	if (s->out.len >= SUB_OUT_BYTES && sub_send_raw(s) == -1)
		return (WS_IO_ERROR);
	if (s->out.len >= SUB_OUT_BYTES)
		return (WS_IO_AGAIN);
	if (buf_append(&s->out, p, len) == -1)
		return (WS_IO_ERROR);
	return ((ssize_t)len);
}

/*
 * Raw bytes first (the 101 or the SSE head and events): 0, 1 blocked, -1.
 * A full socket that takes bytes again was read: the subscriber is alive
 * though its answer to a ping may wait behind a backlog, or be unread
 * while sub_hold holds it (sub_ping_cb).  Bytes into a socket with room
 * prove nothing: a vanished peer's kernel buffer takes them too.
 */
static int
sub_send_raw(struct sub *s)
{
	size_t	 pos = s->opos;
	int	 rc;

	rc = buf_send(&s->out, s->fd, &s->opos);
	if (s->full && (rc == 0 ? s->out.len : s->opos) > pos)
		s->heard = 1;
	s->full = rc == 1;
	if (rc != 0)
		return (rc);
	buf_reset(&s->out);
	s->opos = 0;
	return (0);
}

/* ------------------------------------------------------------ the hub */

static int
sub_emit_ws(void *arg, const struct stream_out *o)
{
	struct sub	*s = arg;

	return (ws_send_text(s->ws, o->json, o->len));
}

/* An SSE event: its pieces straight into out, the JSON copied once. */
static int
sub_emit_raw(void *arg, const struct stream_out *o)
{
	struct sub	*s = arg;

	if (buf_reserve(&s->out, o->hlen + o->len + o->tlen) == -1)
		return (-1);
	(void)buf_append(&s->out, o->head, o->hlen);
	(void)buf_append(&s->out, o->json, o->len);
	return (buf_append(&s->out, o->tail, o->tlen));
}

/*
 * Something was queued for an idle subscriber: write it once this loop
 * turn's callbacks are done (every message of the Gateway read in one
 * send(2)), straight to the socket; the write watcher is only for a full
 * socket.  Waking the watcher instead cost an epoll_ctl to arm it, a
 * turn of the loop and another to disarm it, per subscriber per tick.
 */
void
sub_ready(void *owner, struct stream_sub *ss)
{
	struct sub	*s = owner;

	(void)ss;
	if (!ev_is_active(&s->wio))
		ev_prepare_start(s->srv->loop, &s->flush);
}

static void
sub_flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)revents;
	ev_prepare_stop(loop, w);
	sub_pump(w->data);
}

/* The hub says: too slow for orders (1008).  Freed outside its call. */
void
sub_close_cb(void *owner, struct stream_sub *ss, uint16_t code,
    const char *reason)
{
	struct sub	*s = owner;

	(void)ss;
	log_warn("stream: closing %s's subscription (%u): %s", s->who,
	    code, reason);
	sub_close(s, code, reason);
}

/*
 * An event stream has no close frame: its last event says why it ends
 * ({"topic":"system","error":reason,"code":code}), so that a reader of
 * orders knows it missed some and rereads them.
 */
static void
sub_sse_bye(struct sub *s, uint16_t code, const char *reason)
{
	size_t	 start = s->out.len;

	if (buf_puts(&s->out, "event: system\ndata: {\"topic\":\"system\","
	    "\"error\":") == -1 ||
	    buf_json_string(&s->out, reason, strlen(reason)) == -1 ||
	    buf_printf(&s->out, ",\"code\":%u}\n\n", code) == -1)
		buf_truncate(&s->out, start);
}

/*
 * Close: a WebSocket gets the code and reason after what wslay already
 * holds, then the peer's answer or SUB_CLOSE_S; an SSE stream gets them
 * as its last event (a refused one was told already), then ends.  The
 * hub's part goes from the loop, never inside the hub's own call.
 */
static void
sub_close(struct sub *s, uint16_t code, const char *reason)
{
	if (s->closing)
		return;
	s->closing = 1;
	ev_timer_stop(s->srv->loop, &s->ping);
	if (s->ws != NULL)
		(void)ws_close(s->ws, code, reason);
	else if (!s->refused)
		sub_sse_bye(s, code, reason);
	ev_timer_set(&s->linger, SUB_CLOSE_S, 0.);
	ev_timer_start(s->srv->loop, &s->linger);
	ev_feed_event(s->srv->loop, &s->wio, EV_WRITE);
}

/*
 * A peer that sends pings and reads nothing would grow wslay's queue of
 * pongs without bound: past SUB_HOLD_BYTES queued, it is not read until
 * the queue drains (its pongs then go unheard: unless it takes bytes,
 * it is dropped at the next ping).
 */
static void
sub_hold(struct sub *s)
{
	if (s->ws == NULL || s->fd == -1)
		return;
	if (ws_queued_bytes(s->ws) > SUB_HOLD_BYTES)
		ev_io_stop(s->srv->loop, &s->rio);
	else if (!ev_is_active(&s->rio))
		ev_io_start(s->srv->loop, &s->rio);
}

/* Write what is queued, refilling from the hub while the socket takes it. */
static void
sub_pump(struct sub *s)
{
	struct stream	*st = s->srv->stream;
	int		 rc, wr;

	if (s->closing && s->ss != NULL) {
		stream_sub_free(st, s->ss);
		s->ss = NULL;
		if (s->srv->streamup != NULL)
			streamup_wake(s->srv->streamup);
	}
	for (;;) {
		if ((rc = sub_send_raw(s)) == -1)
			goto gone;
		if (rc == 1)
			break;
		if (s->ws == NULL) {
			if (s->closing)
				goto gone;
			if (s->ss == NULL || stream_sub_queued(s->ss) == 0)
				break;
			if (stream_sub_take(st, s->ss, SUB_BATCH_BYTES,
			    sub_emit_raw, s) == -1)
				goto gone;
			continue;
		}
		while (s->ss != NULL && stream_sub_queued(s->ss) > 0 &&
		    ws_queued_bytes(s->ws) < SUB_LOW_BYTES)
			if (stream_sub_take(st, s->ss, SUB_BATCH_BYTES,
			    sub_emit_ws, s) == -1)
				goto gone;
		if ((wr = ws_write(s->ws)) == -1 || s->out.len > 0) {
			/* what wslay handed over, the close included */
			if ((rc = sub_send_raw(s)) == -1)
				goto gone;
			if (wr == -1 && rc == 1) {
				ev_io_start(s->srv->loop, &s->wio);
				sub_hold(s);
				return;
			}
			if (wr == -1)
				goto gone;
		}
		/* wslay sends a close before queued data: wait for it. */
		if (s->then_close != 0 && ws_queued_bytes(s->ws) == 0) {
			sub_close(s, s->then_close, "too many subscribers");
			s->then_close = 0;
			continue;
		}
		if (ws_queued_bytes(s->ws) >= SUB_LOW_BYTES ||
		    s->ss == NULL || stream_sub_queued(s->ss) == 0)
			break;
	}
	if (s->out.len > 0 || (s->ws != NULL && ws_want_write(s->ws)) ||
	    (s->ss != NULL && stream_sub_queued(s->ss) > 0))
		ev_io_start(s->srv->loop, &s->wio);
	else
		ev_io_stop(s->srv->loop, &s->wio);
	sub_hold(s);
	return;
 gone:
	sub_free(s);
}

static void
sub_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	sub_pump(w->data);
}

/* A whole message from the subscriber (wslay reassembled it). */
static void
sub_message(void *arg, int opcode, const char *msg, size_t len,
    uint16_t code)
{
	struct sub	*s = arg;

	(void)code;
	if (s->closing || s->ss == NULL)
		return;
	switch (opcode) {
	case WS_OP_TEXT:
		if (stream_sub_message(s->srv->stream, s->ss, msg, len,
		    now_ms()) == -1) {
			sub_close(s, 1011, "out of memory");
			return;
		}
		if (s->srv->streamup != NULL)
			streamup_wake(s->srv->streamup);
		break;
	case WS_OP_BINARY:
		sub_close(s, 1003, "text messages only");
		break;
	case WS_OP_CLOSE:
		/* wslay answered it; nothing more goes out but that. */
		s->closing = 1;
		ev_timer_stop(s->srv->loop, &s->ping);
		ev_timer_set(&s->linger, SUB_CLOSE_S, 0.);
		ev_timer_start(s->srv->loop, &s->linger);
		ev_feed_event(s->srv->loop, &s->wio, EV_WRITE);
		break;
	default:
		break;
	}
}

static void
sub_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct sub	*s = w->data;
	char		 junk[4096];
	ssize_t		 n;

	(void)loop;
	(void)revents;
	if (s->ws == NULL) {
		/* SSE: the client sends nothing; EOF means it left. */
		n = recv(s->fd, junk, sizeof(junk), 0);
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			sub_free(s);
		return;
	}
	if (ws_read(s->ws) == -1) {
		(void)sub_send_raw(s);	/* an answer to a close */
		sub_free(s);
		return;
	}
	sub_pump(s);
}

/*
 * A WebSocket subscriber that neither sent a byte nor took one since the
 * last ping (sub_recv, sub_send_raw) is gone; an event stream gets a
 * comment, so that nothing on the way times it out.
 */
static void
sub_ping_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sub	*s = w->data;
	static const char keep[] = ": keep-alive\n\n";

	(void)loop;
	(void)revents;
	if (s->ws == NULL) {
		if (buf_append(&s->out, keep, sizeof(keep) - 1) == -1) {
			sub_free(s);
			return;
		}
	} else {
		/*
		 * The socket may not have become writable again (three
		 * quarters of a Unix socket's buffer freed, a third of
		 * TCP's) for a reader that takes bytes slowly: one send says
		 * whether it took any.
		 */
		if (!s->heard && s->full && s->out.len > s->opos)
			(void)sub_send_raw(s);
		if (!s->heard) {
			log_info("stream: %s answered no ping and took no "
			    "byte: closing", s->who);
			sub_close(s, WS_CLOSE_GOING_AWAY,
			    "no answer to pings");
			return;
		}
		s->heard = 0;
		(void)ws_send_ping(s->ws, "brokerd", 7);
	}
	sub_pump(s);
}

static void
sub_linger_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	sub_free(w->data);
}

/* ---------------------------------------------------------- admission */

static void
sub_refuse(struct exchange *x, int status, const char *code,
    const char *message, const char *extra)
{
	exchange_error(x, status, code, message, extra);
}

/* The SHA-256 of the key a "key:NAME" subscriber came with. */
static void
sub_remember_key(struct sub *s, const struct config *conf)
{
	size_t	 i;

	if (strncmp(s->who, "key:", 4) != 0)
		return;
	for (i = 0; i < conf->nkeys; i++)
		if (strcmp(conf->keys[i].name, s->who + 4) == 0) {
			memcpy(s->key_hash, conf->keys[i].hash,
			    sizeof(s->key_hash));
			s->has_key = 1;
			return;
		}
}

static struct sub *
sub_new(struct exchange *x, const struct admit_verdict *v)
{
	struct server	*srv = x->c->srv;
	struct sub	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return (NULL);
	s->srv = srv;
	s->fd = -1;
	s->peer = x->c->peer;
	snprintf(s->who, sizeof(s->who), "%s", v->who);
	sub_remember_key(s, srv->conf);
	buf_init(&s->pre);
	buf_init(&s->out);
	ev_io_init(&s->rio, sub_read_cb, -1, EV_READ);
	ev_io_init(&s->wio, sub_write_cb, -1, EV_WRITE);
	ev_prepare_init(&s->flush, sub_flush_cb);
	ev_timer_init(&s->ping, sub_ping_cb, 0., 0.);
	ev_timer_init(&s->linger, sub_linger_cb, 0., 0.);
	s->rio.data = s->wio.data = s->flush.data = s->ping.data =
	    s->linger.data = s;
	return (s);
}

static void
sub_log(struct exchange *x, int status)
{
	log_request(x->req->method, x->req->path, status, 0,
	    (now_s() - x->start) * 1000.0, x->who);
	metrics_request(x->c->srv->metrics, x->route, x->req->method, status,
	    now_s() - x->start);
}

static void
sub_cmds_free(struct stream_cmd *cmds, size_t ncmds)
{
	size_t	 i;

	for (i = 0; i < ncmds; i++)
		stream_cmd_free(&cmds[i]);
	free(cmds);
}

/* A subscriber that never got its socket. */
static void
sub_discard(struct server *srv, struct sub *s)
{
	if (s->ss != NULL)
		stream_sub_free(srv->stream, s->ss);
	s->ss = NULL;
	sub_cmds_free(s->cmds, s->ncmds);
	ws_free(s->ws);
	buf_free(&s->out);
	free(s);
}

/* Who asks, and how: 0 to go on, -1 when x has been answered. */
static int
sub_admit(struct exchange *x, struct admit_verdict *v)
{
	struct http_request	*r = x->req;

	/* Cross-site WebSocket hijacking: no web page opens a stream. */
	if (http_request_header(r, "Origin") != NULL) {
		sub_refuse(x, 403, "forbidden", "streams are not for web "
		    "pages (Origin sent): relay them from your server", NULL);
		return (-1);
	}
	if (admit_who(x->c->srv->conf, &x->c->peer, r, v) == 0)
		(void)admit_scope(v, SCOPE_READ);
	if (exchange_verdict(x, v) == -1)
		return (-1);
	if (strcmp(r->method, "GET") != 0) {
		memset(v, 0, sizeof(*v));
		admit_allow(v, "GET");
		exchange_verdict(x, v);
		return (-1);
	}
	if (x->c->head != x) {
		sub_refuse(x, 400, "bad_request", "a stream cannot follow "
		    "pipelined requests", NULL);
		return (-1);
	}
	return (0);
}

/* The upgrade's headers, or /stream's query: 0, or -1 when answered. */
static int
sub_check(struct exchange *x, int is_ws, struct stream_cmd **cmds,
    size_t *ncmds)
{
	struct http_request	*r = x->req;
	const char		*why;
	int			 status;

	if (is_ws) {
		if ((status = ws_upgrade_check(r, &why)) != 0) {
			sub_refuse(x, status, status == 426 ?
			    "upgrade_required" : "bad_request", why,
			    status == 426 ? WS_VERSION_LINE "Upgrade: "
			    "websocket\r\n" : NULL);
			return (-1);
		}
	} else if (stream_parse_query(r->query != NULL ? r->query : "",
	    cmds, ncmds, &why) == -1) {
		sub_refuse(x, 400, "bad_request", why, NULL);
		return (-1);
	}
	return (0);
}

/* The 101 and the server side of wslay. */
static int
sub_start_ws(struct exchange *x, struct sub *s)
{
	struct ws_transport	 tr;

	if (ws_upgrade_answer(&s->out, x->req) == -1)
		return (-1);
	sub_log(x, 101);
	tr.recv = sub_recv;
	tr.send = sub_send;
	tr.ctx = s;
	if ((s->ws = ws_new(0, x->c->srv->conf->stream_max_message_bytes,
	    &tr, sub_message, s)) == NULL)
		return (-1);
	return (0);
}

static int
sub_start_sse(struct exchange *x, struct sub *s)
{
	if (buf_puts(&s->out, "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/event-stream\r\n"
	    "Cache-Control: no-store\r\n"
	    "X-Accel-Buffering: no\r\n"
	    "Connection: close\r\n\r\n") == -1)
		return (-1);
	sub_log(x, 200);
	return (0);
}

/*
 * The subscriber, its place in the hub (or a refusal to send once
 * adopted: stream.max_subscribers) and its answer head.  -1: out of
 * memory, s freed.
 */
static int
sub_start(struct exchange *x, const struct admit_verdict *v, int is_ws,
    struct stream_cmd *cmds, size_t ncmds)
{
	struct sub	*s;

	if ((s = sub_new(x, v)) == NULL) {
		sub_cmds_free(cmds, ncmds);
		return (-1);
	}
	s->cmds = cmds;
	s->ncmds = ncmds;
	if ((s->ss = stream_sub_new(x->c->srv->stream, is_ws ? STREAM_ENC_WS :
	    STREAM_ENC_SSE, s)) == NULL) {
		if (errno != EBUSY)
			goto fail;
		s->refused = 1;
	}
	if ((is_ws ? sub_start_ws(x, s) : sub_start_sse(x, s)) == -1)
		goto fail;
	x->c->upgraded = s;
	return (0);
 fail:
	sub_discard(x->c->srv, s);
	return (-1);
}

int
sub_answer(struct exchange *x, const char *path)
{
	struct admit_verdict	 v;
	struct stream_cmd	*cmds = NULL;
	size_t			 ncmds = 0;
	int			 is_ws;

	if (strcmp(path, "/ws") == 0)
		is_ws = 1;
	else if (strcmp(path, "/stream") == 0)
		is_ws = 0;
	else
		return (0);
	x->route = is_ws ? "/ws" : "/stream";
	if (sub_admit(x, &v) == -1 || sub_check(x, is_ws, &cmds,
	    &ncmds) == -1)
		return (1);
	if (sub_start(x, &v, is_ws, cmds, ncmds) == -1)
		sub_refuse(x, 500, "internal_error", "out of memory", NULL);
	return (1);
}

void
sub_adopt(struct sub *s, int fd, const char *rest, size_t len)
{
	struct server	*srv = s->srv;
	static const char full[] = "{\"topic\":\"system\",\"error\":"
	    "\"too many subscribers (stream.max_subscribers)\"}";
	double		 ping_s;
	int		 one = 1;
	size_t		 i;

	s->fd = fd;
	s->next = srv->subs;
	if (srv->subs != NULL)
		srv->subs->prev = s;
	srv->subs = s;
	srv->nsubs++;
	if (!s->peer.is_unix)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	if (len > 0 && buf_append(&s->pre, rest, len) == -1) {
		sub_free(s);
		return;
	}
	ev_io_set(&s->rio, fd, EV_READ);
	ev_io_set(&s->wio, fd, EV_WRITE);
	ev_io_start(srv->loop, &s->rio);
	if (s->refused) {
		log_warn("stream: %s refused: stream.max_subscribers reached",
		    s->who);
		if (s->ws != NULL) {
			(void)ws_send_text(s->ws, full, sizeof(full) - 1);
			s->then_close = SUB_TRY_LATER;
		} else {
			(void)buf_printf(&s->out, "event: system\ndata: %s\n\n",
			    full);
			sub_close(s, SUB_TRY_LATER, "too many subscribers");
		}
		sub_pump(s);
		return;
	}
	ping_s = s->ws == NULL ? SUB_SSE_PING_S :
	    config_env_ms("BROKERD_STREAM_PING_MS", SUB_PING_MS) / 1000.;
	ev_timer_set(&s->ping, ping_s, ping_s);
	ev_timer_start(srv->loop, &s->ping);
	s->heard = 1;
	/* the others were told when the wait began: a newcomer too */
	if (srv->streamup != NULL && streamup_waiting(srv->streamup) &&
	    stream_sub_system(srv->stream, s->ss, "waiting for session") == -1) {
		sub_free(s);
		return;
	}
	for (i = 0; i < s->ncmds; i++)
		if (stream_sub_command(srv->stream, s->ss, &s->cmds[i],
		    now_ms()) == -1) {
			sub_free(s);
			return;
		}
	if (srv->streamup != NULL)
		streamup_wake(srv->streamup);
	/* Frames sent right behind the head wait in pre. */
	if (s->ws != NULL && s->pre.len > 0 && ws_read(s->ws) == -1) {
		sub_free(s);
		return;
	}
	sub_pump(s);
}

/* ------------------------------------------------------ reload, stop */

/* Does the new configuration still give this subscriber the read scope? */
static int
sub_still_allowed(const struct sub *s, const struct config *conf)
{
	const char	*name;
	size_t		 i;

	if (s->has_key) {
		for (i = 0; i < conf->nkeys; i++)
			if (memcmp(conf->keys[i].hash, s->key_hash,
			    sizeof(s->key_hash)) == 0)
				return ((conf->keys[i].scopes & SCOPE_READ) !=
				    0);
		return (0);
	}
	if (strncmp(s->who, "peer:", 5) == 0)
		return ((auth_peer_scopes(conf, s->peer.uid, s->peer.gid,
		    &name) & SCOPE_READ) != 0);
	if (strcmp(s->who, "anonymous") == 0)
		return ((conf->tcp_anonymous & SCOPE_READ) != 0);
	return (0);
}

void
sub_reconfigure(struct server *srv)
{
	struct sub	*s, *ns;

	for (s = srv->subs; s != NULL; s = ns) {
		ns = s->next;
		if (s->closing || sub_still_allowed(s, srv->conf))
			continue;
		log_info("stream: %s lost the read scope: closing", s->who);
		sub_close(s, WS_CLOSE_POLICY, "key removed or its scope "
		    "withdrawn");
	}
}

void
sub_close_all(struct server *srv)
{
	struct sub	*s;

	for (s = srv->subs; s != NULL; s = s->next)
		sub_close(s, WS_CLOSE_GOING_AWAY, "brokerd is stopping");
}

void
sub_free_all(struct server *srv)
{
	while (srv->subs != NULL)
		sub_free(srv->subs);
}
