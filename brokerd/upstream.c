/*
 * The Gateway connection pool: non-blocking TCP and mbedTLS 2.28 on the
 * libev loop, certificate pinning (or a CA file), TLS session resumption,
 * kept-alive connections used one request at a time, the cookie jar, and
 * exact errors.  Every request, the session watcher's too, passes pace.c
 * before a connection is handed out, and is written at most once.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "brokerd.h"
#include "value.h"

#define UP_READ_CHUNK		16384
#define UP_JAR_MAX		64	/* cookies kept */
#define UP_COOKIE_MAX		4096	/* bytes of name=value */

enum tls_mode {
	TLS_PIN = 1,
	TLS_CA,
	TLS_INSECURE
};

/*
 * The TLS settings of one configuration.  Connections hold a reference,
 * so a reload can replace it while older connections finish their request.
 */
struct tls {
	mbedtls_ssl_config	 conf;
	mbedtls_x509_crt	 ca;	/* ca_file, or an empty placeholder */
	enum tls_mode		 mode;
	unsigned char		 pin[32];
	char			*host;	/* no brackets */
	char			*port;
	char			*ca_file;
	char			 hostport[300];	/* for messages, Host: */
	unsigned char		 ip[16];
	size_t			 iplen;	/* > 0: host is an IP literal */
	unsigned		 refs;
};

enum conn_state {
	CONN_CONNECTING = 0,	/* TCP connect in progress */
	CONN_HANDSHAKE,		/* TLS handshake */
	CONN_IDLE,		/* kept alive, no request */
	CONN_BUSY		/* one request: writing, then reading */
};

struct conn {
	struct upstream		*up;
	struct tls		*tls;
	enum conn_state		 state;
	int			 fd;
	int			 io_fd;		/* fd the watcher was set on */
	int			 io_events;	/* 0: stopped */
	ev_io			 io;
	ev_timer		 timer;
	struct addrinfo		*ai;
	struct addrinfo		*ai_next;	/* next address to try */
	int			 last_errno;
	int			 ssl_init;
	int			 hs_done;
	mbedtls_ssl_context	 ssl;
	int			 verified;	/* a certificate came: full hs */
	int			 pin_mismatch;
	unsigned char		 got[32];	/* SHA-256 of a refused leaf */
	uint32_t		 vflags;	/* X.509 flags left */
	int			 sys_errno;	/* from the bio callbacks */
	struct upstream_req	*req;
	struct buf		 out;		/* request head and body */
	size_t			 out_off;
	int			 writing;
	int			 write_started;	/* mbedtls_ssl_write called */
	int			 wrote;		/* a byte of the request left */
	struct http_resp_reader	 rd;
	int			 rd_init;
	int			 head_seen;	/* the final head was parsed */
	int			 streaming;	/* body goes to req->on_data */
	int			 paused;	/* on_data asked to wait */
	uint64_t		 streamed;	/* body bytes handed on */
	int			 no_reuse;
	unsigned		 served;	/* answers completed */
	int			 pooled;	/* has been idle: a reuse */
	int			 pending;	/* fail from the timer */
	enum upstream_error	 pending_err;
	char			 pending_msg[512];
	struct conn		*next;
	struct conn		*prev;
};

/* A pace object and the requests still queued in or granted by it. */
struct pace_slot {
	struct pace		*pace;
	unsigned		 users;
	struct pace_slot	*next;
};

struct upstream {
	struct ev_loop		*loop;
	const struct config	*conf;
	struct metrics		*metrics;
	mbedtls_entropy_context	 entropy;
	mbedtls_ctr_drbg_context drbg;
	struct tls		*tls;		/* current */
	mbedtls_ssl_session	 session;	/* offered to new connections */
	int			 has_session;
	struct tls		*session_tls;	/* made under these settings */
	struct conn		*conns;		/* idle ones most recent first */
	unsigned		 nconns;
	struct pace_slot	*paces;		/* first: the current one */
	struct upstream_jar	 jar;
	struct upstream_req	*dq_head;	/* errors to report */
	struct upstream_req	*dq_tail;
	ev_timer		 kick;		/* 0 s: deferred work */
	ev_timer		 pace_timer;
	int			 dispatching;
	int			 redispatch;
	int			 failing;	/* since the last answer */
	struct upstream_stats	 st;
};

static void	conn_io_cb(struct ev_loop *, ev_io *, int);
static void	conn_timer_cb(struct ev_loop *, ev_timer *, int);
static void	conn_close(struct conn *);
static void	conn_write(struct conn *);
static void	dispatch(struct upstream *);
static void	kick(struct upstream *);

/* ------------------------------------------------------------ helpers */

void
upstream_hex_colon(const unsigned char *p, size_t n, char *out,
    size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		 i, o = 0;

	if (outlen == 0)
		return;
	for (i = 0; i < n; i++) {
		if (o + (i > 0 ? 3 : 2) >= outlen)
			break;
		if (i > 0)
			out[o++] = ':';
		out[o++] = hex[p[i] >> 4];
		out[o++] = hex[p[i] & 0x0f];
	}
	out[o] = '\0';
}

/* Messages for logs and errmsg: cut when too long, which is harmless. */
static void __attribute__((format(printf, 3, 4)))
msgf(char *out, size_t len, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(out, len, fmt, ap);
	va_end(ap);
}

static int
is_tchar(int ch)
{
	return (isalnum(ch) || (ch != '\0' &&
	    strchr("!#$%&'*+-.^_`|~", ch) != NULL));
}

/* Header field values: visible ASCII, spaces, tabs, obs-text; no CR/LF. */
static int
field_ok(const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return (0);
	return (1);
}

/* ------------------------------------------------------------ cookie jar */

void
upstream_jar_init(struct upstream_jar *j)
{
	j->v = NULL;
	j->n = 0;
	j->cap = 0;
}

void
upstream_jar_free(struct upstream_jar *j)
{
	size_t	 i;

	for (i = 0; i < j->n; i++) {
		free(j->v[i].name);
		free(j->v[i].value);
	}
	free(j->v);
	upstream_jar_init(j);
}

static const char *
skip_ws(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	return (s);
}

static const char *
trim_ws(const char *s, const char *end)
{
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return (end);
}

/* RFC 6265 dates as servers write them; (time_t)-1 when unreadable. */
static time_t
cookie_date(const char *s, size_t len)
{
	static const char *const fmts[] = {
		"%a, %d %b %Y %H:%M:%S",
		"%a, %d-%b-%Y %H:%M:%S",
		"%A, %d-%b-%y %H:%M:%S",
		"%a, %d-%b-%y %H:%M:%S",
		"%a %b %e %H:%M:%S %Y",
	};
	char		 tmp[64];
	const char	*end;
	struct tm	 tm;
	size_t		 i;

	if (len == 0 || len >= sizeof(tmp))
		return ((time_t)-1);
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	for (i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		memset(&tm, 0, sizeof(tm));
		if ((end = strptime(tmp, fmts[i], &tm)) == NULL)
			continue;
		while (*end == ' ')
			end++;
		if (*end != '\0' && strcasecmp(end, "GMT") != 0 &&
		    strcasecmp(end, "UTC") != 0)
			continue;
		return (timegm(&tm));
	}
	return ((time_t)-1);
}

/* Max-Age: "-"? digits; 0 when unreadable (the attribute is ignored). */
static int
cookie_max_age(const char *s, size_t len, long long *out)
{
	long long	 v = 0;
	size_t		 i = 0;
	int		 neg = 0;

	if (len > 0 && s[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i == len)
		return (-1);
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return (-1);
		if (v < 100000000000LL)
			v = v * 10 + (s[i] - '0');
	}
	*out = neg ? -v : v;
	return (0);
}

static ssize_t
jar_find(const struct upstream_jar *j, const char *name, size_t len)
{
	size_t	 i;

	for (i = 0; i < j->n; i++)
		if (strlen(j->v[i].name) == len &&
		    memcmp(j->v[i].name, name, len) == 0)
			return ((ssize_t)i);
	return (-1);
}

static void
jar_remove(struct upstream_jar *j, size_t i)
{
	free(j->v[i].name);
	free(j->v[i].value);
	memmove(&j->v[i], &j->v[i + 1], (j->n - i - 1) * sizeof(j->v[0]));
	j->n--;
}

/*
 * The Gateway's cookies are opaque to brokerd: it keeps name=value and
 * replays them, nothing more (one Gateway, one path, always Secure).
 * Bytes that could break the Cookie header are refused.
 */
