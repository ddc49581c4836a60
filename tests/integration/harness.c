/*
 * Integration test harness; see harness.h.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "harness.h"

#define BROKERD_BIN	"build/brokerd"

double
mono_s(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

void
sleep_ms(int ms)
{
	struct timespec	 ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

char *
slurp(const char *path, size_t *lenp)
{
	FILE	*f;
	char	*p = NULL;
	size_t	 len = 0, cap = 0, n;

	if ((f = fopen(path, "rb")) == NULL)
		return (NULL);
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *q;

			cap = cap ? cap * 2 : 8192;
			if ((q = realloc(p, cap)) == NULL) {
				free(p);
				fclose(f);
				return (NULL);
			}
			p = q;
		}
		if ((n = fread(p + len, 1, 4096, f)) == 0)
			break;
		len += n;
	}
	fclose(f);
	if (p == NULL && (p = malloc(1)) == NULL)
		return (NULL);
	p[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return (p);
}

static char *
tmpdir_new(char *out, size_t len, const char *what)
{
	const char	*t = getenv("TMPDIR");

	snprintf(out, len, "%s/brokerd-%s.XXXXXX", t ? t : "/tmp", what);
	return (mkdtemp(out));
}

/* ---------------------------------------------------------------- gwsim */

/*
 * A child the test started dies with the test: a failed assertion ends
 * the test's process before its brokerd_stop or gwsim_stop, and the
 * daemon or simulator would live on, orphaned.
 */
void
child_tie(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(125);
}

