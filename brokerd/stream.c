/*
 * The fan-out's subscriptions (SPEC section 7): counted per conid and per
 * topic so that the Gateway sees one of each, the union of fields per
 * conid, history subscriptions owned by one subscriber each, and the
 * queue of messages for the Gateway that the upstream's owner drains.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream_impl.h"

void
stream_limits_default(struct stream_limits *l)
{
	l->max_subscribers = 256;
	l->max_conids = 100;
	l->max_account_topics = 1000;
	l->max_smh = 5;
	l->conflate_bytes = 256 * 1024;
	l->max_buffer_bytes = 4 * 1024 * 1024;
	l->max_cmds_per_s = 20;
}

struct stream *
stream_new(const struct stream_limits *l, const struct stream_callbacks *cb)
{
	struct stream	*st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return (NULL);
	stream_set_limits(st, l);
	if (cb != NULL)
		st->cb = *cb;
	return (st);
}

void
stream_set_limits(struct stream *st, const struct stream_limits *l)
{
	st->lim = *l;
	if (st->lim.max_cmds_per_s > STREAM_RATE_MAX)
		st->lim.max_cmds_per_s = STREAM_RATE_MAX;
}

void
stream_free(struct stream *st)
{
	size_t	 i;

	if (st == NULL)
		return;
	while (st->nsubs > 0)
		stream_sub_free(st, st->subs[st->nsubs - 1]);
	for (i = 0; i < st->nup; i++)
		free(st->up[i]);
	free(st->up);
	free(st->subs);
	free(st->mds);
	free(st->topics);
	free(st->smh);
	free(st);
}

const struct stream_counters *
stream_counters(const struct stream *st)
{
	return (&st->n);
}

size_t
stream_nsubs(const struct stream *st)
{
	return (st->nsubs);
}

size_t
stream_nconids(const struct stream *st)
{
	return (st->nmds);
}

/* History streams left by their subscribers keep no socket open. */
int
stream_idle(const struct stream *st)
{
	size_t	 i;

	for (i = 0; i < st->nsmh; i++)
		if (st->smh[i].sub != NULL)
			return (0);
	return (st->nmds == 0 && st->ntopics == 0);
}

int
stream_active_json(const struct stream *st, struct buf *b)
{
	size_t	 i;
	int	 r = buf_puts(b, "[");

	for (i = 0; r == 0 && i < st->nmds; i++)
		r = buf_printf(b, "%s\"smd+%s\"", i ? "," : "",
		    st->mds[i]->conid);
	for (i = 0; r == 0 && i < st->ntopics; i++)
		r = buf_printf(b, "%s\"%s\"", i || st->nmds ? "," : "",
		    st->topics[i]->key);
	for (i = 0; r == 0 && i < st->nsmh; i++)
		r = buf_printf(b, "%s\"smh+%s\"", i || st->nmds ||
		    st->ntopics ? "," : "", st->smh[i].conid);
	return (r == 0 ? buf_puts(b, "]") : -1);
}

/* ------------------------------------------------------------ up queue */

int
stream_up_push(struct stream *st, const char *msg)
{
	char	**up, *copy;

	if ((copy = strdup(msg)) == NULL)
		return (-1);
	if ((up = reallocarray(st->up, st->nup + 1, sizeof(*up))) == NULL) {
		free(copy);
		return (-1);
	}
	st->up = up;
	st->up[st->nup++] = copy;
	return (0);
}

int
stream_up_take(struct stream *st, struct buf *msg, int *orders_first)
{
	if (st->nup == 0)
		return (0);
	buf_reset(msg);
	if (buf_puts(msg, st->up[0]) == -1)
		return (-1);
	*orders_first = strncmp(st->up[0], "sor+", 4) == 0;
	free(st->up[0]);
	memmove(st->up, st->up + 1, (st->nup - 1) * sizeof(*st->up));
	st->nup--;
	return (1);
}

size_t
stream_up_pending(const struct stream *st)
{
	return (st->nup);
}

void
stream_up_forget(struct stream *st)
{
	size_t	 i;

	while (st->nup > 0)
		free(st->up[--st->nup]);
	/*
	 * History streams whose subscriber left before the Gateway named
	 * them waited for that id to end them; no socket, no id: they end
	 * here, or they would hold a place of the five until the next
	 * socket's replay.
	 */
	for (i = st->nsmh; i > 0; i--)
		if (st->smh[i - 1].sub == NULL)
			stream_smh_remove(st, i - 1, 0);
}

/* --------------------------------------------------------- subscribers */

struct stream_sub *
stream_sub_new(struct stream *st, enum stream_enc enc, void *owner)
{
	struct stream_sub **subs, *s;

	if (st->nsubs >= st->lim.max_subscribers) {
		errno = EBUSY;
		return (NULL);
	}
	subs = reallocarray(st->subs, st->nsubs + 1, sizeof(*subs));
	if (subs == NULL)
		return (NULL);
	st->subs = subs;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return (NULL);
	s->enc = enc;
	s->owner = owner;
	st->subs[st->nsubs++] = s;
	return (s);
}

