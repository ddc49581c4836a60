/*
 * aesgcm.c: the GCM specification's test cases (McGrew and Viega, "The
 * Galois/Counter Mode of Operation", appendix B: 1-4 and 13-16), each
 * also checked here against mbedTLS's GCM; then, against mbedTLS's GCM,
 * ciphertext and tag for every length from 0 to 300 and a whole record,
 * additional data of 0 to 199 bytes, both key sizes, in place or not; every changed bit refused with the
 * output wiped; keys of other lengths and a cleared key refused.
 * Skipped on a CPU without AES-NI (tlsrec.c then never calls it).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <mbedtls/gcm.h>

#include "aesgcm.h"

static void
need_cpu(void)
{
	if (!aesgcm_supported())
		cr_skip_test("no AES-NI and PCLMULQDQ on this CPU");
}

TestSuite(aesgcm, .init = need_cpu);

static size_t
unhex(const char *s, unsigned char *out)
{
	size_t		 n;
	unsigned int	 b;

	for (n = 0; s[2 * n] != '\0'; n++) {
		cr_assert_eq(sscanf(s + 2 * n, "%2x", &b), 1);
		out[n] = (unsigned char)b;
	}
	return (n);
}

/* mbedTLS's GCM over the same input: its ciphertext and tag. */
static void
reference(const unsigned char *key, size_t keylen, const unsigned char *nonce,
    const unsigned char *aad, size_t aadlen, const unsigned char *p,
    size_t len, unsigned char *c, unsigned char *tag)
{
	mbedtls_gcm_context	 m;

	mbedtls_gcm_init(&m);
	cr_assert_eq(mbedtls_gcm_setkey(&m, MBEDTLS_CIPHER_ID_AES, key,
	    (unsigned int)keylen * 8), 0);
	cr_assert_eq(mbedtls_gcm_crypt_and_tag(&m, MBEDTLS_GCM_ENCRYPT, len,
	    nonce, AESGCM_NONCE, aad, aadlen, p, c, AESGCM_TAG, tag), 0);
	mbedtls_gcm_free(&m);
}

static const char *P3 =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
static const char *P4 =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";

static const struct {
	const char	*name, *key, *nonce, *aad, *p, *c, *tag;
} cases[] = {
	{ "1", "00000000000000000000000000000000", "000000000000000000000000",
	  "", "", "", "58e2fccefa7e3061367f1d57a4e7455a" },
	{ "2", "00000000000000000000000000000000", "000000000000000000000000",
	  "", "00000000000000000000000000000000",
	  "0388dace60b6a392f328c2b971b2fe78",
	  "ab6e47d42cec13bdf53a67b21257bddf" },
	{ "3", "feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
	  "", NULL,
	  "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
	  "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
	  "4d5c2af327cd64a62cf35abd2ba6fab4" },
	{ "4", "feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
	  "feedfacedeadbeeffeedfacedeadbeefabaddad2", NULL,
	  "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
	  "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
	  "5bc94fbc3221a5db94fae95ae7121a47" },
	{ "13", "0000000000000000000000000000000000000000000000000000000000000000",
	  "000000000000000000000000", "", "", "",
	  "530f8afbc74536b9a963b4f1c4cb738b" },
	{ "14", "0000000000000000000000000000000000000000000000000000000000000000",
	  "000000000000000000000000", "", "00000000000000000000000000000000",
	  "cea7403d4d606b6e074ec5d3baf39d18",
	  "d0d1c8a799996bf0265b98b5d48ab919" },
	{ "15", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
	  "cafebabefacedbaddecaf888", "", NULL,
	  "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	  "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
	  "b094dac5d93471bdec1a502270e3cc6c" },
	{ "16", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
	  "cafebabefacedbaddecaf888",
	  "feedfacedeadbeeffeedfacedeadbeefabaddad2", NULL,
	  "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	  "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
	  "76fc6ece0f4e1768cddf8853bb2d551b" },
};

