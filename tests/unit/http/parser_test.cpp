#include <catch2/catch.hpp>

#include <optional>
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
  HeaderMap headers;
};

// Feeds one message, `step` bytes per execute() (0: all at once), until it
// completes or fails.
Parsed parse(Parser::Kind kind, const std::string& bytes, ParserLimits limits = {}, std::size_t step = 0,
             bool expect_no_body = false) {
  Parser p(kind, limits);
  p.set_expect_no_body(expect_no_body);
  Parsed r;
  while (r.consumed < bytes.size()) {
    std::size_t n = step ? std::min(step, bytes.size() - r.consumed) : bytes.size() - r.consumed;
    r.consumed += p.execute(bytes.data() + r.consumed, n);
    for (auto s : p.body()) r.body.append(s);
    if (p.error() != ParseError::None || p.message_complete()) break;
  }
  r.error = p.error();
  r.complete = p.message_complete();
  r.headers = kind == Parser::Kind::Request ? p.request().headers : p.response().headers;
  return r;
}

Parsed parse_request(const std::string& bytes, ParserLimits limits = {}, std::size_t step = 0) {
  return parse(Parser::Kind::Request, bytes, limits, step);
}

struct Row {
  const char* name;
  std::string bytes;
  ParseError expected;
  // When set (and expected is None): this field must be present with this value.
  const char* field = nullptr;
  const char* value = nullptr;
  ParserLimits limits = {};
  bool expect_no_body = false;  // responses: the request was HEAD
};

// Every row is fed whole and one byte per execute(): the answer must not depend on the split.
void check_rows(Parser::Kind kind, const Row* rows, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    const Row& row = rows[i];
    for (std::size_t step : {std::size_t{0}, std::size_t{1}}) {
      DYNAMIC_SECTION(row.name << (step ? " [byte by byte]" : " [whole]")) {
        Parsed r = parse(kind, row.bytes, row.limits, step, row.expect_no_body);
        CHECK(to_string(r.error) == to_string(row.expected));
        if (row.expected == ParseError::None) CHECK(r.complete);
        if (row.field) {
          REQUIRE(r.headers.count(row.field) == 1);
          CHECK(r.headers.get(row.field) == std::optional<std::string_view>(row.value));
        }
      }
    }
  }
}

const std::string kPost = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
const std::string kChunkedResp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

std::string extensions_chunks(std::size_t chunks, std::size_t ext_len) {
  std::string s;
  for (std::size_t i = 0; i < chunks; ++i) s += "1;" + std::string(ext_len, 'e') + "\r\nx\r\n";
  return s + "0\r\n\r\n";
}

}  // namespace

TEST_CASE("request smuggling and malformed shapes are rejected (RFC 9112 §6.3, §5.2, §2.2)", "[parser]") {
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
  check_rows(Parser::Kind::Request, rows, std::size(rows));
}

