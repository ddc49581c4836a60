/*
 * The route table: client prefix -> Gateway path, method -> scope, and the
 * policy (rate, concurrency, cache) that belongs to the Gateway path.
 * Pure: no sockets, no globals.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "brokerd.h"
#include "value.h"

/*
 * The default table: SPEC section 3 plus IBKR's published per-endpoint
 * limits.  config/brokerd.yaml writes the same table out; a unit test
 * checks the two agree.  /logout and /md/regsnapshot (it costs money) are
 * deliberately absent, so they answer 404.
 */
struct route_spec {
	const char	*prefix;
	const char	*to;
	const char	*methods;	/* "GET:read POST:trade" */
	unsigned	 rate_n;
	uint64_t	 rate_window_ms;
	unsigned	 concurrency;
	unsigned	 cache_ms;
};

#define MIN_MS	(60ULL * 1000)

static const struct route_spec route_table[] = {
	/* POST /iserver/account switches the account orders go to */
	{ "/iserver/account", "/v1/api/iserver/account",
	    "GET:read POST:trade", 0, 0, 0, 0 },
	{ "/iserver/account/", "/v1/api/iserver/account/",
	    "GET:read POST:trade DELETE:trade", 0, 0, 0, 0 },
	{ "/iserver/account/orders", "/v1/api/iserver/account/orders",
	    "GET:read", 1, 5000, 0, 5000 },
	{ "/iserver/account/trades", "/v1/api/iserver/account/trades",
	    "GET:read", 1, 5000, 0, 5000 },
	{ "/iserver/account/pnl/partitioned",
	    "/v1/api/iserver/account/pnl/partitioned",
	    "GET:read", 1, 5000, 0, 5000 },
	{ "/iserver/reply/", "/v1/api/iserver/reply/",
	    "POST:trade", 0, 0, 0, 0 },
	{ "/iserver/marketdata/snapshot", "/v1/api/iserver/marketdata/snapshot",
	    "GET:read", 10, 1000, 0, 0 },
	{ "/iserver/", "/v1/api/iserver/",
	    "GET:read POST:read", 0, 0, 0, 0 },
	{ "/portfolio/accounts", "/v1/api/portfolio/accounts",
	    "GET:read", 1, 5000, 0, 5000 },
	{ "/portfolio/", "/v1/api/portfolio/",
	    "GET:read POST:read", 0, 0, 0, 0 },
	{ "/marketdata/", "/v1/api/iserver/marketdata/",
	    "GET:read", 0, 0, 0, 0 },
	{ "/iserver/marketdata/history", "/v1/api/iserver/marketdata/history",
	    "GET:read", 0, 0, 5, 0 },
	{ "/trsrv/", "/v1/api/trsrv/",
	    "GET:read", 0, 0, 0, 0 },
	/* IBKR's other published limits */
	{ "/portfolio/subaccounts", "/v1/api/portfolio/subaccounts",
	    "GET:read", 1, 5000, 0, 5000 },
	{ "/iserver/scanner/params", "/v1/api/iserver/scanner/params",
	    "GET:read", 1, 15 * MIN_MS, 0, 900000 },
	{ "/iserver/scanner/run", "/v1/api/iserver/scanner/run",
	    "POST:read", 1, 1000, 0, 0 },
	{ "/pa/", "/v1/api/pa/",
	    "GET:read POST:read", 1, 15 * MIN_MS, 0, 0 },
	{ "/fyi/", "/v1/api/fyi/",
	    "GET:read POST:read PUT:read DELETE:read", 1, 1000, 0, 0 },
	{ "/hmds/", "/v1/api/hmds/",
	    "GET:read POST:read", 0, 0, 0, 0 },
	{ "/portfolio2/", "/v1/api/portfolio2/",
	    "GET:read", 0, 0, 0, 0 },
	{ "/tickle", "/v1/api/tickle",
	    "GET:read POST:read", 1, 1000, 0, 0 },
	{ "/sso/validate", "/v1/api/sso/validate",
	    "GET:read", 1, MIN_MS, 0, 0 },
	/* session control: suppressing questions answers them for trading */
	{ "/iserver/questions/", "/v1/api/iserver/questions/",
	    "POST:trade", 0, 0, 0, 0 },
	{ "/iserver/auth/status", "/v1/api/iserver/auth/status",
	    "GET:read POST:read", 0, 0, 0, 0 },
	/* ssodh/init with compete:true could kick a user's TWS session */
	{ "/iserver/auth/", "/v1/api/iserver/auth/",
	    "POST:admin", 0, 0, 0, 0 },
	{ "/iserver/reauthenticate", "/v1/api/iserver/reauthenticate",
	    "POST:admin", 0, 0, 0, 0 },
};

