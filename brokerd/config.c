/*
 * Configuration: YAML (libyaml's document API) -> a new struct config,
 * validated completely, then the environment on top.  Nothing is half
 * applied: the caller swaps the whole struct or keeps the old one.  Every
 * error names FILE:LINE:COL and the key path.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <yaml.h>

#include "brokerd.h"

#define CFG_MAX_FILE	(4 * 1024 * 1024)	/* bytes of YAML */
#define CFG_MAX_KEYFILE	4096			/* bytes of a key file */
#define CFG_MIN_KEY	16			/* bytes of a key */
#define CFG_PATH	256			/* "routes[3].methods.GET" */
#define CFG_DEF_GROUP	"brokerd"

/* One load in progress. */
struct cfg {
	const char	*file;		/* for messages */
	const char	*text;		/* the YAML, for reader error offsets */
	size_t		 textlen;
	yaml_document_t	*doc;
	struct config	*conf;
	char		*err;
	size_t		 errlen;
};

static int	 cfg_errorf(struct cfg *, const yaml_node_t *, const char *,
		    const char *, ...) __attribute__((format(printf, 4, 5)));

/* ---------------------------------------------------------------- errors */

/* User text in a message: printable, bounded (no terminal escapes). */
static void
cfg_sanitize(char *out, size_t outlen, const char *in, size_t inlen)
{
	size_t	 i, o = 0;

	for (i = 0; i < inlen && o + 4 < outlen; i++)
		out[o++] = isprint((unsigned char)in[i]) ? in[i] : '?';
	if (i < inlen && o + 4 <= outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static int
cfg_errorf(struct cfg *c, const yaml_node_t *node, const char *path,
    const char *fmt, ...)
{
	char	 msg[768];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (node != NULL)
		snprintf(c->err, c->errlen, "%s:%zu:%zu: %s%s%s", c->file,
		    node->start_mark.line + 1, node->start_mark.column + 1,
		    path != NULL ? path : "", path != NULL ? ": " : "", msg);
	else
		snprintf(c->err, c->errlen, "%s: %s%s%s", c->file,
		    path != NULL ? path : "", path != NULL ? ": " : "", msg);
	return (-1);
}

/* A key path for messages; a truncated one still helps, so keep it. */
static void
cfg_path(char *out, const char *parent, const char *child)
{
	int	 n;

	if (parent == NULL || *parent == '\0')
		n = snprintf(out, CFG_PATH, "%s", child);
	else
		n = snprintf(out, CFG_PATH, "%s.%s", parent, child);
	if (n < 0)
		out[0] = '\0';
}

static void
cfg_path_index(char *out, const char *parent, size_t i)
{
	if (snprintf(out, CFG_PATH, "%s[%zu]", parent, i) < 0)
		out[0] = '\0';
}

/* ------------------------------------------------------------ YAML nodes */

static yaml_node_t *
cfg_node(struct cfg *c, int id)
{
	return (yaml_document_get_node(c->doc, id));
}

static int
cfg_is_null(const yaml_node_t *n)
{
	const char *v;

	if (n == NULL)
		return (1);
	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return (0);
	v = (const char *)n->data.scalar.value;
	return (n->data.scalar.length == 0 || strcmp(v, "~") == 0 ||
	    strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
	    strcmp(v, "NULL") == 0);
}

/* A scalar as a C string; refuses lists, maps and embedded NULs. */
static int
cfg_scalar(struct cfg *c, yaml_node_t *n, const char *path, const char **out)
{
	if (n->type == YAML_SEQUENCE_NODE)
		return (cfg_errorf(c, n, path, "expected a value, not a list"));
	if (n->type == YAML_MAPPING_NODE)
		return (cfg_errorf(c, n, path,
		    "expected a value, not a mapping"));
	if (n->type != YAML_SCALAR_NODE)
		return (cfg_errorf(c, n, path, "expected a value"));
	if (strlen((const char *)n->data.scalar.value) !=
	    n->data.scalar.length)
		return (cfg_errorf(c, n, path, "contains a NUL byte"));
	*out = (const char *)n->data.scalar.value;
	return (0);
}

static int
cfg_uint(struct cfg *c, yaml_node_t *n, const char *path,
    unsigned long long min, unsigned long long max, unsigned long long *out)
{
	const char		*s, *p;
	unsigned long long	 v = 0;

	if (cfg_scalar(c, n, path, &s) == -1)
		return (-1);
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || *s == '\0')
		goto bad;
	for (p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		if (v > (~0ULL - 9) / 10)
			return (cfg_errorf(c, n, path, "%s is too large", s));
		v = v * 10 + (unsigned long long)(*p - '0');
	}
	if (v < min || v > max)
		return (cfg_errorf(c, n, path, "%llu is out of range %llu-%llu",
		    v, min, max));
	*out = v;
	return (0);
bad:
	{
		char	 shown[64];

		cfg_sanitize(shown, sizeof(shown), s, strlen(s));
		return (cfg_errorf(c, n, path,
		    "expected a whole number, got \"%s\"", shown));
	}
}

static int
cfg_unsigned(struct cfg *c, yaml_node_t *n, const char *path,
    unsigned long long min, unsigned long long max, unsigned *out)
{
	unsigned long long v;

	if (cfg_uint(c, n, path, min, max, &v) == -1)
		return (-1);
	*out = (unsigned)v;
	return (0);
}

static int
cfg_size(struct cfg *c, yaml_node_t *n, const char *path,
    unsigned long long min, unsigned long long max, size_t *out)
{
	unsigned long long v;

	if (cfg_uint(c, n, path, min, max, &v) == -1)
		return (-1);
	*out = (size_t)v;
	return (0);
}

static int
cfg_bool(struct cfg *c, yaml_node_t *n, const char *path, int *out)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };
	const char	*s;
	size_t		 i;

	if (cfg_scalar(c, n, path, &s) == -1)
		return (-1);
	if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
		for (i = 0; i < 3; i++) {
			if (strcasecmp(s, yes[i]) == 0) {
				*out = 1;
				return (0);
			}
			if (strcasecmp(s, no[i]) == 0) {
				*out = 0;
				return (0);
			}
		}
	return (cfg_errorf(c, n, path, "expected true or false"));
}

/* Replace *out with a copy of the scalar (NULL for null when allowed). */
static int
cfg_string(struct cfg *c, yaml_node_t *n, const char *path, int nullable,
    char **out)
{
	const char	*s;
	char		*copy = NULL;

	if (cfg_is_null(n)) {
		if (!nullable)
			return (cfg_errorf(c, n, path, "must not be empty"));
	} else {
		if (cfg_scalar(c, n, path, &s) == -1)
			return (-1);
		if ((copy = strdup(s)) == NULL)
			return (cfg_errorf(c, n, path, "out of memory"));
	}
	free(*out);
	*out = copy;
	return (0);
}

static int
cfg_rate(struct cfg *c, yaml_node_t *n, const char *path, struct rate *out)
{
	const char	*s;
	char		 shown[64];

	if (cfg_scalar(c, n, path, &s) == -1)
		return (-1);
	if (config_rate_parse(s, out) == -1) {
		cfg_sanitize(shown, sizeof(shown), s, strlen(s));
		return (cfg_errorf(c, n, path, "bad rate \"%s\" (expected "
		    "N/s, N/Ns, N/min, N/Nmin or off)", shown));
	}
	return (0);
}

