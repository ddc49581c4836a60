/*
 * mbedTLS 2.28 settings for the Gateway: certificate pinning (or a CA
 * file, or nothing when insecure is asked for), TLS session resumption,
 * and why a handshake failed, in words an operator can act on.  No
 * sockets here: conn.c owns the connections and hands in its bio.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/sha256.h>

#include "brokerd.h"
#include "tls.h"
#include "tlsio.h"

void
tls_hex_colon(const unsigned char *p, size_t n, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		 i, o = 0;

	if (outlen == 0)
		return;
	for (i = 0; i < n; i++) {
		if (o + (i > 0 ? 3 : 2) >= outlen)
			break;
		if (i > 0)
			out[o++] = ':';
		out[o++] = hex[p[i] >> 4];
		out[o++] = hex[p[i] & 0x0f];
	}
	out[o] = '\0';
}

int
tls_fingerprint(const mbedtls_x509_crt *crt, char *out, size_t outlen)
{
	unsigned char	 h[32];

	if (mbedtls_sha256_ret(crt->raw.p, crt->raw.len, h, 0) != 0)
		return (-1);
	tls_hex_colon(h, sizeof(h), out, outlen);
	return (0);
}

int
tls_rng_init(struct tls_rng *r, const char *pers, char *err, size_t errlen)
{
	char	 e[128];
	int	 ret;

	mbedtls_entropy_init(&r->entropy);
	mbedtls_ctr_drbg_init(&r->drbg);
	if ((ret = mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func,
	    &r->entropy, (const unsigned char *)pers, strlen(pers))) != 0) {
		mbedtls_strerror(ret, e, sizeof(e));
		snprintf(err, errlen, "random generator: %s", e);
		return (-1);
	}
	return (0);
}

void
tls_rng_free(struct tls_rng *r)
{
	mbedtls_ctr_drbg_free(&r->drbg);
	mbedtls_entropy_free(&r->entropy);
}

/*
 * TLS 1.2 (all mbedTLS 2.28 speaks), forward secret and AEAD only: the
 * suites whose records tlsrec.c seals after the handshake.  With AES-NI,
 * AES-128-GCM first: aesgcm.c seals it at 2.5 GB/s and more, and a Java
 * Gateway's AES-GCM is intrinsic too.  Without, ChaCha20-Poly1305 first:
 * mbedTLS's runs at about 310 MB/s where its table AES-GCM crawls.  The
 * server's order decides, where it has one.
 */
static const int tls_suites_aesni[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	0
};

static const int tls_suites_portable[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	0
};

