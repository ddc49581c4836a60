/*
 * session.c, its pure parts: reading auth/status and tickle answers, and
 * the state the raw fields mean.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "brokerd.h"

static int
parse(const char *json, struct gw_status *st)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->message, sizeof(st->message), "%s", "untouched");
	return (session_parse_auth(json, strlen(json), st));
}

Test(session, parse_auth_status)
{
	struct gw_status st;

	cr_assert_eq(parse("{\"authenticated\":true,\"competing\":false,"
	    "\"connected\":true,\"message\":\"\",\"MAC\":\"98:F2:B3:23:BF:A0\","
	    "\"serverInfo\":{\"serverName\":\"JifN19053\","
	    "\"serverVersion\":\"Build 10.25.0p\"}}", &st), 0);
	cr_expect_eq(st.authenticated, 1);
	cr_expect_eq(st.connected, 1);
	cr_expect_eq(st.competing, 0);
	cr_expect_str_eq(st.message, "");

	cr_assert_eq(parse("{\"authenticated\":false,\"competing\":true,"
	    "\"connected\":true,\"message\":\"competing session\"}", &st), 0);
	cr_expect_eq(st.authenticated, 0);
	cr_expect_eq(st.connected, 1);
	cr_expect_eq(st.competing, 1);
	cr_expect_str_eq(st.message, "competing session");
}

Test(session, parse_tickle)
{
	struct gw_status st;

	cr_assert_eq(parse("{\"session\":\"0f1e2d\",\"ssoExpires\":460302,"
	    "\"collission\":false,\"userId\":1234,\"hmds\":{\"error\":"
	    "\"no bridge\"},\"iserver\":{\"authStatus\":{\"authenticated\":"
	    "false,\"competing\":false,\"connected\":true,\"message\":"
	    "\"reconnect\",\"MAC\":\"x\",\"serverInfo\":{}}}}", &st), 0);
	cr_expect_eq(st.authenticated, 0);
	cr_expect_eq(st.connected, 1);
	cr_expect_eq(st.competing, 0);
	cr_expect_str_eq(st.message, "reconnect");
	/* the tickle's own "no bridge" is not the auth status */
	cr_expect_eq(session_state_of(&st), GW_UNAUTHENTICATED);
}

Test(session, parse_missing_fields)
{
	struct gw_status st;

	/* logged out: serverInfo and message absent */
	cr_assert_eq(parse("{\"authenticated\":false,\"competing\":false,"
	    "\"connected\":false,\"MAC\":\"x\"}", &st), 0);
	cr_expect_eq(st.connected, 0);
	cr_expect_str_eq(st.message, "");
	/* only authenticated: the rest reads as false */
	cr_assert_eq(parse("{\"authenticated\":true}", &st), 0);
	cr_expect_eq(st.authenticated, 1);
	cr_expect_eq(st.connected, 0);
	cr_expect_eq(session_state_of(&st), GW_UNAUTHENTICATED);
	/* "fail" explains when message is empty */
	cr_assert_eq(parse("{\"authenticated\":false,\"connected\":false,"
	    "\"message\":\"\",\"fail\":\"no backend\"}", &st), 0);
	cr_expect_str_eq(st.message, "no backend");
	/* wrong types read as false, a non-string message as empty */
	cr_assert_eq(parse("{\"authenticated\":\"true\",\"connected\":1,"
	    "\"competing\":null,\"message\":42}", &st), 0);
	cr_expect_eq(st.authenticated, 0);
	cr_expect_eq(st.connected, 1);
	cr_expect_eq(st.competing, 0);
	cr_expect_str_eq(st.message, "");
}

Test(session, parse_not_auth)
{
	static const char *const bad[] = {
		"",
		"null",
		"[]",
		"[{\"authenticated\":true}]",
		"\"authenticated\"",
		"{}",
		"{\"error\":\"no session\"}",
		"{\"iserver\":{}}",
		"{\"iserver\":{\"authStatus\":{}}}",
		"{\"iserver\":{\"authStatus\":[]}}",
		"{\"iserver\":\"x\"}",
		"{\"authenticated\":true",
		"{\"authenticated\":true}}",
		"<html>502 Bad Gateway</html>",
		"\xff\xfe\x00garbage",
		"{\"authenticated\":true,\"message\":\"\xc3\x28\"}",
	};
	struct gw_status st;
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(parse(bad[i], &st), -1, "case %zu: %s", i,
		    bad[i]);
		cr_expect_str_eq(st.message, "untouched", "case %zu", i);
	}
	cr_expect_eq(session_parse_auth(NULL, 0, &st), -1);
	/* len bounds the body: no NUL needed, none read past it */
	cr_expect_eq(session_parse_auth("{\"authenticated\":true}xxxx", 22,
	    &st), 0);
	cr_expect_eq(session_parse_auth("{\"authenticated\":true}", 10, &st),
	    -1);
}

