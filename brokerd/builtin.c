/*
 * The paths brokerd answers itself: /health, /gateway/auth-status,
 * /gateway/status, /gateway/reauthenticate, /gateway/trading (the kill
 * switch) and /metrics.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "brokerd.h"
#include "stream.h"
#include "streamup.h"

static void
builtin_json_time(struct buf *b, const char *name, time_t t)
{
	char	 ts[40];

	if (t == 0) {
		buf_printf(b, "\"%s\":null", name);
		return;
	}
	status_time(t, ts, sizeof(ts));
	buf_printf(b, "\"%s\":\"%s\"", name, ts);
}

/* The watcher's last word, as /gateway/auth-status and /gateway/status say. */
static void
builtin_state_json(struct buf *b, const struct gw_status *st)
{
	buf_printf(b, "\"authenticated\":%s,\"connected\":%s,"
	    "\"competing\":%s,\"state\":\"%s\",",
	    st->state == GW_AUTHENTICATED ? "true" : "false",
	    st->connected ? "true" : "false",
	    st->competing ? "true" : "false", status_state_name(st->state));
	builtin_json_time(b, "since", st->since);
	buf_puts(b, ",");
	builtin_json_time(b, "checked_at", st->checked);
	buf_puts(b, ",\"message\":");
	buf_json_string(b, st->message, strlen(st->message));
}

static void
builtin_auth_status(struct exchange *x)
{
	struct buf	 b;

	buf_init(&b);
	buf_puts(&b, "{");
	builtin_state_json(&b, session_status(x->c->srv->session));
	buf_puts(&b, "}");
	exchange_answer(x, 200, "application/json", b.data, b.len, NULL);
	buf_free(&b);
}

/* Pool and pacing figures, for /gateway/status and /metrics. */
struct figures {
	struct upstream_stats	 us;
	struct pace_stats	 ps;
	double			 breaker_s;
	uint64_t		 now;
};

static void
builtin_figures(struct server *srv, struct figures *f)
{
	f->now = now_ms();
	upstream_stats(srv->upstream, &f->us);
	pace_stats(upstream_pace(srv->upstream), f->now, &f->ps);
	f->breaker_s = (double)pace_breaker_remaining(
	    upstream_pace(srv->upstream), f->now) / 1000.0;
}

/* The streams of SPEC section 7: subscribers, the Gateway socket. */
static void
builtin_stream_json(struct server *srv, struct buf *b)
{
	const struct stream_counters	*sc = stream_counters(srv->stream);

	buf_printf(b, "\"stream\":{\"subscribers\":%zu,\"conids\":%zu,"
	    "\"messages_in\":%llu,\"messages_out\":%llu,\"conflated\":%llu,"
	    "\"dropped\":%llu,\"refused\":%llu,\"bad_topics\":%llu,"
	    "\"upstream\":",
	    stream_nsubs(srv->stream), stream_nconids(srv->stream),
	    (unsigned long long)sc->msgs_in, (unsigned long long)sc->msgs_out,
	    (unsigned long long)sc->conflated, (unsigned long long)sc->dropped,
	    (unsigned long long)sc->refused,
	    (unsigned long long)sc->bad_topics);
	if (streamup_status_json(srv->streamup, b) == -1)
		buf_puts(b, "null");
	buf_puts(b, ",\"active\":");
	if (stream_active_json(srv->stream, b) == -1)
		buf_puts(b, "[]");
	buf_puts(b, "},");
}

/* Prometheus lines for the streams, after metrics_render's. */
static void
builtin_stream_metrics(struct server *srv, struct buf *b)
{
	const struct stream_counters	*sc = stream_counters(srv->stream);
	struct streamup_counters	 uc;

	memset(&uc, 0, sizeof(uc));
	streamup_counters(srv->streamup, &uc);
	buf_printf(b, "# TYPE brokerd_stream_subscribers gauge\n"
	    "brokerd_stream_subscribers %zu\n"
	    "# TYPE brokerd_stream_conids gauge\n"
	    "brokerd_stream_conids %zu\n"
	    "# TYPE brokerd_stream_upstream_connected gauge\n"
	    "brokerd_stream_upstream_connected %llu\n"
	    "# TYPE brokerd_stream_messages_in_total counter\n"
	    "brokerd_stream_messages_in_total %llu\n"
	    "# TYPE brokerd_stream_messages_out_total counter\n"
	    "brokerd_stream_messages_out_total %llu\n"
	    "# TYPE brokerd_stream_conflated_total counter\n"
	    "brokerd_stream_conflated_total %llu\n"
	    "# TYPE brokerd_stream_dropped_total counter\n"
	    "brokerd_stream_dropped_total %llu\n"
	    "# TYPE brokerd_stream_refused_total counter\n"
	    "brokerd_stream_refused_total %llu\n"
	    "# TYPE brokerd_stream_bad_topics_total counter\n"
	    "brokerd_stream_bad_topics_total %llu\n"
	    "# TYPE brokerd_stream_reconnects_total counter\n"
	    "brokerd_stream_reconnects_total %llu\n",
	    stream_nsubs(srv->stream), stream_nconids(srv->stream),
	    (unsigned long long)uc.connected,
	    (unsigned long long)sc->msgs_in, (unsigned long long)sc->msgs_out,
	    (unsigned long long)sc->conflated, (unsigned long long)sc->dropped,
	    (unsigned long long)sc->refused,
	    (unsigned long long)sc->bad_topics,
	    (unsigned long long)uc.reconnects);
}

