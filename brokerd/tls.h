/*
 * tls.c: the mbedTLS side of talking to the Gateway.  Settings per
 * configuration (pin, CA file or insecure), the verification decision,
 * why a handshake failed, session resumption, fingerprints.  Kept out of
 * brokerd.h so that only the files holding TLS see mbedTLS's types.
 */
#ifndef BROKERD_TLS_H
#define BROKERD_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "brokerd.h"

enum tls_mode {
	TLS_PIN = 1,
	TLS_CA,
	TLS_INSECURE
};

/*
 * The TLS settings of one configuration.  Connections hold a reference,
 * so a reload can replace it while older connections finish their request.
 */
struct tls {
	mbedtls_ssl_config	 conf;
	mbedtls_x509_crt	 ca;	/* ca_file, or an empty placeholder */
	enum tls_mode		 mode;
	unsigned char		 pin[32];
	char			*host;	/* no brackets */
	char			*port;
	char			*ca_file;
	char			 hostport[300];	/* for messages, Host: */
	unsigned char		 ip[16];
	size_t			 iplen;	/* > 0: host is an IP literal */
	mbedtls_ssl_session	 session;	/* offered to new connections */
	int			 has_session;
	unsigned		 refs;
};

/* What the certificate callback saw during one handshake. */
struct tls_check {
	const struct tls	*tls;
	int			 verified;	/* a certificate came: full hs */
	int			 pin_mismatch;
	unsigned char		 got[32];	/* SHA-256 of a refused leaf */
	uint32_t		 vflags;	/* X.509 flags left */
};

/* The random generator every TLS context of a process draws from. */
struct tls_rng {
	mbedtls_entropy_context	 entropy;
	mbedtls_ctr_drbg_context drbg;
};

int		 tls_rng_init(struct tls_rng *, const char *pers, char *err,
		    size_t errlen);
void		 tls_rng_free(struct tls_rng *);
/* What every client context of brokerd's has: TLS 1.2 up, no renegotiation. */
int		 tls_conf_base(mbedtls_ssl_config *, struct tls_rng *);
/* SNI and name check for a DNS name; nothing for an IP literal. */
int		 tls_set_hostname(mbedtls_ssl_context *, const char *host);
struct tls	*tls_new(const struct config *, struct tls_rng *, char *err,
		    size_t errlen);
void		 tls_ref(struct tls *);
void		 tls_unref(struct tls *);
/*
 * 1 when conf asks for exactly the settings t holds (a CA file is read
 * again: the same certificates, not only the same path).
 */
int		 tls_same(const struct tls *, const struct config *);
/*
 * A connection's context under t: SNI, the bio, the verification callback
 * writing to chk, a saved session offered.  -1 with err set.
 */
int		 tls_start(struct tls *, mbedtls_ssl_context *,
		    struct tls_check *, void *bio, mbedtls_ssl_send_t *,
		    mbedtls_ssl_recv_t *, char *err, size_t errlen);
/* A handshake completed: its result is trusted under t's mode. */
int		 tls_trusted(const struct tls *, const mbedtls_ssl_context *);
void		 tls_save_session(struct tls *, const mbedtls_ssl_context *);
void		 tls_forget_session(struct tls *);
/*
 * The decision for one certificate of the chain (depth 0 is the leaf),
 * as the verification callback makes it; *flags are mbedTLS's, cleared or
 * added to.  Pure: tests/unit/test_tls.c calls it with parsed DER.
 */
void		 tls_check_cert(struct tls_check *, const mbedtls_x509_crt *,
		    int depth, uint32_t *flags);
/*
 * Why a handshake failed, for errmsg and logs: ret is mbedTLS's code,
 * sys_errno what the socket said.  Returns UPSTREAM_CERTIFICATE when the
 * certificate was refused, else UPSTREAM_UNREACHABLE.
 */
enum upstream_error tls_failure(const struct tls_check *, int ret,
		    int sys_errno, char *msg, size_t msglen);
/* Colon hex of 32 bytes, upper case: "AB:CD:..." (96 bytes with NUL). */
void		 tls_hex_colon(const unsigned char *, size_t, char *, size_t);
/* The SHA-256 of crt's DER in colon hex; -1 on failure. */
int		 tls_fingerprint(const mbedtls_x509_crt *, char *, size_t);

#endif
