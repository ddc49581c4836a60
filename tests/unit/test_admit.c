/*
 * admit.c: the Host check, keys, peers and keyless TCP, routes and their
 * methods, scopes, the kill switch and the Gateway session a call needs,
 * each refusal with its status, code and header lines.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brokerd.h"

static struct config		 conf;
static struct gw_status		 gw;
static struct admit_verdict	 v;
static struct http_request	 req;
static char			 path[256];
static const struct admit_peer	 tcp = { 0, 0, 0, 0 };

static void
add_key(const char *name, const char *secret, unsigned scopes)
{
	struct key	*k;

	conf.keys = reallocarray(conf.keys, conf.nkeys + 1,
	    sizeof(*conf.keys));
	cr_assert_not_null(conf.keys);
	k = &conf.keys[conf.nkeys++];
	memset(k, 0, sizeof(*k));
	k->name = strdup(name);
	auth_sha256(secret, strlen(secret), k->hash);
	k->scopes = scopes;
}

static void
setup(void)
{
	memset(&conf, 0, sizeof(conf));
	memset(&gw, 0, sizeof(gw));
	memset(&req, 0, sizeof(req));
	memset(&v, 0xa5, sizeof(v));	/* each call must fill it */
	cr_assert_eq(route_defaults(&conf.routes, &conf.nroutes), 0);
	add_key("reader", "r-secret", SCOPE_READ);
	add_key("trader", "t-secret", SCOPE_READ | SCOPE_TRADE);
	gw.state = GW_AUTHENTICATED;
	buf_init(&req.raw);
	buf_init(&req.body);
	req.keep_alive = 1;
}

static void
teardown(void)
{
	size_t	 i;

	buf_free(&req.raw);
	free(req.fields);

	for (i = 0; i < conf.nkeys; i++)
		free(conf.keys[i].name);
	free(conf.keys);
	for (i = 0; i < conf.npeers; i++)
		free(conf.peers[i].name);
	free(conf.peers);
	route_free_table(conf.routes, conf.nroutes);
}

/* A request: method, target, then header name/value pairs, NULL-ended. */
static void
ask(const char *method, const char *target, ...)
{
	va_list		 ap;
	const char	*name;

	snprintf(req.method, sizeof(req.method), "%s", method);
	snprintf(path, sizeof(path), "%s", target);
	path[strcspn(path, "?")] = '\0';
	req.path = path;
	req.url = (char *)target;
	buf_reset(&req.raw);
	req.nfields = 0;
	va_start(ap, target);
	while ((name = va_arg(ap, const char *)) != NULL)
		cr_assert_eq(http_request_add_header(&req, name,
		    va_arg(ap, const char *)), 0);
	va_end(ap);
}

static int
request(const struct admit_peer *p)
{
	size_t		 len = strlen(req.path);
	const char	*stripped = route_strip_v1(req.path, &len);

	return (admit_request(&conf, &gw, p, NULL, &req, stripped, &v));
}

TestSuite(admit, .init = setup, .fini = teardown);

Test(admit, host_loopback_only_on_tcp)
{
	ask("GET", "/health", "Host", "127.0.0.1:8000", NULL);
	cr_assert_eq(admit_host(&req, 0, &v), 0);
	cr_assert_eq(v.status, 0);
	ask("GET", "/health", "Host", "[::1]", NULL);
	cr_assert_eq(admit_host(&req, 0, &v), 0);
	ask("GET", "/health", "Host", "evil.example", NULL);
	cr_assert_eq(admit_host(&req, 0, &v), -1);
	cr_assert_eq(v.status, 421);
	cr_assert_str_eq(v.code, "misdirected_request");
	cr_assert_str_eq(v.extra, "");
	/* A Unix socket has no Host to check. */
	cr_assert_eq(admit_host(&req, 1, &v), 0);
	/* The authority of an absolute-form target counts too. */
	ask("GET", "http://evil.example/health", "Host", "localhost", NULL);
	cr_assert_eq(admit_host(&req, 0, &v), -1);
	cr_assert_eq(v.status, 421);
	ask("GET", "http://localhost:8000/health", "Host", "localhost", NULL);
	cr_assert_eq(admit_host(&req, 0, &v), 0);
	ask("GET", "ftp://localhost/health", "Host", "localhost", NULL);
	cr_assert_eq(admit_host(&req, 0, &v), -1);
}

