/*
 * The listening sockets: the Unix socket (mode, group, stale file), the
 * optional loopback TCP port, or the ones systemd passes (LISTEN_FDS).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brokerd.h"
#include "value.h"

#define LISTEN_BACKLOG	511
#define LISTEN_FDS_START 3

static int	 listen_activated;	/* sockets came from systemd */

static int
listen_nonblock(int fd)
{
	int	 fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1)
		return (-1);
	return (0);
}

static int
listen_add(struct listener **ls, size_t *n, int fd, int is_unix,
    const char *name)
{
	struct listener	*p;

	if ((p = reallocarray(*ls, *n + 1, sizeof(**ls))) == NULL)
		return (-1);
	*ls = p;
	p = &(*ls)[*n];
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->is_unix = is_unix;
	snprintf(p->name, sizeof(p->name), "%s", name);
	(*n)++;
	return (0);
}

/* mkdir -p for the socket's folder, 0755 for what we create. */
static int
listen_mkdirs(const char *path)
{
	char	 dir[4096];
	char	*p;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return (-1);
	if ((p = strrchr(dir, '/')) == NULL || p == dir)
		return (0);
	*p = '\0';
	for (p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) == -1 && errno != EEXIST)
			return (-1);
		*p = '/';
	}
	if (mkdir(dir, 0755) == -1 && errno != EEXIST)
		return (-1);
	return (0);
}

/*
 * A socket file nobody accepts on is stale and goes; a live one means
 * another brokerd, and we refuse rather than steal its clients.
 */
static int
listen_stale(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	int			 fd, rc, saved;

	if (lstat(path, &st) == -1)
		return (errno == ENOENT ? 0 : -1);
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return (-1);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return (-1);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	saved = errno;
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "%s: another process is listening "
		    "there (is brokerd already running?)", path);
		return (-1);
	}
	/* Only a refusal proves nobody listens; EACCES proves nothing. */
	if (saved != ECONNREFUSED) {
		snprintf(err, errlen, "%s: cannot tell whether it is in use "
		    "(%s); not removing it", path, strerror(saved));
		return (-1);
	}
	if (unlink(path) == -1 && errno != ENOENT)
		return (-1);
	log_info("removed stale socket %s", path);
	return (0);
}

static int
listen_unix(const struct config *conf, struct listener **ls, size_t *n,
    char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct group		*gr;
	mode_t			 old;
	int			 fd = -1, rc;
	char			 name[128];

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (snprintf(sun.sun_path, sizeof(sun.sun_path), "%s",
	    conf->unix_path) >= (int)sizeof(sun.sun_path)) {
		snprintf(err, errlen, "%s: socket path too long",
		    conf->unix_path);
		return (-1);
	}
	if (listen_mkdirs(conf->unix_path) == -1) {
		snprintf(err, errlen, "%s: cannot create its folder: %s",
		    conf->unix_path, strerror(errno));
		return (-1);
	}
	err[0] = '\0';
	if (listen_stale(conf->unix_path, err, errlen) == -1) {
		if (err[0] == '\0')
			snprintf(err, errlen, "%s: %s", conf->unix_path,
			    strerror(errno));
		return (-1);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		goto fail;
	/* No window in which the socket has wider permissions. */
	old = umask(~conf->unix_mode & 0777);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc == -1)
		goto fail;
	if (conf->unix_group != NULL) {
		if ((gr = getgrnam(conf->unix_group)) == NULL) {
			if (!conf->unix_group_default) {
				snprintf(err, errlen, "%s: group %s does not "
				    "exist", conf->unix_path, conf->unix_group);
				goto fail2;
			}
			log_warn("%s: group %s does not exist; the socket "
			    "keeps brokerd's group", conf->unix_path,
			    conf->unix_group);
		} else if (lchown(conf->unix_path, (uid_t)-1, gr->gr_gid) ==
		    -1)
			goto fail;
	}
	/*
	 * The umask gave the mode; no chmod by path, which a symlink swapped
	 * in after bind() could point elsewhere (lchown above for the same).
	 */
	if (listen(fd, LISTEN_BACKLOG) == -1 || listen_nonblock(fd) == -1)
		goto fail;
	snprintf(name, sizeof(name), "unix %s", conf->unix_path);
	if (listen_add(ls, n, fd, 1, name) == -1)
		goto fail;
	log_info("listening on unix %s (mode %04o)", conf->unix_path,
	    (unsigned)conf->unix_mode);
	return (0);
 fail:
	snprintf(err, errlen, "%s: %s", conf->unix_path, strerror(errno));
 fail2:
	if (fd != -1) {
		close(fd);
		unlink(conf->unix_path);
	}
	return (-1);
}

