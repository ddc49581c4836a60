/*
 * The daemon's front door, black-box: a real brokerd on a temporary Unix
 * socket and TCP port, driven with libcurl and raw sockets.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

#include "harness.h"

static const char *const key_all[] = { "X-Bridge-Key: " TEST_KEY, NULL };
static const char *const key_read[] = { "X-Bridge-Key: " TEST_READ_KEY, NULL };
static const char *const key_bad[] = { "X-Bridge-Key: not-the-key-at-all-xxxx",
    NULL };
static const char *const bearer[] = { "Authorization: Bearer " TEST_KEY, NULL };

static struct brokerd bd;

static void
start_plain(void)
{
	cr_assert_eq(brokerd_start(&bd, NULL, "limits:\n  max_body_bytes: 1024\n"
	    "  max_header_bytes: 2048\n  header_timeout_ms: 300\n"), 0,
	    "brokerd did not start");
}

static void
stop(void)
{
	brokerd_stop(&bd);
}

static void
assert_error(struct resp *r, long status, const char *code)
{
	char	 want[128];

	cr_assert_eq(r->status, status, "status %ld, want %ld: %s", r->status,
	    status, r->body);
	snprintf(want, sizeof(want), "\"error\":\"%s\"", code);
	cr_assert(strstr(r->body, want) != NULL, "body %s lacks %s", r->body,
	    want);
	cr_assert(strstr(r->body, "\"message\":") != NULL);
}

TestSuite(server, .init = start_plain, .fini = stop, .timeout = 30);

Test(server, health_on_unix_and_tcp)
{
	struct resp	 r;

	cr_assert_eq(req_unix(&bd, "GET", "/health", NULL, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"status\":\"ok\",\"bridge\":\"running\"}");
	resp_free(&r);
	cr_assert_gt(bd.tcp_port, 0);
	cr_assert_eq(req_tcp(&bd, "GET", "/health", NULL, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "{\"status\":\"ok\",\"bridge\":\"running\"}");
	resp_free(&r);
}

Test(server, socket_mode_is_exact)
{
	struct stat	 st;

	cr_assert_eq(stat(bd.sock, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0660, "mode %o", st.st_mode & 07777);
}

Test(server, keys_and_scopes)
{
	struct resp	 r;

	req_unix(&bd, "GET", "/gateway/status", NULL, NULL, 0, &r);
	assert_error(&r, 401, "unauthorized");
	resp_free(&r);
	req_unix(&bd, "GET", "/gateway/status", key_bad, NULL, 0, &r);
	assert_error(&r, 401, "unauthorized");
	resp_free(&r);
	req_unix(&bd, "GET", "/gateway/status", key_read, NULL, 0, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	resp_free(&r);
	req_unix(&bd, "GET", "/gateway/status", bearer, NULL, 0, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	resp_free(&r);
	/* read key on a trade route */
	req_unix(&bd, "POST", "/iserver/account/DU1/orders", key_read, "{}", 2,
	    &r);
	assert_error(&r, 403, "forbidden");
	resp_free(&r);
	req_unix(&bd, "POST", "/gateway/reauthenticate", key_read, "", 0, &r);
	assert_error(&r, 403, "forbidden");
	resp_free(&r);
}

Test(server, key_never_logged)
{
	struct resp	 r;

	req_unix(&bd, "GET", "/gateway/status", key_all, NULL, 0, &r);
	resp_free(&r);
	req_unix(&bd, "GET", "/gateway/status", key_bad, NULL, 0, &r);
	resp_free(&r);
	cr_assert(brokerd_log_has(&bd, "key:test"));
	cr_assert(!brokerd_log_has(&bd, TEST_KEY));
	cr_assert(!brokerd_log_has(&bd, "not-the-key-at-all"));
}

Test(server, routes_404_405)
{
	struct resp	 r;

	req_unix(&bd, "GET", "/nowhere/at/all", key_all, NULL, 0, &r);
	assert_error(&r, 404, "no_route");
	resp_free(&r);
	req_unix(&bd, "GET", "/logout", key_all, NULL, 0, &r);
	assert_error(&r, 404, "no_route");
	resp_free(&r);
	req_unix(&bd, "DELETE", "/trsrv/stocks", key_all, NULL, 0, &r);
	assert_error(&r, 405, "method_not_allowed");
	resp_free(&r);
	req_unix(&bd, "POST", "/health", NULL, "", 0, &r);
	assert_error(&r, 405, "method_not_allowed");
	resp_free(&r);
}

