/*
 * Configuration: YAML -> a new struct config, validated completely, then
 * the environment on top.  Nothing is half applied: the caller swaps the
 * whole struct or keeps the old one.  The sections are tables of rows
 * (name, type, field, range, default), so adding a limit is one row;
 * config_yaml.c turns nodes into values with FILE:LINE:COL errors, and
 * value.c holds the checks shared with listen and client.  This file
 * reads the config and key files and the environment: its edge.
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
#include <strings.h>
#include <unistd.h>

#include "brokerd.h"
#include "config_yaml.h"
#include "value.h"

#define CFG_MAX_FILE	(4 * 1024 * 1024)	/* bytes of YAML */
#define CFG_MAX_KEYFILE	4096			/* bytes of a key file */
#define CFG_MAX_ROWS	16			/* keys in one section */
#define CFG_DEF_GROUP	"brokerd"

enum config_type {
	CT_UINT,		/* unsigned, min-max */
	CT_SIZE,		/* size_t, min-max */
	CT_BOOL,		/* int 0 or 1 */
	CT_STR,			/* char *, never null */
	CT_NSTR,		/* char *, null allowed */
	CT_RATE,		/* struct rate */
	CT_SCOPES,		/* unsigned bit set of SCOPE_* */
	CT_FN			/* fn reads the value itself */
};

/* One key of a section. */
struct config_row {
	const char	*name;
	enum config_type type;
	size_t		 off;		/* of the field in its struct */
	unsigned long long min, max;	/* CT_UINT, CT_SIZE */
	unsigned long long def;		/* CT_UINT, CT_SIZE, CT_BOOL */
	const char	*sdef;		/* CT_STR, CT_NSTR, CT_RATE */
	cfg_fn		 fn;		/* CT_FN: reads; others: checks after */
};

#define C(f)	offsetof(struct config, f)
#define R(f)	offsetof(struct route, f)

static int	config_unix_path(struct cfg *, yaml_node_t *, const char *);
static int	config_unix_mode(struct cfg *, yaml_node_t *, const char *);
static int	config_unix_group(struct cfg *, yaml_node_t *, const char *);
static int	config_listen_unix(struct cfg *, yaml_node_t *, const char *);
static int	config_listen_tcp(struct cfg *, yaml_node_t *, const char *);
static int	config_gw_url(struct cfg *, yaml_node_t *, const char *);
static int	config_gw_pin(struct cfg *, yaml_node_t *, const char *);
static int	config_gw_ca_file(struct cfg *, yaml_node_t *, const char *);
static int	config_gateway_tls(struct cfg *, yaml_node_t *, const char *);
static int	config_route_prefix(struct cfg *, yaml_node_t *, const char *);
static int	config_route_to(struct cfg *, yaml_node_t *, const char *);
static int	config_route_methods(struct cfg *, yaml_node_t *,
		    const char *);
static int	config_log_level(struct cfg *, yaml_node_t *, const char *);
static int	config_log_format(struct cfg *, yaml_node_t *, const char *);

static const struct config_row config_unix_rows[] = {
	{ "path", CT_STR, C(unix_path), 0, 0, 0, "/run/brokerd/brokerd.sock",
	    config_unix_path },
	{ "mode", CT_FN, 0, 0, 0, 0, NULL, config_unix_mode },
	{ "group", CT_NSTR, C(unix_group), 0, 0, 0, CFG_DEF_GROUP,
	    config_unix_group },
	{ NULL }
};

static const struct config_row config_listen_rows[] = {
	{ "unix", CT_FN, 0, 0, 0, 0, NULL, config_listen_unix },
	{ "tcp", CT_FN, 0, 0, 0, 0, NULL, config_listen_tcp },
	{ "tcp_anonymous", CT_SCOPES, C(tcp_anonymous), 0, 0, 0, NULL, NULL },
	{ NULL }
};

static const struct config_row config_tls_rows[] = {
	{ "pin_sha256", CT_FN, 0, 0, 0, 0, NULL, config_gw_pin },
	{ "ca_file", CT_NSTR, C(gw_ca_file), 0, 0, 0, NULL,
	    config_gw_ca_file },
	{ "insecure", CT_BOOL, C(gw_insecure), 0, 0, 0, NULL, NULL },
	{ NULL }
};

