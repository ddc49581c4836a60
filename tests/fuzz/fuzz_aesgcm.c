/*
 * libFuzzer: aesgcm.c against mbedTLS's GCM.  The first byte picks the
 * key size, whether aesgcm.c seals in place, and the additional data's
 * length (0-63); the next bytes are the key and the nonce, the rest the
 * plain text (up to a record's 16 KiB).  Sealed by both, the ciphertext and tag are the same; opened
 * in place it is the plain text again; with the fuzzer's bytes taken as
 * a ciphertext and a tag instead, aesgcm.c accepts them exactly when
 * mbedTLS does, and then with the same plain text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/gcm.h>

#include "aesgcm.h"

static unsigned char	 c1[16384], c2[16384], o1[16384], o2[16384];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mbedtls_gcm_context	 m;
	struct aesgcm		 g;
	const unsigned char	*key, *nonce, *aad, *p, *tag;
	unsigned char		 t1[16], t2[16];
	size_t			 keylen, aadlen, len;
	int			 r1, r2;

	if (size < 1 + 32 + 12 || !aesgcm_supported())
		return (0);
	keylen = data[0] & 1 ? 32 : 16;
	aadlen = (size_t)(data[0] >> 2);
	key = data + 1;
	nonce = key + 32;
	aad = nonce + 12;
	if (size < 1 + 32 + 12 + aadlen)
		return (0);
	p = aad + aadlen;
	len = size - (size_t)(p - data);
	if (len > sizeof(c1))
		len = sizeof(c1);
	mbedtls_gcm_init(&m);
	if (mbedtls_gcm_setkey(&m, MBEDTLS_CIPHER_ID_AES, key,
	    (unsigned int)keylen * 8) != 0 || aesgcm_init(&g, key, keylen) != 0)
		abort();
	if (data[0] & 2)
		memcpy(c2, p, len);
	if (mbedtls_gcm_crypt_and_tag(&m, MBEDTLS_GCM_ENCRYPT, len, nonce, 12,
	    aad, aadlen, p, c1, 16, t1) != 0 ||
	    aesgcm_seal(&g, nonce, aad, aadlen, data[0] & 2 ? c2 : p, len, c2,
	    t2) != 0 ||
	    memcmp(c1, c2, len) != 0 || memcmp(t1, t2, 16) != 0)
		abort();
	if (aesgcm_open(&g, nonce, aad, aadlen, c2, len, t2, c2) != 0 ||
	    memcmp(c2, p, len) != 0)
		abort();
	/* The fuzzer's bytes as a ciphertext, its last 16 the tag. */
	if (len >= 16) {
		tag = p + len - 16;
		r1 = mbedtls_gcm_auth_decrypt(&m, len - 16, nonce, 12, aad,
		    aadlen, tag, 16, p, o1);
		r2 = aesgcm_open(&g, nonce, aad, aadlen, p, len - 16, tag, o2);
		if ((r1 == 0) != (r2 == 0) ||
		    (r1 == 0 && memcmp(o1, o2, len - 16) != 0))
			abort();
	}
	mbedtls_gcm_free(&m);
	aesgcm_clear(&g);
	return (0);
}
