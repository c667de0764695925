// Snapshot format (cache/snapshot.h): round trip, and what damaged or
// foreign files do: refused (header, framing, truncation, count) or one
// record skipped (its checksum, a payload that could not have been stored).
#include "cache/snapshot.h"

#include <catch2/catch.hpp>
#include <xxhash.h>

#include <set>
#include <string>
#include <vector>

#include "cache/store.h"

using namespace cachalot;
namespace snap = cachalot::cache::snapshot;

namespace {

constexpr int64_t kT = 1700000000;
core::TimePoint at(int64_t seconds) { return core::to_time_point(kT + seconds); }
core::TimePoint at_ms(int64_t ms) { return core::TimePoint(core::Duration(kT * 1000 + ms)); }

cache::EntryDraft draft(std::string key, std::string body = "hello") {
  cache::EntryDraft d;
  d.primary_key = std::move(key);
  d.status = 200;
  d.headers.add("Cache-Control", "max-age=100");
  d.headers.add("ETag", "\"v1\"");
  d.headers.add("Date", "Tue, 14 Nov 2023 22:13:20 GMT");
  d.body = std::move(body);
  d.freshness.request_time = at_ms(-20);
  d.freshness.response_time = at(0);
  d.freshness.lifetime = core::Seconds(100);
  d.freshness.keep = core::Seconds(3600);
  return d;
}

// A variety of entries: Vary, tags, a route, flags, bodiless statuses, binary and large bodies.
std::vector<cache::EntryRef> sample_entries() {
  std::vector<cache::EntryRef> out;
  out.push_back(cache::build_entry(draft("http://example.com/a")));
  {
    cache::EntryDraft d = draft("https://example.com:8443/v?x=1\naccept-language:de");
    d.vary_names = {"accept-encoding", "x-lang"};
    d.variant_key = "gzip\x1f" "de";
    d.tags = {"blue", "red"};
    d.route = "api";
    d.route_generation = 7;
    d.cc.s_maxage = 10;  // may answer requests with Authorization (§3.5)
    d.freshness.corrected_initial_age = core::Seconds(5);
    d.freshness.stale_while_revalidate = core::Seconds(30);
    d.freshness.stale_if_error = core::Seconds(60);
    d.freshness.heuristic = true;
    d.freshness.must_revalidate = true;
    d.headers.add("Last-Modified", "Mon, 13 Nov 2023 10:00:00 GMT");
    d.headers.add("Surrogate-Key", "blue red");
    out.push_back(cache::build_entry(d));
  }
  {
    cache::EntryDraft d = draft("http://example.com/empty", "");
    d.status = 204;
    d.freshness.no_cache = true;
    out.push_back(cache::build_entry(d));
  }
  {
    cache::EntryDraft d = draft("http://example.com/gone", "not here");
    d.status = 410;
    d.headers = http::HeaderMap{};
    out.push_back(cache::build_entry(d));
  }
  out.push_back(cache::build_entry(draft("http://example.com/bin", std::string("\0\r\n\xff" "abc", 7))));
  out.push_back(cache::build_entry(draft("http://example.com/big", std::string(300000, 'x'))));
  {
    // RFC 9213 §3: a targeted field kept from clients, and a disconnect grace.
    cache::EntryDraft d = draft("http://example.com/cdn");
    d.headers.add("CDN-Cache-Control", "max-age=600");
    d.withheld = {"cdn-cache-control"};
    d.freshness.stale_on_disconnect = core::Seconds(10);
    out.push_back(cache::build_entry(d));
  }
  {
    // An ETag of Cachalot's own: the origin must never hear of it after a restart.
    cache::EntryDraft d = draft("http://example.com/synth");
    d.headers.remove("etag");
    d.synthesize_etag = true;
    out.push_back(cache::build_entry(d));
  }
  return out;
}

snap::Header header_for(uint64_t count = 0) {
  snap::Header h;
  h.count = count;
  h.written_clock_ms = kT * 1000;
  h.written_wall_ms = kT * 1000;
  h.origin = "http://127.0.0.1:9000";
  return h;
}

// A whole file: header (with the right size and count) and the records.
std::string file_of(const std::vector<cache::EntryRef>& es, snap::Header h = header_for()) {
  std::string records;
  for (const auto& e : es) snap::append_record(records, *e);
  h.count = es.size();
  h.file_bytes = snap::encode_header(h).size() + records.size();
  return snap::encode_header(h) + records;
}

// The frame of a record, written out here as the format says (so the test pins it).
std::string framed(const std::string& payload, bool good_check = true) {
  std::string out(16, '\0');
  const auto len = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  uint32_t check = static_cast<uint32_t>(XXH3_64bits(out.data(), 4));
  if (!good_check) check ^= 1;
  for (int i = 0; i < 4; ++i) out[4 + i] = static_cast<char>((check >> (8 * i)) & 0xff);
  const uint64_t sum = XXH3_64bits(payload.data(), payload.size());
  for (int i = 0; i < 8; ++i) out[8 + i] = static_cast<char>((sum >> (8 * i)) & 0xff);
  return out + payload;
}

std::string file_of_records(const std::vector<std::string>& records, snap::Header h = header_for()) {
  std::string body;
  for (const auto& r : records) body += r;
  h.count = records.size();
  h.file_bytes = snap::encode_header(h).size() + body.size();
  return snap::encode_header(h) + body;
}

struct ReadAll {
  std::string open_error;
  std::string error;  // Result::Error's message
  std::vector<cache::EntryRef> entries;
  std::vector<snap::Skip> skipped;
};

ReadAll read_all(std::string_view file) {
  ReadAll r;
  snap::Reader reader(file);
  r.open_error = reader.open();
  if (!r.open_error.empty()) return r;
  cache::EntryDraft d;
  for (;;) {
    auto res = reader.next(d);
    if (res == snap::Reader::Result::End) break;
    if (res == snap::Reader::Result::Error) {
      r.error = reader.error();
      break;
    }
    if (res == snap::Reader::Result::Skipped)
      r.skipped.push_back(reader.skip_reason());
    else
      r.entries.push_back(cache::build_entry(d));
  }
  return r;
}

void check_same(const cache::Entry& a, const cache::Entry& b) {
  CHECK(a.primary_key() == b.primary_key());
  CHECK(a.variant_key() == b.variant_key());
  CHECK(a.vary() == b.vary());
  CHECK(a.tag_list() == b.tag_list());
  CHECK(a.route() == b.route());
  CHECK(a.head_block() == b.head_block());
  CHECK(a.body() == b.body());
  CHECK(a.status() == b.status());
  CHECK(a.etag() == b.etag());
  CHECK(a.last_modified() == b.last_modified());
  CHECK(a.date() == b.date());
  CHECK(a.may_serve_to_authorized() == b.may_serve_to_authorized());
  CHECK(a.etag_synthesized() == b.etag_synthesized());
  CHECK(a.withheld_block() == b.withheld_block());
  CHECK(a.charge() == b.charge());
  const cache::Freshness f = a.freshness(), g = b.freshness();
  CHECK(f.request_time == g.request_time);
  CHECK(f.response_time == g.response_time);
  CHECK(f.corrected_initial_age == g.corrected_initial_age);
  CHECK(f.lifetime == g.lifetime);
  CHECK(f.stale_while_revalidate == g.stale_while_revalidate);
  CHECK(f.stale_if_error == g.stale_if_error);
  CHECK(f.keep == g.keep);
  CHECK(f.stale_on_disconnect == g.stale_on_disconnect);
  CHECK(f.heuristic == g.heuristic);
  CHECK(f.no_cache == g.no_cache);
  CHECK(f.must_revalidate == g.must_revalidate);
}

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A payload written field by field (cache/snapshot.h), to make malformed ones.
struct Payload {
  uint16_t status = 200;
  uint8_t fflags = 0, flags = 0;
  std::string key = "http://example.com/m", fields = "Cache-Control: max-age=100\r\n", body = "b", route, withheld;
  std::string tail;  // bytes after the last string

