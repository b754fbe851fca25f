/*
 * The connection's C API, exercised from C: two connections (a customer
 * gateway and AWS's end) built from TOML, wired back to back in-process on a
 * fake clock, brought up over IKEv2, carrying an inner IPv4 packet from site
 * A's LAN to site B's LAN byte-exact (and one back), reporting CloudWatch
 * figures and Prometheus text, failing over on admin-down. Run by
 * tests/c/run.sh (under valgrind when available).
 *
 * Exits 0 only if every check passed; the last line is
 *   C connection tests: N passed, M failed
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpn.h"

static unsigned passed;
static unsigned failed;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond) {                                                                \
      passed++;                                                                \
    } else {                                                                   \
      failed++;                                                                \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

#define SEC 1000000000ull

/* Site A: the customer gateway (LAN 10.1.0.0/16); with AWS's default startup
 * action "add" it initiates both tunnels. */
static const char SITE_A[] =
    "name = \"site-a\"\n"
    "role = \"cgw\"\n"
    "[routing]\n"
    "type = \"static\"\n"
    "prefixes = [\"10.2.0.0/16\"]\n"
    "[failover]\n"
    "mode = \"active_standby\"\n"
    "preferred_tunnel = 0\n"
    "[[tunnels]]\n"
    "local_outside_address = \"203.0.113.10\"\n"
    "remote_outside_address = \"198.51.100.21\"\n"
    "inside_cidr = \"169.254.44.40/30\"\n"
    "psk = \"c_test_psk.tunnel1\"\n"
    "ike_version = 2\n"
    "ike_proposals = [\"aes256gcm16-prfsha256-ecp256\"]\n"
    "esp_proposals = [\"aes256gcm16-ecp256\"]\n"
    "startup_action = \"add\"\n"
    "[[tunnels]]\n"
    "local_outside_address = \"203.0.113.10\"\n"
    "remote_outside_address = \"198.51.100.87\"\n"
    "inside_cidr = \"169.254.201.136/30\"\n"
    "psk = \"c_test_psk.tunnel2\"\n"
    "ike_version = 2\n"
    "ike_proposals = [\"aes256gcm16-prfsha256-ecp256\"]\n"
    "esp_proposals = [\"aes256gcm16-ecp256\"]\n"
    "startup_action = \"add\"\n";

/* Site B: AWS's end (LAN 10.2.0.0/16); it answers. */
static const char SITE_B[] =
    "name = \"site-b\"\n"
    "role = \"vgw\"\n"
    "[routing]\n"
    "type = \"static\"\n"
    "prefixes = [\"10.1.0.0/16\"]\n"
    "[[tunnels]]\n"
    "local_outside_address = \"198.51.100.21\"\n"
    "remote_outside_address = \"203.0.113.10\"\n"
    "inside_cidr = \"169.254.44.40/30\"\n"
    "psk = \"c_test_psk.tunnel1\"\n"
    "ike_version = 2\n"
    "ike_proposals = [\"aes256gcm16-prfsha256-ecp256\"]\n"
    "esp_proposals = [\"aes256gcm16-ecp256\"]\n"
    "[[tunnels]]\n"
    "local_outside_address = \"198.51.100.87\"\n"
    "remote_outside_address = \"203.0.113.10\"\n"
    "inside_cidr = \"169.254.201.136/30\"\n"
    "psk = \"c_test_psk.tunnel2\"\n"
    "ike_version = 2\n"
    "ike_proposals = [\"aes256gcm16-prfsha256-ecp256\"]\n"
    "esp_proposals = [\"aes256gcm16-ecp256\"]\n";

/* `toml` with every `from` replaced by `to`, in a static buffer. */
static const char *edited(const char *toml, const char *from, const char *to) {
  static char text[4096];
  size_t used = 0, from_len = strlen(from), to_len = strlen(to);
  for (const char *rest = toml;;) {
    const char *at = strstr(rest, from);
    size_t keep = at != NULL ? (size_t)(at - rest) : strlen(rest);
    size_t add = at != NULL ? to_len : 0;
    if (used + keep + add + 1 > sizeof text) {
      CHECK(!"edited: text too long");
      return toml;
    }
    memcpy(text + used, rest, keep);
    memcpy(text + used + keep, to, add);
    used += keep + add;
    if (at == NULL) break;
    rest = at + from_len;
  }
  text[used] = '\0';
  return text;
}

