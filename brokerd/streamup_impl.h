/*
 * streamup.c and streamup_sock.c only: the Gateway socket's state
 * machine (timers, session hooks, the orders call before sor, what goes
 * out) and its I/O (TCP, TLS, the upgrade, wslay's transport) share the
 * struct.  streamup_sock.c opens and closes the socket and reports a
 * failure with streamup_drop; streamup.c takes the Gateway's messages
 * (streamup_msg_cb) and sends what the hub queued (streamup_flush).
 */
#ifndef STREAMUP_IMPL_H
#define STREAMUP_IMPL_H

#include <stdint.h>
#include <time.h>

#include <ev.h>
#include <netdb.h>
#include <mbedtls/ssl.h>

#include "brokerd.h"
#include "streamup.h"
#include "tls.h"
#include "tlsio.h"
#include "ws.h"

#define STREAMUP_BACKOFF_MS	1000u	/* doubling ... */
#define STREAMUP_BACKOFF_MAX_MS	30000u	/* ... to this */
/*
 * Bytes queued in wslay for the Gateway past which it is not read.  wslay
 * queues a pong for every ping it reads: a Gateway that pings and reads
 * nothing would grow the queue without bound (as subscriber.c's
 * SUB_HOLD_BYTES).  Reading resumes once half of it has left; the hub's
 * messages are let into the queue only below that half, so that a backlog
 * of them never holds a Gateway that reads (streamup_flush).
 */
#define STREAMUP_HOLD_BYTES	(256u * 1024u)

enum streamup_state {
	SU_CLOSED = 0,		/* no subscription, or stopped */
	SU_WAITING,		/* the session is not authenticated */
	SU_BACKOFF,		/* a drop: reopening later */
	SU_CONNECTING,		/* TCP, TLS, upgrade, first system */
	SU_CONNECTED
};

enum streamup_phase {
	SP_TCP = 0,
	SP_TLS,
	SP_UPGRADE,		/* request written, answer read */
	SP_WS			/* framing */
};

struct streamup {
	struct server		*srv;
	enum streamup_state	 state;
	enum streamup_phase	 phase;
	int			 stopped;
	int			 silent;	/* the last socket was silent */
	int			 opened;	/* a socket was opened before */
	int			 doomed;	/* close it from the loop */
	char			 doom_why[128];
	int			 doom_wait;	/* then wait for the session */
	time_t			 since;
	unsigned		 backoff_ms;
	unsigned		 silent_ms;	/* first system */
	unsigned		 hb_ms;		/* between heartbeats */
	unsigned		 idle_ms;	/* open after the last one left */
	uint64_t		 renew_ms;
	/* the socket */
	struct tlsio		 tio;		/* fd, watcher */
	struct addrinfo		*ai;
	struct tls		*tls;		/* referenced while open */
	mbedtls_ssl_context	 ssl;
	int			 ssl_init;
	struct tls_check	 chk;
	struct buf		 hs;		/* upgrade out, answer in */
	size_t			 hs_off;
	char			 key[WS_KEY_LEN + 1];
	struct buf		 pre;		/* bytes read past the answer */
	size_t			 pre_off;
	struct ws		*ws;
	/* timers */
	ev_timer		 t_conn;	/* connect..first system; hb */
	ev_timer		 t_tic;
	ev_timer		 t_idle;
	ev_timer		 t_backoff;
	ev_timer		 t_renew;
	ev_timer		 t_kick;	/* 0 s: work off callbacks */
	ev_timer		 t_more;	/* 0 s: read on next turn */
	unsigned		 rd_msgs;	/* read in this turn */
	int			 rd_held;	/* not read: too much queued */
	/* orders?force=true before sor */
	struct upstream_req	 oreq;
	int			 oreq_used;
	int			 oreq_inflight;
	struct buf		 held;		/* the sor that waits for it */
	int			 holding;
	int			 oreq_retry;	/* rate limited: ask again */
	struct buf		 msg;
	struct streamup_counters c;
};

/* streamup.c */
void	streamup_set_state(struct streamup *, enum streamup_state);
void	streamup_timer(struct streamup *, ev_timer *, double);
void	streamup_drop(struct streamup *, const char *, int);
void	streamup_flush(struct streamup *);
void	streamup_msg_cb(void *, int, const char *, size_t, uint16_t);

/* streamup_sock.c */
void	streamup_sock_open(struct streamup *);
void	streamup_sock_close(struct streamup *);
void	streamup_sock_io_cb(struct ev_loop *, ev_io *, int);
void	streamup_sock_more_cb(struct ev_loop *, ev_timer *, int);
void	streamup_sock_watch(struct streamup *);
int	streamup_sock_session(struct streamup *);

#endif /* STREAMUP_IMPL_H */
