// The metrics of migration/metrics: every series there before the first
// migration (at 0), a finished migration counted by method, result and
// role, its downtime in the right histogram bucket, bytes and rollbacks
// counted for the source only, and the registry keeping the in-progress
// gauge and the counters as migrations start and finish.
#include <string>

#include <catch2/catch.hpp>

#include "migration/metrics.hpp"
#include "migration/registry.hpp"

using namespace migrated;
using namespace migrated::migration;
using Catch::Matchers::Contains;

namespace {

pb::Report finished_report(const std::string& id, pb::Method method, pb::Result result, double downtime_ms) {
  pb::Report r;
  r.set_id(id);
  r.set_container("web-1");
  r.set_source("edge-a");
  r.set_destination("edge-b");
  r.set_method(method);
  r.set_result(result);
  r.set_downtime_ms(downtime_ms);
  r.set_bytes_wire(1000);
  r.set_bytes_postcopy(24);
  return r;
}

// The value of the series `line` starts with ("name{labels} "), or "" when
// the exposition has none.
std::string value_of(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return "";
  const auto start = at + 1 + series.size() + 1;
  return text.substr(start, text.find('\n', start) - start);
}

}  // namespace

TEST_CASE("metrics: every series exists before the first migration", "[metrics]") {
  metrics m("1.2.3");
  const auto text = m.text();
  CHECK(value_of(text, "migrated_build_info{version=\"1.2.3\"}") == "1");
  CHECK(value_of(text, "migrated_migrations_in_progress") == "0");
  CHECK(value_of(text, "migrated_migrations_total{method=\"cold\",result=\"ok\",role=\"source\"}") == "0");
  CHECK(value_of(text, "migrated_migrations_total{method=\"hybrid\",result=\"rolled_back\",role=\"destination\"}") ==
        "0");
  CHECK(value_of(text, "migrated_downtime_seconds_count{method=\"postcopy\"}") == "0");
  CHECK(value_of(text, "migrated_bytes_sent_total") == "0");
  CHECK(value_of(text, "migrated_rollbacks_total") == "0");
  CHECK_THAT(text, Contains("# TYPE migrated_downtime_seconds histogram"));
  CHECK_THAT(text, Contains("# TYPE migrated_migrations_total counter"));
  // auto is never what ran: no series names it.
  CHECK_THAT(text, !Contains("method=\"auto\""));
}

TEST_CASE("metrics: a finished migration is counted where it belongs", "[metrics]") {
  metrics m("x");
  m.finished(finished_report("m-1", pb::COLD, pb::RESULT_OK, 420), true);
  m.finished(finished_report("m-2", pb::PRECOPY, pb::RESULT_ROLLED_BACK, 150), true);
  m.finished(finished_report("m-3", pb::COLD, pb::RESULT_OK, 0), false);  // this node received it
  const auto text = m.text();
  CHECK(value_of(text, "migrated_migrations_total{method=\"cold\",result=\"ok\",role=\"source\"}") == "1");
  CHECK(value_of(text, "migrated_migrations_total{method=\"cold\",result=\"ok\",role=\"destination\"}") == "1");
  CHECK(value_of(text, "migrated_migrations_total{method=\"precopy\",result=\"rolled_back\",role=\"source\"}") == "1");
  CHECK(value_of(text, "migrated_migrations_total{method=\"precopy\",result=\"ok\",role=\"source\"}") == "0");
  // 0.42 s: above the 0.3 bucket, within 0.5.
  CHECK(value_of(text, "migrated_downtime_seconds_bucket{method=\"cold\",le=\"0.3\"}") == "0");
  CHECK(value_of(text, "migrated_downtime_seconds_bucket{method=\"cold\",le=\"0.5\"}") == "1");
  CHECK(value_of(text, "migrated_downtime_seconds_bucket{method=\"cold\",le=\"+Inf\"}") == "1");
  CHECK(value_of(text, "migrated_downtime_seconds_count{method=\"cold\"}") == "1");  // not the destination's
  CHECK(value_of(text, "migrated_downtime_seconds_sum{method=\"cold\"}") == "0.42");
  CHECK(value_of(text, "migrated_downtime_seconds_count{method=\"precopy\"}") == "1");
  // Two sources' 1000 + 24 bytes; the destination sent none of its own.
  CHECK(value_of(text, "migrated_bytes_sent_total") == "2048");
  CHECK(value_of(text, "migrated_rollbacks_total") == "1");
}

TEST_CASE("metrics: the registry counts what starts and finishes", "[metrics]") {
  metrics m("x");
  registry reg("edge-a");
  reg.count_in(&m);
  auto a = finished_report("m-a", pb::HYBRID, pb::RESULT_RUNNING, 0);
  auto b = finished_report("m-b", pb::COLD, pb::RESULT_RUNNING, 0);
  b.set_source("edge-c");  // edge-a is its destination
  reg.add(a);
  reg.add(b);
  CHECK(value_of(m.text(), "migrated_migrations_in_progress") == "2");
  a.set_result(pb::RESULT_OK);
  a.set_downtime_ms(90);
  reg.finish(a);
  reg.finish(a);  // a report finished twice is counted once
  auto text = m.text();
  CHECK(value_of(text, "migrated_migrations_in_progress") == "1");
  CHECK(value_of(text, "migrated_migrations_total{method=\"hybrid\",result=\"ok\",role=\"source\"}") == "1");
  CHECK(value_of(text, "migrated_downtime_seconds_bucket{method=\"hybrid\",le=\"0.1\"}") == "1");
  b.set_result(pb::RESULT_FAILED);
  reg.finish(b);
  text = m.text();
  CHECK(value_of(text, "migrated_migrations_in_progress") == "0");
  CHECK(value_of(text, "migrated_migrations_total{method=\"cold\",result=\"failed\",role=\"destination\"}") == "1");
  CHECK(value_of(text, "migrated_bytes_sent_total") == "1024");
}
