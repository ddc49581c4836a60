/*
 * The fan-out of SPEC section 7: one Gateway WebSocket shared by every
 * local subscriber.  Subscriptions counted per conid and per topic, the
 * messages to send upstream, the last value per conid and field, and a
 * conflating outbound queue per subscriber (stream_queue.c).  No sockets,
 * no event loop, no globals: times are passed in, messages for the
 * Gateway wait in the hub's up queue, and the caller is told through two
 * callbacks when a subscriber has bytes to write or must be closed.
 */
#ifndef STREAM_H
#define STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct stream;			/* the hub: every subscription, one upstream */
struct stream_sub;		/* one local subscriber */

/* How a subscriber's messages leave. */
enum stream_enc {
	STREAM_ENC_WS = 0,	/* the Gateway's JSON, one text message */
	STREAM_ENC_SSE		/* "event: TOPIC\ndata: JSON\n\n" */
};

struct stream_limits {
	size_t		 max_subscribers;	/* 256 */
	size_t		 max_conids;		/* 100: market data lines */
	size_t		 max_account_topics;	/* 1000: ssd, sld, sbd */
	size_t		 max_smh;		/* 5: IBKR's history limit */
	size_t		 conflate_bytes;	/* 256 KiB */
	size_t		 max_buffer_bytes;	/* 4 MiB */
	unsigned	 max_cmds_per_s;	/* 20 */
};

/* Defaults of SPEC section 7. */
void		 stream_limits_default(struct stream_limits *);

struct stream_callbacks {
	/* The subscriber's queue went from empty to non-empty. */
	void		(*ready)(void *owner, struct stream_sub *);
	/*
	 * The subscriber must be closed (1008: orders past max_buffer_bytes).
	 * Called once; the subscriber stays valid until stream_sub_free,
	 * which the caller does outside the callback.
	 */
	void		(*close)(void *owner, struct stream_sub *,
			    uint16_t code, const char *reason);
};

struct stream_counters {
	uint64_t	 msgs_in;	/* Gateway messages read */
	uint64_t	 msgs_out;	/* messages handed to subscribers */
	uint64_t	 conflated;	/* messages merged into a queued one */
	uint64_t	 dropped;	/* subscribers closed for slowness */
	uint64_t	 refused;	/* subscriber messages answered error */
	uint64_t	 bad_topics;	/* Gateway messages dropped: control
					   bytes in their topic */
};

struct stream	*stream_new(const struct stream_limits *,
		    const struct stream_callbacks *);
void		 stream_free(struct stream *);	/* subscribers too */
/* New limits on SIGHUP; existing subscriptions stay. */
void		 stream_set_limits(struct stream *,
		    const struct stream_limits *);
const struct stream_counters *stream_counters(const struct stream *);
size_t		 stream_nsubs(const struct stream *);
size_t		 stream_nconids(const struct stream *);
/* Append the active conids and topics as a JSON array of strings. */
int		 stream_active_json(const struct stream *, struct buf *);

/*
 * A subscriber; owner is the caller's (its connection), handed back in
 * the callbacks.  NULL past max_subscribers (errno EBUSY) or when out of
 * memory.  stream_sub_free unsubscribes everything it held.
 */
struct stream_sub *stream_sub_new(struct stream *, enum stream_enc,
		    void *owner);
void		 stream_sub_free(struct stream *, struct stream_sub *);

/* ------------------------------------------------ subscriber messages */

enum stream_op {
	STREAM_OP_SMD = 0, STREAM_OP_UMD,	/* market data, per conid */
	STREAM_OP_SOR, STREAM_OP_UOR,		/* live orders */
	STREAM_OP_STR, STREAM_OP_UTR,		/* trades */
	STREAM_OP_SPL, STREAM_OP_UPL,		/* P&L */
	STREAM_OP_SSD, STREAM_OP_USD,		/* account summary */
	STREAM_OP_SLD, STREAM_OP_ULD,		/* ledger */
	STREAM_OP_SMH, STREAM_OP_UMH,		/* history bars */
	STREAM_OP_SBD, STREAM_OP_UBD,		/* book */
	STREAM_OP_TIC, STREAM_OP_ECH		/* keep-alives, answered here */
};

#define STREAM_MAX_FIELDS	64
#define STREAM_ID_LEN		32	/* conid, account, exchange, id */

/* One parsed subscriber message (the Gateway's syntax). */
struct stream_cmd {
	enum stream_op	 op;
	char		 conid[STREAM_ID_LEN];	/* digits (smd umd smh sbd) */
	char		 exch[STREAM_ID_LEN];	/* smd's @EXCH, sbd's EXCH */
	char		 acct[STREAM_ID_LEN];	/* ssd usd sld uld sbd ubd */
	char		 id[STREAM_ID_LEN];	/* umh's server id */
	char		 fields[STREAM_MAX_FIELDS][16];	/* smd */
	size_t		 nfields;
	char		*args;		/* JSON after '+', compact, or NULL */
};

