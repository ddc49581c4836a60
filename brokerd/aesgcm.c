/*
 * AES-GCM on AES-NI and PCLMULQDQ.
 *
 * GHASH keeps its blocks with their bytes reversed, so that bit i of the
 * 128-bit integer is the coefficient of x^(127-i): GCM numbers a block's
 * bits from the first byte's most significant one.  In that form the
 * carry-less product of two elements holds their product's coefficients
 * reversed over 255 bits; shifted left once it is reversed over 256, the
 * product's low half (x^0..x^127) in the high 128 bits and its high half
 * in the low 128.  Multiplying by x is a shift right, so the reduction by
 * x^128 = x^7 + x^2 + x + 1 folds the low 128 bits in shifted by 0, 1, 2
 * and 7, after adding back, in the same way, the few bits those shifts
 * drop (they are past x^127 again; their fold stays below it).
 *
 * CTR runs eight blocks abreast (AESENC's latency is four times its
 * issue interval, and Zen issues two at once); four blocks are
 * multiplied by H^4, H^3, H^2 and H and summed before one reduction,
 * which is linear.  AESENC and PCLMULQDQ take the same time whatever
 * their operands; the tag is compared with all 16 bytes always read.
 */
#include <stdint.h>
#include <string.h>

#include "aesgcm.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AESGCM_TARGET	__attribute__((target("aes,pclmul,ssse3,sse4.1")))

/* A 128-bit shift right by n (1..63). */
#define AESGCM_SHR(x, n)	_mm_or_si128(_mm_srli_epi64((x), (n)),	\
	_mm_slli_epi64(_mm_srli_si128((x), 8), 64 - (n)))

int
aesgcm_supported(void)
{
	__builtin_cpu_init();
	return (__builtin_cpu_supports("aes") &&
	    __builtin_cpu_supports("pclmul") &&
	    __builtin_cpu_supports("sse4.1"));
}

static inline AESGCM_TARGET __m128i
aesgcm_bswap(__m128i x)
{
	return (_mm_shuffle_epi8(x, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7,
	    8, 9, 10, 11, 12, 13, 14, 15)));
}

/*
 * The 16 bytes at p, or the n (< 16) there then zeros: a message's last
 * block, GCM's J0 from a nonce.  The stack copy is wiped (plain text).
 */
static inline AESGCM_TARGET __m128i
aesgcm_load(const unsigned char *p, size_t n)
{
	unsigned char	 b[16];
	__m128i		 x;

	if (n >= sizeof(b))
		return (_mm_loadu_si128((const __m128i *)p));
	memset(b, 0, sizeof(b));
	memcpy(b, p, n);
	x = _mm_loadu_si128((const __m128i *)b);
	explicit_bzero(b, sizeof(b));
	return (x);
}

/* Add the 256-bit carry-less product of a and b to lo (low) and hi. */
static inline AESGCM_TARGET void
aesgcm_clmul(__m128i a, __m128i b, __m128i *lo, __m128i *hi)
{
	__m128i	 mid;

	mid = _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x01),
	    _mm_clmulepi64_si128(a, b, 0x10));
	*lo = _mm_xor_si128(*lo, _mm_xor_si128(_mm_clmulepi64_si128(a, b,
	    0x00), _mm_slli_si128(mid, 8)));
	*hi = _mm_xor_si128(*hi, _mm_xor_si128(_mm_clmulepi64_si128(a, b,
	    0x11), _mm_srli_si128(mid, 8)));
}

/* The field element that the (sum of) products lo, hi stands for. */
static inline AESGCM_TARGET __m128i
aesgcm_reduce(__m128i lo, __m128i hi)
{
	__m128i	 lc, hc, low, t;

	lc = _mm_srli_epi64(lo, 63);
	hc = _mm_srli_epi64(hi, 63);
	lo = _mm_or_si128(_mm_slli_epi64(lo, 1), _mm_slli_si128(lc, 8));
	hi = _mm_or_si128(_mm_or_si128(_mm_slli_epi64(hi, 1),
	    _mm_slli_si128(hc, 8)), _mm_srli_si128(lc, 8));
	/* The bits shifts of 1, 2 and 7 drop, back at the top: << 127, ... */
	low = _mm_slli_si128(lo, 8);
	t = _mm_xor_si128(lo, _mm_xor_si128(_mm_slli_epi64(low, 63),
	    _mm_xor_si128(_mm_slli_epi64(low, 62), _mm_slli_epi64(low, 57))));
	return (_mm_xor_si128(_mm_xor_si128(hi, t),
	    _mm_xor_si128(AESGCM_SHR(t, 1),
	    _mm_xor_si128(AESGCM_SHR(t, 2), AESGCM_SHR(t, 7)))));
}

