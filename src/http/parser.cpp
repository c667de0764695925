#include "http/parser.h"

#include <array>
#include <cstring>

namespace cachalot::http {

std::string_view to_string(ParseError e) noexcept {
  switch (e) {
    case ParseError::None: return "none";
    case ParseError::Malformed: return "malformed";
    case ParseError::HeaderTooLarge: return "header-too-large";
    case ParseError::UriTooLong: return "uri-too-long";
    case ParseError::BodyTooLarge: return "body-too-large";
    case ParseError::Unsupported: return "unsupported";
  }
  return "none";
}

// ---------------------------------------------------------------- LineScanner

namespace {

// tchar (RFC 9110 §5.6.2): method and field-name characters.
constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

// A request-target byte: anything but SP and CTLs (RFC 9112 §3.2); llhttp
// checks the URI syntax itself.
constexpr std::array<bool, 256> kTargetByte = [] {
  std::array<bool, 256> t{};
  for (int c = 0x21; c < 0x100; ++c) t[c] = c != 0x7f;
  return t;
}();
constexpr bool target_byte(unsigned char c) noexcept { return kTargetByte[c]; }
// A status-line byte up to its CR: HTAB, SP, VCHAR, obs-text (RFC 9112 §4).
constexpr bool status_byte(unsigned char c) noexcept { return c == '\t' || (c >= 0x20 && c != 0x7f); }

constexpr std::size_t kNoLine = static_cast<std::size_t>(-1);

}  // namespace

void LineScanner::start(Section s) noexcept {
  switch (s) {
    case Section::RequestHead: state_ = State::BeforeRequestLine; break;
    case Section::ResponseHead: state_ = State::BeforeStatusLine; break;
    case Section::Trailers: state_ = State::FieldStart; break;
  }
  version_pos_ = 0;
  start_line_done_ = s == Section::Trailers;
  start_line_bytes_ = 0;
  reason_ = "";
}

std::size_t LineScanner::scan(const char* data, std::size_t n) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  std::size_t i = 0;
  // Where the start line began in this call, to count its bytes.
  std::size_t line_begin = in_start_line() ? 0 : kNoLine;
  auto fail = [&](const char* why) {
    state_ = State::Failed;
    reason_ = why;
  };
  // Index of the first `ch` at or after `from`, or n.
  auto find = [&](std::size_t from, char ch) {
    const void* hit = std::memchr(p + from, ch, n - from);
    return hit ? static_cast<std::size_t>(static_cast<const unsigned char*>(hit) - p) : n;
  };
  while (i < n && scanning()) {
    unsigned char c = p[i];
    switch (state_) {
      case State::BeforeRequestLine:
      case State::BeforeStatusLine:
        // llhttp skips CR and LF here too, in any order: no framing depends on them.
        if (c == '\r' || c == '\n') {
          ++i;
          break;
        }
        line_begin = i;
        if (state_ == State::BeforeStatusLine) {
          state_ = State::StatusLine;
        } else if (kTchar[c]) {
          state_ = State::Method;
        } else {
          fail("request-line must start with a method token");
        }
        break;
      case State::Method:
        while (i < n && kTchar[p[i]]) ++i;
        if (i == n) break;
        if (p[i] == ' ') {
          state_ = State::TargetStart;
          ++i;
        } else {
          fail("method must be a token followed by one SP");
        }
        break;
      case State::TargetStart:
        if (target_byte(c))
          state_ = State::Target;
        else
          fail("request-target must follow exactly one SP");
        break;
      case State::Target:
        while (i < n && target_byte(p[i])) ++i;
        if (i == n) break;
        if (p[i] == ' ') {
          state_ = State::Version;
          version_pos_ = 0;
          ++i;
        } else {
          fail("invalid character in request-target");
        }
        break;
      case State::Version: {
        static constexpr std::string_view kVersion = "HTTP/#.#";  // # is a DIGIT (RFC 9112 §2.3)
        auto digit = [](unsigned char d) { return d >= '0' && d <= '9'; };
        if (version_pos_ == 0 && n - i >= kVersion.size()) {
          // The whole version is here (the usual case): one comparison.
          if (std::memcmp(p + i, "HTTP/", 5) == 0 && digit(p[i + 5]) && p[i + 6] == '.' && digit(p[i + 7])) {
            i += kVersion.size();
            state_ = State::AfterVersion;
          } else {
            fail("request-line must end in one SP and HTTP/d.d");
          }
          break;
        }
        char want = kVersion[version_pos_];
        bool ok = want == '#' ? digit(c) : c == static_cast<unsigned char>(want);
        if (!ok) {
          fail("request-line must end in one SP and HTTP/d.d");
          break;
        }
        ++i;
        if (++version_pos_ == kVersion.size()) state_ = State::AfterVersion;
        break;
      }
      case State::AfterVersion:
        if (c == '\r') {
          state_ = State::StartLineLF;
          ++i;
        } else {
          fail(c == '\n' ? "bare LF line ending" : "request-line must end in one SP and HTTP/d.d");
        }
        break;
      case State::StatusLine:
        while (i < n && status_byte(p[i])) ++i;
        if (i == n) break;
        if (p[i] == '\r') {
          state_ = State::StartLineLF;
          ++i;
        } else {
          fail(p[i] == '\n' ? "bare LF line ending" : "control character in status-line");
        }
        break;
      case State::StartLineLF:
        if (c != '\n') {
          fail("CR not followed by LF");
          break;
        }
        ++i;
        start_line_bytes_ += i - line_begin;
        line_begin = kNoLine;
        start_line_done_ = true;
        state_ = State::FieldStart;
        break;
      case State::FieldStart:
        if (c == '\r') {
          state_ = State::EndLF;
          ++i;
          break;
        }
        if (c == ' ' || c == '\t') {
          // obs-fold, or whitespace before the first field line: both are rejected (RFC 9112 §5.2, §2.2).
          fail("field line starts with whitespace (obs-fold)");
          break;
        }
        if (!kTchar[c]) {
          fail(c == '\n' ? "bare LF line ending" : "invalid character in field name");
          break;
        }
        state_ = State::FieldLine;
        [[fallthrough]];
      // The rest of a field line is found with memchr (most head bytes are
      // here). llhttp checks the bytes skipped: the name is a token followed
      // by ':' with no whitespace (RFC 9112 §5.1), the value has no CTL (so no
      // bare LF); it rejects them at that byte, before anything the scanner
      // decides after it.
      case State::FieldLine: {
        std::size_t cr = find(i, '\r');
        if (cr == n) {
          i = n;
          break;
        }
        i = cr + 1;
        state_ = State::FieldLF;
        if (i == n) break;
        c = p[i];
        [[fallthrough]];
      }
      case State::FieldLF:
        if (c != '\n') {
          fail("CR not followed by LF");
          break;
        }
        state_ = State::FieldStart;
        ++i;
        break;
      case State::EndLF:
        if (c == '\n') {
          state_ = State::Done;
          ++i;
        } else {
          fail("CR not followed by LF");
        }
        break;
      case State::Done:
      case State::Failed: break;
    }
  }
  if (line_begin != kNoLine) start_line_bytes_ += i - line_begin;
  return i;
}

