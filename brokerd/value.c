/*
 * Pure checkers shared by config, listen, client and route: one
 * definition each of loopback, hex and the Gateway's URL, so the copies
 * cannot drift apart.  No I/O: reasons go into the caller's buffer.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "brokerd.h"
#include "value.h"

#define VALUE_MIN_KEY	16		/* bytes of a key */
#define VALUE_HOST	64		/* a numeric loopback host */

/* ------------------------------------------------------------ loopback */

int
value_is_loopback(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *s4 = (const void *)ss;
	const struct sockaddr_in6 *s6 = (const void *)ss;

	if (ss->ss_family == AF_INET)
		return ((ntohl(s4->sin_addr.s_addr) >> 24) == 127);
	if (ss->ss_family == AF_INET6)
		return (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    s6->sin6_addr.s6_addr[12] == 127));
	return (0);
}

/*
 * Split "HOST:PORT" or "[V6]:PORT" into host and port (NULL when not
 * written).  *v6 says the host was bracketed.
 */
static int
value_split_hostport(const char *s, char *host, int *v6, const char **port,
    char *why, size_t whylen)
{
	const char	*p;
	size_t		 hlen;

	*port = NULL;
	*v6 = *s == '[';
	if (*v6) {
		if ((p = strchr(s, ']')) == NULL) {
			snprintf(why, whylen, "missing ']'");
			return (-1);
		}
		hlen = (size_t)(p - s - 1);
		if (hlen >= VALUE_HOST)
			goto bad_host;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		p++;
		if (*p == ':')
			*port = p + 1;
		else if (*p != '\0') {
			snprintf(why, whylen, "expected HOST:PORT");
			return (-1);
		}
		return (0);
	}
	p = strrchr(s, ':');
	hlen = p != NULL ? (size_t)(p - s) : strlen(s);
	if (p != NULL)
		*port = p + 1;
	if (hlen == 0 || hlen >= VALUE_HOST)
		goto bad_host;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (strchr(host, ':') != NULL) {
		snprintf(why, whylen,
		    "write an IPv6 address in brackets: [::1]:PORT");
		return (-1);
	}
	return (0);
bad_host:
	snprintf(why, whylen, "bad address (expected 127.0.0.1:PORT, "
	    "localhost:PORT or [::1]:PORT)");
	return (-1);
}

/*
 * A numeric host (or localhost) into *ss, checked by value_is_loopback.
 * ::ffff:127.x.y.z becomes the plain IPv4 address it stands for: that is
 * what a dual-stack socket would accept, and an IPv6-only socket (which
 * listen.c opens) could not bind it.
 */
static int
value_loopback_host(char *host, int v6, struct sockaddr_storage *ss,
    socklen_t *sslen, char *why, size_t whylen)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	struct in_addr		 a4;

	memset(ss, 0, sizeof(*ss));
	if (v6) {
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			snprintf(why, whylen, "bad address (expected "
			    "127.0.0.1:PORT, localhost:PORT or [::1]:PORT)");
			return (-1);
		}
		sin6->sin6_family = AF_INET6;
		*sslen = sizeof(*sin6);
	} else {
		if (strcasecmp(host, "localhost") == 0)
			snprintf(host, VALUE_HOST, "127.0.0.1");
		/* a name other than localhost is not known to be loopback */
		if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			*sslen = sizeof(*sin);
		}
	}
	if (!value_is_loopback(ss)) {
		snprintf(why, whylen, "not a loopback address: only "
		    "127.0.0.0/8, localhost, [::1] and [::ffff:127.0.0.0]/104 "
		    "are allowed");
		return (-1);
	}
	if (ss->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		memcpy(&a4, &sin6->sin6_addr.s6_addr[12], sizeof(a4));
		memset(ss, 0, sizeof(*ss));
		sin->sin_family = AF_INET;
		sin->sin_addr = a4;
		*sslen = sizeof(*sin);
	}
	return (0);
}

/*
 * "127.0.0.1:8000", "localhost:8000", "[::1]:8000" (port 0 allowed): only
 * loopback, so nothing off the host can reach brokerd.  Without a port
 * (when need_port is 0) the port is http's 80.  why gets the reason.
 */
int
value_loopback_hostport(const char *s, int need_port,
    struct sockaddr_storage *ss, socklen_t *sslen, char *why, size_t whylen)
{
	char		 host[VALUE_HOST], *end;
	const char	*port;
	unsigned long	 pn = 80;
	int		 v6;

	if (value_split_hostport(s, host, &v6, &port, why, whylen) == -1 ||
	    value_loopback_host(host, v6, ss, sslen, why, whylen) == -1)
		return (-1);
	if (port == NULL && need_port) {
		snprintf(why, whylen, "missing :PORT");
		return (-1);
	}
	if (port != NULL) {
		errno = 0;
		if (!value_digits(port) ||
		    (pn = strtoul(port, &end, 10)) > 65535 || errno != 0) {
			snprintf(why, whylen, "bad port (expected 0-65535)");
			return (-1);
		}
	}
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)pn);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)pn);
	return (0);
}

/*
 * On TCP any page in a local browser can reach us: a Host that is not one
 * of SPEC section 4's loopback names (with or without a port) is DNS
 * rebinding.  By name, not address: the Host is what the browser thinks.
 */
