/*
 * systemd integration without systemd: Type=notify messages on a datagram
 * socket named by NOTIFY_SOCKET, and socket activation through LISTEN_FDS.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stddef.h>
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

/*
 * config/brokerd.service denies @privileged, which holds @chown: every
 * chown(2) fails with EPERM there.  The child gets the same refusal.
 */
static void
deny_chown(void)
{
	struct sock_filter	 f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    offsetof(struct seccomp_data, nr)),
#ifdef __NR_chown
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_chown, 4, 0),
#else
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fchownat, 4, 0),
#endif
#ifdef __NR_lchown
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_lchown, 3, 0),
#else
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fchownat, 3, 0),
#endif
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fchown, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fchownat, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO |
		    (EPERM & SECCOMP_RET_DATA)),
	};
	struct sock_fprog	 prog = { sizeof(f) / sizeof(f[0]), f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == -1)
		_exit(124);
}

/*
 * Under the shipped unit (User= and Group=brokerd, chown denied) the
 * socket is born in listen.unix.group already: brokerd must start, not
 * fail on a chown that would change nothing.
 */
Test(systemd, unit_without_chown_starts_with_its_own_group, .timeout = 30)
{
	struct brokerd	 b;
	struct group	*gr;
	struct stat	 st;
	char		 extra[700], *log;
	double		 deadline;
	int		 fd, status, ready = 0;
	pid_t		 self;

	cr_assert_not_null(gr = getgrgid(getegid()));
	memset(&b, 0, sizeof(b));
	cr_assert_eq(brokerd_write_conf(&b, NULL, NULL), 0);
	snprintf(extra, sizeof(extra), "listen:\n  unix: { path: %s, mode: "
	    "\"0660\", group: %s }\n", b.sock, gr->gr_name);
	cr_assert_eq(brokerd_write_conf(&b, NULL, extra), 0);
	self = getpid();
	cr_assert_neq(b.pid = fork(), -1);
	if (b.pid == 0) {
		child_tie(self);
		if ((fd = open(b.log, O_WRONLY | O_CREAT | O_APPEND,
		    0644)) == -1)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		unsetenv("IBKR_BRIDGE_KEY");
		unsetenv("IBKR_BRIDGE_URL");
		unsetenv("IBKR_GATEWAY_URL");
		unsetenv("NOTIFY_SOCKET");
		unsetenv("LISTEN_FDS");
		deny_chown();
		execl(getenv("BROKERD_BIN") ? getenv("BROKERD_BIN") :
		    "build/brokerd", "brokerd", "-f", "-c", b.conf,
		    (char *)NULL);
		_exit(127);
	}
	deadline = mono_s() + 10;
	while (!ready && mono_s() < deadline) {
		if (waitpid(b.pid, &status, WNOHANG) == b.pid) {
			b.pid = 0;
			break;
		}
		if ((log = slurp(b.log, NULL)) != NULL) {
			ready = strstr(log, "brokerd: ready") != NULL;
			free(log);
		}
		sleep_ms(10);
	}
	log = slurp(b.log, NULL);
	cr_assert(ready, "brokerd did not start without chown: %s",
	    log != NULL ? log : "");
	free(log);
	cr_assert_eq(stat(b.sock, &st), 0);
	cr_assert_eq(st.st_gid, gr->gr_gid);
	cr_assert_eq(st.st_mode & 0777, 0660);
	brokerd_stop(&b);
}
