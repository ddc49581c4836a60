/*
 * Pacing: IBKR's limits as sliding windows (at most n in ANY window, the
 * strictest reading of "n per second"), per Gateway path and for the whole
 * Gateway, concurrency caps, a FIFO queue with deadlines, and the breaker
 * an upstream 429 opens.  Pure: no sockets, no globals, the time comes in.
 */
#include <stdlib.h>
#include <string.h>

#include "brokerd.h"

/* Waiting for a slot that only a pace_release can free: come back then. */
#define PACE_MIN_RETRY_MS	1000
/* A Gateway 429 without Retry-After pauses this long (SPEC section 5). */
#define PACE_BREAKER_DEFAULT_MS	(60 * 1000)
/* IBKR's penalty box lasts 10-15 minutes: no pause is longer. */
#define PACE_BREAKER_MAX_MS	(15 * 60 * 1000)

/* One Gateway path (a policy route's `to`): its window and its busy count. */
struct pace_target {
	char		*key;		/* copy of policy->to */
	struct pace_window win;
	unsigned	 concurrency;	/* 0 = no cap */
	unsigned	 busy;		/* granted, not yet released */
	struct pace_target *next;
};

struct pace {
	struct pace_window global;
	unsigned	 slack_ms;	/* added to every window's length */
	unsigned	 reserve;	/* global slots only the watcher uses */
	unsigned	 queue_ms;
	unsigned	 max_queue;
	struct pace_target *targets;
	struct pace_ticket *head;	/* FIFO, oldest first */
	struct pace_ticket *tail;
	unsigned	 nqueued;
	unsigned	 nwatch;	/* of them the watcher's */
	int		 unsorted;	/* deadlines not in FIFO order */
	uint64_t	 breaker_until_ms;
	uint64_t	 granted;
	uint64_t	 waited;
	uint64_t	 rejected;
	uint64_t	 breaker_opened;
};

int
pace_window_init(struct pace_window *w, struct rate r)
{
	memset(w, 0, sizeof(*w));
	if (r.window_ms == 0)
		r.n = 0;
	w->rate = r;
	if (r.n == 0)
		return (0);
	if ((w->stamps = calloc(r.n, sizeof(*w->stamps))) == NULL)
		return (-1);
	return (0);
}

void
pace_window_free(struct pace_window *w)
{
	free(w->stamps);
	w->stamps = NULL;
	w->count = 0;
	w->head = 0;
}

/*
 * How long a grant stays in the window: its nominal length plus the
 * slack, as the Gateway counts arrivals that jitter has moved closer.
 */
static uint64_t
window_len(const struct pace_window *w)
{
	return (w->rate.window_ms + w->slack_ms);
}

/*
 * The stamp of a grant whose request has not left yet (on_send tickets):
 * newer than any time, so it holds its slot until pace_sent stamps it.
 */
#define PACE_UNSENT	UINT64_MAX

/* The i-th oldest grant time still kept (0 <= i < count). */
static uint64_t
window_stamp(const struct pace_window *w, unsigned i)
{
	return (w->stamps[(w->head + i) % w->rate.n]);
}

/*
 * Grants stay in the window for window_ms + slack_ms: a grant at t
 * blocks [t, t + window_ms + slack_ms).  Counting from the newest, a
 * request needs fewer than `limit` of them still inside; the one that
 * must leave is the limit-th newest.
 */
static uint64_t
window_wait_limit(const struct pace_window *w, uint64_t now_ms,
    unsigned limit)
{
	uint64_t	 t, free_ms;

	if (w->rate.n == 0)
		return (0);
	if (limit == 0)
		return (window_len(w));		/* never: a caller's mistake */
	if (w->count < limit)
		return (0);
	t = window_stamp(w, w->count - limit);
	if (t == PACE_UNSENT)
		return (window_len(w));	/* polled again when one leaves */
	free_ms = t + window_len(w);
	return (free_ms > now_ms ? free_ms - now_ms : 0);
}

