/*
 * tlsrec.c: TLS 1.2 AEAD records sealed by each engine (aesgcm.c, and
 * mbedTLS's ciphers), checked against the same record built here by
 * mbedTLS's own AES-GCM and ChaCha20-Poly1305 from RFC 5246/5288/7905's
 * nonce and additional data; a client and a server keyed from one key
 * block read each other; a changed byte, a replay, a record out of order,
 * a wrong version, a length out of bounds, and the last record number
 * are refused.
 */
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>
#include <mbedtls/chachapoly.h>
#include <mbedtls/gcm.h>

#include "tlsrec.h"

/* client MAC (none), server MAC, client key, server key, client IV, ... */
static unsigned char	 kb[96];

static void
setup(void)
{
	size_t	 i;

	for (i = 0; i < sizeof(kb); i++)
		kb[i] = (unsigned char)(i * 7 + 1);
}

TestSuite(tlsrec, .init = setup);

struct suite {
	enum tlsrec_aead	 aead;
	size_t			 keylen, ivlen;
	enum tlsrec_engine	 engine;
};

/* aesgcm.c's AES-GCM where this CPU has AES-NI, then mbedTLS's too. */
static const struct suite suites[] = {
	{ TLSREC_AES_128_GCM, 16, 4, TLSREC_FASTEST },
	{ TLSREC_AES_256_GCM, 32, 4, TLSREC_FASTEST },
	{ TLSREC_CHACHA20_POLY1305, 32, 12, TLSREC_FASTEST },
	{ TLSREC_AES_128_GCM, 16, 4, TLSREC_MBEDTLS },
	{ TLSREC_AES_256_GCM, 32, 4, TLSREC_MBEDTLS },
};

static void
pair(const struct suite *s, struct tlsrec *cli, struct tlsrec *srv,
    uint64_t seq)
{
	cr_assert_eq(tlsrec_init(cli, s->aead, s->engine, kb, 0, s->keylen,
	    s->ivlen, 1, seq, seq), 0);
	cr_assert_eq(tlsrec_init(srv, s->aead, s->engine, kb, 0, s->keylen,
	    s->ivlen, 0, seq, seq), 0);
}

static void
put64(unsigned char *p, uint64_t v)
{
	int	 i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

/*
 * Record seq of type holding p, as RFC 5246 6.2.3.3 and RFC 5288 / RFC
 * 7905 build it, sealed by mbedTLS: the reference.  The client's, or
 * the server's (its key and IV second in the key block); GCM's explicit
 * nonce is the sender's choice (OpenSSL and mbedTLS send seq).
 */
static size_t
reference_as(const struct suite *s, int server, uint64_t seq,
    uint64_t explicit, int type, const unsigned char *p, size_t len,
    unsigned char *out)
{
	const unsigned char	*key, *iv;
	unsigned char		 nonce[12], aad[13], sq[8], ex[8], *body;
	size_t			 expl, i;

	key = kb + (server ? s->keylen : 0);
	iv = kb + 2 * s->keylen + (server ? s->ivlen : 0);
	put64(sq, seq);
	put64(ex, explicit);
	memcpy(aad, sq, 8);
	aad[8] = (unsigned char)type;
	aad[9] = 3;
	aad[10] = 3;
	aad[11] = (unsigned char)(len >> 8);
	aad[12] = (unsigned char)len;
	memset(nonce, 0, sizeof(nonce));
	memcpy(nonce, iv, s->ivlen);
	if (s->aead == TLSREC_CHACHA20_POLY1305) {
		expl = 0;
		for (i = 0; i < 8; i++)
			nonce[4 + i] ^= sq[i];
	} else {
		expl = 8;
		memcpy(nonce + 4, ex, 8);
	}
	out[0] = (unsigned char)type;
	out[1] = 3;
	out[2] = 3;
	out[3] = (unsigned char)((expl + len + 16) >> 8);
	out[4] = (unsigned char)(expl + len + 16);
	memcpy(out + 5, ex, expl);
	body = out + 5 + expl;
	if (s->aead == TLSREC_CHACHA20_POLY1305) {
		mbedtls_chachapoly_context c;

		mbedtls_chachapoly_init(&c);
		cr_assert_eq(mbedtls_chachapoly_setkey(&c, key), 0);
		cr_assert_eq(mbedtls_chachapoly_encrypt_and_tag(&c, len, nonce,
		    aad, sizeof(aad), p, body, body + len), 0);
		mbedtls_chachapoly_free(&c);
	} else {
		mbedtls_gcm_context g;

		mbedtls_gcm_init(&g);
		cr_assert_eq(mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key,
		    (unsigned)s->keylen * 8), 0);
		cr_assert_eq(mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT,
		    len, nonce, sizeof(nonce), aad, sizeof(aad), p, body, 16,
		    body + len), 0);
		mbedtls_gcm_free(&g);
	}
	return (5 + expl + len + 16);
}

