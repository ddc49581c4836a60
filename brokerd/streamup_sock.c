/*
 * The Gateway socket's I/O for streamup.c: TCP connect and the TLS
 * handshake under the pool's settings and pin (dial.c, tls.c), the
 * upgrade with the jar's cookies, then wslay framing (ws.c) through
 * mbedTLS over tlsio.c's socket.  Every failure is handed to
 * streamup_drop, which decides what comes next.
 */
#include <sys/types.h>

#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include <ev.h>
#include <mbedtls/ssl.h>

#include "brokerd.h"
#include "dial.h"
#include "streamup_impl.h"
#include "tlsio.h"

#define STREAMUP_PATH		"/v1/api/ws"
#define STREAMUP_MAX_MSG	(16u << 20)	/* a Gateway message */
/*
 * Gateway messages taken per loop turn.  Each one fans out to every
 * subscriber of its conid; reading the socket dry first would starve the
 * subscribers' writes, /metrics and every other client under a flood
 * (the kernel's buffer then pushes back on the Gateway instead).
 */
#define STREAMUP_READ_MSGS	64u

/* Read on from the next loop turn. */
static void
streamup_sock_more(struct streamup *su)
{
	if (!ev_is_active(&su->t_more)) {
		ev_timer_set(&su->t_more, 0., 0.);
		ev_timer_start(su->srv->loop, &su->t_more);
	}
}

/* wslay's transport: the bytes read past the 101 first, then TLS. */
static ssize_t
streamup_ws_recv(void *ctx, void *p, size_t len)
{
	struct streamup	*su = ctx;
	size_t		 n;
	int		 r;

	if (su->pre_off < su->pre.len) {
		n = su->pre.len - su->pre_off;
		if (n > len)
			n = len;
		memcpy(p, su->pre.data + su->pre_off, n);
		su->pre_off += n;
		return ((ssize_t)n);
	}
	/* wslay reads until the socket is dry: stop it (streamup_sock_watch) */
	if (su->rd_held || ws_queued_bytes(su->ws) > STREAMUP_HOLD_BYTES) {
		su->rd_held = 1;
		return (WS_IO_AGAIN);
	}
	if (su->rd_msgs >= STREAMUP_READ_MSGS) {
		/* the rest next turn: tlsio may hold some */
		streamup_sock_more(su);
		return (WS_IO_AGAIN);
	}
	r = tlsio_read(&su->tio, p, len);
	if (r > 0)
		return (r);
	if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
		return (WS_IO_AGAIN);
	if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
		return (0);
	return (WS_IO_ERROR);
}

static ssize_t
streamup_ws_send(void *ctx, const void *p, size_t len, int more)
{
	struct streamup	*su = ctx;
	int		 r;

	(void)more;
	r = tlsio_write(&su->tio, p, len);
	if (r > 0)
		return (r);
	if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
		return (WS_IO_AGAIN);
	return (WS_IO_ERROR);
}

/* Close the socket, whatever its phase; the state is the caller's. */
void
streamup_sock_close(struct streamup *su)
{
	struct ev_loop	*loop = su->srv->loop;

	ev_timer_stop(loop, &su->t_conn);
	ev_timer_stop(loop, &su->t_tic);
	ev_timer_stop(loop, &su->t_more);
	if (su->ws != NULL) {
		ws_free(su->ws);
		su->ws = NULL;
	}
	if (su->phase >= SP_UPGRADE)
		tlsio_close_notify(&su->tio);
	if (su->ssl_init) {
		mbedtls_ssl_free(&su->ssl);
		su->ssl_init = 0;
	}
	tlsio_close(&su->tio);
	if (su->ai != NULL) {
		freeaddrinfo(su->ai);
		su->ai = NULL;
	}
	if (su->tls != NULL) {
		tls_unref(su->tls);
		su->tls = NULL;
	}
	buf_reset(&su->hs);
	buf_reset(&su->pre);
	su->hs_off = su->pre_off = 0;
	su->holding = 0;	/* the replay queues that sor again */
	su->rd_held = 0;
	su->oreq_retry = 0;
	ev_timer_stop(loop, &su->t_renew);
	su->doomed = 0;
	su->phase = SP_TCP;
}

/* The watcher's session id, or "" before it has one. */
static const char *
streamup_session_id(const struct streamup *su)
{
	return (su->srv->session != NULL ? session_id(su->srv->session) : "");
}