// ---------------------------------------------------------------- Parser

Parser::Parser(Kind kind, ParserLimits limits) : kind_(kind), limits_(limits) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &Parser::on_message_begin;
  settings_.on_url = &Parser::on_url;
  settings_.on_status = &Parser::on_status;
  settings_.on_method = &Parser::on_method;
  settings_.on_header_field = &Parser::on_header_field;
  settings_.on_header_value = &Parser::on_header_value;
  settings_.on_header_value_complete = &Parser::on_header_value_complete;
  settings_.on_headers_complete = &Parser::on_headers_complete;
  settings_.on_chunk_header = &Parser::on_chunk_header;
  settings_.on_chunk_extension_name = &Parser::on_chunk_extension;
  settings_.on_chunk_extension_value = &Parser::on_chunk_extension;
  settings_.on_chunk_extension_name_complete = &Parser::on_chunk_extension_complete;
  settings_.on_chunk_extension_value_complete = &Parser::on_chunk_extension_complete;
  settings_.on_body = &Parser::on_body;
  settings_.on_message_complete = &Parser::on_message_complete;
  llhttp_init(&parser_, kind == Kind::Request ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
  lines_.start(kind == Kind::Request ? LineScanner::Section::RequestHead : LineScanner::Section::ResponseHead);
  body_.reserve(8);
}

