// The migration journal on disk (see journal.hpp).
#include "migration/journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/hash.hpp"

namespace migrated::migration::journal {
namespace {

using json = nlohmann::json;

constexpr std::string_view suffix = ".json";
constexpr std::string_view tmp_suffix = ".json.tmp";

bool valid_id(const std::string& id) {
  static const std::regex re("m-[0-9a-f]{1,32}");
  return std::regex_match(id, re);
}

std::string digest_of(std::string_view body) {
  const auto d = xxh128(std::span(reinterpret_cast<const std::uint8_t*>(body.data()), body.size()));
  return to_hex(d);
}

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// fsync of a directory: a rename or an unlink in it is durable afterwards.
result<void> sync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail_errno(errno, "open " + dir.string());
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return fail_errno(err, "fsync " + dir.string());
  return {};
}

result<void> write_synced(const std::filesystem::path& file, std::string_view text) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fail_errno(errno, "open " + file.string());
  std::size_t done = 0;
  while (done < text.size()) {
    const auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return fail_errno(err, "write " + file.string());
    }
    done += std::size_t(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return fail_errno(err, "fsync " + file.string());
  }
  if (::close(fd) != 0) return fail_errno(errno, "close " + file.string());
  return {};
}

}  // namespace

std::string_view name(role r) { return r == role::source ? "source" : "destination"; }

std::string_view name(step s) {
  switch (s) {
    case step::accepted: return "accepted";
    case step::stopping: return "stopping";
    case step::stopped: return "stopped";
    case step::committing: return "committing";
    case step::committed: return "committed";
    case step::receiving: return "receiving";
    case step::restored: return "restored";
  }
  return "unknown";
}

std::optional<step> parse_step(std::string_view s) {
  for (auto st : {step::accepted, step::stopping, step::stopped, step::committing, step::committed,
                  step::receiving, step::restored})
    if (name(st) == s) return st;
  return std::nullopt;
}

bool valid_for(role r, step s) {
  if (s == step::committed) return true;
  const bool dest = s == step::receiving || s == step::restored;
  return (r == role::destination) == dest;
}

std::string encode(const entry& e) {
  const json j = {{"migration_id", e.migration_id},
                  {"role", name(e.side)},
                  {"state", name(e.state)},
                  {"container", e.container},
                  {"runtime", e.runtime},
                  {"method", e.method},
                  {"peer", e.peer},
                  {"images", e.images.string()},
                  {"bundle", e.bundle.string()},
                  {"frozen", e.frozen},
                  {"updated_unix_ms", e.updated_unix_ms}};
  const std::string body = j.dump();
  return body + "\n" + digest_of(body) + "\n";
}

result<entry> decode(std::string_view text, std::string_view where) {
  auto bad = [&](const std::string& why) {
    return fail(errc::checksum, "journal " + std::string(where) + ": " + why +
                                    " (a torn or corrupt record: left in place, nothing done for it)");
  };
  const auto nl = text.find('\n');
  if (nl == std::string_view::npos) return bad("no checksum line");
  const std::string_view body = text.substr(0, nl);
  std::string_view sum = text.substr(nl + 1);
  while (!sum.empty() && (sum.back() == '\n' || sum.back() == '\r')) sum.remove_suffix(1);
  if (sum != digest_of(body)) return bad("checksum mismatch");
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  entry e;
  try {
    e.migration_id = j.at("migration_id").get<std::string>();
    const auto r = j.at("role").get<std::string>();
    if (r != "source" && r != "destination") return bad("unknown role '" + r + "'");
    e.side = r == "source" ? role::source : role::destination;
    const auto st = parse_step(j.at("state").get<std::string>());
    if (!st || !valid_for(e.side, *st)) return bad("state '" + j.at("state").get<std::string>() + "' is not one of a " + r);
    e.state = *st;
    e.container = j.at("container").get<std::string>();
    e.runtime = j.at("runtime").get<std::string>();
    e.method = j.value("method", "");
    e.peer = j.value("peer", "");
    e.images = j.value("images", "");
    e.bundle = j.value("bundle", "");
    e.frozen = j.value("frozen", false);
    e.updated_unix_ms = j.value("updated_unix_ms", std::int64_t{0});
  } catch (const json::exception& ex) {
    return bad(std::string("missing or mistyped field: ") + ex.what());
  }
  if (!valid_id(e.migration_id)) return bad("bad migration id '" + e.migration_id + "'");
  if (e.container.empty() || e.runtime.empty()) return bad("no container or runtime");
  return e;
}

