/*
 * RFC 6455 WebSocket as brokerd speaks it, on top of wslay's event API:
 * the framing of both sides (downstream: brokerd is the server on a plain
 * socket; upstream: brokerd is the Gateway's client over mbedTLS) and the
 * opening handshakes as pure functions.  A building block in the manner
 * of redis' ae.h: no sockets, no event loop, no globals; the bytes move
 * through a transport the caller gives.
 */
#ifndef WS_H
#define WS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "http.h"

/*
 * What a transport's recv and send return besides a byte count: recv
 * returns 0 at end of stream.  A plain socket maps EAGAIN to WS_IO_AGAIN,
 * an mbedTLS session MBEDTLS_ERR_SSL_WANT_READ and _WANT_WRITE; ws.c
 * turns WS_IO_AGAIN into wslay's WSLAY_ERR_WOULDBLOCK.
 */
#define WS_IO_ERROR	(-1)	/* the connection is broken */
#define WS_IO_AGAIN	(-2)	/* would block: try again when ready */

struct ws_transport {
	/* Read up to len bytes into buf: n > 0, 0 (EOF) or WS_IO_* */
	ssize_t		(*recv)(void *ctx, void *buf, size_t len);
	/* Write up to len bytes: n > 0 or WS_IO_*; more: more follows */
	ssize_t		(*send)(void *ctx, const void *buf, size_t len,
			    int more);
	void		*ctx;		/* the socket's or TLS session's */
};

/* Opcodes handed to the message callback (RFC 6455 section 5.2). */
#define WS_OP_TEXT	0x1
#define WS_OP_BINARY	0x2
#define WS_OP_CLOSE	0x8
#define WS_OP_PING	0x9
#define WS_OP_PONG	0xa

/* Close codes brokerd sends (RFC 6455 section 7.4.1). */
#define WS_CLOSE_NORMAL		1000
#define WS_CLOSE_GOING_AWAY	1001
#define WS_CLOSE_PROTOCOL	1002
#define WS_CLOSE_BAD_DATA	1007	/* text not UTF-8 */
#define WS_CLOSE_POLICY		1008	/* key removed, too slow */
#define WS_CLOSE_TOO_BIG	1009

/*
 * One complete message in (wslay reassembles fragments).  Text is valid
 * UTF-8 by then.  For WS_OP_CLOSE, code is the peer's status code (0 when
 * none) and msg its reason; wslay has already queued the answering close.
 * Pings are answered by wslay itself; they still arrive here.
 */
typedef void	(*ws_message_fn)(void *arg, int opcode, const char *msg,
		    size_t len, uint16_t code);

struct ws;			/* ws.c: a wslay context and its transport */

/*
 * A new endpoint: client != 0 for brokerd's side of the Gateway socket
 * (masks what it sends, refuses masked frames), 0 for the server side of
 * a local subscriber (refuses unmasked frames: 1002).  A message over
 * max_msg_bytes is refused with 1009.  NULL when out of memory.
 */
struct ws	*ws_new(int client, size_t max_msg_bytes,
		    const struct ws_transport *, ws_message_fn, void *arg);
void		 ws_free(struct ws *);

/*
 * Read what the transport has, calling the message callback per message,
 * then flush what can be written.  0, or -1 when the connection is over
 * (broken transport, EOF, protocol error: ws_done() tells which side
 * closed).  Call ws_read when readable, ws_write when writable.
 */
int		 ws_read(struct ws *);
int		 ws_write(struct ws *);
int		 ws_want_write(const struct ws *);
/* 1 when both closes are exchanged or nothing more can move: free it. */
int		 ws_done(const struct ws *);
/*
 * Bytes queued inside wslay, not yet written, with each message's record
 * counted: the caller's backpressure.
 */
size_t		 ws_queued_bytes(const struct ws *);

/* Queue messages; they leave on the next ws_write.  0 or -1. */
int		 ws_send_text(struct ws *, const char *, size_t);
int		 ws_send_ping(struct ws *, const char *, size_t);
/* Close with a code and a reason (at most 123 bytes, cut otherwise). */
int		 ws_close(struct ws *, uint16_t code, const char *reason);
uint16_t	 ws_close_code_received(const struct ws *);	/* 0: none */
uint16_t	 ws_close_code_sent(const struct ws *);		/* 0: none */

/* 1 when the bytes are well-formed UTF-8 (RFC 3629: no surrogates). */
int		 ws_utf8_ok(const char *, size_t);

/* ------------------------------------------------------- handshakes */

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key GUID)), 28 bytes. */
#define WS_ACCEPT_LEN	28
int		 ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1]);

/*
 * Is this request a WebSocket opening handshake (RFC 6455 section 4.2.1)?
 * 0 when it is (GET, HTTP/1.1, Upgrade: websocket, a Connection with the
 * upgrade token, Sec-WebSocket-Version 13, a Sec-WebSocket-Key that is
 * base64 of 16 bytes).  Else the status to answer: 400, or 426 when only
 * the version is wrong (answered with "Sec-WebSocket-Version: 13"), and
 * *why says what was wrong.
 */
int		 ws_upgrade_check(const struct http_request *,
		    const char **why);
/* Append the 101 answer for a checked request.  0 or -1. */
int		 ws_upgrade_answer(struct buf *, const struct http_request *);
/* The extra head line of a 426: "Sec-WebSocket-Version: 13\r\n". */
#define WS_VERSION_LINE	"Sec-WebSocket-Version: 13\r\n"

/*
 * brokerd as the Gateway's client: a fresh random key (24 bytes of
 * base64 from 16 random bytes; from mbedTLS' CTR-DRBG-free entropy, i.e.
 * getrandom(2)), the request head (GET path, Host, Upgrade, Connection,
 * the key, version 13, the caller's User-Agent, Cookie when non-empty),
 * and the check
 * of the answer: 101, Upgrade: websocket, Connection: upgrade, the right
 * Sec-WebSocket-Accept.  -1 when a field would bend the head or the
 * answer is wrong.
 */
#define WS_KEY_LEN	24
int		 ws_client_key(char out[WS_KEY_LEN + 1]);
int		 ws_client_request(struct buf *, const char *host,
		    const char *port, const char *path, const char *key,
		    const char *cookie, const char *user_agent);
/*
 * Read the answer head from bytes: 0 with *used set past CRLFCRLF when it
 * is a good 101 for key, 1 when more bytes are needed, -1 when wrong.
 */
int		 ws_client_answer(const char *, size_t, const char *key,
		    size_t *used);

#endif /* WS_H */
