/*
 * pace.c with a fake clock: sliding windows checked window by window,
 * the watcher's reserve, FIFO fairness, per-target independence, aliases,
 * concurrency, deadlines, the breaker, the queue bound, cancel.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "brokerd.h"

static struct rate
rate_of(unsigned n, uint64_t window_ms)
{
	struct rate	 r = { n, window_ms };

	return (r);
}

static struct route
route_of(const char *prefix, const char *to, struct rate r, unsigned conc)
{
	struct route	 rt;

	memset(&rt, 0, sizeof(rt));
	rt.prefix = (char *)prefix;
	rt.prefix_len = strlen(prefix);
	rt.to = (char *)to;
	rt.to_len = strlen(to);
	rt.rate = r;
	rt.concurrency = conc;
	return (rt);
}

static void
ticket_init(struct pace_ticket *k, const struct route *policy, int watcher)
{
	memset(k, 0, sizeof(*k));
	k->policy = policy;
	k->watcher = watcher;
}

/* Every window [t, t + window_ms) starting at a grant holds at most n. */
static void
check_windows(const uint64_t *t, size_t len, unsigned n, uint64_t window_ms)
{
	size_t	 i, j, in;

	for (i = 0; i < len; i++) {
		in = 0;
		for (j = 0; j < len; j++)
			if (t[j] >= t[i] && t[j] < t[i] + window_ms)
				in++;
		cr_assert_leq(in, n, "%zu grants in [%llu, %llu), limit %u",
		    in, (unsigned long long)t[i],
		    (unsigned long long)(t[i] + window_ms), n);
	}
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	 x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x < y ? -1 : x > y);
}

Test(pace_window, sliding_exhaustive_random)
{
	static const struct { unsigned n; uint64_t w; } cases[] = {
		{ 1, 5000 }, { 2, 1000 }, { 3, 100 }, { 10, 1000 }, { 7, 333 }
	};
	struct pace_window w;
	uint64_t	 grants[4000], now, wait;
	size_t		 c, len, i;

	srand(12345);
	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		cr_assert_eq(pace_window_init(&w,
		    rate_of(cases[c].n, cases[c].w)), 0);
		now = 1000;
		len = 0;
		for (i = 0; i < 20000 && len < 4000; i++) {
			/* bursts and gaps: mostly small steps, sometimes big */
			now += (rand() % 8 == 0) ? (uint64_t)(rand() %
			    (cases[c].w * 2)) : (uint64_t)(rand() % 7);
			wait = pace_window_wait(&w, now);
			if (wait == 0) {
				pace_window_take(&w, now);
				grants[len++] = now;
				cr_assert_leq(pace_window_used(&w, now),
				    cases[c].n);
			} else {
				/* exact: free at now + wait, not a ms before */
				cr_assert_gt(wait, 0);
				cr_assert_eq(pace_window_wait(&w,
				    now + wait), 0);
				cr_assert_eq(pace_window_wait(&w,
				    now + wait - 1), 1);
			}
		}
		cr_assert_gt(len, cases[c].n * 3);
		check_windows(grants, len, cases[c].n, cases[c].w);
		pace_window_free(&w);
	}
}

Test(pace_window, one_per_five_seconds_exact)
{
	struct pace_window w;

	cr_assert_eq(pace_window_init(&w, rate_of(1, 5000)), 0);
	cr_assert_eq(pace_window_wait(&w, 100), 0);
	pace_window_take(&w, 100);
	cr_assert_eq(pace_window_wait(&w, 100), 5000);
	cr_assert_eq(pace_window_wait(&w, 5099), 1);
	cr_assert_eq(pace_window_wait(&w, 5100), 0);
	cr_assert_eq(pace_window_used(&w, 5099), 1);
	cr_assert_eq(pace_window_used(&w, 5100), 0);
	pace_window_take(&w, 5100);
	cr_assert_eq(pace_window_wait(&w, 7000), 3100);
	pace_window_free(&w);
}

/* N per L never admits N + 1 within L + slack, and no longer than that. */
Test(pace_window, slack_lengthens_the_window)
{
	static const struct { unsigned n; uint64_t w, slack; } cases[] = {
		{ 1, 5000, 100 }, { 10, 1000, 100 }, { 3, 700, 1 },
		{ 10, 1000, 1000 }
	};
	struct pace_window w;
	uint64_t	 grants[4000], now, wait;
	size_t		 c, len, i;

	srand(4242);
	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		cr_assert_eq(pace_window_init(&w,
		    rate_of(cases[c].n, cases[c].w)), 0);
		w.slack_ms = (unsigned)cases[c].slack;
		now = 1000;
		len = 0;
		for (i = 0; i < 20000 && len < 4000; i++) {
			now += (rand() % 8 == 0) ? (uint64_t)(rand() %
			    (cases[c].w * 2)) : (uint64_t)(rand() % 7);
			wait = pace_window_wait(&w, now);
			if (wait == 0) {
				pace_window_take(&w, now);
				grants[len++] = now;
			} else
				cr_assert_eq(pace_window_wait(&w,
				    now + wait - 1), 1);
		}
		cr_assert_gt(len, cases[c].n * 3);
		check_windows(grants, len, cases[c].n,
		    cases[c].w + cases[c].slack);
		pace_window_free(&w);
	}
	/* exact: 1/5s with 100 ms of slack frees at 5100 after the grant */
	cr_assert_eq(pace_window_init(&w, rate_of(1, 5000)), 0);
	w.slack_ms = 100;
	pace_window_take(&w, 100);
	cr_assert_eq(pace_window_wait(&w, 5100), 100);
	cr_assert_eq(pace_window_wait(&w, 5199), 1);
	cr_assert_eq(pace_window_wait(&w, 5200), 0);
	cr_assert_eq(pace_window_used(&w, 5199), 1);
	cr_assert_eq(pace_window_used(&w, 5200), 0);
	pace_window_free(&w);
}

