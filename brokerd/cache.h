/*
 * cache.c: identical GETs in flight share one upstream request; with
 * cache_ms a 200 answer is kept that long.  Pure: no sockets, no event
 * loop, no globals; waiters are the caller's opaque pointers.  struct buf
 * comes first (brokerd.h includes this after it).
 */
#ifndef BROKERD_CACHE_H
#define BROKERD_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct cache_entry {
	char		*key;		/* "GET /v1/api/...?..." */
	int		 inflight;
	void		**waiters;
	size_t		 nwaiters;
	size_t		 waiters_cap;
	/* when ready: */
	int		 status;
	char		*content_type;
	struct buf	 body;
	uint64_t	 stored_ms;
	uint64_t	 expires_ms;
	struct cache_entry *next;
};

struct cache;

struct cache	*cache_new(void);
void		 cache_free(struct cache *);
/* A fresh ready entry or an in-flight one for key, else NULL. */
struct cache_entry *cache_find(struct cache *, const char *key,
		    uint64_t now_ms);
/* Start an in-flight entry (replacing a stale one). */
struct cache_entry *cache_begin(struct cache *, const char *key);
int		 cache_add_waiter(struct cache_entry *, void *);
void		 cache_remove_waiter(struct cache_entry *, void *);
/*
 * The upstream answer arrived.  Keeps a copy for ttl_ms when status is
 * 200 and ttl_ms > 0, otherwise drops the entry after the caller has
 * served the waiters (cache_finish).  The waiters stay readable in the
 * entry until cache_finish().
 */
int		 cache_complete(struct cache *, struct cache_entry *,
		    int status, const char *content_type, const char *body,
		    size_t len, unsigned ttl_ms, uint64_t now_ms);
void		 cache_finish(struct cache *, struct cache_entry *);
/* Drop expired entries. */
void		 cache_expire(struct cache *, uint64_t now_ms);
size_t		 cache_count(const struct cache *);

#endif /* BROKERD_CACHE_H */
