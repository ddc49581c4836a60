/*
 * auth.c: SHA-256, finding the right key among several in constant time,
 * peers by uid, gid and group membership, scope names.
 */
#include <criterion/criterion.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brokerd.h"

static struct key *
add_key(struct config *c, const char *name, const char *secret,
    unsigned scopes)
{
	struct key	*k;

	c->keys = reallocarray(c->keys, c->nkeys + 1, sizeof(*c->keys));
	cr_assert_not_null(c->keys);
	k = &c->keys[c->nkeys++];
	memset(k, 0, sizeof(*k));
	k->name = strdup(name);
	auth_sha256(secret, strlen(secret), k->hash);
	k->scopes = scopes;
	return (k);
}

static void
add_peer(struct config *c, const char *name, int is_group, unsigned id,
    unsigned scopes)
{
	struct peer	*p;

	c->peers = reallocarray(c->peers, c->npeers + 1, sizeof(*c->peers));
	cr_assert_not_null(c->peers);
	p = &c->peers[c->npeers++];
	memset(p, 0, sizeof(*p));
	p->name = strdup(name);
	p->is_group = is_group;
	if (is_group)
		p->gid = (gid_t)id;
	else
		p->uid = (uid_t)id;
	p->scopes = scopes;
}

static void
free_conf(struct config *c)
{
	size_t	 i;

	for (i = 0; i < c->nkeys; i++)
		free(c->keys[i].name);
	for (i = 0; i < c->npeers; i++)
		free(c->peers[i].name);
	free(c->keys);
	free(c->peers);
}

Test(auth, sha256_known_vector)
{
	static const unsigned char abc[32] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
		0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
		0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
		0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad };
	unsigned char	 out[32];

	auth_sha256("abc", 3, out);
	cr_assert_eq(memcmp(out, abc, 32), 0);
}

Test(auth, finds_the_right_key_among_several)
{
	struct config	 c;
	const struct key *k;

	memset(&c, 0, sizeof(c));
	add_key(&c, "one", "first-key-0123456789", SCOPE_READ);
	add_key(&c, "two", "second-key-0123456789", SCOPE_READ | SCOPE_TRADE);
	add_key(&c, "three", "third-key-0123456789", SCOPE_ADMIN);

	k = auth_key_find(&c, "second-key-0123456789", 21);
	cr_assert_not_null(k);
	cr_assert_str_eq(k->name, "two");
	cr_assert_eq(k->scopes, SCOPE_READ | SCOPE_TRADE);
	k = auth_key_find(&c, "third-key-0123456789", 20);
	cr_assert_not_null(k);
	cr_assert_str_eq(k->name, "three");
	k = auth_key_find(&c, "first-key-0123456789", 20);
	cr_assert_not_null(k);
	cr_assert_str_eq(k->name, "one");
	free_conf(&c);
}

Test(auth, wrong_keys_are_refused)
{
	struct config	 c;

	memset(&c, 0, sizeof(c));
	add_key(&c, "one", "first-key-0123456789", SCOPE_READ);
	cr_assert_null(auth_key_find(&c, "first-key-012345678", 19),
	    "a prefix");
	cr_assert_null(auth_key_find(&c, "first-key-0123456789x", 21),
	    "longer");
	cr_assert_null(auth_key_find(&c, "First-key-0123456789", 20));
	cr_assert_null(auth_key_find(&c, "", 0));
	cr_assert_null(auth_key_find(&c, NULL, 0));
	/* the length given counts, not the NUL */
	cr_assert_null(auth_key_find(&c, "first-key-0123456789", 10));
	free_conf(&c);
}

Test(auth, no_keys_finds_nothing)
{
	struct config	 c;

	memset(&c, 0, sizeof(c));
	cr_assert_null(auth_key_find(&c, "anything-at-all-0123", 20));
}

Test(auth, peers_by_uid_and_gid)
{
	struct config	 c;
	const char	*name;
	unsigned	 s;

	memset(&c, 0, sizeof(c));
	add_peer(&c, "alice", 0, 5001, SCOPE_READ);
	add_peer(&c, "traders", 1, 7001, SCOPE_TRADE);
	add_peer(&c, "alice-admin", 0, 5001, SCOPE_ADMIN);

	s = auth_peer_scopes(&c, 5001, 9999, &name);
	cr_assert_eq(s, SCOPE_READ | SCOPE_ADMIN, "union of matches");
	cr_assert_str_eq(name, "alice", "the first match names the caller");
	s = auth_peer_scopes(&c, 6000, 7001, &name);
	cr_assert_eq(s, SCOPE_TRADE, "primary gid matches a group entry");
	cr_assert_str_eq(name, "traders");
	s = auth_peer_scopes(&c, 5001, 7001, &name);
	cr_assert_eq(s, SCOPE_READ | SCOPE_TRADE | SCOPE_ADMIN);
	s = auth_peer_scopes(&c, 6000, 6000, &name);
	cr_assert_eq(s, 0);
	cr_assert_null(name);
	free_conf(&c);
}

