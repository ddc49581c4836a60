/*
 * config.c: defaults, every error path with its file:line:column and key,
 * the environment, key files, loopback checks, and the shipped
 * config/brokerd.yaml being exactly the built-in defaults.
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <criterion/criterion.h>
#include <grp.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brokerd.h"

static char	 tmpdir[] = "/tmp/test_config.XXXXXX";
static char	 err[1024];

static void
setup(void)
{
	cr_assert_not_null(mkdtemp(tmpdir));
	unsetenv("IBKR_BRIDGE_KEY");
	unsetenv("IBKR_BRIDGE_URL");
	unsetenv("IBKR_GATEWAY_URL");
}

static void
teardown(void)
{
	char	 cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(config, .init = setup, .fini = teardown);

static const char *
tpath(const char *name)
{
	static char	 paths[4][512];
	static int	 next;
	char		*p = paths[next++ % 4];

	snprintf(p, 512, "%s/%s", tmpdir, name);
	return (p);
}

static const char *
write_file(const char *name, const char *text, mode_t mode)
{
	const char	*path = tpath(name);
	FILE		*f;

	f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(chmod(path, mode), 0);
	return (path);
}

static struct config *
load_text(const char *text)
{
	err[0] = '\0';
	return (config_load(write_file("t.yaml", text, 0644), err,
	    sizeof(err)));
}

/* The error must start "DIR/t.yaml:L:C: " and mention what. */
static void
expect_error(const char *text, int line, int col, const char *what)
{
	struct config	*conf;
	char		 prefix[600];

	conf = load_text(text);
	cr_assert_null(conf, "loaded, but expected an error for:\n%s", text);
	snprintf(prefix, sizeof(prefix), "%s/t.yaml:%d:%d: ", tmpdir, line,
	    col);
	cr_expect(strncmp(err, prefix, strlen(prefix)) == 0,
	    "for:\n%s\nexpected prefix \"%s\", got \"%s\"", text, prefix, err);
	cr_expect_not_null(strstr(err, what),
	    "for:\n%s\nexpected \"%s\" in \"%s\"", text, what, err);
}

Test(config, defaults_without_file)
{
	struct config	*c = config_load(NULL, err, sizeof(err));

	cr_assert_not_null(c, "%s", err);
	cr_assert_null(c->file);
	cr_assert_str_eq(c->unix_path, "/run/brokerd/brokerd.sock");
	cr_assert_eq(c->unix_mode, 0660);
	cr_assert_str_eq(c->unix_group, "brokerd");
	cr_assert_eq(c->unix_group_default, 1);
	cr_assert_null(c->tcp);
	cr_assert_eq(c->tcp_anonymous, 0);
	cr_assert_str_eq(c->gw_url, "https://127.0.0.1:5000");
	cr_assert_str_eq(c->gw_host, "127.0.0.1");
	cr_assert_str_eq(c->gw_port, "5000");
	cr_assert_eq(c->gw_has_pin, 0);
	cr_assert_null(c->gw_ca_file);
	cr_assert_eq(c->gw_insecure, 0);
	cr_assert_eq(c->gw_pool, 4);
	cr_assert_eq(c->gw_connect_timeout_ms, 3000);
	cr_assert_eq(c->gw_timeout_ms, 15000);
	cr_assert_eq(c->check_interval_s, 10);
	cr_assert_eq(c->tickle_interval_s, 60);
	cr_assert_eq(c->reauthenticate, 1);
	cr_assert_eq(c->compete, 0);
	cr_assert_str_eq(c->status_file, "/run/brokerd/status");
	cr_assert_null(c->history_file);
	cr_assert_eq(c->nkeys, 0);
	cr_assert_eq(c->npeers, 0);
	cr_assert_gt(c->nroutes, 12);
	cr_assert_eq(c->gateway_rate.n, 10);
	cr_assert_eq(c->gateway_rate.window_ms, 1000);
	cr_assert_eq(c->queue_ms, 2000);
	cr_assert_eq(c->rate_slack_ms, 100);
	cr_assert_eq(c->max_connections, 1024);
	cr_assert_eq(c->max_tcp_connections, 768);
	cr_assert_eq(c->max_header_bytes, 16384);
	cr_assert_eq(c->max_body_bytes, 1048576);
	cr_assert_eq(c->max_response_bytes, 16777216);
	cr_assert_eq(c->header_timeout_ms, 10000);
	cr_assert_eq(c->idle_timeout_ms, 60000);
	cr_assert_eq(c->drain_ms, 10000);
	cr_assert_eq(c->log_level, LOG_LEVEL_INFO);
	cr_assert_eq(c->log_json, 0);
	cr_assert_null(c->journal_file);
	cr_assert_eq(c->journal_max_bytes, 67108864);
	cr_assert_eq(c->journal_keep, 10);
	cr_assert_str_eq(c->halt_file, "/run/brokerd/halt");
	config_free(c);
}

/*
 * A retired configuration lives as long as its last holder: the loader's
 * reference and each config_ref count, the last config_unref frees (the
 * sanitizer build sees a leak or a use after free if not).
 */
