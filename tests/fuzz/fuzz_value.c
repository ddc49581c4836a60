/*
 * libFuzzer: the checks of value.c on configuration values and the
 * environment (pins, rates, modes, the Gateway URL, listen.tcp and
 * IBKR_BRIDGE_URL's HOST:PORT, keys, names) and on the client's Host
 * header.  The first byte chooses the parser, the rest up to a NUL is
 * the text.  Beyond no crash: whatever is taken reads back the same when
 * written out in its plain form (pin, rate, mode, URL), a HOST:PORT taken
 * is loopback (the one rule that keeps brokerd off the network), and a
 * Host taken is one of SPEC section 4's names with at most a numeric port.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "brokerd.h"
#include "value.h"

static void
check_pin(const char *s)
{
	unsigned char	 pin[32], again[32];
	char		 hex[65];
	const char	*p, *eq;
	size_t		 i, n;

	if (value_pin(s, pin) == -1)
		return;
	if ((eq = strchr(s, '=')) != NULL)
		s = eq + 1;
	/* the input, colons dropped, is the hex of what was read */
	for (p = s, n = 0; *p != '\0'; p++)
		if (*p != ':') {
			if (n == 64 || !isxdigit((unsigned char)*p))
				abort();
			hex[n++] = *p;
		}
	hex[n] = '\0';
	if (n != 64 || value_pin(hex, again) == -1 ||
	    memcmp(pin, again, 32) != 0)
		abort();
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", pin[i]);
	if (strcasecmp(hex, s) != 0 && strlen(s) == 64)
		abort();
}

static void
check_rate(const char *s)
{
	struct rate	 r, again;
	char		 out[64];

	if (value_rate_parse(s, &r) == -1)
		return;
	if (r.n == 0) {
		if (strcmp(s, "off") != 0 || r.window_ms != 0)
			abort();
		return;
	}
	if (r.window_ms == 0 || r.window_ms % 1000 != 0)
		abort();
	if (r.window_ms % 60000 == 0)
		snprintf(out, sizeof(out), "%u/%llumin", r.n,
		    (unsigned long long)(r.window_ms / 60000));
	else
		snprintf(out, sizeof(out), "%u/%llus", r.n,
		    (unsigned long long)(r.window_ms / 1000));
	if (value_rate_parse(out, &again) == -1 || again.n != r.n ||
	    again.window_ms != r.window_ms)
		abort();
}

static void
check_mode(const char *s)
{
	unsigned	 m, again;
	char		 out[16];

	if (value_mode(s, &m) == -1)
		return;
	snprintf(out, sizeof(out), "%04o", m);
	if (m > 0777 || value_mode(out, &again) == -1 || again != m)
		abort();
}

static void
check_url(const char *s)
{
	char	 host[256], port[16], h2[256], p2[16], why[160], url[300];
	size_t	 i;

	if (value_https_url(s, host, sizeof(host), port, sizeof(port), why,
	    sizeof(why)) == -1)
		return;
	if (host[0] == '\0' || port[0] == '0' || !value_digits(port) ||
	    atoi(port) < 1 || atoi(port) > 65535)
		abort();
	for (i = 0; host[i] != '\0'; i++)
		if (!isxdigit((unsigned char)host[i]) && host[i] != ':' &&
		    !isalnum((unsigned char)host[i]) && host[i] != '.' &&
		    host[i] != '-')
			abort();
	snprintf(url, sizeof(url), strchr(host, ':') != NULL ?
	    "https://[%s]:%s" : "https://%s:%s", host, port);
	if (value_https_url(url, h2, sizeof(h2), p2, sizeof(p2), why,
	    sizeof(why)) == -1 || strcmp(host, h2) != 0 ||
	    strcmp(port, p2) != 0)
		abort();
}

static void
check_hostport(const char *s, int need_port)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	char			 why[160];

	if (value_loopback_hostport(s, need_port, &ss, &len, why,
	    sizeof(why)) == -1)
		return;
	if (!value_is_loopback(&ss) ||
	    (ss.ss_family == AF_INET && len != sizeof(struct sockaddr_in)) ||
	    (ss.ss_family == AF_INET6 &&
	    len != sizeof(struct sockaddr_in6)) ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
		abort();
}

static void
check_host(const char *s)
{
	static const char *const names[] = { "127.0.0.1", "localhost",
	    "[::1]" };
	size_t	 i, n;

	if (!value_host_ok(s))
		return;
	for (i = 0; i < 3; i++) {
		n = strlen(names[i]);
		if (strncasecmp(s, names[i], n) == 0 && (s[n] == '\0' ||
		    (s[n] == ':' && value_digits(s + n + 1))))
			return;
	}
	abort();
}

static void
check_words(const char *s)
{
	char	 why[160];
	size_t	 i, len = strlen(s);
	unsigned bit;

	if (value_key_ok(s, len, why, sizeof(why)) == 0)
		for (i = 0; i < len; i++)
			if ((unsigned char)s[i] <= ' ' ||
			    (unsigned char)s[i] >= 0x7f)
				abort();
	if (value_name_ok(s))
		for (i = 0; i < len; i++)
			if (!isalnum((unsigned char)s[i]) &&
			    strchr("_.-@", s[i]) == NULL)
				abort();
	if (value_route_path_ok(s) && (s[0] != '/' ||
	    strpbrk(s, "?# \t\r\n") != NULL))
		abort();
	if (auth_scope_parse(s, &bit) == 0 && auth_scope_name(bit) == NULL)
		abort();
	(void)log_level_parse(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*s;

	if (size < 1 || (s = malloc(size)) == NULL)
		return (0);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 8) {
	case 0:
		check_pin(s);
		break;
	case 1:
		check_rate(s);
		break;
	case 2:
		check_mode(s);
		break;
	case 3:
		check_url(s);
		break;
	case 4:
	case 5:
		check_hostport(s, data[0] % 8 == 4);
		break;
	case 6:
		check_host(s);
		break;
	default:
		check_words(s);
		break;
	}
	free(s);
	return (0);
}
