/*
 * The trade journal: intent before, outcome after, JSON lines, rotation.
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "brokerd.h"

static char dir[] = "/tmp/test_journal.XXXXXX";
static char path[256];

static void
setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/journal", dir);
}

static void
teardown(void)
{
	char	 cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static json_t *
line_n(const char *file, int n)
{
	FILE	*f = fopen(file, "r");
	char	 buf[8192];
	json_t	*j = NULL;
	int	 i = 0;

	cr_assert_not_null(f, "%s", file);
	while (fgets(buf, sizeof(buf), f) != NULL)
		if (i++ == n) {
			j = json_loads(buf, 0, NULL);
			break;
		}
	fclose(f);
	return (j);
}

TestSuite(journal, .init = setup, .fini = teardown);

Test(journal, intent_then_outcome)
{
	struct journal	*j;
	char		 err[256];
	uint64_t	 id;
	json_t		*a, *b;
	struct stat	 st;
	static const char order[] = "{\"orders\":[{\"conid\":1,\"cOID\":\"x\"}]}";

	cr_assert_not_null(j = journal_open(path, 1 << 20, 3, err,
	    sizeof(err)), "%s", err);
	cr_assert_eq(journal_intent(j, "key:nextjs", "POST",
	    "/v1/api/iserver/account/DU1/orders", order, sizeof(order) - 1,
	    &id), 0);
	/* the intent is on disk before anything is sent */
	cr_assert_not_null(a = line_n(path, 0));
	cr_assert_str_eq(json_string_value(json_object_get(a, "phase")),
	    "intent");
	cr_assert_str_eq(json_string_value(json_object_get(a, "who")),
	    "key:nextjs");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    json_object_get(json_object_get(a, "body"), "orders"), 0),
	    "cOID")), "x");
	cr_assert_eq(journal_outcome(j, id, 200, NULL, "[{\"order_id\":\"7\"}]",
	    18), 0);
	cr_assert_not_null(b = line_n(path, 1));
	cr_assert_str_eq(json_string_value(json_object_get(b, "phase")),
	    "outcome");
	cr_assert_eq(json_integer_value(json_object_get(a, "id")),
	    json_integer_value(json_object_get(b, "id")));
	cr_assert_eq(json_integer_value(json_object_get(b, "status")), 200);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	json_decref(a);
	json_decref(b);
	journal_close(j);
}

Test(journal, outcome_unknown_and_binary_bodies)
{
	struct journal	*j;
	char		 err[256];
	uint64_t	 id;
	json_t		*b;

	cr_assert_not_null(j = journal_open(path, 0, 0, err, sizeof(err)));
	cr_assert_eq(journal_intent(j, "peer:x", "DELETE", "/t", "\xff\xfe", 2,
	    &id), 0);
	cr_assert_eq(journal_outcome(j, id, 0, "gateway_outcome_unknown", NULL,
	    0), 0);
	cr_assert_not_null(b = line_n(path, 1));
	cr_assert_str_eq(json_string_value(json_object_get(b, "error")),
	    "gateway_outcome_unknown");
	json_decref(b);
	cr_assert_not_null(b = line_n(path, 0));
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(b,
	    "body"), "bytes")), 2);
	json_decref(b);
	journal_close(j);
}

Test(journal, rotates_and_keeps_n)
{
	struct journal	*j;
	char		 err[256], old[300];
	uint64_t	 id;
	int		 i;

	cr_assert_not_null(j = journal_open(path, 400, 2, err, sizeof(err)));
	for (i = 0; i < 40; i++)
		cr_assert_eq(journal_intent(j, "k", "POST", "/x", "{}", 2, &id),
		    0);
	journal_close(j);
	snprintf(old, sizeof(old), "%s.1", path);
	cr_assert_eq(access(old, F_OK), 0);
	snprintf(old, sizeof(old), "%s.2", path);
	cr_assert_eq(access(old, F_OK), 0);
	snprintf(old, sizeof(old), "%s.3", path);
	cr_assert_neq(access(old, F_OK), 0, "kept more than journal.keep");
	{
		struct stat st;

		cr_assert_eq(stat(path, &st), 0);
		cr_assert_leq(st.st_size, 400);
	}
}

Test(journal, unwritable_path_is_an_error)
{
	char	 err[256];

	cr_assert_null(journal_open("/nonexistent/dir/journal", 0, 0, err,
	    sizeof(err)));
	cr_assert(strstr(err, "/nonexistent/dir/journal") != NULL);
}

/*
 * A line cut short (a full disk, a file size limit) must not glue itself
 * to the next one: every line of the journal stays a JSON object, so the
 * intent written after the spell is readable.
 */
Test(journal, short_write_leaves_no_fragment)
{
	struct journal	*j;
	struct rlimit	 old, rl;
	struct stat	 st;
	char		 err[256], buf[8192];
	uint64_t	 id;
	json_t		*o;
	FILE		*f;
	int		 n = 0;

	signal(SIGXFSZ, SIG_IGN);
	cr_assert_not_null(j = journal_open(path, 1 << 20, 3, err,
	    sizeof(err)), "%s", err);
	cr_assert_eq(journal_intent(j, "key:t", "POST", "/a", "{}", 2, &id),
	    0);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	rl = old;
	rl.rlim_cur = (rlim_t)st.st_size + 40;	/* room for a fragment */
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	cr_assert_eq(journal_intent(j, "key:t", "POST", "/b", "{}", 2, &id),
	    -1);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	cr_assert_eq(journal_intent(j, "key:t", "POST", "/c", "{}", 2, &id),
	    0);
	journal_close(j);
	cr_assert_not_null(f = fopen(path, "r"));
	while (fgets(buf, sizeof(buf), f) != NULL) {
		o = json_loads(buf, 0, NULL);
		cr_assert_not_null(o, "line %d is not JSON: %s", n + 1, buf);
		json_decref(o);
		n++;
	}
	fclose(f);
	cr_assert_eq(n, 2);
}
