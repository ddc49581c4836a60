/*
 * Issue 6 end to end: brokerd between many clients and the Gateway
 * simulator, which answers 429 above 10 requests in any second and counts
 * every IBKR per-endpoint limit it sees broken (pacing_violations).  Pacing,
 * queueing, coalescing, the cache, the 429 breaker, fail-fast and the
 * metrics, all measured at the simulator's end.
 */
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <curl/curl.h>
#include <jansson.h>

#include "harness.h"

#define KEY_HDR		"X-Bridge-Key: " TEST_KEY
#define R_ACCOUNTS	"GET /v1/api/iserver/accounts"
#define R_PORTFOLIO	"GET /v1/api/portfolio/accounts"
#define R_AUTH		"GET /v1/api/iserver/auth/status"
#define R_STOCKS	"GET /v1/api/trsrv/stocks"
#define R_HISTORY	"GET /v1/api/iserver/marketdata/history"
#define R_TRADES	"GET /v1/api/iserver/account/trades"

static const char *const key_only[] = { KEY_HDR, NULL };
static const char *const key_nocache[] = { KEY_HDR, "Cache-Control: no-cache",
    NULL };

static struct gwsim gw;
static struct brokerd bd;

static void
setup(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
	cr_assert_eq(gwsim_start(&gw, "self"), 0, "gwsim did not start");
}

/* CPU-bound neighbours of the load tests, each in its own process group. */
static pid_t	 burners[2];

static void
burners_stop(void)
{
	size_t	 i;

	for (i = 0; i < sizeof(burners) / sizeof(burners[0]); i++) {
		if (burners[i] <= 0)
			continue;
		kill(-burners[i], SIGKILL);
		waitpid(burners[i], NULL, 0);
		burners[i] = 0;
	}
}

static void
teardown(void)
{
	burners_stop();
	brokerd_stop(&bd);
	gwsim_stop(&gw);
}

TestSuite(pacing, .init = setup, .fini = teardown, .timeout = 40);

/* ------------------------------------------------------------ helpers */

static json_t *
sim_json(const char *method, const char *path, const char *body)
{
	char	*out = NULL;
	json_t	*j;

	cr_assert_eq(gwsim_ctl(&gw, method, path, body, &out), 0,
	    "gwsim %s %s %s failed", method, path, body ? body : "");
	j = json_loads(out, 0, NULL);
	free(out);
	cr_assert_not_null(j, "gwsim %s: not JSON", path);
	return (j);
}

static void
sim_behaviour(const char *json)
{
	json_decref(sim_json("POST", "/behaviour", json));
}

static void
sim_state(const char *json)
{
	json_decref(sim_json("POST", "/state", json));
}

static json_t *
sim_counters(void)
{
	return (sim_json("GET", "/counters", NULL));
}

static long
route_count(const char *route)
{
	long	 n = gwsim_count(&gw, route);

	cr_assert_geq(n, 0, "gwsim counters");
	return (n);
}

/* The simulator's pacing_violations must be {}: printed if not. */
static void
assert_no_violations(json_t *c)
{
	json_t	*v = json_object_get(c, "pacing_violations");
	char	*s;

	cr_assert_not_null(v);
	if (json_object_size(v) != 0) {
		s = json_dumps(v, 0);
		cr_assert_fail("pacing_violations: %s", s);
	}
}

static void
start_bd(const char *extra)
{
	cr_assert_eq(brokerd_start(&bd, &gw, extra), 0,
	    "brokerd did not start; log in %s", bd.log);
}

/* A gateway section like the harness's, with extra lines. */
static void
gateway_yaml(char *out, size_t len, const char *more)
{
	int	 n;

	n = snprintf(out, len, "gateway:\n  url: %s\n  tls: { pin_sha256: "
	    "\"%s\" }\n  timeout_ms: 3000\n%s", gw.url, gw.fingerprint,
	    more != NULL ? more : "");
	cr_assert(n > 0 && (size_t)n < len);
}

