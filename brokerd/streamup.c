/*
 * The one WebSocket from brokerd to the Gateway (streamup.h, SPEC section
 * 7): its state machine on libev.  The socket itself (TCP, TLS under the
 * pool's settings and pin, the upgrade with the jar's cookies, wslay
 * framing) is streamup_sock.c's.  {"session":id} answers the Gateway's
 * waiting message; what the hub (stream.c) queues for the Gateway leaves
 * once the Gateway has said its first system message, a sor after its
 * orders?force=true; what the Gateway says goes to the hub.  Silence,
 * drops and lost authentication close the socket; it reopens with backoff
 * and the hub replays every active subscription.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "brokerd.h"
#include "stream.h"
#include "streamup.h"
#include "streamup_impl.h"

#define STREAMUP_ORDERS		"/v1/api/iserver/account/orders?force=true"
#define STREAMUP_TIC_S		30.0	/* keeps /iserver alive (IBKR.md) */
#define STREAMUP_IDLE_MS	30000u	/* after the last subscriber */
#define STREAMUP_SILENT_MS	10000u	/* no first system message */
#define STREAMUP_HB_FACTOR	6u	/* no hb for 60 s */
#define STREAMUP_RENEW_MS	(9u * 60u * 1000u)	/* smd age renewed */
#define STREAMUP_RENEW_EVERY_MS	60000u

void
streamup_set_state(struct streamup *su, enum streamup_state st)
{
	if (su->state != st)
		su->since = time(NULL);
	su->state = st;
}

void
streamup_timer(struct streamup *su, ev_timer *t, double s)
{
	ev_timer_stop(su->srv->loop, t);
	ev_timer_set(t, s, 0.);
	ev_timer_start(su->srv->loop, t);
}

static void
streamup_kick(struct streamup *su)
{
	streamup_timer(su, &su->t_kick, 0.);
}

/*
 * The socket is gone (a drop, silence, an error): reopen after the
 * backoff, or wait for the session (wait), or stay closed when nobody
 * subscribes.
 */
void
streamup_drop(struct streamup *su, const char *why, int wait)
{
	struct stream	*hub = su->srv->stream;

	if (su->state == SU_CONNECTED || su->state == SU_CONNECTING)
		log_info("gateway stream: closed (%s)", why);
	streamup_sock_close(su);
	stream_up_forget(hub);
	if (su->stopped || stream_idle(hub)) {
		streamup_set_state(su, SU_CLOSED);
		return;
	}
	if (wait) {
		streamup_set_state(su, SU_WAITING);
		(void)stream_broadcast_system(hub, "waiting for session");
		return;
	}
	streamup_set_state(su, SU_BACKOFF);
	log_debug("gateway stream: reopening in %u ms", su->backoff_ms);
	streamup_timer(su, &su->t_backoff, su->backoff_ms / 1000.0);
	su->backoff_ms = su->backoff_ms * 2 > STREAMUP_BACKOFF_MAX_MS ?
	    STREAMUP_BACKOFF_MAX_MS : su->backoff_ms * 2;
}

/* Close from the loop, never from inside wslay's or session's callback. */
static void
streamup_doom(struct streamup *su, const char *why, int wait)
{
	su->doomed = 1;
	su->doom_wait = wait;
	snprintf(su->doom_why, sizeof(su->doom_why), "%.*s",
	    (int)sizeof(su->doom_why) - 1, why);
	streamup_kick(su);
}

static int
streamup_authenticated(const struct streamup *su)
{
	return (su->srv->session != NULL &&
	    session_status(su->srv->session)->state == GW_AUTHENTICATED);
}

