/*
 * cache.c with a fake clock: coalescing (waiters), ttl, only 200s kept,
 * waiters leaving, expiry, and entries replaced while still being served.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "brokerd.h"

#define KEY	"GET /v1/api/portfolio/accounts"

Test(cache, coalescing_waiters)
{
	struct cache	*c;
	struct cache_entry *e, *f;
	int		 w[5];
	size_t		 i;

	cr_assert_not_null(c = cache_new());
	cr_assert_null(cache_find(c, KEY, 0));
	cr_assert_not_null(e = cache_begin(c, KEY));
	cr_assert_eq(e->inflight, 1);
	cr_assert_eq(cache_add_waiter(e, &w[0]), 0);
	/* four more identical GETs join the one in flight */
	for (i = 1; i < 5; i++) {
		f = cache_find(c, KEY, 100 + i);
		cr_assert_eq(f, e);
		cr_assert_eq(cache_add_waiter(f, &w[i]), 0);
	}
	cr_assert_null(cache_begin(c, KEY), "a second one in flight");
	cr_assert_null(cache_find(c, "GET /v1/api/other", 100));
	cr_assert_eq(cache_count(c), 1);
	cr_assert_eq(cache_complete(c, e, 200, "application/json",
	    "[1,2]", 5, 0, 200), 0);
	/* the waiters are readable until cache_finish, with the answer */
	cr_assert_eq(e->nwaiters, 5);
	for (i = 0; i < 5; i++)
		cr_assert_eq(e->waiters[i], &w[i]);
	cr_assert_eq(e->status, 200);
	cr_assert_str_eq(e->content_type, "application/json");
	cr_assert_eq(e->body.len, 5);
	cr_assert_str_eq(e->body.data, "[1,2]");
	/* ttl 0: not findable any more, gone after finish */
	cr_assert_null(cache_find(c, KEY, 200));
	cache_finish(c, e);
	cr_assert_eq(cache_count(c), 0);
	cache_free(c);
}

Test(cache, ttl)
{
	struct cache	*c;
	struct cache_entry *e;
	int		 w;

	cr_assert_not_null(c = cache_new());
	cr_assert_not_null(e = cache_begin(c, KEY));
	cr_assert_eq(cache_add_waiter(e, &w), 0);
	cr_assert_eq(cache_complete(c, e, 200, NULL, "{}", 2, 5000, 1000), 0);
	cr_assert_eq(cache_find(c, KEY, 1000), e, "served while being served");
	cache_finish(c, e);
	cr_assert_eq(e->nwaiters, 0);
	cr_assert_eq(cache_count(c), 1);
	cr_assert_eq(cache_find(c, KEY, 5999), e);
	cr_assert_eq(e->inflight, 0);
	cr_assert_eq(e->stored_ms, 1000);
	cr_assert_eq(e->expires_ms, 6000);
	cr_assert_null(e->content_type);
	cr_assert_str_eq(e->body.data, "{}");
	cr_assert_null(cache_find(c, KEY, 6000), "stale at expires_ms");
	/* a stale one is replaced by a new request */
	cr_assert_not_null(e = cache_begin(c, KEY));
	cr_assert_eq(e->inflight, 1);
	cr_assert_eq(cache_count(c), 1);
	cr_assert_eq(cache_find(c, KEY, 6001), e);
	cr_assert_eq(cache_complete(c, e, 200, "text/plain", "x", 1, 100,
	    7000), 0);
	cache_finish(c, e);
	cr_assert_eq(cache_find(c, KEY, 7099), e);
	cr_assert_str_eq(e->content_type, "text/plain");
	cache_free(c);
}

Test(cache, only_200_is_kept)
{
	static const int statuses[] = { 201, 204, 301, 400, 401, 404, 429,
	    500, 502, 503 };
	struct cache	*c;
	struct cache_entry *e;
	size_t		 i;
	int		 w;

	cr_assert_not_null(c = cache_new());
	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		cr_assert_not_null(e = cache_begin(c, KEY));
		cr_assert_eq(cache_add_waiter(e, &w), 0);
		cr_assert_eq(cache_complete(c, e, statuses[i], NULL, "err", 3,
		    5000, 0), 0);
		cr_assert_eq(e->status, statuses[i]);
		cr_assert_str_eq(e->body.data, "err", "waiters get the answer");
		cr_assert_null(cache_find(c, KEY, 1));
		cache_finish(c, e);
		cr_assert_eq(cache_count(c), 0, "status %d", statuses[i]);
	}
	/* a new request may start while a dropped one is still served */
	cr_assert_not_null(e = cache_begin(c, KEY));
	cr_assert_eq(cache_complete(c, e, 500, NULL, NULL, 0, 5000, 0), 0);
	cr_assert_not_null(cache_begin(c, KEY));
	cr_assert_eq(cache_count(c), 1);
	cache_finish(c, e);
	cr_assert_eq(cache_count(c), 1);
	cr_assert_not_null(cache_find(c, KEY, 0));
	cache_free(c);
}