Test(config, freed_by_its_last_holder)
{
	struct config		*c = config_load(NULL, err, sizeof(err));
	const struct config	*held;
	const struct route	*rt;

	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(c->refs, 1);
	held = config_ref(c);
	cr_assert_eq(held, c);
	cr_assert_eq(config_ref(held), c);
	cr_assert_eq(c->refs, 3);
	rt = route_match(held->routes, held->nroutes, "/trsrv/x", 8);
	cr_assert_not_null(rt);
	config_unref(c);		/* the reload retires it */
	config_unref(held);
	cr_assert_eq(held->refs, 1);
	cr_assert_str_eq(rt->to, "/v1/api/trsrv/", "a holder's route");
	config_unref(held);		/* the last: freed */
	config_unref(NULL);
}

Test(config, empty_file_is_defaults)
{
	struct config	*c = load_text("# nothing\n");

	cr_assert_not_null(c, "%s", err);
	cr_assert_str_eq(c->file, tpath("t.yaml"));
	cr_assert_eq(c->gw_pool, 4);
	cr_assert_gt(c->nroutes, 12);
	config_free(c);
}

static void
expect_same_routes(const struct route *a, size_t na, const struct route *b,
    size_t nb)
{
	size_t	 i, j;

	cr_assert_eq(na, nb, "%zu routes vs %zu", na, nb);
	for (i = 0; i < na; i++) {
		cr_assert_str_eq(a[i].prefix, b[i].prefix);
		cr_assert_eq(a[i].prefix_len, strlen(a[i].prefix));
		cr_assert_str_eq(a[i].to, b[i].to, "%s", a[i].prefix);
		cr_assert_eq(a[i].to_len, strlen(a[i].to));
		cr_assert_eq(a[i].nmethods, b[i].nmethods, "%s", a[i].prefix);
		for (j = 0; j < a[i].nmethods; j++) {
			cr_assert_str_eq(a[i].methods[j].method,
			    b[i].methods[j].method, "%s", a[i].prefix);
			cr_assert_eq(a[i].methods[j].scope,
			    b[i].methods[j].scope, "%s", a[i].prefix);
		}
		cr_assert_eq(a[i].rate.n, b[i].rate.n, "%s", a[i].prefix);
		cr_assert_eq(a[i].rate.window_ms, b[i].rate.window_ms, "%s",
		    a[i].prefix);
		cr_assert_eq(a[i].concurrency, b[i].concurrency, "%s",
		    a[i].prefix);
		cr_assert_eq(a[i].cache_ms, b[i].cache_ms, "%s", a[i].prefix);
	}
}

/* config/brokerd.yaml claims to be the defaults, written out: check it. */
Test(config, shipped_example_equals_defaults)
{
	char		 src[] = __FILE__, path[1024];
	struct config	*d, *c;

	snprintf(path, sizeof(path), "%s/../../config/brokerd.yaml",
	    dirname(src));
	d = config_load(NULL, err, sizeof(err));
	cr_assert_not_null(d, "%s", err);
	c = config_load(path, err, sizeof(err));
	cr_assert_not_null(c, "%s", err);
	cr_assert_str_eq(c->unix_path, d->unix_path);
	cr_assert_eq(c->unix_mode, d->unix_mode);
	cr_assert_str_eq(c->unix_group, d->unix_group);
	cr_assert_eq(c->unix_group_default, d->unix_group_default);
	cr_assert_eq(c->tcp, d->tcp);
	cr_assert_eq(c->tcp_anonymous, d->tcp_anonymous);
	cr_assert_str_eq(c->gw_url, d->gw_url);
	cr_assert_str_eq(c->gw_host, d->gw_host);
	cr_assert_str_eq(c->gw_port, d->gw_port);
	cr_assert_eq(c->gw_has_pin, d->gw_has_pin);
	cr_assert_eq(c->gw_ca_file, d->gw_ca_file);
	cr_assert_eq(c->gw_insecure, d->gw_insecure);
	cr_assert_eq(c->gw_pool, d->gw_pool);
	cr_assert_eq(c->gw_connect_timeout_ms, d->gw_connect_timeout_ms);
	cr_assert_eq(c->gw_timeout_ms, d->gw_timeout_ms);
	cr_assert_eq(c->check_interval_s, d->check_interval_s);
	cr_assert_eq(c->tickle_interval_s, d->tickle_interval_s);
	cr_assert_eq(c->reauthenticate, d->reauthenticate);
	cr_assert_eq(c->compete, d->compete);
	cr_assert_str_eq(c->status_file, d->status_file);
	cr_assert_eq(c->history_file, d->history_file);
	cr_assert_eq(c->nkeys, d->nkeys);
	cr_assert_eq(c->npeers, d->npeers);
	expect_same_routes(c->routes, c->nroutes, d->routes, d->nroutes);
	cr_assert_eq(c->gateway_rate.n, d->gateway_rate.n);
	cr_assert_eq(c->gateway_rate.window_ms, d->gateway_rate.window_ms);
	cr_assert_eq(c->queue_ms, d->queue_ms);
	cr_assert_eq(c->rate_slack_ms, d->rate_slack_ms);
	cr_assert_eq(c->max_connections, d->max_connections);
	cr_assert_eq(c->max_tcp_connections, d->max_tcp_connections);
	cr_assert_eq(c->max_header_bytes, d->max_header_bytes);
	cr_assert_eq(c->max_body_bytes, d->max_body_bytes);
	cr_assert_eq(c->max_response_bytes, d->max_response_bytes);
	cr_assert_eq(c->header_timeout_ms, d->header_timeout_ms);
	cr_assert_eq(c->idle_timeout_ms, d->idle_timeout_ms);
	cr_assert_eq(c->drain_ms, d->drain_ms);
	cr_assert_eq(c->log_level, d->log_level);
	cr_assert_eq(c->log_json, d->log_json);
	cr_assert_eq(c->journal_file, d->journal_file);
	cr_assert_eq(c->journal_max_bytes, d->journal_max_bytes);
	cr_assert_eq(c->journal_keep, d->journal_keep);
	cr_assert_str_eq(c->halt_file, d->halt_file);
	config_free(c);
	config_free(d);
}