void
streamup_msg_cb(void *arg, int op, const char *p, size_t len, uint16_t code)
{
	struct streamup		*su = arg;
	struct stream_gw_info	 info;
	char			 m[128];

	if (op == WS_OP_CLOSE) {
		snprintf(m, sizeof(m), "the Gateway closed it: %u", code);
		streamup_doom(su, m, 0);
		return;
	}
	if (op != WS_OP_TEXT)
		return;
	su->rd_msgs++;
	memset(&info, 0, sizeof(info));
	if (stream_gateway_message(su->srv->stream, p, len, now_ms(),
	    &info) == -1)
		return;
	if (info.bad_topic &&
	    stream_counters(su->srv->stream)->bad_topics == 1)
		log_warn("gateway stream: a message whose topic holds a "
		    "control byte was dropped (counted from now on in "
		    "/metrics, not logged again)");
	if (info.waiting)
		(void)streamup_sock_session(su);
	if (info.system) {
		if (su->state == SU_CONNECTING || info.hb)
			streamup_timer(su, &su->t_conn, su->hb_ms / 1000.0);
		if (su->state == SU_CONNECTING) {
			streamup_set_state(su, SU_CONNECTED);
			su->silent = 0;
			su->backoff_ms = STREAMUP_BACKOFF_MS;
			log_info("gateway stream: connected, %zu "
			    "subscriptions replayed",
			    stream_replay(su->srv->stream, now_ms()));
			streamup_timer(su, &su->t_tic, STREAMUP_TIC_S);
			ev_timer_again(su->srv->loop, &su->t_renew);
			streamup_kick(su);
		}
	}
	if (info.sts && info.authenticated != -1) {
		session_sts(su->srv->session, info.authenticated);
		if (info.authenticated == 0)
			streamup_doom(su, "sts: authentication lost", 1);
	}
}

/* Open a socket to the Gateway once the session has an id. */
static void
streamup_open(struct streamup *su)
{
	ev_timer_stop(su->srv->loop, &su->t_backoff);
	/*
	 * The Gateway authenticates the socket with what a tickle gives
	 * (the x-sess-uuid cookie, the session id): get one first.
	 */
	if (*session_id(su->srv->session) == '\0') {
		session_tickle_now(su->srv->session);
		streamup_set_state(su, SU_BACKOFF);
		streamup_timer(su, &su->t_backoff, 0.25);
		return;
	}
	streamup_sock_open(su);
}

/* ------------------------------------------------ orders?force=true */

static void
streamup_orders_done(struct upstream_req *req, enum upstream_error e,
    struct http_response *resp, void *arg)
{
	struct streamup	*su = arg;

	(void)req;
	http_response_free(resp);
	su->oreq_inflight = 0;
	if (e == UPSTREAM_RATE_LIMITED && su->holding) {
		/* paced like any call: it waits for its slot, however long */
		su->oreq_retry = 1;
	} else if (e != UPSTREAM_OK)
		log_info("gateway stream: orders?force=true failed; sor "
		    "sent anyway");
	streamup_kick(su);
}

static int
streamup_orders_submit(struct streamup *su)
{
	const struct config	*conf = su->srv->conf;

	if (su->oreq_used)
		upstream_req_free(&su->oreq);
	upstream_req_init(&su->oreq);
	su->oreq_used = 1;
	(void)snprintf(su->oreq.method, sizeof(su->oreq.method), "GET");
	if (buf_puts(&su->oreq.target, STREAMUP_ORDERS) == -1)
		return (-1);
	su->oreq.policy = route_policy(conf->routes, conf->nroutes,
	    STREAMUP_ORDERS, strlen(STREAMUP_ORDERS));
	su->oreq.conf = config_ref(conf);
	su->oreq.cb = streamup_orders_done;
	su->oreq.arg = su;
	su->oreq_inflight = 1;
	upstream_submit(su->srv->upstream, &su->oreq);
	return (0);
}

/* ------------------------------------------------------ the work */

