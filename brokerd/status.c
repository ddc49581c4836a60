/*
 * The status file and the transition history.  The status file is what
 * shell scripts, cron jobs and ibkr-status(1) read instead of asking the
 * Gateway: KEY=value lines that `.` can source safely, replaced atomically
 * so that a reader sees either the old or the new file, never a part.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "brokerd.h"
#include "value.h"

static const char *const status_names[] = {
	"starting", "gateway_down", "unauthenticated", "authenticated",
	"competing", "stopped"
};

const char *
status_state_name(enum gw_state s)
{
	if ((unsigned)s >= sizeof(status_names) / sizeof(status_names[0]))
		return ("unknown");
	return (status_names[s]);
}

void
status_time(time_t t, char *out, size_t len)
{
	struct tm	 tm;

	if (len == 0)
		return;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		out[0] = '\0';
}

static int
status_safe_char(unsigned char c)
{
	return ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
	    c == '+' || c == '-');
}

/*
 * Bare when made only of [A-Za-z0-9_.:+-], else single-quoted with '\''
 * for quotes.  Control bytes (newlines included) become spaces: inside
 * quotes they would be harmless to sh, but one value per line keeps every
 * line-based reader of the file simple and honest.
 */
int
status_quote(struct buf *b, const char *s)
{
	const unsigned char *p;
	int		 bare = 1;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (!status_safe_char(*p)) {
			bare = 0;
			break;
		}
	if (bare && *s != '\0')
		return (buf_puts(b, s));
	if (buf_append(b, "'", 1) == -1)
		return (-1);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '\'') {
			if (buf_append(b, "'\\''", 4) == -1)
				return (-1);
		} else if (*p < 0x20 || *p == 0x7f) {
			if (buf_append(b, " ", 1) == -1)
				return (-1);
		} else if (buf_append(b, p, 1) == -1)
			return (-1);
	}
	return (buf_append(b, "'", 1));
}

static int
status_line(struct buf *b, const char *key, const char *value)
{
	if (buf_puts(b, key) == -1 || buf_append(b, "=", 1) == -1 ||
	    status_quote(b, value) == -1 || buf_append(b, "\n", 1) == -1)
		return (-1);
	return (0);
}

/* A time, or '' when it never happened (no check yet). */
static void
status_time_or_empty(time_t t, char *out, size_t len)
{
	if (t == 0)
		out[0] = '\0';
	else
		status_time(t, out, len);
}

int
status_format(const struct gw_status *st, struct buf *b)
{
	char	 since[32], checked[32], checked_unix[32], seq[32], pid[32];
	char	 interval[32], msg[sizeof(st->message)];
	size_t	 n;

	status_time_or_empty(st->since, since, sizeof(since));
	status_time_or_empty(st->checked, checked, sizeof(checked));
	if (st->checked == 0)
		checked_unix[0] = '\0';
	else
		snprintf(checked_unix, sizeof(checked_unix), "%lld",
		    (long long)st->checked);
	snprintf(seq, sizeof(seq), "%" PRIu64, st->seq);
	snprintf(pid, sizeof(pid), "%ld", (long)st->pid);
	snprintf(interval, sizeof(interval), "%u", st->check_interval_s);
	/* message[] may lack its NUL if a caller filled it to the brim */
	n = strnlen(st->message, sizeof(st->message) - 1);
	memcpy(msg, st->message, n);
	msg[n] = '\0';

	if (status_line(b, "BROKERD_STATE", status_state_name(st->state)) ||
	    status_line(b, "BROKERD_AUTHENTICATED",
	    st->authenticated ? "1" : "0") ||
	    status_line(b, "BROKERD_CONNECTED", st->connected ? "1" : "0") ||
	    status_line(b, "BROKERD_COMPETING", st->competing ? "1" : "0") ||
	    status_line(b, "BROKERD_SINCE", since) ||
	    status_line(b, "BROKERD_CHECKED", checked) ||
	    status_line(b, "BROKERD_CHECKED_UNIX", checked_unix) ||
	    status_line(b, "BROKERD_SEQ", seq) ||
	    status_line(b, "BROKERD_PID", pid) ||
	    status_line(b, "BROKERD_MESSAGE", msg) ||
	    status_line(b, "BROKERD_CHECK_INTERVAL", interval))
		return (-1);
	return (0);
}

/*
 * One folder, 0755 whatever the umask: the file inside is meant to be read
 * by everyone, so a folder only its owner can enter would defeat it.
 */
static int
status_mkdir(const char *dir)
{
	if (mkdir(dir, 0755) == -1)
		return (errno == EEXIST ? 0 : -1);
	return (chmod(dir, 0755));
}

