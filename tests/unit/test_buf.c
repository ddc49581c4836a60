/*
 * buf.c: growth, the one-pass printf (fits, does not fit, exactly fills
 * the room), the decimal formatter, consume and truncate.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"

Test(buf, printf_fits_grows_and_fills_exactly)
{
	struct buf	 b;
	char		 big[300];

	buf_init(&b);
	cr_assert_eq(buf_printf(&b, "%s=%d", "a", 42), 0);
	cr_assert_str_eq(b.data, "a=42");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_eq(buf_printf(&b, "[%s]", big), 0);
	cr_assert_eq(b.len, 4 + 2 + 299);
	cr_assert_eq(b.data[b.len], '\0');
	cr_assert_eq(b.data[5], 'x');
	cr_assert_eq(b.data[b.len - 1], ']');
	/* text that needs exactly the room left, then one byte more */
	buf_reset(&b);
	cr_assert_eq(buf_printf(&b, "%.*s", (int)(b.cap - 1), big), 0);
	cr_assert_eq(b.len, strlen(b.data));
	cr_assert_eq(buf_printf(&b, "%s", "yz"), 0);
	cr_assert_eq(b.len, strlen(b.data));
	cr_assert_eq(b.data[b.len - 1], 'z');
	buf_free(&b);
}

Test(buf, putu)
{
	struct buf	 b;
	char		 want[64];

	buf_init(&b);
	cr_assert_eq(buf_putu(&b, 0), 0);
	cr_assert_eq(buf_puts(&b, " "), 0);
	cr_assert_eq(buf_putu(&b, 7), 0);
	cr_assert_eq(buf_puts(&b, " "), 0);
	cr_assert_eq(buf_putu(&b, 65536), 0);
	cr_assert_eq(buf_puts(&b, " "), 0);
	cr_assert_eq(buf_putu(&b, ULLONG_MAX), 0);
	snprintf(want, sizeof(want), "0 7 65536 %llu", ULLONG_MAX);
	cr_assert_str_eq(b.data, want);
	buf_free(&b);
}

Test(buf, consume_truncate)
{
	struct buf	 b;

	buf_init(&b);
	cr_assert_eq(buf_puts(&b, "hello world"), 0);
	buf_consume(&b, 6);
	cr_assert_str_eq(b.data, "world");
	buf_truncate(&b, 3);
	cr_assert_str_eq(b.data, "wor");
	buf_truncate(&b, 10);
	cr_assert_str_eq(b.data, "wor");
	buf_consume(&b, 10);
	cr_assert_eq(b.len, 0);
	buf_free(&b);
}