Test(session, parse_long_and_odd_message)
{
	struct gw_status st;
	char		 json[2048], msg[1200];
	size_t		 i, n;

	/* 2-byte characters across the 511-byte cut: no half character */
	for (i = 0; i + 2 < sizeof(msg); i += 2)
		memcpy(msg + i, "\xc3\xa9", 2);
	msg[i] = '\0';
	snprintf(json, sizeof(json), "{\"authenticated\":false,"
	    "\"message\":\"x%s\"}", msg);
	cr_assert_eq(parse(json, &st), 0);
	n = strlen(st.message);
	cr_expect_leq(n, sizeof(st.message) - 1);
	cr_expect_geq(n, sizeof(st.message) - 4);
	cr_expect_eq(n % 2, 1, "cut inside a character: %zu", n);
	/* an embedded \u0000 ends the C string; escapes are decoded */
	cr_assert_eq(parse("{\"authenticated\":true,\"message\":"
	    "\"a\\nb\\u0000c\"}", &st), 0);
	cr_expect_str_eq(st.message, "a\nb");
}

Test(session, state_of_table)
{
	static const struct {
		int		 authenticated, connected, competing;
		enum gw_state	 want;
	} t[] = {
		{ 1, 1, 0, GW_AUTHENTICATED },
		{ 1, 1, 1, GW_COMPETING },
		{ 0, 1, 1, GW_COMPETING },
		{ 0, 0, 1, GW_COMPETING },
		{ 1, 0, 1, GW_COMPETING },
		{ 0, 1, 0, GW_UNAUTHENTICATED },
		{ 1, 0, 0, GW_UNAUTHENTICATED },
		{ 0, 0, 0, GW_UNAUTHENTICATED },
	};
	struct gw_status st;
	size_t		 i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&st, 0, sizeof(st));
		st.authenticated = t[i].authenticated;
		st.connected = t[i].connected;
		st.competing = t[i].competing;
		cr_expect_eq(session_state_of(&st), t[i].want, "case %zu", i);
	}
}

/*
 * The watcher's state machine, with upstream.c replaced by a fake that
 * records the requests and lets the test answer them (these definitions
 * win over libbrokerd.a's, which then never pulls upstream.o in).
 */
#include <ev.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXREQ	64

static struct upstream_req *pending[MAXREQ];
static size_t	 npending;
static int	 jar_clears;
static int	 cancels;
static int	 submits;

void
upstream_submit(struct upstream *u, struct upstream_req *r)
{
	(void)u;
	cr_assert_lt(npending, MAXREQ);
	cr_assert_eq(r->watcher, 1, "a watcher call without watcher = 1");
	pending[npending++] = r;
	submits++;
}

void
upstream_cancel(struct upstream *u, struct upstream_req *r)
{
	size_t	 i;

	(void)u;
	for (i = 0; i < npending; i++)
		if (pending[i] == r) {
			pending[i] = pending[--npending];
			cancels++;
			return;
		}
	cr_assert_fail("cancel of a request not in flight");
}

void
upstream_req_init(struct upstream_req *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->target);
	buf_init(&r->body);
}

void
upstream_req_free(struct upstream_req *r)
{
	buf_free(&r->target);
	buf_free(&r->body);
	free(r->content_type);
	free(r->accept);
	r->content_type = r->accept = NULL;
}

void
upstream_jar_clear(struct upstream *u)
{
	(void)u;
	jar_clears++;
}

static char		 sdir[64];
static char		 spath[128], hpath[128];
static struct config	 conf;
static struct ev_loop	*loop;
static struct session	*sess;