/* Send what the hub queued, in order; a sor waits for its orders call. */
void
streamup_flush(struct streamup *su)
{
	struct stream	*hub = su->srv->stream;
	int		 of, r;

	if (su->state != SU_CONNECTED || su->ws == NULL)
		goto io;
	for (;;) {
		if (su->holding) {
			if (su->oreq_inflight)
				break;
			if (su->oreq_retry) {
				su->oreq_retry = 0;
				if (streamup_orders_submit(su) == 0)
					break;
			}
			if (ws_send_text(su->ws, su->held.data,
			    su->held.len) == -1)
				break;
			su->holding = 0;
			continue;
		}
		if (ws_queued_bytes(su->ws) > STREAMUP_HOLD_BYTES / 2)
			break;
		buf_reset(&su->msg);
		if ((r = stream_up_take(hub, &su->msg, &of)) <= 0)
			break;
		if (of) {
			buf_reset(&su->held);
			if (buf_append(&su->held, su->msg.data,
			    su->msg.len) == -1)
				break;
			su->holding = 1;
			/*
			 * A call still out from before a drop answers for
			 * this sor too; its request is on a connection and
			 * must not be submitted again.
			 */
			if (su->oreq_inflight ||
			    streamup_orders_submit(su) == 0)
				break;
			continue;	/* out of memory: send it now */
		}
		if (ws_send_text(su->ws, su->msg.data, su->msg.len) == -1)
			break;
	}
	if (ws_write(su->ws) == -1) {
		streamup_drop(su, "connection lost", 0);
		return;
	}
	if (stream_idle(hub) && !ev_is_active(&su->t_idle))
		streamup_timer(su, &su->t_idle, su->idle_ms / 1000.0);
	else if (!stream_idle(hub))
		ev_timer_stop(su->srv->loop, &su->t_idle);
io:
	if (su->ws != NULL)
		streamup_sock_watch(su);
}

void
streamup_wake(struct streamup *su)
{
	struct stream	*hub = su->srv->stream;

	if (su->stopped || hub == NULL)
		return;
	if (su->state != SU_CONNECTED)
		stream_up_forget(hub);	/* no socket: its replay will do */
	switch (su->state) {
	case SU_CLOSED:
	case SU_WAITING:
		if (stream_idle(hub))
			return;
		if (!streamup_authenticated(su)) {
			if (su->state != SU_WAITING) {
				streamup_set_state(su, SU_WAITING);
				(void)stream_broadcast_system(hub,
				    "waiting for session");
			}
			return;
		}
		streamup_open(su);
		return;
	case SU_CONNECTED:
		streamup_flush(su);
		return;
	default:
		return;
	}
}

static void
streamup_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct streamup	*su = w->data;

	(void)loop;
	(void)revents;
	if (su->doomed) {
		streamup_drop(su, su->doom_why, su->doom_wait);
		return;
	}
	streamup_wake(su);
}

static void
streamup_conn_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct streamup	*su = w->data;
	struct stream	*hub = su->srv->stream;
	const char	*what;
	unsigned	 ms;

	(void)loop;
	(void)revents;
	if (su->state == SU_CONNECTING && su->phase != SP_WS) {
		streamup_drop(su, "connect timeout", 0);
		return;
	}
	what = su->state == SU_CONNECTING ? "system message" : "heartbeat";
	ms = su->state == SU_CONNECTING ? su->silent_ms : su->hb_ms;
	/* upgraded but silent: IBKR unreachable behind the Gateway */
	if (su->rd_held)	/* or not heard: streamup_sock_watch */
		log_warn("gateway stream: the Gateway reads nothing (%zu bytes "
		    "queued for it), so it is not read: no %s in %u ms",
		    ws_queued_bytes(su->ws), what, ms);
	else
		log_warn("gateway stream: the Gateway says nothing (no %s in "
		    "%u ms)", what, ms);
	su->silent = 1;
	(void)stream_broadcast_system(hub, "gateway silent");
	streamup_drop(su, "silent", 0);
}