/* The slack reaches targets made before and after it was set. */
Test(pace, slack_applies_to_global_and_every_target)
{
	struct pace	*p;
	struct route	 a, b;
	struct pace_ticket k[4];
	uint64_t	 ra, next;
	int		 exp;

	a = route_of("/a", "/v1/api/a", rate_of(1, 5000), 0);
	b = route_of("/b", "/v1/api/b", rate_of(1, 2000), 0);
	cr_assert_not_null(p = pace_new(rate_of(2, 1000), 20000, 100));
	ticket_init(&k[0], &a, 0);
	cr_assert_eq(pace_acquire(p, &k[0], 0, &ra), 0);
	pace_release(p, &k[0], 0);
	pace_set_slack(p, 100);
	ticket_init(&k[1], &b, 0);
	cr_assert_eq(pace_acquire(p, &k[1], 1100, &ra), 0);
	pace_release(p, &k[1], 0);
	/* b (made after): 2000 + 100; a (made before): 5000 + 100 */
	ticket_init(&k[3], &b, 0);
	cr_assert_eq(pace_acquire(p, &k[3], 3100, &ra), 1);
	cr_assert_null(pace_poll(p, 3199, 1, &exp, &next));
	cr_assert_eq(pace_poll(p, 3200, 1, &exp, &next), &k[3]);
	ticket_init(&k[2], &a, 0);
	cr_assert_eq(pace_acquire(p, &k[2], 5000, &ra), 1);
	cr_assert_null(pace_poll(p, 5099, 1, &exp, &next));
	cr_assert_eq(pace_poll(p, 5100, 1, &exp, &next), &k[2]);
	pace_free(p);
}

/* A token bucket would let 2n through around a window edge; this not. */
Test(pace_window, never_two_n_at_edge)
{
	struct pace_window w;
	unsigned	 i, got = 0;

	cr_assert_eq(pace_window_init(&w, rate_of(10, 1000)), 0);
	for (i = 0; i < 10; i++) {
		cr_assert_eq(pace_window_wait(&w, 999), 0);
		pace_window_take(&w, 999);
	}
	for (i = 0; i < 20; i++)
		if (pace_window_wait(&w, 1000 + i) == 0) {
			pace_window_take(&w, 1000 + i);
			got++;
		}
	cr_assert_eq(got, 0);
	cr_assert_eq(pace_window_wait(&w, 1998), 1);
	cr_assert_eq(pace_window_wait(&w, 1999), 0);
	pace_window_free(&w);
}

Test(pace_window, off)
{
	struct pace_window w;
	unsigned	 i;

	cr_assert_eq(pace_window_init(&w, rate_of(0, 1000)), 0);
	for (i = 0; i < 10000; i++) {
		cr_assert_eq(pace_window_wait(&w, 5), 0);
		cr_assert_eq(pace_window_wait_reserve(&w, 5, 3), 0);
		pace_window_take(&w, 5);
	}
	cr_assert_eq(pace_window_used(&w, 5), 0);
	pace_window_free(&w);
}

Test(pace_window, reserve)
{
	struct pace_window w;
	unsigned	 i;

	cr_assert_eq(pace_window_init(&w, rate_of(10, 1000)), 0);
	for (i = 0; i < 9; i++) {
		cr_assert_eq(pace_window_wait_reserve(&w, 10 + i, 1), 0);
		pace_window_take(&w, 10 + i);
	}
	/* the 10th slot is the reserve's: free for clients when the first
	 * grant (t=10) leaves the window */
	cr_assert_eq(pace_window_wait_reserve(&w, 50, 1), 960);
	cr_assert_eq(pace_window_wait(&w, 50), 0);
	pace_window_take(&w, 50);
	cr_assert_eq(pace_window_wait(&w, 60), 950);
	cr_assert_eq(pace_window_wait_reserve(&w, 60, 1), 951);
	pace_window_free(&w);
}

Test(pace, watcher_reserve_clients_nine_of_ten)
{
	struct pace	*p;
	struct pace_ticket c[12], wt;
	uint64_t	 ra;
	unsigned	 i, granted = 0;

	cr_assert_not_null(p = pace_new(rate_of(10, 1000), 2000, 100));
	for (i = 0; i < 12; i++) {
		ticket_init(&c[i], NULL, 0);
		if (pace_acquire(p, &c[i], 1000, &ra) == 0)
			granted++;
	}
	cr_assert_eq(granted, 9, "clients got %u", granted);
	ticket_init(&wt, NULL, 1);
	cr_assert_eq(pace_acquire(p, &wt, 1000, &ra), 0,
	    "the watcher gets the 10th");
	ticket_init(&wt, NULL, 1);
	cr_assert_eq(pace_acquire(p, &wt, 1000, &ra), 1,
	    "but not an 11th");
	pace_cancel(p, &wt);
	for (i = 0; i < 12; i++)
		pace_cancel(p, &c[i]);
	pace_free(p);

	/* 2/s: reserve 1 (ceil(2/10)); 1/s: no reserve */
	cr_assert_not_null(p = pace_new(rate_of(2, 1000), 2000, 100));
	ticket_init(&c[0], NULL, 0);
	ticket_init(&c[1], NULL, 0);
	cr_assert_eq(pace_acquire(p, &c[0], 0, &ra), 0);
	cr_assert_eq(pace_acquire(p, &c[1], 0, &ra), 1);
	pace_cancel(p, &c[1]);
	pace_free(p);
	cr_assert_not_null(p = pace_new(rate_of(1, 1000), 2000, 100));
	ticket_init(&c[0], NULL, 0);
	cr_assert_eq(pace_acquire(p, &c[0], 0, &ra), 0);
	pace_free(p);
}

