/*
 * A subscriber's commands applied: shared topics (sor, str, spl and the
 * per-account ssd, sld, sbd), history subscriptions, the keep-alives
 * answered here, and the rate limit that keeps one subscriber from
 * churning the Gateway.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream_impl.h"

/* ------------------------------------------------------------- topics */

static struct stream_topic *
stream_topic_find(const struct stream *st, const char *key, size_t *at)
{
	size_t	 i;

	for (i = 0; i < st->ntopics; i++)
		if (strcmp(st->topics[i]->key, key) == 0) {
			if (at != NULL)
				*at = i;
			return (st->topics[i]);
		}
	return (NULL);
}

/*
 * Per-account topics (ssd, sld, sbd: "KIND+ACCT") active.  IBKR limits
 * market data lines, not these, but each holds memory here and is
 * looked at for every Gateway message: a subscriber naming thousands of
 * accounts must meet a bound.
 */
static size_t
stream_account_topics(const struct stream *st)
{
	size_t	 i, n = 0;

	for (i = 0; i < st->ntopics; i++)
		if (strchr(st->topics[i]->key, '+') != NULL)
			n++;
	return (n);
}

static void
stream_topic_free(struct stream_topic *t)
{
	free(t->sub_msg);
	free(t->unsub_msg);
	free(t->subs);
	free(t);
}

/* The last subscriber of a topic leaving sends its unsubscribe. */
int
stream_topic_leave(struct stream *st, size_t at, struct stream_sub *s)
{
	struct stream_topic *t = st->topics[at];
	size_t		 i;
	int		 r;

	for (i = 0; i < t->nsubs && t->subs[i] != s; i++)
		;
	if (i == t->nsubs)
		return (1);
	t->subs[i] = t->subs[--t->nsubs];
	if (t->nsubs > 0)
		return (0);
	r = stream_up_push(st, t->unsub_msg);
	memmove(st->topics + at, st->topics + at + 1,
	    (st->ntopics - at - 1) * sizeof(*st->topics));
	st->ntopics--;
	stream_topic_free(t);
	return (r);
}

static struct stream_topic *
stream_topic_new(struct stream *st, const char *key, const char *sub_msg,
    const char *unsub_msg)
{
	struct stream_topic **ts, *t;

	ts = reallocarray(st->topics, st->ntopics + 1, sizeof(*ts));
	if (ts == NULL)
		return (NULL);
	st->topics = ts;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return (NULL);
	snprintf(t->key, sizeof(t->key), "%s", key);
	if ((t->sub_msg = strdup(sub_msg)) == NULL ||
	    (t->unsub_msg = strdup(unsub_msg)) == NULL ||
	    stream_up_push(st, sub_msg) == -1) {
		stream_topic_free(t);
		return (NULL);
	}
	st->topics[st->ntopics++] = t;
	return (t);
}

/* The first subscriber's arguments go up; later ones share the stream. */
static int
stream_topic_join(struct stream *st, struct stream_sub *s, const char *key,
    const char *sub_msg, const char *unsub_msg)
{
	struct stream_topic *t;
	struct stream_sub **subs;
	size_t		 i;

	if ((t = stream_topic_find(st, key, NULL)) == NULL &&
	    (t = stream_topic_new(st, key, sub_msg, unsub_msg)) == NULL)
		return (-1);
	for (i = 0; i < t->nsubs; i++)
		if (t->subs[i] == s)
			return (0);
	if ((subs = reallocarray(t->subs, t->nsubs + 1, sizeof(*subs))) ==
	    NULL)
		return (-1);
	t->subs = subs;
	t->subs[t->nsubs++] = s;
	return (0);
}

static int
stream_topic_quit(struct stream *st, struct stream_sub *s, const char *key)
{
	size_t	 at;

	if (stream_topic_find(st, key, &at) == NULL ||
	    stream_topic_leave(st, at, s) == 1)
		return (stream_sub_error(st, s,
		    "not subscribed to that topic"));
	return (0);
}

