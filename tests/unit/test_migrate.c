/*
 * migrate.c: the Python bridge's (bridge.py) .env read as python-dotenv
 * reads it, checked as brokerd checks the same variables, and the
 * brokerd.yaml lines it becomes (naming the key file, never the key).
 */
#include <sys/stat.h>

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brokerd.h"

#define KEY	"0123456789abcdef0123456789abcdef"

static int
parse(const char *text, struct migrate_env *me, char *err, size_t errlen)
{
	err[0] = '\0';
	return (migrate_parse(text, strlen(text), me, err, errlen));
}

Test(migrate, bridge_env_as_deployed)
{
	struct migrate_env	 me;
	char			 err[256];

	cr_assert_eq(parse("# /opt/ibkr-bridge/.env\n"
	    "IBKR_BRIDGE_URL=http://127.0.0.1:8000\n"
	    "IBKR_BRIDGE_KEY=" KEY "\n", &me, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(me.key, KEY);
	cr_assert_str_eq(me.tcp, "127.0.0.1:8000");
	cr_assert_null(me.gw_url);
	migrate_env_free(&me);
}

Test(migrate, dotenv_forms)
{
	struct migrate_env	 me;
	char			 err[256];

	/* export, quotes, blanks, CRLF, comments, other names, last wins */
	cr_assert_eq(parse("  export IBKR_BRIDGE_KEY = 'short'\r\n"
	    "IBKR_ACCOUNT_ID=DU123456\r\n"
	    "\r\n"
	    "IBKR_BRIDGE_KEY=\"" KEY "\"   # the app's key\r\n"
	    "IBKR_BRIDGE_URL=http://localhost:8000/ # trailing slash\r\n"
	    "IBKR_GATEWAY_URL=https://127.0.0.1:5000", &me, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(me.key, KEY);
	cr_assert_str_eq(me.tcp, "localhost:8000");
	cr_assert_str_eq(me.gw_url, "https://127.0.0.1:5000");
	migrate_env_free(&me);

	cr_assert_eq(parse("IBKR_BRIDGE_KEY=" KEY "#not-a-comment\n"
	    "IBKR_BRIDGE_URL=\n", &me, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(me.key, KEY "#not-a-comment");
	cr_assert_null(me.tcp, "an empty URL means no TCP listener");
	migrate_env_free(&me);

	cr_assert_eq(parse("IBKR_BRIDGE_KEY=" KEY "\n"
	    "IBKR_BRIDGE_URL=http://[::1]\n", &me, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_str_eq(me.tcp, "[::1]:80");
	migrate_env_free(&me);
}

Test(migrate, refusals_name_the_line_not_the_value)
{
	static const struct {
		const char	*text;
		const char	*want;
	} bad[] = {
		{ "IBKR_BRIDGE_URL=http://127.0.0.1:8000\n", "no IBKR_BRIDGE_KEY" },
		{ "IBKR_BRIDGE_KEY=\n", "empty key" },
		{ "IBKR_BRIDGE_KEY=tooshort\n", "shorter than 16" },
		{ "IBKR_BRIDGE_KEY='" KEY " x'\n", "space" },
		{ "IBKR_BRIDGE_KEY=\"" KEY "\n", "line 1: unclosed quote" },
		{ "# ok\nIBKR_BRIDGE_KEY " KEY "\n", "line 2: expected NAME" },
		{ "IBKR_BRIDGE_KEY=" KEY "\n"
		    "IBKR_BRIDGE_URL=http://0.0.0.0:8000\n", "IBKR_BRIDGE_URL" },
		{ "IBKR_BRIDGE_KEY=" KEY "\n"
		    "IBKR_BRIDGE_URL=https://127.0.0.1:8000\n", "plain HTTP" },
		{ "IBKR_BRIDGE_KEY=" KEY "\n"
		    "IBKR_BRIDGE_URL=http://127.0.0.1:8000/api\n", "no path" },
		{ "IBKR_BRIDGE_KEY=" KEY "\n"
		    "IBKR_GATEWAY_URL=http://127.0.0.1:5000\n",
		    "IBKR_GATEWAY_URL" },
	};
	struct migrate_env	 me;
	char			 err[256];
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(parse(bad[i].text, &me, err, sizeof(err)), -1,
		    "%zu accepted", i);
		cr_assert_not_null(strstr(err, bad[i].want), "%zu: %s", i,
		    err);
		cr_assert_null(strstr(err, KEY), "%zu: the key in %s", i, err);
		cr_assert_null(me.key);
	}
}

Test(migrate, yaml_lines)
{
	struct migrate_env	 me;
	char			 err[256], out[512], small[40];

	cr_assert_eq(parse("IBKR_BRIDGE_KEY=" KEY "\n"
	    "IBKR_BRIDGE_URL=http://127.0.0.1:8000\n", &me, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(migrate_yaml(&me, "/etc/brokerd/keys/bridge", out,
	    sizeof(out)), 0);
	cr_assert_str_eq(out, "listen:\n  tcp: 127.0.0.1:8000\n"
	    "keys:\n  - { name: bridge, key_file: /etc/brokerd/keys/bridge, "
	    "scopes: [read, trade, admin] }\n");
	cr_assert_null(strstr(out, KEY));
	cr_assert_eq(migrate_yaml(&me, "/k", small, sizeof(small)), -1);
	migrate_env_free(&me);

	cr_assert_eq(parse("IBKR_BRIDGE_KEY=" KEY "\n", &me, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_eq(migrate_yaml(&me, "/k", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "keys:\n  - { name: bridge, key_file: /k, "
	    "scopes: [read, trade, admin] }\n");
	migrate_env_free(&me);
}

/*
 * The printed lines must be ones brokerd loads: "[::1]:8000" written plain
 * is a YAML flow sequence, and a key file path with ", " or "}" would end
 * the flow mapping it sits in (found by tests/fuzz/fuzz_migrate.c).
 */
Test(migrate, yaml_lines_load)
{
	static const char *const urls[] = { "http://[::1]:8000/",
	    "http://[::ffff:127.0.0.1]:80", "http://localhost" };
	static const char *const want[] = { "[::1]:8000",
	    "[::ffff:127.0.0.1]:80", "localhost:80" };
	struct migrate_env	 me;
	struct config		*conf;
	char			 dir[] = "/tmp/test_migrate.XXXXXX";
	char			 env[256], err[512], out[1024];
	char			 kf[128], yf[128];
	FILE			*f;
	size_t			 i;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(kf, sizeof(kf), "%s/a, b} #c\"\\", dir);
	snprintf(yf, sizeof(yf), "%s/brokerd.yaml", dir);
	cr_assert_not_null(f = fopen(kf, "w"));
	fputs(KEY "\n", f);
	fclose(f);
	cr_assert_eq(chmod(kf, 0600), 0);
	for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		snprintf(env, sizeof(env), "IBKR_BRIDGE_KEY=%s\n"
		    "IBKR_BRIDGE_URL=%s\n"
		    "IBKR_GATEWAY_URL=https://[::1]:5000\n", KEY, urls[i]);
		cr_assert_eq(parse(env, &me, err, sizeof(err)), 0, "%s", err);
		cr_assert_eq(migrate_yaml(&me, kf, out, sizeof(out)), 0);
		cr_assert_not_null(f = fopen(yf, "w"));
		fputs(out, f);
		fclose(f);
		conf = config_load(yf, err, sizeof(err));
		cr_assert_not_null(conf, "%s:\n%s", err, out);
		cr_assert_str_eq(conf->tcp, want[i]);
		cr_assert_str_eq(conf->gw_url, "https://[::1]:5000");
		cr_assert_not_null(auth_key_find(conf, KEY, strlen(KEY)));
		config_free(conf);
		migrate_env_free(&me);
	}
	unlink(yf);
	unlink(kf);
	rmdir(dir);
}