uint64_t
pace_window_wait(const struct pace_window *w, uint64_t now_ms)
{
	return (window_wait_limit(w, now_ms, w->rate.n));
}

uint64_t
pace_window_wait_reserve(const struct pace_window *w, uint64_t now_ms,
    unsigned reserve)
{
	if (w->rate.n == 0)
		return (0);
	if (reserve >= w->rate.n)
		return (window_wait_limit(w, now_ms, 0));
	return (window_wait_limit(w, now_ms, w->rate.n - reserve));
}

void
pace_window_take(struct pace_window *w, uint64_t now_ms)
{
	if (w->rate.n == 0)
		return;
	if (w->count < w->rate.n) {
		w->stamps[(w->head + w->count) % w->rate.n] = now_ms;
		w->count++;
		return;
	}
	w->stamps[w->head] = now_ms;
	w->head = (w->head + 1) % w->rate.n;
}

unsigned
pace_window_used(const struct pace_window *w, uint64_t now_ms)
{
	unsigned	 i, used = 0;
	uint64_t	 t;

	for (i = 0; i < w->count; i++) {
		t = window_stamp(w, i);
		if (t > now_ms || now_ms - t < window_len(w))
			used++;
	}
	return (used);
}

/* IBKR counts every call; 1 in 10 global slots stays the watcher's. */
static unsigned
pace_reserve_of(unsigned n)
{
	if (n < 2)
		return (0);
	return ((n + 9) / 10);
}

struct pace *
pace_new(struct rate global, unsigned queue_ms, unsigned max_queue)
{
	struct pace	*p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return (NULL);
	if (pace_window_init(&p->global, global) == -1) {
		free(p);
		return (NULL);
	}
	p->reserve = pace_reserve_of(p->global.rate.n);
	p->queue_ms = queue_ms;
	p->max_queue = max_queue;
	return (p);
}

/* Every window, the global one and each target's, counts slack_ms longer. */
void
pace_set_slack(struct pace *p, unsigned slack_ms)
{
	struct pace_target	*t;

	p->slack_ms = slack_ms;
	p->global.slack_ms = slack_ms;
	for (t = p->targets; t != NULL; t = t->next)
		t->win.slack_ms = slack_ms;
}

/*
 * A window's stamps in an array for rate r: the newest that fit, oldest
 * first.  What was sent in the last window still counts after a reload.
 */
static uint64_t *
window_carry(const struct pace_window *w, struct rate r, unsigned *count)
{
	uint64_t	*st;
	unsigned	 i, skip;

	*count = 0;
	if (r.window_ms == 0 || r.n == 0)
		return (NULL);
	if ((st = calloc(r.n, sizeof(*st))) == NULL)
		return (NULL);
	skip = w->count > r.n ? w->count - r.n : 0;
	for (i = skip; i < w->count; i++)
		st[(*count)++] = window_stamp(w, i);
	return (st);
}

static unsigned
stamps_unsent(const uint64_t *st, unsigned count)
{
	unsigned	 i, n = 0;

	for (i = 0; i < count; i++)
		if (st[i] == PACE_UNSENT)
			n++;
	return (n);
}

/*
 * A smaller rate keeps the newest stamps; requests not yet sent are the
 * newest, but more of them than the new rate leaves some out: counted,
 * so that releasing one of those unsent does not stamp another's slot.
 */
static void
window_swap(struct pace_window *w, struct rate r, uint64_t *st,
    unsigned count)
{
	unsigned	 i, before = 0, after;

	for (i = 0; i < w->count; i++)
		if (window_stamp(w, i) == PACE_UNSENT)
			before++;
	after = stamps_unsent(st, count);
	if (before > after)
		w->unsent_lost += before - after;
	free(w->stamps);
	if (r.window_ms == 0)
		r.n = 0;
	w->rate = r;
	w->stamps = st;
	w->head = 0;
	w->count = count;
}