/*
 * Key, subscribe and unsubscribe messages of a topic command.  sor goes
 * up without its filters: one sor serves every subscriber, and one's
 * filters would hide orders from the others without a word.
 */
static int
stream_topic_msgs(const struct stream_cmd *c, char key[STREAM_KEY_LEN],
    char *sub, size_t cap, char unsub[STREAM_KEY_LEN])
{
	static const char *const names[][3] = {
		{ "sor", "sor", "uor+{}" }, { "str", "str", "utr+{}" },
		{ "spl", "spl", "upl+{}" }, { "ssd", "ssd", "usd" },
		{ "sld", "sld", "uld" }, { "sbd", "sbd", "ubd" }
	};
	const char	*const *n;
	const char	*args = c->args != NULL && c->op != STREAM_OP_SOR ?
			    c->args : "{}";
	int		 r;

	switch (c->op) {
	case STREAM_OP_SOR: case STREAM_OP_UOR: n = names[0]; break;
	case STREAM_OP_STR: case STREAM_OP_UTR: n = names[1]; break;
	case STREAM_OP_SPL: case STREAM_OP_UPL: n = names[2]; break;
	case STREAM_OP_SSD: case STREAM_OP_USD: n = names[3]; break;
	case STREAM_OP_SLD: case STREAM_OP_ULD: n = names[4]; break;
	default: n = names[5]; break;
	}
	if (c->acct[0] == '\0') {
		snprintf(key, STREAM_KEY_LEN, "%s", n[0]);
		snprintf(unsub, STREAM_KEY_LEN, "%s", n[2]);
		r = snprintf(sub, cap, "%s+%s", n[1], args);
	} else {
		snprintf(key, STREAM_KEY_LEN, "%s+%s", n[0], c->acct);
		snprintf(unsub, STREAM_KEY_LEN, "%s+%s", n[2], c->acct);
		if (c->op == STREAM_OP_SBD)
			r = snprintf(sub, cap, "sbd+%s+%s+%s", c->acct,
			    c->conid, c->exch);
		else if (c->args != NULL)
			r = snprintf(sub, cap, "%s+%s+%s", n[1], c->acct, args);
		else
			r = snprintf(sub, cap, "%s+%s", n[1], c->acct);
	}
	return (r < 0 || (size_t)r >= cap ? -1 : 0);
}

/* ------------------------------------------------------------ history */

/*
 * A history stream the Gateway has not named yet cannot end: it stays,
 * owned by nobody, until its server id comes (stream_gw.c ends it then).
 */
void
stream_smh_remove(struct stream *st, size_t at, int up)
{
	char	 msg[STREAM_KEY_LEN];

	free(st->smh[at].msg);
	st->smh[at].msg = NULL;
	if (up && st->smh[at].id[0] == '\0') {
		st->smh[at].sub = NULL;
		return;
	}
	if (up) {
		snprintf(msg, sizeof(msg), "umh+%s", st->smh[at].id);
		stream_up_push(st, msg);
	}
	st->smh[at] = st->smh[--st->nsmh];
}

static int
stream_smh_join(struct stream *st, struct stream_sub *s,
    const struct stream_cmd *c)
{
	struct stream_smh *h;
	char		*msg;

	if (st->nsmh >= st->lim.max_smh)
		return (stream_sub_error(st, s,
		    "too many history subscriptions (at most 5)"));
	if (asprintf(&msg, "smh+%s+%s", c->conid, c->args) == -1)
		return (-1);
	if ((h = reallocarray(st->smh, st->nsmh + 1, sizeof(*h))) == NULL ||
	    stream_up_push(st, msg) == -1) {
		if (h != NULL)
			st->smh = h;
		free(msg);
		return (-1);
	}
	st->smh = h;
	h = &st->smh[st->nsmh++];
	memset(h, 0, sizeof(*h));
	h->sub = s;
	h->msg = msg;
	snprintf(h->conid, sizeof(h->conid), "%s", c->conid);
	return (0);
}

