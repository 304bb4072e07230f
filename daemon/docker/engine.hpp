// A Docker Engine API client that talks HTTP/1.1 over the engine's unix
// socket with Boost.Beast — no docker CLI to shell out to, no libcurl.
//
// It is synchronous on purpose. A Docker call is blocking work like a child
// process: checkpoints and image loads take seconds to minutes. Callers run
// it on the thread pool (offload() in asio.hpp). A blocking client keeps each call a straight line of code and
// keeps the I/O thread free. Every call opens its own connection
// ("Connection: close"), so an engine object is immutable and may be shared
// between pool threads. Every wait has a deadline: the socket is
// non-blocking and each read or write polls until it (see engine.cpp for why
// not SO_RCVTIMEO).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <boost/beast/http/verb.hpp>
#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace migrated::docker {

using json = nlohmann::json;
namespace http = boost::beast::http;

class engine {
 public:
  // socket: e.g. /var/run/docker.sock. api_prefix: prepended to every target
  // ("/v1.41" — Docker 20.10's API; newer engines accept it).
  explicit engine(std::filesystem::path socket, std::string api_prefix = "/v1.41");

  const std::filesystem::path& socket() const { return socket_; }

  // One request with an optional JSON body (nullptr = no body). Returns the
  // parsed JSON answer, null when the body is empty, or a JSON string when
  // the body is not JSON (GET /_ping → "OK"). Errors read
  // "docker <METHOD> <target>: …": errc::runtime when the engine is
  // unreachable, errc::timeout when `timeout` (for the whole exchange)
  // passes, and for an answer other than 2xx or 304 ("already so")
  // errc::not_found (404),
  // already_exists (409), invalid_argument (400) or runtime, carrying the
  // engine's message and the status code.
  result<json> call(http::verb method, const std::string& target, const json& body = nullptr,
                    std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;

  // GETs target and hands the body to sink in pieces of at most 1 MiB as
  // they arrive. sink returns false to stop (→ errc::cancelled). Returns the
  // body's byte count. `idle_timeout` bounds each wait for bytes.
  result<std::uint64_t> download(const std::string& target,
                                 const std::function<bool(std::span<const std::uint8_t>)>& sink,
                                 std::chrono::milliseconds idle_timeout = std::chrono::seconds(60)) const;

  // A request whose body is streamed with Transfer-Encoding: chunked
  // (POST /images/load, PUT /containers/{id}/archive). Holds the
  // connection; destroying it unfinished abandons the request.
  class upload {
   public:
    upload(upload&&) noexcept;
    upload& operator=(upload&&) noexcept;
    ~upload();

    // Sends bytes as one HTTP chunk (an empty span sends nothing). If the
    // engine answered early with an error, that answer is the error.
    result<void> write(std::span<const std::uint8_t> bytes);

    // Ends the body and reads the answer: a single JSON document as is,
    // a stream of JSON objects (/images/load's {"stream": …} lines) as an
    // array, an empty body as null. An object carrying "error" makes the
    // answer an errc::runtime error with that text.
    result<json> finish();

   private:
    friend class engine;
    struct state;
    explicit upload(std::unique_ptr<state> s);
    std::unique_ptr<state> state_;
  };

  // Connects and sends the request header. `timeout` bounds each later write
  // and the wait for each piece of the answer.
  result<upload> begin_upload(http::verb method, const std::string& target, const std::string& content_type,
                              std::chrono::milliseconds timeout = std::chrono::seconds(300)) const;

 private:
  std::filesystem::path socket_;
  std::string api_prefix_;
};

// Percent-encodes a query parameter value ("migrated-test:1" →
// "migrated-test%3A1"); only RFC 3986 unreserved characters stay as they are.
std::string query_escape(std::string_view v);

}  // namespace migrated::docker