static void
sm_setup(void)
{
	snprintf(sdir, sizeof(sdir), "/tmp/test_session.XXXXXX");
	cr_assert_not_null(mkdtemp(sdir));
	snprintf(spath, sizeof(spath), "%s/status", sdir);
	snprintf(hpath, sizeof(hpath), "%s/history", sdir);
	memset(&conf, 0, sizeof(conf));
	conf.check_interval_s = 1;
	conf.tickle_interval_s = 1;
	conf.reauthenticate = 1;
	conf.status_file = spath;
	conf.history_file = hpath;
	conf.refs = 1;		/* the test's own: watcher calls count on it */
	npending = 0;
	jar_clears = cancels = submits = 0;
	log_init(LOG_LEVEL_WARN, 0);
	loop = ev_loop_new(EVFLAG_AUTO);
	cr_assert_not_null(loop);
	/* a non-NULL handle: the fake never dereferences it */
	sess = session_new(loop, &conf, (struct upstream *)&conf);
	cr_assert_not_null(sess);
}

static void
sm_teardown(void)
{
	char	 cmd[128];

	session_free(sess);
	ev_loop_destroy(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sdir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", sdir);
}

/* The request in flight for this method and target, or NULL. */
static struct upstream_req *
find(const char *method, const char *target)
{
	size_t	 i;

	for (i = 0; i < npending; i++)
		if (strcmp(pending[i]->method, method) == 0 &&
		    strcmp(pending[i]->target.data, target) == 0)
			return (pending[i]);
	return (NULL);
}

/* Run the loop until that request is submitted (timers), at most ~3 s. */
static struct upstream_req *
wait_for(const char *method, const char *target)
{
	struct upstream_req *r;
	int	 i;

	for (i = 0; i < 300 && (r = find(method, target)) == NULL; i++) {
		ev_run(loop, EVRUN_NOWAIT);
		usleep(10000);
	}
	cr_assert_not_null(r, "no %s %s", method, target);
	return (r);
}

static void
answer(struct upstream_req *r, enum upstream_error e, int status,
    const char *body)
{
	struct http_response *resp = NULL;
	size_t	 i;

	for (i = 0; i < npending; i++)
		if (pending[i] == r) {
			pending[i] = pending[--npending];
			break;
		}
	if (e == UPSTREAM_OK) {
		resp = calloc(1, sizeof(*resp));
		cr_assert_not_null(resp);
		resp->status = status;
		buf_init(&resp->body);
		cr_assert_eq(buf_puts(&resp->body, body), 0);
	} else
		snprintf(r->errmsg, sizeof(r->errmsg), "%s",
		    "connect 127.0.0.1:5000: Connection refused");
	r->cb(r, e, resp, r->arg);
}

static char *
status_value(const char *key)
{
	static char	 val[1024];
	char		 line[1200];
	size_t		 kl = strlen(key);
	FILE		*f = fopen(spath, "r");

	val[0] = '\0';
	if (f == NULL)
		return (NULL);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, kl) == 0 && line[kl] == '=') {
			snprintf(val, sizeof(val), "%s", line + kl + 1);
			val[strcspn(val, "\n")] = '\0';
		}
	fclose(f);
	return (val);
}

static int
history_lines(void)
{
	FILE	*f = fopen(hpath, "r");
	int	 c, n = 0;

	if (f == NULL)
		return (0);
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return (n);
}

#define AUTH_OK	"{\"authenticated\":true,\"competing\":false," \
		"\"connected\":true,\"message\":\"\"}"
#define AUTH_NO	"{\"authenticated\":false,\"competing\":false," \
		"\"connected\":true,\"message\":\"reconnect\"}"

TestSuite(watcher, .init = sm_setup, .fini = sm_teardown, .timeout = 20);

