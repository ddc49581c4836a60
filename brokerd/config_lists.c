/*
 * The list sections of the configuration: keys (secrets hashed at once,
 * key files read like ssh reads a private key), peers (users and groups
 * looked up now) and routes.  Records with checks across their fields and
 * against earlier records, so hand-written where config.c's sections are
 * tables.  Reads key files and the user and group databases: config's
 * edge, like config.c.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brokerd.h"
#include "config_yaml.h"
#include "value.h"

#define CFG_MAX_KEYFILE	4096			/* bytes of a key file */
#define R(f)		offsetof(struct route, f)

static int	config_route_prefix(struct cfg *, yaml_node_t *, const char *);
static int	config_route_to(struct cfg *, yaml_node_t *, const char *);
static int	config_route_methods(struct cfg *, yaml_node_t *,
		    const char *);

/* Read in order: an error names the first bad key, as written here. */
static const struct cfg_row config_route_rows[] = {
	{ "prefix", CT_FN, 0, 0, 0, 0, NULL, config_route_prefix },
	{ "to", CT_FN, 0, 0, 0, 0, NULL, config_route_to },
	{ "methods", CT_FN, 0, 0, 0, 0, NULL, config_route_methods },
	{ "rate", CT_RATE, R(rate), 0, 0, 0, NULL, NULL },
	{ "concurrency", CT_UINT, R(concurrency), 0, 1024, 0, NULL, NULL },
	{ "cache_ms", CT_UINT, R(cache_ms), 0, 86400000, 0, NULL, NULL },
	{ NULL }
};


/* ------------------------------------------------------------------ keys */

/*
 * Read a key file like ssh reads a private key: refuse it when group or
 * others may read it.  Strips one trailing newline (and CR).  The caller
 * wipes *key (explicit_bzero) and frees it.
 */
static int
config_key_file_open(const char *path, char *why, size_t whylen)
{
	struct stat	 st;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		snprintf(why, whylen, "key file %s: %s", path,
		    strerror(errno));
		return (-1);
	}
	if (fstat(fd, &st) == -1)
		snprintf(why, whylen, "key file %s: %s", path,
		    strerror(errno));
	else if (!S_ISREG(st.st_mode))
		snprintf(why, whylen, "key file %s is not a regular file",
		    path);
	else if (st.st_mode & 077)
		snprintf(why, whylen, "key file %s is readable by group or "
		    "others (mode %04o): chmod 600 %s", path,
		    (unsigned)(st.st_mode & 07777), path);
	else
		return (fd);
	close(fd);
	return (-1);
}

