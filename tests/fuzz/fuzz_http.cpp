// The HTTP endpoint as a client meets it (server/http_server): any bytes as
// a connection's stream, parsed by Beast with the server's own limits in
// pieces whose sizes the input's first byte chooses, and every request that
// parses answered by the server over a node's registry, history on disk
// and metrics holding a few reports (one whose error is not UTF-8).
// Invariants: the answer is 200, 400, 404 or 405; a method other than GET
// is never served; a JSON answer parses; a report served by id is that
// report; /metrics is Prometheus' text. Nothing throws.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "fuzz_support.hpp"
#include "server/http_server.hpp"

using namespace migrated;
namespace http = boost::beast::http;

namespace {

pb::Report report(const std::string& id, pb::Result result, const std::string& error = {}) {
  pb::Report r;
  r.set_id(id);
  r.set_container("web-1");
  r.set_source("edge-a");
  r.set_destination("edge-b");
  r.set_method(pb::HYBRID);
  r.set_result(result);
  r.set_error(error);
  r.set_downtime_ms(123.456);
  return r;
}

struct node {
  asio::io_context io;
  migration::history past{fuzz::scratch("http") / "history"};
  migration::metrics counted{"0.0.0-fuzz"};
  migration::registry reg{"edge-a"};
  server::http_server server{"edge-a", reg, counted, tcp::acceptor(io), 4};
  node() {
    if (!past.open()) fuzz::broken("history opens");
    reg.keep_history(&past);
    reg.count_in(&counted);
    (void)past.add(report("m-000000000001", pb::RESULT_OK), 1'700'000'000'000);
    reg.add(report("m-000000000002", pb::RESULT_RUNNING));
    reg.add(report("m-000000000003", pb::RESULT_RUNNING));
    reg.finish(report("m-000000000003", pb::RESULT_FAILED, "restore: \xff\xfe not UTF-8"));
  }
};

void check(const server::http_server& s, std::string_view method, std::string_view target) {
  const auto a = s.answer(method, target);
  FUZZ_CHECK(a.status == 200 || a.status == 400 || a.status == 404 || a.status == 405, std::to_string(a.status));
  if (method != "GET") FUZZ_CHECK(a.status == 404 || a.status == 405, "a write was served");
  if (a.content_type == "application/json") {
    const auto j = nlohmann::json::parse(a.body, nullptr, false);
    FUZZ_CHECK(!j.is_discarded(), "a JSON answer does not parse");
    const std::string_view prefix = "/v1/migrations/";
    const auto path = target.substr(0, target.find('?'));
    if (a.status == 200 && path.starts_with(prefix))
      FUZZ_CHECK(j.value("id", "") == path.substr(prefix.size()), "another report than the one asked for");
  } else if (a.status == 200 && target.starts_with("/metrics")) {
    FUZZ_CHECK(a.body.find("migrated_build_info{version=\"0.0.0-fuzz\"} 1") != std::string::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static node n;
  if (size == 0) return 0;
  const std::size_t piece = 1 + data[0] % 64;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  boost::beast::flat_buffer buffer;
  auto fresh = [] {
    auto p = std::make_unique<http::request_parser<http::empty_body>>();
    p->header_limit(server::http_server::header_limit);
    return p;
  };
  auto parser = fresh();
  for (;;) {
    if (buffer.size() > 0) {
      boost::system::error_code ec;
      buffer.consume(parser->put(buffer.data(), ec));
      if (ec && ec != http::error::need_more) break;  // the server closes the connection here
      if (!ec && parser->is_done()) {
        const auto& req = parser->get();
        check(n.server, std::string_view(req.method_string().data(), req.method_string().size()),
              std::string_view(req.target().data(), req.target().size()));
        parser = fresh();  // keep-alive: the next request
        continue;
      }
    }
    if (rest.empty()) break;
    const auto now = rest.substr(0, piece);
    rest.remove_prefix(now.size());
    auto space = buffer.prepare(now.size());
    std::memcpy(space.data(), now.data(), now.size());
    buffer.commit(now.size());
  }
  return 0;
}