static inline AESGCM_TARGET __m128i
aesgcm_mul(__m128i a, __m128i b)
{
	__m128i	 lo, hi;

	lo = hi = _mm_setzero_si128();
	aesgcm_clmul(a, b, &lo, &hi);
	return (aesgcm_reduce(lo, hi));
}

/* FIPS-197 5.2: the next four words from the last four (or eight). */
static inline AESGCM_TARGET __m128i
aesgcm_expand(__m128i k, __m128i t)
{
	k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
	k = _mm_xor_si128(k, _mm_slli_si128(k, 8));
	return (_mm_xor_si128(k, t));
}

#define AESGCM_K128(k, i, rcon)						\
	(k)[i] = aesgcm_expand((k)[(i) - 1], _mm_shuffle_epi32(		\
	    _mm_aeskeygenassist_si128((k)[(i) - 1], (rcon)), 0xff))
#define AESGCM_K256(k, i, rcon)						\
	(k)[i] = aesgcm_expand((k)[(i) - 2], _mm_shuffle_epi32(		\
	    _mm_aeskeygenassist_si128((k)[(i) - 1], (rcon)), 0xff))
#define AESGCM_K256B(k, i)						\
	(k)[i] = aesgcm_expand((k)[(i) - 2], _mm_shuffle_epi32(		\
	    _mm_aeskeygenassist_si128((k)[(i) - 1], 0), 0xaa))

static inline AESGCM_TARGET __m128i
aesgcm_block(const __m128i *rk, int rounds, __m128i b)
{
	int	 i;

	b = _mm_xor_si128(b, rk[0]);
	for (i = 1; i < rounds; i++)
		b = _mm_aesenc_si128(b, rk[i]);
	return (_mm_aesenclast_si128(b, rk[rounds]));
}

/* Eight blocks abreast, kept in registers. */
#define AESGCM_ROUND8(op, b, k) do {					\
	(b)[0] = op((b)[0], (k)); (b)[1] = op((b)[1], (k));		\
	(b)[2] = op((b)[2], (k)); (b)[3] = op((b)[3], (k));		\
	(b)[4] = op((b)[4], (k)); (b)[5] = op((b)[5], (k));		\
	(b)[6] = op((b)[6], (k)); (b)[7] = op((b)[7], (k));		\
} while (0)

static inline AESGCM_TARGET void
aesgcm_block8(const __m128i *rk, int rounds, __m128i b[8])
{
	__m128i	 k;
	int	 i;

	k = _mm_load_si128(rk);
	AESGCM_ROUND8(_mm_xor_si128, b, k);
	for (i = 1; i < rounds; i++) {
		k = _mm_load_si128(rk + i);
		AESGCM_ROUND8(_mm_aesenc_si128, b, k);
	}
	k = _mm_load_si128(rk + rounds);
	AESGCM_ROUND8(_mm_aesenclast_si128, b, k);
}

static AESGCM_TARGET void
aesgcm_key(struct aesgcm *g, const unsigned char *key, size_t keylen)
{
	__m128i	 k[15], h;
	int	 i;

	k[0] = _mm_loadu_si128((const __m128i *)key);
	if (keylen == 16) {
		AESGCM_K128(k, 1, 0x01); AESGCM_K128(k, 2, 0x02);
		AESGCM_K128(k, 3, 0x04); AESGCM_K128(k, 4, 0x08);
		AESGCM_K128(k, 5, 0x10); AESGCM_K128(k, 6, 0x20);
		AESGCM_K128(k, 7, 0x40); AESGCM_K128(k, 8, 0x80);
		AESGCM_K128(k, 9, 0x1b); AESGCM_K128(k, 10, 0x36);
		g->rounds = 10;
	} else {
		k[1] = _mm_loadu_si128((const __m128i *)(key + 16));
		AESGCM_K256(k, 2, 0x01); AESGCM_K256B(k, 3);
		AESGCM_K256(k, 4, 0x02); AESGCM_K256B(k, 5);
		AESGCM_K256(k, 6, 0x04); AESGCM_K256B(k, 7);
		AESGCM_K256(k, 8, 0x08); AESGCM_K256B(k, 9);
		AESGCM_K256(k, 10, 0x10); AESGCM_K256B(k, 11);
		AESGCM_K256(k, 12, 0x20); AESGCM_K256B(k, 13);
		AESGCM_K256(k, 14, 0x40);
		g->rounds = 14;
	}
	for (i = 0; i <= g->rounds; i++)
		_mm_store_si128((__m128i *)g->rk[i], k[i]);
	h = aesgcm_bswap(aesgcm_block(k, g->rounds, _mm_setzero_si128()));
	_mm_store_si128((__m128i *)g->h[0], h);
	for (i = 1; i < 4; i++)
		_mm_store_si128((__m128i *)g->h[i], aesgcm_mul(h,
		    _mm_load_si128((const __m128i *)g->h[i - 1])));
	explicit_bzero(k, sizeof(k));
}

