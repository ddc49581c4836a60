/*
 * `brokerd migrate-env FILE [KEYFILE]`: the Python bridge's (bridge.py)
 * .env becomes a key file and the brokerd.yaml lines that serve the same
 * clients, so the Next.js app's .env.production needs no change.  The
 * parsing is pure (migrate_parse); migrate_cmd does the file I/O.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "brokerd.h"
#include "value.h"

#define MIGRATE_MAX_ENV		65536
#define MIGRATE_KEYFILE		"/etc/brokerd/keys/bridge"
#define MIGRATE_USER		"brokerd"

static void
migrate_replace(char **dst, const char *s, size_t len)
{
	char	*v;

	if ((v = strndup(s, len)) == NULL)
		return;
	if (*dst != NULL) {
		explicit_bzero(*dst, strlen(*dst));
		free(*dst);
	}
	*dst = v;
}

/*
 * One VALUE as python-dotenv reads it: 'single' is literal, "double"
 * knows \" \\ \n, bare stops at " #" and loses trailing blanks.  The value
 * goes to out (at least len+1 bytes).  -1 on an unclosed quote.
 */
static int
migrate_value(const char *s, size_t len, char *out, size_t *outlen)
{
	size_t	 i, n = 0;
	char	 q;

	if (len > 0 && (s[0] == '\'' || s[0] == '"')) {
		q = s[0];
		for (i = 1; i < len && s[i] != q; i++) {
			if (q == '"' && s[i] == '\\' && i + 1 < len) {
				i++;
				out[n++] = s[i] == 'n' ? '\n' : s[i];
			} else
				out[n++] = s[i];
		}
		if (i >= len)
			return (-1);
		*outlen = n;
		return (0);
	}
	for (i = 0; i < len; i++) {
		if (s[i] == '#' && (i == 0 || s[i - 1] == ' ' ||
		    s[i - 1] == '\t'))
			break;
		out[n++] = s[i];
	}
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
		n--;
	*outlen = n;
	return (0);
}

/* http://HOST[:PORT][/] on loopback -> "HOST:PORT", as config.c reads it. */
static int
migrate_bridge_url(const char *s, char *tcp, size_t tcplen, char *why,
    size_t whylen)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	const char		*rb;
	size_t			 len;

	if (strncasecmp(s, "http://", 7) != 0) {
		snprintf(why, whylen, "expected http://127.0.0.1:PORT "
		    "(brokerd's TCP listener speaks plain HTTP on loopback)");
		return (-1);
	}
	len = strlen(s + 7);
	if (len > 0 && s[7 + len - 1] == '/')
		len--;
	if (len == 0 || len + 4 >= tcplen || memchr(s + 7, '/', len) != NULL ||
	    memchr(s + 7, '@', len) != NULL) {
		snprintf(why, whylen, "expected http://HOST:PORT with no path");
		return (-1);
	}
	memcpy(tcp, s + 7, len);
	tcp[len] = '\0';
	if (value_loopback_hostport(tcp, 0, &ss, &sslen, why, whylen) == -1)
		return (-1);
	rb = strrchr(tcp, ']');
	if (rb != NULL ? rb[1] == '\0' : strchr(tcp, ':') == NULL)
		strcat(tcp, ":80");	/* room checked above */
	return (0);
}

/* The checks brokerd itself makes when it reads the same variables. */
static int
migrate_check(struct migrate_env *me, char *err, size_t errlen)
{
	char	 why[160], tcp[128], host[128], port[16];

	if (me->key == NULL) {
		snprintf(err, errlen, "no IBKR_BRIDGE_KEY in the file");
		return (-1);
	}
	if (value_key_ok(me->key, strlen(me->key), why, sizeof(why)) == -1) {
		snprintf(err, errlen, "IBKR_BRIDGE_KEY: %s", why);
		return (-1);
	}
	if (me->tcp != NULL) {
		if (migrate_bridge_url(me->tcp, tcp, sizeof(tcp), why,
		    sizeof(why)) == -1) {
			snprintf(err, errlen, "IBKR_BRIDGE_URL: %s", why);
			return (-1);
		}
		migrate_replace(&me->tcp, tcp, strlen(tcp));
	}
	if (me->gw_url != NULL && value_https_url(me->gw_url, host,
	    sizeof(host), port, sizeof(port), why, sizeof(why)) == -1) {
		snprintf(err, errlen, "IBKR_GATEWAY_URL: %s", why);
		return (-1);
	}
	return (0);
}

/*
 * Parse a .env: NAME=VALUE lines, `export ` allowed, # comments, the last
 * of a name wins.  IBKR_BRIDGE_KEY is required; IBKR_BRIDGE_URL becomes
 * me->tcp ("HOST:PORT").  Errors name the line, never a value.
 */