TEST_CASE("empty field values are present and empty; obs-fold is still rejected (RFC 9110 §5.5, RFC 9112 §5.2)",
          "[parser]") {
  const Row rows[] = {
      {"empty value (RFC 9110 §5.5)", "GET /a HTTP/1.1\r\nHost: x\r\nX-E:\r\n\r\n", ParseError::None, "x-e", ""},
      {"value of only whitespace is empty (RFC 9110 §5.5)", "GET /a HTTP/1.1\r\nHost: x\r\nX-E:   \r\n\r\n",
       ParseError::None, "x-e", ""},
      {"value of only HTAB is empty (RFC 9110 §5.5)", "GET /a HTTP/1.1\r\nHost: x\r\nX-E:\t\r\n\r\n", ParseError::None,
       "x-e", ""},
      {"empty Accept-Encoding as real clients send it (RFC 9110 §12.5.3)",
       "GET /a HTTP/1.1\r\nAccept-Encoding:\r\nHost: x\r\n\r\n", ParseError::None, "accept-encoding", ""},
      {"empty Cookie as last field (RFC 9110 §5.5)", "GET /a HTTP/1.1\r\nHost: x\r\nCookie:\r\n\r\n", ParseError::None,
       "cookie", ""},
      {"a field after an empty one keeps its value (RFC 9110 §5.5)", "GET /a HTTP/1.1\r\nX-E:\r\nHost: h1\r\n\r\n",
       ParseError::None, "host", "h1"},
      {"empty Host is one Host (RFC 9112 §3.2)", "GET /a HTTP/1.1\r\nHost:\r\n\r\n", ParseError::None, "host", ""},
      {"empty Content-Length is not a length (RFC 9110 §8.6)", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n",
       ParseError::Malformed},
      {"obs-fold after a value (RFC 9112 §5.2)", "GET /a HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n",
       ParseError::Malformed},
      {"obs-fold with HTAB (RFC 9112 §5.2)", "GET /a HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\tc\r\n\r\n", ParseError::Malformed},
      {"obs-fold after an empty value (RFC 9112 §5.2)", "GET /a HTTP/1.1\r\nHost: x\r\nX-A:\r\n c\r\n\r\n",
       ParseError::Malformed},
      {"obs-fold line of only whitespace after an empty value (RFC 9112 §5.2)",
       "GET /a HTTP/1.1\r\nHost: x\r\nX-A:\r\n \r\n\r\n", ParseError::Malformed},
      {"obs-fold of the Host field (RFC 9112 §5.2)", "GET /a HTTP/1.1\r\nHost:\r\n x\r\n\r\n", ParseError::Malformed},
      {"whitespace before the first field line (RFC 9112 §2.2)", "GET /a HTTP/1.1\r\n Host: x\r\n\r\n",
       ParseError::Malformed},
  };
  check_rows(Parser::Kind::Request, rows, std::size(rows));
}

