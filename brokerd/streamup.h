/*
 * streamup.c: the one WebSocket from brokerd to the Gateway
 * (wss://<gateway>/v1/api/ws, SPEC section 7), shared by every local
 * subscriber through srv->stream.  It opens when a subscription is active
 * and the session watcher says authenticated, sends what the hub queued
 * for the Gateway, feeds the hub what the Gateway says, keeps the socket
 * alive (tic), treats an upgraded but silent Gateway as down, and
 * reconnects with backoff, replaying every subscription.
 */
#ifndef STREAMUP_H
#define STREAMUP_H

#include <stdint.h>

#include "brokerd.h"

struct streamup;

struct streamup_counters {
	uint64_t	 reconnects;	/* sockets opened after the first */
	uint64_t	 connected;	/* 1 while connected */
};

/* Uses srv->stream, srv->conf, srv->upstream, srv->session, srv->loop. */
struct streamup	*streamup_new(struct server *);
void		 streamup_free(struct streamup *);
/*
 * Subscriptions changed or messages wait in srv->stream: open the socket
 * if needed (and the session is authenticated), send what is pending.
 */
void		 streamup_wake(struct streamup *);
/* SIGHUP: new TLS settings or Gateway URL mean a new socket. */
void		 streamup_reconfigure(struct streamup *, const struct config *);
/* SIGTERM: close the socket, open no other. */
void		 streamup_stop(struct streamup *);
/* 1 while the socket waits for an authenticated session, else 0. */
int		 streamup_waiting(const struct streamup *);
/*
 * {"state":"connected|connecting|waiting_session|silent|backoff|closed",
 * "reconnects":N,"since":"<ISO 8601>"} for /gateway/status.  0 or -1.
 */
int		 streamup_status_json(const struct streamup *, struct buf *);
void		 streamup_counters(const struct streamup *,
		    struct streamup_counters *);

#endif /* STREAMUP_H */
