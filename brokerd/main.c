/*
 * Command line, start-up, signals, reload and shutdown.  brokerd never
 * forks itself: under systemd it is Type=notify, elsewhere it simply runs
 * in the foreground.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "brokerd.h"
#include "stream.h"
#include "streamup.h"

static struct server	 server;
static const char	*conf_file;
static ev_timer		 drain_timer;
static int		 verbose;	/* -v outlasts reloads */

static void
usage(void)
{
	fprintf(stderr, "usage: brokerd [-ftvV] [-c file]\n"
	    "       brokerd gateway-fingerprint [url]\n"
	    "       brokerd migrate-env file [keyfile]\n");
	exit(1);
}

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void
main_notify(const char *msg)
{
	struct sockaddr_un	 sun;
	const char		*path;
	socklen_t		 len;
	int			 fd;

	if ((path = getenv("NOTIFY_SOCKET")) == NULL || path[0] == '\0')
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return;
	memcpy(sun.sun_path, path, strlen(path));
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, len) == -1)
		log_debug("sd_notify: %s", strerror(errno));
	close(fd);
}

static int
journal_changed(const struct config *a, const struct config *b)
{
	if (a->journal_file == NULL || b->journal_file == NULL)
		return (a->journal_file != b->journal_file);
	return (strcmp(a->journal_file, b->journal_file) != 0);
}

/* The hub's limits from the stream: section (SPEC section 7). */
static void
main_stream_limits(const struct config *conf, struct stream_limits *l)
{
	stream_limits_default(l);
	l->max_subscribers = conf->stream_max_subscribers;
	l->max_conids = conf->stream_max_conids;
	l->max_account_topics = conf->stream_max_account_topics;
	l->conflate_bytes = conf->stream_conflate_bytes;
	l->max_buffer_bytes = conf->stream_max_buffer_bytes;
}

/* Two optional strings differ (NULL differs from any string). */
static int
main_differ(const char *a, const char *b)
{
	return ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0));
}

/*
 * The listening sockets stay as they are until a restart: say so for
 * each listen: setting a reload changed, rather than drop it silently.
 * Mode and group are not applied to the live socket either: the hardened
 * unit forbids chown(2), and half a change would mislead more.
 */
static void
main_listen_changed(const struct config *oc, const struct config *nc)
{
	if (main_differ(oc->unix_path, nc->unix_path) ||
	    main_differ(oc->tcp, nc->tcp))
		log_warn("reload: listen addresses changed; they take effect "
		    "at the next restart");
	if (oc->unix_mode != nc->unix_mode)
		log_warn("reload: listen.unix.mode changed (%04o to %04o); it "
		    "takes effect at the next restart",
		    (unsigned)oc->unix_mode, (unsigned)nc->unix_mode);
	if (main_differ(oc->unix_group, nc->unix_group))
		log_warn("reload: listen.unix.group changed; it takes effect "
		    "at the next restart");
}

static void
main_reload(void)
{
	struct config	*nc, *oc = server.conf;
	struct journal	*nj = NULL;
	struct stream_limits limits;
	char		 err[1024];

	main_notify("RELOADING=1");
	if ((nc = config_load(conf_file, err, sizeof(err))) == NULL) {
		log_error("reload failed, keeping the running configuration: "
		    "%s", err);
		main_notify("READY=1");
		return;
	}
	/* Open the new journal first; swap it in only with the rest. */
	if (journal_changed(oc, nc) && nc->journal_file != NULL &&
	    (nj = journal_open(nc->journal_file, nc->journal_max_bytes,
	    nc->journal_keep, err, sizeof(err))) == NULL)
		goto fail;
	if (upstream_reconfigure(server.upstream, nc, err, sizeof(err)) ==
	    -1) {
		journal_close(nj);
		goto fail;
	}
	if (journal_changed(oc, nc)) {
		journal_close(server.journal);
		server.journal = nj;
	} else if (server.journal != NULL)
		journal_set_limits(server.journal, nc->journal_max_bytes,
		    nc->journal_keep);
	main_listen_changed(oc, nc);
	config_warnings(nc);
	server.conf = nc;
	session_reconfigure(server.session, nc);
	main_stream_limits(nc, &limits);
	stream_set_limits(server.stream, &limits);
	streamup_reconfigure(server.streamup, nc);
	sub_reconfigure(&server);
	log_init(verbose ? LOG_LEVEL_DEBUG : nc->log_level, nc->log_json);
	/* Requests in flight hold the old one until they end. */
	config_unref(oc);
	log_info("configuration reloaded (%zu keys, %zu routes)", nc->nkeys,
	    nc->nroutes);
	main_notify("READY=1");
	return;
 fail:
	log_error("reload failed, keeping the running configuration: %s", err);
	config_unref(nc);
	main_notify("READY=1");
}

static void
main_drain_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	if ((server.nclients == 0 && server.nsubs == 0) ||
	    ev_now(loop) >= *(ev_tstamp *)w->data) {
		if (server.nclients + server.nsubs > 0)
			log_warn("drain time over: closing %u connections",
			    server.nclients + server.nsubs);
		ev_break(loop, EVBREAK_ALL);
	}
}

static ev_tstamp drain_deadline;

static void
main_stop(struct ev_loop *loop, int sig)
{
	if (server.draining)
		return;
	main_notify("STOPPING=1");
	log_info("signal %d: stopping (draining up to %u ms)", sig,
	    server.conf->drain_ms);
	server.draining = 1;
	listen_stop(&server);
	listen_close(server.listeners, server.nlisteners);
	server.listeners = NULL;
	server.nlisteners = 0;
	client_close_all(&server);
	sub_close_all(&server);
	streamup_stop(server.streamup);
	drain_deadline = ev_now(loop) + server.conf->drain_ms / 1000.0;
	drain_timer.data = &drain_deadline;
	ev_timer_init(&drain_timer, main_drain_cb, 0., 0.05);
	ev_timer_start(loop, &drain_timer);
}