static const struct config_row config_gateway_rows[] = {
	{ "url", CT_FN, 0, 0, 0, 0, NULL, config_gw_url },
	{ "tls", CT_FN, 0, 0, 0, 0, NULL, config_gateway_tls },
	{ "pool", CT_UINT, C(gw_pool), 1, 64, 4, NULL, NULL },
	{ "connect_timeout_ms", CT_UINT, C(gw_connect_timeout_ms), 1, 600000,
	    3000, NULL, NULL },
	{ "timeout_ms", CT_UINT, C(gw_timeout_ms), 1, 3600000, 15000, NULL,
	    NULL },
	{ NULL }
};

static const struct config_row config_session_rows[] = {
	{ "check_interval_s", CT_UINT, C(check_interval_s), 1, 3600, 10,
	    NULL, NULL },
	{ "tickle_interval_s", CT_UINT, C(tickle_interval_s), 1, 3600, 60,
	    NULL, NULL },
	{ "reauthenticate", CT_BOOL, C(reauthenticate), 0, 0, 1, NULL, NULL },
	{ "compete", CT_BOOL, C(compete), 0, 0, 0, NULL, NULL },
	{ "status_file", CT_STR, C(status_file), 0, 0, 0,
	    "/run/brokerd/status", NULL },
	{ "history_file", CT_NSTR, C(history_file), 0, 0, 0, NULL, NULL },
	{ NULL }
};

static const struct config_row config_limits_rows[] = {
	{ "gateway_rate", CT_RATE, C(gateway_rate), 0, 0, 0, "10/s", NULL },
	{ "queue_ms", CT_UINT, C(queue_ms), 0, 600000, 2000, NULL, NULL },
	{ "max_connections", CT_UINT, C(max_connections), 1, 1000000, 1024,
	    NULL, NULL },
	{ "max_header_bytes", CT_SIZE, C(max_header_bytes), 1024, 1048576,
	    16384, NULL, NULL },
	{ "max_body_bytes", CT_SIZE, C(max_body_bytes), 0, 1ULL << 30,
	    1048576, NULL, NULL },
	{ "max_response_bytes", CT_SIZE, C(max_response_bytes), 1024,
	    1ULL << 31, 16777216, NULL, NULL },
	{ "header_timeout_ms", CT_UINT, C(header_timeout_ms), 1, 3600000,
	    10000, NULL, NULL },
	{ "idle_timeout_ms", CT_UINT, C(idle_timeout_ms), 1, 86400000, 60000,
	    NULL, NULL },
	{ "drain_ms", CT_UINT, C(drain_ms), 0, 3600000, 10000, NULL, NULL },
	{ NULL }
};

static const struct config_row config_log_rows[] = {
	{ "level", CT_FN, 0, 0, 0, 0, NULL, config_log_level },
	{ "format", CT_FN, 0, 0, 0, 0, NULL, config_log_format },
	{ NULL }
};

static const struct config_row config_journal_rows[] = {
	{ "file", CT_NSTR, C(journal_file), 0, 0, 0, NULL, NULL },
	{ "max_bytes", CT_SIZE, C(journal_max_bytes), 4096, 1ULL << 40,
	    67108864, NULL, NULL },
	{ "keep", CT_UINT, C(journal_keep), 0, 1000, 10, NULL, NULL },
	{ NULL }
};

static const struct config_row config_trading_rows[] = {
	{ "halt_file", CT_STR, C(halt_file), 0, 0, 0, "/run/brokerd/halt",
	    NULL },
	{ NULL }
};

/* Read in order: an error names the first bad key, as written here. */
static const struct config_row config_route_rows[] = {
	{ "prefix", CT_FN, 0, 0, 0, 0, NULL, config_route_prefix },
	{ "to", CT_FN, 0, 0, 0, 0, NULL, config_route_to },
	{ "methods", CT_FN, 0, 0, 0, 0, NULL, config_route_methods },
	{ "rate", CT_RATE, R(rate), 0, 0, 0, NULL, NULL },
	{ "concurrency", CT_UINT, R(concurrency), 0, 1024, 0, NULL, NULL },
	{ "cache_ms", CT_UINT, R(cache_ms), 0, 86400000, 0, NULL, NULL },
	{ NULL }
};