Test(config, every_key_block_style)
{
	struct config	*c;
	char		 text[4096];
	const char	*ca = write_file("ca.pem", "not checked here\n", 0644);

	snprintf(text, sizeof(text),
	    "listen:\n"
	    "  unix:\n"
	    "    path: /tmp/x.sock\n"
	    "    mode: 0600\n"
	    "    group: root\n"
	    "  tcp: \"[::1]:0\"\n"
	    "  tcp_anonymous: [read]\n"
	    "gateway:\n"
	    "  url: https://gw.example:7000/\n"
	    "  tls:\n"
	    "    pin_sha256: \"sha256 Fingerprint=%s\"\n"
	    "    ca_file: %s\n"
	    "    insecure: yes\n"
	    "  pool: 2\n"
	    "  connect_timeout_ms: 100\n"
	    "  timeout_ms: 200\n"
	    "session:\n"
	    "  check_interval_s: 1\n"
	    "  tickle_interval_s: 30\n"
	    "  reauthenticate: false\n"
	    "  compete: true\n"
	    "  status_file: /tmp/st\n"
	    "  history_file: /tmp/hist\n"
	    "routes:\n"
	    "  - prefix: /a/\n"
	    "    to: /v1/api/a/\n"
	    "    methods:\n"
	    "      GET: read\n"
	    "      PATCH: admin\n"
	    "    rate: 3/2min\n"
	    "    concurrency: 2\n"
	    "    cache_ms: 7\n"
	    "limits:\n"
	    "  gateway_rate: off\n"
	    "  queue_ms: 0\n"
	    "  rate_slack_ms: 0\n"
	    "  max_connections: 5\n"
	    "  max_header_bytes: 2048\n"
	    "  max_body_bytes: 10\n"
	    "  max_response_bytes: 4096\n"
	    "  header_timeout_ms: 11\n"
	    "  idle_timeout_ms: 12\n"
	    "  drain_ms: 13\n"
	    "log:\n"
	    "  level: debug\n"
	    "  format: json\n"
	    "journal:\n"
	    "  file: /tmp/j\n"
	    "  max_bytes: 5000\n"
	    "  keep: 0\n"
	    "trading:\n"
	    "  halt_file: /tmp/h\n",
	    "13:da:4f:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:"
	    "01:02:03:04:05:06:07:08:09:0A:0B:0C", ca);
	c = load_text(text);
	cr_assert_not_null(c, "%s", err);
	cr_assert_str_eq(c->unix_path, "/tmp/x.sock");
	cr_assert_eq(c->unix_mode, 0600);
	cr_assert_str_eq(c->unix_group, "root");
	cr_assert_eq(c->unix_group_default, 0);
	cr_assert_str_eq(c->tcp, "[::1]:0");
	cr_assert_eq(c->tcp_addr.ss_family, AF_INET6);
	cr_assert_eq(c->tcp_addrlen, sizeof(struct sockaddr_in6));
	cr_assert_eq(c->tcp_anonymous, SCOPE_READ);
	cr_assert_str_eq(c->gw_host, "gw.example");
	cr_assert_str_eq(c->gw_port, "7000");
	cr_assert_eq(c->gw_has_pin, 1);
	cr_assert_eq(c->gw_pin[0], 0x13);
	cr_assert_eq(c->gw_pin[1], 0xda);
	cr_assert_eq(c->gw_pin[31], 0x0c);
	cr_assert_str_eq(c->gw_ca_file, ca);
	cr_assert_eq(c->gw_insecure, 1);
	cr_assert_eq(c->gw_pool, 2);
	cr_assert_eq(c->gw_connect_timeout_ms, 100);
	cr_assert_eq(c->gw_timeout_ms, 200);
	cr_assert_eq(c->check_interval_s, 1);
	cr_assert_eq(c->tickle_interval_s, 30);
	cr_assert_eq(c->reauthenticate, 0);
	cr_assert_eq(c->compete, 1);
	cr_assert_str_eq(c->status_file, "/tmp/st");
	cr_assert_str_eq(c->history_file, "/tmp/hist");
	cr_assert_eq(c->nroutes, 1, "routes replace the defaults");
	cr_assert_str_eq(c->routes[0].prefix, "/a/");
	cr_assert_eq(c->routes[0].nmethods, 2);
	cr_assert_str_eq(c->routes[0].methods[1].method, "PATCH");
	cr_assert_eq(c->routes[0].methods[1].scope, SCOPE_ADMIN);
	cr_assert_eq(c->routes[0].rate.n, 3);
	cr_assert_eq(c->routes[0].rate.window_ms, 120000);
	cr_assert_eq(c->routes[0].concurrency, 2);
	cr_assert_eq(c->routes[0].cache_ms, 7);
	cr_assert_eq(c->gateway_rate.n, 0);
	cr_assert_eq(c->queue_ms, 0);
	cr_assert_eq(c->rate_slack_ms, 0);
	cr_assert_eq(c->max_connections, 5);
	cr_assert_eq(c->max_tcp_connections, 3);
	cr_assert_eq(c->max_header_bytes, 2048);
	cr_assert_eq(c->max_body_bytes, 10);
	cr_assert_eq(c->max_response_bytes, 4096);
	cr_assert_eq(c->header_timeout_ms, 11);
	cr_assert_eq(c->idle_timeout_ms, 12);
	cr_assert_eq(c->drain_ms, 13);
	cr_assert_eq(c->log_level, LOG_LEVEL_DEBUG);
	cr_assert_eq(c->log_json, 1);
	cr_assert_str_eq(c->journal_file, "/tmp/j");
	cr_assert_eq(c->journal_max_bytes, 5000);
	cr_assert_eq(c->journal_keep, 0);
	cr_assert_str_eq(c->halt_file, "/tmp/h");
	config_free(c);
}

