// JWT verification (RFC 7519 / 7515 / 7518 §3): keys and tokens are made here
// with OpenSSL; each row changes one thing of a valid token.
#include "auth/jwt.h"

#include <catch2/catch.hpp>

#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <functional>
#include <string>

#include "auth/json.h"

using namespace cachalot;
using auth::Algorithm;
using auth::JwtError;

namespace {

constexpr int64_t kNow = 1700000000;
const std::string kSecret = "0123456789abcdef0123456789abcdef-hs256-secret";

struct KeyPair {
  EVP_PKEY* key = nullptr;
  std::string public_pem;
};

KeyPair make_pair(bool rsa) {
  KeyPair k;
  k.key = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
  REQUIRE(k.key);
  BIO* bio = BIO_new(BIO_s_mem());
  REQUIRE(PEM_write_bio_PUBKEY(bio, k.key) == 1);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  k.public_pem.assign(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return k;
}

const KeyPair& rsa() {
  static KeyPair k = make_pair(true);
  return k;
}
const KeyPair& ec() {
  static KeyPair k = make_pair(false);
  return k;
}

std::string sign_digest(EVP_PKEY* key, const std::string& input) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::size_t len = 0;
  REQUIRE(EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1);
  REQUIRE(EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1);
  std::string sig(len, '\0');
  REQUIRE(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                         reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1);
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  return sig;
}

std::string sign(const std::string& alg, const std::string& input) {
  if (alg == "RS256") return sign_digest(rsa().key, input);
  if (alg == "ES256") {
    std::string der = sign_digest(ec().key, input);
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    ECDSA_SIG* s = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
    REQUIRE(s);
    unsigned char raw[64];
    BN_bn2binpad(ECDSA_SIG_get0_r(s), raw, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(s), raw + 32, 32);
    ECDSA_SIG_free(s);
    return std::string(reinterpret_cast<char*>(raw), 64);
  }
  unsigned char mac[32];
  unsigned int n = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &n);
  return std::string(reinterpret_cast<char*>(mac), n);
}

std::string token(const std::string& header, const std::string& payload, const std::string& alg) {
  std::string input = auth::base64url_encode(header) + "." + auth::base64url_encode(payload);
  return input + "." + auth::base64url_encode(sign(alg, input));
}

std::string claims(const std::string& extra = "") {
  return R"({"sub":"alice","iss":"https://auth.example","aud":"api","exp":)" + std::to_string(kNow + 600) +
         R"(,"nbf":)" + std::to_string(kNow - 10) + extra + "}";
}

auth::JwtPolicy policy_for(const std::string& key_contents) {
  auth::JwtPolicy p;
  p.algorithms = {Algorithm::RS256, Algorithm::ES256, Algorithm::HS256};
  std::string why;
  p.key = auth::JwtKey::load(key_contents, &why);
  INFO(why);
  REQUIRE(p.key);
  p.issuer = "https://auth.example";
  p.audience = "api";
  p.claim = "sub";
  p.leeway = std::chrono::seconds(30);
  return p;
}

}  // namespace

TEST_CASE("base64url is strict: no padding, no other alphabet, canonical trailing bits", "[jwt]") {
  CHECK(auth::base64url_decode("aGVsbG8") == std::optional<std::string>("hello"));
  CHECK(auth::base64url_encode("hello") == "aGVsbG8");
  CHECK(auth::base64url_decode("") == std::optional<std::string>(""));
  CHECK_FALSE(auth::base64url_decode("aGVsbG8="));   // padding
  CHECK_FALSE(auth::base64url_decode("aGVs+G8"));    // base64, not base64url
  CHECK_FALSE(auth::base64url_decode("aGVs/G8"));
  CHECK_FALSE(auth::base64url_decode("aGVsbG9"));    // non-zero unused bits
  CHECK_FALSE(auth::base64url_decode("a"));          // length 1 mod 4
  CHECK_FALSE(auth::base64url_decode("aGV sbG8"));
}

