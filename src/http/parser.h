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
// (431), URI length (414), body size (413). Malformed framing maps to 400 (a
// bad upstream response for the proxy), codings and methods we do not
// implement to 501.
//
// Every answer is the same however the bytes are split across execute() calls:
// the checks below keep a few bytes of state and buffer nothing.
//
// What llhttp 8.1 strict mode leaves to us, and where it is handled:
//   - line structure (LineScanner, run on the head and trailer bytes before
//     llhttp sees them): exactly one SP between the parts of a request-line and
//     an "HTTP/d.d" version (RFC 9112 §3, §2.3), CRLF line endings throughout
//     (§2.2), no obs-fold (§5.2). (llhttp itself rejects whitespace before
//     the colon, §5.1, and CTLs in names, targets and values.)
//     llhttp hands obs-fold to us as value spans that cannot be told apart from
//     an empty value (`X:\r\n c` gives the same callbacks as `X: c`), so it is
//     caught on the bytes; an empty value is one zero-length span.
//   - Transfer-Encoding (check_framing): only a single `chunked` is accepted,
//     and none in HTTP/1.0 (RFC 9112 §6.1, §6.3). Requests: chunked not last
//     is 400 (§6.3 rule 4), another coding before it 501 (§6.1). Responses:
//     anything else is malformed, as we could neither decode nor relay it.
//   - a response to HEAD and any 1xx, 204 or 304 ends at its head, whatever
//     its framing fields say (§6.3 rule 1); llhttp looks at the status only
//     when there is neither Content-Length nor Transfer-Encoding.
//   - chunk extensions: counted against max_chunk_extension_bytes (§7.1.1).
//   - trailer fields: counted against max_header_bytes with the head, checked,
//     then discarded: RFC 9110 §6.5.1 forbids merging them into the head, and
//     the proxy does not forward them.
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
  Malformed,       // the bytes break HTTP/1.1 syntax or framing (400 / bad upstream response)
  HeaderTooLarge,  // head (or head plus trailers) larger than max_header_bytes (431)
  UriTooLong,      // request-target longer than max_uri_length (414)
  BodyTooLarge,    // body larger than max_body_size (413)
  Unsupported,     // an unknown method, transfer coding, Upgrade or CONNECT (501)
};
std::string_view to_string(ParseError e) noexcept;

struct ParserLimits {
  std::size_t max_header_bytes = 32 * 1024;
  std::size_t max_uri_length = 8 * 1024;
  uint64_t max_body_size = UINT64_MAX;
  // All chunk extensions (";name=value" after a chunk size) of one message.
  // Nothing uses them and nothing buffers them, but unbounded they let a peer
  // stream megabytes that never advance the body.
  std::size_t max_chunk_extension_bytes = 4 * 1024;
};

// LineScanner: checks the line structure of a head or a trailer section ahead
// of llhttp (see the file comment for why), with a few bytes of state. It
// checks only what llhttp lets through; the characters of field names and
// values, the status code and the meaning of the version are llhttp's.
class LineScanner {
 public:
  enum class Section : uint8_t {
    RequestHead,   // request-line, field lines, empty line
    ResponseHead,  // status-line, field lines, empty line
    Trailers,      // field lines, empty line (after the last chunk)
  };

  void start(Section s) noexcept;
  // Scans up to n bytes and returns how many were accepted: all n, or up to and
  // including the LF that ends the section (done()), or up to the first bad
  // byte (failed(); reason() says why).
  std::size_t scan(const char* data, std::size_t n) noexcept;

  bool scanning() const noexcept { return state_ != State::Done && state_ != State::Failed; }
  bool done() const noexcept { return state_ == State::Done; }
  bool failed() const noexcept { return state_ == State::Failed; }
  const char* reason() const noexcept { return reason_; }
  // The start line ended with its CRLF, and every byte of it was valid.
  bool start_line_done() const noexcept { return start_line_done_; }
  // Bytes of the start line seen so far (leading empty lines not counted).
  std::size_t start_line_bytes() const noexcept { return start_line_bytes_; }