int Parser::fail(ParseError e, const char* why) {
  error_ = e;
  error_reason_ = why;
  return -1;
}

bool Parser::count_head(std::size_t n) {
  head_bytes_ += n;
  return head_bytes_ <= limits_.max_header_bytes;
}

void Parser::next_message() {
  started_ = head_complete_ = message_complete_ = false;
  trailers_next_ = false;
  method_pending_ = false;
  saw_transfer_encoding_ = false;
  head_bytes_ = 0;
  chunk_extension_bytes_ = 0;
  body_bytes_ = 0;
  content_length_ = -1;
  expect_no_body_ = false;
  body_.clear();
  field_.clear();
  value_.clear();
  field_span_ = value_span_ = {};
  lines_.start(kind_ == Kind::Request ? LineScanner::Section::RequestHead : LineScanner::Section::ResponseHead);
  if (paused_) {
    llhttp_resume(&parser_);
    paused_ = false;
  }
}

std::size_t Parser::execute(const char* data, std::size_t len) {
  const std::size_t used = execute_some(data, len);
  // A name or value still being parsed must outlive the caller's bytes.
  if (!field_span_.empty()) {
    field_.append(field_span_);
    field_span_ = {};
  }
  if (!value_span_.empty()) {
    value_.append(value_span_);
    value_span_ = {};
  }
  return used;
}

std::size_t Parser::execute_some(const char* data, std::size_t len) {
  body_.clear();
  if (error_ != ParseError::None || message_complete_ || len == 0) return 0;
  if (method_pending_) {
    // llhttp has given up; only the request-line is still of interest.
    lines_.scan(data, len);
    settle_unknown_method();
    return len;
  }
  std::size_t off = 0;
  for (;;) {
    const char* at = data + off;
    std::size_t n = len - off;
    // llhttp gets only the bytes the scanner accepted, so it never acts on a
    // line the scanner rejects, and an earlier error of its own still wins.
    std::size_t feed = n;
    if (lines_.scanning()) {
      std::size_t accepted = lines_.scan(at, n);
      if (lines_.failed()) feed = accepted;
    }
    llhttp_errno_t err = feed > 0 ? llhttp_execute(&parser_, at, feed) : HPE_OK;
    if (err == HPE_OK) {
      if (feed < n) fail(ParseError::Malformed, lines_.reason());
      return len;
    }
    if (err == HPE_PAUSED) {
      std::size_t used = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - data);
      if (trailers_next_) {
        // Paused by on_chunk_header at the last chunk: the trailer section starts here.
        trailers_next_ = false;
        llhttp_resume(&parser_);
        lines_.start(LineScanner::Section::Trailers);
        off = used;
        if (off == len) return len;
        continue;
      }
      paused_ = true;  // by on_message_complete
      return used;
    }
    if (err == HPE_PAUSED_UPGRADE) {
      // A request with Upgrade / CONNECT: we do not tunnel.
      fail(ParseError::Unsupported, "upgrade not supported");
      return len;
    }
    if (error_ == ParseError::None && err == HPE_INVALID_METHOD && kind_ == Kind::Request) {
      method_pending_ = true;
      settle_unknown_method();
      return len;
    }
    if (error_ == ParseError::None) fail(ParseError::Malformed, llhttp_get_error_reason(&parser_));
    return len;
  }
}

