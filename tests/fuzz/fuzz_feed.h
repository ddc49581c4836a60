/*
 * For fuzz targets that feed a WebSocket (ws.h) from the fuzzer's bytes:
 * a recv that gives them as a socket would, at most `step` at a time.
 * Header-only: each target is built from its one .c file (Makefile).
 */
#ifndef FUZZ_FEED_H
#define FUZZ_FEED_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

struct fuzz_feed {
	const uint8_t	*p;
	size_t		 len;
	size_t		 step;		/* 0: as much as asked */
};

/* A ws_transport recv; CTX is (or starts with) a struct fuzz_feed. */
static ssize_t
fuzz_feed_recv(void *ctx, void *b, size_t len)
{
	struct fuzz_feed *f = ctx;

	if (f->len == 0)
		return (0);
	if (len > f->len)
		len = f->len;
	if (f->step > 0 && len > f->step)
		len = f->step;
	memcpy(b, f->p, len);
	f->p += len;
	f->len -= len;
	return ((ssize_t)len);
}

#endif