 private:
  enum class State : uint8_t {
    BeforeRequestLine,   // empty lines before a request-line are skipped (RFC 9112 §2.2)
    Method,              // token
    TargetStart,         // first byte after the SP that ends the method
    Target,              // no SP, no CTL
    Version,             // "HTTP/d.d", version_pos_ bytes matched
    AfterVersion,        // CR
    BeforeStatusLine,    // empty lines before a status-line are skipped too
    StatusLine,          // HTAB, SP, VCHAR, obs-text up to CR (llhttp checks its parts)
    StartLineLF,         // LF after the start line's CR
    FieldStart,          // a field name, or CR for the empty line
    FieldLine,           // up to CR (llhttp checks the name and the value's characters)
    FieldLF,             // LF after a field line's CR
    EndLF,               // LF of the empty line
    Done,
    Failed,
  };

  // Past the leading empty lines, before the start line's LF.
  bool in_start_line() const noexcept {
    switch (state_) {
      case State::Method:
      case State::TargetStart:
      case State::Target:
      case State::Version:
      case State::AfterVersion:
      case State::StatusLine:
      case State::StartLineLF: return true;
      default: return false;
    }
  }

  State state_ = State::Done;
  uint8_t version_pos_ = 0;
  bool start_line_done_ = false;
  std::size_t start_line_bytes_ = 0;
  const char* reason_ = "";
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
  static int on_chunk_header(llhttp_t*);
  static int on_chunk_extension(llhttp_t*, const char*, std::size_t);
  static int on_chunk_extension_complete(llhttp_t*);
  static int on_body(llhttp_t*, const char*, std::size_t);
  static int on_message_complete(llhttp_t*);
  static Parser& self(llhttp_t* p) { return *static_cast<Parser*>(p->data); }
  int fail(ParseError e, const char* why);
  bool count_head(std::size_t n);
  int check_framing(llhttp_t* p);
  bool count_chunk_extension(std::size_t n);
  void settle_unknown_method();
  bool no_body_response(int status) const noexcept {
    return expect_no_body_ || status / 100 == 1 || status == 204 || status == 304;
  }

  Kind kind_;
  ParserLimits limits_;
  llhttp_t parser_;
  llhttp_settings_t settings_;
  RequestHead request_;
  ResponseHead response_;
  LineScanner lines_;
  // The field being parsed: its name is field_ then field_span_, its value
  // value_ then value_span_. A name or value that comes in one span (nearly
  // all) stays a view into the bytes being parsed, never copied; one split
  // over spans is gathered in field_ / value_, and execute() copies a view
  // out before it returns (the bytes it points into are the caller's).
  std::string field_, value_;
  std::string_view field_span_, value_span_;
  std::size_t execute_some(const char* data, std::size_t len);
  static void gather(std::string& into, std::string_view& span, const char* at, std::size_t n);
  bool started_ = false;
  bool head_complete_ = false;
  bool message_complete_ = false;
  bool paused_ = false;
  bool expect_no_body_ = false;
  // on_chunk_header paused llhttp at the last chunk, so execute() learns where
  // the trailer section starts and scans it.
  bool trailers_next_ = false;
  // llhttp rejected the method; the request-line decides between 501 (a
  // well-formed token llhttp does not know) and 400, once the scanner has it.
  bool method_pending_ = false;
  bool saw_transfer_encoding_ = false;  // in the head: check_framing has work to do
  ParseError error_ = ParseError::None;
  const char* error_reason_ = "";
  std::size_t head_bytes_ = 0;
  std::size_t chunk_extension_bytes_ = 0;
  uint64_t body_bytes_ = 0;
  int64_t content_length_ = -1;
  std::vector<std::string_view> body_;
};

}  // namespace cachalot::http
