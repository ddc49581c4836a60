/*
 * config_yaml.c on text, without config.c's sections: typed values, the
 * FILE:LINE:COL and key path of every error, mappings (unknown and
 * duplicate keys), lists, one document only, reader errors' positions.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerd.h"
#include "config_yaml.h"

/* What a test's root callback read. */
static struct {
	unsigned long long	 n;
	size_t			 size;
	int			 flag;
	char			*s;
	struct rate		 rate;
	unsigned		 scopes;
	int			 items;
} got;

static char	 err[512];

static int
root_values(struct cfg *c, yaml_node_t *root)
{
	static const char *const names[] = { "n", "size", "flag", "s",
	    "rate", "scopes", NULL };
	yaml_node_t	*v[6];

	if (cfg_collect(c, root, "", names, v) == -1)
		return (-1);
	if (v[0] != NULL && cfg_uint(c, v[0], "n", 1, 100, &got.n) == -1)
		return (-1);
	if (v[1] != NULL && cfg_size(c, v[1], "size", 0, 1ULL << 40,
	    &got.size) == -1)
		return (-1);
	if (v[2] != NULL && cfg_bool(c, v[2], "flag", &got.flag) == -1)
		return (-1);
	if (v[3] != NULL && cfg_string(c, v[3], "s", 1, &got.s) == -1)
		return (-1);
	if (v[4] != NULL && cfg_rate(c, v[4], "rate", &got.rate) == -1)
		return (-1);
	if (v[5] != NULL && cfg_scopes(c, v[5], "scopes", &got.scopes) == -1)
		return (-1);
	return (0);
}

static int
item(struct cfg *c, yaml_node_t *n, const char *path)
{
	unsigned long long v;

	if (cfg_uint(c, n, path, 0, 9, &v) == -1)
		return (-1);
	got.items++;
	return (0);
}

static int
root_list(struct cfg *c, yaml_node_t *root)
{
	return (cfg_list(c, root, "list", item));
}

static int
parse(const char *text, int (*fn)(struct cfg *, yaml_node_t *))
{
	struct cfg	 c;

	free(got.s);
	memset(&got, 0, sizeof(got));
	memset(&c, 0, sizeof(c));
	c.file = "t.yaml";
	c.err = err;
	c.errlen = sizeof(err);
	err[0] = '\0';
	return (cfg_parse(&c, text, strlen(text), fn));
}

static void
expect(const char *text, int (*fn)(struct cfg *, yaml_node_t *),
    const char *want)
{
	cr_assert_eq(parse(text, fn), -1, "accepted: %s", text);
	cr_assert(strncmp(err, want, strlen(want)) == 0,
	    "%s: got \"%s\", want \"%s...\"", text, err, want);
}

Test(config_yaml, typed_values)
{
	cr_assert_eq(parse("n: 42\nsize: 1099511627776\nflag: Yes\n"
	    "s: \"hello\"\nrate: 3/2min\nscopes: [read, admin]\n",
	    root_values), 0, "%s", err);
	cr_assert_eq(got.n, 42);
	cr_assert_eq(got.size, 1ULL << 40);
	cr_assert_eq(got.flag, 1);
	cr_assert_str_eq(got.s, "hello");
	cr_assert(got.rate.n == 3 && got.rate.window_ms == 120000);
	cr_assert_eq(got.scopes, SCOPE_READ | SCOPE_ADMIN);
	cr_assert_eq(parse("flag: off\ns: ~\nscopes: null\n", root_values), 0);
	cr_assert_eq(got.flag, 0);
	cr_assert_null(got.s);
	cr_assert_eq(got.scopes, 0);
	cr_assert_eq(parse("", root_values), 0, "an empty file is defaults");
}

Test(config_yaml, errors_name_file_line_column_and_path)
{
	expect("n: 0\n", root_values, "t.yaml:1:4: n: 0 is out of range 1-100");
	expect("\n  n: x\n", root_values,
	    "t.yaml:2:6: n: expected a whole number, got \"x\"");
	expect("n: \"5\"\n", root_values, "t.yaml:1:4: n: expected a whole");
	expect("n: 99999999999999999999999\n", root_values,
	    "t.yaml:1:4: n: 99999999999999999999999 is too large");
	expect("n: [1]\n", root_values, "t.yaml:1:4: n: expected a value, not "
	    "a list");
	expect("n: {a: 1}\n", root_values, "t.yaml:1:4: n: expected a value, "
	    "not a mapping");
	expect("flag: maybe\n", root_values,
	    "t.yaml:1:7: flag: expected true or false");
	expect("s: \"a\\0b\"\n", root_values, "t.yaml:1:4: s: contains a NUL");
	expect("rate: fast\n", root_values, "t.yaml:1:7: rate: bad rate "
	    "\"fast\"");
	expect("scopes: [read, root]\n", root_values,
	    "t.yaml:1:16: scopes[1]: unknown scope \"root\"");
	expect("scopes: read\n", root_values,
	    "t.yaml:1:9: scopes: expected a list of scopes");
}

Test(config_yaml, mappings)
{
	expect("nn: 1\n", root_values, "t.yaml:1:1: nn: unknown key");
	expect("n: 1\nn: 2\n", root_values,
	    "t.yaml:2:1: n: duplicate key (first at line 1)");
	expect("{ [a]: 1 }\n", root_values, "t.yaml:1:3: : a key must be a "
	    "plain name");
	expect("- 1\n", root_values, "t.yaml:1:1: (top level): expected a "
	    "mapping");
	/* a key with a terminal escape is shown sanitised */
	expect("\"a\\eb\": 1\n", root_values, "t.yaml:1:1: a?b: unknown key");
}

Test(config_yaml, lists)
{
	cr_assert_eq(parse("[1, 2, 3]\n", root_list), 0, "%s", err);
	cr_assert_eq(got.items, 3);
	cr_assert_eq(parse("~\n", root_list), 0);
	cr_assert_eq(got.items, 0);
	expect("[1, 22]\n", root_list, "t.yaml:1:5: list[1]: 22 is out of "
	    "range 0-9");
	expect("a: 1\n", root_list, "t.yaml:1:1: list: expected a list");
}

Test(config_yaml, documents_and_syntax)
{
	expect("n: 1\n---\nn: 2\n", root_values,
	    "t.yaml:3:1: only one YAML document is allowed");
	expect("a: b\n c: d\n", root_values, "t.yaml:2:3: mapping values are "
	    "not allowed");
	/* a reader error's byte offset becomes a line and column */
	expect("n: 1\ns: \"ab\xff\"\n", root_values, "t.yaml:2:7: ");
}

Test(config_yaml, sanitize)
{
	char	 out[8];

	cfg_sanitize(out, sizeof(out), "a\nb", 3);
	cr_assert_str_eq(out, "a?b");
	cfg_sanitize(out, sizeof(out), "abcdefghij", 10);
	cr_assert_str_eq(out, "abcd...");
}
