#include "cluster/event.h"

#include <algorithm>
#include <charconv>
#include <random>

namespace cachalot::cluster {

namespace {

template <class T>
std::optional<T> parse_number(std::string_view s) {
  T n{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return n;
}

constexpr std::pair<std::string_view, cache::Purge::Kind> kKinds[] = {
    {"url", cache::Purge::Kind::Url},     {"prefix", cache::Purge::Kind::Prefix}, {"tag", cache::Purge::Kind::Tag},
    {"all", cache::Purge::Kind::All},     {"route", cache::Purge::Kind::Route},
    {"partition", cache::Purge::Kind::Partition},
};
constexpr std::string_view kHello = "hello";

}  // namespace

std::optional<StreamId> StreamId::parse(std::string_view text) {
  size_t dash = text.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto ms = parse_number<uint64_t>(text.substr(0, dash));
  auto seq = parse_number<uint64_t>(text.substr(dash + 1));
  if (!ms || !seq) return std::nullopt;
  return StreamId{*ms, *seq};
}

std::string StreamId::to_string() const { return std::to_string(ms) + "-" + std::to_string(seq); }

std::vector<std::pair<std::string_view, std::string>> encode(const Event& e) {
  const bool hello = e.kind == Event::Kind::Hello;
  std::string_view kind = hello ? kHello : cache::to_string(e.purge.kind);
  return {
      {"v", std::to_string(kEventVersion)},
      {"node", e.node},
      {"inc", e.incarnation},
      {"seq", std::to_string(e.seq)},
      {"kind", std::string(kind)},
      {"host", hello ? std::string() : e.purge.host.value_or("")},
      {"value", hello ? std::string() : e.purge.value},
      {"soft", !hello && e.purge.soft ? "1" : "0"},
      {"ts", std::to_string(e.time_ms)},
  };
}

Decoded decode(std::span<const std::pair<std::string_view, std::string_view>> fields) {
  auto field = [&](std::string_view name) -> std::optional<std::string_view> {
    for (const auto& [k, v] : fields)
      if (k == name) return v;
    return std::nullopt;
  };
  Decoded out;
  auto version = field("v");
  if (!version) return {std::nullopt, "no version field"};
  if (version != std::to_string(kEventVersion))
    return {std::nullopt, "version " + std::string(*version) + " (this node reads version " +
                              std::to_string(kEventVersion) + ")"};
  auto node = field("node"), inc = field("inc"), seq = field("seq"), kind = field("kind"), ts = field("ts");
  if (!node || node->empty() || !inc || inc->empty() || !seq || !kind || !ts)
    return {std::nullopt, "missing node, inc, seq, kind or ts"};
  Event e;
  e.node = *node;
  e.incarnation = *inc;
  auto seq_n = parse_number<uint64_t>(*seq);
  auto ts_n = parse_number<int64_t>(*ts);
  if (!seq_n || !ts_n) return {std::nullopt, "seq or ts is not a number"};
  e.seq = *seq_n;
  e.time_ms = *ts_n;
  if (*kind == kHello) {
    e.kind = Event::Kind::Hello;
    out.event = std::move(e);
    return out;
  }
  auto k = std::find_if(std::begin(kKinds), std::end(kKinds), [&](const auto& p) { return p.first == *kind; });
  if (k == std::end(kKinds)) return {std::nullopt, "unknown kind '" + std::string(*kind) + "'"};
  e.purge.kind = k->second;
  auto value = field("value"), host = field("host"), soft = field("soft");
  if (!value || !soft || (*soft != "0" && *soft != "1")) return {std::nullopt, "missing value, or soft not 0 or 1"};
  e.purge.value = *value;
  e.purge.soft = *soft == "1";
  if (host && !host->empty()) e.purge.host = std::string(*host);
  bool needs_value = e.purge.kind != cache::Purge::Kind::All;
  if (needs_value && e.purge.value.empty()) return {std::nullopt, "empty value for kind " + std::string(*kind)};
  out.event = std::move(e);
  return out;
}

std::string new_incarnation() {
  std::random_device rd;
  uint64_t v = (uint64_t(rd()) << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

SenderTracker::Verdict SenderTracker::see(const Event& e) {
  ++tick_;
  auto it = std::find_if(senders_.begin(), senders_.end(),
                         [&](const Sender& s) { return s.node == e.node && s.incarnation == e.incarnation; });
  if (it == senders_.end()) {
    if (senders_.size() >= kMaxSenders)
      senders_.erase(std::min_element(senders_.begin(), senders_.end(),
                                      [](const Sender& a, const Sender& b) { return a.used < b.used; }));
    senders_.push_back({e.node, e.incarnation, e.seq, tick_});
    return Verdict::First;
  }
  it->used = tick_;
  // A hello repeats the last number; an invalidation takes the next one.
  const uint64_t expected = e.kind == Event::Kind::Hello ? it->last : it->last + 1;
  if (e.seq < expected) return Verdict::Duplicate;
  const bool gap = e.seq > expected;
  it->last = e.seq;
  return gap ? Verdict::Gap : Verdict::Next;
}

ResumePlan plan_resume(StreamId last, bool read_before, const std::optional<StreamInfo>& info) {
  // No stream: everything that appears in it from now on is new to this node.
  if (!info) return {StreamId{}, false};
  const bool none_removed = info->entries_added && *info->entries_added == info->length;
  if (info->last_generated < last) {
    // Nothing was added since this node started.
    if (!read_before) return {last, false};
    // Older than what this node read: the stream was deleted and made again,
    // or is served by a Redis whose clock is behind. None of it was read.
    return {StreamId{}, !none_removed && info->length > 0};
  }
  // Trimming removes the oldest entries first: if the first one left is after
  // `last`, the entries between them may have been removed unread.
  const bool gone_past_last = info->length == 0 ? info->last_generated > last : info->first_entry > last;
  return {last, gone_past_last && !none_removed};
}

config::Duration next_backoff(config::Duration current, const config::ClusterConfig& cfg) {
  if (current.count() == 0) return cfg.backoff_min;
  return std::min(cfg.backoff_max, std::max(cfg.backoff_min, current * 2));
}

}  // namespace cachalot::cluster