static size_t
reference(const struct suite *s, uint64_t seq, int type,
    const unsigned char *p, size_t len, unsigned char *out)
{
	return (reference_as(s, 0, seq, seq, type, p, len, out));
}

static unsigned char	 plain[TLSREC_MAX_PLAIN + 1];
static unsigned char	 rec[TLSREC_HEAD + TLSREC_MAX_FRAGMENT];
static unsigned char	 ref[TLSREC_HEAD + TLSREC_MAX_FRAGMENT];

Test(tlsrec, sealed_as_the_reference_seals_and_opened_by_the_peer)
{
	static const size_t	 lens[] = { 0, 1, 15, 16, 17, 400, 16384 };
	struct tlsrec		 cli, srv;
	enum tlsrec_type	 type;
	unsigned char		*p;
	size_t			 i, j, n, rl, k;

	for (i = 0; i < sizeof(plain); i++)
		plain[i] = (unsigned char)(i % 253);
	for (i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		pair(&suites[i], &cli, &srv, 1);
		for (j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
			n = lens[j];
			k = tlsrec_sealed_len(&cli, n);
			cr_assert_eq(tlsrec_seal(&cli, TLSREC_APPLICATION_DATA,
			    plain, n, rec), 0);
			rl = reference(&suites[i], 1 + j,
			    TLSREC_APPLICATION_DATA, plain, n, ref);
			cr_assert_eq(k, rl, "suite %zu len %zu", i, n);
			cr_assert_eq(memcmp(rec, ref, rl), 0,
			    "suite %zu len %zu: the reference's bytes", i, n);
			cr_assert_eq(tlsrec_length(&srv, rec), (long)rl);
			cr_assert_eq(tlsrec_open(&srv, rec, rl, &type, &p, &k),
			    0);
			cr_assert_eq(type, TLSREC_APPLICATION_DATA);
			cr_assert_eq(k, n);
			cr_assert_eq(memcmp(p, plain, n), 0);
		}
		/* the server's direction has keys of its own */
		cr_assert_eq(tlsrec_seal(&srv, TLSREC_ALERT, plain, 2, rec), 0);
		rl = tlsrec_sealed_len(&srv, 2);
		cr_assert_eq(tlsrec_open(&cli, rec, rl, &type, &p, &k), 0);
		cr_assert_eq(type, TLSREC_ALERT);
		cr_assert_eq(k, 2);
		tlsrec_free(&cli);
		tlsrec_free(&srv);
	}
}

Test(tlsrec, the_servers_records_any_explicit_nonce)
{
	struct tlsrec		 cli, srv;
	enum tlsrec_type	 type;
	unsigned char		*p;
	size_t			 i, j, rl, k, n;

	for (i = 0; i < sizeof(plain); i++)
		plain[i] = (unsigned char)(i % 247);
	for (i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		pair(&suites[i], &cli, &srv, 7);
		for (j = 0; j < 4; j++) {
			n = 100 * j + 3;
			rl = reference_as(&suites[i], 1, 7 + j,
			    0xfeedface00000000ULL + j * 977, TLSREC_APPLICATION_DATA,
			    plain, n, rec);
			cr_assert_eq(tlsrec_open(&cli, rec, rl, &type, &p, &k),
			    0, "suite %zu record %zu", i, j);
			cr_assert_eq(k, n);
			cr_assert_eq(memcmp(p, plain, n), 0);
		}
		/* and the server's own records are the reference's bytes */
		cr_assert_eq(tlsrec_seal(&srv, TLSREC_APPLICATION_DATA, plain,
		    50, rec), 0);
		rl = reference_as(&suites[i], 1, 7, 7, TLSREC_APPLICATION_DATA,
		    plain, 50, ref);
		cr_assert_eq(memcmp(rec, ref, rl), 0, "suite %zu", i);
		tlsrec_free(&cli);
		tlsrec_free(&srv);
	}
}

