/*
 * The BGP speaker's C API, exercised from C: two speakers in one program wired
 * back to back through poll_transmit/handle_bytes and poll_action on a fake
 * clock. They establish, exchange one route each (both see both in their
 * Loc-RIB), survive two minutes of keepalives, and see a withdrawal. Also:
 * buffer-too-small size reporting, argument errors, a wrong peer AS and
 * garbage bytes. Run by tests/c/run.sh (under valgrind when available).
 *
 * Exits 0 only if every check passed; the last line is
 *   C BGP tests: N passed, M failed
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpn.h"

static unsigned passed;
static unsigned failed;

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (cond) {                                                             \
      passed++;                                                             \
    } else {                                                                \
      failed++;                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                       \
  } while (0)

#define CHECK_RESULT(call, expected)                                          \
  do {                                                                        \
    vpn_result r_ = (call);                                                   \
    if (r_ == (vpn_result)(expected)) {                                       \
      passed++;                                                               \
    } else {                                                                  \
      failed++;                                                               \
      char msg_[128];                                                         \
      size_t n_ = 0;                                                          \
      if (vpn_result_message(r_, msg_, sizeof msg_, &n_) != VPN_OK) {         \
        msg_[0] = '\0';                                                       \
      }                                                                       \
      fprintf(stderr, "%s:%d: %s returned %u (%s), expected %s\n", __FILE__, \
              __LINE__, #call, (unsigned)r_, msg_, #expected);                \
    }                                                                         \
  } while (0)

#define SEC UINT64_C(1000000000)
#define MAX_EVENTS 256

/* One side of the test: a speaker, its single neighbour, what it reported. */
typedef struct {
  const char *name;
  vpn_bgp_speaker *speaker;
  uint32_t peer;
  vpn_bgp_event events[MAX_EVENTS];
  size_t n_events;
} side;

static uint8_t tx_buf[VPN_BGP_MAX_TRANSMIT];

static vpn_bgp_speaker *new_speaker(uint32_t asn, const char *router_id) {
  vpn_bgp_speaker_config config = {asn, router_id};
  vpn_bgp_speaker *s = NULL;
  CHECK_RESULT(vpn_bgp_speaker_new(&config, &s), VPN_OK);
  CHECK(s != NULL);
  return s;
}

static void add_neighbor(side *s, const char *peer_addr, const char *local_addr, uint32_t asn,
                         bool passive) {
  vpn_bgp_neighbor_config n;
  memset(&n, 0, sizeof n);
  n.peer_address = peer_addr;
  n.local_address = local_addr;
  n.peer_asn = asn;
  n.passive = passive;
  n.policy = VPN_BGP_POLICY_ALL;
  s->peer = UINT32_MAX;
  CHECK_RESULT(vpn_bgp_speaker_add_neighbor(s->speaker, &n, &s->peer), VPN_OK);
  CHECK(s->peer == 0);
}

static void drain_events(side *s) {
  vpn_bgp_event e;
  while (vpn_bgp_speaker_poll_event(s->speaker, &e)) {
    if (s->n_events < MAX_EVENTS) {
      s->events[s->n_events++] = e;
    }
  }
}

