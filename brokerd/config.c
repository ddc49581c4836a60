/*
 * Configuration: YAML -> a new struct config, validated completely, then
 * the environment on top.  Nothing is half applied: the caller swaps the
 * whole struct or keeps the old one.  The sections are tables of rows
 * (name, type, field, range, default), so adding a limit is one row;
 * config_yaml.c turns nodes into values with FILE:LINE:COL errors,
 * config_lists.c reads keys, peers and routes, and value.c holds the
 * checks shared with listen and client.  This file reads the config file
 * and the environment: its edge.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
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
#define CFG_DEF_GROUP	"brokerd"


#define C(f)	offsetof(struct config, f)

static int	config_unix_path(struct cfg *, yaml_node_t *, const char *);
static int	config_unix_mode(struct cfg *, yaml_node_t *, const char *);
static int	config_unix_group(struct cfg *, yaml_node_t *, const char *);
static int	config_sub(struct cfg *, yaml_node_t *, const char *);
static int	config_listen_tcp(struct cfg *, yaml_node_t *, const char *);
static int	config_gw_url(struct cfg *, yaml_node_t *, const char *);
static int	config_gw_pin(struct cfg *, yaml_node_t *, const char *);
static int	config_gw_ca_file(struct cfg *, yaml_node_t *, const char *);
static int	config_journal_file(struct cfg *, yaml_node_t *, const char *);
static int	config_log_level(struct cfg *, yaml_node_t *, const char *);
static int	config_log_format(struct cfg *, yaml_node_t *, const char *);
static int	config_tcp_max(struct cfg *, yaml_node_t *, const char *);
static int	config_stream(struct cfg *, yaml_node_t *, const char *);

static const struct cfg_row config_unix_rows[] = {
	{ "path", CT_STR, C(unix_path), 0, 0, 0, "/run/brokerd/brokerd.sock",
	    config_unix_path },
	{ "mode", CT_FN, 0, 0, 0, 0, NULL, config_unix_mode },
	{ "group", CT_NSTR, C(unix_group), 0, 0, 0, CFG_DEF_GROUP,
	    config_unix_group },
	{ NULL }
};

static const struct cfg_row config_listen_rows[] = {
	{ "unix", CT_FN, 0, 0, 0, 0, NULL, config_sub },
	{ "tcp", CT_FN, 0, 0, 0, 0, NULL, config_listen_tcp },
	{ "tcp_anonymous", CT_SCOPES, C(tcp_anonymous), 0, 0, 0, NULL, NULL },
	{ NULL }
};

static const struct cfg_row config_tls_rows[] = {
	{ "pin_sha256", CT_FN, 0, 0, 0, 0, NULL, config_gw_pin },
	{ "ca_file", CT_NSTR, C(gw_ca_file), 0, 0, 0, NULL,
	    config_gw_ca_file },
	{ "insecure", CT_BOOL, C(gw_insecure), 0, 0, 0, NULL, NULL },
	{ NULL }
};

static const struct cfg_row config_gateway_rows[] = {
	{ "url", CT_FN, 0, 0, 0, 0, NULL, config_gw_url },
	{ "tls", CT_FN, 0, 0, 0, 0, NULL, config_sub },
	{ "pool", CT_UINT, C(gw_pool), 1, 64, 4, NULL, NULL },
	{ "connect_timeout_ms", CT_UINT, C(gw_connect_timeout_ms), 1, 600000,
	    3000, NULL, NULL },
	{ "timeout_ms", CT_UINT, C(gw_timeout_ms), 1, 3600000, 15000, NULL,
	    NULL },
	{ NULL }
};

static const struct cfg_row config_session_rows[] = {
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

static const struct cfg_row config_limits_rows[] = {
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
	{ "send_timeout_ms", CT_UINT, C(send_timeout_ms), 1, 86400000, 60000,
	    NULL, NULL },
	{ "drain_ms", CT_UINT, C(drain_ms), 0, 3600000, 10000, NULL, NULL },
	/* Past a second of jitter the machine is broken, not the pacing. */
	{ "rate_slack_ms", CT_UINT, C(rate_slack_ms), 0, 1000, 100, NULL,
	    NULL },
	/* 0: three quarters of max_connections (config_load) */
	{ "max_tcp_connections", CT_UINT, C(max_tcp_connections), 1, 1000000,
	    0, NULL, config_tcp_max },
	{ NULL }
};

