/*
 * tls.c's pure pieces: the verification decision for a presented
 * certificate (pin, CA with an IP literal host, insecure), the words a
 * failed handshake is reported with, fingerprints, and the settings a
 * configuration makes.  Certificates are made here with mbedTLS, parsed
 * from DER: no socket, no Gateway.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>

#include "brokerd.h"
#include "tls.h"

static struct tls_rng	 rng;
static mbedtls_pk_context key;
static mbedtls_x509_crt	 crt;
static unsigned char	 der[2048];
static size_t		 derlen;

static void
setup(void)
{
	char	 err[128];

	cr_assert_eq(tls_rng_init(&rng, "test_tls", err, sizeof(err)), 0);
	mbedtls_pk_init(&key);
	cr_assert_eq(mbedtls_pk_setup(&key,
	    mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
	cr_assert_eq(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1,
	    mbedtls_pk_ec(key), mbedtls_ctr_drbg_random, &rng.drbg), 0);
	mbedtls_x509_crt_init(&crt);
}

static void
teardown(void)
{
	mbedtls_x509_crt_free(&crt);
	mbedtls_pk_free(&key);
	tls_rng_free(&rng);
}

/*
 * A self-signed certificate for cn, valid only in 2000 (long expired, as
 * the Gateway's own), with san as its raw subjectAltName (or none).
 */
static void
make_cert(const char *cn, const unsigned char *san, size_t sanlen)
{
	mbedtls_x509write_cert	 w;
	mbedtls_mpi		 serial;
	char			 name[128];
	int			 n;

	mbedtls_x509write_crt_init(&w);
	mbedtls_mpi_init(&serial);
	cr_assert_eq(mbedtls_mpi_lset(&serial, 7), 0);
	snprintf(name, sizeof(name), "CN=%s", cn);
	mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&w, &key);
	mbedtls_x509write_crt_set_issuer_key(&w, &key);
	cr_assert_eq(mbedtls_x509write_crt_set_serial(&w, &serial), 0);
	cr_assert_eq(mbedtls_x509write_crt_set_validity(&w, "20000101000000",
	    "20001231000000"), 0);
	cr_assert_eq(mbedtls_x509write_crt_set_subject_name(&w, name), 0);
	cr_assert_eq(mbedtls_x509write_crt_set_issuer_name(&w, name), 0);
	if (san != NULL)
		cr_assert_eq(mbedtls_x509write_crt_set_extension(&w,
		    MBEDTLS_OID_SUBJECT_ALT_NAME,
		    MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, san,
		    sanlen), 0);
	n = mbedtls_x509write_crt_der(&w, der, sizeof(der),
	    mbedtls_ctr_drbg_random, &rng.drbg);
	cr_assert_gt(n, 0);
	derlen = (size_t)n;
	/* The DER is written at the end of the buffer. */
	memmove(der, der + sizeof(der) - derlen, derlen);
	mbedtls_x509_crt_free(&crt);
	mbedtls_x509_crt_init(&crt);
	cr_assert_eq(mbedtls_x509_crt_parse_der(&crt, der, derlen), 0);
	mbedtls_mpi_free(&serial);
	mbedtls_x509write_crt_free(&w);
}

static void
tls_for(struct tls *t, enum tls_mode mode, const char *host)
{
	memset(t, 0, sizeof(*t));
	t->mode = mode;
	t->host = (char *)host;
	if (strcmp(host, "127.0.0.1") == 0) {
		memcpy(t->ip, "\x7f\x00\x00\x01", 4);
		t->iplen = 4;
	}
}

TestSuite(verify, .init = setup, .fini = teardown);

Test(verify, pin_match_accepts_expired_self_signed)
{
	struct tls	 t;
	struct tls_check chk = { .tls = &t };
	uint32_t	 flags;

	make_cert("gateway", NULL, 0);
	tls_for(&t, TLS_PIN, "127.0.0.1");
	cr_assert_eq(mbedtls_sha256_ret(der, derlen, t.pin, 0), 0);
	flags = MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_NOT_TRUSTED;
	tls_check_cert(&chk, &crt, 0, &flags);
	cr_assert_eq(flags, 0);
	cr_assert_eq(chk.vflags, 0);
	cr_assert_eq(chk.pin_mismatch, 0);
	cr_assert_eq(chk.verified, 1);
}