Test(aesgcm, the_specifications_test_cases)
{
	struct aesgcm	 g;
	unsigned char	 key[32], nonce[12], aad[20], p[64], c[64], tag[16];
	unsigned char	 out[64], t[16], rc[64], rt[16];
	size_t		 i, kl, al, pl, cl;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kl = unhex(cases[i].key, key);
		cr_assert_eq(unhex(cases[i].nonce, nonce), 12);
		al = unhex(cases[i].aad, aad);
		pl = unhex(cases[i].p != NULL ? cases[i].p :
		    cases[i].aad[0] != '\0' ? P4 : P3, p);
		cl = unhex(cases[i].c, c);
		cr_assert_eq(unhex(cases[i].tag, tag), 16);
		cr_assert_eq(pl, cl, "case %s", cases[i].name);
		reference(key, kl, nonce, aad, al, p, pl, rc, rt);
		cr_assert_arr_eq(rc, c, cl, "case %s: mbedTLS", cases[i].name);
		cr_assert_arr_eq(rt, tag, 16, "case %s: mbedTLS", cases[i].name);

		cr_assert_eq(aesgcm_init(&g, key, kl), 0);
		cr_assert_eq(aesgcm_seal(&g, nonce, aad, al, p, pl, out, t), 0);
		cr_assert_arr_eq(out, c, cl, "case %s", cases[i].name);
		cr_assert_arr_eq(t, tag, 16, "case %s", cases[i].name);
		memset(out, 0xee, sizeof(out));
		cr_assert_eq(aesgcm_open(&g, nonce, aad, al, c, cl, tag, out),
		    0, "case %s", cases[i].name);
		cr_assert_arr_eq(out, p, pl, "case %s", cases[i].name);
		aesgcm_clear(&g);
	}
}

static uint64_t	 rs = 0x9e3779b97f4a7c15ULL;

static void
fill(unsigned char *p, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		rs ^= rs << 13;
		rs ^= rs >> 7;
		rs ^= rs << 17;
		p[i] = (unsigned char)rs;
	}
}

static unsigned char	 pt[16384 + 64], ct[16384 + 64], rct[16384 + 64];
static unsigned char	 buf[16384 + 64];

static void
same_as_mbedtls(size_t keylen, size_t aadlen, size_t len)
{
	struct aesgcm	 g;
	unsigned char	 key[32], nonce[12], aad[200], tag[16], rtag[16];

	fill(key, sizeof(key));
	fill(nonce, sizeof(nonce));
	fill(aad, aadlen);
	fill(pt, len);
	reference(key, keylen, nonce, aad, aadlen, pt, len, rct, rtag);
	cr_assert_eq(aesgcm_init(&g, key, keylen), 0);
	cr_assert_eq(aesgcm_seal(&g, nonce, aad, aadlen, pt, len, ct, tag), 0);
	cr_assert_arr_eq(ct, rct, len, "key %zu aad %zu len %zu", keylen,
	    aadlen, len);
	cr_assert_arr_eq(tag, rtag, 16, "key %zu aad %zu len %zu", keylen,
	    aadlen, len);
	/* in place, both ways */
	memcpy(buf, pt, len);
	cr_assert_eq(aesgcm_seal(&g, nonce, aad, aadlen, buf, len, buf, tag),
	    0);
	cr_assert_arr_eq(buf, rct, len);
	cr_assert_eq(aesgcm_open(&g, nonce, aad, aadlen, buf, len, tag, buf),
	    0, "len %zu", len);
	cr_assert_arr_eq(buf, pt, len);
	aesgcm_clear(&g);
}

Test(aesgcm, every_length_as_mbedtls_seals_it)
{
	size_t	 len;

	for (len = 0; len <= 300; len++) {
		same_as_mbedtls(16, len % 41, len);
		same_as_mbedtls(32, 13, len);
		same_as_mbedtls(len & 1 ? 32 : 16, len % 200, len % 7);
	}
	same_as_mbedtls(16, 13, 16384);
	same_as_mbedtls(32, 13, 16384);
	same_as_mbedtls(16, 0, 16384 - 1);
}

