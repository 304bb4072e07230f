// Rounds of image sets on both sides (see image_rounds.hpp).
#include "migration/image_rounds.hpp"

#include "common/auth.hpp"
#include "common/unique_fd.hpp"
#include "fs/writeback.hpp"
#include "migration/disk_space.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace migrated::migration {
namespace {

// One process's pages file of more than 1 TiB is a lie, not a container.
constexpr std::uint64_t max_pages_per_file = std::uint64_t(1) << 28;

void add(images::delta_stats& into, const images::delta_stats& s) {
  into.pages += s.pages;
  into.same += s.same;
  into.zero += s.zero;
  into.ref += s.ref;
  into.xor_pages += s.xor_pages;
  into.full += s.full;
  into.bytes_raw += s.bytes_raw;
  into.bytes_delta += s.bytes_delta;
}

result<std::filesystem::path> fresh_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(errc::io, "create " + dir.string() + ": " + ec.message());
  return dir;
}

}  // namespace

// --- source ---------------------------------------------------------------

result<std::filesystem::path> round_sender::next_dir(const std::filesystem::path& base) {
  auto dir = fresh_dir(base / ("round-" + std::to_string(++index_)));
  if (!dir) return dir;
  current_ = std::make_shared<dump_memory>();
  current_->dir = *dir;
  latest_ = *dir;
  std::lock_guard lock(mutex_);
  totals_ = {};
  return dir;
}

result<std::vector<transport::outgoing_file>> round_sender::files_for(const std::filesystem::path& dir,
                                                                      std::uint32_t chunk_bytes) {
  auto sets = images::read_all_page_sets(dir);
  if (!sets) return std::unexpected(sets.error());
  std::map<std::string, const images::page_set*> by_pages;
  for (auto& s : *sets) current_->sets[s.pagemap_name] = s;
  for (auto& [name, s] : current_->sets) by_pages[s.pages_name] = &s;

  std::vector<transport::outgoing_file> whole, deltas;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    std::string name = e.path().filename().string();
    auto it = by_pages.find(name);
    if (it == by_pages.end()) {
      std::lock_guard lock(mutex_);
      totals_.other_bytes += e.file_size(ec);
      whole.push_back({name, e.path()});
      continue;
    }
    const images::page_set* cur = it->second;
    transport::outgoing_file f{name, e.path()};
    f.pagemap = cur->pagemap_name;
    f.size = cur->stored_pages * images::page_bytes;
    // With nothing to compare against every page goes whole: the stream is
    // about the file's size (progress can say how far it is).
    if (!previous_) f.stream_bytes = f.size;
    f.produce = [this, cur, path = e.path(), chunk_bytes, prev = previous_,
                 now = current_](const transport::chunk_writer& write) -> result<std::string> {
      auto cur_fd = open_readonly(path);
      if (!cur_fd) return std::unexpected(cur_fd.error());
      images::previous_dump pd;
      unique_fd prev_fd;
      if (prev) {
        auto ps = prev->sets.find(cur->pagemap_name);
        auto ph = prev->hashes.find(cur->pagemap_name);
        if (ps != prev->sets.end() && ph != prev->hashes.end()) {
          auto fd = open_readonly(prev->dir / ps->second.pages_name);
          if (!fd) return std::unexpected(fd.error());
          prev_fd = std::move(*fd);
          pd = {&ps->second, &ph->second, prev_fd.get()};
        }
      }
      auto sink = [&](std::span<const std::uint8_t> bytes) -> result<void> {
        if (!write(bytes)) return fail(errc::cancelled, "stream abandoned");
        return {};
      };
      auto r = images::encode_delta(pd, *cur, cur_fd->get(), chunk_bytes, sink);
      if (!r) return std::unexpected(r.error());
      std::lock_guard lock(mutex_);
      add(totals_.pages, r->stats);
      now->hashes[cur->pagemap_name] = std::move(r->hashes);
      return std::string(reinterpret_cast<const char*>(r->tree_digest.data()), r->tree_digest.size());
    };
    deltas.push_back(std::move(f));
  }
  if (ec) return fail(errc::io, "list " + dir.string() + ": " + ec.message());
  // Pagemaps must arrive before the pages they describe.
  auto by_name = [](auto& a, auto& b) { return a.name < b.name; };
  std::sort(whole.begin(), whole.end(), by_name);
  std::sort(deltas.begin(), deltas.end(), by_name);
  whole.insert(whole.end(), std::make_move_iterator(deltas.begin()), std::make_move_iterator(deltas.end()));
  return whole;
}