Test(config, stream_max_account_topics)
{
	struct config	*c;

	c = load_text("stream:\n  max_account_topics: 7\n");
	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(c->stream_max_account_topics, 7);
	config_free(c);
	c = load_text("");
	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(c->stream_max_account_topics, 1000);
	config_free(c);
}

/* Conflation starts below the buffer's limit, in whatever order given. */
Test(config, stream_conflate_below_max_buffer)
{
	struct config	*c;

	c = load_text("stream:\n  conflate_bytes: 8388608\n"
	    "  max_buffer_bytes: 16777216\n");
	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(c->stream_conflate_bytes, 8388608);
	config_free(c);
	c = load_text("stream:\n  max_buffer_bytes: 4097\n"
	    "  conflate_bytes: 4096\n");
	cr_assert_not_null(c, "%s", err);
	config_free(c);
}

/* TCP gets three quarters of max_connections unless told; never more. */
Test(config, max_tcp_connections)
{
	struct config	*c;

	c = load_text("limits:\n  max_connections: 2\n");
	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(c->max_tcp_connections, 1);
	config_free(c);
	c = load_text("limits:\n  max_connections: 1\n");
	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(c->max_tcp_connections, 1);
	config_free(c);
	c = load_text("limits:\n  max_tcp_connections: 10\n"
	    "  max_connections: 10\n");
	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(c->max_tcp_connections, 10);
	cr_assert_eq(c->max_connections, 10);
	config_free(c);
}

Test(config, flow_style_and_plain_hex_pin)
{
	struct config	*c = load_text(
	    "{ listen: { unix: { path: /tmp/s, mode: \"0640\", group: null },"
	    " tcp: localhost:8000 },\n"
	    "  gateway: { url: \"https://[::1]\", tls: { pin_sha256: "
	    "\"00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\""
	    " } },\n"
	    "  routes: [ { prefix: /x, to: /y, methods: { GET: read } } ] }\n");

	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(c->unix_mode, 0640);
	cr_assert_null(c->unix_group);
	cr_assert_eq(c->unix_group_default, 0);
	cr_assert_str_eq(c->tcp, "localhost:8000");
	cr_assert_eq(c->tcp_addr.ss_family, AF_INET);
	cr_assert_eq(ntohs(((struct sockaddr_in *)&c->tcp_addr)->sin_port),
	    8000);
	cr_assert_eq(ntohl(((struct sockaddr_in *)&c->tcp_addr)->
	    sin_addr.s_addr), 0x7f000001);
	cr_assert_str_eq(c->gw_host, "::1");
	cr_assert_str_eq(c->gw_port, "443");
	cr_assert_eq(c->gw_pin[0], 0x00);
	cr_assert_eq(c->gw_pin[31], 0xff);
	cr_assert_eq(c->nroutes, 1);
	config_free(c);
}

/* The default group written out behaves like the default: a warning. */
Test(config, explicit_default_group_only_warns)
{
	struct config	*c = load_text("listen:\n  unix: { group: brokerd }\n");

	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(c->unix_group_default, 1);
	config_free(c);
}

struct bad_case {
	const char	*yaml;
	int		 line;
	int		 col;
	const char	*what;
};