// llhttp knows a fixed list of methods. Any other token in a well-formed
// request-line is a method we do not implement: 501 (RFC 9110 §9.1), not 400.
// The scanner may need more bytes to see the whole line; the head limit bounds
// the wait.
void Parser::settle_unknown_method() {
  if (lines_.start_line_bytes() > limits_.max_header_bytes)
    fail(ParseError::HeaderTooLarge, "header too large");
  else if (lines_.start_line_done())
    fail(ParseError::Unsupported, "method not implemented");
  else if (lines_.failed())
    fail(ParseError::Malformed, lines_.reason());
  else
    return;
  method_pending_ = false;
}

bool Parser::finish() {
  if (message_complete_) return true;
  if (!started_ || error_ != ParseError::None) return false;
  llhttp_errno_t err = llhttp_finish(&parser_);
  return (err == HPE_OK || err == HPE_PAUSED) && message_complete_;
}

bool Parser::chunked() const noexcept { return (parser_.flags & F_CHUNKED) != 0; }

bool Parser::body_until_eof() const noexcept {
  return kind_ == Kind::Response && !chunked() && content_length_ < 0 && !expect_no_body_ &&
         llhttp_message_needs_eof(&parser_);
}

int Parser::on_message_begin(llhttp_t* p) {
  Parser& s = self(p);
  s.started_ = true;
  if (s.kind_ == Kind::Request)
    s.request_.clear();
  else
    s.response_.clear();
  return 0;
}

int Parser::on_url(llhttp_t* p, const char* at, std::size_t n) {
  Parser& s = self(p);
  if (s.request_.target.size() + n > s.limits_.max_uri_length) return s.fail(ParseError::UriTooLong, "uri too long");
  if (!s.count_head(n)) return s.fail(ParseError::HeaderTooLarge, "header too large");
  s.request_.target.append(at, n);
  return 0;
}

int Parser::on_status(llhttp_t* p, const char* at, std::size_t n) {
  Parser& s = self(p);
  if (!s.count_head(n)) return s.fail(ParseError::HeaderTooLarge, "header too large");
  s.response_.reason.append(at, n);
  return 0;
}

int Parser::on_method(llhttp_t* p, const char* at, std::size_t n) {
  Parser& s = self(p);
  if (!s.count_head(n)) return s.fail(ParseError::HeaderTooLarge, "header too large");
  s.request_.method_name.append(at, n);
  return 0;
}

// Appends one span of a name or value (see field_span_): the first stays a
// view, a second one gathers both into `into`.
void Parser::gather(std::string& into, std::string_view& span, const char* at, std::size_t n) {
  if (n == 0) return;
  if (into.empty() && span.empty()) {
    span = {at, n};  // the first piece: a view
    return;
  }
  if (!span.empty()) {
    into.append(span);
    span = {};
  }
  into.append(at, n);
}

// Span callbacks run once per execute() a span touches (with zero length at a
// split), so per-field overhead is counted once, in on_header_value_complete.
int Parser::on_header_field(llhttp_t* p, const char* at, std::size_t n) {
  Parser& s = self(p);
  if (!s.count_head(n)) return s.fail(ParseError::HeaderTooLarge, "header too large");
  gather(s.field_, s.field_span_, at, n);
  return 0;
}

// An empty value arrives as one zero-length span that starts after the line's
// LF; obs-fold never gets here (the scanner rejects it first).
int Parser::on_header_value(llhttp_t* p, const char* at, std::size_t n) {
  Parser& s = self(p);
  if (!s.count_head(n)) return s.fail(ParseError::HeaderTooLarge, "header too large");
  gather(s.value_, s.value_span_, at, n);
  return 0;
}

