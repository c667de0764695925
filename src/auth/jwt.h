// JWT verification (RFC 7519, JWS compact serialization RFC 7515, algorithms
// RFC 7518 §3) for route partitions: the proxy checks a bearer token itself
// and keys per-user entries by one of its claims. Pure apart from OpenSSL:
// `now` comes in as an argument.
//
// What verify() accepts, and nothing else:
//  - exactly three base64url segments (RFC 7515 §2: no padding, no other
//    bytes, unused trailing bits zero), none empty (so `alg: none`, which
//    has an empty signature, cannot pass this step either);
//  - a header that is one strict JSON object (auth/json.h) with a string
//    "alg" that is in the configured list AND matches the key's type: RS256
//    needs an RSA public key, ES256 a P-256 public key, HS256 a secret.
//    HS256 with a public key as the HMAC secret (the algorithm-confusion
//    attack) is impossible: a public key never verifies an HMAC. A "crit"
//    member is refused (we understand no extension, RFC 7515 §4.1.11);
//  - a signature that verifies: RS256 RSASSA-PKCS1-v1_5 with SHA-256; ES256
//    ECDSA P-256 with SHA-256, the signature being the raw 64-byte r || s
//    (RFC 7518 §3.4), converted to DER for OpenSSL; HS256 HMAC-SHA-256,
//    compared in constant time;
//  - a payload that is one strict JSON object with a numeric "exp" (required:
//    an entry must not outlive a token that never expires) and, if present,
//    a numeric "nbf": now < exp + leeway and now >= nbf - leeway;
//  - "iss" equal to the configured issuer (when one is configured);
//  - "aud" equal to, or an array containing, the configured audience (when
//    one is configured);
//  - the configured claim: a non-empty string of at most kMaxClaimBytes,
//    without control characters (it becomes part of cache keys and tags).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cachalot::auth {

enum class Algorithm : uint8_t { RS256, ES256, HS256 };
std::string_view to_string(Algorithm a) noexcept;
std::optional<Algorithm> parse_algorithm(std::string_view name) noexcept;

inline constexpr std::size_t kMaxClaimBytes = 256;
// A longer token is Malformed before anything is decoded: the header and
// payload are parsed before the signature is checked, and bounding their
// size bounds what an unauthenticated client can make us parse.
inline constexpr std::size_t kMaxTokenBytes = 8192;
inline constexpr std::size_t kMinHmacSecret = 32;  // RFC 7518 §3.2: at least the hash output size

// The verification key: an RSA or P-256 public key (PEM), or an HMAC secret.
class JwtKey {
 public:
  enum class Type : uint8_t { Rsa, EcP256, Secret };
  // From a key file's contents: "-----BEGIN" starts a PEM public key (RSA or
  // EC P-256; anything else, a private key included, is refused); otherwise
  // the bytes are the HMAC secret, one trailing "\n" or "\r\n" removed, at
  // least kMinHmacSecret bytes. nullptr and `why` when unusable.
  static std::shared_ptr<const JwtKey> load(std::string_view contents, std::string* why);
  ~JwtKey();
  JwtKey(const JwtKey&) = delete;
  JwtKey& operator=(const JwtKey&) = delete;

  Type type() const noexcept { return type_; }
  // XXH3-64 of the key file's contents: part of a partition's namespace, so
  // a new key (or identity provider) never finds the old key's entries.
  uint64_t fingerprint() const noexcept { return fingerprint_; }
  // Could a token signed with `a` be verified by this key?
  bool fits(Algorithm a) const noexcept;
  bool verify(Algorithm a, std::string_view signing_input, std::string_view signature) const;

 private:
  JwtKey() = default;
  Type type_ = Type::Secret;
  void* pkey_ = nullptr;  // EVP_PKEY*, for Rsa and EcP256
  std::string secret_;    // for Secret
  uint64_t fingerprint_ = 0;
};

