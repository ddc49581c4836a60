/*
 * The front door under attack, black-box: scope bypasses through path
 * spellings the Gateway decodes, bytes that would bend the Gateway's
 * request line, and listeners that would reach past loopback.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

static struct gwsim	 gw;
static struct brokerd	 bd;

static int
status_has(const struct brokerd *b, const char *text)
{
	char	*s = slurp(b->status, NULL);
	int	 r = s != NULL && strstr(s, text) != NULL;

	free(s);
	return (r);
}

/* brokerd in front of an authenticated Gateway simulator. */
static void
start_authenticated(void)
{
	int	 i;

	cr_assert_eq(gwsim_start(&gw, "self"), 0);
	cr_assert_eq(brokerd_start(&bd, &gw, NULL), 0);
	for (i = 0; i < 200 &&
	    !status_has(&bd, "BROKERD_STATE=authenticated"); i++)
		sleep_ms(20);
	cr_assert(status_has(&bd, "BROKERD_STATE=authenticated"));
}

static void
stop_both(void)
{
	brokerd_stop(&bd);
	gwsim_stop(&gw);
}

/* One raw request on a new Unix connection; the answer in out. */
static void
raw(const char *req, char *out, size_t cap)
{
	ssize_t	 n;

	n = raw_unix(bd.sock, req, strlen(req), out, cap - 1, 3000);
	cr_assert_gt(n, 0, "no answer to %s", req);
	out[n] = '\0';
}

/*
 * The Gateway (Vert.x) decodes percent-encoded unreserved characters
 * before routing: "/iserver/%61ccount/U1/orders" places an order there.
 * A read key must not get it through brokerd's read-scope /iserver/ route.
 */
Test(security, encoded_path_keeps_the_trade_scope, .init =
    start_authenticated, .fini = stop_both, .timeout = 30)
{
	static const char *const paths[] = {
		"/iserver/%61ccount/U1/orders",
		"/v1/api/iserver/%61ccount/U1/orders",
		"/iserver/r%65ply/abc",
		"/iserver/%61uth/ssodh/init",
	};
	char	 req[512], out[4096];
	size_t	 i;
	long	 before;

	before = gwsim_count(&gw, "total");
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\nHost: x\r\n"
		    "X-Bridge-Key: " TEST_READ_KEY "\r\nContent-Type: "
		    "application/json\r\nContent-Length: 2\r\n"
		    "Connection: close\r\n\r\n{}", paths[i]);
		raw(req, out, sizeof(out));
		cr_assert(strncmp(out, "HTTP/1.1 404 ", 13) == 0 &&
		    strstr(out, "\"error\":\"no_route\"") != NULL,
		    "%s: %s", paths[i], out);
	}
	/* the watcher may tickle meanwhile; none of ours went out */
	cr_assert_eq(gwsim_count(&gw, "POST /v1/api/iserver/%61ccount/U1/"
	    "orders"), 0);
	cr_assert_eq(gwsim_count(&gw, "POST /v1/api/iserver/r%65ply/abc"), 0);
	cr_assert_leq(gwsim_count(&gw, "total") - before, 4);
}

/*
 * HTAB in the target passes http-parser; it must be the client's 400, not
 * a 502 blamed on the Gateway, and nothing goes upstream.
 */
Test(security, control_character_in_target_is_400, .init =
    start_authenticated, .fini = stop_both, .timeout = 30)
{
	char	 out[4096];

	raw("GET /iserver/accounts?a\tb HTTP/1.1\r\nHost: x\r\n"
	    "X-Bridge-Key: " TEST_KEY "\r\nConnection: close\r\n\r\n", out,
	    sizeof(out));
	cr_assert(strncmp(out, "HTTP/1.1 400 ", 13) == 0 &&
	    strstr(out, "\"error\":\"bad_request\"") != NULL, "%s", out);
}

static int
tcp_socket(const char *addr)
{
	struct sockaddr_in	 sin;
	int			 fd;

	cr_assert_neq(fd = socket(AF_INET, SOCK_STREAM, 0), -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	cr_assert_eq(inet_pton(AF_INET, addr, &sin.sin_addr), 1);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(fd, 16), 0);
	return (fd);
}

static struct brokerd	 b;

static void
stop_b(void)
{
	brokerd_stop(&b);
}

