#include "auth/jwt.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <xxhash.h>

#include <cmath>

#include "auth/json.h"

namespace cachalot::auth {

namespace {

constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int b64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

EVP_PKEY* pkey(void* p) { return static_cast<EVP_PKEY*>(p); }

bool verify_digest(EVP_PKEY* key, std::string_view input, const unsigned char* sig, std::size_t sig_len) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return false;
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, sig, sig_len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

// RFC 7518 §3.4: ES256 signs with the raw r || s (32 bytes each); OpenSSL wants a DER ECDSA-Sig-Value.
bool verify_es256(EVP_PKEY* key, std::string_view input, std::string_view sig) {
  if (sig.size() != 64) return false;
  const auto* raw = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* es = ECDSA_SIG_new();
  if (!es) return false;
  BIGNUM* r = BN_bin2bn(raw, 32, nullptr);
  BIGNUM* s = BN_bin2bn(raw + 32, 32, nullptr);
  if (!r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return false;
  }
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(es, &der);
  ECDSA_SIG_free(es);
  if (der_len <= 0) return false;
  const bool ok = verify_digest(key, input, der, static_cast<std::size_t>(der_len));
  OPENSSL_free(der);
  return ok;
}

bool valid_claim(std::string_view s) noexcept {
  if (s.empty() || s.size() > kMaxClaimBytes) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

}  // namespace

std::string_view to_string(Algorithm a) noexcept {
  switch (a) {
    case Algorithm::RS256: return "RS256";
    case Algorithm::ES256: return "ES256";
    case Algorithm::HS256: return "HS256";
  }
  return "?";
}

std::optional<Algorithm> parse_algorithm(std::string_view name) noexcept {
  // Case-sensitive, as RFC 7518 §3.1 registers them.
  if (name == "RS256") return Algorithm::RS256;
  if (name == "ES256") return Algorithm::ES256;
  if (name == "HS256") return Algorithm::HS256;
  return std::nullopt;
}

std::string_view to_string(JwtError e) noexcept {
  switch (e) {
    case JwtError::None: return "ok";
    case JwtError::Malformed: return "malformed";
    case JwtError::BadHeader: return "bad-header";
    case JwtError::AlgNotAllowed: return "alg-not-allowed";
    case JwtError::BadSignature: return "bad-signature";
    case JwtError::BadPayload: return "bad-payload";
    case JwtError::MissingExp: return "missing-exp";
    case JwtError::Expired: return "expired";
    case JwtError::NotYetValid: return "not-yet-valid";
    case JwtError::WrongIssuer: return "wrong-issuer";
    case JwtError::WrongAudience: return "wrong-audience";
    case JwtError::ClaimMissing: return "claim-missing";
    case JwtError::ClaimInvalid: return "claim-invalid";
  }
  return "?";
}

std::optional<std::string> base64url_decode(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = b64_value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Canonical only: the unused low bits of the last character are zero.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string base64url_encode(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kB64Url[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kB64Url[(acc << (6 - bits)) & 63]);
  return out;
}

std::optional<std::string_view> bearer_token(std::string_view v) noexcept {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  constexpr std::string_view kScheme = "bearer";
  if (v.size() <= kScheme.size() || v[kScheme.size()] != ' ') return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i)
    if (lower(v[i]) != kScheme[i]) return std::nullopt;
  v.remove_prefix(kScheme.size());
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.empty()) return std::nullopt;
  return v;
}

// ---------------------------------------------------------------- JwtKey

std::shared_ptr<const JwtKey> JwtKey::load(std::string_view contents, std::string* why) {
  auto set = [&](const char* w) {
    if (why) *why = w;
    return nullptr;
  };
  std::shared_ptr<JwtKey> k(new JwtKey());
  k->fingerprint_ = XXH3_64bits(contents.data(), contents.size());
  if (contents.find("-----BEGIN") != std::string_view::npos) {
    if (contents.find("PRIVATE KEY") != std::string_view::npos)
      return set("holds a private key; give the public key (openssl pkey -pubout)");
    BIO* bio = BIO_new_mem_buf(contents.data(), static_cast<int>(contents.size()));
    if (!bio) return set("out of memory");
    EVP_PKEY* p = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (!p) return set("is not a PEM public key (-----BEGIN PUBLIC KEY-----)");
    k->pkey_ = p;
    const int id = EVP_PKEY_get_base_id(p);
    if (id == EVP_PKEY_RSA) {
      if (EVP_PKEY_get_bits(p) < 2048) return set("RSA key shorter than 2048 bits");
      k->type_ = Type::Rsa;
    } else if (id == EVP_PKEY_EC) {
      char group[64] = {};
      std::size_t len = 0;
      if (EVP_PKEY_get_group_name(p, group, sizeof group, &len) != 1 || std::string_view(group, len) != "prime256v1")
        return set("EC key not on P-256 (ES256 needs prime256v1)");
      k->type_ = Type::EcP256;
    } else {
      return set("public key is neither RSA nor EC P-256");
    }
    return k;
  }
  std::string_view s = contents;
  if (s.ends_with("\r\n"))
    s.remove_suffix(2);
  else if (s.ends_with("\n"))
    s.remove_suffix(1);
  if (s.size() < kMinHmacSecret) return set("HMAC secret shorter than 32 bytes (RFC 7518 §3.2)");
  // A JWK / JWKS (JSON) or a DER key is a public key in another form, never a
  // secret: used as one, anybody holding the public key could sign tokens.
  if (s.front() == '{' || s.front() == '[' ||
      (static_cast<unsigned char>(s[0]) == 0x30 && static_cast<unsigned char>(s[1]) >= 0x80))  // DER SEQUENCE, long length
    return set("looks like a JWK or DER key, not an HMAC secret (give a PEM public key)");
  k->type_ = Type::Secret;
  k->secret_.assign(s);
  return k;
}

JwtKey::~JwtKey() {
  if (pkey_) EVP_PKEY_free(pkey(pkey_));
  if (!secret_.empty()) OPENSSL_cleanse(secret_.data(), secret_.size());
}

bool JwtKey::fits(Algorithm a) const noexcept {
  switch (a) {
    case Algorithm::RS256: return type_ == Type::Rsa;
    case Algorithm::ES256: return type_ == Type::EcP256;
    case Algorithm::HS256: return type_ == Type::Secret;
  }
  return false;
}

bool JwtKey::verify(Algorithm a, std::string_view input, std::string_view sig) const {
  if (!fits(a)) return false;
  switch (a) {
    case Algorithm::RS256:
      return verify_digest(pkey(pkey_), input, reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
    case Algorithm::ES256: return verify_es256(pkey(pkey_), input, sig);
    case Algorithm::HS256: {
      unsigned char mac[EVP_MAX_MD_SIZE];
      unsigned int mac_len = 0;
      if (!HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
                reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_len))
        return false;
      return sig.size() == mac_len && CRYPTO_memcmp(mac, sig.data(), mac_len) == 0;
    }
  }
  return false;
}

// ---------------------------------------------------------------- verify

namespace {
// RFC 7519 §4.1.4, §4.1.5 with the policy's leeway (clock skew).
JwtError time_error(double exp, std::optional<double> nbf, const JwtPolicy& policy, int64_t now) {
  const double leeway = static_cast<double>(policy.leeway.count());
  const double t = static_cast<double>(now);
  if (t >= exp + leeway) return JwtError::Expired;
  if (nbf && t < *nbf - leeway) return JwtError::NotYetValid;
  return JwtError::None;
}
}  // namespace

JwtResult verify_jwt(std::string_view token, const JwtPolicy& policy, int64_t now) {
  auto err = [](JwtError e) {
    JwtResult r;
    r.error = e;
    return r;
  };
  if (token.size() > kMaxTokenBytes) return err(JwtError::Malformed);
  const std::size_t d1 = token.find('.');
  if (d1 == std::string_view::npos) return err(JwtError::Malformed);
  const std::size_t d2 = token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos)
    return err(JwtError::Malformed);
  const std::string_view h64 = token.substr(0, d1), p64 = token.substr(d1 + 1, d2 - d1 - 1),
                         s64 = token.substr(d2 + 1);
  if (h64.empty() || p64.empty() || s64.empty()) return err(JwtError::Malformed);
  auto header_bytes = base64url_decode(h64);
  auto payload_bytes = base64url_decode(p64);
  auto signature = base64url_decode(s64);
  if (!header_bytes || !payload_bytes || !signature) return err(JwtError::Malformed);

