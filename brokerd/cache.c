/*
 * Coalescing and the short cache: identical GETs in flight share one
 * upstream request, and with cache_ms a 200 answer is served again for
 * that long, so several programs polling a 1/5s endpoint cost one call.
 * Pure: waiters are the caller's opaque pointers, the time comes in.
 *
 * An entry is in flight (cache_begin), then completed (cache_complete:
 * the answer is in it and its waiters are served), then finished
 * (cache_finish).  Entries are few (one per distinct GET in flight or
 * cached), so a list does.
 */
#include <stdlib.h>
#include <string.h>

#include "brokerd.h"

struct cache {
	struct cache_entry *head;	/* findable entries */
	size_t		 count;
	struct cache_entry **pending;	/* completed, not yet finished */
	size_t		 npending;
	size_t		 pending_cap;
};

struct cache *
cache_new(void)
{
	return (calloc(1, sizeof(struct cache)));
}

static void
cache_entry_free(struct cache_entry *e)
{
	if (e == NULL)
		return;
	free(e->key);
	free(e->waiters);
	free(e->content_type);
	buf_free(&e->body);
	free(e);
}

static int
cache_is_pending(const struct cache *c, const struct cache_entry *e)
{
	size_t	 i;

	for (i = 0; i < c->npending; i++)
		if (c->pending[i] == e)
			return (1);
	return (0);
}

static int
cache_pending_add(struct cache *c, struct cache_entry *e)
{
	struct cache_entry **p;
	size_t		 cap;

	if (cache_is_pending(c, e))
		return (0);
	if (c->npending == c->pending_cap) {
		cap = c->pending_cap ? c->pending_cap * 2 : 8;
		if ((p = reallocarray(c->pending, cap, sizeof(*p))) == NULL)
			return (-1);
		c->pending = p;
		c->pending_cap = cap;
	}
	c->pending[c->npending++] = e;
	return (0);
}

static void
cache_pending_del(struct cache *c, const struct cache_entry *e)
{
	size_t	 i;

	for (i = 0; i < c->npending; i++)
		if (c->pending[i] == e) {
			c->pending[i] = c->pending[--c->npending];
			return;
		}
}

/* Take e out of the findable list; 0 if it was not in it. */
static int
cache_unlink(struct cache *c, struct cache_entry *e)
{
	struct cache_entry **pp;

	for (pp = &c->head; *pp != NULL; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			e->next = NULL;
			c->count--;
			return (1);
		}
	return (0);
}

static int
cache_listed(const struct cache *c, const struct cache_entry *e)
{
	const struct cache_entry *x;

	for (x = c->head; x != NULL; x = x->next)
		if (x == e)
			return (1);
	return (0);
}

void
cache_free(struct cache *c)
{
	struct cache_entry *e, *next;
	size_t		 i;

	if (c == NULL)
		return;
	for (i = 0; i < c->npending; i++)
		if (!cache_listed(c, c->pending[i]))
			cache_entry_free(c->pending[i]);
	for (e = c->head; e != NULL; e = next) {
		next = e->next;
		cache_entry_free(e);
	}
	free(c->pending);
	free(c);
}

static struct cache_entry *
cache_lookup(const struct cache *c, const char *key)
{
	struct cache_entry *e;

	for (e = c->head; e != NULL; e = e->next)
		if (strcmp(e->key, key) == 0)
			return (e);
	return (NULL);
}

struct cache_entry *
cache_find(struct cache *c, const char *key, uint64_t now_ms)
{
	struct cache_entry *e;

	if ((e = cache_lookup(c, key)) == NULL)
		return (NULL);
	if (e->inflight || now_ms < e->expires_ms)
		return (e);
	return (NULL);
}

/*
 * An entry being completed may still be read by its caller; only a
 * finished one is freed here.
 */
static void
cache_drop(struct cache *c, struct cache_entry *e)
{
	cache_unlink(c, e);
	if (!cache_is_pending(c, e))
		cache_entry_free(e);
}

/*
 * NULL when out of memory, or when a request for key is already in
 * flight (join it with cache_find and cache_add_waiter instead).
 */
struct cache_entry *
cache_begin(struct cache *c, const char *key)
{
	struct cache_entry *e;

	if ((e = cache_lookup(c, key)) != NULL) {
		if (e->inflight)
			return (NULL);
		cache_drop(c, e);
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return (NULL);
	if ((e->key = strdup(key)) == NULL) {
		free(e);
		return (NULL);
	}
	buf_init(&e->body);
	e->inflight = 1;
	e->next = c->head;
	c->head = e;
	c->count++;
	return (e);
}

int
cache_add_waiter(struct cache_entry *e, void *w)
{
	void	**p;
	size_t	 cap;

	if (e->nwaiters == e->waiters_cap) {
		cap = e->waiters_cap ? e->waiters_cap * 2 : 4;
		if ((p = reallocarray(e->waiters, cap, sizeof(*p))) == NULL)
			return (-1);
		e->waiters = p;
		e->waiters_cap = cap;
	}
	e->waiters[e->nwaiters++] = w;
	return (0);
}

/* Keeps the others in order: they are answered first come, first served. */
void
cache_remove_waiter(struct cache_entry *e, void *w)
{
	size_t	 i;

	for (i = 0; i < e->nwaiters; i++)
		if (e->waiters[i] == w) {
			memmove(&e->waiters[i], &e->waiters[i + 1],
			    (e->nwaiters - i - 1) * sizeof(*e->waiters));
			e->nwaiters--;
			return;
		}
}

/*
 * The answer goes into the entry whatever it is, so the waiters can be
 * served from it; only a 200 with a ttl stays findable.  Anything else
 * leaves the list now (no new waiter joins a finished request) and is
 * freed by cache_finish.  -1 when out of memory: the entry is then not
 * kept and its body may be incomplete.
 */
int
cache_complete(struct cache *c, struct cache_entry *e, int status,
    const char *content_type, const char *body, size_t len, unsigned ttl_ms,
    uint64_t now_ms)
{
	int	 rc = 0;

	e->inflight = 0;
	e->status = status;
	e->stored_ms = now_ms;
	e->expires_ms = 0;
	free(e->content_type);
	e->content_type = NULL;
	buf_reset(&e->body);
	if (content_type != NULL &&
	    (e->content_type = strdup(content_type)) == NULL)
		rc = -1;
	if (len > 0 && buf_append(&e->body, body, len) == -1)
		rc = -1;
	if (cache_pending_add(c, e) == -1)
		rc = -1;
	if (rc == 0 && status == 200 && ttl_ms > 0)
		e->expires_ms = now_ms + ttl_ms;
	else
		cache_unlink(c, e);
	return (rc);
}

void
cache_finish(struct cache *c, struct cache_entry *e)
{
	cache_pending_del(c, e);
	free(e->waiters);
	e->waiters = NULL;
	e->nwaiters = 0;
	e->waiters_cap = 0;
	if (e->expires_ms == 0 || !cache_listed(c, e))
		cache_drop(c, e);
}

void
cache_expire(struct cache *c, uint64_t now_ms)
{
	struct cache_entry *e, *next;

	for (e = c->head; e != NULL; e = next) {
		next = e->next;
		if (!e->inflight && now_ms >= e->expires_ms &&
		    !cache_is_pending(c, e))
			cache_drop(c, e);
	}
}

size_t
cache_count(const struct cache *c)
{
	return (c->count);
}
