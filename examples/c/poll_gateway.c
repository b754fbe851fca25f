/*
 * poll_gateway: a customer gateway for a whole VPN connection (both tunnels
 * of a `vpn_connection` from include/vpn.h), driven the way appliance
 * firmware would drive it: plain UDP sockets, a Linux TUN device and one
 * poll() loop. The C counterpart of examples/connection_gateway.rs.
 *
 * Usage (as root, e.g. inside a network namespace):
 *
 *   poll_gateway --config FILE [--tun NAME] [--tun-addr A.B.C.D/LEN]
 *                [--route PREFIX]... [--mtu N] [--no-connect]
 *
 *   --config FILE   the connection configuration: TOML, JSON or AWS's
 *                   CustomerGatewayConfiguration XML (told apart by the first
 *                   character: '<' XML, '{' JSON, anything else TOML)
 *   --tun NAME      TUN device to create (default vpn0)
 *   --tun-addr A/L  address given to the TUN device (default: none)
 *   --route PREFIX  prefix routed into the TUN device (repeatable, up to 16)
 *   --mtu N         TUN MTU (default: the configuration's tunnel MTU)
 *   --no-connect    do not bring the tunnels up at start (stdin `connect`)
 *
 * The UDP sockets (ports 500 and 4500) are bound on every local outside
 * address the configuration's tunnels use. The TUN address, MTU and routes
 * are set by running `ip`.
 *
 * The loop. Everything protocol-related (IKE, ESP, DPD, rekeys, routing,
 * failover) is the library's; this program only moves bytes and keeps time:
 *
 *   1. poll() the signalfd, stdin, the TUN fd and every UDP socket, with the
 *      timeout the connection asks for (vpn_connection_poll_timeout, an
 *      absolute CLOCK_MONOTONIC time in nanoseconds);
 *   2. a datagram goes to vpn_connection_handle_datagram; a decrypted inner
 *      packet it yields is written to the TUN device;
 *   3. a TUN packet is read at offset vpn_connection_headroom (tailroom kept
 *      free behind it) and sealed in place by vpn_connection_send_packet,
 *      then sent (or, for an ICMP "fragmentation needed", written back);
 *   4. when the deadline has passed, vpn_connection_handle_timeout;
 *   5. after every step: drain vpn_connection_poll_transmit (each datagram
 *      leaves from the socket bound to its local address and port) and
 *      vpn_connection_poll_event, and note active tunnel changes.
 *
 * Output, for a supervisor (one JSON object per line on stdout, logs on
 * stderr):
 *   {"event":"ready",...}          sockets and TUN exist
 *   {"event":"event","tunnel":1,"kind":"state_changed","state":"up","text":..}
 *                                  one per connection event (tunnel 1-based
 *                                  or null; state only for state changes)
 *   {"event":"active_tunnel","from":null,"to":1}
 *   {"event":"status",...}         per-tunnel state, packets and bytes
 *   {"event":"metrics","text":..}  Prometheus text
 *   {"event":"error","message":..}
 *   {"event":"stopped",...}        last line (same fields as status)
 *
 * stdin commands, one per line: `status`, `metrics`, `connect`, `down N`,
 * `up N` (N = tunnel 1 or 2, administratively); {"cmd":"status"} style JSON
 * lines are accepted for the commands without arguments.
 *
 * SIGTERM/SIGINT (read from a signalfd): every tunnel is administratively
 * closed (IKE DELETEs), the sockets are served until all tunnels are down or
 * 2 s have passed, `stopped` is printed and the program exits 0. A second
 * signal stops at once.
 *
 * Build: tests/c/run.sh compiles it (C11, -Wall -Wextra -Werror -pedantic)
 * against target/<profile>/libvpn.a.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vpn.h"

#define IKE_PORT 500
#define NAT_T_PORT 4500
#define MAX_TUNNELS 2
#define MAX_SOCKETS (2 * MAX_TUNNELS)
#define MAX_ROUTES 16
#define BATCH 64 /* datagrams or packets handled per wake-up of one fd */
#define NS_PER_MS 1000000ull
#define STOP_LINGER_NS (2000ull * NS_PER_MS)
#define EVENT_TEXT_LEN 512
#define NAME_LEN 128

/* ------------------------------------------------------------------ types */

struct options {
  const char *config_path;
  const char *tun_name;
  const char *tun_addr;
  const char *routes[MAX_ROUTES];
  size_t route_count;
  unsigned mtu; /* 0: the configuration's */
  bool connect;
};

struct udp_socket {
  int fd;
  vpn_socket_addr local; /* the address and port it is bound to */
};

/* Occurrences of recurring problems, for rate-limited logs. */
struct counters {
  uint64_t udp_send;
  uint64_t udp_recv;
  uint64_t tun_read;
  uint64_t tun_write;
  uint64_t not_sent;
  uint64_t dropped;
  uint64_t lib;
};

struct gateway {
  vpn_connection *conn;
  char name[NAME_LEN];
  struct udp_socket socks[MAX_SOCKETS];
  size_t sock_count;
  int tun_fd;
  int sig_fd;
  bool stdin_open;
  char line[1024];
  size_t line_len;
  bool line_too_long;
  int32_t last_active;
  bool stopping;
  bool stop_now;
  uint64_t stop_deadline;
  struct counters count;
};

