/*
 * The connection configuration's C API, exercised from C: load AWS's
 * CustomerGatewayConfiguration XML from a file, validate it, export a
 * swanctl.conf, a BIRD config and a summary, round-trip through TOML, load
 * a bad TOML and report its errors with their fields, merge AWS
 * TunnelOptions. Run by tests/c/run.sh (under valgrind when available).
 *
 * Usage: config_test [FIXTURE_DIR]
 *   FIXTURE_DIR defaults to vpn-core/tests/fixtures/config (relative to the
 *   repository root) and must hold aws-vpn-connection-bgp.xml and
 *   aws-describe-vpn-connections.json.
 *
 * Exits 0 only if every check passed; the last line is
 *   C config tests: N passed, M failed
 */
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

/* Prints this thread's recorded configuration errors, each with its field. */
static void print_last_errors(FILE *to) {
  size_t count = vpn_last_error_count();
  for (size_t i = 0; i < count; i++) {
    char field[256];
    char message[1024];
    size_t n = 0;
    if (vpn_last_error_field_at(i, field, sizeof field, &n) != VPN_OK) {
      strcpy(field, "?");
    }
    if (vpn_last_error_message_at(i, message, sizeof message, &n) != VPN_OK) {
      strcpy(message, "?");
    }
    fprintf(to, "  error %zu: field '%s': %s\n", i, field, message);
  }
}

/* Checks a call's result, names the code and the recorded errors on failure. */
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
      print_last_errors(stderr);                                              \
    }                                                                         \
  } while (0)

typedef vpn_result (*text_fn)(const vpn_config *cfg, char *buf, size_t len, size_t *out_n);

/*
 * Calls a text export twice: a size query (NULL, 0), then with a buffer of
 * exactly that size. Returns a malloc'd NUL-terminated string, or NULL.
 */
static char *export_text(const vpn_config *cfg, text_fn f) {
  size_t needed = 0;
  vpn_result r = f(cfg, NULL, 0, &needed);
  CHECK(r == VPN_ERR_BUFFER_TOO_SMALL);
  CHECK(needed >= 1);
  if (r != VPN_ERR_BUFFER_TOO_SMALL || needed == 0) {
    return NULL;
  }
  char *buf = malloc(needed);
  CHECK(buf != NULL);
  if (buf == NULL) {
    return NULL;
  }
  size_t n = 0;
  CHECK_RESULT(f(cfg, buf, needed, &n), VPN_OK);
  CHECK(n + 1 == needed);
  CHECK(buf[n] == '\0' && strlen(buf) == n);
  return buf;
}

static vpn_result summary_redacted(const vpn_config *cfg, char *buf, size_t len, size_t *out_n) {
  return vpn_config_summary(cfg, false, buf, len, out_n);
}

static vpn_result summary_shown(const vpn_config *cfg, char *buf, size_t len, size_t *out_n) {
  return vpn_config_summary(cfg, true, buf, len, out_n);
}

static vpn_result to_toml(const vpn_config *cfg, char *buf, size_t len, size_t *out_n) {
  return vpn_config_to_string(cfg, VPN_CONFIG_TOML, buf, len, out_n);
}

static vpn_result to_json(const vpn_config *cfg, char *buf, size_t len, size_t *out_n) {
  return vpn_config_to_string(cfg, VPN_CONFIG_JSON, buf, len, out_n);
}

/* Reads a whole file into a malloc'd buffer; NULL on failure. */
static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    return NULL;
  }
  char *data = NULL;
  size_t cap = 0;
  size_t used = 0;
  for (;;) {
    if (used == cap) {
      cap = cap ? cap * 2 : 4096;
      char *grown = realloc(data, cap);
      if (grown == NULL) {
        free(data);
        fclose(f);
        return NULL;
      }
      data = grown;
    }
    size_t got = fread(data + used, 1, cap - used, f);
    used += got;
    if (got == 0) {
      break;
    }
  }
  fclose(f);
  *len = used;
  return data;
}

static const char PSK1[] = "Qx7vN2mPa9Lr4TzWk8Hc3Ye6Bd5Fg1Js";
static const char PSK2[] = "Ur5kD8sVb2Nq7Xw4Em9Tj6Pc3Ha1Lz0G";