static const struct bad_case bad_cases[] = {
	/* syntax */
	{ "listen:\n  unix: [\n", 3, 1, "did not find expected" },
	{ "a: b\n c: d\n", 2, 3, "mapping values are not allowed" },
	{ "listen: {}\n---\nlog: {}\n", 3, 1, "only one YAML document" },
	{ "- 1\n- 2\n", 1, 1, "expected a mapping" },
	/* unknown and duplicate keys */
	{ "listne: {}\n", 1, 1, "listne: unknown key" },
	{ "listen:\n  unix:\n    pth: /x\n", 3, 5, "listen.unix.pth: unknown key" },
	{ "log: {}\nlog: {}\n", 2, 1, "log: duplicate key" },
	{ "gateway:\n  pool: 1\n  pool: 2\n", 3, 3, "gateway.pool: duplicate" },
	{ "{ [a]: 1 }\n", 1, 3, "a key must be" },
	/* types */
	{ "listen: [1, 2]\n", 1, 9, "listen: expected a mapping" },
	{ "gateway:\n  pool: abc\n", 2, 9, "gateway.pool: expected a whole number" },
	{ "gateway:\n  pool: -1\n", 2, 9, "gateway.pool: expected a whole" },
	{ "gateway:\n  pool: \"4\"\n", 2, 9, "gateway.pool: expected a whole" },
	{ "gateway:\n  pool: 0\n", 2, 9, "gateway.pool: 0 is out of range" },
	{ "gateway:\n  pool: 99999999999999999999999\n", 2, 9, "too large" },
	{ "gateway:\n  pool: [1]\n", 2, 9, "not a list" },
	{ "gateway:\n  pool: {a: 1}\n", 2, 9, "not a mapping" },
	{ "session:\n  reauthenticate: maybe\n", 2, 19, "session.reauthenticate: expected true or false" },
	{ "session:\n  status_file: null\n", 2, 16, "session.status_file: must not be empty" },
	{ "session:\n  status_file: \"a\\0b\"\n", 2, 16, "NUL" },
	{ "session:\n  check_interval_s: 0\n", 2, 21, "session.check_interval_s" },
	{ "limits:\n  max_header_bytes: 10\n", 2, 21, "limits.max_header_bytes: 10 is out of range" },
	{ "limits:\n  max_connections: 10\n  max_tcp_connections: 11\n", 3, 24, "limits.max_tcp_connections: 11 is more than limits.max_connections (10)" },
	{ "limits:\n  max_tcp_connections: 1025\n", 2, 24, "limits.max_tcp_connections: 1025 is more than" },
	{ "limits:\n  max_tcp_connections: 0\n", 2, 24, "limits.max_tcp_connections: 0 is out of range" },
	{ "stream:\n  conflate_bytes: 4194304\n", 2, 19, "stream.conflate_bytes: 4194304 is not less than stream.max_buffer_bytes (4194304)" },
	{ "stream:\n  max_buffer_bytes: 8192\n  conflate_bytes: 8192\n", 3, 19, "stream.conflate_bytes: 8192 is not less than" },
	{ "stream:\n  max_buffer_bytes: 131072\n", 2, 21, "stream.max_buffer_bytes: 131072 is not more than stream.conflate_bytes (262144)" },
	{ "stream:\n  max_account_topics: 0\n", 2, 23, "stream.max_account_topics: 0 is out of range" },
	{ "journal: { keep: x }\n", 1, 18, "journal.keep" },
	{ "trading: { halt_file: [a] }\n", 1, 23, "trading.halt_file" },
	{ "trading: { stop_file: /x }\n", 1, 12, "trading.stop_file: unknown key" },
	/* rates */
	{ "limits:\n  gateway_rate: 10\n", 2, 17, "limits.gateway_rate: bad rate" },
	{ "limits:\n  rate_slack_ms: 1001\n", 2, 18, "limits.rate_slack_ms: 1001 is out of range" },
	{ "limits:\n  rate_slack_ms: -1\n", 2, 18, "limits.rate_slack_ms" },
	{ "limits:\n  rate_slack_ms: 50ms\n", 2, 18, "limits.rate_slack_ms" },
	{ "limits:\n  rate_slack_ms: [1]\n", 2, 18, "limits.rate_slack_ms" },
	{ "limits:\n  gateway_rate: 0/s\n", 2, 17, "bad rate" },
	{ "limits:\n  gateway_rate: 10/h\n", 2, 17, "bad rate" },
	{ "limits:\n  gateway_rate: 1/0s\n", 2, 17, "bad rate" },
	{ "limits:\n  gateway_rate: 1/5 s\n", 2, 17, "bad rate" },
	/* modes */
	{ "listen:\n  unix: { mode: \"0888\" }\n", 2, 17, "listen.unix.mode: bad mode" },
	{ "listen:\n  unix: { mode: \"01777\" }\n", 2, 17, "bad mode" },
	{ "listen:\n  unix: { mode: rw }\n", 2, 17, "bad mode" },
	{ "listen:\n  unix: { group: no-such-group-xyz }\n", 2, 18, "listen.unix.group: no such group" },
	{ "listen:\n  unix: /run/x.sock\n", 2, 9, "listen.unix: expected a mapping" },
	/* addresses */
	{ "listen:\n  tcp: 0.0.0.0:8000\n", 2, 8, "listen.tcp: not a loopback" },
	{ "listen:\n  tcp: 192.168.1.2:8000\n", 2, 8, "not a loopback" },
	{ "listen:\n  tcp: example.com:8000\n", 2, 8, "not a loopback" },
	{ "listen:\n  tcp: \"[::]:8000\"\n", 2, 8, "not a loopback" },
	{ "listen:\n  tcp: 127.0.0.1\n", 2, 8, "missing :PORT" },
	{ "listen:\n  tcp: 127.0.0.1:65536\n", 2, 8, "bad port" },
	{ "listen:\n  tcp: \"127.0.0.1:\"\n", 2, 8, "bad port" },
	{ "listen:\n  tcp: ::1:80\n", 2, 8, "brackets" },
	{ "listen:\n  tcp_anonymous: [read, write]\n", 2, 25, "listen.tcp_anonymous[1]: unknown scope" },
	{ "listen:\n  tcp_anonymous: read\n", 2, 18, "listen.tcp_anonymous: expected a list" },
	/* URLs */
	{ "gateway:\n  url: http://127.0.0.1:5000\n", 2, 8, "gateway.url: must start with https://" },
	{ "gateway:\n  url: https://127.0.0.1:5000/v1/api\n", 2, 8, "no path" },
	{ "gateway:\n  url: https://127.0.0.1:0\n", 2, 8, "bad port" },
	{ "gateway:\n  url: https://127.0.0.1:x\n", 2, 8, "bad port" },
	{ "gateway:\n  url: https://user@host\n", 2, 8, "gateway.url" },
	{ "gateway:\n  url: https://\n", 2, 8, "bad host" },
	{ "gateway:\n  url: \"https://[zz]:5000\"\n", 2, 8, "bad host" },
	{ "gateway:\n  tls: { pin_sha256: \"AB:CD\" }\n", 2, 22, "gateway.tls.pin_sha256: expected a SHA-256" },
	{ "gateway:\n  tls: { ca_file: /nonexistent/ca.pem }\n", 2, 19, "gateway.tls.ca_file: /nonexistent/ca.pem" },
	{ "gateway:\n  tls: { insecure: 1 }\n", 2, 20, "gateway.tls.insecure" },
	/* keys */
	{ "keys:\n  - { name: a, key: short, scopes: [read] }\n", 2, 21, "keys[0].key: key is shorter than 16" },
	{ "keys:\n  - { name: a, key: \"\", scopes: [read] }\n", 2, 21, "keys[0].key: empty key" },
	{ "keys:\n  - { name: a, key: \"with space 0123456789\", scopes: [read] }\n", 2, 21, "keys[0].key: key holds a space" },
	{ "keys:\n  - { name: a, scopes: [read] }\n", 2, 5, "keys[0]: give exactly one of key and key_file" },
	{ "keys:\n  - { name: a, key: 0123456789abcdef, key_file: /x, scopes: [read] }\n", 2, 5, "exactly one" },
	{ "keys:\n  - { key: 0123456789abcdef, scopes: [read] }\n", 2, 5, "keys[0]: a key needs a name" },
	{ "keys:\n  - { name: a, key: 0123456789abcdef }\n", 2, 5, "keys[0]: a key needs scopes" },
	{ "keys:\n  - { name: a, key: 0123456789abcdef, scopes: [root] }\n", 2, 48, "keys[0].scopes[0]: unknown scope" },
	{ "keys:\n  - { name: \"a b\", key: 0123456789abcdef, scopes: [] }\n", 2, 13, "keys[0].name" },
	{ "keys:\n  - { name: a, key: 0123456789abcdef, scopes: [] }\n  - { name: a, key: 0123456789abcdeg, scopes: [] }\n", 3, 13, "keys[1].name: duplicate key name" },
	{ "keys:\n  - { name: a, key: 0123456789abcdef, scopes: [] }\n  - { name: b, key: 0123456789abcdef, scopes: [] }\n", 3, 21, "same key as key \"a\"" },
	{ "keys:\n  - { name: a, key_file: /nonexistent/k, scopes: [] }\n", 2, 26, "keys[0].key_file: key file /nonexistent/k" },
	{ "keys:\n  - { name: a, key: 0123456789abcdef, scopes: [], extra: 1 }\n", 2, 51, "keys[0].extra: unknown key" },
	{ "keys:\n  - just-a-string\n", 2, 5, "keys[0]: expected a mapping" },
	{ "keys: { name: a }\n", 1, 7, "keys: expected a list" },
	/* peers */
	{ "peers:\n  - { user: no-such-user-xyz, scopes: [read] }\n", 2, 13, "peers[0].user: no such user" },
	{ "peers:\n  - { group: no-such-group-xyz, scopes: [read] }\n", 2, 14, "peers[0].group: no such group" },
	{ "peers:\n  - { user: root, group: root, scopes: [read] }\n", 2, 5, "exactly one of user and group" },
	{ "peers:\n  - { user: root }\n", 2, 5, "a peer needs scopes" },
	/* routes */
	{ "routes:\n  - { prefix: x/, to: /v1/api/x/, methods: { GET: read } }\n", 2, 15, "routes[0].prefix: must start with '/'" },
	{ "routes:\n  - { prefix: /x/, to: v1/, methods: { GET: read } }\n", 2, 24, "routes[0].to: must start" },
	{ "routes:\n  - { prefix: /x/, to: /y/ }\n", 2, 5, "needs prefix, to and methods" },
	{ "routes:\n  - { prefix: /x/, to: /y/, methods: { get: read } }\n", 2, 40, "routes[0].methods.get: bad method" },
	{ "routes:\n  - { prefix: /x/, to: /y/, methods: { GET: write } }\n", 2, 45, "routes[0].methods.GET: unknown scope" },
	{ "routes:\n  - { prefix: /x/, to: /y/, methods: { GET: read, GET: trade } }\n", 2, 51, "routes[0].methods.GET: duplicate" },
	{ "routes:\n  - { prefix: /x/, to: /y/, methods: {} }\n", 2, 38, "at least one method" },
	{ "routes:\n  - { prefix: /x/, to: /y/, methods: [GET] }\n", 2, 38, "routes[0].methods: expected a mapping" },
	{ "routes:\n  - { prefix: /x/, to: /y/, methods: { GET: read }, rate: fast }\n", 2, 59, "routes[0].rate: bad rate" },
	{ "routes:\n  - { prefix: /x/, to: /y/, methods: { GET: read }, cache_ms: -5 }\n", 2, 63, "routes[0].cache_ms" },
	{ "routes:\n  - { prefix: /x/, to: /y/, methods: { GET: read } }\n  - { prefix: /x/, to: /z/, methods: { GET: read } }\n", 3, 15, "routes[1].prefix: duplicate prefix" },
	/* log */
	{ "log: { level: loud }\n", 1, 15, "log.level: expected error, warn, info or debug" },
	{ "log: { format: xml }\n", 1, 16, "log.format: expected text or json" },
};

