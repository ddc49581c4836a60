/*
 * The Gateway's messages fanned out: market data into the last values and
 * to each subscriber of the conid filtered to its fields; topics to their
 * subscribers; system, sts, act, ntf and blt to everyone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream_impl.h"

/* Keys every market data message keeps, whatever the fields asked. */
static int
stream_meta(const char *k)
{
	return (strcmp(k, "topic") == 0 || strcmp(k, "conid") == 0 ||
	    strcmp(k, "conidEx") == 0 || strcmp(k, "_updated") == 0 ||
	    strcmp(k, "server_id") == 0 || strcmp(k, "error") == 0);
}

/*
 * The message cut to the subscriber's fields; cached: from last values.
 * *wanted: 0 when nothing of it is for this subscriber.
 */
json_t *
stream_md_cut(struct stream_md *m, struct stream_mdsub *ms, json_t *msg,
    int cached, int *wanted)
{
	char		 key[STREAM_KEY_LEN];
	json_t		*out, *v;
	const char	*k;
	size_t		 i, nf = 0;

	if ((out = json_object()) == NULL)
		return (NULL);
	json_object_foreach(msg, k, v)
		if (stream_meta(k) && json_object_set(out, k, v) == -1)
			goto fail;
	for (i = 0; i < ms->nfields; i++) {
		if ((v = json_object_get(msg, ms->fields[i])) == NULL)
			continue;
		if (json_object_set(out, ms->fields[i], v) == -1)
			goto fail;
		nf++;
	}
	if (cached) {
		/* as the Gateway tags this conid's ticks (CONID@EXCH?) */
		if (m->topic[0] != '\0')
			snprintf(key, sizeof(key), "%s", m->topic);
		else
			snprintf(key, sizeof(key), "smd+%s", m->conid);
		json_object_set_new(out, "topic", json_string(key));
		json_object_set_new(out, "conid",
		    json_integer(strtoll(m->conid, NULL, 10)));
	}
	*wanted = nf > 0 || json_object_get(msg, "error") != NULL;
	return (out);
fail:
	json_decref(out);
	return (NULL);
}

int
stream_md_deliver(struct stream *st, struct stream_md *m,
    struct stream_mdsub *ms, json_t *msg, int cached)
{
	char		 key[STREAM_KEY_LEN];
	json_t		*out;
	int		 r = 0, wanted;

	if ((out = stream_md_cut(m, ms, msg, cached, &wanted)) == NULL)
		return (-1);
	snprintf(key, sizeof(key), "smd+%s", m->conid);
	if (wanted)
		r = stream_queue_push(st, ms->sub, key, key, STREAM_Q_MD, out);
	json_decref(out);
	return (r);
}

static int
stream_same_fields(const struct stream_mdsub *a, const struct stream_mdsub *b)
{
	return (a->fid == b->fid);
}

/*
 * A tick to every subscriber of its conid.  Subscribers next to each
 * other that asked the same fields (the common case) share one cut and
 * one serialisation of it.  The topic of an smd that picked an exchange
 * may carry it too (smd+CONID@EXCH): the conid is what comes before.
 */
static int
stream_gw_md(struct stream *st, const char *topic_conid, json_t *msg)
{
	char		 key[STREAM_KEY_LEN], conid[STREAM_ID_LEN];
	struct stream_md *m;
	json_t		*v, *out = NULL;
	const char	*k;
	struct stream_text *text = NULL;
	size_t		 i, n;
	int		 r = 0, wanted = 0;

	if ((n = strcspn(topic_conid, "@")) >= sizeof(conid))
		return (0);
	memcpy(conid, topic_conid, n);
	conid[n] = '\0';
	if ((m = stream_md_find(st, conid)) == NULL)
		return (0);	/* a stream that ended here: not wanted */
	snprintf(m->topic, sizeof(m->topic), "smd+%s", topic_conid);
	json_object_foreach(msg, k, v)
		if (!stream_meta(k))
			json_object_set(m->last, k, v);
	snprintf(key, sizeof(key), "smd+%s", m->conid);
	for (i = 0; i < m->nsubs; i++) {
		if (out == NULL || !stream_same_fields(&m->subs[i],
		    &m->subs[i - 1])) {
			json_decref(out);
			stream_text_free(text);
			text = NULL;
			if ((out = stream_md_cut(m, &m->subs[i], msg, 0,
			    &wanted)) == NULL) {
				r = -1;
				continue;
			}
		}
		if (wanted && stream_queue_push_shared(st, m->subs[i].sub,
		    key, key, STREAM_Q_MD, out, &text) == -1)
			r = -1;
	}
	json_decref(out);
	stream_text_free(text);
	return (r);
}

static int
stream_gw_topic(struct stream *st, const char *topic, json_t *msg)
{
	struct stream_topic *t;
	enum stream_kind kind;
	struct stream_text *text = NULL;
	size_t		 i, klen;
	int		 r = 0;

	for (i = 0; i < st->ntopics; i++) {
		t = st->topics[i];
		klen = strlen(t->key);
		if (strncmp(topic, t->key, klen) == 0 &&
		    (topic[klen] == '\0' || topic[klen] == '+'))
			break;
	}
	if (i == st->ntopics)
		return (0);
	kind = strncmp(topic, "sor", 3) == 0 || strncmp(topic, "str", 3) == 0 ?
	    STREAM_Q_KEEP : STREAM_Q_MD;
	for (i = 0; i < t->nsubs; i++)
		if (stream_queue_push_shared(st, t->subs[i], topic, topic,
		    kind, msg, &text) == -1)
			r = -1;
	stream_text_free(text);
	return (r);
}

