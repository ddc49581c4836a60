/*
 * value.c: the one loopback rule (on addresses and on "HOST:PORT"), the
 * Host names, the https URL, hex, pins, keys, names, paths, rates, modes.
 * The loopback cases include those where the old copies disagreed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "brokerd.h"
#include "value.h"

static struct sockaddr_storage
addr(const char *host)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else {
		cr_assert_eq(inet_pton(AF_INET6, host, &s6->sin6_addr), 1,
		    "%s", host);
		s6->sin6_family = AF_INET6;
	}
	return (ss);
}

Test(value, loopback_addresses)
{
	static const struct {
		const char	*host;
		int		 loopback;
	} t[] = {
		{ "127.0.0.1", 1 }, { "127.255.255.254", 1 },
		{ "127.0.0.0", 1 }, { "::1", 1 }, { "::ffff:127.0.0.1", 1 },
		{ "::ffff:127.9.8.7", 1 },
		{ "0.0.0.0", 0 }, { "10.0.0.1", 0 }, { "128.0.0.1", 0 },
		{ "126.255.255.255", 0 }, { "::", 0 }, { "::ffff:10.0.0.1", 0 },
		{ "::127.0.0.1", 0 }, { "fe80::1", 0 }, { "::2", 0 },
	};
	struct sockaddr_storage	 ss;
	size_t			 i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		ss = addr(t[i].host);
		cr_assert_eq(value_is_loopback(&ss), t[i].loopback, "%s",
		    t[i].host);
	}
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	cr_assert_eq(value_is_loopback(&ss), 0);
}

Test(value, loopback_hostport)
{
	static const struct {
		const char	*s;
		int		 need_port;
		int		 family;	/* 0: refused */
		unsigned	 port;
		const char	*why;
	} t[] = {
		{ "127.0.0.1:8000", 1, AF_INET, 8000, NULL },
		{ "127.255.255.254:1", 1, AF_INET, 1, NULL },
		{ "localhost:0", 1, AF_INET, 0, NULL },
		{ "LocalHost:65535", 1, AF_INET, 65535, NULL },
		{ "[::1]:8000", 1, AF_INET6, 8000, NULL },
		/* the old copies disagreed on these two: now accepted */
		{ "[::ffff:127.0.0.1]:8000", 1, AF_INET, 8000, NULL },
		{ "[::ffff:127.0.0.1]", 0, AF_INET, 80, NULL },
		{ "127.0.0.1", 0, AF_INET, 80, NULL },
		{ "[::ffff:10.0.0.1]:8000", 1, 0, 0, "not a loopback" },
		{ "::ffff:127.0.0.1", 0, 0, 0, "brackets" },
		{ "::ffff:127.0.0.1:8000", 1, 0, 0, "brackets" },
		{ "0.0.0.0:1", 1, 0, 0, "not a loopback" },
		{ "[::]:1", 1, 0, 0, "not a loopback" },
		{ "example.com:1", 1, 0, 0, "not a loopback" },
		{ "127.1:1", 1, 0, 0, "not a loopback" },
		{ "127.0.0.1", 1, 0, 0, "missing :PORT" },
		{ "127.0.0.1:65536", 1, 0, 0, "bad port" },
		{ "127.0.0.1:", 1, 0, 0, "bad port" },
		{ "127.0.0.1:-1", 1, 0, 0, "bad port" },
		{ "[::1", 1, 0, 0, "missing ']'" },
		{ "[::1]x:1", 1, 0, 0, "expected HOST:PORT" },
		{ "[zz]:1", 1, 0, 0, "bad address" },
		{ ":1", 1, 0, 0, "bad address" },
	};
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	char			 why[160];
	size_t			 i;
	int			 rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		why[0] = '\0';
		len = 0;
		rc = value_loopback_hostport(t[i].s, t[i].need_port, &ss, &len,
		    why, sizeof(why));
		if (t[i].family == 0) {
			cr_assert_eq(rc, -1, "%s accepted", t[i].s);
			cr_assert_not_null(strstr(why, t[i].why), "%s: %s",
			    t[i].s, why);
			continue;
		}
		cr_assert_eq(rc, 0, "%s: %s", t[i].s, why);
		cr_assert_eq(ss.ss_family, t[i].family, "%s", t[i].s);
		if (t[i].family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			cr_assert_eq(len, sizeof(*s4));
			cr_assert_eq(ntohl(s4->sin_addr.s_addr) >> 24, 127);
			cr_assert_eq(ntohs(s4->sin_port), t[i].port, "%s",
			    t[i].s);
		} else {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			cr_assert_eq(len, sizeof(*s6));
			cr_assert(IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr));
			cr_assert_eq(ntohs(s6->sin6_port), t[i].port);
		}
	}
}