static int
rate_same(struct rate a, struct rate b)
{
	return (a.n == b.n && a.window_ms == b.window_ms);
}

static const struct route *
pace_route_of(const struct route *routes, size_t nroutes, const char *to)
{
	size_t	 i;

	for (i = 0; i < nroutes; i++)
		if (routes[i].to != NULL && strcmp(routes[i].to, to) == 0)
			return (&routes[i]);
	return (NULL);
}

/*
 * SIGHUP: the same pace object takes the new limits, so its windows keep
 * what was sent (a new object would start empty and let 2N through in
 * one window) and its queue keeps its order.  All memory first, then
 * the swap: on -1 nothing changed.
 */
int
pace_update(struct pace *p, const struct pace_limits *l)
{
	struct pace_target	*t;
	const struct route	*r;
	uint64_t		*gst = NULL, **tst = NULL;
	unsigned		 gn = 0, *tn = NULL, n = 0, i;

	for (t = p->targets; t != NULL; t = t->next)
		n++;
	if (n > 0 && ((tst = calloc(n, sizeof(*tst))) == NULL ||
	    (tn = calloc(n, sizeof(*tn))) == NULL))
		goto fail;
	if (!rate_same(p->global.rate, l->global) && l->global.n > 0 &&
	    (gst = window_carry(&p->global, l->global, &gn)) == NULL)
		goto fail;
	for (i = 0, t = p->targets; t != NULL; t = t->next, i++) {
		r = pace_route_of(l->routes, l->nroutes, t->key);
		if (r != NULL && !rate_same(t->win.rate, r->rate) &&
		    r->rate.n > 0 && r->rate.window_ms > 0 &&
		    (tst[i] = window_carry(&t->win, r->rate, &tn[i])) == NULL)
			goto fail;
	}
	if (!rate_same(p->global.rate, l->global)) {
		window_swap(&p->global, l->global, gst, gn);
		p->reserve = pace_reserve_of(p->global.rate.n);
	}
	for (i = 0, t = p->targets; t != NULL; t = t->next, i++) {
		if ((r = pace_route_of(l->routes, l->nroutes, t->key)) == NULL)
			continue;
		if (!rate_same(t->win.rate, r->rate))
			window_swap(&t->win, r->rate, tst[i], tn[i]);
		t->concurrency = r->concurrency;
	}
	p->queue_ms = l->queue_ms;
	p->max_queue = l->max_queue;
	pace_set_slack(p, l->slack_ms);
	free(tst);
	free(tn);
	return (0);
fail:
	free(gst);
	for (i = 0; tst != NULL && i < n; i++)
		free(tst[i]);
	free(tst);
	free(tn);
	return (-1);
}

void
pace_free(struct pace *p)
{
	struct pace_target	*t, *next;
	struct pace_ticket	*k, *knext;

	if (p == NULL)
		return;
	for (k = p->head; k != NULL; k = knext) {
		knext = k->next;
		k->next = k->prev = NULL;
		k->queued = 0;
	}
	for (t = p->targets; t != NULL; t = next) {
		next = t->next;
		pace_window_free(&t->win);
		free(t->key);
		free(t);
	}
	pace_window_free(&p->global);
	free(p);
}

static struct pace_target *
pace_target_find(const struct pace *p, const struct route *policy)
{
	struct pace_target	*t;

	if (policy == NULL || policy->to == NULL)
		return (NULL);
	for (t = p->targets; t != NULL; t = t->next)
		if (strcmp(t->key, policy->to) == 0)
			return (t);
	return (NULL);
}

/*
 * The target of a policy route, made on first use.  Aliases (routes with
 * the same `to`) share it: IBKR counts Gateway paths.  The first policy
 * seen sets the limits; config.c gives aliases the same ones.
 */
static int
pace_target_get(struct pace *p, const struct route *policy,
    struct pace_target **out)
{
	struct pace_target	*t;