static void
main_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	if (w->signum == SIGHUP)
		main_reload();
	else
		main_stop(loop, w->signum);
}

static int
main_check(const char *file)
{
	struct config	*conf;
	char		 err[1024];

	if ((conf = config_load(file, err, sizeof(err))) == NULL) {
		fprintf(stderr, "brokerd: %s\n", err);
		fprintf(stderr, "brokerd: configuration %s test failed\n",
		    file != NULL ? file : "(built-in defaults)");
		return (1);
	}
	log_init(LOG_LEVEL_WARN, 0);
	config_warnings(conf);
	printf("brokerd: configuration %s is ok\n",
	    file != NULL ? file : "(built-in defaults)");
	config_unref(conf);
	return (0);
}

static int
main_fingerprint(int argc, char *argv[], const char *file)
{
	struct config	*conf;
	char		 err[1024];
	const char	*url = "https://127.0.0.1:5000";
	int		 rc;

	if (argc > 2) {
		fprintf(stderr, "usage: brokerd gateway-fingerprint [url]\n");
		return (1);
	}
	if (argc == 2)
		return (fingerprint_cmd(argv[1], 5000));
	if ((conf = config_load(file, err, sizeof(err))) == NULL) {
		fprintf(stderr, "brokerd: %s\n", err);
		return (1);
	}
	rc = fingerprint_cmd(conf->gw_url != NULL ? conf->gw_url : url,
	    conf->gw_connect_timeout_ms);
	config_unref(conf);
	return (rc);
}

/* Everything the running daemon needs, opened in order; fatalx on failure. */
static void
main_start(struct config *conf)
{
	static const struct stream_callbacks cb = { sub_ready, sub_close_cb };
	struct stream_limits	 limits;
	char			 err[1024];

	server.loop = ev_default_loop(EVFLAG_AUTO);
	server.conf = conf;
	server.started_ms = now_ms();
	if ((server.metrics = metrics_new()) == NULL ||
	    (server.cache = cache_new()) == NULL)
		fatalx("out of memory");
	if ((server.upstream = upstream_new(server.loop, conf, server.metrics,
	    err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if (conf->journal_file != NULL && (server.journal = journal_open(
	    conf->journal_file, conf->journal_max_bytes, conf->journal_keep,
	    err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if ((server.session = session_new(server.loop, conf,
	    server.upstream)) == NULL)
		fatalx("out of memory");
	session_set_feed(server.session, forward_cache_feed, &server);
	main_stream_limits(conf, &limits);
	if ((server.stream = stream_new(&limits, &cb)) == NULL ||
	    (server.streamup = streamup_new(&server)) == NULL)
		fatalx("out of memory");
	if (listen_open(conf, &server.listeners, &server.nlisteners, err,
	    sizeof(err)) == -1)
		fatalx("%s", err);
	if (listen_start(&server) == -1)
		fatalx("out of memory");
}

/* After the loop: every connection goes, then what they used. */
static void
main_shutdown(void)
{
	server.draining = 0;		/* now every connection goes */
	client_close_all(&server);
	sub_free_all(&server);
	streamup_free(server.streamup);
	server.streamup = NULL;
	stream_free(server.stream);
	session_stop(server.session);
	session_free(server.session);
	upstream_free(server.upstream);
	cache_free(server.cache);
	metrics_free(server.metrics);
	journal_close(server.journal);
	log_info("stopped");
	config_unref(server.conf);
}

/* Start, serve until SIGTERM or SIGINT, drain, stop. */
static int
main_run(const char *file)
{
	struct config	*conf;
	ev_signal	 sigs[3];
	static const int signums[] = { SIGHUP, SIGTERM, SIGINT };
	char		 err[1024];
	size_t		 i;

	log_init(LOG_LEVEL_INFO, 0);
	if ((conf = config_load(file, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	log_init(verbose ? LOG_LEVEL_DEBUG : conf->log_level, conf->log_json);
	config_warnings(conf);
	signal(SIGPIPE, SIG_IGN);
	main_start(conf);
	for (i = 0; i < sizeof(signums) / sizeof(signums[0]); i++) {
		ev_signal_init(&sigs[i], main_signal_cb, signums[i]);
		ev_signal_start(server.loop, &sigs[i]);
	}
	session_start(server.session);
	log_info("brokerd: ready (version %s, pid %ld, gateway %s)",
	    BROKERD_VERSION, (long)getpid(), conf->gw_url);
	main_notify("READY=1");
	ev_run(server.loop, 0);
	main_shutdown();
	return (0);
}

int
main(int argc, char *argv[])
{
	struct stat	 st;
	int		 ch, check = 0;

	while ((ch = getopt(argc, argv, "+c:ftvVh")) != -1) {
		switch (ch) {
		case 'c':
			conf_file = optarg;
			break;
		case 'f':
			break;		/* always in the foreground */
		case 't':
			check = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'V':
			printf("brokerd %s\n", BROKERD_VERSION);
			return (0);
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (conf_file == NULL && stat(BROKERD_CONF, &st) == 0)
		conf_file = BROKERD_CONF;
	if (argc > 0 && strcmp(argv[0], "gateway-fingerprint") == 0)
		return (main_fingerprint(argc, argv, conf_file));
	if (argc > 0 && strcmp(argv[0], "migrate-env") == 0)
		return (migrate_cmd(argc, argv));
	if (argc > 0) {
		fprintf(stderr, "brokerd: unknown argument '%s'\n", argv[0]);
		usage();
	}
	if (check)
		return (main_check(conf_file));
	return (main_run(conf_file));
}
