/*
 * The Gateway connection pool: kept-alive connections used one request at
 * a time (each one's state machine in conn.c), the cookie jar replayed
 * (jar.c), and exact errors.  Every request, the session watcher's too,
 * passes pace.c before a connection is handed out, and is written at most
 * once.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "brokerd.h"
#include "tls.h"
#include "upstream_int.h"

/* A pace object and the requests still queued in or granted by it. */
struct pace_slot {
	struct pace		*pace;
	unsigned		 users;
	struct pace_slot	*next;
};

/* ------------------------------------------------------------ cookie jar */

void
upstream_jar_clear(struct upstream *up)
{
	jar_free(&up->jar);
}

int
upstream_cookies(const struct upstream *up, struct buf *b)
{
	return (jar_format(&up->jar, b));
}

struct tls *
upstream_tls(const struct upstream *up)
{
	return (up->tls);
}

/* ------------------------------------------------------ request format */

/* The request as http_write.c sees it; -1 when method has no NUL. */
static int
req_head(const struct upstream_req *req, struct http_out_request *out)
{
	if (memchr(req->method, '\0', sizeof(req->method)) == NULL)
		return (-1);
	out->method = req->method;
	out->target = req->target.data != NULL ? req->target.data : "";
	out->target_len = req->target.len;
	out->accept = req->accept;
	out->content_type = req->content_type;
	out->body = req->body.data;
	out->body_len = req->body.len;
	return (0);
}

/* Nothing the caller put in may bend the request head. */
static int
req_valid(const struct upstream_req *req)
{
	struct http_out_request	 out;

	return (req_head(req, &out) == 0 &&
	    http_write_request_check(&out) == 0);
}

static int
req_has_body(const char *m)
{
	if (m[0] == 'G' || m[0] == 'H')		/* GET, HEAD: the usual */
		return (0);
	return (strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
	    strcmp(m, "PATCH") == 0 || strcmp(m, "DELETE") == 0);
}

static int
req_puts(struct buf *out, const char *s)
{
	return (buf_append(out, s, strlen(s)));
}

#define REQ_VERSION_HOST	" HTTP/1.1\r\nHost: "
#define REQ_UA_ACCEPT		"\r\nUser-Agent: brokerd/" BROKERD_VERSION \
	"\r\nAccept: "

/* n bytes at *p, which the caller reserved; *p moves past them. */
static void
req_put(char **p, const char *s, size_t n)
{
	memcpy(*p, s, n);
	*p += n;
}

/*
 * The head of http_write_request (the same fields in the same order,
 * under http_write.c's rules: http_write_request_check, http_field_ok)
 * built in one pass: the lengths first, one reserve, then the pieces
 * copied in; no printf on the hot path.  checked: the request already
 * passed http_write_request_check (upstream_submit's req_valid), so it is
 * not read twice.  The jar's cookies, when jar is given, are written in
 * place and checked there.
 */