Test(aesgcm, any_changed_bit_is_refused_and_the_output_wiped)
{
	struct aesgcm	 g;
	unsigned char	 key[16], nonce[12], aad[13], tag[16], t2[16];
	unsigned char	 n2[12], a2[13];
	size_t		 len = 100, bit;

	fill(key, sizeof(key));
	fill(nonce, sizeof(nonce));
	fill(aad, sizeof(aad));
	fill(pt, len);
	cr_assert_eq(aesgcm_init(&g, key, sizeof(key)), 0);
	cr_assert_eq(aesgcm_seal(&g, nonce, aad, sizeof(aad), pt, len, ct,
	    tag), 0);
	for (bit = 0; bit < len * 8; bit += 7) {
		memcpy(buf, ct, len);
		buf[bit / 8] ^= (unsigned char)(1 << (bit % 8));
		cr_assert_eq(aesgcm_open(&g, nonce, aad, sizeof(aad), buf, len,
		    tag, buf), -1, "ciphertext bit %zu", bit);
		cr_assert_eq(buf[0] | buf[len / 2] | buf[len - 1], 0);
	}
	for (bit = 0; bit < 128; bit++) {
		memcpy(t2, tag, sizeof(t2));
		t2[bit / 8] ^= (unsigned char)(1 << (bit % 8));
		cr_assert_eq(aesgcm_open(&g, nonce, aad, sizeof(aad), ct, len,
		    t2, buf), -1, "tag bit %zu", bit);
	}
	for (bit = 0; bit < sizeof(aad) * 8; bit++) {
		memcpy(a2, aad, sizeof(a2));
		a2[bit / 8] ^= (unsigned char)(1 << (bit % 8));
		cr_assert_eq(aesgcm_open(&g, nonce, a2, sizeof(a2), ct, len,
		    tag, buf), -1, "aad bit %zu", bit);
	}
	for (bit = 0; bit < sizeof(nonce) * 8; bit++) {
		memcpy(n2, nonce, sizeof(n2));
		n2[bit / 8] ^= (unsigned char)(1 << (bit % 8));
		cr_assert_eq(aesgcm_open(&g, n2, aad, sizeof(aad), ct, len,
		    tag, buf), -1, "nonce bit %zu", bit);
	}
	/* shorter, and the additional data one byte shorter */
	cr_assert_eq(aesgcm_open(&g, nonce, aad, sizeof(aad), ct, len - 1,
	    tag, buf), -1);
	cr_assert_eq(aesgcm_open(&g, nonce, aad, sizeof(aad) - 1, ct, len,
	    tag, buf), -1);
	cr_assert_eq(aesgcm_open(&g, nonce, aad, sizeof(aad), ct, len, tag,
	    buf), 0);
	cr_assert_arr_eq(buf, pt, len);
	aesgcm_clear(&g);
}

Test(aesgcm, other_key_lengths_and_a_cleared_key_are_refused)
{
	struct aesgcm	 g;
	unsigned char	 key[32] = { 0 }, nonce[12] = { 0 }, tag[16];

	cr_assert_eq(aesgcm_init(&g, key, 24), -1, "AES-192: no TLS suite");
	cr_assert_eq(aesgcm_init(&g, key, 0), -1);
	cr_assert_eq(aesgcm_init(&g, key, 33), -1);
	cr_assert_eq(aesgcm_seal(&g, nonce, NULL, 0, pt, 16, ct, tag), -1);
	cr_assert_eq(aesgcm_init(&g, key, 16), 0);
	aesgcm_clear(&g);
	cr_assert_eq(aesgcm_seal(&g, nonce, NULL, 0, pt, 16, ct, tag), -1);
	memset(buf, 0xee, 16);
	cr_assert_eq(aesgcm_open(&g, nonce, NULL, 0, ct, 16, tag, buf), -1);
	cr_assert_eq(buf[0] | buf[15], 0);
}