TEST_CASE("the JSON reader is strict", "[jwt][json]") {
  struct Row {
    const char* name;
    std::string text;
    bool ok;
  };
  const Row rows[] = {
      {"flat object", R"({"a":"x","b":1,"c":true,"d":null,"e":["p","q"],"f":{"g":[1,{"h":2}]}})", true},
      {"whitespace around", " \n{ \"a\" : 1 }\t", true},
      {"empty object", "{}", true},
      {"escapes and a surrogate pair", R"({"a":"\u00e9\ud83d\ude00\n\"\\\/"})", true},
      {"duplicate member", R"({"a":1,"a":2})", false},
      {"duplicate nested member", R"({"o":{"a":1,"a":2}})", false},
      {"trailing comma", R"({"a":1,})", false},
      {"trailing bytes", R"({"a":1}x)", false},
      {"two objects", R"({}{})", false},
      {"not an object", R"(["a"])", false},
      {"single quotes", R"({'a':1})", false},
      {"leading zero", R"({"a":01})", false},
      {"plus sign", R"({"a":+1})", false},
      {"bare dot", R"({"a":1.})", false},
      {"NaN", R"({"a":NaN})", false},
      {"control character", "{\"a\":\"x\x01\"}", false},
      {"invalid escape", R"({"a":"\x"})", false},
      {"lone surrogate", R"({"a":"\ud800"})", false},
      {"invalid UTF-8", "{\"a\":\"\xc3\x28\"}", false},
      {"overlong UTF-8", "{\"a\":\"\xc0\xaf\"}", false},
      {"unterminated", R"({"a":"x)", false},
      {"comment", R"({"a":1 /* x */})", false},
      {"too deep", std::string(40, '[') + std::string(40, ']'), false},
      {"nested too deeply", "{\"a\":" + std::string(20, '[') + std::string(20, ']') + "}", false},
  };
  for (const auto& r : rows) {
    DYNAMIC_SECTION(r.name) { CHECK(auth::parse_object(r.text).has_value() == r.ok); }
  }
  auto m = auth::parse_object(R"({"s":"x","n":-1.5e2,"a":["p","q"],"mixed":["p",1]})");
  REQUIRE(m);
  CHECK(auth::find_member(*m, "s")->string == "x");
  CHECK(auth::find_member(*m, "n")->number == -150);
  CHECK(auth::find_member(*m, "a")->type == auth::JsonValue::Type::StringArray);
  CHECK(auth::find_member(*m, "a")->strings == std::vector<std::string>{"p", "q"});
  CHECK(auth::find_member(*m, "mixed")->type == auth::JsonValue::Type::Other);
  CHECK(auth::find_member(*m, "none") == nullptr);
}

TEST_CASE("valid RS256, ES256 and HS256 tokens give the claim", "[jwt]") {
  for (const std::string alg : {"RS256", "ES256", "HS256"}) {
    DYNAMIC_SECTION(alg) {
      const std::string key = alg == "RS256" ? rsa().public_pem : alg == "ES256" ? ec().public_pem : kSecret + "\n";
      auto p = policy_for(key);
      auto r = auth::verify_jwt(token(R"({"alg":")" + alg + R"(","typ":"JWT"})", claims(), alg), p, kNow);
      CHECK(r.error == JwtError::None);
      CHECK(r.claim == "alice");
    }
  }
}

