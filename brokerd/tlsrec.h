/*
 * tlsrec.c: TLS 1.2 application records after mbedTLS's handshake
 * (AES-GCM, ChaCha20-Poly1305; RFC 5246 6.2.3.3, RFC 5288, RFC 7905).
 * mbedTLS 2.28 makes the handshake, checks the certificate and resumes
 * sessions; its AES-GCM records run at about 220 MB/s here, so AES-GCM
 * is sealed by aesgcm.c (AES-NI, 2.5 GB/s and over) where the CPU has
 * it, by mbedTLS's GCM elsewhere; ChaCha20-Poly1305 by mbedTLS's.
 * Pure: no sockets; tlsio.c frames the records on the wire.
 */
#ifndef TLSREC_H
#define TLSREC_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/chachapoly.h>
#include <mbedtls/gcm.h>

#include "aesgcm.h"

#define TLSREC_HEAD		5
#define TLSREC_MAX_PLAIN	16384
/* RFC 5246 6.2.3: a TLSCiphertext's fragment is at most 2^14 + 2048. */
#define TLSREC_MAX_FRAGMENT	(TLSREC_MAX_PLAIN + 2048)
#define TLSREC_MAX_OVERHEAD	(8 + 16)	/* GCM's explicit nonce, tag */

enum tlsrec_type {
	TLSREC_CHANGE_CIPHER_SPEC = 20,
	TLSREC_ALERT = 21,
	TLSREC_HANDSHAKE = 22,
	TLSREC_APPLICATION_DATA = 23
};

enum tlsrec_aead {
	TLSREC_AES_128_GCM = 1,
	TLSREC_AES_256_GCM,
	TLSREC_CHACHA20_POLY1305
};

/* Who seals: the fastest this CPU can, or mbedTLS's own ciphers. */
enum tlsrec_engine {
	TLSREC_FASTEST,
	TLSREC_MBEDTLS
};

struct tlsrec_dir {
	union {
		struct aesgcm			aesni;
		mbedtls_gcm_context		gcm;
		mbedtls_chachapoly_context	chachapoly;
	}		 key;		/* as tlsrec's cipher says */
	unsigned char	 iv[12];	/* GCM: the 4-byte salt first */
	uint64_t	 seq;		/* of the next record */
};

enum tlsrec_cipher {
	TLSREC_NONE,
	TLSREC_AESNI,
	TLSREC_GCM,
	TLSREC_CHACHAPOLY
};

struct tlsrec {
	enum tlsrec_cipher	 cipher;	/* which key the dirs hold */
	size_t			 explicit_len;	/* 8 for GCM, 0 for ChaCha */
	struct tlsrec_dir	 out;
	struct tlsrec_dir	 in;
};

/*
 * Key both directions from an RFC 5246 6.3 key block (as mbedTLS's key
 * export gives it: client MAC, server MAC, client key, server key, client
 * IV, server IV).  client: 1 when this side is the client.  The record
 * numbers are those of the next record each way.  0, or -1 (an unknown
 * length, or mbedTLS refused).
 */
int	 tlsrec_init(struct tlsrec *, enum tlsrec_aead, enum tlsrec_engine,
	    const unsigned char *kb, size_t maclen, size_t keylen, size_t ivlen,
	    int client, uint64_t seq_out, uint64_t seq_in);
void	 tlsrec_free(struct tlsrec *);
/* Bytes a record of len plain bytes takes, head included. */
size_t	 tlsrec_sealed_len(const struct tlsrec *, size_t len);
/*
 * Write one record of type holding p[0..len) (len <= TLSREC_MAX_PLAIN)
 * at out (tlsrec_sealed_len bytes).  0, or -1.
 */
int	 tlsrec_seal(struct tlsrec *, enum tlsrec_type, const unsigned char *p,
	    size_t len, unsigned char *out);
/*
 * The length of the record whose head is at h (TLSREC_HEAD bytes), or -1
 * when the head is no TLS 1.2 record's or its length is out of bounds.
 */
long	 tlsrec_length(const struct tlsrec *, const unsigned char *h);
/*
 * Open the whole record at rec (tlsrec_length bytes) in place: its type,
 * and where its plain bytes now are.  0, or -1 when it is not authentic
 * (a forgery, a replay, a record out of order) or too long.
 */
int	 tlsrec_open(struct tlsrec *, unsigned char *rec, size_t len,
	    enum tlsrec_type *type, unsigned char **plain, size_t *plain_len);

#endif /* TLSREC_H */
