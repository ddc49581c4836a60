/*
 * The trade journal through the real daemon: the intent line is on disk
 * before the Gateway sees the order, the outcome follows; reads are not
 * journaled.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "harness.h"

static const char *const key_all[] = { "X-Bridge-Key: " TEST_KEY,
    "Content-Type: application/json", NULL };

Test(journal, order_intent_and_outcome, .timeout = 30)
{
	struct gwsim	 g;
	struct brokerd	 b;
	struct resp	 r;
	char		 extra[512], jpath[400], *text, *nl;
	json_t		*a, *o;
	static const char order[] = "{\"orders\":[{\"conid\":265598,"
	    "\"side\":\"BUY\",\"orderType\":\"MKT\",\"quantity\":1,"
	    "\"tif\":\"DAY\",\"cOID\":\"journal-test-1\"}]}";

	cr_assert_eq(gwsim_start(&g, "self"), 0);
	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, &g, NULL), 0);
	snprintf(jpath, sizeof(jpath), "%s/journal", b.dir);
	snprintf(extra, sizeof(extra), "journal: { file: %s }\n", jpath);
	cr_assert_eq(brokerd_write_conf(&b, &g, extra), 0);
	cr_assert_eq(brokerd_spawn(&b, NULL), 0);
	sleep_ms(300);

	req_unix(&b, "GET", "/iserver/accounts", key_all, NULL, 0, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	resp_free(&r);
	req_unix(&b, "POST", "/iserver/account/DU123456/orders", key_all,
	    order, sizeof(order) - 1, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	resp_free(&r);

	cr_assert_not_null(text = slurp(jpath, NULL));
	cr_assert_not_null(nl = strchr(text, '\n'), "%s", text);
	*nl = '\0';
	cr_assert_not_null(a = json_loads(text, 0, NULL), "%s", text);
	cr_assert_not_null(o = json_loads(nl + 1, 0, NULL), "%s", nl + 1);
	cr_assert_str_eq(json_string_value(json_object_get(a, "phase")),
	    "intent");
	cr_assert_str_eq(json_string_value(json_object_get(a, "target")),
	    "/v1/api/iserver/account/DU123456/orders");
	cr_assert_str_eq(json_string_value(json_object_get(a, "who")),
	    "key:test");
	cr_assert_str_eq(json_string_value(json_object_get(o, "phase")),
	    "outcome");
	cr_assert_eq(json_integer_value(json_object_get(o, "status")), 200);
	cr_assert_eq(json_integer_value(json_object_get(a, "id")),
	    json_integer_value(json_object_get(o, "id")));
	/* the Gateway's question is kept with the outcome */
	cr_assert(json_is_array(json_object_get(o, "body")));
	/* only two lines: the read was not journaled */
	cr_assert_null(strchr(nl + 1, '\n') != NULL ?
	    strchr(strchr(nl + 1, '\n') + 1, '\n') : NULL);
	json_decref(a);
	json_decref(o);
	free(text);
	brokerd_stop(&b);
	gwsim_stop(&g);
}

/*
 * A reload that keeps journal.file still applies its new max_bytes and
 * keep: the journal rotates at the reloaded size.
 */
Test(journal, reload_applies_max_bytes_and_keep, .timeout = 60)
{
	struct gwsim	 g;
	struct brokerd	 b;
	struct resp	 r;
	char		 extra[512], jpath[400], rotated[420], order[256];
	int		 i;

	cr_assert_eq(gwsim_start(&g, "self"), 0);
	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, &g, NULL), 0);
	snprintf(jpath, sizeof(jpath), "%s/journal", b.dir);
	snprintf(rotated, sizeof(rotated), "%s.1", jpath);
	snprintf(extra, sizeof(extra), "journal: { file: %s }\n", jpath);
	cr_assert_eq(brokerd_write_conf(&b, &g, extra), 0);
	cr_assert_eq(brokerd_spawn(&b, NULL), 0);
	snprintf(extra, sizeof(extra), "journal: { file: %s, max_bytes: 4096, "
	    "keep: 1 }\n", jpath);
	cr_assert_eq(brokerd_write_conf(&b, &g, extra), 0);
	brokerd_signal(&b, SIGHUP);
	for (i = 0; i < 100 && !brokerd_log_has(&b, "configuration reloaded");
	    i++)
		sleep_ms(50);
	cr_assert(brokerd_log_has(&b, "configuration reloaded"));
	for (i = 0; i < 20 && access(rotated, F_OK) != 0; i++) {
		snprintf(order, sizeof(order), "{\"orders\":[{\"conid\":265598,"
		    "\"side\":\"BUY\",\"orderType\":\"MKT\",\"quantity\":1,"
		    "\"tif\":\"DAY\",\"cOID\":\"journal-reload-%d\"}]}", i);
		req_unix(&b, "POST", "/iserver/account/DU123456/orders",
		    key_all, order, strlen(order), &r);
		cr_assert_eq(r.status, 200, "%s", r.body);
		resp_free(&r);
	}
	cr_assert_eq(access(rotated, F_OK), 0, "no rotation at the reloaded "
	    "max_bytes after %d orders", i);
	brokerd_stop(&b);
	gwsim_stop(&g);
}