Test(server, routed_without_gateway_is_502)
{
	struct resp	 r;

	req_unix(&bd, "GET", "/trsrv/stocks?symbols=AAPL", key_all, NULL, 0,
	    &r);
	cr_assert_eq(r.status, 502, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "\"error\":\"gateway_unreachable\"") != NULL);
	resp_free(&r);
	/* the /v1/api drop-in form reaches the same route */
	req_unix(&bd, "GET", "/v1/api/trsrv/stocks?symbols=AAPL", key_all,
	    NULL, 0, &r);
	cr_assert_eq(r.status, 502, "%ld %s", r.status, r.body);
	resp_free(&r);
}

Test(server, body_too_large_413)
{
	struct resp	 r;
	char		 body[4096];

	memset(body, 'a', sizeof(body));
	req_unix(&bd, "POST", "/iserver/account/DU1/orders", key_all, body,
	    sizeof(body), &r);
	assert_error(&r, 413, "body_too_large");
	resp_free(&r);
}

Test(server, headers_too_large_431)
{
	char	 req[8192], out[4096];
	int	 n;

	n = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\nHost: x\r\n"
	    "X-Pad: %04000d\r\n\r\n", 0);
	cr_assert_gt(raw_unix(bd.sock, req, (size_t)n, out, sizeof(out), 2000),
	    0);
	cr_assert(strncmp(out, "HTTP/1.1 431 ", 13) == 0, "%s", out);
	cr_assert(strstr(out, "\"error\":\"headers_too_large\"") != NULL);
}

Test(server, header_timeout_408)
{
	static const char part[] = "GET /health HTTP/1.1\r\nHost: x\r\n";
	char		 out[2048];
	double		 t0 = mono_s();

	cr_assert_gt(raw_unix(bd.sock, part, sizeof(part) - 1, out,
	    sizeof(out), 3000), 0);
	cr_assert(strncmp(out, "HTTP/1.1 408 ", 13) == 0, "%s", out);
	cr_assert(strstr(out, "\"error\":\"request_timeout\"") != NULL);
	cr_assert(strstr(out, "Connection: close") != NULL);
	cr_assert_lt(mono_s() - t0, 2.0);
}

Test(server, slow_drip_does_not_extend_the_deadline)
{
	static const char part[] = "GET /health HTTP/1.1\r\nX-A: b\r\n";
	char		 out[2048];
	size_t		 i, n = 0;
	int		 fd;
	double		 t0 = mono_s();
	ssize_t		 r;

	cr_assert_neq(fd = connect_unix(bd.sock), -1);
	for (i = 0; i < sizeof(part) - 1 && mono_s() - t0 < 1.5; i++) {
		if (send(fd, &part[i], 1, MSG_NOSIGNAL) != 1)
			break;
		sleep_ms(50);
	}
	while ((r = recv(fd, out + n, sizeof(out) - 1 - n, 0)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(fd);
	cr_assert(strncmp(out, "HTTP/1.1 408 ", 13) == 0, "%s", out);
	cr_assert_lt(mono_s() - t0, 2.5);
}

Test(server, pipelined_answers_in_order)
{
	static const char reqs[] =
	    "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /nope HTTP/1.1\r\nHost: x\r\nX-Bridge-Key: " TEST_KEY "\r\n\r\n"
	    "GET /gateway/auth-status HTTP/1.1\r\nHost: x\r\n"
	    "Connection: close\r\n\r\n";
	char		 out[8192];
	char		*a, *b, *c;

	cr_assert_gt(raw_unix(bd.sock, reqs, sizeof(reqs) - 1, out,
	    sizeof(out), 3000), 0);
	cr_assert_eq(count_responses(out, strlen(out)), 3, "%s", out);
	a = strstr(out, "HTTP/1.1 200");
	b = strstr(out, "HTTP/1.1 404");
	c = strstr(a != NULL ? a + 1 : out, "HTTP/1.1 200");
	cr_assert(a != NULL && b != NULL && c != NULL, "%s", out);
	cr_assert(a < b && b < c, "out of order: %s", out);
	cr_assert(strstr(c, "\"state\":") != NULL);
}

Test(server, head_is_get_without_a_body)
{
	static const char req[] = "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	char		 out[4096];
	const char	*second;

	cr_assert_gt(raw_unix(bd.sock, req, sizeof(req) - 1, out, sizeof(out),
	    2000), 0);
	cr_assert(strncmp(out, "HTTP/1.1 200 ", 13) == 0, "%s", out);
	cr_assert(strstr(out, "Content-Length: 34\r\n") != NULL, "%s", out);
	/* no body after the HEAD's head: the next bytes are the GET's answer */
	second = strstr(out, "\r\n\r\n");
	cr_assert_not_null(second);
	cr_assert(strncmp(second + 4, "HTTP/1.1 200 ", 13) == 0, "%s", out);
	cr_assert(strstr(second + 4, "{\"status\":\"ok\"") != NULL);
}

Test(server, keep_alive_reuses_the_connection)
{
	CURL		*c;
	long		 n1 = -1, n2 = -1, code = 0;
	FILE		*null = fopen("/dev/null", "w");

	c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, "http://localhost/health");
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, bd.sock);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, null);
	cr_assert_eq(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &n1);
	cr_assert_eq(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &n2);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	fclose(null);
	cr_assert_eq(n1, 1);
	cr_assert_eq(n2, 0, "second request opened a new connection");
	cr_assert_eq(code, 200);
}