TEST_CASE("verify_jwt rejects every token that is not exactly right", "[jwt]") {
  const auto rs = policy_for(rsa().public_pem);
  const auto hs = policy_for(kSecret);
  const std::string h = R"({"alg":"RS256","typ":"JWT"})";
  const std::string good = token(h, claims(), "RS256");
  const std::string dot1 = good.substr(0, good.find('.'));
  const std::string sig = good.substr(good.rfind('.') + 1);
  auto with_payload = [&](const std::string& payload) { return token(h, payload, "RS256"); };
  auto exp_claims = [](int64_t exp, const std::string& more = "") {
    return R"({"sub":"alice","iss":"https://auth.example","aud":"api","exp":)" + std::to_string(exp) + more + "}";
  };
  // The HS256 MAC of the header and payload, keyed with the RSA public key's PEM
  // (what a library that trusts the header's alg would check).
  auto confused = [&] {
    std::string input = auth::base64url_encode(R"({"alg":"HS256"})") + "." + auth::base64url_encode(claims());
    unsigned char mac[32];
    unsigned int n = 0;
    const std::string& pem = rsa().public_pem;
    HMAC(EVP_sha256(), pem.data(), static_cast<int>(pem.size()), reinterpret_cast<const unsigned char*>(input.data()),
         input.size(), mac, &n);
    return input + "." + auth::base64url_encode(std::string(reinterpret_cast<char*>(mac), n));
  }();
  struct Row {
    const char* name;
    std::string token;
    const auth::JwtPolicy* policy;
    JwtError want;
  };
  std::string tampered = good;
  tampered[tampered.rfind('.') + 5] = tampered[tampered.rfind('.') + 5] == 'A' ? 'B' : 'A';
  const std::string forged_payload =
      dot1 + "." + auth::base64url_encode(R"({"sub":"mallory","iss":"https://auth.example","aud":"api","exp":)" +
                                          std::to_string(kNow + 600) + "}") +
      "." + sig;
  const Row rows[] = {
      {"baseline", good, &rs, JwtError::None},
      {"forged signature (one character changed)", tampered, &rs, JwtError::BadSignature},
      {"forged payload with the original signature", forged_payload, &rs, JwtError::BadSignature},
      {"signed by another key (HS256 secret, RS256 header)", token(h, claims(), "HS256"), &rs, JwtError::BadSignature},
      {"alg none with an empty signature", auth::base64url_encode(R"({"alg":"none"})") + "." +
                                               auth::base64url_encode(claims()) + ".",
       &rs, JwtError::Malformed},
      {"alg none with some signature", auth::base64url_encode(R"({"alg":"none"})") + "." +
                                           auth::base64url_encode(claims()) + ".AAAA",
       &rs, JwtError::AlgNotAllowed},
      {"alg confusion: HS256 keyed with the RSA public key", confused, &rs, JwtError::AlgNotAllowed},
      {"RS256 token against an HMAC secret", good, &hs, JwtError::AlgNotAllowed},
      {"alg in lower case", token(R"({"alg":"rs256"})", claims(), "RS256"), &rs, JwtError::AlgNotAllowed},
      {"alg not a string", token(R"({"alg":256})", claims(), "RS256"), &rs, JwtError::BadHeader},
      {"no alg", token(R"({"typ":"JWT"})", claims(), "RS256"), &rs, JwtError::BadHeader},
      {"crit header", token(R"({"alg":"RS256","crit":["exp"]})", claims(), "RS256"), &rs, JwtError::BadHeader},
      {"duplicate alg", token(R"({"alg":"HS256","alg":"RS256"})", claims(), "RS256"), &rs, JwtError::BadHeader},
      {"header not JSON", token("alg=RS256", claims(), "RS256"), &rs, JwtError::BadHeader},
      {"two segments", dot1 + "." + auth::base64url_encode(claims()), &rs, JwtError::Malformed},
      {"four segments", good + ".AAAA", &rs, JwtError::Malformed},
      {"empty payload segment", dot1 + ".." + sig, &rs, JwtError::Malformed},
      {"padding in a segment", good + "=", &rs, JwtError::Malformed},
      {"standard base64 character", "+" + good.substr(1), &rs, JwtError::Malformed},
      {"empty token", "", &rs, JwtError::Malformed},
      {"payload not JSON", with_payload("sub=alice"), &rs, JwtError::BadPayload},
      {"duplicate sub in the payload", with_payload(claims(R"(,"sub":"bob")")), &rs, JwtError::BadPayload},
      {"trailing garbage after the payload", with_payload(claims() + "x"), &rs, JwtError::BadPayload},
      {"expired", with_payload(exp_claims(kNow - 31)), &rs, JwtError::Expired},
      {"expired at exactly exp + leeway", with_payload(exp_claims(kNow - 30)), &rs, JwtError::Expired},
      {"expired but within the leeway", with_payload(exp_claims(kNow - 29)), &rs, JwtError::None},
      {"no exp", with_payload(R"({"sub":"alice","iss":"https://auth.example","aud":"api"})"), &rs,
       JwtError::MissingExp},
      {"exp a string", with_payload(R"({"sub":"alice","iss":"https://auth.example","aud":"api","exp":"9999999999"})"),
       &rs, JwtError::BadPayload},
      {"not yet valid", with_payload(exp_claims(kNow + 600, R"(,"nbf":)" + std::to_string(kNow + 31))), &rs,
       JwtError::NotYetValid},
      {"nbf within the leeway", with_payload(exp_claims(kNow + 600, R"(,"nbf":)" + std::to_string(kNow + 30))), &rs,
       JwtError::None},
      {"wrong issuer", with_payload(R"({"sub":"alice","iss":"https://evil.example","aud":"api","exp":)" +
                                    std::to_string(kNow + 600) + "}"),
       &rs, JwtError::WrongIssuer},
      {"no issuer", with_payload(R"({"sub":"alice","aud":"api","exp":)" + std::to_string(kNow + 600) + "}"), &rs,
       JwtError::WrongIssuer},
      {"wrong audience", with_payload(R"({"sub":"alice","iss":"https://auth.example","aud":"web","exp":)" +
                                      std::to_string(kNow + 600) + "}"),
       &rs, JwtError::WrongAudience},
      {"audience array containing ours", with_payload(R"({"sub":"alice","iss":"https://auth.example","aud":["web","api"],"exp":)" +
                                                       std::to_string(kNow + 600) + "}"),
       &rs, JwtError::None},
      {"audience array without ours", with_payload(R"({"sub":"alice","iss":"https://auth.example","aud":["web"],"exp":)" +
                                                    std::to_string(kNow + 600) + "}"),
       &rs, JwtError::WrongAudience},
      {"no audience", with_payload(R"({"sub":"alice","iss":"https://auth.example","exp":)" +
                                   std::to_string(kNow + 600) + "}"),
       &rs, JwtError::WrongAudience},
      {"claim missing", with_payload(R"({"iss":"https://auth.example","aud":"api","exp":)" +
                                     std::to_string(kNow + 600) + "}"),
       &rs, JwtError::ClaimMissing},
      {"claim a number", with_payload(R"({"sub":42,"iss":"https://auth.example","aud":"api","exp":)" +
                                      std::to_string(kNow + 600) + "}"),
       &rs, JwtError::ClaimInvalid},
      {"claim empty", with_payload(R"({"sub":"","iss":"https://auth.example","aud":"api","exp":)" +
                                   std::to_string(kNow + 600) + "}"),
       &rs, JwtError::ClaimInvalid},
      {"claim with a newline", with_payload(R"({"sub":"a\nb","iss":"https://auth.example","aud":"api","exp":)" +
                                            std::to_string(kNow + 600) + "}"),
       &rs, JwtError::ClaimInvalid},
      {"claim too long", with_payload(R"({"sub":")" + std::string(257, 'a') +
                                      R"(","iss":"https://auth.example","aud":"api","exp":)" +
                                      std::to_string(kNow + 600) + "}"),
       &rs, JwtError::ClaimInvalid},
  };
  for (const auto& r : rows) {
    DYNAMIC_SECTION(r.name) {
      auto got = auth::verify_jwt(r.token, *r.policy, kNow);
      CHECK(auth::to_string(got.error) == auth::to_string(r.want));
      if (r.want == JwtError::None) CHECK(got.claim == "alice");
    }
  }
}