/* The tables whose fields live in struct config: defaults and frees. */
static const struct config_row *const config_tables[] = {
	config_unix_rows, config_listen_rows, config_tls_rows,
	config_gateway_rows, config_session_rows, config_limits_rows,
	config_log_rows, config_journal_rows, config_trading_rows, NULL
};

/* ---------------------------------------------------------- the tables */

static int
config_value(struct cfg *c, const struct config_row *row, yaml_node_t *n,
    const char *path, void *base)
{
	char	*f = (char *)base + row->off;
	int	 rc = -1;

	switch (row->type) {
	case CT_UINT:
		rc = cfg_unsigned(c, n, path, row->min, row->max,
		    (unsigned *)(void *)f);
		break;
	case CT_SIZE:
		rc = cfg_size(c, n, path, row->min, row->max,
		    (size_t *)(void *)f);
		break;
	case CT_BOOL:
		rc = cfg_bool(c, n, path, (int *)(void *)f);
		break;
	case CT_STR:
	case CT_NSTR:
		rc = cfg_string(c, n, path, row->type == CT_NSTR,
		    (char **)(void *)f);
		break;
	case CT_RATE:
		rc = cfg_rate(c, n, path, (struct rate *)(void *)f);
		break;
	case CT_SCOPES:
		rc = cfg_scopes(c, n, path, (unsigned *)(void *)f);
		break;
	case CT_FN:
		return (row->fn(c, n, path));
	}
	if (rc == 0 && row->fn != NULL)
		rc = row->fn(c, n, path);
	return (rc);
}

static void
config_names(const struct config_row *rows, const char **names)
{
	size_t	 i;

	for (i = 0; rows[i].name != NULL && i < CFG_MAX_ROWS; i++)
		names[i] = rows[i].name;
	names[i] = NULL;
}

/* The keys given (v[i] for rows[i]), in the table's order. */
static int
config_apply(struct cfg *c, const struct config_row *rows, yaml_node_t **v,
    const char *path, void *base)
{
	char	 p[CFG_PATH];
	size_t	 i;

	for (i = 0; rows[i].name != NULL; i++) {
		if (v[i] == NULL)
			continue;
		cfg_path(p, path, rows[i].name);
		if (config_value(c, &rows[i], v[i], p, base) == -1)
			return (-1);
	}
	return (0);
}

static int
config_section(struct cfg *c, yaml_node_t *n, const char *path,
    const struct config_row *rows)
{
	const char	*names[CFG_MAX_ROWS + 1];
	yaml_node_t	*v[CFG_MAX_ROWS];

	config_names(rows, names);
	if (cfg_collect(c, n, path, names, v) == -1)
		return (-1);
	return (config_apply(c, rows, v, path, c->conf));
}

static int
config_defaults(struct config *conf)
{
	const struct config_row *row;
	size_t	 i;
	char	*f;

	memset(conf, 0, sizeof(*conf));
	for (i = 0; config_tables[i] != NULL; i++)
		for (row = config_tables[i]; row->name != NULL; row++) {
			f = (char *)conf + row->off;
			if (row->type == CT_UINT)
				*(unsigned *)(void *)f = (unsigned)row->def;
			else if (row->type == CT_SIZE)
				*(size_t *)(void *)f = (size_t)row->def;
			else if (row->type == CT_BOOL)
				*(int *)(void *)f = (int)row->def;
			else if (row->type == CT_RATE && row->sdef != NULL)
				(void)value_rate_parse(row->sdef,
				    (struct rate *)(void *)f);
			else if ((row->type == CT_STR ||
			    row->type == CT_NSTR) && row->sdef != NULL &&
			    (*(char **)(void *)f = strdup(row->sdef)) == NULL)
				return (-1);
		}
	conf->unix_mode = 0660;
	conf->unix_group_default = 1;
	conf->log_level = LOG_LEVEL_INFO;
	if ((conf->gw_url = strdup("https://127.0.0.1:5000")) == NULL ||
	    (conf->gw_host = strdup("127.0.0.1")) == NULL ||
	    (conf->gw_port = strdup("5000")) == NULL)
		return (-1);
	return (0);
}

/* ---------------------------------------------------------------- listen */

static int
config_unix_path(struct cfg *c, yaml_node_t *n, const char *path)
{
	if (strlen(c->conf->unix_path) >= 108)
		return (cfg_errorf(c, n, path, "longer than a Unix "
		    "socket path may be (107 bytes)"));
	return (0);
}

