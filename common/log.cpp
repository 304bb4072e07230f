// Logging: one spdlog logger per module, all writing to one sink that the
// configuration picks (stderr, a file, or journald).
//
// Why a forwarding sink: every module logger holds the same dist_sink, and
// setup() swaps what that sink forwards to. spdlog guards the dist_sink's
// list with its own mutex, whereas replacing a logger's sink vector while
// another thread logs through it is a data race; so setup() may run again
// (after a reload, or between tests) without touching live loggers.
//
// Why a journald sink of our own: spdlog's systemd_sink sends a fixed set of
// fields, and operators need MIGRATION_ID=, PHASE= and MODULE= to follow one
// migration across modules with journalctl. event() publishes the id and the
// phase in a thread_local just around its logging call; loggers are
// synchronous, so the sink runs on the same thread, inside that window, and
// reads them there. Text sinks get the same facts in the line itself:
// "[<id>] <phase>: <message>".

#include "common/log.hpp"

#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <array>
#include <map>
#include <mutex>
#include <vector>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

// Without this, every entry would claim to come from sink_it_() below; the
// caller's location is added from spdlog's log_msg when it has one.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

namespace migrated::log {
namespace {

// Time, level, module, message; journald keeps its own timestamp and level.
constexpr const char* text_pattern = "%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %n: %v";
constexpr const char* journal_socket = "/run/systemd/journal/socket";

// The migration the current event() call is about; empty outside one.
struct event_fields {
  std::string_view id;
  std::string_view phase;
  bool active = false;
  std::span<const field> extra;  // more journald fields (summary())
};
thread_local event_fields current_event;

class event_scope {
 public:
  event_scope(std::string_view id, std::string_view phase, std::span<const field> extra = {})
      : saved_(current_event) {
    current_event = event_fields{id, phase, true, extra};
  }
  ~event_scope() { current_event = saved_; }
  event_scope(const event_scope&) = delete;
  event_scope& operator=(const event_scope&) = delete;

 private:
  event_fields saved_;
};

int syslog_priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug: return LOG_DEBUG;
    case spdlog::level::info: return LOG_INFO;
    case spdlog::level::warn: return LOG_WARNING;
    case spdlog::level::err: return LOG_ERR;
    case spdlog::level::critical: return LOG_CRIT;
    default: return LOG_INFO;
  }
}

std::string field_text(std::string_view name, std::string_view value) {
  std::string text(name);
  text += '=';
  text.append(value);
  return text;
}

class journald_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit journald_sink(std::string_view ident)
      : identifier_(field_text("SYSLOG_IDENTIFIER", ident)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::vector<std::string> fields;
    fields.reserve(9 + current_event.extra.size());
    fields.push_back(field_text("MESSAGE", {msg.payload.data(), msg.payload.size()}));
    fields.push_back(field_text("PRIORITY", std::to_string(syslog_priority(msg.level))));
    fields.push_back(identifier_);
    fields.push_back(field_text("MODULE", {msg.logger_name.data(), msg.logger_name.size()}));
    if (current_event.active) {
      fields.push_back(field_text("MIGRATION_ID", current_event.id));
      fields.push_back(field_text("PHASE", current_event.phase));
      for (const auto& f : current_event.extra) fields.push_back(field_text(f.name, f.value));
    }
    if (!msg.source.empty()) {
      fields.push_back(field_text("CODE_FILE", msg.source.filename));
      fields.push_back(field_text("CODE_LINE", std::to_string(msg.source.line)));
      fields.push_back(field_text("CODE_FUNC", msg.source.funcname ? msg.source.funcname : ""));
    }
    std::vector<iovec> vector(fields.size());
    for (std::size_t i = 0; i < fields.size(); ++i)
      vector[i] = iovec{fields[i].data(), fields[i].size()};
    // A failure reaches the logger's error handler; the caller never sees it.
    if (const int r = sd_journal_sendv(vector.data(), static_cast<int>(fields.size())); r < 0)
      throw spdlog::spdlog_ex("sd_journal_sendv", -r);
  }
  void flush_() override {}

 private:
  std::string identifier_;
};

