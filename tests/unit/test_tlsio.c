/*
 * tlsio.c's records after the handshake, on a real socket pair: the
 * Gateway's side is played here with tlsrec.c keyed as the server.
 * Records cut anywhere, records of every length through the read-ahead,
 * alerts (close_notify, warnings passed over, fatal), a HelloRequest
 * passed over, other handshake messages and bad records refused, EOF in
 * a record, bytes still pending, and writes the socket takes in part
 * (mbedtls_ssl_write's contract: called again with the same bytes).
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <ev.h>
#include <mbedtls/ssl.h>

#include "tlsio.h"

static struct ev_loop	*loop;
static struct tlsio	 t;
static struct tlsrec	 gw;	/* the Gateway's side */
static int		 peer = -1;
static unsigned char	 kb[96];

static void
nop_cb(struct ev_loop *l, ev_io *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
}

static void
setup(void)
{
	int	 sv[2];
	size_t	 i;

	for (i = 0; i < sizeof(kb); i++)
		kb[i] = (unsigned char)(i * 13 + 5);
	cr_assert_not_null(loop = ev_loop_new(EVFLAG_AUTO));
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	tlsio_init(&t, loop, nop_cb, NULL);
	t.fd = sv[0];
	peer = sv[1];
	cr_assert_eq(tlsrec_init(&t.rec, TLSREC_AES_128_GCM, kb, 0, 16, 4, 1,
	    1, 1), 0);
	t.rec_on = 1;
	cr_assert_eq(tlsrec_init(&gw, TLSREC_AES_128_GCM, kb, 0, 16, 4, 0, 1,
	    1), 0);
}

static void
teardown(void)
{
	tlsio_close(&t);
	tlsrec_free(&gw);
	if (peer != -1)
		close(peer);
	peer = -1;
	ev_loop_destroy(loop);
}

TestSuite(tlsio, .init = setup, .fini = teardown);

static unsigned char	 rbuf[6 * (TLSREC_HEAD + TLSREC_MAX_FRAGMENT)];

/* The Gateway writes one record; its length. */
static size_t
gw_record(int type, const void *p, size_t len, unsigned char *out)
{
	cr_assert_eq(tlsrec_seal(&gw, (enum tlsrec_type)type, p, len, out),
	    0);
	return (tlsrec_sealed_len(&gw, len));
}

static void
gw_send(const void *p, size_t len)
{
	cr_assert_eq(write(peer, p, len), (ssize_t)len);
}

static void
gw_send_record(int type, const void *p, size_t len)
{
	gw_send(rbuf, gw_record(type, p, len, rbuf));
}

Test(tlsio, a_record_cut_anywhere_is_read_whole)
{
	unsigned char	 b[64];
	size_t		 n, cut;

	for (cut = 1; cut < 44; cut += 7) {
		n = gw_record(TLSREC_APPLICATION_DATA, "0123456789abcdef", 16,
		    rbuf);
		gw_send(rbuf, cut);
		cr_assert_eq(tlsio_read(&t, b, sizeof(b)),
		    MBEDTLS_ERR_SSL_WANT_READ, "cut at %zu", cut);
		gw_send(rbuf + cut, n - cut);
		cr_assert_eq(tlsio_read(&t, b, sizeof(b)), 16);
		cr_assert_eq(memcmp(b, "0123456789abcdef", 16), 0);
		cr_assert_eq(tlsio_read(&t, b, sizeof(b)),
		    MBEDTLS_ERR_SSL_WANT_READ);
	}
}

Test(tlsio, full_records_through_the_read_ahead)
{
	static unsigned char	 plain[5 * TLSREC_MAX_PLAIN], got[sizeof(plain)];
	static const size_t	 lens[] = { 16384, 16384, 1, 16383, 16384 };
	size_t			 i, off = 0, wr = 0, have = 0;
	int			 n;

	for (i = 0; i < sizeof(plain); i++)
		plain[i] = (unsigned char)(i * 31);
	for (i = 0; i < 5; i++) {
		wr += gw_record(TLSREC_APPLICATION_DATA, plain + off, lens[i],
		    rbuf + wr);
		off += lens[i];
	}
	gw_send(rbuf, wr);
	while (have < off) {
		n = tlsio_read(&t, got + have, 1000);
		cr_assert_gt(n, 0, "at %zu: %d", have, n);
		have += (size_t)n;
	}
	cr_assert_eq(memcmp(got, plain, off), 0);
	cr_assert_eq(tlsio_pending(&t), 0);
}

Test(tlsio, bytes_opened_and_not_read_are_pending)
{
	unsigned char	 b[10], p[100];

	memset(p, 'x', sizeof(p));
	gw_send_record(TLSREC_APPLICATION_DATA, p, sizeof(p));
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)), 10);
	cr_assert_eq(tlsio_pending(&t), 90);
}