static int
config_unix_mode(struct cfg *c, yaml_node_t *n, const char *path)
{
	const char	*s;
	unsigned	 mode;

	if (cfg_scalar(c, n, path, &s) == -1)
		return (-1);
	if (value_mode(s, &mode) == -1)
		return (cfg_errorf(c, n, path, "bad mode (expected octal "
		    "such as \"0660\")"));
	c->conf->unix_mode = (mode_t)mode;
	return (0);
}

static int
config_unix_group(struct cfg *c, yaml_node_t *n, const char *path)
{
	struct config	*conf = c->conf;
	char		 shown[80];

	conf->unix_group_default = 0;
	if (conf->unix_group != NULL &&
	    strcmp(conf->unix_group, CFG_DEF_GROUP) == 0)
		/* the default written out: a warning if missing */
		conf->unix_group_default = 1;
	else if (conf->unix_group != NULL &&
	    getgrnam(conf->unix_group) == NULL) {
		cfg_sanitize(shown, sizeof(shown), conf->unix_group,
		    strlen(conf->unix_group));
		return (cfg_errorf(c, n, path, "no such group \"%s\"",
		    shown));
	}
	return (0);
}

static int
config_listen_unix(struct cfg *c, yaml_node_t *n, const char *path)
{
	return (config_section(c, n, path, config_unix_rows));
}

static int
config_listen_tcp(struct cfg *c, yaml_node_t *n, const char *path)
{
	struct config	*conf = c->conf;
	char		 why[160];

	if (cfg_string(c, n, path, 1, &conf->tcp) == -1)
		return (-1);
	if (conf->tcp != NULL && value_loopback_hostport(conf->tcp, 1,
	    &conf->tcp_addr, &conf->tcp_addrlen, why, sizeof(why)) == -1)
		return (cfg_errorf(c, n, path, "%s", why));
	return (0);
}

/* --------------------------------------------------------------- gateway */

static int
config_set_gw_url(struct config *conf, const char *url, char *why,
    size_t whylen)
{
	char	 host[256], port[8];
	char	*h = NULL, *p = NULL, *u = NULL;

	if (value_https_url(url, host, sizeof(host), port, sizeof(port), why,
	    whylen) == -1)
		return (-1);
	if ((h = strdup(host)) == NULL || (p = strdup(port)) == NULL ||
	    (u = strdup(url)) == NULL) {
		free(h);
		free(p);
		snprintf(why, whylen, "out of memory");
		return (-1);
	}
	free(conf->gw_url);
	free(conf->gw_host);
	free(conf->gw_port);
	conf->gw_url = u;
	conf->gw_host = h;
	conf->gw_port = p;
	return (0);
}

static int
config_gw_url(struct cfg *c, yaml_node_t *n, const char *path)
{
	const char	*s;
	char		 why[160];

	if (cfg_scalar(c, n, path, &s) == -1)
		return (-1);
	if (config_set_gw_url(c->conf, s, why, sizeof(why)) == -1)
		return (cfg_errorf(c, n, path, "%s", why));
	return (0);
}

static int
config_gw_pin(struct cfg *c, yaml_node_t *n, const char *path)
{
	const char	*s;

	if (cfg_is_null(n)) {
		c->conf->gw_has_pin = 0;
		return (0);
	}
	if (cfg_scalar(c, n, path, &s) == -1)
		return (-1);
	if (value_pin(s, c->conf->gw_pin) == -1)
		return (cfg_errorf(c, n, path, "expected a SHA-256 "
		    "fingerprint: 32 bytes as colon hex (AB:CD:...) or 64 hex "
		    "digits"));
	c->conf->gw_has_pin = 1;
	return (0);
}

