/*
 * route.c: the default table, longest prefix, methods and scopes, the
 * /v1/api drop-in prefix, target rewriting with the query, and the policy
 * shared by aliases of one Gateway path.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "brokerd.h"

static struct route *routes;
static size_t	 nroutes;

static void
setup(void)
{
	cr_assert_eq(route_defaults(&routes, &nroutes), 0);
}

static void
teardown(void)
{
	route_free_table(routes, nroutes);
}

TestSuite(route, .init = setup, .fini = teardown);

static const struct route *
match(const char *path)
{
	return (route_match(routes, nroutes, path, strlen(path)));
}

static const char *
prefix_of(const char *path)
{
	const struct route *r = match(path);

	return (r != NULL ? r->prefix : "(none)");
}

/* Scope the method needs on the route for path, or -1. */
static int
scope_of(const char *method, const char *path)
{
	const struct route *r = match(path);
	unsigned	 scope;

	if (r == NULL || route_method_scope(r, method, &scope) == -1)
		return (-1);
	return ((int)scope);
}

Test(route, longest_prefix_wins)
{
	cr_assert_str_eq(prefix_of("/iserver/accounts"), "/iserver/account");
	/* switching the selected account is a trade-scope act */
	cr_assert_eq(scope_of("POST", "/iserver/account"), SCOPE_TRADE);
	cr_assert_eq(scope_of("GET", "/iserver/accounts"), SCOPE_READ);
	cr_assert_str_eq(prefix_of("/iserver/account/U1/orders"),
	    "/iserver/account/");
	cr_assert_str_eq(prefix_of("/iserver/account/orders"),
	    "/iserver/account/orders");
	cr_assert_str_eq(prefix_of("/iserver/account/orders?force=true"),
	    "/iserver/account/orders", "route_match is given no query, but "
	    "a '?' in the path is only bytes");
	cr_assert_str_eq(prefix_of("/iserver/account/trades"),
	    "/iserver/account/trades");
	cr_assert_str_eq(prefix_of("/iserver/marketdata/snapshot"),
	    "/iserver/marketdata/snapshot");
	cr_assert_str_eq(prefix_of("/iserver/marketdata/history"),
	    "/iserver/marketdata/history");
	cr_assert_str_eq(prefix_of("/iserver/marketdata/unsubscribeall"),
	    "/iserver/");
	cr_assert_str_eq(prefix_of("/portfolio/accounts"),
	    "/portfolio/accounts");
	cr_assert_str_eq(prefix_of("/portfolio/U1/positions/0"),
	    "/portfolio/");
	cr_assert_str_eq(prefix_of("/portfolio2/U1/positions"),
	    "/portfolio2/");
	cr_assert_str_eq(prefix_of("/iserver/auth/status"),
	    "/iserver/auth/status");
	cr_assert_str_eq(prefix_of("/iserver/auth/ssodh/init"),
	    "/iserver/auth/");
	cr_assert_str_eq(prefix_of("/marketdata/snapshot"), "/marketdata/");
}

Test(route, unrouted_paths)
{
	cr_assert_null(match("/logout"));
	cr_assert_null(match("/md/regsnapshot"));
	cr_assert_null(match("/"));
	cr_assert_null(match("/iserver"), "no trailing slash, no route");
	cr_assert_null(match("/gw/api/x"));
	cr_assert_null(match(""));
}

/* A Gateway that normalises paths must not see another route's path. */
Test(route, unsafe_paths_do_not_match)
{
	static const char *const bad[] = {
		"/iserver/x/../account/U1/orders",
		"/iserver/./account/U1/orders",
		"/iserver//account/U1/orders",
		"/iserver/x/..",
		"/iserver/.",
		"/iserver/%2e%2e/account/U1/orders",
		"/iserver/%2E./account",
		"/iserver/x%2faccount",
		"/iserver/x%5c..%5caccount",
		"/iserver/x\\..\\account",
		"/iserver/x;/../account",
		"/iserver/a b",
		"/iserver/%00",
		"iserver/accounts",
	};
	size_t	 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_null(match(bad[i]), "%s matched", bad[i]);
	cr_assert_not_null(match("/iserver/.well/x..y/%20"),
	    "dots inside a segment are fine");
}

/*
 * Vert.x (RFC 3986 section 6.2.2.2) decodes percent-encoded unreserved
 * characters before it routes: "%61ccount" is "account" to the Gateway,
 * so it must not reach the read-scope /iserver/ route here.
 */