  std::string bytes() const {
    std::string out(16, '\0');  // two i64 times: 0
    for (int i = 0; i < 6; ++i) put_u32(out, i == 1 ? 100 : 0);
    out.push_back(static_cast<char>(fflags));
    out.push_back(static_cast<char>(flags));
    out.push_back(static_cast<char>(status & 0xff));
    out.push_back(static_cast<char>(status >> 8));
    for (const std::string* s : {&key, &empty, &empty, &empty, &route, &fields, &withheld, &body}) {
      put_u32(out, static_cast<uint32_t>(s->size()));
      out += *s;
    }
    return out + tail;
  }
  static inline const std::string empty;
};

}  // namespace

TEST_CASE("snapshot: entries round-trip through the file, rebuilt by build_entry", "[snapshot]") {
  const auto entries = sample_entries();
  const std::string file = file_of(entries);
  const ReadAll r = read_all(file);
  REQUIRE(r.open_error.empty());
  REQUIRE(r.error.empty());
  CHECK(r.skipped.empty());
  REQUIRE(r.entries.size() == entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    DYNAMIC_SECTION("entry " << i << " " << entries[i]->primary_key().substr(0, 40)) { check_same(*entries[i], *r.entries[i]); }
  }
  SECTION("the header comes back as written") {
    snap::Reader reader(file);
    REQUIRE(reader.open().empty());
    CHECK(reader.header().version == snap::kVersion);
    CHECK(reader.header().count == entries.size());
    CHECK(reader.header().file_bytes == file.size());
    CHECK(reader.header().written_clock_ms == kT * 1000);
    CHECK(reader.header().origin == "http://127.0.0.1:9000");
  }
  SECTION("withheld fields and synthesized ETags stay what they were") {
    const cache::Entry& cdn = *r.entries[entries.size() - 2];
    CHECK(cdn.withheld_block() == "CDN-Cache-Control: max-age=600\r\n");
    CHECK(cdn.head_block().find("CDN-Cache-Control") == std::string_view::npos);
    CHECK(cdn.fields().get("cdn-cache-control") == "max-age=600");
    CHECK(cdn.freshness().stale_on_disconnect == core::Seconds(10));
    const cache::Entry& synth = *r.entries.back();
    CHECK(synth.etag_synthesized());
    CHECK(synth.origin_etag().empty());
    CHECK(synth.etag() == entries.back()->etag());
  }
  SECTION("route generations are not kept: the loader sets the current one") {
    CHECK(entries[1]->route_generation() == 7);
    CHECK(r.entries[1]->route_generation() == 0);
  }
  SECTION("an empty store makes a file with no records") {
    const ReadAll none = read_all(file_of({}));
    CHECK(none.open_error.empty());
    CHECK(none.error.empty());
    CHECK(none.entries.empty());
  }
}

