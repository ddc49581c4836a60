/*
 * TLS 1.2 AEAD records after mbedTLS's handshake.  The nonce and the
 * additional data are RFC 5246 6.2.3.3's: for AES-GCM (RFC 5288) the
 * 4-byte salt then an 8-byte explicit nonce carried in the record (the
 * record number, as mbedTLS and OpenSSL send it); for ChaCha20-Poly1305
 * (RFC 7905) the 12-byte IV XOR the record number, no explicit part.
 * Every record's number is counted here, never read from the wire, so a
 * replayed, dropped or reordered record fails its tag.
 */
#include <stdint.h>
#include <string.h>

#include "tlsrec.h"

#define TLSREC_TAG	16

static void
tlsrec_put64(unsigned char *p, uint64_t v)
{
	int	 i;

	for (i = 7; i >= 0; i--) {
		p[i] = (unsigned char)v;
		v >>= 8;
	}
}

/* The cipher that seals aead with keys of these lengths, or TLSREC_NONE. */
static enum tlsrec_cipher
tlsrec_cipher(enum tlsrec_aead aead, enum tlsrec_engine engine,
    size_t keylen, size_t ivlen)
{
	if ((aead == TLSREC_AES_128_GCM && keylen == 16 && ivlen == 4) ||
	    (aead == TLSREC_AES_256_GCM && keylen == 32 && ivlen == 4))
		return (engine == TLSREC_FASTEST && aesgcm_supported() ?
		    TLSREC_AESNI : TLSREC_GCM);
	if (aead == TLSREC_CHACHA20_POLY1305 && keylen == 32 && ivlen == 12)
		return (TLSREC_CHACHAPOLY);
	return (TLSREC_NONE);
}

static int
tlsrec_key(struct tlsrec_dir *d, enum tlsrec_cipher cipher,
    const unsigned char *key, size_t keylen, const unsigned char *iv,
    size_t ivlen)
{
	memset(d->iv, 0, sizeof(d->iv));
	memcpy(d->iv, iv, ivlen);
	switch (cipher) {
	case TLSREC_AESNI:
		return (aesgcm_init(&d->key.aesni, key, keylen));
	case TLSREC_GCM:
		mbedtls_gcm_init(&d->key.gcm);
		return (mbedtls_gcm_setkey(&d->key.gcm, MBEDTLS_CIPHER_ID_AES,
		    key, (unsigned int)keylen * 8) == 0 ? 0 : -1);
	case TLSREC_CHACHAPOLY:
		mbedtls_chachapoly_init(&d->key.chachapoly);
		return (mbedtls_chachapoly_setkey(&d->key.chachapoly, key) == 0 ?
		    0 : -1);
	default:
		return (-1);
	}
}

static void
tlsrec_unkey(struct tlsrec_dir *d, enum tlsrec_cipher cipher)
{
	switch (cipher) {
	case TLSREC_AESNI:
		aesgcm_clear(&d->key.aesni);
		break;
	case TLSREC_GCM:
		mbedtls_gcm_free(&d->key.gcm);
		break;
	case TLSREC_CHACHAPOLY:
		mbedtls_chachapoly_free(&d->key.chachapoly);
		break;
	default:
		break;
	}
	explicit_bzero(d, sizeof(*d));
}

int
tlsrec_init(struct tlsrec *r, enum tlsrec_aead aead,
    enum tlsrec_engine engine, const unsigned char *kb, size_t maclen,
    size_t keylen, size_t ivlen, int client, uint64_t seq_out,
    uint64_t seq_in)
{
	const unsigned char	*ckey, *skey, *civ, *siv;

	memset(r, 0, sizeof(*r));
	if ((r->cipher = tlsrec_cipher(aead, engine, keylen, ivlen)) ==
	    TLSREC_NONE)
		return (-1);
	r->explicit_len = aead == TLSREC_CHACHA20_POLY1305 ? 0 : 8;
	ckey = kb + 2 * maclen;
	skey = ckey + keylen;
	civ = skey + keylen;
	siv = civ + ivlen;
	r->out.seq = seq_out;
	r->in.seq = seq_in;
	if (tlsrec_key(&r->out, r->cipher, client ? ckey : skey, keylen,
	    client ? civ : siv, ivlen) == -1 ||
	    tlsrec_key(&r->in, r->cipher, client ? skey : ckey, keylen,
	    client ? siv : civ, ivlen) == -1) {
		tlsrec_free(r);
		return (-1);
	}
	return (0);
}

void
tlsrec_free(struct tlsrec *r)
{
	tlsrec_unkey(&r->out, r->cipher);
	tlsrec_unkey(&r->in, r->cipher);
	memset(r, 0, sizeof(*r));
}

size_t
tlsrec_sealed_len(const struct tlsrec *r, size_t len)
{
	return (TLSREC_HEAD + r->explicit_len + len + TLSREC_TAG);
}

/* The 12-byte nonce of record seq; GCM's explicit part is seq itself. */
static void
tlsrec_nonce(const struct tlsrec *r, const struct tlsrec_dir *d, uint64_t seq,
    unsigned char nonce[12])
{
	unsigned char	 s[8];
	int		 i;

	tlsrec_put64(s, seq);
	memcpy(nonce, d->iv, 12);
	if (r->explicit_len > 0)
		memcpy(nonce + 4, s, 8);
	else
		for (i = 0; i < 8; i++)
			nonce[4 + i] ^= s[i];
}

