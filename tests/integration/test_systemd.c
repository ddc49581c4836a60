/*
 * systemd integration without systemd: Type=notify messages on a datagram
 * socket named by NOTIFY_SOCKET, and socket activation through LISTEN_FDS.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"

/* Wait for a datagram containing `want`; 0 when it came. */
static int
notify_wait(int fd, const char *want, int ms)
{
	char		 buf[512];
	struct pollfd	 p = { fd, POLLIN, 0 };
	double		 end = mono_s() + ms / 1000.0;
	ssize_t		 n;

	while (mono_s() < end) {
		if (poll(&p, 1, 50) <= 0)
			continue;
		if ((n = recv(fd, buf, sizeof(buf) - 1, 0)) <= 0)
			continue;
		buf[n] = '\0';
		if (strstr(buf, want) != NULL)
			return (0);
	}
	return (-1);
}

Test(systemd, notify_ready_reloading_stopping, .timeout = 30)
{
	struct brokerd		 b;
	struct sockaddr_un	 sun;
	char			 path[100], env[150];
	char			*envv[] = { env, NULL };
	int			 fd;

	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, NULL, NULL), 0);
	cr_assert_lt(snprintf(path, sizeof(path), "%s/notify", b.dir),
	    (int)sizeof(path));
	cr_assert_neq(fd = socket(AF_UNIX, SOCK_DGRAM, 0), -1);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	cr_assert_lt(snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s", path),
	    (int)sizeof(env));
	cr_assert_eq(brokerd_spawn(&b, envv), 0);
	cr_assert_eq(notify_wait(fd, "READY=1", 3000), 0, "no READY=1");
	brokerd_signal(&b, SIGHUP);
	cr_assert_eq(notify_wait(fd, "RELOADING=1", 3000), 0);
	cr_assert_eq(notify_wait(fd, "READY=1", 3000), 0);
	brokerd_signal(&b, SIGTERM);
	cr_assert_eq(notify_wait(fd, "STOPPING=1", 3000), 0);
	cr_assert_eq(brokerd_wait(&b, 5000), 0);
	cr_assert_eq(b.exit_status, 0);
	close(fd);
	brokerd_stop(&b);
}

Test(systemd, socket_activation, .timeout = 30)
{
	struct brokerd		 b;
	struct sockaddr_un	 sun;
	struct resp		 r;
	char			 path[100];
	int			 fd;

	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, NULL, NULL), 0);
	/* systemd made this socket: brokerd must use it, not its own path */
	cr_assert_lt(snprintf(path, sizeof(path), "%s/activated.sock", b.dir),
	    (int)sizeof(path));
	cr_assert_neq(fd = socket(AF_UNIX, SOCK_STREAM, 0), -1);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	cr_assert_eq(listen(fd, 16), 0);
	cr_assert_eq(brokerd_spawn_activated(&b, fd), 0);
	close(fd);
	cr_assert(brokerd_log_has(&b, "systemd"), "activation not used");
	cr_assert_neq(access(b.sock, F_OK), 0, "made its own socket too");
	memcpy(b.sock, path, strlen(path) + 1);
	cr_assert_eq(req_unix(&b, "GET", "/health", NULL, NULL, 0, &r), 0);
	cr_assert_eq(r.status, 200);
	resp_free(&r);
	brokerd_signal(&b, SIGTERM);
	cr_assert_eq(brokerd_wait(&b, 5000), 0);
	cr_assert_eq(b.exit_status, 0);
	/* the socket belongs to systemd: it stays */
	cr_assert_eq(access(path, F_OK), 0);
	brokerd_stop(&b);
}