static json_t *
bd_json(const char *path)
{
	struct resp	 r;
	json_t		*j;

	cr_assert_eq(req_unix(&bd, "GET", path, key_only, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200, "%s: %ld %s", path, r.status, r.body);
	j = json_loads(r.body, 0, NULL);
	cr_assert_not_null(j, "%s: not JSON: %s", path, r.body);
	resp_free(&r);
	return (j);
}

static int
bd_state_is(const char *state)
{
	json_t	*j = bd_json("/gateway/auth-status");
	int	 r;

	r = strcmp(json_string_value(json_object_get(j, "state")) ?: "",
	    state) == 0;
	json_decref(j);
	return (r);
}

static void
wait_state(const char *state, int ms)
{
	double	 deadline = mono_s() + ms / 1000.0;

	while (!bd_state_is(state)) {
		cr_assert(mono_s() < deadline, "state never became %s", state);
		sleep_ms(20);
	}
}

/* Wait for the session's first authentication and its two calls. */
static void
wait_ready(void)
{
	double	 deadline = mono_s() + 5;

	wait_state("authenticated", 5000);
	while (route_count(R_ACCOUNTS) < 1 || route_count(R_PORTFOLIO) < 1) {
		cr_assert(mono_s() < deadline, "the watcher's first calls "
		    "never came");
		sleep_ms(20);
	}
}

/* /gateway/status's SECTION.FIELD, an integer. */
static long
status_int(const char *section, const char *field)
{
	json_t	*j = bd_json("/gateway/status");
	long	 n;

	n = (long)json_integer_value(json_object_get(json_object_get(j,
	    section), field));
	json_decref(j);
	return (n);
}

static long
queued_now(void)
{
	return (status_int("rate", "queued"));
}

static int
header_int(const struct resp *r, const char *name)
{
	char	 v[64];

	if (resp_header(r, name, v, sizeof(v)) == -1)
		return (-1);
	return (atoi(v));
}

/* A local 429: rate_limited, with a Retry-After of at least a second. */
static void
assert_local_429(const char *headers, const char *body)
{
	struct resp	 r;

	memset(&r, 0, sizeof(r));
	r.headers = (char *)headers;
	cr_assert(strstr(body, "\"error\":\"rate_limited\"") != NULL,
	    "429 body %s", body);
	cr_assert_geq(header_int(&r, "Retry-After"), 1,
	    "429 without Retry-After >= 1: %s", headers);
}

/* t_ms of every request in the simulator's log on this route (or all). */
static size_t
log_times(json_t *c, const char *route, double *t, size_t cap)
{
	json_t		*log = json_object_get(c, "log"), *e;
	size_t		 i, n = 0;
	char		 r[512];

	json_array_foreach(log, i, e) {
		snprintf(r, sizeof(r), "%s %s",
		    json_string_value(json_object_get(e, "method")) ?: "",
		    json_string_value(json_object_get(e, "path")) ?: "");
		if (route != NULL && strcmp(r, route) != 0)
			continue;
		if (n < cap)
			t[n++] = json_number_value(json_object_get(e,
			    "t_ms"));
	}
	return (n);
}

static int
cmp_double(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return (x < y ? -1 : x > y);
}

/* The most requests whose arrival times fit in a window of win_ms. */
static int
max_in_window(double *t, size_t n, double win_ms)
{
	size_t	 i, j = 0;
	int	 best = 0;

	qsort(t, n, sizeof(*t), cmp_double);
	for (i = 0; i < n; i++) {
		while (t[i] - t[j] >= win_ms)
			j++;
		if ((int)(i - j + 1) > best)
			best = (int)(i - j + 1);
	}
	return (best);
}

/* ------------------------------------------------------ curl multi */

struct mclient {
	CURL		*e;
	struct curl_slist *h;
	struct membuf	 body;
	struct membuf	 hdr;
	double		 start;
	int		 idx;
};

/* One finished exchange; status 0 when curl failed. */
typedef void (*mres_cb)(int idx, long status, const char *headers,
    const char *body, size_t len, double seconds, void *arg);

static void
mclient_arm(CURLM *m, struct mclient *c, const struct brokerd *b,
    const char *path)
{
	char	 url[1024];

	free(c->body.p);
	free(c->hdr.p);
	memset(&c->body, 0, sizeof(c->body));
	memset(&c->hdr, 0, sizeof(c->hdr));
	snprintf(url, sizeof(url), "http://localhost%s", path);
	curl_easy_setopt(c->e, CURLOPT_URL, url);
	curl_easy_setopt(c->e, CURLOPT_UNIX_SOCKET_PATH, b->sock);
	curl_easy_setopt(c->e, CURLOPT_WRITEFUNCTION, membuf_write);
	curl_easy_setopt(c->e, CURLOPT_WRITEDATA, &c->body);
	curl_easy_setopt(c->e, CURLOPT_HEADERFUNCTION, membuf_write);
	curl_easy_setopt(c->e, CURLOPT_HEADERDATA, &c->hdr);
	curl_easy_setopt(c->e, CURLOPT_HTTPHEADER, c->h);
	curl_easy_setopt(c->e, CURLOPT_TIMEOUT_MS, 20000L);
	curl_easy_setopt(c->e, CURLOPT_PRIVATE, c);
	c->start = mono_s();
	curl_multi_add_handle(m, c->e);
}

/* The path client idx asks next (into buf, or a constant). */
typedef const char *(*mpath_fn)(int idx, void *arg, char *buf, size_t len);

struct mpaths {
	const char *const *paths;
	int		 npaths;
};

static const char *
mpaths_next(int idx, void *arg, char *buf, size_t len)
{
	const struct mpaths *mp = arg;

	(void)buf;
	(void)len;
	return (mp->paths[idx % mp->npaths]);
}

static long	multi_run_gen(const struct brokerd *, int, mpath_fn, void *,
		    const char *const *, double, mres_cb, void *);
static int	load_lock(void);

/*
 * n clients at once, each on its own connection, client i asking
 * paths[i % npaths].  With duration_s 0 each asks once; else each asks
 * again as soon as answered until duration_s has passed.  Returns the
 * number of answers.
 */
static long
multi_run(const struct brokerd *b, int n, const char *const *paths,
    int npaths, const char *const *headers, double duration_s, mres_cb cb,
    void *arg)
{
	struct mpaths	 mp = { paths, npaths };

	return (multi_run_gen(b, n, mpaths_next, &mp, headers, duration_s,
	    cb, arg));
}

/* multi_run with each client's next path from path_fn. */
static long
multi_run_gen(const struct brokerd *b, int n, mpath_fn path_fn,
    void *path_arg, const char *const *headers, double duration_s,
    mres_cb cb, void *arg)
{
	char		 pbuf[256];
	struct mclient	*cl;
	CURLM		*m;
	CURLMsg		*msg;
	double		 end = mono_s() + duration_s;
	long		 answers = 0, status;
	int		 running = 0, left, i, j;

	cl = calloc((size_t)n, sizeof(*cl));
	cr_assert_not_null(cl);
	m = curl_multi_init();
	cr_assert_not_null(m);
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)n);
	for (i = 0; i < n; i++) {
		cl[i].idx = i;
		cl[i].e = curl_easy_init();
		cr_assert_not_null(cl[i].e);
		for (j = 0; headers != NULL && headers[j] != NULL; j++)
			cl[i].h = curl_slist_append(cl[i].h, headers[j]);
		mclient_arm(m, &cl[i], b, path_fn(i, path_arg, pbuf,
		    sizeof(pbuf)));
	}
	do {
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			struct mclient *c;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
			    (char **)&c);
			status = 0;
			if (msg->data.result == CURLE_OK)
				curl_easy_getinfo(c->e,
				    CURLINFO_RESPONSE_CODE, &status);
			else
				fprintf(stderr, "client %d: %s\n", c->idx,
				    curl_easy_strerror(msg->data.result));
			curl_multi_remove_handle(m, c->e);
			answers++;
			if (cb != NULL)
				cb(c->idx, status, c->hdr.p ? c->hdr.p : "",
				    c->body.p ? c->body.p : "", c->body.len,
				    mono_s() - c->start, arg);
			if (duration_s > 0 && mono_s() < end) {
				mclient_arm(m, c, b, path_fn(c->idx,
				    path_arg, pbuf, sizeof(pbuf)));
				running++;
			}
		}
		if (running > 0)
			curl_multi_poll(m, NULL, 0, 50, NULL);
	} while (running > 0);
	for (i = 0; i < n; i++) {
		curl_easy_cleanup(cl[i].e);
		curl_slist_free_all(cl[i].h);
		free(cl[i].body.p);
		free(cl[i].hdr.p);
	}
	curl_multi_cleanup(m);
	free(cl);
	return (answers);
}

struct tally {
	long	 ok;		/* 200 */
	long	 limited;	/* local 429 rate_limited */
	long	 other;
	long	 other_status;
	double	 max_s;
	char	 first_body[4096];
	size_t	 first_len;
	int	 bodies_differ;
	long	 with_age;
};

static void
tally_cb(int idx, long status, const char *headers, const char *body,
    size_t len, double seconds, void *arg)
{
	struct tally	*t = arg;
	struct resp	 r;
	char		 age[32];

	(void)idx;
	if (seconds > t->max_s)
		t->max_s = seconds;
	if (status == 200) {
		if (t->ok == 0 && len < sizeof(t->first_body)) {
			memcpy(t->first_body, body, len);
			t->first_len = len;
		} else if (len != t->first_len ||
		    memcmp(body, t->first_body, len) != 0)
			t->bodies_differ = 1;
		memset(&r, 0, sizeof(r));
		r.headers = (char *)headers;
		if (resp_header(&r, "Age", age, sizeof(age)) == 0)
			t->with_age++;
		t->ok++;
		return;
	}
	if (status == 429 && strstr(body, "\"error\":\"rate_limited\"") !=
	    NULL) {
		assert_local_429(headers, body);
		t->limited++;
		return;
	}
	if (t->other == 0)
		fprintf(stderr, "unexpected answer %ld: %.*s\n", status,
		    (int)(len > 300 ? 300 : len), body);
	t->other++;
	t->other_status = status;
}

/* ------------------------------------------------------------ tests */

/*
 * The headline figure: 100 clients, each on its own connection, asking
 * for /iserver/accounts past the cache for 5 s.  The Gateway must see
 * no 429 and no broken limit; clients see 200 or brokerd's own 429.
 */