Test(admit, keys)
{
	ask("GET", "/x", "X-Bridge-Key", "r-secret", NULL);
	cr_assert_eq(admit_who(&conf, &tcp, &req, &v), 0);
	cr_assert_eq(v.status, 0);
	cr_assert_eq(v.scopes, SCOPE_READ);
	cr_assert_str_eq(v.who, "key:reader");

	ask("GET", "/x", "Authorization", "Bearer   t-secret", NULL);
	cr_assert_eq(admit_who(&conf, &tcp, &req, &v), 0);
	cr_assert_eq(v.scopes, SCOPE_READ | SCOPE_TRADE);
	cr_assert_str_eq(v.who, "key:trader");

	ask("GET", "/x", "X-Bridge-Key", "nope", NULL);
	cr_assert_eq(admit_who(&conf, &tcp, &req, &v), -1);
	cr_assert_eq(v.status, 401);
	cr_assert_str_eq(v.message, "unknown key");
	cr_assert_str_eq(v.who, "bad-key");
	cr_assert_str_eq(v.extra, "WWW-Authenticate: Bearer\r\n");

	ask("GET", "/x", "Authorization", "Basic dTpw", NULL);
	cr_assert_eq(admit_who(&conf, &tcp, &req, &v), -1);
	cr_assert_eq(v.status, 401);
	cr_assert_str_eq(v.who, "");

	/* Two keys: which one counts would be anybody's guess. */
	ask("GET", "/x", "X-Bridge-Key", "r-secret", "Authorization",
	    "Bearer r-secret", NULL);
	cr_assert_eq(admit_who(&conf, &tcp, &req, &v), -1);
	cr_assert_eq(v.status, 400);
	cr_assert_str_eq(v.code, "bad_request");
	ask("GET", "/x", "X-Bridge-Key", "r-secret", "x-bridge-key",
	    "r-secret", NULL);
	cr_assert_eq(admit_who(&conf, &tcp, &req, &v), -1);
	cr_assert_eq(v.status, 400);

	ask("GET", "/x", NULL);
	cr_assert_eq(admit_who(&conf, &tcp, &req, &v), -1);
	cr_assert_eq(v.status, 401);
	cr_assert_str_eq(v.code, "unauthorized");
	cr_assert_eq(v.scopes, 0);
}

Test(admit, peers_and_keyless_tcp)
{
	struct admit_peer	 unix_peer = { 1, 1, getuid(), getgid() };
	struct admit_peer	 no_cred = { 1, 0, getuid(), getgid() };

	conf.peers = calloc(1, sizeof(*conf.peers));
	cr_assert_not_null(conf.peers);
	conf.npeers = 1;
	conf.peers[0].name = strdup("me");
	conf.peers[0].uid = getuid();
	conf.peers[0].scopes = SCOPE_READ;

	ask("GET", "/x", NULL);
	cr_assert_eq(admit_who(&conf, &unix_peer, &req, &v), 0);
	cr_assert_eq(v.scopes, SCOPE_READ);
	cr_assert_str_eq(v.who, "peer:me");
	/* Without SO_PEERCRED a peer is nobody. */
	cr_assert_eq(admit_who(&conf, &no_cred, &req, &v), -1);
	cr_assert_eq(v.status, 401);
	/* A key still wins over the peer. */
	ask("GET", "/x", "X-Bridge-Key", "t-secret", NULL);
	cr_assert_eq(admit_who(&conf, &unix_peer, &req, &v), 0);
	cr_assert_str_eq(v.who, "key:trader");

	/* Keyless TCP: not for Unix peers, not for web pages. */
	conf.tcp_anonymous = SCOPE_READ;
	ask("GET", "/x", NULL);
	cr_assert_eq(admit_who(&conf, &tcp, &req, &v), 0);
	cr_assert_str_eq(v.who, "anonymous");
	cr_assert_eq(v.scopes, SCOPE_READ);
	cr_assert_eq(admit_who(&conf, &no_cred, &req, &v), -1);
	ask("GET", "/x", "Origin", "http://localhost", NULL);
	cr_assert_eq(admit_who(&conf, &tcp, &req, &v), -1);
	ask("GET", "/x", "Sec-Fetch-Site", "same-origin", NULL);
	cr_assert_eq(admit_who(&conf, &tcp, &req, &v), -1);
	cr_assert_eq(v.status, 401);
}

Test(admit, scope_and_allow)
{
	ask("GET", "/x", "X-Bridge-Key", "r-secret", NULL);
	cr_assert_eq(admit_who(&conf, &tcp, &req, &v), 0);
	cr_assert_eq(admit_scope(&v, SCOPE_READ), 0);
	cr_assert_eq(v.status, 0);
	cr_assert_eq(admit_scope(&v, SCOPE_ADMIN), -1);
	cr_assert_eq(v.status, 403);
	cr_assert_str_eq(v.message, "this needs the admin scope");
	cr_assert_str_eq(v.who, "key:reader");

	memset(&v, 0, sizeof(v));
	admit_allow(&v, "GET, POST");
	cr_assert_eq(v.status, 405);
	cr_assert_str_eq(v.code, "method_not_allowed");
	cr_assert_str_eq(v.extra, "Allow: GET, POST\r\n");
}

