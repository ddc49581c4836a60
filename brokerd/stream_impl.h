/*
 * The insides of the fan-out, shared by stream.c (subscriptions and the
 * up queue), stream_gw.c (the Gateway's messages), stream_queue.c (each
 * subscriber's conflating queue) and stream_parse.c (their syntax).
 */
#ifndef STREAM_IMPL_H
#define STREAM_IMPL_H

#include <jansson.h>

#include "stream.h"

#define STREAM_KEY_LEN	80	/* "smd+265598", "ssd+DU123", "sor" */
#define STREAM_RATE_MAX	64	/* cap of max_cmds_per_s */

enum stream_kind {
	STREAM_Q_MD = 0,	/* market data: conflated when behind */
	STREAM_Q_KEEP		/* orders, trades, system: never dropped */
};

/* A message's JSON text, shared by every queue it went to. */
struct stream_text {
	unsigned	 refs;
	size_t		 len;
	char		 s[];
};

struct stream_entry {
	struct stream_entry *prev, *next;
	char		 key[STREAM_KEY_LEN];	/* conflation key */
	char		 topic[STREAM_KEY_LEN];	/* SSE event name */
	enum stream_kind kind;
	int		 indexed;	/* in mdidx */
	struct stream_text *txt;	/* or, once conflating: */
	json_t		*obj;		/* merged in place, dumped once */
	size_t		 len;		/* of the JSON text */
	size_t		 bytes;		/* encoded size */
};

struct stream_sub {
	void		*owner;
	enum stream_enc	 enc;
	struct stream_entry *head, *tail;
	json_t		*mdidx;		/* key: newest queued market data */
	size_t		 nindexed;	/* entries in it */
	size_t		 queued;	/* encoded bytes */
	int		 closing;	/* verdict given */
	uint64_t	 cmd_ms[STREAM_RATE_MAX];	/* ring of commands */
	size_t		 cmd_next;
};

struct stream_field {
	char		 name[16];
	unsigned	 refs;
};

struct stream_mdsub {
	struct stream_sub *sub;
	char		(*fields)[16];
	size_t		 nfields;
	unsigned	 fid;		/* the same for the same fields */
};

/* One conid streaming from the Gateway. */
struct stream_md {
	char		 conid[STREAM_ID_LEN];
	char		 exch[STREAM_ID_LEN];
	struct stream_mdsub *subs;
	size_t		 nsubs;
	struct stream_field *u;		/* the union of fields */
	size_t		 nu;
	unsigned	 next_fid;
	json_t		*last;		/* newest value per field */
	char		 topic[STREAM_KEY_LEN];	/* the Gateway's, or "" */
	uint64_t	 sent_ms;	/* last smd up (renewal) */
};

/* One shared topic: sor, str, spl, ssd+ACCT, sld+ACCT, sbd+ACCT. */
struct stream_topic {
	char		 key[STREAM_KEY_LEN];
	char		*sub_msg;
	char		*unsub_msg;
	struct stream_sub **subs;
	size_t		 nsubs;
};

/* One history subscription: not shared, its server id its owner's. */
struct stream_smh {
	struct stream_sub *sub;		/* NULL: left before the id came */
	char		 conid[STREAM_ID_LEN];
	char		 id[STREAM_ID_LEN];	/* "" until the Gateway says */
	char		*msg;
	int		 stale;		/* left, unnamed at a renewal */
};

struct stream {
	struct stream_limits	 lim;
	struct stream_callbacks	 cb;
	struct stream_counters	 n;
	struct stream_sub	**subs;
	size_t			 nsubs;
	struct stream_md	**mds;
	size_t			 nmds;
	struct stream_topic	**topics;
	size_t			 ntopics;
	struct stream_smh	*smh;
	size_t			 nsmh;
	char			**up;		/* messages for the Gateway */
	size_t			 nup;
};

/* stream_queue.c */
int	 stream_queue_push(struct stream *, struct stream_sub *,
	    const char *topic, const char *key, enum stream_kind, json_t *);
int	 stream_queue_push_shared(struct stream *, struct stream_sub *,
	    const char *topic, const char *key, enum stream_kind, json_t *,
	    struct stream_text **);
void	 stream_text_free(struct stream_text *);
void	 stream_queue_clear(struct stream_sub *);

/* stream.c */
int	 stream_up_push(struct stream *, const char *);
int	 stream_sub_error(struct stream *, struct stream_sub *, const char *);
struct stream_md *stream_md_find(const struct stream *, const char *conid);
int	 stream_md_join(struct stream *, struct stream_sub *,
	    const struct stream_cmd *, uint64_t now_ms);
int	 stream_md_quit(struct stream *, struct stream_sub *,
	    const struct stream_cmd *);

/* stream_cmd.c */
int	 stream_topic_leave(struct stream *, size_t, struct stream_sub *);
void	 stream_smh_remove(struct stream *, size_t, int up);

/* stream_gw.c */
int	 stream_md_deliver(struct stream *, struct stream_md *,
	    struct stream_mdsub *, json_t *, int cached);
json_t	*stream_md_cut(struct stream_md *, struct stream_mdsub *, json_t *,
	    int cached, int *wanted);

#endif /* STREAM_IMPL_H */
