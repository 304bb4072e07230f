// The source's steps that move a container's filesystem and image rather
// than (or before) its memory: the pull (the bundle or writable layer and
// named volumes while the container runs, after provisioning the
// destination's engine: image peer to peer unless it has it or can pull
// it), the changes after the stop, and the filesystem methods' stop here
// and start there (see source_session.hpp).
#include <nlohmann/json.hpp>

#include "common/log.hpp"
#include "common/names.hpp"
#include "migration/bundle_sync.hpp"
#include "migration/disk_space.hpp"
#include "migration/fault_point.hpp"
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

// Everything the destination needs before the container stops: Pull, (with
// an image store) Provision, then the trees. `full_image`, for full on
// Docker, is the committed image that carries the whole filesystem.
awaitable<result<void>> source_session::pull(const std::string& full_image) {
  const auto& c = copy_->container();
  enter(state::pulling, copy_->rt().has_images() ? "image " + (full_image.empty() ? c.image : full_image)
                                                 : "bundle " + c.bundle.string());
  stopwatch sw;
  pb::Envelope env;
  auto* p = env.mutable_pull();
  p->set_migration_id(id_);
  p->set_container(req_.container());
  p->set_runtime(stats_.runtime);
  p->set_method(req_.method());
  p->set_prepare(prepare_);
  if (keeps_process_state() && !prepare_) {
    // The destination checks it has room for the images before anything stops.
    auto memory = co_await offload(ctx_.pool, [this, &c] { return copy_->rt().memory_bytes(c); });
    if (memory) {
      p->set_memory_bytes(*memory);
      p->set_image_bytes_needed(image_bytes_needed(*memory, req_.method()));
    } else {
      log::warn(*logger(), id_, phase::pull, "no estimate of the images' size: {}", memory.error().message);
    }
  }
  if (auto ok = co_await call(env, "pull"); !ok) co_return ok;
  if (copy_->rt().has_images()) {
    const bool full = !full_image.empty();
    const std::string& image = full ? full_image : c.image;
    const std::string& image_id = full ? full_image : c.image_id;
    const std::string spec = full ? with_image(c.spec, full_image) : c.spec;
    if (auto ok = co_await provision(image, image_id, spec); !ok) co_return ok;
  }
  // (Rounds are added after provision, which may add the image's.)
  auto& round = stats_.add_round("pull");
  // full on Docker: the image is the filesystem; runc: the whole bundle.
  auto sent = co_await send_changes(round, full_image.empty());
  round.duration_ms = stats_.pull_ms = sw.ms();  // (a pull that fails too)
  if (!sent) co_return std::unexpected(sent.error().context("pull"));
  co_return result<void>{};
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
  stats_.image_ms = sw.ms();
  co_return ok;
}

awaitable<result<void>> source_session::send_image(const std::string& image) {
  enter(state::sending_image, image + " is not at " + stats_.destination + ": sending it");
  stopwatch sw;
  runtime::runtime* rt = &copy_->rt();
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
  stats_.bytes_engine_image = st->bytes_raw;
  auto& round = stats_.add_round("image");
  round.add(*st);
  round.duration_ms = sw.ms();
  log::info(*logger(), id_, phase::image, "{}: {} bytes in {:.0f} ms", image, st->bytes_raw, sw.ms());
  co_return result<void>{};
}

// The bundle (runc) or writable layer (Docker), unless `with_tree` is false,
// then every named volume: all of each the first time, what changed since
// afterwards. Counted in `round`.
awaitable<result<void>> source_session::send_changes(round_stats& round, bool with_tree) {
  const auto& c = copy_->container();
  const auto phase_name = stats_.phase;
  if (with_tree) {
    if (auto ok = co_await sync_tree(c.bundle, bundle_tree, round, phase_name); !ok) co_return ok;
  }
  for (const auto& v : c.volumes)
    if (auto ok = co_await sync_tree(v.path, volume_tree(v.name), round, phase_name); !ok)
      co_return std::unexpected(ok.error().context("volume " + v.name));
  co_return result<void>{};
}

awaitable<result<void>> source_session::sync_tree(const std::filesystem::path& root, const std::string& tree,
                                                  round_stats& round, std::string_view phase_name) {
  // While the container runs its files change under the sync: that is
  // normal, and the sync after it stops carries their final content.
  auto opts = stream_options(phase_name);
  opts.live = copy_->current() == source_copy::state::running;
  auto st = co_await send_tree(*peer_, root, opts, tree);
  if (!st) co_return std::unexpected(st.error());
  stats_.bytes_rootfs += st->files.bytes_raw;
  round.add(st->files);
  co_return result<void>{};
}

// diff and full: the container stops here (downtime begins); its files no
// longer change, so what follows is the whole of them.
awaitable<result<void>> source_session::stop_here() {
  if (auto ok = check_cancel(); !ok) co_return ok;
  enter(state::stopping);
  if (auto ok = co_await note(journal::step::stopping); !ok) co_return ok;
  co_await fault_point::reach(id_, "source.stopping");
  if (auto ok = check_cancel(); !ok) co_return ok;  // stopped while it paused there
  auto ok = co_await copy_->stop();
  stats_.checkpoint_ms = stopwatch::between(copy_->stopped_at(), stopwatch::clock::now());
  if (copy_->current() == source_copy::state::stopped)
    if (auto noted = co_await note(journal::step::stopped); !noted && ok) ok = noted;
  co_return ok;
}

// full: the stopped container's filesystem as an image of its own (Docker),
// which pull() sends in place of the original one; runc has none (empty):
// its bundle is the whole filesystem.
awaitable<result<std::string>> source_session::commit_image() {
  if (!copy_->rt().has_images()) co_return std::string();
  const std::string ref = "migrated-full/" + lower(req_.container()) + ":" + id_;
  auto committed = co_await copy_->rt().commit(req_.container(), ref);
  if (!committed) co_return std::unexpected(committed.error());
  log::info(*logger(), id_, phase::stop, "committed {} as {} ({})", req_.container(), ref, *committed);
  co_return ref;
}

// The filesystem methods' launch: the destination starts the container
// fresh (replay: and runs its replay hook) and answers RestoreResult.
awaitable<result<void>> source_session::start_there() {
  enter(state::starting);
  ready_since_ = stopwatch::clock::now();
  pb::Envelope env;
  env.mutable_round_begin()->set_final(true);
  env.mutable_round_begin()->set_start_fresh(true);
  if (auto ok = co_await peer_->send(env); !ok) co_return ok;
  co_return co_await await_launch("start");
}

}  // namespace migrated::migration
