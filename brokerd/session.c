/*
 * The Gateway session watcher.  It asks the Gateway how its session is
 * (auth/status every check_interval_s, tickle every tickle_interval_s,
 * at once after a forwarded 401 or "no bridge"), keeps it alive, asks for a
 * new brokerage session when the Gateway is connected but not
 * authenticated, and publishes what it learns in the status file, the
 * history file and the log.  Every Gateway call goes through upstream.c
 * with watcher = 1, so pacing counts it and the 429 breaker lets it pass.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>

#include "brokerd.h"

#define SESSION_HISTORY		20	/* transitions kept for /gateway/status */
#define SESSION_REAUTH_GAP_S	30.0	/* automatic ssodh/init at most this often */
#define SESSION_FORCED_GAP_S	1.0	/* POST /gateway/reauthenticate */
#define SESSION_NOW_GAP_S	1.0	/* immediate checks at most this often */
#define SESSION_RECHECK_S	1.0	/* check this long after ssodh/init */

#define PATH_AUTH_STATUS	"/v1/api/iserver/auth/status"
#define PATH_TICKLE		"/v1/api/tickle"
#define PATH_SSODH_INIT		"/v1/api/iserver/auth/ssodh/init"
#define PATH_ISERVER_ACCOUNTS	"/v1/api/iserver/accounts"
#define PATH_PORTFOLIO_ACCOUNTS	"/v1/api/portfolio/accounts"

enum session_kind {
	SK_CHECK = 0,
	SK_TICKLE,
	SK_REAUTH,
	SK_ISERVER_ACCOUNTS,
	SK_PORTFOLIO_ACCOUNTS,
	SK_COUNT
};

static const char *const session_kind_names[SK_COUNT] = {
	"auth/status", "tickle", "ssodh/init", "iserver/accounts",
	"portfolio/accounts"
};

/* One kind of watcher call; at most one of each kind is in flight. */
struct session_call {
	struct upstream_req	 req;
	struct session		*s;
	enum session_kind	 kind;
	int			 inflight;
	int			 used;		/* req was initialised */
	int			 again;		/* bootstrap: send again */
	double			 sent_s;	/* monotonic, when submitted */
};

struct session_event {
	enum gw_state	 from;
	enum gw_state	 to;
	time_t		 at;
	char		 message[sizeof(((struct gw_status *)0)->message)];
};

struct session {
	struct ev_loop		*loop;
	const struct config	*conf;
	struct upstream		*up;
	struct gw_status	 st;
	ev_timer		 check_timer;	/* every check_interval_s */
	ev_timer		 tickle_timer;	/* every tickle_interval_s */
	ev_timer		 soon_timer;	/* one-shot: debounced check */
	ev_timer		 boot_timer;	/* one-shot: bootstrap retry */
	struct session_call	 calls[SK_COUNT];
	double			 last_reauth_s;	/* monotonic; < 0: never */
	double			 last_now_s;	/* last immediate check */
	int			 running;
	int			 write_failed;	/* warned once already */
	int			 odd_status;	/* last non-200 answer, logged */
	struct session_event	 hist[SESSION_HISTORY];
	size_t			 hist_start;
	size_t			 nhist;
	session_feed_cb		 feed;		/* bootstrap answers go here */
	void			*feed_arg;
	session_watch_cb	 watch;		/* state changes go here */
	void			*watch_arg;
	char			 id[64];	/* tickle's "session" */
};

static void	session_check(struct session *, const char *why);
static void	session_bootstrap(struct session *);

/*
 * Copy text into a message[]: cut at a UTF-8 character boundary so that
 * the JSON writers downstream never see half a character.
 */