Test(verify, pin_mismatch_names_both_fingerprints)
{
	struct tls	 t;
	struct tls_check chk = { .tls = &t };
	uint32_t	 flags = 0;
	unsigned char	 h[32];
	char		 got[96], want[96], msg[512];

	make_cert("gateway", NULL, 0);
	tls_for(&t, TLS_PIN, "127.0.0.1");
	memset(t.pin, 0xab, sizeof(t.pin));
	tls_check_cert(&chk, &crt, 0, &flags);
	cr_assert(flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED);
	cr_assert_eq(chk.pin_mismatch, 1);
	cr_assert_eq(mbedtls_sha256_ret(der, derlen, h, 0), 0);
	cr_assert_eq(memcmp(chk.got, h, sizeof(h)), 0);

	cr_assert_eq(tls_failure(&chk, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED, 0,
	    msg, sizeof(msg)), UPSTREAM_CERTIFICATE);
	tls_hex_colon(h, sizeof(h), got, sizeof(got));
	tls_hex_colon(t.pin, sizeof(t.pin), want, sizeof(want));
	cr_assert_not_null(strstr(msg, got), "%s", msg);
	cr_assert_not_null(strstr(msg, want), "%s", msg);
	cr_assert_not_null(strstr(msg, "does not match gateway.tls.pin_sha256"),
	    "%s", msg);
}

Test(verify, pin_ignores_the_chain_above_the_leaf)
{
	struct tls	 t;
	struct tls_check chk = { .tls = &t };
	uint32_t	 flags = MBEDTLS_X509_BADCERT_NOT_TRUSTED;

	make_cert("some root", NULL, 0);
	tls_for(&t, TLS_PIN, "127.0.0.1");
	memset(t.pin, 0xab, sizeof(t.pin));
	tls_check_cert(&chk, &crt, 1, &flags);
	cr_assert_eq(flags, 0);
	cr_assert_eq(chk.pin_mismatch, 0);
}

Test(verify, insecure_accepts_anything)
{
	struct tls	 t;
	struct tls_check chk = { .tls = &t };
	uint32_t	 flags = MBEDTLS_X509_BADCERT_EXPIRED |
			    MBEDTLS_X509_BADCERT_NOT_TRUSTED;

	make_cert("anything", NULL, 0);
	tls_for(&t, TLS_INSECURE, "127.0.0.1");
	tls_check_cert(&chk, &crt, 0, &flags);
	cr_assert_eq(flags, 0);
	cr_assert_eq(chk.verified, 1);
}

/* CA mode: mbedTLS's own flags stay; an IP literal must be named. */
static uint32_t
ca_flags(const char *cn, const unsigned char *san, size_t sanlen,
    const char *host, uint32_t flags)
{
	struct tls	 t;
	struct tls_check chk = { .tls = &t };

	make_cert(cn, san, sanlen);
	tls_for(&t, TLS_CA, host);
	tls_check_cert(&chk, &crt, 0, &flags);
	cr_assert_eq(chk.vflags, flags);
	return (flags);
}

Test(verify, ca_ip_literal_matched_against_ip_address_names)
{
	static const unsigned char ip_san[] = {
		0x30, 0x06, 0x87, 0x04, 0x7f, 0x00, 0x00, 0x01
	};
	static const unsigned char other_ip_san[] = {
		0x30, 0x06, 0x87, 0x04, 0x0a, 0x00, 0x00, 0x01
	};

	cr_assert_eq(ca_flags("gateway", ip_san, sizeof(ip_san), "127.0.0.1",
	    0), 0);
	cr_assert_eq(ca_flags("gateway", other_ip_san, sizeof(other_ip_san),
	    "127.0.0.1", 0), MBEDTLS_X509_BADCERT_CN_MISMATCH);
	cr_assert_eq(ca_flags("gateway", NULL, 0, "127.0.0.1", 0),
	    MBEDTLS_X509_BADCERT_CN_MISMATCH);
}

Test(verify, ca_ip_literal_spelled_as_a_name)
{
	static const unsigned char dns_san[] = {
		0x30, 0x0b, 0x82, 0x09, '1', '2', '7', '.', '0', '.', '0', '.',
		'1'
	};
	static const unsigned char other_dns_san[] = {
		0x30, 0x09, 0x82, 0x07, 'e', 'x', 'a', 'm', 'p', 'l', 'e'
	};

	cr_assert_eq(ca_flags("gateway", dns_san, sizeof(dns_san),
	    "127.0.0.1", 0), 0);
	/* The CN counts only when there are no subjectAltNames. */
	cr_assert_eq(ca_flags("127.0.0.1", NULL, 0, "127.0.0.1", 0), 0);
	cr_assert_eq(ca_flags("127.0.0.1", other_dns_san,
	    sizeof(other_dns_san), "127.0.0.1", 0),
	    MBEDTLS_X509_BADCERT_CN_MISMATCH);
}

Test(verify, ca_keeps_mbedtls_flags)
{
	/* A DNS name is mbedTLS's to check; its flags are kept, not added. */
	cr_assert_eq(ca_flags("localhost", NULL, 0, "localhost",
	    MBEDTLS_X509_BADCERT_EXPIRED), MBEDTLS_X509_BADCERT_EXPIRED);
	cr_assert_eq(ca_flags("gateway", NULL, 0, "localhost", 0), 0);
}

/* ------------------------------------------------------------ failure */