/* The CA file must be readable now, not at the first connection. */
static int
config_gw_ca_file(struct cfg *c, yaml_node_t *n, const char *path)
{
	const char	*file = c->conf->gw_ca_file;
	int		 fd;

	if (file == NULL)
		return (0);
	if ((fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1)
		return (cfg_errorf(c, n, path, "%s: %s", file,
		    strerror(errno)));
	close(fd);
	return (0);
}

static int
config_gateway_tls(struct cfg *c, yaml_node_t *n, const char *path)
{
	return (config_section(c, n, path, config_tls_rows));
}

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

static int
config_key_file(const char *path, char **key, size_t *keylen, char *why,
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
static int
config_add_key(struct config *conf, const char *name, const char *secret,
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
	if (config_key_file(s, secret, len, why, sizeof(why)) == -1)
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
	if (config_add_key(conf, name, v[1] != NULL ?
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

static int
config_keys(struct cfg *c, yaml_node_t *n, const char *path)
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

static int
config_peers(struct cfg *c, yaml_node_t *n, const char *path)
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
	config_names(config_route_rows, names);
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
	return (config_apply(c, config_route_rows, v, path,
	    config_route_last(c)));
}

static int
config_routes(struct cfg *c, yaml_node_t *n, const char *path)
{
	c->have_routes = 1;
	return (cfg_list(c, n, path, config_route));
}

/* ------------------------------------------------------------------- log */

static int
config_log_level(struct cfg *c, yaml_node_t *n, const char *path)
{
	const char	*s;
	int		 lvl;

	if (cfg_scalar(c, n, path, &s) == -1)
		return (-1);
	if ((lvl = log_level_parse(s)) == -1)
		return (cfg_errorf(c, n, path, "expected error, warn, info or "
		    "debug"));
	c->conf->log_level = lvl;
	return (0);
}

static int
config_log_format(struct cfg *c, yaml_node_t *n, const char *path)
{
	const char	*s;

	if (cfg_scalar(c, n, path, &s) == -1)
		return (-1);
	if (strcmp(s, "text") == 0)
		c->conf->log_json = 0;
	else if (strcmp(s, "json") == 0)
		c->conf->log_json = 1;
	else
		return (cfg_errorf(c, n, path, "expected text or json"));
	return (0);
}

/* -------------------------------------------------------------- the root */

static int
config_listen(struct cfg *c, yaml_node_t *n, const char *path)
{
	return (config_section(c, n, path, config_listen_rows));
}

static int
config_gateway(struct cfg *c, yaml_node_t *n, const char *path)
{
	return (config_section(c, n, path, config_gateway_rows));
}

static int
config_session(struct cfg *c, yaml_node_t *n, const char *path)
{
	return (config_section(c, n, path, config_session_rows));
}

static int
config_limits(struct cfg *c, yaml_node_t *n, const char *path)
{
	return (config_section(c, n, path, config_limits_rows));
}

static int
config_log(struct cfg *c, yaml_node_t *n, const char *path)
{
	return (config_section(c, n, path, config_log_rows));
}

static int
config_journal(struct cfg *c, yaml_node_t *n, const char *path)
{
	return (config_section(c, n, path, config_journal_rows));
}

static int
config_trading(struct cfg *c, yaml_node_t *n, const char *path)
{
	return (config_section(c, n, path, config_trading_rows));
}

static const struct config_row config_root_rows[] = {
	{ "listen", CT_FN, 0, 0, 0, 0, NULL, config_listen },
	{ "gateway", CT_FN, 0, 0, 0, 0, NULL, config_gateway },
	{ "session", CT_FN, 0, 0, 0, 0, NULL, config_session },
	{ "keys", CT_FN, 0, 0, 0, 0, NULL, config_keys },
	{ "peers", CT_FN, 0, 0, 0, 0, NULL, config_peers },
	{ "routes", CT_FN, 0, 0, 0, 0, NULL, config_routes },
	{ "limits", CT_FN, 0, 0, 0, 0, NULL, config_limits },
	{ "log", CT_FN, 0, 0, 0, 0, NULL, config_log },
	{ "journal", CT_FN, 0, 0, 0, 0, NULL, config_journal },
	{ "trading", CT_FN, 0, 0, 0, 0, NULL, config_trading },
	{ NULL }
};

static int
config_root(struct cfg *c, yaml_node_t *root)
{
	return (config_section(c, root, "", config_root_rows));
}

/* --------------------------------------------------------- the file */

/* Read the whole file (bounded); *text is wiped and freed by the caller. */
static int
config_read_file(const char *file, char **text, size_t *len, char *err,
    size_t errlen)
{
	char	*data = NULL, *p;
	size_t	 cap = 0, n = 0;
	ssize_t	 r;
	int	 fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return (-1);
	}
	for (;;) {
		if (n == cap) {
			if (cap >= CFG_MAX_FILE) {
				snprintf(err, errlen, "%s: larger than %d "
				    "bytes", file, CFG_MAX_FILE);
				goto fail;
			}
			cap = cap == 0 ? 8192 : cap * 2;
			if ((p = malloc(cap + 1)) == NULL)
				goto nomem;
			if (data != NULL) {
				memcpy(p, data, n);
				explicit_bzero(data, n);
				free(data);
			}
			data = p;
		}
		r = read(fd, data + n, cap - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			snprintf(err, errlen, "%s: %s", file, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (data == NULL && (data = malloc(1)) == NULL)
		goto nomem;
	close(fd);
	data[n] = '\0';
	*text = data;
	*len = n;
	return (0);
nomem:
	snprintf(err, errlen, "%s: out of memory", file);
fail:
	if (data != NULL) {
		explicit_bzero(data, n);
		free(data);
	}
	close(fd);
	return (-1);
}

static int
config_parse_file(struct cfg *c)
{
	char	*text = NULL;
	size_t	 len = 0;
	int	 rc;

	if (config_read_file(c->file, &text, &len, c->err, c->errlen) == -1)
		return (-1);
	rc = cfg_parse(c, text, len, config_root);
	explicit_bzero(text, len);
	free(text);
	return (rc);
}

/* ----------------------------------------------------------- environment */

static int
config_env_key(struct config *conf, const char *s, char *err, size_t errlen)
{
	char	 why[160];
	size_t	 i, len = strlen(s);

	if (value_key_ok(s, len, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "IBKR_BRIDGE_KEY: %s", why);
		return (-1);
	}
	/* the environment wins: it replaces a file key named env */
	for (i = 0; i < conf->nkeys; i++)
		if (strcmp(conf->keys[i].name, "env") == 0) {
			free(conf->keys[i].name);
			memmove(&conf->keys[i], &conf->keys[i + 1],
			    (conf->nkeys - i - 1) * sizeof(conf->keys[0]));
			conf->nkeys--;
			break;
		}
	if (config_add_key(conf, "env", s, len,
	    SCOPE_READ | SCOPE_TRADE | SCOPE_ADMIN) == -1) {
		snprintf(err, errlen, "IBKR_BRIDGE_KEY: out of memory");
		return (-1);
	}
	return (0);
}

/* http://HOST[:PORT][/] on loopback, as a client would write it. */
static int
config_env_bridge_url(struct config *conf, const char *s, char *err,
    size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t	 sslen = 0;
	char		 hp[128], why[160], *tcp;
	const char	*rb;
	size_t		 len;

	if (strncasecmp(s, "http://", 7) != 0) {
		snprintf(err, errlen, "IBKR_BRIDGE_URL: expected "
		    "http://127.0.0.1:PORT (brokerd's TCP listener "
		    "speaks plain HTTP on loopback only)");
		return (-1);
	}
	len = strlen(s + 7);
	if (len > 0 && s[7 + len - 1] == '/')
		len--;
	if (len == 0 || len >= sizeof(hp) ||
	    memchr(s + 7, '/', len) != NULL ||
	    memchr(s + 7, '@', len) != NULL) {
		snprintf(err, errlen, "IBKR_BRIDGE_URL: expected "
		    "http://HOST:PORT with no path");
		return (-1);
	}
	memcpy(hp, s + 7, len);
	hp[len] = '\0';
	if (value_loopback_hostport(hp, 0, &ss, &sslen, why,
	    sizeof(why)) == -1) {
		snprintf(err, errlen, "IBKR_BRIDGE_URL: %s", why);
		return (-1);
	}
	rb = strrchr(hp, ']');
	if (rb != NULL ? rb[1] == '\0' : strchr(hp, ':') == NULL) {
		/* no port written: http's 80 */
		if (strlen(hp) + 3 >= sizeof(hp)) {
			snprintf(err, errlen, "IBKR_BRIDGE_URL: too long");
			return (-1);
		}
		strcat(hp, ":80");
	}
	if ((tcp = strdup(hp)) == NULL) {
		snprintf(err, errlen, "IBKR_BRIDGE_URL: out of memory");
		return (-1);
	}
	free(conf->tcp);
	conf->tcp = tcp;
	conf->tcp_addr = ss;
	conf->tcp_addrlen = sslen;
	return (0);
}

static int
config_env(struct config *conf, char *err, size_t errlen)
{
	const char	*s;
	char		 why[160];

	if ((s = getenv("IBKR_BRIDGE_KEY")) != NULL &&
	    config_env_key(conf, s, err, errlen) == -1)
		return (-1);
	if ((s = getenv("IBKR_BRIDGE_URL")) != NULL && *s != '\0' &&
	    config_env_bridge_url(conf, s, err, errlen) == -1)
		return (-1);
	if ((s = getenv("IBKR_GATEWAY_URL")) != NULL && *s != '\0' &&
	    config_set_gw_url(conf, s, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "IBKR_GATEWAY_URL: %s", why);
		return (-1);
	}
	return (0);
}

/* ------------------------------------------------------------------- API */

struct config *
config_load(const char *file, char *err, size_t errlen)
{
	struct config	*conf;
	struct cfg	 c;

	if ((conf = malloc(sizeof(*conf))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (NULL);
	}
	if (config_defaults(conf) == -1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	memset(&c, 0, sizeof(c));
	c.file = file;
	c.conf = conf;
	c.err = err;
	c.errlen = errlen;
	if (file != NULL) {
		if ((conf->file = strdup(file)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		if (config_parse_file(&c) == -1)
			goto fail;
	}
	if (!c.have_routes && route_defaults(&conf->routes,
	    &conf->nroutes) == -1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (config_env(conf, err, errlen) == -1)
		goto fail;
	return (conf);
fail:
	config_free(conf);
	return (NULL);
}

void
config_free(struct config *conf)
{
	const struct config_row *row;
	size_t	 i;

	if (conf == NULL)
		return;
	for (i = 0; config_tables[i] != NULL; i++)
		for (row = config_tables[i]; row->name != NULL; row++)
			if (row->type == CT_STR || row->type == CT_NSTR)
				free(*(char **)(void *)((char *)conf +
				    row->off));
	free(conf->file);
	free(conf->tcp);
	free(conf->gw_url);
	free(conf->gw_host);
	free(conf->gw_port);
	for (i = 0; i < conf->nkeys; i++)
		free(conf->keys[i].name);
	if (conf->keys != NULL)
		explicit_bzero(conf->keys, conf->nkeys * sizeof(*conf->keys));
	free(conf->keys);
	for (i = 0; i < conf->npeers; i++)
		free(conf->peers[i].name);
	free(conf->peers);
	route_free_table(conf->routes, conf->nroutes);
	free(conf);
}

/* What -t and every start should say out loud. */
void
config_warnings(const struct config *conf)
{
	char	 scopes[64];
	size_t	 off = 0;
	unsigned bit;

	if (!conf->gw_has_pin && conf->gw_ca_file == NULL &&
	    !conf->gw_insecure)
		log_warn("gateway.tls: no pin_sha256, ca_file or insecure "
		    "configured: the Gateway's certificate cannot be verified "
		    "(run `brokerd gateway-fingerprint` and set pin_sha256)");
	if (conf->gw_insecure)
		log_warn("gateway.tls.insecure is true: the Gateway's "
		    "certificate is not verified");
	if (conf->tcp_anonymous != 0) {
		scopes[0] = '\0';
		for (bit = 1; bit <= SCOPE_ADMIN; bit <<= 1) {
			int n;

			if (!(conf->tcp_anonymous & bit))
				continue;
			n = snprintf(scopes + off, sizeof(scopes) - off, "%s%s",
			    off > 0 ? ", " : "", auth_scope_name(bit));
			if (n < 0 || (size_t)n >= sizeof(scopes) - off)
				break;
			off += (size_t)n;
		}
		log_warn("listen.tcp_anonymous grants [%s] to keyless requests "
		    "on the TCP listener%s", scopes, conf->tcp == NULL ?
		    " (no TCP listener is configured)" : "");
	}
	if (conf->unix_group_default && conf->unix_group != NULL &&
	    getgrnam(conf->unix_group) == NULL)
		log_warn("listen.unix.group: group %s does not exist; the "
		    "socket keeps brokerd's own group (groupadd --system %s)",
		    conf->unix_group, conf->unix_group);
	if (conf->tickle_interval_s > 300)
		log_warn("session.tickle_interval_s is %u: the Gateway drops "
		    "a session idle for about 5 minutes",
		    conf->tickle_interval_s);
	if (conf->nkeys == 0 && conf->npeers == 0)
		log_warn("no keys and no peers: only /health and "
		    "/gateway/auth-status can be used");
}