	*out = NULL;
	if (policy == NULL || policy->to == NULL)
		return (0);
	if ((*out = pace_target_find(p, policy)) != NULL)
		return (0);
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return (-1);
	if ((t->key = strdup(policy->to)) == NULL)
		goto fail;
	if (pace_window_init(&t->win, policy->rate) == -1)
		goto fail;
	t->win.slack_ms = p->slack_ms;
	t->concurrency = policy->concurrency;
	t->next = p->targets;
	p->targets = t;
	*out = t;
	return (0);
fail:
	free(t->key);
	free(t);
	return (-1);
}

static uint64_t
pace_global_wait(const struct pace *p, const struct pace_ticket *k,
    uint64_t now_ms)
{
	if (k->watcher)
		return (pace_window_wait(&p->global, now_ms));
	return (pace_window_wait_reserve(&p->global, now_ms, p->reserve));
}

/* Blocked by its own target: window or concurrency. */
static int
pace_target_blocked(const struct pace_target *t, uint64_t now_ms)
{
	if (t == NULL)
		return (0);
	if (t->concurrency > 0 && t->busy >= t->concurrency)
		return (1);
	return (pace_window_wait(&t->win, now_ms) > 0);
}

/* ms until this ticket could go, as far as the clock can tell. */
static uint64_t
pace_ticket_wait(const struct pace *p, const struct pace_ticket *k,
    uint64_t now_ms)
{
	const struct pace_target *t;
	uint64_t		 w, tw;

	w = pace_global_wait(p, k, now_ms);
	if ((t = pace_target_find(p, k->policy)) != NULL) {
		tw = pace_window_wait(&t->win, now_ms);
		if (tw > w)
			w = tw;
	}
	return (w);
}

/* What a refused client is told: the wait, but at least a second. */
static uint64_t
pace_retry_after(const struct pace *p, const struct pace_ticket *k,
    uint64_t now_ms)
{
	uint64_t	 w;

	w = pace_ticket_wait(p, k, now_ms);
	return (w < PACE_MIN_RETRY_MS ? PACE_MIN_RETRY_MS : w);
}

static int
pace_grantable(const struct pace *p, const struct pace_ticket *k,
    uint64_t now_ms)
{
	if (pace_global_wait(p, k, now_ms) > 0)
		return (0);
	return (!pace_target_blocked(pace_target_find(p, k->policy), now_ms));
}

static void
pace_unlink(struct pace *p, struct pace_ticket *k)
{
	if (k->prev != NULL)
		k->prev->next = k->next;
	else
		p->head = k->next;
	if (k->next != NULL)
		k->next->prev = k->prev;
	else
		p->tail = k->prev;
	k->next = k->prev = NULL;
	k->queued = 0;
	p->nqueued--;
	if (k->watcher)
		p->nwatch--;
	if (p->head == NULL)
		p->unsorted = 0;
}

static void
pace_grant(struct pace *p, struct pace_ticket *k, uint64_t now_ms)
{
	struct pace_target	*t;
	uint64_t		 stamp;

	if (k->queued) {
		pace_unlink(p, k);
		p->waited++;
	}
	stamp = k->on_send ? PACE_UNSENT : now_ms;
	pace_window_take(&p->global, stamp);
	if ((t = pace_target_find(p, k->policy)) != NULL) {
		pace_window_take(&t->win, stamp);
		t->busy++;
	}
	k->granted_ms = stamp;
	p->granted++;
}

static void
window_set(struct pace_window *w, unsigned i, uint64_t t)
{
	w->stamps[(w->head + i) % w->rate.n] = t;
}

/*
 * Move one grant's time from `old` to `now`, keeping the ring in time
 * order: the grants after it that are older than now shift down one.
 */