TEST_CASE("an algorithm that is not configured is refused even when the key fits", "[jwt]") {
  auto p = policy_for(rsa().public_pem);
  p.algorithms = {Algorithm::ES256};
  CHECK(auth::verify_jwt(token(R"({"alg":"RS256"})", claims(), "RS256"), p, kNow).error == JwtError::AlgNotAllowed);
}

TEST_CASE("ES256 signatures must be the raw 64-byte r || s", "[jwt]") {
  auto p = policy_for(ec().public_pem);
  std::string input = auth::base64url_encode(R"({"alg":"ES256"})") + "." + auth::base64url_encode(claims());
  const std::string der = sign_digest(ec().key, input);  // DER, as OpenSSL signs
  CHECK(auth::verify_jwt(input + "." + auth::base64url_encode(der), p, kNow).error == JwtError::BadSignature);
  CHECK(auth::verify_jwt(input + "." + auth::base64url_encode(sign("ES256", input)), p, kNow).ok());
}

TEST_CASE("key files: PEM public keys, HMAC secrets, and what is refused", "[jwt]") {
  std::string why;
  auto k = auth::JwtKey::load(rsa().public_pem, &why);
  REQUIRE(k);
  CHECK(k->type() == auth::JwtKey::Type::Rsa);
  CHECK(k->fits(Algorithm::RS256));
  CHECK_FALSE(k->fits(Algorithm::HS256));
  k = auth::JwtKey::load(ec().public_pem, &why);
  REQUIRE(k);
  CHECK(k->type() == auth::JwtKey::Type::EcP256);
  k = auth::JwtKey::load(kSecret + "\r\n", &why);
  REQUIRE(k);
  CHECK(k->type() == auth::JwtKey::Type::Secret);
  CHECK_FALSE(auth::JwtKey::load("short secret\n", &why));
  CHECK(why.find("32 bytes") != std::string::npos);
  CHECK_FALSE(auth::JwtKey::load("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", &why));
  CHECK_FALSE(auth::JwtKey::load("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", &why));
  CHECK(why.find("private key") != std::string::npos);
}