static void
streamup_tic_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct streamup	*su = w->data;

	(void)loop;
	(void)revents;
	if (su->state != SU_CONNECTED || su->ws == NULL)
		return;
	(void)ws_send_text(su->ws, "tic", 3);
	streamup_timer(su, &su->t_tic, STREAMUP_TIC_S);
	streamup_flush(su);
}

static void
streamup_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct streamup	*su = w->data;

	(void)loop;
	(void)revents;
	if (!stream_idle(su->srv->stream) ||
	    stream_up_pending(su->srv->stream) > 0)
		return;
	if (su->ws != NULL) {
		(void)ws_close(su->ws, WS_CLOSE_NORMAL, "no subscribers");
		(void)ws_write(su->ws);
	}
	log_info("gateway stream: closed (no subscribers)");
	streamup_sock_close(su);
	stream_up_forget(su->srv->stream);
	streamup_set_state(su, SU_CLOSED);
}

static void
streamup_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct streamup	*su = w->data;

	(void)loop;
	(void)revents;
	if (su->state != SU_BACKOFF)
		return;
	if (stream_idle(su->srv->stream)) {
		streamup_set_state(su, SU_CLOSED);
		return;
	}
	if (!streamup_authenticated(su)) {
		streamup_set_state(su, SU_WAITING);
		(void)stream_broadcast_system(su->srv->stream,
		    "waiting for session");
		return;
	}
	streamup_open(su);
}

static void
streamup_renew_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct streamup	*su = w->data;
	size_t		 n;

	(void)loop;
	(void)revents;
	if (su->state == SU_CONNECTED &&
	    (n = stream_renew(su->srv->stream, now_ms(), su->renew_ms)) > 0) {
		log_debug("gateway stream: %zu smd renewed", n);
		streamup_flush(su);
	}
}

/*
 * The watcher's state moved: a lost session closes the socket (the
 * Gateway would stop serving it anyway); a new one opens it again and
 * the hub replays every subscription.
 */
static void
streamup_session_cb(void *arg, enum gw_state from, enum gw_state to)
{
	struct streamup	*su = arg;

	(void)from;
	if (su->stopped)
		return;
	if (to == GW_AUTHENTICATED) {
		su->backoff_ms = STREAMUP_BACKOFF_MS;
		if (su->state == SU_WAITING || su->state == SU_BACKOFF) {
			ev_timer_stop(su->srv->loop, &su->t_backoff);
			streamup_set_state(su, SU_CLOSED);
			streamup_kick(su);
		}
	} else if (su->state == SU_CONNECTED || su->state == SU_CONNECTING)
		streamup_doom(su, "session lost", 1);
	else if (su->state == SU_BACKOFF) {
		ev_timer_stop(su->srv->loop, &su->t_backoff);
		streamup_set_state(su, SU_WAITING);
	}
}

/* ------------------------------------------------------ interface */

struct streamup *
streamup_new(struct server *srv)
{
	struct streamup	*su;
	double		 every;

	if ((su = calloc(1, sizeof(*su))) == NULL)
		return (NULL);
	su->srv = srv;
	su->since = time(NULL);
	su->backoff_ms = STREAMUP_BACKOFF_MS;
	/* hidden knobs for the tests (brokerd(8) ENVIRONMENT) */
	su->silent_ms = config_env_ms("BROKERD_STREAM_SILENT_MS",
	    STREAMUP_SILENT_MS);
	su->renew_ms = config_env_ms("BROKERD_STREAM_RENEW_MS",
	    STREAMUP_RENEW_MS);
	su->hb_ms = config_env_ms("BROKERD_STREAM_HB_MS",
	    su->silent_ms * STREAMUP_HB_FACTOR);
	su->idle_ms = config_env_ms("BROKERD_STREAM_IDLE_MS",
	    STREAMUP_IDLE_MS);
	buf_init(&su->hs);
	buf_init(&su->pre);
	buf_init(&su->held);
	buf_init(&su->msg);
	tlsio_init(&su->tio, srv->loop, streamup_sock_io_cb, su);
	ev_init(&su->t_conn, streamup_conn_cb);
	ev_init(&su->t_tic, streamup_tic_cb);
	ev_init(&su->t_idle, streamup_idle_cb);
	ev_init(&su->t_backoff, streamup_backoff_cb);
	ev_init(&su->t_kick, streamup_kick_cb);
	ev_init(&su->t_more, streamup_sock_more_cb);
	su->t_more.data = su;
	su->t_conn.data = su->t_tic.data = su->t_idle.data = su;
	su->t_backoff.data = su->t_kick.data = su;
	every = (su->renew_ms / 2 < STREAMUP_RENEW_EVERY_MS ?
	    su->renew_ms / 2 : STREAMUP_RENEW_EVERY_MS) / 1000.0;
	ev_init(&su->t_renew, streamup_renew_cb);
	su->t_renew.repeat = every;
	su->t_renew.data = su;
	if (srv->session != NULL)
		session_set_watch(srv->session, streamup_session_cb, su);
	return (su);
}