static void
window_restamp(struct pace_window *w, uint64_t old, uint64_t now)
{
	unsigned	 i, j;

	if (w->rate.n == 0)
		return;
	if (old == PACE_UNSENT) {
		/* Unsent stamps are the newest; the oldest of them is
		 * after every stamp <= now, so the order holds. */
		for (i = 0; i < w->count; i++)
			if (window_stamp(w, i) == PACE_UNSENT) {
				window_set(w, i, now);
				return;
			}
		if (w->unsent_lost > 0)	/* a smaller rate dropped it */
			w->unsent_lost--;
		return;
	}
	if (now <= old)
		return;
	for (i = w->count; i-- > 0;)
		if (window_stamp(w, i) == old)
			break;
	if (i >= w->count)
		return;		/* already out of the ring */
	for (j = i; j + 1 < w->count && window_stamp(w, j + 1) < now; j++)
		window_set(w, j, window_stamp(w, j + 1));
	window_set(w, j, now);
}

/*
 * The Gateway counts a request when it arrives, not when we granted it:
 * a grant sent a few milliseconds later (a new TLS connection, a busy
 * loop) would let the next window's grants overlap it there.  So the
 * windows count from the first byte written.
 */
void
pace_sent(struct pace *p, struct pace_ticket *k, uint64_t now_ms)
{
	struct pace_target	*t;

	window_restamp(&p->global, k->granted_ms, now_ms);
	if ((t = pace_target_find(p, k->policy)) != NULL)
		window_restamp(&t->win, k->granted_ms, now_ms);
	k->granted_ms = now_ms;
	k->sent = 1;
}

/*
 * A new ticket may not overtake the queue: it waits when a ticket served
 * before it (the watcher's before clients', else older) could be granted
 * now.  Older tickets for its own target that are blocked block it too,
 * as they share the window and the cap, so order within a target holds.
 */
static int
pace_queue_ahead(const struct pace *p, const struct pace_ticket *k,
    uint64_t now_ms)
{
	const struct pace_ticket *q;

	for (q = p->head; q != NULL; q = q->next) {
		if (k->watcher && !q->watcher)
			continue;
		if (!q->watcher && pace_breaker_remaining(p, now_ms) > 0)
			continue;
		if (pace_grantable(p, q, now_ms))
			return (1);
	}
	return (0);
}

/*
 * Link a ticket at the tail.  The watcher's tickets do not count against
 * max_queue: it has a handful at most and must never be starved.
 */
static int
pace_link(struct pace *p, struct pace_ticket *k, uint64_t now_ms,
    uint64_t *retry_after_ms)
{
	if (!k->watcher && p->nqueued >= p->max_queue) {
		*retry_after_ms = pace_retry_after(p, k, now_ms);
		p->rejected++;
		return (-1);
	}
	k->deadline_ms = now_ms + p->queue_ms;
	/* A reload's shorter queue_ms, or a caller's clock gone back. */
	if (p->tail != NULL && k->deadline_ms < p->tail->deadline_ms)
		p->unsorted = 1;
	k->retry_after_ms = 0;
	k->next = NULL;
	k->prev = p->tail;
	if (p->tail != NULL)
		p->tail->next = k;
	else
		p->head = k;
	p->tail = k;
	k->queued = 1;
	p->nqueued++;
	if (k->watcher)
		p->nwatch++;
	return (1);
}

/* The checks both ways into the queue share: breaker, memory. */
static int
pace_admit(struct pace *p, struct pace_ticket *k, uint64_t now_ms,
    uint64_t *retry_after_ms)
{
	struct pace_target	*t;
	uint64_t		 rem;

	*retry_after_ms = 0;
	k->queued = 0;
	k->next = k->prev = NULL;
	k->breaker = 0;
	if (!k->watcher && (rem = pace_breaker_remaining(p, now_ms)) > 0) {
		*retry_after_ms = rem;
		k->breaker = 1;
		p->rejected++;
		return (-1);
	}
	if (pace_target_get(p, k->policy, &t) == -1) {
		*retry_after_ms = PACE_MIN_RETRY_MS;
		p->rejected++;
		return (-1);
	}
	return (0);
}