Test(pacing, hundred_clients_never_trip_the_gateway)
{
	const char	*paths[] = { "/iserver/accounts" };
	struct tally	 t;
	json_t		*c;
	double		 times[2048], t0;
	size_t		 nt;
	long		 answers, up_before, up, up_all, rl;
	int		 max950, max1000, maxcl, maxcl950;

	(void)load_lock();
	start_bd(NULL);
	wait_ready();
	sim_behaviour("{\"endpoint_limits\":true}");
	up_before = route_count(R_ACCOUNTS);
	memset(&t, 0, sizeof(t));
	t0 = mono_s();
	answers = multi_run(&bd, 100, paths, 1, key_nocache, 5.0, tally_cb,
	    &t);
	t0 = mono_s() - t0;
	c = sim_counters();
	rl = (long)json_integer_value(json_object_get(c, "rate_limited"));
	up = (long)json_integer_value(json_object_get(json_object_get(c,
	    "by_route"), R_ACCOUNTS)) - up_before;
	up_all = (long)json_integer_value(json_object_get(c, "total"));
	nt = log_times(c, NULL, times, sizeof(times) / sizeof(times[0]));
	max950 = max_in_window(times, nt, 950);
	/* PACING_DUMP=1: the simulator's log, to see a window's contents */
	if (getenv("PACING_DUMP") != NULL) {
		size_t di;
		json_t *e;

		json_array_foreach(json_object_get(c, "log"), di, e)
			fprintf(stderr, "%10.1f conn %3lld %s %s\n",
			    json_number_value(json_object_get(e, "t_ms")),
			    json_integer_value(json_object_get(e, "conn")),
			    json_string_value(json_object_get(e, "method")),
			    json_string_value(json_object_get(e, "path")));
	}
	max1000 = max_in_window(times, nt, 1000);
	nt = log_times(c, R_ACCOUNTS, times, sizeof(times) / sizeof(times[0]));
	maxcl = max_in_window(times, nt, 1000);
	maxcl950 = max_in_window(times, nt, 950);
	cr_log_info("100 clients, %.1f s: %ld answered (%ld 200, %ld local "
	    "429), %ld upstream /iserver/accounts, %ld upstream in all, "
	    "gateway 429s %ld", t0, answers, t.ok, t.limited, up, up_all, rl);
	fprintf(stderr, "FIGURES hundred_clients: %.1f s, answered %ld "
	    "(200: %ld, local 429: %ld), upstream /iserver/accounts %ld, "
	    "upstream total %ld, gateway 429 %ld, pacing_violations %zu; "
	    "most at the Gateway in any 950 ms %d, any 1000 ms %d (clients' "
	    "/iserver/accounts: %d); slowest answer %.2f s\n", t0, answers,
	    t.ok, t.limited, up, up_all, rl, json_object_size(
	    json_object_get(c, "pacing_violations")), max950, max1000, maxcl,
	    t.max_s);
	cr_assert_eq(rl, 0, "the simulator refused %ld requests", rl);
	assert_no_violations(c);
	cr_assert_eq(t.other, 0, "%ld answers neither 200 nor local 429 "
	    "(last %ld)", t.other, t.other_status);
	cr_assert_gt(t.ok, 30, "only %ld answers 200", t.ok);
	cr_assert_gt(t.limited, 0, "100 clients never waited too long?");
	cr_assert_eq(t.ok, up, "every 200 was its own upstream call "
	    "(no-cache): %ld 200s, %ld upstream", t.ok, up);
	/* The simulator's own window: N younger than 1 s - slack. */
	cr_assert_leq(max950, 10, "%d requests within 950 ms", max950);
	/*
	 * Clients get 9 of the 10 slots, the watcher the last.  brokerd
	 * counts on its own clock; arrival jitter of a few ms at a window's
	 * edge is what the simulator's 50 ms slack forgives.
	 */
	cr_assert_leq(maxcl950, 9, "%d client calls within 950 ms", maxcl950);
	/* 5 s at 10/s, the watcher included, plus the queue's last 2 s. */
	cr_assert_leq(up_all, 10 * ((long)t0 + 1) + 10);
	/* Waits are bounded by queue_ms (2 s) and a Gateway round trip. */
	cr_assert_lt(t.max_s, 3.5, "a client waited %.2f s", t.max_s);
	json_decref(c);
}

/*
 * 20 clients polling a 1/5s endpoint: the Gateway sees it at most once
 * per 5 s, the watcher's call after authentication included.
 */
Test(pacing, portfolio_accounts_once_per_five_seconds)
{
	const char	*paths[] = { "/portfolio/accounts" };
	struct tally	 t;
	json_t		*c;
	double		 times[64], t0, span;
	size_t		 nt, i;
	long		 answers;

	(void)load_lock();
	start_bd("limits:\n  queue_ms: 6000\n");
	wait_ready();
	sim_behaviour("{\"endpoint_limits\":true}");
	memset(&t, 0, sizeof(t));
	t0 = mono_s();
	answers = multi_run(&bd, 20, paths, 1, key_only, 11.0, tally_cb, &t);
	t0 = mono_s() - t0;
	c = sim_counters();
	nt = log_times(c, R_PORTFOLIO, times, 64);
	qsort(times, nt, sizeof(*times), cmp_double);
	span = nt > 0 ? times[nt - 1] - times[0] : 0;
	fprintf(stderr, "FIGURES portfolio_accounts: 20 clients %.1f s, "
	    "answered %ld (200: %ld, with Age: %ld, 429: %ld), Gateway calls "
	    "%zu (watcher's included) over %.0f ms\n", t0, answers, t.ok,
	    t.with_age, t.limited, nt, span);
	for (i = 1; i < nt; i++)
		cr_assert_geq(times[i] - times[i - 1], 4950, "calls %zu and "
		    "%zu %.0f ms apart", i - 1, i, times[i] - times[i - 1]);
	cr_assert_geq(nt, 3, "only %zu calls in %.1f s", nt, t0);
	/* the simulator's slack (50 ms) is the most a gap may fall short */
	cr_assert_leq((double)nt, (double)((long)(span / 4950) + 1));
	cr_assert_eq(json_integer_value(json_object_get(c, "rate_limited")),
	    0);
	assert_no_violations(c);
	cr_assert_eq(t.other, 0);
	cr_assert_eq(t.limited, 0, "queue_ms 6000 covers a 5 s window");
	cr_assert_gt(t.ok, 1000, "the cache should answer fast: %ld", t.ok);
	cr_assert_gt(t.with_age, t.ok - 100);
	cr_assert_eq(t.bodies_differ, 0);
	json_decref(c);
}

/* Identical GETs in flight share one upstream request; no-cache does not. */
Test(pacing, identical_gets_coalesce)
{
	const char	*paths[] = { "/trsrv/stocks?symbols=AAPL" };
	struct tally	 t;
	json_t		*c;
	double		 t0;
	long		 before, n;

	start_bd("limits:\n  queue_ms: 5000\n");
	wait_ready();
	sim_behaviour("{\"delay_ms\":300,\"paths\":[\"/trsrv/\"]}");
	before = route_count(R_STOCKS);
	cr_assert_eq(before, 0);
	memset(&t, 0, sizeof(t));
	t0 = mono_s();
	multi_run(&bd, 20, paths, 1, key_only, 0, tally_cb, &t);
	t0 = mono_s() - t0;
	n = route_count(R_STOCKS);
	fprintf(stderr, "FIGURES coalescing: 20 identical GETs -> %ld "
	    "upstream in %.2f s\n", n, t0);
	cr_assert_eq(t.ok, 20, "%ld of 20 answered 200", t.ok);
	cr_assert_eq(t.bodies_differ, 0);
	cr_assert(t.first_len > 0 && strstr(t.first_body, "AAPL") != NULL);
	cr_assert_eq(n, 1, "%ld upstream requests for 20 identical GETs", n);
	cr_assert_lt(t0, 1.5, "the 20 waited for each other: %.2f s", t0);

	memset(&t, 0, sizeof(t));
	t0 = mono_s();
	multi_run(&bd, 20, paths, 1, key_nocache, 0, tally_cb, &t);
	t0 = mono_s() - t0;
	n = route_count(R_STOCKS) - n;
	fprintf(stderr, "FIGURES coalescing: 20 no-cache GETs -> %ld "
	    "upstream in %.2f s\n", n, t0);
	cr_assert_eq(t.ok, 20, "%ld of 20 answered 200", t.ok);
	cr_assert_eq(n, 20, "no-cache GETs were merged: %ld upstream", n);
	/* 20 at 10/s (one slot in ten the watcher's) take > 1 s. */
	cr_assert_gt(t0, 1.0);
	c = sim_counters();
	cr_assert_eq(json_integer_value(json_object_get(c, "rate_limited")),
	    0);
	assert_no_violations(c);
	json_decref(c);
}