static void
session_set_message(char *dst, size_t cap, const char *src, size_t len)
{
	size_t	 n = len < cap - 1 ? len : cap - 1;

	if (n < len)
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Our own reason text (upstream errmsg): printable ASCII only. */
static void
session_set_reason(char *dst, size_t cap, const char *src)
{
	size_t	 i;

	for (i = 0; i + 1 < cap && src[i] != '\0'; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = '\0';
}

static int
session_json_flag(json_t *o, const char *key)
{
	json_t	*v = json_object_get(o, key);

	if (json_is_boolean(v))
		return (json_is_true(v));
	if (json_is_integer(v))
		return (json_integer_value(v) != 0);
	return (0);
}

/*
 * Either shape: auth/status itself, or tickle's iserver.authStatus.  An
 * object without "authenticated" is not an answer about the session
 * (e.g. {"error":"no session"}), so it reads as -1 rather than as "logged
 * out": callers decide what an unexpected answer means.
 */
int
session_parse_auth(const char *body, size_t len, struct gw_status *st)
{
	json_t		*root, *o, *is, *msg;
	json_error_t	 err;
	const char	*text = "";
	size_t		 tlen = 0;
	int		 rc = -1;

	if (body == NULL || len == 0)
		return (-1);
	if ((root = json_loadb(body, len, JSON_ALLOW_NUL, &err)) == NULL)
		return (-1);
	if (!json_is_object(root))
		goto done;
	o = root;
	if (json_object_get(root, "authenticated") == NULL) {
		is = json_object_get(root, "iserver");
		if (!json_is_object(is))
			goto done;
		o = json_object_get(is, "authStatus");
		if (!json_is_object(o) ||
		    json_object_get(o, "authenticated") == NULL)
			goto done;
	}
	st->authenticated = session_json_flag(o, "authenticated");
	st->connected = session_json_flag(o, "connected");
	st->competing = session_json_flag(o, "competing");
	msg = json_object_get(o, "message");
	if (json_is_string(msg) && json_string_length(msg) > 0) {
		text = json_string_value(msg);
		tlen = json_string_length(msg);
	} else if (json_is_string(msg = json_object_get(o, "fail"))) {
		text = json_string_value(msg);
		tlen = json_string_length(msg);
	}
	/* jansson strings may hold \u0000: stop there, as C strings do */
	tlen = strnlen(text, tlen);
	session_set_message(st->message, sizeof(st->message), text, tlen);
	rc = 0;
done:
	json_decref(root);
	return (rc);
}

/* IBind's rule: authenticated only when also connected and not competing. */
enum gw_state
session_state_of(const struct gw_status *st)
{
	if (st->competing)
		return (GW_COMPETING);
	if (st->authenticated && st->connected)
		return (GW_AUTHENTICATED);
	return (GW_UNAUTHENTICATED);
}

static void
session_write(struct session *s, int sync_dir)
{
	const char	*path = s->conf->status_file;

	if (path == NULL || *path == '\0')
		return;
	if (status_write(path, &s->st, sync_dir) == -1) {
		if (!s->write_failed)
			log_warn("status file %s: %s", path, strerror(errno));
		else
			log_debug("status file %s: %s", path, strerror(errno));
		s->write_failed = 1;
		return;
	}
	if (s->write_failed)
		log_info("status file %s: written again", path);
	s->write_failed = 0;
}

/* Log, remember, append to history_file: one transition. */
static void
session_record(struct session *s, enum gw_state from)
{
	struct session_event	*e;
	char			 clean[sizeof(s->st.message)];
	size_t			 i;

	for (i = 0; s->st.message[i] != '\0' && i + 1 < sizeof(clean); i++)
		clean[i] = ((unsigned char)s->st.message[i] < 0x20 ||
		    s->st.message[i] == 0x7f) ? ' ' : s->st.message[i];
	clean[i] = '\0';
	if (clean[0] != '\0')
		log_info("gateway session: %s -> %s (%s)",
		    status_state_name(from), status_state_name(s->st.state),
		    clean);
	else
		log_info("gateway session: %s -> %s",
		    status_state_name(from), status_state_name(s->st.state));

	if (s->nhist < SESSION_HISTORY)
		e = &s->hist[(s->hist_start + s->nhist++) % SESSION_HISTORY];
	else {
		e = &s->hist[s->hist_start];
		s->hist_start = (s->hist_start + 1) % SESSION_HISTORY;
	}
	e->from = from;
	e->to = s->st.state;
	e->at = s->st.since;
	memcpy(e->message, s->st.message, sizeof(e->message));

	if (s->conf->history_file != NULL && *s->conf->history_file != '\0' &&
	    status_history(s->conf->history_file, &s->st, from) == -1)
		log_warn("history file %s: %s", s->conf->history_file,
		    strerror(errno));
}

static void
session_call_reset(struct session_call *c)
{
	if (c->used) {
		free(c->req.content_type);
		c->req.content_type = NULL;
		free(c->req.accept);
		c->req.accept = NULL;
		upstream_req_free(&c->req);
	}
	c->used = 0;
}

static void	session_done(struct upstream_req *, enum upstream_error,
		    struct http_response *, void *);

/*
 * A call that outlived every timeout upstream.c applies (queue, connect,
 * answer) lost its callback somewhere: cancel it rather than stop
 * watching, since one stuck check would freeze the status file forever.
 */
static int
session_stuck(struct session *s, struct session_call *c)
{
	const struct config	*conf = s->conf;
	double			 limit_s;

	limit_s = (conf->queue_ms + conf->gw_connect_timeout_ms +
	    conf->gw_timeout_ms) / 1000.0 + 5;
	if (now_s() - c->sent_s < limit_s)
		return (0);
	log_warn("gateway session: %s got no answer in %.0f s; cancelled",
	    session_kind_names[c->kind], limit_s);
	upstream_cancel(s->up, &c->req);
	c->inflight = 0;
	return (1);
}

/* One watcher call of this kind, unless one is already in flight. */
static int
session_submit(struct session *s, enum session_kind kind, const char *method,
    const char *path, const char *body)
{
	struct session_call	*c = &s->calls[kind];
	const struct config	*conf = s->conf;
	int			 n;

	if (!s->running || s->up == NULL)
		return (-1);
	if (c->inflight && !session_stuck(s, c))
		return (-1);
	session_call_reset(c);
	upstream_req_init(&c->req);
	c->used = 1;
	n = snprintf(c->req.method, sizeof(c->req.method), "%s", method);
	if (n < 0 || (size_t)n >= sizeof(c->req.method))
		return (-1);
	if (buf_puts(&c->req.target, path) == -1)
		return (-1);
	if (body != NULL) {
		if (buf_puts(&c->req.body, body) == -1 ||
		    (c->req.content_type = strdup("application/json")) == NULL)
			return (-1);
	}
	c->req.policy = route_policy(conf->routes, conf->nroutes, path,
	    strlen(path));
	c->req.conf = config_ref(conf);
	c->req.watcher = 1;
	c->req.cb = session_done;
	c->req.arg = c;
	c->inflight = 1;
	c->sent_s = now_s();
	upstream_submit(s->up, &c->req);
	return (0);
}

/*
 * POST ssodh/init: at most once per 30 s on its own, and a forced try
 * (POST /gateway/reauthenticate) at most once per second.  compete:true
 * would log out the user's TWS or mobile session: only when configured.
 */
static int
session_reauth_try(struct session *s, int forced)
{
	double	 now = now_s();
	double	 gap = forced ? SESSION_FORCED_GAP_S : SESSION_REAUTH_GAP_S;

	if (s->calls[SK_REAUTH].inflight &&
	    !session_stuck(s, &s->calls[SK_REAUTH]))
		return (1);
	if (s->last_reauth_s >= 0 && now - s->last_reauth_s < gap)
		return (-1);
	if (session_submit(s, SK_REAUTH, "POST", PATH_SSODH_INIT,
	    s->conf->compete ? "{\"publish\":true,\"compete\":true}" :
	    "{\"publish\":true,\"compete\":false}") == -1)
		return (-1);
	s->last_reauth_s = now;
	if (forced)
		log_info("gateway session: asking for a brokerage session "
		    "(ssodh/init%s)", s->conf->compete ? ", compete" : "");
	else
		log_debug("gateway session: asking for a brokerage session "
		    "(ssodh/init%s)", s->conf->compete ? ", compete" : "");
	return (0);
}

/* A check's outcome: the new status; a transition when the state moved. */
static void
session_apply(struct session *s, struct gw_status *nst)
{
	enum gw_state	 from = s->st.state;
	time_t		 now = time(NULL);
	int		 changed;

	nst->checked = now;
	nst->pid = getpid();
	nst->check_interval_s = s->conf->check_interval_s;
	if (nst->state != GW_DOWN)
		nst->cert_error = 0;
	changed = nst->state != from;
	if (changed) {
		nst->since = now;
		nst->seq = s->st.seq + 1;
	}
	s->st = *nst;
	if (changed)
		session_record(s, from);
	session_write(s, changed);
	if (changed && s->watch != NULL)
		s->watch(s->watch_arg, from, s->st.state);

	/* the Gateway refuses orders and portfolio calls before these */
	if (changed && s->st.state == GW_AUTHENTICATED)
		session_bootstrap(s);
	if (s->st.connected && !s->st.authenticated && s->conf->reauthenticate)
		session_reauth_try(s, 0);
}

/*
 * A check answered, but with no word about the session (a Gateway
 * restarting answers 500/503): the state stays, yet it was a check, so
 * BROKERD_CHECKED moves and readers do not call brokerd stale.
 */
static void
session_touch(struct session *s)
{
	s->st.checked = time(NULL);
	s->st.pid = getpid();
	s->st.check_interval_s = s->conf->check_interval_s;
	session_write(s, 0);
}

static const char *
session_error_name(enum upstream_error e)
{
	switch (e) {
	case UPSTREAM_UNREACHABLE:
		return ("gateway unreachable");
	case UPSTREAM_BAD_RESPONSE:
		return ("bad response from the gateway");
	case UPSTREAM_TOO_LARGE:
		return ("response too large");
	case UPSTREAM_TIMEOUT:
		return ("gateway timeout");
	case UPSTREAM_OUTCOME_UNKNOWN:
		return ("connection lost");
	case UPSTREAM_RATE_LIMITED:
		return ("rate limited");
	case UPSTREAM_CERTIFICATE:
		return ("certificate refused");
	case UPSTREAM_CANCELLED:
		return ("cancelled");
	default:
		return ("error");
	}
}

static int
session_body_has(const struct http_response *resp, const char *needle)
{
	return (resp->body.data != NULL &&
	    memmem(resp->body.data, resp->body.len, needle,
	    strlen(needle)) != NULL);
}

/*
 * The streaming socket authenticates with {"session":"<id>"} from the
 * last tickle answer (IBKR.md "WebSocket"); ids are short hex, so
 * anything longer or odd is not kept.
 */
static void
session_keep_id(struct session *s, const struct http_response *resp)
{
	json_t		*root, *v;
	json_error_t	 err;
	const char	*id;
	size_t		 i, n;

	if (resp->body.data == NULL || (root = json_loadb(resp->body.data,
	    resp->body.len, 0, &err)) == NULL)
		return;
	v = json_object_get(root, "session");
	if (json_is_string(v)) {
		id = json_string_value(v);
		n = json_string_length(v);
		for (i = 0; i < n; i++)
			if (!((id[i] >= '0' && id[i] <= '9') ||
			    (id[i] >= 'a' && id[i] <= 'z') ||
			    (id[i] >= 'A' && id[i] <= 'Z') || id[i] == '-'))
				break;
		if (i == n && n > 0 && n < sizeof(s->id))
			memcpy(s->id, id, n + 1);
	}
	json_decref(root);
}

/* An auth/status or tickle answer (or failure). */
static void
session_probe_done(struct session *s, struct session_call *c,
    enum upstream_error err, const struct http_response *resp)
{
	struct gw_status	 nst = s->st;
	const char		*what = session_kind_names[c->kind];

	if (err == UPSTREAM_RATE_LIMITED) {
		log_debug("gateway session: %s not sent: rate limited", what);
		return;
	}
	if (err != UPSTREAM_OK) {
		nst.state = GW_DOWN;
		nst.authenticated = nst.connected = nst.competing = 0;
		nst.cert_error = err == UPSTREAM_CERTIFICATE;
		if (c->req.errmsg[0] != '\0')
			session_set_reason(nst.message, sizeof(nst.message),
			    c->req.errmsg);
		else
			session_set_reason(nst.message, sizeof(nst.message),
			    session_error_name(err));
		session_apply(s, &nst);
		return;
	}
	if (resp->status == 401 || (resp->status == 200 &&
	    session_body_has(resp, "no session") &&
	    session_parse_auth(resp->body.data, resp->body.len, &nst) == -1)) {
		nst.state = GW_UNAUTHENTICATED;
		nst.authenticated = nst.connected = nst.competing = 0;
		session_set_reason(nst.message, sizeof(nst.message),
		    "no session: log in to the Gateway");
		upstream_jar_clear(s->up);
		session_apply(s, &nst);
		return;
	}
	if (resp->status != 200) {
		/* a Gateway restarting answers 500/503 for a while: once */
		if (resp->status != s->odd_status)
			log_info("gateway session: %s answered HTTP %d; "
			    "state kept", what, resp->status);
		else
			log_debug("gateway session: %s answered HTTP %d; "
			    "state kept", what, resp->status);
		s->odd_status = resp->status;
		session_touch(s);
		return;
	}
	s->odd_status = 0;
	if (c->kind == SK_TICKLE)
		session_keep_id(s, resp);
	if (session_parse_auth(resp->body.data, resp->body.len, &nst) == -1) {
		log_debug("gateway session: %s answer holds no auth status",
		    what);
		session_touch(s);
		return;
	}
	nst.state = session_state_of(&nst);
	session_apply(s, &nst);
}

static void
session_soon(struct session *s, double after_s)
{
	ev_timer_stop(s->loop, &s->soon_timer);
	ev_timer_set(&s->soon_timer, after_s, 0.);
	ev_timer_start(s->loop, &s->soon_timer);
}

static void
session_done(struct upstream_req *req, enum upstream_error err,
    struct http_response *resp, void *arg)
{
	struct session_call	*c = arg;
	struct session		*s = c->s;

	(void)req;
	c->inflight = 0;
	/* upstream.c is done with its policy: the configuration may go. */
	config_unref(c->req.conf);
	c->req.conf = NULL;
	if (err == UPSTREAM_CANCELLED || !s->running)
		goto done;
	switch (c->kind) {
	case SK_CHECK:
	case SK_TICKLE:
		session_probe_done(s, c, err, resp);
		break;
	case SK_REAUTH:
		if (err != UPSTREAM_OK)
			log_info("gateway session: ssodh/init failed: %s",
			    c->req.errmsg[0] != '\0' ? c->req.errmsg :
			    session_error_name(err));
		else if (resp->status != 200)
			log_info("gateway session: ssodh/init answered "
			    "HTTP %d", resp->status);
		/* the brokerage session takes a moment to come up */
		session_soon(s, SESSION_RECHECK_S);
		break;
	case SK_ISERVER_ACCOUNTS:
	case SK_PORTFOLIO_ACCOUNTS:
		if (err == UPSTREAM_RATE_LIMITED) {
			/* portfolio/accounts is 1/5s: the session needs it */
			c->again = 1;
			if (!ev_is_active(&s->boot_timer)) {
				ev_timer_set(&s->boot_timer,
				    c->req.retry_after_ms > 1000 ?
				    c->req.retry_after_ms / 1000.0 : 1.0, 0.);
				ev_timer_start(s->loop, &s->boot_timer);
			}
			log_debug("gateway session: %s rate limited; later",
			    session_kind_names[c->kind]);
		} else if (err != UPSTREAM_OK)
			log_info("gateway session: %s failed: %s",
			    session_kind_names[c->kind],
			    session_error_name(err));
		else {
			log_debug("gateway session: %s answered HTTP %d",
			    session_kind_names[c->kind], resp->status);
			/* Clients asking next get this copy, not a 429. */
			if (resp->status == 200 && s->feed != NULL)
				s->feed(s->feed_arg, c->req.target.data, resp);
		}
		break;
	default:
		break;
	}
done:
	http_response_free(resp);	/* frees the struct too (http.c) */
}

void
session_set_feed(struct session *s, session_feed_cb fn, void *arg)
{
	s->feed = fn;
	s->feed_arg = arg;
}

void
session_set_watch(struct session *s, session_watch_cb fn, void *arg)
{
	s->watch = fn;
	s->watch_arg = arg;
}

const char *
session_id(const struct session *s)
{
	return (s->id);
}

/*
 * An sts message on the streaming socket: IBKR announces a lost
 * authentication there before a check would see it, so the state moves
 * at once; a return is not announced reliably, so it is only checked.
 */
void
session_sts(struct session *s, int authenticated)
{
	struct gw_status	 nst = s->st;

	if (!s->running)
		return;
	if (authenticated == 0 && s->st.state == GW_AUTHENTICATED) {
		nst.state = GW_UNAUTHENTICATED;
		nst.authenticated = 0;
		session_set_reason(nst.message, sizeof(nst.message),
		    "streaming socket: authentication lost");
		session_apply(s, &nst);
		session_check_now(s);
	} else if (authenticated == 1 && s->st.state != GW_AUTHENTICATED)
		session_check_now(s);
}

static void
session_check(struct session *s, const char *why)
{
	if (session_submit(s, SK_CHECK, "GET", PATH_AUTH_STATUS, NULL) == 0)
		log_debug("gateway session: check (%s)", why);
}

static void
session_check_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	session_check(w->data, "interval");
}

/* The streaming socket needs the tickle's id before it opens. */
void
session_tickle_now(struct session *s)
{
	if (session_submit(s, SK_TICKLE, "POST", PATH_TICKLE, NULL) == 0)
		log_debug("gateway session: tickle (stream)");
}

static void
session_tickle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session	*s = w->data;

	(void)loop;
	(void)revents;
	if (session_submit(s, SK_TICKLE, "POST", PATH_TICKLE, NULL) == 0)
		log_debug("gateway session: tickle");
}