Test(value, host_header_names)
{
	static const char *const ok[] = { "127.0.0.1", "localhost",
	    "LOCALHOST", "[::1]", "127.0.0.1:8000", "localhost:1",
	    "[::1]:8000" };
	static const char *const bad[] = { "127.0.0.2", "evil.example",
	    "localhost.evil.example", "localhost:", "localhost:80x",
	    "127.0.0.1:8000:1", "[::ffff:127.0.0.1]", "::1", "" };
	size_t	 i;

	cr_assert_eq(value_host_ok(NULL), 1);
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		cr_assert_eq(value_host_ok(ok[i]), 1, "%s", ok[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(value_host_ok(bad[i]), 0, "%s", bad[i]);
}

Test(value, https_urls)
{
	static const struct {
		const char	*url, *host, *port, *why;
	} t[] = {
		{ "https://127.0.0.1:5000", "127.0.0.1", "5000", NULL },
		{ "https://127.0.0.1:5000/", "127.0.0.1", "5000", NULL },
		{ "HTTPS://gw.example", "gw.example", "443", NULL },
		{ "https://[::1]", "::1", "443", NULL },
		{ "https://[::1]:05000", "::1", "5000", NULL },
		{ "http://127.0.0.1:5000", NULL, NULL, "https://" },
		{ "127.0.0.1:5000", NULL, NULL, "https://" },
		{ "https://127.0.0.1:5000/v1/api", NULL, NULL, "no path" },
		{ "https://user@host", NULL, NULL, "HOST[:PORT] only" },
		{ "https://host?x", NULL, NULL, "HOST[:PORT] only" },
		{ "https://", NULL, NULL, "bad host" },
		{ "https://[zz]:5000", NULL, NULL, "bad host" },
		{ "https://[::1]x", NULL, NULL, "bad host" },
		{ "https://a_b", NULL, NULL, "bad host" },
		{ "https://127.0.0.1:0", NULL, NULL, "bad port" },
		{ "https://127.0.0.1:65536", NULL, NULL, "bad port" },
		{ "https://127.0.0.1:x", NULL, NULL, "bad port" },
		{ "https://127.0.0.1:", NULL, NULL, "bad port" },
	};
	char	 host[256], port[8], why[160];
	size_t	 i;
	int	 rc;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		why[0] = '\0';
		rc = value_https_url(t[i].url, host, sizeof(host), port,
		    sizeof(port), why, sizeof(why));
		if (t[i].host == NULL) {
			cr_assert_eq(rc, -1, "%s accepted", t[i].url);
			cr_assert_not_null(strstr(why, t[i].why), "%s: %s",
			    t[i].url, why);
			continue;
		}
		cr_assert_eq(rc, 0, "%s: %s", t[i].url, why);
		cr_assert_str_eq(host, t[i].host);
		cr_assert_str_eq(port, t[i].port);
	}
}

Test(value, hex_and_pins)
{
	unsigned char	 pin[32];
	char		 colon[96];
	size_t		 i;

	cr_assert_eq(value_hexval('0'), 0);
	cr_assert_eq(value_hexval('9'), 9);
	cr_assert_eq(value_hexval('a'), 10);
	cr_assert_eq(value_hexval('F'), 15);
	cr_assert_eq(value_hexval('g'), -1);
	cr_assert_eq(value_hexval('/'), -1);
	cr_assert_eq(value_hexval(':'), -1);
	for (i = 0; i < 32; i++)
		snprintf(colon + i * 3, sizeof(colon) - i * 3, "%02X%s",
		    (unsigned)i, i < 31 ? ":" : "");
	cr_assert_eq(value_pin(colon, pin), 0);
	for (i = 0; i < 32; i++)
		cr_assert_eq(pin[i], i);
	cr_assert_eq(value_pin("sha256 Fingerprint=00:01:02:03:04:05:06:07:"
	    "08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:"
	    "1D:1E:1F", pin), 0);
	cr_assert_eq(value_pin("000102030405060708090a0b0c0d0e0f"
	    "101112131415161718191a1b1c1d1e1f", pin), 0);
	cr_assert_eq(pin[31], 0x1f);
	cr_assert_eq(value_pin("AB:CD", pin), -1);
	colon[2] = '-';
	cr_assert_eq(value_pin(colon, pin), -1);
	cr_assert_eq(value_pin("zz0102030405060708090a0b0c0d0e0f"
	    "101112131415161718191a1b1c1d1e1f", pin), -1);
}

Test(value, keys_names_paths_digits)
{
	char	 why[128];

	cr_assert_eq(value_key_ok("0123456789abcdef", 16, why, sizeof(why)),
	    0);
	cr_assert_eq(value_key_ok("", 0, why, sizeof(why)), -1);
	cr_assert_str_eq(why, "empty key");
	cr_assert_eq(value_key_ok("short", 5, why, sizeof(why)), -1);
	cr_assert_str_eq(why, "key is shorter than 16 bytes");
	cr_assert_eq(value_key_ok("0123456789 abcdef", 17, why, sizeof(why)),
	    -1);
	cr_assert_eq(value_key_ok("0123456789abcde\x80", 16, why,
	    sizeof(why)), -1);
	cr_assert_eq(value_name_ok("ops-bot_1.x@host"), 1);
	cr_assert_eq(value_name_ok(""), 0);
	cr_assert_eq(value_name_ok("a b"), 0);
	cr_assert_eq(value_name_ok("a\nb"), 0);
	cr_assert_eq(value_route_path_ok("/iserver/"), 1);
	cr_assert_eq(value_route_path_ok("iserver/"), 0);
	cr_assert_eq(value_route_path_ok("/a b"), 0);
	cr_assert_eq(value_route_path_ok("/a?b"), 0);
	cr_assert_eq(value_route_path_ok("/a#b"), 0);
	cr_assert_eq(value_digits("0123"), 1);
	cr_assert_eq(value_digits(""), 0);
	cr_assert_eq(value_digits("12a"), 0);
	cr_assert_eq(value_digits("-1"), 0);
}

Test(value, modes)
{
	static const struct {
		const char	*s;
		int		 rc;
		unsigned	 mode;
	} t[] = {
		{ "0660", 0, 0660 }, { "660", 0, 0660 }, { "0o600", 0, 0600 },
		{ "0777", 0, 0777 }, { "0", 0, 0 },
		{ "0888", -1, 0 }, { "01777", -1, 0 }, { "rw", -1, 0 },
		{ "", -1, 0 }, { "0o", -1, 0 }, { "06600", -1, 0 },
	};
	unsigned	 mode;
	size_t		 i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		mode = 12345;
		cr_assert_eq(value_mode(t[i].s, &mode), t[i].rc, "%s", t[i].s);
		if (t[i].rc == 0)
			cr_assert_eq(mode, t[i].mode, "%s", t[i].s);
	}
}

