/*
 * anthost-rpeer: the far end of AntHost's benchmarks on a real remote host (FreeBSD or
 * Linux), in plain POSIX C with no .NET. It serves, on the ports the benchmarks use:
 *
 *   TCP echo     7     every byte back
 *   UDP echo     7     every datagram back
 *   TCP discard  9     reads and drops everything; at the client's FIN closes its side
 *                      (so a sender can time until the last byte was read)
 *   TCP source  19     sends zeros until the client closes
 *   TCP RTT   5001     the AnT paper's RTT test: the client sends N as 4 bytes big-endian
 *                      (1..16 MiB), then rounds of N bytes; each round is answered with
 *                      one byte
 *
 * One thread per TCP connection (a benchmark opens a few at a time), blocking calls and
 * TCP_NODELAY, so an answer leaves as soon as the last byte of a round is in. The main
 * thread polls the listeners and the UDP socket. It prints "ready" once every port is
 * bound and runs until SIGINT or SIGTERM.
 *
 *   cc -O2 -pthread -o anthost-rpeer anthost-rpeer.c      (or: make)
 *   ./anthost-rpeer [-b ADDRESS] [-e 7] [-d 9] [-s 19] [-r 5001]
 *
 * Ports below 1024 need root (or, on Linux, net.ipv4.ip_unprivileged_port_start).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

enum service { ECHO, DISCARD, SOURCE, RTT, SERVICES };
static const char *names[SERVICES] = { "echo", "discard", "source", "rtt" };
static volatile sig_atomic_t stopping;

static void on_signal(int sig) { (void)sig; stopping = 1; }

static int read_exactly(int fd, unsigned char *buf, size_t n)
{
    while (n > 0) {
        ssize_t got = recv(fd, buf, n, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        buf += got;
        n -= (size_t)got;
    }
    return 0;
}

static int write_all(int fd, const unsigned char *buf, size_t n)
{
    while (n > 0) {
        ssize_t put = send(fd, buf, n, 0);
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) return -1;
        buf += put;
        n -= (size_t)put;
    }
    return 0;
}

struct conn { int fd; enum service what; };

static void *serve(void *arg)
{
    struct conn c = *(struct conn *)arg;
    free(arg);
    static const size_t size = 256 * 1024;
    unsigned char *buf = calloc(1, size);
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (buf == NULL) goto done;
    switch (c.what) {
    case ECHO:
        for (;;) {
            ssize_t got = recv(c.fd, buf, size, 0);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0 || write_all(c.fd, buf, (size_t)got) < 0) break;
        }
        shutdown(c.fd, SHUT_WR);
        break;
    case DISCARD:
        for (;;) {
            ssize_t got = recv(c.fd, buf, size, 0);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) break;
        }
        shutdown(c.fd, SHUT_WR);
        break;
    case SOURCE:
        while (write_all(c.fd, buf, size) == 0) { }
        break;
    case RTT: {
        unsigned char header[4], answer = 1;
        if (read_exactly(c.fd, header, 4) < 0) break;
        uint32_t n = ((uint32_t)header[0] << 24) | ((uint32_t)header[1] << 16) | ((uint32_t)header[2] << 8) | header[3];
        if (n < 1 || n > 16u << 20) break;
        for (;;) {
            uint32_t left = n;
            while (left > 0) {
                ssize_t got = recv(c.fd, buf, left < size ? left : size, 0);
                if (got < 0 && errno == EINTR) continue;
                if (got <= 0) goto done;
                left -= (uint32_t)got;
            }
            if (write_all(c.fd, &answer, 1) < 0) break;
        }
        break;
    }
    default:
        break;
    }
done:
    free(buf);
    close(c.fd);
    return NULL;
}

static int listen_on(struct in_addr address, int port, int type)
{
    int fd = socket(AF_INET, type, 0), one = 1;
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr = address;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || (type == SOCK_STREAM && listen(fd, 128) < 0)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int port_arg(const char *text, const char *what)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < 1 || v > 65535) {
        fprintf(stderr, "anthost-rpeer: %s port '%s' is not 1..65535\n", what, text);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    struct in_addr address = { htonl(INADDR_ANY) };
    int ports[SERVICES] = { 7, 9, 19, 5001 };
    int opt;
    while ((opt = getopt(argc, argv, "b:e:d:s:r:h")) != -1) {
        switch (opt) {
        case 'b':
            if (inet_pton(AF_INET, optarg, &address) != 1) {
                fprintf(stderr, "anthost-rpeer: -b '%s' is not an IPv4 address\n", optarg);
                return 2;
            }
            break;
        case 'e': ports[ECHO] = port_arg(optarg, "echo"); break;
        case 'd': ports[DISCARD] = port_arg(optarg, "discard"); break;
        case 's': ports[SOURCE] = port_arg(optarg, "source"); break;
        case 'r': ports[RTT] = port_arg(optarg, "rtt"); break;
        default:
            fprintf(stderr, "usage: anthost-rpeer [-b ADDRESS] [-e ECHO=7] [-d DISCARD=9] [-s SOURCE=19] [-r RTT=5001]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll returns EINTR and the loop ends */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct pollfd fds[SERVICES + 1];
    for (int i = 0; i < SERVICES; i++) {
        fds[i].fd = listen_on(address, ports[i], SOCK_STREAM);
        fds[i].events = POLLIN;
        if (fds[i].fd < 0) {
            fprintf(stderr, "anthost-rpeer: cannot listen on tcp port %d (%s): %s\n", ports[i], names[i], strerror(errno));
            return 1;
        }
    }
    fds[SERVICES].fd = listen_on(address, ports[ECHO], SOCK_DGRAM);
    fds[SERVICES].events = POLLIN;
    if (fds[SERVICES].fd < 0) {
        fprintf(stderr, "anthost-rpeer: cannot bind udp port %d (echo): %s\n", ports[ECHO], strerror(errno));
        return 1;
    }
    printf("ready: tcp echo %d, udp echo %d, discard %d, source %d, rtt %d\n", ports[ECHO], ports[ECHO], ports[DISCARD], ports[SOURCE], ports[RTT]);
    fflush(stdout);

    static unsigned char datagram[65536];
    while (!stopping) {
        if (poll(fds, SERVICES + 1, -1) < 0) {
            if (errno == EINTR) continue;
            perror("anthost-rpeer: poll");
            return 1;
        }
        for (int i = 0; i < SERVICES; i++) {
            if (!(fds[i].revents & POLLIN)) continue;
            int fd = accept(fds[i].fd, NULL, NULL);
            if (fd < 0) continue;
            struct conn *c = malloc(sizeof *c);
            pthread_t t;
            if (c == NULL) { close(fd); continue; }
            c->fd = fd;
            c->what = (enum service)i;
            if (pthread_create(&t, NULL, serve, c) != 0) { free(c); close(fd); continue; }
            pthread_detach(t);
        }
        if (fds[SERVICES].revents & POLLIN) {
            struct sockaddr_in from;
            socklen_t len = sizeof from;
            ssize_t got = recvfrom(fds[SERVICES].fd, datagram, sizeof datagram, 0, (struct sockaddr *)&from, &len);
            if (got >= 0) sendto(fds[SERVICES].fd, datagram, (size_t)got, 0, (struct sockaddr *)&from, len);
        }
    }
    return 0;
}