/* One datagram or packet at a time; both are large enough for anything the
 * library or the kernel hands over. */
static uint8_t packet_buf[VPN_MAX_DATAGRAM + 2048];
static uint8_t control_buf[VPN_MAX_DATAGRAM];

/* ------------------------------------------------------------------ logs */

static void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void log_msg(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("poll_gateway: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* True for the 1st..5th and then every 1000th occurrence. */
static bool worth_logging(uint64_t *count) {
  *count += 1;
  return *count <= 5 || *count % 1000 == 0;
}

/* ------------------------------------------------------------------ JSON lines */

/* A growing line of JSON; on allocation failure it is dropped whole. */
struct out {
  char *s;
  size_t n;
  size_t cap;
  bool failed;
};

static void out_raw(struct out *o, const char *s, size_t len) {
  if (o->failed) {
    return;
  }
  if (o->n + len + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 256;
    while (cap < o->n + len + 1) {
      cap *= 2;
    }
    char *grown = realloc(o->s, cap);
    if (grown == NULL) {
      o->failed = true;
      return;
    }
    o->s = grown;
    o->cap = cap;
  }
  memcpy(o->s + o->n, s, len);
  o->n += len;
  o->s[o->n] = '\0';
}

static void out_fmt(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* For numbers and other short, already safe text. */
static void out_fmt(struct out *o, const char *fmt, ...) {
  char tmp[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof tmp) {
    o->failed = true;
    return;
  }
  out_raw(o, tmp, (size_t)n);
}

/* A JSON string, quoted and escaped. */
static void out_str(struct out *o, const char *s) {
  out_raw(o, "\"", 1);
  for (const char *p = s; *p != '\0'; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      out_raw(o, esc, 2);
    } else if (c < 0x20) {
      out_fmt(o, "\\u%04x", c);
    } else {
      out_raw(o, p, 1);
    }
  }
  out_raw(o, "\"", 1);
}

static void out_key(struct out *o, const char *key) {
  out_raw(o, ",", 1);
  out_str(o, key);
  out_raw(o, ":", 1);
}

/* A 1-based tunnel number, or null for -1. */
static void out_tunnel(struct out *o, const char *key, int32_t tunnel) {
  out_key(o, key);
  if (tunnel < 0) {
    out_raw(o, "null", 4);
  } else {
    out_fmt(o, "%" PRId32, tunnel + 1);
  }
}

static void out_begin(struct out *o, const char *event) {
  memset(o, 0, sizeof *o);
  out_raw(o, "{\"event\":", 9);
  out_str(o, event);
}

/* Closes the object and writes the line to stdout. */
static void out_end(struct out *o) {
  out_raw(o, "}\n", 2);
  if (o->failed) {
    log_msg("out of memory: an output line was dropped");
  } else if (fputs(o->s, stdout) == EOF || fflush(stdout) == EOF) {
    static uint64_t failures;
    if (worth_logging(&failures)) {
      log_msg("cannot write to stdout: %s", strerror(errno));
    }
  }
  free(o->s);
  o->s = NULL;
}

static void emit_error(const char *message) {
  struct out o;
  log_msg("error: %s", message);
  out_begin(&o, "error");
  out_key(&o, "message");
  out_str(&o, message);
  out_end(&o);
}

/* ------------------------------------------------------------------ library errors */

/* The library's text for a result code. */
static void result_text(vpn_result r, char *buf, size_t len) {
  size_t n = 0;
  if (vpn_result_message(r, buf, len, &n) != VPN_OK) {
    snprintf(buf, len, "error %" PRIu32, (uint32_t)r);
  }
}

/* Reports a failed call; `details` adds the configuration errors that
 * vpn_config_* and vpn_connection_new record (never a pre-shared key). */
static void report_failure(const char *what, vpn_result r, bool details) {
  char result[256];
  result_text(r, result, sizeof result);
  size_t need = 0;
  char *extra = NULL;
  if (details && vpn_last_error_count() > 0 &&
      vpn_last_error_message(NULL, 0, &need) == VPN_ERR_BUFFER_TOO_SMALL) {
    extra = malloc(need);
    if (extra != NULL && vpn_last_error_message(extra, need, &need) != VPN_OK) {
      free(extra);
      extra = NULL;
    }
  }
  struct out msg;
  memset(&msg, 0, sizeof msg);
  out_fmt(&msg, "%.60s: ", what);
  out_raw(&msg, result, strlen(result));
  if (extra != NULL) {
    out_raw(&msg, ": ", 2);
    out_raw(&msg, extra, strlen(extra));
  }
  emit_error(msg.failed ? what : msg.s);
  free(msg.s);
  free(extra);
}

/* ------------------------------------------------------------------ time and addresses */

static uint64_t now_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
    /* Cannot happen on Linux; without a clock there is no protocol. */
    log_msg("clock_gettime(CLOCK_MONOTONIC): %s", strerror(errno));
    abort();
  }
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Milliseconds for poll() until `due` (rounded up), -1 for never. */
static int poll_ms(uint64_t due, uint64_t now) {
  if (due == UINT64_MAX) {
    return -1;
  }
  if (due <= now) {
    return 0;
  }
  uint64_t ms = (due - now + NS_PER_MS - 1) / NS_PER_MS;
  return ms > INT_MAX ? INT_MAX : (int)ms;
}

static bool to_sockaddr(const vpn_socket_addr *a, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  if (a->family == VPN_AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(a->port);
    memcpy(&sin->sin_addr, a->addr, 4);
    *len = sizeof *sin;
    return true;
  }
  if (a->family == VPN_AF_INET6) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(a->port);
    memcpy(&sin6->sin6_addr, a->addr, 16);
    *len = sizeof *sin6;
    return true;
  }
  return false;
}

