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

#include <stdio.h>
#include <stdlib.h>

#include <criterion/criterion.h>
#include <ev.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cache.h>

#include "brokerd.h"
#include "tls.h"
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
	cr_assert_eq(tlsrec_init(&t.rec, TLSREC_AES_128_GCM, TLSREC_FASTEST, kb,
	    0, 16, 4, 1, 1, 1), 0);
	t.rec_on = 1;
	cr_assert_eq(tlsrec_init(&gw, TLSREC_AES_128_GCM, TLSREC_FASTEST, kb, 0,
	    16, 4, 0, 1, 1), 0);
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

/*
 * The Gateway sends records of these lengths, back to back, holding
 * plain (filled with a pattern of mul): how many plain bytes in all.
 */
static size_t
gw_send_records(unsigned char *plain, const size_t *lens, size_t n,
    unsigned mul)
{
	size_t	 i, off = 0, wr = 0;

	for (i = 0; i < n; i++) {
		off += lens[i];
		cr_assert_leq(off, 5 * TLSREC_MAX_PLAIN);
	}
	for (i = 0; i < off; i++)
		plain[i] = (unsigned char)(i * mul + 5);
	for (i = 0, off = 0; i < n; i++) {
		wr += gw_record(TLSREC_APPLICATION_DATA, plain + off, lens[i],
		    rbuf + wr);
		off += lens[i];
	}
	gw_send(rbuf, wr);
	return (off);
}

Test(tlsio, full_records_through_the_read_ahead)
{
	static unsigned char	 plain[5 * TLSREC_MAX_PLAIN], got[sizeof(plain)];
	static const size_t	 lens[] = { 16384, 16384, 1, 16383, 16384 };
	size_t			 off, have = 0;
	int			 n;

	off = gw_send_records(plain, lens, 5, 31);
	while (have < off) {
		n = tlsio_read(&t, got + have, 1000);
		cr_assert_gt(n, 0, "at %zu: %d", have, n);
		have += (size_t)n;
	}
	cr_assert_eq(memcmp(got, plain, off), 0);
	cr_assert_eq(tlsio_pending(&t), 0);
}

/* tlsio_read_ref: the same bytes as tlsio_read, where they were opened. */
Test(tlsio, read_ref_gives_the_opened_bytes_in_place)
{
	static unsigned char	 plain[5 * TLSREC_MAX_PLAIN], got[sizeof(plain)];
	static const size_t	 lens[] = { 16384, 7, 16384 };
	const unsigned char	*p;
	size_t			 off, have = 0;
	int			 n;

	off = gw_send_records(plain, lens, 3, 13);
	while (have < off) {
		n = tlsio_read_ref(&t, &p, 5000);
		cr_assert_gt(n, 0, "at %zu: %d", have, n);
		cr_assert_leq(n, 5000);
		cr_assert(p >= t.ra && p + n <= t.ra + t.ra_len,
		    "in the read-ahead");
		memcpy(got + have, p, (size_t)n);
		have += (size_t)n;
	}
	cr_assert_eq(memcmp(got, plain, off), 0);
	cr_assert_eq(tlsio_read_ref(&t, &p, 5000), MBEDTLS_ERR_SSL_WANT_READ);
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

Test(tlsio, eof_inside_a_record_is_no_clean_end)
{
	unsigned char	 b[16];
	size_t		 n;

	n = gw_record(TLSREC_APPLICATION_DATA, "half", 4, rbuf);
	gw_send(rbuf, n - 3);
	close(peer);
	peer = -1;
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)),
	    MBEDTLS_ERR_SSL_INVALID_RECORD);
}

Test(tlsio, eof_between_records_is_the_end)
{
	unsigned char	 b[16];

	gw_send_record(TLSREC_APPLICATION_DATA, "all", 3);
	close(peer);
	peer = -1;
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)), 3);
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)), MBEDTLS_ERR_SSL_CONN_EOF);
}