int
migrate_parse(const char *text, size_t len, struct migrate_env *me,
    char *err, size_t errlen)
{
	const char	*p = text, *end = text + len, *eol, *eq, *name;
	char		*val = NULL;
	size_t		 nlen, vlen, line = 0;

	memset(me, 0, sizeof(*me));
	if ((val = malloc(len + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (-1);
	}
	for (; p < end; p = eol + 1) {
		line++;
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end;
		while (p < eol && (*p == ' ' || *p == '\t'))
			p++;
		nlen = (size_t)(eol - p);
		if (nlen > 0 && p[nlen - 1] == '\r')
			nlen--;
		if (nlen == 0 || *p == '#')
			continue;
		if (nlen > 7 && strncmp(p, "export", 6) == 0 &&
		    (p[6] == ' ' || p[6] == '\t'))
			for (p += 7, nlen -= 7; nlen > 0 && (*p == ' ' ||
			    *p == '\t'); p++, nlen--)
				;
		name = p;
		if ((eq = memchr(p, '=', nlen)) == NULL) {
			snprintf(err, errlen, "line %zu: expected NAME=VALUE",
			    line);
			goto fail;
		}
		vlen = nlen - (size_t)(eq - p) - 1;
		nlen = (size_t)(eq - name);
		while (nlen > 0 && (name[nlen - 1] == ' ' ||
		    name[nlen - 1] == '\t'))
			nlen--;
		for (p = eq + 1; vlen > 0 && (*p == ' ' || *p == '\t');
		    p++, vlen--)
			;
		if (migrate_value(p, vlen, val, &vlen) == -1) {
			snprintf(err, errlen, "line %zu: unclosed quote", line);
			goto fail;
		}
		if (nlen == 15 && strncmp(name, "IBKR_BRIDGE_KEY", 15) == 0)
			migrate_replace(&me->key, val, vlen);
		else if (nlen == 15 && strncmp(name, "IBKR_BRIDGE_URL", 15) == 0)
			migrate_replace(&me->tcp, val, vlen);
		else if (nlen == 16 &&
		    strncmp(name, "IBKR_GATEWAY_URL", 16) == 0)
			migrate_replace(&me->gw_url, val, vlen);
	}
	/* an empty URL means unset, as in brokerd's environment */
	if (me->tcp != NULL && me->tcp[0] == '\0') {
		free(me->tcp);
		me->tcp = NULL;
	}
	if (me->gw_url != NULL && me->gw_url[0] == '\0') {
		free(me->gw_url);
		me->gw_url = NULL;
	}
	if (migrate_check(me, err, errlen) == -1)
		goto fail;
	explicit_bzero(val, len + 1);
	free(val);
	return (0);
 fail:
	explicit_bzero(val, len + 1);
	free(val);
	migrate_env_free(me);
	return (-1);
}

void
migrate_env_free(struct migrate_env *me)
{
	if (me->key != NULL) {
		explicit_bzero(me->key, strlen(me->key));
		free(me->key);
	}
	free(me->tcp);
	free(me->gw_url);
	memset(me, 0, sizeof(*me));
}

/*
 * A YAML scalar as brokerd.yaml must read it back: plain when it is only
 * path and address bytes and starts with none of YAML's indicators, else
 * double-quoted ("[::1]:8000" plain is a flow sequence; ", " or "}" in a
 * key file path would end the flow mapping it sits in).  A JSON string
 * is a double-quoted YAML scalar, its escapes YAML's.
 */
static int
migrate_scalar(struct buf *b, const char *s)
{
	if (s[0] != '\0' && strchr("[{-:", s[0]) == NULL &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789/._-:") == strlen(s))
		return (buf_puts(b, s));
	return (buf_json_string(b, s, strlen(s)));
}

/* The YAML lines for brokerd.yaml; the key itself never appears. */
int
migrate_yaml(const struct migrate_env *me, const char *keyfile, char *out,
    size_t outlen)
{
	struct buf	 b;
	int		 rc = -1;

	buf_init(&b);
	if (me->tcp != NULL && (buf_puts(&b, "listen:\n  tcp: ") == -1 ||
	    migrate_scalar(&b, me->tcp) == -1 || buf_puts(&b, "\n") == -1))
		goto done;
	if (me->gw_url != NULL && (buf_puts(&b, "gateway:\n  url: ") == -1 ||
	    migrate_scalar(&b, me->gw_url) == -1 || buf_puts(&b, "\n") == -1))
		goto done;
	/* all scopes: brokerd gives IBKR_BRIDGE_KEY the same */
	if (buf_puts(&b, "keys:\n  - { name: bridge, key_file: ") == -1 ||
	    migrate_scalar(&b, keyfile) == -1 ||
	    buf_puts(&b, ", scopes: [read, trade, admin] }\n") == -1 ||
	    b.len >= outlen)
		goto done;
	memcpy(out, b.data, b.len + 1);
	rc = 0;
 done:
	buf_free(&b);
	return (rc);
}

static int
migrate_read(const char *file, char **text, size_t *len)
{
	char	*buf;
	size_t	 n = 0;
	ssize_t	 r;
	int	 fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1)
		return (-1);
	if ((buf = malloc(MIGRATE_MAX_ENV + 1)) == NULL)
		goto fail;
	while (n <= MIGRATE_MAX_ENV) {
		r = read(fd, buf + n, MIGRATE_MAX_ENV + 1 - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			goto fail;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > MIGRATE_MAX_ENV) {
		errno = EFBIG;
		goto fail;
	}
	close(fd);
	*text = buf;
	*len = n;
	return (0);
 fail:
	free(buf);
	close(fd);
	return (-1);
}

/*
 * An existing key file is read the way brokerd will read it (mode 0600 or
 * stricter, a regular file, a valid key), so that a file this command
 * accepts is one brokerd accepts; then kept when it holds this key
 * (running the command twice is harmless) and refused otherwise: it may
 * be in use.  1 the same key, 0 another, -1 unusable (why says so).
 */
static int
migrate_same_key(const char *keyfile, const char *key, char *why,
    size_t whylen)
{
	char	*text = NULL;
	size_t	 len, klen = strlen(key);
	int	 same;

	if (config_lists_key_file(keyfile, &text, &len, why, whylen) == -1)
		return (-1);
	same = len == klen && memcmp(text, key, klen) == 0;
	explicit_bzero(text, len);
	free(text);
	return (same);
}

/*
 * Write the key (0600, temporary file, fsync, rename), owned by the
 * brokerd user when there is one and we may give it away, so that
 * `ExecStartPre=brokerd -t` running as that user can read it.
 */
static int
migrate_write_key(const char *keyfile, const char *key, const char **owner)
{
	struct passwd	*pw;
	char		 tmp[4096];
	int		 fd = -1, n;

	*owner = "the caller's: no brokerd user, or not root";
	n = snprintf(tmp, sizeof(tmp), "%s.tmp", keyfile);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1)
		return (-1);
	if (write(fd, key, strlen(key)) != (ssize_t)strlen(key) ||
	    write(fd, "\n", 1) != 1)
		goto fail;
	if (geteuid() == 0 && (pw = getpwnam(MIGRATE_USER)) != NULL) {
		if (fchown(fd, pw->pw_uid, pw->pw_gid) == -1)
			goto fail;
		*owner = MIGRATE_USER;
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, keyfile) == -1)
		goto fail;
	return (0);
 fail:
	n = errno;
	if (fd != -1)
		close(fd);
	unlink(tmp);
	errno = n;
	return (-1);
}

int
migrate_cmd(int argc, char *argv[])
{
	struct migrate_env	 me;
	struct stat		 st;
	const char		*keyfile = MIGRATE_KEYFILE, *owner;
	char			*text = NULL, err[256], why[512], yaml[8192];
	size_t			 len;
	int			 same, rc = 1;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: brokerd migrate-env file [keyfile]\n");
		return (1);
	}
	if (argc == 3)
		keyfile = argv[2];
	if (migrate_read(argv[1], &text, &len) == -1) {
		fprintf(stderr, "brokerd: %s: %s\n", argv[1], strerror(errno));
		return (1);
	}
	if (migrate_parse(text, len, &me, err, sizeof(err)) == -1) {
		fprintf(stderr, "brokerd: %s: %s\n", argv[1], err);
		goto done;
	}
	if (lstat(keyfile, &st) == 0)
		same = migrate_same_key(keyfile, me.key, why, sizeof(why));
	else if (errno == ENOENT)
		same = 2;	/* none yet: written below */
	else {
		fprintf(stderr, "brokerd: %s: %s\n", keyfile, strerror(errno));
		goto done;
	}
	if (same == -1) {
		fprintf(stderr, "brokerd: %s; brokerd would refuse it\n", why);
		goto done;
	}
	if (same == 0) {
		fprintf(stderr, "brokerd: %s holds another key; remove it "
		    "first or name another key file\n", keyfile);
		goto done;
	}
	if (same == 2 && migrate_write_key(keyfile, me.key, &owner) == -1) {
		fprintf(stderr, "brokerd: %s: %s\n", keyfile, strerror(errno));
		goto done;
	}
	if (same == 1)
		fprintf(stderr, "brokerd: %s already holds this key\n",
		    keyfile);
	else
		fprintf(stderr, "brokerd: wrote the key to %s (mode 0600, "
		    "owner %s)\n", keyfile, owner);
	printf("# from %s: add to brokerd.yaml (merge with any listen:, "
	    "gateway: or keys: there)\n", argv[1]);
	if (migrate_yaml(&me, keyfile, yaml, sizeof(yaml)) == -1 ||
	    fputs(yaml, stdout) == EOF || fflush(stdout) != 0)
		goto done;
	rc = 0;
 done:
	migrate_env_free(&me);
	explicit_bzero(text, len);
	free(text);
	return (rc);
}