int
upstream_jar_absorb(struct upstream_jar *j, const char *sc, time_t now)
{
	const char	*end, *semi, *eq, *name, *name_end, *val, *val_end;
	const char	*a, *a_end, *a_eq, *an_end, *av;
	struct upstream_cookie *nv;
	long long	 max_age = 0;
	time_t		 expires = (time_t)-1;
	int		 has_max_age = 0, remove = 0;
	ssize_t		 at;
	char		*n = NULL, *v = NULL;
	size_t		 i;

	end = sc + strlen(sc);
	if ((semi = memchr(sc, ';', (size_t)(end - sc))) == NULL)
		semi = end;
	if ((eq = memchr(sc, '=', (size_t)(semi - sc))) == NULL)
		return (-1);
	name = skip_ws(sc, eq);
	name_end = trim_ws(name, eq);
	val = skip_ws(eq + 1, semi);
	val_end = trim_ws(val, semi);
	if (name == name_end)
		return (-1);
	for (a = name; a < name_end; a++)
		if (!is_tchar((unsigned char)*a))
			return (-1);
	for (a = val; a < val_end; a++)
		if ((unsigned char)*a < 0x21 || *a == 0x7f || *a == ';' ||
		    *a == ',' || *a == '\\')
			return (-1);
	if ((size_t)(name_end - name) + (size_t)(val_end - val) >
	    UP_COOKIE_MAX)
		return (-1);

	/* Attributes: only Max-Age and Expires matter here. */
	for (a = semi; a < end; a = a_end) {
		a = skip_ws(a + 1, end);
		if ((a_end = memchr(a, ';', (size_t)(end - a))) == NULL)
			a_end = end;
		if ((a_eq = memchr(a, '=', (size_t)(a_end - a))) == NULL)
			continue;
		an_end = trim_ws(a, a_eq);
		av = skip_ws(a_eq + 1, a_end);
		if (an_end - a == 7 && strncasecmp(a, "max-age", 7) == 0) {
			if (cookie_max_age(av, (size_t)(trim_ws(av, a_end) -
			    av), &max_age) == 0)
				has_max_age = 1;
		} else if (an_end - a == 7 && strncasecmp(a, "expires", 7) ==
		    0)
			expires = cookie_date(av, (size_t)(trim_ws(av, a_end) -
			    av));
	}
	if (has_max_age)
		remove = max_age <= 0;
	else if (expires != (time_t)-1)
		remove = expires <= now;

	at = jar_find(j, name, (size_t)(name_end - name));
	if (remove) {
		if (at >= 0)
			jar_remove(j, (size_t)at);
		return (0);
	}
	if ((v = strndup(val, (size_t)(val_end - val))) == NULL)
		return (-1);
	if (at >= 0) {
		free(j->v[at].value);
		j->v[at].value = v;
		return (0);
	}
	if (j->n >= UP_JAR_MAX)
		goto fail;
	if ((n = strndup(name, (size_t)(name_end - name))) == NULL)
		goto fail;
	if (j->n == j->cap) {
		i = j->cap ? j->cap * 2 : 8;
		if ((nv = reallocarray(j->v, i, sizeof(*nv))) == NULL)
			goto fail;
		j->v = nv;
		j->cap = i;
	}
	j->v[j->n].name = n;
	j->v[j->n].value = v;
	j->n++;
	return (0);
fail:
	free(n);
	free(v);
	return (-1);
}

int
upstream_jar_format(const struct upstream_jar *j, struct buf *out)
{
	size_t	 i;

	for (i = 0; i < j->n; i++)
		if (buf_printf(out, "%s%s=%s", i > 0 ? "; " : "",
		    j->v[i].name, j->v[i].value) == -1)
			return (-1);
	return (0);
}

void
upstream_jar_clear(struct upstream *up)
{
	upstream_jar_free(&up->jar);
}

/* ------------------------------------------------------ request format */

static int
method_has_body(const char *m)
{
	return (strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
	    strcmp(m, "PATCH") == 0 || strcmp(m, "DELETE") == 0);
}

static int
method_idempotent(const char *m)
{
	return (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0);
}

/* Nothing the caller put in may bend the request head. */
static int
req_valid(const struct upstream_req *req)
{
	const unsigned char *p;
	size_t		 i;

	if (req->method[0] == '\0')
		return (0);
	for (i = 0; i < sizeof(req->method) && req->method[i] != '\0'; i++)
		if (!is_tchar((unsigned char)req->method[i]))
			return (0);
	if (i == sizeof(req->method))
		return (0);
	if (req->target.len == 0 || req->target.data[0] != '/')
		return (0);
	for (p = (const unsigned char *)req->target.data, i = 0;
	    i < req->target.len; i++)
		if (p[i] <= 0x20 || p[i] == 0x7f)
			return (0);
	if (req->content_type != NULL && !field_ok(req->content_type))
		return (0);
	if (req->accept != NULL && !field_ok(req->accept))
		return (0);
	return (1);
}

/*
 * Only what the Gateway needs: client.c passes method, target, content
 * type, accept and body; nothing else of the client's reaches here.  The
 * Gateway answers 411 to a POST without Content-Length, so every method
 * that may carry a body says it, 0 included.
 */
int
upstream_format_request(struct buf *out, const struct upstream_req *req,
    const char *host, const char *port, const char *cookie)
{
	size_t	 start = out->len;
	int	 v6 = strchr(host, ':') != NULL;

	if (!req_valid(req) || !field_ok(host) || !field_ok(port) ||
	    (cookie != NULL && !field_ok(cookie)))
		return (-1);
	if (buf_printf(out, "%s %.*s HTTP/1.1\r\n", req->method,
	    (int)req->target.len, req->target.data) == -1 ||
	    buf_printf(out, "Host: %s%s%s:%s\r\n", v6 ? "[" : "", host,
	    v6 ? "]" : "", port) == -1 ||
	    buf_puts(out, "User-Agent: brokerd/" BROKERD_VERSION "\r\n") ==
	    -1 ||
	    buf_printf(out, "Accept: %s\r\n", req->accept != NULL &&
	    req->accept[0] != '\0' ? req->accept : "*/*") == -1)
		goto fail;
	if (req->content_type != NULL && req->content_type[0] != '\0' &&
	    buf_printf(out, "Content-Type: %s\r\n", req->content_type) == -1)
		goto fail;
	if ((req->body.len > 0 || method_has_body(req->method)) &&
	    buf_printf(out, "Content-Length: %zu\r\n", req->body.len) == -1)
		goto fail;
	if (cookie != NULL && cookie[0] != '\0' &&
	    buf_printf(out, "Cookie: %s\r\n", cookie) == -1)
		goto fail;
	if (buf_puts(out, "Connection: keep-alive\r\n\r\n") == -1)
		goto fail;
	if (req->body.len > 0 &&
	    buf_append(out, req->body.data, req->body.len) == -1)
		goto fail;
	return (0);
fail:
	buf_truncate(out, start);
	return (-1);
}

/* -------------------------------------------------------------- TLS */

/*
 * mbedTLS 2.28 lists only dNSName and otherName in subject_alt_names, so
 * an iPAddress entry ([7] IMPLICIT OCTET STRING) is looked up in the raw
 * extensions.  Any parse trouble means "not found": the check fails closed.
 */
static int
crt_has_ip(const mbedtls_x509_crt *crt, const unsigned char *ip, size_t iplen)
{
	unsigned char	*p, *end, *ext_end, *gn_end;
	size_t		 len;
	int		 crit;
	mbedtls_x509_buf oid;

	if (crt->v3_ext.p == NULL || crt->v3_ext.len == 0)
		return (0);
	p = crt->v3_ext.p;
	end = p + crt->v3_ext.len;
	if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED |
	    MBEDTLS_ASN1_SEQUENCE) != 0)
		return (0);
	end = p + len;
	while (p < end) {
		if (mbedtls_asn1_get_tag(&p, end, &len,
		    MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
			return (0);
		ext_end = p + len;
		if (mbedtls_asn1_get_tag(&p, ext_end, &oid.len,
		    MBEDTLS_ASN1_OID) != 0)
			return (0);
		oid.p = p;
		p += oid.len;
		(void)mbedtls_asn1_get_bool(&p, ext_end, &crit);
		if (mbedtls_asn1_get_tag(&p, ext_end, &len,
		    MBEDTLS_ASN1_OCTET_STRING) != 0)
			return (0);
		if (MBEDTLS_OID_CMP(MBEDTLS_OID_SUBJECT_ALT_NAME, &oid) != 0) {
			p = ext_end;
			continue;
		}
		if (mbedtls_asn1_get_tag(&p, ext_end, &len,
		    MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
			return (0);
		gn_end = p + len;
		while (p < gn_end) {
			int tag = *p++;

			if (mbedtls_asn1_get_len(&p, gn_end, &len) != 0)
				return (0);
			if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) &&
			    len == iplen && memcmp(p, ip, iplen) == 0)
				return (1);
			p += len;
		}
		p = ext_end;
	}
	return (0);
}

/* A DNS name or CN spelled like the IP literal, as some tools write it. */
static int
crt_names_host(const mbedtls_x509_crt *crt, const char *host)
{
	const mbedtls_x509_sequence *s;
	const mbedtls_x509_name *n;
	size_t		 hl = strlen(host);

	for (s = &crt->subject_alt_names; s != NULL && s->buf.p != NULL;
	    s = s->next)
		if ((s->buf.tag & MBEDTLS_ASN1_TAG_VALUE_MASK) == 2 &&
		    s->buf.len == hl && memcmp(s->buf.p, host, hl) == 0)
			return (1);
	if (crt->ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME)
		return (0);
	for (n = &crt->subject; n != NULL; n = n->next)
		if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0 &&
		    n->val.len == hl && memcmp(n->val.p, host, hl) == 0)
			return (1);
	return (0);
}

/*
 * Called by mbedTLS for each certificate of the chain, root first, only
 * in a full handshake (a resumed one sends none).  Pinned: the leaf's DER
 * hash decides alone, expiry and chain do not matter (the Gateway ships
 * an expired self-signed certificate).  CA: mbedTLS checked chain and
 * dates; an IP literal host is matched against iPAddress names here.
 */