int Parser::on_header_value_complete(llhttp_t* p) {
  Parser& s = self(p);
  if (!s.count_head(4)) return s.fail(ParseError::HeaderTooLarge, "header too large");  // ": " and CRLF
  // llhttp hands us the value without leading OWS; strip trailing OWS too (RFC 9110 §5.5).
  // One of each pair is empty (see field_span_).
  const std::string_view name = s.field_span_.empty() ? std::string_view(s.field_) : s.field_span_;
  std::string_view v = trim_ows(s.value_span_.empty() ? std::string_view(s.value_) : s.value_span_);
  for (char c : v) {
    // Field values must not carry CR, LF or NUL (RFC 9110 §5.5).
    if (c == '\r' || c == '\n' || c == '\0') return s.fail(ParseError::Malformed, "invalid character in field value");
  }
  // After the head, these are trailer fields: checked and counted, not merged
  // into the head (RFC 9110 §6.5.1), whose views the caller may hold.
  if (!s.head_complete_) {
    HeaderMap& h = s.kind_ == Kind::Request ? s.request_.headers : s.response_.headers;
    h.add(name, v);
    if (iequals(name, "transfer-encoding")) s.saw_transfer_encoding_ = true;
  }
  s.field_.clear();
  s.value_.clear();
  s.field_span_ = s.value_span_ = {};
  return 0;
}