/* Moves bytes and connect/close requests between the two until nothing moves. */
static void drive(side *a, side *b, uint64_t now) {
  side *sides[2] = {a, b};
  for (int round = 0; round < 1000; round++) {
    bool progress = false;
    for (int i = 0; i < 2; i++) {
      side *s = sides[i];
      side *other = sides[1 - i];
      for (;;) {
        size_t n = 0;
        uint32_t peer = UINT32_MAX;
        bool outbound = false;
        vpn_result r = vpn_bgp_speaker_poll_transmit(s->speaker, tx_buf, sizeof tx_buf, &n, &peer,
                                                     &outbound);
        if (r != VPN_OK) {
          CHECK_RESULT(r, VPN_OK);
          break;
        }
        if (n == 0) {
          break;
        }
        progress = true;
        /* The connection we opened is the one the other side accepted. */
        CHECK_RESULT(
            vpn_bgp_speaker_handle_bytes(other->speaker, other->peer, !outbound, now, tx_buf, n),
            VPN_OK);
      }
      uint32_t peer = 0;
      vpn_bgp_action action = VPN_BGP_ACTION_CLOSE;
      bool outbound = false;
      while (vpn_bgp_speaker_poll_action(s->speaker, &peer, &action, &outbound)) {
        progress = true;
        if (action == VPN_BGP_ACTION_CONNECT) {
          vpn_bgp_speaker_handle_connected(s->speaker, peer, true, now);
          vpn_bgp_speaker_handle_connected(other->speaker, other->peer, false, now);
        } else {
          vpn_bgp_speaker_handle_closed(s->speaker, peer, outbound, now);
          vpn_bgp_speaker_handle_closed(other->speaker, other->peer, !outbound, now);
        }
      }
      drain_events(s);
    }
    if (!progress) {
      return;
    }
  }
  fprintf(stderr, "network did not settle\n");
  failed++;
}

/* Runs traffic and timers for `secs` seconds of fake time. */
static void run(side *a, side *b, uint64_t *now, uint64_t secs) {
  uint64_t end = *now + secs * SEC;
  drive(a, b, *now);
  for (;;) {
    uint64_t ta = vpn_bgp_speaker_poll_timeout(a->speaker);
    uint64_t tb = vpn_bgp_speaker_poll_timeout(b->speaker);
    uint64_t t = ta < tb ? ta : tb;
    if (t > end) {
      break;
    }
    if (t > *now) {
      *now = t;
    }
    CHECK_RESULT(vpn_bgp_speaker_handle_timeout(a->speaker, *now), VPN_OK);
    CHECK_RESULT(vpn_bgp_speaker_handle_timeout(b->speaker, *now), VPN_OK);
    drive(a, b, *now);
  }
  *now = end;
}

static const vpn_bgp_event *find_event(const side *s, vpn_bgp_event_kind kind,
                                       const char *prefix) {
  for (size_t i = 0; i < s->n_events; i++) {
    if (s->events[i].kind == kind && (prefix == NULL || strcmp(s->events[i].prefix, prefix) == 0)) {
      return &s->events[i];
    }
  }
  return NULL;
}

/* The Loc-RIB text, asked for with a NULL buffer first; caller frees. */
static char *rib_text(const side *s) {
  size_t needed = 0;
  CHECK_RESULT(vpn_bgp_speaker_rib(s->speaker, NULL, 0, &needed), VPN_ERR_BUFFER_TOO_SMALL);
  char *buf = malloc(needed);
  if (buf == NULL) {
    abort();
  }
  size_t n = 0;
  CHECK_RESULT(vpn_bgp_speaker_rib(s->speaker, buf, needed, &n), VPN_OK);
  CHECK(n + 1 == needed);
  return buf;
}