void		 stream_cmd_free(struct stream_cmd *);	/* args */
/* Parse one message.  0, or -1 with *why (a static string). */
int		 stream_parse(const char *, size_t, struct stream_cmd *,
		    const char **why);
/*
 * Parse an SSE query (smd=CONID:F,F&smd=...&sor=1&str=1&spl=1&ssd=ACCT&
 * sld=ACCT) into commands: *cmds is allocated (free each, then it).
 * 0, or -1 with *why.
 */
int		 stream_parse_query(const char *query, struct stream_cmd **cmds,
		    size_t *ncmds, const char **why);

/*
 * A subscriber's text message: parsed and applied.  Errors (unknown topic,
 * malformed, a limit, more than max_cmds_per_s subscribe or unsubscribe
 * messages in the last second) are answered on the subscriber's queue
 * with {"topic":"system","error":"..."} and send nothing upstream.  0, or
 * -1 when out of memory.
 */
int		 stream_sub_message(struct stream *, struct stream_sub *,
		    const char *, size_t, uint64_t now_ms);
/* The same with a parsed command (the SSE query's). */
int		 stream_sub_command(struct stream *, struct stream_sub *,
		    const struct stream_cmd *, uint64_t now_ms);
/* Queue a brokerd system message: {"topic":"system","brokerd":what}. */
int		 stream_sub_system(struct stream *, struct stream_sub *,
		    const char *what);
int		 stream_broadcast_system(struct stream *, const char *what);

/* ------------------------------------------------ the Gateway's side */

/* What a Gateway message says to the upstream's owner. */
struct stream_gw_info {
	int		 system;	/* topic "system" (connected) */
	int		 hb;		/* a system heartbeat */
	int		 sts;		/* topic "sts" with an args object */
	int		 authenticated;	/* sts: 1, 0, or -1 when not said */
	int		 waiting;	/* "waiting for session": send it */
	int		 bad_topic;	/* dropped: a control byte in its topic */
};

/*
 * One message from the Gateway: last values kept, fanned out to the
 * subscribers concerned (market data filtered to their fields).  0, or
 * -1 when it is not a JSON object (ignored).
 */
int		 stream_gateway_message(struct stream *, const char *, size_t,
		    uint64_t now_ms, struct stream_gw_info *);

/*
 * The next message for the Gateway: 1 with its text in msg (replaced),
 * 0 when none.  *orders_first is 1 for a "sor+" subscription: the caller
 * sends GET /v1/api/iserver/account/orders?force=true first and this
 * message once that answer is in.
 */
int		 stream_up_take(struct stream *, struct buf *msg,
		    int *orders_first);
size_t		 stream_up_pending(const struct stream *);
/*
 * No Gateway socket is open: drop what waits for one, which would pile
 * up while subscribers come and go (a new socket's stream_replay queues
 * what is active then), and the history streams left by their
 * subscribers before the Gateway named them (no id will come now).
 */
void		 stream_up_forget(struct stream *);
/* 1 when no subscription is active (close the upstream after a while). */
int		 stream_idle(const struct stream *);
/*
 * A new upstream socket: forget what was queued for the old one, forget
 * history server ids, and queue every active subscription again (now_ms
 * stamps the smd renewals).  Returns how many messages were queued.
 */
size_t		 stream_replay(struct stream *, uint64_t now_ms);
/*
 * Queue an smd again for every conid last subscribed before
 * now_ms - max_age_ms (IBKR ends smd streams after 10 minutes).  Returns
 * how many; the caller asks again later (at least every minute).
 */
size_t		 stream_renew(struct stream *, uint64_t now_ms,
		    uint64_t max_age_ms);

/* ------------------------------------------ a subscriber's queue out */

/* Bytes queued for the subscriber, encoded size. */
size_t		 stream_sub_queued(const struct stream_sub *);
/*
 * One message encoded for its subscriber, in three pieces to write in
 * order, so that the JSON is copied once, into the caller's buffer.  WS:
 * the JSON of a text message alone (head and tail empty); SSE: "event:
 * TOPIC\ndata: ", the JSON, "\n\n".
 */
struct stream_out {
	const char	*head;
	size_t		 hlen;
	const char	*json;
	size_t		 len;
	const char	*tail;
	size_t		 tlen;
};

/*
 * Hand the next batch of whole messages, up to max_bytes (at least one),
 * to emit in order, one call each.  Returns how many, or -1 when emit
 * failed (what was not emitted stays queued).
 */
typedef int	(*stream_emit_fn)(void *arg, const struct stream_out *);
int		 stream_sub_take(struct stream *, struct stream_sub *,
		    size_t max_bytes, stream_emit_fn, void *arg);

#endif /* STREAM_H */