static int	stream_md_leave(struct stream *, struct stream_md *,
		    struct stream_sub *);

void
stream_sub_free(struct stream *st, struct stream_sub *s)
{
	size_t	 i;

	for (i = st->nmds; i > 0; i--)
		stream_md_leave(st, st->mds[i - 1], s);
	for (i = st->ntopics; i > 0; i--)
		stream_topic_leave(st, i - 1, s);
	for (i = st->nsmh; i > 0; i--)
		if (st->smh[i - 1].sub == s)
			stream_smh_remove(st, i - 1, 1);
	for (i = 0; i < st->nsubs; i++)
		if (st->subs[i] == s) {
			st->subs[i] = st->subs[--st->nsubs];
			break;
		}
	stream_queue_clear(s);
	free(s);
}

/* {"topic":"system", key: text} to one subscriber. */
static int
stream_sub_say(struct stream *st, struct stream_sub *s, const char *key,
    const char *text)
{
	json_t	*o;
	int	 r;

	if ((o = json_pack("{s:s,s:s}", "topic", "system", key, text)) == NULL)
		return (-1);
	r = stream_queue_push(st, s, "system", "", STREAM_Q_KEEP, o);
	json_decref(o);
	return (r);
}

int
stream_sub_error(struct stream *st, struct stream_sub *s, const char *why)
{
	st->n.refused++;
	return (stream_sub_say(st, s, "error", why));
}

int
stream_sub_system(struct stream *st, struct stream_sub *s, const char *what)
{
	return (stream_sub_say(st, s, "brokerd", what));
}

int
stream_broadcast_system(struct stream *st, const char *what)
{
	size_t	 i;
	int	 r = 0;

	for (i = 0; i < st->nsubs; i++)
		if (stream_sub_system(st, st->subs[i], what) == -1)
			r = -1;
	return (r);
}

/* ------------------------------------------------------- market data */

struct stream_md *
stream_md_find(const struct stream *st, const char *conid)
{
	size_t	 i;

	for (i = 0; i < st->nmds; i++)
		if (strcmp(st->mds[i]->conid, conid) == 0)
			return (st->mds[i]);
	return (NULL);
}

static int
stream_md_send(struct stream *st, struct stream_md *m, uint64_t now_ms)
{
	struct buf	 b;
	size_t		 i;
	int		 r;

	buf_init(&b);
	r = buf_printf(&b, "smd+%s%s%s+{\"fields\":[", m->conid,
	    m->exch[0] ? "@" : "", m->exch);
	for (i = 0; r == 0 && i < m->nu; i++)
		r = buf_printf(&b, "%s\"%s\"", i ? "," : "", m->u[i].name);
	if (r == 0 && buf_puts(&b, "]}") == 0 && stream_up_push(st,
	    b.data) == 0) {
		m->sent_ms = now_ms;
	} else
		r = -1;
	buf_free(&b);
	return (r);
}

static void
stream_md_unref(struct stream_md *m, const char *f)
{
	size_t	 i;

	for (i = 0; i < m->nu; i++)
		if (strcmp(m->u[i].name, f) == 0 && --m->u[i].refs == 0) {
			m->u[i] = m->u[--m->nu];
			return;
		}
}

static int
stream_md_has(const struct stream_md *m, const char *f)
{
	size_t	 i;

	for (i = 0; i < m->nu; i++)
		if (strcmp(m->u[i].name, f) == 0)
			return (1);
	return (0);
}

static int
stream_md_ref(struct stream_md *m, const char *f)
{
	struct stream_field *u;
	size_t		 i;

	for (i = 0; i < m->nu; i++)
		if (strcmp(m->u[i].name, f) == 0) {
			m->u[i].refs++;
			return (0);
		}
	if ((u = reallocarray(m->u, m->nu + 1, sizeof(*u))) == NULL)
		return (-1);
	m->u = u;
	snprintf(u[m->nu].name, sizeof(u[m->nu].name), "%s", f);
	u[m->nu++].refs = 1;
	return (0);
}

static void
stream_md_free(struct stream *st, struct stream_md *m)
{
	size_t	 i;

	for (i = 0; i < st->nmds; i++)
		if (st->mds[i] == m) {
			memmove(st->mds + i, st->mds + i + 1,
			    (st->nmds - i - 1) * sizeof(*st->mds));
			st->nmds--;
			break;
		}
	json_decref(m->last);
	free(m->subs);
	free(m->u);
	free(m);
}

/* The subscriber's fields leave the union: 0, or 1 if it had none. */
static int
stream_md_drop(struct stream_md *m, struct stream_sub *s)
{
	size_t	 i, k;

	for (i = 0; i < m->nsubs && m->subs[i].sub != s; i++)
		;
	if (i == m->nsubs)
		return (1);
	for (k = 0; k < m->subs[i].nfields; k++)
		stream_md_unref(m, m->subs[i].fields[k]);
	free(m->subs[i].fields);
	m->subs[i] = m->subs[--m->nsubs];
	return (0);
}