Test(tlsrec, any_changed_byte_is_refused)
{
	struct tlsrec		 cli, srv;
	enum tlsrec_type	 type;
	unsigned char		*p, good[64];
	size_t			 i, j, rl, k;

	for (i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		pair(&suites[i], &cli, &srv, 5);
		cr_assert_eq(tlsrec_seal(&cli, TLSREC_APPLICATION_DATA,
		    (const unsigned char *)"GET / HTTP/1.1\r\n", 16, good), 0);
		rl = tlsrec_sealed_len(&cli, 16);
		for (j = 0; j < rl; j++) {
			memcpy(rec, good, rl);
			rec[j] ^= 0x01;
			cr_assert_eq(tlsrec_open(&srv, rec, rl, &type, &p, &k),
			    -1, "suite %zu byte %zu", i, j);
		}
		memcpy(rec, good, rl);
		cr_assert_eq(tlsrec_open(&srv, rec, rl, &type, &p, &k), 0);
		tlsrec_free(&cli);
		tlsrec_free(&srv);
	}
}

Test(tlsrec, replay_and_reorder_are_refused)
{
	struct tlsrec		 cli, srv;
	enum tlsrec_type	 type;
	unsigned char		*p, a[64], b[64];
	size_t			 i, rl, k;

	for (i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		pair(&suites[i], &cli, &srv, 1);
		rl = tlsrec_sealed_len(&cli, 3);
		cr_assert_eq(tlsrec_seal(&cli, TLSREC_APPLICATION_DATA,
		    (const unsigned char *)"one", 3, a), 0);
		cr_assert_eq(tlsrec_seal(&cli, TLSREC_APPLICATION_DATA,
		    (const unsigned char *)"two", 3, b), 0);
		memcpy(rec, b, rl);
		cr_assert_eq(tlsrec_open(&srv, rec, rl, &type, &p, &k), -1,
		    "the second first");
		tlsrec_free(&srv);
		cr_assert_eq(tlsrec_init(&srv, suites[i].aead, suites[i].engine,
		    kb, 0, suites[i].keylen, suites[i].ivlen, 0, 1, 1), 0);
		memcpy(rec, a, rl);
		cr_assert_eq(tlsrec_open(&srv, rec, rl, &type, &p, &k), 0);
		memcpy(rec, a, rl);
		cr_assert_eq(tlsrec_open(&srv, rec, rl, &type, &p, &k), -1,
		    "a replay");
		tlsrec_free(&cli);
		tlsrec_free(&srv);
	}
}

Test(tlsrec, heads_out_of_bounds)
{
	struct tlsrec	 r;
	unsigned char	 h[5] = { 23, 3, 3, 0, 0 };

	cr_assert_eq(tlsrec_init(&r, TLSREC_AES_128_GCM, TLSREC_FASTEST, kb, 0,
	    16, 4, 1, 1, 1), 0);
	h[4] = 24;	/* explicit nonce + tag, nothing else */
	cr_assert_eq(tlsrec_length(&r, h), 29);
	h[4] = 23;
	cr_assert_eq(tlsrec_length(&r, h), -1, "shorter than nonce + tag");
	h[3] = (TLSREC_MAX_FRAGMENT >> 8) & 0xff;
	h[4] = TLSREC_MAX_FRAGMENT & 0xff;
	cr_assert_eq(tlsrec_length(&r, h), TLSREC_HEAD + TLSREC_MAX_FRAGMENT);
	h[4]++;
	cr_assert_eq(tlsrec_length(&r, h), -1, "over 2^14 + 2048");
	h[3] = 0;
	h[4] = 40;
	h[2] = 1;
	cr_assert_eq(tlsrec_length(&r, h), -1, "TLS 1.0");
	h[1] = 2;
	h[2] = 3;
	cr_assert_eq(tlsrec_length(&r, h), -1, "no TLS");
	tlsrec_free(&r);
	/* ChaCha20-Poly1305 has no explicit nonce: a tag alone is a record */
	cr_assert_eq(tlsrec_init(&r, TLSREC_CHACHA20_POLY1305, TLSREC_FASTEST,
	    kb, 0, 32, 12, 1, 1, 1), 0);
	h[1] = 3;
	h[4] = 16;
	cr_assert_eq(tlsrec_length(&r, h), 21);
	h[4] = 15;
	cr_assert_eq(tlsrec_length(&r, h), -1);
	tlsrec_free(&r);
}