/*
 * A history message without a server id belongs to the oldest request for
 * the conid not yet named; an error ends that request: its owner is told
 * and its place among the five is free again (one left by its subscriber
 * would otherwise hold it while the socket lives).
 */
static int
stream_gw_smh_unnamed(struct stream *st, const char *conid, json_t *msg)
{
	size_t	 i;
	int	 r = 0;

	for (i = 0; i < st->nsmh; i++)
		if (st->smh[i].id[0] == '\0' &&
		    strcmp(st->smh[i].conid, conid) == 0)
			break;
	if (i == st->nsmh)
		return (0);
	if (st->smh[i].sub != NULL)
		r = stream_queue_push(st, st->smh[i].sub, "smh", "",
		    STREAM_Q_KEEP, msg);
	if (json_object_get(msg, "error") != NULL) {
		st->smh[i].sub = NULL;
		stream_smh_remove(st, i, 0);
	}
	return (r);
}

/* History data goes to the subscriber whose request got this server id. */
static int
stream_gw_smh(struct stream *st, const char *conid, json_t *msg)
{
	char		 id[STREAM_ID_LEN];
	json_t		*v = json_object_get(msg, "serverId");
	size_t		 i;

	if (json_is_string(v))
		snprintf(id, sizeof(id), "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(id, sizeof(id), "%lld",
		    (long long)json_integer_value(v));
	else
		return (stream_gw_smh_unnamed(st, conid, msg));
	for (i = 0; i < st->nsmh; i++)
		if (strcmp(st->smh[i].id, id) == 0)
			break;
	if (i == st->nsmh)
		for (i = 0; i < st->nsmh; i++)
			if (st->smh[i].id[0] == '\0' &&
			    strcmp(st->smh[i].conid, conid) == 0) {
				snprintf(st->smh[i].id, sizeof(st->smh[i].id),
				    "%s", id);
				break;
			}
	if (i == st->nsmh)
		return (0);
	if (st->smh[i].sub == NULL) {
		/* its subscriber left before this id came: end it now */
		stream_smh_remove(st, i, 1);
		return (0);
	}
	return (stream_queue_push(st, st->smh[i].sub, "smh", "",
	    STREAM_Q_KEEP, msg));
}

static int
stream_gw_everyone(struct stream *st, const char *topic, json_t *msg)
{
	struct stream_text *text = NULL;
	size_t	 i;
	int	 r = 0;

	for (i = 0; i < st->nsubs; i++)
		if (stream_queue_push_shared(st, st->subs[i], topic, "",
		    STREAM_Q_KEEP, msg, &text) == -1)
			r = -1;
	stream_text_free(text);
	return (r);
}

static void
stream_gw_info(const char *topic, json_t *msg, struct stream_gw_info *gi)
{
	json_t	*args, *auth;

	if (strcmp(topic, "system") == 0) {
		gi->system = 1;
		gi->hb = json_object_get(msg, "hb") != NULL;
	} else if (strcmp(topic, "sts") == 0 &&
	    json_is_object(args = json_object_get(msg, "args"))) {
		gi->sts = 1;
		auth = json_object_get(args, "authenticated");
		if (json_is_boolean(auth))
			gi->authenticated = json_is_true(auth);
	}
}

/*
 * A topic becomes an SSE "event:" line and a key of the queues: a CR or
 * LF in it would end that line and let the Gateway's text forge events
 * for every SSE subscriber, so a topic with any control byte is refused.
 */
static int
stream_topic_clean(const char *topic)
{
	const unsigned char	*u;

	for (u = (const unsigned char *)topic; *u != '\0'; u++)
		if (*u < 0x20 || *u == 0x7f)
			return (0);
	return (1);
}

int
stream_gateway_message(struct stream *st, const char *p, size_t len,
    uint64_t now_ms, struct stream_gw_info *gi)
{
	json_t		*msg, *t;
	const char	*topic, *m;
	int		 r = 0;

	(void)now_ms;
	memset(gi, 0, sizeof(*gi));
	gi->authenticated = -1;
	msg = json_loadb(p, len, 0, NULL);	/* json_is_*: a macro */
	if (!json_is_object(msg)) {
		json_decref(msg);
		return (-1);
	}
	st->n.msgs_in++;
	t = json_object_get(msg, "topic");
	topic = json_is_string(t) ? json_string_value(t) : "";
	if (!stream_topic_clean(topic)) {
		st->n.bad_topics++;
		gi->bad_topic = 1;
		json_decref(msg);
		return (0);
	}
	m = json_string_value(json_object_get(msg, "message"));
	gi->waiting = m != NULL && strcmp(m, "waiting for session") == 0;
	stream_gw_info(topic, msg, gi);
	if (gi->system || strcmp(topic, "sts") == 0 ||
	    strcmp(topic, "act") == 0 || strcmp(topic, "ntf") == 0 ||
	    strcmp(topic, "blt") == 0)
		r = stream_gw_everyone(st, topic, msg);
	else if (strncmp(topic, "smd+", 4) == 0)
		r = stream_gw_md(st, topic + 4, msg);
	else if (strncmp(topic, "smh+", 4) == 0)
		r = stream_gw_smh(st, topic + 4, msg);
	else if (topic[0] != '\0')
		r = stream_gw_topic(st, topic, msg);
	json_decref(msg);
	return (r);
}