void
route_free_table(struct route *routes, size_t n)
{
	size_t	 i;

	if (routes == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(routes[i].prefix);
		free(routes[i].to);
	}
	free(routes);
}

/* "GET:read POST:trade" into the route's method list. */
static int
route_spec_methods(struct route *r, const char *spec)
{
	const char	*p = spec, *colon, *end;
	size_t		 mlen, slen;
	char		 scope[16];
	unsigned	 bit;

	while (*p != '\0') {
		colon = strchr(p, ':');
		if (colon == NULL)
			return (-1);
		end = strchr(colon, ' ');
		if (end == NULL)
			end = colon + strlen(colon);
		mlen = (size_t)(colon - p);
		slen = (size_t)(end - colon - 1);
		if (r->nmethods >= sizeof(r->methods) / sizeof(r->methods[0]) ||
		    mlen == 0 || mlen >= sizeof(r->methods[0].method) ||
		    slen == 0 || slen >= sizeof(scope))
			return (-1);
		memcpy(r->methods[r->nmethods].method, p, mlen);
		r->methods[r->nmethods].method[mlen] = '\0';
		memcpy(scope, colon + 1, slen);
		scope[slen] = '\0';
		if (auth_scope_parse(scope, &bit) == -1)
			return (-1);
		r->methods[r->nmethods].scope = bit;
		r->nmethods++;
		p = *end == ' ' ? end + 1 : end;
	}
	return (0);
}

int
route_defaults(struct route **out, size_t *nout)
{
	struct route	*routes;
	const struct route_spec *s;
	size_t		 i, n;

	n = sizeof(route_table) / sizeof(route_table[0]);
	if ((routes = calloc(n, sizeof(*routes))) == NULL)
		return (-1);
	for (i = 0; i < n; i++) {
		s = &route_table[i];
		if ((routes[i].prefix = strdup(s->prefix)) == NULL ||
		    (routes[i].to = strdup(s->to)) == NULL)
			goto fail;
		routes[i].prefix_len = strlen(s->prefix);
		routes[i].to_len = strlen(s->to);
		if (route_spec_methods(&routes[i], s->methods) == -1)
			goto fail;
		routes[i].rate.n = s->rate_n;
		routes[i].rate.window_ms = s->rate_window_ms;
		routes[i].concurrency = s->concurrency;
		routes[i].cache_ms = s->cache_ms;
	}
	*out = routes;
	*nout = n;
	return (0);
fail:
	route_free_table(routes, n);
	return (-1);
}

/*
 * "/v1/api/x" -> "/x", "/v1/api" -> "/": clients written for the Gateway
 * work by changing their base URL.  *len is the path's length in and the
 * result's length out.
 */
const char *
route_strip_v1(const char *path, size_t *len)
{
	static const char v1[] = "/v1/api";
	size_t		 vlen = sizeof(v1) - 1;

	if (*len < vlen || memcmp(path, v1, vlen) != 0)
		return (path);
	if (*len == vlen) {
		*len = 1;
		return ("/");
	}
	if (path[vlen] != '/')
		return (path);
	*len -= vlen;
	return (path + vlen);
}

/*
 * A "%XX" that is not two hex digits, or that decodes to what a Gateway
 * decodes before routing (RFC 3986 unreserved: "%61ccount" is "account")
 * or to a separator: '/', '\\', '%' (decoded twice), NUL.
 */
static int
route_escape_unsafe(const char *p, size_t len)
{
	int	 hi, lo;
	unsigned char d;

	if (len < 3 || (hi = value_hexval((unsigned char)p[1])) == -1 ||
	    (lo = value_hexval((unsigned char)p[2])) == -1)
		return (1);
	d = (unsigned char)(hi << 4 | lo);
	if (d == '\0')
		return (1);
	return ((d >= '0' && d <= '9') || (d >= 'A' && d <= 'Z') ||
	    (d >= 'a' && d <= 'z') || strchr("-._~/\\%", d) != NULL);
}

