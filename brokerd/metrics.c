/*
 * Counters and the latency histogram, rendered as Prometheus text format
 * 0.0.4 for GET /metrics.  Pure: the caller passes the gauges it reads
 * from the other modules at render time.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brokerd.h"

/*
 * Series are (route, method, status): routes come from the configuration
 * and methods from http-parser's list, so the set is small; the cap only
 * guards memory against a surprise.
 */
#define METRICS_MAX_SERIES	4096

static const double metrics_le[] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};
#define METRICS_NBUCKETS	(sizeof(metrics_le) / sizeof(metrics_le[0]))

static const char *const metrics_states[] = {
	"starting", "gateway_down", "unauthenticated", "authenticated",
	"competing", "stopped"
};

struct metrics_series {
	char		*route;
	char		 method[16];
	int		 status;
	uint64_t	 count;
};

struct metrics {
	struct metrics_series *series;
	size_t		 nseries;
	size_t		 series_cap;
	uint64_t	 dropped;	/* requests beyond the series cap */
	uint64_t	 bucket[METRICS_NBUCKETS + 1];	/* last: +Inf only */
	uint64_t	 lat_count;
	double		 lat_sum;
	uint64_t	 up_requests;
	uint64_t	 up_errors;
	uint64_t	 up_handshakes;
	uint64_t	 up_timeouts;
	uint64_t	 up_429;
	uint64_t	 cache_hits;
	uint64_t	 cache_misses;
	uint64_t	 refused[3];	/* by metrics_refused limit */
	uint64_t	 send_timeouts;	/* clients that took no byte */
};

struct metrics *
metrics_new(void)
{
	return (calloc(1, sizeof(struct metrics)));
}

void
metrics_free(struct metrics *m)
{
	size_t	 i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nseries; i++)
		free(m->series[i].route);
	free(m->series);
	free(m);
}

static struct metrics_series *
metrics_series_get(struct metrics *m, const char *route, const char *method,
    int status)
{
	struct metrics_series *s;
	size_t		 i, cap;
	int		 n;

	for (i = 0; i < m->nseries; i++) {
		s = &m->series[i];
		/* first bytes first: most series differ there */
		if (s->status == status && s->method[0] == method[0] &&
		    s->route[0] == route[0] && strcmp(s->method, method) == 0 &&
		    strcmp(s->route, route) == 0)
			return (s);
	}
	if (m->nseries >= METRICS_MAX_SERIES)
		return (NULL);
	if (m->nseries == m->series_cap) {
		cap = m->series_cap ? m->series_cap * 2 : 16;
		if ((s = reallocarray(m->series, cap, sizeof(*s))) == NULL)
			return (NULL);
		m->series = s;
		m->series_cap = cap;
	}
	s = &m->series[m->nseries];
	memset(s, 0, sizeof(*s));
	n = snprintf(s->method, sizeof(s->method), "%s", method);
	if (n < 0 || (size_t)n >= sizeof(s->method))
		return (NULL);
	if ((s->route = strdup(route)) == NULL)
		return (NULL);
	s->status = status;
	m->nseries++;
	return (s);
}

/* route: the policy route's prefix, or NULL / "none" when none matched. */
void
metrics_request(struct metrics *m, const char *route, const char *method,
    int status, double seconds)
{
	struct metrics_series *s;
	size_t		 i;

	if (route == NULL)
		route = "none";
	if (method == NULL)
		method = "";
	if ((s = metrics_series_get(m, route, method, status)) != NULL)
		s->count++;
	else
		m->dropped++;
	if (!isfinite(seconds) || seconds < 0)
		seconds = 0;
	for (i = 0; i < METRICS_NBUCKETS; i++)
		if (seconds <= metrics_le[i])
			break;
	m->bucket[i]++;
	m->lat_count++;
	m->lat_sum += seconds;
}

void
metrics_upstream(struct metrics *m, const char *what)
{
	if (strcmp(what, "requests") == 0)
		m->up_requests++;
	else if (strcmp(what, "errors") == 0)
		m->up_errors++;
	else if (strcmp(what, "handshakes") == 0)
		m->up_handshakes++;
	else if (strcmp(what, "timeouts") == 0)
		m->up_timeouts++;
	else if (strcmp(what, "429") == 0)
		m->up_429++;
}