static int
conn_verify_cb(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	struct conn	*c = arg;
	struct tls	*t = c->tls;
	unsigned char	 h[32];

	c->verified = 1;
	switch (t->mode) {
	case TLS_INSECURE:
		*flags = 0;
		break;
	case TLS_PIN:
		if (depth > 0) {
			*flags = 0;
			break;
		}
		if (mbedtls_sha256_ret(crt->raw.p, crt->raw.len, h, 0) == 0 &&
		    memcmp(h, t->pin, sizeof(h)) == 0)
			*flags = 0;
		else {
			c->pin_mismatch = 1;
			memcpy(c->got, h, sizeof(c->got));
			*flags |= MBEDTLS_X509_BADCERT_NOT_TRUSTED;
		}
		break;
	case TLS_CA:
		if (depth == 0 && t->iplen > 0 && !crt_has_ip(crt, t->ip,
		    t->iplen) && !crt_names_host(crt, t->host))
			*flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
		break;
	}
	c->vflags |= *flags;
	return (0);
}

static void
tls_unref(struct tls *t)
{
	if (t == NULL || --t->refs > 0)
		return;
	mbedtls_ssl_config_free(&t->conf);
	mbedtls_x509_crt_free(&t->ca);
	free(t->host);
	free(t->port);
	free(t->ca_file);
	free(t);
}

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a == b);
	return (strcmp(a, b) == 0);
}

static int
tls_same(const struct tls *t, const struct config *conf)
{
	enum tls_mode	 mode;

	mode = conf->gw_has_pin ? TLS_PIN : conf->gw_ca_file != NULL ?
	    TLS_CA : TLS_INSECURE;
	if (mode != t->mode || !str_eq(t->host, conf->gw_host) ||
	    !str_eq(t->port, conf->gw_port))
		return (0);
	if (mode == TLS_PIN && memcmp(t->pin, conf->gw_pin, 32) != 0)
		return (0);
	if (mode == TLS_CA && !str_eq(t->ca_file, conf->gw_ca_file))
		return (0);
	return (1);
}

/*
 * One ssl_config per configuration.  Pinning wins over ca_file when both
 * are set.  With a pin there is no CA: an empty placeholder chain keeps
 * mbedTLS from refusing VERIFY_REQUIRED outright, the callback decides.
 */
