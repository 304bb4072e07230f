// The source's steps that move a container's filesystem and image rather
// than (or before) its memory: provisioning the destination's engine (image
// peer to peer unless it has it or can pull it), named volumes, and the
// filesystem methods diff, full and replay (see source_session.hpp).
#include <nlohmann/json.hpp>

#include "common/log.hpp"
#include "migration/bundle_sync.hpp"
#include "migration/source_session.hpp"

namespace migrated::migration {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("migration"); }

// Docker repository names are lower case.
std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::string with_image(const std::string& spec, const std::string& image) {
  auto j = nlohmann::json::parse(spec, nullptr, false);
  if (j.is_discarded()) return spec;
  j["Image"] = image;
  return j.dump();
}

// Provision, and when the destination lacks the image (not_found), the
// image as a stream straight from this engine into that one, then again.
awaitable<result<void>> source_session::provision(const std::string& image, const std::string& image_id,
                                                  const std::string& spec) {
  pb::Envelope env;
  auto* p = env.mutable_provision();
  p->set_image(image);
  p->set_image_id(image_id);
  p->set_spec(spec);
  stopwatch sw;
  auto ok = co_await call(env, "provision");
  if (!ok && ok.error().code == errc::not_found) {
    if (auto sent = co_await send_image(image); !sent) co_return sent;
    ok = co_await call(env, "provision");
  }
  report_.set_image_ms(sw.ms());
  co_return ok;
}

awaitable<result<void>> source_session::send_image(const std::string& image) {
  enter(phase::image, image + " is not at " + report_.destination() + ": sending it");
  stopwatch sw;
  runtime::runtime* rt = rt_;
  transport::outgoing_file f;
  f.name = "image.tar";
  f.engine_image = true;
  f.produce = [rt, image](const transport::chunk_writer& write) -> result<std::string> {
    auto bytes = rt->export_image(image, [&write](std::span<const std::uint8_t> b) { return write(b); });
    if (!bytes) return std::unexpected(bytes.error());
    return std::string();
  };
  const std::vector<transport::outgoing_file> files{f};
  auto st = co_await transport::send_files(*peer_, files, stream_options(phase::image));
  if (!st) co_return std::unexpected(st.error().context("image " + image));
  report_.set_bytes_engine_image(st->bytes_raw);
  add_round("image", sw.ms(), *st);  // (counts its bytes on the wire)
  log::info(*logger(), id_, phase::image, "{}: {} bytes in {:.0f} ms", image, st->bytes_raw, sw.ms());
  co_return result<void>{};
}

awaitable<result<void>> source_session::send_volumes() {
  for (const auto& v : container_.volumes) {
    auto st = co_await send_tree(*peer_, v.path, stream_options(phase::pull), volume_tree(v.name));
    if (!st) co_return std::unexpected(st.error().context("volume " + v.name));
    report_.set_bytes_rootfs(report_.bytes_rootfs() + st->files.bytes_raw);
    report_.set_bytes_wire(report_.bytes_wire() + st->files.bytes_wire);
  }
  co_return result<void>{};
}

// diff and full: the container stops here (downtime begins); its files no
// longer change, so what follows is the whole of them.
awaitable<result<void>> source_session::stop_here() {
  enter(phase::stop);
  if (auto held = co_await hold_restarts(); !held) co_return held;
  frozen_at_ = stopwatch::clock::now();
  auto ok = co_await rt_->stop(req_.container());
  report_.set_checkpoint_ms(stopwatch::between(frozen_at_, stopwatch::clock::now()));
  if (!ok) co_return co_await failed_to_stop(ok.error());
  stopped_ = true;
  co_return result<void>{};
}

// full (Docker): the stopped container's filesystem as an image of its own,
// which pull() then sends in place of the original one.
awaitable<result<void>> source_session::commit_image() {
  if (!rt_->has_images()) co_return result<void>{};  // runc: the bundle is the whole filesystem
  const std::string ref = "migrated-full/" + lower(req_.container()) + ":" + id_;
  auto committed = co_await rt_->commit(req_.container(), ref);
  if (!committed) co_return std::unexpected(committed.error());
  full_image_ = ref;
  log::info(*logger(), id_, phase::stop, "committed {} as {} ({})", req_.container(), ref, *committed);
  co_return result<void>{};
}

// What changed since the pull, now that the container is stopped.
awaitable<result<void>> source_session::send_filesystem() {
  enter(phase::transfer, "filesystem changes");
  stopwatch sw;
  if (full_image_.empty()) {
    auto tree = co_await sync_bundle(phase::transfer);
    if (!tree) co_return std::unexpected(tree.error().context("filesystem changes"));
    add_round("final", sw.ms(), *tree);
  }
  if (auto ok = co_await send_volumes(); !ok) co_return ok;
  report_.set_transfer_ms(sw.ms());
  co_return result<void>{};
}

awaitable<result<void>> source_session::start_remote() {
  enter(phase::start);
  const auto since = stopped_ ? frozen_at_ : stopwatch::clock::now();
  pb::Envelope env;
  env.mutable_round_begin()->set_final(true);
  env.mutable_round_begin()->set_start_fresh(true);
  if (auto ok = co_await peer_->send(env); !ok) co_return ok;
  if (auto ok = co_await await_launch("start"); !ok) co_return ok;
  if (auto ok = co_await await_ready(since); !ok) co_return ok;
  // replay keeps serving here until the destination is ready: no gap.
  report_.set_downtime_ms(stopped_ ? stopwatch::between(frozen_at_, stopwatch::clock::now()) : 0);
  co_return result<void>{};
}

// After Commit the destination owns the container: the copy here goes.
// A failure here loses nothing (it only leaves a stopped container behind).
awaitable<result<void>> source_session::finish_here() {
  if (!stopped_) {
    co_await hold_restarts();  // a failure only means the policy stays as it was
    if (auto ok = co_await rt_->stop(req_.container()); !ok)
      log::warn(*logger(), id_, phase::commit, "{}", ok.error().message);
    stopped_ = true;
  }
  if (auto ok = co_await rt_->remove(req_.container()); !ok) {
    log::warn(*logger(), id_, phase::commit, "{} moved, but the copy here stays: {}", req_.container(),
              ok.error().message);
  }
  for (const auto& v : container_.volumes)
    log::info(*logger(), id_, phase::commit, "volume {} stays here too ({})", v.name, v.path.string());
  co_return result<void>{};
}

}  // namespace migrated::migration