void
metrics_refused(struct metrics *m, int limit)
{
	if (limit >= 0 && limit < 3)
		m->refused[limit]++;
}

void
metrics_send_timeout(struct metrics *m)
{
	m->send_timeouts++;
}

void
metrics_cache(struct metrics *m, int hit)
{
	if (hit)
		m->cache_hits++;
	else
		m->cache_misses++;
}

/* A label value: backslash, double quote and newline escaped. */
static int
metrics_label(struct buf *b, const char *s)
{
	const char	*p;
	int		 rc = 0;

	for (p = s; *p != '\0' && rc == 0; p++) {
		if (*p == '\\')
			rc = buf_append(b, "\\\\", 2);
		else if (*p == '"')
			rc = buf_append(b, "\\\"", 2);
		else if (*p == '\n')
			rc = buf_append(b, "\\n", 2);
		else
			rc = buf_append(b, p, 1);
	}
	return (rc);
}

static int
metrics_family(struct buf *b, const char *name, const char *type,
    const char *help)
{
	return (buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type));
}

static int
metrics_u64(struct buf *b, const char *name, const char *type,
    const char *help, uint64_t v)
{
	if (metrics_family(b, name, type, help) == -1)
		return (-1);
	return (buf_printf(b, "%s %llu\n", name, (unsigned long long)v));
}

static int
metrics_requests(const struct metrics *m, struct buf *b)
{
	const struct metrics_series *s;
	size_t		 i;

	if (metrics_family(b, "brokerd_requests_total", "counter",
	    "Requests answered, by route prefix, method and status.") == -1)
		return (-1);
	for (i = 0; i < m->nseries; i++) {
		s = &m->series[i];
		if (buf_puts(b, "brokerd_requests_total{route=\"") == -1 ||
		    metrics_label(b, s->route) == -1 ||
		    buf_puts(b, "\",method=\"") == -1 ||
		    metrics_label(b, s->method) == -1 ||
		    buf_printf(b, "\",status=\"%d\"} %llu\n", s->status,
		    (unsigned long long)s->count) == -1)
			return (-1);
	}
	return (metrics_u64(b, "brokerd_requests_unlabelled_total", "counter",
	    "Requests counted beyond the cap on label sets.", m->dropped));
}

static int
metrics_histogram(const struct metrics *m, struct buf *b)
{
	const char	*name = "brokerd_request_duration_seconds";
	uint64_t	 cum = 0;
	size_t		 i;

	if (metrics_family(b, name, "histogram",
	    "Time from a complete request to its answer.") == -1)
		return (-1);
	for (i = 0; i < METRICS_NBUCKETS; i++) {
		cum += m->bucket[i];
		if (buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name,
		    metrics_le[i], (unsigned long long)cum) == -1)
			return (-1);
	}
	cum += m->bucket[METRICS_NBUCKETS];
	if (buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
	    (unsigned long long)cum) == -1 ||
	    buf_printf(b, "%s_sum %.9g\n", name, m->lat_sum) == -1 ||
	    buf_printf(b, "%s_count %llu\n", name,
	    (unsigned long long)m->lat_count) == -1)
		return (-1);
	return (0);
}