Test(failure, refused_certificate_says_why)
{
	struct tls	 t;
	struct tls_check chk = { .tls = &t };
	char		 msg[512];

	tls_for(&t, TLS_CA, "127.0.0.1");
	chk.vflags = MBEDTLS_X509_BADCERT_EXPIRED |
	    MBEDTLS_X509_BADCERT_NOT_TRUSTED;
	cr_assert_eq(tls_failure(&chk, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED, 0,
	    msg, sizeof(msg)), UPSTREAM_CERTIFICATE);
	cr_assert(strncmp(msg, "TLS handshake failed: ", 22) == 0, "%s", msg);
	cr_assert_not_null(strstr(msg, "expired"), "%s", msg);
	cr_assert_not_null(strstr(msg, ";"), "one line: %s", msg);
	cr_assert_null(strchr(msg, '\n'), "%s", msg);
}

Test(failure, network_trouble_is_unreachable)
{
	struct tls	 t;
	struct tls_check chk = { .tls = &t };
	char		 msg[512];

	tls_for(&t, TLS_PIN, "127.0.0.1");
	cr_assert_eq(tls_failure(&chk, MBEDTLS_ERR_NET_CONN_RESET, ECONNRESET,
	    msg, sizeof(msg)), UPSTREAM_UNREACHABLE);
	cr_assert_not_null(strstr(msg, strerror(ECONNRESET)), "%s", msg);
	cr_assert_eq(tls_failure(&chk, MBEDTLS_ERR_SSL_CONN_EOF, 0, msg,
	    sizeof(msg)), UPSTREAM_UNREACHABLE);
	cr_assert_not_null(strstr(msg, "the peer closed the connection"), "%s",
	    msg);
}

/* ------------------------------------------------------------ settings */

TestSuite(settings, .init = setup, .fini = teardown);

Test(settings, pin_wins_and_nothing_to_check_is_refused)
{
	struct config	 conf;
	struct tls	*t;
	char		 err[512];

	memset(&conf, 0, sizeof(conf));
	conf.gw_host = "127.0.0.1";
	conf.gw_port = "5000";
	cr_assert_null(tls_new(&conf, &rng, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "brokerd gateway-fingerprint"), "%s",
	    err);
	conf.gw_has_pin = 1;
	memset(conf.gw_pin, 0x11, sizeof(conf.gw_pin));
	conf.gw_ca_file = "/nonexistent/ca.pem";
	cr_assert_not_null(t = tls_new(&conf, &rng, err, sizeof(err)), "%s",
	    err);
	cr_assert_eq(t->mode, TLS_PIN);
	cr_assert_str_eq(t->hostport, "127.0.0.1:5000");
	cr_assert_eq(t->iplen, 4);
	cr_assert(tls_same(t, &conf));
	conf.gw_pin[0] = 0x12;
	cr_assert_not(tls_same(t, &conf));
	tls_unref(t);
}

Test(settings, ca_file_must_hold_a_certificate)
{
	struct config	 conf;
	char		 err[512];

	memset(&conf, 0, sizeof(conf));
	conf.gw_host = "::1";
	conf.gw_port = "5000";
	conf.gw_ca_file = "/nonexistent/ca.pem";
	cr_assert_null(tls_new(&conf, &rng, err, sizeof(err)));
	cr_assert(strncmp(err, "gateway.tls.ca_file /nonexistent/ca.pem: ",
	    41) == 0, "%s", err);
}

Test(settings, fingerprint_is_the_sha256_of_the_der)
{
	unsigned char	 h[32];
	char		 want[96], got[96];

	make_cert("gateway", NULL, 0);
	cr_assert_eq(mbedtls_sha256_ret(der, derlen, h, 0), 0);
	tls_hex_colon(h, sizeof(h), want, sizeof(want));
	cr_assert_eq(tls_fingerprint(&crt, got, sizeof(got)), 0);
	cr_assert_str_eq(got, want);
}

/* ------------------------------------------------------------- hex */

Test(hex, colon_upper_case)
{
	unsigned char	 b[32];
	char		 s[96];
	size_t		 i;

	for (i = 0; i < sizeof(b); i++)
		b[i] = (unsigned char)(i * 8 + 10);
	tls_hex_colon(b, sizeof(b), s, sizeof(s));
	cr_assert_eq(strlen(s), 95);
	cr_assert(strncmp(s, "0A:12:1A:22:", 12) == 0);
	cr_assert_str_eq(s + 93, "02");
	tls_hex_colon((const unsigned char *)"\xff\x00", 2, s, sizeof(s));
	cr_assert_str_eq(s, "FF:00");
}

Test(hex, never_overflows)
{
	unsigned char	 b[32] = { 0xab, 0xcd, 0xef };
	char		 s[8];

	memset(s, 'x', sizeof(s));
	tls_hex_colon(b, sizeof(b), s, sizeof(s));
	cr_assert_str_eq(s, "AB:CD");
	tls_hex_colon(b, sizeof(b), s, 1);
	cr_assert_str_eq(s, "");
	tls_hex_colon(b, 0, s, sizeof(s));
	cr_assert_str_eq(s, "");
}