Test(server, thousand_requests_on_one_connection)
{
	static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
	char		 out[4096];
	int		 fd, i, got = 0;
	size_t		 n;
	ssize_t		 r;
	const char	*p;

	cr_assert_neq(fd = connect_unix(bd.sock), -1);
	for (i = 0; i < 1000; i++) {
		cr_assert_eq(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL),
		    (ssize_t)(sizeof(req) - 1));
		n = 0;
		/* one whole answer: head plus its 34-byte body */
		while ((p = strstr(out, "\r\n\r\n")) == NULL || n <
		    (size_t)(p - out) + 4 + 34) {
			r = recv(fd, out + n, sizeof(out) - 1 - n, 0);
			cr_assert_gt(r, 0, "connection closed at request %d", i);
			n += (size_t)r;
			out[n] = '\0';
		}
		if (strncmp(out, "HTTP/1.1 200 ", 13) == 0)
			got++;
		out[0] = '\0';
	}
	close(fd);
	cr_assert_eq(got, 1000);
}

/*
 * brokerd's end of the TCP connection whose client end is fd, copied with
 * pidfd_getfd(2) so that its socket options can be read.  -1: not found;
 * -2: this kernel or these privileges do not let us look.
 */
static int
server_end(pid_t pid, int fd, int port)
{
	struct sockaddr_in	 mine, peer, local;
	socklen_t		 len = sizeof(mine);
	char			 dir[64];
	DIR			*d;
	struct dirent		*e;
	int			 pfd, sfd, found = -1, looked = 0;

	if (getsockname(fd, (struct sockaddr *)&mine, &len) == -1)
		return (-1);
	if ((pfd = (int)syscall(SYS_pidfd_open, pid, 0)) == -1)
		return (-2);
	snprintf(dir, sizeof(dir), "/proc/%ld/fd", (long)pid);
	if ((d = opendir(dir)) == NULL) {
		close(pfd);
		return (-1);
	}
	while (found == -1 && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		sfd = (int)syscall(SYS_pidfd_getfd, pfd, atoi(e->d_name), 0);
		if (sfd == -1)
			continue;
		looked = 1;
		len = sizeof(peer);
		if (getpeername(sfd, (struct sockaddr *)&peer, &len) == 0 &&
		    peer.sin_family == AF_INET &&
		    peer.sin_port == mine.sin_port &&
		    (len = sizeof(local), getsockname(sfd,
		    (struct sockaddr *)&local, &len)) == 0 &&
		    ntohs(local.sin_port) == port)
			found = sfd;
		else
			close(sfd);
	}
	closedir(d);
	close(pfd);
	return (looked ? found : -2);
}

/*
 * Answers leave in pieces (a streamed head, then chunks): with Nagle on,
 * a piece waits for the client's delayed ACK of the one before.
 */