Test(admit, routes_methods_scopes)
{
	ask("GET", "/v1/api/iserver/secdef/search?x=1", "X-Bridge-Key", "r-secret",
	    NULL);
	cr_assert_eq(request(&tcp), 0);
	cr_assert_eq(v.status, 0);
	cr_assert_str_eq(v.route->prefix, "/iserver/");
	cr_assert_eq(v.need, SCOPE_READ);
	cr_assert_str_eq(v.who, "key:reader");

	ask("GET", "/nowhere", "X-Bridge-Key", "r-secret", NULL);
	cr_assert_eq(request(&tcp), -1);
	cr_assert_eq(v.status, 404);
	cr_assert_str_eq(v.code, "no_route");
	cr_assert_null(v.route);

	/* The route's own methods, in its order. */
	ask("PUT", "/iserver/account/U1", "X-Bridge-Key", "t-secret", NULL);
	cr_assert_eq(request(&tcp), -1);
	cr_assert_eq(v.status, 405);
	cr_assert_str_eq(v.extra, "Allow: GET, POST, DELETE\r\n");
	cr_assert_str_eq(v.route->prefix, "/iserver/account/");

	ask("POST", "/iserver/account/U1/orders", "X-Bridge-Key", "r-secret",
	    NULL);
	cr_assert_eq(request(&tcp), -1);
	cr_assert_eq(v.status, 403);
	cr_assert_str_eq(v.message, "this needs the trade scope");

	ask("POST", "/iserver/account/U1/orders", "X-Bridge-Key", "t-secret",
	    NULL);
	cr_assert_eq(request(&tcp), 0);
	cr_assert_eq(v.need, SCOPE_TRADE);

	/* Who comes before the route: no key, no 404. */
	ask("GET", "/nowhere", NULL);
	cr_assert_eq(request(&tcp), -1);
	cr_assert_eq(v.status, 401);
}

Test(admit, kill_switch)
{
	char	 halt[] = "/tmp/test_admit_haltXXXXXX";
	int	 fd;

	cr_assert_neq(fd = mkstemp(halt), -1);
	close(fd);
	conf.halt_file = halt;
	ask("POST", "/iserver/account/U1/orders", "X-Bridge-Key", "t-secret",
	    NULL);
	cr_assert_eq(request(&tcp), -1);
	cr_assert_eq(v.status, 423);
	cr_assert_str_eq(v.code, "trading_halted");
	/* Reads go on. */
	ask("GET", "/iserver/account/U1/orders", "X-Bridge-Key", "t-secret",
	    NULL);
	cr_assert_eq(request(&tcp), 0);
	unlink(halt);
	ask("POST", "/iserver/account/U1/orders", "X-Bridge-Key", "t-secret",
	    NULL);
	cr_assert_eq(request(&tcp), 0);
}

Test(admit, gateway_session)
{
	ask("GET", "/iserver/accounts", "X-Bridge-Key", "r-secret", NULL);
	gw.state = GW_DOWN;
	cr_assert_eq(request(&tcp), -1);
	cr_assert_eq(v.status, 502);
	cr_assert_str_eq(v.code, "gateway_unreachable");

	gw.cert_error = 1;
	snprintf(gw.message, sizeof(gw.message), "pin mismatch");
	cr_assert_eq(request(&tcp), -1);
	cr_assert_eq(v.status, 502);
	cr_assert_str_eq(v.code, "gateway_certificate");
	cr_assert_str_eq(v.message, "pin mismatch");

	gw.cert_error = 0;
	gw.state = GW_UNAUTHENTICATED;
	cr_assert_eq(request(&tcp), -1);
	cr_assert_eq(v.status, 503);
	cr_assert_str_eq(v.code, "not_authenticated");
	cr_assert_str_eq(v.extra, "Retry-After: 10\r\n");
	cr_assert_str_eq(v.message, "the Gateway has no authenticated "
	    "brokerage session");
	gw.state = GW_COMPETING;
	cr_assert_eq(request(&tcp), -1);
	cr_assert_str_eq(v.message, "the brokerage session is taken by "
	    "another login (competing)");

	/* Only /iserver/ calls need the session, and not its auth calls. */
	ask("GET", "/portfolio/accounts", "X-Bridge-Key", "r-secret", NULL);
	cr_assert_eq(request(&tcp), 0);
	ask("POST", "/v1/api/iserver/auth/status", "X-Bridge-Key",
	    "r-secret", NULL);
	cr_assert_eq(request(&tcp), 0);
	gw.state = GW_STARTING;
	ask("GET", "/iserver/accounts", "X-Bridge-Key", "r-secret", NULL);
	cr_assert_eq(request(&tcp), 0);
}
