/*
 * Integration test harness: a real Gateway simulator (tests/gwsim, Node)
 * and a real build/brokerd, each in its own temporary folder, on ports the
 * OS picks, stopped by PID.  BROKERD_BIN names another daemon binary (or a
 * wrapper: tests/soak/valgrind.sh), BROKERD_TIMEOUT_SCALE multiplies the
 * waits for it to start and stop, SANITIZER_LOG_DIR collects reports.
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <sys/types.h>
#include <stddef.h>

#define TEST_KEY	"0123456789abcdef0123456789abcdef"	/* all scopes */
#define TEST_READ_KEY	"readreadreadreadreadreadreadread"	/* read only */

struct gwsim {
	pid_t	 pid;
	int	 port;
	int	 control;
	char	 fingerprint[128];
	char	 ca_file[512];
	char	 url[64];
};

struct brokerd {
	pid_t	 pid;
	char	 dir[256];
	char	 sock[320];
	char	 conf[320];
	char	 log[320];
	char	 status[320];
	char	 halt[320];
	int	 tcp_port;	/* 0: no TCP listener */
	int	 exit_status;	/* after brokerd_stop / brokerd_wait */
	int	 nofile;	/* > 0: RLIMIT_NOFILE for brokerd_spawn */
};

struct resp {
	long	 status;
	char	*body;
	size_t	 len;
	char	*headers;	/* raw response headers */
	double	 seconds;
	long	 connects;	/* new connections curl made */
};

/* In a forked child: die with the test's process PARENT (its pid). */
void	 child_tie(pid_t parent);
/* mode: "self", "expired" or "ca"; 0 or -1. */
int	 gwsim_start(struct gwsim *, const char *mode);
void	 gwsim_stop(struct gwsim *);
/* POST/GET on the control port; *out (if not NULL) gets the body. */
int	 gwsim_ctl(const struct gwsim *, const char *method, const char *path,
	    const char *json, char **out);
/* One number from GET /counters: "total", "handshakes", or "by_route" key. */
long	 gwsim_count(const struct gwsim *, const char *what);

/*
 * Write a configuration and start brokerd.  The default sections
 * (listen, gateway, session, keys, trading) are replaced by top-level
 * sections of the same name in `extra` (YAML text, may be NULL).  gw NULL:
 * a Gateway address where nothing listens.  Waits for "brokerd: ready".
 * Returns 0, or -1 with the log kept in b->log.
 */
int	 brokerd_start(struct brokerd *, const struct gwsim *,
	    const char *extra);
/* Write the configuration only (for -t tests). */
int	 brokerd_write_conf(struct brokerd *, const struct gwsim *,
	    const char *extra);
/* Start with an already written b->conf; env: NULL-terminated "K=V". */
int	 brokerd_spawn(struct brokerd *, char *const env[]);
/*
 * Start it with fd as the one socket systemd passes (fd 3, LISTEN_FDS=1);
 * 0 when ready, -1 when it exited (exit_status, log kept).
 */
int	 brokerd_spawn_activated(struct brokerd *, int fd);
void	 brokerd_stop(struct brokerd *);
int	 brokerd_signal(struct brokerd *, int sig);
/* Wait for exit up to ms; 0 when it exited (exit_status set). */
int	 brokerd_wait(struct brokerd *, int ms);
/* Does the log contain this text?  How many times? */
int	 brokerd_log_has(const struct brokerd *, const char *);
int	 brokerd_log_count(const struct brokerd *, const char *);
/* VmRSS of the running brokerd in KiB, from /proc, or -1. */
long	 brokerd_rss_kb(const struct brokerd *);
/*
 * Built with AddressSanitizer (BROKERD_BIN=build/brokerd-asan): it keeps
 * freed memory in its quarantine and has its own allocator, so its RSS
 * says nothing about glibc's.
 */
int	 brokerd_sanitized(const struct brokerd *);
/* Run build/brokerd with args, capture stdout+stderr; returns exit code. */
int	 brokerd_run(char *const argv[], char *out, size_t outlen);

/* libcurl request over the Unix socket (tcp_port 0) or TCP. */
int	 req_unix(const struct brokerd *, const char *method, const char *path,
	    const char *const *headers, const char *body, size_t bodylen,
	    struct resp *);
int	 req_tcp(const struct brokerd *, const char *method, const char *path,
	    const char *const *headers, const char *body, size_t bodylen,
	    struct resp *);
void	 resp_free(struct resp *);
/* Header value from r->headers (case-insensitive), copied into out. */
int	 resp_header(const struct resp *, const char *name, char *out,
	    size_t len);

/*
 * Raw exchange on a new connection: send, then read until the peer closes
 * or timeout_ms passes.  Returns bytes read, -1 on error.
 */
ssize_t	 raw_unix(const char *path, const void *send, size_t len, char *out,
	    size_t cap, int timeout_ms);
ssize_t	 raw_tcp(int port, const void *send, size_t len, char *out,
	    size_t cap, int timeout_ms);
/* Connect only (for tests that drive the socket themselves). */
int	 connect_unix(const char *path);
int	 connect_tcp(int port);
/* Count "HTTP/1.1 " status lines in a raw answer. */
int	 count_responses(const char *buf, size_t len);

/* A growing, NUL-terminated buffer for libcurl's write callbacks. */
struct membuf {
	char	*p;
	size_t	 len;
};
size_t	 membuf_write(char *, size_t, size_t, void *);

/* Read a whole file (NUL-terminated, caller frees) or NULL. */
char	*slurp(const char *path, size_t *len);
double	 mono_s(void);
void	 sleep_ms(int ms);

#endif