/* A list of scope names into a bit set. */
static int
cfg_scopes(struct cfg *c, yaml_node_t *n, const char *path, unsigned *out)
{
	yaml_node_item_t *it;
	yaml_node_t	*item;
	const char	*s;
	char		 ipath[CFG_PATH], shown[64];
	unsigned	 bits = 0, bit;
	size_t		 i = 0;

	if (cfg_is_null(n)) {
		*out = 0;
		return (0);
	}
	if (n->type != YAML_SEQUENCE_NODE)
		return (cfg_errorf(c, n, path,
		    "expected a list of scopes (read, trade, admin)"));
	for (it = n->data.sequence.items.start;
	    it < n->data.sequence.items.top; it++, i++) {
		cfg_path_index(ipath, path, i);
		if ((item = cfg_node(c, *it)) == NULL)
			return (cfg_errorf(c, n, ipath, "bad node"));
		if (cfg_scalar(c, item, ipath, &s) == -1)
			return (-1);
		if (auth_scope_parse(s, &bit) == -1) {
			cfg_sanitize(shown, sizeof(shown), s, strlen(s));
			return (cfg_errorf(c, item, ipath, "unknown scope "
			    "\"%s\" (expected read, trade or admin)", shown));
		}
		bits |= bit;
	}
	*out = bits;
	return (0);
}

/*
 * Check a mapping against the names it may hold: unknown keys, duplicate
 * keys and non-scalar keys are errors.  vals[i] gets the value of names[i]
 * (NULL when absent) and keys[i] its key node.  A null is an empty map.
 */
static int
cfg_collect(struct cfg *c, yaml_node_t *map, const char *path,
    const char *const *names, yaml_node_t **vals)
{
	yaml_node_pair_t *pair, *prev;
	yaml_node_t	*k, *pk;
	const char	*ks;
	char		 kpath[CFG_PATH], shown[80];
	size_t		 i, nnames;

	for (nnames = 0; names[nnames] != NULL; nnames++)
		vals[nnames] = NULL;
	if (cfg_is_null(map))
		return (0);
	if (map->type != YAML_MAPPING_NODE)
		return (cfg_errorf(c, map, path && *path ? path : "(top level)",
		    "expected a mapping (key: value)"));
	for (pair = map->data.mapping.pairs.start;
	    pair < map->data.mapping.pairs.top; pair++) {
		if ((k = cfg_node(c, pair->key)) == NULL)
			return (cfg_errorf(c, map, path, "bad node"));
		if (k->type != YAML_SCALAR_NODE)
			return (cfg_errorf(c, k, path,
			    "a key must be a plain name"));
		ks = (const char *)k->data.scalar.value;
		cfg_sanitize(shown, sizeof(shown), ks, k->data.scalar.length);
		cfg_path(kpath, path, shown);
		for (prev = map->data.mapping.pairs.start; prev < pair;
		    prev++) {
			pk = cfg_node(c, prev->key);
			if (pk != NULL && pk->type == YAML_SCALAR_NODE &&
			    pk->data.scalar.length == k->data.scalar.length &&
			    memcmp(pk->data.scalar.value, ks,
			    k->data.scalar.length) == 0)
				return (cfg_errorf(c, k, kpath,
				    "duplicate key (first at line %zu)",
				    pk->start_mark.line + 1));
		}
		for (i = 0; i < nnames; i++)
			if (strlen(names[i]) == k->data.scalar.length &&
			    memcmp(names[i], ks, k->data.scalar.length) == 0)
				break;
		if (i == nnames)
			return (cfg_errorf(c, k, kpath, "unknown key"));
		if ((vals[i] = cfg_node(c, pair->value)) == NULL)
			return (cfg_errorf(c, k, kpath, "bad node"));
	}
	return (0);
}

/* Iterate a list (null: empty); the callback gets each item and its path. */
static int
cfg_list(struct cfg *c, yaml_node_t *n, const char *path,
    int (*fn)(struct cfg *, yaml_node_t *, const char *))
{
	yaml_node_item_t *it;
	yaml_node_t	*item;
	char		 ipath[CFG_PATH];
	size_t		 i = 0;

	if (cfg_is_null(n))
		return (0);
	if (n->type != YAML_SEQUENCE_NODE)
		return (cfg_errorf(c, n, path, "expected a list"));
	for (it = n->data.sequence.items.start;
	    it < n->data.sequence.items.top; it++, i++) {
		cfg_path_index(ipath, path, i);
		if ((item = cfg_node(c, *it)) == NULL)
			return (cfg_errorf(c, n, ipath, "bad node"));
		if (fn(c, item, ipath) == -1)
			return (-1);
	}
	return (0);
}

/* ------------------------------------------------------- value checkers */

/*
 * "127.0.0.1:8000", "localhost:8000", "[::1]:8000" (port 0 allowed): only
 * loopback, so nothing off the host can reach brokerd.  why gets the
 * reason on failure.
 */
static int
cfg_loopback(const char *s, int need_port, struct sockaddr_storage *ss,
    socklen_t *sslen, char *why, size_t whylen)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	char			 host[64];
	const char		*p, *port = NULL;
	size_t			 hlen;
	unsigned long		 pn = 80;
	char			*end;

	memset(ss, 0, sizeof(*ss));
	if (*s == '[') {
		if ((p = strchr(s, ']')) == NULL) {
			snprintf(why, whylen, "missing ']'");
			return (-1);
		}
		hlen = (size_t)(p - s - 1);
		if (hlen >= sizeof(host))
			goto bad_host;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		p++;
		if (*p == ':')
			port = p + 1;
		else if (*p != '\0')
			goto bad_form;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			goto bad_host;
		if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			goto not_loopback;
		sin6->sin6_family = AF_INET6;
		*sslen = sizeof(*sin6);
	} else {
		p = strrchr(s, ':');
		hlen = p != NULL ? (size_t)(p - s) : strlen(s);
		if (p != NULL)
			port = p + 1;
		if (hlen == 0 || hlen >= sizeof(host))
			goto bad_host;
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		if (strchr(host, ':') != NULL) {
			snprintf(why, whylen,
			    "write an IPv6 address in brackets: [::1]:PORT");
			return (-1);
		}
		if (strcasecmp(host, "localhost") == 0)
			snprintf(host, sizeof(host), "127.0.0.1");
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			/* a name: only localhost is known to be loopback */
			goto not_loopback;
		}
		if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127)
			goto not_loopback;
		sin->sin_family = AF_INET;
		*sslen = sizeof(*sin);
	}
	if (port == NULL) {
		if (need_port) {
			snprintf(why, whylen, "missing :PORT");
			return (-1);
		}
	} else {
		if (*port < '0' || *port > '9')
			goto bad_port;
		errno = 0;
		pn = strtoul(port, &end, 10);
		if (errno != 0 || *end != '\0' || pn > 65535)
			goto bad_port;
	}
	if (ss->ss_family == AF_INET)
		sin->sin_port = htons((uint16_t)pn);
	else
		sin6->sin6_port = htons((uint16_t)pn);
	return (0);
bad_form:
	snprintf(why, whylen, "expected HOST:PORT");
	return (-1);
bad_host:
	snprintf(why, whylen, "bad address (expected 127.0.0.1:PORT, "
	    "localhost:PORT or [::1]:PORT)");
	return (-1);
bad_port:
	snprintf(why, whylen, "bad port (expected 0-65535)");
	return (-1);