static void
session_soon_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session	*s = w->data;

	(void)loop;
	(void)revents;
	s->last_now_s = now_s();
	session_check(s, "soon");
}

static void
session_bootstrap(struct session *s)
{
	session_submit(s, SK_ISERVER_ACCOUNTS, "GET", PATH_ISERVER_ACCOUNTS,
	    NULL);
	session_submit(s, SK_PORTFOLIO_ACCOUNTS, "GET",
	    PATH_PORTFOLIO_ACCOUNTS, NULL);
}

/* Bootstrap calls the pacing refused, while the session still stands. */
static void
session_boot_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct session	*s = w->data;
	int		 k;

	(void)loop;
	(void)revents;
	for (k = SK_ISERVER_ACCOUNTS; k <= SK_PORTFOLIO_ACCOUNTS; k++) {
		if (!s->calls[k].again)
			continue;
		s->calls[k].again = 0;
		if (s->st.state == GW_AUTHENTICATED)
			session_submit(s, (enum session_kind)k, "GET",
			    k == SK_ISERVER_ACCOUNTS ? PATH_ISERVER_ACCOUNTS :
			    PATH_PORTFOLIO_ACCOUNTS, NULL);
	}
}

struct session *
session_new(struct ev_loop *loop, const struct config *conf,
    struct upstream *up)
{
	struct session	*s;
	int		 i;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return (NULL);
	s->loop = loop;
	s->conf = conf;
	s->up = up;
	s->last_reauth_s = -1;
	s->last_now_s = -1e9;
	s->st.state = GW_STARTING;
	s->st.pid = getpid();
	s->st.check_interval_s = conf->check_interval_s;
	s->st.since = 0;		/* brokerd-status(5): empty until a check */
	for (i = 0; i < SK_COUNT; i++) {
		s->calls[i].s = s;
		s->calls[i].kind = (enum session_kind)i;
	}
	ev_timer_init(&s->check_timer, session_check_cb, 1., 1.);
	ev_timer_init(&s->tickle_timer, session_tickle_cb, 60., 60.);
	ev_timer_init(&s->soon_timer, session_soon_cb, 1., 0.);
	ev_timer_init(&s->boot_timer, session_boot_cb, 1., 0.);
	s->boot_timer.data = s;
	s->check_timer.data = s;
	s->tickle_timer.data = s;
	s->soon_timer.data = s;
	return (s);
}