Test(tlsrec, more_than_a_record_of_plain_bytes_is_refused)
{
	const struct suite	*s = &suites[0];
	struct tlsrec		 cli, srv;
	enum tlsrec_type	 type;
	unsigned char		*p;
	size_t			 rl, k;

	pair(s, &cli, &srv, 1);
	cr_assert_eq(tlsrec_seal(&cli, TLSREC_APPLICATION_DATA, plain,
	    TLSREC_MAX_PLAIN + 1, rec), -1);
	/* authentic, within the fragment bound, one byte too many plain */
	rl = reference(s, 1, TLSREC_APPLICATION_DATA, plain,
	    TLSREC_MAX_PLAIN + 1, rec);
	cr_assert_eq(tlsrec_open(&srv, rec, rl, &type, &p, &k), -1);
	tlsrec_free(&cli);
	tlsrec_free(&srv);
}

Test(tlsrec, the_last_record_number_is_never_used)
{
	struct tlsrec	 cli, srv;
	enum tlsrec_type type;
	unsigned char	*p;
	size_t		 rl, k;

	pair(&suites[2], &cli, &srv, UINT64_MAX - 1);
	cr_assert_eq(tlsrec_seal(&cli, TLSREC_APPLICATION_DATA, plain, 1,
	    rec), 0);
	rl = tlsrec_sealed_len(&cli, 1);
	cr_assert_eq(tlsrec_open(&srv, rec, rl, &type, &p, &k), 0);
	cr_assert_eq(tlsrec_seal(&cli, TLSREC_APPLICATION_DATA, plain, 1,
	    rec), -1, "2^64 - 1 would wrap");
	/* the client's record 2^64 - 1, authentic, is not opened either */
	rl = reference(&suites[2], UINT64_MAX, TLSREC_APPLICATION_DATA, plain,
	    1, rec);
	cr_assert_eq(tlsrec_open(&srv, rec, rl, &type, &p, &k), -1);
	tlsrec_free(&srv);
	cr_assert_eq(tlsrec_init(&srv, suites[2].aead, suites[2].engine, kb, 0,
	    suites[2].keylen, suites[2].ivlen, 0, UINT64_MAX - 1,
	    UINT64_MAX - 1), 0);
	rl = reference(&suites[2], UINT64_MAX - 1, TLSREC_APPLICATION_DATA,
	    plain, 1, rec);
	cr_assert_eq(tlsrec_open(&srv, rec, rl, &type, &p, &k), 0,
	    "the reference is authentic");
	tlsrec_free(&cli);
	tlsrec_free(&srv);
}

Test(tlsrec, unknown_suites_and_lengths_are_refused)
{
	struct tlsrec	 r;

	cr_assert_eq(tlsrec_init(&r, TLSREC_AES_128_GCM, TLSREC_FASTEST, kb, 0,
	    32, 4, 1, 1, 1), -1);
	cr_assert_eq(tlsrec_init(&r, TLSREC_CHACHA20_POLY1305, TLSREC_FASTEST,
	    kb, 0, 32, 4, 1, 1, 1), -1);
	cr_assert_eq(tlsrec_init(&r, (enum tlsrec_aead)9, TLSREC_FASTEST, kb, 0,
	    16, 4, 1, 1, 1), -1);
}