/* seq_num + TLSCompressed.type + version + length (of the plain bytes). */
static void
tlsrec_aad(unsigned char aad[13], uint64_t seq, int type, size_t len)
{
	tlsrec_put64(aad, seq);
	aad[8] = (unsigned char)type;
	aad[9] = 3;
	aad[10] = 3;
	aad[11] = (unsigned char)(len >> 8);
	aad[12] = (unsigned char)len;
}

/* Encrypt len bytes at p to body, the tag after them. */
static int
tlsrec_seal_body(struct tlsrec *r, const unsigned char *nonce,
    const unsigned char *aad, const unsigned char *p, size_t len,
    unsigned char *body)
{
	switch (r->cipher) {
	case TLSREC_AESNI:
		return (aesgcm_seal(&r->out.key.aesni, nonce, aad, 13, p, len,
		    body, body + len));
	case TLSREC_GCM:
		return (mbedtls_gcm_crypt_and_tag(&r->out.key.gcm,
		    MBEDTLS_GCM_ENCRYPT, len, nonce, 12, aad, 13, p, body,
		    TLSREC_TAG, body + len) == 0 ? 0 : -1);
	case TLSREC_CHACHAPOLY:
		return (mbedtls_chachapoly_encrypt_and_tag(&r->out.key.chachapoly,
		    len, nonce, aad, 13, p, body, body + len) == 0 ? 0 : -1);
	default:
		return (-1);
	}
}

int
tlsrec_seal(struct tlsrec *r, enum tlsrec_type type, const unsigned char *p,
    size_t len, unsigned char *out)
{
	unsigned char	 nonce[12], aad[13], *body;
	size_t		 frag;

	/* 2^64 records would reuse a nonce: the connection ends first. */
	if (len > TLSREC_MAX_PLAIN || r->out.seq == UINT64_MAX)
		return (-1);
	frag = r->explicit_len + len + TLSREC_TAG;
	out[0] = (unsigned char)type;
	out[1] = 3;
	out[2] = 3;
	out[3] = (unsigned char)(frag >> 8);
	out[4] = (unsigned char)frag;
	tlsrec_nonce(r, &r->out, r->out.seq, nonce);
	if (r->explicit_len > 0)
		memcpy(out + TLSREC_HEAD, nonce + 4, 8);
	body = out + TLSREC_HEAD + r->explicit_len;
	tlsrec_aad(aad, r->out.seq, type, len);
	if (tlsrec_seal_body(r, nonce, aad, p, len, body) == -1)
		return (-1);
	r->out.seq++;
	return (0);
}

/*
 * Check and decrypt the n bytes at body, the tag after them: where the
 * plain bytes are, or NULL.  mbedTLS's GCM decrypts into the place of
 * the 8-byte explicit nonce (already read): its output must not be its
 * input, only at least 8 bytes before it.
 */
static unsigned char *
tlsrec_open_body(struct tlsrec *r, const unsigned char *nonce,
    const unsigned char *aad, unsigned char *body, size_t n)
{
	switch (r->cipher) {
	case TLSREC_AESNI:
		return (aesgcm_open(&r->in.key.aesni, nonce, aad, 13, body, n,
		    body + n, body) == 0 ? body : NULL);
	case TLSREC_GCM:
		return (mbedtls_gcm_auth_decrypt(&r->in.key.gcm, n, nonce, 12,
		    aad, 13, body + n, TLSREC_TAG, body, body - 8) == 0 ?
		    body - 8 : NULL);
	case TLSREC_CHACHAPOLY:
		return (mbedtls_chachapoly_auth_decrypt(&r->in.key.chachapoly,
		    n, nonce, aad, 13, body + n, body, body) == 0 ? body : NULL);
	default:
		return (NULL);
	}
}

long
tlsrec_length(const struct tlsrec *r, const unsigned char *h)
{
	size_t	 frag;

	if (h[1] != 3 || h[2] != 3)
		return (-1);
	frag = (size_t)h[3] << 8 | h[4];
	if (frag < r->explicit_len + TLSREC_TAG || frag > TLSREC_MAX_FRAGMENT)
		return (-1);
	return ((long)(TLSREC_HEAD + frag));
}

int
tlsrec_open(struct tlsrec *r, unsigned char *rec, size_t len,
    enum tlsrec_type *type, unsigned char **plain, size_t *plain_len)
{
	unsigned char	 nonce[12], aad[13], *body;
	size_t		 n;

	if (len < TLSREC_HEAD || tlsrec_length(r, rec) != (long)len ||
	    r->in.seq == UINT64_MAX)
		return (-1);
	n = len - TLSREC_HEAD - r->explicit_len - TLSREC_TAG;
	if (n > TLSREC_MAX_PLAIN)
		return (-1);
	tlsrec_nonce(r, &r->in, r->in.seq, nonce);
	if (r->explicit_len > 0)
		memcpy(nonce + 4, rec + TLSREC_HEAD, 8);
	body = rec + TLSREC_HEAD + r->explicit_len;
	tlsrec_aad(aad, r->in.seq, rec[0], n);
	if ((body = tlsrec_open_body(r, nonce, aad, body, n)) == NULL)
		return (-1);
	r->in.seq++;
	*type = (enum tlsrec_type)rec[0];
	*plain = body;
	*plain_len = n;
	return (0);
}