static int
req_format(struct buf *out, const struct upstream_req *req,
    const char *host, const char *port, const struct jar *jar,
    const char *cookie, int checked)
{
	struct http_out_request	 r;
	const char		*accept;
	size_t			 start = out->len, ck, mlen, hlen, plen, alen;
	size_t			 clen;
	char			*p;
	int			 v6;

	if (req_head(req, &r) == -1 ||
	    (!checked && http_write_request_check(&r) == -1))
		return (-1);
	hlen = strlen(host);
	plen = strlen(port);
	if (!http_field_ok(host, hlen) || !http_field_ok(port, plen))
		return (-1);
	v6 = memchr(host, ':', hlen) != NULL;
	mlen = strlen(r.method);
	accept = r.accept != NULL && r.accept[0] != '\0' ? r.accept : "*/*";
	alen = strlen(accept);
	clen = r.content_type != NULL ? strlen(r.content_type) : 0;
	if (buf_reserve(out, mlen + r.target_len + hlen + plen + alen + clen +
	    sizeof(REQ_VERSION_HOST) + sizeof(REQ_UA_ACCEPT) + 64 +
	    r.body_len) == -1)
		return (-1);
	p = out->data + out->len;
	req_put(&p, r.method, mlen);
	*p++ = ' ';
	req_put(&p, r.target, r.target_len);
	req_put(&p, REQ_VERSION_HOST, sizeof(REQ_VERSION_HOST) - 1);
	if (v6)
		*p++ = '[';
	req_put(&p, host, hlen);
	if (v6)
		*p++ = ']';
	*p++ = ':';
	req_put(&p, port, plen);
	req_put(&p, REQ_UA_ACCEPT, sizeof(REQ_UA_ACCEPT) - 1);
	req_put(&p, accept, alen);
	req_put(&p, "\r\n", 2);
	if (clen > 0) {
		req_put(&p, "Content-Type: ", 14);
		req_put(&p, r.content_type, clen);
		req_put(&p, "\r\n", 2);
	}
	out->len = (size_t)(p - out->data);
	out->data[out->len] = '\0';
	if ((r.body_len > 0 || req_has_body(r.method)) &&
	    (req_puts(out, "Content-Length: ") == -1 ||
	    buf_putu(out, r.body_len) == -1 ||
	    buf_append(out, "\r\n", 2) == -1))
		goto fail;
	if (req_puts(out, "Cookie: ") == -1)
		goto fail;
	ck = out->len;
	if (jar != NULL ? jar_format(jar, out) == -1 : (cookie != NULL &&
	    req_puts(out, cookie) == -1))
		goto fail;
	if (out->len == ck)
		buf_truncate(out, ck - 8);		/* no cookie */
	else if (!http_field_ok(out->data + ck, out->len - ck) ||
	    buf_append(out, "\r\n", 2) == -1)
		goto fail;
	if (req_puts(out, "Connection: keep-alive\r\n\r\n") == -1 ||
	    (r.body_len > 0 && buf_append(out, r.body, r.body_len) == -1))
		goto fail;
	return (0);
fail:
	buf_truncate(out, start);
	return (-1);
}

int
upstream_format_request(struct buf *out, const struct upstream_req *req,
    const char *host, const char *port, const char *cookie)
{
	return (req_format(out, req, host, port, NULL, cookie, 0));
}

/* The request passed req_valid when it was submitted. */
int
upstream_write_request(struct upstream *up, struct buf *out,
    const struct upstream_req *req, const char *host, const char *port)
{
	return (req_format(out, req, host, port, &up->jar, NULL, 1));
}

unsigned
upstream_pool_size(const struct upstream *up)
{
	return (up->conf->gw_pool > 0 ? up->conf->gw_pool : 1);
}

static struct pace_slot *
slot_of(struct upstream *up, const struct pace *p)
{
	struct pace_slot *s;

	for (s = up->paces; s != NULL; s = s->next)
		if (s->pace == p)
			return (s);
	return (NULL);
}

/* Out of every queue: no connection, no deferred error, no grant. */
static void
req_detach(struct upstream_req *req)
{
	req->pace = NULL;
	req->granted = 0;
	req->deferred = 0;
	req->conn = NULL;
	req->next = NULL;
}

/* Give back the request's grant and its hold on the pace object. */
static void
req_release(struct upstream *up, struct upstream_req *req)
{
	struct pace_slot *s;

	if (req->pace != NULL) {
		if (req->granted)
			pace_release(req->pace, &req->ticket, now_ms());
		if ((s = slot_of(up, req->pace)) != NULL && s->users > 0)
			s->users--;
	}
	req_detach(req);
}

/*
 * The single exit of a request: release its grant, forget it, count the
 * error, then call back.  Nothing of it is touched after the callback
 * (which usually frees it).
 */