/* Replaces `conn`'s configuration with `toml`; returns the result. */
static vpn_result replace(vpn_connection *conn, const char *toml, uint64_t now,
                          vpn_config_change *change) {
  vpn_config *cfg = NULL;
  CHECK(vpn_config_from_str(VPN_CONFIG_TOML, toml, strlen(toml), &cfg) == VPN_OK);
  vpn_result r = vpn_connection_replace_config(conn, cfg, now, change);
  vpn_config_free(cfg);
  return r;
}

static vpn_connection *make(const char *toml, uint64_t now) {
  vpn_config *cfg = NULL;
  vpn_connection *conn = NULL;
  CHECK(vpn_config_from_str(VPN_CONFIG_TOML, toml, strlen(toml), &cfg) == VPN_OK);
  CHECK(vpn_connection_new(cfg, now, &conn) == VPN_OK);
  vpn_config_free(cfg);
  return conn;
}

static uint8_t datagram[VPN_MAX_DATAGRAM];

/* Moves every datagram `from` wants sent into `to`; returns how many. */
static unsigned shuttle(vpn_connection *from, vpn_connection *to, uint64_t now) {
  unsigned n = 0;
  vpn_transmit tx;
  while (vpn_connection_poll_transmit(from, datagram, sizeof datagram, &tx)) {
    vpn_received rx;
    n++;
    /* Local and remote swap on the way across. */
    if (vpn_connection_handle_datagram(to, now, &tx.remote, &tx.local, datagram, tx.len, &rx) !=
        VPN_OK) {
      failed++;
      fprintf(stderr, "handle_datagram failed\n");
    }
  }
  return n;
}

static unsigned active_changes;
static int last_active = -1;

/* Prints the events of a site; counts site A's active-tunnel changes. */
static void drain_events(const char *who, vpn_connection *conn, bool site_a) {
  char text[256];
  size_t n = 0;
  vpn_connection_event ev;
  while (vpn_connection_poll_event(conn, text, sizeof text, &n, &ev)) {
    printf("  [%s] %s\n", who, text);
    if (site_a && ev.kind == VPN_EVENT_ACTIVE_TUNNEL_CHANGED) {
      active_changes++;
      last_active = ev.tunnel;
    }
  }
}

static void run(vpn_connection *a, vpn_connection *b, uint64_t *now, uint64_t until) {
  while (*now < until) {
    while (shuttle(a, b, *now) + shuttle(b, a, *now) > 0) {
    }
    drain_events("site-a", a, true);
    drain_events("site-b", b, false);
    uint64_t ta = vpn_connection_poll_timeout(a);
    uint64_t tb = vpn_connection_poll_timeout(b);
    uint64_t next = ta < tb ? ta : tb;
    if (next <= *now) {
      next = *now + 1;
    }
    *now = next < until ? next : until;
    CHECK(vpn_connection_handle_timeout(a, *now) == VPN_OK);
    CHECK(vpn_connection_handle_timeout(b, *now) == VPN_OK);
  }
}

/* An IPv4/UDP packet from src to dst carrying `payload`. */
static size_t udp_packet(uint8_t *p, const uint8_t src[4], const uint8_t dst[4],
                         const char *payload) {
  size_t plen = strlen(payload);
  size_t len = 28 + plen;
  memset(p, 0, 28);
  p[0] = 0x45;
  p[2] = (uint8_t)(len >> 8);
  p[3] = (uint8_t)len;
  p[8] = 64;
  p[9] = 17;
  memcpy(p + 12, src, 4);
  memcpy(p + 16, dst, 4);
  p[20] = 0x0f;
  p[21] = 0xa0;
  p[22] = 0x13;
  p[23] = 0x88;
  p[24] = (uint8_t)((8 + plen) >> 8);
  p[25] = (uint8_t)(8 + plen);
  memcpy(p + 28, payload, plen);
  return len;
}

/* Sends `inner` from one site and delivers it to the other; checks that it
 * arrives byte-exact through `want_tunnel`. */
