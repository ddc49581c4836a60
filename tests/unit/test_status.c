/*
 * status.c: the status file's format and quoting, sourcing it with sh,
 * atomic rewrites under a concurrent reader, its mode, the history lines.
 */
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brokerd.h"

static char	 tmpdir[64];

static void
mk_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_status.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void
rm_tmpdir(void)
{
	char	 cmd[128];

	if (tmpdir[0] == '\0')
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", tmpdir);
	tmpdir[0] = '\0';
}

static void
sample(struct gw_status *st)
{
	memset(st, 0, sizeof(*st));
	st->state = GW_AUTHENTICATED;
	st->authenticated = 1;
	st->connected = 1;
	st->competing = 0;
	st->since = 1764050400;		/* 2025-11-25T06:00:00Z */
	st->checked = 1764050710;	/* 2025-11-25T06:05:10Z */
	st->seq = 3;
	st->pid = 1234;
	st->check_interval_s = 10;
	snprintf(st->message, sizeof(st->message), "%s", "");
}

static char *
slurp(const char *path, size_t *lenp)
{
	FILE	*f;
	char	*p;
	long	 n;

	if ((f = fopen(path, "r")) == NULL)
		return (NULL);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = calloc(1, (size_t)n + 1);
	if (p != NULL && fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	}
	fclose(f);
	if (lenp != NULL)
		*lenp = (size_t)n;
	return (p);
}

Test(status, state_names)
{
	cr_expect_str_eq(status_state_name(GW_STARTING), "starting");
	cr_expect_str_eq(status_state_name(GW_DOWN), "gateway_down");
	cr_expect_str_eq(status_state_name(GW_UNAUTHENTICATED),
	    "unauthenticated");
	cr_expect_str_eq(status_state_name(GW_AUTHENTICATED), "authenticated");
	cr_expect_str_eq(status_state_name(GW_COMPETING), "competing");
	cr_expect_str_eq(status_state_name(GW_STOPPED), "stopped");
	cr_expect_str_eq(status_state_name((enum gw_state)42), "unknown");
}

Test(status, time_rfc3339)
{
	char	 s[32];

	status_time(0, s, sizeof(s));
	cr_expect_str_eq(s, "1970-01-01T00:00:00Z");
	status_time(951782400, s, sizeof(s));
	cr_expect_str_eq(s, "2000-02-29T00:00:00Z");
	status_time(1764050710, s, sizeof(s));
	cr_expect_str_eq(s, "2025-11-25T06:05:10Z");
	status_time(1764050710, s, 5);		/* too small: empty, no overrun */
	cr_expect_str_eq(s, "");
}

Test(status, quote_table)
{
	static const struct {
		const char	*in;
		const char	*out;
	} t[] = {
		{ "authenticated", "authenticated" },
		{ "2026-11-25T06:00:00Z", "2026-11-25T06:00:00Z" },
		{ "a_b.c:d+e-f09", "a_b.c:d+e-f09" },
		{ "", "''" },
		{ "two words", "'two words'" },
		{ "it's", "'it'\\''s'" },
		{ "'", "''\\'''" },
		{ "$(id)", "'$(id)'" },
		{ "`id`", "'`id`'" },
		{ "a;b", "'a;b'" },
		{ "back\\slash", "'back\\slash'" },
		{ "line1\nline2", "'line1 line2'" },
		{ "tab\there\r\x7f", "'tab here  '" },
		{ "caf\xc3\xa9", "'caf\xc3\xa9'" },
		{ "x=1", "'x=1'" },
		{ "*", "'*'" },
	};
	struct buf	 b;
	size_t		 i;

	buf_init(&b);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		buf_reset(&b);
		cr_assert_eq(status_quote(&b, t[i].in), 0);
		cr_expect_str_eq(b.data, t[i].out, "quote of case %zu", i);
	}
	buf_free(&b);
}