static bool from_sockaddr(const struct sockaddr_storage *ss, vpn_socket_addr *a) {
  memset(a, 0, sizeof *a);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    a->family = VPN_AF_INET;
    a->port = ntohs(sin->sin_port);
    memcpy(a->addr, &sin->sin_addr, 4);
    return true;
  }
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    a->family = VPN_AF_INET6;
    a->port = ntohs(sin6->sin6_port);
    memcpy(a->addr, &sin6->sin6_addr, 16);
    return true;
  }
  return false;
}

static bool same_ip(const vpn_socket_addr *a, const vpn_socket_addr *b) {
  return a->family == b->family && memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

/* The address without its port, for humans and JSON. */
static void ip_text(const vpn_socket_addr *a, char *buf, size_t len) {
  int af = a->family == VPN_AF_INET6 ? AF_INET6 : AF_INET;
  if (inet_ntop(af, a->addr, buf, (socklen_t)len) == NULL) {
    snprintf(buf, len, "?");
  }
}

/* "192.0.2.1:500" for logs. */
static void endpoint_text(const vpn_socket_addr *a, char *buf, size_t len) {
  size_t n = 0;
  if (vpn_socket_addr_format(a, buf, len, &n) != VPN_OK) {
    snprintf(buf, len, "?");
  }
}

/* ------------------------------------------------------------------ setup */

static void usage(void) {
  fputs("usage: poll_gateway --config FILE [--tun NAME] [--tun-addr A.B.C.D/LEN]\n"
        "                    [--route PREFIX]... [--mtu N] [--no-connect]\n",
        stderr);
}

static bool parse_args(int argc, char **argv, struct options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->tun_name = "vpn0";
  opt->connect = true;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    bool takes_value = true;
    if (strcmp(arg, "--no-connect") == 0) {
      opt->connect = false;
      takes_value = false;
    } else if (val == NULL) {
      log_msg("%s: missing value or unknown argument", arg);
      return false;
    } else if (strcmp(arg, "--config") == 0) {
      opt->config_path = val;
    } else if (strcmp(arg, "--tun") == 0) {
      opt->tun_name = val;
    } else if (strcmp(arg, "--tun-addr") == 0) {
      opt->tun_addr = val;
    } else if (strcmp(arg, "--route") == 0) {
      if (opt->route_count == MAX_ROUTES) {
        log_msg("at most %d --route options", MAX_ROUTES);
        return false;
      }
      opt->routes[opt->route_count++] = val;
    } else if (strcmp(arg, "--mtu") == 0) {
      char *end = NULL;
      unsigned long mtu = strtoul(val, &end, 10);
      if (end == val || *end != '\0' || mtu < 576 || mtu > 65535) {
        log_msg("--mtu: expected 576 to 65535, got '%s'", val);
        return false;
      }
      opt->mtu = (unsigned)mtu;
    } else {
      log_msg("unknown argument '%s'", arg);
      return false;
    }
    if (takes_value) {
      i++;
    }
  }
  if (opt->config_path == NULL) {
    log_msg("missing --config");
    return false;
  }
  if (strlen(opt->tun_name) == 0 || strlen(opt->tun_name) >= IFNAMSIZ ||
      strchr(opt->tun_name, '/') != NULL) {
    log_msg("--tun: '%s' is not a usable interface name", opt->tun_name);
    return false;
  }
  return true;
}

/* TOML, JSON or AWS XML, from the first character that is not blank. */
static vpn_config_format sniff_format(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    return VPN_CONFIG_TOML; /* vpn_config_from_file reports why */
  }
  int c;
  do {
    c = fgetc(f);
  } while (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == 0xEF || c == 0xBB ||
           c == 0xBF);
  if (fclose(f) != 0) {
    log_msg("%s: close: %s", path, strerror(errno));
  }
  return c == '<' ? VPN_CONFIG_AWS_XML : c == '{' ? VPN_CONFIG_JSON : VPN_CONFIG_TOML;
}

/* Runs `ip ARGS...` and waits for it (no shell: arguments stay arguments). */
static bool run_ip(const char *const argv[]) {
  char line[256] = "";
  for (size_t i = 0; argv[i] != NULL; i++) {
    size_t used = strlen(line);
    snprintf(line + used, sizeof line - used, "%s%s", i ? " " : "", argv[i]);
  }
  log_msg("running: %s", line);
  pid_t pid = fork();
  if (pid < 0) {
    log_msg("fork: %s", strerror(errno));
    return false;
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* ours blocks SIGTERM for the signalfd */
    execvp("ip", (char *const *)argv);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      log_msg("waitpid: %s", strerror(errno));
      return false;
    }
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    log_msg("'%s' failed (status %d)", line, status);
    return false;
  }
  return true;
}

