// Tree protocol over a channel (see bundle_sync.hpp and docs/protocol.md).
// Manifests are split into parts of about manifest_part_bytes so a large
// rootfs never makes an oversize frame.
#include "migration/bundle_sync.hpp"

#include <unordered_map>

#include "fs/tree.hpp"

namespace migrated::migration {
namespace {

constexpr std::size_t manifest_part_bytes = 1u << 20;   // well under wire::max_header_bytes
constexpr std::size_t max_manifest_entries = 2'000'000;  // a larger tree is a peer bug

awaitable<result<void>> send_manifest(transport::channel& ch, const std::vector<pb::TreeEntry>& entries,
                                      const std::string& tree) {
  pb::Envelope part;
  auto* m = part.mutable_tree_manifest();
  m->set_tree(tree);
  std::size_t bytes = 0;
  for (const auto& e : entries) {
    *m->add_entries() = e;
    bytes += e.ByteSizeLong() + 4;
    if (bytes >= manifest_part_bytes) {
      if (auto ok = co_await ch.send(part); !ok) co_return ok;
      m->clear_entries();
      bytes = 0;
    }
  }
  m->set_last(true);
  co_return co_await ch.send(part);
}

}  // namespace

awaitable<result<sync_stats>> send_tree(transport::channel& ch, const std::filesystem::path& root,
                                        const transport::send_options& opts, const std::string& tree) {
  auto entries = co_await offload(*opts.pool, [&] { return fs::scan(root); });
  if (!entries) co_return std::unexpected(entries.error().context("scan " + root.string()));
  if (auto ok = co_await send_manifest(ch, *entries, tree); !ok) co_return std::unexpected(ok.error());

  auto f = co_await ch.recv();
  if (!f) co_return std::unexpected(f.error().context("tree sync"));
  if (f->msg.has_reply()) co_return std::unexpected(transport::to_result(f->msg.reply()).error().context("destination"));
  if (f->msg.has_abort()) co_return std::unexpected(transport::aborted_by_peer(ch, f->msg.abort()));
  if (!f->msg.has_tree_wants()) co_return fail(errc::protocol, "tree sync: expected TreeWants");

  std::vector<transport::outgoing_file> files;
  for (auto index : f->msg.tree_wants().indices()) {
    if (index >= entries->size() || (*entries)[index].type() != pb::ENTRY_FILE)
      co_return fail(errc::protocol, "tree sync: destination wants entry " + std::to_string(index) + ", not a file");
    const auto& e = (*entries)[index];
    files.push_back({e.path(), root / e.path()});
  }
  auto st = co_await transport::send_files(ch, files, opts);
  if (!st) co_return std::unexpected(st.error().context("tree sync"));
  co_return sync_stats{std::uint32_t(entries->size()), *st};
}

namespace {

awaitable<result<std::vector<pb::TreeEntry>>> read_manifest(transport::channel& ch, const pb::TreeManifest& first) {
  std::vector<pb::TreeEntry> entries;
  pb::TreeManifest part = first;
  for (;;) {
    if (entries.size() + std::size_t(part.entries_size()) > max_manifest_entries)
      co_return fail(errc::protocol, "tree manifest exceeds " + std::to_string(max_manifest_entries) + " entries");
    for (auto& e : *part.mutable_entries()) entries.push_back(std::move(e));
    if (part.last()) co_return entries;
    auto f = co_await ch.recv();
    if (!f) co_return std::unexpected(f.error().context("tree manifest"));
    if (!f->msg.has_tree_manifest()) co_return fail(errc::protocol, "tree sync: manifest cut short");
    part = std::move(*f->msg.mutable_tree_manifest());
  }
}

}  // namespace

awaitable<result<sync_stats>> receive_tree(transport::channel& ch, const std::filesystem::path& root,
                                           const pb::TreeManifest& first, asio::thread_pool& pool) {
  auto entries = co_await read_manifest(ch, first);
  if (!entries) co_return std::unexpected(entries.error());
  auto plan = co_await offload(pool, [&] { return fs::plan(root, *entries); });
  if (!plan) {
    const result<void> refused = std::unexpected(plan.error());
    co_await ch.reply(0, refused);
    co_return std::unexpected(plan.error().context("tree sync into " + root.string()));
  }
  pb::Envelope wants;
  auto* w = wants.mutable_tree_wants();  // set even when nothing is wanted
  for (auto i : plan->wanted) w->add_indices(i);
  if (auto ok = co_await ch.send(wants); !ok) co_return std::unexpected(ok.error());

  std::unordered_map<std::string, std::uint32_t> by_name;
  for (auto i : plan->wanted) by_name.emplace((*entries)[i].path(), i);
  transport::receive_options opts;
  opts.pool = &pool;
  opts.on_file_done = [&](const std::string& name, const std::filesystem::path& file) -> result<void> {
    auto it = by_name.find(name);
    if (it == by_name.end()) return fail(errc::protocol, "tree sync: unrequested file " + name);
    return fs::finish_file(file, (*entries)[it->second]);
  };
  auto st = co_await transport::receive_files(ch, root, opts);
  if (!st) co_return std::unexpected(st.error().context("tree sync"));
  if (auto ok = co_await offload(pool, [&] { return fs::finish_dirs(root, *entries); }); !ok)
    co_return std::unexpected(ok.error());
  co_return sync_stats{std::uint32_t(entries->size()), *st};
}

}  // namespace migrated::migration