int
value_host_ok(const char *host)
{
	static const struct {
		const char	*s;
		size_t		 len;
	} names[] = { { "127.0.0.1", 9 }, { "localhost", 9 }, { "[::1]", 5 } };
	size_t	 i, n;
	int	 c0;

	if (host == NULL)
		return (1);		/* HTTP/1.0 */
	c0 = (unsigned char)host[0];
	if (c0 >= 'A' && c0 <= 'Z')
		c0 += 'a' - 'A';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		n = names[i].len;
		/* the first byte first: they differ there */
		if (c0 != names[i].s[0] ||
		    strncasecmp(host, names[i].s, n) != 0)
			continue;
		if (host[n] == '\0')
			return (1);
		if (host[n] == ':' && host[n + 1] != '\0' &&
		    value_digits(host + n + 1))
			return (1);
	}
	return (0);
}

/* ------------------------------------------------------------ the URL */

/* The host of an authority: "[v6]" or a name/IPv4; *pstart after ':'. */
static int
value_url_host(const char *auth, const char *hend, char *host,
    size_t hostlen, const char **pstart)
{
	const char	*rb, *colon;
	struct in6_addr	 a6;
	size_t		 hlen, i;

	*pstart = NULL;
	if (*auth == '[') {
		if ((rb = memchr(auth, ']', (size_t)(hend - auth))) == NULL)
			return (-1);
		hlen = (size_t)(rb - auth - 1);
		if (hlen == 0 || hlen >= hostlen)
			return (-1);
		memcpy(host, auth + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return (-1);
		if (rb + 1 < hend) {
			if (rb[1] != ':')
				return (-1);
			*pstart = rb + 2;
		}
		return (0);
	}
	colon = memchr(auth, ':', (size_t)(hend - auth));
	hlen = (size_t)((colon != NULL ? colon : hend) - auth);
	if (hlen == 0 || hlen >= hostlen)
		return (-1);
	memcpy(host, auth, hlen);
	host[hlen] = '\0';
	for (i = 0; i < hlen; i++)
		if (!isalnum((unsigned char)host[i]) &&
		    host[i] != '.' && host[i] != '-')
			return (-1);
	if (colon != NULL)
		*pstart = colon + 1;
	return (0);
}

/* 1-65535 written between p and end, normalised ("0443" is "443"). */
static int
value_url_port(const char *p, const char *end, char *port, size_t portlen)
{
	size_t		 plen = (size_t)(end - p), i;
	unsigned long	 pn = 0;
	int		 n;

	if (plen == 0 || plen > 5)
		return (-1);
	for (i = 0; i < plen; i++) {
		if (p[i] < '0' || p[i] > '9')
			return (-1);
		pn = pn * 10 + (unsigned long)(p[i] - '0');
	}
	if (pn == 0 || pn > 65535)
		return (-1);
	n = snprintf(port, portlen, "%lu", pn);
	return (n < 0 || (size_t)n >= portlen ? -1 : 0);
}

/*
 * https://host[:port][/] -> host (no brackets) and port ("443" when
 * absent).  Only https: the Gateway speaks nothing else.  gateway.url,
 * IBKR_GATEWAY_URL and `brokerd gateway-fingerprint` all come here.
 */
int
value_https_url(const char *url, char *host, size_t hostlen, char *port,
    size_t portlen, char *why, size_t whylen)
{
	const char	*p, *auth, *pstart;

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
	if (value_url_host(auth, p, host, hostlen, &pstart) == -1) {
		snprintf(why, whylen, "bad host in URL");
		return (-1);
	}
	if (pstart == NULL ? snprintf(port, portlen, "443") < 0 :
	    value_url_port(pstart, p, port, portlen) == -1) {
		snprintf(why, whylen, "bad port in URL (expected 1-65535)");
		return (-1);
	}
	return (0);
}

/* ------------------------------------------------------ small checkers */

int
value_hexval(int ch)
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
int
value_pin(const char *s, unsigned char out[32])
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
		hi = value_hexval((unsigned char)s[i * step]);
		lo = value_hexval((unsigned char)s[i * step + 1]);
		if (hi < 0 || lo < 0)
			return (-1);
		if (step == 3 && i < 31 && s[i * step + 2] != ':')
			return (-1);
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return (0);
}

/* A key: long enough, and only bytes an HTTP header can carry. */
int
value_key_ok(const char *key, size_t len, char *why, size_t whylen)
{
	size_t	 i;

	if (len == 0) {
		snprintf(why, whylen, "empty key");
		return (-1);
	}
	if (len < VALUE_MIN_KEY) {
		snprintf(why, whylen, "key is shorter than %d bytes",
		    VALUE_MIN_KEY);
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

/* Names go into logs: keep them plain. */
int
value_name_ok(const char *s)
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
int
value_route_path_ok(const char *s)
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

int
value_digits(const char *s)
{
	if (*s == '\0')
		return (0);
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return (0);
	return (1);
}

/* "N/s", "N/Ns", "N/min", "N/Nmin" or "off" (n 0). */
int
value_rate_parse(const char *s, struct rate *r)
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

/* A file mode in octal, "0660" or "0o660", at most 0777. */
int
value_mode(const char *s, unsigned *mode)
{
	unsigned long	 m = 0;
	size_t		 i;

	if (strncmp(s, "0o", 2) == 0)
		s += 2;
	if (*s == '\0' || strlen(s) > 4)
		return (-1);
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '7')
			return (-1);
		m = m * 8 + (unsigned long)(s[i] - '0');
	}
	if (m > 0777)
		return (-1);
	*mode = (unsigned)m;
	return (0);
}

/* Overlong forms (C0, C1, E0 80..9F, F0 80..8F) fail the minimum. */
size_t
value_utf8_len(const unsigned char *p, size_t n)
{
	uint32_t	 cp;
	size_t		 len, i;

	if (n == 0)
		return (0);
	if (p[0] < 0x80)
		return (1);
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else
		return (0);
	if (len > n)
		return (0);
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return (0);
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return (0);
	return (len);
}