static void test_back_to_back(void) {
  side cgw = {.name = "cgw"};
  side aws = {.name = "aws"};
  cgw.speaker = new_speaker(65000, "10.0.0.1");
  aws.speaker = new_speaker(64512, "10.0.0.2");
  add_neighbor(&cgw, "169.254.10.1", "169.254.10.2", 64512, false);
  add_neighbor(&aws, "169.254.10.2", "169.254.10.1", 65000, true);

  CHECK_RESULT(vpn_bgp_speaker_announce(cgw.speaker, "10.1.0.0/16", "169.254.10.2"), VPN_OK);
  CHECK_RESULT(vpn_bgp_speaker_announce(aws.speaker, "172.31.0.0/16", NULL), VPN_OK);
  uint64_t now = 1 * SEC;
  CHECK_RESULT(vpn_bgp_speaker_start(cgw.speaker, cgw.peer, now), VPN_OK);
  CHECK_RESULT(vpn_bgp_speaker_start(aws.speaker, aws.peer, now), VPN_OK);
  run(&cgw, &aws, &now, 5);

  const vpn_bgp_event *e = find_event(&cgw, VPN_BGP_EVENT_ESTABLISHED, NULL);
  CHECK(e != NULL && e->peer == 0 && e->state == VPN_BGP_STATE_ESTABLISHED);
  e = find_event(&aws, VPN_BGP_EVENT_ESTABLISHED, NULL);
  CHECK(e != NULL && e->peer == 0);
  vpn_bgp_state state = VPN_BGP_STATE_NONE;
  CHECK_RESULT(vpn_bgp_speaker_peer_state(cgw.speaker, 0, &state), VPN_OK);
  CHECK(state == VPN_BGP_STATE_ESTABLISHED);

  /* Each learned the other's route, next hop = the announcer's inside address. */
  e = find_event(&cgw, VPN_BGP_EVENT_ROUTE_ADDED, "172.31.0.0/16");
  CHECK(e != NULL && e->peer == 0 && strcmp(e->next_hop, "169.254.10.1") == 0);
  e = find_event(&aws, VPN_BGP_EVENT_ROUTE_ADDED, "10.1.0.0/16");
  CHECK(e != NULL && e->peer == 0 && strcmp(e->next_hop, "169.254.10.2") == 0);
  e = find_event(&cgw, VPN_BGP_EVENT_ROUTE_ADDED, "10.1.0.0/16");
  CHECK(e != NULL && e->peer == VPN_BGP_PEER_NONE);

  char *rib = rib_text(&cgw);
  CHECK(strcmp(rib, "10.1.0.0/16 169.254.10.2\n172.31.0.0/16 169.254.10.1\n") == 0);
  free(rib);
  rib = rib_text(&aws);
  CHECK(strcmp(rib, "10.1.0.0/16 169.254.10.2\n172.31.0.0/16 -\n") == 0);
  free(rib);
  CHECK(vpn_bgp_speaker_rib_len(cgw.speaker) == 2);

  /* A too-small RIB buffer is left untouched. */
  char small[8] = "xxxxxxx";
  size_t n = 0;
  CHECK_RESULT(vpn_bgp_speaker_rib(cgw.speaker, small, sizeof small, &n),
               VPN_ERR_BUFFER_TOO_SMALL);
  CHECK(n > sizeof small && small[0] == 'x');

  /* Two minutes of keepalives: nobody goes down. */
  run(&cgw, &aws, &now, 120);
  CHECK(find_event(&cgw, VPN_BGP_EVENT_DOWN, NULL) == NULL);
  CHECK(find_event(&aws, VPN_BGP_EVENT_DOWN, NULL) == NULL);

  /* A withdrawal, held back by a too-small transmit buffer first. */
  CHECK_RESULT(vpn_bgp_speaker_withdraw(aws.speaker, "172.31.0.0/16"), VPN_OK);
  uint8_t tiny[4];
  uint32_t peer = 99;
  bool outbound = true;
  n = 0;
  CHECK_RESULT(vpn_bgp_speaker_poll_transmit(aws.speaker, tiny, sizeof tiny, &n, &peer, &outbound),
               VPN_ERR_BUFFER_TOO_SMALL);
  CHECK(n > sizeof tiny && peer == 99 && outbound);
  size_t again = 0;
  CHECK_RESULT(
      vpn_bgp_speaker_poll_transmit(aws.speaker, tiny, sizeof tiny, &again, &peer, &outbound),
      VPN_ERR_BUFFER_TOO_SMALL);
  CHECK(again == n);
  run(&cgw, &aws, &now, 1);
  CHECK(find_event(&cgw, VPN_BGP_EVENT_ROUTE_WITHDRAWN, "172.31.0.0/16") != NULL);
  rib = rib_text(&cgw);
  CHECK(strcmp(rib, "10.1.0.0/16 169.254.10.2\n") == 0);
  free(rib);

  /* Administrative stop: both sides report DOWN. */
  CHECK_RESULT(vpn_bgp_speaker_stop(cgw.speaker, cgw.peer, now, "maintenance"), VPN_OK);
  run(&cgw, &aws, &now, 1);
  e = find_event(&cgw, VPN_BGP_EVENT_DOWN, NULL);
  CHECK(e != NULL && e->reason == VPN_BGP_REASON_ADMIN_DOWN);
  e = find_event(&aws, VPN_BGP_EVENT_DOWN, NULL);
  CHECK(e != NULL && e->reason == VPN_BGP_REASON_NOTIFICATION_RECEIVED && e->error_code == 6 &&
        strstr(e->message, "maintenance") != NULL);
  CHECK(vpn_bgp_speaker_rib_len(aws.speaker) == 0);

  vpn_bgp_speaker_free(cgw.speaker);
  vpn_bgp_speaker_free(aws.speaker);
}