/* A route's cache_ms: served with Age, expires, only 200s kept. */
Test(pacing, cache_serves_with_age_and_expires)
{
	struct resp	 r1, r2, r3, r4;
	double		 t_sent;
	long		 n, age;
	int		 i;

	/*
	 * Ages are bounded by the clock read around the requests, not
	 * assumed: on a loaded machine a request may take a second.
	 */
	start_bd("routes:\n"
	    "  - { prefix: /trsrv/, to: /v1/api/trsrv/, methods: { GET: read, "
	    "POST: read }, cache_ms: 3000 }\n"
	    "  - { prefix: /iserver/, to: /v1/api/iserver/, methods: "
	    "{ GET: read } }\n"
	    "  - { prefix: /portfolio/, to: /v1/api/portfolio/, methods: "
	    "{ GET: read } }\n");
	wait_ready();
	t_sent = mono_s();	/* the copy is stored after this */
	cr_assert_eq(req_unix(&bd, "GET", "/trsrv/stocks?symbols=AAPL",
	    key_only, NULL, 0, &r1), 0);
	cr_assert_eq(r1.status, 200, "%ld %s", r1.status, r1.body);
	cr_assert_eq(header_int(&r1, "Age"), -1, "a fresh answer has no Age");
	cr_assert_eq(route_count(R_STOCKS), 1);

	cr_assert_eq(req_unix(&bd, "GET", "/trsrv/stocks?symbols=AAPL",
	    key_only, NULL, 0, &r2), 0);
	cr_assert_eq(r2.status, 200);
	age = header_int(&r2, "Age");
	cr_assert(age >= 0 && age <= (long)(mono_s() - t_sent),
	    "headers: %s", r2.headers);
	cr_assert_eq(r2.len, r1.len);
	cr_assert_eq(memcmp(r2.body, r1.body, r1.len), 0);
	cr_assert_eq(route_count(R_STOCKS), 1, "the cache did not answer");
	/* another query is another entry */
	cr_assert_eq(req_unix(&bd, "GET", "/trsrv/stocks?symbols=MSFT",
	    key_only, NULL, 0, &r4), 0);
	cr_assert_eq(r4.status, 200);
	cr_assert_eq(header_int(&r4, "Age"), -1);
	cr_assert_eq(route_count(R_STOCKS), 2);
	resp_free(&r4);

	/* a second after it was stored (and before 3): Age 1 or 2 */
	while (mono_s() - t_sent < 1.1)
		sleep_ms(20);
	cr_assert_eq(req_unix(&bd, "GET", "/trsrv/stocks?symbols=AAPL",
	    key_only, NULL, 0, &r3), 0);
	cr_assert_eq(r3.status, 200);
	age = header_int(&r3, "Age");
	cr_assert(age >= 1 && age <= (long)(mono_s() - t_sent),
	    "headers: %s", r3.headers);
	cr_assert_eq(route_count(R_STOCKS), 2);
	resp_free(&r3);

	/* expired: a new upstream call, no Age */
	while (mono_s() - t_sent < 3.1)
		sleep_ms(20);
	cr_assert_eq(req_unix(&bd, "GET", "/trsrv/stocks?symbols=AAPL",
	    key_only, NULL, 0, &r3), 0);
	cr_assert_eq(r3.status, 200);
	cr_assert_eq(header_int(&r3, "Age"), -1, "stale copy served: %s",
	    r3.headers);
	cr_assert_eq(route_count(R_STOCKS), 3);
	resp_free(&r3);

	/* only 200s: a 400 (no symbols), a 404 and a forced 500 are not kept */
	for (i = 0; i < 2; i++) {
		cr_assert_eq(req_unix(&bd, "GET", "/trsrv/stocks", key_only,
		    NULL, 0, &r3), 0);
		cr_assert_eq(r3.status, 400, "%ld %s", r3.status, r3.body);
		cr_assert_eq(header_int(&r3, "Age"), -1);
		resp_free(&r3);
		cr_assert_eq(req_unix(&bd, "GET", "/trsrv/nothing", key_only,
		    NULL, 0, &r3), 0);
		cr_assert_eq(r3.status, 404, "%ld %s", r3.status, r3.body);
		resp_free(&r3);
	}
	cr_assert_eq(route_count(R_STOCKS), 5, "a 400 was cached");
	cr_assert_eq(route_count("GET /v1/api/trsrv/nothing"), 2,
	    "a 404 was cached");
	sim_behaviour("{\"force_status\":500,\"paths\":[\"/trsrv/\"]}");
	for (i = 0; i < 2; i++) {
		cr_assert_eq(req_unix(&bd, "GET", "/trsrv/stocks?symbols=IBM",
		    key_only, NULL, 0, &r3), 0);
		cr_assert_eq(r3.status, 500, "%ld %s", r3.status, r3.body);
		resp_free(&r3);
	}
	cr_assert_eq(route_count(R_STOCKS), 7, "a 500 was cached");
	/* never another method */
	sim_behaviour("{\"force_status\":null}");
	n = route_count("POST /v1/api/trsrv/stocks");
	for (i = 0; i < 2; i++) {
		cr_assert_eq(req_unix(&bd, "POST", "/trsrv/stocks?symbols=AAPL",
		    key_only, "{}", 2, &r3), 0);
		cr_assert_eq(header_int(&r3, "Age"), -1);
		resp_free(&r3);
	}
	cr_assert_eq(route_count("POST /v1/api/trsrv/stocks"), n + 2);
	resp_free(&r1);
	resp_free(&r2);
}

static long
cache_entries(void)
{
	return (status_int("cache", "entries"));
}

/*
 * Expired copies go: a client that varies its query (a cache-busting
 * parameter) must not grow brokerd's memory one answer at a time.
 */