void round_sender::delivered() {
  if (previous_) {
    std::error_code ec;
    std::filesystem::remove_all(previous_->dir, ec);
  }
  previous_ = current_;
}

round_totals round_sender::totals() const {
  std::lock_guard lock(mutex_);
  return totals_;
}

// --- destination ----------------------------------------------------------

namespace {

// Copies a file with copy_file_range (in the kernel, no user-space buffer),
// in steps, so a copy nobody needs any more stops early; a large one
// writes each step back as it goes (fs/writeback.hpp): a switch-over may
// come while it runs, and must not wait for GiBs of it.
bool copy_whole_file(const std::filesystem::path& from, const std::filesystem::path& to,
                     const std::atomic<bool>& cancel) {
  constexpr std::size_t step_bytes = 32u << 20;
  unique_fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  unique_fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!in || !out) return false;
  struct stat st {};
  const bool large = ::fstat(in.get(), &st) == 0 && std::uint64_t(st.st_size) >= fs::writeback_from_bytes;
  fs::write_behind behind(out.get());
  std::uint64_t done = 0;
  for (;;) {
    if (cancel.load()) return false;
    ssize_t n = ::copy_file_range(in.get(), nullptr, out.get(), nullptr, step_bytes, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    if (large) (void)behind.wrote(done, std::uint64_t(n));  // (only sooner on the disk: a failure changes nothing)
    done += std::uint64_t(n);
  }
}

class delta_sink final : public transport::chunk_sink {
 public:
  delta_sink(std::shared_ptr<dump_memory> prev, std::shared_ptr<dump_memory> cur, images::page_set set,
             unique_fd out, unique_fd prev_fd, bool in_place, std::mutex& m)
      : prev_(std::move(prev)), cur_(std::move(cur)), set_(std::move(set)), out_(std::move(out)),
        prev_fd_(std::move(prev_fd)), mutex_(m) {
    images::previous_dump pd;
    if (prev_) {
      auto ps = prev_->sets.find(set_.pagemap_name);
      auto ph = prev_->hashes.find(set_.pagemap_name);
      if (ps != prev_->sets.end() && ph != prev_->hashes.end()) pd = {&ps->second, &ph->second, prev_fd_.get()};
    }
    decoder_ = std::make_unique<images::delta_decoder>(pd, set_, out_.get(), in_place && pd.set);
  }

  result<void> feed(std::span<const std::uint8_t> chunk) override { return decoder_->feed(chunk); }

  result<void> finish(const pb::FileEnd& end) override {
    auto r = decoder_->finish();
    if (!r) return std::unexpected(r.error());
    const auto& want = end.tree_digest();
    if (want.size() != r->tree_digest.size() ||
        std::memcmp(want.data(), r->tree_digest.data(), want.size()) != 0)
      return fail(errc::checksum, set_.pages_name + ": rebuilt pages differ from the source's (page digest " +
                                      to_hex(r->tree_digest) + ", source has " + to_hex(auth::as_bytes(want)) + ")");
    std::lock_guard lock(mutex_);
    cur_->hashes[set_.pagemap_name] = std::move(r->hashes);
    cur_->sets[set_.pagemap_name] = set_;
    return {};
  }

 private:
  std::shared_ptr<dump_memory> prev_, cur_;
  images::page_set set_;
  unique_fd out_, prev_fd_;
  std::mutex& mutex_;
  std::unique_ptr<images::delta_decoder> decoder_;
};

}  // namespace

result<std::filesystem::path> round_receiver::begin_round(std::uint32_t index) {
  auto dir = fresh_dir(base_ / ("round-" + std::to_string(index)));
  if (!dir) return dir;
  current_ = std::make_shared<dump_memory>();
  current_->dir = *dir;
  return dir;
}