TEST_CASE("request Transfer-Encoding is a single chunked, and never in HTTP/1.0 (RFC 9112 §6.1, §6.3)", "[parser]") {
  const Row rows[] = {
      {"chunked (§6.1)", kPost + "3\r\nabc\r\n0\r\n\r\n", ParseError::None},
      {"Chunked in another case with OWS (§6.1, RFC 9110 §5.6.1)",
       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  CHUNKED \r\n\r\n0\r\n\r\n", ParseError::None},
      {"HTTP/1.0 with chunked is faulty framing (§6.1)",
       "POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", ParseError::Malformed},
      {"HTTP/1.0 with Host and chunked is faulty framing (§6.1)",
       "POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ParseError::Malformed},
      {"HTTP/1.0 with Transfer-Encoding and Content-Length (§6.1)",
       "POST /a HTTP/1.0\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", ParseError::Malformed},
      {"gzip before chunked is not implemented (§6.1, RFC 9110 §15.6.2)",
       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", ParseError::Unsupported},
      {"deflate before chunked without OWS is not implemented (§6.1)",
       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: deflate,chunked\r\n\r\n0\r\n\r\n", ParseError::Unsupported},
      {"gzip and chunked on two field lines is not implemented (§6.1, RFC 9110 §5.3)",
       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       ParseError::Unsupported},
      {"chunked, chunked: chunked applied twice (§6.1)",
       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", ParseError::Malformed},
      {"chunked on two field lines: applied twice (§6.1)",
       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       ParseError::Malformed},
      {"identity alone: chunked is not final (§6.3 rule 4)",
       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", ParseError::Malformed},
      {"an unknown coding alone: chunked is not final (§6.3 rule 4)",
       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: x\r\n\r\n", ParseError::Malformed},
      {"gzip after chunked: chunked is not final (§6.3 rule 4)",
       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", ParseError::Malformed},
      {"empty Transfer-Encoding with Content-Length: chunked is not final (§6.3 rule 4)",
       "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\nabc", ParseError::Malformed},
  };
  check_rows(Parser::Kind::Request, rows, std::size(rows));
}

TEST_CASE("request-line is method SP request-target SP HTTP-version CRLF, exactly (RFC 9112 §3, §2.2)", "[parser]") {
  const Row rows[] = {
      {"empty lines before the request-line are ignored (§2.2)", "\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n",
       ParseError::None},
      {"asterisk-form (§3.2.4)", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::None},
      {"absolute-form (§3.2.2)", "GET http://x/a?b HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::None},
      {"two SP before the target (§3)", "GET  /p HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::Malformed},
      {"two SP before the version (§3)", "GET /p  HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::Malformed},
      {"HTAB instead of the first SP (§3)", "GET\t/p HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::Malformed},
      {"HTAB instead of the second SP (§3)", "GET /p\tHTTP/1.1\r\nHost: x\r\n\r\n", ParseError::Malformed},
      {"SP before the method (§3)", " GET /p HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::Malformed},
      {"SP inside the target (§3.2)", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::Malformed},
      {"control byte in the target (§3.2)", std::string("GET /a\x01") + "b HTTP/1.1\r\nHost: x\r\n\r\n",
       ParseError::Malformed},
      {"DEL in the target (§3.2)", "GET /a\x7f" "b HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::Malformed},
      {"NUL in the target (§3.2)", std::string("GET /a") + '\0' + "b HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::Malformed},
      {"SP after the version (§3)", "GET /p HTTP/1.1 \r\nHost: x\r\n\r\n", ParseError::Malformed},
      {"no version (HTTP/0.9 shape) (§3)", "GET /p\r\nHost: x\r\n\r\n", ParseError::Malformed},
      {"an RTSP version is not HTTP-version (§2.3)", "DESCRIBE /p RTSP/1.0\r\nHost: x\r\n\r\n", ParseError::Malformed},
      {"lower-case version name (§2.3)", "GET /p http/1.1\r\nHost: x\r\n\r\n", ParseError::Malformed},
      {"bare CR in the request-line (§2.2)", "GET /p\r HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::Malformed},
      {"bare LF after the request-line (§2.2)", "GET /p HTTP/1.1\nHost: x\r\n\r\n", ParseError::Malformed},
      {"bare LF as the empty line (§2.2)", "GET /p HTTP/1.1\r\nHost: x\r\n\n", ParseError::Malformed},
      {"bare LF after a field line (§2.2)", "GET /p HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", ParseError::Malformed},
      {"bare CR in a field value (§2.2)", "GET /p HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", ParseError::Malformed},
      {"SP between field name and colon (§5.1)", "GET /p HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", ParseError::Malformed},
      {"HTAB between field name and colon (§5.1)", "GET /p HTTP/1.1\r\nHost\t: x\r\n\r\n", ParseError::Malformed},
      {"SP before the colon of Content-Length (§5.1)",
       "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n", ParseError::Malformed},
      {"a field line without a colon (§5.1)", "GET /p HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n", ParseError::Malformed},
      {"an unknown lower-case method is not implemented (RFC 9110 §9.1)", "brew /pot HTTP/1.1\r\nHost: x\r\n\r\n",
       ParseError::Unsupported},
      {"a known method with a suffix is an unknown method (RFC 9110 §9.1)", "GETX /p HTTP/1.1\r\nHost: x\r\n\r\n",
       ParseError::Unsupported},
      {"an unknown method with two SP is malformed (§3)", "BREW  /pot HTTP/1.1\r\nHost: x\r\n\r\n",
       ParseError::Malformed},
      {"an unknown method without a version is malformed (§3)", "BREW /pot\r\nHost: x\r\n\r\n", ParseError::Malformed},
      {"a method with a non-token character is malformed (RFC 9110 §9.1)", "G@T /p HTTP/1.1\r\nHost: x\r\n\r\n",
       ParseError::Malformed},
      {"an unknown method's request-line is bounded by max_header_bytes (RFC 6585 §5)",
       "BREW /" + std::string(300, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::HeaderTooLarge, nullptr, nullptr,
       {256, 1024, 10}},
  };
  check_rows(Parser::Kind::Request, rows, std::size(rows));
}

TEST_CASE("chunk extensions are bounded per message; trailers are checked (RFC 9112 §7.1.1, §7.1.2)", "[parser]") {
  const Row rows[] = {
      {"a few chunk extensions (§7.1.1)", kPost + "1;a=b\r\nx\r\n1;c=\"d e\"\r\ny\r\n1;f\r\nz\r\n0;g=h\r\n\r\n",
       ParseError::None},
      {"extensions of exactly the limit (§7.1.1)", kPost + "1;" + std::string(4095, 'e') + "\r\nx\r\n0\r\n\r\n",
       ParseError::None},
      {"one byte of extension over the limit (§7.1.1)", kPost + "1;" + std::string(4096, 'e') + "\r\nx\r\n0\r\n\r\n",
       ParseError::Malformed},
      {"a long quoted extension value (§7.1.1)",
       kPost + "1;a=\"" + std::string(5000, 'q') + "\"\r\nx\r\n0\r\n\r\n", ParseError::Malformed},
      {"many small extensions add up (§7.1.1)", kPost + extensions_chunks(100, 100), ParseError::Malformed},
      {"extensions on the last chunk count (§7.1.1)", kPost + "0;" + std::string(5000, 'e') + "\r\n\r\n",
       ParseError::Malformed},
      {"a smaller configured limit (§7.1.1)", kPost + extensions_chunks(3, 20), ParseError::Malformed, nullptr, nullptr,
       {32 * 1024, 8 * 1024, UINT64_MAX, 50}},
      {"trailer fields are accepted (§7.1.2)", kPost + "1\r\nx\r\n0\r\nX-T: v\r\nX-U:\r\n\r\n", ParseError::None},
      {"trailer fields are not merged into the head (RFC 9110 §6.5.1)",
       kPost + "1\r\nx\r\n0\r\nHost: evil\r\n\r\n", ParseError::None, "host", "x"},
      {"obs-fold in a trailer field (§5.2)", kPost + "1\r\nx\r\n0\r\nX-T: a\r\n b\r\n\r\n", ParseError::Malformed},
      {"obs-fold after an empty trailer value (§5.2)", kPost + "0\r\nX-T:\r\n b\r\n\r\n", ParseError::Malformed},
      {"bare LF ending the trailer section (§2.2)", kPost + "1\r\nx\r\n0\r\n\n", ParseError::Malformed},
      {"bare LF after a trailer field (§2.2)", kPost + "0\r\nX-T: v\n\r\n", ParseError::Malformed},
      {"SP before the colon of a trailer field (§5.1)", kPost + "0\r\nX-T : v\r\n\r\n", ParseError::Malformed},
      {"trailers count against max_header_bytes with the head (RFC 6585 §5)",
       kPost + "0\r\nX-T: " + std::string(300, 't') + "\r\n\r\n", ParseError::HeaderTooLarge, nullptr, nullptr,
       {256, 64, UINT64_MAX}},
  };
  check_rows(Parser::Kind::Request, rows, std::size(rows));
}

TEST_CASE("responses: empty values, obs-fold, framing and line endings (RFC 9112 §5.2, §6.1, §6.3, §2.2, §4)",
          "[parser]") {
  const Row rows[] = {
      {"baseline response", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", ParseError::None},
      {"empty value (RFC 9110 §5.5)", "HTTP/1.1 200 OK\r\nX-E:\r\nContent-Length: 0\r\n\r\n", ParseError::None, "x-e",
       ""},
      {"value of only whitespace is empty (RFC 9110 §5.5)", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-E:  \r\n\r\n",
       ParseError::None, "x-e", ""},
      {"empty reason phrase (§4)", "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", ParseError::None},
      {"obs-fold (§5.2: a proxy rejects it with 502)", "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n",
       ParseError::Malformed},
      {"obs-fold after an empty value (§5.2)", "HTTP/1.1 200 OK\r\nX-A:\r\n c\r\nContent-Length: 0\r\n\r\n",
       ParseError::Malformed},
      {"chunked (§6.1)", kChunkedResp + "1\r\nx\r\n0\r\n\r\n", ParseError::None},
      {"Chunked in another case (§6.1)", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
       ParseError::None},
      {"gzip, chunked: a coding we would drop (§6.1)",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", ParseError::Malformed},
      {"gzip and chunked on two field lines (§6.1)",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       ParseError::Malformed},
      {"chunked, chunked: applied twice (§6.1)",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", ParseError::Malformed},
      {"chunked, gzip: read-until-close body we cannot decode (§6.3 rule 4)",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc", ParseError::Malformed},
      {"identity (§6.1)", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nabc", ParseError::Malformed},
      {"empty Transfer-Encoding (§6.3 rule 4)", "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\nabc",
       ParseError::Malformed},
      {"chunked with a trailing HTAB llhttp does not frame as chunked (§6.1)",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n", ParseError::Malformed},
      {"HTTP/1.0 response with chunked is faulty framing (§6.1)",
       "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", ParseError::Malformed},
      {"304 may name the codings it would have used (§6.3 rule 1)",
       "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ParseError::None},
      {"304 with Content-Length ends at its head (§6.3 rule 1)",
       "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", ParseError::None},
      {"204 with Transfer-Encoding ends at its head (§6.3 rule 1)",
       "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", ParseError::None},
      {"103 with Content-Length ends at its head (§6.3 rule 1)",
       "HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\n\r\n", ParseError::None},
      {"a response to HEAD ends at its head (§6.3 rule 1)",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ParseError::None, nullptr, nullptr, {}, true},
      {"chunk extensions over the limit (§7.1.1)", kChunkedResp + extensions_chunks(100, 100), ParseError::Malformed},
      {"obs-fold in a trailer field (§5.2)", kChunkedResp + "0\r\nX-T: a\r\n b\r\n\r\n", ParseError::Malformed},
      {"bare LF ending the trailer section (§2.2)", kChunkedResp + "0\r\n\n", ParseError::Malformed},
      {"bare LF after the status-line (§2.2)", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", ParseError::Malformed},
      {"bare LF as the empty line (§2.2)", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n", ParseError::Malformed},
      {"control byte in the reason phrase (§4)", "HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n",
       ParseError::Malformed},
      {"SP between field name and colon (§5.1)", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
       ParseError::Malformed},
  };
  check_rows(Parser::Kind::Response, rows, std::size(rows));
}

TEST_CASE("limits map to their own errors: 431, 414, 413", "[parser]") {
  ParserLimits lim{256, 64, 10};
  for (std::size_t step : {std::size_t{0}, std::size_t{1}}) {
    CHECK(parse_request("GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", lim, step).error ==
          ParseError::UriTooLong);
    CHECK(parse_request("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(300, 'b') + "\r\n\r\n", lim, step).error ==
          ParseError::HeaderTooLarge);
    CHECK(parse_request("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world", lim, step).error ==
          ParseError::BodyTooLarge);
    CHECK(parse_request(
              "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n", lim, step)
              .error == ParseError::BodyTooLarge);
  }
}

TEST_CASE("the header limit does not depend on how the head is split", "[parser]") {
  // Counted: method + target + per field name + value + 4: 3 + 1 + (4 + 1 + 4) + (3 + v + 4) = 20 + v.
  ParserLimits lim{256, 64, 10};
  auto head = [](std::size_t v) { return "GET / HTTP/1.1\r\nHost: x\r\nX-P: " + std::string(v, 'p') + "\r\n\r\n"; };
  for (std::size_t step : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
    CHECK(parse_request(head(236), lim, step).error == ParseError::None);
    CHECK(parse_request(head(237), lim, step).error == ParseError::HeaderTooLarge);
  }
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

TEST_CASE("a chunked request with trailers, then a pipelined one, parse at every split", "[parser]") {
  std::string msgs = kPost + "3;ext=1\r\nabc\r\n0\r\nX-T: t\r\n\r\n" + "\r\nGET /2 HTTP/1.1\r\nHost: y\r\nX-E:\r\n\r\n";
  for (std::size_t step : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{5}, std::size_t{13}}) {
    DYNAMIC_SECTION("step " << step) {
      Parser p(Parser::Kind::Request, {});
      std::size_t off = 0;
      std::string body;
      std::vector<std::string> targets;
      while (off < msgs.size()) {
        std::size_t n = step ? std::min(step, msgs.size() - off) : msgs.size() - off;
        off += p.execute(msgs.data() + off, n);
        for (auto s : p.body()) body.append(s);
        REQUIRE(p.error() == ParseError::None);
        if (p.message_complete()) {
          targets.push_back(p.request().target);
          if (targets.size() == 1) {
            CHECK(p.request().headers.count("x-t") == 0);
          } else {
            CHECK(p.request().headers.get("x-e") == std::optional<std::string_view>(""));
          }
          p.next_message();
        }
      }
      CHECK(targets == std::vector<std::string>{"/a", "/2"});
      CHECK(body == "abc");
    }
  }
}

TEST_CASE("a bad request pipelined after a good one fails only when it is parsed", "[parser]") {
  std::string two = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET  /2 HTTP/1.1\r\nHost: x\r\n\r\n";
  Parser p(Parser::Kind::Request, {});
  std::size_t n = p.execute(two.data(), two.size());
  REQUIRE(p.message_complete());
  CHECK(p.error() == ParseError::None);
  p.next_message();
  p.execute(two.data() + n, two.size() - n);
  CHECK(p.error() == ParseError::Malformed);
  CHECK_FALSE(p.head_complete());
}

TEST_CASE("a 304 with Content-Length is followed by the next response, not by its body (RFC 9112 §6.3)",
          "[parser]") {
  std::string two = "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  Parser p(Parser::Kind::Response, {});
  std::size_t n = p.execute(two.data(), two.size());
  REQUIRE(p.message_complete());
  CHECK(p.response().status == 304);
  CHECK(p.body_bytes() == 0);
  CHECK(n == two.find("HTTP/1.1 200"));
  p.next_message();
  p.execute(two.data() + n, two.size() - n);
  REQUIRE(p.message_complete());
  CHECK(p.response().status == 200);
  CHECK(p.body_bytes() == 2);
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

TEST_CASE("field names and values split over execute() calls survive the caller reusing its buffer", "[parser]") {
  // The parser keeps a name or value that came in one span as a view into the
  // caller's bytes; one that is split must be copied out before execute()
  // returns, as a socket buffer is compacted and refilled between calls.
  const std::string msg =
      "GET /r HTTP/1.1\r\nHost: example.test\r\nX-Long-Name-Of-A-Field: a value that spans several reads\r\n"
      "Accept:  text/plain \r\nEmpty:\r\n\r\n";
  for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{5}, std::size_t{7}, std::size_t{13}}) {
    Parser p(Parser::Kind::Request, {});
    std::string scratch;
    std::size_t off = 0;
    while (off < msg.size() && !p.message_complete() && p.error() == ParseError::None) {
      scratch.assign(msg, off, std::min(step, msg.size() - off));
      const std::size_t n = p.execute(scratch.data(), scratch.size());
      scratch.assign(scratch.size(), '#');  // what the view pointed at is gone
      off += n;
    }
    INFO("step " << step);
    REQUIRE(p.error() == ParseError::None);
    REQUIRE(p.message_complete());
    const auto& h = p.request().headers;
    CHECK(h.get("host").value_or("?") == "example.test");
    CHECK(h.get("x-long-name-of-a-field").value_or("?") == "a value that spans several reads");
    CHECK(h.get("accept").value_or("?") == "text/plain");
    CHECK(h.get("empty").value_or("?") == "");
    CHECK(h.size() == 4);
  }
}