TEST_CASE("snapshot: a foreign, damaged or truncated header refuses the file", "[snapshot]") {
  const std::string good = file_of(sample_entries());
  auto with = [&](std::size_t at, char c) {
    std::string f = good;
    f[at] = c;
    return f;
  };
  snap::Header v1 = header_for();
  v1.version = 1;
  struct Row {
    const char* name;
    std::string file;
    const char* want;  // substring of the error
  };
  const std::vector<Row> rows = {
      {"empty file", "", "empty file"},
      {"another format", "GIF89a\x01\x00\x01\x00\x80\x00\x00", "bad magic"},
      {"a text file", "path: /var/lib/cachalot/cache.snap\n", "bad magic"},
      {"magic only", "CACHSNAP", "truncated header"},
      {"another version", file_of({}, v1), "unsupported version 1 (this build reads version 2)"},
      {"a flipped byte in the counts", with(26, good[26] ^ 0x10), "checksum mismatch"},
      {"a flipped byte in the origin", with(snap::kHeaderFixedBytes + 3, 'X'), "checksum mismatch"},
      {"a bad header length", with(12, good[12] ^ 1), "bad length"},
      {"cut inside the header", good.substr(0, 40), "truncated header"},
      {"cut inside the records", good.substr(0, good.size() - 10), "truncated"},
      {"cut at a record boundary", file_of(sample_entries()).substr(0, snap::encode_header(header_for()).size() + 16),
       "truncated"},
      {"bytes appended", good + "x", "extended"},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      snap::Reader reader{std::string_view(r.file)};
      const std::string err = reader.open();
      CHECK_THAT(err, Catch::Contains(r.want));
    }
  }
}

