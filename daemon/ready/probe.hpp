// Readiness probes. A restored process is running long before its service
// answers: it may still be re-binding sockets or warming caches, and a
// migration that commits (and frees the source) on "process exists" can
// trade a working container for a silent one. So the destination declares a
// container Ready only when a probe declared on the container itself —
// migrated.ready.* labels, read like Docker labels or OCI annotations —
// succeeds: a TCP connect, an HTTP GET answered 2xx/3xx, or a command run
// inside the container exiting 0. Probes are retried every `interval` within
// one overall `timeout`; every attempt has its own deadline, so a peer that
// accepts and then says nothing costs one attempt, not the whole budget.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "asio.hpp"
#include "common/error.hpp"

namespace migrated::ready {

struct probe {
  enum class kind { none, tcp, http, exec };
  kind type = kind::none;
  std::string host = "127.0.0.1";   // tcp/http: where to connect (the destination host's published port)
  std::uint16_t port = 0;
  std::string path = "/";            // http: GET target
  std::vector<std::string> command;  // exec: argv run inside the container
  std::chrono::milliseconds timeout{30000};   // overall deadline
  std::chrono::milliseconds interval{100};    // between attempts
  // "tcp 127.0.0.1:8080", "http GET 127.0.0.1:8080/health", "exec sh -c 'test -f /ready'"
  std::string describe() const;
};

// The longest a single attempt may take; a slower answer counts as a failure.
constexpr std::chrono::milliseconds max_attempt = std::chrono::seconds(2);

// Reads a probe from a container's labels (Docker labels or OCI annotations):
//   migrated.ready.tcp  = "PORT" or "HOST:PORT"
//   migrated.ready.http = "PORT[/path]" or "HOST:PORT[/path]"   (path defaults to "/")
//   migrated.ready.exec = a shell command line, run as {"sh","-c",value}
//   migrated.ready.timeout_ms, migrated.ready.interval_ms = positive integers
// No migrated.ready.* label → kind::none. Two kinds at once, an empty value,
// a port outside 1..65535, a non-number, an unknown migrated.ready.* key, or
// a timeout/interval without a probe → errc::invalid_argument naming the
// label and its value.
result<probe> from_labels(const std::map<std::string, std::string>& labels);

// Runs argv inside the container and returns its exit code (provided by the
// runtime backend). An exec that outlives an attempt's deadline is abandoned,
// not killed: the backend should bound its own children.
using exec_fn = std::function<awaitable<result<int>>(const std::vector<std::string>& argv)>;

// Attempts the probe every `interval` until one succeeds (tcp: the connect
// succeeds; http: an HTTP/1.1 GET is answered with status 2xx or 3xx; exec:
// exit code 0) and returns the milliseconds waited. Each attempt has its own
// deadline, min(remaining, max_attempt). When the overall deadline passes:
// errc::timeout, "<describe()> did not answer within N ms: <last failure>"
// (e.g. "connection refused", "HTTP 503", "exit 1"). kind::none returns 0 at
// once; exec without an exec_fn is errc::unsupported.
awaitable<result<double>> wait_ready(const probe& p, const exec_fn& exec);

}  // namespace migrated::ready
