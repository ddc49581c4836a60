/*
 * tlsio.c: a non-blocking TLS socket, for the Gateway pool's connections
 * (conn.c) and the Gateway WebSocket (streamup_sock.c): the send and
 * receive callbacks mbedTLS calls during the handshake (with a read-ahead
 * under its reads), then the application records, framed here and sealed
 * by tlsrec.c, and the watcher that waits for what either waits on.
 */
#ifndef TLSIO_H
#define TLSIO_H

#include <stddef.h>

#include <ev.h>
#include <mbedtls/ssl.h>

#include "tlsrec.h"

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
	/* after the handshake */
	struct tlsrec	 rec;
	int		 rec_on;
	int		 rec_eof;	/* close_notify read */
	int		 rec_err;	/* a failure: every later call's */
	int		 rec_idle;	/* records in a row without data */
	unsigned char	*plain;		/* opened, in ra, not yet read */
	size_t		 plain_len;
	unsigned char	*wr;		/* the record being sent */
	size_t		 wr_cap;
	size_t		 wr_off;
	size_t		 wr_len;
	size_t		 wr_plain;	/* the caller's bytes it holds */
	/* the key block mbedTLS exports, until the handshake ends */
	unsigned char	 kb[96];
	size_t		 kb_maclen;
	size_t		 kb_keylen;
	size_t		 kb_ivlen;
};

/* No socket yet; cb runs with io.data set to arg. */
void	 tlsio_init(struct tlsio *, struct ev_loop *,
	    void (*cb)(struct ev_loop *, ev_io *, int), void *arg);
/* mbedtls_ssl_set_bio's callbacks; their context is the struct tlsio. */
int	 tlsio_send(void *, const unsigned char *, size_t);
int	 tlsio_recv(void *, unsigned char *, size_t);
/*
 * mbedTLS's handshake; when it ends, the records are this file's.  An
 * mbedTLS code: 0 done, WANT_READ or WANT_WRITE, or a failure.
 */
int	 tlsio_handshake(struct tlsio *, mbedtls_ssl_context *);
/* The key export callback every configuration sets (tls_conf_base). */
int	 tlsio_export_keys(void *, const unsigned char *, const unsigned char *,
	    size_t, size_t, size_t, const unsigned char [32],
	    const unsigned char [32], mbedtls_tls_prf_types);
/*
 * mbedtls_ssl_read's and mbedtls_ssl_write's terms, after the handshake:
 * bytes; WANT_READ, WANT_WRITE (write: call again with the same bytes);
 * MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY or MBEDTLS_ERR_SSL_CONN_EOF; a failure.
 */
int	 tlsio_read(struct tlsio *, unsigned char *, size_t);
/*
 * tlsio_read without the copy: *p points at up to len bytes already
 * opened in the read-ahead, valid until the next call on this tlsio.
 */
int	 tlsio_read_ref(struct tlsio *, const unsigned char **, size_t);
int	 tlsio_write(struct tlsio *, const unsigned char *, size_t);
/* A close_notify, if the socket takes it now; nothing waits for it. */
void	 tlsio_close_notify(struct tlsio *);
/* Watch the socket for events (EV_READ, EV_WRITE; 0 stops). */
void	 tlsio_watch(struct tlsio *, int events);
/* ret is mbedTLS's WANT_READ or WANT_WRITE: watch for it, 1.  Else 0. */
int	 tlsio_want(struct tlsio *, int ret);
/* Bytes received and not yet read (opened or not). */
size_t	 tlsio_pending(const struct tlsio *);
/* Give an empty read-ahead's memory back (an idle socket). */
void	 tlsio_release(struct tlsio *);
/* Stop the watcher, close the socket, drop what was read and the keys. */
void	 tlsio_close(struct tlsio *);

#endif /* TLSIO_H */
