// Parser: llhttp (strict mode) wrapped for a pull-style connection loop.
//
// Feed bytes with execute(); it stops at the end of each message (so the next
// pipelined message stays in the caller's buffer) and on errors. After a call:
//   - head_complete() is true once the head of the current message is parsed;
//     the head lives in request()/response().
//   - body() holds the body bytes found in this call, as views into the bytes
//     that were passed in: consume them before the buffer is reused.
//   - message_complete() is true when the message ended in this call.
// Call next_message() to parse the next message on the same connection.
// Limits are enforced here so every caller gets the same answer: header bytes
// (431), URI length (414), body size (413). llhttp's own errors map to 400.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <llhttp.h>

#include "http/message.h"

namespace cachalot::http {

enum class ParseError : uint8_t {
  None,
  Malformed,       // llhttp rejected the bytes (400 / bad upstream response)
  HeaderTooLarge,  // head larger than max_header_bytes (431)
  UriTooLong,      // request-target longer than max_uri_length (414)
  BodyTooLarge,    // body larger than max_body_size (413)
  Unsupported,     // e.g. an Upgrade / CONNECT tunnel request (501)
};
std::string_view to_string(ParseError e) noexcept;

struct ParserLimits {
  std::size_t max_header_bytes = 32 * 1024;
  std::size_t max_uri_length = 8 * 1024;
  uint64_t max_body_size = UINT64_MAX;
};

class Parser {
 public:
  enum class Kind { Request, Response };

  Parser(Kind kind, ParserLimits limits);
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  // Parses up to the end of the current message; returns bytes consumed.
  std::size_t execute(const char* data, std::size_t len);
  // The peer closed the connection: completes an EOF-delimited response body.
  // Returns false if the message was cut short.
  bool finish();

  // Prepare for the next message on the same connection.
  void next_message();
  // For responses: the request was HEAD (no body follows the head).
  void set_expect_no_body(bool v) noexcept { expect_no_body_ = v; }
  void set_limits(ParserLimits l) noexcept { limits_ = l; }

  bool head_complete() const noexcept { return head_complete_; }
  bool message_complete() const noexcept { return message_complete_; }
  bool in_message() const noexcept { return started_ && !message_complete_; }
  ParseError error() const noexcept { return error_; }
  const char* error_reason() const noexcept { return error_reason_; }

  std::vector<std::string_view>& body() noexcept { return body_; }
  uint64_t body_bytes() const noexcept { return body_bytes_; }

  RequestHead& request() noexcept { return request_; }
  ResponseHead& response() noexcept { return response_; }
  const RequestHead& request() const noexcept { return request_; }
  const ResponseHead& response() const noexcept { return response_; }

  // Framing of the current message, known once the head is complete.
  bool chunked() const noexcept;
  // Content-Length if the message has one, else -1.
  int64_t content_length() const noexcept { return content_length_; }
  // The body ends when the connection closes (response without length).
  bool body_until_eof() const noexcept;
  bool upgrade() const noexcept { return parser_.upgrade != 0; }

 private:
  static int on_message_begin(llhttp_t*);
  static int on_url(llhttp_t*, const char*, std::size_t);
  static int on_status(llhttp_t*, const char*, std::size_t);
  static int on_method(llhttp_t*, const char*, std::size_t);
  static int on_header_field(llhttp_t*, const char*, std::size_t);
  static int on_header_value(llhttp_t*, const char*, std::size_t);
  static int on_header_value_complete(llhttp_t*);
  static int on_headers_complete(llhttp_t*);
  static int on_body(llhttp_t*, const char*, std::size_t);
  static int on_message_complete(llhttp_t*);
  static Parser& self(llhttp_t* p) { return *static_cast<Parser*>(p->data); }
  int fail(ParseError e, const char* why);
  bool count_head(std::size_t n);

  Kind kind_;
  ParserLimits limits_;
  llhttp_t parser_;
  llhttp_settings_t settings_;
  RequestHead request_;
  ResponseHead response_;
  std::string field_, value_;
  bool in_value_ = false;
  bool started_ = false;
  bool head_complete_ = false;
  bool message_complete_ = false;
  bool paused_ = false;
  bool expect_no_body_ = false;
  ParseError error_ = ParseError::None;
  const char* error_reason_ = "";
  std::size_t head_bytes_ = 0;
  uint64_t body_bytes_ = 0;
  int64_t content_length_ = -1;
  std::vector<std::string_view> body_;
  const char* exec_begin_ = nullptr;  // start of the bytes given to the current execute()
  char prev_last_ = 0;                // last byte given to the previous execute()
};

}  // namespace cachalot::http
