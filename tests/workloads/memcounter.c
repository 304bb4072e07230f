// memcounter: a self-verifying workload for migration tests. It runs as a
// container's init, keeps N MiB of anonymous memory whose every byte is
// derivable from (boot id, page index, page generation), rewrites pages at a
// chosen rate and checks them all continuously. A migration that loses,
// corrupts or resurrects a stale copy of any page raises `corrupt`; one that
// restarts the process changes `boot`; the counter must only grow.
//
// The expected generation of each page is not stored next to the page: it
// follows from one counter of pages rewritten so far (the rewrite cursor
// walks the pages in order), so a page restored from an older pre-copy round
// is caught even though its own header is self-consistent.
//
// Each tick it writes STATE/status atomically (tmp + rename) and appends a
// line to STATE/ticks.log through a descriptor held open for its lifetime, so
// a restore must bring back open files and file data that match.
//
// It also has a network side (unless --no-net): a server listening on
// 127.0.0.1 and one TCP connection to it, held for the process's lifetime.
// Every tick the client sends the next number of a sequence, the server
// checks that it follows the last one and echoes it, and the client checks
// the echo. A move that loses the loopback, the connection or a byte of
// either stream counts in net_errors; there is no code to reconnect, and
// net_port (the client's local port) shows it is the same connection.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <linux/io_uring.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE_MAGIC 0x6d656d636f756e74ull  // "memcount"
#define HEADER_WORDS 4                     // magic, index, generation, boot
#ifndef TICKS_LOG_MAX
#define TICKS_LOG_MAX (1 << 20)            // ticks.log is cut back beyond this
#endif

enum { MODE_PAGES, MODE_BYTES };
enum { CONTENT_RANDOM, CONTENT_COMPRESSIBLE };

static struct {
  unsigned long mib, dirty_mib_s, tick_ms, grow_every_ms, grow_mib;
  int dirty_mode, content, net;
  const char *state;
} opt = {16, 1, 100, 0, 1, MODE_PAGES, CONTENT_RANDOM, 1, "/data"};

// The network side (see the top of the file).
static struct {
  int listen_fd, client_fd, server_fd;
  unsigned port, client_port;
  uint64_t sent, echoed, errors;       // numbers sent, echoes verified, breaks seen
  uint64_t server_next, client_next;  // the number each end expects next
  unsigned char srv_buf[8], cli_buf[8];
  size_t srv_have, cli_have;          // bytes of a partial number
  int alive;
} net = {-1, -1, -1, 0, 0, 0, 0, 0, 1, 1, {0}, {0}, 0, 0, 0};

// Mappings added while running (--grow-every-ms): each a fresh mmap that the
// kernel usually places below the others, so every page after it moves in a
// checkpoint's pages file. Content is fixed and derivable; checked each tick.
enum { MAX_REGIONS = 64 };
static struct { uint64_t *mem; size_t npages; } regions[MAX_REGIONS];
static size_t nregions;
static void grow(void);
static void verify_regions(void);

static struct {
  uint64_t boot, counter, corrupt, passes, max_gap_ms, last_gap_ms;
  uint64_t rewritten;   // pages rewritten since start; fixes every generation
  uint64_t dirty_acc;   // fractional pages carried to the next tick (x1000)
  uint64_t verify_at;   // rolling verification cursor
  size_t npages, words; // words of 8 bytes per page
  uint64_t *mem;
  int log_fd;
} st;

static volatile sig_atomic_t stop;

static void on_term(int sig) { (void)sig; stop = 1; }

static uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27; x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static uint64_t seed_of(uint64_t index, uint64_t gen) {
  return mix(st.boot ^ mix(index * 0x9e3779b97f4a7c15ull ^ mix(gen + 1)));
}

// Word k of a body seeded by `seed`; random access, one multiply.
static uint64_t body_word(uint64_t seed, uint64_t k) {
  uint64_t x = seed + k * 0x9e3779b97f4a7c15ull;
  x ^= x >> 32; x *= 0xd6e8feb86659fd93ull; x ^= x >> 32;
  if (opt.content == CONTENT_COMPRESSIBLE && k % 8 != 0) return PAGE_MAGIC;
  return x;
}

// What a page of a given generation holds. In bytes mode the body depends
// on (boot, index) only and one word, chosen by the generation, carries a
// stamp: a rewrite changes a few bytes. In pages mode every word changes.
struct layout { uint64_t body_seed, stamp; size_t slot; };