Test(tlsio, records_without_data_a_few_in_a_row)
{
	static const unsigned char	 warn[2] = { 1, 112 };
	unsigned char			 b[16];
	size_t				 n = 0;
	int				 i;

	/* four passed over, then data: the count starts again */
	for (i = 0; i < 4; i++)
		n += gw_record(TLSREC_APPLICATION_DATA, "", 0, rbuf + n);
	n += gw_record(TLSREC_APPLICATION_DATA, "a", 1, rbuf + n);
	for (i = 0; i < 4; i++)
		n += gw_record(TLSREC_ALERT, warn, 2, rbuf + n);
	n += gw_record(TLSREC_APPLICATION_DATA, "b", 1, rbuf + n);
	/* a fifth in a row stalls the reader: refused */
	for (i = 0; i < 5; i++)
		n += gw_record(TLSREC_APPLICATION_DATA, "", 0, rbuf + n);
	n += gw_record(TLSREC_APPLICATION_DATA, "c", 1, rbuf + n);
	gw_send(rbuf, n);
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)), 1);
	cr_assert_eq(b[0], 'a');
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)), 1);
	cr_assert_eq(b[0], 'b');
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)),
	    MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE);
}

Test(tlsio, a_failure_stays_and_nothing_is_sent_after_it)
{
	static const unsigned char	 fatal[2] = { 2, 20 };
	unsigned char			 b[16];
	size_t				 n = 0;
	ssize_t				 r;

	n += gw_record(TLSREC_ALERT, fatal, 2, rbuf + n);
	n += gw_record(TLSREC_APPLICATION_DATA, "after", 5, rbuf + n);
	gw_send(rbuf, n);
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)),
	    MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE);
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)),
	    MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE, "the record after: unread");
	cr_assert_eq(tlsio_write(&t, (const unsigned char *)"x", 1),
	    MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE);
	tlsio_close_notify(&t);
	cr_assert_eq(fcntl(peer, F_SETFL, O_NONBLOCK), 0);
	r = read(peer, b, sizeof(b));
	cr_assert_eq(r, -1, "no record after a fatal alert");
	cr_assert_eq(errno, EAGAIN);
}

Test(tlsio, a_half_read_record_keeps_its_read_ahead)
{
	unsigned char	 b[64], p[100];

	memset(p, 'y', sizeof(p));
	gw_send_record(TLSREC_APPLICATION_DATA, p, sizeof(p));
	cr_assert_eq(tlsio_read(&t, b, 40), 40);
	tlsio_release(&t);
	cr_assert_not_null(t.ra, "released while 60 bytes wait");
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)), 60);
	cr_assert_eq(memcmp(b, p, 60), 0);
	tlsio_release(&t);
	cr_assert_null(t.ra);
	gw_send_record(TLSREC_APPLICATION_DATA, "again", 5);
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)), 5);
}

Test(tlsio, after_close_no_keys_and_a_new_socket_starts_clean)
{
	unsigned char	 b[16];
	int		 sv[2];

	gw_send_record(TLSREC_ALERT, "\2\50", 2);
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)),
	    MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE);
	tlsio_close(&t);
	cr_assert_eq(t.rec_on, 0);
	cr_assert_eq(t.rec_err, 0);
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)),
	    MBEDTLS_ERR_SSL_BAD_INPUT_DATA, "no records without keys");
	close(peer);
	tlsrec_free(&gw);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	t.fd = sv[0];
	peer = sv[1];
	cr_assert_eq(tlsrec_init(&t.rec, TLSREC_CHACHA20_POLY1305,
	    TLSREC_FASTEST, kb, 0, 32, 12, 1, 1, 1), 0);
	t.rec_on = 1;
	cr_assert_eq(tlsrec_init(&gw, TLSREC_CHACHA20_POLY1305, TLSREC_FASTEST,
	    kb, 0, 32, 12, 0, 1, 1), 0);
	gw_send_record(TLSREC_APPLICATION_DATA, "fresh", 5);
	cr_assert_eq(tlsio_read(&t, b, sizeof(b)), 5);
	cr_assert_eq(memcmp(b, "fresh", 5), 0);
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
	int			 sndbuf = 4096, n, again = 0, fewer = 0;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i % 241);
	cr_assert_eq(setsockopt(t.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
	    sizeof(sndbuf)), 0);
	while (off < sizeof(data)) {
		n = tlsio_write(&t, data + off, sizeof(data) - off);
		if (n == MBEDTLS_ERR_SSL_WANT_WRITE) {
			again++;
			/* not the same bytes: refused, nothing lost */
			if (sizeof(data) - off > 1) {
				cr_assert_eq(tlsio_write(&t, data + off, 1),
				    MBEDTLS_ERR_SSL_BAD_INPUT_DATA);
				fewer++;
			}
			total += gw_read_all(got + total, sizeof(got) - total);
			continue;
		}
		cr_assert_gt(n, 0, "%d", n);
		cr_assert_leq(n, TLSREC_MAX_PLAIN);
		off += (size_t)n;
	}
	total += gw_read_all(got + total, sizeof(got) - total);
	cr_assert_gt(again, 0, "the socket never filled");
	cr_assert_gt(fewer, 0, "never called again with fewer bytes");
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

