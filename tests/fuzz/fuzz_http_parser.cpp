// libFuzzer target: the llhttp wrapper for requests and responses must never
// crash, read out of bounds, or report body bytes outside the input; limits
// must hold; and the answer must not depend on how the bytes are split across
// execute() calls (the input is parsed whole and in pieces, and the two runs
// must agree on the error, the messages and the body bytes; see agree()).
#include <cstddef>
#include <cstdint>
#include <string>

#include "http/parser.h"

using cachalot::http::Parser;
using cachalot::http::ParseError;

namespace {

struct Outcome {
  ParseError error = ParseError::None;
  int messages = 0;
  uint64_t body_bytes = 0;
  bool finished = false;  // finish() completed the last message
};

bool is_size_limit(ParseError e) { return e == ParseError::HeaderTooLarge || e == ParseError::UriTooLong; }

// The same answer, except one known case: llhttp hands a span (a target, a
// field) to its callback at the span's end or at the end of an execute() call,
// and drops it if it finds an invalid byte first. A span that is both too long
// and malformed can therefore be "too large" in pieces and "malformed" whole;
// either way it is refused.
bool agree(const Outcome& a, const Outcome& b) {
  bool same_error = a.error == b.error || (a.error == ParseError::Malformed && is_size_limit(b.error)) ||
                    (b.error == ParseError::Malformed && is_size_limit(a.error));
  return same_error && a.messages == b.messages && a.body_bytes == b.body_bytes && a.finished == b.finished;
}

Outcome run(Parser::Kind kind, const uint8_t* data, size_t size, size_t split) {
  Parser p(kind, {1024, 256, 4096, 64});
  const char* d = reinterpret_cast<const char*>(data);
  Outcome o;
  size_t off = 0;
  while (off < size && o.messages < 64) {
    size_t len = std::min(size - off, split ? split : size - off);
    size_t used = p.execute(d + off, len);
    if (used > len) __builtin_trap();
    for (auto s : p.body()) {
      // Body views point into the bytes just given.
      if (s.data() < d + off || s.data() + s.size() > d + off + len) __builtin_trap();
      o.body_bytes += s.size();
    }
    if (p.error() != ParseError::None) break;
    if (p.body_bytes() > 4096) __builtin_trap();
    off += used;
    if (p.message_complete()) {
      ++o.messages;
      p.next_message();
    } else if (used < len) {
      __builtin_trap();  // only the end of a message stops execute() early
    }
  }
  o.error = p.error();
  if (o.error == ParseError::None && o.messages < 64) o.finished = p.finish();
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t split = data[0] % 16 + 1;  // bytes per execute() in the split run
  for (Parser::Kind kind : {Parser::Kind::Request, Parser::Kind::Response}) {
    Outcome whole = run(kind, data + 1, size - 1, 0);
    Outcome pieces = run(kind, data + 1, size - 1, split);
    if (!agree(whole, pieces)) __builtin_trap();
  }
  return 0;
}