/* Watcher tickets are served before clients queued earlier. */
Test(pace, watcher_first)
{
	struct pace	*p;
	struct pace_ticket c[3], wt, *k;
	uint64_t	 ra, next;
	int		 exp;
	unsigned	 i;

	cr_assert_not_null(p = pace_new(rate_of(1, 1000), 5000, 100));
	for (i = 0; i < 3; i++) {
		ticket_init(&c[i], NULL, 0);
		cr_assert_eq(pace_acquire(p, &c[i], 0, &ra), i == 0 ? 0 : 1);
	}
	ticket_init(&wt, NULL, 1);
	cr_assert_eq(pace_acquire(p, &wt, 10, &ra), 1);
	cr_assert_null(pace_poll(p, 999, 1, &exp, &next));
	cr_assert_eq(next, 1);
	k = pace_poll(p, 1000, 1, &exp, &next);
	cr_assert_eq(k, &wt);
	cr_assert_eq(exp, 0);
	cr_assert_null(pace_poll(p, 1000, 1, &exp, &next));
	cr_assert_eq(pace_poll(p, 2000, 1, &exp, &next), &c[1]);
	cr_assert_eq(pace_poll(p, 3000, 1, &exp, &next), &c[2]);
	cr_assert_null(pace_poll(p, 3000, 1, &exp, &next));
	cr_assert_eq(next, 0, "queue empty");
	pace_free(p);
}

Test(pace, fifo_fairness)
{
	struct pace	*p;
	struct pace_ticket c[50], *k;
	uint64_t	 ra, next, now;
	int		 exp;
	unsigned	 i, served = 0;

	cr_assert_not_null(p = pace_new(rate_of(5, 1000), 60000, 100));
	for (i = 0; i < 50; i++) {
		ticket_init(&c[i], NULL, 0);
		cr_assert_geq(pace_acquire(p, &c[i], i, &ra), 0);
		if (!c[i].queued)
			served++;
	}
	cr_assert_eq(served, 4, "5/s less a reserve of 1");
	/* a late arrival does not overtake while its elders wait */
	for (now = 0; served < 50; now += 7) {
		while ((k = pace_poll(p, now, 1, &exp, &next)) != NULL) {
			cr_assert_eq(exp, 0);
			cr_assert_eq(k, &c[served], "served %ld, expected %u",
			    (long)(k - c), served);
			served++;
		}
	}
	pace_free(p);
}

/* A 1/5s target at its limit does not hold up other targets behind it. */
Test(pace, per_target_independence)
{
	struct pace	*p;
	struct route	 orders, snap;
	struct pace_ticket a[3], b[3], *k;
	uint64_t	 ra, next;
	int		 exp;
	unsigned	 i;

	orders = route_of("/iserver/account/orders",
	    "/v1/api/iserver/account/orders", rate_of(1, 5000), 0);
	snap = route_of("/iserver/marketdata/snapshot",
	    "/v1/api/iserver/marketdata/snapshot", rate_of(10, 1000), 0);
	cr_assert_not_null(p = pace_new(rate_of(10, 1000), 10000, 100));
	for (i = 0; i < 3; i++) {
		ticket_init(&a[i], &orders, 0);
		cr_assert_eq(pace_acquire(p, &a[i], 0, &ra), i == 0 ? 0 : 1);
	}
	for (i = 0; i < 3; i++) {
		ticket_init(&b[i], &snap, 0);
		cr_assert_eq(pace_acquire(p, &b[i], 0, &ra), 0,
		    "snapshot %u granted though orders wait", i);
	}
	/* the same in the queue: orders blocked, snapshot passes */
	ticket_init(&b[0], &snap, 0);
	cr_assert_eq(pace_enqueue(p, &b[0], 10, &ra), 1);
	k = pace_poll(p, 10, 1, &exp, &next);
	cr_assert_eq(k, &b[0]);
	cr_assert_null(pace_poll(p, 10, 1, &exp, &next));
	cr_assert_eq(next, 4990, "next %llu", (unsigned long long)next);
	cr_assert_eq(pace_poll(p, 5000, 1, &exp, &next), &a[1]);
	cr_assert_null(pace_poll(p, 5000, 1, &exp, &next));
	cr_assert_eq(pace_poll(p, 9999, 1, &exp, &next), NULL);
	cr_assert_eq(pace_poll(p, 10000, 1, &exp, &next), &a[2]);
	cr_assert_eq(exp, 0);
	pace_free(p);
}