/* A subscriber ends only its own history streams. */
static int
stream_smh_quit(struct stream *st, struct stream_sub *s,
    const struct stream_cmd *c)
{
	size_t	 i;

	for (i = 0; i < st->nsmh; i++)
		if (st->smh[i].sub == s && strcmp(st->smh[i].id, c->id) == 0) {
			stream_smh_remove(st, i, 1);
			return (0);
		}
	return (stream_sub_error(st, s, "no such history subscription"));
}

/* ----------------------------------------------------------- commands */

/* At most max_cmds_per_s in any second: a ring of the last ones' times. */
static int
stream_rate_ok(const struct stream *st, struct stream_sub *s,
    uint64_t now_ms)
{
	unsigned	 n = st->lim.max_cmds_per_s;
	uint64_t	*oldest;

	if (n == 0)
		return (1);
	oldest = &s->cmd_ms[s->cmd_next % n];
	if (s->cmd_next >= n && now_ms - *oldest < 1000)
		return (0);
	*oldest = now_ms;
	s->cmd_next++;
	return (1);
}

static int
stream_local(struct stream *st, struct stream_sub *s, const char *topic)
{
	json_t	*o;
	int	 r;

	if ((o = json_pack("{s:s,s:b}", "topic", topic, "alive", 1)) == NULL)
		return (-1);
	r = stream_queue_push(st, s, topic, "", STREAM_Q_KEEP, o);
	json_decref(o);
	return (r);
}

int
stream_sub_command(struct stream *st, struct stream_sub *s,
    const struct stream_cmd *c, uint64_t now_ms)
{
	char	 key[STREAM_KEY_LEN], sub[1024], unsub[STREAM_KEY_LEN];

	if (c->op == STREAM_OP_TIC)
		return (stream_local(st, s, "tic"));
	if (c->op == STREAM_OP_ECH)
		return (stream_local(st, s, "ech+hb"));
	switch (c->op) {
	case STREAM_OP_SMD:
		return (stream_md_join(st, s, c, now_ms));
	case STREAM_OP_UMD:
		return (stream_md_quit(st, s, c));
	case STREAM_OP_SMH:
		return (stream_smh_join(st, s, c));
	case STREAM_OP_UMH:
		return (stream_smh_quit(st, s, c));
	default:
		break;
	}
	if (stream_topic_msgs(c, key, sub, sizeof(sub), unsub) == -1)
		return (stream_sub_error(st, s, "arguments too long"));
	switch (c->op) {
	case STREAM_OP_SSD: case STREAM_OP_SLD: case STREAM_OP_SBD:
		if (stream_topic_find(st, key, NULL) == NULL &&
		    stream_account_topics(st) >= st->lim.max_account_topics)
			return (stream_sub_error(st, s, "too many account "
			    "topics (stream.max_account_topics)"));
		/* FALLTHROUGH */
	case STREAM_OP_SOR: case STREAM_OP_STR: case STREAM_OP_SPL:
		return (stream_topic_join(st, s, key, sub, unsub));
	default:
		return (stream_topic_quit(st, s, key));
	}
}

int
stream_sub_message(struct stream *st, struct stream_sub *s, const char *p,
    size_t len, uint64_t now_ms)
{
	struct stream_cmd c;
	const char	*why;
	int		 r;

	if (stream_parse(p, len, &c, &why) == -1)
		return (stream_sub_error(st, s, why));
	/*
	 * A subscriber's own messages are counted, keep-alives aside; the
	 * commands of one /stream query come in one request and are not.
	 */
	if (c.op != STREAM_OP_TIC && c.op != STREAM_OP_ECH &&
	    !stream_rate_ok(st, s, now_ms)) {
		stream_cmd_free(&c);
		return (stream_sub_error(st, s,
		    "more than 20 subscription messages a second"));
	}
	r = stream_sub_command(st, s, &c, now_ms);
	stream_cmd_free(&c);
	return (r);
}
