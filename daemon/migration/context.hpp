// What a migration session needs from its node: configuration, credentials
// and TLS context, identity, the thread pool, the runtimes, the registry of migrations and
// the queue of migrations waiting for a slot.
// Built once in main and passed by reference; sessions own nothing of it.
#pragma once

#include "asio.hpp"
#include "common/credentials.hpp"
#include "common/config.hpp"
#include "migration/admission.hpp"
#include "migration/registry.hpp"
#include "runtime/runtime.hpp"
#include "transport/handshake.hpp"

namespace migrated::migration {

struct node_context {
  const config& cfg;
  credentials creds;
  std::shared_ptr<transport::ssl::context> tls;
  transport::identity me;
  asio::thread_pool& pool;
  runtime::runtime_set& runtimes;
  registry& migrations;
  admission& slots;  // max_concurrent_migrations
};

}  // namespace migrated::migration