static const struct cfg_row config_log_rows[] = {
	{ "level", CT_FN, 0, 0, 0, 0, NULL, config_log_level },
	{ "format", CT_FN, 0, 0, 0, 0, NULL, config_log_format },
	{ NULL }
};

static const struct cfg_row config_journal_rows[] = {
	{ "file", CT_NSTR, C(journal_file), 0, 0, 0, NULL,
	    config_journal_file },
	{ "max_bytes", CT_SIZE, C(journal_max_bytes), 4096, 1ULL << 40,
	    67108864, NULL, NULL },
	{ "keep", CT_UINT, C(journal_keep), 0, 1000, 10, NULL, NULL },
	{ NULL }
};

static const struct cfg_row config_trading_rows[] = {
	{ "halt_file", CT_STR, C(halt_file), 0, 0, 0, "/run/brokerd/halt",
	    NULL },
	{ NULL }
};

static const struct cfg_row config_stream_rows[] = {
	{ "max_subscribers", CT_UINT, C(stream_max_subscribers), 1, 100000,
	    256, NULL, NULL },
	/* IBKR's market data lines: 100 unless the account bought more */
	{ "max_conids", CT_UINT, C(stream_max_conids), 1, 10000, 100, NULL,
	    NULL },
	/* ssd, sld, sbd: one per account each; bounds brokerd's memory */
	{ "max_account_topics", CT_UINT, C(stream_max_account_topics), 1,
	    100000, 1000, NULL, NULL },
	{ "conflate_bytes", CT_SIZE, C(stream_conflate_bytes), 1024,
	    1ULL << 30, 262144, NULL, NULL },
	{ "max_buffer_bytes", CT_SIZE, C(stream_max_buffer_bytes), 4096,
	    1ULL << 32, 4194304, NULL, NULL },
	{ "max_message_bytes", CT_SIZE, C(stream_max_message_bytes), 128,
	    16777216, 65536, NULL, NULL },
	{ NULL }
};

/* The sections by key path; their fields live in struct config. */
static const struct {
	const char		*path;
	const struct cfg_row	*rows;
} config_tables[] = {
	{ "listen", config_listen_rows }, { "listen.unix", config_unix_rows },
	{ "gateway", config_gateway_rows }, { "gateway.tls", config_tls_rows },
	{ "session", config_session_rows }, { "limits", config_limits_rows },
	{ "log", config_log_rows }, { "journal", config_journal_rows },
	{ "trading", config_trading_rows }, { "stream", config_stream_rows },
	{ NULL, NULL }
};

/* A section of struct config, its table found by its key path. */
static int
config_sub(struct cfg *c, yaml_node_t *n, const char *path)
{
	size_t	 i;

	for (i = 0; config_tables[i].path != NULL; i++)
		if (strcmp(config_tables[i].path, path) == 0)
			return (cfg_section(c, n, path, config_tables[i].rows,
			    c->conf));
	return (cfg_errorf(c, n, path, "no table"));
}

/* ---------------------------------------------------------- the tables */