void
upstream_finish(struct upstream *up, struct upstream_req *req,
    enum upstream_error e, struct http_response *resp)
{
	req_release(up, req);
	switch (e) {
	case UPSTREAM_OK:
	case UPSTREAM_RATE_LIMITED:
	case UPSTREAM_CANCELLED:
		break;
	case UPSTREAM_TIMEOUT:
		up->st.errors++;
		if (up->metrics != NULL)
			metrics_upstream(up->metrics, "timeouts");
		break;
	default:
		up->st.errors++;
		if (up->metrics != NULL)
			metrics_upstream(up->metrics, "errors");
		break;
	}
	if (req->cb != NULL)
		req->cb(req, e, resp, req->arg);
	else if (resp != NULL) {
		http_response_free(resp);
	}
}

/* Queue an error for the kick timer (never inside upstream_submit). */
static void
req_defer(struct upstream *up, struct upstream_req *req,
    enum upstream_error e)
{
	req->deferred = (int)e;
	req->conn = NULL;
	req->next = NULL;
	if (up->dq_tail != NULL)
		up->dq_tail->next = req;
	else
		up->dq_head = req;
	up->dq_tail = req;
	upstream_kick(up);
}

static void
dq_remove(struct upstream *up, struct upstream_req *req)
{
	struct upstream_req *r, *prev = NULL;

	for (r = up->dq_head; r != NULL; prev = r, r = r->next) {
		if (r != req)
			continue;
		if (prev != NULL)
			prev->next = r->next;
		else
			up->dq_head = r->next;
		if (up->dq_tail == r)
			up->dq_tail = prev;
		r->next = NULL;
		return;
	}
}

/*
 * A granted request takes a connection: the newest idle one that is still
 * alive, else one being opened for nobody, else a new one.  No callback.
 */
static void
req_start(struct upstream *up, struct upstream_req *req)
{
	struct conn	*c, *next;

	for (c = up->conns; c != NULL; c = next) {
		next = c->next;
		if (c->state != CONN_IDLE || c->req != NULL ||
		    c->tls != up->tls)
			continue;
		if (!conn_alive(c, req)) {
			log_debug("gateway %s: kept-alive connection closed "
			    "by the peer", c->tls->hostport);
			conn_close(c);
			continue;
		}
		c->req = req;
		req->conn = c;
		if (conn_prepare(c) == -1) {
			conn_fail_later(c, UPSTREAM_UNREACHABLE,
			    "out of memory");
			return;
		}
		/*
		 * Written from the loop (a failure calls back), but without
		 * an epoll_ctl: the read watcher stays as it is, and only a
		 * full socket makes conn_write wait for EV_WRITE.
		 */
		ev_feed_event(up->loop, &c->tio.io, EV_WRITE);
		return;
	}
	for (c = up->conns; c != NULL; c = c->next) {
		if ((c->state == CONN_CONNECTING ||
		    c->state == CONN_HANDSHAKE) && c->req == NULL &&
		    !c->pending && c->tls == up->tls) {
			c->req = req;
			req->conn = c;
			return;
		}
	}
	if (conn_open(up, req) == NULL) {
		snprintf(req->errmsg, sizeof(req->errmsg), "out of memory");
		req_defer(up, req, UPSTREAM_UNREACHABLE);
	}
}

/* Whether a grant could use a connection now: the first one found says. */
static int
pool_free(const struct upstream *up)
{
	const struct conn *c;

	if (up->nconns < upstream_pool_size(up))
		return (1);
	for (c = up->conns; c != NULL; c = c->next)
		if (c->req == NULL && !c->pending && c->state != CONN_BUSY &&
		    c->tls == up->tls)
			return (1);
	return (0);
}

/* ------------------------------------------------------------ dispatch */

void
upstream_kick(struct upstream *up)
{
	if (!ev_is_active(&up->kick)) {
		ev_timer_set(&up->kick, 0., 0.);
		ev_timer_start(up->loop, &up->kick);
	}
}