/* listen.tcp refuses a non-loopback address; a passed socket too. */
Test(security, activated_tcp_socket_must_be_loopback, .fini = stop_b,
    .timeout = 30)
{
	int		 fd;

	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, NULL, NULL), 0);
	fd = tcp_socket("0.0.0.0");
	cr_assert_eq(brokerd_spawn_activated(&b, fd), -1,
	    "brokerd serves a socket bound to 0.0.0.0");
	close(fd);
	cr_assert_neq(b.exit_status, 0);
	cr_assert(brokerd_log_has(&b, "not a loopback address"));
	brokerd_stop(&b);

	/* loopback is fine */
	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, NULL, NULL), 0);
	fd = tcp_socket("127.0.0.1");
	cr_assert_eq(brokerd_spawn_activated(&b, fd), 0);
	close(fd);
	cr_assert(brokerd_log_has(&b, "(systemd)"));
}

/*
 * tcp_anonymous is for programs that cannot set a header, not for web
 * pages: a page on any site can POST to 127.0.0.1 with Host 127.0.0.1
 * (no DNS rebinding needed).  Browsers mark such requests with Origin or
 * Sec-Fetch-*; those get no anonymous scopes.
 */
Test(security, anonymous_scopes_not_for_browsers, .fini = stop_b,
    .timeout = 30)
{
	static const char *const origin[] = { "Origin: https://evil.example",
	    NULL };
	static const char *const fetch[] = { "Sec-Fetch-Site: cross-site",
	    NULL };
	struct resp	 r;
	char		 extra[512];

	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, NULL, NULL), 0);
	snprintf(extra, sizeof(extra), "listen:\n  unix: { path: %s, "
	    "group: null }\n  tcp: 127.0.0.1:0\n  tcp_anonymous: [read, "
	    "trade]\n", b.sock);
	cr_assert_eq(brokerd_write_conf(&b, NULL, extra), 0);
	cr_assert_eq(brokerd_spawn(&b, NULL), 0);
	cr_assert_gt(b.tcp_port, 0);
	cr_assert_eq(req_tcp(&b, "GET", "/metrics", NULL, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200, "a program without a key: %ld", r.status);
	resp_free(&r);
	cr_assert_eq(req_tcp(&b, "POST", "/iserver/account/U1/orders", origin,
	    "{}", 2, &r), 0);
	cr_assert_eq(r.status, 401, "a page's POST: %ld %s", r.status, r.body);
	resp_free(&r);
	cr_assert_eq(req_tcp(&b, "GET", "/metrics", fetch, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 401, "a page's GET: %ld %s", r.status, r.body);
	resp_free(&r);
}

/* Two keys in one request: refused, whichever of them is valid. */
Test(security, two_keys_are_a_bad_request, .init = start_authenticated,
    .fini = stop_both, .timeout = 30)
{
	char	 out[4096];

	raw("GET /gateway/status HTTP/1.1\r\nHost: x\r\n"
	    "X-Bridge-Key: " TEST_READ_KEY "\r\n"
	    "X-Bridge-Key: " TEST_KEY "\r\nConnection: close\r\n\r\n", out,
	    sizeof(out));
	cr_assert(strncmp(out, "HTTP/1.1 400 ", 13) == 0, "%s", out);
	raw("GET /gateway/status HTTP/1.1\r\nHost: x\r\n"
	    "X-Bridge-Key: " TEST_READ_KEY "\r\n"
	    "Authorization: Bearer " TEST_KEY "\r\nConnection: close\r\n\r\n",
	    out, sizeof(out));
	cr_assert(strncmp(out, "HTTP/1.1 400 ", 13) == 0, "%s", out);
}

/* RFC 9112 3.2.2: an absolute-form target's authority is the host. */
Test(security, absolute_form_authority_is_checked, .init =
    start_authenticated, .fini = stop_both, .timeout = 30)
{
	static const char evil[] = "GET http://evil.example/health HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
	static const char good[] = "GET http://localhost:8000/health "
	    "HTTP/1.1\r\nHost: localhost:8000\r\nConnection: close\r\n\r\n";
	char	 out[4096];
	ssize_t	 n;

	n = raw_tcp(bd.tcp_port, evil, sizeof(evil) - 1, out, sizeof(out),
	    3000);
	cr_assert_gt(n, 0);
	cr_assert(strncmp(out, "HTTP/1.1 421 ", 13) == 0, "%s", out);
	n = raw_tcp(bd.tcp_port, good, sizeof(good) - 1, out, sizeof(out),
	    3000);
	cr_assert_gt(n, 0);
	cr_assert(strncmp(out, "HTTP/1.1 200 ", 13) == 0, "%s", out);
}