/* Two routes reaching the same Gateway path share one window. */
Test(pace, aliases_share_a_key)
{
	struct pace	*p;
	struct route	 r1, r2, other;
	struct pace_ticket k1, k2, k3;
	uint64_t	 ra;

	/* copies of the string: the key is the text, not the pointer */
	char		 to1[] = "/v1/api/iserver/marketdata/snapshot";
	char		 to2[] = "/v1/api/iserver/marketdata/snapshot";

	r1 = route_of("/marketdata/snapshot", to1, rate_of(1, 1000), 0);
	r2 = route_of("/iserver/marketdata/snapshot", to2, rate_of(1, 1000),
	    0);
	other = route_of("/trsrv/", "/v1/api/trsrv/", rate_of(1, 1000), 0);
	cr_assert_not_null(p = pace_new(rate_of(0, 0), 2000, 100));
	ticket_init(&k1, &r1, 0);
	ticket_init(&k2, &r2, 0);
	ticket_init(&k3, &other, 0);
	cr_assert_eq(pace_acquire(p, &k1, 0, &ra), 0);
	cr_assert_eq(pace_acquire(p, &k2, 0, &ra), 1, "alias shares");
	cr_assert_eq(pace_acquire(p, &k3, 0, &ra), 0, "other path free");
	pace_cancel(p, &k2);
	pace_free(p);
}

Test(pace, concurrency_five)
{
	struct pace	*p;
	struct route	 hist;
	struct pace_ticket k[7], *g;
	uint64_t	 ra, next;
	int		 exp;
	unsigned	 i;

	hist = route_of("/iserver/marketdata/history",
	    "/v1/api/iserver/marketdata/history", rate_of(0, 0), 5);
	cr_assert_not_null(p = pace_new(rate_of(0, 0), 2000, 100));
	for (i = 0; i < 7; i++) {
		ticket_init(&k[i], &hist, 0);
		cr_assert_eq(pace_acquire(p, &k[i], 0, &ra), i < 5 ? 0 : 1);
	}
	cr_assert_null(pace_poll(p, 100, 1, &exp, &next));
	cr_assert_eq(next, 1900, "only the deadline can change it");
	pace_release(p, &k[2], 0);
	g = pace_poll(p, 100, 1, &exp, &next);
	cr_assert_eq(g, &k[5]);
	cr_assert_null(pace_poll(p, 100, 1, &exp, &next));
	pace_release(p, &k[0], 0);
	cr_assert_eq(pace_poll(p, 200, 1, &exp, &next), &k[6]);
	for (i = 0; i < 7; i++)
		if (i != 0 && i != 2)
			pace_release(p, &k[i], 0);
	/* all released: five go again at once */
	for (i = 0; i < 5; i++) {
		ticket_init(&k[i], &hist, 0);
		cr_assert_eq(pace_acquire(p, &k[i], 300, &ra), 0);
	}
	pace_free(p);
}

Test(pace, deadline_expiry)
{
	struct pace	*p;
	struct route	 orders;
	struct pace_ticket a, b, *k;
	uint64_t	 ra, next;
	int		 exp;

	orders = route_of("/iserver/account/orders",
	    "/v1/api/iserver/account/orders", rate_of(1, 5000), 0);
	cr_assert_not_null(p = pace_new(rate_of(10, 1000), 2000, 100));
	ticket_init(&a, &orders, 0);
	ticket_init(&b, &orders, 0);
	cr_assert_eq(pace_acquire(p, &a, 0, &ra), 0);
	cr_assert_eq(pace_acquire(p, &b, 100, &ra), 1);
	cr_assert_eq(b.deadline_ms, 2100);
	cr_assert_null(pace_poll(p, 2099, 1, &exp, &next));
	cr_assert_eq(next, 1);
	k = pace_poll(p, 2100, 1, &exp, &next);
	cr_assert_eq(k, &b);
	cr_assert_eq(exp, 1);
	cr_assert_eq(b.queued, 0);
	cr_assert_eq(b.retry_after_ms, 2900, "until the 1/5s frees");
	cr_assert_null(pace_poll(p, 2100, 1, &exp, &next));
	cr_assert_eq(next, 0);

	/* a short wait still says at least one second */
	ticket_init(&b, &orders, 0);
	cr_assert_eq(pace_acquire(p, &b, 4000, &ra), 1);
	cr_assert_null(pace_poll(p, 4999, 0, &exp, &next));
	k = pace_poll(p, 6000, 0, &exp, &next);	/* no connection */
	cr_assert_eq(k, &b);
	cr_assert_eq(exp, 1);
	cr_assert_eq(b.retry_after_ms, 1000);
	pace_free(p);
}