Test(route, encoded_unreserved_do_not_match)
{
	static const char *const bad[] = {
		"/iserver/%61ccount/U1/orders",
		"/iserver/%41ccount/U1/orders",
		"/iserver/r%65ply/abc",
		"/iserver/%61uth/ssodh/init",
		"/iserver/questions%2Dx",
		"/iserver/x%5Fy",
		"/iserver/x%7e",
		"/iserver/x%30",
		"/iserver/x%2",
		"/iserver/x%zz",
		"/iserver/%252e%252e/account",
	};
	size_t	 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_null(match(bad[i]), "%s matched", bad[i]);
	cr_assert_str_eq(prefix_of("/iserver/secdef/search%20x%2B%3A"),
	    "/iserver/", "reserved and other escapes stay as they are");
}

Test(route, methods_and_scopes)
{
	cr_assert_eq(scope_of("GET", "/iserver/accounts"), SCOPE_READ);
	cr_assert_eq(scope_of("POST", "/iserver/secdef/search"), SCOPE_READ);
	cr_assert_eq(scope_of("DELETE", "/iserver/accounts"), -1);
	cr_assert_eq(scope_of("POST", "/iserver/account/U1/orders"),
	    SCOPE_TRADE);
	cr_assert_eq(scope_of("DELETE", "/iserver/account/U1/order/5"),
	    SCOPE_TRADE);
	cr_assert_eq(scope_of("GET", "/iserver/account/U1/summary"),
	    SCOPE_READ);
	cr_assert_eq(scope_of("PUT", "/iserver/account/U1/orders"), -1);
	cr_assert_eq(scope_of("POST", "/iserver/account/orders"), -1,
	    "orders (list) is GET only");
	cr_assert_eq(scope_of("POST", "/iserver/reply/abc"), SCOPE_TRADE);
	cr_assert_eq(scope_of("GET", "/iserver/reply/abc"), -1);
	cr_assert_eq(scope_of("POST", "/iserver/questions/suppress"),
	    SCOPE_TRADE);
	cr_assert_eq(scope_of("POST", "/iserver/auth/ssodh/init"),
	    SCOPE_ADMIN);
	cr_assert_eq(scope_of("GET", "/iserver/auth/status"), SCOPE_READ);
	cr_assert_eq(scope_of("POST", "/iserver/auth/status"), SCOPE_READ);
	cr_assert_eq(scope_of("POST", "/iserver/reauthenticate"),
	    SCOPE_ADMIN);
	cr_assert_eq(scope_of("DELETE", "/fyi/deliveryoptions/1"),
	    SCOPE_READ);
	cr_assert_eq(scope_of("get", "/iserver/accounts"), -1,
	    "methods are case-sensitive");
	cr_assert_eq(scope_of("POST", "/tickle"), SCOPE_READ);
}

Test(route, strip_v1)
{
	const char	*p;
	size_t		 len;

	len = strlen("/v1/api/iserver/accounts");
	p = route_strip_v1("/v1/api/iserver/accounts", &len);
	cr_assert_eq(len, strlen("/iserver/accounts"));
	cr_assert_eq(strncmp(p, "/iserver/accounts", len), 0);

	len = strlen("/v1/api");
	p = route_strip_v1("/v1/api", &len);
	cr_assert_eq(len, 1);
	cr_assert_eq(p[0], '/');

	len = strlen("/v1/api/");
	p = route_strip_v1("/v1/api/", &len);
	cr_assert_eq(len, 1);
	cr_assert_eq(p[0], '/');

	len = strlen("/v1/apix/y");
	p = route_strip_v1("/v1/apix/y", &len);
	cr_assert_eq(len, strlen("/v1/apix/y"), "not the prefix");
	cr_assert_str_eq(p, "/v1/apix/y");

	len = strlen("/iserver/accounts");
	p = route_strip_v1("/iserver/accounts", &len);
	cr_assert_str_eq(p, "/iserver/accounts");

	/* only the given length counts */
	len = 5;
	p = route_strip_v1("/v1/api/x", &len);
	cr_assert_eq(len, 5);
}

static void
expect_target(const char *path, const char *query, const char *want)
{
	const struct route *r = match(path);
	struct buf	 out;

	cr_assert_not_null(r, "%s", path);
	buf_init(&out);
	buf_puts(&out, "old contents");
	cr_assert_eq(route_target(r, path, strlen(path), query, &out), 0);
	cr_assert_str_eq(out.data, want);
	cr_assert_eq(out.len, strlen(want));
	buf_free(&out);
}

Test(route, target_rewrite_with_query)
{
	expect_target("/iserver/accounts", NULL, "/v1/api/iserver/accounts");
	expect_target("/iserver/account/orders", "force=true",
	    "/v1/api/iserver/account/orders?force=true");
	expect_target("/marketdata/snapshot", "conids=265598&fields=31",
	    "/v1/api/iserver/marketdata/snapshot?conids=265598&fields=31");
	expect_target("/portfolio/U1/positions/0", "",
	    "/v1/api/portfolio/U1/positions/0");
	expect_target("/marketdata/history", "conid=1&period=1d",
	    "/v1/api/iserver/marketdata/history?conid=1&period=1d");
}