static void test_wrong_peer_as(void) {
  side cgw = {.name = "cgw"};
  side aws = {.name = "aws"};
  cgw.speaker = new_speaker(65000, "10.0.0.1");
  aws.speaker = new_speaker(64512, "10.0.0.2");
  add_neighbor(&cgw, "169.254.10.1", "169.254.10.2", 64512, false);
  add_neighbor(&aws, "169.254.10.2", "169.254.10.1", 64999, true);
  uint64_t now = 0;
  vpn_bgp_speaker_start(cgw.speaker, 0, now);
  vpn_bgp_speaker_start(aws.speaker, 0, now);
  run(&cgw, &aws, &now, 2);
  const vpn_bgp_event *e = find_event(&aws, VPN_BGP_EVENT_DOWN, NULL);
  CHECK(e != NULL && e->reason == VPN_BGP_REASON_BAD_PEER_AS && e->expected_asn == 64999 &&
        e->received_asn == 65000);
  CHECK(e != NULL && strstr(e->message, "64999") != NULL && strstr(e->message, "65000") != NULL);
  e = find_event(&cgw, VPN_BGP_EVENT_DOWN, NULL);
  CHECK(e != NULL && e->reason == VPN_BGP_REASON_NOTIFICATION_RECEIVED && e->error_code == 2 &&
        e->error_subcode == 2);
  CHECK(find_event(&cgw, VPN_BGP_EVENT_ESTABLISHED, NULL) == NULL);
  vpn_bgp_speaker_free(cgw.speaker);
  vpn_bgp_speaker_free(aws.speaker);
}

static void test_garbage(void) {
  side aws = {.name = "aws"};
  aws.speaker = new_speaker(64512, "10.0.0.2");
  add_neighbor(&aws, "169.254.10.2", "169.254.10.1", 65000, true);
  CHECK_RESULT(vpn_bgp_speaker_start(aws.speaker, 0, 0), VPN_OK);
  CHECK_RESULT(vpn_bgp_speaker_handle_connected(aws.speaker, 0, false, 0), VPN_OK);
  size_t n = 0;
  uint32_t peer = 0;
  bool outbound = true;
  CHECK_RESULT(vpn_bgp_speaker_poll_transmit(aws.speaker, tx_buf, sizeof tx_buf, &n, &peer,
                                             &outbound),
               VPN_OK);
  CHECK(n > 19 && tx_buf[18] == 1 && !outbound); /* our OPEN */
  uint8_t garbage[100];
  memset(garbage, 0x5a, sizeof garbage);
  CHECK_RESULT(vpn_bgp_speaker_handle_bytes(aws.speaker, 0, false, 1, garbage, sizeof garbage),
               VPN_OK);
  CHECK_RESULT(vpn_bgp_speaker_poll_transmit(aws.speaker, tx_buf, sizeof tx_buf, &n, &peer,
                                             &outbound),
               VPN_OK);
  CHECK(n == 21 && tx_buf[18] == 3 && tx_buf[19] == 1); /* NOTIFICATION, header error */
  vpn_bgp_action action = VPN_BGP_ACTION_CONNECT;
  CHECK(vpn_bgp_speaker_poll_action(aws.speaker, &peer, &action, &outbound));
  CHECK(action == VPN_BGP_ACTION_CLOSE && !outbound);
  drain_events(&aws);
  const vpn_bgp_event *e = find_event(&aws, VPN_BGP_EVENT_DOWN, NULL);
  CHECK(e != NULL && e->reason == VPN_BGP_REASON_NOTIFICATION_SENT && e->error_code == 1);
  vpn_bgp_speaker_free(aws.speaker);
}

