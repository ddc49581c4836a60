/*
 * A non-blocking TLS socket, shared by the Gateway pool's connections
 * (conn.c) and the Gateway WebSocket (streamup_sock.c): the bio callbacks
 * and a read-ahead under mbedTLS's reads during the handshake; then the
 * application records, framed here and sealed and opened by tlsrec.c
 * with the keys mbedTLS exported; the watcher set to what either waits
 * on.  The TLS settings and their checks are tls.c's; what is read and
 * written, and when, is the owner's.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>

#include "tlsio.h"

#define TLSIO_READ_AHEAD	32768	/* a whole record of any length */
#define TLSIO_WR_KEEP		4096	/* a send buffer kept between records */
/*
 * Empty records, warnings and HelloRequests in a row before the peer is
 * taken to stall the reader: mbedTLS 2.28 allowed 4 empty records.
 */
#define TLSIO_IDLE_MAX		4

/* The socket whose handshake is running: where exported keys go. */
static struct tlsio	*tlsio_capturing;

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

/* A failed send or recv's errno in mbedTLS's terms; kept for messages. */
static int
tlsio_errno(struct tlsio *t, int again, int failed)
{
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return (again);
	t->sys_errno = errno;
	if (errno == EPIPE || errno == ECONNRESET)
		return (MBEDTLS_ERR_NET_CONN_RESET);
	return (failed);
}

/*
 * The read-ahead's own mapping, so that an idle socket's gives its pages
 * back to the system (tlsio_release), not to malloc's heap.  0, or -1.
 */