Test(server, tcp_clients_get_tcp_nodelay)
{
	static const char req[] = "GET /health HTTP/1.1\r\nHost: localhost"
	    "\r\n\r\n";
	char		 out[512];
	int		 fd, sfd, on = 0;
	socklen_t	 len = sizeof(on);

	cr_assert_neq(fd = connect_tcp(bd.tcp_port), -1);
	cr_assert_eq(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL),
	    (ssize_t)(sizeof(req) - 1));
	cr_assert_gt(recv(fd, out, sizeof(out), 0), 0);	/* accepted */
	sfd = server_end(bd.pid, fd, bd.tcp_port);
	if (sfd == -2) {
		close(fd);
		cr_skip_test("pidfd_getfd(2) is not allowed here");
	}
	cr_assert_neq(sfd, -1, "brokerd's end of the connection not found");
	cr_assert_eq(getsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
	cr_assert_neq(on, 0, "TCP_NODELAY is off on an accepted client");
	close(sfd);
	close(fd);
}

Test(server, smuggling_and_framing_errors_close)
{
	static const char *const bad[] = {
	    "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	    "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
	    "Content-Length: 4\r\n\r\nabcd",
	    "GET /health HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n",
	    "GET /health HTTP/1.1\r\nHost : x\r\n\r\n",
	    "GET /health HTTP/1.1\nHost: x\n\n",
	    "GET /health HTTP/1.1\r\n\r\n",
	    "GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
	    "POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
	    "\r\nzz\r\n",
	    NULL
	};
	char	 out[4096], tail[256];
	size_t	 i;
	int	 n;

	for (i = 0; bad[i] != NULL; i++) {
		/* a second, valid request rides behind: it must not run */
		n = snprintf(tail, sizeof(tail), "%sGET /health HTTP/1.1\r\n"
		    "Host: x\r\n\r\n", bad[i]);
		cr_assert_gt(raw_unix(bd.sock, tail, (size_t)n, out,
		    sizeof(out), 2000), 0, "case %zu", i);
		cr_assert(strncmp(out, "HTTP/1.1 400 ", 13) == 0,
		    "case %zu: %s", i, out);
		cr_assert(strstr(out, "Connection: close") != NULL);
		cr_assert_eq(count_responses(out, strlen(out)), 1,
		    "case %zu answered the smuggled request: %s", i, out);
	}
}

Test(server, unknown_transfer_coding_501)
{
	static const char req[] = "POST /health HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: gzip\r\n\r\n";
	char	 out[2048];

	cr_assert_gt(raw_unix(bd.sock, req, sizeof(req) - 1, out, sizeof(out),
	    2000), 0);
	cr_assert(strncmp(out, "HTTP/1.1 501 ", 13) == 0, "%s", out);
}

