// Control: what the admin API needs from the running proxy.
//
// admin/ and proxy/ never include each other: main wires the proxy's App to
// this interface (src/main.cpp). Every method may be called from the admin
// thread while the workers serve requests.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/entry.h"
#include "cache/purge.h"
#include "cluster/status.h"
#include "config/config.h"
#include "core/clock.h"

namespace cachalot::admin {

struct Inspection {
  std::string key;  // the primary key the path maps to (for the first host that has it)
  std::vector<cache::EntryRef> variants;
};

class Control {
 public:
  virtual ~Control() = default;
  virtual std::shared_ptr<const config::Config> config() const = 0;
  virtual bool draining() const = 0;
  // Prometheus text exposition.
  virtual std::string metrics_text() const = 0;
  // Re-reads the config file: "" when applied, else the errors (the running config is kept).
  virtual std::string reload() = 0;
  // Applies one invalidation (counted in cachalot_purges_total).
  virtual cache::PurgeOutcome purge(const cache::Purge& p) = 0;
  // The stored variants of a URL (origin-form path and query) on `host`, or
  // on the first host with entries when nullopt.
  virtual Inspection inspect(std::string_view target, const std::optional<std::string>& host) const = 0;
  // What the invalidation bus is doing; nullopt without a cluster: section.
  virtual std::optional<cluster::BusStatus> cluster() const = 0;
};

}  // namespace cachalot::admin