static int
config_defaults(struct config *conf)
{
	const struct cfg_row *row;
	size_t	 i;
	char	*f;

	memset(conf, 0, sizeof(*conf));
	for (i = 0; config_tables[i].path != NULL; i++)
		for (row = config_tables[i].rows; row->name != NULL; row++) {
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

/* TCP clients never take the Unix socket's share. */
static int
config_tcp_max(struct cfg *c, yaml_node_t *n, const char *path)
{
	const struct config *conf = c->conf;

	if (conf->max_tcp_connections > conf->max_connections)
		return (cfg_errorf(c, n, path, "%u is more than "
		    "limits.max_connections (%u)", conf->max_tcp_connections,
		    conf->max_connections));
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

/* ---------------------------------------------------------------- journal */

/*
 * What start (journal_open) and rotation need, checked now, so that -t
 * fails where start would: the folder exists and the running user may
 * create and rename files in it; an existing file is writable.
 */
static int
config_journal_file(struct cfg *c, yaml_node_t *n, const char *path)
{
	const char	*file = c->conf->journal_file, *slash;
	char		 dir[PATH_MAX];
	struct stat	 st;
	int		 len;

	if (file == NULL)
		return (0);
	if (*file == '\0')
		return (cfg_errorf(c, n, path, "must not be empty"));
	if ((slash = strrchr(file, '/')) == NULL)
		len = snprintf(dir, sizeof(dir), ".");
	else
		len = snprintf(dir, sizeof(dir), "%.*s", slash == file ? 1 :
		    (int)(slash - file), file);
	if (len < 0 || (size_t)len >= sizeof(dir))
		return (cfg_errorf(c, n, path, "path too long"));
	if (stat(dir, &st) == -1)
		return (cfg_errorf(c, n, path, "folder %s: %s", dir,
		    strerror(errno)));
	if (!S_ISDIR(st.st_mode))
		return (cfg_errorf(c, n, path, "%s is not a folder", dir));
	if (access(dir, W_OK | X_OK) == -1)
		return (cfg_errorf(c, n, path, "folder %s: %s", dir,
		    strerror(errno)));
	if (stat(file, &st) == 0 && access(file, W_OK) == -1)
		return (cfg_errorf(c, n, path, "%s: %s", file,
		    strerror(errno)));
	return (0);
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

static const struct cfg_row config_root_rows[] = {
	{ "listen", CT_FN, 0, 0, 0, 0, NULL, config_sub },
	{ "gateway", CT_FN, 0, 0, 0, 0, NULL, config_sub },
	{ "session", CT_FN, 0, 0, 0, 0, NULL, config_sub },
	{ "keys", CT_FN, 0, 0, 0, 0, NULL, config_lists_keys },
	{ "peers", CT_FN, 0, 0, 0, 0, NULL, config_lists_peers },
	{ "routes", CT_FN, 0, 0, 0, 0, NULL, config_lists_routes },
	{ "limits", CT_FN, 0, 0, 0, 0, NULL, config_sub },
	{ "log", CT_FN, 0, 0, 0, 0, NULL, config_sub },
	{ "journal", CT_FN, 0, 0, 0, 0, NULL, config_sub },
	{ "trading", CT_FN, 0, 0, 0, 0, NULL, config_sub },
	{ "stream", CT_FN, 0, 0, 0, 0, NULL, config_stream },
	{ NULL }
};

/* The row of the table named name (it is there). */
static size_t
config_row_of(const struct cfg_row *rows, const char *name)
{
	size_t	 i;

	for (i = 0; strcmp(rows[i].name, name) != 0; i++)
		;
	return (i);
}

/*
 * Conflation must start before the buffer is full: with conflate_bytes
 * at or past max_buffer_bytes a subscriber of market data alone would be
 * closed 1008 where it should have been conflated.  Checked once the
 * whole section is read, at whichever of the two was written.
 */
static int
config_stream(struct cfg *c, yaml_node_t *n, const char *path)
{
	const struct config *conf = c->conf;
	const char	*names[CFG_MAX_ROWS + 1];
	yaml_node_t	*v[CFG_MAX_ROWS], *at;
	char		 p[CFG_PATH];
	size_t		 cb, mb;

	cfg_names(config_stream_rows, names);
	if (cfg_collect(c, n, path, names, v) == -1 ||
	    cfg_apply(c, config_stream_rows, v, path, c->conf) == -1)
		return (-1);
	if (conf->stream_conflate_bytes < conf->stream_max_buffer_bytes)
		return (0);
	cb = config_row_of(config_stream_rows, "conflate_bytes");
	mb = config_row_of(config_stream_rows, "max_buffer_bytes");
	if ((at = v[cb]) != NULL) {
		cfg_path(p, path, "conflate_bytes");
		return (cfg_errorf(c, at, p, "%zu is not less than "
		    "stream.max_buffer_bytes (%zu): market data would be "
		    "closed 1008 instead of conflated",
		    conf->stream_conflate_bytes,
		    conf->stream_max_buffer_bytes));
	}
	cfg_path(p, path, "max_buffer_bytes");
	return (cfg_errorf(c, v[mb] != NULL ? v[mb] : n, p, "%zu is not more "
	    "than stream.conflate_bytes (%zu): market data would be closed "
	    "1008 instead of conflated", conf->stream_max_buffer_bytes,
	    conf->stream_conflate_bytes));
}

static int
config_root(struct cfg *c, yaml_node_t *root)
{
	return (cfg_section(c, root, "", config_root_rows, c->conf));
}

/* --------------------------------------------------------- the file */

/*
 * Read the whole file (bounded); *text is wiped and freed by the caller.
 * *mode is the file's, for config_warnings.
 */
static int
config_read_file(const char *file, char **text, size_t *len, mode_t *mode,
    char *err, size_t errlen)
{
	struct stat	 st;
	char		*data = NULL, *p;
	size_t		 cap = 0, n = 0;
	ssize_t		 r;
	int		 fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return (-1);
	}
	*mode = fstat(fd, &st) == 0 ? st.st_mode & 07777 : 0;
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

	if (config_read_file(c->file, &text, &len, &c->conf->file_mode,
	    c->err, c->errlen) == -1)
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
	if (config_lists_add_key(conf, "env", s, len,
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
	/* Three quarters by default: the rest stays for the Unix socket. */
	if (conf->max_tcp_connections == 0 &&
	    (conf->max_tcp_connections = (unsigned)((uint64_t)
	    conf->max_connections * 3 / 4)) == 0)
		conf->max_tcp_connections = 1;
	conf->refs = 1;
	return (conf);
fail:
	config_free(conf);
	return (NULL);
}

void
config_free(struct config *conf)
{
	const struct cfg_row *row;
	size_t	 i;

	if (conf == NULL)
		return;
	for (i = 0; config_tables[i].path != NULL; i++)
		for (row = config_tables[i].rows; row->name != NULL; row++)
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

/*
 * A reload retires a configuration while requests still hold its routes,
 * and holders may live long (a subscriber lives as long as its client):
 * each holder counts itself, and the last to let go frees it.  The count
 * is bookkeeping, not configuration, so a holder of a const one may count.
 */
const struct config *
config_ref(const struct config *conf)
{
	((struct config *)conf)->refs++;
	return (conf);
}

void
config_unref(const struct config *conf)
{
	struct config	*c = (struct config *)conf;

	if (c != NULL && --c->refs == 0)
		config_free(c);
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
	/* Like ssh's unprotected key file, but a warning: it used to pass. */
	if (conf->file != NULL && conf->ninline > 0 &&
	    (conf->file_mode & 077) != 0)
		log_warn("%s is readable by group or others (mode %04o) and "
		    "holds the inline key \"%s\" (%zu in all): chmod 600 %s, "
		    "or move the keys to key_file", conf->file,
		    (unsigned)conf->file_mode, conf->inline_key,
		    conf->ninline, conf->file);
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

/*
 * A hidden knob for the tests (brokerd(8) ENVIRONMENT), in milliseconds:
 * def unless set to a number in 1..86400000.  The Gateway WebSocket's
 * timers (streamup.c) and the subscribers' ping (subscriber.c).
 */
unsigned
config_env_ms(const char *name, unsigned def)
{
	const char	*v = getenv(name);
	char		*end;
	unsigned long	 n;

	if (v == NULL || *v == '\0')
		return (def);
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || n == 0 || n > 86400000UL)
		return (def);
	return ((unsigned)n);
}