/* The last subscriber of a conid leaving sends umd. */
static int
stream_md_leave(struct stream *st, struct stream_md *m, struct stream_sub *s)
{
	char	 msg[STREAM_KEY_LEN];

	if (stream_md_drop(m, s) == 1)
		return (1);
	if (m->nsubs > 0)
		return (0);
	snprintf(msg, sizeof(msg), "umd+%s+{}", m->conid);
	stream_md_free(st, m);
	return (stream_up_push(st, msg));
}

static struct stream_md *
stream_md_new(struct stream *st, const struct stream_cmd *c)
{
	struct stream_md **mds, *m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return (NULL);
	mds = reallocarray(st->mds, st->nmds + 1, sizeof(*mds));
	if (mds == NULL || (m->last = json_object()) == NULL) {
		if (mds != NULL)
			st->mds = mds;
		free(m);
		return (NULL);
	}
	st->mds = mds;
	snprintf(m->conid, sizeof(m->conid), "%s", c->conid);
	snprintf(m->exch, sizeof(m->exch), "%s", c->exch);
	st->mds[st->nmds++] = m;
	return (m);
}

/*
 * The id of a field list: another subscriber's if it asked the same, so
 * that a tick compares ids, not lists, to share one cut among them.
 */
static unsigned
stream_md_fid(struct stream_md *m, const struct stream_mdsub *ms)
{
	size_t	 i;

	for (i = 0; i < m->nsubs; i++)
		if (&m->subs[i] != ms && m->subs[i].nfields == ms->nfields &&
		    memcmp(m->subs[i].fields, ms->fields,
		    ms->nfields * sizeof(*ms->fields)) == 0)
			return (m->subs[i].fid);
	return (++m->next_fid);
}

/* Subscribe (or resubscribe with other fields); cached values at once. */
int
stream_md_join(struct stream *st, struct stream_sub *s,
    const struct stream_cmd *c, uint64_t now_ms)
{
	struct stream_md *m;
	struct stream_mdsub *ms;
	size_t		 k;
	int		 added = 0;

	if ((m = stream_md_find(st, c->conid)) == NULL) {
		if (st->nmds >= st->lim.max_conids)
			return (stream_sub_error(st, s,
			    "too many conids (stream.max_conids)"));
		if ((m = stream_md_new(st, c)) == NULL)
			return (-1);
		added = 1;
	} else {
		/* What the union lacks goes up, however the union changed. */
		for (k = 0; k < c->nfields; k++)
			added |= !stream_md_has(m, c->fields[k]);
		stream_md_drop(m, s);	/* its new fields replace its old */
	}
	ms = reallocarray(m->subs, m->nsubs + 1, sizeof(*ms));
	if (ms == NULL)
		return (-1);
	m->subs = ms;
	ms = &m->subs[m->nsubs];
	if ((ms->fields = calloc(c->nfields, sizeof(*ms->fields))) == NULL)
		return (-1);
	ms->sub = s;
	ms->nfields = c->nfields;
	ms->fid = 0;
	m->nsubs++;
	for (k = 0; k < c->nfields; k++) {
		memcpy(ms->fields[k], c->fields[k], sizeof(ms->fields[k]));
		if (stream_md_ref(m, c->fields[k]) == -1)
			return (-1);
	}
	ms->fid = stream_md_fid(m, ms);
	if (added && stream_md_send(st, m, now_ms) == -1)
		return (-1);
	if (json_object_size(m->last) > 0)
		return (stream_md_deliver(st, m, ms, m->last, 1));
	return (0);
}

int
stream_md_quit(struct stream *st, struct stream_sub *s,
    const struct stream_cmd *c)
{
	struct stream_md *m;

	if ((m = stream_md_find(st, c->conid)) == NULL ||
	    stream_md_leave(st, m, s) == 1)
		return (stream_sub_error(st, s,
		    "not subscribed to that conid"));
	return (0);
}

size_t
stream_renew(struct stream *st, uint64_t now_ms, uint64_t max_age_ms)
{
	struct stream_smh	*h;
	size_t			 i, n = 0;

	/*
	 * A history stream left before the Gateway named it, and still not
	 * named a renewal later: the Gateway will not; its place is freed.
	 */
	for (i = st->nsmh; i > 0; i--) {
		h = &st->smh[i - 1];
		if (h->sub != NULL || h->id[0] != '\0')
			continue;
		if (h->stale)
			stream_smh_remove(st, i - 1, 0);
		else
			h->stale = 1;
	}
	for (i = 0; i < st->nmds; i++)
		if (now_ms - st->mds[i]->sent_ms >= max_age_ms &&
		    stream_md_send(st, st->mds[i], now_ms) == 0)
			n++;
	return (n);
}

size_t
stream_replay(struct stream *st, uint64_t now_ms)
{
	size_t	 i;

	stream_up_forget(st);	/* the old socket's history streams too */
	for (i = 0; i < st->nmds; i++)
		stream_md_send(st, st->mds[i], now_ms);
	for (i = 0; i < st->ntopics; i++)
		stream_up_push(st, st->topics[i]->sub_msg);
	for (i = 0; i < st->nsmh; i++) {
		st->smh[i].id[0] = '\0';
		stream_up_push(st, st->smh[i].msg);
	}
	return (st->nup);
}