Test(server, garbage_leaves_the_daemon_alive)
{
	char	 junk[3000], out[2048];
	struct resp r;
	size_t	 i;

	srand(7);
	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(rand() & 0xff);
	raw_unix(bd.sock, junk, sizeof(junk), out, sizeof(out), 1000);
	raw_tcp(bd.tcp_port, junk, sizeof(junk), out, sizeof(out), 1000);
	raw_unix(bd.sock, "\x16\x03\x01\x02\x00", 5, out, sizeof(out), 500);
	cr_assert_eq(req_unix(&bd, "GET", "/health", NULL, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
}

Test(server, dns_rebinding_421_on_tcp)
{
	static const char *const evil[] = { "Host: evil.example:8000", NULL };
	static const char *const good[] = { "Host: localhost:1234", NULL };
	struct resp	 r;

	req_tcp(&bd, "GET", "/health", evil, NULL, 0, &r);
	assert_error(&r, 421, "misdirected_request");
	cr_assert(strstr(r.headers, "Access-Control") == NULL);
	resp_free(&r);
	req_tcp(&bd, "GET", "/health", good, NULL, 0, &r);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
}

Test(server, expect_100_continue)
{
	static const char head[] = "POST /gateway/trading HTTP/1.1\r\n"
	    "Host: x\r\nX-Bridge-Key: " TEST_KEY "\r\nContent-Type: "
	    "application/json\r\nContent-Length: 17\r\n"
	    "Expect: 100-continue\r\nConnection: close\r\n\r\n";
	char	 out[4096];
	size_t	 n = 0;
	ssize_t	 r;
	int	 fd;

	cr_assert_neq(fd = connect_unix(bd.sock), -1);
	cr_assert_eq(send(fd, head, sizeof(head) - 1, 0),
	    (ssize_t)(sizeof(head) - 1));
	r = recv(fd, out, sizeof(out) - 1, 0);
	cr_assert_gt(r, 0);
	out[r] = '\0';
	cr_assert(strncmp(out, "HTTP/1.1 100 Continue", 21) == 0, "%s", out);
	cr_assert_eq(send(fd, "{\"enabled\":false}", 17, 0), 17);
	while ((r = recv(fd, out + n, sizeof(out) - 1 - n, 0)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(fd);
	cr_assert(strstr(out, "HTTP/1.1 200 ") != NULL, "%s", out);
	cr_assert(access(bd.halt, F_OK) == 0, "halt file not created");
}

Test(server, halt_file_blocks_trade_scope)
{
	struct resp	 r;
	FILE		*f = fopen(bd.halt, "w");

	cr_assert_not_null(f);
	fclose(f);
	req_unix(&bd, "POST", "/iserver/account/DU1/orders", key_all, "{}", 2,
	    &r);
	assert_error(&r, 423, "trading_halted");
	resp_free(&r);
	req_unix(&bd, "POST", "/gateway/trading", key_read,
	    "{\"enabled\":true}", 16, &r);
	assert_error(&r, 403, "forbidden");
	resp_free(&r);
	req_unix(&bd, "POST", "/gateway/trading", key_all,
	    "{\"enabled\":true}", 16, &r);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	cr_assert_neq(access(bd.halt, F_OK), 0);
}

/*
 * The kill switch must not answer 200 when the halt file cannot be made:
 * the caller would believe trading stopped while orders still go.
 */
Test(lifecycle, kill_switch_that_cannot_halt_is_an_error, .timeout = 30)
{
	struct brokerd	 b;
	struct resp	 r;
	char		 extra[600];

	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, NULL, NULL), 0);
	snprintf(extra, sizeof(extra), "trading: { halt_file: %s/no/such/"
	    "folder/halt }\n", b.dir);
	cr_assert_eq(brokerd_start(&b, NULL, extra), 0);
	req_unix(&b, "POST", "/gateway/trading", key_all,
	    "{\"enabled\":false}", 17, &r);
	assert_error(&r, 500, "internal_error");
	cr_assert(strstr(r.body, "halt") != NULL, "%s", r.body);
	resp_free(&r);
	cr_assert(!brokerd_log_has(&b, "trading halted by"),
	    "the log says trading halted");
	brokerd_stop(&b);
}

/* ------------------------------------------------------------------ */

Test(lifecycle, peers_by_uid, .timeout = 30)
{
	struct brokerd	 b;
	struct resp	 r;
	struct passwd	*pw = getpwuid(getuid());
	char		 extra[256];

	cr_assert_not_null(pw);
	snprintf(extra, sizeof(extra), "peers:\n  - { user: %s, scopes: "
	    "[read] }\n", pw->pw_name);
	cr_assert_eq(brokerd_start(&b, NULL, extra), 0);
	req_unix(&b, "GET", "/gateway/status", NULL, NULL, 0, &r);
	cr_assert_eq(r.status, 200, "peer not trusted: %s", r.body);
	resp_free(&r);
	req_unix(&b, "POST", "/iserver/account/DU1/orders", NULL, "{}", 2, &r);
	cr_assert_eq(r.status, 403, "%s", r.body);
	resp_free(&r);
	/* the uid is trusted on the Unix socket only, never on TCP */
	req_tcp(&b, "GET", "/gateway/status", NULL, NULL, 0, &r);
	cr_assert_eq(r.status, 401);
	resp_free(&r);
	brokerd_stop(&b);
}

Test(lifecycle, stale_socket_replaced_live_socket_refused, .timeout = 30)
{
	struct brokerd	 a, b;
	char		 extra[512];

	cr_assert_eq(brokerd_start(&a, NULL, NULL), 0);
	/* a second daemon on the same path must refuse */
	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, NULL, NULL), 0);
	snprintf(extra, sizeof(extra), "listen:\n  unix: { path: %s, group: "
	    "null }\n", a.sock);
	cr_assert_eq(brokerd_write_conf(&b, NULL, extra), 0);
	cr_assert_eq(brokerd_spawn(&b, NULL), -1, "second brokerd started");
	cr_assert_eq(b.exit_status, 1);
	cr_assert(brokerd_log_has(&b, "already running"));
	/* kill -9 leaves a stale socket file: the next start replaces it */
	kill(a.pid, SIGKILL);
	brokerd_wait(&a, 2000);
	cr_assert_eq(access(a.sock, F_OK), 0);
	cr_assert_eq(brokerd_spawn(&b, NULL), 0, "stale socket not replaced");
	cr_assert(brokerd_log_has(&b, "removed stale socket"));
	brokerd_stop(&b);
	brokerd_stop(&a);
}