/* Returns mbedTLS's code, 0 on success. */
int
tls_conf_base(mbedtls_ssl_config *conf, struct tls_rng *r)
{
	int	 ret;

	if ((ret = mbedtls_ssl_config_defaults(conf, MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
		return (ret);
	mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &r->drbg);
	mbedtls_ssl_conf_ciphersuites(conf, aesgcm_supported() ?
	    tls_suites_aesni : tls_suites_portable);
	mbedtls_ssl_conf_min_version(conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	    MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_session_tickets(conf,
	    MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
	mbedtls_ssl_conf_renegotiation(conf,
	    MBEDTLS_SSL_RENEGOTIATION_DISABLED);
	mbedtls_ssl_conf_export_keys_ext_cb(conf, tlsio_export_keys, NULL);
	return (0);
}

/* An IP literal is checked against iPAddress names, never sent as SNI. */
static size_t
ip_literal(const char *host, unsigned char ip[16])
{
	if (inet_pton(AF_INET, host, ip) == 1)
		return (4);
	if (inet_pton(AF_INET6, host, ip) == 1)
		return (16);
	return (0);
}

/* Returns mbedTLS's code, 0 on success. */
int
tls_set_hostname(mbedtls_ssl_context *ssl, const char *host)
{
	unsigned char	 ip[16];

	if (ip_literal(host, ip) > 0)
		return (0);
	return (mbedtls_ssl_set_hostname(ssl, host));
}

/*
 * mbedTLS 2.28 lists only dNSName and otherName in subject_alt_names, so
 * an iPAddress entry ([7] IMPLICIT OCTET STRING) is looked up in the raw
 * extensions.  Any parse trouble means "not found": the check fails closed.
 */
static int
crt_has_ip(const mbedtls_x509_crt *crt, const unsigned char *ip, size_t iplen)
{
	unsigned char	*p, *end, *ext_end, *gn_end;
	size_t		 len;
	int		 crit;
	mbedtls_x509_buf oid;

	if (crt->v3_ext.p == NULL || crt->v3_ext.len == 0)
		return (0);
	p = crt->v3_ext.p;
	end = p + crt->v3_ext.len;
	if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED |
	    MBEDTLS_ASN1_SEQUENCE) != 0)
		return (0);
	end = p + len;
	while (p < end) {
		if (mbedtls_asn1_get_tag(&p, end, &len,
		    MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
			return (0);
		ext_end = p + len;
		if (mbedtls_asn1_get_tag(&p, ext_end, &oid.len,
		    MBEDTLS_ASN1_OID) != 0)
			return (0);
		oid.p = p;
		p += oid.len;
		(void)mbedtls_asn1_get_bool(&p, ext_end, &crit);
		if (mbedtls_asn1_get_tag(&p, ext_end, &len,
		    MBEDTLS_ASN1_OCTET_STRING) != 0)
			return (0);
		if (MBEDTLS_OID_CMP(MBEDTLS_OID_SUBJECT_ALT_NAME, &oid) != 0) {
			p = ext_end;
			continue;
		}
		if (mbedtls_asn1_get_tag(&p, ext_end, &len,
		    MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
			return (0);
		gn_end = p + len;
		while (p < gn_end) {
			int tag = *p++;

			if (mbedtls_asn1_get_len(&p, gn_end, &len) != 0)
				return (0);
			if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) &&
			    len == iplen && memcmp(p, ip, iplen) == 0)
				return (1);
			p += len;
		}
		p = ext_end;
	}
	return (0);
}

/* A DNS name or CN spelled like the IP literal, as some tools write it. */
static int
crt_names_host(const mbedtls_x509_crt *crt, const char *host)
{
	const mbedtls_x509_sequence *s;
	const mbedtls_x509_name *n;
	size_t		 hl = strlen(host);

	for (s = &crt->subject_alt_names; s != NULL && s->buf.p != NULL;
	    s = s->next)
		if ((s->buf.tag & MBEDTLS_ASN1_TAG_VALUE_MASK) == 2 &&
		    s->buf.len == hl && memcmp(s->buf.p, host, hl) == 0)
			return (1);
	if (crt->ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME)
		return (0);
	for (n = &crt->subject; n != NULL; n = n->next)
		if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0 &&
		    n->val.len == hl && memcmp(n->val.p, host, hl) == 0)
			return (1);
	return (0);
}

/*
 * Called for each certificate of the chain, root first, only in a full
 * handshake (a resumed one sends none).  Pinned: the leaf's DER hash
 * decides alone, expiry and chain do not matter (the Gateway ships an
 * expired self-signed certificate).  CA: mbedTLS checked chain and dates;
 * an IP literal host is matched against iPAddress names here.
 */
void
tls_check_cert(struct tls_check *chk, const mbedtls_x509_crt *crt,
    int depth, uint32_t *flags)
{
	const struct tls *t = chk->tls;
	unsigned char	 h[32];

	chk->verified = 1;
	switch (t->mode) {
	case TLS_INSECURE:
		*flags = 0;
		break;
	case TLS_PIN:
		if (depth > 0) {
			*flags = 0;
			break;
		}
		if (mbedtls_sha256_ret(crt->raw.p, crt->raw.len, h, 0) == 0 &&
		    memcmp(h, t->pin, sizeof(h)) == 0)
			*flags = 0;
		else {
			chk->pin_mismatch = 1;
			memcpy(chk->got, h, sizeof(chk->got));
			*flags |= MBEDTLS_X509_BADCERT_NOT_TRUSTED;
		}
		break;
	case TLS_CA:
		if (depth == 0 && t->iplen > 0 && !crt_has_ip(crt, t->ip,
		    t->iplen) && !crt_names_host(crt, t->host))
			*flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
		break;
	}
	chk->vflags |= *flags;
}

static int
verify_cb(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	tls_check_cert(arg, crt, depth, flags);
	return (0);
}

/*
 * A refused certificate is its own error (502 gateway_certificate), and
 * its message names both fingerprints whole: the operator compares them
 * with `brokerd gateway-fingerprint` before changing the pin.
 */
enum upstream_error
tls_failure(const struct tls_check *chk, int ret, int sys_errno, char *msg,
    size_t msglen)
{
	char	 e[128], detail[300], got[96], want[96];
	size_t	 i;

	if (chk->pin_mismatch) {
		tls_hex_colon(chk->got, sizeof(chk->got), got, sizeof(got));
		tls_hex_colon(chk->tls->pin, sizeof(chk->tls->pin), want,
		    sizeof(want));
		snprintf(msg, msglen, "TLS handshake failed: the Gateway's "
		    "certificate SHA-256 %s does not match "
		    "gateway.tls.pin_sha256 %s", got, want);
		return (UPSTREAM_CERTIFICATE);
	}
	mbedtls_strerror(ret, e, sizeof(e));
	detail[0] = '\0';
	if (chk->vflags != 0) {
		if (mbedtls_x509_crt_verify_info(detail, sizeof(detail), "",
		    chk->vflags) < 0)
			detail[0] = '\0';
		for (i = 0; detail[i] != '\0'; i++)
			if (detail[i] == '\n')
				detail[i] = detail[i + 1] != '\0' ? ';' : '\0';
	} else if (sys_errno != 0)
		snprintf(detail, sizeof(detail), "%s", strerror(sys_errno));
	else if (ret == MBEDTLS_ERR_SSL_CONN_EOF || ret == 0)
		snprintf(detail, sizeof(detail), "the peer closed the "
		    "connection");
	if (detail[0] != '\0')
		snprintf(msg, msglen, "TLS handshake failed: %s (%s)", detail,
		    e);
	else
		snprintf(msg, msglen, "TLS handshake failed: %s", e);
	return (chk->vflags != 0 ? UPSTREAM_CERTIFICATE :
	    UPSTREAM_UNREACHABLE);
}

void
tls_ref(struct tls *t)
{
	t->refs++;
}

void
tls_unref(struct tls *t)
{
	if (t == NULL || --t->refs > 0)
		return;
	mbedtls_ssl_session_free(&t->session);
	mbedtls_ssl_config_free(&t->conf);
	mbedtls_x509_crt_free(&t->ca);
	free(t->host);
	free(t->port);
	free(t->ca_file);
	free(t);
}

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a == b);
	return (strcmp(a, b) == 0);
}

static enum tls_mode
conf_mode(const struct config *conf)
{
	return (conf->gw_has_pin ? TLS_PIN : conf->gw_ca_file != NULL ?
	    TLS_CA : TLS_INSECURE);
}

/*
 * Does the CA file still hold exactly the certificates t trusts?  A bundle
 * replaced in place (a CA rotated, or one no longer trusted) must count
 * from the reload, as nginx reads its files again on one.
 */
static int
tls_same_ca(const struct tls *t, const char *file)
{
	mbedtls_x509_crt	 now;
	const mbedtls_x509_crt	*a, *b;
	int			 same = 0;

	mbedtls_x509_crt_init(&now);
	if (mbedtls_x509_crt_parse_file(&now, file) >= 0) {
		for (a = &t->ca, b = &now; a != NULL && b != NULL &&
		    a->raw.len == b->raw.len && (a->raw.len == 0 ||
		    memcmp(a->raw.p, b->raw.p, a->raw.len) == 0);
		    a = a->next, b = b->next)
			;
		same = a == NULL && b == NULL;
	}
	mbedtls_x509_crt_free(&now);
	return (same);
}

int
tls_same(const struct tls *t, const struct config *conf)
{
	enum tls_mode	 mode = conf_mode(conf);

	if (mode != t->mode || !str_eq(t->host, conf->gw_host) ||
	    !str_eq(t->port, conf->gw_port))
		return (0);
	if (mode == TLS_PIN && memcmp(t->pin, conf->gw_pin, 32) != 0)
		return (0);
	if (mode == TLS_CA && (!str_eq(t->ca_file, conf->gw_ca_file) ||
	    !tls_same_ca(t, conf->gw_ca_file)))
		return (0);
	return (1);
}

/* Where the Gateway is, and that its certificate can be checked at all. */
static struct tls *
tls_alloc(const struct config *conf, char *err, size_t errlen)
{
	struct tls	*t;
	int		 n, v6;

	if (conf->gw_host == NULL || conf->gw_port == NULL) {
		snprintf(err, errlen, "gateway.url: no host or port");
		return (NULL);
	}
	if (!conf->gw_has_pin && conf->gw_ca_file == NULL &&
	    !conf->gw_insecure) {
		snprintf(err, errlen, "gateway.tls: the Gateway's certificate "
		    "cannot be checked: run `brokerd gateway-fingerprint` and "
		    "set gateway.tls.pin_sha256 to what it prints (or set "
		    "gateway.tls.ca_file, or gateway.tls.insecure: true)");
		return (NULL);
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		goto oom;
	t->refs = 1;
	mbedtls_ssl_config_init(&t->conf);
	mbedtls_x509_crt_init(&t->ca);
	mbedtls_ssl_session_init(&t->session);
	if ((t->host = strdup(conf->gw_host)) == NULL ||
	    (t->port = strdup(conf->gw_port)) == NULL)
		goto oom;
	v6 = strchr(t->host, ':') != NULL;
	n = snprintf(t->hostport, sizeof(t->hostport), "%s%s%s:%s",
	    v6 ? "[" : "", t->host, v6 ? "]" : "", t->port);
	if (n < 0 || (size_t)n >= sizeof(t->hostport)) {
		snprintf(err, errlen, "gateway.url: host name too long");
		goto fail;
	}
	t->iplen = ip_literal(t->host, t->ip);
	return (t);
oom:
	snprintf(err, errlen, "out of memory");
fail:
	tls_unref(t);
	return (NULL);
}

/*
 * Pinning wins over ca_file when both are set.  With a pin there is no
 * CA: an empty placeholder chain keeps mbedTLS from refusing
 * VERIFY_REQUIRED outright, the callback decides.
 */
static int
tls_set_mode(struct tls *t, const struct config *conf, char *err,
    size_t errlen)
{
	char	 e[128];
	int	 ret;

	t->mode = conf_mode(conf);
	switch (t->mode) {
	case TLS_PIN:
		memcpy(t->pin, conf->gw_pin, sizeof(t->pin));
		break;
	case TLS_CA:
		if ((t->ca_file = strdup(conf->gw_ca_file)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return (-1);
		}
		if ((ret = mbedtls_x509_crt_parse_file(&t->ca,
		    conf->gw_ca_file)) < 0 || t->ca.version == 0) {
			if (ret < 0)
				mbedtls_strerror(ret, e, sizeof(e));
			else
				snprintf(e, sizeof(e), "no certificate");
			snprintf(err, errlen, "gateway.tls.ca_file %s: %s",
			    conf->gw_ca_file, e);
			return (-1);
		}
		break;
	case TLS_INSECURE:
		/* OPTIONAL so that the callback runs and tells full from
		 * resumed handshakes; it accepts everything. */
		mbedtls_ssl_conf_authmode(&t->conf,
		    MBEDTLS_SSL_VERIFY_OPTIONAL);
		log_warn("gateway.tls.insecure is set: the Gateway's "
		    "certificate at %s is NOT verified; set "
		    "gateway.tls.pin_sha256 (brokerd gateway-fingerprint)",
		    t->hostport);
		return (0);
	}
	mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
	return (0);
}

/* One ssl_config per configuration. */
struct tls *
tls_new(const struct config *conf, struct tls_rng *rng, char *err,
    size_t errlen)
{
	struct tls	*t;
	char		 e[128];
	int		 ret;

	if ((t = tls_alloc(conf, err, errlen)) == NULL)
		return (NULL);
	if ((ret = tls_conf_base(&t->conf, rng)) != 0) {
		mbedtls_strerror(ret, e, sizeof(e));
		snprintf(err, errlen, "TLS setup: %s", e);
		goto fail;
	}
	if (tls_set_mode(t, conf, err, errlen) == -1)
		goto fail;
	return (t);
fail:
	tls_unref(t);
	return (NULL);
}

int
tls_start(struct tls *t, mbedtls_ssl_context *ssl, struct tls_check *chk,
    void *bio, mbedtls_ssl_send_t *send_cb, mbedtls_ssl_recv_t *recv_cb,
    char *err, size_t errlen)
{
	char	 e[128];
	int	 ret;

	memset(chk, 0, sizeof(*chk));
	chk->tls = t;
	if ((ret = mbedtls_ssl_setup(ssl, &t->conf)) != 0 ||
	    (ret = tls_set_hostname(ssl, t->host)) != 0) {
		mbedtls_strerror(ret, e, sizeof(e));
		snprintf(err, errlen, "TLS setup: %s", e);
		return (-1);
	}
	mbedtls_ssl_set_bio(ssl, bio, send_cb, recv_cb, NULL);
	mbedtls_ssl_set_verify(ssl, verify_cb, chk);
	if (t->has_session)
		(void)mbedtls_ssl_set_session(ssl, &t->session);
	return (0);
}

int
tls_trusted(const struct tls *t, const mbedtls_ssl_context *ssl)
{
	return (t->mode == TLS_INSECURE ||
	    mbedtls_ssl_get_verify_result(ssl) == 0);
}

/* Resumption: the session of the last full or resumed handshake. */
void
tls_save_session(struct tls *t, const mbedtls_ssl_context *ssl)
{
	tls_forget_session(t);
	t->has_session = mbedtls_ssl_get_session(ssl, &t->session) == 0;
}

void
tls_forget_session(struct tls *t)
{
	mbedtls_ssl_session_free(&t->session);
	mbedtls_ssl_session_init(&t->session);
	t->has_session = 0;
}