Test(pacing, expired_cache_entries_are_freed)
{
	struct resp	 r;
	char		 path[64];
	int		 i;

	start_bd("routes:\n"
	    "  - { prefix: /trsrv/, to: /v1/api/trsrv/, methods: { GET: read "
	    "}, cache_ms: 100 }\n"
	    "  - { prefix: /iserver/, to: /v1/api/iserver/, methods: "
	    "{ GET: read } }\n"
	    "  - { prefix: /portfolio/, to: /v1/api/portfolio/, methods: "
	    "{ GET: read } }\n");
	wait_ready();
	for (i = 0; i < 12; i++) {
		snprintf(path, sizeof(path), "/trsrv/stocks?symbols=AAPL&_=%d",
		    i);
		cr_assert_eq(req_unix(&bd, "GET", path, key_only, NULL, 0,
		    &r), 0);
		cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
		resp_free(&r);
	}
	cr_assert_geq(cache_entries(), 1);
	sleep_ms(1200);
	cr_assert_eq(req_unix(&bd, "GET", "/trsrv/stocks?symbols=AAPL&_=last",
	    key_only, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	resp_free(&r);
	cr_assert_leq(cache_entries(), 1, "expired copies are kept");
}

/*
 * make test runs two tests at once: a test that bounds a time, or a load
 * that gives a figure, waits until no load and its burners run beside it
 * (a local 429 once took 0.66 s next to 80 clients and two burners on a
 * two-core machine).  The client floods (100 clients for 5 s, 20 for
 * 11 s) take it too: beside the 20, the strict simulator of the burners'
 * figure, starved, read four of brokerd's requests 235-275 ms after they
 * were sent, and counted 13 in 1000 ms where brokerd had sent 10 in
 * 1100.  The lock goes with the process.
 */
static int
load_lock(void)
{
	int	 fd;

	fd = open("build/pacing-load.lock", O_RDWR | O_CREAT | O_CLOEXEC,
	    0600);
	cr_assert_geq(fd, 0, "build/pacing-load.lock");
	cr_assert_eq(flock(fd, LOCK_EX), 0);
	return (fd);
}

/*
 * An upstream 429 with Retry-After 2: clients get 429 at once for ~2 s
 * and none of their calls reaches the Gateway; the watcher's do.
 */
Test(pacing, breaker_after_a_gateway_429)
{
	struct resp	 r;
	double		 t_open, t_last = 0;
	long		 stocks, accounts, auth, limited = 0;
	json_t		*c;

	(void)load_lock();
	start_bd(NULL);
	wait_ready();
	sim_behaviour("{\"force_status\":429,\"retry_after_s\":2,"
	    "\"paths\":[\"/trsrv/\"]}");
	cr_assert_eq(req_unix(&bd, "GET", "/trsrv/stocks?symbols=AAPL",
	    key_only, NULL, 0, &r), 0);
	t_open = mono_s();
	cr_assert_eq(r.status, 429, "%ld %s", r.status, r.body);
	assert_local_429(r.headers, r.body);
	cr_assert_eq(header_int(&r, "Retry-After"), 2, "%s", r.headers);
	resp_free(&r);
	sim_behaviour("{\"force_status\":null}");
	stocks = route_count(R_STOCKS);
	accounts = route_count(R_ACCOUNTS);
	auth = route_count(R_AUTH);
	cr_assert_eq(stocks, 1);

	/* ~1.8 s of client calls: all 429 at once, none upstream */
	while (mono_s() - t_open < 1.8) {
		cr_assert_eq(req_unix(&bd, "GET", limited % 2 ?
		    "/trsrv/stocks?symbols=AAPL" : "/iserver/accounts",
		    key_nocache, NULL, 0, &r), 0);
		cr_assert_eq(r.status, 429, "%ld %s after %.2f s", r.status,
		    r.body, mono_s() - t_open);
		assert_local_429(r.headers, r.body);
		cr_assert_lt(r.seconds, 0.1, "a 429 took %.3f s", r.seconds);
		t_last = mono_s();
		limited++;
		resp_free(&r);
		sleep_ms(50);
	}
	cr_assert_lt(t_last - t_open, 2.0, "the test was too slow");
	cr_assert_eq(route_count(R_STOCKS), stocks, "a client call went "
	    "through the breaker");
	cr_assert_eq(route_count(R_ACCOUNTS), accounts, "a client call went "
	    "through the breaker");
	cr_assert_gt(route_count(R_AUTH), auth, "the watcher was held back "
	    "too (check_interval_s 1)");
	fprintf(stderr, "FIGURES breaker: %ld local 429s in %.2f s, "
	    "watcher checks %ld during it, none of the clients' upstream\n",
	    limited, t_last - t_open, route_count(R_AUTH) - auth);
	c = bd_json("/gateway/status");
	cr_assert_geq(json_integer_value(json_object_get(json_object_get(c,
	    "rate"), "breaker_opened")), 1);
	json_decref(c);
	cr_assert(brokerd_log_has(&bd, "429"), "the breaker is not logged");

	/* then traffic resumes */
	while (mono_s() - t_open < 2.2)
		sleep_ms(20);
	cr_assert_eq(req_unix(&bd, "GET", "/iserver/accounts", key_nocache,
	    NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	resp_free(&r);
	cr_assert_eq(route_count(R_ACCOUNTS), accounts + 1);
	c = sim_counters();
	cr_assert_eq(json_integer_value(json_object_get(c, "rate_limited")),
	    0);
	json_decref(c);
}

/* Known unauthenticated: /iserver/ fails fast, others still forward. */
Test(pacing, fail_fast_when_not_authenticated)
{
	struct resp	 r;
	long		 n;
	int		 i;

	(void)load_lock();
	start_bd(NULL);
	wait_ready();
	sim_state("{\"authenticated\":false,\"reauth_works\":false}");
	wait_state("unauthenticated", 5000);
	n = route_count(R_ACCOUNTS);
	for (i = 0; i < 20; i++) {
		cr_assert_eq(req_unix(&bd, "GET", i % 2 ? "/iserver/accounts" :
		    "/v1/api/iserver/account/orders", key_only, NULL, 0, &r),
		    0);
		cr_assert_eq(r.status, 503, "%ld %s", r.status, r.body);
		cr_assert(strstr(r.body, "\"error\":\"not_authenticated\"") !=
		    NULL, "%s", r.body);
		cr_assert_lt(r.seconds, 0.05, "503 took %.1f ms",
		    r.seconds * 1000);
		resp_free(&r);
	}
	cr_assert_eq(route_count(R_ACCOUNTS), n);
	cr_assert_eq(route_count("GET /v1/api/iserver/account/orders"), 0);
	/* /portfolio/ is not /iserver/: it still goes */
	cr_assert_eq(req_unix(&bd, "GET", "/portfolio/DU123456/summary",
	    key_only, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	resp_free(&r);
	cr_assert_eq(route_count("GET /v1/api/portfolio/DU123456/summary"),
	    1);

	/* the Gateway gone: 502 */
	gwsim_stop(&gw);
	wait_state("gateway_down", 6000);
	cr_assert_eq(req_unix(&bd, "GET", "/iserver/accounts", key_only, NULL,
	    0, &r), 0);
	cr_assert_eq(r.status, 502, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "\"error\":\"gateway_unreachable\"") != NULL,
	    "%s", r.body);
	cr_assert_lt(r.seconds, 0.05);
	resp_free(&r);
	cr_assert_eq(req_unix(&bd, "GET", "/portfolio/DU123456/summary",
	    key_only, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 502, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "\"error\":\"gateway_unreachable\"") != NULL,
	    "%s", r.body);
	resp_free(&r);
}

/* queue_ms 300 on a 1/5s route: the second request waits, then 429. */
Test(pacing, queue_wait_then_429)
{
	struct resp	 r;
	long		 n;

	start_bd("limits:\n  queue_ms: 300\n");
	wait_ready();
	cr_assert_eq(req_unix(&bd, "GET", "/iserver/account/trades", key_only,
	    NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	resp_free(&r);
	n = route_count(R_TRADES);
	cr_assert_eq(n, 1);
	cr_assert_eq(req_unix(&bd, "GET", "/iserver/account/trades",
	    key_nocache, NULL, 0, &r), 0);
	fprintf(stderr, "FIGURES queue: second 1/5s call answered %ld after "
	    "%.0f ms, Retry-After %d\n", r.status, r.seconds * 1000,
	    header_int(&r, "Retry-After"));
	cr_assert_eq(r.status, 429, "%ld %s", r.status, r.body);
	assert_local_429(r.headers, r.body);
	cr_assert_geq(r.seconds, 0.28, "no wait: %.3f s", r.seconds);
	cr_assert_lt(r.seconds, 0.8, "waited %.3f s", r.seconds);
	/* the window frees ~5 s after the first: tell the client so */
	cr_assert_geq(header_int(&r, "Retry-After"), 4, "%s", r.headers);
	cr_assert_leq(header_int(&r, "Retry-After"), 5, "%s", r.headers);
	resp_free(&r);
	cr_assert_eq(route_count(R_TRADES), 1);
	cr_assert_eq(queued_now(), 0);
}

/* A client that disconnects while queued leaves the queue. */
static void
disconnect_while_queued(const char *extra_header)
{
	struct resp	 r;
	char		 req[512];
	double		 t0;
	int		 fd, n;

	start_bd("limits:\n  queue_ms: 4000\n");
	wait_ready();
	cr_assert_eq(req_unix(&bd, "GET", "/iserver/account/trades", key_only,
	    NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	resp_free(&r);
	cr_assert_eq(queued_now(), 0);

	n = snprintf(req, sizeof(req), "GET /iserver/account/trades?x=1 "
	    "HTTP/1.1\r\nHost: localhost\r\n" KEY_HDR "\r\n%s\r\n",
	    extra_header);
	cr_assert(n > 0 && (size_t)n < sizeof(req));
	cr_assert_geq(fd = connect_unix(bd.sock), 0);
	cr_assert_eq(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
	t0 = mono_s();
	while (queued_now() != 1) {
		cr_assert_lt(mono_s() - t0, 1.0, "never queued");
		sleep_ms(10);
	}
	close(fd);
	while (queued_now() != 0) {
		cr_assert_lt(mono_s() - t0, 1.5, "still queued %.2f s after "
		    "the client left (queue_ms 4000)", mono_s() - t0);
		sleep_ms(10);
	}
	cr_assert_eq(req_unix(&bd, "GET", "/metrics", key_only, NULL, 0, &r),
	    0);
	cr_assert(strstr(r.body, "\nbrokerd_queue_length 0\n") != NULL,
	    "%s", r.body);
	resp_free(&r);
	/* and it never reaches the Gateway, even once the window opens */
	sleep_ms(4000);
	cr_assert_eq(route_count(R_TRADES), 1, "a departed client's request "
	    "was sent");
}

Test(pacing, disconnect_leaves_the_queue_no_cache)
{
	disconnect_while_queued("Cache-Control: no-cache\r\n");
}

Test(pacing, disconnect_leaves_the_queue_shared_get)
{
	disconnect_while_queued("");
}

/* concurrency: 5 on history: never more than 5 at once at the Gateway. */
Test(pacing, history_concurrency_five)
{
	char		 gwy[1024], conf[1400], pbuf[12][128];
	const char	*paths[12];
	struct tally	 t;
	json_t		*c;
	long		 maxin, rejected;
	int		 i;

	gateway_yaml(gwy, sizeof(gwy), "  pool: 10\n");
	snprintf(conf, sizeof(conf), "%slimits:\n  queue_ms: 5000\n", gwy);
	start_bd(conf);
	wait_ready();
	sim_behaviour("{\"delay_ms\":400,\"paths\":"
	    "[\"/iserver/marketdata/history\"]}");
	for (i = 0; i < 12; i++) {
		snprintf(pbuf[i], sizeof(pbuf[i]), "/iserver/marketdata/"
		    "history?conid=%d&period=1d&bar=1h", 265598 + i);
		paths[i] = pbuf[i];
	}
	memset(&t, 0, sizeof(t));
	multi_run(&bd, 12, paths, 12, key_only, 0, tally_cb, &t);
	c = sim_counters();
	maxin = (long)json_integer_value(json_object_get(c,
	    "history_max_in_flight"));
	rejected = (long)json_integer_value(json_object_get(c,
	    "history_rejected"));
	fprintf(stderr, "FIGURES history: 12 at once (pool 10), at most "
	    "%ld at the Gateway, %ld refused there, %ld answered 200\n",
	    maxin, rejected, t.ok);
	cr_assert_eq(rejected, 0);
	cr_assert_eq(maxin, 5, "history in flight at once: %ld", maxin);
	cr_assert_eq(t.ok, 12, "%ld 200s, other %ld", t.ok, t.other);
	cr_assert_eq(route_count(R_HISTORY), 12);
	json_decref(c);
}

/* ------------------------------------------------------------ metrics */

struct sample {
	char	 name[128];
	char	 labels[512];	/* raw, between the braces */
	double	 value;
};

static int
name_ok(const char *s, size_t n)
{
	size_t	 i;

	if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' ||
	    s[0] == ':'))
		return (0);
	for (i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' ||
		    s[i] == ':'))
			return (0);
	return (1);
}

/* Labels: name="value" pairs, comma separated, escapes \\ \" \n only. */
static int
labels_ok(const char *p, const char **end)
{
	const char	*q;

	for (;;) {
		q = p;
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		if (p == q || isdigit((unsigned char)*q) || *p++ != '=' ||
		    *p++ != '"')
			return (0);
		while (*p != '"') {
			if (*p == '\0' || *p == '\n')
				return (0);
			if (*p == '\\') {
				p++;
				if (*p != '\\' && *p != '"' && *p != 'n')
					return (0);
			}
			p++;
		}
		p++;
		if (*p == '}') {
			*end = p;
			return (1);
		}
		if (*p++ != ',')
			return (0);
		if (*p == '}') {	/* a trailing comma is allowed */
			*end = p;
			return (1);
		}
	}
}

/* The family a sample belongs to: histogram samples have suffixes. */
static int
family_of(json_t *types, const char *name)
{
	static const char *const sfx[] = { "_bucket", "_sum", "_count" };
	char		 base[128];
	size_t		 i, n = strlen(name), k;
	const char	*t;

	if (json_object_get(types, name) != NULL)
		return (1);
	for (i = 0; i < 3; i++) {
		k = strlen(sfx[i]);
		if (n > k && strcmp(name + n - k, sfx[i]) == 0) {
			snprintf(base, sizeof(base), "%.*s", (int)(n - k),
			    name);
			t = json_string_value(json_object_get(types, base));
			if (t != NULL && (strcmp(t, "histogram") == 0 ||
			    strcmp(t, "summary") == 0))
				return (1);
		}
	}
	return (0);
}

/*
 * Parse Prometheus text format 0.0.4 strictly enough: every line is a
 * HELP, a TYPE (before its samples, once per family) or a sample
 * `name{labels} value`.  Returns the number of samples.
 */
static size_t
prom_parse(char *text, struct sample *out, size_t cap)
{
	json_t		*types = json_object(), *helps = json_object();
	char		*line, *save = NULL, *p, *end;
	const char	*le;
	size_t		 n = 0, lineno = 0, k;
	char		 nm[128], ty[32];

	cr_assert(strlen(text) > 0 && text[strlen(text) - 1] == '\n',
	    "the text must end with a newline");
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		if (strncmp(line, "# HELP ", 7) == 0) {
			p = line + 7;
			k = strcspn(p, " ");
			cr_assert(name_ok(p, k) && p[k] == ' ',
			    "line %zu: %s", lineno, line);
			snprintf(nm, sizeof(nm), "%.*s", (int)k, p);
			cr_assert_null(json_object_get(helps, nm),
			    "line %zu: second HELP for %s", lineno, nm);
			json_object_set_new(helps, nm, json_true());
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			p = line + 7;
			k = strcspn(p, " ");
			cr_assert(name_ok(p, k) && p[k] == ' ',
			    "line %zu: %s", lineno, line);
			snprintf(nm, sizeof(nm), "%.*s", (int)k, p);
			snprintf(ty, sizeof(ty), "%s", p + k + 1);
			cr_assert(strcmp(ty, "counter") == 0 ||
			    strcmp(ty, "gauge") == 0 ||
			    strcmp(ty, "histogram") == 0 ||
			    strcmp(ty, "summary") == 0 ||
			    strcmp(ty, "untyped") == 0,
			    "line %zu: type %s", lineno, ty);
			cr_assert_null(json_object_get(types, nm),
			    "line %zu: second TYPE for %s", lineno, nm);
			json_object_set_new(types, nm, json_string(ty));
			continue;
		}
		cr_assert_neq(line[0], '#', "line %zu: unknown comment %s",
		    lineno, line);
		cr_assert(n < cap);
		p = line;
		k = strcspn(p, "{ ");
		cr_assert(name_ok(p, k), "line %zu: name in %s", lineno, line);
		snprintf(out[n].name, sizeof(out[n].name), "%.*s", (int)k, p);
		cr_assert(family_of(types, out[n].name), "line %zu: %s "
		    "before its TYPE", lineno, out[n].name);
		p += k;
		out[n].labels[0] = '\0';
		if (*p == '{') {
			cr_assert(labels_ok(p + 1, &le), "line %zu: labels "
			    "in %s", lineno, line);
			snprintf(out[n].labels, sizeof(out[n].labels), "%.*s",
			    (int)(le - p - 1), p + 1);
			p = (char *)le + 1;
		}
		cr_assert_eq(*p, ' ', "line %zu: %s", lineno, line);
		p++;
		if (strcmp(p, "+Inf") == 0)
			out[n].value = INFINITY;
		else if (strcmp(p, "-Inf") == 0)
			out[n].value = -INFINITY;
		else {
			out[n].value = strtod(p, &end);
			/* an optional timestamp may follow */
			cr_assert(end != p && (*end == '\0' || (*end == ' ' &&
			    strspn(end + 1, "-0123456789") ==
			    strlen(end + 1))), "line %zu: value in %s",
			    lineno, line);
		}
		n++;
	}
	json_decref(types);
	json_decref(helps);
	return (n);
}

static double
sample_get(const struct sample *s, size_t n, const char *name,
    const char *labels)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (strcmp(s[i].name, name) == 0 &&
		    strcmp(s[i].labels, labels) == 0)
			return (s[i].value);
	return (NAN);
}

static struct sample samples[2048];

Test(pacing, metrics_parse_and_gateway_status)
{
	struct resp	 r;
	char		 ctype[128];
	size_t		 n, i;
	double		 v, prev;
	json_t		*j, *pool, *rate;
	int		 k, states;

	start_bd(NULL);
	wait_ready();
	for (k = 0; k < 3; k++) {
		cr_assert_eq(req_unix(&bd, "GET", "/iserver/accounts",
		    key_nocache, NULL, 0, &r), 0);
		cr_assert_eq(r.status, 200);
		resp_free(&r);
	}
	for (k = 0; k < 2; k++) {
		cr_assert_eq(req_unix(&bd, "GET", "/nowhere", key_only, NULL,
		    0, &r), 0);
		cr_assert_eq(r.status, 404);
		resp_free(&r);
	}
	cr_assert_eq(req_unix(&bd, "GET", "/metrics", key_only, NULL, 0, &r),
	    0);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(resp_header(&r, "Content-Type", ctype, sizeof(ctype)),
	    0);
	cr_assert(strstr(ctype, "text/plain") != NULL &&
	    strstr(ctype, "version=0.0.4") != NULL, "%s", ctype);
	n = prom_parse(r.body, samples, sizeof(samples) / sizeof(*samples));
	resp_free(&r);
	fprintf(stderr, "FIGURES metrics: %zu samples parsed\n", n);
	cr_assert_gt(n, 20);

	/* /iserver/accounts is on the /iserver/account route */
	v = sample_get(samples, n, "brokerd_requests_total",
	    "route=\"/iserver/account\",method=\"GET\",status=\"200\"");
	cr_assert_eq(v, 3, "/iserver/account GET 200: %g", v);
	v = sample_get(samples, n, "brokerd_requests_total",
	    "route=\"none\",method=\"GET\",status=\"404\"");
	cr_assert_eq(v, 2, "404s: %g", v);
	states = 0;
	for (i = 0; i < n; i++)
		if (strcmp(samples[i].name, "brokerd_state") == 0) {
			states++;
			cr_assert_eq(samples[i].value, strcmp(samples[i].labels,
			    "state=\"authenticated\"") == 0 ? 1 : 0, "%s %g",
			    samples[i].labels, samples[i].value);
		}
	cr_assert_eq(states, 6);
	/* histogram: cumulative, +Inf = count */
	prev = 0;
	for (i = 0; i < n; i++)
		if (strcmp(samples[i].name,
		    "brokerd_request_duration_seconds_bucket") == 0) {
			cr_assert_geq(samples[i].value, prev);
			prev = samples[i].value;
		}
	cr_assert_eq(prev, sample_get(samples, n,
	    "brokerd_request_duration_seconds_count", ""));
	cr_assert_geq(prev, 5);
	v = sample_get(samples, n, "brokerd_upstream_requests_total", "");
	cr_assert_geq(v, 3 + 2, "upstream requests %g", v);
	cr_assert_eq(sample_get(samples, n, "brokerd_queue_length", ""), 0);
	cr_assert_eq(sample_get(samples, n, "brokerd_gateway_rate_limit", ""),
	    10);
	cr_assert(!isnan(sample_get(samples, n, "brokerd_breaker_seconds",
	    "")));
	cr_assert(!isnan(sample_get(samples, n,
	    "brokerd_upstream_handshakes_total", "")));

	/* and the state moves the gauge */
	sim_state("{\"authenticated\":false,\"reauth_works\":false}");
	wait_state("unauthenticated", 5000);
	cr_assert_eq(req_unix(&bd, "GET", "/metrics", key_only, NULL, 0, &r),
	    0);
	n = prom_parse(r.body, samples, sizeof(samples) / sizeof(*samples));
	resp_free(&r);
	cr_assert_eq(sample_get(samples, n, "brokerd_state",
	    "state=\"unauthenticated\""), 1);
	cr_assert_eq(sample_get(samples, n, "brokerd_state",
	    "state=\"authenticated\""), 0);
	v = sample_get(samples, n, "brokerd_requests_total",
	    "route=\"/metrics\",method=\"GET\",status=\"200\"");
	cr_assert_eq(v, 1, "the first /metrics: %g", v);

	j = bd_json("/gateway/status");
	cr_assert_str_eq(json_string_value(json_object_get(j, "state")),
	    "unauthenticated");
	pool = json_object_get(j, "pool");
	rate = json_object_get(j, "rate");
	cr_assert(json_is_object(pool) && json_is_object(rate));
	cr_assert_eq(json_integer_value(json_object_get(pool, "size")), 4);
	cr_assert(json_is_integer(json_object_get(pool, "idle")));
	cr_assert(json_is_integer(json_object_get(pool, "busy")));
	cr_assert_geq(json_integer_value(json_object_get(pool, "handshakes")),
	    1);
	cr_assert_geq(json_integer_value(json_object_get(pool, "requests")),
	    5);
	cr_assert_eq(json_integer_value(json_object_get(rate, "limit")), 10);
	cr_assert_eq(json_integer_value(json_object_get(rate, "window_ms")),
	    1000);
	cr_assert_leq(json_integer_value(json_object_get(rate, "used")), 10);
	cr_assert_eq(json_integer_value(json_object_get(rate, "queued")), 0);
	cr_assert_geq(json_integer_value(json_object_get(rate, "granted")), 5);
	cr_assert(json_is_number(json_object_get(rate, "breaker_s")));
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j,
	    "gateway"), "fingerprint")), gw.fingerprint);
	cr_assert_geq(json_array_size(json_object_get(j, "transitions")), 2);
	json_decref(j);
}

/* ------------------------------------------------- pacing under load */

/*
 * Two burners, bounded by timeout(1) should the test die; each leads its
 * own process group (timeout's, and its sh), so one kill(-pid) ends both.
 */
static void
burners_start(void)
{
	size_t	 i;
	pid_t	 pid;

	for (i = 0; i < sizeof(burners) / sizeof(burners[0]); i++) {
		pid = fork();
		cr_assert_geq(pid, 0, "fork");
		if (pid == 0) {
			setpgid(0, 0);
			execlp("timeout", "timeout", "60", "sh", "-c",
			    "while :; do :; done", (char *)NULL);
			_exit(127);
		}
		setpgid(pid, pid);
		burners[i] = pid;
	}
}

/* Distinct conids, so that nothing coalesces. */
static const char *
snapshot_next(int idx, void *arg, char *buf, size_t len)
{
	unsigned	*seq = arg;

	(void)idx;
	snprintf(buf, len, "/iserver/marketdata/snapshot?conids=%u&fields=31",
	    100000 + (*seq)++);
	return (buf);
}

/*
 * The load: clients sending distinct no-cache snapshot requests
 * against the strict simulator (its windows count first-byte stamps with
 * no slack, IBKR's snapshot limit enforced).  Seconds and clients from
 * PACING_LOAD_S and PACING_LOAD_CLIENTS (make soak), PACING_SLACK_MS sets
 * limits.rate_slack_ms (to see what no slack does).  Prints one line.
 */
static void
snapshot_load(const char *name, int with_burners)
{
	struct tally	 t;
	json_t		*c;
	char		 yaml[128];
	const char	*e;
	double		 secs = 6, t0;
	long		 answers, rl, total;
	int		 clients = 80, maxw, lock;
	unsigned	 seq = 0;

	/* the figure is for brokerd beside two burners, not a second load */
	lock = load_lock();
	if ((e = getenv("PACING_LOAD_S")) != NULL && atof(e) > 0)
		secs = atof(e);
	if ((e = getenv("PACING_LOAD_CLIENTS")) != NULL && atoi(e) > 0)
		clients = atoi(e);
	yaml[0] = '\0';
	if ((e = getenv("PACING_SLACK_MS")) != NULL)
		snprintf(yaml, sizeof(yaml), "limits:\n  rate_slack_ms: %d\n",
		    atoi(e));
	start_bd(yaml[0] != '\0' ? yaml : NULL);
	wait_ready();
	/*
	 * A figure of timing: under ASan brokerd runs several times slower
	 * and its sends bunch up for reasons of its own; the plain run holds
	 * the promise, and the ASan run of the other tests the memory.
	 */
	if (brokerd_sanitized(&bd)) {
		close(lock);
		teardown();	/* a skip runs no .fini */
		cr_skip_test("timing figure: not under AddressSanitizer");
	}
	sim_behaviour("{\"window_slack_ms\":0,\"endpoint_limits\":true}");
	if (with_burners) {
		burners_start();
		sleep_ms(300);
	}
	json_decref(sim_json("POST", "/counters/reset", NULL));
	memset(&t, 0, sizeof(t));
	t0 = mono_s();
	answers = multi_run_gen(&bd, clients, snapshot_next, &seq,
	    key_nocache, secs, tally_cb, &t);
	t0 = mono_s() - t0;
	burners_stop();
	c = sim_counters();
	rl = (long)json_integer_value(json_object_get(c, "rate_limited"));
	total = (long)json_integer_value(json_object_get(c, "total"));
	maxw = (int)json_integer_value(json_object_get(c, "max_per_1000ms"));
	fprintf(stderr, "FIGURES %s: %d clients %.1f s%s: requests %ld "
	    "(200: %ld, local 429: %ld, other %ld); at the Gateway %ld, "
	    "its 429s %ld, most in any strict 1000 ms %d, pacing_violations "
	    "%zu; slowest answer %.2f s\n", name, clients, t0,
	    with_burners ? ", 2 CPU burners" : "", answers, t.ok, t.limited,
	    t.other, total, rl, maxw, json_object_size(json_object_get(c,
	    "pacing_violations")), t.max_s);
	cr_assert_eq(rl, 0, "the strict simulator answered %ld 429s", rl);
	assert_no_violations(c);
	cr_assert_leq(maxw, 10, "%d arrivals within 1000 ms", maxw);
	cr_assert_eq(t.other, 0, "%ld answers neither 200 nor local 429 "
	    "(last %ld)", t.other, t.other_status);
	cr_assert_gt(t.ok, 5 * (long)secs, "only %ld answers 200", t.ok);
	json_decref(c);
	close(lock);
}

/*
 * Issue 10: 80 clients, no cache, distinct snapshots; a strict 1000 ms
 * window at the Gateway must never see 11 (rate_slack_ms keeps every
 * window 100 ms longer than brokerd's send-side count).
 */
Test(pacing, snapshot_load_strict_quiet, .timeout = 40)
{
	snapshot_load("snapshot_load_quiet", 0);
}

/* The same beside two CPU-bound processes on a small machine. */
Test(pacing, snapshot_load_strict_burners, .timeout = 40)
{
	snapshot_load("snapshot_load_burners", 1);
}

/*
 * A client refused while the 429 breaker is open learns why and until
 * when, not "no slot came free"; Retry-After carries the breaker's cap
 * (15 minutes), the Gateway's own 3600 s is not believed.
 */
Test(pacing, breaker_tells_the_client_and_caps_retry_after)
{
	struct resp	 r;
	int		 ra;

	start_bd(NULL);
	wait_ready();
	sim_behaviour("{\"force_status\":429,\"retry_after_s\":3600,"
	    "\"paths\":[\"/trsrv/\"]}");
	cr_assert_eq(req_unix(&bd, "GET", "/trsrv/stocks?symbols=AAPL",
	    key_only, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 429, "%ld %s", r.status, r.body);
	assert_local_429(r.headers, r.body);
	cr_assert_eq(header_int(&r, "Retry-After"), 900, "%s", r.headers);
	resp_free(&r);
	sim_behaviour("{\"force_status\":null}");

	cr_assert_eq(req_unix(&bd, "GET", "/iserver/marketdata/snapshot?"
	    "conids=265598&fields=31", key_nocache, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 429, "%ld %s", r.status, r.body);
	assert_local_429(r.headers, r.body);
	ra = header_int(&r, "Retry-After");
	cr_assert(ra > 890 && ra <= 900, "Retry-After %d: %s", ra, r.headers);
	cr_assert(strstr(r.body, "Gateway answered 429") != NULL &&
	    strstr(r.body, "pausing client calls until 20") != NULL,
	    "the client is not told of the pause: %s", r.body);
	cr_assert(strstr(r.body, "came free") == NULL, "%s", r.body);
	cr_assert(strstr(r.body, "IBKR allows") == NULL, "%s", r.body);
	resp_free(&r);
}