Test(pace, breaker)
{
	struct pace	*p;
	struct pace_ticket c[3], wt, *k;
	struct pace_stats st;
	uint64_t	 ra, next;
	int		 exp;
	unsigned	 i;

	cr_assert_not_null(p = pace_new(rate_of(1, 1000), 10000, 100));
	for (i = 0; i < 3; i++) {
		ticket_init(&c[i], NULL, 0);
		cr_assert_eq(pace_acquire(p, &c[i], 0, &ra), i == 0 ? 0 : 1);
	}
	pace_breaker_open(p, 100, 60000);
	cr_assert_eq(pace_breaker_remaining(p, 100), 60000);
	cr_assert_eq(pace_breaker_remaining(p, 60100), 0);
	/* queued clients come back expired, with the breaker's time */
	k = pace_poll(p, 1100, 1, &exp, &next);
	cr_assert_eq(k, &c[1]);
	cr_assert_eq(exp, 1);
	cr_assert_eq(c[1].retry_after_ms, 59000);
	cr_assert_eq(pace_poll(p, 1100, 1, &exp, &next), &c[2]);
	cr_assert_eq(exp, 1);
	cr_assert_null(pace_poll(p, 1100, 1, &exp, &next));
	/* new clients are refused at once */
	ticket_init(&c[0], NULL, 0);
	cr_assert_eq(pace_acquire(p, &c[0], 2000, &ra), -1);
	cr_assert_eq(ra, 58100);
	cr_assert_eq(pace_enqueue(p, &c[0], 2000, &ra), -1);
	/* the watcher passes, still within the window */
	ticket_init(&wt, NULL, 1);
	cr_assert_eq(pace_acquire(p, &wt, 2000, &ra), 0);
	ticket_init(&wt, NULL, 1);
	cr_assert_eq(pace_acquire(p, &wt, 2500, &ra), 1);
	cr_assert_null(pace_poll(p, 2999, 1, &exp, &next));
	cr_assert_eq(pace_poll(p, 3000, 1, &exp, &next), &wt);
	cr_assert_eq(exp, 0);
	/* a later 429 never shortens it */
	pace_breaker_open(p, 3000, 10);
	cr_assert_eq(pace_breaker_remaining(p, 3000), 57100);
	/* closed: clients again */
	ticket_init(&c[0], NULL, 0);
	cr_assert_eq(pace_acquire(p, &c[0], 60100, &ra), 0);
	pace_stats(p, 60100, &st);
	cr_assert_eq(st.breaker_opened, 2);
	cr_assert_eq(st.rejected, 4);
	cr_assert_eq(st.global_used, 1);
	cr_assert_eq(st.global_n, 1);
	pace_free(p);
}

/*
 * One place decides a Gateway 429's pause: its Retry-After, 60 s without
 * one, 15 minutes at most (IBKR's penalty box), however it is opened.
 * Tickets the breaker refuses say so, those the queue refuses do not.
 */
Test(pace, breaker_default_cap_and_reason)
{
	struct pace	*p;
	struct pace_ticket c[3], *k;
	uint64_t	 ra, next;
	int		 exp;

	cr_assert_eq(pace_breaker_ms(0), 60000);
	cr_assert_eq(pace_breaker_ms(1), 1000);
	cr_assert_eq(pace_breaker_ms(600), 600000);
	cr_assert_eq(pace_breaker_ms(900), 900000);
	cr_assert_eq(pace_breaker_ms(901), 900000);
	cr_assert_eq(pace_breaker_ms(4000000000U), 900000);
	cr_assert_not_null(p = pace_new(rate_of(1, 1000), 500, 100));
	ticket_init(&c[0], NULL, 0);
	cr_assert_eq(pace_acquire(p, &c[0], 0, &ra), 0);
	ticket_init(&c[1], NULL, 0);
	cr_assert_eq(pace_acquire(p, &c[1], 0, &ra), 1);
	k = pace_poll(p, 500, 1, &exp, &next);
	cr_assert_eq(k, &c[1]);
	cr_assert_eq(exp, 1);
	cr_assert_eq(c[1].breaker, 0, "a queue timeout is not the breaker");
	pace_breaker_open(p, 1000, 3600000);
	cr_assert_eq(pace_breaker_remaining(p, 1000), 900000);
	ticket_init(&c[2], NULL, 0);
	cr_assert_eq(pace_acquire(p, &c[2], 2000, &ra), -1);
	cr_assert_eq(ra, 899000);
	cr_assert_eq(c[2].breaker, 1);
	pace_free(p);
}

Test(pace, queue_bound_and_cancel)
{
	struct pace	*p;
	struct pace_ticket c[6], wt, *k;
	struct pace_stats st;
	uint64_t	 ra, next;
	int		 exp;
	unsigned	 i;

	cr_assert_not_null(p = pace_new(rate_of(1, 1000), 10000, 3));
	for (i = 0; i < 5; i++) {
		ticket_init(&c[i], NULL, 0);
		cr_assert_eq(pace_acquire(p, &c[i], 0, &ra),
		    i == 0 ? 0 : i <= 3 ? 1 : -1, "ticket %u", i);
	}
	cr_assert_geq(ra, 1000);
	pace_stats(p, 0, &st);
	cr_assert_eq(st.queued, 3);
	/* the watcher is never refused for the bound */
	ticket_init(&wt, NULL, 1);
	cr_assert_eq(pace_enqueue(p, &wt, 0, &ra), 1);
	pace_cancel(p, &wt);
	cr_assert_eq(wt.queued, 0);
	/* the client in the middle went away */
	pace_cancel(p, &c[2]);
	pace_cancel(p, &c[2]);
	pace_stats(p, 0, &st);
	cr_assert_eq(st.queued, 2);
	ticket_init(&c[5], NULL, 0);
	cr_assert_eq(pace_acquire(p, &c[5], 10, &ra), 1);
	cr_assert_eq(pace_poll(p, 1000, 1, &exp, &next), &c[1]);
	cr_assert_null(pace_poll(p, 1000, 1, &exp, &next));
	cr_assert_eq(pace_poll(p, 2000, 1, &exp, &next), &c[3]);
	k = pace_poll(p, 3000, 1, &exp, &next);
	cr_assert_eq(k, &c[5]);
	cr_assert_eq(exp, 0);
	pace_stats(p, 3000, &st);
	cr_assert_eq(st.queued, 0);
	cr_assert_eq(st.granted, 4);
	cr_assert_eq(st.waited, 3);
	cr_assert_eq(st.rejected, 1);
	pace_free(p);
}