not_loopback:
	snprintf(why, whylen, "not a loopback address: only 127.0.0.0/8, "
	    "localhost and [::1] are allowed");
	return (-1);
}

/*
 * https://host[:port][/] -> host (no brackets) and port ("443" when
 * absent).  Only https: the Gateway speaks nothing else.
 */
static int
cfg_gw_url(const char *url, char **hostp, char **portp, char *why,
    size_t whylen)
{
	const char	*p, *auth, *hend, *pstart = NULL;
	char		 host[256], port[8];
	struct in6_addr	 a6;
	size_t		 hlen, i;
	unsigned long	 pn;

	if (strncasecmp(url, "https://", 8) != 0) {
		snprintf(why, whylen, "must start with https://");
		return (-1);
	}
	auth = url + 8;
	for (p = auth; *p != '\0' && *p != '/'; p++)
		if (*p == '?' || *p == '#' || *p == '@') {
			snprintf(why, whylen,
			    "expected https://HOST[:PORT] only");
			return (-1);
		}
	if (*p == '/' && p[1] != '\0') {
		snprintf(why, whylen, "no path allowed (brokerd adds /v1/api)");
		return (-1);
	}
	hend = p;
	if (*auth == '[') {
		const char *rb = memchr(auth, ']', (size_t)(hend - auth));

		if (rb == NULL)
			goto bad_host;
		hlen = (size_t)(rb - auth - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			goto bad_host;
		memcpy(host, auth + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1)
			goto bad_host;
		if (rb + 1 < hend) {
			if (rb[1] != ':')
				goto bad_host;
			pstart = rb + 2;
		}
	} else {
		const char *colon = memchr(auth, ':', (size_t)(hend - auth));

		hlen = (size_t)((colon != NULL ? colon : hend) - auth);
		if (hlen == 0 || hlen >= sizeof(host))
			goto bad_host;
		memcpy(host, auth, hlen);
		host[hlen] = '\0';
		for (i = 0; i < hlen; i++)
			if (!isalnum((unsigned char)host[i]) &&
			    host[i] != '.' && host[i] != '-')
				goto bad_host;
		if (colon != NULL)
			pstart = colon + 1;
	}
	if (pstart != NULL) {
		size_t plen = (size_t)(hend - pstart);

		if (plen == 0 || plen > 5)
			goto bad_port;
		pn = 0;
		for (i = 0; i < plen; i++) {
			if (pstart[i] < '0' || pstart[i] > '9')
				goto bad_port;
			pn = pn * 10 + (unsigned long)(pstart[i] - '0');
		}
		if (pn == 0 || pn > 65535)
			goto bad_port;
		snprintf(port, sizeof(port), "%lu", pn);
	} else
		snprintf(port, sizeof(port), "443");
	if ((*hostp = strdup(host)) == NULL)
		goto nomem;
	if ((*portp = strdup(port)) == NULL) {
		free(*hostp);
		*hostp = NULL;
		goto nomem;
	}
	return (0);
bad_host:
	snprintf(why, whylen, "bad host in URL");
	return (-1);
bad_port:
	snprintf(why, whylen, "bad port in URL (expected 1-65535)");
	return (-1);
nomem:
	snprintf(why, whylen, "out of memory");
	return (-1);
}

static int
cfg_hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return (ch - '0');
	if (ch >= 'a' && ch <= 'f')
		return (ch - 'a' + 10);
	if (ch >= 'A' && ch <= 'F')
		return (ch - 'A' + 10);
	return (-1);
}

/*
 * "AB:CD:..." as `openssl x509 -fingerprint -sha256` prints it (with or
 * without its "sha256 Fingerprint=" label), or 64 plain hex digits.
 */
static int
cfg_pin(const char *s, unsigned char out[32])
{
	const char	*eq;
	size_t		 len, i, step;
	int		 hi, lo;

	if ((eq = strchr(s, '=')) != NULL)
		s = eq + 1;
	len = strlen(s);
	if (len == 64)
		step = 2;
	else if (len == 95)
		step = 3;
	else
		return (-1);
	for (i = 0; i < 32; i++) {
		hi = cfg_hexval((unsigned char)s[i * step]);
		lo = cfg_hexval((unsigned char)s[i * step + 1]);
		if (hi < 0 || lo < 0)
			return (-1);
		if (step == 3 && i < 31 && s[i * step + 2] != ':')
			return (-1);
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return (0);
}

/* A key: long enough, and only bytes an HTTP header can carry. */
static int
cfg_key_ok(const char *key, size_t len, char *why, size_t whylen)
{
	size_t	 i;

	if (len == 0) {
		snprintf(why, whylen, "empty key");
		return (-1);
	}
	if (len < CFG_MIN_KEY) {
		snprintf(why, whylen, "key is shorter than %d bytes",
		    CFG_MIN_KEY);
		return (-1);
	}
	for (i = 0; i < len; i++)
		if ((unsigned char)key[i] < 0x21 ||
		    (unsigned char)key[i] > 0x7e) {
			snprintf(why, whylen, "key holds a space, a control "
			    "character or a non-ASCII byte");
			return (-1);
		}
	return (0);
}

/*
 * Read a key file like ssh reads a private key: refuse it when group or
 * others may read it.  Strips one trailing newline (and CR).  The caller
 * wipes *key (explicit_bzero) and frees it.
 */
static int
cfg_key_file(const char *path, char **key, size_t *keylen, char *why,
    size_t whylen)
{
	struct stat	 st;
	char		*data = NULL;
	ssize_t		 n;
	size_t		 len = 0;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		snprintf(why, whylen, "key file %s: %s", path,
		    strerror(errno));
		return (-1);
	}
	if (fstat(fd, &st) == -1) {
		snprintf(why, whylen, "key file %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "key file %s is not a regular file",
		    path);
		goto fail;
	}
	if (st.st_mode & 077) {
		snprintf(why, whylen, "key file %s is readable by group or "
		    "others (mode %04o): chmod 600 %s", path,
		    (unsigned)(st.st_mode & 07777), path);
		goto fail;
	}
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
	close(fd);
	fd = -1;
	if (len > 0 && data[len - 1] == '\n')
		len--;
	if (len > 0 && data[len - 1] == '\r')
		len--;
	data[len] = '\0';
	if (cfg_key_ok(data, len, why, whylen) == -1) {
		char reason[128];

		/* cfg_key_ok's reasons are short constants */
		if (snprintf(reason, sizeof(reason), "%s", why) < 0)
			reason[0] = '\0';
		snprintf(why, whylen, "key file %s: %s", path, reason);
		goto fail;
	}
	*key = data;
	*keylen = len;
	return (0);
fail:
	if (data != NULL) {
		explicit_bzero(data, CFG_MAX_KEYFILE + 1);
		free(data);
	}
	if (fd != -1)
		close(fd);
	return (-1);
}

/* Names go into logs: keep them plain. */
static int
cfg_name_ok(const char *s)
{
	size_t	 i, len = strlen(s);

	if (len == 0 || len > 64)
		return (0);
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("_.-@", s[i]) ==
		    NULL)
			return (0);
	return (1);
}

/* A route path: starts with '/', visible ASCII, no query or fragment. */
static int
cfg_route_path_ok(const char *s)
{
	size_t	 i;

	if (s[0] != '/')
		return (0);
	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e ||
		    s[i] == '?' || s[i] == '#')
			return (0);
	return (1);
}

static int
cfg_digits(const char *s)
{
	if (*s == '\0')
		return (0);
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return (0);
	return (1);
}