Test(config, errors_name_line_column_and_key)
{
	size_t	 i;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
		expect_error(bad_cases[i].yaml, bad_cases[i].line,
		    bad_cases[i].col, bad_cases[i].what);
}

Test(config, invalid_utf8_has_a_position)
{
	expect_error("log:\n  level: \xff\xfe\n", 2, 10, "");
}

Test(config, missing_file)
{
	struct config	*c;
	const char	*p = tpath("absent.yaml");
	char		 want[600];

	c = config_load(p, err, sizeof(err));
	cr_assert_null(c);
	snprintf(want, sizeof(want), "%s: ", p);
	cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
	cr_assert_not_null(strstr(err, "No such file"), "%s", err);
}

Test(config, key_file_0600_ok_and_hashed)
{
	const char	*k = write_file("k", "0123456789abcdef0123\r\n", 0600);
	struct config	*c;
	char		 text[1024];
	unsigned char	 want[32];

	snprintf(text, sizeof(text), "keys:\n  - { name: app, key_file: %s, "
	    "scopes: [read, trade] }\n", k);
	c = load_text(text);
	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(c->nkeys, 1);
	cr_assert_str_eq(c->keys[0].name, "app");
	cr_assert_eq(c->keys[0].scopes, SCOPE_READ | SCOPE_TRADE);
	auth_sha256("0123456789abcdef0123", 20, want);
	cr_assert_eq(memcmp(c->keys[0].hash, want, 32), 0,
	    "one trailing CRLF is stripped, the rest hashed");
	config_free(c);
}

