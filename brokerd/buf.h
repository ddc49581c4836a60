/*
 * Growable byte buffers, in the manner of redis' sds.h: a small building
 * block with its own prefix that knows nothing of brokerd.
 */
#ifndef BUF_H
#define BUF_H

#include <stddef.h>

/* A growable byte buffer; data is always NUL-terminated for convenience. */
struct buf {
	char		*data;
	size_t		 len;
	size_t		 cap;
};

void		 buf_init(struct buf *);
void		 buf_free(struct buf *);
void		 buf_reset(struct buf *);		/* len = 0, keep memory */
void		 buf_release(struct buf *, size_t);	/* reset; free past n */
int		 buf_reserve(struct buf *, size_t);	/* room for n more */
int		 buf_append(struct buf *, const void *, size_t);
int		 buf_puts(struct buf *, const char *);
int		 buf_printf(struct buf *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
int		 buf_putu(struct buf *, unsigned long long);	/* decimal */
void		 buf_truncate(struct buf *, size_t);	/* keep the first n */
void		 buf_consume(struct buf *, size_t);	/* drop n from front */
int		 buf_json_string(struct buf *, const char *, size_t);
/*
 * Send b from *pos to a non-blocking socket, *pos moved on: 0 when all
 * of it went, 1 when the socket is full, -1 when it failed.
 */
int		 buf_send(const struct buf *, int fd, size_t *pos);
						/* append "quoted, escaped" */

#endif /* BUF_H */
