/*
 * pace.c: sliding-window limits keyed by Gateway path, concurrency caps,
 * a FIFO queue and the 429 breaker.  Pure: no sockets, no event loop, no
 * globals; the caller passes the time and polls.  A route is only named
 * here (route.c owns it): pace reads a policy route's `to`, rate and
 * concurrency.
 */
#ifndef BROKERD_PACE_H
#define BROKERD_PACE_H

#include <stdint.h>

struct route;

/* "N/s", "N/5s", "N/min", "N/15min"; n == 0 means no limit ("off"). */
struct rate {
	unsigned	 n;		/* requests ... */
	uint64_t	 window_ms;	/* ... in any window this long */
};

/*
 * A sliding window: at most n grants in ANY window_ms.  It keeps the
 * times of the last n grants; the next grant is possible once the oldest
 * of them is window_ms + slack_ms old.
 */
struct pace_window {
	struct rate	 rate;
	unsigned	 slack_ms;	/* margin for arrival jitter; 0 at init */
	uint64_t	*stamps;	/* ring of the last n grant times */
	unsigned	 head;
	unsigned	 count;
	unsigned	 unsent_lost;	/* unsent stamps a reload dropped */
};

int		 pace_window_init(struct pace_window *, struct rate);
void		 pace_window_free(struct pace_window *);
/* 0: nothing to wait; else ms until a grant is possible. */
uint64_t	 pace_window_wait(const struct pace_window *, uint64_t now_ms);
/* Like wait, but only slots beyond `reserve` count as free. */
uint64_t	 pace_window_wait_reserve(const struct pace_window *,
		    uint64_t now_ms, unsigned reserve);
void		 pace_window_take(struct pace_window *, uint64_t now_ms);
unsigned	 pace_window_used(const struct pace_window *, uint64_t now_ms);

/* What a request is queued for. */
struct pace_ticket {
	void		*owner;		/* the caller's request */
	const struct route *policy;	/* rate/concurrency key, or NULL */
	int		 watcher;	/* the session watcher's own call */
	uint64_t	 deadline_ms;	/* 429 after this */
	uint64_t	 granted_ms;	/* its stamp in the windows */
	int		 on_send;	/* stamped by pace_sent, not the grant */
	int		 sent;		/* pace_sent has stamped it */
	struct pace_ticket *next;	/* FIFO */
	struct pace_ticket *prev;
	int		 queued;
	uint64_t	 retry_after_ms;	/* set when pace_poll expires it */
	int		 breaker;	/* refused: the 429 breaker is open */
};

struct pace;			/* opaque: global + per-target windows, queue */

struct pace	*pace_new(struct rate global, unsigned queue_ms,
		    unsigned max_queue);
void		 pace_free(struct pace *);
/* limits.rate_slack_ms: every window counts this much longer. */
void		 pace_set_slack(struct pace *, unsigned slack_ms);
/* What a reload may change; routes give each Gateway path its rate. */
struct route;
struct pace_limits {
	struct rate	 global;
	unsigned	 slack_ms;
	unsigned	 queue_ms;
	unsigned	 max_queue;
	const struct route *routes;
	size_t		 nroutes;
};
int		 pace_update(struct pace *, const struct pace_limits *);
/*
 * Ask for a slot now.  0: granted (windows taken, concurrency counted);
 * 1: queued (the ticket is linked, wait for pace_poll); -1: refused at
 * once (breaker open for a client call, or the queue is full):
 * *retry_after_ms says when to come back.
 */
int		 pace_acquire(struct pace *, struct pace_ticket *,
		    uint64_t now_ms, uint64_t *retry_after_ms);
/*
 * Its first byte went out now: the windows count it from here.  A ticket
 * with on_send holds its slots unstamped (they never age) from the grant
 * until then, however long a new connection takes to get there.
 */
void		 pace_sent(struct pace *, struct pace_ticket *, uint64_t now_ms);
/*
 * A granted request finished: release its concurrency slot; an on_send
 * ticket never sent counts as sent now.
 */
void		 pace_release(struct pace *, struct pace_ticket *,
		    uint64_t now_ms);
/* Something is queued: a slot that comes free should be offered. */
int		 pace_waiting(const struct pace *);
/* Take a queued ticket out (client went away). */
void		 pace_cancel(struct pace *, struct pace_ticket *);
/* Queue without trying (no free connection yet); -1 as pace_acquire. */
int		 pace_enqueue(struct pace *, struct pace_ticket *,
		    uint64_t now_ms, uint64_t *retry_after_ms);
/*
 * Serve the queue in FIFO order: returns the next ticket granted now (only
 * when can_grant: the caller has a free connection), or the next one whose
 * deadline passed or that the breaker refuses (*expired = 1), or NULL;
 * call until NULL.  Watcher tickets go first.  *next_ms is the delay
 * until it is worth polling again (0: nothing queued).
 */
struct pace_ticket *pace_poll(struct pace *, uint64_t now_ms, int can_grant,
		    int *expired, uint64_t *next_ms);
/* The pause for a Gateway 429 with this Retry-After (0: none): capped. */
uint64_t	 pace_breaker_ms(unsigned retry_after_s);
/* An upstream 429: only watcher calls go until now + ms (capped). */
void		 pace_breaker_open(struct pace *, uint64_t now_ms, uint64_t ms);
uint64_t	 pace_breaker_remaining(const struct pace *, uint64_t now_ms);

struct pace_stats {
	unsigned	 queued;
	uint64_t	 granted;
	uint64_t	 waited;	/* grants that had to queue */
	uint64_t	 rejected;	/* 429 from the queue or breaker */
	uint64_t	 breaker_opened;
	unsigned	 global_used;	/* in the current window */
	unsigned	 global_n;
	uint64_t	 global_window_ms;
};
void		 pace_stats(const struct pace *, uint64_t now_ms,
		    struct pace_stats *);

#endif /* BROKERD_PACE_H */