static void test_aws_xml(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/aws-vpn-connection-bgp.xml", dir);
  vpn_config *cfg = NULL;
  CHECK_RESULT(vpn_config_from_file(VPN_CONFIG_AWS_XML, path, &cfg), VPN_OK);
  CHECK(cfg != NULL);
  if (cfg == NULL) {
    return;
  }
  CHECK_RESULT(vpn_config_validate(cfg), VPN_OK);
  CHECK(vpn_last_error_count() == 0);

  char *swanctl = export_text(cfg, vpn_config_to_swanctl);
  CHECK(swanctl != NULL);
  if (swanctl != NULL) {
    CHECK(strstr(swanctl, "version = 1") != NULL);
    CHECK(strstr(swanctl, "secrets") != NULL);
    CHECK(strstr(swanctl, PSK1) != NULL && strstr(swanctl, PSK2) != NULL);
    free(swanctl);
  }

  char *bird = export_text(cfg, vpn_config_to_bird);
  CHECK(bird != NULL && strstr(bird, "protocol bgp tunnel1") != NULL);
  free(bird);

  char *summary = export_text(cfg, summary_redacted);
  CHECK(summary != NULL);
  if (summary != NULL) {
    CHECK(strstr(summary, "<redacted>") != NULL);
    CHECK(strstr(summary, PSK1) == NULL && strstr(summary, PSK2) == NULL);
    free(summary);
  }
  summary = export_text(cfg, summary_shown);
  CHECK(summary != NULL && strstr(summary, PSK1) != NULL);
  free(summary);

  /* Too small by one byte: nothing written, the size needed reported. */
  size_t needed = 0;
  CHECK_RESULT(vpn_config_to_swanctl(cfg, NULL, 0, &needed), VPN_ERR_BUFFER_TOO_SMALL);
  char *small = malloc(needed);
  CHECK(small != NULL);
  if (small != NULL) {
    memset(small, 'x', needed);
    size_t n = 0;
    CHECK_RESULT(vpn_config_to_swanctl(cfg, small, needed - 1, &n), VPN_ERR_BUFFER_TOO_SMALL);
    CHECK(n == needed);
    bool untouched = true;
    for (size_t i = 0; i < needed; i++) {
      untouched = untouched && small[i] == 'x';
    }
    CHECK(untouched);
    free(small);
  }

  /* TOML round trip: the reloaded config exports the same JSON. */
  char *toml = export_text(cfg, to_toml);
  char *json = export_text(cfg, to_json);
  CHECK(toml != NULL && json != NULL);
  if (toml != NULL && json != NULL) {
    vpn_config *again = NULL;
    CHECK_RESULT(vpn_config_from_str(VPN_CONFIG_TOML, toml, strlen(toml), &again), VPN_OK);
    char *json_again = again ? export_text(again, to_json) : NULL;
    CHECK(json_again != NULL && strcmp(json, json_again) == 0);
    free(json_again);
    vpn_config_free(again);
  }
  free(toml);

  /* Merge AWS TunnelOptions from a DescribeVpnConnections response. */
  snprintf(path, sizeof path, "%s/aws-describe-vpn-connections.json", dir);
  size_t options_len = 0;
  char *options = read_file(path, &options_len);
  CHECK(options != NULL);
  if (options != NULL) {
    CHECK_RESULT(vpn_config_merge_aws_tunnel_options(cfg, options, options_len), VPN_OK);
    CHECK_RESULT(vpn_config_validate(cfg), VPN_OK);
    char *merged = export_text(cfg, to_json);
    CHECK(merged != NULL && json != NULL && strcmp(merged, json) != 0);
    free(merged);
    free(options);
  }
  /* A failed merge leaves the config unchanged and names the field. */
  static const char bad_options[] = "[{\"OutsideIpAddress\": \"192.0.2.99\"}]";
  CHECK_RESULT(vpn_config_merge_aws_tunnel_options(cfg, bad_options, strlen(bad_options)),
               VPN_ERR_INVALID_CONFIG);
  char field[128];
  size_t n = 0;
  CHECK_RESULT(vpn_last_error_field(field, sizeof field, &n), VPN_OK);
  CHECK(strcmp(field, "TunnelOptions[0].OutsideIpAddress") == 0);

  free(json);
  vpn_config_free(cfg);
}

/* A TOML config whose values break rules; its second key is a valid-looking secret. */
static const char BAD_TOML[] =
    "name = \"bad name!\"\n"
    "mtu = 100\n"
    "[routing]\n"
    "type = \"static\"\n"
    "prefixes = [\"10.0.0.0/16\"]\n"
    "[[tunnels]]\n"
    "local_outside_address = \"203.0.113.10\"\n"
    "remote_outside_address = \"198.51.100.21\"\n"
    "inside_cidr = \"169.254.44.40/30\"\n"
    "psk = \"0bad_secret_tunnel1\"\n"
    "[[tunnels]]\n"
    "local_outside_address = \"203.0.113.10\"\n"
    "remote_outside_address = \"198.51.100.87\"\n"
    "inside_cidr = \"169.254.201.136/30\"\n"
    "psk = \"good_secret_tunnel2\"\n"
    "ike_lifetime = 10\n";

static bool recorded_field(const char *wanted) {
  size_t count = vpn_last_error_count();
  for (size_t i = 0; i < count; i++) {
    char field[256];
    size_t n = 0;
    if (vpn_last_error_field_at(i, field, sizeof field, &n) == VPN_OK &&
        strcmp(field, wanted) == 0) {
      return true;
    }
  }
  return false;
}