// Fails at start-up, in one sentence, when journald cannot take our lines,
// rather than losing every line later.
result<void> probe_journal() {
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail_errno(errno, "log sink journald: socket");
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, journal_socket, sizeof(address.sun_path) - 1);
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  const int err = errno;
  ::close(fd);
  if (rc == 0) return {};
  return fail(errc::unsupported, std::string("log sink journald: cannot reach ") + journal_socket +
                                     ": " + std::strerror(err) + " (is systemd-journald running?)");
}

spdlog::sink_ptr make_stderr_sink() {
  const auto mode = ::isatty(STDERR_FILENO) ? spdlog::color_mode::automatic
                                            : spdlog::color_mode::never;
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(mode);
  sink->set_pattern(text_pattern);
  return sink;
}

result<spdlog::sink_ptr> make_sink(const options& opts) {
  if (opts.sink == "stderr") return make_stderr_sink();
  if (opts.sink == "journald") {
    if (auto reachable = probe_journal(); !reachable) return std::unexpected(reachable.error());
    return std::make_shared<journald_sink>(opts.ident);
  }
  if (opts.sink != "file")
    return fail(errc::config, "log.sink: unknown sink '" + opts.sink +
                                  "' (expected stderr, journald or file)");
  if (opts.file.empty()) return fail(errc::config, "log.file: required when log.sink is file");
  try {
    auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(opts.file, false);
    sink->set_pattern(text_pattern);
    return sink;
  } catch (const spdlog::spdlog_ex& e) {
    return fail(errc::io, "log.file: " + std::string(e.what()));
  }
}

result<spdlog::level::level_enum> parse_level(std::string_view name) {
  static constexpr std::pair<std::string_view, spdlog::level::level_enum> levels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err}};
  for (const auto& [text, level] : levels)
    if (text == name) return level;
  return fail(errc::config, "log.level: unknown level '" + std::string(name) +
                                "' (expected trace, debug, info, warn or error)");
}

struct registry {
  std::mutex mutex;
  // Every module logger's only sink; setup() changes what it forwards to.
  std::shared_ptr<spdlog::sinks::dist_sink_mt> sink =
      std::make_shared<spdlog::sinks::dist_sink_mt>();
  spdlog::level::level_enum level = spdlog::level::info;
  std::map<std::string, std::shared_ptr<spdlog::logger>, std::less<>> loggers;

  registry() { sink->set_sinks({make_stderr_sink()}); }  // until setup() runs
};

registry& state() {
  static registry instance;
  return instance;
}

}  // namespace

result<void> setup(const options& opts) {
  auto level = parse_level(opts.level);
  if (!level) return std::unexpected(level.error());
  auto sink = make_sink(opts);
  if (!sink) return std::unexpected(sink.error());
  registry& r = state();
  const std::lock_guard lock(r.mutex);
  r.level = *level;
  r.sink->set_sinks({*sink});
  for (const auto& [name, logger] : r.loggers) logger->set_level(*level);
  return {};
}

std::shared_ptr<spdlog::logger> get(std::string_view module) {
  registry& r = state();
  const std::lock_guard lock(r.mutex);
  if (auto it = r.loggers.find(module); it != r.loggers.end()) return it->second;
  auto logger = std::make_shared<spdlog::logger>(std::string(module), r.sink);
  logger->set_level(r.level);
  // Every line reaches the file at once: a daemon that dies mid-migration
  // must leave its last words behind, and the volume is modest.
  logger->flush_on(spdlog::level::trace);
  spdlog::drop(logger->name());  // ours replaces any stale one of that name
  spdlog::register_logger(logger);
  r.loggers.emplace(logger->name(), logger);
  return logger;
}

void event(spdlog::logger& logger, spdlog::level::level_enum level,
           std::string_view migration_id, std::string_view phase, std::string_view message) {
  if (!logger.should_log(level)) return;
  const event_scope scope(migration_id, phase);
  logger.log(level, "[{}] {}: {}", migration_id, phase, message);
}

void summary(spdlog::logger& logger, spdlog::level::level_enum level, std::string_view migration_id,
             std::span<const field> fields, std::string_view message) {
  if (!logger.should_log(level)) return;
  const event_scope scope(migration_id, "finished", fields);
  logger.log(level, "[{}] finished: {}", migration_id, message);
}

}  // namespace migrated::log