Test(tlsio, warnings_and_hello_request_are_passed_over_close_notify_ends)
{
	static const unsigned char	 warn[2] = { 1, 112 };
	static const unsigned char	 hello[4] = { 0, 0, 0, 0 };
	static const unsigned char	 bye[2] = { 1, 0 };
	unsigned char			 b[16];
	size_t				 n = 0;

	n += gw_record(TLSREC_ALERT, warn, 2, rbuf + n);
	n += gw_record(TLSREC_HANDSHAKE, hello, 4, rbuf + n);
	n += gw_record(TLSREC_APPLICATION_DATA, "", 0, rbuf + n);
	n += gw_record(TLSREC_APPLICATION_DATA, "ok", 2, rbuf + n);
	n += gw_record(TLSREC_ALERT, bye, 2, rbuf + n);
	gw_send(rbuf, n);
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)), 2);
	cr_assert_eq(memcmp(b, "ok", 2), 0);
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)),
	    MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)),
	    MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
}

Test(tlsio, a_fatal_alert_fails)
{
	static const unsigned char	 fatal[2] = { 2, 40 };
	unsigned char			 b[16];

	gw_send_record(TLSREC_ALERT, fatal, 2);
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)),
	    MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE);
}

Test(tlsio, other_handshake_messages_and_types_fail)
{
	static const unsigned char	 fin[4] = { 20, 0, 0, 0 };
	unsigned char			 b[16];

	gw_send_record(TLSREC_HANDSHAKE, fin, 4);
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)),
	    MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE);
}

Test(tlsio, change_cipher_spec_fails)
{
	unsigned char	 b[16];

	gw_send_record(TLSREC_CHANGE_CIPHER_SPEC, "\1", 1);
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)),
	    MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE);
}

Test(tlsio, a_forged_record_fails)
{
	unsigned char	 b[16];
	size_t		 n;

	n = gw_record(TLSREC_APPLICATION_DATA, "secret", 6, rbuf);
	rbuf[n - 1] ^= 0x80;
	gw_send(rbuf, n);
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)), MBEDTLS_ERR_SSL_INVALID_MAC);
}

Test(tlsio, a_bad_head_fails_before_its_body_is_read)
{
	static const unsigned char	 h[5] = { 23, 3, 3, 0xff, 0xff };
	unsigned char			 b[16];

	gw_send(h, sizeof(h));
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)),
	    MBEDTLS_ERR_SSL_INVALID_RECORD);
}

Test(tlsio, eof_inside_a_record)
{
	unsigned char	 b[16];
	size_t		 n;

	n = gw_record(TLSREC_APPLICATION_DATA, "half", 4, rbuf);
	gw_send(rbuf, n - 3);
	close(peer);
	peer = -1;
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)), MBEDTLS_ERR_SSL_CONN_EOF);
}

/*
 * The Gateway reads what brokerd wrote so far: every whole record,
 * opened, in order; a record sent in part waits for its rest.
 */
static unsigned char	 wire[1 << 20];
static size_t		 wire_have, wire_off;

static size_t
gw_read_all(unsigned char *out, size_t cap)
{
	enum tlsrec_type	 type;
	unsigned char		*p;
	size_t			 got = 0, k;
	ssize_t			 n;
	long			 len;

	cr_assert_eq(fcntl(peer, F_SETFL, O_NONBLOCK), 0);
	while ((n = read(peer, wire + wire_have, sizeof(wire) - wire_have)) >
	    0)
		wire_have += (size_t)n;
	while (wire_have - wire_off >= TLSREC_HEAD) {
		len = tlsrec_length(&gw, wire + wire_off);
		cr_assert_gt(len, 0);
		if (wire_have - wire_off < (size_t)len)
			break;
		cr_assert_eq(tlsrec_open(&gw, wire + wire_off, (size_t)len,
		    &type, &p, &k), 0);
		cr_assert_eq(type, TLSREC_APPLICATION_DATA);
		cr_assert_leq(got + k, cap);
		memcpy(out + got, p, k);
		got += k;
		wire_off += (size_t)len;
	}
	return (got);
}

Test(tlsio, writes_in_records_and_again_with_the_same_bytes_when_full)
{
	static unsigned char	 data[200000], got[sizeof(data)];
	size_t			 off = 0, total = 0, i;
	int			 sndbuf = 4096, n, again = 0;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i % 241);
	cr_assert_eq(setsockopt(t.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
	    sizeof(sndbuf)), 0);
	while (off < sizeof(data)) {
		n = tlsio_write(&t, data + off, sizeof(data) - off);
		if (n == MBEDTLS_ERR_SSL_WANT_WRITE) {
			again++;
			total += gw_read_all(got + total, sizeof(got) - total);
			continue;
		}
		cr_assert_gt(n, 0, "%d", n);
		cr_assert_leq(n, TLSREC_MAX_PLAIN);
		off += (size_t)n;
	}
	total += gw_read_all(got + total, sizeof(got) - total);
	cr_assert_gt(again, 0, "the socket never filled");
	cr_assert_eq(total, sizeof(data));
	cr_assert_eq(memcmp(got, data, sizeof(data)), 0);
}

Test(tlsio, close_notify_is_a_sealed_alert)
{
	enum tlsrec_type	 type;
	unsigned char		*p;
	size_t			 k;
	ssize_t			 n;

	tlsio_close_notify(&t);
	n = read(peer, wire, 256);
	cr_assert_gt(n, 0);
	cr_assert_eq(tlsrec_open(&gw, wire, (size_t)n, &type, &p, &k), 0);
	cr_assert_eq(type, TLSREC_ALERT);
	cr_assert_eq(k, 2);
	cr_assert_eq(p[0], 1);
	cr_assert_eq(p[1], 0);
}