Test(watcher, start_check_transitions_and_bootstrap)
{
	struct upstream_req *r;

	session_start(sess);
	cr_expect_str_eq(status_value("BROKERD_STATE"), "starting");
	cr_expect_str_eq(status_value("BROKERD_CHECKED"), "''");
	r = find("GET", "/v1/api/iserver/auth/status");
	cr_assert_not_null(r, "the first check runs at once");
	answer(r, UPSTREAM_OK, 200, AUTH_OK);
	cr_expect_eq(session_status(sess)->state, GW_AUTHENTICATED);
	cr_expect_str_eq(status_value("BROKERD_STATE"), "authenticated");
	cr_expect_str_eq(status_value("BROKERD_SEQ"), "1");
	cr_expect_eq(history_lines(), 1);
	cr_expect_not_null(find("GET", "/v1/api/iserver/accounts"));
	cr_expect_not_null(find("GET", "/v1/api/portfolio/accounts"));
	answer(find("GET", "/v1/api/iserver/accounts"), UPSTREAM_OK, 200, "[]");
	/* portfolio/accounts is 1/5s: refused by pacing, sent again later */
	answer(find("GET", "/v1/api/portfolio/accounts"), UPSTREAM_RATE_LIMITED,
	    0, NULL);
	cr_expect_null(find("GET", "/v1/api/portfolio/accounts"));
	answer(wait_for("GET", "/v1/api/portfolio/accounts"), UPSTREAM_OK, 200,
	    "[]");
	cr_expect_null(find("GET", "/v1/api/iserver/accounts"),
	    "only the refused call goes again");

	/* a tickle answer is a check: connected, not authenticated */
	r = wait_for("POST", "/v1/api/tickle");
	cr_expect_eq(r->body.len, 0);
	answer(r, UPSTREAM_OK, 200, "{\"session\":\"x\",\"iserver\":"
	    "{\"authStatus\":" AUTH_NO "}}");
	cr_expect_eq(session_status(sess)->state, GW_UNAUTHENTICATED);
	cr_expect_str_eq(status_value("BROKERD_MESSAGE"), "reconnect");
	cr_expect_str_eq(status_value("BROKERD_SEQ"), "2");
	/* ... so ssodh/init, compete false, JSON */
	r = find("POST", "/v1/api/iserver/auth/ssodh/init");
	cr_assert_not_null(r);
	cr_expect_str_eq(r->body.data, "{\"publish\":true,\"compete\":false}");
	cr_expect_str_eq(r->content_type, "application/json");
	answer(r, UPSTREAM_OK, 200, AUTH_OK);
	/* a check about 1 s later brings it back; bootstrap again */
	r = wait_for("GET", "/v1/api/iserver/auth/status");
	answer(r, UPSTREAM_OK, 200, AUTH_OK);
	cr_expect_eq(session_status(sess)->state, GW_AUTHENTICATED);
	cr_expect_not_null(find("GET", "/v1/api/iserver/accounts"));
	cr_expect_eq(history_lines(), 3);

	/* the history for /gateway/status */
	{
		struct buf	 b;

		buf_init(&b);
		cr_assert_eq(session_history_json(sess, &b), 0);
		cr_expect_not_null(strstr(b.data, "[{\"from\":\"starting\","
		    "\"to\":\"authenticated\",\"at\":\""));
		cr_expect_not_null(strstr(b.data, "\"from\":\"authenticated\","
		    "\"to\":\"unauthenticated\""));
		cr_expect_not_null(strstr(b.data, "\"message\":\"reconnect\""));
		buf_free(&b);
	}
}