/* ---------------------------------------------------------------- rates */

int
config_rate_parse(const char *s, struct rate *r)
{
	unsigned long long n = 0, mult = 1, unit;
	const char	*p = s;

	if (strcmp(s, "off") == 0) {
		r->n = 0;
		r->window_ms = 0;
		return (0);
	}
	if (*p < '0' || *p > '9')
		return (-1);
	for (; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (unsigned long long)(*p - '0');
		if (n > 1000000)
			return (-1);
	}
	if (n < 1 || *p++ != '/')
		return (-1);
	if (*p >= '0' && *p <= '9') {
		mult = 0;
		for (; *p >= '0' && *p <= '9'; p++) {
			mult = mult * 10 + (unsigned long long)(*p - '0');
			if (mult > 1000000)
				return (-1);
		}
		if (mult < 1)
			return (-1);
	}
	if (strcmp(p, "s") == 0)
		unit = 1000;
	else if (strcmp(p, "min") == 0)
		unit = 60 * 1000;
	else
		return (-1);
	r->n = (unsigned)n;
	r->window_ms = mult * unit;
	return (0);
}

/* -------------------------------------------------------------- sections */

static int
cfg_listen_unix(struct cfg *c, yaml_node_t *n, const char *path)
{
	static const char *const names[] = { "path", "mode", "group", NULL };
	struct config	*conf = c->conf;
	yaml_node_t	*v[3];
	char		 p[CFG_PATH];
	const char	*s;
	unsigned long	 mode = 0;
	size_t		 i;

	if (cfg_collect(c, n, path, names, v) == -1)
		return (-1);
	if (v[0] != NULL) {
		cfg_path(p, path, "path");
		if (cfg_string(c, v[0], p, 0, &conf->unix_path) == -1)
			return (-1);
		if (strlen(conf->unix_path) >= 108)
			return (cfg_errorf(c, v[0], p, "longer than a Unix "
			    "socket path may be (107 bytes)"));
	}
	if (v[1] != NULL) {
		cfg_path(p, path, "mode");
		if (cfg_scalar(c, v[1], p, &s) == -1)
			return (-1);
		if (strncmp(s, "0o", 2) == 0)
			s += 2;
		if (*s == '\0' || strlen(s) > 4)
			goto bad_mode;
		for (i = 0; s[i] != '\0'; i++) {
			if (s[i] < '0' || s[i] > '7')
				goto bad_mode;
			mode = mode * 8 + (unsigned long)(s[i] - '0');
		}
		if (mode > 0777)
			goto bad_mode;
		conf->unix_mode = (mode_t)mode;
	}
	if (v[2] != NULL) {
		cfg_path(p, path, "group");
		if (cfg_string(c, v[2], p, 1, &conf->unix_group) == -1)
			return (-1);
		conf->unix_group_default = 0;
		if (conf->unix_group != NULL &&
		    strcmp(conf->unix_group, CFG_DEF_GROUP) == 0)
			/* the default written out: a warning if missing */
			conf->unix_group_default = 1;
		else if (conf->unix_group != NULL &&
		    getgrnam(conf->unix_group) == NULL) {
			char shown[80];

			cfg_sanitize(shown, sizeof(shown), conf->unix_group,
			    strlen(conf->unix_group));
			return (cfg_errorf(c, v[2], p, "no such group \"%s\"",
			    shown));
		}
	}
	return (0);
bad_mode:
	cfg_path(p, path, "mode");
	return (cfg_errorf(c, v[1], p, "bad mode (expected octal such as "
	    "\"0660\")"));
}

static int
cfg_listen(struct cfg *c, yaml_node_t *n, const char *path)
{
	static const char *const names[] = { "unix", "tcp", "tcp_anonymous",
	    NULL };
	struct config	*conf = c->conf;
	yaml_node_t	*v[3];
	char		 p[CFG_PATH], why[160];

	if (cfg_collect(c, n, path, names, v) == -1)
		return (-1);
	if (v[0] != NULL) {
		cfg_path(p, path, "unix");
		if (cfg_listen_unix(c, v[0], p) == -1)
			return (-1);
	}
	if (v[1] != NULL) {
		cfg_path(p, path, "tcp");
		if (cfg_string(c, v[1], p, 1, &conf->tcp) == -1)
			return (-1);
		if (conf->tcp != NULL && cfg_loopback(conf->tcp, 1,
		    &conf->tcp_addr, &conf->tcp_addrlen, why,
		    sizeof(why)) == -1)
			return (cfg_errorf(c, v[1], p, "%s", why));
	}
	if (v[2] != NULL) {
		cfg_path(p, path, "tcp_anonymous");
		if (cfg_scopes(c, v[2], p, &conf->tcp_anonymous) == -1)
			return (-1);
	}
	return (0);
}

static int
cfg_set_gw_url(struct config *conf, const char *url, char *why,
    size_t whylen)
{
	char	*host = NULL, *port = NULL, *copy;

	if (cfg_gw_url(url, &host, &port, why, whylen) == -1)
		return (-1);
	if ((copy = strdup(url)) == NULL) {
		free(host);
		free(port);
		snprintf(why, whylen, "out of memory");
		return (-1);
	}
	free(conf->gw_url);
	free(conf->gw_host);
	free(conf->gw_port);
	conf->gw_url = copy;
	conf->gw_host = host;
	conf->gw_port = port;
	return (0);
}

static int
cfg_gateway_tls(struct cfg *c, yaml_node_t *n, const char *path)
{
	static const char *const names[] = { "pin_sha256", "ca_file",
	    "insecure", NULL };
	struct config	*conf = c->conf;
	yaml_node_t	*v[3];
	char		 p[CFG_PATH];
	const char	*s;
	int		 fd;

	if (cfg_collect(c, n, path, names, v) == -1)
		return (-1);
	if (v[0] != NULL) {
		cfg_path(p, path, "pin_sha256");
		if (cfg_is_null(v[0]))
			conf->gw_has_pin = 0;
		else {
			if (cfg_scalar(c, v[0], p, &s) == -1)
				return (-1);
			if (cfg_pin(s, conf->gw_pin) == -1)
				return (cfg_errorf(c, v[0], p, "expected a "
				    "SHA-256 fingerprint: 32 bytes as colon "
				    "hex (AB:CD:...) or 64 hex digits"));
			conf->gw_has_pin = 1;
		}
	}
	if (v[1] != NULL) {
		cfg_path(p, path, "ca_file");
		if (cfg_string(c, v[1], p, 1, &conf->gw_ca_file) == -1)
			return (-1);
		if (conf->gw_ca_file != NULL) {
			if ((fd = open(conf->gw_ca_file, O_RDONLY | O_NONBLOCK |
			    O_CLOEXEC)) == -1)
				return (cfg_errorf(c, v[1], p, "%s: %s",
				    conf->gw_ca_file, strerror(errno)));
			close(fd);
		}
	}
	if (v[2] != NULL) {
		cfg_path(p, path, "insecure");
		if (cfg_bool(c, v[2], p, &conf->gw_insecure) == -1)
			return (-1);
	}
	return (0);
}

