/*
 * The ESP SA's C API, exercised from C: round trips through AEAD and
 * CBC+HMAC SAs with and without ESN, in place and copying, replay and
 * tamper detection, buffer-too-small size reporting, counters, error
 * messages. Run by tests/c/run.sh (under valgrind when available).
 *
 * Exits 0 only if every check passed; the last line is
 *   C ESP tests: N passed, M failed
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

/* Checks a call's result and names the code on failure. */
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

/* A 60-byte IPv4/UDP packet: 20-byte header, 8-byte UDP header, 32 bytes of data. */
#define INNER_LEN 60
static void make_inner(uint8_t inner[INNER_LEN]) {
  static const uint8_t header[28] = {
      0x45, 0x00, 0x00, INNER_LEN, 0x12, 0x34, 0x00, 0x00, 64, 17, 0x00, 0x00, 10, 0, 0, 1,
      10,   0,    1,    1,         0x30, 0x39, 0x00, 0x35, 0,  INNER_LEN - 20, 0, 0,
  };
  memcpy(inner, header, sizeof header);
  for (size_t i = sizeof header; i < INNER_LEN; i++) {
    inner[i] = (uint8_t)i;
  }
}

static uint8_t gcm_key[36];
static uint8_t cbc_key[16];
static uint8_t hmac_key[32];

struct suite {
  const char *name;
  const char *encryption;
  const char *integrity;
  const uint8_t *enc_key;
  size_t enc_key_len;
  const uint8_t *integ_key;
  size_t integ_key_len;
  bool esn;
};

static vpn_esp_sa *new_sa(const struct suite *s, uint32_t spi) {
  vpn_esp_sa_config config;
  memset(&config, 0, sizeof config);
  config.spi = spi;
  config.encryption = s->encryption;
  config.integrity = s->integrity;
  config.esn = s->esn;
  config.replay_window = 64;
  vpn_esp_sa *sa = NULL;
  CHECK_RESULT(vpn_esp_sa_new(&config, s->enc_key, s->enc_key_len, s->integ_key,
                              s->integ_key_len, 0, &sa),
               VPN_OK);
  CHECK(sa != NULL);
  return sa;
}

