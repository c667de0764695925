// libFuzzer target: the llhttp wrapper for requests and responses, fed in
// random splits, must never crash, read out of bounds, or report body bytes
// outside the input; limits must hold.
#include <cstddef>
#include <cstdint>
#include <string>

#include "http/parser.h"

using cachalot::http::Parser;
using cachalot::http::ParseError;

static void run(Parser::Kind kind, const uint8_t* data, size_t size, size_t split) {
  Parser p(kind, {1024, 256, 4096});
  const char* d = reinterpret_cast<const char*>(data);
  size_t off = 0;
  int messages = 0;
  while (off < size && messages < 64) {
    size_t len = std::min(size - off, split ? split : size);
    size_t used = p.execute(d + off, len);
    for (auto s : p.body()) {
      // Body views point into the bytes just given.
      if (s.data() < d + off || s.data() + s.size() > d + off + len) __builtin_trap();
    }
    if (p.error() != ParseError::None) break;
    if (p.body_bytes() > 4096) __builtin_trap();
    if (p.message_complete()) {
      ++messages;
      p.next_message();
    }
    if (used == 0 && !p.message_complete()) break;
    off += used;
  }
  if (p.error() == ParseError::None) (void)p.finish();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t split = data[0] % 17;  // 0 = all at once, else that many bytes per execute()
  run(Parser::Kind::Request, data + 1, size - 1, split);
  run(Parser::Kind::Response, data + 1, size - 1, split);
  return 0;
}