int
config_lists_key_file(const char *path, char **key, size_t *keylen, char *why,
    size_t whylen)
{
	char		*data = NULL, reason[128];
	ssize_t		 n;
	size_t		 len = 0;
	int		 fd;

	if ((fd = config_key_file_open(path, why, whylen)) == -1)
		return (-1);
	if ((data = malloc(CFG_MAX_KEYFILE + 1)) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	for (;;) {
		n = read(fd, data + len, CFG_MAX_KEYFILE + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(why, whylen, "key file %s: %s", path,
			    strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CFG_MAX_KEYFILE) {
			snprintf(why, whylen, "key file %s is larger than %d "
			    "bytes", path, CFG_MAX_KEYFILE);
			goto fail;
		}
	}
	if (len > 0 && data[len - 1] == '\n')
		len--;
	if (len > 0 && data[len - 1] == '\r')
		len--;
	data[len] = '\0';
	if (value_key_ok(data, len, reason, sizeof(reason)) == -1) {
		snprintf(why, whylen, "key file %s: %s", path, reason);
		goto fail;
	}
	close(fd);
	*key = data;
	*keylen = len;
	return (0);
fail:
	if (data != NULL) {
		explicit_bzero(data, CFG_MAX_KEYFILE + 1);
		free(data);
	}
	close(fd);
	return (-1);
}

/* Append a key, its secret hashed; the caller wipes the secret. */
int
config_lists_add_key(struct config *conf, const char *name, const char *secret,
    size_t len, unsigned scopes)
{
	struct key	*k;

	if ((k = reallocarray(conf->keys, conf->nkeys + 1,
	    sizeof(*k))) == NULL)
		return (-1);
	conf->keys = k;
	k = &conf->keys[conf->nkeys];
	memset(k, 0, sizeof(*k));
	if ((k->name = strdup(name)) == NULL)
		return (-1);
	auth_sha256(secret, len, k->hash);
	k->scopes = scopes;
	conf->nkeys++;
	return (0);
}

static int
config_key_name(struct cfg *c, yaml_node_t *n, const char *path,
    const char **name)
{
	struct config	*conf = c->conf;
	char		 shown[80];
	size_t		 i;

	if (cfg_scalar(c, n, path, name) == -1)
		return (-1);
	if (!value_name_ok(*name))
		return (cfg_errorf(c, n, path, "a name is 1-64 letters, "
		    "digits or _.-@"));
	for (i = 0; i < conf->nkeys; i++)
		if (strcmp(conf->keys[i].name, *name) == 0) {
			cfg_sanitize(shown, sizeof(shown), *name,
			    strlen(*name));
			return (cfg_errorf(c, n, path, "duplicate key name "
			    "\"%s\"", shown));
		}
	return (0);
}

/*
 * The secret of `key` (in the YAML) or `key_file` (read now), hashed.
 * *secret is the file's copy, for the caller to wipe and free.
 */
static int
config_key_secret(struct cfg *c, yaml_node_t **v, const char *path,
    char **secret, size_t *len, unsigned char hash[32])
{
	yaml_node_t	*n = v[1] != NULL ? v[1] : v[2];
	char		 p[CFG_PATH], why[512];
	const char	*s;

	cfg_path(p, path, v[1] != NULL ? "key" : "key_file");
	if (cfg_is_null(n))
		return (cfg_errorf(c, n, p, "%s", v[1] != NULL ?
		    "empty key" : "must not be empty"));
	if (cfg_scalar(c, n, p, &s) == -1)
		return (-1);
	if (v[1] != NULL) {
		*len = n->data.scalar.length;
		if (value_key_ok(s, *len, why, sizeof(why)) == -1)
			return (cfg_errorf(c, n, p, "%s", why));
		auth_sha256(s, *len, hash);
		return (0);
	}
	if (config_lists_key_file(s, secret, len, why, sizeof(why)) == -1)
		return (cfg_errorf(c, n, p, "%s", why));
	auth_sha256(*secret, *len, hash);
	return (0);
}

static int
config_key(struct cfg *c, yaml_node_t *n, const char *path)
{
	static const char *const names[] = { "name", "key", "key_file",
	    "scopes", NULL };
	struct config	*conf = c->conf;
	yaml_node_t	*v[4];
	char		 p[CFG_PATH];
	const char	*name;
	char		*secret = NULL;
	size_t		 len = 0, i;
	unsigned	 scopes;
	unsigned char	 hash[32];
	int		 rc = -1;

	if (n->type != YAML_MAPPING_NODE)
		return (cfg_errorf(c, n, path, "expected a mapping "
		    "{ name, key or key_file, scopes }"));
	if (cfg_collect(c, n, path, names, v) == -1)
		return (-1);
	if (v[0] == NULL)
		return (cfg_errorf(c, n, path, "a key needs a name"));
	cfg_path(p, path, "name");
	if (config_key_name(c, v[0], p, &name) == -1)
		return (-1);
	if ((v[1] == NULL) == (v[2] == NULL))
		return (cfg_errorf(c, n, path, "give exactly one of key and "
		    "key_file"));
	if (v[3] == NULL)
		return (cfg_errorf(c, n, path, "a key needs scopes"));
	cfg_path(p, path, "scopes");
	if (cfg_scopes(c, v[3], p, &scopes) == -1 ||
	    config_key_secret(c, v, path, &secret, &len, hash) == -1)
		goto out;
	/* the same secret twice would make the key's name ambiguous */
	for (i = 0; i < conf->nkeys; i++)
		if (memcmp(conf->keys[i].hash, hash, sizeof(hash)) == 0) {
			cfg_errorf(c, v[1] != NULL ? v[1] : v[2], path,
			    "same key as key \"%s\"", conf->keys[i].name);
			goto out;
		}
	/* config_warnings says so when file is readable by others. */
	if (v[1] != NULL && conf->ninline++ == 0)
		snprintf(conf->inline_key, sizeof(conf->inline_key), "%s",
		    name);
	if (config_lists_add_key(conf, name, v[1] != NULL ?
	    (const char *)v[1]->data.scalar.value : secret, len,
	    scopes) == -1) {
		cfg_errorf(c, n, path, "out of memory");
		goto out;
	}
	rc = 0;
out:
	explicit_bzero(hash, sizeof(hash));
	if (secret != NULL) {
		explicit_bzero(secret, len);
		free(secret);
	}
	return (rc);
}

int
config_lists_keys(struct cfg *c, yaml_node_t *n, const char *path)
{
	return (cfg_list(c, n, path, config_key));
}

/* ----------------------------------------------------------------- peers */

/* A user or group, by name or number, into the peer. */
static int
config_peer_id(struct cfg *c, yaml_node_t *n, const char *path,
    struct peer *peer, const char **name)
{
	struct passwd	*pw;
	struct group	*gr;
	const char	*s = *name;
	char		 shown[80];
	unsigned long long id;

	cfg_sanitize(shown, sizeof(shown), s, strlen(s));
	if (*s == '\0')
		return (cfg_errorf(c, n, path, "must not be empty"));
	if (value_digits(s)) {
		errno = 0;
		id = strtoull(s, NULL, 10);
		if (errno != 0 || id >= 0xffffffffULL)
			return (cfg_errorf(c, n, path, "bad id %s", shown));
		if (peer->is_group) {
			peer->gid = (gid_t)id;
			if ((gr = getgrgid(peer->gid)) != NULL)
				*name = gr->gr_name;
		} else {
			peer->uid = (uid_t)id;
			if ((pw = getpwuid(peer->uid)) != NULL)
				*name = pw->pw_name;
		}
	} else if (peer->is_group) {
		if ((gr = getgrnam(s)) == NULL)
			return (cfg_errorf(c, n, path, "no such group \"%s\"",
			    shown));
		peer->gid = gr->gr_gid;
	} else {
		if ((pw = getpwnam(s)) == NULL)
			return (cfg_errorf(c, n, path, "no such user \"%s\"",
			    shown));
		peer->uid = pw->pw_uid;
	}
	return (0);
}

static int
config_peer(struct cfg *c, yaml_node_t *n, const char *path)
{
	static const char *const names[] = { "user", "group", "scopes", NULL };
	struct config	*conf = c->conf;
	struct peer	 peer, *np;
	yaml_node_t	*v[3];
	char		 p[CFG_PATH];
	const char	*s;

	memset(&peer, 0, sizeof(peer));
	if (n->type != YAML_MAPPING_NODE)
		return (cfg_errorf(c, n, path, "expected a mapping "
		    "{ user or group, scopes }"));
	if (cfg_collect(c, n, path, names, v) == -1)
		return (-1);
	if ((v[0] == NULL) == (v[1] == NULL))
		return (cfg_errorf(c, n, path, "give exactly one of user and "
		    "group"));
	if (v[2] == NULL)
		return (cfg_errorf(c, n, path, "a peer needs scopes"));
	cfg_path(p, path, "scopes");
	if (cfg_scopes(c, v[2], p, &peer.scopes) == -1)
		return (-1);
	peer.is_group = v[1] != NULL;
	cfg_path(p, path, peer.is_group ? "group" : "user");
	if (cfg_scalar(c, v[peer.is_group], p, &s) == -1 ||
	    config_peer_id(c, v[peer.is_group], p, &peer, &s) == -1)
		return (-1);
	if ((peer.name = strdup(s)) == NULL)
		return (cfg_errorf(c, n, path, "out of memory"));
	if ((np = reallocarray(conf->peers, conf->npeers + 1,
	    sizeof(*np))) == NULL) {
		free(peer.name);
		return (cfg_errorf(c, n, path, "out of memory"));
	}
	conf->peers = np;
	conf->peers[conf->npeers++] = peer;
	return (0);
}

int
config_lists_peers(struct cfg *c, yaml_node_t *n, const char *path)
{
	return (cfg_list(c, n, path, config_peer));
}

/* ---------------------------------------------------------------- routes */

/* The route being read: config_route appended it. */
static struct route *
config_route_last(struct cfg *c)
{
	return (&c->conf->routes[c->conf->nroutes - 1]);
}

static int
config_route_path(struct cfg *c, yaml_node_t *n, const char *path,
    char **out, size_t *len)
{
	if (cfg_string(c, n, path, 0, out) == -1)
		return (-1);
	if (!value_route_path_ok(*out))
		return (cfg_errorf(c, n, path, "must start with '/' and hold "
		    "no spaces, '?' or '#'"));
	*len = strlen(*out);
	return (0);
}

static int
config_route_prefix(struct cfg *c, yaml_node_t *n, const char *path)
{
	struct config	*conf = c->conf;
	struct route	*r = config_route_last(c);
	size_t		 i;

	if (config_route_path(c, n, path, &r->prefix, &r->prefix_len) == -1)
		return (-1);
	for (i = 0; i + 1 < conf->nroutes; i++)
		if (strcmp(conf->routes[i].prefix, r->prefix) == 0)
			return (cfg_errorf(c, n, path, "duplicate prefix "
			    "(routes[%zu])", i));
	return (0);
}

static int
config_route_to(struct cfg *c, yaml_node_t *n, const char *path)
{
	struct route	*r = config_route_last(c);

	return (config_route_path(c, n, path, &r->to, &r->to_len));
}

/* One "METHOD: scope" pair; earlier pairs are checked for duplicates. */
static int
config_route_method(struct cfg *c, yaml_node_t *map, yaml_node_pair_t *pair,
    const char *path, struct route *r)
{
	yaml_node_pair_t *prev;
	yaml_node_t	*k, *v, *pk;
	const char	*m;
	char		 p[CFG_PATH], shown[80];
	size_t		 i, len;

	if ((k = cfg_node(c, pair->key)) == NULL ||
	    (v = cfg_node(c, pair->value)) == NULL)
		return (cfg_errorf(c, map, path, "bad node"));
	if (k->type != YAML_SCALAR_NODE)
		return (cfg_errorf(c, k, path,
		    "a method must be a name such as GET"));
	m = (const char *)k->data.scalar.value;
	len = k->data.scalar.length;
	cfg_sanitize(shown, sizeof(shown), m, len);
	cfg_path(p, path, shown);
	if (len == 0 || len >= sizeof(r->methods[0].method) ||
	    strlen(m) != len)
		return (cfg_errorf(c, k, p, "bad method"));
	for (i = 0; i < len; i++)
		if (m[i] < 'A' || m[i] > 'Z')
			return (cfg_errorf(c, k, p, "bad method "
			    "(upper case letters, such as GET)"));
	for (prev = map->data.mapping.pairs.start; prev < pair; prev++)
		if ((pk = cfg_node(c, prev->key)) != NULL &&
		    pk->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)pk->data.scalar.value, m) == 0)
			return (cfg_errorf(c, k, p, "duplicate key "
			    "(first at line %zu)", pk->start_mark.line + 1));
	if (r->nmethods >= sizeof(r->methods) / sizeof(r->methods[0]))
		return (cfg_errorf(c, k, p, "at most %zu methods",
		    sizeof(r->methods) / sizeof(r->methods[0])));
	if (cfg_scope(c, v, p, &r->methods[r->nmethods].scope) == -1)
		return (-1);
	memcpy(r->methods[r->nmethods].method, m, len + 1);
	r->nmethods++;
	return (0);
}