TEST_CASE("snapshot: damage inside a record skips that record or refuses the file", "[snapshot]") {
  const auto entries = sample_entries();
  std::vector<std::string> records;
  for (const auto& e : entries) records.push_back(framed(snap::encode_payload(*e)));
  const std::size_t header = snap::encode_header(header_for()).size();
  const std::size_t second = header + records[0].size();  // offset of record 2
  const std::string good = file_of_records(records);
  REQUIRE(good == file_of(entries));  // framed() matches append_record()

  auto flipped = [&](std::size_t at) {
    std::string f = good;
    f[at] = static_cast<char>(f[at] ^ 0x01);
    return f;
  };
  struct Row {
    const char* name;
    std::string file;
    std::size_t want_entries;
    std::vector<snap::Skip> want_skipped;
    const char* want_error;  // "" = read to the end
  };
  using S = snap::Skip;
  const std::vector<Row> rows = {
      {"intact", good, entries.size(), {}, ""},
      {"a byte of record 2's body: record 2 skipped", flipped(second + records[1].size() - 3), entries.size() - 1,
       {S::Corrupt}, ""},
      {"a byte of record 2's key: record 2 skipped", flipped(second + 16 + 40 + 4), entries.size() - 1, {S::Corrupt},
       ""},
      {"record 2's checksum: record 2 skipped", flipped(second + 9), entries.size() - 1, {S::Corrupt}, ""},
      {"record 2's length: framing lost, file refused", flipped(second + 1), 1, {}, "corrupt record frame at record 2"},
      {"record 2's frame check: file refused", flipped(second + 5), 1, {}, "corrupt record frame at record 2"},
      {"the header says fewer records", [&] {
         snap::Header h = header_for();
         std::string body;
         for (const auto& r : records) body += r;
         h.count = 2;
         h.file_bytes = header + body.size();
         return snap::encode_header(h) + body;
       }(),
       2, {}, "bytes after the last of 2 records"},
      {"the header says more records", [&] {
         snap::Header h = header_for();
         std::string body;
         for (const auto& r : records) body += r;
         h.count = records.size() + 1;
         h.file_bytes = header + body.size();
         return snap::encode_header(h) + body;
       }(),
       entries.size(), {}, "truncated at record 9 of 9"},
      {"a length past the end", [&] {
         std::string r = framed(std::string(10, 'x'));
         r.resize(r.size() - 5);
         return file_of_records({records[0], r});
       }(),
       1, {}, "runs past the end"},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      const ReadAll got = read_all(r.file);
      REQUIRE(got.open_error.empty());
      CHECK(got.entries.size() == r.want_entries);
      CHECK(got.skipped == r.want_skipped);
      if (*r.want_error)
        CHECK_THAT(got.error, Catch::Contains(r.want_error));
      else
        CHECK(got.error.empty());
    }
  }
}

TEST_CASE("snapshot: a record that could not have been stored is skipped as malformed", "[snapshot]") {
  struct Row {
    const char* name;
    Payload p;
    bool ok;
  };
  auto with = [](auto f) {
    Payload p;
    f(p);
    return p;
  };
  const std::vector<Row> rows = {
      {"a plain record", Payload{}, true},
      {"no fields at all", with([](Payload& p) { p.fields = ""; }), true},
      {"status 42", with([](Payload& p) { p.status = 42; }), false},
      {"status 1000", with([](Payload& p) { p.status = 1000; }), false},
      {"unknown freshness flags", with([](Payload& p) { p.fflags = 8; }), false},
      {"unknown entry flags", with([](Payload& p) { p.flags = 4; }), false},
      {"a synthesized ETag", with([](Payload& p) {
         p.flags = 2;
         p.fields += "ETag: \"abc\"\r\n";
       }),
       true},
      {"withheld fields (RFC 9213 §3)", with([](Payload& p) { p.withheld = "CDN-Cache-Control: max-age=60\r\n"; }), true},
      {"a withheld line without CRLF", with([](Payload& p) { p.withheld = "CDN-Cache-Control: max-age=60"; }), false},
      {"not a key", with([](Payload& p) { p.key = "/just/a/path"; }), false},
      {"a CR in the key", with([](Payload& p) { p.key = "http://h/a\r"; }), false},
      {"a stored Content-Length (the head adds its own)", with([](Payload& p) { p.fields = "Content-Length: 9\r\n"; }),
       false},
      {"a stored Transfer-Encoding", with([](Payload& p) { p.fields = "transfer-encoding: chunked\r\n"; }), false},
      {"a field line without CRLF", with([](Payload& p) { p.fields = "X-A: 1"; }), false},
      {"a field line without a colon", with([](Payload& p) { p.fields = "X-A 1\r\n"; }), false},
      {"a bare LF inside a value (response splitting)", with([](Payload& p) { p.fields = "X-A: 1\nX-B: 2\r\n"; }),
       false},
      {"a space in a field name", with([](Payload& p) { p.fields = "X A: 1\r\n"; }), false},
      {"a CR in the route name", with([](Payload& p) { p.route = "a\rb"; }), false},
      {"bytes after the last string", with([](Payload& p) { p.tail = "z"; }), false},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      const std::string payload = r.p.bytes();
      cache::EntryDraft d;
      CHECK(snap::decode_payload(payload, d) == r.ok);
      const ReadAll got = read_all(file_of_records({framed(payload)}));
      CHECK(got.error.empty());
      if (r.ok) {
        REQUIRE(got.entries.size() == 1);
        CHECK(got.entries[0]->primary_key() == r.p.key);
      } else {
        CHECK(got.skipped == std::vector<snap::Skip>{snap::Skip::Malformed});
      }
    }
  }
  SECTION("a payload cut short at every length is malformed, never a crash") {
    const std::string payload = snap::encode_payload(*sample_entries()[1]);
    for (std::size_t n = 0; n < payload.size(); ++n) {
      cache::EntryDraft d;
      CHECK_FALSE(snap::decode_payload(std::string_view(payload).substr(0, n), d));
    }
  }
}