int
aesgcm_init(struct aesgcm *g, const unsigned char *key, size_t keylen)
{
	memset(g, 0, sizeof(*g));
	if ((keylen != 16 && keylen != 32) || !aesgcm_supported())
		return (-1);
	aesgcm_key(g, key, keylen);
	return (0);
}

/* GHASH over n bytes, the last block padded with zeros. */
static AESGCM_TARGET __m128i
aesgcm_ghash(const struct aesgcm *g, __m128i y, const unsigned char *p,
    size_t n)
{
	const __m128i	*h = (const __m128i *)g->h;
	__m128i		 lo, hi;

	for (; n >= 64; p += 64, n -= 64) {
		lo = hi = _mm_setzero_si128();
		aesgcm_clmul(_mm_xor_si128(y, aesgcm_bswap(_mm_loadu_si128(
		    (const __m128i *)p))), h[3], &lo, &hi);
		aesgcm_clmul(aesgcm_bswap(_mm_loadu_si128(
		    (const __m128i *)(p + 16))), h[2], &lo, &hi);
		aesgcm_clmul(aesgcm_bswap(_mm_loadu_si128(
		    (const __m128i *)(p + 32))), h[1], &lo, &hi);
		aesgcm_clmul(aesgcm_bswap(_mm_loadu_si128(
		    (const __m128i *)(p + 48))), h[0], &lo, &hi);
		y = aesgcm_reduce(lo, hi);
	}
	for (; n > 0; p += 16, n -= n < 16 ? n : 16)
		y = aesgcm_mul(_mm_xor_si128(y, aesgcm_bswap(aesgcm_load(p, n))),
		    h[0]);
	return (y);
}

static inline AESGCM_TARGET __m128i
aesgcm_counter(__m128i j0, uint32_t n)
{
	return (_mm_insert_epi32(j0, (int)__builtin_bswap32(n), 3));
}

/* CTR from counter 2 over in[0..len) to out: the ciphertext is out's. */
static AESGCM_TARGET void
aesgcm_ctr(const struct aesgcm *g, __m128i j0, const unsigned char *in,
    size_t len, unsigned char *out)
{
	const __m128i	*rk = (const __m128i *)g->rk;
	unsigned char	 last[16];
	__m128i		 b[8];
	uint32_t	 n = 2;
	int		 j;

	for (; len >= 128; in += 128, out += 128, len -= 128, n += 8) {
		for (j = 0; j < 8; j++)
			b[j] = aesgcm_counter(j0, n + (uint32_t)j);
		aesgcm_block8(rk, g->rounds, b);
		for (j = 0; j < 8; j++)
			_mm_storeu_si128((__m128i *)(out + 16 * j),
			    _mm_xor_si128(b[j], _mm_loadu_si128(
			    (const __m128i *)(in + 16 * j))));
	}
	for (; len >= 16; in += 16, out += 16, len -= 16, n++)
		_mm_storeu_si128((__m128i *)out, _mm_xor_si128(aesgcm_block(rk,
		    g->rounds, aesgcm_counter(j0, n)), _mm_loadu_si128(
		    (const __m128i *)in)));
	if (len > 0) {
		_mm_storeu_si128((__m128i *)last, _mm_xor_si128(aesgcm_block(rk,
		    g->rounds, aesgcm_counter(j0, n)), aesgcm_load(in, len)));
		memcpy(out, last, len);
		explicit_bzero(last, sizeof(last));
	}
}

