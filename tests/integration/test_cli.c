/*
 * The command line's checks, black-box: -t warns about an inline key in a
 * configuration others may read (and start and reload do too), -t fails
 * where start would on journal.file's folder, and README's troubleshooting
 * row quotes what -t and start print for a Gateway without a pin.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

/* Wait (up to 5 s) until text is in the log n times; the count. */
static int
wait_count(const struct brokerd *b, const char *text, int n)
{
	int	 i;

	for (i = 0; i < 100 && brokerd_log_count(b, text) < n; i++)
		sleep_ms(50);
	return (brokerd_log_count(b, text));
}

/*
 * An inline key in a brokerd.yaml that group or others may read: a
 * warning (not a refusal) at -t, at start and at reload, naming the file
 * and the key's name, never the key.
 */
Test(cli, inline_key_in_readable_file_warns, .timeout = 30)
{
	struct brokerd	 b;
	char		 out[4096];
	char		*argt[] = { "brokerd", "-t", "-c", NULL, NULL };
	static const char warn[] = "is readable by group or others";

	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, NULL, NULL), 0);
	argt[3] = b.conf;
	cr_assert_eq(chmod(b.conf, 0644), 0);
	cr_assert_eq(brokerd_run(argt, out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, warn) != NULL && strstr(out, b.conf) != NULL &&
	    strstr(out, "0644") != NULL && strstr(out, "\"test\"") != NULL,
	    "%s", out);
	cr_assert(strstr(out, TEST_KEY) == NULL && strstr(out,
	    TEST_READ_KEY) == NULL, "%s", out);
	cr_assert(strstr(out, "is ok") != NULL, "%s", out);
	cr_assert_eq(chmod(b.conf, 0600), 0);
	cr_assert_eq(brokerd_run(argt, out, sizeof(out)), 0, "%s", out);
	cr_assert(strstr(out, warn) == NULL, "%s", out);

	cr_assert_eq(chmod(b.conf, 0640), 0);
	cr_assert_eq(brokerd_spawn(&b, NULL), 0);
	cr_assert_eq(brokerd_log_count(&b, warn), 1);
	cr_assert(!brokerd_log_has(&b, TEST_KEY));
	cr_assert_eq(chmod(b.conf, 0604), 0);
	brokerd_signal(&b, SIGHUP);
	cr_assert_eq(wait_count(&b, "configuration reloaded", 1), 1);
	cr_assert_eq(brokerd_log_count(&b, warn), 2);
	cr_assert_eq(chmod(b.conf, 0600), 0);
	brokerd_signal(&b, SIGHUP);
	cr_assert_eq(wait_count(&b, "configuration reloaded", 2), 2);
	cr_assert_eq(brokerd_log_count(&b, warn), 2);
	brokerd_stop(&b);
}

/* -t checks journal.file's folder as start would (nginx -t does too). */
Test(cli, check_refuses_journal_in_missing_folder, .timeout = 30)
{
	struct brokerd	 b;
	char		 out[4096], extra[600], dir[400], *p;
	char		*argt[] = { "brokerd", "-t", "-c", NULL, NULL };
	int		 line = 0, col = 0, n = 0;

	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, NULL, NULL), 0);
	argt[3] = b.conf;
	snprintf(dir, sizeof(dir), "%s/missing", b.dir);
	snprintf(extra, sizeof(extra), "journal:\n  file: %s/journal\n", dir);
	cr_assert_eq(brokerd_write_conf(&b, NULL, extra), 0);
	cr_assert_eq(brokerd_run(argt, out, sizeof(out)), 1, "%s", out);
	cr_assert_not_null(p = strstr(out, "brokerd.yaml:"), "%s", out);
	cr_assert_eq(sscanf(p, "brokerd.yaml:%d:%d: journal.file: folder "
	    "%n", &line, &col, &n), 2, "%s", out);
	cr_assert(n > 0 && line > 0 && col > 0 && strncmp(p + n, dir,
	    strlen(dir)) == 0, "%s", out);
	/* And start agrees: it fails the same way. */
	cr_assert_neq(brokerd_spawn(&b, NULL), 0);
	cr_assert_eq(mkdir(dir, 0700), 0);
	cr_assert_eq(brokerd_run(argt, out, sizeof(out)), 0, "%s", out);
	if (geteuid() != 0) {
		/* root may write anywhere: the mode would not stop it */
		cr_assert_eq(chmod(dir, 0500), 0);
		cr_assert_eq(brokerd_run(argt, out, sizeof(out)), 1, "%s",
		    out);
		cr_assert(strstr(out, "Permission denied") != NULL, "%s", out);
		chmod(dir, 0700);
	}
	brokerd_stop(&b);
}

/*
 * README's troubleshooting row for a Gateway without a pin quotes what
 * -t prints, then what start prints: each quote must be what the code
 * says there (a trailing " ..." stands for the rest of the line).
 */
Test(cli, readme_quotes_the_pinless_messages, .timeout = 30)
{
	struct brokerd	 b;
	char		 out[4096], quote[2][256], *readme, *row, *end, *p, *q;
	char		*argt[] = { "brokerd", "-t", "-c", NULL, NULL };
	char		*log;
	size_t		 n = 0, len;

	cr_assert_not_null(readme = slurp("README.md", NULL));
	cr_assert_not_null(row = strstr(readme, "| no pin set |"));
	while (row > readme && row[-1] != '\n')
		row--;
	end = strchr(row, '\n');
	for (p = row; n < 2 && (p = strstr(p, "`gateway.tls:")) != NULL &&
	    p < end; p = q + 1) {
		cr_assert_not_null(q = strchr(p + 1, '`'));
		len = (size_t)(q - p - 1);
		if (len > 4 && strncmp(q - 4, " ...", 4) == 0)
			len -= 4;
		cr_assert_lt(len, sizeof(quote[0]));
		memcpy(quote[n], p + 1, len);
		quote[n++][len] = '\0';
	}
	free(readme);
	cr_assert_eq(n, 2, "README's row quotes -t's and start's messages");

	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, NULL, "gateway:\n  url: "
	    "https://127.0.0.1:9\n"), 0);
	argt[3] = b.conf;
	cr_assert_eq(brokerd_run(argt, out, sizeof(out)), 0, "%s", out);
	cr_assert_not_null(strstr(out, quote[0]), "-t printed:\n%s\nREADME "
	    "says:\n%s", out, quote[0]);
	cr_assert_null(strstr(out, quote[1]), "%s", out);
	cr_assert_neq(brokerd_spawn(&b, NULL), 0, "start refuses no pin");
	cr_assert_not_null(log = slurp(b.log, NULL));
	cr_assert_not_null(strstr(log, quote[1]), "start printed:\n%s\n"
	    "README says:\n%s", log, quote[1]);
	free(log);
	brokerd_stop(&b);
}