  auto header = parse_object(*header_bytes);
  if (!header) return err(JwtError::BadHeader);
  const JsonValue* alg_v = find_member(*header, "alg");
  if (!alg_v || alg_v->type != JsonValue::Type::String) return err(JwtError::BadHeader);
  if (find_member(*header, "crit")) return err(JwtError::BadHeader);
  const auto alg = parse_algorithm(alg_v->string);
  if (!alg || !policy.key || !policy.key->fits(*alg)) return err(JwtError::AlgNotAllowed);
  bool listed = false;
  for (Algorithm a : policy.algorithms) listed = listed || a == *alg;
  if (!listed) return err(JwtError::AlgNotAllowed);

  if (!policy.key->verify(*alg, token.substr(0, d2), *signature)) return err(JwtError::BadSignature);

  auto claims = parse_object(*payload_bytes);
  if (!claims) return err(JwtError::BadPayload);
  const JsonValue* exp = find_member(*claims, "exp");
  if (!exp) return err(JwtError::MissingExp);
  if (exp->type != JsonValue::Type::Number || !std::isfinite(exp->number)) return err(JwtError::BadPayload);
  std::optional<double> nbf_at;
  if (const JsonValue* nbf = find_member(*claims, "nbf")) {
    if (nbf->type != JsonValue::Type::Number || !std::isfinite(nbf->number)) return err(JwtError::BadPayload);
    nbf_at = nbf->number;
  }
  if (const JwtError e = time_error(exp->number, nbf_at, policy, now); e != JwtError::None) return err(e);
  if (!policy.issuer.empty()) {
    const JsonValue* iss = find_member(*claims, "iss");
    if (!iss || iss->type != JsonValue::Type::String || iss->string != policy.issuer) return err(JwtError::WrongIssuer);
  }
  if (!policy.audience.empty()) {
    const JsonValue* aud = find_member(*claims, "aud");
    bool ok = false;
    if (aud && aud->type == JsonValue::Type::String) ok = aud->string == policy.audience;
    if (aud && aud->type == JsonValue::Type::StringArray)
      for (const auto& a : aud->strings) ok = ok || a == policy.audience;
    if (!ok) return err(JwtError::WrongAudience);
  }
  const JsonValue* c = find_member(*claims, policy.claim);
  if (!c) return err(JwtError::ClaimMissing);
  if (c->type != JsonValue::Type::String || !valid_claim(c->string)) return err(JwtError::ClaimInvalid);
  JwtResult ok;
  ok.claim = c->string;
  ok.alg = *alg;
  ok.exp = exp->number;
  ok.nbf = nbf_at;
  return ok;
}

