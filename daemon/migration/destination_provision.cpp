// Destination: getting a container's image and filesystem in place before
// its state arrives (see destination_session.hpp). The image is looked up
// by id, so a same-named but different image is not mistaken for it.
#include "common/log.hpp"
#include "common/names.hpp"
#include "migration/bundle_sync.hpp"
#include "migration/destination_session.hpp"
#include "transport/file_stream.hpp"

namespace migrated::migration {
namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("migration"); }

// Feeds an image archive from the stream into the engine.
class image_sink final : public transport::chunk_sink {
 public:
  explicit image_sink(std::unique_ptr<runtime::image_import> in) : in_(std::move(in)) {}
  result<void> feed(std::span<const std::uint8_t> chunk) override { return in_->write(chunk); }
  result<void> finish(const pb::FileEnd&) override { return in_->finish(); }

 private:
  std::unique_ptr<runtime::image_import> in_;
};

}  // namespace

// Answers ok once the image is here and the container is created from the
// spec; not_found when the image should be sent (then reads it right away).
awaitable<result<void>> destination_session::provision(const pb::Envelope& env) {
  const auto& p = env.provision();
  log::info(*logger(), id_, phase::image, "{}: image {}", container_, p.image());
  // (Outcomes are named locals: g++ 12 mishandles temporaries passed to coroutines.)
  result<void> outcome = co_await provide_image(p);
  if (outcome) {
    auto made = co_await rt_->create(container_, p.spec());
    if (made) {
      created_ = true;
      bundle_ = made->bundle;
      volumes_ = made->volumes;
    } else {
      outcome = std::unexpected(made.error());
    }
  }
  auto sent = co_await ch_->reply(env.request_id(), outcome, id_);
  if (!sent) co_return sent;
  if (!outcome && outcome.error().code == errc::not_found) co_return co_await receive_image();
  co_return result<void>{};
}

// ok when the image is here (or a registry gave it); not_found when it
// should be sent; another error when it cannot be had.
awaitable<result<void>> destination_session::provide_image(const pb::Provision& p) {
  if (!rt_->has_images() || created_) co_return fail(errc::protocol, "unexpected Provision");
  const std::string wanted = p.image_id().empty() ? p.image() : p.image_id();
  auto have = co_await rt_->has_image(wanted);
  if (!have) co_return std::unexpected(have.error());
  const auto& dcfg = ctx_.cfg.docker;
  if (!*have && !dcfg.registry.empty()) {
    stopwatch sw;
    auto pulled = co_await rt_->pull_image(dcfg.registry, p.image());
    if (pulled) {
      auto again = co_await rt_->has_image(wanted);
      *have = again && *again;
      if (*have)
        log::info(*logger(), id_, phase::image, "pulled {} from registry {} in {:.0f} ms", p.image(), dcfg.registry,
                  sw.ms());
      else
        log::warn(*logger(), id_, phase::image, "registry {} has {}, but not image {}: taking it from the peer",
                  dcfg.registry, p.image(), wanted);
    } else {
      log::warn(*logger(), id_, phase::image, "registry {}: {}", dcfg.registry, pulled.error().message);
    }
  }
  if (*have) co_return result<void>{};
  const std::string missing = "image " + p.image() + " (" + p.image_id() + ") is not on " + ctx_.cfg.node_name;
  if (!dcfg.accept_images)
    co_return fail(errc::unsupported,
                   missing + " and it does not accept images from peers (runtime.docker.accept_images: false)" +
                       (dcfg.registry.empty() ? "" : "; registry " + dcfg.registry + " did not have it"));
  co_return fail(errc::not_found, missing + ": send it");
}

awaitable<result<void>> destination_session::receive_image() {
  stopwatch sw;
  transport::receive_options opts;
  opts.pool = &ctx_.pool;
  runtime::runtime* rt = rt_;
  opts.open_sink = [rt](const pb::FileBegin& b, const std::filesystem::path&)
      -> result<std::unique_ptr<transport::chunk_sink>> {
    if (!b.engine_image()) return fail(errc::protocol, "expected an image archive");
    auto in = rt->import_image();
    if (!in) return std::unexpected(in.error());
    return std::make_unique<image_sink>(std::move(*in));
  };
  auto st = co_await transport::receive_files(*ch_, dir_, opts);
  if (!st) co_return std::unexpected(st.error().context("image"));
  stats_.bytes_engine_image = st->bytes_raw;
  stats_.image_ms = sw.ms();
  log::info(*logger(), id_, phase::image, "loaded {} bytes from {} in {:.0f} ms", st->bytes_raw, ch_->peer.node(), sw.ms());
  co_return result<void>{};
}

// A tree goes to the container's bundle / writable layer or to one of its
// named volumes.
awaitable<result<void>> destination_session::receive_tree_for(const pb::TreeManifest& first) {
  std::filesystem::path root = bundle_;
  if (first.tree() != bundle_tree) {
    root.clear();
    for (const auto& v : volumes_)
      if (volume_tree(v.name) == first.tree()) root = v.path;
  }
  if (root.empty()) {
    const result<void> bad = fail(errc::protocol, "tree '" + first.tree() + "' has no place here" +
                                                      (bundle_.empty() ? " (the container is not provisioned)" : ""));
    co_await ch_->reply(0, bad);
    co_return bad;
  }
  log::info(*logger(), id_, stats_.phase, "{}: {} sync", container_, first.tree());
  auto st = co_await receive_tree(*ch_, root, first, ctx_.pool);
  if (!st) co_return std::unexpected(st.error());
  stats_.bytes_rootfs += st->files.bytes_raw;
  stats_.round(state_ == state::pulling ? "pull" : "final").add(st->files);
  co_return result<void>{};
}

}  // namespace migrated::migration