static void
session_timers_stop(struct session *s)
{
	ev_timer_stop(s->loop, &s->check_timer);
	ev_timer_stop(s->loop, &s->tickle_timer);
	ev_timer_stop(s->loop, &s->soon_timer);
	ev_timer_stop(s->loop, &s->boot_timer);
}

/* check_interval_s 0 would spin: at least 1 s; tickle 0 turns it off. */
static void
session_timers_start(struct session *s)
{
	double	 check = s->conf->check_interval_s > 0 ?
	    s->conf->check_interval_s : 1;
	double	 tickle = s->conf->tickle_interval_s;

	ev_timer_stop(s->loop, &s->check_timer);
	ev_timer_set(&s->check_timer, check, check);
	ev_timer_start(s->loop, &s->check_timer);
	ev_timer_stop(s->loop, &s->tickle_timer);
	if (tickle > 0) {
		ev_timer_set(&s->tickle_timer, tickle, tickle);
		ev_timer_start(s->loop, &s->tickle_timer);
	}
}

static void
session_cancel_all(struct session *s)
{
	int	 i;

	for (i = 0; i < SK_COUNT; i++)
		if (s->calls[i].inflight) {
			if (s->up != NULL)
				upstream_cancel(s->up, &s->calls[i].req);
			s->calls[i].inflight = 0;
		}
}

