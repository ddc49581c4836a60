/*
 * Logging to stderr, text or JSON lines; under systemd the journal takes
 * stderr.  fatal()/fatalx() are for start-up failures only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "brokerd.h"

static int	 log_lvl = LOG_LEVEL_INFO;
static int	 log_json;

static const char *const log_names[] = { "error", "warn", "info", "debug" };

void
log_init(int level, int json)
{
	log_lvl = level;
	log_json = json;
}

int
log_level_parse(const char *s)
{
	size_t	 i;

	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcmp(s, log_names[i]) == 0)
			return ((int)i);
	if (strcmp(s, "warning") == 0)
		return (LOG_LEVEL_WARN);
	return (-1);
}

static void
log_stamp(char *out, size_t len)
{
	struct timeval	 tv;
	struct tm	 tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

static void
log_emit(int level, const char *msg)
{
	char		 ts[64];
	struct buf	 b;

	log_stamp(ts, sizeof(ts));
	buf_init(&b);
	if (log_json) {
		if (buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":",
		    ts, log_names[level]) == 0 &&
		    buf_json_string(&b, msg, strlen(msg)) == 0 &&
		    buf_puts(&b, "}\n") == 0)
			fputs(b.data, stderr);
	} else if (buf_printf(&b, "%s brokerd: %s: %s\n", ts,
	    log_names[level], msg) == 0)
		fputs(b.data, stderr);
	buf_free(&b);
	fflush(stderr);
}

static void
log_vlog(int level, const char *fmt, va_list ap)
{
	char	 msg[2048];

	if (level > log_lvl)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_emit(level, msg);
}

void
log_error(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vlog(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vlog(LOG_LEVEL_WARN, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vlog(LOG_LEVEL_INFO, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vlog(LOG_LEVEL_DEBUG, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[1024];
	int	 saved = errno;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s: %s", msg, strerror(saved));
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;
	char	 msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s", msg);
	exit(1);
}

/* Request lines: the key's name only, never the key; no query string. */
void
log_request(const char *method, const char *path, int status, size_t bytes,
    double ms, const char *who)
{
	struct buf	 b;
	char		 ts[64];

	if (log_lvl < LOG_LEVEL_INFO)
		return;
	buf_init(&b);
	if (log_json) {
		log_stamp(ts, sizeof(ts));
		if (buf_printf(&b, "{\"time\":\"%s\",\"level\":\"info\","
		    "\"method\":", ts) == 0 &&
		    buf_json_string(&b, method, strlen(method)) == 0 &&
		    buf_puts(&b, ",\"path\":") == 0 &&
		    buf_json_string(&b, path, strlen(path)) == 0 &&
		    buf_printf(&b, ",\"status\":%d,\"bytes\":%zu,\"ms\":%.3f,"
		    "\"who\":", status, bytes, ms) == 0 &&
		    buf_json_string(&b, who, strlen(who)) == 0 &&
		    buf_puts(&b, "}\n") == 0) {
			fputs(b.data, stderr);
			fflush(stderr);
		}
	} else if (buf_printf(&b, "%s %s %d %zu %.3fms %s", method, path,
	    status, bytes, ms, who) == 0)
		log_emit(LOG_LEVEL_INFO, b.data);
	buf_free(&b);
}

/*
 * A spell of one failure that repeats (no descriptors, a journal that
 * cannot be written): log when it starts and when it ends, not each time.
 */
int
log_spell_fail(struct log_spell *s)
{
	s->count++;
	if (s->active)
		return (0);
	s->active = 1;
	s->count = 1;
	s->since_ms = now_ms();
	return (1);
}

int
log_spell_ok(struct log_spell *s)
{
	if (!s->active)
		return (0);
	s->active = 0;
	return (1);
}