int
gwsim_start(struct gwsim *g, const char *mode)
{
	int	 out[2];
	char	 line[4096];
	size_t	 n = 0;
	json_t	*j;
	json_error_t je;
	struct pollfd pfd;
	double	 deadline;
	pid_t	 self = getpid();

	memset(g, 0, sizeof(*g));
	if (pipe(out) == -1)
		return (-1);
	if ((g->pid = fork()) == -1)
		return (-1);
	if (g->pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		child_tie(self);

		dup2(out[1], 1);
		if (devnull != -1 && getenv("GWSIM_VERBOSE") == NULL)
			dup2(devnull, 2);
		close(out[0]);
		close(out[1]);
		execlp("node", "node", "tests/gwsim/gwsim.js", "--cert-mode",
		    mode != NULL ? mode : "self", (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	deadline = mono_s() + 10;
	while (n < sizeof(line) - 1 && mono_s() < deadline) {
		ssize_t r;

		pfd.fd = out[0];
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		if ((r = read(out[0], line + n, 1)) <= 0)
			break;
		if (line[n] == '\n')
			break;
		n += (size_t)r;
	}
	line[n] = '\0';
	close(out[0]);
	if ((j = json_loads(line, 0, &je)) == NULL) {
		fprintf(stderr, "gwsim: bad ready line '%s'\n", line);
		gwsim_stop(g);
		return (-1);
	}
	g->port = (int)json_integer_value(json_object_get(j, "port"));
	g->control = (int)json_integer_value(json_object_get(j, "control"));
	snprintf(g->fingerprint, sizeof(g->fingerprint), "%s",
	    json_string_value(json_object_get(j, "fingerprint")) ?: "");
	snprintf(g->ca_file, sizeof(g->ca_file), "%s",
	    json_string_value(json_object_get(j, "ca_file")) ?: "");
	snprintf(g->url, sizeof(g->url), "https://127.0.0.1:%d", g->port);
	json_decref(j);
	return (g->port > 0 ? 0 : -1);
}

void
gwsim_stop(struct gwsim *g)
{
	int	 st, i;

	if (g->pid <= 0)
		return;
	kill(g->pid, SIGTERM);
	for (i = 0; i < 300; i++) {
		if (waitpid(g->pid, &st, WNOHANG) == g->pid) {
			g->pid = 0;
			return;
		}
		sleep_ms(10);
	}
	kill(g->pid, SIGKILL);
	waitpid(g->pid, &st, 0);
	g->pid = 0;
}

size_t
membuf_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct membuf	*m = arg;
	size_t		 n = size * nmemb;
	char		*q;

	if ((q = realloc(m->p, m->len + n + 1)) == NULL)
		return (0);
	m->p = q;
	memcpy(m->p + m->len, ptr, n);
	m->len += n;
	m->p[m->len] = '\0';
	return (n);
}

int
gwsim_ctl(const struct gwsim *g, const char *method, const char *path,
    const char *json, char **out)
{
	CURL		*c;
	struct membuf	 m = { NULL, 0 };
	struct curl_slist *h = NULL;
	char		 url[256];
	long		 code = 0;
	CURLcode	 rc;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", g->control, path);
	if ((c = curl_easy_init()) == NULL)
		return (-1);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, membuf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	if (json != NULL) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	}
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	if (out != NULL)
		*out = m.p;
	else
		free(m.p);
	return (rc == CURLE_OK && code == 200 ? 0 : -1);
}

long
gwsim_count(const struct gwsim *g, const char *what)
{
	char	*body = NULL;
	json_t	*j, *v;
	long	 n = -1;

	if (gwsim_ctl(g, "GET", "/counters", NULL, &body) == -1) {
		free(body);
		return (-1);
	}
	if ((j = json_loads(body, 0, NULL)) != NULL) {
		if ((v = json_object_get(j, what)) == NULL)
			v = json_object_get(json_object_get(j, "by_route"),
			    what);
		n = v != NULL ? (long)json_integer_value(v) : 0;
		json_decref(j);
	}
	free(body);
	return (n);
}

/* -------------------------------------------------------------- brokerd */

/*
 * BROKERD_TIMEOUT_SCALE multiplies the harness' own waits on the daemon
 * (start, stop): under valgrind it starts and exits many times slower.
 */
static int
timeout_scale(void)
{
	const char	*s = getenv("BROKERD_TIMEOUT_SCALE");
	int		 n;

	if (s == NULL || (n = atoi(s)) < 1)
		return (1);
	return (n > 100 ? 100 : n);
}

static const char *const default_sections[] = {
	"listen", "gateway", "session", "keys", "trading", NULL
};

/* Does the extra YAML have this top-level section? */
static int
extra_has(const char *extra, const char *name)
{
	const char	*p = extra;
	size_t		 n = strlen(name);

	if (extra == NULL)
		return (0);
	while (p != NULL && *p != '\0') {
		if (strncmp(p, name, n) == 0 && p[n] == ':')
			return (1);
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return (0);
}

int
brokerd_write_conf(struct brokerd *b, const struct gwsim *g, const char *extra)
{
	FILE	*f;
	size_t	 i;

	if (b->dir[0] == '\0') {
		memset(b, 0, sizeof(*b));
		if (tmpdir_new(b->dir, sizeof(b->dir), "test") == NULL)
			return (-1);
	}
	snprintf(b->sock, sizeof(b->sock), "%s/brokerd.sock", b->dir);
	snprintf(b->conf, sizeof(b->conf), "%s/brokerd.yaml", b->dir);
	snprintf(b->log, sizeof(b->log), "%s/brokerd.log", b->dir);
	snprintf(b->status, sizeof(b->status), "%s/status", b->dir);
	snprintf(b->halt, sizeof(b->halt), "%s/halt", b->dir);
	/* 0600: it holds inline keys, which brokerd warns about otherwise. */
	if ((f = fopen(b->conf, "w")) == NULL)
		return (-1);
	if (fchmod(fileno(f), 0600) == -1) {
		fclose(f);
		return (-1);
	}
	for (i = 0; default_sections[i] != NULL; i++) {
		const char *s = default_sections[i];

		if (extra_has(extra, s))
			continue;
		if (strcmp(s, "listen") == 0)
			fprintf(f, "listen:\n  unix: { path: %s, mode: \"0660\", "
			    "group: null }\n  tcp: 127.0.0.1:0\n", b->sock);
		else if (strcmp(s, "gateway") == 0 && g != NULL)
			fprintf(f, "gateway:\n  url: %s\n  tls: { pin_sha256: "
			    "\"%s\" }\n  timeout_ms: 3000\n", g->url,
			    g->fingerprint);
		else if (strcmp(s, "gateway") == 0)
			fprintf(f, "gateway:\n  url: https://127.0.0.1:9\n"
			    "  tls: { insecure: true }\n");
		else if (strcmp(s, "session") == 0)
			fprintf(f, "session:\n  status_file: %s\n"
			    "  check_interval_s: 1\n  tickle_interval_s: 60\n",
			    b->status);
		else if (strcmp(s, "keys") == 0)
			fprintf(f, "keys:\n  - { name: test, key: \"%s\", "
			    "scopes: [read, trade, admin] }\n  - { name: reader, "
			    "key: \"%s\", scopes: [read] }\n", TEST_KEY,
			    TEST_READ_KEY);
		else if (strcmp(s, "trading") == 0)
			fprintf(f, "trading: { halt_file: %s }\n", b->halt);
	}
	if (extra != NULL)
		fputs(extra, f);
	fclose(f);
	return (0);
}

int
brokerd_spawn(struct brokerd *b, char *const env[])
{
	double	 deadline;
	char	*log, *p;
	int	 fd, st;
	size_t	 i;
	pid_t	 self = getpid();

	if ((b->pid = fork()) == -1)
		return (-1);
	if (b->pid == 0) {
		child_tie(self);
		if ((fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0644)) ==
		    -1)
			_exit(126);
		dup2(fd, 2);
		dup2(fd, 1);
		unsetenv("IBKR_BRIDGE_KEY");
		unsetenv("IBKR_BRIDGE_URL");
		unsetenv("IBKR_GATEWAY_URL");
		unsetenv("NOTIFY_SOCKET");
		unsetenv("LISTEN_FDS");
		for (i = 0; env != NULL && env[i] != NULL; i++)
			putenv(env[i]);
		if (b->nofile > 0) {
			struct rlimit	 rl;

			rl.rlim_cur = rl.rlim_max = (rlim_t)b->nofile;
			if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
				_exit(125);
		}
		execl(getenv("BROKERD_BIN") ? getenv("BROKERD_BIN") :
		    BROKERD_BIN, "brokerd", "-f", "-c", b->conf, (char *)NULL);
		_exit(127);
	}
	deadline = mono_s() + 10 * timeout_scale();
	while (mono_s() < deadline) {
		if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
			b->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
			b->pid = 0;
			return (-1);
		}
		if ((log = slurp(b->log, NULL)) != NULL) {
			if (strstr(log, "brokerd: ready") != NULL) {
				b->tcp_port = 0;
				if ((p = strstr(log, "listening on tcp ")) !=
				    NULL && (p = strchr(p + 17, ':')) != NULL)
					b->tcp_port = atoi(p + 1);
				free(log);
				return (0);
			}
			free(log);
		}
		sleep_ms(10);
	}
	brokerd_stop(b);
	return (-1);
}