Test(cache, remove_waiter)
{
	struct cache	*c;
	struct cache_entry *e;
	int		 w[20];
	size_t		 i;

	cr_assert_not_null(c = cache_new());
	cr_assert_not_null(e = cache_begin(c, KEY));
	for (i = 0; i < 20; i++)
		cr_assert_eq(cache_add_waiter(e, &w[i]), 0);
	cache_remove_waiter(e, &w[0]);
	cache_remove_waiter(e, &w[7]);
	cache_remove_waiter(e, &w[19]);
	cache_remove_waiter(e, &w[7]);		/* twice: no harm */
	cache_remove_waiter(e, NULL);
	cr_assert_eq(e->nwaiters, 17);
	for (i = 1; i < e->nwaiters; i++)
		cr_assert_lt((int *)e->waiters[i - 1], (int *)e->waiters[i],
		    "order kept");
	for (i = 0; i < e->nwaiters; i++)
		cr_assert(e->waiters[i] != &w[0] && e->waiters[i] != &w[7] &&
		    e->waiters[i] != &w[19]);
	/* all went away: the request still completes and is cached */
	for (i = 0; i < 20; i++)
		cache_remove_waiter(e, &w[i]);
	cr_assert_eq(e->nwaiters, 0);
	cr_assert_eq(cache_complete(c, e, 200, NULL, "[]", 2, 1000, 0), 0);
	cache_finish(c, e);
	cr_assert_eq(cache_find(c, KEY, 10), e);
	cache_free(c);
}

Test(cache, expire)
{
	struct cache	*c;
	struct cache_entry *a, *b, *d, *inflight;

	cr_assert_not_null(c = cache_new());
	cr_assert_not_null(a = cache_begin(c, "GET /a"));
	cr_assert_not_null(b = cache_begin(c, "GET /b"));
	cr_assert_not_null(d = cache_begin(c, "GET /d"));
	cr_assert_not_null(inflight = cache_begin(c, "GET /i"));
	cr_assert_eq(cache_complete(c, a, 200, NULL, "a", 1, 1000, 0), 0);
	cache_finish(c, a);
	cr_assert_eq(cache_complete(c, b, 200, NULL, "b", 1, 3000, 0), 0);
	cache_finish(c, b);
	/* d completes, expires, but is still being served: kept until then */
	cr_assert_eq(cache_complete(c, d, 200, NULL, "d", 1, 10, 0), 0);
	cr_assert_eq(cache_count(c), 4);
	cache_expire(c, 999);
	cr_assert_eq(cache_count(c), 4);
	cache_expire(c, 1000);
	cr_assert_eq(cache_count(c), 3, "a gone, d still being served");
	cr_assert_null(cache_find(c, "GET /a", 1000));
	cr_assert_str_eq(d->body.data, "d");
	cache_finish(c, d);
	cache_expire(c, 1000);
	cr_assert_eq(cache_count(c), 2);
	cr_assert_eq(cache_find(c, "GET /b", 2999), b);
	cache_expire(c, 1000000);
	cr_assert_eq(cache_count(c), 1, "in flight entries never expire");
	cr_assert_eq(cache_find(c, "GET /i", 1000000), inflight);
	cache_free(c);
}

/* cache_free with entries in every state: ASan checks nothing leaks. */
Test(cache, free_everything)
{
	struct cache	*c;
	struct cache_entry *a, *b, *d;
	int		 w;

	cr_assert_not_null(c = cache_new());
	cr_assert_not_null(a = cache_begin(c, "GET /a"));
	cr_assert_eq(cache_add_waiter(a, &w), 0);
	cr_assert_not_null(b = cache_begin(c, "GET /b"));
	cr_assert_eq(cache_complete(c, b, 404, "x", "nf", 2, 100, 0), 0);
	cr_assert_not_null(d = cache_begin(c, "GET /d"));
	cr_assert_eq(cache_complete(c, d, 200, "x", "ok", 2, 100, 0), 0);
	cache_free(c);
	cache_free(NULL);
}