Test(lifecycle, sigterm_removes_socket_and_exits_0, .timeout = 30)
{
	struct brokerd	 b;
	char		*st;

	cr_assert_eq(brokerd_start(&b, NULL, NULL), 0);
	cr_assert_eq(access(b.sock, F_OK), 0);
	brokerd_signal(&b, SIGTERM);
	cr_assert_eq(brokerd_wait(&b, 5000), 0);
	cr_assert_eq(b.exit_status, 0);
	cr_assert_neq(access(b.sock, F_OK), 0, "socket left behind");
	st = slurp(b.status, NULL);
	cr_assert_not_null(st);
	cr_assert(strstr(st, "BROKERD_STATE=stopped\n") != NULL, "%s", st);
	cr_assert(strstr(st, "BROKERD_AUTHENTICATED=0\n") != NULL, "%s", st);
	cr_assert(strstr(st, "BROKERD_CONNECTED=0\n") != NULL, "%s", st);
	free(st);
	brokerd_stop(&b);
}

/*
 * A reload that moves listen.unix.path takes effect at the next restart:
 * the socket brokerd listens on is still the old one, so SIGTERM must
 * remove that one and leave whatever lives at the new path alone.
 */
Test(lifecycle, sigterm_after_a_path_reload_removes_its_own_socket,
    .timeout = 30)
{
	struct brokerd	 b;
	char		 other[400], extra[600];
	FILE		*f;
	int		 i;

	cr_assert_eq(brokerd_start(&b, NULL, NULL), 0);
	snprintf(other, sizeof(other), "%s/other.sock", b.dir);
	cr_assert_not_null(f = fopen(other, "w"));
	fclose(f);
	snprintf(extra, sizeof(extra), "listen:\n  unix: { path: %s, "
	    "mode: \"0660\", group: null }\n", other);
	cr_assert_eq(brokerd_write_conf(&b, NULL, extra), 0);
	brokerd_signal(&b, SIGHUP);
	for (i = 0; i < 100 && !brokerd_log_has(&b, "configuration reloaded");
	    i++)
		sleep_ms(50);
	cr_assert(brokerd_log_has(&b, "configuration reloaded"));
	brokerd_signal(&b, SIGTERM);
	cr_assert_eq(brokerd_wait(&b, 5000), 0);
	cr_assert_eq(b.exit_status, 0);
	cr_assert_neq(access(b.sock, F_OK), 0, "the listening socket was "
	    "left behind");
	cr_assert_eq(access(other, F_OK), 0, "the file at the reloaded path "
	    "was removed");
	brokerd_stop(&b);
}

/* Write extra, SIGHUP, wait for the n-th "configuration reloaded". */
static void
reload_with(struct brokerd *b, const char *extra, int n)
{
	int	 i;

	cr_assert_eq(brokerd_write_conf(b, NULL, extra), 0);
	brokerd_signal(b, SIGHUP);
	for (i = 0; i < 100 &&
	    brokerd_log_count(b, "configuration reloaded") < n; i++)
		sleep_ms(50);
	cr_assert_eq(brokerd_log_count(b, "configuration reloaded"), n);
}

/*
 * A reload that changes listen.unix.mode or listen.unix.group is not
 * applied to the live socket: it says so, as for the addresses.
 */