static void send_across(vpn_connection *from, vpn_connection *to, uint64_t now,
                        const uint8_t *inner, size_t inner_len, int want_tunnel) {
  size_t head = vpn_connection_headroom(from);
  size_t tail = vpn_connection_tailroom(from);
  size_t cap = head + inner_len + tail;
  uint8_t *buf = malloc(cap);
  CHECK(buf != NULL);
  if (buf == NULL) {
    return;
  }
  memcpy(buf + head, inner, inner_len);
  vpn_transmit tx;
  vpn_result r = vpn_connection_send_packet(from, now, buf, cap, inner_len, &tx);
  CHECK(r == VPN_OK);
  if (r == VPN_OK) {
    CHECK(!tx.icmp_too_big);
    CHECK(tx.tunnel == want_tunnel);
    char local[64], remote[64];
    size_t n = 0;
    CHECK(vpn_socket_addr_format(&tx.local, local, sizeof local, &n) == VPN_OK);
    CHECK(vpn_socket_addr_format(&tx.remote, remote, sizeof remote, &n) == VPN_OK);
    printf("  sealed %zu inner bytes into %zu on tunnel %d: %s -> %s\n", inner_len, tx.len,
           tx.tunnel + 1, local, remote);
    vpn_received rx;
    CHECK(vpn_connection_handle_datagram(to, now, &tx.remote, &tx.local, buf, tx.len, &rx) ==
          VPN_OK);
    CHECK(rx.kind == VPN_RECEIVED_INNER);
    CHECK(rx.tunnel == want_tunnel);
    CHECK(rx.inner_len == inner_len);
    CHECK(rx.inner_len == inner_len && memcmp(buf + rx.inner_offset, inner, inner_len) == 0);
  }
  free(buf);
}