transport::receive_options round_receiver::options(asio::thread_pool& pool) {
  transport::receive_options o;
  o.pool = &pool;
  o.open_sink = [this](const pb::FileBegin& b,
                       const std::filesystem::path& file) -> result<std::unique_ptr<transport::chunk_sink>> {
    if (b.pagemap().find('/') != std::string::npos) return fail(errc::invalid_argument, "bad pagemap name");
    auto set = images::read_page_set(current_->dir, b.pagemap());
    if (!set) return std::unexpected(set.error());
    // A pagemap is a few bytes that may claim any number of pages: bound the
    // claim before anything (hash tables, the rebuilt file) is sized from it.
    if (set->stored_pages > max_pages_per_file)
      return fail(errc::protocol, b.pagemap() + " claims " + std::to_string(set->stored_pages) +
                                      " pages (at most " + std::to_string(max_pages_per_file) + ")");
    if (set->pages_name != b.path() || set->stored_pages * images::page_bytes != b.size())
      return fail(errc::protocol, b.path() + " does not match " + b.pagemap());
    unique_fd prev_fd;
    bool in_place = false;
    if (previous_) {
      auto ps = previous_->sets.find(set->pagemap_name);
      if (ps != previous_->sets.end()) {
        auto fd = open_readonly(previous_->dir / ps->second.pages_name);
        if (!fd) return std::unexpected(fd.error());
        prev_fd = std::move(*fd);
        // The background copy of the previous pages, if it is complete and
        // the pages sit at the same places, becomes this round's file.
        auto st = staged_.find(set->pagemap_name);
        if (st != staged_.end() && st->second->ready.load() && st->second->ok &&
            ps->second.same_layout(*set)) {
          std::error_code ec;
          std::filesystem::rename(st->second->file, file, ec);
          in_place = !ec;
          staged_.erase(st);
        } else if (st != staged_.end()) {
          // Not done yet (rounds come faster than the disk copies): the
          // decoder writes the whole file; a second copy would only compete.
          st->second->cancel.store(true);
          staged_.erase(st);
        }
      }
    }
    if (!in_place) {  // (patched in place, the file has its size already)
      struct statvfs fs {};
      if (::statvfs(current_->dir.c_str(), &fs) == 0 && b.size() > std::uint64_t(fs.f_bavail) * fs.f_frsize)
        return fail(errc::no_space, "no space left on device for " + b.path() + ": it needs " + mib_text(b.size()) +
                                        ", " + current_->dir.string() + " has " +
                                        mib_text(std::uint64_t(fs.f_bavail) * fs.f_frsize) + " free");
    }
    unique_fd out(::open(file.c_str(), O_RDWR | O_CREAT | (in_place ? 0 : O_TRUNC) | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!out) return fail_errno(errno, "create " + file.string());
    if (::ftruncate(out.get(), off_t(b.size())) != 0) return fail_errno(errno, "size " + file.string());
    if (in_place) ++patched_;
    return std::unique_ptr<transport::chunk_sink>(new delta_sink(
        previous_, current_, std::move(*set), std::move(out), std::move(prev_fd), in_place, mutex_));
  };
  return o;
}

void round_receiver::delivered(asio::thread_pool& pool, bool final) {
  for (auto& [name, copy] : staged_) copy->cancel.store(true);
  staged_.clear();
  if (final) return;
  std::error_code ec;
  if (previous_) std::filesystem::remove_all(previous_->dir, ec);
  previous_ = current_;
  patched_ = 0;
  // To the disk now, while the next round comes (fs/writeback.hpp).
  asio::post(pool, [dir = previous_->dir] { (void)fs::start_writeback(dir); });
  // Copies still running for an older round stop soon, in their own
  // directory, which the next delivery removes.
  const auto stage = base_ / ("stage-" + std::to_string(++rounds_delivered_));
  std::filesystem::remove_all(base_ / ("stage-" + std::to_string(rounds_delivered_ - 1)), ec);
  std::filesystem::create_directories(stage, ec);
  if (ec) return;  // no staging: the next round copies what it needs
  for (auto& [pagemap, set] : previous_->sets) {
    auto copy = std::make_shared<staged_copy>();
    copy->file = stage / set.pages_name;
    staged_[pagemap] = copy;
    asio::post(pool, [copy, from = previous_->dir / set.pages_name] {
      copy->ok = copy_whole_file(from, copy->file, copy->cancel);
      copy->ready.store(true);
    });
  }
}

}  // namespace migrated::migration