#define RP_BAD		1	/* refused: '\\', ';', CTL, SP, DEL, 8-bit */
#define RP_PCT		2	/* '%' */
#define RP_SLASH	3	/* '/' */

/* What a path byte is to route_path_unsafe; 0: a plain byte. */
static const unsigned char route_path_class[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0x00 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0x10 */
	1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3,	/* 0x20 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,	/* 0x30 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x40 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,	/* 0x50 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x60 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,	/* 0x70 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0x80 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0x90 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0xa0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0xb0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0xc0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0xd0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0xe0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0xf0 */
};

/*
 * Paths a Gateway (Vert.x) could normalise into another route: dot
 * segments, empty segments, encoded unreserved characters, slashes or
 * backslashes, path parameters.  Without this,
 * "/iserver/x/../account/U1/orders" would match the read-scope /iserver/
 * route and place an order.
 */
static int
route_path_unsafe(const char *path, size_t len)
{
	size_t		 i, seg;
	unsigned	 c;

	if (len == 0 || path[0] != '/')
		return (1);
	for (i = 0; i < len; i++) {
		if ((c = route_path_class[(unsigned char)path[i]]) == 0)
			continue;
		if (c == RP_BAD)
			return (1);
		if (c == RP_PCT && route_escape_unsafe(path + i, len - i))
			return (1);
		if (c != RP_SLASH)
			continue;
		/* the segment after this slash */
		seg = i + 1;
		if (seg < len && path[seg] == '/')
			return (1);
		if (seg < len && path[seg] == '.' &&
		    (seg + 1 == len || path[seg + 1] == '/' ||
		    (path[seg + 1] == '.' &&
		    (seg + 2 == len || path[seg + 2] == '/'))))
			return (1);
	}
	return (0);
}

/* Which side of a route a lookup matches: the client's or the Gateway's. */
enum route_side { ROUTE_PREFIX, ROUTE_TO };

/*
 * The longest prefix of path among the routes, on one side; with
 * policy_only, only routes that carry a rate, a cap or a cache.
 */
static const struct route *
route_longest(const struct route *routes, size_t n, const char *path,
    size_t len, enum route_side side, int policy_only)
{
	const struct route *best = NULL, *r;
	size_t		 i, plen, blen = 0;
	const char	*p;

	for (i = 0; i < n; i++) {
		r = &routes[i];
		if (policy_only && r->rate.n == 0 && r->concurrency == 0 &&
		    r->cache_ms == 0)
			continue;
		p = side == ROUTE_PREFIX ? r->prefix : r->to;
		plen = side == ROUTE_PREFIX ? r->prefix_len : r->to_len;
		if (plen > len || memcmp(p, path, plen) != 0)
			continue;
		if (best == NULL || plen > blen) {
			best = r;
			blen = plen;
		}
	}
	return (best);
}

const struct route *
route_match(const struct route *routes, size_t n, const char *path,
    size_t len)
{
	if (route_path_unsafe(path, len))
		return (NULL);
	return (route_longest(routes, n, path, len, ROUTE_PREFIX, 0));
}

int
route_method_scope(const struct route *r, const char *method,
    unsigned *scope)
{
	size_t	 i;

	for (i = 0; i < r->nmethods; i++)
		if (strcmp(r->methods[i].method, method) == 0) {
			*scope = r->methods[i].scope;
			return (0);
		}
	return (-1);
}

/*
 * The Gateway target: `to`, the rest of the path after `prefix`, then
 * "?query" when there is one.  out is reset first.
 */
int
route_target(const struct route *r, const char *path, size_t len,
    const char *query, struct buf *out)
{
	if (len < r->prefix_len || memcmp(path, r->prefix, r->prefix_len) != 0)
		return (-1);
	buf_reset(out);
	if (buf_append(out, r->to, r->to_len) == -1 ||
	    buf_append(out, path + r->prefix_len, len - r->prefix_len) == -1)
		return (-1);
	if (query != NULL && *query != '\0' &&
	    (buf_append(out, "?", 1) == -1 || buf_puts(out, query) == -1))
		return (-1);
	return (0);
}

const struct route *
route_policy(const struct route *routes, size_t n, const char *gw_path,
    size_t len)
{
	return (route_longest(routes, n, gw_path, len, ROUTE_TO, 1));
}
