// postcopy_here: post-copy of a runc container on one host, with the
// daemon's own pieces end to end — runc_runtime's lazy checkpoint (the
// container frozen whole, its private memory left in CRIU's page pipes and
// served on a socketpair), dump_page_client fetching from it for the
// source's end of the page link (TLS on loopback between two nodes of the
// fleet in --tls), and at the destination's end the link's client pulling
// every page in the background in push_order into a page_store, a fault's
// pages fetched as urgent, and serve_lazy_pages answering `criu
// lazy-pages` from the store for runc_runtime's `restore --lazy-pages` of
// a second container from the same images.
//
//   postcopy_here --root R --storage S --container ID --as ID2 --bundle B2
//                 --images DIR --work DIR --tls DIR [--fail-after-pages N]
//                 [--push-mib-s R]
//
// --tls: a fleet (scripts/migrated-ca) with ca.crt and edge-a, edge-b.
// After the checkpoint is ready it prints "ready" and waits for a line on
// stdin (the test copies the rootfs for ID2 meanwhile). Then it restores
// ID2, serves every page and, once all arrived, removes the frozen ID and
// prints "moved requests N pages N short N pushed N stale N local N
// fetched N fetches N faults N held N p50_ms X p99_ms X max_ms X
// link_pages N link_urgent N" (the latencies of faults; "pushed": pages
// the background transfer brought). With --fail-after-pages the
// page source fails after N pages: the transfer is cut, ID2 removed, ID
// thawed, and it prints "rolled back: <why>" and exits 3. --push-mib-s
// paces the background answers as a link of that rate would, so the
// process faults. Any other error: printed, exit 1. For
// tests/integration/test_postcopy_here.sh.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <string>

#include <boost/asio/local/connect_pair.hpp>

#include "common/config.hpp"
#include "common/credentials.hpp"
#include "common/unique_fd.hpp"
#include "criu/cgroup_yard.hpp"
#include "criu/criu.hpp"
#include "pages/dump_page_client.hpp"
#include "pages/lazy_pages_server.hpp"
#include "pages/page_pull.hpp"
#include "pages/page_store.hpp"
#include "pages/push_order.hpp"
#include "process/process.hpp"
#include "runtime/runc.hpp"
#include "transport/channel.hpp"
#include "transport/page_link.hpp"
#include "transport/tls.hpp"

using namespace migrated;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using unix_socket = asio::local::stream_protocol::socket;

namespace {

struct args {
  std::map<std::string, std::string> named;
  std::uint64_t fail_after_pages = 0;  // 0: never
  double push_mib_s = 0;               // 0: as fast as the host goes
  const std::string& at(const std::string& k) const { return named.at(k); }
};

// A page source that gives up after `limit` pages: a cut link, for the rollback.
class failing_after final : public pages::page_source {
 public:
  failing_after(pages::page_source& inner, std::uint64_t limit) : inner_(inner), limit_(limit) {}
  awaitable<result<std::uint32_t>> pages(const pages::page_request& r, std::vector<std::uint8_t>& out) override {
    if (limit_ != 0 && sent_ >= limit_) co_return fail(errc::peer, "the page source failed on purpose");
    auto n = co_await inner_.pages(r, out);
    if (n) sent_ += *n;
    co_return n;
  }