int
brokerd_spawn_activated(struct brokerd *b, int fd)
{
	pid_t	 pid, self = getpid();
	int	 i, st;

	if ((pid = fork()) == -1)
		return (-1);
	if (pid == 0) {
		char	 pidenv[64];
		int	 log;

		child_tie(self);
		log = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		dup2(log, 1);
		dup2(log, 2);
		if (fd != 3) {
			dup2(fd, 3);
			close(fd);
		}
		snprintf(pidenv, sizeof(pidenv), "%ld", (long)getpid());
		setenv("LISTEN_PID", pidenv, 1);
		setenv("LISTEN_FDS", "1", 1);
		unsetenv("IBKR_BRIDGE_URL");
		execl(getenv("BROKERD_BIN") ? getenv("BROKERD_BIN") :
		    BROKERD_BIN, "brokerd", "-c", b->conf, (char *)NULL);
		_exit(127);
	}
	b->pid = pid;
	for (i = 0; i < 500 * timeout_scale(); i++) {
		if (brokerd_log_has(b, "brokerd: ready"))
			return (0);
		if (waitpid(pid, &st, WNOHANG) == pid) {
			b->pid = 0;
			b->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
			return (-1);
		}
		sleep_ms(10);
	}
	return (0);
}

int
brokerd_start(struct brokerd *b, const struct gwsim *g, const char *extra)
{
	memset(b, 0, sizeof(*b));
	if (brokerd_write_conf(b, g, extra) == -1)
		return (-1);
	return (brokerd_spawn(b, NULL));
}

int
brokerd_signal(struct brokerd *b, int sig)
{
	return (b->pid > 0 ? kill(b->pid, sig) : -1);
}

int
brokerd_wait(struct brokerd *b, int ms)
{
	int	 st, i;

	if (b->pid <= 0)
		return (0);
	for (i = 0; i < ms; i += 5) {
		if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
			b->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) :
			    128 + WTERMSIG(st);
			b->pid = 0;
			return (0);
		}
		sleep_ms(5);
	}
	return (-1);
}

/*
 * Under the sanitizers the daemon's log is the only witness: keep a copy
 * where tests/run-suites.sh looks (SANITIZER_LOG_DIR).
 */