Test(pace, no_free_connection_grants_nothing)
{
	struct pace	*p;
	struct pace_ticket c, d;
	uint64_t	 ra, next;
	int		 exp;

	cr_assert_not_null(p = pace_new(rate_of(10, 1000), 2000, 10));
	ticket_init(&c, NULL, 0);
	cr_assert_eq(pace_enqueue(p, &c, 0, &ra), 1);
	cr_assert_null(pace_poll(p, 0, 0, &exp, &next));
	/* only the deadline: a freed connection makes the caller poll */
	cr_assert_eq(next, 2000);
	/* a new arrival does not overtake it */
	ticket_init(&d, NULL, 0);
	cr_assert_eq(pace_acquire(p, &d, 5, &ra), 1);
	cr_assert_eq(pace_poll(p, 5, 1, &exp, &next), &c);
	cr_assert_eq(exp, 0);
	cr_assert_eq(pace_poll(p, 5, 1, &exp, &next), &d);
	cr_assert_eq(exp, 0);
	pace_free(p);
}

Test(pace, queue_ms_zero_refuses)
{
	struct pace	*p;
	struct pace_ticket c, d;
	uint64_t	 ra;

	cr_assert_not_null(p = pace_new(rate_of(1, 1000), 0, 10));
	ticket_init(&c, NULL, 0);
	ticket_init(&d, NULL, 0);
	cr_assert_eq(pace_acquire(p, &c, 100, &ra), 0);
	cr_assert_eq(pace_acquire(p, &d, 400, &ra), -1);
	cr_assert_eq(ra, 1000, "700 ms, but at least a second");
	cr_assert_eq(d.queued, 0);
	pace_free(p);
}

/* Grant times, overall, for clients, per target. */
struct record {
	uint64_t	*all, *cli, *per[3];
	size_t		 nall, ncli, nper[3];
};

static void
record_grant(struct pace *p, struct record *rec, const struct route *rt,
    struct pace_ticket *k, uint64_t now)
{
	size_t	 t;

	rec->all[rec->nall++] = now;
	if (!k->watcher)
		rec->cli[rec->ncli++] = now;
	if (k->policy != NULL) {
		t = (size_t)(k->policy - rt);
		rec->per[t][rec->nper[t]++] = now;
		pace_release(p, k, 0);
	}
}

/*
 * The whole machine with random traffic: clients and the watcher on three
 * targets with different limits, random arrivals, polls at next_ms.  Then
 * every window of every limit is checked, and every ticket was either
 * granted or expired no earlier than its deadline.
 */
static void
random_traffic(unsigned slack)
{
	enum { NT = 3000 };
	struct route	 rt[3];
	struct record	 rec;
	struct pace	*p;
	struct pace_ticket *tk, *k;
	uint64_t	 now, ra, next, arrive;
	size_t		 i, j;
	unsigned	 done = 0, ti, expired_n = 0;
	int		 exp, r;

	rt[0] = route_of("/a", "/v1/api/a", rate_of(1, 5000), 0);
	rt[1] = route_of("/b", "/v1/api/b", rate_of(10, 1000), 0);
	rt[2] = route_of("/c", "/v1/api/c", rate_of(3, 700), 0);
	memset(&rec, 0, sizeof(rec));
	cr_assert_not_null(tk = calloc(NT, sizeof(*tk)));
	cr_assert_not_null(rec.all = calloc(NT, sizeof(uint64_t)));
	cr_assert_not_null(rec.cli = calloc(NT, sizeof(uint64_t)));
	for (j = 0; j < 3; j++)
		cr_assert_not_null(rec.per[j] = calloc(NT, sizeof(uint64_t)));
	srand(777);
	cr_assert_not_null(p = pace_new(rate_of(10, 1000), 2000, 200));
	pace_set_slack(p, slack);
	now = 0;
	arrive = 0;
	i = 0;
	while (i < NT || done < i) {
		while (i < NT && now >= arrive) {
			ti = (unsigned)(rand() % 4);
			ticket_init(&tk[i], ti < 3 ? &rt[ti] : NULL,
			    rand() % 40 == 0);
			r = pace_acquire(p, &tk[i], now, &ra);
			if (r == 0) {
				record_grant(p, &rec, rt, &tk[i], now);
				done++;
			} else if (r == -1) {
				cr_assert_geq(ra, 1000);
				done++;
			}
			i++;
			arrive = now + (uint64_t)(rand() % 12);
		}
		while ((k = pace_poll(p, now, 1, &exp, &next)) != NULL) {
			done++;
			if (exp) {
				cr_assert_geq(now, k->deadline_ms);
				cr_assert_geq(k->retry_after_ms, 1000);
				expired_n++;
				continue;
			}
			cr_assert_leq(now, k->deadline_ms);
			record_grant(p, &rec, rt, k, now);
		}
		if (i < NT && (next == 0 || arrive - now < next))
			next = arrive - now;
		now += next > 0 ? next : 1;
	}
	cr_assert_eq(done, NT);
	cr_assert_gt(rec.nall, 100);
	cr_assert_gt(expired_n, 0, "the load was meant to overflow");
	qsort(rec.all, rec.nall, sizeof(uint64_t), cmp_u64);
	qsort(rec.cli, rec.ncli, sizeof(uint64_t), cmp_u64);
	check_windows(rec.all, rec.nall, 10, 1000 + slack);
	check_windows(rec.cli, rec.ncli, 9, 1000 + slack);
	check_windows(rec.per[0], rec.nper[0], 1, 5000 + slack);
	check_windows(rec.per[1], rec.nper[1], 10, 1000 + slack);
	check_windows(rec.per[2], rec.nper[2], 3, 700 + slack);
	pace_free(p);
	for (j = 0; j < 3; j++)
		free(rec.per[j]);
	free(rec.cli);
	free(rec.all);
	free(tk);
}