/* Best effort: IPv4-only inside, so no router solicitations into the tunnel. */
static void disable_ipv6(const char *dev) {
  char path[128];
  snprintf(path, sizeof path, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", dev);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, "1", 1) != 1) {
    log_msg("cannot disable IPv6 on %s (%s): %s", dev, path, strerror(errno));
  }
  if (fd >= 0 && close(fd) != 0) {
    log_msg("%s: close: %s", path, strerror(errno));
  }
}

/* Creates the TUN device (IFF_TUN | IFF_NO_PI, non-blocking) and configures
 * its MTU, address, state and routes. Returns the fd or -1. */
static int open_tun(const struct options *opt, unsigned mtu) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    log_msg("open /dev/net/tun: %s", strerror(errno));
    return -1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  memcpy(ifr.ifr_name, opt->tun_name, strlen(opt->tun_name)); /* checked < IFNAMSIZ */
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    log_msg("TUNSETIFF %s: %s", opt->tun_name, strerror(errno));
    close(fd);
    return -1;
  }
  const char *dev = opt->tun_name;
  char mtu_text[16];
  snprintf(mtu_text, sizeof mtu_text, "%u", mtu);
  disable_ipv6(dev);
  bool ok = run_ip((const char *const[]){"ip", "link", "set", "dev", dev, "mtu", mtu_text, NULL});
  if (ok && opt->tun_addr != NULL) {
    ok = run_ip((const char *const[]){"ip", "addr", "replace", opt->tun_addr, "dev", dev, NULL});
  }
  if (ok) {
    ok = run_ip((const char *const[]){"ip", "link", "set", "dev", dev, "up", NULL});
  }
  for (size_t i = 0; ok && i < opt->route_count; i++) {
    ok = run_ip((const char *const[]){"ip", "route", "replace", opt->routes[i], "dev", dev, NULL});
  }
  if (!ok) {
    close(fd);
    return -1;
  }
  return fd;
}

/* A non-blocking UDP socket bound to `local`. Returns the fd or -1. */
static int bind_udp(const vpn_socket_addr *local) {
  struct sockaddr_storage ss;
  socklen_t len = 0;
  char text[64];
  endpoint_text(local, text, sizeof text);
  if (!to_sockaddr(local, &ss, &len)) {
    log_msg("unusable local address family %u", (unsigned)local->family);
    return -1;
  }
  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    log_msg("socket for %s: %s", text, strerror(errno));
    return -1;
  }
  int one = 1;
  if (ss.ss_family == AF_INET6 &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
    log_msg("IPV6_V6ONLY on %s: %s", text, strerror(errno));
  }
  if (bind(fd, (const struct sockaddr *)&ss, len) != 0) {
    log_msg("cannot bind UDP %s: %s", text, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

/* UDP 500 and 4500 on each distinct local outside address of the tunnels. */
static bool bind_sockets(struct gateway *gw, const vpn_socket_addr *locals, size_t n) {
  static const uint16_t ports[] = {IKE_PORT, NAT_T_PORT};
  for (size_t t = 0; t < n; t++) {
    bool seen = false;
    for (size_t s = 0; s < gw->sock_count; s++) {
      seen = seen || same_ip(&gw->socks[s].local, &locals[t]);
    }
    for (size_t p = 0; !seen && p < 2; p++) {
      struct udp_socket *sock = &gw->socks[gw->sock_count];
      sock->local = locals[t];
      sock->local.port = ports[p];
      sock->fd = bind_udp(&sock->local);
      if (sock->fd < 0) {
        return false;
      }
      gw->sock_count++;
    }
  }
  return true;
}

/* The signalfd for SIGTERM and SIGINT (blocked for normal delivery). */
static int open_signalfd(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
    log_msg("sigprocmask: %s", strerror(errno));
    return -1;
  }
  int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) {
    log_msg("signalfd: %s", strerror(errno));
  }
  return fd;
}

/* ------------------------------------------------------------------ output of state */

static const char *state_name(int32_t state) {
  switch (state) {
  case VPN_TUNNEL_DOWN:
    return "down";
  case VPN_TUNNEL_CONNECTING:
    return "connecting";
  case VPN_TUNNEL_UP:
    return "up";
  default:
    return "unknown";
  }
}

static const char *event_kind_name(vpn_event_kind kind) {
  switch (kind) {
  case VPN_EVENT_TUNNEL_STATE_CHANGED:
    return "state_changed";
  case VPN_EVENT_TUNNEL_DOWN:
    return "down";
  case VPN_EVENT_IKE_SA_ESTABLISHED:
    return "ike_sa_established";
  case VPN_EVENT_CHILD_SA_INSTALLED:
    return "child_sa_installed";
  case VPN_EVENT_TUNNEL_OTHER:
    return "other";
  case VPN_EVENT_ACTIVE_TUNNEL_CHANGED:
    return "active_tunnel_changed";
  case VPN_EVENT_BGP:
    return "bgp";
  default:
    return "unknown";
  }
}

