/*
 * The trade journal: every trade-scope request is written down, fsync'd,
 * before a byte of it goes to the Gateway, and its outcome after.  When
 * brokerd or the host dies in between, the intent line without an outcome
 * says which order needs checking.  JSON lines, rotated by size.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "brokerd.h"

#define JOURNAL_BODY_MAX	65536	/* bytes of an answer kept */

struct journal {
	char		*path;
	int		 fd;
	size_t		 size;
	size_t		 max_bytes;
	unsigned	 keep;
	uint64_t	 next_id;
	int		 torn;		/* a cut line is still there */
};

static int
journal_reopen(struct journal *j)
{
	struct stat	 st;

	if (j->fd != -1)
		close(j->fd);
	j->fd = open(j->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (j->fd == -1 || fstat(j->fd, &st) == -1)
		return (-1);
	j->size = (size_t)st.st_size;
	return (0);
}

struct journal *
journal_open(const char *path, size_t max_bytes, unsigned keep, char *err,
    size_t errlen)
{
	struct journal	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->path = strdup(path)) == NULL) {
		free(j);
		snprintf(err, errlen, "out of memory");
		return (NULL);
	}
	j->fd = -1;
	j->max_bytes = max_bytes;
	j->keep = keep;
	/* Ids stay unique across restarts: start from the clock. */
	j->next_id = (uint64_t)time(NULL) * 1000;
	if (journal_reopen(j) == -1) {
		snprintf(err, errlen, "journal.file %s: %s", path,
		    strerror(errno));
		journal_close(j);
		return (NULL);
	}
	return (j);
}

/* A reload that keeps the file still brings its rotation limits. */
void
journal_set_limits(struct journal *j, size_t max_bytes, unsigned keep)
{
	j->max_bytes = max_bytes;
	j->keep = keep;
}

void
journal_close(struct journal *j)
{
	if (j == NULL)
		return;
	if (j->fd != -1)
		close(j->fd);
	free(j->path);
	free(j);
}

/*
 * path.N-1 -> path.N ... path -> path.1; the oldest beyond keep goes.
 * The new file needs a descriptor: make sure of one before any rename, or
 * a shortage would shift the old files (and drop the oldest) on every
 * attempt while leaving no file to write to.
 */
static int
journal_rotate(struct journal *j)
{
	char	 from[4096], to[4096];
	unsigned i;
	int	 fd, saved;

	if (j->keep == 0) {
		if (ftruncate(j->fd, 0) == -1)
			return (-1);
		j->size = 0;
		return (0);
	}
	if ((fd = dup(j->fd)) == -1)
		return (-1);
	for (i = j->keep; i > 0; i--) {
		if (i == 1)
			snprintf(from, sizeof(from), "%s", j->path);
		else
			snprintf(from, sizeof(from), "%s.%u", j->path, i - 1);
		snprintf(to, sizeof(to), "%s.%u", j->path, i);
		if (rename(from, to) == -1 && errno != ENOENT) {
			saved = errno;
			close(fd);
			errno = saved;
			return (-1);
		}
	}
	close(fd);		/* its slot is the new file's */
	return (journal_reopen(j));
}

/*
 * A line cut short (a full disk) is cut off again, back to the last whole
 * line: left there, it would glue itself to the next line and make that
 * one unreadable too.  Until it is gone nothing more is written.
 */
static int
journal_untear(struct journal *j)
{
	int	 saved = errno;

	j->torn = ftruncate(j->fd, (off_t)j->size) == -1;
	errno = saved;
	return (j->torn ? -1 : 0);
}

static int
journal_write(struct journal *j, json_t *o)
{
	char	*line;
	size_t	 len;
	ssize_t	 n;
	int	 rc = -1;

	if ((line = json_dumps(o, JSON_COMPACT)) == NULL)
		return (-1);
	len = strlen(line);
	line[len] = '\n';	/* json_dumps' NUL becomes the newline */
	if (j->torn && journal_untear(j) == -1)
		goto out;
	if (j->max_bytes > 0 && j->size > 0 && j->size + len + 1 >
	    j->max_bytes && journal_rotate(j) == -1)
		goto out;
	if ((n = write(j->fd, line, len + 1)) != (ssize_t)(len + 1) ||
	    fsync(j->fd) == -1) {
		if (n > 0)
			(void)journal_untear(j);
		goto out;
	}
	j->size += len + 1;
	rc = 0;
 out:
	free(line);
	return (rc);
}

/* A body as JSON when it is JSON, else as text, else only its length. */
static json_t *
journal_body(const char *body, size_t len)
{
	json_t	*v;

	if (len == 0)
		return (json_null());
	if ((v = json_loadb(body, len, JSON_DECODE_ANY, NULL)) != NULL)
		return (v);
	if (len > JOURNAL_BODY_MAX)
		len = JOURNAL_BODY_MAX;
	if ((v = json_stringn(body, len)) != NULL)
		return (v);
	return (json_pack("{s:I}", "bytes", (json_int_t)len));
}

static json_t *
journal_line(uint64_t id, const char *phase)
{
	char	 ts[64];

	status_time(time(NULL), ts, sizeof(ts));
	return (json_pack("{s:s,s:I,s:s}", "time", ts, "id", (json_int_t)id,
	    "phase", phase));
}

/* 0 and *id, or -1: the caller must not send the request then. */
int
journal_intent(struct journal *j, const char *who, const char *method,
    const char *target, const char *body, size_t len, uint64_t *id)
{
	json_t	*o;
	int	 rc;

	*id = j->next_id++;
	if ((o = journal_line(*id, "intent")) == NULL)
		return (-1);
	json_object_set_new(o, "who", json_string(who));
	json_object_set_new(o, "method", json_string(method));
	json_object_set_new(o, "target", json_string(target));
	json_object_set_new(o, "body", journal_body(body, len));
	rc = journal_write(j, o);
	json_decref(o);
	return (rc);
}

int
journal_outcome(struct journal *j, uint64_t id, int status, const char *error,
    const char *body, size_t len)
{
	json_t	*o;
	int	 rc;

	if ((o = journal_line(id, "outcome")) == NULL)
		return (-1);
	json_object_set_new(o, "status", json_integer(status));
	json_object_set_new(o, "error", error != NULL ? json_string(error) :
	    json_null());
	json_object_set_new(o, "body", journal_body(body, len));
	rc = journal_write(j, o);
	json_decref(o);
	return (rc);
}