/* mkdir -p for the folder that holds path, mode 0755 for what it makes. */
static int
status_mkdirs(const char *path)
{
	char	*dir, *p;
	int	 rc = -1;

	if ((dir = strdup(path)) == NULL)
		return (-1);
	if ((p = strrchr(dir, '/')) == NULL) {
		rc = 0;
		goto done;
	}
	*p = '\0';
	if (dir[0] == '\0') {
		rc = 0;
		goto done;
	}
	for (p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (status_mkdir(dir) == -1)
			goto done;
		*p = '/';
	}
	if (status_mkdir(dir) == -1)
		goto done;
	rc = 0;
done:
	free(dir);
	return (rc);
}

static int
status_write_all(int fd, const char *p, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		p += n;
		len -= (size_t)n;
	}
	return (0);
}

static int
status_sync_dir(const char *path)
{
	char	*dir, *slash;
	int	 fd, rc = -1, saved;

	if ((dir = strdup(path)) == NULL)
		return (-1);
	if ((slash = strrchr(dir, '/')) == NULL) {
		free(dir);
		dir = strdup(".");
		if (dir == NULL)
			return (-1);
	} else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		rc = fsync(fd);
		saved = errno;
		close(fd);
		errno = saved;
	}
	free(dir);
	return (rc);
}

/*
 * Write the whole file under a temporary name in the same folder, make it
 * durable, then rename it over the old one: readers see old or new, never
 * a part.  The folder is synced only on transitions (sync_dir), so the
 * per-check rewrites cost one file fsync.
 */
int
status_write(const char *path, const struct gw_status *st, int sync_dir)
{
	struct buf	 b;
	char		*tmp = NULL;
	size_t		 plen;
	int		 fd = -1, saved;

	buf_init(&b);
	if (path == NULL || *path == '\0') {
		errno = EINVAL;
		goto fail;
	}
	if (status_format(st, &b) == -1) {
		errno = ENOMEM;
		goto fail;
	}
	plen = strlen(path);
	if ((tmp = malloc(plen + sizeof(".XXXXXX"))) == NULL)
		goto fail;
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".XXXXXX", sizeof(".XXXXXX"));
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		if (errno != ENOENT || status_mkdirs(path) == -1)
			goto fail;
		memcpy(tmp + plen, ".XXXXXX", sizeof(".XXXXXX"));
		if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1)
			goto fail;
	}
	if (status_write_all(fd, b.data, b.len) == -1 ||
	    fchmod(fd, 0644) == -1 || fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto fail;
	free(tmp);
	tmp = NULL;
	if (sync_dir && status_sync_dir(path) == -1)
		goto fail;
	buf_free(&b);
	return (0);
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	buf_free(&b);
	errno = saved;
	return (-1);
}

/* A JSON string of any bytes: invalid UTF-8 becomes U+FFFD. */
static int
status_json_string(struct buf *b, const char *s, size_t n)
{
	struct buf	 clean;
	size_t		 i, l;
	int		 rc = -1;

	buf_init(&clean);
	for (i = 0; i < n; i += l) {
		l = value_utf8_len((const unsigned char *)s + i, n - i);
		if (l == 0) {
			if (buf_append(&clean, "\xef\xbf\xbd", 3) == -1)
				goto done;
			l = 1;
		} else if (buf_append(&clean, s + i, l) == -1)
			goto done;
	}
	rc = buf_json_string(b, clean.data != NULL ? clean.data : "",
	    clean.len);
done:
	buf_free(&clean);
	return (rc);
}

/*
 * One JSON line per transition, appended and fsync'd, so that the history
 * survives a crash right after the transition it records.
 */
int
status_history(const char *path, const struct gw_status *st,
    enum gw_state from)
{
	struct buf	 b;
	struct stat	 sb;
	char		 at[32];
	int		 fd = -1, saved, cut;

	buf_init(&b);
	if (path == NULL || *path == '\0') {
		errno = EINVAL;
		goto fail;
	}
	status_time(st->since, at, sizeof(at));
	if (buf_printf(&b, "{\"time\":\"%s\",\"from\":\"%s\",\"to\":\"%s\","
	    "\"authenticated\":%s,\"connected\":%s,\"competing\":%s,"
	    "\"message\":", at, status_state_name(from),
	    status_state_name(st->state),
	    st->authenticated ? "true" : "false",
	    st->connected ? "true" : "false",
	    st->competing ? "true" : "false") == -1 ||
	    status_json_string(&b, st->message,
	    strnlen(st->message, sizeof(st->message))) == -1 ||
	    buf_printf(&b, ",\"seq\":%" PRIu64 "}\n", st->seq) == -1) {
		errno = ENOMEM;
		goto fail;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1 || fstat(fd, &sb) == -1)
		goto fail;
	if (status_write_all(fd, b.data, b.len) == -1 || fsync(fd) == -1) {
		/* A part of a line would glue the next one to it. */
		saved = errno;
		cut = ftruncate(fd, sb.st_size);
		(void)cut;	/* the write's error is the one to report */
		errno = saved;
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	buf_free(&b);
	return (0);
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	buf_free(&b);
	errno = saved;
	return (-1);
}