TEST_CASE("snapshot: ages keep growing while the daemon is down (RFC 9111 §4.2.3)", "[snapshot]") {
  // An entry stored at T (age 0, the writer's clock not moved yet); the file
  // written at T+50 s wall time, when the writer's clock may have been moved.
  struct Row {
    const char* name;
    int64_t writer_offset_ms;  // the writer's test clock offset at the write (moved after the store)
    int64_t down_ms;           // wall time between the write and the load
    int64_t loader_offset_ms;  // the loader's test clock offset
    int64_t want_down_ms;
    int64_t want_age;  // seconds, at the load
  };
  const std::vector<Row> rows = {
      {"no test clock, down 30 s", 0, 30'000, 0, 30'000, 80},
      {"no test clock, restarted at once", 0, 0, 0, 0, 50},
      {"the writer's test clock had moved 1000 s: that time counts", 1'000'000, 30'000, 0, 30'000, 1080},
      {"the loader's clock offset does not age what it loads", 0, 30'000, 1'000'000, 30'000, 80},
      {"the wall clock went back 1 h: ages stay, never shrink", 0, -3'600'000, 0, 0, 50},
  };
  for (const Row& r : rows) {
    DYNAMIC_SECTION(r.name) {
      // Wall clock: T+50 s at the write. Process clocks add their offsets.
      const int64_t write_wall = (kT + 50) * 1000;
      cache::EntryDraft d = draft("http://example.com/a");
      d.freshness.request_time = at(0);
      d.freshness.response_time = d.freshness.request_time;
      snap::Header h = header_for();
      h.written_wall_ms = write_wall;
      h.written_clock_ms = write_wall + r.writer_offset_ms;
      const auto wall_load = core::TimePoint(core::Duration(write_wall + r.down_ms));
      const auto clock_load = wall_load + core::Duration(r.loader_offset_ms);
      CHECK(snap::downtime(h, wall_load).count() == r.want_down_ms);
      const cache::Freshness f = snap::shifted(d.freshness, snap::load_shift(h, clock_load, wall_load));
      CHECK(f.current_age(clock_load).count() == r.want_age);
      CHECK(f.response_time - f.request_time == d.freshness.response_time - d.freshness.request_time);
    }
  }
}

TEST_CASE("store: entries() lists every stored entry; shard_index() is where publish puts a key", "[snapshot][store]") {
  cache::Store store(cache::StoreOptions{1 << 20, 8, 4, cache::EvictionPolicy::Sieve});
  std::vector<std::string> keys;
  for (int i = 10; i < 60; ++i) {  // keys of one length: entries of one charge
    keys.push_back("http://example.com/" + std::to_string(i));
    store.publish(cache::build_entry(draft(keys.back())));
  }
  auto all = store.entries();
  CHECK(all.size() == 50);
  std::set<std::string> seen;
  for (const auto& e : all) seen.emplace(e->primary_key());
  CHECK(seen.size() == 50);
  std::set<unsigned> shards;
  for (const auto& k : keys) {
    const unsigned s = store.shard_index(k);
    CHECK(s < store.shard_count());
    shards.insert(s);
  }
  CHECK(shards.size() > 1);
  // A budget of one shard's bytes: the keys of one shard fill it, others are unaffected.
  cache::Store tight(cache::StoreOptions{8 * 2 * all[0]->charge(), 8, 4, cache::EvictionPolicy::Sieve});
  std::vector<std::string> same_shard;
  for (const auto& k : keys)
    if (tight.shard_index(k) == tight.shard_index(keys[0])) same_shard.push_back(k);
  REQUIRE(same_shard.size() >= 3);
  for (const auto& k : same_shard) tight.publish(cache::build_entry(draft(k)));
  CHECK(tight.stats().objects == 2);  // two fit in the shard: its own budget evicted the rest
  CHECK(tight.stats().evictions == same_shard.size() - 2);
}