Test(pace, random_traffic_respects_every_window)
{
	random_traffic(0);
}

/*
 * limits.rate_slack_ms: every window of every rate, the global one and
 * each target's, holds no more than n in its length plus the slack, so
 * arrivals jittered by up to the slack still fit the Gateway's window.
 */
Test(pace, random_traffic_respects_every_window_plus_slack)
{
	random_traffic(100);
	random_traffic(300);
}

/*
 * Late sends: nine client grants at 0 that leave at 0..8 ms must keep the
 * next nine out until a full window after each one left, or the Gateway
 * sees more than n in one of its windows.
 */
Test(pace, windows_count_from_the_send)
{
	struct pace	*p;
	struct route	 orders;
	struct pace_ticket a[9], b[9], o[2];
	uint64_t	 ra, sent[9], next;
	int		 exp;
	unsigned	 i;

	cr_assert_not_null(p = pace_new(rate_of(10, 1000), 5000, 100));
	for (i = 0; i < 9; i++) {
		ticket_init(&a[i], NULL, 0);
		cr_assert_eq(pace_acquire(p, &a[i], 0, &ra), 0);
		sent[i] = i;	/* left i ms after the grant */
		pace_sent(p, &a[i], sent[i]);
	}
	for (i = 0; i < 9; i++) {
		ticket_init(&b[i], NULL, 0);
		cr_assert_eq(pace_acquire(p, &b[i], 1000, &ra), i == 0 ? 0 : 1,
		    "grant %u at 1000 before a[%u] is a window old", i, i);
	}
	/* each queued one goes exactly when the next early send ages out */
	for (i = 1; i < 9; i++) {
		cr_assert_null(pace_poll(p, 1000 + sent[i] - 1, 1, &exp,
		    &next));
		cr_assert_eq(pace_poll(p, 1000 + sent[i], 1, &exp, &next),
		    &b[i]);
	}
	/* a per-target window moves too, and a grant out of the ring is fine */
	orders = route_of("/iserver/account/orders",
	    "/v1/api/iserver/account/orders", rate_of(1, 5000), 0);
	ticket_init(&o[0], &orders, 0);
	cr_assert_eq(pace_acquire(p, &o[0], 3000, &ra), 0);
	pace_sent(p, &o[0], 3040);
	ticket_init(&o[1], &orders, 0);
	cr_assert_eq(pace_acquire(p, &o[1], 8000, &ra), 1);
	cr_assert_null(pace_poll(p, 8039, 1, &exp, &next));
	cr_assert_eq(pace_poll(p, 8040, 1, &exp, &next), &o[1]);
	pace_sent(p, &a[0], 9000);
	pace_free(p);
}

/*
 * A request granted but not yet sent (its new TLS connection to the
 * Gateway takes 1.5 s) holds its slot until it leaves: stamped at the
 * grant, it aged out of the window and the ring gave its place away, so
 * eleven reached the Gateway within one second.  Released unsent, it
 * counts from the release.
 */
Test(pace, an_unsent_grant_holds_its_slot)
{
	struct pace		*p;
	struct pace_ticket	 a[9], b[9], w, c;
	struct pace_stats	 st;
	uint64_t		 ra, next, t[32];
	size_t			 n = 0;
	unsigned		 i, got = 0;
	int			 exp;

	cr_assert_not_null(p = pace_new(rate_of(10, 1000), 5000, 100));
	for (i = 0; i < 9; i++) {
		ticket_init(&a[i], NULL, 0);
		a[i].on_send = 1;
		cr_assert_eq(pace_acquire(p, &a[i], 0, &ra), 0);
		if (i > 0) {
			pace_sent(p, &a[i], 0);
			t[n++] = 0;
		}
	}
	for (i = 0; i < 9; i++) {
		ticket_init(&b[i], NULL, 0);
		b[i].on_send = 1;
		if (pace_acquire(p, &b[i], 1100, &ra) == 0) {
			pace_sent(p, &b[i], 1100);
			t[n++] = 1100;
			got++;
		}
	}
	cr_assert_eq(got, 8, "%u client grants at 1100 while one of 0 has "
	    "not left", got);
	ticket_init(&w, NULL, 1);
	w.on_send = 1;
	cr_assert_eq(pace_acquire(p, &w, 1100, &ra), 0, "the watcher's slot");
	pace_sent(p, &w, 1100);
	t[n++] = 1100;
	pace_sent(p, &a[0], 1500);
	t[n++] = 1500;
	pace_release(p, &a[0], 1600);
	cr_assert_null(pace_poll(p, 2099, 1, &exp, &next));
	cr_assert_eq(pace_poll(p, 2100, 1, &exp, &next), &b[8]);
	pace_sent(p, &b[8], 2100);
	t[n++] = 2100;
	check_windows(t, n, 10, 1000);

	ticket_init(&c, NULL, 0);
	c.on_send = 1;
	cr_assert_eq(pace_acquire(p, &c, 10000, &ra), 0);
	pace_release(p, &c, 10300);
	pace_stats(p, 11200, &st);
	cr_assert_eq(st.global_used, 1, "released unsent: counts from 10300");
	pace_stats(p, 11400, &st);
	cr_assert_eq(st.global_used, 0, "released unsent: held for ever");
	pace_free(p);
}