Test(watcher, errors_401_down_and_kept_states)
{
	struct upstream_req *r;
	char		 checked[64];

	session_start(sess);
	answer(find("GET", "/v1/api/iserver/auth/status"), UPSTREAM_OK, 200,
	    AUTH_OK);
	/* an answer that is not about the session: state and file kept */
	snprintf(checked, sizeof(checked), "%s",
	    status_value("BROKERD_CHECKED_UNIX"));
	r = wait_for("POST", "/v1/api/tickle");
	answer(r, UPSTREAM_OK, 503, "{\"error\":\"restarting\"}");
	cr_expect_eq(session_status(sess)->state, GW_AUTHENTICATED);
	/* rate limited (breaker): not a check either */
	r = wait_for("GET", "/v1/api/iserver/auth/status");
	answer(r, UPSTREAM_RATE_LIMITED, 0, NULL);
	cr_expect_eq(session_status(sess)->state, GW_AUTHENTICATED);
	cr_expect_eq(jar_clears, 0);

	/* 401: unauthenticated, not connected, cookies dropped */
	r = wait_for("POST", "/v1/api/tickle");
	answer(r, UPSTREAM_OK, 401, "{\"error\":\"not authenticated\"}");
	cr_expect_eq(session_status(sess)->state, GW_UNAUTHENTICATED);
	cr_expect_eq(session_status(sess)->connected, 0);
	cr_expect_eq(jar_clears, 1);
	cr_expect_str_eq(status_value("BROKERD_CONNECTED"), "0");
	cr_expect_null(find("POST", "/v1/api/iserver/auth/ssodh/init"),
	    "no ssodh/init without a connection");

	/* transport errors: gateway_down, the reason in the message */
	r = wait_for("GET", "/v1/api/iserver/auth/status");
	answer(r, UPSTREAM_UNREACHABLE, 0, NULL);
	cr_expect_eq(session_status(sess)->state, GW_DOWN);
	cr_expect_str_eq(status_value("BROKERD_STATE"), "gateway_down");
	cr_expect_str_eq(status_value("BROKERD_MESSAGE"),
	    "'connect 127.0.0.1:5000: Connection refused'");
	cr_expect_str_eq(status_value("BROKERD_SEQ"), "3");
	cr_expect_eq(history_lines(), 3);
	/* same state again: no transition, but CHECKED is rewritten */
	r = wait_for("GET", "/v1/api/iserver/auth/status");
	answer(r, UPSTREAM_TIMEOUT, 0, NULL);
	cr_expect_str_eq(status_value("BROKERD_SEQ"), "3");
	cr_expect_eq(history_lines(), 3);
	cr_expect_str_neq(status_value("BROKERD_CHECKED_UNIX"), "''");
}

Test(watcher, reauth_gaps_observe_and_stop)
{
	struct upstream_req *r;
	int		 n;

	conf.compete = 1;
	conf.tickle_interval_s = 0;	/* off */
	session_start(sess);
	answer(find("GET", "/v1/api/iserver/auth/status"), UPSTREAM_OK, 200,
	    AUTH_NO);
	r = find("POST", "/v1/api/iserver/auth/ssodh/init");
	cr_assert_not_null(r);
	cr_expect_str_eq(r->body.data, "{\"publish\":true,\"compete\":true}");
	answer(r, UPSTREAM_OK, 200, AUTH_NO);
	/* still not authenticated: no second ssodh/init within 30 s */
	r = wait_for("GET", "/v1/api/iserver/auth/status");
	answer(r, UPSTREAM_OK, 200, AUTH_NO);
	cr_expect_null(find("POST", "/v1/api/iserver/auth/ssodh/init"));
	/* a forced one may go once the second is over */
	usleep(300000);
	session_reauthenticate(sess);
	r = find("POST", "/v1/api/iserver/auth/ssodh/init");
	cr_assert_not_null(r, "POST /gateway/reauthenticate is not held 30 s");
	answer(r, UPSTREAM_OK, 500, "{}");
	session_reauthenticate(sess);
	cr_expect_null(find("POST", "/v1/api/iserver/auth/ssodh/init"),
	    "two forced ssodh/init within a second");

	/* observe: 401 and "no bridge" check at once; others do not */
	while ((r = find("GET", "/v1/api/iserver/auth/status")) == NULL) {
		ev_run(loop, EVRUN_NOWAIT);
		usleep(10000);
	}
	answer(r, UPSTREAM_OK, 200, AUTH_OK);
	usleep(1100000);
	n = submits;
	session_observe(sess, 200, "{}", 2);
	session_observe(sess, 400, "{\"error\":\"bad order\"}", 21);
	session_observe(sess, 429, "", 0);
	cr_expect_eq(submits, n, "a check for an answer that needs none");
	session_observe(sess, 400, "{\"error\":\"Bad Request: no bridge\"}",
	    34);
	cr_expect_eq(submits, n + 1);
	cr_assert_not_null(find("GET", "/v1/api/iserver/auth/status"));
	/* one in flight: no second */
	session_observe(sess, 401, "", 0);
	session_check_now(sess);
	cr_expect_eq(submits, n + 1);

	/* stop: the calls in flight (check, bootstrap) cancelled */
	n = (int)npending;
	cr_expect_eq(n, 3);
	session_stop(sess);
	cr_expect_eq(cancels, n);
	cr_expect_eq(npending, 0);
	cr_expect_str_eq(status_value("BROKERD_STATE"), "stopped");
	session_check_now(sess);
	session_reauthenticate(sess);
	cr_expect_eq(npending, 0, "calls after stop");
}