static int
tlsio_map(struct tlsio *t)
{
	void	*p;

	if (t->ra != NULL)
		return (0);
	p = mmap(NULL, TLSIO_READ_AHEAD, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return (-1);
	t->ra = p;
	return (0);
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
	return (tlsio_errno(t, MBEDTLS_ERR_SSL_WANT_WRITE,
	    MBEDTLS_ERR_NET_SEND_FAILED));
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
	return (tlsio_errno(t, MBEDTLS_ERR_SSL_WANT_READ,
	    MBEDTLS_ERR_NET_RECV_FAILED));
}

/*
 * mbedTLS asks for a record's 5-byte header, then for its body: one recv
 * into the read-ahead buffer serves both, and the records after them.
 * Bytes left in it are invisible to the socket's watcher, so whoever
 * reads stops only on WANT_READ, which comes from here only when the
 * buffer and the socket are both empty, or arranges to read on without
 * an event (streamup_sock.c's budget); whoever asks whether the socket
 * is quiet counts them (tlsio_pending).  Without its mapping, reads go
 * straight to mbedTLS.
 */
int
tlsio_recv(void *arg, unsigned char *p, size_t len)
{
	struct tlsio	*t = arg;
	size_t		 n;
	int		 ret;

	if (t->ra_off == t->ra_len) {
		if (tlsio_map(t) == -1)
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
	return (t->ra_len - t->ra_off + t->plain_len);
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
	t->plain_len = 0;
	tlsio_release(t);
	if (t->rec_on)
		tlsrec_free(&t->rec);
	t->rec_on = t->rec_eof = t->rec_err = t->rec_idle = 0;
	free(t->wr);
	t->wr = NULL;
	t->wr_cap = t->wr_off = t->wr_len = t->wr_plain = 0;
	mbedtls_platform_zeroize(t->kb, sizeof(t->kb));
	t->kb_keylen = 0;
}

/*
 * mbedTLS hands every configuration's key block here as it derives it
 * (full and resumed handshakes); only the socket whose handshake runs
 * takes it.  Others (gateway-fingerprint) have none running.
 */
int
tlsio_export_keys(void *arg, const unsigned char *ms, const unsigned char *kb,
    size_t maclen, size_t keylen, size_t ivlen, const unsigned char cr[32],
    const unsigned char sr[32], mbedtls_tls_prf_types prf)
{
	struct tlsio	*t = tlsio_capturing;

	(void)arg;
	(void)ms;
	(void)cr;
	(void)sr;
	(void)prf;
	if (t == NULL)
		return (0);
	t->kb_keylen = 0;
	if (2 * (maclen + keylen + ivlen) > sizeof(t->kb))
		return (0);	/* no AEAD suite of tlsrec.c's */
	memcpy(t->kb, kb, 2 * (maclen + keylen + ivlen));
	t->kb_maclen = maclen;
	t->kb_keylen = keylen;
	t->kb_ivlen = ivlen;
	return (0);
}

static uint64_t
tlsio_get64(const unsigned char *p)
{
	uint64_t	 v = 0;
	int		 i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return (v);
}

/*
 * The records are ours from here: the suite is one tlsrec.c seals, the
 * keys came, and mbedTLS holds no record it read and did not give out
 * (what it did not ask for is still in the read-ahead).  Its record
 * numbers go on where its Finished left them.
 */
static int
tlsio_takeover(struct tlsio *t, mbedtls_ssl_context *ssl)
{
	const mbedtls_ssl_ciphersuite_t	*cs;
	enum tlsrec_aead		 aead;
	int				 ret;

	cs = mbedtls_ssl_ciphersuite_from_string(
	    mbedtls_ssl_get_ciphersuite(ssl));
	if (cs == NULL)
		return (MBEDTLS_ERR_SSL_FEATURE_UNAVAILABLE);
	switch (cs->cipher) {
	case MBEDTLS_CIPHER_AES_128_GCM:
		aead = TLSREC_AES_128_GCM;
		break;
	case MBEDTLS_CIPHER_AES_256_GCM:
		aead = TLSREC_AES_256_GCM;
		break;
	case MBEDTLS_CIPHER_CHACHA20_POLY1305:
		aead = TLSREC_CHACHA20_POLY1305;
		break;
	default:
		return (MBEDTLS_ERR_SSL_FEATURE_UNAVAILABLE);
	}
	ret = MBEDTLS_ERR_SSL_FEATURE_UNAVAILABLE;
	if (t->kb_keylen > 0 && ssl->minor_ver == MBEDTLS_SSL_MINOR_VERSION_3 &&
	    ssl->out_left == 0 && mbedtls_ssl_check_pending(ssl) == 0 &&
	    mbedtls_ssl_get_bytes_avail(ssl) == 0 &&
	    tlsrec_init(&t->rec, aead, TLSREC_FASTEST, t->kb, t->kb_maclen,
	    t->kb_keylen, t->kb_ivlen, 1, tlsio_get64(ssl->cur_out_ctr),
	    tlsio_get64(ssl->in_ctr)) == 0) {
		t->rec_on = 1;
		ret = 0;
	}
	mbedtls_platform_zeroize(t->kb, sizeof(t->kb));
	t->kb_keylen = 0;
	return (ret);
}

int
tlsio_handshake(struct tlsio *t, mbedtls_ssl_context *ssl)
{
	int	 ret;

	tlsio_capturing = t;
	ret = mbedtls_ssl_handshake(ssl);
	tlsio_capturing = NULL;
	if (ret == 0)
		ret = tlsio_takeover(t, ssl);
	return (ret);
}

/*
 * need bytes from ra_off on, in the read-ahead: 0, or WANT_READ, EOF or
 * a failure.  Earlier bytes move to the front only when the record
 * would not fit behind them; an opened record is read out before.
 */
static int
tlsio_fill(struct tlsio *t, size_t need)
{
	size_t	 have;
	int	 ret;

	if (tlsio_map(t) == -1)
		return (MBEDTLS_ERR_SSL_ALLOC_FAILED);
	while ((have = t->ra_len - t->ra_off) < need) {
		if (have == 0)
			t->ra_off = t->ra_len = 0;
		else if (t->ra_off + need > TLSIO_READ_AHEAD) {
			memmove(t->ra, t->ra + t->ra_off, have);
			t->ra_off = 0;
			t->ra_len = have;
		}
		ret = tlsio_sys_recv(t, t->ra + t->ra_len,
		    TLSIO_READ_AHEAD - t->ra_len);
		if (ret == 0)	/* a record cut short is no clean end */
			return (have > 0 ? MBEDTLS_ERR_SSL_INVALID_RECORD :
			    MBEDTLS_ERR_SSL_CONN_EOF);
		if (ret < 0)
			return (ret);
		t->ra_len += (size_t)ret;
	}
	return (0);
}

/*
 * Open the next record: application data waits in t->plain; a warning
 * alert, an empty record or a HelloRequest (which a client may ignore,
 * RFC 5246 7.4.1.1: brokerd does not renegotiate) is passed over, a few
 * in a row.
 */
static int
tlsio_next(struct tlsio *t)
{
	enum tlsrec_type	 type;
	unsigned char		*p;
	size_t			 n;
	long			 len;
	int			 ret;

	if ((ret = tlsio_fill(t, TLSREC_HEAD)) != 0)
		return (ret);
	if ((len = tlsrec_length(&t->rec, t->ra + t->ra_off)) == -1)
		return (MBEDTLS_ERR_SSL_INVALID_RECORD);
	if ((ret = tlsio_fill(t, (size_t)len)) != 0)
		return (ret);
	if (tlsrec_open(&t->rec, t->ra + t->ra_off, (size_t)len, &type, &p,
	    &n) == -1)
		return (MBEDTLS_ERR_SSL_INVALID_MAC);
	t->ra_off += (size_t)len;
	switch (type) {
	case TLSREC_APPLICATION_DATA:
		if (n == 0)
			break;
		t->plain = p;
		t->plain_len = n;
		t->rec_idle = 0;
		return (0);
	case TLSREC_ALERT:
		if (n != 2)
			return (MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE);
		if (p[1] == MBEDTLS_SSL_ALERT_MSG_CLOSE_NOTIFY) {
			t->rec_eof = 1;
			return (MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
		}
		if (p[0] != MBEDTLS_SSL_ALERT_LEVEL_WARNING)
			return (MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE);
		break;
	case TLSREC_HANDSHAKE:	/* HelloRequest: type 0, no body */
		if (n != 4 || memcmp(p, "\0\0\0\0", 4) != 0)
			return (MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE);
		break;
	default:
		return (MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE);
	}
	if (++t->rec_idle > TLSIO_IDLE_MAX)
		return (MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE);
	return (0);
}

/* A failure stays: no record is read, written or sealed after it. */
static int
tlsio_fail(struct tlsio *t, int ret)
{
	if (ret != MBEDTLS_ERR_SSL_WANT_READ &&
	    ret != MBEDTLS_ERR_SSL_WANT_WRITE &&
	    ret != MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
		t->rec_err = ret;
	return (ret);
}

int
tlsio_read_ref(struct tlsio *t, const unsigned char **p, size_t len)
{
	size_t	 n;
	int	 ret;

	if (!t->rec_on)
		return (MBEDTLS_ERR_SSL_BAD_INPUT_DATA);
	if (t->rec_err != 0)
		return (t->rec_err);
	while (t->plain_len == 0) {
		if (t->rec_eof)
			return (MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
		if ((ret = tlsio_next(t)) != 0)
			return (tlsio_fail(t, ret));
	}
	n = t->plain_len < len ? t->plain_len : len;
	if (n > INT_MAX)
		n = INT_MAX;
	*p = t->plain;
	t->plain += n;
	t->plain_len -= n;
	return ((int)n);
}

int
tlsio_read(struct tlsio *t, unsigned char *p, size_t len)
{
	const unsigned char	*q;
	int			 n;

	if ((n = tlsio_read_ref(t, &q, len)) > 0)
		memcpy(p, q, (size_t)n);
	return (n);
}

/* The record in t->wr, as far as the socket takes it: 0 when all left. */
static int
tlsio_flush(struct tlsio *t)
{
	int	 ret;

	while (t->wr_off < t->wr_len) {
		if ((ret = tlsio_send(t, t->wr + t->wr_off,
		    t->wr_len - t->wr_off)) < 0)
			return (ret);
		t->wr_off += (size_t)ret;
	}
	return (0);
}

/*
 * One record at a time, as mbedtls_ssl_write: on WANT_WRITE the record is
 * sealed and part sent; the next call sends the rest and answers for it.
 */
int
tlsio_write(struct tlsio *t, const unsigned char *p, size_t len)
{
	unsigned char	*w;
	size_t		 n, need;
	int		 ret;

	if (!t->rec_on)
		return (MBEDTLS_ERR_SSL_BAD_INPUT_DATA);
	if (t->rec_err != 0)
		return (t->rec_err);
	if (t->wr_off < t->wr_len && len < t->wr_plain)
		return (MBEDTLS_ERR_SSL_BAD_INPUT_DATA);	/* not the same */
	if (t->wr_off == t->wr_len) {
		if (len == 0)
			return (0);
		n = len < TLSREC_MAX_PLAIN ? len : TLSREC_MAX_PLAIN;
		need = tlsrec_sealed_len(&t->rec, n);
		if (need > t->wr_cap) {
			if ((w = realloc(t->wr, need)) == NULL)
				return (MBEDTLS_ERR_SSL_ALLOC_FAILED);
			t->wr = w;
			t->wr_cap = need;
		}
		if (tlsrec_seal(&t->rec, TLSREC_APPLICATION_DATA, p, n,
		    t->wr) == -1)
			return (tlsio_fail(t, MBEDTLS_ERR_SSL_INTERNAL_ERROR));
		t->wr_off = 0;
		t->wr_len = need;
		t->wr_plain = n;
	}
	if ((ret = tlsio_flush(t)) != 0)
		return (tlsio_fail(t, ret));
	if (t->wr_cap > TLSIO_WR_KEEP) {
		free(t->wr);
		t->wr = NULL;
		t->wr_cap = t->wr_off = t->wr_len = 0;
	}
	return ((int)t->wr_plain);
}

void
tlsio_close_notify(struct tlsio *t)
{
	static const unsigned char	 alert[2] = {
		MBEDTLS_SSL_ALERT_LEVEL_WARNING,
		MBEDTLS_SSL_ALERT_MSG_CLOSE_NOTIFY
	};
	unsigned char			 rec[64];

	/* none after a failure (RFC 5246 7.2.2) or in a record's middle */
	if (!t->rec_on || t->rec_err != 0 || t->fd == -1 ||
	    t->wr_off < t->wr_len || tlsrec_seal(&t->rec, TLSREC_ALERT,
	    alert, sizeof(alert), rec) == -1)
		return;
	(void)send(t->fd, rec, tlsrec_sealed_len(&t->rec, sizeof(alert)),
	    MSG_NOSIGNAL | MSG_DONTWAIT);
}