// Transfer-Encoding (RFC 9112 §6.1, §6.3). The proxy de-chunks and re-frames
// bodies, so a coding other than chunked cannot be relayed (it would be dropped
// or mislabelled) and no body can be decoded twice.
int Parser::check_framing(llhttp_t* p) {
  if (!saw_transfer_encoding_) return 0;
  const HeaderMap& h = kind_ == Kind::Request ? request_.headers : response_.headers;
  bool has_te = false, chunked_last = false, other_coding = false;
  int chunked_count = 0;
  for (auto f : h) {
    if (!iequals(f.name, "transfer-encoding")) continue;
    has_te = true;
    std::string_view rest = f.value;
    while (!rest.empty()) {
      auto comma = rest.find(',');
      std::string_view coding = trim_ows(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (coding.empty()) continue;  // empty list elements are ignored (RFC 9110 §5.6.1)
      chunked_last = iequals(coding, "chunked");
      if (chunked_last)
        ++chunked_count;
      else
        other_coding = true;
    }
  }
  if (!has_te) return 0;
  if (kind_ == Kind::Response) {
    // Responses that end at their head (HEAD, 1xx, 204, 304) carry no coded body (§6.3 rule 1).
    if (no_body_response(p->status_code)) return 0;
  }
  if (p->http_minor == 0) return fail(ParseError::Malformed, "Transfer-Encoding in an HTTP/1.0 message");
  if (kind_ == Kind::Request) {
    // §6.3 rule 4: without chunked last the request's length is unknown: 400.
    if (!chunked_last) return fail(ParseError::Malformed, "chunked is not the final transfer coding");
    // §6.1: a sender must not apply chunked more than once.
    if (chunked_count > 1) return fail(ParseError::Malformed, "chunked applied more than once");
    // §6.1 / RFC 9110 §15.6.2: a coding we do not implement is 501.
    if (other_coding) return fail(ParseError::Unsupported, "transfer coding not implemented");
  } else if (!chunked_last || chunked_count > 1 || other_coding) {
    return fail(ParseError::Malformed, "transfer coding other than chunked");
  }
  // llhttp must have read the same single chunked (it does not, e.g., for a
  // trailing HTAB); otherwise it would frame the body differently.
  if (!(p->flags & F_CHUNKED)) return fail(ParseError::Malformed, "transfer coding not understood");
  return 0;
}

int Parser::on_headers_complete(llhttp_t* p) {
  Parser& s = self(p);
  s.head_complete_ = true;
  if (s.kind_ == Kind::Request) {
    RequestHead& r = s.request_;
    r.method = method_from_string(r.method_name);
    r.version_minor = p->http_minor;
    r.keep_alive = llhttp_should_keep_alive(p) != 0;
    if (p->http_major != 1) return s.fail(ParseError::Malformed, "unsupported HTTP version");
    // Framing first: it decides where this message ends and the next begins.
    if (s.check_framing(p) != 0) return -1;
    // One pass over the fields: differing duplicate Content-Length values are
    // a smuggling shape (RFC 9112 §6.3); Host is counted for §3.2.
    std::size_t hosts = 0;
    std::optional<std::string_view> content_length;
    for (auto f : r.headers) {
      if (f.name.size() == 4 && iequals(f.name, "host")) {
        ++hosts;
      } else if (f.name.size() == 14 && iequals(f.name, "content-length")) {
        if (content_length && *content_length != f.value)
          return s.fail(ParseError::Malformed, "conflicting content-length");
        content_length = f.value;
      }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host, or any request with more than one, gets 400.
    if (hosts > 1 || (hosts == 0 && r.version_minor >= 1)) return s.fail(ParseError::Malformed, "missing or duplicate Host");
    if (r.method == Method::Connect) return s.fail(ParseError::Unsupported, "CONNECT not supported");
  } else {
    ResponseHead& r = s.response_;
    r.status = p->status_code;
    r.version_minor = p->http_minor;
    r.keep_alive = llhttp_should_keep_alive(p) != 0;
    if (p->http_major != 1) return s.fail(ParseError::Malformed, "unsupported HTTP version");
    if (s.check_framing(p) != 0) return -1;
  }
  if (p->flags & F_CONTENT_LENGTH) {
    s.content_length_ = static_cast<int64_t>(p->content_length);
    if (static_cast<uint64_t>(s.content_length_) > s.limits_.max_body_size)
      return s.fail(ParseError::BodyTooLarge, "body too large");
  }
  // RFC 9112 §6.3 rule 1: a response to HEAD, and any 1xx, 204 or 304, ends at
  // its empty line whatever its Content-Length or Transfer-Encoding say; llhttp
  // checks the status only when neither is present.
  if (s.kind_ == Kind::Response && s.no_body_response(p->status_code)) return 1;
  return 0;
}

int Parser::on_chunk_header(llhttp_t* p) {
  // The last chunk (size 0): pause so that execute() knows where the trailer
  // section starts. It happens once per chunked message.
  if (p->content_length != 0) return 0;
  self(p).trailers_next_ = true;
  return HPE_PAUSED;
}

bool Parser::count_chunk_extension(std::size_t n) {
  chunk_extension_bytes_ += n;
  return chunk_extension_bytes_ <= limits_.max_chunk_extension_bytes;
}

// Name and value spans; the _complete callbacks below add one byte each for
// the ';' or '=' before them, so every byte of ";a;b=c" counts, even ";;;".
int Parser::on_chunk_extension(llhttp_t* p, const char*, std::size_t n) {
  Parser& s = self(p);
  if (!s.count_chunk_extension(n)) return s.fail(ParseError::Malformed, "chunk extensions too long");
  return 0;
}

int Parser::on_chunk_extension_complete(llhttp_t* p) {
  Parser& s = self(p);
  if (!s.count_chunk_extension(1)) return s.fail(ParseError::Malformed, "chunk extensions too long");
  return 0;
}

int Parser::on_body(llhttp_t* p, const char* at, std::size_t n) {
  Parser& s = self(p);
  s.body_bytes_ += n;
  if (s.body_bytes_ > s.limits_.max_body_size) return s.fail(ParseError::BodyTooLarge, "body too large");
  // Adjacent spans (the common case) are merged.
  if (!s.body_.empty() && s.body_.back().data() + s.body_.back().size() == at)
    s.body_.back() = std::string_view(s.body_.back().data(), s.body_.back().size() + n);
  else
    s.body_.emplace_back(at, n);
  return 0;
}

int Parser::on_message_complete(llhttp_t* p) {
  Parser& s = self(p);
  s.message_complete_ = true;
  return HPE_PAUSED;  // stop here; the next message waits for next_message()
}

}  // namespace cachalot::http