/*
 * A reload to a smaller rate keeps the newest stamps; five requests not
 * yet sent do not fit three: two are dropped.  Releasing unsent ones must
 * then not stamp the slots of those still waiting to leave (a slot
 * stamped at another's release frees before its own request left).
 */
Test(pace, reload_smaller_rate_keeps_the_unsent_slots)
{
	struct pace		*p;
	struct pace_ticket	 a[5];
	struct pace_limits	 l;
	struct pace_stats	 st;
	uint64_t		 ra;
	unsigned		 i;

	cr_assert_not_null(p = pace_new(rate_of(10, 1000), 5000, 100));
	for (i = 0; i < 5; i++) {
		ticket_init(&a[i], NULL, 0);
		a[i].on_send = 1;
		cr_assert_eq(pace_acquire(p, &a[i], 0, &ra), 0);
	}
	memset(&l, 0, sizeof(l));
	l.global = rate_of(3, 1000);
	l.queue_ms = 5000;
	l.max_queue = 100;
	cr_assert_eq(pace_update(p, &l), 0);
	pace_release(p, &a[0], 100);		/* never sent */
	pace_release(p, &a[1], 100);
	pace_sent(p, &a[2], 500);
	pace_stats(p, 1400, &st);
	cr_assert_eq(st.global_used, 3, "a[3] and a[4] have not left: %u",
	    st.global_used);
	pace_sent(p, &a[3], 1500);
	pace_sent(p, &a[4], 1600);
	pace_stats(p, 1550, &st);
	cr_assert_eq(st.global_used, 2, "500 aged; 1500 and 1600 count");
	pace_stats(p, 2550, &st);
	cr_assert_eq(st.global_used, 1, "a[4] sent at 1600");
	for (i = 0; i < 5; i++)
		pace_release(p, &a[i], 3000);
	pace_free(p);
}

/*
 * A reload updates the same pace object: what was sent still counts
 * under the new limits (a fresh object let 2N through in one window),
 * a route's new rate applies to its Gateway path, queued tickets stay.
 */
Test(pace, update_keeps_history_and_takes_new_limits)
{
	struct pace		*p;
	struct route		 orders;
	struct pace_limits	 l;
	struct pace_ticket	 g[10], a[3];
	uint64_t		 ra, next;
	int			 exp;
	unsigned		 i;

	/* the global window: 9 client slots of 10 (1 is the watcher's) */
	cr_assert_not_null(p = pace_new(rate_of(10, 1000), 10000, 100));
	for (i = 0; i < 9; i++) {
		ticket_init(&g[i], NULL, 0);
		cr_assert_eq(pace_acquire(p, &g[i], i, &ra), 0);
	}
	memset(&l, 0, sizeof(l));
	l.global = rate_of(10, 1000);
	l.queue_ms = 10000;
	l.max_queue = 100;
	cr_assert_eq(pace_update(p, &l), 0);
	ticket_init(&g[9], NULL, 0);
	cr_assert_eq(pace_acquire(p, &g[9], 20, &ra), 1,
	    "a reload opened a fresh window");
	/* 5/s keeps the newest grants (4..8); 4 client slots: free at 1005 */
	l.global = rate_of(5, 1000);
	cr_assert_eq(pace_update(p, &l), 0);
	cr_assert_null(pace_poll(p, 1004, 1, &exp, &next));
	cr_assert_eq(pace_poll(p, 1005, 1, &exp, &next), &g[9]);
	/* queue_ms and slack come along */
	l.queue_ms = 0;
	l.slack_ms = 100;
	cr_assert_eq(pace_update(p, &l), 0);
	ticket_init(&g[0], NULL, 0);
	cr_assert_eq(pace_acquire(p, &g[0], 1006, &ra), -1,
	    "queue_ms 0 refuses what must wait");
	pace_free(p);

	/* a route's rate: 1/5s becomes 1/10s, counted from the grant at 0 */
	orders = route_of("/iserver/account/orders",
	    "/v1/api/iserver/account/orders", rate_of(1, 5000), 0);
	cr_assert_not_null(p = pace_new(rate_of(100, 1000), 20000, 100));
	ticket_init(&a[0], &orders, 0);
	cr_assert_eq(pace_acquire(p, &a[0], 0, &ra), 0);
	ticket_init(&a[1], &orders, 0);
	cr_assert_eq(pace_acquire(p, &a[1], 1, &ra), 1);
	memset(&l, 0, sizeof(l));
	l.global = rate_of(100, 1000);
	l.queue_ms = 20000;
	l.max_queue = 100;
	orders.rate = rate_of(1, 10000);
	l.routes = &orders;
	l.nroutes = 1;
	cr_assert_eq(pace_update(p, &l), 0);
	cr_assert_null(pace_poll(p, 5000, 1, &exp, &next));
	cr_assert_eq(pace_poll(p, 10000, 1, &exp, &next), &a[1]);
	/* 3/10s: the next goes at once */
	orders.rate = rate_of(3, 10000);
	cr_assert_eq(pace_update(p, &l), 0);
	ticket_init(&a[2], &orders, 0);
	cr_assert_eq(pace_acquire(p, &a[2], 10001, &ra), 0);
	pace_free(p);
}