TEST_CASE("bearer_token reads the Authorization value", "[jwt]") {
  CHECK(auth::bearer_token("Bearer abc.def.ghi") == std::optional<std::string_view>("abc.def.ghi"));
  CHECK(auth::bearer_token("bearer  abc ") == std::optional<std::string_view>("abc"));
  CHECK_FALSE(auth::bearer_token("Basic dXNlcjpwdw=="));
  CHECK_FALSE(auth::bearer_token("Bearer"));
  CHECK_FALSE(auth::bearer_token("Bearer "));
  CHECK_FALSE(auth::bearer_token("Bearerabc"));
}

TEST_CASE("partition namespaces differ by route, issuer, audience, claim and key", "[jwt][partition]") {
  auth::JwtPolicy base = policy_for(kSecret);
  const std::string ns = auth::partition_namespace("dash", base);
  CHECK(ns.size() == 16);
  CHECK(ns.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(auth::partition_namespace("dash", base) == ns);  // stable: the same config finds its entries after a restart
  CHECK(auth::partition_namespace("other", base) != ns);
  auto with = [&](auto change) {
    auth::JwtPolicy p = base;
    change(p);
    return auth::partition_namespace("dash", p);
  };
  CHECK(with([](auth::JwtPolicy& p) { p.issuer = "https://other.example"; }) != ns);
  CHECK(with([](auth::JwtPolicy& p) { p.audience = "other"; }) != ns);
  CHECK(with([](auth::JwtPolicy& p) { p.claim = "email"; }) != ns);
  CHECK(with([](auth::JwtPolicy& p) { p.key = auth::JwtKey::load(kSecret + "-rotated", nullptr); }) != ns);
  CHECK(with([](auth::JwtPolicy& p) { p.leeway = std::chrono::seconds(5); }) == ns);  // not an identity change
}

TEST_CASE("key files that are public keys in another form are not HMAC secrets", "[jwt]") {
  std::string why;
  CHECK_FALSE(auth::JwtKey::load(R"({"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB"})", &why));
  CHECK_THAT(why, Catch::Contains("JWK or DER"));
  std::string der = "\x30\x82\x01\x22";
  der += std::string(40, 'x');
  CHECK_FALSE(auth::JwtKey::load(der, &why));
  CHECK(auth::JwtKey::load("0" + kSecret, &why));  // a secret may begin with the digit 0
  CHECK(auth::JwtKey::load(std::string(48, 'a') + "\n", &why));
}

TEST_CASE("a token longer than kMaxTokenBytes is malformed before it is decoded", "[jwt]") {
  const auto hs = policy_for(kSecret);
  const std::string huge(auth::kMaxTokenBytes + 1, 'a');
  CHECK(auth::verify_jwt(huge, hs, 0).error == auth::JwtError::Malformed);
}

TEST_CASE("VerifiedTokens answers what verify_jwt would, checking a token's signature once", "[jwt]") {
  auto p = policy_for(rsa().public_pem);
  p.ns = auth::partition_namespace("dash", p);
  auth::VerifiedTokens memo(3);
  const std::string good = token(R"({"alg":"RS256"})", claims(), "RS256");

  SECTION("a verified token is remembered; its claim comes back without another check") {
    CHECK(memo.verify(good, p, kNow).claim == "alice");
    CHECK(memo.verify(good, p, kNow + 1).claim == "alice");
    CHECK(memo.checked() == 1);
    CHECK(memo.remembered() == 1);
  }
  SECTION("exp and nbf are checked again on every use, with the policy's leeway (RFC 7519 §4.1.4, §4.1.5)") {
    REQUIRE(memo.verify(good, p, kNow).ok());
    CHECK(memo.verify(good, p, kNow + 600 + 29).ok());
    CHECK(memo.verify(good, p, kNow + 600 + 30).error == JwtError::Expired);
    CHECK(memo.verify(good, p, kNow - 10 - 31).error == JwtError::NotYetValid);
    p.leeway = std::chrono::seconds(0);
    CHECK(memo.verify(good, p, kNow + 600).error == JwtError::Expired);
    CHECK(memo.checked() == 1);  // all from memory, each with the verdict verify_jwt gives
    CHECK(auth::verify_jwt(good, p, kNow + 600).error == JwtError::Expired);
  }
  SECTION("a failure is never remembered: a forged token is checked every time") {
    std::string forged = good;
    forged.back() = forged.back() == 'A' ? 'Q' : 'A';
    CHECK(memo.verify(forged, p, kNow).error == JwtError::BadSignature);
    CHECK(memo.verify(forged, p, kNow).error == JwtError::BadSignature);
    CHECK(memo.checked() == 2);
    CHECK(memo.size() == 0);
  }
  SECTION("another policy (namespace) never finds the token; a policy that drops its algorithm refuses it") {
    REQUIRE(memo.verify(good, p, kNow).ok());
    auto other = p;
    other.audience = "another-api";
    other.ns = auth::partition_namespace("dash", other);
    CHECK(memo.verify(good, other, kNow).error == JwtError::WrongAudience);
    auto narrower = p;
    narrower.algorithms = {Algorithm::ES256};
    CHECK(memo.verify(good, narrower, kNow).error == JwtError::AlgNotAllowed);
    CHECK(memo.checked() == 3);
  }
  SECTION("bounded: at capacity it forgets everything and starts again") {
    for (int i = 0; i < 5; ++i) {
      const std::string t = token(R"({"alg":"RS256"})", claims(",\"n\":" + std::to_string(i)), "RS256");
      CHECK(memo.verify(t, p, kNow).ok());
      CHECK(memo.size() <= 3);
    }
    CHECK(memo.size() == 2);  // 3 remembered, cleared at the 4th, then the 4th and 5th
  }
}