/* ,"active_tunnel":N,"tunnels":[{...},...] from vpn_connection_tunnel_report. */
static void out_tunnels(struct out *o, const struct gateway *gw) {
  out_tunnel(o, "active_tunnel", vpn_connection_active_tunnel(gw->conn));
  out_key(o, "tunnels");
  out_raw(o, "[", 1);
  size_t count = vpn_connection_tunnel_count(gw->conn);
  for (uint32_t t = 0; t < count; t++) {
    vpn_tunnel_report r;
    out_raw(o, t ? ",{" : "{", t ? 2 : 1);
    out_fmt(o, "\"tunnel\":%" PRIu32, t + 1);
    out_key(o, "state");
    out_str(o, state_name(vpn_connection_tunnel_state(gw->conn, t)));
    vpn_result res = vpn_connection_tunnel_report(gw->conn, t, &r);
    if (res != VPN_OK) {
      report_failure("vpn_connection_tunnel_report", res, false);
    } else {
      out_fmt(o, ",\"healthy\":%s,\"active\":%s", r.tunnel_state == 1 ? "true" : "false",
              r.active ? "true" : "false");
      out_fmt(o, ",\"packets_in\":%" PRIu64 ",\"packets_out\":%" PRIu64, r.packets_in,
              r.packets_out);
      out_fmt(o, ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64, r.tunnel_data_in,
              r.tunnel_data_out);
      out_fmt(o, ",\"drops_in\":%" PRIu64, r.drops_in);
    }
    out_raw(o, "}", 1);
  }
  out_raw(o, "]", 1);
}

static void emit_status(const struct gateway *gw, const char *event) {
  struct out o;
  out_begin(&o, event);
  out_tunnels(&o, gw);
  out_end(&o);
}

static void emit_metrics(const struct gateway *gw) {
  size_t need = 0;
  vpn_result r = vpn_connection_metrics_prometheus(gw->conn, gw->name, NULL, 0, &need);
  if (r != VPN_ERR_BUFFER_TOO_SMALL) {
    report_failure("vpn_connection_metrics_prometheus", r, false);
    return;
  }
  char *text = malloc(need);
  if (text == NULL) {
    emit_error("out of memory for the metrics");
    return;
  }
  r = vpn_connection_metrics_prometheus(gw->conn, gw->name, text, need, &need);
  if (r != VPN_OK) {
    report_failure("vpn_connection_metrics_prometheus", r, false);
  } else {
    struct out o;
    out_begin(&o, "metrics");
    out_key(&o, "text");
    out_str(&o, text);
    out_end(&o);
  }
  free(text);
}

static void emit_event(const vpn_connection_event *ev, const char *text) {
  struct out o;
  log_msg("%s", text);
  out_begin(&o, "event");
  out_tunnel(&o, "tunnel", ev->tunnel);
  out_key(&o, "kind");
  out_str(&o, event_kind_name(ev->kind));
  if (ev->kind == VPN_EVENT_TUNNEL_STATE_CHANGED && ev->state >= 0) {
    out_key(&o, "state");
    out_str(&o, state_name(ev->state));
  }
  if (ev->kind == VPN_EVENT_ACTIVE_TUNNEL_CHANGED) {
    out_tunnel(&o, "from", ev->from_tunnel);
  }
  out_key(&o, "text");
  out_str(&o, text);
  out_end(&o);
}

/* ------------------------------------------------------------------ moving bytes */

static void send_datagram(struct gateway *gw, const vpn_transmit *tx, const uint8_t *data) {
  const struct udp_socket *sock = NULL;
  for (size_t i = 0; i < gw->sock_count && sock == NULL; i++) {
    if (same_ip(&gw->socks[i].local, &tx->local) && gw->socks[i].local.port == tx->local.port) {
      sock = &gw->socks[i];
    }
  }
  struct sockaddr_storage ss;
  socklen_t len = 0;
  bool usable = sock != NULL && to_sockaddr(&tx->remote, &ss, &len);
  ssize_t n = usable ? sendto(sock->fd, data, tx->len, 0, (const struct sockaddr *)&ss, len) : -1;
  if (n < 0 && worth_logging(&gw->count.udp_send)) {
    const char *why = usable ? strerror(errno) : "no socket bound to that local address";
    char from[64], to[64];
    endpoint_text(&tx->local, from, sizeof from);
    endpoint_text(&tx->remote, to, sizeof to);
    log_msg("UDP send %s -> %s: %s", from, to, why);
  }
}

static void write_tun(struct gateway *gw, const uint8_t *data, size_t len) {
  ssize_t n = write(gw->tun_fd, data, len);
  if (n < 0 || (size_t)n != len) {
    if (worth_logging(&gw->count.tun_write)) {
      log_msg("TUN write of %zu bytes: %s", len, n < 0 ? strerror(errno) : "short write");
    }
  }
}

/* {"event":"active_tunnel"} when the tunnel carrying traffic is another. */
static void note_active(struct gateway *gw, int32_t active) {
  if (active == gw->last_active) {
    return;
  }
  struct out o;
  out_begin(&o, "active_tunnel");
  out_tunnel(&o, "from", gw->last_active);
  out_tunnel(&o, "to", active);
  out_end(&o);
  gw->last_active = active;
}

