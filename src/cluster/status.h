// BusStatus: what GET /cluster reports (a copy, taken under the bus's status
// lock). A plain struct so admin/ needs neither Asio's bus nor hiredis.
#pragma once

#include <cstdint>
#include <string>

namespace cachalot::cluster {

struct BusStatus {
  bool connected = false;    // both connections up and the reader past its resume check
  std::string node;          // cluster.node
  std::string incarnation;   // this process' random id in events
  std::string stream;        // cluster.stream
  std::string redis;         // cluster.redis, password redacted
  std::string last_id;       // the last stream entry read (or the start point before the first)
  uint64_t last_seq = 0;     // the last sequence number this node assigned
  uint64_t queued = 0;       // local events waiting for Redis
  uint64_t published = 0, applied = 0, own = 0, duplicates = 0, invalid = 0, dropped = 0;
  uint64_t reconnects = 0, resyncs = 0;
  double lag_last_seconds = 0;
  std::string last_error;    // the last fault ("" if none yet)
  int64_t last_error_ms = 0; // when (ms since the epoch)
  int64_t since_ms = 0;      // when the current state (connected or not) began
};

}  // namespace cachalot::cluster
