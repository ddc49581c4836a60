/*
 * Growable byte buffers, in the manner of redis' sds: small, with their own
 * prefix, usable without the rest of the daemon.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void
buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

/*
 * Empty the buffer; memory past keep bytes goes back, so a connection that
 * once took a large piece does not hold its room for good.
 */
void
buf_release(struct buf *b, size_t keep)
{
	if (b->cap > keep)
		buf_free(b);
	else
		buf_reset(b);
}

/* Room for n more bytes plus the terminating NUL. */
int
buf_reserve(struct buf *b, size_t n)
{
	size_t	 need, cap;
	char	*p;

	if (n > SIZE_MAX - b->len - 1)
		return (-1);
	need = b->len + n + 1;
	if (need <= b->cap)
		return (0);
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if ((p = realloc(b->data, cap)) == NULL)
		return (-1);
	b->data = p;
	b->cap = cap;
	return (0);
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) == -1)
		return (-1);
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return (0);
}

int
buf_puts(struct buf *b, const char *s)
{
	return (buf_append(b, s, strlen(s)));
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list	 ap;
	size_t	 room;
	int	 n;

	/* One pass when it fits in the room we have (the usual case). */
	room = b->cap > b->len ? b->cap - b->len : 0;
	va_start(ap, fmt);
	n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		return (-1);
	if ((size_t)n >= room) {
		if (buf_reserve(b, (size_t)n) == -1) {
			if (room)
				b->data[b->len] = '\0';
			return (-1);
		}
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
	return (0);
}

/* Append v in decimal: the hot path's integer formatter, no printf. */
int
buf_putu(struct buf *b, unsigned long long v)
{
	char	 tmp[24], *p = tmp + sizeof(tmp);

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return (buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p)));
}

/* Back to len bytes: undoes a partly appended piece. */
void
buf_truncate(struct buf *b, size_t len)
{
	if (len >= b->len)
		return;
	b->len = len;
	b->data[len] = '\0';
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

/*
 * A JSON string literal.  Bytes that are not valid UTF-8 are not checked
 * here; callers pass our own text or text jansson already decoded.
 */
int
buf_json_string(struct buf *b, const char *s, size_t n)
{
	size_t	 i;
	unsigned char c;

	if (buf_append(b, "\"", 1) == -1)
		return (-1);
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			if (buf_append(b, "\\", 1) == -1 ||
			    buf_append(b, &s[i], 1) == -1)
				return (-1);
		} else if (c < 0x20 || c == 0x7f) {
			if (buf_printf(b, "\\u%04x", c) == -1)
				return (-1);
		} else if (buf_append(b, &s[i], 1) == -1)
			return (-1);
	}
	return (buf_append(b, "\"", 1));
}

int
buf_send(const struct buf *b, int fd, size_t *pos)
{
	ssize_t	 n;

	while (*pos < b->len) {
		n = send(fd, b->data + *pos, b->len - *pos, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return (1);
		if (n <= 0)
			return (-1);
		*pos += (size_t)n;
	}
	return (0);
}
