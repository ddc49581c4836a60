/*
 * The Gateway's cookies.  They are opaque to brokerd: it keeps name=value
 * and replays them, nothing more (one Gateway, one path, always Secure).
 * Pure: no sockets, no event loop, no globals.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "brokerd.h"

#define JAR_MAX		64	/* cookies kept */
#define JAR_COOKIE_MAX	4096	/* bytes of name=value */

void
jar_init(struct jar *j)
{
	memset(j, 0, sizeof(*j));
}

void
jar_free(struct jar *j)
{
	size_t	 i;

	for (i = 0; i < j->n; i++) {
		free(j->v[i].name);
		free(j->v[i].value);
	}
	free(j->v);
	jar_init(j);
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

/* Max-Age: "-"? digits; -1 when unreadable (the attribute is ignored). */
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

/*
 * The name=value before the first ';'.  Bytes that could break the
 * Cookie header are refused (-1).
 */
static int
cookie_pair(const char *sc, const char *semi, const char **name,
    size_t *nlen, const char **val, size_t *vlen)
{
	const char	*eq, *name_end, *val_end, *a;

	if ((eq = memchr(sc, '=', (size_t)(semi - sc))) == NULL)
		return (-1);
	*name = skip_ws(sc, eq);
	name_end = trim_ws(*name, eq);
	*val = skip_ws(eq + 1, semi);
	val_end = trim_ws(*val, semi);
	if (*name == name_end)
		return (-1);
	for (a = *name; a < name_end; a++)
		if (!http_tchar((unsigned char)*a))
			return (-1);
	for (a = *val; a < val_end; a++)
		if ((unsigned char)*a < 0x21 || *a == 0x7f || *a == ';' ||
		    *a == ',' || *a == '\\')
			return (-1);
	*nlen = (size_t)(name_end - *name);
	*vlen = (size_t)(val_end - *val);
	if (*nlen + *vlen > JAR_COOKIE_MAX)
		return (-1);
	return (0);
}

/*
 * The attributes from the first ';' on: only Max-Age and Expires matter
 * here, Max-Age first.  1 when they say the cookie is gone.
 */
static int
cookie_gone(const char *a, const char *end, time_t now)
{
	const char	*a_end, *a_eq, *an_end, *av;
	long long	 max_age = 0;
	time_t		 expires = (time_t)-1;
	int		 has_max_age = 0;

	for (; a < end; a = a_end) {
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
		return (max_age <= 0);
	if (expires != (time_t)-1)
		return (expires <= now);
	return (0);
}

static ssize_t
jar_find(const struct jar *j, const char *name, size_t len)
{
	size_t	 i;

	for (i = 0; i < j->n; i++)
		if (strlen(j->v[i].name) == len &&
		    memcmp(j->v[i].name, name, len) == 0)
			return ((ssize_t)i);
	return (-1);
}

static void
jar_remove(struct jar *j, size_t i)
{
	free(j->v[i].name);
	free(j->v[i].value);
	memmove(&j->v[i], &j->v[i + 1], (j->n - i - 1) * sizeof(j->v[0]));
	j->n--;
}

/* A new cookie at the end; v is taken over on success. */
static int
jar_add(struct jar *j, const char *name, size_t nlen, char *v)
{
	struct jar_cookie *nv;
	char		*n;
	size_t		 cap;

	if (j->n >= JAR_MAX)
		return (-1);
	if ((n = strndup(name, nlen)) == NULL)
		return (-1);
	if (j->n == j->cap) {
		cap = j->cap ? j->cap * 2 : 8;
		if ((nv = reallocarray(j->v, cap, sizeof(*nv))) == NULL) {
			free(n);
			return (-1);
		}
		j->v = nv;
		j->cap = cap;
	}
	j->v[j->n].name = n;
	j->v[j->n].value = v;
	j->n++;
	return (0);
}

int
jar_absorb(struct jar *j, const char *sc, time_t now)
{
	const char	*end, *semi, *name, *val;
	size_t		 nlen, vlen;
	ssize_t		 at;
	char		*v;

	end = sc + strlen(sc);
	if ((semi = memchr(sc, ';', (size_t)(end - sc))) == NULL)
		semi = end;
	if (cookie_pair(sc, semi, &name, &nlen, &val, &vlen) == -1)
		return (-1);
	at = jar_find(j, name, nlen);
	if (cookie_gone(semi, end, now)) {
		if (at >= 0)
			jar_remove(j, (size_t)at);
		return (0);
	}
	if ((v = strndup(val, vlen)) == NULL)
		return (-1);
	if (at >= 0) {
		free(j->v[at].value);
		j->v[at].value = v;
		return (0);
	}
	if (jar_add(j, name, nlen, v) == -1) {
		free(v);
		return (-1);
	}
	return (0);
}

int
jar_format(const struct jar *j, struct buf *out)
{
	size_t	 i;

	for (i = 0; i < j->n; i++)
		if (buf_printf(out, "%s%s=%s", i > 0 ? "; " : "",
		    j->v[i].name, j->v[i].value) == -1)
			return (-1);
	return (0);
}