/*
 * Call when a connection is free.  On 1 the ticket waits in the queue:
 * call pace_poll (at once too: an older ticket may be grantable).
 */
int
pace_acquire(struct pace *p, struct pace_ticket *k, uint64_t now_ms,
    uint64_t *retry_after_ms)
{
	if (pace_admit(p, k, now_ms, retry_after_ms) == -1)
		return (-1);
	if (pace_grantable(p, k, now_ms) && !pace_queue_ahead(p, k, now_ms)) {
		pace_grant(p, k, now_ms);
		return (0);
	}
	if (p->queue_ms == 0) {
		*retry_after_ms = pace_retry_after(p, k, now_ms);
		p->rejected++;
		return (-1);
	}
	return (pace_link(p, k, now_ms, retry_after_ms));
}

int
pace_enqueue(struct pace *p, struct pace_ticket *k, uint64_t now_ms,
    uint64_t *retry_after_ms)
{
	if (pace_admit(p, k, now_ms, retry_after_ms) == -1)
		return (-1);
	return (pace_link(p, k, now_ms, retry_after_ms));
}

/*
 * A request released unsent counts as sent now, unless a reload dropped
 * unsent stamps: its own may be one of them, and another's must not be
 * stamped for it (that one's slot would free before it left).
 */
static void
window_unsent_release(struct pace_window *w, uint64_t now)
{
	if (w->rate.n > 0 && w->unsent_lost > 0)
		w->unsent_lost--;
	else
		window_restamp(w, PACE_UNSENT, now);
}

void
pace_release(struct pace *p, struct pace_ticket *k, uint64_t now_ms)
{
	struct pace_target	*t;

	if (k->on_send && !k->sent) {
		window_unsent_release(&p->global, now_ms);
		if ((t = pace_target_find(p, k->policy)) != NULL)
			window_unsent_release(&t->win, now_ms);
		k->sent = 1;
	}
	if ((t = pace_target_find(p, k->policy)) != NULL && t->busy > 0)
		t->busy--;
}

int
pace_waiting(const struct pace *p)
{
	return (p->nqueued > 0);
}

void
pace_cancel(struct pace *p, struct pace_ticket *k)
{
	if (k->queued)
		pace_unlink(p, k);
}

/*
 * One pass over one class (watcher or clients) in FIFO order.  A ticket
 * blocked by its own target lets later ones for other targets go; tickets
 * for one target share its window and cap, so their order holds.  The
 * global window blocks the whole class, but expiries are still found.
 * With nothing to grant and deadlines in queue order, the first ticket
 * not yet expired says none after it is: the pass stops there.
 */
static struct pace_ticket *
pace_poll_class(struct pace *p, int watcher, uint64_t now_ms, int can_grant,
    int *expired)
{
	struct pace_ticket	*k;
	uint64_t		 rem;
	int			 global_free;

	if ((watcher ? p->nwatch : p->nqueued - p->nwatch) == 0)
		return (NULL);
	rem = pace_breaker_remaining(p, now_ms);
	global_free = -1;
	for (k = p->head; k != NULL; k = k->next) {
		if ((k->watcher != 0) != (watcher != 0))
			continue;
		if (!k->watcher && rem > 0) {
			k->retry_after_ms = rem;
			k->breaker = 1;
			goto expire;
		}
		if (global_free == -1)
			global_free = pace_global_wait(p, k, now_ms) == 0;
		if (can_grant && global_free && !pace_target_blocked(
		    pace_target_find(p, k->policy), now_ms)) {
			pace_grant(p, k, now_ms);
			return (k);
		}
		if (now_ms >= k->deadline_ms) {
			k->retry_after_ms = pace_retry_after(p, k, now_ms);
			goto expire;
		}
		if (!can_grant && !p->unsorted)
			break;
	}
	return (NULL);
expire:
	pace_unlink(p, k);
	p->rejected++;
	*expired = 1;
	return (k);
}