static int
metrics_gauges(const struct metrics_gauges *g, struct buf *b)
{
	size_t	 i;
	int	 cur;

	if (metrics_family(b, "brokerd_state", "gauge",
	    "The Gateway session state: 1 for the current one.") == -1)
		return (-1);
	for (i = 0; i < sizeof(metrics_states) / sizeof(metrics_states[0]);
	    i++) {
		cur = g->state != NULL &&
		    strcmp(g->state, metrics_states[i]) == 0;
		if (buf_printf(b, "brokerd_state{state=\"%s\"} %d\n",
		    metrics_states[i], cur) == -1)
			return (-1);
	}
	if (metrics_u64(b, "brokerd_queue_length", "gauge",
	    "Requests waiting for a pacing slot.", g->queue_len) == -1)
		return (-1);
	if (metrics_family(b, "brokerd_pool_connections", "gauge",
	    "TLS connections to the Gateway, idle or busy.") == -1 ||
	    buf_printf(b, "brokerd_pool_connections{state=\"idle\"} %u\n"
	    "brokerd_pool_connections{state=\"busy\"} %u\n",
	    g->pool_idle, g->pool_busy) == -1)
		return (-1);
	if (metrics_u64(b, "brokerd_client_connections", "gauge",
	    "Open client connections.", g->connections) == -1)
		return (-1);
	if (metrics_u64(b, "brokerd_client_connections_tcp", "gauge",
	    "Open client connections on the TCP listener.",
	    g->connections_tcp) == -1)
		return (-1);
	if (metrics_family(b, "brokerd_breaker_seconds", "gauge",
	    "Seconds left in the pause an upstream 429 opened.") == -1 ||
	    buf_printf(b, "brokerd_breaker_seconds %.3f\n",
	    isfinite(g->breaker_s) && g->breaker_s > 0 ? g->breaker_s : 0.0)
	    == -1)
		return (-1);
	if (metrics_u64(b, "brokerd_gateway_rate_used", "gauge",
	    "Gateway requests in the current global window.",
	    g->global_used) == -1)
		return (-1);
	if (metrics_u64(b, "brokerd_heap_bytes", "gauge",
	    "Heap bytes in use (malloc), for leak checks.",
	    g->heap_bytes) == -1)
		return (-1);
	return (metrics_u64(b, "brokerd_gateway_rate_limit", "gauge",
	    "Gateway requests allowed per global window (0: off).",
	    g->global_n));
}

/* The whole page; g may be NULL (no gauges). */
int
metrics_render(const struct metrics *m, const struct metrics_gauges *g,
    struct buf *b)
{
	if (metrics_requests(m, b) == -1 ||
	    metrics_histogram(m, b) == -1 ||
	    metrics_u64(b, "brokerd_upstream_requests_total", "counter",
	    "Requests sent to the Gateway.", m->up_requests) == -1 ||
	    metrics_u64(b, "brokerd_upstream_errors_total", "counter",
	    "Gateway requests that failed (unreachable, bad answer).",
	    m->up_errors) == -1 ||
	    metrics_u64(b, "brokerd_upstream_handshakes_total", "counter",
	    "TLS handshakes with the Gateway.", m->up_handshakes) == -1 ||
	    metrics_u64(b, "brokerd_upstream_timeouts_total", "counter",
	    "Gateway requests without a complete answer in time.",
	    m->up_timeouts) == -1 ||
	    metrics_u64(b, "brokerd_upstream_rate_limited_total", "counter",
	    "Gateway answers with status 429.", m->up_429) == -1 ||
	    metrics_u64(b, "brokerd_cache_hits_total", "counter",
	    "GETs answered from the cache or a shared request in flight.",
	    m->cache_hits) == -1 ||
	    metrics_u64(b, "brokerd_cache_misses_total", "counter",
	    "Cacheable GETs that went to the Gateway.", m->cache_misses) ==
	    -1 ||
	    metrics_u64(b, "brokerd_client_send_timeouts_total", "counter",
	    "Clients closed for taking no byte of an answer in "
	    "limits.send_timeout_ms.", m->send_timeouts) == -1)
		return (-1);
	if (metrics_family(b, "brokerd_connections_refused_total", "counter",
	    "Connections answered 503: over a limit, or out of descriptors.") ==
	    -1 || buf_printf(b, "brokerd_connections_refused_total{limit="
	    "\"max_connections\"} %llu\n"
	    "brokerd_connections_refused_total{limit=\"max_tcp_connections\"} "
	    "%llu\nbrokerd_connections_refused_total{limit=\"descriptors\"} "
	    "%llu\n", (unsigned long long)m->refused[0],
	    (unsigned long long)m->refused[1],
	    (unsigned long long)m->refused[2]) == -1)
		return (-1);
	if (g != NULL && metrics_gauges(g, b) == -1)
		return (-1);
	return (0);
}