/* Says {"session":id} when there is one: the Gateway's fallback. */
int
streamup_sock_session(struct streamup *su)
{
	const char	*id = streamup_session_id(su);
	char		 m[128];

	if (*id == '\0')
		return (0);
	snprintf(m, sizeof(m), "{\"session\":\"%s\"}", id);
	return (ws_send_text(su->ws, m, strlen(m)));
}

static int
streamup_start_ws(struct streamup *su)
{
	struct ws_transport	 io;

	io.recv = streamup_ws_recv;
	io.send = streamup_ws_send;
	io.ctx = su;
	if ((su->ws = ws_new(1, STREAMUP_MAX_MSG, &io, streamup_msg_cb,
	    su)) == NULL)
		return (-1);
	su->phase = SP_WS;
	/* the documented fallback, whichever cookie the Gateway wants */
	if (streamup_sock_session(su) == -1)
		return (-1);
	streamup_timer(su, &su->t_conn, su->silent_ms / 1000.0);
	return (0);
}

/*
 * The steps of streamup_step, one per phase: 0 when the phase is done
 * and the next may start, -1 when the socket must wait or was dropped.
 */

static int
streamup_step_tcp(struct streamup *su)
{
	char	 err[256];

	if (dial_result(su->tio.fd) != 0) {
		streamup_drop(su, "connect failed", 0);
		return (-1);
	}
	mbedtls_ssl_init(&su->ssl);
	su->ssl_init = 1;
	if (tls_start(su->tls, &su->ssl, &su->chk, &su->tio, tlsio_send,
	    tlsio_recv, err, sizeof(err)) == -1) {
		streamup_drop(su, "TLS setup failed", 0);
		return (-1);
	}
	su->phase = SP_TLS;
	return (0);
}

static int
streamup_step_tls(struct streamup *su)
{
	int	 r;

	r = tlsio_handshake(&su->tio, &su->ssl);
	if (tlsio_want(&su->tio, r))
		return (-1);
	if (r != 0 || !tls_trusted(su->tls, &su->ssl)) {
		streamup_drop(su, "TLS handshake failed", 0);
		return (-1);
	}
	/* the records are tlsio's now: mbedTLS's 33 KiB of buffers go */
	mbedtls_ssl_free(&su->ssl);
	su->ssl_init = 0;
	su->phase = SP_UPGRADE;
	return (0);
}

/* The upgrade request, as far as the socket takes it. */
static int
streamup_upgrade_send(struct streamup *su)
{
	int	 r;

	while (su->hs_off < su->hs.len) {
		r = tlsio_write(&su->tio, (unsigned char *)
		    su->hs.data + su->hs_off, su->hs.len - su->hs_off);
		if (tlsio_want(&su->tio, r))
			return (-1);
		if (r <= 0) {
			streamup_drop(su, "upgrade not sent", 0);
			return (-1);
		}
		su->hs_off += (size_t)r;
		if (su->hs_off == su->hs.len)
			buf_reset(&su->pre);	/* the answer */
	}
	return (0);
}

/* The 101 with its accept key; frames that came with it stay in pre. */
static int
streamup_upgrade_answer(struct streamup *su)
{
	unsigned char	 tmp[4096];
	size_t		 used = 0;
	int		 r;

	for (;;) {
		r = tlsio_read(&su->tio, tmp, sizeof(tmp));
		if (r == MBEDTLS_ERR_SSL_WANT_READ ||
		    r == MBEDTLS_ERR_SSL_WANT_WRITE) {
			tlsio_watch(&su->tio, EV_READ);
			return (-1);
		}
		if (r <= 0) {
			streamup_drop(su, "no upgrade answer", 0);
			return (-1);
		}
		if (buf_append(&su->pre, tmp, (size_t)r) == -1) {
			streamup_drop(su, "out of memory", 0);
			return (-1);
		}
		r = ws_client_answer(su->pre.data, su->pre.len, su->key,
		    &used);
		if (r == -1) {
			streamup_drop(su, "upgrade refused", 0);
			return (-1);
		}
		if (r == 0)
			break;
	}
	su->pre_off = used;
	return (0);
}

static int
streamup_step_upgrade(struct streamup *su)
{
	if (streamup_upgrade_send(su) == -1 ||
	    streamup_upgrade_answer(su) == -1)
		return (-1);
	if (streamup_start_ws(su) == -1) {
		streamup_drop(su, "out of memory", 0);
		return (-1);
	}
	log_debug("gateway stream: upgraded");
	return (0);
}

