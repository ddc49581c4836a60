/*
 * `brokerd gateway-fingerprint [URL]`: connect once, blocking, print the
 * SHA-256 of the certificate the Gateway presents, and on stderr the
 * cipher suite the handshake settled on.  No verification on purpose (it
 * shows what to pin); otherwise tls.c's settings, so that what it reaches
 * is what the daemon would.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>

#include "brokerd.h"
#include "tls.h"
#include "value.h"

/* One blocking TLS client connection. */
struct fp {
	struct tls_rng		 rng;
	mbedtls_ssl_config	 conf;
	mbedtls_ssl_context	 ssl;
	mbedtls_net_context	 net;
};

/* Wait for a non-blocking connect; 0 or the errno it ended with. */
static int
connect_wait(int fd, unsigned timeout_ms)
{
	struct pollfd	 pfd;
	socklen_t	 len;
	int		 r, soerr = 0;

	pfd.fd = fd;
	pfd.events = POLLOUT;
	if ((r = poll(&pfd, 1, (int)timeout_ms)) <= 0)
		return (r == 0 ? ETIMEDOUT : errno);
	len = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		return (errno);
	return (soerr);
}

/* Blocking connect with a deadline; the fd is left blocking. */
static int
connect_timeout(const char *host, const char *port, unsigned timeout_ms,
    char *err, size_t errlen)
{
	struct addrinfo	 hints, *res = NULL, *ai;
	struct timeval	 tv;
	int		 fd = -1, r, soerr = 0, flags;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		(void)snprintf(err, errlen, "cannot resolve %s: %s", host,
		    gai_strerror(r));
		return (-1);
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype |
		    SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol)) == -1) {
			soerr = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
			soerr = errno == EINPROGRESS ?
			    connect_wait(fd, timeout_ms) : errno;
			if (soerr != 0) {
				close(fd);
				fd = -1;
				continue;
			}
		}
		if ((flags = fcntl(fd, F_GETFL)) != -1)
			(void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
		tv.tv_sec = timeout_ms / 1000;
		tv.tv_usec = (timeout_ms % 1000) * 1000;
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		freeaddrinfo(res);
		return (fd);
	}
	freeaddrinfo(res);
	(void)snprintf(err, errlen, "connect to %s port %s: %s", host, port,
	    strerror(soerr));
	return (-1);
}

/* Connect and shake hands; -1 with err set. */
static int
fp_handshake(struct fp *f, const char *host, const char *port,
    unsigned timeout_ms, char *err, size_t errlen)
{
	char	 e[128];
	int	 ret;

	if ((ret = tls_conf_base(&f->conf, &f->rng)) != 0)
		goto tlsfail;
	mbedtls_ssl_conf_authmode(&f->conf, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_read_timeout(&f->conf, timeout_ms);
	if ((ret = mbedtls_ssl_setup(&f->ssl, &f->conf)) != 0 ||
	    (ret = tls_set_hostname(&f->ssl, host)) != 0)
		goto tlsfail;
	if ((f->net.fd = connect_timeout(host, port, timeout_ms, err,
	    errlen)) == -1)
		return (-1);
	mbedtls_ssl_set_bio(&f->ssl, &f->net, mbedtls_net_send, NULL,
	    mbedtls_net_recv_timeout);
	while ((ret = mbedtls_ssl_handshake(&f->ssl)) != 0)
		if (ret != MBEDTLS_ERR_SSL_WANT_READ &&
		    ret != MBEDTLS_ERR_SSL_WANT_WRITE)
			goto tlsfail;
	return (0);
tlsfail:
	mbedtls_strerror(ret, e, sizeof(e));
	snprintf(err, errlen, "TLS: %s", e);
	return (-1);
}

/* The fingerprint alone goes to stdout, for scripts; the rest to stderr. */
int
fingerprint_cmd(const char *url, unsigned timeout_ms)
{
	struct fp		 f;
	const mbedtls_x509_crt	*peer;
	char			 host[256], port[8], err[512], hex[96];
	int			 rc = 1;

	if (url == NULL || *url == '\0')
		url = "https://127.0.0.1:5000";
	if (timeout_ms == 0)
		timeout_ms = 5000;
	mbedtls_ssl_config_init(&f.conf);
	mbedtls_ssl_init(&f.ssl);
	mbedtls_net_init(&f.net);
	if (tls_rng_init(&f.rng, "brokerd fingerprint", err,
	    sizeof(err)) == -1 ||
	    value_https_url(url, host, sizeof(host), port, sizeof(port), err,
	    sizeof(err)) == -1 ||
	    fp_handshake(&f, host, port, timeout_ms, err, sizeof(err)) == -1)
		goto out;
	if ((peer = mbedtls_ssl_get_peer_cert(&f.ssl)) == NULL) {
		snprintf(err, sizeof(err), "no certificate from the server");
		goto out;
	}
	if (tls_fingerprint(peer, hex, sizeof(hex)) == -1) {
		snprintf(err, sizeof(err), "TLS: SHA-256 failed");
		goto out;
	}
	printf("%s\n", hex);
	fflush(stdout);
	fprintf(stderr, "negotiated %s %s\n", mbedtls_ssl_get_version(&f.ssl),
	    mbedtls_ssl_get_ciphersuite(&f.ssl));
	fprintf(stderr, "paste into gateway.tls.pin_sha256 (certificate "
	    "valid until %04d-%02d-%02d; expiry does not matter when "
	    "pinned)\n", peer->valid_to.year, peer->valid_to.mon,
	    peer->valid_to.day);
	(void)mbedtls_ssl_close_notify(&f.ssl);
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "brokerd: gateway-fingerprint %s: %s\n", url,
		    err);
	mbedtls_net_free(&f.net);
	mbedtls_ssl_free(&f.ssl);
	mbedtls_ssl_config_free(&f.conf);
	tls_rng_free(&f.rng);
	return (rc);
}