struct JwtPolicy {
  std::vector<Algorithm> algorithms;  // accepted (and each must fit the key to be usable)
  std::shared_ptr<const JwtKey> key;
  std::string issuer;    // "" = not checked
  std::string audience;  // "" = not checked
  std::string claim = "sub";
  std::chrono::seconds leeway{30};
  // The partition namespace: 16 hex digits hashing the route name, issuer,
  // audience, claim name and key (partition_namespace()). A partition is
  // "<namespace>:<claim>", so one claim value under another identity
  // provider, key or route (after a reload or a restart) is another partition.
  std::string ns;
};

// The namespace of a route's partitions (JwtPolicy::ns).
std::string partition_namespace(std::string_view route, const JwtPolicy& p);

enum class JwtError : uint8_t {
  None,
  Malformed,       // not three non-empty base64url segments
  BadHeader,       // header not a strict JSON object, no string alg, or crit present
  AlgNotAllowed,   // alg not in the configured list, "none", or not fitting the key type
  BadSignature,    // the signature does not verify (or has the wrong length)
  BadPayload,      // payload not a strict JSON object, or exp / nbf not numbers
  MissingExp,      // no exp claim
  Expired,         // now >= exp + leeway
  NotYetValid,     // now < nbf - leeway
  WrongIssuer,     // iss missing or different
  WrongAudience,   // aud missing, or neither equal nor containing the audience
  ClaimMissing,    // the configured claim is absent
  ClaimInvalid,    // ... not a string, empty, too long or with control characters
};
// "ok", "malformed", "bad-header", "alg-not-allowed", "bad-signature", "bad-payload",
// "missing-exp", "expired", "not-yet-valid", "wrong-issuer", "wrong-audience",
// "claim-missing", "claim-invalid".
std::string_view to_string(JwtError e) noexcept;

struct JwtResult {
  JwtError error = JwtError::None;
  std::string claim;  // the verified claim when error == None
  // When error == None: the token's algorithm and time claims (VerifiedTokens
  // checks them again on every later use).
  Algorithm alg = Algorithm::HS256;
  double exp = 0;
  std::optional<double> nbf;
  bool ok() const noexcept { return error == JwtError::None; }
};

// `now`: seconds since the epoch.
JwtResult verify_jwt(std::string_view token, const JwtPolicy& policy, int64_t now);

// Tokens a worker verified, remembered, so that a user's requests cost one
// signature check (tens of microseconds for RS256 and ES256), not one each.
// The key is the whole token after the policy's namespace (compared in full:
// no hash collision can stand in for a token; the namespace hashes route,
// issuer, audience, claim name and key, so another policy never finds it). A
// remembered token is taken again only while the policy still lists its
// algorithm and its exp / nbf hold at `now` with the policy's leeway; it
// answers exactly what verify_jwt() would. Only successes are remembered (a
// forged token is checked every time). At `capacity` tokens it forgets them
// all: bounded memory, no eviction bookkeeping. One per worker (not
// thread-safe).
class VerifiedTokens {
 public:
  explicit VerifiedTokens(std::size_t capacity = 4096) : capacity_(capacity) {}
  JwtResult verify(std::string_view token, const JwtPolicy& policy, int64_t now);
  std::size_t size() const noexcept { return map_.size(); }
  // Verifications answered from memory / by verify_jwt() (tests, metrics).
  uint64_t remembered() const noexcept { return remembered_; }
  uint64_t checked() const noexcept { return checked_; }

 private:
  struct Verified {
    std::string claim;
    Algorithm alg;
    double exp;
    std::optional<double> nbf;
  };
  std::size_t capacity_;
  std::unordered_map<std::string, Verified> map_;
  std::string key_;  // scratch: namespace, '\0', token
  uint64_t remembered_ = 0, checked_ = 0;
};

// The token of an "Authorization: Bearer <token>" value (scheme
// case-insensitive, RFC 6750 §2.1), or nullopt.
std::optional<std::string_view> bearer_token(std::string_view authorization) noexcept;

// RFC 4648 §5 without padding, strict (see the file comment); nullopt when invalid.
std::optional<std::string> base64url_decode(std::string_view in);
std::string base64url_encode(std::string_view in);

}  // namespace cachalot::auth