Test(lifecycle, reload_of_socket_mode_or_group_warns, .timeout = 30)
{
	struct brokerd	 b;
	struct group	*gr;
	struct stat	 st;
	char		 extra[600];

	cr_assert_eq(brokerd_start(&b, NULL, NULL), 0);
	cr_assert_not_null(gr = getgrgid(getegid()));
	snprintf(extra, sizeof(extra), "listen:\n  unix: { path: %s, "
	    "mode: \"0600\", group: null }\n  tcp: 127.0.0.1:0\n", b.sock);
	reload_with(&b, extra, 1);
	cr_assert(brokerd_log_has(&b, "reload: listen.unix.mode changed "
	    "(0660 to 0600); it takes effect at the next restart"));
	cr_assert(!brokerd_log_has(&b, "listen addresses changed"));
	cr_assert_eq(stat(b.sock, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0660, "the live socket is %04o",
	    st.st_mode & 07777);
	snprintf(extra, sizeof(extra), "listen:\n  unix: { path: %s, "
	    "mode: \"0600\", group: %s }\n  tcp: 127.0.0.1:0\n", b.sock,
	    gr->gr_name);
	reload_with(&b, extra, 2);
	cr_assert(brokerd_log_has(&b, "reload: listen.unix.group changed; "
	    "it takes effect at the next restart"));
	cr_assert_eq(brokerd_log_count(&b, "listen.unix.mode changed"), 1);
	brokerd_stop(&b);
}

Test(lifecycle, sighup_swaps_keys_and_keeps_old_on_error, .timeout = 30)
{
	struct brokerd	 b;
	struct resp	 r;
	static const char *const newkey[] = {
	    "X-Bridge-Key: fresh-key-fresh-key-fresh-key-01", NULL };
	FILE		*f;
	char		*conf;

	cr_assert_eq(brokerd_start(&b, NULL, NULL), 0);
	/* an invalid file: logged, the running configuration stays */
	conf = slurp(b.conf, NULL);
	f = fopen(b.conf, "w");
	fputs("listen: [oops\n", f);
	fclose(f);
	brokerd_signal(&b, SIGHUP);
	sleep_ms(300);
	req_unix(&b, "GET", "/gateway/status", key_all, NULL, 0, &r);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	cr_assert(brokerd_log_has(&b, "reload failed"));
	/* a valid one with another key */
	f = fopen(b.conf, "w");
	fputs(conf, f);
	fputs("", f);
	fclose(f);
	free(conf);
	cr_assert_eq(brokerd_write_conf(&b, NULL, "keys:\n  - { name: fresh, "
	    "key: \"fresh-key-fresh-key-fresh-key-01\", scopes: [read] }\n"),
	    0);
	brokerd_signal(&b, SIGHUP);
	sleep_ms(300);
	req_unix(&b, "GET", "/gateway/status", key_all, NULL, 0, &r);
	cr_assert_eq(r.status, 401, "old key still works");
	resp_free(&r);
	req_unix(&b, "GET", "/gateway/status", newkey, NULL, 0, &r);
	cr_assert_eq(r.status, 200, "new key refused: %s", r.body);
	resp_free(&r);
	brokerd_stop(&b);
}

/* One whole answer (head and its Content-Length body) from fd into out. */
static void
read_answer(int fd, char *out, size_t cap)
{
	const char	*p, *cl;
	size_t		 n = 0, body = 0;
	ssize_t		 r;

	out[0] = '\0';
	while ((p = strstr(out, "\r\n\r\n")) == NULL ||
	    n < (size_t)(p - out) + 4 + body) {
		cr_assert_lt(n, cap - 1, "answer too large");
		r = recv(fd, out + n, cap - 1 - n, 0);
		cr_assert_gt(r, 0, "connection closed");
		n += (size_t)r;
		out[n] = '\0';
		if ((p = strstr(out, "\r\n\r\n")) != NULL &&
		    (cl = strcasestr(out, "Content-Length: ")) != NULL &&
		    cl < p)
			body = (size_t)strtoul(cl + 16, NULL, 10);
	}
}

/*
 * A kept-alive connection's key is remembered between its requests; a
 * reload that removes the key must still refuse its next request.
 */
Test(lifecycle, sighup_refuses_a_removed_key_on_an_open_connection,
    .timeout = 30)
{
	struct brokerd	 b;
	static const char req[] = "GET /gateway/status HTTP/1.1\r\n"
	    "Host: x\r\nX-Bridge-Key: " TEST_KEY "\r\n\r\n";
	char		 out[16384];
	int		 fd, i;

	cr_assert_eq(brokerd_start(&b, NULL, NULL), 0);
	cr_assert_neq(fd = connect_unix(b.sock), -1);
	for (i = 0; i < 3; i++) {
		cr_assert_eq(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL),
		    (ssize_t)(sizeof(req) - 1));
		read_answer(fd, out, sizeof(out));
		cr_assert(strncmp(out, "HTTP/1.1 200 ", 13) == 0, "%.60s",
		    out);
	}
	cr_assert_eq(brokerd_write_conf(&b, NULL, "keys:\n  - { name: fresh, "
	    "key: \"fresh-key-fresh-key-fresh-key-01\", scopes: [read] }\n"),
	    0);
	brokerd_signal(&b, SIGHUP);
	for (i = 0; i < 100 && !brokerd_log_has(&b, "configuration reloaded");
	    i++)
		sleep_ms(50);
	cr_assert(brokerd_log_has(&b, "configuration reloaded"));
	cr_assert_eq(send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL),
	    (ssize_t)(sizeof(req) - 1));
	read_answer(fd, out, sizeof(out));
	cr_assert(strncmp(out, "HTTP/1.1 401 ", 13) == 0,
	    "the removed key still works on the open connection: %.60s", out);
	close(fd);
	brokerd_stop(&b);
}