int main(void) {
  uint64_t now = 1 * SEC;
  vpn_connection *a = make(SITE_A, now);
  vpn_connection *b = make(SITE_B, now);
  if (a == NULL || b == NULL) {
    vpn_connection_free(a);
    vpn_connection_free(b);
    printf("C connection tests: %u passed, %u failed\n", passed, failed + 1);
    return 1;
  }
  CHECK(vpn_connection_tunnel_count(a) == 2);
  CHECK(vpn_connection_active_tunnel(a) == -1);
  CHECK(vpn_connection_poll_timeout(a) == UINT64_MAX || vpn_connection_poll_timeout(a) >= now);

  /* Nothing is routed before the tunnels are up. */
  {
    uint8_t inner[64];
    uint8_t buf[512];
    const uint8_t src[4] = {10, 1, 0, 5}, dst[4] = {10, 2, 0, 9};
    size_t len = udp_packet(inner, src, dst, "too early");
    size_t head = vpn_connection_headroom(a);
    vpn_transmit tx;
    CHECK(head + len + vpn_connection_tailroom(a) <= sizeof buf);
    memcpy(buf + head, inner, len);
    CHECK(vpn_connection_send_packet(a, now, buf, sizeof buf, len, &tx) == VPN_ERR_NO_ROUTE);
  }

  /* A too-small transmit buffer reports the size needed and keeps the datagram. */
  CHECK(vpn_connection_connect(b, now) == VPN_OK);
  CHECK(vpn_connection_connect(a, now) == VPN_OK);
  {
    uint8_t tiny[8];
    vpn_transmit tx;
    CHECK(!vpn_connection_poll_transmit(a, tiny, sizeof tiny, &tx));
    CHECK(tx.len > sizeof tiny);
  }

  printf("bringing both tunnels up\n");
  run(a, b, &now, now + 5 * SEC);
  for (uint32_t t = 0; t < 2; t++) {
    CHECK(vpn_connection_tunnel_state(a, t) == VPN_TUNNEL_UP);
    CHECK(vpn_connection_tunnel_state(b, t) == VPN_TUNNEL_UP);
  }
  CHECK(vpn_connection_active_tunnel(a) == 0);
  CHECK(active_changes == 1 && last_active == 0);

  printf("site A -> site B and back\n");
  uint8_t ping[128], pong[128];
  const uint8_t host_a[4] = {10, 1, 0, 5}, host_b[4] = {10, 2, 0, 9};
  size_t ping_len = udp_packet(ping, host_a, host_b, "hello from site A");
  size_t pong_len = udp_packet(pong, host_b, host_a, "hello back from site B");
  send_across(a, b, now, ping, ping_len, 0);
  send_across(b, a, now, pong, pong_len, 0);

  /* Not an IP packet. */
  {
    uint8_t buf[512] = {0};
    vpn_transmit tx;
    CHECK(vpn_connection_send_packet(a, now, buf, sizeof buf, 20, &tx) ==
          VPN_ERR_UNSUPPORTED_INNER_PACKET);
  }

  /* CloudWatch figures. */
  vpn_tunnel_report report;
  CHECK(vpn_connection_tunnel_report(b, 0, &report) == VPN_OK);
  CHECK(report.tunnel_state == 1);
  CHECK(report.active);
  CHECK(report.packets_in == 1 && report.tunnel_data_in == ping_len);
  CHECK(report.packets_out == 1 && report.tunnel_data_out == pong_len);
  CHECK(vpn_connection_tunnel_report(b, 1, &report) == VPN_OK);
  CHECK(report.tunnel_state == 1 && !report.active && report.packets_in == 0);
  CHECK(vpn_connection_tunnel_report(b, 2, &report) == VPN_ERR_UNKNOWN_TUNNEL);

  /* Prometheus text: ask for the size, then fetch. */
  {
    size_t n = 0;
    CHECK(vpn_connection_metrics_prometheus(a, "site-a", NULL, 0, &n) == VPN_ERR_BUFFER_TOO_SMALL);
    char *text = malloc(n);
    CHECK(text != NULL);
    if (text != NULL) {
      size_t need = n;
      CHECK(vpn_connection_metrics_prometheus(a, "site-a", text, need, &n) == VPN_OK);
      CHECK(n + 1 == need);
      CHECK(strstr(text, "vpn_tunnel_state{connection=\"site-a\",tunnel=\"1\"} 1") != NULL);
      CHECK(strstr(text, "vpn_tunnel_packets_out_total{connection=\"site-a\",tunnel=\"1\"} 1") !=
            NULL);
      CHECK(strstr(text, "vpn_connection_failovers_total{connection=\"site-a\"} 0") != NULL);
      free(text);
    }
  }

  printf("operator rekeys, then new options for tunnel 2 at both ends\n");
  CHECK(vpn_connection_rekey_tunnel(a, 0, VPN_REKEY_CHILD, now) == VPN_OK);
  CHECK(vpn_connection_rekey_tunnel(a, 1, VPN_REKEY_IKE, now) == VPN_OK);
  CHECK(vpn_connection_rekey_tunnel(a, 5, VPN_REKEY_IKE, now) == VPN_ERR_UNKNOWN_TUNNEL);
  CHECK(vpn_connection_rekey_tunnel(a, 0, 42, now) == VPN_ERR_INVALID_ARGUMENT);
  run(a, b, &now, now + 2 * SEC);
  send_across(a, b, now, ping, ping_len, 0);
  {
    vpn_config_change change;
    memset(&change, 0xff, sizeof change);
    CHECK(replace(b, edited(SITE_B, "c_test_psk.tunnel2", "c_next_psk.tunnel2"), now, NULL) ==
          VPN_OK);
    CHECK(replace(a, edited(SITE_A, "c_test_psk.tunnel2", "c_next_psk.tunnel2"), now, &change) ==
          VPN_OK);
    CHECK(change.tunnels_restarted == 2 && change.tunnels_failed == 0);
    CHECK(!change.routes_changed && !change.policy_changed && !change.advertised_changed);
    CHECK(vpn_connection_tunnel_state(a, 1) != VPN_TUNNEL_UP);
    CHECK(vpn_connection_active_tunnel(a) == 0);
    run(a, b, &now, now + 5 * SEC);
    CHECK(vpn_connection_tunnel_state(a, 1) == VPN_TUNNEL_UP);
    /* Static to BGP needs a new connection; an invalid configuration is
     * refused with its fields recorded; either way nothing changes. */
    CHECK(replace(a,
                  edited(SITE_A, "type = \"static\"\nprefixes = [\"10.2.0.0/16\"]\n",
                         "type = \"bgp\"\nlocal_asn = 65000\npeer_asn = 64512\n"),
                  now, &change) == VPN_ERR_CANNOT_CHANGE);
    CHECK(replace(a, edited(SITE_A, "169.254.44.40/30", "169.254.0.0/30"), now, &change) ==
          VPN_ERR_INVALID_CONFIG);
    CHECK(vpn_last_error_count() >= 1);
    CHECK(vpn_connection_replace_config(a, NULL, now, &change) == VPN_ERR_NULL_ARGUMENT);
    CHECK(vpn_connection_tunnel_state(a, 0) == VPN_TUNNEL_UP);
    CHECK(vpn_connection_tunnel_state(a, 1) == VPN_TUNNEL_UP);
  }

  printf("tunnel 1 administratively down\n");
  CHECK(vpn_connection_set_tunnel_admin_up(a, 0, false, now) == VPN_OK);
  CHECK(vpn_connection_set_tunnel_admin_up(a, 9, false, now) == VPN_ERR_UNKNOWN_TUNNEL);
  run(a, b, &now, now + 2 * SEC);
  CHECK(vpn_connection_active_tunnel(a) == 1);
  CHECK(active_changes == 2 && last_active == 1);
  send_across(a, b, now, ping, ping_len, 1);

  vpn_connection_free(a);
  vpn_connection_free(b);
  vpn_connection_free(NULL);
  printf("C connection tests: %u passed, %u failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