/* After every step: what the connection wants sent, its events, and whether
 * the active tunnel moved. */
static void drain(struct gateway *gw) {
  vpn_transmit tx;
  while (vpn_connection_poll_transmit(gw->conn, control_buf, sizeof control_buf, &tx)) {
    send_datagram(gw, &tx, control_buf);
  }
  if (tx.len > sizeof control_buf) { /* cannot happen: VPN_MAX_DATAGRAM suffices */
    log_msg("a datagram of %zu bytes does not fit the transmit buffer", tx.len);
  }
  char text[EVENT_TEXT_LEN];
  size_t n = 0;
  vpn_connection_event ev;
  while (vpn_connection_poll_event(gw->conn, text, sizeof text, &n, &ev)) {
    emit_event(&ev, text);
    if (ev.kind == VPN_EVENT_ACTIVE_TUNNEL_CHANGED) {
      note_active(gw, ev.tunnel);
    }
  }
  note_active(gw, vpn_connection_active_tunnel(gw->conn));
}

static void on_udp(struct gateway *gw, const struct udp_socket *sock) {
  for (int i = 0; i < BATCH; i++) {
    struct sockaddr_storage ss;
    socklen_t ss_len = sizeof ss;
    ssize_t n = recvfrom(sock->fd, packet_buf, sizeof packet_buf, 0, (struct sockaddr *)&ss,
                         &ss_len);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
          worth_logging(&gw->count.udp_recv)) {
        log_msg("UDP receive on port %u: %s", (unsigned)sock->local.port, strerror(errno));
      }
      return;
    }
    vpn_socket_addr remote;
    if (!from_sockaddr(&ss, &remote)) {
      continue;
    }
    vpn_received rx;
    vpn_result r = vpn_connection_handle_datagram(gw->conn, now_ns(), &sock->local, &remote,
                                                  packet_buf, (size_t)n, &rx);
    if (r != VPN_OK) {
      if (worth_logging(&gw->count.lib)) {
        report_failure("vpn_connection_handle_datagram", r, false);
      }
    } else if (rx.kind == VPN_RECEIVED_INNER) {
      write_tun(gw, packet_buf + rx.inner_offset, rx.inner_len);
    } else if (rx.kind == VPN_RECEIVED_DROPPED && worth_logging(&gw->count.dropped)) {
      char from[64];
      endpoint_text(&remote, from, sizeof from);
      log_msg("datagram from %s dropped (reason %" PRIu32 ", ESP error %" PRIu32 ")", from,
              (uint32_t)rx.drop_reason, rx.esp_error);
    }
    drain(gw);
  }
}

/* One inner packet from the TUN device: sealed in place and sent. */
static void send_inner(struct gateway *gw, size_t head, size_t len) {
  vpn_transmit tx;
  vpn_result r =
      vpn_connection_send_packet(gw->conn, now_ns(), packet_buf, sizeof packet_buf, len, &tx);
  if (r == VPN_OK && tx.icmp_too_big) {
    write_tun(gw, packet_buf, tx.len);
  } else if (r == VPN_OK && tx.fragments == 0) {
    send_datagram(gw, &tx, packet_buf);
  } else if (r != VPN_OK && worth_logging(&gw->count.not_sent)) {
    /* No route / not connected are also counted in the connection's metrics. */
    char text[256];
    result_text(r, text, sizeof text);
    log_msg("inner packet of %zu bytes (headroom %zu) not sent: %s", len, head, text);
  }
}

static void on_tun(struct gateway *gw) {
  for (int i = 0; i < BATCH; i++) {
    size_t head = vpn_connection_headroom(gw->conn);
    size_t tail = vpn_connection_tailroom(gw->conn);
    if (head + tail >= sizeof packet_buf) {
      emit_error("headroom and tailroom exceed the packet buffer");
      return;
    }
    ssize_t n = read(gw->tun_fd, packet_buf + head, sizeof packet_buf - head - tail);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
          worth_logging(&gw->count.tun_read)) {
        log_msg("TUN read: %s", strerror(errno));
      }
      return;
    }
    if (n == 0) {
      return;
    }
    send_inner(gw, head, (size_t)n);
    drain(gw);
  }
}

/* ------------------------------------------------------------------ control */

static bool all_down(const struct gateway *gw) {
  size_t count = vpn_connection_tunnel_count(gw->conn);
  for (uint32_t t = 0; t < count; t++) {
    int32_t s = vpn_connection_tunnel_state(gw->conn, t);
    if (s == VPN_TUNNEL_UP || s == VPN_TUNNEL_CONNECTING) {
      return false;
    }
  }
  return true;
}

static void set_admin(struct gateway *gw, uint32_t tunnel, bool up) {
  vpn_result r = vpn_connection_set_tunnel_admin_up(gw->conn, tunnel, up, now_ns());
  if (r != VPN_OK) {
    report_failure("vpn_connection_set_tunnel_admin_up", r, false);
  }
}

static void connect_all(struct gateway *gw) {
  vpn_result r = vpn_connection_connect(gw->conn, now_ns());
  if (r != VPN_OK) {
    report_failure("vpn_connection_connect", r, false);
  }
}

