// What /metrics says about this node's migrations, in Prometheus' text
// format (prometheus-cpp's registry and serializer). The registry of
// migrations (registry.hpp) counts each one as it finishes, so a scrape
// costs one serialisation and never a walk of the history:
//
//   migrated_migrations_total{method,result,role}  finished migrations
//   migrated_migrations_in_progress                 running, both roles
//   migrated_downtime_seconds{method}               histogram: how long the
//                                                   service stood still (the
//                                                   source's count: only it
//                                                   knows the downtime)
//   migrated_bytes_sent_total                       what this node sent as a
//                                                   source: images, rootfs,
//                                                   engine image, post-copy
//                                                   pages (compressed, on the
//                                                   wire)
//   migrated_rollbacks_total                        migrations this node
//                                                   rolled back as the source
//   migrated_build_info{version}                    1
//
// role is "source" or "destination"; method the one that ran (what `auto`
// chose); result ok, failed or rolled_back. Every combination starts at 0,
// so that rate() and increase() see the first migration.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "migrated.pb.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace migrated::migration {

class metrics {
 public:
  explicit metrics(std::string_view version);
  ~metrics();
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  void running(std::size_t n);
  // A finished migration; `as_source`: this node was its source.
  void finished(const pb::Report& r, bool as_source);
  // The exposition (text format 0.0.4).
  std::string text() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* migrations_;
  prometheus::Family<prometheus::Histogram>* downtime_;
  prometheus::Gauge* in_progress_;
  prometheus::Counter* bytes_sent_;
  prometheus::Counter* rollbacks_;
};

}  // namespace migrated::migration