static void test_suite(const struct suite *s) {
  printf("suite %s\n", s->name);
  uint64_t now = 1000000000ull;
  vpn_esp_sa *tx = new_sa(s, 0xc0ffee01u);
  vpn_esp_sa *rx = new_sa(s, 0xc0ffee01u);
  if (tx == NULL || rx == NULL) {
    vpn_esp_sa_free(tx);
    vpn_esp_sa_free(rx);
    return;
  }

  uint8_t inner[INNER_LEN];
  make_inner(inner);
  size_t needed = vpn_esp_sa_encapsulated_len(tx, INNER_LEN);
  size_t headroom = vpn_esp_sa_headroom(tx);
  size_t tailroom = vpn_esp_sa_tailroom(tx);
  CHECK(needed > INNER_LEN);
  CHECK(needed <= headroom + INNER_LEN + tailroom);

  /* Buffer too small: nothing written to the buffer, the size needed reported. */
  uint8_t small[INNER_LEN];
  memset(small, 0xAA, sizeof small);
  size_t n = 0;
  CHECK_RESULT(vpn_esp_sa_encapsulate(tx, now, inner, INNER_LEN, small, sizeof small, &n),
               VPN_ERR_BUFFER_TOO_SMALL);
  CHECK(n == needed);
  bool untouched = true;
  for (size_t i = 0; i < sizeof small; i++) {
    untouched = untouched && small[i] == 0xAA;
  }
  CHECK(untouched);
  n = 0;
  CHECK_RESULT(vpn_esp_sa_encapsulate(tx, now, inner, INNER_LEN, NULL, 0, &n),
               VPN_ERR_BUFFER_TOO_SMALL);
  CHECK(n == needed);
  char detail[160];
  size_t detail_n = 0;
  CHECK_RESULT(vpn_esp_sa_last_error_message(tx, detail, sizeof detail, &detail_n), VPN_OK);
  CHECK(detail_n == strlen(detail));
  CHECK(strstr(detail, "buffer too small") != NULL);

  /* Copying encapsulation, in-place decapsulation. */
  uint8_t *packet = malloc(needed);
  uint8_t *buf = malloc(needed);
  CHECK(packet != NULL && buf != NULL);
  if (packet == NULL || buf == NULL) {
    free(packet);
    free(buf);
    vpn_esp_sa_free(tx);
    vpn_esp_sa_free(rx);
    return;
  }
  size_t packet_len = 0;
  CHECK_RESULT(vpn_esp_sa_encapsulate(tx, now, inner, INNER_LEN, packet, needed, &packet_len),
               VPN_OK);
  CHECK(packet_len == needed);
  CHECK(packet[0] == 0xc0 && packet[1] == 0xff && packet[2] == 0xee && packet[3] == 0x01);
  CHECK(memcmp(packet + headroom, inner, INNER_LEN) != 0); /* encrypted */

  memcpy(buf, packet, packet_len);
  size_t off = 0, len = 0;
  CHECK_RESULT(vpn_esp_sa_decapsulate_in_place(rx, now, buf, packet_len, &off, &len), VPN_OK);
  CHECK(len == INNER_LEN);
  CHECK(off + len <= packet_len && memcmp(buf + off, inner, INNER_LEN) == 0);

  /* The same packet again is a replay; outputs stay untouched. */
  memcpy(buf, packet, packet_len);
  off = 12345;
  len = 12345;
  CHECK_RESULT(vpn_esp_sa_decapsulate_in_place(rx, now, buf, packet_len, &off, &len),
               VPN_ERR_REPLAY);
  CHECK(off == 12345 && len == 12345);
  CHECK_RESULT(vpn_esp_sa_last_error_message(rx, detail, sizeof detail, &detail_n), VPN_OK);
  CHECK(strstr(detail, "replayed") != NULL);

  /* In-place encapsulation of the next packet; then tamper with one ciphertext byte. */
  size_t room = headroom + INNER_LEN + tailroom;
  uint8_t *inplace = malloc(room);
  CHECK(inplace != NULL);
  if (inplace != NULL) {
    memset(inplace, 0, room);
    memcpy(inplace + headroom, inner, INNER_LEN);
    size_t esp_len = 0;
    CHECK_RESULT(vpn_esp_sa_encapsulate_in_place(tx, now, inplace, room, INNER_LEN, &esp_len),
                 VPN_OK);
    CHECK(esp_len == needed);

    uint8_t *tampered = malloc(esp_len);
    CHECK(tampered != NULL);
    if (tampered != NULL) {
      memcpy(tampered, inplace, esp_len);
      tampered[headroom + 3] ^= 0x01;
      CHECK_RESULT(vpn_esp_sa_decapsulate_in_place(rx, now, tampered, esp_len, &off, &len),
                   VPN_ERR_AUTHENTICATION);
      free(tampered);
    }
    /* The genuine packet still passes: the forgery did not move the window. */
    CHECK_RESULT(vpn_esp_sa_decapsulate_in_place(rx, now, inplace, esp_len, &off, &len),
                 VPN_OK);
    CHECK(len == INNER_LEN && memcmp(inplace + off, inner, INNER_LEN) == 0);

    /* In place with no room for the trailer: the size needed is reported. */
    memcpy(inplace + headroom, inner, INNER_LEN);
    n = 0;
    CHECK_RESULT(vpn_esp_sa_encapsulate_in_place(tx, now, inplace, headroom + INNER_LEN,
                                                 INNER_LEN, &n),
                 VPN_ERR_BUFFER_TOO_SMALL);
    CHECK(n == needed);
    free(inplace);
  }

  /* A packet for another SPI. */
  memcpy(buf, packet, packet_len);
  buf[3] ^= 0xff;
  CHECK_RESULT(vpn_esp_sa_decapsulate_in_place(rx, now, buf, packet_len, &off, &len),
               VPN_ERR_WRONG_SPI);

  /* Counters. */
  vpn_esp_counters tc, rc;
  CHECK_RESULT(vpn_esp_sa_counters(tx, &tc), VPN_OK);
  CHECK_RESULT(vpn_esp_sa_counters(rx, &rc), VPN_OK);
  CHECK(tc.packets_out == 2 && tc.bytes_out == 2 * INNER_LEN);
  CHECK(rc.packets_in == 2 && rc.bytes_in == 2 * INNER_LEN);
  CHECK(rc.replay_duplicates == 1);
  CHECK(rc.icv_failures == 1);
  CHECK(rc.malformed == 1); /* the wrong-SPI packet */
  printf("  tx: packets_out=%" PRIu64 " bytes_out=%" PRIu64 "; rx: packets_in=%" PRIu64
         " bytes_in=%" PRIu64 " replay_duplicates=%" PRIu64 " icv_failures=%" PRIu64 "\n",
         tc.packets_out, tc.bytes_out, rc.packets_in, rc.bytes_in, rc.replay_duplicates,
         rc.icv_failures);

  free(packet);
  free(buf);
  vpn_esp_sa_free(tx);
  vpn_esp_sa_free(rx);
}

