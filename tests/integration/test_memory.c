/*
 * Memory after a burst: a real brokerd takes bursts of connections that
 * each send a request and stay open, then lose them all.  What it held for
 * them must go back to the system, not stay in its RSS.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

#define MEM_BURSTS	20
#define MEM_CONNS	2000	/* per burst, half on each listener */
#define MEM_BATCH	100	/* opened, then their answers read */
#define MEM_SLACK_KB	4096

static const char *const key_all[] = { "X-Bridge-Key: " TEST_KEY, NULL };

static struct brokerd bd;
static char pad[3000];		/* a larger head on some connections */

static void
start(void)
{
	struct rlimit	 rl;

	/* Two thousand sockets open at once, plus curl's and the harness'. */
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < MEM_CONNS + 256) {
		rl.rlim_cur = rl.rlim_max < MEM_CONNS + 256 ? rl.rlim_max :
		    MEM_CONNS + 256;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	cr_assert_eq(brokerd_start(&bd, NULL,
	    "limits:\n  max_connections: 4096\n"), 0, "brokerd did not start");
	memset(pad, 'a', sizeof(pad) - 1);
}

static void
stop(void)
{
	brokerd_stop(&bd);
}

/* brokerd_client_connections from /metrics (this request included). */
static long
open_connections(void)
{
	struct resp	 r;
	const char	*p;
	long		 n = -1;

	if (req_unix(&bd, "GET", "/metrics", key_all, NULL, 0, &r) == 0 &&
	    (p = strstr(r.body, "\nbrokerd_client_connections ")) != NULL)
		n = strtol(p + 28, NULL, 10);
	resp_free(&r);
	return (n);
}

/* Send one request on a new connection; every other one with a big head. */
static int
conn_open(int i)
{
	char	 req[4096];
	int	 fd, len;

	if (i % 2 == 0)
		fd = connect_unix(bd.sock);
	else
		fd = connect_tcp(bd.tcp_port);
	if (fd == -1)
		return (-1);
	len = snprintf(req, sizeof(req), "GET /health HTTP/1.1\r\n"
	    "Host: %s\r\nX-Pad: %s\r\n\r\n", i % 2 ? "127.0.0.1" : "localhost",
	    i % 4 < 2 ? "" : pad);
	if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
		close(fd);
		return (-1);
	}
	return (fd);
}

/* Read one whole answer (the /health body ends the first '}'). */
static int
conn_answer(int fd)
{
	char		 b[1024];
	size_t		 n = 0;
	ssize_t		 r;
	struct pollfd	 pfd = { fd, POLLIN, 0 };

	while (n < sizeof(b) - 1) {
		if (poll(&pfd, 1, 10000) != 1 ||
		    (r = recv(fd, b + n, sizeof(b) - 1 - n, 0)) <= 0)
			return (-1);
		n += (size_t)r;
		b[n] = '\0';
		if (strstr(b, "\r\n\r\n") != NULL && strchr(b, '}') != NULL)
			return (strncmp(b, "HTTP/1.1 200 ", 13) == 0 ? 0 : -1);
	}
	return (-1);
}

/* Open n kept-alive connections that were each answered once. */
static void
burst_open(int *fds, int n)
{
	int	 i, j;

	for (i = 0; i < n; i += MEM_BATCH) {
		for (j = i; j < n && j < i + MEM_BATCH; j++) {
			fds[j] = conn_open(j);
			cr_assert_neq(fds[j], -1, "connection %d", j);
		}
		for (j = i; j < n && j < i + MEM_BATCH; j++)
			cr_assert_eq(conn_answer(fds[j]), 0, "answer %d", j);
	}
}

static void
burst_close(int *fds, int n)
{
	int	 i;

	for (i = 0; i < n; i++)
		close(fds[i]);
}

/* Until brokerd has seen every close (the asking connection remains). */
static void
wait_closed(void)
{
	int	 i;

	for (i = 0; i < 500 && open_connections() != 1; i++)
		sleep_ms(20);
	cr_assert_eq(open_connections(), 1, "brokerd still holds connections");
}

TestSuite(memory, .init = start, .fini = stop, .timeout = 120);

Test(memory, rss_returns_after_bursts)
{
	static int	 fds[MEM_CONNS];
	struct resp	 r;
	long		 idle, at1000, after;
	int		 b;

	/* Warm up: the first request allocates what every one shares. */
	cr_assert_eq(req_unix(&bd, "GET", "/health", NULL, NULL, 0, &r), 0);
	resp_free(&r);
	wait_closed();
	idle = brokerd_rss_kb(&bd);

	burst_open(fds, 1000);
	at1000 = brokerd_rss_kb(&bd);
	burst_open(fds + 1000, MEM_CONNS - 1000);
	burst_close(fds, MEM_CONNS);
	for (b = 1; b < MEM_BURSTS; b++) {
		wait_closed();
		burst_open(fds, MEM_CONNS);
		burst_close(fds, MEM_CONNS);
	}
	wait_closed();
	after = brokerd_rss_kb(&bd);
	fprintf(stderr, "brokerd RSS: idle %ld KiB, 1000 connections %ld KiB, "
	    "after %d bursts of %d %ld KiB\n", idle, at1000, MEM_BURSTS,
	    MEM_CONNS, after);
	cr_assert(idle > 0 && at1000 > 0 && after > 0);
	/* The bursts ran under the sanitizer all the same. */
	if (brokerd_sanitized(&bd)) {
		stop();	/* a skip runs no .fini */
		cr_skip_test("brokerd runs under AddressSanitizer: its RSS is "
		    "the sanitizer's, not glibc's");
	}
	cr_assert_leq(after, idle + MEM_SLACK_KB, "RSS after the bursts %ld "
	    "KiB, idle %ld KiB: more than %d KiB kept", after, idle,
	    MEM_SLACK_KB);
}
