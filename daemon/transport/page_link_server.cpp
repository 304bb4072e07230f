// The source's end of the page link: one reader takes the requests, each
// is answered by a coroutine of its own (the provider puts urgent ones
// first), and the answers take turns on the channel, urgent ones first.
// The reader stops reading while `in_flight` requests are worked on, so a
// destination cannot make the source hold more than that many answers.
#include "transport/page_link.hpp"

#include <cstring>
#include <string>

#include "common/hash.hpp"

namespace migrated::transport {
namespace {

struct serving {
  serving(channel& c, page_provider& p, page_link_stats& st, asio::any_io_executor ex)
      : ch(c), provider(p), stats(st), changed(ex, asio::steady_timer::time_point::max()) {}
  channel& ch;
  page_provider& provider;
  page_link_stats& stats;
  turns writes;
  std::size_t busy = 0;         // requests being answered
  asio::steady_timer changed;   // cancelled when one is answered
  std::optional<error> failed;  // the first error that ends the link
  bool lost = false;            // that error was the connection's
  // A hybrid's requests: the destination's hashes, by request_id, until answered.
  std::map<std::uint64_t, std::vector<std::uint64_t>> hashes;

  // The link ends: the reader too, if it waits for a request.
  void end(const error& e, bool connection = false) {
    if (failed) return;
    failed = e;
    lost = connection;
    ch.cancel();
  }
};

awaitable<void> wait_change(serving& s) {
  s.changed.expires_at(asio::steady_timer::time_point::max());
  boost::system::error_code ec;
  co_await s.changed.async_wait(asio::redirect_error(use_awaitable, ec));
}

awaitable<result<void>> send(serving& s, const pb::Envelope& env, std::span<const std::uint8_t> payload, bool urgent) {
  co_await s.writes.acquire(urgent);
  const turns::guard mine{s.writes};
  if (s.failed) co_return std::unexpected(*s.failed);
  co_return co_await s.ch.send(env, payload);
}

// The pages of `data` whose hash is the destination's are marked in the
// returned bits and taken out; how many.
std::uint64_t drop_unchanged(std::vector<std::uint8_t>& data, const std::vector<std::uint64_t>& theirs,
                             std::string& bits) {
  const std::size_t n = data.size() / link_page_bytes;
  bits.assign((n + 7) / 8, '\0');
  std::size_t kept = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint8_t* page = data.data() + i * link_page_bytes;
    if (i < theirs.size() && theirs[i] != 0 && xxh3_64({page, link_page_bytes}) == theirs[i]) {
      bits[i / 8] = char(std::uint8_t(bits[i / 8]) | (1u << (i % 8)));
      continue;
    }
    if (kept != i) std::memmove(data.data() + kept * link_page_bytes, page, link_page_bytes);
    ++kept;
  }
  data.resize(kept * link_page_bytes);
  if (kept == n) bits.clear();
  return n - kept;
}

// One request, answered with its pages or with the provider's refusal.
awaitable<void> answer(serving& s, std::uint64_t id, std::uint64_t pid, std::uint64_t vaddr, std::uint32_t pages,
                       bool urgent) {
  std::vector<std::uint8_t> data;
  auto n = co_await s.provider.provide(pid, vaddr, pages, data, urgent);
  pb::Envelope env;
  std::uint64_t unchanged = 0;
  if (n) {
    env.set_request_id(id);
    auto* d = env.mutable_page_data();
    d->set_pid(pid);
    d->set_vaddr(vaddr);
    d->set_pages(*n);
    if (auto h = s.hashes.find(id); h != s.hashes.end()) unchanged = drop_unchanged(data, h->second, *d->mutable_unchanged());
  } else if (n.error().code == errc::protocol) {
    env = make_reply(id, std::unexpected(n.error()));
  } else {
    s.end(n.error());
  }
  if (!s.failed) {
    const std::span<const std::uint8_t> payload = n ? std::span<const std::uint8_t>(data) : std::span<const std::uint8_t>();
    if (auto sent = co_await send(s, env, payload, urgent); !sent) {
      s.end(sent.error().context("page link"), true);
    } else if (n) {
      ++s.stats.requests;
      s.stats.urgent += urgent ? 1 : 0;
      s.stats.pages += *n;
      s.stats.unchanged += unchanged;
    } else {
      ++s.stats.refused;
    }
  }
  s.hashes.erase(id);
  --s.busy;
  s.changed.cancel();
}

// A request's own checks, before the provider sees it.
result<void> check(const pb::PageGet& g) {
  if (g.pages() == 0 || g.pages() > max_link_pages)
    return fail(errc::protocol, std::to_string(g.pages()) + " pages asked (1.." + std::to_string(max_link_pages) + ")");
  if (g.vaddr() % link_page_bytes != 0) return fail(errc::protocol, "an address not page-aligned");
  if (g.vaddr() > ~std::uint64_t(0) - std::uint64_t(g.pages()) * link_page_bytes)
    return fail(errc::protocol, "pages past the end of the address space");
  if (g.hashes_size() != 0 && std::uint32_t(g.hashes_size()) != g.pages())
    return fail(errc::protocol, std::to_string(g.hashes_size()) + " hashes for " + std::to_string(g.pages()) + " pages");
  return {};
}

awaitable<result<void>> read_requests(serving& s, std::size_t in_flight, std::chrono::milliseconds idle) {
  auto ex = co_await asio::this_coro::executor;
  for (;;) {
    while (s.busy >= in_flight && !s.failed) co_await wait_change(s);
    if (s.failed) co_return std::unexpected(*s.failed);
    auto f = co_await s.ch.recv(idle);
    if (!f) {
      s.end(f.error().context("page link"), true);
      co_return std::unexpected(*s.failed);
    }
    const std::uint64_t id = f->msg.request_id();
    if (f->msg.has_page_get()) {
      const auto& g = f->msg.page_get();
      if (auto ok = check(g); !ok) {
        ++s.stats.refused;
        const pb::Envelope refusal = make_reply(id, ok);
        if (auto sent = co_await send(s, refusal, {}, g.urgent()); !sent) {
          s.end(sent.error().context("page link"), true);
          co_return sent;
        }
        continue;
      }
      ++s.busy;
      if (g.hashes_size() != 0) s.hashes[id].assign(g.hashes().begin(), g.hashes().end());
      asio::co_spawn(ex, answer(s, id, g.pid(), g.vaddr(), g.pages(), g.urgent()), asio::detached);
    } else if (f->msg.has_pages_end()) {
      s.stats.end = f->msg.pages_end();
      while (s.busy > 0) co_await wait_change(s);  // every answer goes before the acknowledgement
      if (s.failed) co_return std::unexpected(*s.failed);
      const pb::Envelope done = make_reply(id, result<void>{});
      auto sent = co_await send(s, done, {}, false);
      if (!sent) s.end(sent.error().context("page link"), true);
      co_return sent;
    } else if (f->msg.has_abort()) {
      co_return std::unexpected(aborted_by_peer(s.ch, f->msg.abort()).context("page link"));
    } else {
      co_return fail(errc::protocol, "page link: message #" + std::to_string(f->msg.body_case()) + " is no page request");
    }
  }
}

}  // namespace

awaitable<result<link_end>> serve_page_link(channel& ch, page_provider& provider, std::chrono::milliseconds idle,
                                            page_link_stats& stats, std::size_t in_flight) {
  serving s(ch, provider, stats, co_await asio::this_coro::executor);
  auto served = co_await read_requests(s, in_flight == 0 ? 1 : in_flight, idle);
  if (!served) {
    s.end(served.error());
    ch.close();  // answers still being written end now; the provider's end within its deadline
  }
  while (s.busy > 0) co_await wait_change(s);  // they refer to `s`
  if (served) co_return link_end{};
  if (s.lost) co_return link_end{*s.failed};
  co_return std::unexpected(*s.failed);  // the first error, not the cancelled read it caused
}

}  // namespace migrated::transport