/* The tag of ciphertext c[0..len) after aad, nonce's J0 encrypted. */
static AESGCM_TARGET __m128i
aesgcm_tag(const struct aesgcm *g, __m128i j0, const unsigned char *aad,
    size_t aadlen, const unsigned char *c, size_t len)
{
	__m128i	 y;

	y = aesgcm_ghash(g, _mm_setzero_si128(), aad, aadlen);
	y = aesgcm_ghash(g, y, c, len);
	/* The lengths block, bytes reversed: len(A) || len(C) in bits. */
	y = aesgcm_mul(_mm_xor_si128(y, _mm_set_epi64x((long long)aadlen * 8,
	    (long long)len * 8)), _mm_load_si128((const __m128i *)g->h[0]));
	return (_mm_xor_si128(aesgcm_bswap(y), aesgcm_block(
	    (const __m128i *)g->rk, g->rounds, aesgcm_counter(j0, 1))));
}

static AESGCM_TARGET void
aesgcm_seal_x86(const struct aesgcm *g, const unsigned char *nonce,
    const unsigned char *aad, size_t aadlen, const unsigned char *p,
    size_t len, unsigned char *out, unsigned char *tag)
{
	__m128i	 j0;

	j0 = aesgcm_load(nonce, AESGCM_NONCE);
	aesgcm_ctr(g, j0, p, len, out);
	_mm_storeu_si128((__m128i *)tag, aesgcm_tag(g, j0, aad, aadlen, out,
	    len));
}

static AESGCM_TARGET int
aesgcm_open_x86(const struct aesgcm *g, const unsigned char *nonce,
    const unsigned char *aad, size_t aadlen, const unsigned char *c,
    size_t len, const unsigned char *tag, unsigned char *out)
{
	__m128i	 j0, t;

	j0 = aesgcm_load(nonce, AESGCM_NONCE);
	t = aesgcm_tag(g, j0, aad, aadlen, c, len);
	if (_mm_movemask_epi8(_mm_cmpeq_epi8(t, _mm_loadu_si128(
	    (const __m128i *)tag))) != 0xffff) {
		memset(out, 0, len);
		return (-1);
	}
	aesgcm_ctr(g, j0, c, len, out);
	return (0);
}

int
aesgcm_seal(const struct aesgcm *g, const unsigned char *nonce,
    const unsigned char *aad, size_t aadlen, const unsigned char *p,
    size_t len, unsigned char *out, unsigned char *tag)
{
	if (g->rounds == 0 || len > AESGCM_MAX_LEN)
		return (-1);
	aesgcm_seal_x86(g, nonce, aad, aadlen, p, len, out, tag);
	return (0);
}

int
aesgcm_open(const struct aesgcm *g, const unsigned char *nonce,
    const unsigned char *aad, size_t aadlen, const unsigned char *c,
    size_t len, const unsigned char *tag, unsigned char *out)
{
	if (g->rounds == 0 || len > AESGCM_MAX_LEN) {
		memset(out, 0, len);
		return (-1);
	}
	return (aesgcm_open_x86(g, nonce, aad, aadlen, c, len, tag, out));
}

#else /* !__x86_64__: tlsrec.c uses mbedTLS's GCM. */

int
aesgcm_supported(void)
{
	return (0);
}

int
aesgcm_init(struct aesgcm *g, const unsigned char *key, size_t keylen)
{
	(void)key;
	(void)keylen;
	memset(g, 0, sizeof(*g));
	return (-1);
}

int
aesgcm_seal(const struct aesgcm *g, const unsigned char *nonce,
    const unsigned char *aad, size_t aadlen, const unsigned char *p,
    size_t len, unsigned char *out, unsigned char *tag)
{
	(void)g; (void)nonce; (void)aad; (void)aadlen; (void)p; (void)len;
	(void)out; (void)tag;
	return (-1);
}

int
aesgcm_open(const struct aesgcm *g, const unsigned char *nonce,
    const unsigned char *aad, size_t aadlen, const unsigned char *c,
    size_t len, const unsigned char *tag, unsigned char *out)
{
	(void)g; (void)nonce; (void)aad; (void)aadlen; (void)c; (void)tag;
	memset(out, 0, len);
	return (-1);
}

#endif /* __x86_64__ */

void
aesgcm_clear(struct aesgcm *g)
{
	explicit_bzero(g, sizeof(*g));
}