static void
brokerd_sanitizer_check(const struct brokerd *b)
{
	const char	*dir = getenv("SANITIZER_LOG_DIR");
	char		*log, path[512];
	FILE		*f;

	if (dir == NULL || b->log[0] == '\0' ||
	    (log = slurp(b->log, NULL)) == NULL)
		return;
	if (strstr(log, "Sanitizer") != NULL ||
	    strstr(log, "runtime error:") != NULL) {
		snprintf(path, sizeof(path), "%s/sanitizer-%ld.log", dir,
		    (long)getpid());
		if ((f = fopen(path, "a")) != NULL) {
			fputs(log, f);
			fclose(f);
		}
		fprintf(stderr, "sanitizer report in %s\n", b->log);
	}
	free(log);
}

/*
 * SIGTERM must end the daemon with 0: a checker wrapped around it (valgrind
 * --error-exitcode) says so by its exit, and one that had to be killed
 * wrote no report at all.  Noted where tests/run-suites.sh and
 * tests/soak/valgrind.sh look (SANITIZER_LOG_DIR), as exit-PID.log.
 */
static void
brokerd_exit_check(const struct brokerd *b, pid_t pid, int killed)
{
	const char	*dir = getenv("SANITIZER_LOG_DIR");
	char		 path[512];
	FILE		*f;

	if (!killed && b->exit_status == 0)
		return;
	fprintf(stderr, "brokerd %ld %s after SIGTERM\n", (long)pid,
	    killed ? "had to be killed" : "exited non-zero");
	if (dir == NULL)
		return;
	snprintf(path, sizeof(path), "%s/exit-%ld.log", dir, (long)pid);
	if ((f = fopen(path, "w")) != NULL) {
		fprintf(f, "brokerd %ld: %s (status %d), log %s\n", (long)pid,
		    killed ? "no exit within the stop timeout" :
		    "non-zero exit after SIGTERM", b->exit_status, b->log);
		fclose(f);
	}
}

void
brokerd_stop(struct brokerd *b)
{
	pid_t	 pid = b->pid;
	int	 killed = 0;

	if (b->pid > 0) {
		kill(b->pid, SIGTERM);
		if (brokerd_wait(b, 5000 * timeout_scale()) == -1) {
			kill(b->pid, SIGKILL);
			brokerd_wait(b, 2000);
			killed = 1;
		}
		brokerd_exit_check(b, pid, killed);
	}
	brokerd_sanitizer_check(b);
	if (b->dir[0] != '\0' && getenv("KEEP_TEST_DIRS") == NULL) {
		char	 cmd[400];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", b->dir);
		b->dir[0] = '\0';
	}
}

int
brokerd_log_has(const struct brokerd *b, const char *text)
{
	char	*log;
	int	 r;

	if ((log = slurp(b->log, NULL)) == NULL)
		return (0);
	r = strstr(log, text) != NULL;
	free(log);
	return (r);
}

int
brokerd_log_count(const struct brokerd *b, const char *text)
{
	char	*log, *p;
	int	 n = 0;

	if ((log = slurp(b->log, NULL)) == NULL)
		return (0);
	for (p = log; (p = strstr(p, text)) != NULL; p += strlen(text))
		n++;
	free(log);
	return (n);
}

long
brokerd_rss_kb(const struct brokerd *b)
{
	char	 path[64], *s, *p;
	long	 kb = -1;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)b->pid);
	if ((s = slurp(path, NULL)) == NULL)
		return (-1);
	if ((p = strstr(s, "VmRSS:")) != NULL)
		kb = strtol(p + 6, NULL, 10);
	free(s);
	return (kb);
}

int
brokerd_sanitized(const struct brokerd *b)
{
	char	 path[64], *s;
	int	 r;

	snprintf(path, sizeof(path), "/proc/%ld/maps", (long)b->pid);
	if ((s = slurp(path, NULL)) == NULL)
		return (0);
	r = strstr(s, "libasan") != NULL;
	free(s);
	return (r);
}

int
brokerd_run(char *const argv[], char *out, size_t outlen)
{
	int	 p[2], st;
	pid_t	 pid;
	size_t	 n = 0;
	ssize_t	 r;

	if (pipe(p) == -1 || (pid = fork()) == -1)
		return (-1);
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		unsetenv("IBKR_BRIDGE_KEY");
		unsetenv("IBKR_BRIDGE_URL");
		unsetenv("IBKR_GATEWAY_URL");
		execv(getenv("BROKERD_BIN") ? getenv("BROKERD_BIN") :
		    BROKERD_BIN, argv);
		_exit(127);
	}
	close(p[1]);
	while (outlen > 0 && n < outlen - 1 &&
	    (r = read(p[0], out + n, outlen - 1 - n)) > 0)
		n += (size_t)r;
	if (outlen > 0)
		out[n] = '\0';
	close(p[0]);
	waitpid(pid, &st, 0);
	return (WIFEXITED(st) ? WEXITSTATUS(st) : 128);
}