void
session_free(struct session *s)
{
	int	 i;

	if (s == NULL)
		return;
	session_timers_stop(s);
	session_cancel_all(s);
	for (i = 0; i < SK_COUNT; i++)
		session_call_reset(&s->calls[i]);
	free(s);
}

void
session_start(struct session *s)
{
	s->running = 1;
	s->st.state = GW_STARTING;
	s->st.pid = getpid();
	s->st.check_interval_s = s->conf->check_interval_s;
	s->st.since = 0;
	s->st.checked = 0;
	s->st.message[0] = '\0';
	session_write(s, 1);
	session_timers_start(s);
	session_check(s, "start");
}

void
session_reconfigure(struct session *s, const struct config *conf)
{
	s->conf = conf;
	s->st.check_interval_s = conf->check_interval_s;
	if (!s->running)
		return;
	session_timers_start(s);
	/* a new status_file path gets its file now, not a check later */
	session_write(s, 1);
}

void
session_stop(struct session *s)
{
	enum gw_state	 from = s->st.state;

	if (s->running) {
		s->running = 0;
		session_timers_stop(s);
		session_cancel_all(s);
	}
	if (from == GW_STOPPED)
		return;
	/* A script testing BROKERD_AUTHENTICATED must not trust a dead one. */
	s->st.state = GW_STOPPED;
	s->st.authenticated = s->st.connected = s->st.competing = 0;
	s->st.since = s->st.checked = time(NULL);
	s->st.seq++;
	s->st.pid = getpid();
	session_record(s, from);
	session_write(s, 1);
}