JwtResult VerifiedTokens::verify(std::string_view token, const JwtPolicy& policy, int64_t now) {
  key_.assign(policy.ns).push_back('\0');
  key_.append(token);
  if (auto it = map_.find(key_); it != map_.end()) {
    const Verified& v = it->second;
    bool listed = false;
    for (Algorithm a : policy.algorithms) listed = listed || a == v.alg;
    if (listed && policy.key && policy.key->fits(v.alg)) {
      ++remembered_;
      JwtResult r;
      r.error = time_error(v.exp, v.nbf, policy, now);
      if (r.ok()) {
        r.claim = v.claim;
        r.alg = v.alg;
        r.exp = v.exp;
        r.nbf = v.nbf;
      }
      return r;
    }
    map_.erase(it);  // the policy changed under it: verify again
  }
  ++checked_;
  JwtResult r = verify_jwt(token, policy, now);
  if (r.ok()) {
    if (map_.size() >= capacity_) map_.clear();
    map_.emplace(key_, Verified{r.claim, r.alg, r.exp, r.nbf});
  }
  return r;
}

std::string partition_namespace(std::string_view route, const JwtPolicy& p) {
  std::string in;
  for (std::string_view part : {route, std::string_view(p.issuer), std::string_view(p.audience), std::string_view(p.claim)})
    in.append(part).push_back('\0');
  const uint64_t key = p.key ? p.key->fingerprint() : 0;
  in.append(reinterpret_cast<const char*>(&key), sizeof key);
  const uint64_t h = XXH3_64bits(in.data(), in.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 0; i < 16; ++i) out[i] = kHex[(h >> (60 - 4 * i)) & 15];
  return out;
}

}  // namespace cachalot::auth