/* First signal: close every tunnel and linger; second: stop at once. */
static void on_signal(struct gateway *gw) {
  struct signalfd_siginfo si;
  ssize_t n = read(gw->sig_fd, &si, sizeof si);
  if (n != (ssize_t)sizeof si) {
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      log_msg("signalfd read: %s", strerror(errno));
    }
    return;
  }
  if (gw->stopping) {
    log_msg("second signal %" PRIu32 ": stopping now", si.ssi_signo);
    gw->stop_now = true;
    return;
  }
  log_msg("signal %" PRIu32 ": closing the tunnels", si.ssi_signo);
  gw->stopping = true;
  gw->stop_deadline = now_ns() + STOP_LINGER_NS;
  size_t count = vpn_connection_tunnel_count(gw->conn);
  for (uint32_t t = 0; t < count; t++) {
    set_admin(gw, t, false);
  }
}

/* {"cmd":"status"} -> "status" (commands without arguments only). */
static void json_command(char *line) {
  char *key = strstr(line, "\"cmd\"");
  char *open = key ? strchr(key + 5, '"') : NULL;
  char *close = open ? strchr(open + 1, '"') : NULL;
  if (close == NULL) {
    line[0] = '\0';
    return;
  }
  *close = '\0';
  memmove(line, open + 1, (size_t)(close - open));
}

static void command(struct gateway *gw, char *line) {
  if (line[0] == '{') {
    json_command(line);
  }
  char verb[16] = "";
  unsigned tunnel = 0;
  int k = sscanf(line, "%15s %u", verb, &tunnel);
  if (k < 1) {
    return; /* blank */
  }
  size_t count = vpn_connection_tunnel_count(gw->conn);
  if (strcmp(verb, "status") == 0) {
    emit_status(gw, "status");
  } else if (strcmp(verb, "metrics") == 0) {
    emit_metrics(gw);
  } else if (strcmp(verb, "connect") == 0) {
    connect_all(gw);
  } else if ((strcmp(verb, "up") == 0 || strcmp(verb, "down") == 0) && k == 2 && tunnel >= 1 &&
             tunnel <= count) {
    set_admin(gw, (uint32_t)tunnel - 1, verb[0] == 'u');
  } else {
    emit_error("unknown command (status, metrics, connect, up N, down N)");
  }
}

/* Reads what stdin has and runs each complete line. */
static void on_stdin(struct gateway *gw) {
  char chunk[512];
  ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
  if (n <= 0) {
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      if (n < 0) {
        log_msg("stdin: %s", strerror(errno));
      }
      gw->stdin_open = false;
    }
    return;
  }
  for (ssize_t i = 0; i < n; i++) {
    char c = chunk[i];
    if (c == '\n') {
      gw->line[gw->line_len] = '\0';
      if (gw->line_too_long) {
        emit_error("command line too long");
      } else {
        command(gw, gw->line);
      }
      gw->line_len = 0;
      gw->line_too_long = false;
    } else if (gw->line_len + 1 < sizeof gw->line) {
      gw->line[gw->line_len++] = c;
    } else {
      gw->line_too_long = true;
    }
  }
}

/* ------------------------------------------------------------------ the loop */

enum { FD_SIGNAL, FD_STDIN, FD_TUN, FD_SOCKETS };

/* Runs until the tunnels are closed after a signal. False on a fatal error. */
static bool run(struct gateway *gw) {
  for (;;) {
    uint64_t now = now_ns();
    if (gw->stop_now) {
      return true;
    }
    if (gw->stopping && all_down(gw)) {
      log_msg("all tunnels are down");
      return true;
    }
    if (gw->stopping && now >= gw->stop_deadline) {
      log_msg("the tunnels did not close within 2 s; stopping anyway");
      return true;
    }
    uint64_t due = vpn_connection_poll_timeout(gw->conn);
    if (gw->stopping && gw->stop_deadline < due) {
      due = gw->stop_deadline;
    }
    struct pollfd fds[FD_SOCKETS + MAX_SOCKETS];
    fds[FD_SIGNAL] = (struct pollfd){.fd = gw->sig_fd, .events = POLLIN};
    /* A negative fd is skipped by poll(). */
    fds[FD_STDIN] = (struct pollfd){.fd = gw->stdin_open && !gw->stopping ? STDIN_FILENO : -1,
                                    .events = POLLIN};
    fds[FD_TUN] = (struct pollfd){.fd = gw->stopping ? -1 : gw->tun_fd, .events = POLLIN};
    for (size_t i = 0; i < gw->sock_count; i++) {
      fds[FD_SOCKETS + i] = (struct pollfd){.fd = gw->socks[i].fd, .events = POLLIN};
    }
    int ready = poll(fds, FD_SOCKETS + gw->sock_count, poll_ms(due, now));
    if (ready < 0 && errno != EINTR) {
      emit_error(strerror(errno));
      return false;
    }
    if (ready > 0) {
      if (fds[FD_SIGNAL].revents != 0) {
        on_signal(gw);
      }
      if (fds[FD_STDIN].revents != 0) {
        on_stdin(gw);
      }
      if (fds[FD_TUN].revents != 0) {
        on_tun(gw);
      }
      for (size_t i = 0; i < gw->sock_count; i++) {
        if (fds[FD_SOCKETS + i].revents != 0) {
          on_udp(gw, &gw->socks[i]);
        }
      }
    }
    now = now_ns();
    if (vpn_connection_poll_timeout(gw->conn) <= now) {
      vpn_result r = vpn_connection_handle_timeout(gw->conn, now);
      if (r != VPN_OK && worth_logging(&gw->count.lib)) {
        report_failure("vpn_connection_handle_timeout", r, false);
      }
    }
    drain(gw);
  }
}

