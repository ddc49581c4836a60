/*
 * libFuzzer: the Gateway's TLS records after the handshake, read by tlsio.c
 * over a real socket pair.  The fuzzer's bytes describe what the Gateway
 * sends: a first byte picks the suite (and whether aesgcm.c or mbedTLS seals
 * AES-GCM) and how much each read asks for; then entries of a type byte and
 * a 16-bit length and that many bytes, sealed as a record of that type by a
 * tlsrec keyed as the server (so that they pass the tag check and reach the
 * dispatch: alerts of any length, handshake messages, unknown types, empty
 * records), or, with the type's top bit set, written raw (heads out of
 * bounds, forgeries, a record cut by EOF).  Beyond no crash: the bytes read
 * are exactly the application data sealed, in order, up to the first record
 * refused or the close_notify, and all of it when every entry was
 * application data (no more than four empty records in a row); a read never
 * gives more than asked; pending bytes never exceed what was received.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <mbedtls/ssl.h>

#include "tlsio.h"

static unsigned char	 kb[96];
static unsigned char	 wire[1 << 18];
static unsigned char	 want[1 << 17];
static unsigned char	 got[1 << 17];

static void
nop_cb(struct ev_loop *l, ev_io *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
}

/*
 * Wire bytes for the entries; the application bytes a reader must see
 * (up to the first raw entry or close_notify: what follows may be
 * refused).  Returns the wire length.
 */
static size_t
build(struct tlsrec *gw, const uint8_t *p, size_t len, size_t *wantlen,
    int *all)
{
	size_t	 w = 0, n, k;
	int	 type, exact = 1, empty = 0;

	*wantlen = 0;
	while (len >= 3) {
		type = p[0];
		n = (size_t)p[1] << 8 | p[2];
		p += 3;
		len -= 3;
		if (n > len)
			n = len;
		if (type & 0x80) {
			if (w + n > sizeof(wire))
				break;
			memcpy(wire + w, p, n);
			w += n;
			exact = 0;
		} else {
			if (n > TLSREC_MAX_PLAIN)
				n = TLSREC_MAX_PLAIN;
			k = tlsrec_sealed_len(gw, n);
			if (w + k > sizeof(wire) ||
			    tlsrec_seal(gw, (enum tlsrec_type)type, p, n,
			    wire + w) == -1)
				break;
			w += k;
			/* five empty records in a row are refused */
			empty = n == 0 ? empty + 1 : 0;
			if (type != TLSREC_APPLICATION_DATA || empty > 4 ||
			    *wantlen + n > sizeof(want))
				exact = 0;	/* maybe refused, maybe not */
			else if (exact) {
				memcpy(want + *wantlen, p, n);
				*wantlen += n;
			}
		}
		p += n;
		len -= n;
	}
	*all = exact;
	return (w);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ev_loop	*loop;
	static const struct {
		enum tlsrec_aead a;
		size_t		 keylen, ivlen;
		enum tlsrec_engine e;
	} suites[5] = {
		{ TLSREC_AES_128_GCM, 16, 4, TLSREC_FASTEST },
		{ TLSREC_AES_256_GCM, 32, 4, TLSREC_FASTEST },
		{ TLSREC_CHACHA20_POLY1305, 32, 12, TLSREC_FASTEST },
		{ TLSREC_AES_128_GCM, 16, 4, TLSREC_MBEDTLS },
		{ TLSREC_AES_256_GCM, 32, 4, TLSREC_MBEDTLS },
	};
	struct tlsio		 t;
	struct tlsrec		 gw;
	size_t			 wlen, wantlen, sent = 0, have = 0, ask, s;
	ssize_t			 n;
	int			 sv[2], r, all;

	if (size < 1)
		return (0);
	if (loop == NULL)
		loop = ev_loop_new(EVFLAG_AUTO);
	s = data[0] % 5;
	ask = 1 + (size_t)(data[0] >> 2) * 97;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == -1)
		abort();
	tlsio_init(&t, loop, nop_cb, NULL);
	t.fd = sv[0];
	if (tlsrec_init(&t.rec, suites[s].a, suites[s].e, kb, 0,
	    suites[s].keylen, suites[s].ivlen, 1, 1, 1) == -1 ||
	    tlsrec_init(&gw, suites[s].a, suites[s].e, kb, 0,
	    suites[s].keylen, suites[s].ivlen, 0, 1, 1) == -1)
		abort();
	t.rec_on = 1;
	wlen = build(&gw, data + 1, size - 1, &wantlen, &all);
	for (;;) {
		while (sent < wlen && (n = write(sv[1], wire + sent,
		    wlen - sent)) > 0)
			sent += (size_t)n;
		if (sent == wlen && sv[1] != -1) {
			close(sv[1]);
			sv[1] = -1;
		}
		if (have + ask > sizeof(got))
			ask = sizeof(got) - have;
		if (ask == 0)
			break;
		r = tlsio_read(&t, got + have, ask);
		if (r > 0) {
			if ((size_t)r > ask)
				abort();
			have += (size_t)r;
			if (tlsio_pending(&t) > sent)
				abort();
			continue;
		}
		if (r == MBEDTLS_ERR_SSL_WANT_READ && sent < wlen)
			continue;
		if (r == MBEDTLS_ERR_SSL_WANT_READ)
			abort();	/* the socket is closed: EOF, not WANT */
		break;
	}
	/* what was read is the sealed application data, in order, all */
	if (memcmp(got, want, have < wantlen ? have : wantlen) != 0 ||
	    (all && have != wantlen && have < sizeof(got)))
		abort();
	if (sv[1] != -1)
		close(sv[1]);
	tlsio_close(&t);
	tlsrec_free(&gw);
	return (0);
}