Test(value, rates)
{
	struct rate	 r;

	cr_assert_eq(value_rate_parse("10/s", &r), 0);
	cr_assert(r.n == 10 && r.window_ms == 1000);
	cr_assert_eq(value_rate_parse("1/5s", &r), 0);
	cr_assert(r.n == 1 && r.window_ms == 5000);
	cr_assert_eq(value_rate_parse("1/min", &r), 0);
	cr_assert(r.n == 1 && r.window_ms == 60000);
	cr_assert_eq(value_rate_parse("1/15min", &r), 0);
	cr_assert(r.n == 1 && r.window_ms == 900000);
	cr_assert_eq(value_rate_parse("off", &r), 0);
	cr_assert_eq(r.n, 0);
	cr_assert_eq(value_rate_parse("0/s", &r), -1);
	cr_assert_eq(value_rate_parse("1/0s", &r), -1);
	cr_assert_eq(value_rate_parse("/s", &r), -1);
	cr_assert_eq(value_rate_parse("1/", &r), -1);
	cr_assert_eq(value_rate_parse("1s", &r), -1);
	cr_assert_eq(value_rate_parse("1/ms", &r), -1);
	cr_assert_eq(value_rate_parse("-1/s", &r), -1);
	cr_assert_eq(value_rate_parse("1/s ", &r), -1);
	cr_assert_eq(value_rate_parse("99999999999/s", &r), -1);
	cr_assert_eq(value_rate_parse("OFF", &r), -1);
}

Test(value, utf8)
{
	cr_assert_eq(value_utf8_len((const unsigned char *)"a", 1), 1);
	cr_assert_eq(value_utf8_len((const unsigned char *)"\xc3\xa9", 2), 2);
	cr_assert_eq(value_utf8_len((const unsigned char *)"\xe2\x82\xac", 3),
	    3);
	cr_assert_eq(value_utf8_len((const unsigned char *)"\xf0\x9f\x98\x80",
	    4), 4);
	cr_assert_eq(value_utf8_len((const unsigned char *)"\xf4\x8f\xbf\xbf",
	    4), 4, "U+10FFFF");
	cr_assert_eq(value_utf8_len((const unsigned char *)"", 0), 0);
	cr_assert_eq(value_utf8_len((const unsigned char *)"\xc3\xa9", 1), 0,
	    "cut short");
	cr_assert_eq(value_utf8_len((const unsigned char *)"\xc0\xaf", 2), 0);
	cr_assert_eq(value_utf8_len((const unsigned char *)"\xe0\x80\xaf", 3),
	    0, "overlong");
	cr_assert_eq(value_utf8_len((const unsigned char *)"\xf0\x80\x80\xaf",
	    4), 0, "overlong");
	cr_assert_eq(value_utf8_len((const unsigned char *)"\xed\xa0\x80", 3),
	    0, "surrogate");
	cr_assert_eq(value_utf8_len((const unsigned char *)"\xf4\x90\x80\x80",
	    4), 0, "past U+10FFFF");
	cr_assert_eq(value_utf8_len((const unsigned char *)"\xf5\x80\x80\x80",
	    4), 0);
	cr_assert_eq(value_utf8_len((const unsigned char *)"\x80", 1), 0,
	    "a continuation first");
	cr_assert_eq(value_utf8_len((const unsigned char *)"\xe2\x28\xa1", 3),
	    0, "no continuation");
}
