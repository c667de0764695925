// Route partitions in the config: what loads, and errors that name the file,
// line and key.
#include <catch2/catch.hpp>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "config/config.h"

using namespace cachalot;
using namespace cachalot::config;

namespace {

std::string temp_file(const std::string& name, const std::string& contents) {
  std::string path = "/tmp/cachalot-partition-test-" + std::to_string(getpid()) + "-" + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

std::string rsa_public_pem() {
  EVP_PKEY* k = EVP_RSA_gen(2048);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, k);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(k);
  return pem;
}

std::string route_yaml(const std::string& partition, const std::string& extra = "") {
  return "upstream: { url: 'http://origin' }\n"
         "routes:\n"
         "  - name: dashboard\n"
         "    prefix: /dashboard/\n"
         "    partition:\n" +
         partition + extra;
}

}  // namespace

TEST_CASE("a partitioned route loads its key and options", "[config][partition]") {
  const std::string secret = temp_file("secret", std::string(40, 's') + "\n");
  auto r = load_config_string(route_yaml("      jwt:\n"
                                         "        algorithms: [HS256]\n"
                                         "        key_file: " + secret + "\n"
                                         "        issuer: https://auth.example\n"
                                         "        audience: api\n"
                                         "        claim: uid\n"
                                         "        leeway: 5s\n",
                                         "    partition_max_bytes: 64KiB\n"),
                              "p.yaml");
  REQUIRE(std::holds_alternative<std::shared_ptr<const Config>>(r));
  const Route& route = std::get<std::shared_ptr<const Config>>(r)->routes.at(0);
  REQUIRE(route.partition);
  CHECK(route.partition->algorithms == std::vector<auth::Algorithm>{auth::Algorithm::HS256});
  REQUIRE(route.partition->key);
  CHECK(route.partition->key->type() == auth::JwtKey::Type::Secret);
  CHECK(route.partition->issuer == "https://auth.example");
  CHECK(route.partition->audience == "api");
  CHECK(route.partition->claim == "uid");
  CHECK(route.partition->leeway == std::chrono::seconds(5));
  CHECK(route.partition_max_bytes == 64 * 1024);
  ::unlink(secret.c_str());
}

TEST_CASE("partition errors name the file, line and key", "[config][partition]") {
  const std::string secret = temp_file("secret2", std::string(40, 's'));
  const std::string pem = temp_file("rsa.pem", rsa_public_pem());
  struct Row {
    const char* label;
    std::string yaml;
    int line;
    std::string key;
    std::string message;
  };
  const Row rows[] = {
      {"no key_file", route_yaml("      jwt:\n        algorithms: [HS256]\n"), 6, "routes[0].partition.jwt.key_file",
       "is required"},
      {"no jwt", route_yaml("      {}\n"), 5, "routes[0].partition.jwt", "is required"},
      {"unknown algorithm",
       route_yaml("      jwt:\n        algorithms: [HS256, PS512]\n        key_file: " + secret + "\n"), 7,
       "routes[0].partition.jwt.algorithms[1]", "unknown algorithm 'PS512'"},
      {"alg none", route_yaml("      jwt:\n        algorithms: [none]\n        key_file: " + secret + "\n"), 7,
       "routes[0].partition.jwt.algorithms[0]", "'none' is never accepted"},
      {"unreadable key file",
       route_yaml("      jwt:\n        algorithms: [RS256]\n        key_file: /nonexistent/jwt.pem\n"), 8,
       "routes[0].partition.jwt.key_file", "cannot read /nonexistent/jwt.pem"},
      {"HS256 with a public key (alg confusion)",
       route_yaml("      jwt:\n        algorithms: [HS256]\n        key_file: " + pem + "\n"), 7,
       "routes[0].partition.jwt.algorithms[0]", "cannot be verified with"},
      {"one listed algorithm that does not fit the key",
       route_yaml("      jwt:\n        algorithms: [RS256, HS256]\n        key_file: " + pem + "\n"), 7,
       "routes[0].partition.jwt.algorithms[1]", "list only the key's algorithm"},
      {"short secret", route_yaml("      jwt:\n        algorithms: [HS256]\n        key_file: " +
                                  temp_file("short", "tiny") + "\n"),
       8, "routes[0].partition.jwt.key_file", "shorter than 32 bytes"},
      {"unknown key under jwt",
       route_yaml("      jwt:\n        algorithms: [HS256]\n        key_file: " + secret + "\n        clam: sub\n"), 9,
       "routes[0].partition.jwt.clam", "unknown key 'clam' (did you mean 'claim'?)"},
      {"budget without partition",
       "upstream: { url: 'http://origin' }\nroutes:\n  - name: a\n    prefix: /a/\n    partition_max_bytes: 1MiB\n", 5,
       "routes[0].partition_max_bytes", "needs partition"},
  };
  for (const auto& r : rows) {
    DYNAMIC_SECTION(r.label) {
      auto result = load_config_string(r.yaml, "routes.yaml");
      REQUIRE(std::holds_alternative<std::vector<ConfigError>>(result));
      const auto& errors = std::get<std::vector<ConfigError>>(result);
      REQUIRE(errors.size() >= 1);
      INFO(errors[0].to_string());
      CHECK(errors[0].file == "routes.yaml");
      CHECK(errors[0].line == r.line);
      CHECK(errors[0].key == r.key);
      CHECK(errors[0].message.find(r.message) != std::string::npos);
    }
  }
  ::unlink(secret.c_str());
  ::unlink(pem.c_str());
}
