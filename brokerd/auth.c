/*
 * Keys, peer credentials and scopes.  Keys are kept only as SHA-256
 * hashes and compared in constant time, so neither their content nor their
 * length leaks through timing.
 */
#include <sys/types.h>

#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/constant_time.h>
#include <mbedtls/sha256.h>

#include "brokerd.h"

static const struct {
	const char	*name;
	unsigned	 bit;
} auth_scopes[] = {
	{ "read", SCOPE_READ },
	{ "trade", SCOPE_TRADE },
	{ "admin", SCOPE_ADMIN },
};

#define AUTH_NSCOPES	(sizeof(auth_scopes) / sizeof(auth_scopes[0]))

void
auth_sha256(const void *data, size_t len, unsigned char out[32])
{
	/* cannot fail with mbedTLS' software SHA-256 */
	(void)mbedtls_sha256_ret(data, len, out, 0);
}

/*
 * Hash the candidate, then compare with EVERY key without an early exit:
 * the time spent depends only on the number of keys.
 */
const struct key *
auth_key_find(const struct config *conf, const char *secret, size_t len)
{
	unsigned char	 hash[32];
	const struct key *found = NULL;
	size_t		 i;
	int		 diff;

	if (conf == NULL || secret == NULL)
		return (NULL);
	auth_sha256(secret, len, hash);
	for (i = 0; i < conf->nkeys; i++) {
		diff = mbedtls_ct_memcmp(hash, conf->keys[i].hash,
		    sizeof(hash));
		if (diff == 0 && found == NULL)
			found = &conf->keys[i];
	}
	explicit_bzero(hash, sizeof(hash));
	return (found);
}

void
auth_memo_clear(struct auth_memo *m)
{
	config_unref(m->conf);
	explicit_bzero(m, sizeof(*m));
}

/*
 * The same bytes as the memo's, compared in constant time over the whole
 * stored length.  The lengths are both this connection's own sends.
 * Eight bytes at a time, their differences OR-ed with no branch on them
 * (the empty asm keeps the compiler from adding one): mbedtls_ct_memcmp
 * reads a byte at a time through volatile pointers, ten times the cost.
 */
static int
auth_memo_equal(const struct auth_memo *m, const char *secret, size_t len)
{
	uint64_t	 a, b, diff = 0;
	size_t		 i;

	if (len != m->len)
		return (0);
	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&a, m->bytes + i, sizeof(a));
		memcpy(&b, secret + i, sizeof(b));
		diff |= a ^ b;
		__asm__ volatile ("" : "+r" (diff));
	}
	for (; i < len; i++) {
		diff |= (uint64_t)(m->bytes[i] ^ (unsigned char)secret[i]);
		__asm__ volatile ("" : "+r" (diff));
	}
	return (diff == 0);
}

/*
 * A kept-alive connection sends the same key with every request: the
 * bytes it sent last, under the same configuration, name the same key.
 * Anything else is hashed and compared with every key as before; a key
 * found is remembered, a refused one empties the memo.
 */
const struct key *
auth_key_find_memo(const struct config *conf, struct auth_memo *m,
    const char *secret, size_t len)
{
	const struct key *k;

	if (m == NULL)
		return (auth_key_find(conf, secret, len));
	if (m->conf != NULL && m->conf == conf && secret != NULL &&
	    auth_memo_equal(m, secret, len))
		return (m->key);
	auth_memo_clear(m);
	k = auth_key_find(conf, secret, len);
	if (k != NULL && len <= sizeof(m->bytes)) {
		m->conf = config_ref(conf);
		m->key = k;
		m->len = len;
		memcpy(m->bytes, secret, len);
	}
	return (k);
}

/* Is the user uid (primary group pgid) a member of gid? */
static int
auth_user_in_group(uid_t uid, gid_t pgid, gid_t gid, gid_t **groups,
    int *ngroups)
{
	struct passwd	 pw, *pwp = NULL;
	char		 pwbuf[4096];
	gid_t		*g;
	int		 i, n;

	if (pgid == gid)
		return (1);
	if (*ngroups == -1) {
		/* first call: look the user's groups up once */
		*ngroups = 0;
		if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &pwp) != 0 ||
		    pwp == NULL)
			return (0);
		n = 64;
		for (;;) {
			if ((g = reallocarray(*groups, (size_t)n,
			    sizeof(*g))) == NULL)
				return (0);
			*groups = g;
			i = n;
			if (getgrouplist(pw.pw_name, pw.pw_gid, g, &i) != -1) {
				*ngroups = i;
				break;
			}
			if (i <= n || n > 65536)
				return (0);
			n = i;
		}
	}
	for (i = 0; i < *ngroups; i++)
		if ((*groups)[i] == gid)
			return (1);
	return (0);
}

/*
 * Union of the scopes of every peer entry that matches: the uid, the gid,
 * or a group the uid's user belongs to.  *name: the first matching entry.
 */
unsigned
auth_peer_scopes(const struct config *conf, uid_t uid, gid_t gid,
    const char **name)
{
	gid_t		*groups = NULL;
	int		 ngroups = -1;
	unsigned	 scopes = 0;
	size_t		 i;
	const struct peer *p;

	if (name != NULL)
		*name = NULL;
	if (conf == NULL)
		return (0);
	for (i = 0; i < conf->npeers; i++) {
		p = &conf->peers[i];
		if (p->is_group) {
			if (!auth_user_in_group(uid, gid, p->gid, &groups,
			    &ngroups))
				continue;
		} else if (p->uid != uid)
			continue;
		scopes |= p->scopes;
		if (name != NULL && *name == NULL)
			*name = p->name;
	}
	free(groups);
	return (scopes);
}

int
auth_scope_parse(const char *s, unsigned *bit)
{
	size_t	 i;

	for (i = 0; i < AUTH_NSCOPES; i++)
		if (strcmp(s, auth_scopes[i].name) == 0) {
			*bit = auth_scopes[i].bit;
			return (0);
		}
	return (-1);
}

const char *
auth_scope_name(unsigned bit)
{
	size_t	 i;

	for (i = 0; i < AUTH_NSCOPES; i++)
		if (auth_scopes[i].bit == bit)
			return (auth_scopes[i].name);
	return (NULL);
}