static struct tls *
tls_new(struct upstream *up, const struct config *conf, char *err,
    size_t errlen)
{
	struct tls	*t;
	char		 e[128];
	int		 ret, n;

	if (conf->gw_host == NULL || conf->gw_port == NULL) {
		snprintf(err, errlen, "gateway.url: no host or port");
		return (NULL);
	}
	if (!conf->gw_has_pin && conf->gw_ca_file == NULL &&
	    !conf->gw_insecure) {
		snprintf(err, errlen, "gateway.tls: the Gateway's certificate "
		    "cannot be checked: run `brokerd gateway-fingerprint` and "
		    "set gateway.tls.pin_sha256 to what it prints (or set "
		    "gateway.tls.ca_file, or gateway.tls.insecure: true)");
		return (NULL);
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		goto oom;
	t->refs = 1;
	mbedtls_ssl_config_init(&t->conf);
	mbedtls_x509_crt_init(&t->ca);
	if ((t->host = strdup(conf->gw_host)) == NULL ||
	    (t->port = strdup(conf->gw_port)) == NULL)
		goto oom;
	n = snprintf(t->hostport, sizeof(t->hostport), "%s%s%s:%s",
	    strchr(t->host, ':') ? "[" : "", t->host,
	    strchr(t->host, ':') ? "]" : "", t->port);
	if (n < 0 || (size_t)n >= sizeof(t->hostport)) {
		snprintf(err, errlen, "gateway.url: host name too long");
		goto fail;
	}
	if (inet_pton(AF_INET, t->host, t->ip) == 1)
		t->iplen = 4;
	else if (inet_pton(AF_INET6, t->host, t->ip) == 1)
		t->iplen = 16;

	if ((ret = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
		goto tlsfail;
	mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &up->drbg);
	mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	    MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_session_tickets(&t->conf,
	    MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
	mbedtls_ssl_conf_renegotiation(&t->conf,
	    MBEDTLS_SSL_RENEGOTIATION_DISABLED);

	if (conf->gw_has_pin) {
		t->mode = TLS_PIN;
		memcpy(t->pin, conf->gw_pin, sizeof(t->pin));
		mbedtls_ssl_conf_authmode(&t->conf,
		    MBEDTLS_SSL_VERIFY_REQUIRED);
		mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
	} else if (conf->gw_ca_file != NULL) {
		t->mode = TLS_CA;
		if ((t->ca_file = strdup(conf->gw_ca_file)) == NULL)
			goto oom;
		if ((ret = mbedtls_x509_crt_parse_file(&t->ca,
		    conf->gw_ca_file)) < 0 || t->ca.version == 0) {
			if (ret < 0)
				mbedtls_strerror(ret, e, sizeof(e));
			else
				snprintf(e, sizeof(e), "no certificate");
			snprintf(err, errlen, "gateway.tls.ca_file %s: %s",
			    conf->gw_ca_file, e);
			goto fail;
		}
		mbedtls_ssl_conf_authmode(&t->conf,
		    MBEDTLS_SSL_VERIFY_REQUIRED);
		mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
	} else {
		/* OPTIONAL so that the callback runs and tells full from
		 * resumed handshakes; it accepts everything. */
		t->mode = TLS_INSECURE;
		mbedtls_ssl_conf_authmode(&t->conf,
		    MBEDTLS_SSL_VERIFY_OPTIONAL);
		log_warn("gateway.tls.insecure is set: the Gateway's "
		    "certificate at %s is NOT verified; set "
		    "gateway.tls.pin_sha256 (brokerd gateway-fingerprint)",
		    t->hostport);
	}
	return (t);
oom:
	snprintf(err, errlen, "out of memory");
	goto fail;
tlsfail:
	mbedtls_strerror(ret, e, sizeof(e));
	snprintf(err, errlen, "TLS setup: %s", e);
fail:
	tls_unref(t);
	return (NULL);
}

/* --------------------------------------------------------- connections */

static int
bio_send(void *arg, const unsigned char *p, size_t len)
{
	struct conn	*c = arg;
	ssize_t		 n;

	do
		n = send(c->fd, p, len, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n >= 0) {
		if (n > 0 && c->state == CONN_BUSY && !c->wrote) {
			c->wrote = 1;
			if (c->req != NULL && c->req->granted)
				pace_sent(c->req->pace, &c->req->ticket,
				    now_ms());
		}
		return ((int)n);
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return (MBEDTLS_ERR_SSL_WANT_WRITE);
	c->sys_errno = errno;
	if (errno == EPIPE || errno == ECONNRESET)
		return (MBEDTLS_ERR_NET_CONN_RESET);
	return (MBEDTLS_ERR_NET_SEND_FAILED);
}

static int
bio_recv(void *arg, unsigned char *p, size_t len)
{
	struct conn	*c = arg;
	ssize_t		 n;

	do
		n = recv(c->fd, p, len, 0);
	while (n == -1 && errno == EINTR);
	if (n >= 0)
		return ((int)n);
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return (MBEDTLS_ERR_SSL_WANT_READ);
	c->sys_errno = errno;
	if (errno == ECONNRESET || errno == EPIPE)
		return (MBEDTLS_ERR_NET_CONN_RESET);
	return (MBEDTLS_ERR_NET_RECV_FAILED);
}

static void
conn_watch(struct conn *c, int events)
{
	struct ev_loop	*loop = c->up->loop;

	if (c->io_events == events && c->io_fd == c->fd)
		return;
	ev_io_stop(loop, &c->io);
	c->io_events = 0;
	if (events == 0 || c->fd == -1)
		return;
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(loop, &c->io);
	c->io_events = events;
	c->io_fd = c->fd;
}

static void
conn_timer(struct conn *c, unsigned ms)
{
	ev_timer_stop(c->up->loop, &c->timer);
	ev_timer_set(&c->timer, ms / 1000.0, 0.);
	ev_timer_start(c->up->loop, &c->timer);
}

static unsigned
pool_size(const struct upstream *up)
{
	return (up->conf->gw_pool > 0 ? up->conf->gw_pool : 1);
}

static void
conn_unlink(struct conn *c)
{
	struct upstream	*up = c->up;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else if (up->conns == c)
		up->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

static void
conn_link_head(struct conn *c)
{
	struct upstream	*up = c->up;

	c->prev = NULL;
	c->next = up->conns;
	if (up->conns != NULL)
		up->conns->prev = c;
	up->conns = c;
}

static struct conn *
conn_new(struct upstream *up)
{
	struct conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return (NULL);
	c->up = up;
	c->tls = up->tls;
	c->tls->refs++;
	c->fd = -1;
	c->io_fd = -1;
	c->state = CONN_CONNECTING;
	buf_init(&c->out);
	ev_init(&c->io, conn_io_cb);
	c->io.data = c;
	ev_init(&c->timer, conn_timer_cb);
	c->timer.data = c;
	conn_link_head(c);
	up->nconns++;
	return (c);
}

/* The request must have been detached first (c->req == NULL). */
static void
conn_close(struct conn *c)
{
	struct upstream	*up = c->up;

	ev_io_stop(up->loop, &c->io);
	ev_timer_stop(up->loop, &c->timer);
	if (c->ssl_init) {
		if (c->hs_done)
			(void)mbedtls_ssl_close_notify(&c->ssl);
		mbedtls_ssl_free(&c->ssl);
	}
	if (c->fd != -1)
		close(c->fd);
	if (c->ai != NULL)
		freeaddrinfo(c->ai);
	if (c->rd_init)
		http_resp_reader_free(&c->rd);
	buf_free(&c->out);
	conn_unlink(c);
	up->nconns--;
	tls_unref(c->tls);
	free(c);
}

/* Report a failure from the loop, not from the caller's stack. */
static void
conn_fail_later(struct conn *c, enum upstream_error e, const char *msg)
{
	c->pending = 1;
	c->pending_err = e;
	snprintf(c->pending_msg, sizeof(c->pending_msg), "%s", msg);
	conn_watch(c, 0);
	conn_timer(c, 0);
}

static struct pace_slot *
slot_of(struct upstream *up, const struct pace *p)
{
	struct pace_slot *s;

	for (s = up->paces; s != NULL; s = s->next)
		if (s->pace == p)
			return (s);
	return (NULL);
}

/*
 * The single exit of a request: release its grant, forget it, count the
 * error, then call back.  Nothing of it is touched after the callback
 * (which usually frees it).
 */
static void
req_finish(struct upstream *up, struct upstream_req *req,
    enum upstream_error e, struct http_response *resp)
{
	struct pace_slot *s;

	if (req->pace != NULL) {
		if (req->granted)
			pace_release(req->pace, &req->ticket);
		if ((s = slot_of(up, req->pace)) != NULL && s->users > 0)
			s->users--;
	}
	req->pace = NULL;
	req->granted = 0;
	req->deferred = 0;
	req->conn = NULL;
	req->next = NULL;
	switch (e) {
	case UPSTREAM_OK:
	case UPSTREAM_RATE_LIMITED:
	case UPSTREAM_CANCELLED:
		break;
	case UPSTREAM_TIMEOUT:
		up->st.errors++;
		if (up->metrics != NULL)
			metrics_upstream(up->metrics, "timeouts");
		break;
	default:
		up->st.errors++;
		if (up->metrics != NULL)
			metrics_upstream(up->metrics, "errors");
		break;
	}
	if (req->cb != NULL)
		req->cb(req, e, resp, req->arg);
	else if (resp != NULL) {
		http_response_free(resp);
	}
}

/* Queue an error for the kick timer (never inside upstream_submit). */
static void
req_defer(struct upstream *up, struct upstream_req *req,
    enum upstream_error e)
{
	req->deferred = (int)e;
	req->conn = NULL;
	req->next = NULL;
	if (up->dq_tail != NULL)
		up->dq_tail->next = req;
	else
		up->dq_head = req;
	up->dq_tail = req;
	kick(up);
}

static void
dq_remove(struct upstream *up, struct upstream_req *req)
{
	struct upstream_req *r, *prev = NULL;

	for (r = up->dq_head; r != NULL; prev = r, r = r->next) {
		if (r != req)
			continue;
		if (prev != NULL)
			prev->next = r->next;
		else
			up->dq_head = r->next;
		if (up->dq_tail == r)
			up->dq_tail = prev;
		r->next = NULL;
		return;
	}
}

/*
 * The first failure after an answer is a warning; the rest of the spell
 * (the nightly reset, a Gateway restart) is debug, so the log stays
 * readable.  The session watcher logs the state change at info.
 */
static void
conn_log_fail(struct conn *c, struct upstream_req *req, const char *msg)
{
	void	(*logf)(const char *, ...) __attribute__((format(printf, 1,
	    2)));

	logf = c->up->failing++ ? log_debug : log_warn;
	if (req != NULL)
		logf("gateway %s: %s %.*s: %s", c->tls->hostport,
		    req->method, (int)(req->target.len > 200 ? 200 :
		    req->target.len), req->target.data, msg);
	else
		logf("gateway %s: %s", c->tls->hostport, msg);
}

/* The connection is done for; its request (if any) fails with e. */
static void
conn_fail(struct conn *c, enum upstream_error e, const char *msg)
{
	struct upstream		*up = c->up;
	struct upstream_req	*req = c->req;

	conn_log_fail(c, req, msg);
	if (req != NULL) {
		c->req = NULL;
		req->conn = NULL;
		snprintf(req->errmsg, sizeof(req->errmsg), "%s", msg);
	}
	conn_close(c);
	if (req != NULL)
		req_finish(up, req, e, NULL);
	dispatch(up);
}

/* Try the next address of the host; -1 when none is left. */
static int
conn_connect_next(struct conn *c)
{
	struct addrinfo	*ai;
	int		 fd, one = 1;

	while ((ai = c->ai_next) != NULL) {
		c->ai_next = ai->ai_next;
		if (c->fd != -1) {
			conn_watch(c, 0);
			close(c->fd);
			c->fd = -1;
		}
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1) {
			c->last_errno = errno;
			continue;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		c->fd = fd;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    errno == EINPROGRESS) {
			conn_watch(c, EV_WRITE);
			return (0);
		}
		c->last_errno = errno;
	}
	return (-1);
}

static int
conn_resolve(struct conn *c, char *msg, size_t msglen)
{
	struct addrinfo	 hints;
	int		 r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	r = getaddrinfo(c->tls->host, c->tls->port, &hints, &c->ai);
	if (r == EAI_NONAME) {
		/* A name: blocking, but /etc/hosts for localhost. */
		hints.ai_flags = AI_ADDRCONFIG;
		r = getaddrinfo(c->tls->host, c->tls->port, &hints, &c->ai);
	}
	if (r != 0) {
		c->ai = NULL;
		msgf(msg, msglen, "cannot resolve %s: %s",
		    c->tls->hostport, gai_strerror(r));
		return (-1);
	}
	c->ai_next = c->ai;
	return (0);
}

/*
 * A new connection for req (may be NULL).  Never calls back: a failure
 * found now is reported from the connection's timer.
 */
static struct conn *
conn_open(struct upstream *up, struct upstream_req *req)
{
	struct conn	*c;
	char		 msg[256];

	if ((c = conn_new(up)) == NULL)
		return (NULL);
	c->req = req;
	if (req != NULL)
		req->conn = c;
	conn_timer(c, up->conf->gw_connect_timeout_ms);
	if (conn_resolve(c, msg, sizeof(msg)) == -1) {
		conn_fail_later(c, UPSTREAM_UNREACHABLE, msg);
		return (c);
	}
	if (conn_connect_next(c) == -1) {
		msgf(msg, sizeof(msg), "connect to %s: %s",
		    c->tls->hostport, strerror(c->last_errno));
		conn_fail_later(c, UPSTREAM_UNREACHABLE, msg);
	}
	return (c);
}

/* Bind-time work: format the request, arm the reader and the timeout. */
static int
conn_prepare(struct conn *c)
{
	struct upstream		*up = c->up;
	struct upstream_req	*req = c->req;
	struct buf		 ck;
	int			 rc;

	buf_init(&ck);
	buf_reset(&c->out);
	c->out_off = 0;
	c->wrote = 0;
	c->write_started = 0;
	c->writing = 1;
	c->no_reuse = 0;
	c->head_seen = 0;
	c->streaming = 0;
	c->paused = 0;
	c->streamed = 0;
	req->streaming = 0;
	req->resp_length = -1;
	c->state = CONN_BUSY;
	if (upstream_jar_format(&up->jar, &ck) == -1) {
		buf_free(&ck);
		return (-1);
	}
	rc = upstream_format_request(&c->out, req, c->tls->host, c->tls->port,
	    ck.data);
	buf_free(&ck);
	if (rc == -1)
		return (-1);
	if (c->rd_init)
		http_resp_reader_free(&c->rd);
	http_resp_reader_init(&c->rd, up->conf->max_response_bytes,
	    strcmp(req->method, "HEAD") == 0);
	c->rd_init = 1;
	conn_timer(c, up->conf->gw_timeout_ms);
	up->st.requests++;
	if (up->metrics != NULL)
		metrics_upstream(up->metrics, "requests");
	return (0);
}

static void
conn_make_idle(struct conn *c)
{
	c->state = CONN_IDLE;
	c->pooled = 1;
	c->writing = 0;
	c->wrote = 0;
	c->head_seen = 0;
	c->streaming = 0;
	c->paused = 0;
	if (c->rd_init) {
		http_resp_reader_free(&c->rd);
		c->rd_init = 0;
	}
	if (c->out.cap > 65536)
		buf_free(&c->out);
	else
		buf_reset(&c->out);
	ev_timer_stop(c->up->loop, &c->timer);
	conn_watch(c, EV_READ);
	conn_unlink(c);
	conn_link_head(c);
}

/*
 * A connection nobody waits for stays only under the current TLS settings:
 * one made under settings a reload replaced would hold a pool slot that no
 * request may take (req_start skips it) until the Gateway closes it.
 */
static void
conn_park(struct conn *c)
{
	if (c->tls != c->up->tls)
		conn_close(c);
	else
		conn_make_idle(c);
}

/*
 * A kept-alive connection the Gateway may have closed meanwhile: a peek
 * that would block means alive; EOF, an alert (close_notify) or any
 * stray byte means gone.
 */
static int
conn_alive(struct conn *c)
{
	char	 b;
	ssize_t	 n;

	if (mbedtls_ssl_get_bytes_avail(&c->ssl) > 0)
		return (0);
	do
		n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	return (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/*
 * A granted request takes a connection: the newest idle one that is still
 * alive, else one being opened for nobody, else a new one.  No callback.
 */
static void
req_start(struct upstream *up, struct upstream_req *req)
{
	struct conn	*c, *next;

	for (c = up->conns; c != NULL; c = next) {
		next = c->next;
		if (c->state != CONN_IDLE || c->req != NULL ||
		    c->tls != up->tls)
			continue;
		if (!conn_alive(c)) {
			log_debug("gateway %s: kept-alive connection closed "
			    "by the peer", c->tls->hostport);
			conn_close(c);
			continue;
		}
		c->req = req;
		req->conn = c;
		if (conn_prepare(c) == -1) {
			conn_fail_later(c, UPSTREAM_UNREACHABLE,
			    "out of memory");
			return;
		}
		conn_watch(c, EV_WRITE);
		return;
	}
	for (c = up->conns; c != NULL; c = c->next) {
		if ((c->state == CONN_CONNECTING ||
		    c->state == CONN_HANDSHAKE) && c->req == NULL &&
		    !c->pending && c->tls == up->tls) {
			c->req = req;
			req->conn = c;
			return;
		}
	}
	if (conn_open(up, req) == NULL) {
		snprintf(req->errmsg, sizeof(req->errmsg), "out of memory");
		req_defer(up, req, UPSTREAM_UNREACHABLE);
	}
}

/* Connections a grant could use now. */
static unsigned
pool_free(const struct upstream *up)
{
	const struct conn *c;
	unsigned	 n = 0, pool = pool_size(up);

	for (c = up->conns; c != NULL; c = c->next)
		if (c->req == NULL && !c->pending && c->state != CONN_BUSY &&
		    c->tls == up->tls)
			n++;
	if (up->nconns < pool)
		n += pool - up->nconns;
	return (n);
}

/*
 * A refused certificate is its own error (502 gateway_certificate), and
 * its message names both fingerprints whole: the operator compares them
 * with `brokerd gateway-fingerprint` before changing the pin.
 */
static void
conn_tls_error(struct conn *c, int ret)
{
	char	 e[128], detail[300], got[96], want[96], msg[512];
	size_t	 i;

	mbedtls_strerror(ret, e, sizeof(e));
	detail[0] = '\0';
	if (c->pin_mismatch) {
		upstream_hex_colon(c->got, sizeof(c->got), got, sizeof(got));
		upstream_hex_colon(c->tls->pin, sizeof(c->tls->pin), want,
		    sizeof(want));
		memcpy(c->up->st.fingerprint, got, sizeof(got));
		log_warn("gateway %s: certificate SHA-256 %s does not match "
		    "gateway.tls.pin_sha256 %s", c->tls->hostport, got, want);
		snprintf(msg, sizeof(msg), "TLS handshake failed: the "
		    "Gateway's certificate SHA-256 %s does not match "
		    "gateway.tls.pin_sha256 %s", got, want);
		conn_fail(c, UPSTREAM_CERTIFICATE, msg);
		return;
	}
	if (c->vflags != 0) {
		if (mbedtls_x509_crt_verify_info(detail, sizeof(detail), "",
		    c->vflags) < 0)
			detail[0] = '\0';
		for (i = 0; detail[i] != '\0'; i++)
			if (detail[i] == '\n')
				detail[i] = detail[i + 1] != '\0' ? ';' : '\0';
	} else if (c->sys_errno != 0)
		snprintf(detail, sizeof(detail), "%s", strerror(c->sys_errno));
	else if (ret == MBEDTLS_ERR_SSL_CONN_EOF || ret == 0)
		snprintf(detail, sizeof(detail), "the peer closed the "
		    "connection");
	if (detail[0] != '\0')
		msgf(msg, sizeof(msg), "TLS handshake failed: %s (%s)",
		    detail, e);
	else
		snprintf(msg, sizeof(msg), "TLS handshake failed: %s", e);
	conn_fail(c, c->vflags != 0 ? UPSTREAM_CERTIFICATE :
	    UPSTREAM_UNREACHABLE, msg);
}

static void
conn_handshake(struct conn *c)
{
	struct upstream		*up = c->up;
	const mbedtls_x509_crt	*peer;
	unsigned char		 h[32];
	int			 ret;

	ret = mbedtls_ssl_handshake(&c->ssl);
	if (ret == MBEDTLS_ERR_SSL_WANT_READ) {
		conn_watch(c, EV_READ);
		return;
	}
	if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
		conn_watch(c, EV_WRITE);
		return;
	}
	if (ret != 0) {
		conn_tls_error(c, ret);
		return;
	}
	if (c->tls->mode != TLS_INSECURE &&
	    mbedtls_ssl_get_verify_result(&c->ssl) != 0) {
		conn_tls_error(c, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
		return;
	}
	c->hs_done = 1;
	up->st.handshakes++;
	if (up->metrics != NULL)
		metrics_upstream(up->metrics, "handshakes");
	if (!c->verified)
		up->st.resumed++;
	else if ((peer = mbedtls_ssl_get_peer_cert(&c->ssl)) != NULL &&
	    mbedtls_sha256_ret(peer->raw.p, peer->raw.len, h, 0) == 0)
		upstream_hex_colon(h, sizeof(h), up->st.fingerprint,
		    sizeof(up->st.fingerprint));
	if (c->tls == up->tls) {
		mbedtls_ssl_session_free(&up->session);
		mbedtls_ssl_session_init(&up->session);
		up->has_session = mbedtls_ssl_get_session(&c->ssl,
		    &up->session) == 0;
		up->session_tls = up->has_session ? c->tls : NULL;
	}
	log_debug("gateway %s: TLS %s handshake done (%s)", c->tls->hostport,
	    c->verified ? "full" : "resumed",
	    mbedtls_ssl_get_ciphersuite(&c->ssl));
	ev_timer_stop(up->loop, &c->timer);
	if (c->req == NULL) {
		conn_park(c);
		dispatch(up);
		return;
	}
	if (conn_prepare(c) == -1) {
		conn_fail(c, UPSTREAM_UNREACHABLE, "out of memory");
		return;
	}
	conn_write(c);
}

static void
conn_connected(struct conn *c)
{
	struct upstream	*up = c->up;
	socklen_t	 len = sizeof(int);
	int		 err = 0, ret;
	char		 msg[256], e[128];

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		c->last_errno = err;
		if (conn_connect_next(c) == 0)
			return;
		msgf(msg, sizeof(msg), "connect to %s: %s",
		    c->tls->hostport, strerror(c->last_errno));
		conn_fail(c, UPSTREAM_UNREACHABLE, msg);
		return;
	}
	mbedtls_ssl_init(&c->ssl);
	c->ssl_init = 1;
	if ((ret = mbedtls_ssl_setup(&c->ssl, &c->tls->conf)) != 0 ||
	    (c->tls->iplen == 0 && (ret = mbedtls_ssl_set_hostname(&c->ssl,
	    c->tls->host)) != 0)) {
		mbedtls_strerror(ret, e, sizeof(e));
		snprintf(msg, sizeof(msg), "TLS setup: %s", e);
		conn_fail(c, UPSTREAM_UNREACHABLE, msg);
		return;
	}
	mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
	mbedtls_ssl_set_verify(&c->ssl, conn_verify_cb, c);
	if (up->has_session && up->session_tls == c->tls)
		(void)mbedtls_ssl_set_session(&c->ssl, &up->session);
	c->state = CONN_HANDSHAKE;
	conn_handshake(c);
}

/* Take the request off a dead connection and send it on a fresh one. */
static void
conn_retry(struct conn *c, const char *why)
{
	struct upstream		*up = c->up;
	struct upstream_req	*req = c->req;

	c->req = NULL;
	req->conn = NULL;
	req->retried = 1;
	log_info("gateway %s: %s %.*s: %s before any answer; sending it once "
	    "more on a new connection", c->tls->hostport, req->method,
	    (int)(req->target.len > 200 ? 200 : req->target.len),
	    req->target.data, why);
	conn_close(c);
	if (conn_open(up, req) == NULL) {
		snprintf(req->errmsg, sizeof(req->errmsg), "out of memory");
		req_finish(up, req, UPSTREAM_UNREACHABLE, NULL);
		dispatch(up);
	}
}

/*
 * The connection broke while a request was on it.  A request is written
 * at most once: only a GET or HEAD on a reused connection that died
 * before any byte of the answer is sent again (the Gateway closed it
 * while idle), and any request of which no byte left at all.
 */
static void
conn_lost(struct conn *c, int ret)
{
	struct upstream_req	*req = c->req;
	char			 why[128], msg[256];
	int			 idem = method_idempotent(req->method);

	if (ret == 0 || ret == MBEDTLS_ERR_SSL_CONN_EOF)
		snprintf(why, sizeof(why), "the Gateway closed the "
		    "connection");
	else if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
		snprintf(why, sizeof(why), "the Gateway closed the "
		    "connection (close_notify)");
	else if (c->sys_errno != 0)
		snprintf(why, sizeof(why), "%s", strerror(c->sys_errno));
	else
		mbedtls_strerror(ret, why, sizeof(why));

	if (!c->rd.started) {
		if (!req->retried && (!c->wrote ||
		    (idem && c->pooled))) {
			conn_retry(c, why);
			return;
		}
		if (idem || !c->wrote) {
			snprintf(msg, sizeof(msg), "%s before the answer", why);
			conn_fail(c, UPSTREAM_UNREACHABLE, msg);
			return;
		}
		snprintf(msg, sizeof(msg), "%s after the request was sent; "
		    "its outcome is unknown", why);
		conn_fail(c, UPSTREAM_OUTCOME_UNKNOWN, msg);
		return;
	}
	if (idem) {
		snprintf(msg, sizeof(msg), "%s in the middle of the answer",
		    why);
		conn_fail(c, UPSTREAM_BAD_RESPONSE, msg);
		return;
	}
	snprintf(msg, sizeof(msg), "%s in the middle of the answer; the "
	    "request's outcome is unknown", why);
	conn_fail(c, UPSTREAM_OUTCOME_UNKNOWN, msg);
}

/*
 * An answer that cannot be read whole: the Gateway did act on the request,
 * so an order's outcome is unknown, whatever the answer's fault.
 */
static void
conn_bad_answer(struct conn *c)
{
	const char	*why;

	why = c->rd.error == 2 ? "the answer is larger than "
	    "limits.max_response_bytes" : "malformed HTTP answer";
	if (!method_idempotent(c->req->method)) {
		char	 msg[256];

		snprintf(msg, sizeof(msg), "%s; the request's outcome is "
		    "unknown", why);
		conn_fail(c, UPSTREAM_OUTCOME_UNKNOWN, msg);
		return;
	}
	conn_fail(c, c->rd.error == 2 ? UPSTREAM_TOO_LARGE :
	    UPSTREAM_BAD_RESPONSE, why);
}

static void
conn_write(struct conn *c)
{
	int	 ret;

	c->write_started = 1;
	while (c->out_off < c->out.len) {
		ret = mbedtls_ssl_write(&c->ssl,
		    (const unsigned char *)c->out.data + c->out_off,
		    c->out.len - c->out_off);
		if (ret > 0) {
			c->out_off += (size_t)ret;
			continue;
		}
		if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
			conn_watch(c, EV_WRITE);
			return;
		}
		if (ret == MBEDTLS_ERR_SSL_WANT_READ) {
			conn_watch(c, EV_READ);
			return;
		}
		conn_lost(c, ret);
		return;
	}
	c->writing = 0;
	if (c->out.cap > 65536)
		buf_free(&c->out);
	conn_watch(c, EV_READ);
}

static void
conn_complete(struct conn *c)
{
	struct upstream		*up = c->up;
	struct upstream_req	*req = c->req;
	struct http_response	*resp;
	uint64_t		 ms;
	size_t			 i;
	int			 keep;

	resp = http_resp_reader_take(&c->rd);
	http_resp_reader_free(&c->rd);
	c->rd_init = 0;
	if (resp == NULL) {
		conn_fail(c, UPSTREAM_BAD_RESPONSE, "no answer parsed");
		return;
	}
	c->req = NULL;
	req->conn = NULL;
	c->served++;
	for (i = 0; i < resp->nset_cookies; i++)
		if (upstream_jar_absorb(&up->jar, resp->set_cookies[i].value,
		    time(NULL)) == -1)
			log_debug("gateway %s: Set-Cookie ignored",
			    c->tls->hostport);
	if (resp->status == 429) {
		ms = pace_breaker_ms(resp->retry_after_s);
		pace_breaker_open(up->paces->pace, now_ms(), ms);
		if (up->metrics != NULL)
			metrics_upstream(up->metrics, "429");
		log_warn("gateway %s: 429 Too Many Requests on %s %.*s: only "
		    "the session watcher's calls go for %llu s",
		    c->tls->hostport, req->method,
		    (int)(req->target.len > 200 ? 200 : req->target.len),
		    req->target.data, (unsigned long long)(ms / 1000));
	}
	keep = resp->keep_alive && !c->no_reuse && c->tls == up->tls &&
	    up->nconns <= pool_size(up);
	if (keep)
		conn_make_idle(c);
	else
		conn_close(c);
	up->failing = 0;
	req_finish(up, req, UPSTREAM_OK, resp);
	dispatch(up);
}

/*
 * The final head is parsed: offer the body to req->on_head.  The bytes
 * of the body that came with the head stay in the reader for conn_stream.
 */
static void
conn_head(struct conn *c)
{
	struct upstream_req	*req = c->req;
	struct http_response	*resp = c->rd.resp;
	struct buf		 first;

	c->head_seen = 1;
	if (req->on_head != NULL && req->on_data != NULL) {
		req->resp_length = resp->content_length;
		first = resp->body;
		buf_init(&resp->body);
		if (req->on_head(req, resp) == 1) {
			c->streaming = 1;
			req->streaming = 1;
		}
		buf_free(&resp->body);
		resp->body = first;
	}
}

/* Hand the body bytes parsed so far to on_data; -1: the conn failed. */
static int
conn_stream(struct conn *c)
{
	struct upstream_req	*req = c->req;
	struct http_response	*resp = c->rd.resp;

	if (!c->streaming || resp == NULL || resp->body.len == 0)
		return (0);
	c->streamed += resp->body.len;
	if (c->streamed > c->up->conf->max_response_bytes) {
		conn_fail(c, UPSTREAM_TOO_LARGE, "the answer is larger than "
		    "limits.max_response_bytes (after part of it was "
		    "streamed)");
		return (-1);
	}
	if (req->on_data(req, resp->body.data, resp->body.len) == 0)
		c->paused = 1;
	buf_reset(&resp->body);
	return (0);
}

/*
 * Read while not paused.  mbedTLS may hold decrypted bytes the socket no
 * longer signals, so a paused connection is resumed with a fed event
 * (upstream_resume) and drains them here.
 */
static void
conn_read(struct conn *c)
{
	unsigned char	 b[UP_READ_CHUNK];
	size_t		 used;
	enum http_feed	 r;
	int		 ret;

	for (;;) {
		if (c->paused) {
			conn_watch(c, 0);
			return;
		}
		ret = mbedtls_ssl_read(&c->ssl, b, sizeof(b));
		if (ret > 0) {
			r = http_resp_reader_feed(&c->rd, (const char *)b,
			    (size_t)ret, &used);
			if (r == HTTP_FEED_ERROR) {
				conn_bad_answer(c);
				return;
			}
			if (!c->head_seen && c->rd.resp != NULL &&
			    c->rd.resp->status >= 200)
				conn_head(c);
			if (conn_stream(c) == -1)
				return;
			if (r == HTTP_FEED_DONE) {
				if (used < (size_t)ret ||
				    mbedtls_ssl_get_bytes_avail(&c->ssl) > 0)
					c->no_reuse = 1;
				conn_complete(c);
				return;
			}
			continue;
		}
		if (ret == MBEDTLS_ERR_SSL_WANT_READ) {
			conn_watch(c, EV_READ);
			return;
		}
		if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
			conn_watch(c, EV_WRITE);
			return;
		}
		if ((ret == 0 || ret == MBEDTLS_ERR_SSL_CONN_EOF ||
		    ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) &&
		    c->rd.started) {
			/* A close-delimited body ends here. */
			if (http_resp_reader_eof(&c->rd) == HTTP_FEED_DONE) {
				if (conn_stream(c) == -1)
					return;
				c->no_reuse = 1;
				conn_complete(c);
				return;
			}
		}
		conn_lost(c, ret);
		return;
	}
}

/* An idle connection became readable: the peer closed it (or misbehaves). */
static void
conn_idle_event(struct conn *c)
{
	struct upstream	*up = c->up;
	unsigned char	 b;
	int		 ret;

	ret = mbedtls_ssl_read(&c->ssl, &b, 1);
	if (ret == MBEDTLS_ERR_SSL_WANT_READ ||
	    ret == MBEDTLS_ERR_SSL_WANT_WRITE)
		return;
	log_debug("gateway %s: idle connection closed (%d)",
	    c->tls->hostport, ret);
	conn_close(c);
	kick(up);
}

static void
conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn	*c = w->data;

	(void)loop;
	(void)revents;
	if (c->pending)
		return;
	switch (c->state) {
	case CONN_CONNECTING:
		conn_connected(c);
		break;
	case CONN_HANDSHAKE:
		conn_handshake(c);
		break;
	case CONN_IDLE:
		conn_idle_event(c);
		break;
	case CONN_BUSY:
		if (c->writing)
			conn_write(c);
		else
			conn_read(c);
		break;
	}
}

static void
conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn	*c = w->data;
	struct upstream	*up = c->up;
	char		 msg[256];

	(void)loop;
	(void)revents;
	if (c->pending) {
		c->pending = 0;
		conn_fail(c, c->pending_err, c->pending_msg);
		return;
	}
	switch (c->state) {
	case CONN_CONNECTING:
	case CONN_HANDSHAKE:
		snprintf(msg, sizeof(msg), "no %s within %u ms "
		    "(gateway.connect_timeout_ms)", c->state ==
		    CONN_CONNECTING ? "TCP connection" : "TLS handshake",
		    up->conf->gw_connect_timeout_ms);
		conn_fail(c, UPSTREAM_UNREACHABLE, msg);
		break;
	case CONN_BUSY:
		snprintf(msg, sizeof(msg), "no complete answer within %u ms "
		    "(gateway.timeout_ms)", up->conf->gw_timeout_ms);
		if (c->req != NULL && c->wrote &&
		    !method_idempotent(c->req->method))
			snprintf(msg, sizeof(msg), "no complete answer within "
			    "%u ms (gateway.timeout_ms); the request was sent, "
			    "its outcome is unknown", up->conf->gw_timeout_ms);
		conn_fail(c, UPSTREAM_TIMEOUT, msg);
		break;
	case CONN_IDLE:
		break;
	}
}

/* ------------------------------------------------------------ dispatch */

static void
kick(struct upstream *up)
{
	if (!ev_is_active(&up->kick)) {
		ev_timer_set(&up->kick, 0., 0.);
		ev_timer_start(up->loop, &up->kick);
	}
}

static void
kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct upstream		*up = w->data;
	struct upstream_req	*req;

	(void)loop;
	(void)revents;
	while ((req = up->dq_head) != NULL) {
		up->dq_head = req->next;
		if (up->dq_head == NULL)
			up->dq_tail = NULL;
		req->next = NULL;
		req_finish(up, req, (enum upstream_error)req->deferred, NULL);
	}
	dispatch(up);
}