/*
 * The takeover itself: brokerd's client configuration (tls_conf_base)
 * against an mbedTLS server on a socket pair, for each suite, a full
 * handshake and then a resumed one.  The server writes the moment its
 * handshake ends (its record may arrive with its Finished, in the
 * read-ahead), then reads what tlsio writes with mbedtls_ssl_read and
 * ends with its close_notify: the key block, the record numbers and the
 * bytes mbedTLS left behind, checked by mbedTLS's own record layer.
 */
static char	 hs_dir[] = "/tmp/test_tlsio.XXXXXX";
static char	 hs_key[64], hs_crt[64];

static void
hs_setup(void)
{
	char	 cmd[512];

	cr_assert_not_null(mkdtemp(hs_dir));
	snprintf(hs_key, sizeof(hs_key), "%s/key.pem", hs_dir);
	snprintf(hs_crt, sizeof(hs_crt), "%s/crt.pem", hs_dir);
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:P-256 -nodes -subj /CN=gw -days 1 -keyout %s "
	    "-out %s 2>/dev/null", hs_key, hs_crt);
	cr_assert_eq(system(cmd), 0, "openssl req");
	cr_assert_not_null(loop = ev_loop_new(EVFLAG_AUTO));
}

static void
hs_teardown(void)
{
	unlink(hs_key);
	unlink(hs_crt);
	rmdir(hs_dir);
	ev_loop_destroy(loop);
}

TestSuite(tlsio_hs, .init = hs_setup, .fini = hs_teardown, .timeout = 30);

static int	 hs_verified;

static int
hs_verify(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	(void)arg;
	(void)crt;
	(void)depth;
	*flags = 0;
	hs_verified++;
	return (0);
}

/* Both sides' handshakes, stepped in turn; the server writes at once. */
static void
hs_run(mbedtls_ssl_context *cs, mbedtls_ssl_context *ss)
{
	int	 i, r, cdone = 0, sdone = 0;

	for (i = 0; i < 2000 && !(cdone && sdone); i++) {
		if (!cdone) {
			r = tlsio_handshake(&t, cs);
			cr_assert(r == 0 || r == MBEDTLS_ERR_SSL_WANT_READ ||
			    r == MBEDTLS_ERR_SSL_WANT_WRITE, "client -0x%x", -r);
			cdone = r == 0;
		}
		if (!sdone) {
			r = mbedtls_ssl_handshake(ss);
			cr_assert(r == 0 || r == MBEDTLS_ERR_SSL_WANT_READ ||
			    r == MBEDTLS_ERR_SSL_WANT_WRITE, "server -0x%x", -r);
			if ((sdone = r == 0))
				cr_assert_eq(mbedtls_ssl_write(ss,
				    (const unsigned char *)"first words", 11),
				    11);
		}
	}
	cr_assert(cdone && sdone, "handshakes did not end");
}

static int
hs_read(unsigned char *b, size_t len)
{
	int	 i, r = MBEDTLS_ERR_SSL_WANT_READ;

	for (i = 0; i < 1000 && r == MBEDTLS_ERR_SSL_WANT_READ; i++)
		r = tlsio_read(&t, b, len);
	return (r);
}