static void
builtin_gateway_status(struct exchange *x)
{
	struct server		*srv = x->c->srv;
	const struct config	*conf = srv->conf;
	struct figures		 f;
	struct buf		 b;

	builtin_figures(srv, &f);
	buf_init(&b);
	buf_puts(&b, "{");
	builtin_state_json(&b, session_status(srv->session));
	buf_puts(&b, ",\"transitions\":");
	session_history_json(srv->session, &b);
	buf_puts(&b, ",\"gateway\":{\"url\":");
	buf_json_string(&b, conf->gw_url, strlen(conf->gw_url));
	buf_printf(&b, ",\"verify\":\"%s\",\"fingerprint\":",
	    conf->gw_has_pin ? "pin" : conf->gw_ca_file != NULL ? "ca" :
	    "insecure");
	if (f.us.fingerprint[0] != '\0')
		buf_json_string(&b, f.us.fingerprint,
		    strlen(f.us.fingerprint));
	else
		buf_puts(&b, "null");
	buf_printf(&b, "},\"pool\":{\"size\":%u,\"idle\":%u,\"busy\":%u,"
	    "\"handshakes\":%llu,\"resumed\":%llu,\"requests\":%llu,"
	    "\"errors\":%llu},", conf->gw_pool, f.us.idle, f.us.busy,
	    (unsigned long long)f.us.handshakes,
	    (unsigned long long)f.us.resumed,
	    (unsigned long long)f.us.requests,
	    (unsigned long long)f.us.errors);
	buf_printf(&b, "\"rate\":{\"limit\":%u,\"window_ms\":%llu,\"used\":%u,"
	    "\"queued\":%u,\"granted\":%llu,\"waited\":%llu,"
	    "\"rejected\":%llu,\"breaker_s\":%.1f,\"breaker_opened\":%llu},",
	    f.ps.global_n, (unsigned long long)f.ps.global_window_ms,
	    f.ps.global_used, f.ps.queued, (unsigned long long)f.ps.granted,
	    (unsigned long long)f.ps.waited,
	    (unsigned long long)f.ps.rejected, f.breaker_s,
	    (unsigned long long)f.ps.breaker_opened);
	builtin_stream_json(srv, &b);
	buf_printf(&b, "\"cache\":{\"entries\":%zu},\"clients\":%u,"
	    "\"version\":\"%s\",\"pid\":%ld,\"uptime_s\":%llu}",
	    cache_count(srv->cache), srv->nclients, BROKERD_VERSION,
	    (long)getpid(),
	    (unsigned long long)((f.now - srv->started_ms) / 1000));
	exchange_answer(x, 200, "application/json", b.data, b.len, NULL);
	buf_free(&b);
}

/* Live heap, what a soak compares at its start and end. */
static uint64_t
builtin_heap_bytes(void)
{
	struct mallinfo2	 mi;

	mi = mallinfo2();
	return ((uint64_t)mi.uordblks + mi.hblkhd);
}

static void
builtin_metrics(struct exchange *x)
{
	struct server		*srv = x->c->srv;
	struct metrics_gauges	 g;
	struct figures		 f;
	struct buf		 b;

	builtin_figures(srv, &f);
	memset(&g, 0, sizeof(g));
	g.state = status_state_name(session_status(srv->session)->state);
	g.queue_len = f.ps.queued;
	g.pool_idle = f.us.idle;
	g.pool_busy = f.us.busy;
	g.connections = srv->nclients;
	g.connections_tcp = srv->nclients_tcp;
	g.breaker_s = f.breaker_s;
	g.global_used = f.ps.global_used;
	g.global_n = f.ps.global_n;
	g.heap_bytes = builtin_heap_bytes();
	buf_init(&b);
	if (metrics_render(srv->metrics, &g, &b) == -1 ||
	    (builtin_stream_metrics(srv, &b), b.len == 0))
		exchange_error(x, 500, "internal_error", "metrics", NULL);
	else
		exchange_answer(x, 200, "text/plain; version=0.0.4; "
		    "charset=utf-8", b.data, b.len, NULL);
	buf_free(&b);
}

static void
builtin_trading_failed(struct exchange *x, const char *halt, int halting)
{
	char	 msg[512];
	int	 saved = errno;

	log_error("trading %s by %s failed: %s: %s", halting ? "halt" :
	    "resume", x->who, halt, strerror(saved));
	snprintf(msg, sizeof(msg), "trading.halt_file cannot be %s (%s); "
	    "trading is %s", halting ? "created" : "removed", strerror(saved),
	    halting ? "NOT halted" : "still halted");
	exchange_error(x, 500, "internal_error", msg, NULL);
}

