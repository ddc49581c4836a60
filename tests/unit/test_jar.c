/*
 * jar.c: the Gateway's cookies kept as name=value and replayed; removal
 * by Max-Age and Expires; nothing that could bend the Cookie header.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "brokerd.h"

#define NOW	((time_t)1764050710)	/* 2025-11-25T06:05:10Z */

static struct jar jar;
static struct buf out;

static void
setup(void)
{
	jar_init(&jar);
	buf_init(&out);
}

static void
teardown(void)
{
	jar_free(&jar);
	buf_free(&out);
}

static const char *
jar_text(void)
{
	buf_reset(&out);
	cr_assert_eq(jar_format(&jar, &out), 0);
	return (out.data != NULL ? out.data : "");
}

TestSuite(jar, .init = setup, .fini = teardown);

Test(jar, keeps_name_value_only)
{
	cr_assert_eq(jar_absorb(&jar,
	    "x-sess-uuid=0.1234.5678; Path=/; Secure; HttpOnly", NOW), 0);
	cr_assert_str_eq(jar_text(), "x-sess-uuid=0.1234.5678");
}

Test(jar, empty_jar_formats_to_nothing)
{
	cr_assert_str_eq(jar_text(), "");
}

Test(jar, replaced_by_name_order_kept)
{
	cr_assert_eq(jar_absorb(&jar, "a=1", NOW), 0);
	cr_assert_eq(jar_absorb(&jar, "b=2; Path=/", NOW), 0);
	cr_assert_eq(jar_absorb(&jar, " a = 3 ; Secure", NOW), 0);
	cr_assert_str_eq(jar_text(), "a=3; b=2");
	cr_assert_eq(jar.n, 2);
}

Test(jar, names_are_case_sensitive)
{
	cr_assert_eq(jar_absorb(&jar, "A=1", NOW), 0);
	cr_assert_eq(jar_absorb(&jar, "a=2", NOW), 0);
	cr_assert_str_eq(jar_text(), "A=1; a=2");
}

Test(jar, max_age_zero_or_negative_removes)
{
	cr_assert_eq(jar_absorb(&jar, "a=1", NOW), 0);
	cr_assert_eq(jar_absorb(&jar, "b=2", NOW), 0);
	cr_assert_eq(jar_absorb(&jar, "a=; Max-Age=0", NOW), 0);
	cr_assert_str_eq(jar_text(), "b=2");
	cr_assert_eq(jar_absorb(&jar, "b=x; max-age=-1", NOW), 0);
	cr_assert_str_eq(jar_text(), "");
	/* Removing what is not there is fine and adds nothing. */
	cr_assert_eq(jar_absorb(&jar, "c=3; Max-Age=0", NOW), 0);
	cr_assert_eq(jar.n, 0);
}

Test(jar, expires_in_the_past_removes)
{
	cr_assert_eq(jar_absorb(&jar, "a=1", NOW), 0);
	cr_assert_eq(jar_absorb(&jar,
	    "a=deleted; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/", NOW),
	    0);
	cr_assert_eq(jar.n, 0);
	cr_assert_eq(jar_absorb(&jar, "b=1", NOW), 0);
	cr_assert_eq(jar_absorb(&jar,
	    "b=2; expires=Tuesday, 25-Nov-25 06:05:09 GMT", NOW), 0);
	cr_assert_eq(jar.n, 0);
}

Test(jar, expires_in_the_future_keeps)
{
	cr_assert_eq(jar_absorb(&jar,
	    "a=1; Expires=Wed, 26 Nov 2025 06:05:10 GMT", NOW), 0);
	cr_assert_str_eq(jar_text(), "a=1");
	/* An unreadable date is ignored, the cookie kept. */
	cr_assert_eq(jar_absorb(&jar, "b=2; Expires=soon", NOW), 0);
	cr_assert_str_eq(jar_text(), "a=1; b=2");
}

Test(jar, max_age_wins_over_expires)
{
	cr_assert_eq(jar_absorb(&jar,
	    "a=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=60", NOW), 0);
	cr_assert_str_eq(jar_text(), "a=1");
	cr_assert_eq(jar_absorb(&jar,
	    "a=1; Max-Age=0; Expires=Wed, 26 Nov 2025 06:05:10 GMT", NOW), 0);
	cr_assert_eq(jar.n, 0);
}

Test(jar, malformed_or_dangerous_refused)
{
	static const char *const bad[] = {
		"novalue",
		"=1",
		"a b=1",
		"a=1\r\nX-Injected: yes",
		"a=1\nb",
		"a=x y",
		"a\x01=1",
		"",
		";a=1",
	};
	size_t	 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(jar_absorb(&jar, bad[i], NOW), -1,
		    "accepted: %s", bad[i]);
	cr_assert_eq(jar.n, 0);
}

Test(jar, empty_value_kept)
{
	cr_assert_eq(jar_absorb(&jar, "a=", NOW), 0);
	cr_assert_str_eq(jar_text(), "a=");
}

Test(jar, bounded)
{
	char	 c[32];
	int	 i, refused = 0;

	for (i = 0; i < 200; i++) {
		snprintf(c, sizeof(c), "c%d=%d", i, i);
		if (jar_absorb(&jar, c, NOW) == -1)
			refused++;
	}
	cr_assert(jar.n < 200 && refused == 200 - (int)jar.n);
	/* A known name is still replaced when full. */
	cr_assert_eq(jar_absorb(&jar, "c0=new", NOW), 0);
	cr_assert(strncmp(jar_text(), "c0=new; ", 8) == 0);
}