Test(lifecycle, max_connections, .timeout = 30)
{
	struct brokerd	 b;
	int		 fds[3], i;
	char		 out[1024];

	cr_assert_eq(brokerd_start(&b, NULL,
	    "limits:\n  max_connections: 2\n"), 0);
	for (i = 0; i < 2; i++)
		cr_assert_neq(fds[i] = connect_unix(b.sock), -1);
	sleep_ms(100);
	cr_assert_gt(raw_unix(b.sock, "", 0, out, sizeof(out), 2000), 0);
	cr_assert(strncmp(out, "HTTP/1.1 503 ", 13) == 0, "%s", out);
	for (i = 0; i < 2; i++)
		close(fds[i]);
	sleep_ms(100);
	fds[2] = 0;
	brokerd_stop(&b);
}

/* ------------------------------------------------------------------ */

Test(cli, version_and_check, .timeout = 30)
{
	struct brokerd	 b;
	char		 out[4096];
	char		*argv[] = { "brokerd", "-V", NULL };
	char		*argt[] = { "brokerd", "-t", "-c", NULL, NULL };

	cr_assert_eq(brokerd_run(argv, out, sizeof(out)), 0);
	cr_assert(strncmp(out, "brokerd ", 8) == 0, "%s", out);

	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, NULL, NULL), 0);
	argt[3] = b.conf;
	cr_assert_eq(brokerd_run(argt, out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, "is ok") != NULL, "%s", out);

	cr_assert_eq(brokerd_write_conf(&b, NULL,
	    "limits:\n  queue_ms: soon\n"), 0);
	cr_assert_eq(brokerd_run(argt, out, sizeof(out)), 1, "%s", out);
	cr_assert(strstr(out, "brokerd.yaml:") != NULL, "%s", out);
	cr_assert(strstr(out, "queue_ms") != NULL, "%s", out);

	cr_assert_eq(brokerd_write_conf(&b, NULL, "listen:\n  tcp: "
	    "0.0.0.0:8000\n"), 0);
	cr_assert_eq(brokerd_run(argt, out, sizeof(out)), 1, "%s", out);
	cr_assert(strstr(out, "loopback") != NULL, "%s", out);
	brokerd_stop(&b);
}

Test(cli, key_file_must_be_private, .timeout = 30)
{
	struct brokerd	 b;
	char		 out[4096], kf[400], extra[512];
	char		*argt[] = { "brokerd", "-t", "-c", NULL, NULL };
	FILE		*f;

	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, NULL, NULL), 0);
	snprintf(kf, sizeof(kf), "%s/key", b.dir);
	f = fopen(kf, "w");
	fputs("secret-secret-secret-secret\n", f);
	fclose(f);
	chmod(kf, 0644);
	snprintf(extra, sizeof(extra), "keys:\n  - { name: f, key_file: %s, "
	    "scopes: [read] }\n", kf);
	cr_assert_eq(brokerd_write_conf(&b, NULL, extra), 0);
	argt[3] = b.conf;
	cr_assert_eq(brokerd_run(argt, out, sizeof(out)), 1, "%s", out);
	cr_assert(strstr(out, kf) != NULL && strstr(out, "644") != NULL, "%s",
	    out);
	cr_assert(strstr(out, "secret-secret") == NULL);
	chmod(kf, 0600);
	cr_assert_eq(brokerd_run(argt, out, sizeof(out)), 0, "%s", out);
	brokerd_stop(&b);
}

Test(cli, bad_arguments, .timeout = 10)
{
	char	 out[2048];
	char	*a1[] = { "brokerd", "-Z", NULL };
	char	*a2[] = { "brokerd", "-c", "/nonexistent/brokerd.yaml", "-t",
	    NULL };

	cr_assert_eq(brokerd_run(a1, out, sizeof(out)), 1);
	cr_assert(strstr(out, "usage") != NULL, "%s", out);
	cr_assert_eq(brokerd_run(a2, out, sizeof(out)), 1);
	cr_assert(strstr(out, "/nonexistent/brokerd.yaml") != NULL, "%s", out);
}
