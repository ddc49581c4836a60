/*
 * A Gateway whose certificate is not the pinned one: clients read 502
 * gateway_certificate naming both fingerprints, and the status file keeps
 * gateway_down with the whole message (it used to be cut short).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "harness.h"

#define WRONG_PIN	"00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:" \
			"01:23:45:67:89:AB:CD:EF:FE:DC:BA:98:76:54:32:10"

static const char *const key_all[] = { "X-Bridge-Key: " TEST_KEY, NULL };

/* BROKERD_MESSAGE as a shell reads it: `. status` is the contract. */
static char *
sourced_message(const struct brokerd *b)
{
	char	 cmd[512], buf[2048];
	FILE	*p;
	size_t	 n;

	snprintf(cmd, sizeof(cmd), "sh -c '. \"$0\" && printf %%s "
	    "\"$BROKERD_STATE $BROKERD_MESSAGE\"' %s", b->status);
	if ((p = popen(cmd, "r")) == NULL)
		return (NULL);
	n = fread(buf, 1, sizeof(buf) - 1, p);
	buf[n] = '\0';
	if (pclose(p) != 0)
		return (NULL);
	return (strdup(buf));
}

static void
assert_error(const struct resp *r, const char *want_msg)
{
	json_t		*j;
	json_error_t	 je;

	cr_assert_eq(r->status, 502, "%ld %s", r->status, r->body);
	j = json_loadb(r->body, r->len, 0, &je);
	cr_assert_not_null(j, "%s", r->body);
	cr_assert_str_eq(json_string_value(json_object_get(j, "error")),
	    "gateway_certificate");
	cr_assert(strstr(json_string_value(json_object_get(j, "message")),
	    want_msg) != NULL, "%s", r->body);
	json_decref(j);
}

Test(pin, mismatch_is_gateway_certificate_with_both_fingerprints,
    .timeout = 60)
{
	struct gwsim	 g;
	struct brokerd	 b;
	struct resp	 r;
	char		 conf[512], want[512], *msg = NULL;
	int		 i;

	cr_assert_eq(gwsim_start(&g, "self"), 0);
	snprintf(conf, sizeof(conf), "gateway:\n  url: %s\n  tls: { "
	    "pin_sha256: \"%s\" }\n  timeout_ms: 3000\n", g.url, WRONG_PIN);
	snprintf(want, sizeof(want), "TLS handshake failed: the Gateway's "
	    "certificate SHA-256 %s does not match gateway.tls.pin_sha256 %s",
	    g.fingerprint, WRONG_PIN);
	cr_assert_eq(brokerd_start(&b, &g, conf), 0);

	for (i = 0; i < 200; i++) {
		free(msg);
		msg = sourced_message(&b);
		if (msg != NULL && strncmp(msg, "gateway_down ", 13) == 0)
			break;
		sleep_ms(50);
	}
	cr_assert_not_null(msg);
	cr_assert_str_eq(msg + 13, want, "status file: %s", msg);
	cr_assert(strncmp(msg, "gateway_down ", 13) == 0, "%s", msg);
	free(msg);

	/* a /iserver route fails fast from the watcher's state */
	cr_assert_eq(req_unix(&b, "GET", "/iserver/accounts", key_all, NULL,
	    0, &r), 0);
	assert_error(&r, want);
	resp_free(&r);
	/* another route goes to the Gateway and meets the pin itself */
	cr_assert_eq(req_unix(&b, "GET", "/trsrv/stocks?symbols=AAPL",
	    key_all, NULL, 0, &r), 0);
	assert_error(&r, want);
	resp_free(&r);

	cr_assert_eq(req_unix(&b, "GET", "/gateway/status", key_all, NULL, 0,
	    &r), 0);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, want) != NULL, "%s", r.body);
	resp_free(&r);

	cr_assert_eq(gwsim_count(&g, "total"), 0, "a request got through");
	brokerd_stop(&b);
	gwsim_stop(&g);
}

/*
 * With gateway.tls.ca_file, a reload reads the file again, as nginx does:
 * a bundle replaced in place (a CA rotated, or one no longer trusted)
 * counts from the reload, not from the next restart.
 */
Test(pin, reload_rereads_the_ca_file, .timeout = 60)
{
	struct gwsim	 g;
	struct brokerd	 b;
	struct resp	 r;
	char		 ca[400], extra[1024], cmd[1400];
	char		*pem;
	size_t		 len;
	FILE		*f;
	int		 i;

	cr_assert_eq(gwsim_start(&g, "ca"), 0);
	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, &g, NULL), 0);
	snprintf(ca, sizeof(ca), "%s/ca.pem", b.dir);
	cr_assert_not_null(pem = slurp(g.ca_file, &len));
	cr_assert_not_null(f = fopen(ca, "w"));
	cr_assert_eq(fwrite(pem, 1, len, f), len);
	fclose(f);
	free(pem);
	snprintf(extra, sizeof(extra), "gateway:\n  url: %s\n  tls: { "
	    "ca_file: %s }\n  timeout_ms: 3000\n", g.url, ca);
	cr_assert_eq(brokerd_write_conf(&b, &g, extra), 0);
	cr_assert_eq(brokerd_spawn(&b, NULL), 0);
	req_unix(&b, "GET", "/trsrv/stocks?symbols=AAPL", key_all, NULL, 0,
	    &r);
	cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
	resp_free(&r);

	/* another CA, same path: the Gateway's certificate is not its */
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey rsa:2048 "
	    "-nodes -keyout '%s/other.key' -out '%s' -days 2 -subj "
	    "'/CN=another CA' >/dev/null 2>&1", b.dir, ca);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	brokerd_signal(&b, SIGHUP);
	for (i = 0; i < 100 && !brokerd_log_has(&b, "configuration reloaded");
	    i++)
		sleep_ms(50);
	cr_assert(brokerd_log_has(&b, "configuration reloaded"));
	req_unix(&b, "GET", "/trsrv/stocks?symbols=MSFT", key_all, NULL, 0,
	    &r);
	assert_error(&r, "TLS handshake failed");
	resp_free(&r);
	brokerd_stop(&b);
	gwsim_stop(&g);
}