/*
 * A request pacing refused.  While the 429 breaker is open the client is
 * told so, and until when: "no slot came free" would send it back at once.
 */
static void
req_refused(struct upstream_req *req, int breaker, uint64_t retry_ms,
    const char *why)
{
	char	 until[32];

	req->retry_after_ms = retry_ms;
	req->paused = breaker;
	if (!breaker) {
		snprintf(req->errmsg, sizeof(req->errmsg), "%s", why);
		return;
	}
	status_time(time(NULL) + (time_t)((retry_ms + 999) / 1000), until,
	    sizeof(until));
	snprintf(req->errmsg, sizeof(req->errmsg), "the Gateway answered 429 "
	    "Too Many Requests: brokerd is pausing client calls until %s "
	    "(%llu s), as IBKR's penalty grows with every call it refuses",
	    until, (unsigned long long)((retry_ms + 999) / 1000));
}

static void
pace_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	dispatch(w->data);
}

/*
 * Serve the pace queues while connections are free: grants take a
 * connection, expired tickets get 429.  Older pace objects (replaced by a
 * reload) are served until their last request is gone.  One timer wakes
 * the queue when a window opens or a deadline passes.
 */
static void
dispatch(struct upstream *up)
{
	struct pace_slot	*s, **sp;
	struct pace_ticket	*t;
	struct upstream_req	*req;
	uint64_t		 now, next_ms, best;
	int			 expired;

	if (up->dispatching) {
		up->redispatch = 1;
		return;
	}
	up->dispatching = 1;
	do {
		up->redispatch = 0;
		best = 0;
		now = now_ms();
		for (s = up->paces; s != NULL; s = s->next) {
			for (;;) {
				t = pace_poll(s->pace, now, pool_free(up) > 0,
				    &expired, &next_ms);
				if (t == NULL)
					break;
				req = t->owner;
				if (expired) {
					req_refused(req, t->breaker,
					    t->retry_after_ms, "no pacing "
					    "slot within limits.queue_ms");
					req_finish(up, req,
					    UPSTREAM_RATE_LIMITED, NULL);
				} else {
					req->granted = 1;
					req_start(up, req);
				}
				now = now_ms();
			}
			if (next_ms > 0 && (best == 0 || next_ms < best))
				best = next_ms;
		}
	} while (up->redispatch);

	/* Retired pace objects nobody uses any more. */
	for (sp = &up->paces->next; (s = *sp) != NULL; ) {
		if (s->users == 0) {
			*sp = s->next;
			pace_free(s->pace);
			free(s);
		} else
			sp = &s->next;
	}
	ev_timer_stop(up->loop, &up->pace_timer);
	if (best > 0) {
		ev_timer_set(&up->pace_timer, best / 1000.0, 0.);
		ev_timer_start(up->loop, &up->pace_timer);
	}
	up->dispatching = 0;
}