static void
expect_key_file_error(const char *content, mode_t mode, const char *what)
{
	const char	*k = write_file("k", content, mode);
	char		 text[1024];

	snprintf(text, sizeof(text), "keys:\n  - { name: app, key_file: %s, "
	    "scopes: [read] }\n", k);
	expect_error(text, 2, 28, what);
	cr_assert_not_null(strstr(err, k), "names the path: %s", err);
	cr_assert_null(strstr(err, "0123456789"), "never the key: %s", err);
}

Test(config, key_file_group_readable_refused)
{
	char	 want[700];

	snprintf(want, sizeof(want), "key file %s is readable by group or "
	    "others (mode 0640): chmod 600 %s", tpath("k"), tpath("k"));
	expect_key_file_error("0123456789abcdef0123\n", 0640, want);
	expect_key_file_error("0123456789abcdef0123\n", 0604, "mode 0604");
}

Test(config, key_file_empty_or_short_refused)
{
	expect_key_file_error("", 0600, "empty key");
	expect_key_file_error("\n", 0600, "empty key");
	expect_key_file_error("0123456789\n", 0600, "shorter than 16");
}

Test(config, inline_key_never_in_messages)
{
	expect_error("keys:\n  - { name: a, key: \"0123456789 abcdef\", "
	    "scopes: [read] }\n", 2, 21, "keys[0].key");
	cr_assert_null(strstr(err, "0123456789"), "%s", err);
}