static void
kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct upstream		*up = w->data;
	struct upstream_req	*req;

	(void)loop;
	(void)revents;
	while ((req = up->dq_head) != NULL) {
		up->dq_head = req->next;
		if (up->dq_head == NULL)
			up->dq_tail = NULL;
		req->next = NULL;
		upstream_finish(up, req, (enum upstream_error)req->deferred,
		    NULL);
	}
	upstream_dispatch(up);
}

/*
 * A request pacing refused.  While the 429 breaker is open the client is
 * told so, and until when: "no slot came free" would send it back at once.
 */
static void
req_refused(struct upstream_req *req, int breaker, uint64_t retry_ms,
    const char *why)
{
	char	 until[32];

	req->retry_after_ms = retry_ms;
	req->paused = breaker;
	if (!breaker) {
		snprintf(req->errmsg, sizeof(req->errmsg), "%s", why);
		return;
	}
	status_time(time(NULL) + (time_t)((retry_ms + 999) / 1000), until,
	    sizeof(until));
	snprintf(req->errmsg, sizeof(req->errmsg), "the Gateway answered 429 "
	    "Too Many Requests: brokerd is pausing client calls until %s "
	    "(%llu s), as IBKR's penalty grows with every call it refuses",
	    until, (unsigned long long)((retry_ms + 999) / 1000));
}

static void
pace_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	upstream_dispatch(w->data);
}

/*
 * Serve the pace queues while connections are free: grants take a
 * connection, expired tickets get 429.  Older pace objects (replaced by a
 * reload) are served until their last request is gone.  One timer wakes
 * the queue when a window opens or a deadline passes.
 */
void
upstream_dispatch(struct upstream *up)
{
	struct pace_slot	*s, **sp;
	struct pace_ticket	*t;
	struct upstream_req	*req;
	uint64_t		 now, next_ms, best;
	int			 expired;

	if (up->dispatching) {
		up->redispatch = 1;
		return;
	}
	up->dispatching = 1;
	do {
		up->redispatch = 0;
		best = 0;
		now = now_ms();
		for (s = up->paces; s != NULL; s = s->next) {
			for (;;) {
				t = pace_poll(s->pace, now, pool_free(up) > 0,
				    &expired, &next_ms);
				if (t == NULL)
					break;
				req = t->owner;
				if (expired) {
					req_refused(req, t->breaker,
					    t->retry_after_ms, "no pacing "
					    "slot within limits.queue_ms");
					upstream_finish(up, req,
					    UPSTREAM_RATE_LIMITED, NULL);
				} else {
					req->granted = 1;
					req_start(up, req);
				}
				now = now_ms();
			}
			if (next_ms > 0 && (best == 0 || next_ms < best))
				best = next_ms;
		}
	} while (up->redispatch);

	/* Retired pace objects nobody uses any more. */
	for (sp = &up->paces->next; (s = *sp) != NULL; ) {
		if (s->users == 0) {
			*sp = s->next;
			pace_free(s->pace);
			free(s);
		} else
			sp = &s->next;
	}
	/*
	 * Re-armed only when it would fire too late: one armed sooner, or
	 * with nothing left to wait for, fires once into a dispatch that
	 * finds the queue as it is, and is armed again only if needed.
	 * Most dispatches then touch no timer.
	 */
	if (best > 0 && (!ev_is_active(&up->pace_timer) ||
	    ev_timer_remaining(up->loop, &up->pace_timer) > best / 1000.0)) {
		ev_timer_stop(up->loop, &up->pace_timer);
		ev_timer_set(&up->pace_timer, best / 1000.0, 0.);
		ev_timer_start(up->loop, &up->pace_timer);
	}
	up->dispatching = 0;
}

/* ------------------------------------------------------------ interface */

/* Zero but the error text's room: its first byte is enough (half of it). */
void
upstream_req_init(struct upstream_req *req)
{
	memset(req, 0, sizeof(*req));
	buf_init(&req->target);
	buf_init(&req->body);
}