static void test_errors(void) {
  printf("argument and configuration errors\n");
  vpn_esp_sa_config config;
  memset(&config, 0, sizeof config);
  config.spi = 0x1000;
  config.encryption = "aes256gcm16";
  vpn_esp_sa *sa = NULL;

  CHECK_RESULT(vpn_esp_sa_new(NULL, gcm_key, sizeof gcm_key, NULL, 0, 0, &sa),
               VPN_ERR_NULL_ARGUMENT);
  CHECK_RESULT(vpn_esp_sa_new(&config, gcm_key, sizeof gcm_key, NULL, 0, 0, NULL),
               VPN_ERR_NULL_ARGUMENT);
  CHECK_RESULT(vpn_esp_sa_new(&config, gcm_key, 32, NULL, 0, 0, &sa),
               VPN_ERR_INVALID_KEY_LENGTH);
  config.encryption = "rot13";
  CHECK_RESULT(vpn_esp_sa_new(&config, gcm_key, sizeof gcm_key, NULL, 0, 0, &sa),
               VPN_ERR_UNKNOWN_ALGORITHM);
  config.encryption = "aes\xff";
  CHECK_RESULT(vpn_esp_sa_new(&config, gcm_key, sizeof gcm_key, NULL, 0, 0, &sa),
               VPN_ERR_INVALID_ARGUMENT);
  config.encryption = "aes256gcm16";
  config.integrity = "sha256"; /* AEAD takes no integrity algorithm */
  CHECK_RESULT(vpn_esp_sa_new(&config, gcm_key, sizeof gcm_key, hmac_key, sizeof hmac_key, 0,
                              &sa),
               VPN_ERR_INVALID_CONFIG);
  config.integrity = NULL;
  config.spi = 1; /* reserved */
  CHECK_RESULT(vpn_esp_sa_new(&config, gcm_key, sizeof gcm_key, NULL, 0, 0, &sa),
               VPN_ERR_INVALID_CONFIG);
  CHECK(sa == NULL);

  CHECK(vpn_esp_sa_headroom(NULL) == 0);
  CHECK(vpn_esp_sa_poll_timeout(NULL) == UINT64_MAX);
  vpn_esp_counters c;
  CHECK_RESULT(vpn_esp_sa_counters(NULL, &c), VPN_ERR_NULL_ARGUMENT);
  size_t n = 0;
  uint8_t out[8];
  CHECK_RESULT(vpn_esp_sa_encapsulate(NULL, 0, out, 1, out, sizeof out, &n),
               VPN_ERR_NULL_ARGUMENT);
  vpn_esp_sa_free(NULL);

  /* A hard packet lifetime of 1: the first packet ends the SA. */
  config.spi = 0x1000;
  config.hard_lifetime.packets = 1;
  CHECK_RESULT(vpn_esp_sa_new(&config, gcm_key, sizeof gcm_key, NULL, 0, 0, &sa), VPN_OK);
  if (sa != NULL) {
    uint8_t inner[INNER_LEN];
    make_inner(inner);
    uint8_t packet[256];
    inner[0] = 0x55; /* neither IPv4 nor IPv6: refused, and not counted */
    CHECK_RESULT(vpn_esp_sa_encapsulate(sa, 0, inner, INNER_LEN, packet, sizeof packet, &n),
                 VPN_ERR_UNSUPPORTED_INNER_PACKET);
    inner[0] = 0x45;
    CHECK_RESULT(vpn_esp_sa_encapsulate(sa, 0, inner, INNER_LEN, packet, sizeof packet, &n),
                 VPN_OK);
    vpn_esp_event ev;
    CHECK(vpn_esp_sa_poll_event(sa, &ev));
    CHECK(ev.kind == VPN_ESP_EVENT_HARD_LIFETIME && ev.limit == VPN_ESP_LIMIT_PACKETS &&
          ev.spi == 0x1000);
    CHECK(!vpn_esp_sa_poll_event(sa, &ev));
    CHECK_RESULT(vpn_esp_sa_encapsulate(sa, 0, inner, INNER_LEN, packet, sizeof packet, &n),
                 VPN_ERR_EXPIRED);
    vpn_esp_sa_free(sa);
  }
}