/* ---------------------------------------------------------------- curl */

static int
req_do(const struct brokerd *b, int tcp, const char *method, const char *path,
    const char *const *headers, const char *body, size_t bodylen,
    struct resp *r)
{
	CURL		*c;
	struct curl_slist *h = NULL;
	struct membuf	 mb = { NULL, 0 }, mh = { NULL, 0 };
	char		 url[2048];
	CURLcode	 rc;
	size_t		 i;

	memset(r, 0, sizeof(*r));
	if (tcp)
		snprintf(url, sizeof(url), "http://127.0.0.1:%d%s",
		    b->tcp_port, path);
	else
		snprintf(url, sizeof(url), "http://localhost%s", path);
	if ((c = curl_easy_init()) == NULL)
		return (-1);
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (!tcp)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, b->sock);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, membuf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &mb);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, membuf_write);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &mh);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	for (i = 0; headers != NULL && headers[i] != NULL; i++)
		h = curl_slist_append(h, headers[i]);
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)bodylen);
	}
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r->seconds);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &r->connects);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	r->body = mb.p != NULL ? mb.p : strdup("");
	r->len = mb.len;
	r->headers = mh.p != NULL ? mh.p : strdup("");
	if (rc != CURLE_OK) {
		fprintf(stderr, "curl %s %s: %s\n", method, path,
		    curl_easy_strerror(rc));
		return (-1);
	}
	return (0);
}

int
req_unix(const struct brokerd *b, const char *method, const char *path,
    const char *const *headers, const char *body, size_t bodylen,
    struct resp *r)
{
	return (req_do(b, 0, method, path, headers, body, bodylen, r));
}

int
req_tcp(const struct brokerd *b, const char *method, const char *path,
    const char *const *headers, const char *body, size_t bodylen,
    struct resp *r)
{
	return (req_do(b, 1, method, path, headers, body, bodylen, r));
}

void
resp_free(struct resp *r)
{
	free(r->body);
	free(r->headers);
	memset(r, 0, sizeof(*r));
}

int
resp_header(const struct resp *r, const char *name, char *out, size_t len)
{
	const char	*p = r->headers;
	size_t		 n = strlen(name);

	while (p != NULL && *p != '\0') {
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1, *e;

			while (*v == ' ')
				v++;
			e = v + strcspn(v, "\r\n");
			snprintf(out, len, "%.*s", (int)(e - v), v);
			return (0);
		}
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return (-1);
}

/* ---------------------------------------------------------------- raw */

int
connect_unix(const char *path)
{
	struct sockaddr_un sun;
	int		 fd;

	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		return (-1);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return (-1);
	}
	return (fd);
}

int
connect_tcp(int port)
{
	struct sockaddr_in sin;
	int		 fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return (-1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return (-1);
	}
	return (fd);
}

static ssize_t
raw_do(int fd, const void *send_buf, size_t len, char *out, size_t cap,
    int timeout_ms)
{
	struct pollfd	 pfd;
	size_t		 n = 0;
	ssize_t		 r;
	double		 deadline = mono_s() + timeout_ms / 1000.0;

	if (fd == -1)
		return (-1);
	if (len > 0 && send(fd, send_buf, len, MSG_NOSIGNAL) != (ssize_t)len) {
		close(fd);
		return (-1);
	}
	while (n < cap - 1) {
		int left = (int)((deadline - mono_s()) * 1000);

		if (left <= 0)
			break;
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, left) <= 0)
			break;
		if ((r = recv(fd, out + n, cap - 1 - n, 0)) <= 0)
			break;
		n += (size_t)r;
	}
	out[n] = '\0';
	close(fd);
	return ((ssize_t)n);
}

ssize_t
raw_unix(const char *path, const void *send_buf, size_t len, char *out,
    size_t cap, int timeout_ms)
{
	return (raw_do(connect_unix(path), send_buf, len, out, cap,
	    timeout_ms));
}

ssize_t
raw_tcp(int port, const void *send_buf, size_t len, char *out, size_t cap,
    int timeout_ms)
{
	return (raw_do(connect_tcp(port), send_buf, len, out, cap,
	    timeout_ms));
}

int
count_responses(const char *buf, size_t len)
{
	const char	*p = buf, *end = buf + len;
	int		 n = 0;

	while (p < end && (p = memmem(p, (size_t)(end - p), "HTTP/1.1 ",
	    9)) != NULL) {
		n++;
		p += 9;
	}
	return (n);
}
