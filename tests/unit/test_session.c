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
