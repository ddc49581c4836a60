/*
 * After each transition to authenticated the watcher calls
 * /portfolio/accounts (1 per 5 s at IBKR); a client asking right after gets
 * that answer from the cache instead of a 429.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "harness.h"

static const char *const key_all[] = { "X-Bridge-Key: " TEST_KEY, NULL };

static int
status_has(const struct brokerd *b, const char *text)
{
	char	*s = slurp(b->status, NULL);
	int	 r = s != NULL && strstr(s, text) != NULL;

	free(s);
	return (r);
}

/* The simulator and brokerd, once the status file says authenticated. */
static void
start_authenticated(struct gwsim *g, struct brokerd *b)
{
	int	 i;

	cr_assert_eq(gwsim_start(g, "self"), 0);
	cr_assert_eq(brokerd_start(b, g, NULL), 0);
	for (i = 0; i < 100 && !status_has(b, "BROKERD_STATE=authenticated");
	    i++)
		sleep_ms(20);
	cr_assert(status_has(b, "BROKERD_STATE=authenticated"));
}

Test(bootstrap, first_client_call_is_served_from_the_watchers_copy,
    .timeout = 30)
{
	struct gwsim	 g;
	struct brokerd	 b;
	struct resp	 r;
	char		 age[32];
	int		 i;

	start_authenticated(&g, &b);
	for (i = 0; i < 100 && gwsim_count(&g,
	    "GET /v1/api/portfolio/accounts") < 1; i++)
		sleep_ms(20);
	req_unix(&b, "GET", "/portfolio/accounts", key_all, NULL, 0, &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	cr_assert(strstr(r.body, "DU123456") != NULL);
	cr_assert_eq(resp_header(&r, "Age", age, sizeof(age)), 0,
	    "not from the cache");
	resp_free(&r);
	cr_assert_eq(gwsim_count(&g, "GET /v1/api/portfolio/accounts"), 1);
	brokerd_stop(&b);
	gwsim_stop(&g);
}

static long
status_checked(const struct brokerd *b)
{
	char	*s = slurp(b->status, NULL), *p;
	long	 t = -1;

	if (s != NULL && (p = strstr(s, "BROKERD_CHECKED_UNIX=")) != NULL)
		t = strtol(p + 21, NULL, 10);
	free(s);
	return (t);
}

/*
 * A check the Gateway answers 503 (restarting) keeps the state but is a
 * check: BROKERD_CHECKED must move, or ibkr-status calls a running
 * brokerd stale after three intervals.
 */
Test(bootstrap, checked_moves_while_the_gateway_answers_503, .timeout = 30)
{
	struct gwsim	 g;
	struct brokerd	 b;
	long		 t0, t1;

	start_authenticated(&g, &b);
	cr_assert_eq(gwsim_ctl(&g, "POST", "/behaviour", "{\"force_status\":"
	    "503,\"paths\":[\"/iserver/auth/status\",\"/tickle\"]}", NULL), 0);
	sleep_ms(1500);
	t0 = status_checked(&b);
	cr_assert_gt(t0, 0);
	sleep_ms(3500);
	t1 = status_checked(&b);
	cr_assert_gt(t1, t0, "BROKERD_CHECKED_UNIX stayed at %ld", t0);
	cr_assert(status_has(&b, "BROKERD_STATE=authenticated"));
	brokerd_stop(&b);
	gwsim_stop(&g);
}