static void
streamup_step_ws(struct streamup *su)
{
	su->rd_msgs = 0;
	if (ws_read(su->ws) == -1) {
		streamup_drop(su, ws_close_code_received(su->ws) ?
		    "the Gateway closed it" : "connection lost", 0);
		return;
	}
	if (su->doomed) {
		streamup_drop(su, su->doom_why, su->doom_wait);
		return;
	}
	streamup_flush(su);
}

/* Move the socket on as far as it goes now. */
static void
streamup_step(struct streamup *su)
{
	if (su->phase == SP_TCP && streamup_step_tcp(su) == -1)
		return;
	if (su->phase == SP_TLS && streamup_step_tls(su) == -1)
		return;
	if (su->phase == SP_UPGRADE && streamup_step_upgrade(su) == -1)
		return;
	if (su->phase == SP_WS)
		streamup_step_ws(su);
}

void
streamup_sock_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct streamup	*su = w->data;

	(void)loop;
	(void)revents;
	streamup_step(su);
}

/*
 * The watcher once upgraded.  Held (streamup_ws_recv), the socket is not
 * watched for reading, or the bytes left there would wake the loop on
 * every turn; the Gateway's heartbeats go unread with them, so one that
 * never reads again is dropped by the heartbeat timer (streamup_conn_cb).
 * Drained to half, reading resumes from a timer: tlsio's read-ahead may
 * hold bytes no readiness will announce.
 */
void
streamup_sock_watch(struct streamup *su)
{
	if (su->rd_held &&
	    ws_queued_bytes(su->ws) <= STREAMUP_HOLD_BYTES / 2) {
		su->rd_held = 0;
		streamup_sock_more(su);
	}
	tlsio_watch(&su->tio, (su->rd_held ? 0 : EV_READ) |
	    (ws_want_write(su->ws) ? EV_WRITE : 0));
}

/* The budget of the last turn ran out: read on. */
void
streamup_sock_more_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct streamup	*su = w->data;

	(void)loop;
	(void)revents;
	if (su->phase == SP_WS && su->ws != NULL)
		streamup_step(su);
}

/*
 * The upgrade request in su->hs, with the jar's cookies and, once the
 * watcher has a session id, api={"session":"<id>"} (SPEC section 7; the
 * id is [A-Za-z0-9-] only: session.c).
 */
static int
streamup_request(struct streamup *su)
{
	struct buf	 ck;
	const char	*id;
	int		 r = -1;

	buf_init(&ck);
	buf_reset(&su->hs);
	id = streamup_session_id(su);
	if (upstream_cookies(su->srv->upstream, &ck) == 0 &&
	    (*id == '\0' || ((ck.len == 0 || buf_puts(&ck, "; ") == 0) &&
	    buf_puts(&ck, "api={\"session\":\"") == 0 &&
	    buf_puts(&ck, id) == 0 && buf_puts(&ck, "\"}") == 0)) &&
	    ws_client_key(su->key) == 0 &&
	    ws_client_request(&su->hs, su->tls->host, su->tls->port,
	    STREAMUP_PATH, su->key, ck.data, "brokerd/" BROKERD_VERSION) == 0)
		r = 0;
	buf_free(&ck);
	return (r);
}

/* Open a socket to the Gateway; failures come back as a drop. */
void
streamup_sock_open(struct streamup *su)
{
	const struct config	*conf = su->srv->conf;

	if (su->opened)
		su->c.reconnects++;
	su->opened = 1;
	streamup_set_state(su, SU_CONNECTING);
	su->tls = upstream_tls(su->srv->upstream);
	tls_ref(su->tls);
	su->phase = SP_TCP;
	streamup_timer(su, &su->t_conn,
	    (conf->gw_connect_timeout_ms + conf->gw_timeout_ms) / 1000.0);
	if (streamup_request(su) == -1) {
		streamup_drop(su, "cannot form the upgrade", 0);
		return;
	}
	if (dial_resolve(su->tls->host, su->tls->port, &su->ai) != 0) {
		streamup_drop(su, "cannot resolve the Gateway", 0);
		return;
	}
	/* the first address only: the pool's connections try the rest */
	if ((su->tio.fd = dial_connect(su->ai)) == -1) {
		streamup_drop(su, "connect failed", 0);
		return;
	}
	tlsio_watch(&su->tio, EV_WRITE);
}
