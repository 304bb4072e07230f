// What a migration session needs from its node: configuration, credentials
// and TLS context, identity, the thread pool, the runtimes, the registry of
// migrations, the queue of migrations waiting for a slot, the journal and
// the meeting place of page links.
// Built once in main and passed by reference; sessions own nothing of it.
#pragma once

#include "asio.hpp"
#include "common/credentials.hpp"
#include "common/config.hpp"
#include "migration/admission.hpp"
#include "migration/journal.hpp"
#include "migration/page_links.hpp"
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
  // What each migration did to a container, on disk (journal.hpp); none in
  // tests that play sessions without a storage directory.
  journal::store* journal = nullptr;
  // Where post-copy's page links meet their sessions (none: no post-copy).
  page_links* links = nullptr;
  // Where a restarted source's new channel meets the destination session
  // that lost the old one during post-copy (SessionResume).
  page_links* resumes = nullptr;
};

}  // namespace migrated::migration