 private:
  pages::page_source& inner_;
  std::uint64_t limit_;
  std::uint64_t sent_ = 0;
};

// Something running in the background whose result is awaited later.
template <typename T>
struct pending {
  std::optional<T> value;
  std::shared_ptr<asio::steady_timer> done;
};

// (One thread: nothing can finish between the check and the wait.)
template <typename T>
awaitable<void> wait_for(std::shared_ptr<pending<T>> p) {
  if (p->value) co_return;
  boost::system::error_code ec;
  co_await p->done->async_wait(asio::redirect_error(use_awaitable, ec));
}

awaitable<result<void>> checkpoint_in_background(runtime::runc_runtime& rt, const std::string& id,
                                                 const runtime::checkpoint_request& req,
                                                 std::shared_ptr<pending<result<void>>> out) {
  out->value = co_await rt.checkpoint(id, req);
  out->done->cancel();
  co_return result<void>{};
}

awaitable<result<void>> lazy_pages_in_background(const std::vector<std::string>& argv, const process::options& opts,
                                                 std::shared_ptr<pending<result<process::result_of_run>>> out) {
  out->value = co_await process::run(argv, opts);
  out->done->cancel();
  co_return result<void>{};
}

template <typename T>
std::shared_ptr<pending<T>> make_pending(asio::any_io_executor ex) {
  auto p = std::make_shared<pending<T>>();
  p->done = std::make_shared<asio::steady_timer>(ex, asio::steady_timer::time_point::max());
  return p;
}

// The source's pages as a link of `mib_s` would deliver the background
// ones (0: as fast as the host goes), so the process faults on pages
// before the background transfer brings them.
class paced final : public transport::page_provider {
 public:
  paced(transport::page_provider& inner, double mib_s) : inner_(inner), mib_s_(mib_s) {}
  awaitable<result<std::uint32_t>> provide(std::uint64_t pid, std::uint64_t vaddr, std::uint32_t pages,
                                           std::vector<std::uint8_t>& out, bool urgent) override {
    auto n = co_await inner_.provide(pid, vaddr, pages, out, urgent);
    if (!n || urgent || mib_s_ <= 0) co_return n;
    const auto now = std::chrono::steady_clock::now();
    due_ = std::max(due_, now) + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                     std::chrono::duration<double>(double(out.size()) / (mib_s_ * 1024 * 1024)));
    asio::steady_timer pace(co_await asio::this_coro::executor, due_);
    co_await pace.async_wait(use_awaitable);
    co_return n;
  }

 private:
  transport::page_provider& inner_;
  double mib_s_;
  std::chrono::steady_clock::time_point due_{};
};