static struct layout layout_of(uint64_t index, uint64_t gen) {
  struct layout l = {seed_of(index, gen), 0, (size_t)-1};
  if (opt.dirty_mode == MODE_BYTES) {
    l.stamp = ~l.body_seed;
    l.slot = HEADER_WORDS + mix(l.body_seed) % (st.words - HEADER_WORDS);
    l.body_seed = seed_of(index, 0);
  }
  return l;
}

static uint64_t expected_word(const struct layout *l, size_t k) {
  return k == l->slot ? l->stamp : body_word(l->body_seed, k);
}

static uint64_t expected_gen(uint64_t index) {
  return st.rewritten / st.npages + (index < st.rewritten % st.npages);
}

static void write_header(uint64_t *p, uint64_t index, uint64_t gen) {
  p[0] = PAGE_MAGIC; p[1] = index; p[2] = gen; p[3] = st.boot;
}

static void fill_page(uint64_t index, uint64_t gen) {
  uint64_t *p = st.mem + index * st.words;
  struct layout l = layout_of(index, gen);
  for (size_t k = HEADER_WORDS; k < st.words; k++) p[k] = expected_word(&l, k);
  write_header(p, index, gen);
}

static void rewrite_page(uint64_t index, uint64_t gen) {
  uint64_t *p = st.mem + index * st.words;
  if (opt.dirty_mode == MODE_PAGES || gen == 0) { fill_page(index, gen); return; }
  struct layout old = layout_of(index, gen - 1), now = layout_of(index, gen);
  p[old.slot] = body_word(old.body_seed, old.slot);
  p[now.slot] = now.stamp;
  p[2] = gen;
}

static int page_ok(uint64_t index) {
  const uint64_t *p = st.mem + index * st.words;
  uint64_t gen = expected_gen(index);
  if (p[0] != PAGE_MAGIC || p[1] != index || p[2] != gen || p[3] != st.boot) return 0;
  struct layout l = layout_of(index, gen);
  for (size_t k = HEADER_WORDS; k < st.words; k++)
    if (p[k] != expected_word(&l, k)) return 0;
  return 1;
}

static void dirty_pages(void) {
  size_t per_mib = (1u << 20) / (st.words * 8);
  st.dirty_acc += opt.dirty_mib_s * per_mib * opt.tick_ms;
  uint64_t n = st.dirty_acc / 1000;
  st.dirty_acc %= 1000;
  for (uint64_t i = 0; i < n; i++) {
    uint64_t index = st.rewritten % st.npages;
    st.rewritten++;
    rewrite_page(index, expected_gen(index));
  }
}

// All pages each tick up to 64 MiB; beyond, a window sized so that every
// page is seen about every 2 s.
static void verify_pages(void) {
  size_t window = st.npages;
  if (opt.mib > 64) window = (st.npages * opt.tick_ms + 1999) / 2000;
  if (window > st.npages) window = st.npages;
  for (size_t i = 0; i < window; i++) {
    if (!page_ok(st.verify_at)) st.corrupt++;
    if (++st.verify_at == st.npages) { st.verify_at = 0; st.passes++; }
  }
}

// Wall clock for gaps (comparable across hosts), monotonic for pacing.
static uint64_t clock_ms(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t now_ms(void) { return clock_ms(CLOCK_REALTIME); }

static void write_status(uint64_t time_ms) {
  char path[4096], tmp[4096], line[512];
  snprintf(path, sizeof path, "%s/status", opt.state);
  snprintf(tmp, sizeof tmp, "%s/status.tmp", opt.state);
  int n = snprintf(line, sizeof line,
                   "boot=%016llx counter=%llu corrupt=%llu verified_passes=%llu "
                   "max_gap_ms=%llu last_gap_ms=%llu mib=%lu regions=%zu time_ms=%llu "
                   "net_alive=%d net_port=%u net_sent=%llu net_echoed=%llu net_errors=%llu "
                   "rewritten=%llu\n",
                   (unsigned long long)st.boot, (unsigned long long)st.counter,
                   (unsigned long long)st.corrupt, (unsigned long long)st.passes,
                   (unsigned long long)st.max_gap_ms, (unsigned long long)st.last_gap_ms,
                   opt.mib, nregions, (unsigned long long)time_ms, net.alive, net.client_port,
                   (unsigned long long)net.sent, (unsigned long long)net.echoed,
                   (unsigned long long)net.errors, (unsigned long long)st.rewritten);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t w = write(fd, line, (size_t)n);
  close(fd);
  if (w == n) rename(tmp, path);
}

static void append_tick(uint64_t time_ms) {
  struct stat sb;
  char line[128];
  if (fstat(st.log_fd, &sb) == 0 && sb.st_size > TICKS_LOG_MAX) {
    if (ftruncate(st.log_fd, 0) == 0) lseek(st.log_fd, 0, SEEK_SET);
  }
  int n = snprintf(line, sizeof line, "counter=%llu time_ms=%llu corrupt=%llu\n",
                   (unsigned long long)st.counter, (unsigned long long)time_ms,
                   (unsigned long long)st.corrupt);
  ssize_t w = write(st.log_fd, line, (size_t)n);  // a full disk is not corruption
  (void)w;
}

static void sleep_ms(uint64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !stop) {}
}