static void test_arguments(void) {
  vpn_bgp_speaker *s = NULL;
  CHECK_RESULT(vpn_bgp_speaker_new(NULL, &s), VPN_ERR_NULL_ARGUMENT);
  vpn_bgp_speaker_config bad = {65000, "not-an-address"};
  CHECK_RESULT(vpn_bgp_speaker_new(&bad, &s), VPN_ERR_INVALID_ARGUMENT);
  vpn_bgp_speaker_config zero_as = {0, "10.0.0.1"};
  CHECK_RESULT(vpn_bgp_speaker_new(&zero_as, &s), VPN_ERR_INVALID_CONFIG);
  CHECK(s == NULL);

  s = new_speaker(65000, "10.0.0.1");
  uint32_t peer = 0;
  vpn_bgp_neighbor_config n;
  memset(&n, 0, sizeof n);
  n.peer_asn = 64512;
  CHECK_RESULT(vpn_bgp_speaker_add_neighbor(s, &n, &peer), VPN_ERR_NULL_ARGUMENT);
  n.peer_address = "169.254.10.1";
  n.hold_time = 2;
  CHECK_RESULT(vpn_bgp_speaker_add_neighbor(s, &n, &peer), VPN_ERR_INVALID_CONFIG);
  n.hold_time = 0;
  CHECK_RESULT(vpn_bgp_speaker_add_neighbor(s, &n, &peer), VPN_OK);
  CHECK_RESULT(vpn_bgp_speaker_start(s, 5, 0), VPN_ERR_UNKNOWN_PEER);
  CHECK_RESULT(vpn_bgp_speaker_handle_bytes(s, 0, true, 0, NULL, 3), VPN_ERR_NULL_ARGUMENT);
  CHECK_RESULT(vpn_bgp_speaker_announce(s, "10.1.2.3/16", NULL), VPN_ERR_INVALID_ARGUMENT);
  CHECK_RESULT(vpn_bgp_speaker_announce(s, "10.1.0.0/16", "2001:db8::1"),
               VPN_ERR_INVALID_ARGUMENT);
  CHECK_RESULT(vpn_bgp_speaker_announce(s, NULL, NULL), VPN_ERR_NULL_ARGUMENT);
  CHECK(vpn_bgp_speaker_poll_timeout(NULL) == UINT64_MAX);
  CHECK(!vpn_bgp_speaker_poll_event(s, NULL));
  size_t out_n = 1;
  bool outbound = false;
  CHECK_RESULT(vpn_bgp_speaker_poll_transmit(s, NULL, 0, &out_n, &peer, &outbound), VPN_OK);
  CHECK(out_n == 0);
  char msg[64];
  CHECK_RESULT(vpn_result_message(VPN_ERR_UNKNOWN_PEER, msg, sizeof msg, &out_n), VPN_OK);
  vpn_bgp_speaker_free(s);
  vpn_bgp_speaker_free(NULL);
}

int main(void) {
  test_back_to_back();
  test_wrong_peer_as();
  test_garbage();
  test_arguments();
  printf("C BGP tests: %u passed, %u failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