void
upstream_req_free(struct upstream_req *req)
{
	buf_free(&req->target);
	buf_free(&req->body);
	free(req->content_type);
	req->content_type = NULL;
	free(req->accept);
	req->accept = NULL;
	config_unref(req->conf);
	req->conf = NULL;
}

void
upstream_submit(struct upstream *up, struct upstream_req *req)
{
	struct pace_slot *s = up->paces;
	uint64_t	 ra = 0, now;
	int		 r;

	req_detach(req);
	req->retried = 0;
	req->retry_after_ms = 0;
	req->paused = 0;
	req->errmsg[0] = '\0';
	memset(&req->ticket, 0, sizeof(req->ticket));
	req->ticket.owner = req;
	req->ticket.policy = req->policy;
	req->ticket.watcher = req->watcher;
	req->ticket.on_send = 1;	/* conn_sent stamps it */
	req->pace = s->pace;
	s->users++;

	if (!req_valid(req)) {
		snprintf(req->errmsg, sizeof(req->errmsg), "the request "
		    "cannot be written to the Gateway (method, target or a "
		    "header field)");
		req_defer(up, req, UPSTREAM_BAD_RESPONSE);
		return;
	}
	now = now_ms();
	if (pool_free(up) > 0)
		r = pace_acquire(s->pace, &req->ticket, now, &ra);
	else
		r = pace_enqueue(s->pace, &req->ticket, now, &ra);
	if (r == -1) {
		req_refused(req, req->ticket.breaker, ra, "pacing queue full");
		req_defer(up, req, UPSTREAM_RATE_LIMITED);
		return;
	}
	if (r == 1) {
		/* An older ticket may go; arm the timer. */
		upstream_kick(up);
		return;
	}
	req->granted = 1;
	req_start(up, req);
}

void
upstream_cancel(struct upstream *up, struct upstream_req *req)
{
	struct conn	*c;

	if (req->pace == NULL)
		return;			/* finished, or never submitted */
	if (req->deferred)
		dq_remove(up, req);
	else if (!req->granted)
		pace_cancel(req->pace, &req->ticket);
	else if ((c = req->conn) != NULL) {
		c->req = NULL;
		req->conn = NULL;
		if (c->pending)
			conn_close(c);
		else if (c->state == CONN_BUSY) {
			/* Not a byte given to mbedTLS yet: as good as idle.
			 * Else the answer is incomplete: never reuse. */
			if (c->writing && !c->write_started)
				conn_park(c);
			else
				conn_close(c);
		}
		/* Connecting: it becomes idle when ready. */
	}
	req_release(up, req);
	upstream_kick(up);
}

void
upstream_resume(struct upstream *up, struct upstream_req *req)
{
	struct conn	*c = req->conn;

	if (c == NULL || !c->paused || c->req != req)
		return;
	c->paused = 0;
	if (c->pending || c->state != CONN_BUSY)
		return;
	tlsio_watch(&c->tio, EV_READ);
	/* mbedTLS may already hold the next bytes: do not wait for the fd. */
	ev_feed_event(up->loop, &c->tio.io, EV_READ);
}

struct pace *
upstream_pace(struct upstream *up)
{
	return (up->paces->pace);
}

void
upstream_stats(const struct upstream *up, struct upstream_stats *st)
{
	const struct conn *c;

	*st = up->st;
	st->idle = 0;
	st->busy = 0;
	for (c = up->conns; c != NULL; c = c->next) {
		if (c->state == CONN_IDLE)
			st->idle++;
		else if (c->req != NULL)
			st->busy++;
	}
}

/* The pace limits conf asks for: at start and on every reload. */
static void
slot_limits(const struct config *conf, struct pace_limits *l)
{
	memset(l, 0, sizeof(*l));
	l->global = conf->gateway_rate;
	l->slack_ms = conf->rate_slack_ms;
	l->queue_ms = conf->queue_ms;
	l->max_queue = conf->max_connections > 0 ? conf->max_connections :
	    1024;
	l->routes = conf->routes;
	l->nroutes = conf->nroutes;
}

