#include "http/parser.h"

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
  settings_.on_body = &Parser::on_body;
  settings_.on_message_complete = &Parser::on_message_complete;
  llhttp_init(&parser_, kind == Kind::Request ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
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
  in_value_ = false;
  head_bytes_ = 0;
  body_bytes_ = 0;
  content_length_ = -1;
  expect_no_body_ = false;
  body_.clear();
  field_.clear();
  value_.clear();
  if (paused_) {
    llhttp_resume(&parser_);
    paused_ = false;
  }
}

// "TOKEN SP target SP HTTP/1.d CRLF": a request line whose method llhttp does not know.
static bool looks_like_request_line(std::string_view b) {
  auto eol = b.find("\r\n");
  if (eol == std::string_view::npos) return false;
  std::string_view line = b.substr(0, eol);
  auto sp1 = line.find(' ');
  auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp1 == 0 || sp2 == sp1) return false;
  static constexpr std::string_view kTchar = "!#$%&'*+-.^_`|~";
  for (char c : line.substr(0, sp1)) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              kTchar.find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  return !target.empty() && target.find(' ') == std::string_view::npos && version.size() == 8 &&
         version.substr(0, 7) == "HTTP/1." && version[7] >= '0' && version[7] <= '9';
}

std::size_t Parser::execute(const char* data, std::size_t len) {
  body_.clear();
  if (error_ != ParseError::None || message_complete_ || len == 0) return 0;
  exec_begin_ = data;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  prev_last_ = data[len - 1];
  if (err == HPE_OK) return len;
  if (err == HPE_PAUSED) {
    paused_ = true;
    return static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - data);
  }
  if (err == HPE_PAUSED_UPGRADE) {
    // A request with Upgrade / CONNECT: we do not tunnel.
    error_ = ParseError::Unsupported;
    error_reason_ = "upgrade not supported";
    return len;
  }
  if (error_ == ParseError::None && err == HPE_INVALID_METHOD && looks_like_request_line(std::string_view(data, len))) {
    // A well-formed token llhttp does not know: RFC 9110 §9.1 answers 501, not 400.
    error_ = ParseError::Unsupported;
    error_reason_ = "method not implemented";
    return len;
  }
  if (error_ == ParseError::None) {
    error_ = ParseError::Malformed;
    error_reason_ = llhttp_get_error_reason(&parser_);
  }
  return len;
}

bool Parser::finish() {
  if (message_complete_) return true;
  if (!started_) return false;
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

int Parser::on_header_field(llhttp_t* p, const char* at, std::size_t n) {
  Parser& s = self(p);
  if (!s.count_head(n + 4)) return s.fail(ParseError::HeaderTooLarge, "header too large");
  s.field_.append(at, n);
  return 0;
}

int Parser::on_header_value(llhttp_t* p, const char* at, std::size_t n) {
  Parser& s = self(p);
  if (!s.count_head(n)) return s.fail(ParseError::HeaderTooLarge, "header too large");
  // llhttp accepts obs-fold and hands us the continuation as a new span that
  // follows a line break; RFC 9112 §5.2 lets a server reject it, and a proxy must
  // not pass ambiguous framing on, so we do.
  char before = at > s.exec_begin_ ? at[-1] : s.prev_last_;
  if (before == '\n') return s.fail(ParseError::Malformed, "obs-fold in field value");
  s.value_.append(at, n);
  return 0;
}

int Parser::on_header_value_complete(llhttp_t* p) {
  Parser& s = self(p);
  // llhttp hands us the value without leading OWS; strip trailing OWS too (RFC 9110 §5.5).
  std::string_view v = trim_ows(s.value_);
  for (char c : v) {
    // Field values must not carry CR, LF or NUL (RFC 9110 §5.5).
    if (c == '\r' || c == '\n' || c == '\0') return s.fail(ParseError::Malformed, "invalid character in field value");
  }
  HeaderMap& h = s.kind_ == Kind::Request ? s.request_.headers : s.response_.headers;
  h.add(s.field_, v);
  s.field_.clear();
  s.value_.clear();
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
    // Differing duplicate Content-Length values are a smuggling shape (RFC 9112 §6.3).
    if (r.headers.count("content-length") > 1) {
      std::optional<std::string_view> first;
      for (auto f : r.headers)
        if (iequals(f.name, "content-length")) {
          if (first && *first != f.value) return s.fail(ParseError::Malformed, "conflicting content-length");
          first = f.value;
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host, or any request with more than one, gets 400.
    std::size_t hosts = r.headers.count("host");
    if (hosts > 1 || (hosts == 0 && r.version_minor >= 1)) return s.fail(ParseError::Malformed, "missing or duplicate Host");
    if (r.method == Method::Connect) return s.fail(ParseError::Unsupported, "CONNECT not supported");
  } else {
    ResponseHead& r = s.response_;
    r.status = p->status_code;
    r.version_minor = p->http_minor;
    r.keep_alive = llhttp_should_keep_alive(p) != 0;
    if (p->http_major != 1) return s.fail(ParseError::Malformed, "unsupported HTTP version");
  }
  if (p->flags & F_CONTENT_LENGTH) {
    s.content_length_ = static_cast<int64_t>(p->content_length);
    if (static_cast<uint64_t>(s.content_length_) > s.limits_.max_body_size)
      return s.fail(ParseError::BodyTooLarge, "body too large");
  }
  if (s.kind_ == Kind::Response && s.expect_no_body_) return 1;  // HEAD: no body follows
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
