// Prometheus metrics of this node's migrations (see metrics.hpp).
#include "migration/metrics.hpp"

#include <sstream>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "common/names.hpp"

namespace migrated::migration {
namespace {

// Downtime buckets (seconds): from a post-copy's fraction of a second to a
// cold move of gigabytes over a slow link.
const prometheus::Histogram::BucketBoundaries downtime_buckets{0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1,
                                                                 1.5,  2,   3,   5,   10,  30,   60};

constexpr pb::Result finished_results[] = {pb::RESULT_OK, pb::RESULT_FAILED, pb::RESULT_ROLLED_BACK};
constexpr std::string_view roles[] = {"source", "destination"};

std::string role_of(bool as_source) { return std::string(as_source ? roles[0] : roles[1]); }

}  // namespace

metrics::metrics(std::string_view version) : registry_(std::make_shared<prometheus::Registry>()) {
  migrations_ = &prometheus::BuildCounter()
                     .Name("migrated_migrations_total")
                     .Help("Migrations this node took part in, finished, by the method that ran, result and role")
                     .Register(*registry_);
  downtime_ = &prometheus::BuildHistogram()
                   .Name("migrated_downtime_seconds")
                   .Help("How long the service stood still, by method (migrations this node was the source of)")
                   .Register(*registry_);
  in_progress_ = &prometheus::BuildGauge()
                      .Name("migrated_migrations_in_progress")
                      .Help("Migrations running on this node, as source or destination")
                      .Register(*registry_)
                      .Add({});
  bytes_sent_ = &prometheus::BuildCounter()
                     .Name("migrated_bytes_sent_total")
                     .Help("Bytes this node sent on the wire as the source of migrations")
                     .Register(*registry_)
                     .Add({});
  rollbacks_ = &prometheus::BuildCounter()
                    .Name("migrated_rollbacks_total")
                    .Help("Migrations this node was the source of that ended rolled back")
                    .Register(*registry_)
                    .Add({});
  prometheus::BuildGauge()
      .Name("migrated_build_info")
      .Help("The version of migrated running, as a label")
      .Register(*registry_)
      .Add({{"version", std::string(version)}})
      .Set(1);
  for (const auto& method : method_names()) {
    if (method == "auto") continue;  // a report names the method auto chose
    downtime_->Add({{"method", method}}, downtime_buckets);
    for (auto result : finished_results)
      for (auto role : roles)
        migrations_->Add({{"method", method}, {"result", std::string(result_name(result))}, {"role", std::string(role)}});
  }
}

metrics::~metrics() = default;

void metrics::running(std::size_t n) { in_progress_->Set(static_cast<double>(n)); }

void metrics::finished(const pb::Report& r, bool as_source) {
  const std::string method(method_name(r.method()));
  migrations_->Add({{"method", method}, {"result", std::string(result_name(r.result()))}, {"role", role_of(as_source)}})
      .Increment();
  if (!as_source) return;
  if (r.downtime_ms() > 0) downtime_->Add({{"method", method}}, downtime_buckets).Observe(r.downtime_ms() / 1000.0);
  bytes_sent_->Increment(static_cast<double>(r.bytes_wire() + r.bytes_postcopy() + r.bytes_engine_image()));
  if (r.result() == pb::RESULT_ROLLED_BACK) rollbacks_->Increment();
}

std::string metrics::text() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace migrated::migration