static void test_messages(void) {
  printf("result messages\n");
  for (uint32_t code = VPN_OK; code <= VPN_ERR_PANIC; code++) {
    size_t needed = 0;
    CHECK_RESULT(vpn_result_message(code, NULL, 0, &needed), VPN_ERR_BUFFER_TOO_SMALL);
    CHECK(needed > 1);
    char *msg = malloc(needed);
    CHECK(msg != NULL);
    if (msg == NULL) {
      continue;
    }
    size_t n = 0;
    CHECK_RESULT(vpn_result_message(code, msg, needed, &n), VPN_OK);
    CHECK(n + 1 == needed && msg[n] == '\0' && strlen(msg) == n);
    printf("  %2u: %s\n", (unsigned)code, msg);
    free(msg);
  }
  char small[4] = {'x', 'x', 'x', 'x'};
  size_t n = 0;
  CHECK_RESULT(vpn_result_message(VPN_ERR_REPLAY, small, sizeof small, &n),
               VPN_ERR_BUFFER_TOO_SMALL);
  CHECK(n == strlen("replayed packet") + 1 && small[0] == 'x');
  char msg[64];
  CHECK_RESULT(vpn_result_message(4242, msg, sizeof msg, &n), VPN_OK);
  CHECK(strcmp(msg, "unknown result code") == 0);
}

int main(void) {
  for (size_t i = 0; i < sizeof gcm_key; i++) gcm_key[i] = (uint8_t)(0x10 + i);
  for (size_t i = 0; i < sizeof cbc_key; i++) cbc_key[i] = (uint8_t)(0x40 + i);
  for (size_t i = 0; i < sizeof hmac_key; i++) hmac_key[i] = (uint8_t)(0x80 + i);

  const struct suite suites[] = {
      {"aes256gcm16", "aes256gcm16", NULL, gcm_key, sizeof gcm_key, NULL, 0, false},
      {"aes256gcm16 + ESN", "aes256gcm16", NULL, gcm_key, sizeof gcm_key, NULL, 0, true},
      {"aes128-sha256", "aes128", "sha256", cbc_key, sizeof cbc_key, hmac_key, sizeof hmac_key,
       false},
      {"aes128-sha256 + ESN", "aes128", "sha256", cbc_key, sizeof cbc_key, hmac_key,
       sizeof hmac_key, true},
  };
  for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
    test_suite(&suites[i]);
  }
  test_errors();
  test_messages();

  printf("C ESP tests: %u passed, %u failed\n", passed, failed);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