/* ------------------------------------------------------------ interface */

void
upstream_req_init(struct upstream_req *req)
{
	memset(req, 0, sizeof(*req));
	buf_init(&req->target);
	buf_init(&req->body);
}

void
upstream_req_free(struct upstream_req *req)
{
	buf_free(&req->target);
	buf_free(&req->body);
	free(req->content_type);
	req->content_type = NULL;
	free(req->accept);
	req->accept = NULL;
	config_unref(req->conf);
	req->conf = NULL;
}

void
upstream_submit(struct upstream *up, struct upstream_req *req)
{
	struct pace_slot *s = up->paces;
	uint64_t	 ra = 0, now;
	int		 r;

	req->conn = NULL;
	req->granted = 0;
	req->deferred = 0;
	req->retried = 0;
	req->next = NULL;
	req->retry_after_ms = 0;
	req->paused = 0;
	req->errmsg[0] = '\0';
	memset(&req->ticket, 0, sizeof(req->ticket));
	req->ticket.owner = req;
	req->ticket.policy = req->policy;
	req->ticket.watcher = req->watcher;
	req->pace = s->pace;
	s->users++;

	if (!req_valid(req)) {
		snprintf(req->errmsg, sizeof(req->errmsg), "the request "
		    "cannot be written to the Gateway (method, target or a "
		    "header field)");
		req_defer(up, req, UPSTREAM_BAD_RESPONSE);
		return;
	}
	now = now_ms();
	if (pool_free(up) > 0)
		r = pace_acquire(s->pace, &req->ticket, now, &ra);
	else
		r = pace_enqueue(s->pace, &req->ticket, now, &ra);
	if (r == -1) {
		req_refused(req, req->ticket.breaker, ra, "pacing queue full");
		req_defer(up, req, UPSTREAM_RATE_LIMITED);
		return;
	}
	if (r == 1) {
		kick(up);		/* an older ticket may go; arm the timer */
		return;
	}
	req->granted = 1;
	req_start(up, req);
}