static int
cfg_gateway(struct cfg *c, yaml_node_t *n, const char *path)
{
	static const char *const names[] = { "url", "tls", "pool",
	    "connect_timeout_ms", "timeout_ms", NULL };
	struct config	*conf = c->conf;
	yaml_node_t	*v[5];
	char		 p[CFG_PATH], why[160];
	const char	*s;

	if (cfg_collect(c, n, path, names, v) == -1)
		return (-1);
	if (v[0] != NULL) {
		cfg_path(p, path, "url");
		if (cfg_scalar(c, v[0], p, &s) == -1)
			return (-1);
		if (cfg_set_gw_url(conf, s, why, sizeof(why)) == -1)
			return (cfg_errorf(c, v[0], p, "%s", why));
	}
	if (v[1] != NULL) {
		cfg_path(p, path, "tls");
		if (cfg_gateway_tls(c, v[1], p) == -1)
			return (-1);
	}
	cfg_path(p, path, "pool");
	if (v[2] != NULL && cfg_unsigned(c, v[2], p, 1, 64,
	    &conf->gw_pool) == -1)
		return (-1);
	cfg_path(p, path, "connect_timeout_ms");
	if (v[3] != NULL && cfg_unsigned(c, v[3], p, 1, 600000,
	    &conf->gw_connect_timeout_ms) == -1)
		return (-1);
	cfg_path(p, path, "timeout_ms");
	if (v[4] != NULL && cfg_unsigned(c, v[4], p, 1, 3600000,
	    &conf->gw_timeout_ms) == -1)
		return (-1);
	return (0);
}

static int
cfg_session(struct cfg *c, yaml_node_t *n, const char *path)
{
	static const char *const names[] = { "check_interval_s",
	    "tickle_interval_s", "reauthenticate", "compete", "status_file",
	    "history_file", NULL };
	struct config	*conf = c->conf;
	yaml_node_t	*v[6];
	char		 p[CFG_PATH];

	if (cfg_collect(c, n, path, names, v) == -1)
		return (-1);
	cfg_path(p, path, "check_interval_s");
	if (v[0] != NULL && cfg_unsigned(c, v[0], p, 1, 3600,
	    &conf->check_interval_s) == -1)
		return (-1);
	cfg_path(p, path, "tickle_interval_s");
	if (v[1] != NULL && cfg_unsigned(c, v[1], p, 1, 3600,
	    &conf->tickle_interval_s) == -1)
		return (-1);
	cfg_path(p, path, "reauthenticate");
	if (v[2] != NULL && cfg_bool(c, v[2], p, &conf->reauthenticate) == -1)
		return (-1);
	cfg_path(p, path, "compete");
	if (v[3] != NULL && cfg_bool(c, v[3], p, &conf->compete) == -1)
		return (-1);
	cfg_path(p, path, "status_file");
	if (v[4] != NULL && cfg_string(c, v[4], p, 0, &conf->status_file) == -1)
		return (-1);
	cfg_path(p, path, "history_file");
	if (v[5] != NULL && cfg_string(c, v[5], p, 1,
	    &conf->history_file) == -1)
		return (-1);
	return (0);
}