/* The kill switch: {"enabled": false} halts every trade-scope request. */
static void
builtin_trading(struct exchange *x)
{
	const char	*halt = x->c->srv->conf->halt_file;
	json_t		*j, *v;
	json_error_t	 je;
	struct stat	 st;
	int		 fd, halting;

	if (halt == NULL) {
		exchange_error(x, 404, "no_route", "trading.halt_file is not "
		    "configured", NULL);
		return;
	}
	if (strcmp(x->req->method, "POST") == 0) {
		j = json_loadb(x->req->body.data, x->req->body.len, 0, &je);
		v = j != NULL ? json_object_get(j, "enabled") : NULL;
		if (v == NULL || !json_is_boolean(v)) {
			json_decref(j);
			exchange_error(x, 400, "bad_request", "expected "
			    "{\"enabled\": true|false}", NULL);
			return;
		}
		halting = json_is_false(v);
		json_decref(j);
		if (halting && (fd = open(halt, O_WRONLY | O_CREAT |
		    O_CLOEXEC, 0644)) != -1) {
			close(fd);
			log_warn("trading halted by %s (%s)", x->who, halt);
		} else if (!halting && (fd = unlink(halt)) == 0)
			log_warn("trading resumed by %s", x->who);
		else if (!halting && errno == ENOENT)
			fd = 0;
		/* A switch that did not move must not answer 200. */
		if (fd == -1) {
			builtin_trading_failed(x, halt, halting);
			return;
		}
	}
	if (stat(halt, &st) == 0)
		exchange_json(x, 200, "{\"trading\":\"halted\","
		    "\"enabled\":false}", NULL);
	else
		exchange_json(x, 200, "{\"trading\":\"enabled\","
		    "\"enabled\":true}", NULL);
}

static void
builtin_health(struct exchange *x)
{
	exchange_json(x, 200, "{\"status\":\"ok\",\"bridge\":\"running\"}",
	    NULL);
}

static void
builtin_reauthenticate(struct exchange *x)
{
	switch (session_reauthenticate(x->c->srv->session)) {
	case 0:
		exchange_json(x, 202, "{\"status\":\"requested\"}", NULL);
		break;
	case 1:
		exchange_json(x, 202, "{\"status\":\"in_progress\"}", NULL);
		break;
	default:
		exchange_rate_limited(x, 1000, "a brokerage session was asked "
		    "for less than a second ago");
		break;
	}
}

/* brokerd's own paths; scope 0 needs no key. */
static const struct builtin {
	const char	*path;
	const char	*method;
	unsigned	 scope;
	void		(*fn)(struct exchange *);
} builtins[] = {
	{ "/health", "GET", 0, builtin_health },
	{ "/gateway/auth-status", "GET", 0, builtin_auth_status },
	{ "/gateway/status", "GET", SCOPE_READ, builtin_gateway_status },
	{ "/metrics", "GET", SCOPE_READ, builtin_metrics },
	{ "/gateway/reauthenticate", "POST", SCOPE_TRADE,
	    builtin_reauthenticate },
	{ "/gateway/trading", "GET", SCOPE_READ, builtin_trading },
	{ "/gateway/trading", "POST", SCOPE_ADMIN, builtin_trading },
};

/* A key or peer with the scope the path needs; -1 after answering. */
static int
builtin_admit(struct exchange *x, unsigned need)
{
	struct admit_verdict	 v;

	if (admit_who_memo(x->c->srv->conf, &x->c->peer, &x->c->memo, x->req,
	    &v) == 0)
		admit_scope(&v, need);
	return (exchange_verdict(x, &v));
}

int
builtin_answer(struct exchange *x, const char *path)
{
	const struct builtin	*b, *found = NULL;
	struct admit_verdict	 v;
	struct buf		 allow;
	size_t			 i;

	buf_init(&allow);
	for (i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
		b = &builtins[i];
		/* Most requests are for routes: their second byte differs. */
		if (path[0] == '\0' || path[1] != b->path[1] ||
		    strcmp(path, b->path) != 0)
			continue;
		x->route = b->path;
		buf_printf(&allow, "%s%s", allow.len ? ", " : "", b->method);
		if (strcmp(x->req->method, b->method) == 0 ||
		    (strcmp(x->req->method, "HEAD") == 0 &&
		    strcmp(b->method, "GET") == 0))
			found = b;
	}
	if (found == NULL && allow.len > 0) {
		memset(&v, 0, sizeof(v));
		admit_allow(&v, allow.data);
		exchange_verdict(x, &v);
	}
	buf_free(&allow);
	if (found == NULL)
		return (x->done);
	if (found->scope == 0 || builtin_admit(x, found->scope) == 0)
		found->fn(x);
	return (1);
}
