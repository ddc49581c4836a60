/*
 * Configuration lifetime: every SIGHUP retires a configuration, and a
 * retired one must be freed once nothing holds it any more, while a
 * request still in flight keeps its old route until it ends.  A real
 * brokerd is reloaded 200 times with a large route table; two slow calls
 * through a route the reloads remove span several of them.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

#define RL_RELOADS	200
#define RL_FILLER	100	/* routes: a configuration of some size */
#define RL_DELAY_MS	4000	/* the simulator holds the slow calls */
#define RL_HELD		5	/* reloads while they wait */
#define RL_SLACK_KB	1024

static struct gwsim	 gw;
static struct brokerd	 bd;

static void
setup(void)
{
	cr_assert_eq(gwsim_start(&gw, "self"), 0, "gwsim did not start");
}

static void
teardown(void)
{
	brokerd_stop(&bd);
	gwsim_stop(&gw);
}

TestSuite(reload, .init = setup, .fini = teardown, .timeout = 180);

/*
 * The configuration of reload n (0: the first start): a comment that
 * differs each time, so that every reload parses a new file; /old/ only
 * at the start.
 */
static char *
reload_yaml(int n)
{
	FILE	*f;
	char	*s = NULL;
	size_t	 len, i;

	cr_assert_not_null(f = open_memstream(&s, &len));
	fprintf(f, "# reload %d\ngateway:\n  url: %s\n  tls: { pin_sha256: "
	    "\"%s\" }\n  timeout_ms: %d\nroutes:\n", n, gw.url, gw.fingerprint,
	    RL_DELAY_MS * 3);
	if (n == 0)
		fputs("  - { prefix: /old/, to: /v1/api/trsrv/, methods: "
		    "{ GET: read }, concurrency: 4 }\n", f);
	fputs("  - { prefix: /trsrv/, to: /v1/api/trsrv/, methods: "
	    "{ GET: read } }\n", f);
	for (i = 0; i < RL_FILLER; i++)
		fprintf(f, "  - { prefix: /filler/%03zu/, to: /v1/api/filler/"
		    "%03zu/, methods: { GET: read, POST: trade }, rate: 5/s "
		    "}\n", i, i);
	fclose(f);
	return (s);
}

/* Write reload n's file, SIGHUP, wait until brokerd says it took it. */
static void
reload(int n)
{
	char	*y = reload_yaml(n);
	double	 deadline = mono_s() + 10;

	cr_assert_eq(brokerd_write_conf(&bd, &gw, y), 0);
	free(y);
	cr_assert_eq(brokerd_signal(&bd, SIGHUP), 0);
	while (brokerd_log_count(&bd, "configuration reloaded") < n) {
		cr_assert(mono_s() < deadline, "reload %d not taken", n);
		cr_assert(!brokerd_log_has(&bd, "reload failed"),
		    "reload %d failed", n);
		sleep_ms(2);
	}
}

/* A GET through /old/ on its own connection; the answer is read later. */
static int
slow_send(const char *extra)
{
	char	 req[512];
	int	 fd, len;

	cr_assert_neq(fd = connect_unix(bd.sock), -1);
	len = snprintf(req, sizeof(req), "GET /old/stocks?symbols=AAPL "
	    "HTTP/1.1\r\nHost: localhost\r\nX-Bridge-Key: %s\r\n%s"
	    "Connection: close\r\n\r\n", TEST_KEY, extra);
	cr_assert_eq(send(fd, req, (size_t)len, MSG_NOSIGNAL), len);
	return (fd);
}

/* Has anything of an answer arrived? */
static int
slow_ready(int fd)
{
	struct pollfd	 pfd = { fd, POLLIN, 0 };

	return (poll(&pfd, 1, 0) == 1);
}

/* The whole answer (brokerd closes after it); its status line checked. */
static void
slow_answer(int fd, const char *what)
{
	char		 b[8192];
	size_t		 n = 0;
	ssize_t		 r;
	struct pollfd	 pfd = { fd, POLLIN, 0 };

	while (n < sizeof(b) - 1 && poll(&pfd, 1, RL_DELAY_MS * 3) == 1 &&
	    (r = recv(fd, b + n, sizeof(b) - 1 - n, 0)) > 0)
		n += (size_t)r;
	b[n] = '\0';
	close(fd);
	cr_assert(strncmp(b, "HTTP/1.1 200 ", 13) == 0, "%s: %s", what, b);
	cr_assert(strstr(b, "AAPL") != NULL, "%s: %s", what, b);
}

Test(reload, two_hundred_sighups_free_what_nothing_holds)
{
	struct resp	 r;
	char		*y, json[128];
	long		 rss1, rss200;
	int		 shared, alone, n;

	y = reload_yaml(0);
	cr_assert_eq(brokerd_start(&bd, &gw, y), 0, "brokerd did not start");
	free(y);
	snprintf(json, sizeof(json), "{\"delay_ms\":%d,\"paths\":"
	    "[\"/trsrv/\"]}", RL_DELAY_MS);
	cr_assert_eq(gwsim_ctl(&gw, "POST", "/behaviour", json, NULL), 0);
	/* One through the shared GET (cache.c), one on its own request. */
	shared = slow_send("");
	alone = slow_send("Cache-Control: no-cache\r\n");
	sleep_ms(200);

	reload(1);
	rss1 = brokerd_rss_kb(&bd);
	cr_assert_eq(req_unix(&bd, "GET", "/old/stocks?symbols=AAPL",
	    (const char *const[]){ "X-Bridge-Key: " TEST_KEY, NULL }, NULL,
	    0, &r), 0);
	cr_assert_eq(r.status, 404, "/old/ still routed: %s", r.body);
	resp_free(&r);
	for (n = 2; n <= RL_HELD; n++)
		reload(n);
	cr_assert(!slow_ready(shared) && !slow_ready(alone),
	    "the slow calls were answered before %d reloads", RL_HELD);
	/* Their configuration is long retired: still their route. */
	slow_answer(shared, "shared GET");
	slow_answer(alone, "no-cache GET");

	for (; n <= RL_RELOADS; n++)
		reload(n);
	rss200 = brokerd_rss_kb(&bd);
	fprintf(stderr, "brokerd RSS: after the first reload %ld KiB, "
	    "after %d reloads %ld KiB\n", rss1, RL_RELOADS, rss200);
	cr_assert(rss1 > 0 && rss200 > 0);
	cr_assert_eq(req_unix(&bd, "GET", "/health", NULL, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	/* Under the sanitizer the reloads and slow calls ran all the same. */
	if (brokerd_sanitized(&bd)) {
		teardown();	/* a skip runs no .fini */
		cr_skip_test("brokerd runs under AddressSanitizer: its RSS is "
		    "the sanitizer's, not glibc's");
	}
	cr_assert_leq(rss200, rss1 + RL_SLACK_KB, "RSS after %d reloads %ld "
	    "KiB, after the first %ld KiB: retired configurations kept",
	    RL_RELOADS, rss200, rss1);
}