/* ------------------------------------------------------------------ main */

/* Loads the configuration and builds the connection; fills the name, MTU
 * and the tunnels' outside addresses. The configuration (with its keys) is
 * freed, and so wiped, before returning. */
static bool load(const struct options *opt, struct gateway *gw, unsigned *mtu,
                 vpn_socket_addr locals[MAX_TUNNELS], vpn_socket_addr remotes[MAX_TUNNELS]) {
  vpn_config *cfg = NULL;
  vpn_result r = vpn_config_from_file(sniff_format(opt->config_path), opt->config_path, &cfg);
  if (r != VPN_OK) {
    report_failure(opt->config_path, r, true);
    return false;
  }
  bool ok = true;
  size_t n = 0;
  r = vpn_config_name(cfg, gw->name, sizeof gw->name, &n);
  if (r != VPN_OK) { /* names are at most 64 characters: cannot happen */
    report_failure("vpn_config_name", r, true);
    snprintf(gw->name, sizeof gw->name, "vpn");
  }
  *mtu = opt->mtu ? opt->mtu : vpn_config_mtu(cfg);
  for (uint32_t t = 0; ok && t < MAX_TUNNELS; t++) {
    r = vpn_config_tunnel_outside_addresses(cfg, t, &locals[t], &remotes[t]);
    if (r != VPN_OK) {
      report_failure("vpn_config_tunnel_outside_addresses", r, true);
      ok = false;
    }
  }
  if (ok) {
    r = vpn_connection_new(cfg, now_ns(), &gw->conn);
    if (r != VPN_OK) {
      report_failure("vpn_connection_new", r, true);
      ok = false;
    }
  }
  vpn_config_free(cfg);
  return ok;
}

static void emit_ready(const struct gateway *gw, const struct options *opt, unsigned mtu,
                       const vpn_socket_addr *remotes, size_t tunnels) {
  struct out o;
  char text[64];
  out_begin(&o, "ready");
  out_key(&o, "name");
  out_str(&o, gw->name);
  out_key(&o, "locals");
  out_raw(&o, "[", 1);
  for (size_t i = 0; i < gw->sock_count; i += 2) { /* 500 and 4500 per address */
    ip_text(&gw->socks[i].local, text, sizeof text);
    out_raw(&o, i ? "," : "", i ? 1 : 0);
    out_str(&o, text);
  }
  out_raw(&o, "]", 1);
  out_key(&o, "remotes");
  out_raw(&o, "[", 1);
  for (size_t t = 0; t < tunnels; t++) {
    ip_text(&remotes[t], text, sizeof text);
    out_raw(&o, t ? "," : "", t ? 1 : 0);
    out_str(&o, text);
  }
  out_raw(&o, "]", 1);
  out_fmt(&o, ",\"ports\":[%d,%d]", IKE_PORT, NAT_T_PORT);
  out_key(&o, "tun");
  out_str(&o, opt->tun_name);
  out_fmt(&o, ",\"mtu\":%u", mtu);
  out_end(&o);
}

static void close_all(struct gateway *gw) {
  for (size_t i = 0; i < gw->sock_count; i++) {
    close(gw->socks[i].fd);
  }
  if (gw->tun_fd >= 0) {
    close(gw->tun_fd);
  }
  if (gw->sig_fd >= 0) {
    close(gw->sig_fd);
  }
  vpn_connection_free(gw->conn);
}

int main(int argc, char **argv) {
  struct options opt;
  if (!parse_args(argc, argv, &opt)) {
    usage();
    return 2;
  }
  if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
    log_msg("cannot ignore SIGPIPE: %s", strerror(errno));
  }
  static struct gateway gw; /* zeroed */
  gw.tun_fd = -1;
  gw.last_active = -1;
  gw.stdin_open = true;
  gw.sig_fd = open_signalfd();
  unsigned mtu = 0;
  vpn_socket_addr locals[MAX_TUNNELS], remotes[MAX_TUNNELS];
  if (gw.sig_fd < 0 || !load(&opt, &gw, &mtu, locals, remotes)) {
    close_all(&gw);
    return 2;
  }
  gw.tun_fd = open_tun(&opt, mtu);
  if (gw.tun_fd < 0 || !bind_sockets(&gw, locals, MAX_TUNNELS)) {
    emit_error("cannot set up the TUN device or the UDP sockets (see the log)");
    close_all(&gw);
    return 1;
  }
  emit_ready(&gw, &opt, mtu, remotes, MAX_TUNNELS);
  if (opt.connect) {
    connect_all(&gw);
  }
  drain(&gw);
  bool ok = run(&gw);
  if (ok) {
    emit_status(&gw, "stopped");
  }
  close_all(&gw);
  return ok ? 0 : 1;
}