/* Append a key, its secret hashed; the caller wipes the secret. */
static int
cfg_add_key(struct config *conf, const char *name, const char *secret,
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
cfg_key(struct cfg *c, yaml_node_t *n, const char *path)
{
	static const char *const names[] = { "name", "key", "key_file",
	    "scopes", NULL };
	struct config	*conf = c->conf;
	yaml_node_t	*v[4];
	char		 p[CFG_PATH], why[512], shown[80];
	const char	*name, *s;
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
	if (cfg_scalar(c, v[0], p, &name) == -1)
		return (-1);
	if (!cfg_name_ok(name))
		return (cfg_errorf(c, v[0], p, "a name is 1-64 letters, "
		    "digits or _.-@"));
	for (i = 0; i < conf->nkeys; i++)
		if (strcmp(conf->keys[i].name, name) == 0) {
			cfg_sanitize(shown, sizeof(shown), name, strlen(name));
			return (cfg_errorf(c, v[0], p, "duplicate key name "
			    "\"%s\"", shown));
		}
	if ((v[1] == NULL) == (v[2] == NULL))
		return (cfg_errorf(c, n, path, "give exactly one of key and "
		    "key_file"));
	if (v[3] == NULL)
		return (cfg_errorf(c, n, path, "a key needs scopes"));
	cfg_path(p, path, "scopes");
	if (cfg_scopes(c, v[3], p, &scopes) == -1)
		return (-1);
	if (v[1] != NULL) {
		cfg_path(p, path, "key");
		if (cfg_is_null(v[1]))
			return (cfg_errorf(c, v[1], p, "empty key"));
		if (cfg_scalar(c, v[1], p, &s) == -1)
			return (-1);
		len = v[1]->data.scalar.length;
		if (cfg_key_ok(s, len, why, sizeof(why)) == -1)
			return (cfg_errorf(c, v[1], p, "%s", why));
		auth_sha256(s, len, hash);
	} else {
		cfg_path(p, path, "key_file");
		if (cfg_is_null(v[2]))
			return (cfg_errorf(c, v[2], p, "must not be empty"));
		if (cfg_scalar(c, v[2], p, &s) == -1)
			return (-1);
		if (cfg_key_file(s, &secret, &len, why, sizeof(why)) == -1)
			return (cfg_errorf(c, v[2], p, "%s", why));
		auth_sha256(secret, len, hash);
	}
	/* the same secret twice would make the key's name ambiguous */
	for (i = 0; i < conf->nkeys; i++)
		if (memcmp(conf->keys[i].hash, hash, sizeof(hash)) == 0) {
			cfg_errorf(c, v[1] != NULL ? v[1] : v[2], path,
			    "same key as key \"%s\"", conf->keys[i].name);
			goto out;
		}
	if (cfg_add_key(conf, name, v[1] != NULL ? s : secret, len,
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
cfg_keys(struct cfg *c, yaml_node_t *n, const char *path)
{
	return (cfg_list(c, n, path, cfg_key));
}

static int
cfg_peer(struct cfg *c, yaml_node_t *n, const char *path)
{
	static const char *const names[] = { "user", "group", "scopes", NULL };
	struct config	*conf = c->conf;
	struct peer	 peer, *np;
	struct passwd	*pw;
	struct group	*gr;
	yaml_node_t	*v[3];
	char		 p[CFG_PATH], shown[80];
	const char	*s;
	unsigned long long id;

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
	if (cfg_scalar(c, v[peer.is_group], p, &s) == -1)
		return (-1);
	cfg_sanitize(shown, sizeof(shown), s, strlen(s));
	if (*s == '\0')
		return (cfg_errorf(c, v[peer.is_group], p,
		    "must not be empty"));
	if (cfg_digits(s)) {
		errno = 0;
		id = strtoull(s, NULL, 10);
		if (errno != 0 || id >= 0xffffffffULL)
			return (cfg_errorf(c, v[peer.is_group], p,
			    "bad id %s", shown));
		if (peer.is_group) {
			peer.gid = (gid_t)id;
			gr = getgrgid(peer.gid);
			s = gr != NULL ? gr->gr_name : s;
		} else {
			peer.uid = (uid_t)id;
			pw = getpwuid(peer.uid);
			s = pw != NULL ? pw->pw_name : s;
		}
	} else if (peer.is_group) {
		if ((gr = getgrnam(s)) == NULL)
			return (cfg_errorf(c, v[1], p, "no such group \"%s\"",
			    shown));
		peer.gid = gr->gr_gid;
	} else {
		if ((pw = getpwnam(s)) == NULL)
			return (cfg_errorf(c, v[0], p, "no such user \"%s\"",
			    shown));
		peer.uid = pw->pw_uid;
	}
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
cfg_peers(struct cfg *c, yaml_node_t *n, const char *path)
{
	return (cfg_list(c, n, path, cfg_peer));
}

static int
cfg_route_methods(struct cfg *c, yaml_node_t *n, const char *path,
    struct route *r)
{
	yaml_node_pair_t *pair, *prev;
	yaml_node_t	*k, *v, *pk;
	const char	*m, *s;
	char		 p[CFG_PATH], shown[80];
	size_t		 i, len;
	unsigned	 bit;

	if (n->type != YAML_MAPPING_NODE)
		return (cfg_errorf(c, n, path, "expected a mapping of "
		    "methods to scopes, such as { GET: read }"));
	for (pair = n->data.mapping.pairs.start;
	    pair < n->data.mapping.pairs.top; pair++) {
		if ((k = cfg_node(c, pair->key)) == NULL ||
		    (v = cfg_node(c, pair->value)) == NULL)
			return (cfg_errorf(c, n, path, "bad node"));
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
		for (prev = n->data.mapping.pairs.start; prev < pair; prev++)
			if ((pk = cfg_node(c, prev->key)) != NULL &&
			    pk->type == YAML_SCALAR_NODE &&
			    strcmp((const char *)pk->data.scalar.value,
			    m) == 0)
				return (cfg_errorf(c, k, p, "duplicate key "
				    "(first at line %zu)",
				    pk->start_mark.line + 1));
		if (r->nmethods >= sizeof(r->methods) / sizeof(r->methods[0]))
			return (cfg_errorf(c, k, p, "at most %zu methods",
			    sizeof(r->methods) / sizeof(r->methods[0])));
		if (cfg_scalar(c, v, p, &s) == -1)
			return (-1);
		if (auth_scope_parse(s, &bit) == -1) {
			cfg_sanitize(shown, sizeof(shown), s, strlen(s));
			return (cfg_errorf(c, v, p, "unknown scope \"%s\" "
			    "(expected read, trade or admin)", shown));
		}
		memcpy(r->methods[r->nmethods].method, m, len + 1);
		r->methods[r->nmethods].scope = bit;
		r->nmethods++;
	}
	if (r->nmethods == 0)
		return (cfg_errorf(c, n, path, "a route needs at least one "
		    "method"));
	return (0);
}

static int
cfg_route(struct cfg *c, yaml_node_t *n, const char *path)
{
	static const char *const names[] = { "prefix", "to", "methods",
	    "rate", "concurrency", "cache_ms", NULL };
	struct config	*conf = c->conf;
	struct route	*r, *nr;
	yaml_node_t	*v[6];
	char		 p[CFG_PATH];
	size_t		 i;

	if (n->type != YAML_MAPPING_NODE)
		return (cfg_errorf(c, n, path, "expected a mapping "
		    "{ prefix, to, methods, ... }"));
	if (cfg_collect(c, n, path, names, v) == -1)
		return (-1);
	if (v[0] == NULL || v[1] == NULL || v[2] == NULL)
		return (cfg_errorf(c, n, path, "a route needs prefix, to and "
		    "methods"));
	if ((nr = reallocarray(conf->routes, conf->nroutes + 1,
	    sizeof(*nr))) == NULL)
		return (cfg_errorf(c, n, path, "out of memory"));
	conf->routes = nr;
	r = &conf->routes[conf->nroutes++];
	memset(r, 0, sizeof(*r));
	cfg_path(p, path, "prefix");
	if (cfg_string(c, v[0], p, 0, &r->prefix) == -1)
		return (-1);
	if (!cfg_route_path_ok(r->prefix))
		return (cfg_errorf(c, v[0], p, "must start with '/' and hold "
		    "no spaces, '?' or '#'"));
	r->prefix_len = strlen(r->prefix);
	for (i = 0; i + 1 < conf->nroutes; i++)
		if (strcmp(conf->routes[i].prefix, r->prefix) == 0)
			return (cfg_errorf(c, v[0], p, "duplicate prefix "
			    "(routes[%zu])", i));
	cfg_path(p, path, "to");
	if (cfg_string(c, v[1], p, 0, &r->to) == -1)
		return (-1);
	if (!cfg_route_path_ok(r->to))
		return (cfg_errorf(c, v[1], p, "must start with '/' and hold "
		    "no spaces, '?' or '#'"));
	r->to_len = strlen(r->to);
	cfg_path(p, path, "methods");
	if (cfg_route_methods(c, v[2], p, r) == -1)
		return (-1);
	cfg_path(p, path, "rate");
	if (v[3] != NULL && cfg_rate(c, v[3], p, &r->rate) == -1)
		return (-1);
	cfg_path(p, path, "concurrency");
	if (v[4] != NULL && cfg_unsigned(c, v[4], p, 0, 1024,
	    &r->concurrency) == -1)
		return (-1);
	cfg_path(p, path, "cache_ms");
	if (v[5] != NULL && cfg_unsigned(c, v[5], p, 0, 86400000,
	    &r->cache_ms) == -1)
		return (-1);
	return (0);
}

static int
cfg_routes(struct cfg *c, yaml_node_t *n, const char *path)
{
	return (cfg_list(c, n, path, cfg_route));
}

static int
cfg_limits(struct cfg *c, yaml_node_t *n, const char *path)
{
	static const char *const names[] = { "gateway_rate", "queue_ms",
	    "max_connections", "max_header_bytes", "max_body_bytes",
	    "max_response_bytes", "header_timeout_ms", "idle_timeout_ms",
	    "drain_ms", "rate_slack_ms", "max_tcp_connections", NULL };
	struct config	*conf = c->conf;
	yaml_node_t	*v[11];
	char		 p[CFG_PATH];

	if (cfg_collect(c, n, path, names, v) == -1)
		return (-1);
	cfg_path(p, path, names[0]);
	if (v[0] != NULL && cfg_rate(c, v[0], p, &conf->gateway_rate) == -1)
		return (-1);
	cfg_path(p, path, names[1]);
	if (v[1] != NULL && cfg_unsigned(c, v[1], p, 0, 600000,
	    &conf->queue_ms) == -1)
		return (-1);
	cfg_path(p, path, names[2]);
	if (v[2] != NULL && cfg_unsigned(c, v[2], p, 1, 1000000,
	    &conf->max_connections) == -1)
		return (-1);
	cfg_path(p, path, names[3]);
	if (v[3] != NULL && cfg_size(c, v[3], p, 1024, 1048576,
	    &conf->max_header_bytes) == -1)
		return (-1);
	cfg_path(p, path, names[4]);
	if (v[4] != NULL && cfg_size(c, v[4], p, 0, 1ULL << 30,
	    &conf->max_body_bytes) == -1)
		return (-1);
	cfg_path(p, path, names[5]);
	if (v[5] != NULL && cfg_size(c, v[5], p, 1024, 1ULL << 31,
	    &conf->max_response_bytes) == -1)
		return (-1);
	cfg_path(p, path, names[6]);
	if (v[6] != NULL && cfg_unsigned(c, v[6], p, 1, 3600000,
	    &conf->header_timeout_ms) == -1)
		return (-1);
	cfg_path(p, path, names[7]);
	if (v[7] != NULL && cfg_unsigned(c, v[7], p, 1, 86400000,
	    &conf->idle_timeout_ms) == -1)
		return (-1);
	cfg_path(p, path, names[8]);
	if (v[8] != NULL && cfg_unsigned(c, v[8], p, 0, 3600000,
	    &conf->drain_ms) == -1)
		return (-1);
	/* Past a second of jitter the machine is broken, not the pacing. */
	cfg_path(p, path, names[9]);
	if (v[9] != NULL && cfg_unsigned(c, v[9], p, 0, 1000,
	    &conf->rate_slack_ms) == -1)
		return (-1);
	/* Three quarters by default: the rest stays for the Unix socket. */
	cfg_path(p, path, names[10]);
	if (v[10] == NULL) {
		conf->max_tcp_connections = (unsigned)((uint64_t)
		    conf->max_connections * 3 / 4);
		if (conf->max_tcp_connections == 0)
			conf->max_tcp_connections = 1;
	} else if (cfg_unsigned(c, v[10], p, 1, 1000000,
	    &conf->max_tcp_connections) == -1)
		return (-1);
	else if (conf->max_tcp_connections > conf->max_connections)
		return (cfg_errorf(c, v[10], p, "%u is more than "
		    "limits.max_connections (%u)", conf->max_tcp_connections,
		    conf->max_connections));
	return (0);
}

static int
cfg_log(struct cfg *c, yaml_node_t *n, const char *path)
{
	static const char *const names[] = { "level", "format", NULL };
	struct config	*conf = c->conf;
	yaml_node_t	*v[2];
	char		 p[CFG_PATH];
	const char	*s;
	int		 lvl;

	if (cfg_collect(c, n, path, names, v) == -1)
		return (-1);
	if (v[0] != NULL) {
		cfg_path(p, path, "level");
		if (cfg_scalar(c, v[0], p, &s) == -1)
			return (-1);
		if ((lvl = log_level_parse(s)) == -1)
			return (cfg_errorf(c, v[0], p, "expected error, warn, "
			    "info or debug"));
		conf->log_level = lvl;
	}
	if (v[1] != NULL) {
		cfg_path(p, path, "format");
		if (cfg_scalar(c, v[1], p, &s) == -1)
			return (-1);
		if (strcmp(s, "text") == 0)
			conf->log_json = 0;
		else if (strcmp(s, "json") == 0)
			conf->log_json = 1;
		else
			return (cfg_errorf(c, v[1], p, "expected text or "
			    "json"));
	}
	return (0);
}

static int
cfg_journal(struct cfg *c, yaml_node_t *n, const char *path)
{
	static const char *const names[] = { "file", "max_bytes", "keep",
	    NULL };
	struct config	*conf = c->conf;
	yaml_node_t	*v[3];
	char		 p[CFG_PATH];

	if (cfg_collect(c, n, path, names, v) == -1)
		return (-1);
	cfg_path(p, path, "file");
	if (v[0] != NULL && cfg_string(c, v[0], p, 1,
	    &conf->journal_file) == -1)
		return (-1);
	cfg_path(p, path, "max_bytes");
	if (v[1] != NULL && cfg_size(c, v[1], p, 4096, 1ULL << 40,
	    &conf->journal_max_bytes) == -1)
		return (-1);
	cfg_path(p, path, "keep");
	if (v[2] != NULL && cfg_unsigned(c, v[2], p, 0, 1000,
	    &conf->journal_keep) == -1)
		return (-1);
	return (0);
}

static int
cfg_trading(struct cfg *c, yaml_node_t *n, const char *path)
{
	static const char *const names[] = { "halt_file", NULL };
	yaml_node_t	*v[1];
	char		 p[CFG_PATH];

	if (cfg_collect(c, n, path, names, v) == -1)
		return (-1);
	cfg_path(p, path, "halt_file");
	if (v[0] != NULL && cfg_string(c, v[0], p, 0,
	    &c->conf->halt_file) == -1)
		return (-1);
	return (0);
}

static int
cfg_root(struct cfg *c, yaml_node_t *root, int *have_routes)
{
	static const char *const names[] = { "listen", "gateway", "session",
	    "keys", "peers", "routes", "limits", "log", "journal", "trading",
	    NULL };
	static int (*const fns[])(struct cfg *, yaml_node_t *,
	    const char *) = { cfg_listen, cfg_gateway, cfg_session, cfg_keys,
	    cfg_peers, cfg_routes, cfg_limits, cfg_log, cfg_journal,
	    cfg_trading };
	yaml_node_t	*v[10];
	size_t		 i;

	if (cfg_collect(c, root, "", names, v) == -1)
		return (-1);
	for (i = 0; i < 10; i++)
		if (v[i] != NULL && fns[i](c, v[i], names[i]) == -1)
			return (-1);
	*have_routes = v[5] != NULL;
	return (0);
}

/* --------------------------------------------------------- the document */

static int
cfg_defaults(struct config *conf)
{
	memset(conf, 0, sizeof(*conf));
	if ((conf->unix_path = strdup("/run/brokerd/brokerd.sock")) == NULL ||
	    (conf->unix_group = strdup(CFG_DEF_GROUP)) == NULL ||
	    (conf->gw_url = strdup("https://127.0.0.1:5000")) == NULL ||
	    (conf->gw_host = strdup("127.0.0.1")) == NULL ||
	    (conf->gw_port = strdup("5000")) == NULL ||
	    (conf->status_file = strdup("/run/brokerd/status")) == NULL ||
	    (conf->halt_file = strdup("/run/brokerd/halt")) == NULL)
		return (-1);
	conf->unix_mode = 0660;
	conf->unix_group_default = 1;
	conf->gw_pool = 4;
	conf->gw_connect_timeout_ms = 3000;
	conf->gw_timeout_ms = 15000;
	conf->check_interval_s = 10;
	conf->tickle_interval_s = 60;
	conf->reauthenticate = 1;
	conf->compete = 0;
	conf->gateway_rate.n = 10;
	conf->gateway_rate.window_ms = 1000;
	conf->queue_ms = 2000;
	conf->rate_slack_ms = 100;
	conf->max_connections = 1024;
	conf->max_tcp_connections = 768;
	conf->max_header_bytes = 16384;
	conf->max_body_bytes = 1048576;
	conf->max_response_bytes = 16777216;
	conf->header_timeout_ms = 10000;
	conf->idle_timeout_ms = 60000;
	conf->drain_ms = 10000;
	conf->log_level = LOG_LEVEL_INFO;
	conf->log_json = 0;
	conf->journal_max_bytes = 67108864;
	conf->journal_keep = 10;
	return (0);
}

/* Line and column of a byte offset, for libyaml's reader errors. */
static void
cfg_offset_pos(const struct cfg *c, size_t off, size_t *line, size_t *col)
{
	size_t	 i;

	*line = 1;
	*col = 1;
	for (i = 0; i < off && i < c->textlen; i++) {
		if (c->text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else
			(*col)++;
	}
}

static void
cfg_yaml_error(struct cfg *c, const yaml_parser_t *parser)
{
	size_t	 line, col;

	if (parser->error == YAML_READER_ERROR) {
		cfg_offset_pos(c, parser->problem_offset, &line, &col);
		snprintf(c->err, c->errlen, "%s:%zu:%zu: %s", c->file, line,
		    col, parser->problem != NULL ? parser->problem :
		    "cannot read the YAML");
	} else if (parser->error == YAML_MEMORY_ERROR)
		snprintf(c->err, c->errlen, "%s: out of memory", c->file);
	else if (parser->context != NULL)
		snprintf(c->err, c->errlen, "%s:%zu:%zu: %s (%s at line %zu, "
		    "column %zu)", c->file, parser->problem_mark.line + 1,
		    parser->problem_mark.column + 1,
		    parser->problem != NULL ? parser->problem : "syntax error",
		    parser->context, parser->context_mark.line + 1,
		    parser->context_mark.column + 1);
	else
		snprintf(c->err, c->errlen, "%s:%zu:%zu: %s", c->file,
		    parser->problem_mark.line + 1,
		    parser->problem_mark.column + 1,
		    parser->problem != NULL ? parser->problem : "syntax error");
}

/* The scalars may hold keys: wipe them before libyaml frees them. */
static void
cfg_wipe_document(yaml_document_t *doc)
{
	yaml_node_t	*n;

	for (n = doc->nodes.start; n != NULL && n < doc->nodes.top; n++)
		if (n->type == YAML_SCALAR_NODE && n->data.scalar.value != NULL)
			explicit_bzero(n->data.scalar.value,
			    n->data.scalar.length);
}

static void
cfg_wipe_parser(yaml_parser_t *parser)
{
	if (parser->buffer.start != NULL)
		explicit_bzero(parser->buffer.start,
		    (size_t)(parser->buffer.end - parser->buffer.start));
	if (parser->raw_buffer.start != NULL)
		explicit_bzero(parser->raw_buffer.start,
		    (size_t)(parser->raw_buffer.end -
		    parser->raw_buffer.start));
}

/* Read the whole file (bounded); *text is wiped and freed by the caller. */
static int
cfg_read_file(const char *file, char **text, size_t *len, char *err,
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
			if ((p = malloc(cap + 1)) == NULL) {
				snprintf(err, errlen, "%s: out of memory",
				    file);
				goto fail;
			}
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
	close(fd);
	if (data == NULL && (data = malloc(1)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", file);
		return (-1);
	}
	data[n] = '\0';
	*text = data;
	*len = n;
	return (0);
fail:
	if (data != NULL) {
		explicit_bzero(data, n);
		free(data);
	}
	close(fd);
	return (-1);
}

static int
cfg_parse_file(struct cfg *c, int *have_routes)
{
	yaml_parser_t	 parser;
	yaml_document_t	 doc, extra;
	yaml_node_t	*root, *root2;
	char		*text = NULL;
	size_t		 len = 0;
	int		 rc = -1, have_doc = 0;

	if (cfg_read_file(c->file, &text, &len, c->err, c->errlen) == -1)
		return (-1);
	c->text = text;
	c->textlen = len;
	if (!yaml_parser_initialize(&parser)) {
		snprintf(c->err, c->errlen, "%s: out of memory", c->file);
		goto out_text;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text,
	    len);
	if (!yaml_parser_load(&parser, &doc)) {
		cfg_yaml_error(c, &parser);
		goto out;
	}
	have_doc = 1;
	c->doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (root != NULL) {
		/* a second document would be silently ignored: refuse it */
		if (!yaml_parser_load(&parser, &extra)) {
			cfg_yaml_error(c, &parser);
			goto out;
		}
		root2 = yaml_document_get_root_node(&extra);
		if (root2 != NULL) {
			snprintf(c->err, c->errlen, "%s:%zu:%zu: only one YAML "
			    "document is allowed", c->file,
			    root2->start_mark.line + 1,
			    root2->start_mark.column + 1);
			cfg_wipe_document(&extra);
			yaml_document_delete(&extra);
			goto out;
		}
		yaml_document_delete(&extra);
		if (cfg_root(c, root, have_routes) == -1)
			goto out;
	}
	rc = 0;
out:
	if (have_doc) {
		cfg_wipe_document(&doc);
		yaml_document_delete(&doc);
	}
	c->doc = NULL;
	cfg_wipe_parser(&parser);
	yaml_parser_delete(&parser);
out_text:
	explicit_bzero(text, len);
	free(text);
	c->text = NULL;
	return (rc);
}

/* ---------------------------------------------------------- environment */

static int
cfg_env(struct config *conf, char *err, size_t errlen)
{
	const char	*s;
	char		 why[160], *tcp;
	struct sockaddr_storage ss;
	socklen_t	 sslen = 0;
	size_t		 i, len;

	if ((s = getenv("IBKR_BRIDGE_KEY")) != NULL) {
		len = strlen(s);
		if (cfg_key_ok(s, len, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "IBKR_BRIDGE_KEY: %s", why);
			return (-1);
		}
		/* the environment wins: it replaces a file key named env */
		for (i = 0; i < conf->nkeys; i++)
			if (strcmp(conf->keys[i].name, "env") == 0) {
				free(conf->keys[i].name);
				memmove(&conf->keys[i], &conf->keys[i + 1],
				    (conf->nkeys - i - 1) *
				    sizeof(conf->keys[0]));
				conf->nkeys--;
				break;
			}
		if (cfg_add_key(conf, "env", s, len,
		    SCOPE_READ | SCOPE_TRADE | SCOPE_ADMIN) == -1) {
			snprintf(err, errlen, "IBKR_BRIDGE_KEY: out of memory");
			return (-1);
		}
	}
	if ((s = getenv("IBKR_BRIDGE_URL")) != NULL && *s != '\0') {
		char hp[128];

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
		if (cfg_loopback(hp, 0, &ss, &sslen, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "IBKR_BRIDGE_URL: %s", why);
			return (-1);
		}
		if (strrchr(hp, ']') != NULL ? strrchr(hp, ']')[1] == '\0' :
		    strchr(hp, ':') == NULL) {
			/* no port written: http's 80 */
			if (strlen(hp) + 3 >= sizeof(hp)) {
				snprintf(err, errlen, "IBKR_BRIDGE_URL: too "
				    "long");
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
	}
	if ((s = getenv("IBKR_GATEWAY_URL")) != NULL && *s != '\0') {
		if (cfg_set_gw_url(conf, s, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "IBKR_GATEWAY_URL: %s", why);
			return (-1);
		}
	}
	return (0);
}

/* ----------------------------------------------------------------- API */

struct config *
config_load(const char *file, char *err, size_t errlen)
{
	struct config	*conf;
	struct cfg	 c;
	int		 have_routes = 0;

	if ((conf = malloc(sizeof(*conf))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (NULL);
	}
	if (cfg_defaults(conf) == -1) {
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
		if (cfg_parse_file(&c, &have_routes) == -1)
			goto fail;
	}
	if (!have_routes && route_defaults(&conf->routes,
	    &conf->nroutes) == -1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (cfg_env(conf, err, errlen) == -1)
		goto fail;
	return (conf);
fail:
	config_free(conf);
	return (NULL);
}

void
config_free(struct config *conf)
{
	size_t	 i;

	if (conf == NULL)
		return;
	free(conf->file);
	free(conf->unix_path);
	free(conf->unix_group);
	free(conf->tcp);
	free(conf->gw_url);
	free(conf->gw_host);
	free(conf->gw_port);
	free(conf->gw_ca_file);
	free(conf->status_file);
	free(conf->history_file);
	for (i = 0; i < conf->nkeys; i++)
		free(conf->keys[i].name);
	if (conf->keys != NULL)
		explicit_bzero(conf->keys, conf->nkeys * sizeof(*conf->keys));
	free(conf->keys);
	for (i = 0; i < conf->npeers; i++)
		free(conf->peers[i].name);
	free(conf->peers);
	route_free_table(conf->routes, conf->nroutes);
	free(conf->journal_file);
	free(conf->halt_file);
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
