/*
 * TLS 1.2 AEAD records with libcrypto, after mbedTLS's handshake.  The
 * nonce and the additional data are RFC 5246 6.2.3.3's: for AES-GCM
 * (RFC 5288) the 4-byte salt then an 8-byte explicit nonce carried in the
 * record (the record number, as mbedTLS and OpenSSL send it); for
 * ChaCha20-Poly1305 (RFC 7905) the 12-byte IV XOR the record number, no
 * explicit part.  Every record's number is counted here, never read from
 * the wire, so a replayed, dropped or reordered record fails its tag.
 */
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

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

static const EVP_CIPHER *
tlsrec_cipher(enum tlsrec_aead aead, size_t keylen, size_t ivlen)
{
	if (aead == TLSREC_AES_128_GCM && keylen == 16 && ivlen == 4)
		return (EVP_aes_128_gcm());
	if (aead == TLSREC_AES_256_GCM && keylen == 32 && ivlen == 4)
		return (EVP_aes_256_gcm());
	if (aead == TLSREC_CHACHA20_POLY1305 && keylen == 32 && ivlen == 12)
		return (EVP_chacha20_poly1305());
	return (NULL);
}

static int
tlsrec_key(struct tlsrec_dir *d, const EVP_CIPHER *c, const unsigned char *key,
    const unsigned char *iv, size_t ivlen, int enc)
{
	if ((d->ctx = EVP_CIPHER_CTX_new()) == NULL)
		return (-1);
	memset(d->iv, 0, sizeof(d->iv));
	memcpy(d->iv, iv, ivlen);
	return (EVP_CipherInit_ex(d->ctx, c, NULL, key, NULL, enc) == 1 ?
	    0 : -1);
}

int
tlsrec_init(struct tlsrec *r, enum tlsrec_aead aead, const unsigned char *kb,
    size_t maclen, size_t keylen, size_t ivlen, int client,
    uint64_t seq_out, uint64_t seq_in)
{
	const EVP_CIPHER	*c;
	const unsigned char	*ckey, *skey, *civ, *siv;

	memset(r, 0, sizeof(*r));
	if ((c = tlsrec_cipher(aead, keylen, ivlen)) == NULL)
		return (-1);
	/* No openssl.cnf: nothing in it is for a bare cipher. */
	(void)OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
	r->aead = aead;
	r->explicit_len = aead == TLSREC_CHACHA20_POLY1305 ? 0 : 8;
	ckey = kb + 2 * maclen;
	skey = ckey + keylen;
	civ = skey + keylen;
	siv = civ + ivlen;
	r->out.seq = seq_out;
	r->in.seq = seq_in;
	if (tlsrec_key(&r->out, c, client ? ckey : skey, client ? civ : siv,
	    ivlen, 1) == -1 ||
	    tlsrec_key(&r->in, c, client ? skey : ckey, client ? siv : civ,
	    ivlen, 0) == -1) {
		tlsrec_free(r);
		return (-1);
	}
	return (0);
}

void
tlsrec_free(struct tlsrec *r)
{
	EVP_CIPHER_CTX_free(r->out.ctx);
	EVP_CIPHER_CTX_free(r->in.ctx);
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

int
tlsrec_seal(struct tlsrec *r, enum tlsrec_type type, const unsigned char *p,
    size_t len, unsigned char *out)
{
	unsigned char	 nonce[12], aad[13], *body;
	size_t		 frag;
	int		 n, m;

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
	if (EVP_EncryptInit_ex(r->out.ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(r->out.ctx, NULL, &n, aad, sizeof(aad)) != 1 ||
	    EVP_EncryptUpdate(r->out.ctx, body, &n, p, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(r->out.ctx, body + n, &m) != 1 ||
	    (size_t)n + (size_t)m != len ||
	    EVP_CIPHER_CTX_ctrl(r->out.ctx, EVP_CTRL_AEAD_GET_TAG, TLSREC_TAG,
	    body + len) != 1)
		return (-1);
	r->out.seq++;
	return (0);
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
	int		 a, b;

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
	if (EVP_DecryptInit_ex(r->in.ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_DecryptUpdate(r->in.ctx, NULL, &a, aad, sizeof(aad)) != 1 ||
	    EVP_DecryptUpdate(r->in.ctx, body, &a, body, (int)n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(r->in.ctx, EVP_CTRL_AEAD_SET_TAG, TLSREC_TAG,
	    body + n) != 1 ||
	    EVP_DecryptFinal_ex(r->in.ctx, body + a, &b) != 1 ||
	    (size_t)a + (size_t)b != n)
		return (-1);
	r->in.seq++;
	*type = (enum tlsrec_type)rec[0];
	*plain = body;
	*plain_len = n;
	return (0);
}