/* A pace object for conf's global rate, queue_ms and slack. */
static struct pace_slot *
slot_new(const struct config *conf)
{
	struct pace_slot *s;
	struct pace_limits l;

	slot_limits(conf, &l);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return (NULL);
	if ((s->pace = pace_new(l.global, l.queue_ms, l.max_queue)) == NULL) {
		free(s);
		return (NULL);
	}
	pace_set_slack(s->pace, l.slack_ms);
	return (s);
}

struct upstream *
upstream_new(struct ev_loop *loop, const struct config *conf,
    struct metrics *m, char *err, size_t errlen)
{
	struct upstream	*up;

	if ((up = calloc(1, sizeof(*up))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return (NULL);
	}
	up->loop = loop;
	up->conf = conf;
	up->metrics = m;
	jar_init(&up->jar);
	ev_init(&up->kick, kick_cb);
	up->kick.data = up;
	ev_init(&up->pace_timer, pace_timer_cb);
	up->pace_timer.data = up;
	if (tls_rng_init(&up->rng, "brokerd upstream", err, errlen) == -1 ||
	    (up->tls = tls_new(conf, &up->rng, err, errlen)) == NULL)
		goto fail;
	if ((up->paces = slot_new(conf)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return (up);
fail:
	upstream_free(up);
	return (NULL);
}

void
upstream_free(struct upstream *up)
{
	struct pace_slot	*s, *snext;
	struct upstream_req	*req;

	if (up == NULL)
		return;
	while (up->conns != NULL) {
		if ((req = up->conns->req) != NULL) {
			req->conn = NULL;
			req->pace = NULL;
			up->conns->req = NULL;
		}
		conn_close(up->conns);
	}
	while ((req = up->dq_head) != NULL) {
		up->dq_head = req->next;
		req->next = NULL;
		req->pace = NULL;
	}
	ev_timer_stop(up->loop, &up->kick);
	ev_timer_stop(up->loop, &up->pace_timer);
	for (s = up->paces; s != NULL; s = snext) {
		snext = s->next;
		pace_free(s->pace);
		free(s);
	}
	tls_unref(up->tls);
	jar_free(&up->jar);
	tls_rng_free(&up->rng);
	free(up);
}

/*
 * SIGHUP: new TLS settings only when they changed (then the saved session
 * goes too); the pace object takes the new limits in place, keeping what
 * was sent and its queue (a fresh one would let 2N through one window);
 * idle connections close, busy ones finish and close if their settings
 * are gone.
 */
int
upstream_reconfigure(struct upstream *up, const struct config *conf,
    char *err, size_t errlen)
{
	struct tls	*nt = NULL;
	struct conn	*c, *next;
	struct pace_limits l;

	if (!tls_same(up->tls, conf)) {
		if ((nt = tls_new(conf, &up->rng, err, errlen)) == NULL)
			return (-1);
	} else if (up->tls->mode == TLS_INSECURE)
		log_warn("gateway.tls.insecure is set: the Gateway's "
		    "certificate at %s is NOT verified", up->tls->hostport);
	slot_limits(conf, &l);
	if (pace_update(up->paces->pace, &l) == -1) {
		tls_unref(nt);
		snprintf(err, errlen, "out of memory");
		return (-1);
	}
	if (nt != NULL) {
		/* Connections still under the old settings never resume. */
		tls_forget_session(up->tls);
		tls_unref(up->tls);
		up->tls = nt;
	}
	up->conf = conf;
	for (c = up->conns; c != NULL; c = next) {
		next = c->next;
		if (c->req == NULL && !c->pending &&
		    (c->state == CONN_IDLE || c->tls != up->tls))
			conn_close(c);
	}
	upstream_kick(up);
	return (0);
}