/* A group entry matches a user through its supplementary groups too. */
Test(auth, peer_by_supplementary_group)
{
	struct config	 c;
	struct group	*gr;
	struct passwd	*pw = NULL;
	gid_t		 gid = 0;
	const char	*name;

	/* any user listed as a member of a group that is not its primary */
	setgrent();
	while ((gr = getgrent()) != NULL) {
		if (gr->gr_mem == NULL || gr->gr_mem[0] == NULL)
			continue;
		pw = getpwnam(gr->gr_mem[0]);
		if (pw != NULL && pw->pw_gid != gr->gr_gid) {
			gid = gr->gr_gid;
			break;
		}
		pw = NULL;
	}
	endgrent();
	if (pw == NULL)
		cr_skip_test("no user with a supplementary group here");
	memset(&c, 0, sizeof(c));
	add_peer(&c, "extra", 1, (unsigned)gid, SCOPE_READ);
	cr_assert_eq(auth_peer_scopes(&c, pw->pw_uid, pw->pw_gid, &name),
	    SCOPE_READ);
	cr_assert_str_eq(name, "extra");
	/* an unknown uid has no supplementary groups */
	cr_assert_eq(auth_peer_scopes(&c, 4000000000U, 4000000000U, &name),
	    0);
	free_conf(&c);
}

Test(auth, scope_names)
{
	unsigned	 bit;

	cr_assert_eq(auth_scope_parse("read", &bit), 0);
	cr_assert_eq(bit, SCOPE_READ);
	cr_assert_eq(auth_scope_parse("trade", &bit), 0);
	cr_assert_eq(bit, SCOPE_TRADE);
	cr_assert_eq(auth_scope_parse("admin", &bit), 0);
	cr_assert_eq(bit, SCOPE_ADMIN);
	cr_assert_eq(auth_scope_parse("Read", &bit), -1);
	cr_assert_eq(auth_scope_parse("write", &bit), -1);
	cr_assert_eq(auth_scope_parse("", &bit), -1);
	cr_assert_str_eq(auth_scope_name(SCOPE_READ), "read");
	cr_assert_str_eq(auth_scope_name(SCOPE_TRADE), "trade");
	cr_assert_str_eq(auth_scope_name(SCOPE_ADMIN), "admin");
	cr_assert_null(auth_scope_name(SCOPE_READ | SCOPE_TRADE));
	cr_assert_null(auth_scope_name(0));
}

/* Keys come from config_load hashed: the same lookup works end to end. */
Test(auth, keys_from_config)
{
	struct config	*c;
	const struct key *k;
	char		 err[512];

	setenv("IBKR_BRIDGE_KEY", "from-the-environment-0123", 1);
	c = config_load(NULL, err, sizeof(err));
	cr_assert_not_null(c, "%s", err);
	k = auth_key_find(c, "from-the-environment-0123", 25);
	cr_assert_not_null(k);
	cr_assert_str_eq(k->name, "env");
	cr_assert_eq(k->scopes, SCOPE_READ | SCOPE_TRADE | SCOPE_ADMIN);
	cr_assert_null(auth_key_find(c, "from-the-environment-012", 24));
	config_free(c);
}

/*
 * A connection's memo: the same bytes under the same configuration skip
 * the hash; other bytes, or another configuration (a reload), are checked
 * again, so a key removed by a reload is refused.
 */
Test(auth, memo_answers_only_what_it_knows)
{
	struct config	 a, b;
	struct auth_memo m;
	char		 longkey[AUTH_MEMO_MAX + 2];

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&m, 0, sizeof(m));
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	a.refs = b.refs = 1;		/* the test's own */
	add_key(&a, "one", "secret-one", SCOPE_READ);
	add_key(&a, "two", "secret-two", SCOPE_TRADE);
	add_key(&b, "two", "secret-two", SCOPE_TRADE);	/* "one" removed */
	add_key(&b, "long", longkey, SCOPE_READ);

	cr_assert_eq(auth_key_find_memo(&a, &m, "secret-one", 10), &a.keys[0]);
	cr_assert_eq(m.conf, &a);
	cr_assert_eq(a.refs, 2, "the memo holds its configuration");
	/* The memo answers: no hash is compared (this one no longer fits). */
	a.keys[0].hash[0] ^= 1;
	cr_assert_eq(auth_key_find_memo(&a, &m, "secret-one", 10), &a.keys[0]);
	cr_assert_null(auth_key_find(&a, "secret-one", 10));
	a.keys[0].hash[0] ^= 1;
	/* Other bytes, a prefix, a longer one: checked, refused, forgotten. */
	cr_assert_null(auth_key_find_memo(&a, &m, "secret-onf", 10));
	cr_assert_null(m.conf);
	cr_assert_eq(a.refs, 1);
	cr_assert_eq(auth_key_find_memo(&a, &m, "secret-one", 10), &a.keys[0]);
	cr_assert_null(auth_key_find_memo(&a, &m, "secret-on", 9));
	cr_assert_eq(auth_key_find_memo(&a, &m, "secret-one", 10), &a.keys[0]);
	cr_assert_null(auth_key_find_memo(&a, &m, "secret-one!", 11));
	/* A reload without "one": the same bytes are refused. */
	cr_assert_eq(auth_key_find_memo(&a, &m, "secret-one", 10), &a.keys[0]);
	cr_assert_null(auth_key_find_memo(&b, &m, "secret-one", 10),
	    "a removed key passed after the reload");
	cr_assert_eq(a.refs, 1, "the old configuration let go");
	cr_assert_eq(auth_key_find_memo(&b, &m, "secret-two", 10), &b.keys[0]);
	cr_assert_eq(b.refs, 2);
	/* Too long to keep: found, not remembered. */
	cr_assert_eq(auth_key_find_memo(&b, &m, longkey, strlen(longkey)),
	    &b.keys[1]);
	cr_assert_null(m.conf);
	cr_assert_eq(b.refs, 1);
	auth_memo_clear(&m);
	cr_assert_null(auth_key_find_memo(&b, NULL, "secret-one", 10));
	free_conf(&a);
	free_conf(&b);
}
