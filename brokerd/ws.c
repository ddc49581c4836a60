/*
 * RFC 6455 framing over wslay's event API, and the opening handshakes.
 * wslay masks, unmasks, reassembles fragments, answers pings and closes;
 * brokerd adds what wslay may leave out: the UTF-8 check of text (1007).
 * The handshakes are in ws_handshake.c.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <wslay/wslay.h>

#include "value.h"
#include "ws.h"

#define WS_REASON_MAX	123	/* a close frame's payload is at most 125 */
#define WS_MSG_OVERHEAD	64	/* a queued message's record, about */

struct ws {
	wslay_event_context_ptr	 ctx;
	struct ws_transport	 io;
	ws_message_fn		 on_msg;
	void			*arg;
	int			 client;
	int			 broken;	/* transport error or EOF */
};

static ssize_t
ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *user)
{
	struct ws	*ws = user;
	ssize_t		 n;

	(void)flags;
	n = ws->io.recv(ws->io.ctx, buf, len);
	if (n > 0)
		return (n);
	if (n == WS_IO_AGAIN)
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	else {
		ws->broken = 1;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	}
	return (-1);
}

static ssize_t
ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *user)
{
	struct ws	*ws = user;
	ssize_t		 n;

	n = ws->io.send(ws->io.ctx, data, len, (flags & WSLAY_MSG_MORE) != 0);
	if (n > 0)
		return (n);
	if (n == WS_IO_AGAIN)
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	else {
		ws->broken = 1;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	}
	return (-1);
}

/* The client's masking keys must be unpredictable (RFC 6455 10.3). */
static int
ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
    void *user)
{
	(void)user;
	if (getrandom(buf, len, 0) != (ssize_t)len) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return (-1);
	}
	return (0);
}

static void
ws_msg_cb(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *m, void *user)
{
	struct ws	*ws = user;
	const char	*p = (const char *)m->msg;

	if (m->opcode == WSLAY_TEXT_FRAME && !ws_utf8_ok(p, m->msg_length)) {
		wslay_event_queue_close(ctx, WS_CLOSE_BAD_DATA,
		    (const uint8_t *)"text is not UTF-8", 17);
		wslay_event_shutdown_read(ctx);
		return;
	}
	if (m->opcode == WSLAY_CONNECTION_CLOSE && m->msg_length > 2 &&
	    !ws_utf8_ok(p + 2, m->msg_length - 2)) {
		wslay_event_queue_close(ctx, WS_CLOSE_BAD_DATA, NULL, 0);
		return;
	}
	if (m->opcode == WSLAY_CONNECTION_CLOSE)
		ws->on_msg(ws->arg, m->opcode, m->msg_length > 2 ? p + 2 : "",
		    m->msg_length > 2 ? m->msg_length - 2 : 0, m->status_code);
	else
		ws->on_msg(ws->arg, m->opcode, p, m->msg_length, 0);
}

struct ws *
ws_new(int client, size_t max_msg_bytes, const struct ws_transport *io,
    ws_message_fn on_msg, void *arg)
{
	struct wslay_event_callbacks cb;
	struct ws	*ws;
	int		 r;

	if ((ws = calloc(1, sizeof(*ws))) == NULL)
		return (NULL);
	ws->io = *io;
	ws->on_msg = on_msg;
	ws->arg = arg;
	ws->client = client;
	memset(&cb, 0, sizeof(cb));
	cb.recv_callback = ws_recv_cb;
	cb.send_callback = ws_send_cb;
	cb.genmask_callback = ws_genmask_cb;
	cb.on_msg_recv_callback = ws_msg_cb;
	if (client)
		r = wslay_event_context_client_init(&ws->ctx, &cb, ws);
	else
		r = wslay_event_context_server_init(&ws->ctx, &cb, ws);
	if (r != 0) {
		free(ws);
		errno = ENOMEM;
		return (NULL);
	}
	wslay_event_config_set_max_recv_msg_length(ws->ctx, max_msg_bytes);
	return (ws);
}

void
ws_free(struct ws *ws)
{
	if (ws == NULL)
		return;
	wslay_event_context_free(ws->ctx);
	free(ws);
}

int
ws_write(struct ws *ws)
{
	if (ws->broken)
		return (-1);
	if (wslay_event_want_write(ws->ctx) &&
	    wslay_event_send(ws->ctx) != 0)
		return (-1);
	return (ws_done(ws) ? -1 : 0);
}

/* Answers (pongs, closes) leave at once, as far as the transport takes. */
int
ws_read(struct ws *ws)
{
	if (ws->broken)
		return (-1);
	if (wslay_event_want_read(ws->ctx) &&
	    wslay_event_recv(ws->ctx) != 0)
		return (-1);
	return (ws_write(ws));
}

int
ws_want_write(const struct ws *ws)
{
	return (!ws->broken && wslay_event_want_write(ws->ctx));
}

int
ws_done(const struct ws *ws)
{
	return (ws->broken || (!wslay_event_want_read(ws->ctx) &&
	    !wslay_event_want_write(ws->ctx)));
}

/*
 * The payloads wslay holds for the peer and, for each message, about what
 * its record costs: a flood of empty pings queues empty pongs, which take
 * memory all the same, so the holds past a size (subscriber.c,
 * streamup_sock.c) must count them.
 */
size_t
ws_queued_bytes(const struct ws *ws)
{
	return (wslay_event_get_queued_msg_length(ws->ctx) +
	    wslay_event_get_queued_msg_count(ws->ctx) * WS_MSG_OVERHEAD);
}

static int
ws_queue(struct ws *ws, uint8_t opcode, const char *p, size_t len)
{
	struct wslay_event_msg	 m;

	m.opcode = opcode;
	m.msg = (const uint8_t *)p;
	m.msg_length = len;
	return (wslay_event_queue_msg(ws->ctx, &m) == 0 ? 0 : -1);
}

int
ws_send_text(struct ws *ws, const char *p, size_t len)
{
	return (ws_queue(ws, WSLAY_TEXT_FRAME, p, len));
}

int
ws_send_ping(struct ws *ws, const char *p, size_t len)
{
	return (ws_queue(ws, WSLAY_PING, p, len));
}

/* A reason is cut on a UTF-8 boundary so the close stays valid text. */
int
ws_close(struct ws *ws, uint16_t code, const char *reason)
{
	size_t	 len;

	len = reason == NULL ? 0 : strlen(reason);
	if (len > WS_REASON_MAX) {
		len = WS_REASON_MAX;
		while (len > 0 && ((unsigned char)reason[len] & 0xc0) == 0x80)
			len--;
	}
	if (wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason,
	    len) != 0)
		return (-1);
	return (0);
}

uint16_t
ws_close_code_received(const struct ws *ws)
{
	if (!wslay_event_get_close_received(ws->ctx))
		return (0);
	return (wslay_event_get_status_code_received(ws->ctx));
}

uint16_t
ws_close_code_sent(const struct ws *ws)
{
	if (!wslay_event_get_close_sent(ws->ctx))
		return (0);
	return (wslay_event_get_status_code_sent(ws->ctx));
}

/* RFC 3629: shortest forms only, no surrogates, nothing past U+10FFFF. */
int
ws_utf8_ok(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t		 i, n;

	for (i = 0; i < len; i += n)
		if ((n = value_utf8_len(p + i, len - i)) == 0)
			return (0);
	return (1);
}