// Both daemons' ends of the page link in this process: TLS on loopback
// between edge-a (the source, accepting) and edge-b of the fleet in `tls`.
awaitable<result<void>> open_link(const fs::path& tls, std::optional<transport::channel>& source,
                                  std::optional<transport::channel>& destination) {
  auto ex = co_await asio::this_coro::executor;
  std::shared_ptr<transport::ssl::context> ctx[2];
  const char* names[2] = {"edge-a", "edge-b"};
  for (int i = 0; i < 2; ++i) {
    const std::string n = names[i];
    auto creds = credentials::load({.ca = tls / "ca.crt", .cert = tls / (n + ".crt"), .key = tls / (n + ".key")});
    if (!creds) co_return std::unexpected(creds.error());
    auto c = transport::make_tls_context(*creds);
    if (!c) co_return std::unexpected(c.error());
    ctx[i] = *c;
  }
  tcp::acceptor acceptor(ex, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket out(ex);
  co_await out.async_connect(acceptor.local_endpoint(), use_awaitable);
  tcp::socket in = co_await acceptor.async_accept(use_awaitable);
  source.emplace(std::move(in), ctx[0], 10s);
  destination.emplace(std::move(out), ctx[1], 10s);
  auto accepted = make_pending<result<void>>(ex);
  auto secure_source = [](transport::channel& ch, std::shared_ptr<pending<result<void>>> done) -> awaitable<void> {
    done->value = co_await ch.secure(transport::channel::side::server, 10s);
    done->done->cancel();
  };
  asio::co_spawn(ex, secure_source(*source, accepted), asio::detached);
  auto connected = co_await destination->secure(transport::channel::side::client, 10s);
  co_await wait_for(accepted);
  if (!connected) co_return connected;
  co_return *accepted->value;
}

struct relay_outcome {
  result<pages::serve_stats> served = fail(errc::internal, "not served");
  pages::store_stats store;
  std::uint64_t held_at_end = 0;
  transport::page_link_stats link;  // the source's end
};

awaitable<result<void>> serve_link_in_background(transport::channel& ch, transport::page_provider& provider,
                                                 std::shared_ptr<pending<result<transport::page_link_stats>>> out) {
  transport::page_link_stats st;
  auto ended = co_await transport::serve_page_link(ch, provider, 60s, st);
  if (!ended) out->value = std::unexpected(ended.error());
  else if (ended->lost) out->value = std::unexpected(*ended->lost);  // (no recovery here)
  else out->value = st;
  out->done->cancel();
  co_return result<void>{};
}

awaitable<result<void>> run_link_in_background(transport::page_link_client& link,
                                               std::shared_ptr<pending<result<void>>> out) {
  auto ran = co_await link.run(60s);  // (lost only when kept: never here)
  out->value = ran ? result<void>{} : result<void>(std::unexpected(ran.error()));
  out->done->cancel();
  co_return result<void>{};
}

awaitable<result<void>> pull_in_background(transport::page_link_client& link, pages::push_order& order,
                                           pages::page_store& store, const bool& stop,
                                           std::shared_ptr<pending<result<pages::pull_stats>>> out) {
  out->value = co_await pages::pull_pages(link, order, store, pages::pull_options{}, stop);
  out->done->cancel();
  co_return result<void>{};
}

// The source daemon's end (the dump's pages, served on the link) and the
// destination's (the link's client, the background pull into the store,
// the store answering lazy-pages), until lazy-pages has every page.
awaitable<result<void>> relay_in_background(unix_socket& lazy, pages::dump_page_client& client,
                                            const pages::held_runs& dest_held, const fs::path& tls,
                                            std::uint64_t fail_after, double push_mib_s,
                                            std::shared_ptr<pending<relay_outcome>> out) {
  auto ex = co_await asio::this_coro::executor;
  relay_outcome o;
  std::optional<transport::channel> source_end, destination_end;
  if (auto linked = co_await open_link(tls, source_end, destination_end); !linked) {
    o.served = std::unexpected(linked.error().context("page link"));
    client.abandon();
    lazy.close();  // lazy-pages ends, and the restore with it
    out->value = std::move(o);
    out->done->cancel();
    co_return result<void>{};
  }
  paced provider(client, push_mib_s);
  auto link_served = make_pending<result<transport::page_link_stats>>(ex);
  asio::co_spawn(ex, serve_link_in_background(*source_end, provider, link_served), asio::detached);

  transport::page_link_client link(*destination_end);
  auto link_ran = make_pending<result<void>>(ex);
  asio::co_spawn(ex, run_link_in_background(link, link_ran), asio::detached);
  pages::push_order order(dest_held);  // the destination's own reading of the images
  pages::link_source remote(link, order, 10s);
  pages::page_store store(remote);
  failing_after to_lazy(store, fail_after);
  bool stop = false;
  auto pulled = make_pending<result<pages::pull_stats>>(ex);
  asio::co_spawn(ex, pull_in_background(link, order, store, stop, pulled), asio::detached);
  o.served = co_await pages::serve_lazy_pages(lazy, to_lazy, 60s);
  stop = true;
  if (!o.served) destination_end->close();  // a cut: every end fails
  co_await wait_for(pulled);
  if (o.served && !*pulled->value) o.served = std::unexpected(pulled->value->error());
  if (o.served) {
    const pb::PagesEnd summary;
    if (auto ended = co_await link.finish(summary, 30s); !ended) o.served = std::unexpected(ended.error());
  }
  if (!o.served) destination_end->close();
  co_await wait_for(link_ran);
  co_await wait_for(link_served);
  if (o.served && !*link_served->value) o.served = std::unexpected(link_served->value->error());
  if (*link_served->value) o.link = **link_served->value;
  if (o.served) {
    if (auto closed = co_await client.close(30s); !closed) o.served = std::unexpected(closed.error());
  } else {
    client.abandon();
  }
  o.store = store.stats();
  o.held_at_end = store.held_pages();
  out->value = std::move(o);
  out->done->cancel();
  co_return result<void>{};
}

awaitable<int> run(const args& a) {
  auto ex = co_await asio::this_coro::executor;
  config cfg;
  cfg.runc.root = a.at("--root");
  cfg.storage_dir = a.at("--storage");
  const auto features = co_await criu::detect("criu");
  const auto yard = criu::make_cgroup_yard(cfg.storage_dir / "criu" / "cgroup-yard");
  auto overrides = criu::write_overrides(cfg.storage_dir / "criu", features, yard ? *yard : fs::path{});
  if (!overrides) {
    std::fprintf(stderr, "postcopy_here: %s\n", overrides.error().message.c_str());
    co_return 1;
  }
  runtime::runc_runtime rt(cfg, *overrides);
  const std::string id = a.at("--container"), copy = a.at("--as");
  const fs::path images = a.at("--images"), work = a.at("--work"), tls = a.at("--tls");
  auto info = co_await rt.inspect(id);
  if (!info) {
    std::fprintf(stderr, "postcopy_here: %s\n", info.error().message.c_str());
    co_return 1;
  }

  unix_socket ours(ex), theirs(ex);
  asio::local::connect_pair(ours, theirs);
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) co_return 1;
  unique_fd ready_write(ready[1]);
  runtime::checkpoint_request req{.image_dir = images,
                                  .work_dir = work / "dump",
                                  .keep_frozen = true,
                                  .carry_netns = runtime::carries_netns(*info),
                                  .bundle = info->bundle,
                                  .page_socket = theirs.native_handle(),
                                  .ready_fd = ready_write.get()};
  fs::create_directories(req.work_dir);
  auto dumped = make_pending<result<void>>(ex);
  asio::co_spawn(ex, checkpoint_in_background(rt, id, req, dumped), asio::detached);
  // Once the page server is ready, runc and CRIU hold their own copies of both: ours go.
  auto is_ready = co_await process::await_status(ready[0], 30s);
  theirs.close();
  ready_write.reset();
  if (!is_ready) {
    co_await wait_for(dumped);
    std::fprintf(stderr, "postcopy_here: %s%s\n", is_ready.error().message.c_str(),
                 dumped->value && !*dumped->value ? (": " + dumped->value->error().message).c_str() : "");
    co_return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  std::string line;
  if (!std::getline(std::cin, line)) {  // nobody to go on for: end the transfer, the original runs on
    ours.close();
    co_await wait_for(dumped);
    co_await rt.thaw(id);
    std::fprintf(stderr, "postcopy_here: stdin closed before the restore\n");
    co_return 1;
  }

  auto held = pages::lazy_runs(images);
  if (!held) {
    std::fprintf(stderr, "postcopy_here: %s\n", held.error().message.c_str());
    co_return 1;
  }
  pages::dump_page_client client(std::move(ours), std::move(*held));
  const auto dest_held = pages::lazy_runs(images);  // what the destination reads from the images it received
  if (!dest_held) co_return 1;

  unix_socket lazy_ours(ex), lazy_theirs(ex);
  asio::local::connect_pair(lazy_ours, lazy_theirs);
  const fs::path restore_work = work / "restore";
  fs::create_directories(restore_work);
  const auto lazy_argv = criu::lazy_pages_command("criu", images, restore_work, 3);
  process::options lazy_opts{.timeout = 120s, .pass_fds = {{lazy_theirs.native_handle(), 3}}};
  auto lazy = make_pending<result<process::result_of_run>>(ex);
  asio::co_spawn(ex, lazy_pages_in_background(lazy_argv, lazy_opts, lazy), asio::detached);
  asio::steady_timer tick(ex);
  for (int i = 0; i < 100 && !fs::exists(restore_work / criu::lazy_pages_socket); ++i) {
    tick.expires_after(100ms);
    co_await tick.async_wait(use_awaitable);
  }
  lazy_theirs.close();

  auto served = make_pending<relay_outcome>(ex);
  asio::co_spawn(ex, relay_in_background(lazy_ours, client, *dest_held, tls, a.fail_after_pages,
                                                   a.push_mib_s, served), asio::detached);
  const runtime::restore_request rreq{.bundle = a.at("--bundle"), .image_dir = images, .work_dir = restore_work,
                                      .lazy_pages = true};
  auto restored = co_await rt.restore(copy, rreq);
  co_await wait_for(served);
  co_await wait_for(lazy);
  co_await wait_for(dumped);

  const relay_outcome& relayed = *served->value;
  const bool moved = restored && relayed.served && *dumped->value && *lazy->value && (*lazy->value)->ok();
  if (moved) {
    if (auto gone = co_await rt.remove(id); !gone) {
      std::fprintf(stderr, "postcopy_here: remove the original: %s\n", gone.error().message.c_str());
      co_return 1;
    }
    const auto& s = *relayed.served;
    const auto& st = relayed.store;
    std::printf("moved requests %llu pages %llu short %llu pushed %llu stale %llu local %llu fetched %llu "
                "fetches %llu faults %llu held %llu p50_ms %.3f p99_ms %.3f max_ms %.3f link_pages %llu link_urgent %llu\n",
                (unsigned long long)s.requests, (unsigned long long)s.pages, (unsigned long long)s.short_answers,
                (unsigned long long)st.pushed_pages, (unsigned long long)st.stale_pushes,
                (unsigned long long)st.local_pages, (unsigned long long)st.fetched_pages,
                (unsigned long long)st.fetches, (unsigned long long)st.faults, (unsigned long long)relayed.held_at_end,
                st.fault_latency.p50_ms, st.fault_latency.p99_ms, st.fault_latency.max_ms,
                (unsigned long long)relayed.link.pages, (unsigned long long)relayed.link.urgent);
    co_return 0;
  }
  // The transfer's error first: a restore fails because of it.
  std::string why = !relayed.served ? relayed.served.error().message
                  : !restored ? restored.error().message
                  : !*dumped->value ? dumped->value->error().message
                  : !*lazy->value ? lazy->value->error().message
                                  : "lazy-pages: " + (*lazy->value)->summary();
  if (auto gone = co_await rt.remove(copy); !gone)
    std::fprintf(stderr, "postcopy_here: remove the copy: %s\n", gone.error().message.c_str());
  if (auto back = co_await rt.thaw(id); !back) {
    std::fprintf(stderr, "postcopy_here: thaw the original: %s (after: %s)\n", back.error().message.c_str(), why.c_str());
    co_return 1;
  }
  std::printf("rolled back: %s\n", why.c_str());
  co_return 3;
}

}  // namespace

int main(int argc, char** argv) {
  // Nothing the test runner holds (its lock) may reach runc, CRIU and the
  // frozen container through us.
  ::close_range(3, ~0u, 0);
  args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--fail-after-pages") {
      if (std::from_chars(v.data(), v.data() + v.size(), a.fail_after_pages).ec != std::errc{}) return 2;
    } else if (k == "--push-mib-s") {
      if (std::from_chars(v.data(), v.data() + v.size(), a.push_mib_s).ec != std::errc{} || a.push_mib_s < 0) return 2;
    } else {
      a.named[k] = v;
    }
  }
  for (const char* k : {"--root", "--storage", "--container", "--as", "--bundle", "--images", "--work", "--tls"})
    if (!a.named.contains(k)) {
      std::fprintf(stderr, "postcopy_here: %s is missing\n", k);
      return 2;
    }
  asio::io_context io;
  int rc = 1;
  asio::co_spawn(io, run(a), [&](std::exception_ptr e, int r) {
    if (e) std::fprintf(stderr, "postcopy_here: exception\n");
    else rc = r;
  });
  io.run();
  return rc;
}
