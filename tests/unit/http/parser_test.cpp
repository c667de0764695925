#include <catch2/catch.hpp>

#include <string>

#include "http/hop_by_hop.h"
#include "http/parser.h"

using namespace cachalot::http;

namespace {

struct Parsed {
  ParseError error = ParseError::None;
  bool complete = false;
  std::string body;
  std::size_t consumed = 0;
};

Parsed parse_request(const std::string& bytes, ParserLimits limits = {}) {
  Parser p(Parser::Kind::Request, limits);
  Parsed r;
  r.consumed = p.execute(bytes.data(), bytes.size());
  for (auto s : p.body()) r.body.append(s);
  r.error = p.error();
  r.complete = p.message_complete();
  return r;
}

}  // namespace

TEST_CASE("request smuggling and malformed shapes are rejected (RFC 9112 §6.3, §5.2, §2.2)", "[parser]") {
  struct Row {
    const char* name;
    std::string bytes;
    ParseError expected;
  };
  const Row rows[] = {
      {"baseline GET parses", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::None},
      {"Content-Length with Transfer-Encoding (§6.3)",
       "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       ParseError::Malformed},
      {"differing duplicate Content-Length (§6.3)",
       "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", ParseError::Malformed},
      {"obs-fold in a field (§5.2)", "GET /a HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n", ParseError::Malformed},
      {"bare LF line ending (§2.2)", "GET /a HTTP/1.1\nHost: x\n\n", ParseError::Malformed},
      {"invalid chunk size (§7.1)", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
       ParseError::Malformed},
      {"space before colon (§5.1)", "GET /a HTTP/1.1\r\nHost : x\r\n\r\n", ParseError::Malformed},
      {"garbage request line", "HELLO\r\n\r\n", ParseError::Malformed},
      {"HTTP/2.0 in an HTTP/1 request line", "GET /a HTTP/2.0\r\nHost: x\r\n\r\n", ParseError::Malformed},
      {"an unknown but well-formed method is not implemented (RFC 9110 §9.1)", "BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n",
       ParseError::Unsupported},
      {"CONNECT is not tunnelled", "CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::Unsupported},
  };
  for (const auto& row : rows) {
    DYNAMIC_SECTION(row.name) { CHECK(parse_request(row.bytes).error == row.expected); }
  }
}

TEST_CASE("limits map to their own errors: 431, 414, 413", "[parser]") {
  ParserLimits lim{256, 64, 10};
  CHECK(parse_request("GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", lim).error ==
        ParseError::UriTooLong);
  CHECK(parse_request("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(300, 'b') + "\r\n\r\n", lim).error ==
        ParseError::HeaderTooLarge);
  CHECK(parse_request("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world", lim).error ==
        ParseError::BodyTooLarge);
  CHECK(parse_request("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n",
                      lim)
            .error == ParseError::BodyTooLarge);
}

TEST_CASE("pipelined requests stop at each message end so they are answered in order", "[parser]") {
  std::string two = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
  Parser p(Parser::Kind::Request, {});
  std::size_t n = p.execute(two.data(), two.size());
  REQUIRE(p.message_complete());
  CHECK(p.request().target == "/1");
  CHECK(n == two.find("GET /2"));
  p.next_message();
  std::size_t m = p.execute(two.data() + n, two.size() - n);
  REQUIRE(p.message_complete());
  CHECK(p.request().target == "/2");
  CHECK(n + m == two.size());
}

TEST_CASE("chunked body is delivered de-chunked, across split reads", "[parser]") {
  std::string msg = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  Parser p(Parser::Kind::Request, {});
  std::string body;
  for (std::size_t i = 0; i < msg.size(); i += 7) {
    std::size_t len = std::min<std::size_t>(7, msg.size() - i);
    std::size_t used = p.execute(msg.data() + i, len);
    for (auto s : p.body()) body.append(s);
    REQUIRE(p.error() == ParseError::None);
    if (p.message_complete()) {
      CHECK(used <= len);
      break;
    }
  }
  CHECK(p.message_complete());
  CHECK(p.chunked());
  CHECK(body == "hello world");
}

TEST_CASE("header fields keep order and duplicates; values are trimmed (RFC 9110 §5.5)", "[parser]") {
  Parser p(Parser::Kind::Request, {});
  std::string m = "GET / HTTP/1.1\r\nHost: x\r\nAccept:  a \r\naccept: b\r\n\r\n";
  p.execute(m.data(), m.size());
  REQUIRE(p.message_complete());
  CHECK(p.request().headers.get("ACCEPT") == std::optional<std::string_view>("a"));
  CHECK(p.request().headers.get_combined("accept") == "a, b");
  CHECK(p.request().keep_alive);
}

TEST_CASE("responses: HEAD has no body, EOF-delimited bodies end at finish()", "[parser]") {
  {
    Parser p(Parser::Kind::Response, {});
    p.set_expect_no_body(true);
    std::string m = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
    p.execute(m.data(), m.size());
    CHECK(p.message_complete());
    CHECK(p.response().status == 200);
  }
  {
    Parser p(Parser::Kind::Response, {});
    std::string m = "HTTP/1.1 200 OK\r\n\r\nabc";
    p.execute(m.data(), m.size());
    CHECK(p.body_until_eof());
    CHECK_FALSE(p.message_complete());
    CHECK(p.finish());
    CHECK(p.message_complete());
  }
  {
    Parser p(Parser::Kind::Response, {});
    std::string m = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    p.execute(m.data(), m.size());
    CHECK_FALSE(p.finish());  // cut short
  }
}

TEST_CASE("hop-by-hop fields and those named by Connection are removed (RFC 9110 §7.6.1)", "[parser]") {
  HeaderMap h;
  h.add("Connection", "close, X-Secret");
  h.add("X-Secret", "1");
  h.add("Keep-Alive", "timeout=5");
  h.add("TE", "trailers");
  h.add("Trailer", "x");
  h.add("Transfer-Encoding", "chunked");
  h.add("Upgrade", "h2c");
  h.add("Proxy-Connection", "keep-alive");
  h.add("Cache-Control", "max-age=1");
  strip_hop_by_hop(h);
  REQUIRE(h.size() == 1);
  CHECK(h.at(0).name == "Cache-Control");
}