const struct gw_status *
session_status(const struct session *s)
{
	return (&s->st);
}

int
session_history_json(const struct session *s, struct buf *b)
{
	const struct session_event *e;
	char		 at[32];
	size_t		 i;

	if (buf_append(b, "[", 1) == -1)
		return (-1);
	for (i = 0; i < s->nhist; i++) {
		e = &s->hist[(s->hist_start + i) % SESSION_HISTORY];
		status_time(e->at, at, sizeof(at));
		if (buf_printf(b, "%s{\"from\":\"%s\",\"to\":\"%s\","
		    "\"at\":\"%s\",\"message\":", i > 0 ? "," : "",
		    status_state_name(e->from), status_state_name(e->to),
		    at) == -1 ||
		    buf_json_string(b, e->message, strlen(e->message)) == -1 ||
		    buf_append(b, "}", 1) == -1)
			return (-1);
	}
	return (buf_append(b, "]", 1));
}

/*
 * At most one immediate check per second, and none while one is in
 * flight (its answer is what the caller wants); a request that comes too
 * soon gets the check when the second is over.
 */
void
session_check_now(struct session *s)
{
	double	 now, wait;

	if (s == NULL || !s->running || (s->calls[SK_CHECK].inflight &&
	    !session_stuck(s, &s->calls[SK_CHECK])))
		return;
	now = now_s();
	wait = s->last_now_s + SESSION_NOW_GAP_S - now;
	if (wait > 0) {
		if (!ev_is_active(&s->soon_timer))
			session_soon(s, wait);
		return;
	}
	s->last_now_s = now;
	session_check(s, "forwarded call");
}

int
session_reauthenticate(struct session *s)
{
	if (s == NULL || !s->running)
		return (-1);
	return (session_reauth_try(s, 1));
}

void
session_observe(struct session *s, int status, const char *body, size_t len)
{
	if (s == NULL)
		return;
	if (status == 401 || (status == 400 && body != NULL &&
	    memmem(body, len, "no bridge", 9) != NULL))
		session_check_now(s);
}