static int
config_route_methods(struct cfg *c, yaml_node_t *n, const char *path)
{
	struct route	*r = config_route_last(c);
	yaml_node_pair_t *pair;

	if (n->type != YAML_MAPPING_NODE)
		return (cfg_errorf(c, n, path, "expected a mapping of "
		    "methods to scopes, such as { GET: read }"));
	for (pair = n->data.mapping.pairs.start;
	    pair < n->data.mapping.pairs.top; pair++)
		if (config_route_method(c, n, pair, path, r) == -1)
			return (-1);
	if (r->nmethods == 0)
		return (cfg_errorf(c, n, path, "a route needs at least one "
		    "method"));
	return (0);
}

static int
config_route(struct cfg *c, yaml_node_t *n, const char *path)
{
	struct config	*conf = c->conf;
	struct route	*nr;
	const char	*names[CFG_MAX_ROWS + 1];
	yaml_node_t	*v[CFG_MAX_ROWS];

	if (n->type != YAML_MAPPING_NODE)
		return (cfg_errorf(c, n, path, "expected a mapping "
		    "{ prefix, to, methods, ... }"));
	cfg_names(config_route_rows, names);
	if (cfg_collect(c, n, path, names, v) == -1)
		return (-1);
	if (v[0] == NULL || v[1] == NULL || v[2] == NULL)
		return (cfg_errorf(c, n, path, "a route needs prefix, to and "
		    "methods"));
	if ((nr = reallocarray(conf->routes, conf->nroutes + 1,
	    sizeof(*nr))) == NULL)
		return (cfg_errorf(c, n, path, "out of memory"));
	conf->routes = nr;
	memset(&conf->routes[conf->nroutes++], 0, sizeof(*nr));
	return (cfg_apply(c, config_route_rows, v, path,
	    config_route_last(c)));
}

int
config_lists_routes(struct cfg *c, yaml_node_t *n, const char *path)
{
	c->have_routes = 1;
	return (cfg_list(c, n, path, config_route));
}