static void test_bad_toml(void) {
  vpn_config *cfg = NULL;
  CHECK_RESULT(vpn_config_from_str(VPN_CONFIG_TOML, BAD_TOML, strlen(BAD_TOML), &cfg), VPN_OK);
  CHECK(cfg != NULL);
  if (cfg == NULL) {
    return;
  }
  CHECK_RESULT(vpn_config_validate(cfg), VPN_ERR_INVALID_CONFIG);
  CHECK(vpn_last_error_count() >= 4);
  CHECK(recorded_field("name"));
  CHECK(recorded_field("mtu"));
  CHECK(recorded_field("tunnels[0].psk"));
  CHECK(recorded_field("tunnels[1].ike_lifetime"));

  /* The whole message: one line per error, never the keys. */
  size_t needed = 0;
  CHECK_RESULT(vpn_last_error_message(NULL, 0, &needed), VPN_ERR_BUFFER_TOO_SMALL);
  char *message = malloc(needed);
  CHECK(message != NULL);
  if (message != NULL) {
    size_t n = 0;
    CHECK_RESULT(vpn_last_error_message(message, needed, &n), VPN_OK);
    CHECK(strstr(message, "0bad_secret_tunnel1") == NULL);
    CHECK(strstr(message, "good_secret_tunnel2") == NULL);
    char field[128];
    CHECK_RESULT(vpn_last_error_field(field, sizeof field, &n), VPN_OK);
    printf("bad TOML rejected (first field '%s'):\n%s\n", field, message);
    free(message);
  }
  print_last_errors(stdout);
  CHECK_RESULT(vpn_last_error_field_at(vpn_last_error_count(), NULL, 0, &needed),
               VPN_ERR_INVALID_ARGUMENT);

  /* A static-routing config has no BIRD config: an empty string. */
  char empty[4] = "xxx";
  size_t n = 99;
  CHECK_RESULT(vpn_config_to_bird(cfg, empty, sizeof empty, &n), VPN_OK);
  CHECK(n == 0 && empty[0] == '\0');
  /* ...and a successful call cleared the recorded errors. */
  CHECK(vpn_last_error_count() == 0);
  vpn_config_free(cfg);

  /* Malformed TOML: a syntax error with a location and no field. */
  static const char broken[] = "name = \"x\"\n[routing\n";
  cfg = NULL;
  CHECK_RESULT(vpn_config_from_str(VPN_CONFIG_TOML, broken, strlen(broken), &cfg),
               VPN_ERR_CONFIG_SYNTAX);
  CHECK(cfg == NULL);
  char message2[512];
  char field[64] = "unset";
  CHECK_RESULT(vpn_last_error_message(message2, sizeof message2, &n), VPN_OK);
  CHECK(strstr(message2, "TOML error at line 2") != NULL);
  CHECK_RESULT(vpn_last_error_field(field, sizeof field, &n), VPN_OK);
  CHECK(n == 0 && field[0] == '\0');
  printf("malformed TOML rejected: %s\n", message2);
}

static void test_arguments(void) {
  vpn_config *cfg = NULL;
  size_t n = 0;
  char buf[16];
  CHECK_RESULT(vpn_config_from_str(VPN_CONFIG_TOML, NULL, 3, &cfg), VPN_ERR_NULL_ARGUMENT);
  CHECK_RESULT(vpn_config_from_str(VPN_CONFIG_TOML, "x", 1, NULL), VPN_ERR_NULL_ARGUMENT);
  CHECK_RESULT(vpn_config_from_str(42, "x", 1, &cfg), VPN_ERR_INVALID_ARGUMENT);
  CHECK_RESULT(vpn_config_from_file(VPN_CONFIG_TOML, NULL, &cfg), VPN_ERR_NULL_ARGUMENT);
  CHECK_RESULT(vpn_config_from_file(VPN_CONFIG_TOML, "/nonexistent/vpn.toml", &cfg), VPN_ERR_IO);
  CHECK_RESULT(vpn_last_error_message(buf, sizeof buf, &n), VPN_ERR_BUFFER_TOO_SMALL);
  CHECK(n > sizeof buf);
  CHECK(cfg == NULL);
  CHECK_RESULT(vpn_config_validate(NULL), VPN_ERR_NULL_ARGUMENT);
  CHECK_RESULT(vpn_config_to_swanctl(NULL, buf, sizeof buf, &n), VPN_ERR_NULL_ARGUMENT);
  CHECK_RESULT(vpn_config_merge_aws_tunnel_options(NULL, "[]", 2), VPN_ERR_NULL_ARGUMENT);
  vpn_config_free(NULL);
  /* Not UTF-8. */
  static const char latin1[] = "name = \"caf\xe9\"";
  CHECK_RESULT(vpn_config_from_str(VPN_CONFIG_TOML, latin1, strlen(latin1), &cfg),
               VPN_ERR_INVALID_ARGUMENT);
  CHECK(cfg == NULL);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "vpn-core/tests/fixtures/config";
  test_aws_xml(dir);
  test_bad_toml();
  test_arguments();
  printf("C config tests: %u passed, %u failed\n", passed, failed);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