Test(status, format_exact)
{
	struct gw_status st;
	struct buf	 b;

	sample(&st);
	snprintf(st.message, sizeof(st.message), "%s", "it's fine");
	buf_init(&b);
	cr_assert_eq(status_format(&st, &b), 0);
	cr_expect_str_eq(b.data,
	    "BROKERD_STATE=authenticated\n"
	    "BROKERD_AUTHENTICATED=1\n"
	    "BROKERD_CONNECTED=1\n"
	    "BROKERD_COMPETING=0\n"
	    "BROKERD_SINCE=2025-11-25T06:00:00Z\n"
	    "BROKERD_CHECKED=2025-11-25T06:05:10Z\n"
	    "BROKERD_CHECKED_UNIX=1764050710\n"
	    "BROKERD_SEQ=3\n"
	    "BROKERD_PID=1234\n"
	    "BROKERD_MESSAGE='it'\\''s fine'\n"
	    "BROKERD_CHECK_INTERVAL=10\n");

	/* not checked yet: empty times, raw fields as given */
	st.state = GW_COMPETING;
	st.checked = 0;
	st.authenticated = 0;
	st.competing = 1;
	st.message[0] = '\0';
	buf_reset(&b);
	cr_assert_eq(status_format(&st, &b), 0);
	cr_expect(strstr(b.data, "BROKERD_STATE=competing\n"
	    "BROKERD_AUTHENTICATED=0\nBROKERD_CONNECTED=1\n"
	    "BROKERD_COMPETING=1\n") == b.data);
	cr_expect_not_null(strstr(b.data, "\nBROKERD_CHECKED=''\n"
	    "BROKERD_CHECKED_UNIX=''\n"));
	cr_expect_not_null(strstr(b.data, "\nBROKERD_MESSAGE=''\n"));

	/* a message that fills the array without a NUL stays in bounds */
	memset(st.message, 'x', sizeof(st.message));
	buf_reset(&b);
	cr_assert_eq(status_format(&st, &b), 0);
	cr_expect_not_null(strstr(b.data, "xxx\nBROKERD_CHECK_INTERVAL"));
	buf_free(&b);
}

/* Source the file with sh in tmpdir; return what $BROKERD_MESSAGE held. */
static char *
source_message(const char *file)
{
	char	 cmd[512], *out;
	FILE	*p;
	size_t	 n;

	snprintf(cmd, sizeof(cmd), "cd '%s' && sh -c '. ./%s; "
	    "printf %%s \"$BROKERD_MESSAGE\"'", tmpdir, file);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	out = calloc(1, 4096);
	cr_assert_not_null(out);
	n = fread(out, 1, 4095, p);
	out[n] = '\0';
	cr_assert_eq(pclose(p), 0, "sourcing the status file failed");
	return (out);
}

Test(status, hostile_message_sourced, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	static const char *const hostile[] = {
		"'$(touch PWNED)'`id`\n;rm x",
		"\"; touch PWNED; echo \"",
		"'; touch PWNED; '",
		"$(touch PWNED) ${HOME} $((1+1)) \\' \\\\ '\\''",
		"a'\n'b\r\n\t'touch PWNED'",
		"''''''",
		"\xff\xfe caf\xc3\xa9 \x01\x1b[31m",
	};
	struct gw_status st;
	char		 path[128], want[600], *got, *p;
	size_t		 i;
	struct stat	 sb;
	FILE		*f;

	snprintf(path, sizeof(path), "%s/x", tmpdir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/status", tmpdir);
	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		sample(&st);
		st.state = GW_UNAUTHENTICATED;
		snprintf(st.message, sizeof(st.message), "%s", hostile[i]);
		cr_assert_eq(status_write(path, &st, 1), 0, "%s",
		    strerror(errno));
		got = source_message("status");
		/* the rule: control bytes become spaces, the rest verbatim */
		snprintf(want, sizeof(want), "%s", hostile[i]);
		for (p = want; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = ' ';
		cr_expect_str_eq(got, want, "case %zu", i);
		free(got);
		snprintf(path, sizeof(path), "%s/PWNED", tmpdir);
		cr_expect_eq(stat(path, &sb), -1, "case %zu ran a command", i);
		snprintf(path, sizeof(path), "%s/x", tmpdir);
		cr_expect_eq(stat(path, &sb), 0, "case %zu removed x", i);
		snprintf(path, sizeof(path), "%s/status", tmpdir);
	}
}

/* Every line of a complete file, in order. */
static int
complete(const char *p, size_t len)
{
	static const char *const keys[] = {
		"BROKERD_STATE=", "BROKERD_AUTHENTICATED=",
		"BROKERD_CONNECTED=", "BROKERD_COMPETING=", "BROKERD_SINCE=",
		"BROKERD_CHECKED=", "BROKERD_CHECKED_UNIX=", "BROKERD_SEQ=",
		"BROKERD_PID=", "BROKERD_MESSAGE=", "BROKERD_CHECK_INTERVAL="
	};
	const char	*q = p, *nl;
	size_t		 i;

	if (len == 0 || p[len - 1] != '\n')
		return (0);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strncmp(q, keys[i], strlen(keys[i])) != 0)
			return (0);
		if ((nl = strchr(q, '\n')) == NULL)
			return (0);
		q = nl + 1;
	}
	return (*q == '\0');
}