void
upstream_cancel(struct upstream *up, struct upstream_req *req)
{
	struct conn	*c;
	struct pace_slot *s;

	if (req->pace == NULL)
		return;			/* finished, or never submitted */
	if (req->deferred)
		dq_remove(up, req);
	else if (!req->granted)
		pace_cancel(req->pace, &req->ticket);
	else if ((c = req->conn) != NULL) {
		c->req = NULL;
		req->conn = NULL;
		if (c->pending)
			conn_close(c);
		else if (c->state == CONN_BUSY) {
			/* Not a byte given to mbedTLS yet: as good as idle.
			 * Else the answer is incomplete: never reuse. */
			if (c->writing && !c->write_started)
				conn_park(c);
			else
				conn_close(c);
		}
		/* Connecting: it becomes idle when ready. */
	}
	if (req->granted)
		pace_release(req->pace, &req->ticket);
	if ((s = slot_of(up, req->pace)) != NULL && s->users > 0)
		s->users--;
	req->pace = NULL;
	req->granted = 0;
	req->deferred = 0;
	req->conn = NULL;
	req->next = NULL;
	kick(up);
}

void
upstream_resume(struct upstream *up, struct upstream_req *req)
{
	struct conn	*c = req->conn;

	if (c == NULL || !c->paused || c->req != req)
		return;
	c->paused = 0;
	if (c->pending || c->state != CONN_BUSY)
		return;
	conn_watch(c, EV_READ);
	/* mbedTLS may already hold the next bytes: do not wait for the fd. */
	ev_feed_event(up->loop, &c->io, EV_READ);
}

struct pace *
upstream_pace(struct upstream *up)
{
	return (up->paces->pace);
}

void
upstream_stats(const struct upstream *up, struct upstream_stats *st)
{
	const struct conn *c;

	*st = up->st;
	st->idle = 0;
	st->busy = 0;
	for (c = up->conns; c != NULL; c = c->next) {
		if (c->state == CONN_IDLE)
			st->idle++;
		else if (c->req != NULL)
			st->busy++;
	}
}

static struct pace *
pace_for(const struct config *conf)
{
	struct pace	*p;
	unsigned	 max_queue;

	max_queue = conf->max_connections > 0 ? conf->max_connections : 1024;
	if ((p = pace_new(conf->gateway_rate, conf->queue_ms, max_queue)) ==
	    NULL)
		return (NULL);
	pace_set_slack(p, conf->rate_slack_ms);
	return (p);
}

struct upstream *
upstream_new(struct ev_loop *loop, const struct config *conf,
    struct metrics *m, char *err, size_t errlen)
{
	static const char pers[] = "brokerd upstream";
	struct upstream	*up;
	char		 e[128];
	int		 ret;