Test(tlsio_hs, full_then_resumed_each_suite)
{
	static const int	 suites[][2] = {
		{ MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 0 },
		{ MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0 },
		{ MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 0 },
	};
	static unsigned char	 big[40000], got[sizeof(big)];
	struct tls_rng		 rng;
	mbedtls_ssl_config	 cconf, sconf;
	mbedtls_ssl_context	 cs, ss;
	mbedtls_ssl_session	 saved;
	mbedtls_ssl_cache_context cache;
	mbedtls_x509_crt	 crt;
	mbedtls_pk_context	 pk;
	mbedtls_net_context	 sfd;
	unsigned char		 b[64];
	char			 err[128];
	size_t			 i, have, off;
	int			 round, sv[2], r;

	for (i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i % 239);
	cr_assert_eq(tls_rng_init(&rng, "test_tlsio", err, sizeof(err)), 0);
	mbedtls_x509_crt_init(&crt);
	mbedtls_pk_init(&pk);
	cr_assert_eq(mbedtls_x509_crt_parse_file(&crt, hs_crt), 0);
	cr_assert_eq(mbedtls_pk_parse_keyfile(&pk, hs_key, NULL), 0);
	for (i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		mbedtls_ssl_config_init(&cconf);
		mbedtls_ssl_config_init(&sconf);
		mbedtls_ssl_cache_init(&cache);
		mbedtls_ssl_session_init(&saved);
		cr_assert_eq(tls_conf_base(&cconf, &rng), 0);
		mbedtls_ssl_conf_authmode(&cconf, MBEDTLS_SSL_VERIFY_OPTIONAL);
		mbedtls_ssl_conf_verify(&cconf, hs_verify, NULL);
		cr_assert_eq(mbedtls_ssl_config_defaults(&sconf,
		    MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
		    MBEDTLS_SSL_PRESET_DEFAULT), 0);
		mbedtls_ssl_conf_rng(&sconf, mbedtls_ctr_drbg_random,
		    &rng.drbg);
		mbedtls_ssl_conf_ciphersuites(&sconf, suites[i]);
		mbedtls_ssl_conf_session_cache(&sconf, &cache,
		    mbedtls_ssl_cache_get, mbedtls_ssl_cache_set);
		cr_assert_eq(mbedtls_ssl_conf_own_cert(&sconf, &crt, &pk), 0);
		for (round = 0; round < 2; round++) {
			hs_verified = 0;
			cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM |
			    SOCK_NONBLOCK, 0, sv), 0);
			tlsio_init(&t, loop, nop_cb, NULL);
			t.fd = sv[0];
			mbedtls_net_init(&sfd);
			sfd.fd = sv[1];
			mbedtls_ssl_init(&cs);
			mbedtls_ssl_init(&ss);
			cr_assert_eq(mbedtls_ssl_setup(&cs, &cconf), 0);
			cr_assert_eq(mbedtls_ssl_setup(&ss, &sconf), 0);
			mbedtls_ssl_set_bio(&cs, &t, tlsio_send, tlsio_recv,
			    NULL);
			mbedtls_ssl_set_bio(&ss, &sfd, mbedtls_net_send,
			    mbedtls_net_recv, NULL);
			if (round == 1)
				cr_assert_eq(mbedtls_ssl_set_session(&cs,
				    &saved), 0);
			hs_run(&cs, &ss);
			cr_assert_eq(t.rec_on, 1, "suite %zu round %d", i,
			    round);
			cr_assert_eq(hs_verified, round == 0 ? 1 : 0,
			    "round %d: %s", round, round ? "resumed" : "full");
			if (round == 0)
				cr_assert_eq(mbedtls_ssl_get_session(&cs,
				    &saved), 0);
			mbedtls_ssl_free(&cs);	/* as conn.c does */
			r = hs_read(b, sizeof(b));
			cr_assert_eq(r, 11, "suite %zu round %d: -0x%x", i,
			    round, -r);
			cr_assert_eq(memcmp(b, "first words", 11), 0);
			for (off = 0, have = 0; have < sizeof(big);) {
				if (off < sizeof(big)) {
					r = tlsio_write(&t, big + off,
					    sizeof(big) - off);
					if (r > 0)
						off += (size_t)r;
					else
						cr_assert_eq(r,
						    MBEDTLS_ERR_SSL_WANT_WRITE);
				}
				r = mbedtls_ssl_read(&ss, got + have,
				    sizeof(got) - have);
				if (r > 0)
					have += (size_t)r;
				else
					cr_assert_eq(r,
					    MBEDTLS_ERR_SSL_WANT_READ);
			}
			cr_assert_eq(memcmp(got, big, sizeof(big)), 0);
			cr_assert_eq(mbedtls_ssl_close_notify(&ss), 0);
			cr_assert_eq(hs_read(b, sizeof(b)),
			    MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
			mbedtls_ssl_free(&ss);
			tlsio_close(&t);
			close(sv[1]);
		}
		mbedtls_ssl_session_free(&saved);
		mbedtls_ssl_cache_free(&cache);
		mbedtls_ssl_config_free(&cconf);
		mbedtls_ssl_config_free(&sconf);
	}
	mbedtls_x509_crt_free(&crt);
	mbedtls_pk_free(&pk);
	tls_rng_free(&rng);
}