struct reader_result {
	volatile long	 reads;
	volatile long	 bad;
	volatile long	 missing;
	volatile int	 stop;
};

Test(status, atomic_under_reader, .init = mk_tmpdir, .fini = rm_tmpdir,
    .timeout = 60)
{
	struct reader_result *rr;
	struct gw_status st;
	char		 path[128], buf[8192];
	pid_t		 pid;
	int		 i, fd, status;
	ssize_t		 n;
	size_t		 len;

	rr = mmap(NULL, sizeof(*rr), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(rr, MAP_FAILED);
	memset(rr, 0, sizeof(*rr));
	snprintf(path, sizeof(path), "%s/status", tmpdir);
	sample(&st);
	cr_assert_eq(status_write(path, &st, 1), 0);

	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		while (!rr->stop) {
			if ((fd = open(path, O_RDONLY)) == -1) {
				rr->missing++;
				continue;
			}
			len = 0;
			while ((n = read(fd, buf + len,
			    sizeof(buf) - 1 - len)) > 0)
				len += (size_t)n;
			close(fd);
			buf[len] = '\0';
			if (!complete(buf, len))
				rr->bad++;
			rr->reads++;
		}
		_exit(0);
	}
	for (i = 0; i < 1000; i++) {
		st.seq = (uint64_t)i;
		st.checked++;
		/* vary the length so a torn read would show */
		snprintf(st.message, sizeof(st.message), "%.*s",
		    (i * 37) % 400, "'quoted' text $(no) `no` and a long tail "
		    "......................................................."
		    "......................................................."
		    "......................................................."
		    "......................................................."
		    "......................................................."
		    "......................................................."
		    "......................................................."
		    "......................................................."
		    "......................................................");
		cr_assert_eq(status_write(path, &st, i % 100 == 0), 0, "%s",
		    strerror(errno));
	}
	rr->stop = 1;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_expect_gt(rr->reads, 100, "the reader read only %ld times",
	    rr->reads);
	cr_expect_eq(rr->bad, 0, "%ld partial reads of %ld", rr->bad,
	    rr->reads);
	cr_expect_eq(rr->missing, 0, "file missing %ld times", rr->missing);
	/* no temporary files left behind */
	snprintf(buf, sizeof(buf), "ls '%s' | grep -c 'status\\.' || true",
	    tmpdir);
	{
		FILE	*p = popen(buf, "r");
		char	 line[32] = "";

		cr_assert_not_null(p);
		cr_expect_not_null(fgets(line, sizeof(line), p));
		pclose(p);
		cr_expect_str_eq(line, "0\n");
	}
	munmap(rr, sizeof(*rr));
}

Test(status, mode_0644_despite_umask, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	struct gw_status st;
	struct stat	 sb;
	char		 path[256], dir[160];
	mode_t		 old;
	char		*text;

	sample(&st);
	old = umask(077);
	snprintf(path, sizeof(path), "%s/status", tmpdir);
	cr_assert_eq(status_write(path, &st, 0), 0);
	/* a missing folder (two levels) is made, 0755 as well */
	snprintf(dir, sizeof(dir), "%s/run/brokerd", tmpdir);
	snprintf(path, sizeof(path), "%s/status", dir);
	cr_assert_eq(status_write(path, &st, 1), 0, "%s", strerror(errno));
	umask(old);
	snprintf(path, sizeof(path), "%s/status", tmpdir);
	cr_assert_eq(stat(path, &sb), 0);
	cr_expect_eq(sb.st_mode & 07777, 0644, "mode %o", sb.st_mode & 07777);
	snprintf(path, sizeof(path), "%s/status", dir);
	cr_assert_eq(stat(path, &sb), 0);
	cr_expect_eq(sb.st_mode & 07777, 0644);
	cr_assert_eq(stat(dir, &sb), 0);
	cr_expect_eq(sb.st_mode & 07777, 0755, "dir mode %o",
	    sb.st_mode & 07777);
	text = slurp(path, NULL);
	cr_assert_not_null(text);
	cr_expect(strncmp(text, "BROKERD_STATE=authenticated\n", 28) == 0);
	free(text);
}

Test(status, write_errors, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	struct gw_status st;
	char		 path[160];
	FILE		*f;

	sample(&st);
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/file/status", tmpdir);
	errno = 0;
	cr_expect_eq(status_write(path, &st, 0), -1);
	cr_expect_eq(errno, ENOTDIR, "errno %d", errno);
	errno = 0;
	cr_expect_eq(status_write("", &st, 0), -1);
	cr_expect_eq(errno, EINVAL);
	/* the target is a folder: rename fails, the temp file goes away */
	snprintf(path, sizeof(path), "%s/adir", tmpdir);
	cr_assert_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/adir/x", tmpdir);
	cr_assert_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/adir", tmpdir);
	cr_expect_eq(status_write(path, &st, 0), -1);
	cr_expect(errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST,
	    "errno %d", errno);
	{
		char	 cmd[200];

		snprintf(cmd, sizeof(cmd), "test -z \"$(ls '%s' | grep "
		    "'adir\\.')\"", tmpdir);
		cr_expect_eq(system(cmd), 0, "temporary file left behind");
	}
}