	if ((up = calloc(1, sizeof(*up))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (NULL);
	}
	up->loop = loop;
	up->conf = conf;
	up->metrics = m;
	mbedtls_entropy_init(&up->entropy);
	mbedtls_ctr_drbg_init(&up->drbg);
	mbedtls_ssl_session_init(&up->session);
	upstream_jar_init(&up->jar);
	ev_init(&up->kick, kick_cb);
	up->kick.data = up;
	ev_init(&up->pace_timer, pace_timer_cb);
	up->pace_timer.data = up;
	if ((ret = mbedtls_ctr_drbg_seed(&up->drbg, mbedtls_entropy_func,
	    &up->entropy, (const unsigned char *)pers, sizeof(pers) - 1)) !=
	    0) {
		mbedtls_strerror(ret, e, sizeof(e));
		snprintf(err, errlen, "random generator: %s", e);
		goto fail;
	}
	if ((up->tls = tls_new(up, conf, err, errlen)) == NULL)
		goto fail;
	if ((up->paces = calloc(1, sizeof(*up->paces))) == NULL ||
	    (up->paces->pace = pace_for(conf)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return (up);
fail:
	upstream_free(up);
	return (NULL);
}

void
upstream_free(struct upstream *up)
{
	struct pace_slot	*s, *snext;
	struct upstream_req	*req;

	if (up == NULL)
		return;
	while (up->conns != NULL) {
		if ((req = up->conns->req) != NULL) {
			req->conn = NULL;
			req->pace = NULL;
			up->conns->req = NULL;
		}
		conn_close(up->conns);
	}
	while ((req = up->dq_head) != NULL) {
		up->dq_head = req->next;
		req->next = NULL;
		req->pace = NULL;
	}
	ev_timer_stop(up->loop, &up->kick);
	ev_timer_stop(up->loop, &up->pace_timer);
	for (s = up->paces; s != NULL; s = snext) {
		snext = s->next;
		pace_free(s->pace);
		free(s);
	}
	tls_unref(up->tls);
	mbedtls_ssl_session_free(&up->session);
	upstream_jar_free(&up->jar);
	mbedtls_ctr_drbg_free(&up->drbg);
	mbedtls_entropy_free(&up->entropy);
	free(up);
}

/*
 * SIGHUP: new TLS settings only when they changed (then the saved session
 * goes too), a new pace object only when the global rate, its slack or
 * queue_ms changed (the old one serves what it holds), idle connections
 * close, busy ones finish and close if their settings are gone.
 */
int
upstream_reconfigure(struct upstream *up, const struct config *conf,
    char *err, size_t errlen)
{
	struct tls	*nt = NULL;
	struct pace_slot *ns = NULL;
	struct conn	*c, *next;
	const struct config *oc = up->conf;

	if (!tls_same(up->tls, conf)) {
		if ((nt = tls_new(up, conf, err, errlen)) == NULL)
			return (-1);
	} else if (up->tls->mode == TLS_INSECURE)
		log_warn("gateway.tls.insecure is set: the Gateway's "
		    "certificate at %s is NOT verified", up->tls->hostport);
	if (oc->gateway_rate.n != conf->gateway_rate.n ||
	    oc->rate_slack_ms != conf->rate_slack_ms ||
	    oc->gateway_rate.window_ms != conf->gateway_rate.window_ms ||
	    oc->queue_ms != conf->queue_ms ||
	    oc->max_connections != conf->max_connections) {
		if ((ns = calloc(1, sizeof(*ns))) == NULL ||
		    (ns->pace = pace_for(conf)) == NULL) {
			free(ns);
			tls_unref(nt);
			snprintf(err, errlen, "out of memory");
			return (-1);
		}
	}
	if (nt != NULL) {
		tls_unref(up->tls);
		up->tls = nt;
		mbedtls_ssl_session_free(&up->session);
		mbedtls_ssl_session_init(&up->session);
		up->has_session = 0;
		up->session_tls = NULL;
	}
	if (ns != NULL) {
		/* The breaker is about the Gateway, not the settings. */
		uint64_t now = now_ms(), rem;

		if ((rem = pace_breaker_remaining(up->paces->pace, now)) > 0)
			pace_breaker_open(ns->pace, now, rem);
		ns->next = up->paces;
		up->paces = ns;
	}
	up->conf = conf;
	for (c = up->conns; c != NULL; c = next) {
		next = c->next;
		if (c->req == NULL && !c->pending &&
		    (c->state == CONN_IDLE || c->tls != up->tls))
			conn_close(c);
	}
	kick(up);
	return (0);
}

/* ------------------------------------------------- gateway-fingerprint */

/* Blocking connect with a deadline; the fd is left blocking. */
static int
connect_timeout(const char *host, const char *port, unsigned timeout_ms,
    char *err, size_t errlen)
{
	struct addrinfo	 hints, *res = NULL, *ai;
	struct pollfd	 pfd;
	struct timeval	 tv;
	socklen_t	 len;
	int		 fd = -1, r, soerr = 0, flags;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		msgf(err, errlen, "cannot resolve %s: %s", host,
		    gai_strerror(r));
		return (-1);
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype |
		    SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol)) == -1) {
			soerr = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
			if (errno != EINPROGRESS) {
				soerr = errno;
				goto next;
			}
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if ((r = poll(&pfd, 1, (int)timeout_ms)) <= 0) {
				soerr = r == 0 ? ETIMEDOUT : errno;
				goto next;
			}
			len = sizeof(soerr);
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr,
			    &len) == -1)
				soerr = errno;
			if (soerr != 0)
				goto next;
		}
		if ((flags = fcntl(fd, F_GETFL)) != -1)
			(void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
		tv.tv_sec = timeout_ms / 1000;
		tv.tv_usec = (timeout_ms % 1000) * 1000;
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		freeaddrinfo(res);
		return (fd);
next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	msgf(err, errlen, "connect to %s port %s: %s", host, port,
	    strerror(soerr));
	return (-1);
}

/*
 * `brokerd gateway-fingerprint [URL]`: no verification on purpose (it
 * shows what to pin); the fingerprint alone goes to stdout, for scripts.
 */
int
upstream_fingerprint_cmd(const char *url, unsigned timeout_ms)
{
	static const char pers[] = "brokerd fingerprint";
	mbedtls_entropy_context	 entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_config	 conf;
	mbedtls_ssl_context	 ssl;
	mbedtls_net_context	 net;
	const mbedtls_x509_crt	*peer;
	unsigned char		 h[32];
	char			 host[256], port[8], err[256], e[128];
	char			 hex[96];
	unsigned char		 ip[16];
	int			 ret, rc = 1;

	if (url == NULL || *url == '\0')
		url = "https://127.0.0.1:5000";
	if (timeout_ms == 0)
		timeout_ms = 5000;
	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_ssl_config_init(&conf);
	mbedtls_ssl_init(&ssl);
	mbedtls_net_init(&net);
	if (value_https_url(url, host, sizeof(host), port, sizeof(port), err,
	    sizeof(err)) == -1)
		goto out;
	if ((ret = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func,
	    &entropy, (const unsigned char *)pers, sizeof(pers) - 1)) != 0 ||
	    (ret = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
		goto tlsfail;
	mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
	mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_read_timeout(&conf, timeout_ms);
	if ((ret = mbedtls_ssl_setup(&ssl, &conf)) != 0)
		goto tlsfail;
	if (inet_pton(AF_INET, host, ip) != 1 &&
	    inet_pton(AF_INET6, host, ip) != 1 &&
	    (ret = mbedtls_ssl_set_hostname(&ssl, host)) != 0)
		goto tlsfail;
	if ((net.fd = connect_timeout(host, port, timeout_ms, err,
	    sizeof(err))) == -1)
		goto out;
	mbedtls_ssl_set_bio(&ssl, &net, mbedtls_net_send, NULL,
	    mbedtls_net_recv_timeout);
	while ((ret = mbedtls_ssl_handshake(&ssl)) != 0)
		if (ret != MBEDTLS_ERR_SSL_WANT_READ &&
		    ret != MBEDTLS_ERR_SSL_WANT_WRITE)
			goto tlsfail;
	if ((peer = mbedtls_ssl_get_peer_cert(&ssl)) == NULL) {
		snprintf(err, sizeof(err), "no certificate from the server");
		goto out;
	}
	if ((ret = mbedtls_sha256_ret(peer->raw.p, peer->raw.len, h, 0)) != 0)
		goto tlsfail;
	upstream_hex_colon(h, sizeof(h), hex, sizeof(hex));
	printf("%s\n", hex);
	fflush(stdout);
	fprintf(stderr, "paste into gateway.tls.pin_sha256 (certificate "
	    "valid until %04d-%02d-%02d; expiry does not matter when "
	    "pinned)\n", peer->valid_to.year, peer->valid_to.mon,
	    peer->valid_to.day);
	(void)mbedtls_ssl_close_notify(&ssl);
	rc = 0;
	goto out;
tlsfail:
	mbedtls_strerror(ret, e, sizeof(e));
	snprintf(err, sizeof(err), "TLS: %s", e);
out:
	if (rc != 0)
		fprintf(stderr, "brokerd: gateway-fingerprint %s: %s\n", url,
		    err);
	mbedtls_net_free(&net);
	mbedtls_ssl_free(&ssl);
	mbedtls_ssl_config_free(&conf);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&entropy);
	return (rc);
}