Test(config, peers_resolve_users_groups_and_ids)
{
	struct config	*c = load_text(
	    "peers:\n"
	    "  - { user: root, scopes: [read] }\n"
	    "  - { user: 4242, scopes: [trade] }\n"
	    "  - { group: root, scopes: [admin] }\n");

	cr_assert_not_null(c, "%s", err);
	cr_assert_eq(c->npeers, 3);
	cr_assert_eq(c->peers[0].is_group, 0);
	cr_assert_eq(c->peers[0].uid, 0);
	cr_assert_str_eq(c->peers[0].name, "root");
	cr_assert_eq(c->peers[1].uid, 4242);
	cr_assert_eq(c->peers[1].scopes, SCOPE_TRADE);
	cr_assert_eq(c->peers[2].is_group, 1);
	cr_assert_eq(c->peers[2].gid, 0);
	cr_assert_eq(c->peers[2].scopes, SCOPE_ADMIN);
	config_free(c);
}

Test(config, env_overrides_file)
{
	struct config	*c;
	unsigned char	 want[32];

	setenv("IBKR_BRIDGE_KEY", "an-env-key-of-some-length", 1);
	setenv("IBKR_BRIDGE_URL", "http://127.0.0.1:8123/", 1);
	setenv("IBKR_GATEWAY_URL", "https://localhost:5001", 1);
	c = load_text(
	    "listen: { tcp: 127.0.0.1:9000 }\n"
	    "gateway: { url: https://127.0.0.1:5000 }\n"
	    "keys:\n"
	    "  - { name: env, key: 0123456789abcdef, scopes: [read] }\n"
	    "  - { name: other, key: 0123456789abcdefX, scopes: [read] }\n");
	cr_assert_not_null(c, "%s", err);
	cr_assert_str_eq(c->tcp, "127.0.0.1:8123");
	cr_assert_eq(ntohs(((struct sockaddr_in *)&c->tcp_addr)->sin_port),
	    8123);
	cr_assert_str_eq(c->gw_url, "https://localhost:5001");
	cr_assert_str_eq(c->gw_host, "localhost");
	cr_assert_str_eq(c->gw_port, "5001");
	cr_assert_eq(c->nkeys, 2, "the env key replaces the file's `env`");
	cr_assert_str_eq(c->keys[0].name, "other");
	cr_assert_str_eq(c->keys[1].name, "env");
	cr_assert_eq(c->keys[1].scopes, SCOPE_READ | SCOPE_TRADE | SCOPE_ADMIN);
	auth_sha256("an-env-key-of-some-length", 25, want);
	cr_assert_eq(memcmp(c->keys[1].hash, want, 32), 0);
	config_free(c);
}

Test(config, env_without_file)
{
	struct config	*c;

	setenv("IBKR_BRIDGE_URL", "http://localhost:8000", 1);
	c = config_load(NULL, err, sizeof(err));
	cr_assert_not_null(c, "%s", err);
	cr_assert_str_eq(c->tcp, "localhost:8000");
	config_free(c);
}

static void
expect_env_error(const char *var, const char *value, const char *what)
{
	struct config	*c;
	char		 want[128];

	setenv(var, value, 1);
	c = config_load(NULL, err, sizeof(err));
	cr_assert_null(c, "%s=%s loaded", var, value);
	snprintf(want, sizeof(want), "%s: ", var);
	cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
	cr_assert_not_null(strstr(err, what), "%s", err);
	cr_assert_null(strstr(err, value[0] != '\0' ? value : "@@"),
	    "never echo the value: %s", err);
	unsetenv(var);
}

Test(config, env_errors_name_the_variable)
{
	expect_env_error("IBKR_BRIDGE_KEY", "shortkey", "shorter than 16");
	expect_env_error("IBKR_BRIDGE_KEY", "", "empty key");
	expect_env_error("IBKR_BRIDGE_URL", "http://0.0.0.0:8000",
	    "not a loopback");
	expect_env_error("IBKR_BRIDGE_URL", "https://127.0.0.1:8000",
	    "http://");
	expect_env_error("IBKR_BRIDGE_URL", "http://127.0.0.1:8000/api",
	    "no path");
	expect_env_error("IBKR_GATEWAY_URL", "http://127.0.0.1:5000",
	    "https://");
}

Test(config, loopback_addresses)
{
	static const char *const ok[] = { "127.0.0.1:0", "127.1.2.3:80",
	    "localhost:8000", "LOCALHOST:1", "[::1]:8000",
	    "[::ffff:127.0.0.1]:1", "127.255.255.254:1" };
	static const char *const bad[] = { "0.0.0.0:1", "10.0.0.1:1",
	    "[::]:1", "[::ffff:10.0.0.1]:1", "128.0.0.1:1", "127.1:1",
	    "host:1", "[::1]x:1" };
	struct config	*c;
	char		 text[256];
	size_t		 i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text), "listen: { tcp: \"%s\" }\n", ok[i]);
		c = load_text(text);
		cr_assert_not_null(c, "%s: %s", ok[i], err);
		cr_assert_gt(c->tcp_addrlen, 0);
		config_free(c);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "listen: { tcp: \"%s\" }\n",
		    bad[i]);
		expect_error(text, 1, 16, "listen.tcp");
	}
}