Test(status, history_json_lines, .init = mk_tmpdir, .fini = rm_tmpdir)
{
	struct gw_status st;
	char		 path[128], *text, *line, *save = NULL;
	json_t		*j;
	json_error_t	 err;
	int		 n = 0;

	snprintf(path, sizeof(path), "%s/history.jsonl", tmpdir);
	sample(&st);
	cr_assert_eq(status_history(path, &st, GW_STARTING), 0);
	st.state = GW_UNAUTHENTICATED;
	st.authenticated = 0;
	st.seq = 4;
	snprintf(st.message, sizeof(st.message), "%s",
	    "bad \xff\xc3 utf8 \"quoted\"\nnew line \xed\xa0\x80 \xc3\xa9");
	cr_assert_eq(status_history(path, &st, GW_AUTHENTICATED), 0);
	text = slurp(path, NULL);
	cr_assert_not_null(text);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		j = json_loads(line, 0, &err);
		cr_assert_not_null(j, "line %d: %s: %s", n, err.text, line);
		cr_expect(json_is_string(json_object_get(j, "time")));
		cr_expect(json_is_string(json_object_get(j, "from")));
		cr_expect(json_is_string(json_object_get(j, "to")));
		cr_expect(json_is_boolean(json_object_get(j, "authenticated")));
		cr_expect(json_is_boolean(json_object_get(j, "connected")));
		cr_expect(json_is_boolean(json_object_get(j, "competing")));
		cr_expect(json_is_string(json_object_get(j, "message")));
		cr_expect(json_is_integer(json_object_get(j, "seq")));
		if (n == 0) {
			cr_expect_str_eq(json_string_value(json_object_get(j,
			    "from")), "starting");
			cr_expect_str_eq(json_string_value(json_object_get(j,
			    "to")), "authenticated");
			cr_expect_str_eq(json_string_value(json_object_get(j,
			    "time")), "2025-11-25T06:00:00Z");
			cr_expect(json_is_true(json_object_get(j,
			    "authenticated")));
			cr_expect_eq(json_integer_value(json_object_get(j,
			    "seq")), 3);
		} else {
			cr_expect_str_eq(json_string_value(json_object_get(j,
			    "to")), "unauthenticated");
			cr_expect(json_is_false(json_object_get(j,
			    "authenticated")));
			cr_expect_str_eq(json_string_value(json_object_get(j,
			    "message")), "bad \xef\xbf\xbd\xef\xbf\xbd utf8 "
			    "\"quoted\"\nnew line \xef\xbf\xbd\xef\xbf\xbd"
			    "\xef\xbf\xbd \xc3\xa9");
		}
		json_decref(j);
		n++;
	}
	cr_expect_eq(n, 2);
	free(text);
}

/*
 * A history line cut short (a full disk, a size limit) is removed: left
 * there, the next transition's line would be glued to it.
 */
Test(status, history_short_write_leaves_no_fragment, .init = mk_tmpdir,
    .fini = rm_tmpdir)
{
	struct gw_status st;
	struct rlimit	 old, rl;
	struct stat	 sb;
	char		 path[128], buf[4096];
	json_t		*j;
	FILE		*f;
	int		 n = 0;

	signal(SIGXFSZ, SIG_IGN);
	snprintf(path, sizeof(path), "%s/history.jsonl", tmpdir);
	sample(&st);
	cr_assert_eq(status_history(path, &st, GW_STARTING), 0);
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	rl = old;
	rl.rlim_cur = (rlim_t)sb.st_size + 30;	/* room for a fragment */
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	cr_assert_eq(status_history(path, &st, GW_AUTHENTICATED), -1);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	cr_assert_eq(status_history(path, &st, GW_UNAUTHENTICATED), 0);
	cr_assert_not_null(f = fopen(path, "r"));
	while (fgets(buf, sizeof(buf), f) != NULL) {
		j = json_loads(buf, 0, NULL);
		cr_assert_not_null(j, "line %d is not JSON: %s", n + 1, buf);
		json_decref(j);
		n++;
	}
	fclose(f);
	cr_assert_eq(n, 2);
}
