/*
 * A non-blocking socket under mbedTLS, shared by the Gateway pool's
 * connections (conn.c) and the Gateway WebSocket (streamup_sock.c): the
 * bio callbacks, a read-ahead under mbedTLS's reads, and the watcher set
 * to what mbedTLS waits on.  The TLS settings and their checks are
 * tls.c's; what is read and written, and when, is the owner's.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>

#include "tlsio.h"

#define TLSIO_READ_AHEAD	32768	/* two full TLS records */

void
tlsio_init(struct tlsio *t, struct ev_loop *loop,
    void (*cb)(struct ev_loop *, ev_io *, int), void *arg)
{
	memset(t, 0, sizeof(*t));
	t->loop = loop;
	t->fd = -1;
	t->io_fd = -1;
	t->arg = arg;
	ev_init(&t->io, cb);
	t->io.data = arg;
}

/* send(2) in mbedTLS's terms; t->sent hears of every byte that left. */
int
tlsio_send(void *arg, const unsigned char *p, size_t len)
{
	struct tlsio	*t = arg;
	ssize_t		 n;

	do
		n = send(t->fd, p, len, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n >= 0) {
		if (n > 0 && t->sent != NULL)
			t->sent(t->arg);
		return ((int)n);
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return (MBEDTLS_ERR_SSL_WANT_WRITE);
	t->sys_errno = errno;
	if (errno == EPIPE || errno == ECONNRESET)
		return (MBEDTLS_ERR_NET_CONN_RESET);
	return (MBEDTLS_ERR_NET_SEND_FAILED);
}

/* recv(2) in mbedTLS's terms: bytes, 0 at EOF, or an MBEDTLS_ERR_. */
static int
tlsio_sys_recv(struct tlsio *t, unsigned char *p, size_t len)
{
	ssize_t		 n;

	do
		n = recv(t->fd, p, len, 0);
	while (n == -1 && errno == EINTR);
	if (n >= 0)
		return ((int)n);
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return (MBEDTLS_ERR_SSL_WANT_READ);
	t->sys_errno = errno;
	if (errno == ECONNRESET || errno == EPIPE)
		return (MBEDTLS_ERR_NET_CONN_RESET);
	return (MBEDTLS_ERR_NET_RECV_FAILED);
}

/*
 * mbedTLS asks for a record's 5-byte header, then for its body: one recv
 * into the read-ahead buffer serves both, and the records after them.
 * Bytes left in it are invisible to the socket's watcher, so whoever
 * reads stops only on WANT_READ, which comes from here only when the
 * buffer and the socket are both empty, or arranges to read on without
 * an event (streamup_sock.c's budget); whoever asks whether the socket
 * is quiet counts them (tlsio_pending).  Its own mapping, so that an
 * idle socket's gives its pages back to the system (tlsio_release), not
 * to malloc's heap; without one, reads go straight to mbedTLS.
 */
int
tlsio_recv(void *arg, unsigned char *p, size_t len)
{
	struct tlsio	*t = arg;
	size_t		 n;
	int		 ret;

	if (t->ra_off == t->ra_len) {
		if (t->ra == NULL && (t->ra = mmap(NULL, TLSIO_READ_AHEAD,
		    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		    0)) == MAP_FAILED)
			t->ra = NULL;
		if (t->ra == NULL)
			return (tlsio_sys_recv(t, p, len));
		if ((ret = tlsio_sys_recv(t, t->ra, TLSIO_READ_AHEAD)) <= 0)
			return (ret);
		t->ra_off = 0;
		t->ra_len = (size_t)ret;
	}
	n = t->ra_len - t->ra_off;
	if (n > len)
		n = len;
	memcpy(p, t->ra + t->ra_off, n);
	t->ra_off += n;
	return ((int)n);
}

size_t
tlsio_pending(const struct tlsio *t)
{
	return (t->ra_len - t->ra_off);
}

void
tlsio_release(struct tlsio *t)
{
	if (tlsio_pending(t) > 0 || t->ra == NULL)
		return;
	(void)munmap(t->ra, TLSIO_READ_AHEAD);
	t->ra = NULL;
	t->ra_off = t->ra_len = 0;
}

/*
 * Set only when it changes: the steady state (a kept-alive connection
 * read, written, read again) costs no epoll_ctl.  A new descriptor, even
 * under the old number, is always set.
 */
void
tlsio_watch(struct tlsio *t, int events)
{
	if (t->io_events == events && t->io_fd == t->fd)
		return;
	ev_io_stop(t->loop, &t->io);
	t->io_events = 0;
	if (events == 0 || t->fd == -1)
		return;
	ev_io_set(&t->io, t->fd, events);
	ev_io_start(t->loop, &t->io);
	t->io_events = events;
	t->io_fd = t->fd;
}

int
tlsio_want(struct tlsio *t, int ret)
{
	if (ret == MBEDTLS_ERR_SSL_WANT_READ)
		tlsio_watch(t, EV_READ);
	else if (ret == MBEDTLS_ERR_SSL_WANT_WRITE)
		tlsio_watch(t, EV_WRITE);
	else
		return (0);
	return (1);
}

/* The watcher stopped even when idle: a fed event must not outlive it. */
void
tlsio_close(struct tlsio *t)
{
	ev_io_stop(t->loop, &t->io);
	t->io_events = 0;
	if (t->fd != -1) {
		close(t->fd);
		t->fd = -1;
	}
	t->ra_off = t->ra_len;
	tlsio_release(t);
}