static void
listen_addr_name(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char	 host[64];

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const void *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, ntohs(s4->sin_port));
	}
}

static int
listen_tcp(const struct config *conf, struct listener **ls, size_t *n,
    char *err, size_t errlen)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof(ss);
	int			 fd, one = 1;
	char			 addr[96], name[128];

	if ((fd = socket(conf->tcp_addr.ss_family, SOCK_STREAM, 0)) == -1)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (conf->tcp_addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&conf->tcp_addr,
	    conf->tcp_addrlen) == -1 || listen(fd, LISTEN_BACKLOG) == -1 ||
	    listen_nonblock(fd) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
		goto fail;
	listen_addr_name(&ss, addr, sizeof(addr));
	snprintf(name, sizeof(name), "tcp %s", addr);
	if (listen_add(ls, n, fd, 0, name) == -1)
		goto fail;
	log_info("listening on tcp %s", addr);
	return (0);
 fail:
	snprintf(err, errlen, "listen.tcp %s: %s", conf->tcp, strerror(errno));
	if (fd != -1)
		close(fd);
	return (-1);
}

/*
 * systemd socket activation: LISTEN_PID is us, LISTEN_FDS sockets from 3.
 * A passed TCP socket must be loopback too, like listen.tcp.
 */
static int
listen_systemd(struct listener **ls, size_t *n)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl;
	const char		*pid, *fds;
	char			 name[128], addr[96];
	int			 i, count;

	if ((pid = getenv("LISTEN_PID")) == NULL ||
	    (fds = getenv("LISTEN_FDS")) == NULL ||
	    atol(pid) != (long)getpid())
		return (0);
	count = atoi(fds);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	for (i = 0; i < count; i++) {
		int fd = LISTEN_FDS_START + i;

		sl = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1 ||
		    listen_nonblock(fd) == -1)
			return (-1);
		if (ss.ss_family == AF_UNIX)
			snprintf(name, sizeof(name), "unix (systemd fd %d)",
			    fd);
		else {
			listen_addr_name(&ss, addr, sizeof(addr));
			if (!value_is_loopback(&ss)) {
				log_warn("systemd fd %d: %s is not a loopback "
				    "address", fd, addr);
				errno = EADDRNOTAVAIL;
				return (-1);
			}
			snprintf(name, sizeof(name), "tcp %s (systemd)", addr);
		}
		if (listen_add(ls, n, fd, ss.ss_family == AF_UNIX, name) == -1)
			return (-1);
		log_info("listening on %s", name);
	}
	listen_activated = count > 0;
	return (count);
}

int
listen_open(const struct config *conf, struct listener **ls, size_t *n,
    char *err, size_t errlen)
{
	int	 rc;

	*ls = NULL;
	*n = 0;
	if ((rc = listen_systemd(ls, n)) == -1) {
		snprintf(err, errlen, "LISTEN_FDS: %s", strerror(errno));
		goto fail;
	}
	if (rc > 0)
		return (0);
	if (conf->unix_path != NULL &&
	    listen_unix(conf, ls, n, err, errlen) == -1)
		goto fail;
	if (conf->tcp != NULL && listen_tcp(conf, ls, n, err, errlen) == -1)
		goto fail;
	if (*n == 0) {
		snprintf(err, errlen, "nothing to listen on");
		goto fail;
	}
	return (0);
 fail:
	listen_close(*ls, *n, conf);
	*ls = NULL;
	*n = 0;
	return (-1);
}

void
listen_close(struct listener *ls, size_t n, const struct config *conf)
{
	size_t	 i;
	int	 had_unix = 0;

	for (i = 0; i < n; i++) {
		if (ls[i].fd != -1)
			close(ls[i].fd);
		if (ls[i].is_unix)
			had_unix = 1;
	}
	free(ls);
	if (had_unix && !listen_activated && conf != NULL &&
	    conf->unix_path != NULL)
		unlink(conf->unix_path);
}
