/*
 * tlsio.c: a non-blocking socket under mbedTLS, for the Gateway pool's
 * connections (conn.c) and the Gateway WebSocket (streamup_sock.c): the
 * send and receive callbacks mbedTLS calls (with a read-ahead under its
 * reads), and the watcher that waits for what mbedTLS waits on.
 */
#ifndef TLSIO_H
#define TLSIO_H

#include <stddef.h>

#include <ev.h>

struct tlsio {
	struct ev_loop	*loop;
	int		 fd;		/* -1: none */
	ev_io		 io;		/* the owner's callback, data */
	int		 io_fd;		/* fd the watcher was set on */
	int		 io_events;	/* 0: stopped */
	int		 sys_errno;	/* of the last failed send or recv */
	unsigned char	*ra;		/* read-ahead, or NULL */
	size_t		 ra_off;	/* given to mbedTLS */
	size_t		 ra_len;	/* received */
	void		(*sent)(void *);	/* bytes left, or NULL */
	void		*arg;		/* for sent, and io.data */
};

/* No socket yet; cb runs with io.data set to arg. */
void	 tlsio_init(struct tlsio *, struct ev_loop *,
	    void (*cb)(struct ev_loop *, ev_io *, int), void *arg);
/* mbedtls_ssl_set_bio's callbacks; their context is the struct tlsio. */
int	 tlsio_send(void *, const unsigned char *, size_t);
int	 tlsio_recv(void *, unsigned char *, size_t);
/* Watch the socket for events (EV_READ, EV_WRITE; 0 stops). */
void	 tlsio_watch(struct tlsio *, int events);
/* ret is mbedTLS's WANT_READ or WANT_WRITE: watch for it, 1.  Else 0. */
int	 tlsio_want(struct tlsio *, int ret);
/* Bytes received and not yet given to mbedTLS. */
size_t	 tlsio_pending(const struct tlsio *);
/* Give an empty read-ahead's memory back (an idle socket). */
void	 tlsio_release(struct tlsio *);
/* Stop the watcher, close the socket, drop what was read ahead. */
void	 tlsio_close(struct tlsio *);

#endif /* TLSIO_H */
