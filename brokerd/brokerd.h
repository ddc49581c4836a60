/*
 * brokerd: the one door between local programs and the IBKR Client Portal
 * Gateway.  Shared types and prototypes, grouped by the file that defines
 * them.  Everything not listed here is static to its file.
 */
#ifndef BROKERD_H
#define BROKERD_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <ev.h>

#define BROKERD_VERSION		"0.1.0"
#define BROKERD_CONF		"/etc/brokerd/brokerd.yaml"

/* Scopes, as a bit set. */
#define SCOPE_READ		0x01
#define SCOPE_TRADE		0x02
#define SCOPE_ADMIN		0x04

/* -------------------------------------------------------------- clock.c */

uint64_t	 now_ms(void);		/* monotonic milliseconds */
double		 now_s(void);		/* the same, in seconds */

/* ---------------------------------------------------------------- buf.c */

#include "buf.h"

/* The pure building blocks with headers of their own (after struct buf). */
#include "pace.h"		/* struct rate; sliding windows, the queue */
#include "cache.h"

/* ---------------------------------------------------------------- log.c */

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG
};

void		 log_init(int level, int json);		/* to stderr */
int		 log_level_parse(const char *);		/* -1 if unknown */
void		 log_error(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
void		 log_warn(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
void		 log_info(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
void		 log_debug(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
/* Start-up failures only: log, exit 1.  fatal() appends strerror(errno). */
void		 fatal(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));
void		 fatalx(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));
/*
 * A failure that repeats is logged once when its spell starts and once
 * when it ends, with the count: log_spell_fail() counts one and is 1 when
 * a spell starts now; log_spell_ok() is 1 when one just ended (count and
 * since_ms still hold its figures).
 */
struct log_spell {
	int		 active;
	uint64_t	 count;		/* failures in this spell */
	uint64_t	 since_ms;	/* now_ms() at its first failure */
};
int		 log_spell_fail(struct log_spell *);
int		 log_spell_ok(struct log_spell *);
/* One line per answered request; never the key, only its name. */
void		 log_request(const char *method, const char *path,
		    int status, size_t bytes, double ms, const char *who);

/* ------------------------------------------------------- config_lists.c */

/*
 * Read a key file as brokerd does (a regular file, no group or other
 * access, a valid key, one trailing newline dropped); -1 with why saying
 * what to do.  The caller wipes and frees *key.
 */
int		 config_lists_key_file(const char *path, char **key,
		    size_t *keylen, char *why, size_t whylen);

/* ------------------------------------------------------------- config.c */

struct config {
	char		*file;		/* NULL: built-in defaults */

	/* listen */
	char		*unix_path;
	mode_t		 unix_mode;
	char		*unix_group;	/* NULL: leave the group alone */
	int		 unix_group_default; /* group came from the defaults */
	char		*tcp;		/* "127.0.0.1:8000" or NULL */
	struct sockaddr_storage tcp_addr;
	socklen_t	 tcp_addrlen;
	unsigned	 tcp_anonymous;	/* scopes for keyless TCP requests */

	/* gateway */
	char		*gw_url;
	char		*gw_host;	/* host part, no brackets */
	char		*gw_port;	/* "5000" */
	unsigned char	 gw_pin[32];
	int		 gw_has_pin;
	char		*gw_ca_file;
	int		 gw_insecure;
	unsigned	 gw_pool;
	unsigned	 gw_connect_timeout_ms;
	unsigned	 gw_timeout_ms;

	/* session */
	unsigned	 check_interval_s;
	unsigned	 tickle_interval_s;
	int		 reauthenticate;
	int		 compete;	/* ssodh/init compete:true (off) */
	char		*status_file;
	char		*history_file;

	struct key	*keys;
	size_t		 nkeys;
	mode_t		 file_mode;	/* of file, when it was read */
	char		 inline_key[65]; /* the first `key:` in file, or "" */
	size_t		 ninline;	/* keys written in file itself */
	struct peer	*peers;
	size_t		 npeers;
	struct route	*routes;
	size_t		 nroutes;

	/* limits */
	struct rate	 gateway_rate;
	unsigned	 rate_slack_ms;	/* every rate window counts this longer */
	unsigned	 queue_ms;
	unsigned	 max_connections;	/* both listeners together */
	unsigned	 max_tcp_connections;	/* TCP alone, <= the above */
	size_t		 max_header_bytes;
	size_t		 max_body_bytes;
	size_t		 max_response_bytes;
	unsigned	 header_timeout_ms;
	unsigned	 idle_timeout_ms;
	unsigned	 send_timeout_ms;	/* a client takes no byte */
	unsigned	 drain_ms;

	int		 log_level;
	int		 log_json;

	char		*journal_file;
	size_t		 journal_max_bytes;
	unsigned	 journal_keep;

	char		*halt_file;

	/* stream (SPEC section 7) */
	unsigned	 stream_max_subscribers;
	unsigned	 stream_max_conids;
	unsigned	 stream_max_account_topics;
	size_t		 stream_conflate_bytes;
	size_t		 stream_max_buffer_bytes;
	size_t		 stream_max_message_bytes;	/* a client's message */

	unsigned	 refs;		/* holders: config_ref, config_unref */
};

/*
 * Load FILE (NULL: defaults only), then apply the environment
 * (IBKR_BRIDGE_KEY, IBKR_BRIDGE_URL, IBKR_GATEWAY_URL), then validate,
 * reading key files.  On error NULL and err holds "FILE:LINE:COL: message"
 * (or "FILE: message" when no position applies).
 */
struct config	*config_load(const char *file, char *err, size_t errlen);
/*
 * config_load's caller holds the one reference; whatever keeps a pointer
 * into a configuration past the current event takes another, and the last
 * config_unref frees it.  config_free frees at once, whatever the count:
 * for one nobody else can hold (tests, -t).
 */
const struct config *config_ref(const struct config *);
void		 config_unref(const struct config *);
void		 config_free(struct config *);
/* Warnings worth printing at -t and at every start (tcp_anonymous...). */
void		 config_warnings(const struct config *);
/* The test knob name (BROKERD_STREAM_*_MS) in ms, else def. */
unsigned	 config_env_ms(const char *name, unsigned def);

/* ---------------------------------------------------------------- auth.c */

struct key {
	char		*name;
	unsigned char	 hash[32];	/* SHA-256 of the key; key not kept */
	unsigned	 scopes;
};

struct peer {
	char		*name;		/* user or group name, for logs */
	int		 is_group;
	uid_t		 uid;
	gid_t		 gid;
	unsigned	 scopes;
};

void		 auth_sha256(const void *, size_t, unsigned char out[32]);
/*
 * The key matching this secret, compared in constant time against every
 * configured key (hash both sides, compare all), or NULL.
 */
const struct key *auth_key_find(const struct config *, const char *, size_t);

#define AUTH_MEMO_MAX	256	/* longest key a connection's memo holds */

/*
 * A connection's last accepted key, so that its next request with the
 * same bytes skips the SHA-256.  Bound to the configuration it was found
 * in (held by a reference, so no later one can share its address): a
 * reload makes the next request check again.
 */
struct auth_memo {
	const struct config *conf;	/* referenced, or NULL: empty */
	const struct key *key;		/* in conf */
	size_t		 len;
	unsigned char	 bytes[AUTH_MEMO_MAX];	/* the key as sent */
};

/* auth_key_find through the memo (NULL: none); only a match is kept. */
const struct key *auth_key_find_memo(const struct config *,
		    struct auth_memo *, const char *, size_t);
void		 auth_memo_clear(struct auth_memo *);
/* Scopes granted to a Unix-socket peer by uid/gid (0: none). */
unsigned	 auth_peer_scopes(const struct config *, uid_t, gid_t,
		    const char **name);
int		 auth_scope_parse(const char *, unsigned *);	/* "read"... */
const char	*auth_scope_name(unsigned);			/* one bit */

/* --------------------------------------------------------------- route.c */

struct route_method {
	char		 method[8];	/* "GET", "POST", "DELETE", ... */
	unsigned	 scope;		/* SCOPE_* needed */
};

struct route {
	char		*prefix;	/* client side, e.g. /iserver/ */
	size_t		 prefix_len;
	char		*to;		/* Gateway side, e.g. /v1/api/iserver/ */
	size_t		 to_len;
	struct route_method methods[8];
	size_t		 nmethods;
	struct rate	 rate;		/* per Gateway path (to); n 0 = none */
	unsigned	 concurrency;	/* 0 = no cap */
	unsigned	 cache_ms;	/* 0 = no cache */
};

/* The default table of SPEC section 3 (and IBKR's published limits). */
int		 route_defaults(struct route **, size_t *);
void		 route_free_table(struct route *, size_t);
/* Strip a leading "/v1/api" (drop-in for Gateway clients). */
const char	*route_strip_v1(const char *path, size_t *len);
/* Longest matching prefix, or NULL.  path excludes the query. */
const struct route *route_match(const struct route *, size_t,
		    const char *path, size_t len);
/* Scope the method needs; -1 when the route does not allow it. */
int		 route_method_scope(const struct route *, const char *method,
		    unsigned *scope);
/* Gateway path: prefix rewritten to `to`, then "?query" when non-empty. */
int		 route_target(const struct route *, const char *path,
		    size_t len, const char *query, struct buf *out);
/*
 * The route that carries rate / concurrency / cache for a Gateway path:
 * the longest `to` that is a prefix of it among routes that set any of
 * them.  Aliases reaching the same Gateway path share it.  NULL if none.
 */
const struct route *route_policy(const struct route *, size_t,
		    const char *gw_path, size_t len);

/* ------------------------------- http.c, http_response.c, http_write.c */

#include "http.h"

/* ------------------------------------------------------------- metrics.c */

struct metrics;

struct metrics	*metrics_new(void);
void		 metrics_free(struct metrics *);
void		 metrics_request(struct metrics *, const char *route,
		    const char *method, int status, double seconds);
void		 metrics_upstream(struct metrics *, const char *what);
		/* "requests", "errors", "handshakes", "timeouts", "429" */
void		 metrics_cache(struct metrics *, int hit);
/* A connection answered 503: 0 max_connections, 1 max_tcp, 2 no fds. */
void		 metrics_refused(struct metrics *, int limit);
/* A client closed for taking no byte within limits.send_timeout_ms. */
void		 metrics_send_timeout(struct metrics *);
/*
 * Prometheus text format 0.0.4.  Gauges passed in: state name, queue,
 * pool figures, breaker seconds.
 */
struct metrics_gauges {
	const char	*state;
	unsigned	 queue_len;
	unsigned	 pool_idle;
	unsigned	 pool_busy;
	unsigned	 connections;
	unsigned	 connections_tcp;	/* of them on TCP */
	double		 breaker_s;
	unsigned	 global_used;
	unsigned	 global_n;
	uint64_t	 heap_bytes;	/* malloc'd and in use */
};
int		 metrics_render(const struct metrics *,
		    const struct metrics_gauges *, struct buf *);

/* -------------------------------------------------------------- status.c */

enum gw_state {
	GW_STARTING = 0,
	GW_DOWN,
	GW_UNAUTHENTICATED,
	GW_AUTHENTICATED,
	GW_COMPETING,
	GW_STOPPED
};

struct gw_status {
	enum gw_state	 state;
	int		 authenticated;	/* raw fields of the last check */
	int		 connected;
	int		 competing;
	time_t		 since;		/* last transition */
	time_t		 checked;	/* last check */
	uint64_t	 seq;		/* transitions so far */
	pid_t		 pid;
	unsigned	 check_interval_s;
	char		 message[512];	/* the Gateway's text, any bytes */
	int		 cert_error;	/* gateway_down: its certificate */
};

const char	*status_state_name(enum gw_state);
/* RFC 3339 UTC, "2026-11-25T06:00:00Z". */
void		 status_time(time_t, char *, size_t);
/* The KEY=value text of SPEC section 5, shell-safe. */
int		 status_format(const struct gw_status *, struct buf *);
/* Shell single-quote a value when it needs it. */
int		 status_quote(struct buf *, const char *);
/* Atomic: temp file in the same folder, fsync, rename (+ dir fsync). */
int		 status_write(const char *path, const struct gw_status *,
		    int sync_dir);
/* One JSON line per transition, fsync'd. */
int		 status_history(const char *path, const struct gw_status *,
		    enum gw_state from);

/* ------------------------------------------------------------- journal.c */

struct journal;

struct journal	*journal_open(const char *path, size_t max_bytes, unsigned keep,
		    char *err, size_t errlen);
void		 journal_close(struct journal *);
void		 journal_set_limits(struct journal *, size_t max_bytes,
		    unsigned keep);
/* Written and fsync'd before the request is sent; -1: do not send it. */
int		 journal_intent(struct journal *, const char *who,
		    const char *method, const char *target, const char *body,
		    size_t len, uint64_t *id);
int		 journal_outcome(struct journal *, uint64_t id, int status,
		    const char *error, const char *body, size_t len);

/* ------------------------------------------------------------ upstream.c */

struct conn;
struct ev_loop;
struct upstream;
struct upstream_req;

enum upstream_error {
	UPSTREAM_OK = 0,
	UPSTREAM_UNREACHABLE,	/* refused, TLS failure: 502 */
	UPSTREAM_BAD_RESPONSE,	/* malformed answer: 502 */
	UPSTREAM_TOO_LARGE,	/* over max_response_bytes: 502 */
	UPSTREAM_TIMEOUT,	/* no complete answer in time: 504 */
	UPSTREAM_OUTCOME_UNKNOWN, /* non-idempotent, lost after sending */
	UPSTREAM_RATE_LIMITED,	/* queue_ms passed or breaker open: 429 */
	UPSTREAM_CERTIFICATE,	/* not the pinned (or a CA-signed) cert: 502 */
	UPSTREAM_CANCELLED
};

/*
 * Called once per request, with resp NULL unless error == UPSTREAM_OK; the
 * callback owns resp: http_response_free(resp) frees it, struct included
 * (http_response.c), so no free() after it.
 */
typedef void	 (*upstream_cb)(struct upstream_req *, enum upstream_error,
		    struct http_response *resp, void *arg);
/*
 * Optional streaming of a 2xx body.  on_head runs once the answer's head is
 * parsed (resp holds the head only; req->resp_length is its Content-Length,
 * -1 when the body is chunked or close-delimited): 1 takes the body in
 * pieces through on_data, 0 keeps buffering it.  on_data returns 1 to go
 * on, 0 to pause reading that connection until upstream_resume().  Then
 * the callback runs as usual (an empty body when streamed, an error when
 * the body broke off).  Neither may call upstream_cancel() or submit:
 * conn.c is in the middle of reading.
 */
typedef int	 (*upstream_head_cb)(struct upstream_req *,
		    const struct http_response *resp);
typedef int	 (*upstream_data_cb)(struct upstream_req *, const char *,
		    size_t);

struct upstream_req {
	/* filled by the caller */
	char		 method[16];
	struct buf	 target;	/* "/v1/api/...?query" */
	char		*content_type;	/* or NULL */
	char		*accept;	/* or NULL */
	struct buf	 body;
	const struct route *policy;	/* pacing key, or NULL */
	const struct config *conf;	/* a reference to policy's own, or
					   NULL; upstream_req_free drops it */
	int		 watcher;	/* session watcher's call */
	upstream_cb	 cb;
	void		*arg;
	upstream_head_cb on_head;	/* optional, with on_data */
	upstream_data_cb on_data;
	/* upstream.c's and conn.c's own */
	long long	 resp_length;	/* at on_head: Content-Length or -1 */
	int		 streaming;	/* on_head took the body */
	struct pace_ticket ticket;
	struct conn	*conn;		/* conn.c's, while it holds it */
	uint64_t	 retry_after_ms;	/* for RATE_LIMITED */
	int		 paused;	/* RATE_LIMITED by the 429 breaker */
	char		 errmsg[512];	/* reason for errors (TLS ...) */
	int		 retried;
	struct upstream_req *next;
	struct pace	*pace;		/* the pace it is queued in or granted
					   by; NULL when not in upstream.c */
	int		 granted;	/* holds a pace grant */
	int		 deferred;	/* error to report from the loop */
};

struct upstream	*upstream_new(struct ev_loop *, const struct config *,
		    struct metrics *, char *err, size_t errlen);
void		 upstream_free(struct upstream *);
/* New configuration (SIGHUP): idle connections close, busy ones finish. */
int		 upstream_reconfigure(struct upstream *, const struct config *,
		    char *err, size_t errlen);
/*
 * Queue a request: pacing, then a pooled connection, then exactly one
 * write.  The callback runs later, never from inside this call.
 */
void		 upstream_submit(struct upstream *, struct upstream_req *);
/* The client went away; no callback follows. */
void		 upstream_cancel(struct upstream *, struct upstream_req *);
/* on_data paused this request's connection: read on (from the loop). */
void		 upstream_resume(struct upstream *, struct upstream_req *);
void		 upstream_req_init(struct upstream_req *);
/* Frees target, body, and content_type and accept (malloc'd or NULL). */
void		 upstream_req_free(struct upstream_req *);
/* Cookie jar: forget (after a lost session). */
void		 upstream_jar_clear(struct upstream *);
/* The jar as a Cookie value (streamup_sock.c's upgrade).  0 or -1. */
int		 upstream_cookies(const struct upstream *, struct buf *);
/* The current TLS settings (struct tls, tls.h); no reference taken. */
struct tls	*upstream_tls(const struct upstream *);
struct pace	*upstream_pace(struct upstream *);
struct upstream_stats {
	unsigned	 idle;
	unsigned	 busy;
	uint64_t	 handshakes;	/* all completed, resumed included */
	uint64_t	 resumed;
	uint64_t	 requests;
	uint64_t	 errors;
	char		 fingerprint[96];	/* of the last peer cert */
};
void		 upstream_stats(const struct upstream *, struct upstream_stats *);

/* Pure pieces, exposed for tests/unit/test_upstream.c. */
/*
 * The bytes written to the Gateway: request line, Host (host:port,
 * brackets for IPv6), User-Agent, Accept, Content-Type, Content-Length,
 * Cookie (when cookie is non-empty), Connection: keep-alive, body.
 * -1 when a field would break the head (CR, LF, NUL, space in target).
 */
int		 upstream_format_request(struct buf *,
		    const struct upstream_req *, const char *host,
		    const char *port, const char *cookie);

/* ----------------------------------------------------------------- jar.c */

struct jar_cookie {
	char		*name;
	char		*value;
};
struct jar {
	struct jar_cookie *v;
	size_t		 n;
	size_t		 cap;
};
void		 jar_init(struct jar *);
void		 jar_free(struct jar *);
/*
 * Absorb one Set-Cookie value: name=value kept, replaced by name, removed
 * on Max-Age <= 0 or an Expires before now.  -1: malformed, ignored.
 */
int		 jar_absorb(struct jar *, const char *, time_t now);
/* Append "a=1; b=2" (nothing when empty). */
int		 jar_format(const struct jar *, struct buf *);

/* --------------------------------------------------------- fingerprint.c */

/* `brokerd gateway-fingerprint [URL]`: blocking, prints, exit code. */
int		 fingerprint_cmd(const char *url, unsigned timeout_ms);

/* ------------------------------------------------------------- migrate.c */

/* What the Python bridge's (bridge.py) .env says, checked like brokerd. */
struct migrate_env {
	char		*key;		/* IBKR_BRIDGE_KEY */
	char		*tcp;		/* IBKR_BRIDGE_URL as HOST:PORT, or NULL */
	char		*gw_url;	/* IBKR_GATEWAY_URL, or NULL */
};

int		 migrate_parse(const char *, size_t, struct migrate_env *,
		    char *, size_t);
void		 migrate_env_free(struct migrate_env *);
/* The brokerd.yaml lines naming keyfile (never the key); -1: no room. */
int		 migrate_yaml(const struct migrate_env *, const char *, char *,
		    size_t);
/* `brokerd migrate-env FILE [KEYFILE]`: writes the key file, prints. */
int		 migrate_cmd(int, char *[]);

/* ------------------------------------------------------------- session.c */

struct session;

struct session	*session_new(struct ev_loop *, const struct config *,
		    struct upstream *);
void		 session_free(struct session *);
void		 session_start(struct session *);
void		 session_reconfigure(struct session *, const struct config *);
/* Writes BROKERD_STATE=stopped. */
void		 session_stop(struct session *);
const struct gw_status *session_status(const struct session *);
/* Last 20 transitions as a JSON array. */
int		 session_history_json(const struct session *, struct buf *);
/* Check now (a forwarded call got 401 or 400 "no bridge"). */
void		 session_check_now(struct session *);
/*
 * POST /gateway/reauthenticate: try ssodh/init now.  0 sent, 1 one is
 * already on its way, -1 not now (one went out less than a second ago).
 */
int		 session_reauthenticate(struct session *);
/* Inspect a forwarded answer (401, 400 no bridge, 429). */
void		 session_observe(struct session *, int status,
		    const char *body, size_t len);
/*
 * The bootstrap GETs (iserver/accounts, portfolio/accounts) hand their 200
 * answers here, so that a client's first call finds them in the cache
 * instead of the 1/5s limit they just used.
 */
typedef void	 (*session_feed_cb)(void *arg, const char *target,
		    const struct http_response *);
void		 session_set_feed(struct session *, session_feed_cb, void *);
/* Every state change (streamup.c reopens its socket on authenticated). */
typedef void	 (*session_watch_cb)(void *arg, enum gw_state from,
		    enum gw_state to);
void		 session_set_watch(struct session *, session_watch_cb, void *);
/* The last tickle's "session" id, "" when none yet. */
const char	*session_id(const struct session *);
/* A tickle now, unless one is on its way (the id for the stream). */
void		 session_tickle_now(struct session *);
/* The streaming socket's sts said authenticated (1) or not (0). */
void		 session_sts(struct session *, int authenticated);
/*
 * Pure: read an auth/status or tickle answer (iserver.authStatus) into
 * st's raw fields and message; -1 when it is not such JSON.
 */
int		 session_parse_auth(const char *body, size_t len,
		    struct gw_status *st);
/* Pure: the state the raw fields mean. */
enum gw_state	 session_state_of(const struct gw_status *);

/* -------------------------------------------------------------- listen.c */

struct server;			/* main.c: the running daemon */

struct listener {
	int		 fd;
	int		 is_unix;
	char		 name[128];	/* for logs */
};

/* Open the configured sockets (or take systemd's LISTEN_FDS). */
int		 listen_open(const struct config *, struct listener **, size_t *,
		    char *err, size_t errlen);
void		 listen_close(struct listener *, size_t);
/*
 * Accept on srv->listeners.  Over limits.max_connections, or on TCP over
 * max_tcp_connections, a connection is answered 503 after its request
 * head, with a short linger; out of descriptors, accepting pauses and a
 * spare descriptor answers waiting clients 503.  listen_stop: for good.
 */
int		 listen_start(struct server *);
void		 listen_stop(struct server *);

/* --------------------------------------------------------------- admit.c */

/* Who is asking, as the listener saw them. */
struct admit_peer {
	int		 is_unix;
	int		 has_cred;	/* uid and gid from SO_PEERCRED */
	uid_t		 uid;
	gid_t		 gid;
};

/* What admission decided: status 0 admits, else the refusal to answer. */
struct admit_verdict {
	int		 status;	/* 0, or 400, 401, 403, 404, ... */
	const char	*code;		/* "unauthorized", ... */
	const char	*message;	/* static, text or the gw_status's */
	char		 text[128];	/* room for a composed message */
	char		 extra[128];	/* header lines, CRLF-ended, or "" */
	char		 who[64];	/* key or peer name, never the key */
	unsigned	 scopes;	/* granted to who */
	unsigned	 need;		/* the matched route's method needs */
	const struct route *route;	/* matched, or NULL */
};

/* A TCP request's Host and absolute-form authority must be loopback. */
int		 admit_host(const struct http_request *, int is_unix,
		    struct admit_verdict *);
/* Who is asking: a key, a Unix-socket peer or keyless TCP; -1 refused. */
int		 admit_who(const struct config *, const struct admit_peer *,
		    const struct http_request *, struct admit_verdict *);
/* The same, with the connection's key memo (auth_key_find_memo). */
int		 admit_who_memo(const struct config *,
		    const struct admit_peer *, struct auth_memo *,
		    const struct http_request *, struct admit_verdict *);
/* After admit_who: -1 (403) when its scopes lack need. */
int		 admit_scope(struct admit_verdict *, unsigned need);
/* Refuse 405 with "Allow: allow". */
void		 admit_allow(struct admit_verdict *, const char *allow);
/*
 * A routed request (path: the request's without /v1/api): who, route,
 * method, scope, the kill switch (trading.halt_file exists), and the
 * Gateway session that /iserver/ calls need.  0 admits v->route.
 */
int		 admit_request(const struct config *, const struct gw_status *,
		    const struct admit_peer *, struct auth_memo *,
		    const struct http_request *, const char *path,
		    struct admit_verdict *);

/* -------------------------------------------------------------- client.c */

struct client;
struct fetch;			/* forward.c: a shared GET in flight */

/*
 * One request and its answer.  Pipelined requests are answered in the
 * order they came; an answer waits in its own buffer until the ones
 * before it are written.
 */
struct exchange {
	struct client	*c;
	struct http_request *req;	/* NULL: the request was unreadable */
	struct exchange	*next;
	int		 done;		/* out holds the whole answer */
	int		 close;		/* close after writing it */
	struct buf	 out;
	int		 status;
	size_t		 bytes;		/* body bytes */
	double		 start;
	char		 who[64];	/* key or peer name, never the key */
	const char	*route;		/* metrics label */
	const struct route *policy;	/* its Gateway path's limits */
	const struct config *conf;	/* holds route and policy */
	struct upstream_req *ureq;	/* in flight alone: &ureq_own */
	struct upstream_req ureq_own;	/* set up by forward_alone only;
					   its target's room kept */
	struct cache_entry *centry;	/* GET: waiting on this entry;
					   exchange_new zeroes from here */
	int		 trade;
	int		 journaled;	/* an intent line awaits its outcome */
	uint64_t	 journal_id;
	int		 streaming;	/* head sent, body follows in pieces */
	int		 chunked;	/* ... framed as chunks */
	int		 paused;	/* the Gateway connection waits for us */
};

struct client {
	struct server	*srv;
	int		 fd;
	struct admit_peer peer;
	struct auth_memo memo;		/* the last key accepted here */
	ev_io		 rio;
	ev_io		 wio;
	ev_timer	 timer;
	struct http_reader rd;
	struct buf	 in;
	struct exchange	*head;		/* oldest unanswered */
	struct exchange	*tail;
	struct exchange	*spare;		/* answered, kept for the next */
	size_t		 nexchanges;
	size_t		 wpos;		/* written of head->out */
	int		 reading;	/* rio active */
	int		 closing;	/* stop reading, close when written */
	int		 lingering;	/* answered, half-closed, discarding */
	int		 in_request;	/* bytes of a request arrived */
	ev_tstamp	 req_start;	/* ... since then (the first: accept) */
	ev_tstamp	 sent_at;	/* it last took a byte of an answer */
	unsigned	 nrequests;	/* heads read whole */
	struct sub	*upgraded;	/* subscriber.c takes the socket */
	struct client	*prev;
	struct client	*next;
};

void		 client_accept(struct server *, struct listener *, int fd);
/* Its head exchange has bytes to write: written this loop turn. */
void		 client_want_write(struct client *);
void		 client_close_all(struct server *);

/* ------------------------------------------------------------ exchange.c */

/* A new exchange at the tail of c's queue, or NULL. */
struct exchange	*exchange_new(struct client *, struct http_request *);
/* Detach it from what it waits on (no answer follows) and free it. */
void		 exchange_free(struct exchange *);
void		 exchange_drop_spare(struct client *);
/* Whether the connection stays open after this exchange's answer. */
int		 exchange_keep_alive(const struct exchange *);
/* A whole answer; written later, in request order. */
void		 exchange_answer(struct exchange *, int status,
		    const char *ctype, const char *body, size_t len,
		    const char *extra);
void		 exchange_json(struct exchange *, int status, const char *body,
		    const char *extra);
/* {"error":code,"message":message}; closes after a framing error. */
void		 exchange_error(struct exchange *, int status, const char *code,
		    const char *message, const char *extra);
void		 exchange_rate_limited(struct exchange *, uint64_t retry_ms,
		    const char *message);
/* Take admission's word: who asked, and answer a refusal (-1). */
int		 exchange_verdict(struct exchange *,
		    const struct admit_verdict *);
/* The answer is all in out: log it, count it, have it written. */
void		 exchange_finish(struct exchange *, int status);
/* Output not yet written. */
size_t		 exchange_unsent(const struct exchange *);

/* ------------------------------------------------------------- forward.c */

/* To the Gateway along rt: shared and cached GETs, journaled trades. */
void		 forward_request(struct exchange *, const struct route *rt);
/* The exchange goes without an answer: cancel what it waits on. */
void		 forward_abandon(struct exchange *);
/* The client caught up with a paused stream: let the Gateway go on. */
void		 forward_resume(struct exchange *);
/* A watcher's answer for target, kept if its route has cache_ms. */
void		 forward_cache_feed(void *server, const char *target,
		    const struct http_response *);

/* ------------------------------------------------------------- builtin.c */

/* Answer one of brokerd's own paths; 0 when path is not one. */
int		 builtin_answer(struct exchange *, const char *path);

/* ---------------------------------------------------------- subscriber.c */

struct sub;			/* a local WebSocket or SSE subscriber */
struct stream_sub;

/*
 * /ws (and /v1/api/ws) and /stream: 0 when path is not one; else 1, with
 * either a refusal answered on x or c->upgraded set, for client.c to hand
 * the socket over with sub_adopt once the parse loop lets go of it.
 */
int		 sub_answer(struct exchange *, const char *path);
/* The socket is the subscriber's now, with bytes read past the head. */
void		 sub_adopt(struct sub *, int fd, const char *, size_t);
/* stream_new's callbacks; owner is the struct sub. */
void		 sub_ready(void *owner, struct stream_sub *);
void		 sub_close_cb(void *owner, struct stream_sub *, uint16_t,
		    const char *);
/* SIGHUP: close (1008) those whose key or peer lost the read scope. */
void		 sub_reconfigure(struct server *);
/* SIGTERM: close every one (1001); sub_free_all after the loop. */
void		 sub_close_all(struct server *);
void		 sub_free_all(struct server *);

/* ---------------------------------------------------------------- main.c */

struct server {
	struct ev_loop	*loop;
	struct config	*conf;
	struct listener	*listeners;
	size_t		 nlisteners;
	struct upstream	*upstream;
	struct session	*session;
	struct cache	*cache;
	struct metrics	*metrics;
	struct journal	*journal;	/* NULL unless journal.file */
	int		 draining;
	uint64_t	 started_ms;
	struct client	*clients;	/* client.c: every connection */
	unsigned	 nclients;
	unsigned	 nclients_tcp;	/* of them on TCP */
	unsigned	 npeak;		/* most connections since a trim */
	struct fetch	*fetches;	/* forward.c: shared GETs in flight */
	struct stream	*stream;	/* stream.c: the fan-out hub */
	struct streamup	*streamup;	/* streamup.c: the Gateway socket */
	struct sub	*subs;		/* subscriber.c: every local one */
	unsigned	 nsubs;
};



#endif /* BROKERD_H */