/*
 * No window holds anything back: the global one for either class, nor any
 * target's.  Then every ticket's wait is 0 (pace_ticket_wait), found
 * without a pass over the queue.
 */
static int
pace_none_waits(const struct pace *p, uint64_t now_ms)
{
	const struct pace_target *t;

	if (pace_window_wait(&p->global, now_ms) > 0 ||
	    pace_window_wait_reserve(&p->global, now_ms, p->reserve) > 0)
		return (0);
	for (t = p->targets; t != NULL; t = t->next)
		if (pace_window_wait(&t->win, now_ms) > 0)
			return (0);
	return (1);
}

/*
 * The earliest time something queued could change: a window or deadline.
 * With deadlines in queue order and no window waiting, the head's.
 */
static uint64_t
pace_next(const struct pace *p, uint64_t now_ms)
{
	const struct pace_ticket *k;
	uint64_t		 best = UINT64_MAX, w;

	if (p->head != NULL && !p->unsorted && pace_none_waits(p, now_ms)) {
		k = p->head;
		w = k->deadline_ms > now_ms ? k->deadline_ms - now_ms : 0;
		return (w == 0 ? 1 : w);
	}
	for (k = p->head; k != NULL; k = k->next) {
		w = k->deadline_ms > now_ms ? k->deadline_ms - now_ms : 0;
		if (w < best)
			best = w;
		w = pace_ticket_wait(p, k, now_ms);
		if (w > 0 && w < best)
			best = w;
	}
	if (best == UINT64_MAX)
		return (0);
	return (best == 0 ? 1 : best);
}

struct pace_ticket *
pace_poll(struct pace *p, uint64_t now_ms, int can_grant, int *expired,
    uint64_t *next_ms)
{
	struct pace_ticket	*k;

	*expired = 0;
	*next_ms = 0;
	if ((k = pace_poll_class(p, 1, now_ms, can_grant, expired)) != NULL)
		return (k);
	if ((k = pace_poll_class(p, 0, now_ms, can_grant, expired)) != NULL)
		return (k);
	*next_ms = pace_next(p, now_ms);
	return (NULL);
}

/*
 * The pause a Gateway 429 opens: its Retry-After, 60 s without one, and
 * never longer than IBKR's own penalty box, or one bad header would stop
 * every client until a restart.  The one place that decides both.
 */
uint64_t
pace_breaker_ms(unsigned retry_after_s)
{
	uint64_t	 ms;

	if (retry_after_s == 0)
		return (PACE_BREAKER_DEFAULT_MS);
	ms = (uint64_t)retry_after_s * 1000;
	return (ms > PACE_BREAKER_MAX_MS ? PACE_BREAKER_MAX_MS : ms);
}

void
pace_breaker_open(struct pace *p, uint64_t now_ms, uint64_t ms)
{
	if (ms > PACE_BREAKER_MAX_MS)
		ms = PACE_BREAKER_MAX_MS;
	if (now_ms + ms > p->breaker_until_ms)
		p->breaker_until_ms = now_ms + ms;
	p->breaker_opened++;
}

uint64_t
pace_breaker_remaining(const struct pace *p, uint64_t now_ms)
{
	if (p->breaker_until_ms > now_ms)
		return (p->breaker_until_ms - now_ms);
	return (0);
}

void
pace_stats(const struct pace *p, uint64_t now_ms, struct pace_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->queued = p->nqueued;
	st->granted = p->granted;
	st->waited = p->waited;
	st->rejected = p->rejected;
	st->breaker_opened = p->breaker_opened;
	st->global_used = pace_window_used(&p->global, now_ms);
	st->global_n = p->global.rate.n;
	st->global_window_ms = p->global.rate.window_ms;
}
