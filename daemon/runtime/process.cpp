// posix_spawn + a polling waitpid with a deadline. Output is captured in
// memfds (see process.hpp for why not pipes) and trimmed to its tail.
#include "runtime/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

extern char** environ;

namespace migrated::runtime {
namespace {

constexpr std::size_t max_captured = 64 * 1024;

std::string read_tail(int fd) {
  off_t size = ::lseek(fd, 0, SEEK_END);
  if (size <= 0) return {};
  off_t start = size > off_t(max_captured) ? size - off_t(max_captured) : 0;
  std::string s(std::size_t(size - start), '\0');
  ssize_t n = ::pread(fd, s.data(), s.size(), start);
  s.resize(n > 0 ? std::size_t(n) : 0);
  return s;
}

struct fds {
  int out = -1, err = -1;
  ~fds() {
    if (out >= 0) ::close(out);
    if (err >= 0) ::close(err);
  }
};

}  // namespace

std::string process_result::summary() const {
  std::string status = signal ? "killed by signal " + std::to_string(signal) : "exit " + std::to_string(exit_code);
  std::string text = err.empty() ? out : err;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  auto nl = text.rfind('\n');
  std::string last = nl == std::string::npos ? text : text.substr(nl + 1);
  return last.empty() ? status : status + ": " + last;
}

result<process_result> run_blocking(const std::vector<std::string>& argv, const process_options& opts) {
  if (argv.empty()) return fail(errc::internal, "run: empty command");
  fds f;
  f.out = ::memfd_create("child-stdout", MFD_CLOEXEC);
  f.err = ::memfd_create("child-stderr", MFD_CLOEXEC);
  if (f.out < 0 || f.err < 0) return fail_errno(errno, "memfd_create");

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (opts.discard_output) {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  } else {
    posix_spawn_file_actions_adddup2(&actions, f.out, 1);
    posix_spawn_file_actions_adddup2(&actions, f.err, 2);
  }
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

  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc == ENOENT) return fail(errc::not_found, argv[0] + ": not found");
  if (rc != 0) return fail_errno(rc, "spawn " + argv[0]);

  int status = 0;
  bool killed = false;
  auto deadline = t0 + opts.timeout;
  for (auto sleep = std::chrono::microseconds(200);;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) return fail_errno(errno, "waitpid " + argv[0]);
    if (!killed && std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(sleep);
    sleep = std::min(sleep * 2, std::chrono::microseconds(5000));
  }
  process_result r;
  r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  r.out = read_tail(f.out);
  r.err = read_tail(f.err);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  if (killed)
    return fail(errc::timeout, argv[0] + " did not finish within " + std::to_string(opts.timeout.count()) + " ms (killed)");
  return r;
}

awaitable<result<process_result>> run(asio::thread_pool& pool, const std::vector<std::string>& argv,
                                      const process_options& opts) {
  co_return co_await offload(pool, [&argv, &opts] { return run_blocking(argv, opts); });
}

}  // namespace migrated::runtime
