/*
 * upstream.c and conn.c only: the pool and one connection's state machine
 * share these.  upstream.c hands a granted request to a connection
 * (conn_open, conn_prepare) and closes or parks it (cancel, reload);
 * conn.c reports the request's end (upstream_finish) and asks the pool to
 * serve the pace queues again (upstream_dispatch, upstream_kick).
 */
#ifndef BROKERD_UPSTREAM_INT_H
#define BROKERD_UPSTREAM_INT_H

#include <stdint.h>

#include <ev.h>
#include <netdb.h>
#include <mbedtls/ssl.h>

#include "brokerd.h"
#include "tls.h"
#include "tlsio.h"


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
	struct tlsio		 tio;		/* the socket under mbedTLS */
	ev_timer		 timer;
	struct addrinfo		*ai;
	struct addrinfo		*ai_next;	/* next address to try */
	int			 last_errno;
	int			 ssl_init;
	int			 hs_done;
	mbedtls_ssl_context	 ssl;
	struct tls_check	 chk;		/* what the handshake saw */
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


struct upstream {
	struct ev_loop		*loop;
	const struct config	*conf;
	struct metrics		*metrics;
	struct tls_rng		 rng;
	struct tls		*tls;		/* current */
	struct conn		*conns;		/* idle: newest first */
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

/* conn.c */
struct conn	*conn_open(struct upstream *, struct upstream_req *);
int		 conn_prepare(struct conn *);
int		 conn_alive(struct conn *, const struct upstream_req *);
void		 conn_fail_later(struct conn *, enum upstream_error,
		    const char *);
void		 conn_park(struct conn *);
/* The request must have been detached first (c->req == NULL). */
void		 conn_close(struct conn *);

/* upstream.c */
/* upstream_format_request with the jar's cookies, no copy of them. */
int		 upstream_write_request(struct upstream *, struct buf *,
		    const struct upstream_req *, const char *host,
		    const char *port);
unsigned	 upstream_pool_size(const struct upstream *);
void		 upstream_finish(struct upstream *, struct upstream_req *,
		    enum upstream_error, struct http_response *);
void		 upstream_dispatch(struct upstream *);
void		 upstream_kick(struct upstream *);

#endif