std::filesystem::path store::file_of(const std::string& migration_id) const {
  return dir_ / (migration_id + std::string(suffix));
}

result<void> store::open() {
  std::error_code ec;
  const bool made = std::filesystem::create_directories(dir_, ec);
  if (ec) return fail(errc::io, "journal " + dir_.string() + ": " + ec.message());
  if (!std::filesystem::is_directory(dir_, ec)) return fail(errc::io, "journal " + dir_.string() + ": not a directory");
  if (made)
    if (auto ok = sync_dir(dir_.parent_path()); !ok) return std::unexpected(ok.error().context("journal"));
  for (auto& f : std::filesystem::directory_iterator(dir_, ec)) {
    const auto n = f.path().filename().string();
    if (n.size() > tmp_suffix.size() && n.ends_with(tmp_suffix)) std::filesystem::remove(f.path(), ec);
  }
  return {};
}

result<void> store::write(entry e) {
  if (!valid_id(e.migration_id)) return fail(errc::invalid_argument, "journal: bad migration id '" + e.migration_id + "'");
  if (!valid_for(e.side, e.state))
    return fail(errc::internal, "journal: state " + std::string(name(e.state)) + " is not one of a " + std::string(name(e.side)));
  e.updated_unix_ms = unix_ms(std::chrono::system_clock::now());
  const auto file = file_of(e.migration_id);
  const auto tmp = dir_ / (e.migration_id + std::string(tmp_suffix));
  if (auto ok = write_synced(tmp, encode(e)); !ok) return std::unexpected(ok.error().context("journal"));
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    return fail(errc::io, "journal: rename " + tmp.string() + " to " + file.string() + ": " + ec.message());
  }
  return with_context(sync_dir(dir_), "journal");
}

result<void> store::remove(const std::string& migration_id) {
  if (!valid_id(migration_id)) return fail(errc::invalid_argument, "journal: bad migration id '" + migration_id + "'");
  std::error_code ec;
  if (!std::filesystem::remove(file_of(migration_id), ec)) {
    if (ec) return fail(errc::io, "journal: remove " + file_of(migration_id).string() + ": " + ec.message());
    return {};
  }
  return with_context(sync_dir(dir_), "journal");
}

result<entry> store::read(const std::string& migration_id) const {
  if (!valid_id(migration_id)) return fail(errc::invalid_argument, "journal: bad migration id '" + migration_id + "'");
  const auto file = file_of(migration_id);
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(errc::not_found, "journal: no record of " + migration_id);
  std::stringstream text;
  text << in.rdbuf();
  auto e = decode(text.str(), file.string());
  if (e && e->migration_id != migration_id)
    return fail(errc::checksum, "journal " + file.string() + ": records migration " + e->migration_id);
  return e;
}

store::contents store::load() const {
  contents c;
  std::error_code ec;
  for (auto& f : std::filesystem::directory_iterator(dir_, ec)) {
    const auto n = f.path().filename().string();
    if (n.ends_with(tmp_suffix) || !n.ends_with(suffix)) continue;
    const auto id = n.substr(0, n.size() - suffix.size());
    auto e = read(id);
    if (e) c.entries.push_back(std::move(*e));
    else c.refused.push_back({id, e.error()});
  }
  if (ec) c.refused.push_back({"", error{errc::io, "journal " + dir_.string() + ": " + ec.message()}});
  std::sort(c.entries.begin(), c.entries.end(),
            [](const entry& a, const entry& b) { return a.updated_unix_ms < b.updated_unix_ms; });
  return c;
}

void store::prune(std::chrono::system_clock::time_point now) {
  auto all = load();
  std::vector<entry> kept;
  for (auto& e : all.entries)
    if (e.side == role::destination && e.state == step::committed) kept.push_back(e);
  const auto oldest = unix_ms(now - committed_kept);
  std::size_t over = kept.size() > committed_max ? kept.size() - committed_max : 0;
  for (auto& e : kept) {  // oldest first (load() sorts)
    if (over == 0 && e.updated_unix_ms >= oldest) break;
    if (over) --over;
    (void)remove(e.migration_id);
  }
}

}  // namespace migrated::migration::journal