static void net_setup(void) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int one = 1;
  net.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (net.listen_fd < 0 || bind(net.listen_fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      listen(net.listen_fd, 4) < 0 || getsockname(net.listen_fd, (struct sockaddr *)&a, &len) < 0) {
    perror("memcounter: listen on 127.0.0.1");
    exit(1);
  }
  net.port = ntohs(a.sin_port);
  net.client_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (net.client_fd < 0 || connect(net.client_fd, (struct sockaddr *)&a, sizeof a) < 0) {
    perror("memcounter: connect to 127.0.0.1");
    exit(1);
  }
  net.server_fd = accept4(net.listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (net.server_fd < 0) exit(1);
  setsockopt(net.client_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(net.server_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  len = sizeof a;
  getsockname(net.client_fd, (struct sockaddr *)&a, &len);
  net.client_port = ntohs(a.sin_port);
  net.alive = 1;
}

static void net_broken(void) {
  net.errors++;
  net.alive = 0;
}

// Reads whole numbers from fd without blocking; each must be `*next`.
// Returns the numbers read, or -1 when the connection broke.
static long net_read(int fd, unsigned char *buf, size_t *have, uint64_t *next, int echo) {
  long n = 0;
  for (;;) {
    ssize_t r = recv(fd, buf + *have, 8 - *have, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return n;
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;  // closed or reset: the connection is gone
    *have += (size_t)r;
    if (*have < 8) continue;
    uint64_t v;
    memcpy(&v, buf, 8);
    *have = 0;
    if (v != *next) net.errors++;  // a lost, repeated or corrupt number
    *next = v + 1;
    n++;
    if (echo && send(fd, &v, 8, MSG_DONTWAIT | MSG_NOSIGNAL) != 8) net.errors++;
  }
}

static void net_tick(void) {
  if (!opt.net || !net.alive) return;
  uint64_t v = net.sent + 1;
  if (send(net.client_fd, &v, 8, MSG_DONTWAIT | MSG_NOSIGNAL) != 8) { net_broken(); return; }
  net.sent = v;
  if (net_read(net.server_fd, net.srv_buf, &net.srv_have, &net.server_next, 1) < 0) { net_broken(); return; }
  long echoed = net_read(net.client_fd, net.cli_buf, &net.cli_have, &net.client_next, 0);
  if (echoed < 0) { net_broken(); return; }
  net.echoed += (uint64_t)echoed;
}

static void tick(uint64_t *prev_ms) {
  st.counter++;
  if (opt.grow_every_ms && st.counter % ((opt.grow_every_ms + opt.tick_ms - 1) / opt.tick_ms) == 0) grow();
  dirty_pages();
  verify_pages();
  verify_regions();
  net_tick();
  uint64_t t = now_ms();
  if (*prev_ms) {
    st.last_gap_ms = t > *prev_ms ? t - *prev_ms : 0;
    if (st.last_gap_ms > st.max_gap_ms) st.max_gap_ms = st.last_gap_ms;
  }
  *prev_ms = t;
  write_status(t);
  append_tick(t);
}

static void usage_exit(const char *msg) {
  fprintf(stderr, "memcounter: %s\nusage: memcounter [--hold-io-uring] [--mib N] [--dirty-mib-s R] "
          "[--dirty-mode pages|bytes] [--content random|compressible] [--tick-ms T] "
          "[--grow-every-ms T [--grow-mib M]] [--no-net] [--state DIR]\n", msg);
  exit(2);
}

static unsigned long number(const char *s, unsigned long min) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *s == '\0' || *end != '\0' || v < min) usage_exit("bad number");
  return v;
}

// --hold-io-uring: keeps an io_uring instance open for the process's
// lifetime. CRIU cannot checkpoint io_uring, so this makes the workload a
// container that can move only without its process state.
static void hold_io_uring(void) {
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  if (syscall(SYS_io_uring_setup, 4, &params) < 0) {
    perror("memcounter: io_uring_setup");
    exit(2);
  }
}

static void parse_args(int argc, char **argv) {
  static const struct option longopts[] = {
      {"mib", 1, 0, 'm'}, {"dirty-mib-s", 1, 0, 'r'}, {"dirty-mode", 1, 0, 'd'},
      {"content", 1, 0, 'c'}, {"tick-ms", 1, 0, 't'}, {"state", 1, 0, 's'},
      {"grow-every-ms", 1, 0, 'g'}, {"grow-mib", 1, 0, 'G'}, {"hold-io-uring", 0, 0, 'u'},
      {"no-net", 0, 0, 'n'},
      {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    if (c == 'm') opt.mib = number(optarg, 1);
    else if (c == 'r') opt.dirty_mib_s = number(optarg, 0);
    else if (c == 't') opt.tick_ms = number(optarg, 1);
    else if (c == 's') opt.state = optarg;
    else if (c == 'g') opt.grow_every_ms = number(optarg, 1);
    else if (c == 'G') opt.grow_mib = number(optarg, 1);
    else if (c == 'u') hold_io_uring();
    else if (c == 'n') opt.net = 0;
    else if (c == 'd' && !strcmp(optarg, "pages")) opt.dirty_mode = MODE_PAGES;
    else if (c == 'd' && !strcmp(optarg, "bytes")) opt.dirty_mode = MODE_BYTES;
    else if (c == 'c' && !strcmp(optarg, "random")) opt.content = CONTENT_RANDOM;
    else if (c == 'c' && !strcmp(optarg, "compressible")) opt.content = CONTENT_COMPRESSIBLE;
    else usage_exit("bad option");
  }
  if (optind != argc) usage_exit("unexpected argument");
}

static uint64_t region_word(size_t r, uint64_t page, size_t k) {
  return mix(st.boot ^ ((uint64_t)(r + 1) << 48) ^ (page << 12) ^ k);
}

static void grow(void) {
  if (nregions == MAX_REGIONS) return;
  size_t npages = opt.grow_mib * ((1u << 20) / (st.words * 8));
  uint64_t *mem = mmap(NULL, npages * st.words * 8, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return;
  for (uint64_t i = 0; i < npages; i++)
    for (size_t k = 0; k < st.words; k++) mem[i * st.words + k] = region_word(nregions, i, k);
  regions[nregions].mem = mem;
  regions[nregions].npages = npages;
  nregions++;
}

static void verify_regions(void) {
  for (size_t r = 0; r < nregions; r++)
    for (uint64_t i = 0; i < regions[r].npages; i++)
      for (size_t k = 0; k < st.words; k++)
        if (regions[r].mem[i * st.words + k] != region_word(r, i, k)) { st.corrupt++; break; }
}

static void detach_stdio(void) {
  int fd = open("/dev/null", O_RDWR);
  if (fd < 0) return;
  for (int i = 0; i < 3; i++) if (fd != i) dup2(fd, i);
  if (fd > 2) close(fd);
}

static void setup(void) {
  if (getrandom(&st.boot, sizeof st.boot, 0) != sizeof st.boot)
    st.boot = mix((uint64_t)now_ms() ^ ((uint64_t)getpid() << 32));
  st.words = (size_t)sysconf(_SC_PAGESIZE) / 8;
  st.npages = opt.mib * ((1u << 20) / (st.words * 8));
  st.mem = mmap(NULL, st.npages * st.words * 8, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (st.mem == MAP_FAILED) exit(1);
  madvise(st.mem, st.npages * st.words * 8, MADV_NOHUGEPAGE);  // dirty at 4 KiB, not 2 MiB
  for (uint64_t i = 0; i < st.npages; i++) fill_page(i, 0);
  mkdir(opt.state, 0755);
  char path[4096];
  snprintf(path, sizeof path, "%s/ticks.log", opt.state);
  st.log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (st.log_fd < 0) exit(1);
  if (opt.net) net_setup();
  struct sigaction sa = {.sa_handler = on_term};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  detach_stdio();
  setup();
  uint64_t prev_ms = 0;
  while (!stop) {
    uint64_t start = clock_ms(CLOCK_MONOTONIC);
    tick(&prev_ms);
    uint64_t spent = clock_ms(CLOCK_MONOTONIC) - start;
    if (spent < opt.tick_ms) sleep_ms(opt.tick_ms - spent);
  }
  return 0;
}
