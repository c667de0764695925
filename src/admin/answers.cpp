#include "admin/answers.h"

#include "admin/redact.h"

namespace cachalot::admin {

std::string body_of(const core::Json& j) { return core::json_text(j) + "\n"; }

std::string error_body(std::string_view message) { return body_of({{"error", message}}); }

std::string purge_body(const cache::Purge& p, const cache::PurgeOutcome& out) {
  if (p.kind == cache::Purge::Kind::Route) return body_of({{"route", p.value}, {"generation", out.generation}});
  return body_of({{"purged", out.purged}, {"kind", cache::to_string(p.kind)}, {"soft", p.soft}});
}

std::string inspect_body(const Inspection& found, std::span<const std::string> hidden, core::TimePoint now) {
  core::Json variants = core::Json::array();
  for (const auto& ref : found.variants) {
    const auto& e = *ref;
    const auto f = e.freshness();
    variants.push_back({{"variant", redact_field_entries(e.variant_key(), hidden)},
                        {"status", e.status()},
                        {"age", f.current_age(now).count()},
                        {"ttl", f.ttl(now)},
                        {"lifetime", f.lifetime.count()},
                        {"heuristic", f.heuristic},
                        {"stale_while_revalidate", f.stale_while_revalidate.count()},
                        {"stale_if_error", f.stale_if_error.count()},
                        {"etag", e.etag()},
                        {"last_modified", e.last_modified()},
                        {"size", e.body().size()},
                        {"charge", e.charge()},
                        {"route", e.route()},
                        {"tags", e.tags()}});
  }
  return body_of({{"key", redact_primary_key(found.key, hidden)}, {"variants", std::move(variants)}});
}

std::string cluster_body(const std::optional<cluster::BusStatus>& st) {
  if (!st) return body_of({{"enabled", false}});
  return body_of({{"enabled", true},
                  {"connected", st->connected},
                  {"node", st->node},
                  {"incarnation", st->incarnation},
                  {"redis", st->redis},
                  {"stream", st->stream},
                  {"last_id", st->last_id},
                  {"last_seq", st->last_seq},
                  {"queued", st->queued},
                  {"published", st->published},
                  {"applied", st->applied},
                  {"own", st->own},
                  {"duplicates", st->duplicates},
                  {"invalid", st->invalid},
                  {"dropped", st->dropped},
                  {"reconnects", st->reconnects},
                  {"resyncs", st->resyncs},
                  {"lag_last_seconds", core::round_to(st->lag_last_seconds, 6)},
                  {"since_ms", st->since_ms},
                  {"last_error", st->last_error},
                  {"last_error_ms", st->last_error_ms}});
}

}  // namespace cachalot::admin
