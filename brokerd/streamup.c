/*
 * The upstream WebSocket (streamup.h).  A stub for now: it never opens a
 * socket, so subscribers wait.
 */
#include <stdlib.h>
#include <string.h>

#include "streamup.h"

struct streamup {
	struct server		*srv;
	struct streamup_counters c;
	int			 stopped;
};

struct streamup *
streamup_new(struct server *srv)
{
	struct streamup	*su;

	if ((su = calloc(1, sizeof(*su))) == NULL)
		return NULL;
	su->srv = srv;
	return su;
}

void
streamup_free(struct streamup *su)
{
	free(su);
}

void
streamup_wake(struct streamup *su)
{
	(void)su;
}

void
streamup_reconfigure(struct streamup *su, const struct config *conf)
{
	(void)su;
	(void)conf;
}

void
streamup_stop(struct streamup *su)
{
	su->stopped = 1;
}

int
streamup_status_json(const struct streamup *su, struct buf *b)
{
	return buf_printf(b, "{\"state\":\"%s\",\"reconnects\":%llu,"
	    "\"since\":null}", "closed",
	    (unsigned long long)su->c.reconnects);
}

void
streamup_counters(const struct streamup *su, struct streamup_counters *c)
{
	*c = su->c;
}