Test(route, target_needs_the_prefix)
{
	const struct route *r = match("/trsrv/secdef");
	struct buf	 out;

	buf_init(&out);
	cr_assert_eq(route_target(r, "/other", 6, NULL, &out), -1);
	buf_free(&out);
}

static const struct route *
policy(const char *gw_path)
{
	return (route_policy(routes, nroutes, gw_path, strlen(gw_path)));
}

Test(route, policy_shared_by_aliases)
{
	const struct route *a, *b;
	struct buf	 t1, t2;
	const char	*p1 = "/marketdata/snapshot";
	const char	*p2 = "/iserver/marketdata/snapshot";

	buf_init(&t1);
	buf_init(&t2);
	cr_assert_eq(route_target(match(p1), p1, strlen(p1), "conids=1", &t1),
	    0);
	cr_assert_eq(route_target(match(p2), p2, strlen(p2), NULL, &t2), 0);
	cr_assert_neq(match(p1), match(p2), "two different client routes");
	a = route_policy(routes, nroutes, t1.data, strlen(
	    "/v1/api/iserver/marketdata/snapshot"));
	b = route_policy(routes, nroutes, t2.data, t2.len);
	cr_assert_not_null(a);
	cr_assert_eq(a, b, "one policy route for one Gateway path");
	cr_assert_str_eq(a->prefix, "/iserver/marketdata/snapshot");
	cr_assert_eq(a->rate.n, 10);
	cr_assert_eq(a->rate.window_ms, 1000);
	buf_free(&t1);
	buf_free(&t2);
}

Test(route, policies_carry_ibkr_limits)
{
	const struct route *r;

	r = policy("/v1/api/iserver/account/orders");
	cr_assert(r != NULL && r->rate.n == 1 && r->rate.window_ms == 5000 &&
	    r->cache_ms == 5000);
	r = policy("/v1/api/iserver/account/trades");
	cr_assert(r != NULL && r->rate.n == 1 && r->rate.window_ms == 5000);
	r = policy("/v1/api/iserver/account/pnl/partitioned");
	cr_assert(r != NULL && r->rate.window_ms == 5000);
	r = policy("/v1/api/portfolio/accounts");
	cr_assert(r != NULL && r->rate.n == 1 && r->rate.window_ms == 5000);
	r = policy("/v1/api/portfolio/subaccounts");
	cr_assert(r != NULL && r->rate.n == 1 && r->rate.window_ms == 5000);
	r = policy("/v1/api/iserver/scanner/params");
	cr_assert(r != NULL && r->rate.n == 1 &&
	    r->rate.window_ms == 900000 && r->cache_ms == 900000);
	r = policy("/v1/api/iserver/scanner/run");
	cr_assert(r != NULL && r->rate.n == 1 && r->rate.window_ms == 1000);
	r = policy("/v1/api/pa/performance");
	cr_assert(r != NULL && r->rate.n == 1 && r->rate.window_ms == 900000);
	r = policy("/v1/api/fyi/unreadnumber");
	cr_assert(r != NULL && r->rate.n == 1 && r->rate.window_ms == 1000);
	r = policy("/v1/api/iserver/marketdata/history");
	cr_assert(r != NULL && r->concurrency == 5 && r->rate.n == 0);
	r = policy("/v1/api/tickle");
	cr_assert(r != NULL && r->rate.n == 1 && r->rate.window_ms == 1000);
	r = policy("/v1/api/sso/validate");
	cr_assert(r != NULL && r->rate.n == 1 && r->rate.window_ms == 60000);
	cr_assert_null(policy("/v1/api/iserver/accounts"),
	    "only the global limit");
	cr_assert_null(policy("/v1/api/portfolio/U1/positions/0"));
}

Test(route, custom_table_longest_and_first_policy)
{
	struct route	 t[3];

	memset(t, 0, sizeof(t));
	t[0].prefix = "/a/";
	t[0].prefix_len = 3;
	t[0].to = "/v1/api/x/";
	t[0].to_len = 10;
	t[1].prefix = "/a/b";
	t[1].prefix_len = 4;
	t[1].to = "/v1/api/x/b";
	t[1].to_len = 11;
	t[1].cache_ms = 10;
	t[2].prefix = "/c";
	t[2].prefix_len = 2;
	t[2].to = "/v1/api/x/b";
	t[2].to_len = 11;
	t[2].rate.n = 1;
	t[2].rate.window_ms = 1000;
	cr_assert_eq(route_match(t, 3, "/a/bc", 5), &t[1]);
	cr_assert_eq(route_match(t, 3, "/a/c", 4), &t[0]);
	cr_assert_eq(route_policy(t, 3, "/v1/api/x/b/1", 13), &t[1],
	    "equal `to`: the first route with a policy");
	cr_assert_null(route_policy(t, 3, "/v1/api/x/c", 11));
}