void
streamup_free(struct streamup *su)
{
	struct ev_loop	*loop;

	if (su == NULL)
		return;
	loop = su->srv->loop;
	if (su->oreq_inflight)
		upstream_cancel(su->srv->upstream, &su->oreq);
	if (su->oreq_used)
		upstream_req_free(&su->oreq);
	if (su->srv->session != NULL)
		session_set_watch(su->srv->session, NULL, NULL);
	streamup_sock_close(su);
	ev_timer_stop(loop, &su->t_idle);
	ev_timer_stop(loop, &su->t_backoff);
	ev_timer_stop(loop, &su->t_kick);
	buf_free(&su->hs);
	buf_free(&su->pre);
	buf_free(&su->held);
	buf_free(&su->msg);
	free(su);
}

void
streamup_reconfigure(struct streamup *su, const struct config *conf)
{
	(void)conf;
	if (su->stopped || su->tls == NULL ||
	    su->tls == upstream_tls(su->srv->upstream))
		return;
	/* new TLS settings or another Gateway: a new socket at once */
	log_info("gateway stream: new Gateway settings, reopening");
	streamup_sock_close(su);
	streamup_set_state(su, SU_CLOSED);
	streamup_kick(su);
}

void
streamup_stop(struct streamup *su)
{
	su->stopped = 1;
	if (su->oreq_inflight) {
		upstream_cancel(su->srv->upstream, &su->oreq);
		su->oreq_inflight = 0;
	}
	if (su->ws != NULL) {
		(void)ws_close(su->ws, WS_CLOSE_GOING_AWAY, "brokerd stops");
		(void)ws_write(su->ws);
	}
	streamup_sock_close(su);
	ev_timer_stop(su->srv->loop, &su->t_idle);
	ev_timer_stop(su->srv->loop, &su->t_backoff);
	ev_timer_stop(su->srv->loop, &su->t_kick);
	streamup_set_state(su, SU_CLOSED);
}

int
streamup_waiting(const struct streamup *su)
{
	return (su->state == SU_WAITING);
}

static const char *
streamup_state_name(const struct streamup *su)
{
	switch (su->state) {
	case SU_WAITING:
		return ("waiting_session");
	case SU_BACKOFF:
		return (su->silent ? "silent" : "backoff");
	case SU_CONNECTING:
		return ("connecting");
	case SU_CONNECTED:
		return ("connected");
	default:
		return ("closed");
	}
}

int
streamup_status_json(const struct streamup *su, struct buf *b)
{
	char	 t[32];

	status_time(su->since, t, sizeof(t));
	return (buf_printf(b, "{\"state\":\"%s\",\"reconnects\":%llu,"
	    "\"since\":\"%s\"}", streamup_state_name(su),
	    (unsigned long long)su->c.reconnects, t));
}

void
streamup_counters(const struct streamup *su, struct streamup_counters *c)
{
	*c = su->c;
	c->connected = su->state == SU_CONNECTED;
}
