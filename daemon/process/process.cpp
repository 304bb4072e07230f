// posix_spawn (the child gets 0-2 and the descriptors passed, nothing
// else), then a pidfd awaited on the reactor with a deadline (see
// process.hpp). Output is captured in memfds and trimmed to its tail.
#include "process/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read.hpp>

#include "common/unique_fd.hpp"

extern char** environ;

namespace migrated::process {
namespace {

constexpr std::size_t max_captured = 64 * 1024;

// glibc 2.36 declares these without C linkage in C++; the system calls are simple.
int pidfd_open(pid_t pid) { return int(::syscall(SYS_pidfd_open, pid, 0)); }
int pidfd_kill(int pidfd) { return int(::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0)); }

std::string read_tail(int fd) {
  off_t size = ::lseek(fd, 0, SEEK_END);
  if (size <= 0) return {};
  off_t start = size > off_t(max_captured) ? size - off_t(max_captured) : 0;
  std::string s(std::size_t(size - start), '\0');
  ssize_t n = ::pread(fd, s.data(), s.size(), start);
  s.resize(n > 0 ? std::size_t(n) : 0);
  return s;
}

// What the deadline's handler may touch after the coroutine has gone: it
// runs on the same thread, and does nothing once the child was reaped.
struct watch {
  unique_fd pidfd;
  bool reaped = false;
  bool killed = false;
};

result<pid_t> spawn(const std::vector<std::string>& argv, const options& opts, int in, int out, int err) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (in >= 0) posix_spawn_file_actions_adddup2(&actions, in, 0);
  else posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (opts.discard_output) {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  } else {
    posix_spawn_file_actions_adddup2(&actions, out, 1);
    posix_spawn_file_actions_adddup2(&actions, err, 2);
  }
  // Then nothing else: a descriptor of ours that is not close-on-exec (a
  // socket Asio made) would keep a peer or a socketpair open for as long
  // as the child lives. Closing one that is not open is no error here.
  int highest = 2;
  for (const auto& [ours, theirs] : opts.pass_fds) {
    posix_spawn_file_actions_adddup2(&actions, ours, theirs);
    highest = std::max(highest, theirs);
  }
  for (int fd = 3; fd < highest; ++fd) {
    const bool passed = std::any_of(opts.pass_fds.begin(), opts.pass_fds.end(),
                                    [fd](const auto& p) { return p.second == fd; });
    if (!passed) posix_spawn_file_actions_addclose(&actions, fd);
  }
  posix_spawn_file_actions_addclosefrom_np(&actions, highest + 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  for (auto& e : opts.extra_env) env.push_back(e);
  std::vector<char*> envp, args;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc == ENOENT) return fail(errc::not_found, argv[0] + ": not found");
  if (rc != 0) return fail_errno(rc, "spawn " + argv[0]);
  return pid;
}

}  // namespace

std::string result_of_run::summary() const {
  std::string status = signal ? "killed by signal " + std::to_string(signal) : "exit " + std::to_string(exit_code);
  std::string text = err.empty() ? out : err;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  auto nl = text.rfind('\n');
  std::string last = nl == std::string::npos ? text : text.substr(nl + 1);
  return last.empty() ? status : status + ": " + last;
}

awaitable<result<result_of_run>> run(const std::vector<std::string>& argv, const options& opts) {
  if (argv.empty()) co_return fail(errc::internal, "run: empty command");
  unique_fd out(::memfd_create("child-stdout", MFD_CLOEXEC));
  unique_fd err(::memfd_create("child-stderr", MFD_CLOEXEC));
  if (!out || !err) co_return fail_errno(errno, "memfd_create");

  unique_fd in;  // the input, in a memory file read from its start
  if (!opts.input.empty()) {
    in.reset(::memfd_create("child-stdin", MFD_CLOEXEC));
    if (!in || ::write(in.get(), opts.input.data(), opts.input.size()) != ssize_t(opts.input.size()) ||
        ::lseek(in.get(), 0, SEEK_SET) != 0)
      co_return fail_errno(errno, "stdin for " + argv[0]);
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto pid = spawn(argv, opts, in ? in.get() : -1, out.get(), err.get());
  if (!pid) co_return std::unexpected(pid.error());
  auto w = std::make_shared<watch>();
  w->pidfd.reset(pidfd_open(*pid));
  const int watched = w->pidfd ? ::fcntl(w->pidfd.get(), F_DUPFD_CLOEXEC, 0) : -1;
  if (watched < 0) {
    const int e = errno;
    ::kill(*pid, SIGKILL);
    ::waitpid(*pid, nullptr, 0);
    co_return fail_errno(e, "pidfd for " + argv[0]);
  }

  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer deadline(ex, opts.timeout);
  deadline.async_wait([w](boost::system::error_code ec) {
    if (ec || w->reaped) return;
    w->killed = true;
    pidfd_kill(w->pidfd.get());
  });
  // The reactor watches a duplicate: it closes its own descriptor however
  // the wait ends, and the watch keeps the one the deadline signals. (The
  // reactor makes the shared file description non-blocking, so waitid may
  // say "not yet" after a wake-up that was not the exit: wait again then.)
  asio::posix::stream_descriptor exited(ex, watched);
  siginfo_t info{};
  for (;;) {
    boost::system::error_code ec;
    co_await exited.async_wait(asio::posix::descriptor_base::wait_read, asio::redirect_error(use_awaitable, ec));
    if (ec) pidfd_kill(w->pidfd.get());  // the wait itself failed: end the child rather than lose it
    info = siginfo_t{};
    const int rc = ::waitid(P_PIDFD, id_t(w->pidfd.get()), &info, WEXITED | WNOHANG);
    if (rc == 0 && info.si_pid != 0) break;
    if (rc != 0 && errno != EAGAIN && errno != EINTR) {
      const int e = errno;
      pidfd_kill(w->pidfd.get());
      co_return fail_errno(e, "waitid " + argv[0]);
    }
  }
  w->reaped = true;
  deadline.cancel();

  result_of_run r;
  r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  r.out = read_tail(out.get());
  r.err = read_tail(err.get());
  if (info.si_code == CLD_EXITED) r.exit_code = info.si_status;
  else r.signal = info.si_status;
  if (w->killed)
    co_return fail(errc::timeout, argv[0] + " did not finish within " + std::to_string(opts.timeout.count()) + " ms (killed)");
  co_return r;
}

awaitable<result<void>> await_status(int fd, std::chrono::milliseconds deadline) {
  struct watch {
    asio::posix::stream_descriptor pipe;
    bool expired = false;
  };
  auto ex = co_await asio::this_coro::executor;
  auto w = std::make_shared<watch>(watch{asio::posix::stream_descriptor(ex, fd)});
  asio::steady_timer timer(ex, deadline);
  timer.async_wait([w](boost::system::error_code ec) {
    if (ec) return;
    w->expired = true;
    w->pipe.cancel();
  });
  char byte = 0;
  boost::system::error_code ec;
  co_await asio::async_read(w->pipe, asio::buffer(&byte, 1), asio::redirect_error(use_awaitable, ec));
  timer.cancel();
  if (w->expired) co_return fail(errc::timeout, "not ready within " + std::to_string(deadline.count()) + " ms");
  if (ec) co_return fail(errc::peer, "it ended before it was ready");
  co_return result<void>{};
}

}  // namespace migrated::process
