// The read-only HTTP endpoint (config `http.listen`, off unless set): what
// an operator's tools read from a node without a certificate of the fleet.
//
//   GET /metrics             Prometheus' text format (migration/metrics.hpp)
//   GET /v1/migrations       {"node", "migrations": [report, ...]}: those
//                            running first, then the finished ones newest
//                            first, from memory and the history on disk;
//                            ?limit=N (1..1000, default 100)
//   GET /v1/migrations/<id>  one report; 404 when this node knows none
//   GET /healthz             200 "ok" while the node serves
//
// A report is the JSON `migratectl --json` prints (common/report_json.hpp).
// Every answer is made on the I/O thread from what is in memory; nothing
// here changes anything: another method is answered 405. Limits come before
// any parsing: at most http.connections at once (one more is closed at
// once), a request's header within 8 KiB and 5 s, no body, and a
// connection idle for 30 s is closed.
#pragma once

#include <cstddef>
#include <string>

#include "asio.hpp"
#include "migration/metrics.hpp"
#include "migration/registry.hpp"

namespace migrated::server {

// One answer of the endpoint: what the connection writes back.
struct http_answer {
  unsigned status = 200;
  std::string content_type;
  std::string body;
};

class http_server {
 public:
  // What a request may be: its header within this, no body.
  static constexpr std::size_t header_limit = 8 * 1024;

  http_server(std::string node, const migration::registry& registry, const migration::metrics& metrics,
              tcp::acceptor acceptor, std::size_t max_connections);

  awaitable<void> run();
  void stop();
  // The answer to `method` `target` (exposed for the tests).
  http_answer answer(std::string_view method, std::string_view target) const;

 private:
  awaitable<void> serve(tcp::socket socket);
  http_answer migrations(std::string_view query) const;
  http_answer migration(std::string_view id) const;

  std::string node_;
  const migration::registry& registry_;
  const migration::metrics& metrics_;
  tcp::acceptor acceptor_;
  std::size_t max_connections_;
  std::size_t open_ = 0;
};

}  // namespace migrated::server
