// Writes the seed corpus of every fuzz target (tests/fuzz/corpus/<name>/)
// with the project's own encoders and fixtures: real frames, signed
// datagrams (with a fleet made for the run), real page deltas between the small CRIU 4.1.1 fixture
// pagemaps (the "dirtier" ones hold 1555 pages, more than fuzz_delta
// takes), a scanned tree's manifest, compressed chunks, the example
// configuration. Deterministic apart from the nonces seal() draws and the
// scanned tree's times. Run by hand after a format change:
//   build-fuzz/tests/fuzz/make_corpus tests/fuzz/corpus
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/auth.hpp"
#include "common/datagram.hpp"
#include "common/wire.hpp"
#include "common/zstd_codec.hpp"
#include "delta_input.hpp"
#include "fleet.hpp"
#include "fs/tree.hpp"
#include "images/delta.hpp"
#include "migrated.pb.h"
#include "pages/page_server_protocol.hpp"
#include "transport/tls.hpp"

#include <openssl/bio.h>
#include <openssl/ssl.h>

using namespace migrated;
using namespace migrated::images;
namespace sfs = std::filesystem;
using bytes = std::vector<std::uint8_t>;

namespace {

const sfs::path source = MIGRATED_SOURCE_DIR;
const sfs::path fixtures = source / "tests/unit/fixtures/criu-4.1.1";

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "make_corpus: %s\n", what.c_str());
  std::exit(1);
}

bytes read_file(const sfs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) die("cannot read " + p.string());
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_seed(const sfs::path& dir, const std::string& name, std::span<const std::uint8_t> data) {
  sfs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
  if (!out) die("cannot write " + (dir / name).string());
}

void write_seed(const sfs::path& dir, const std::string& name, std::string_view text) {
  write_seed(dir, name, auth::as_bytes(text));
}

pb::Envelope hello() {
  pb::Envelope env;
  auto* h = env.mutable_hello();
  h->set_protocol_version(wire::protocol_version);
  h->set_node("edge-a");
  h->set_role(pb::ROLE_DAEMON);
  h->mutable_caps()->add_runtimes("runc");
  h->mutable_caps()->set_criu_version("4.1.1");
  return env;
}

void wire_and_hello(const sfs::path& out) {
  std::vector<std::pair<std::string, std::pair<pb::Envelope, bytes>>> frames;
  frames.push_back({"hello", {hello(), {}}});
  pb::Envelope begin;
  begin.set_request_id(3);
  auto* b = begin.mutable_file_begin();
  b->set_file_id(1), b->set_path("rootfs/etc/hostname"), b->set_size(6), b->set_mode(0644);
  frames.push_back({"file-begin", {begin, {}}});
  pb::Envelope chunk;
  auto* c = chunk.mutable_file_chunk();
  c->set_file_id(1), c->set_offset(0), c->set_raw_bytes(6);
  frames.push_back({"file-chunk", {chunk, {'e', 'd', 'g', 'e', '\n', 0}}});
  pb::Envelope tree;
  auto* t = tree.mutable_tree_manifest();
  t->set_tree("bundle"), t->set_last(true);
  auto* e = t->add_entries();
  e->set_path("config.json"), e->set_type(pb::ENTRY_FILE), e->set_mode(0644), e->set_size(1234);
  frames.push_back({"tree-manifest", {tree, {}}});
  pb::Envelope reply;
  reply.mutable_reply()->set_ok(false), reply.mutable_reply()->set_code(pb::Code(5));
  reply.mutable_reply()->set_message("refused");
  frames.push_back({"reply", {reply, {}}});
  for (const auto& [name, f] : frames) {
    write_seed(out / "wire", name, wire::encode(f.first, f.second));
  }
  write_seed(out / "hello", "hello", hello().SerializeAsString());
  auto old = hello();
  old.mutable_hello()->set_protocol_version(0);
  write_seed(out / "hello", "hello-version-0", old.SerializeAsString());
  write_seed(out / "hello", "reply", reply.SerializeAsString());
}

void datagrams(const sfs::path& out) {
  const credentials& controller = fuzzing::fleet_member("ctl-1");  // fuzz_datagram.cpp's fleet and clock
  const datagram::clock::time_point now{std::chrono::milliseconds(1'800'000'000'000)};
  pb::Envelope status;
  status.set_request_id(7);
  status.mutable_status()->set_migration_id("m-3f2a9c01d4e5");
  pb::Envelope migrate;
  migrate.set_request_id(8);
  migrate.mutable_migrate()->set_container("web-1");
  migrate.mutable_migrate()->set_destination("edge-b");
  int n = 0;
  for (const auto& env : {status, migrate}) {
    const auto sealed = datagram::seal(controller, env, now);
    for (std::uint8_t mode : {0, 1}) {
      bytes seed{mode};
      seed.insert(seed.end(), sealed.begin(), sealed.end());
      write_seed(out / "datagram", "sealed-" + std::to_string(n) + (mode ? "-resign" : ""), seed);
    }
    ++n;
  }
}

struct memfd {
  int fd = ::memfd_create("make-corpus", MFD_CLOEXEC);
  ~memfd() { ::close(fd); }
};

bytes pages_of(const page_set& set) {
  bytes out(set.stored_pages * page_bytes);
  for (std::uint64_t i = 0; i < set.stored_pages; ++i) fuzz::previous_page(i, out.data() + i * page_bytes);
  return out;
}

void put_file(int fd, const bytes& data) {
  if (::pwrite(fd, data.data(), data.size(), 0) != ssize_t(data.size())) die("pwrite");
}

// A current dump made from the previous one page by page, so every op
// appears: unchanged pages, small changes (XOR), new pages (FULL), zeros,
// and copies of other pages (REF, REF_CUR).
bytes current_pages(const page_set& cur, const page_set* prev) {
  bytes out(cur.stored_pages * page_bytes);
  for (std::uint64_t i = 0; i < cur.stored_pages; ++i) {
    std::uint8_t* p = out.data() + i * page_bytes;
    const auto old = prev ? prev->find(cur.vaddr_of(i)) : std::nullopt;
    if (old) fuzz::previous_page(*old, p);
    else fuzz::previous_page(i + 1000, p);
    if (i % 3 == 1) p[100] ^= 0x11, p[101] ^= 0x22, p[3000] ^= 0x33;
    if (i % 7 == 6) std::memset(p, int(i), page_bytes);
    if (i % 11 == 5) std::memset(p, 0, page_bytes);
    if (i % 13 == 12) std::memcpy(p, out.data(), page_bytes);
    if (i % 17 == 16 && prev && prev->stored_pages > 2) fuzz::previous_page(2, p);
  }
  return out;
}

void deltas(const sfs::path& out) {
  struct pair { const char* name; const char* cur; const char* prev; };
  const pair pairs[] = {
      {"tiny-first", "tiny-1-pagemap-1.img", nullptr},
      {"tiny", "tiny-2-pagemap-1.img", "tiny-1-pagemap-1.img"},
      {"tiny-same-layout", "tiny-1-pagemap-1.img", "tiny-1-pagemap-1.img"},
  };
  const sfs::path tmp = sfs::temp_directory_path() / ("make-corpus-" + std::to_string(::getpid()));
  for (const auto& p : pairs) {
    sfs::create_directories(tmp);
    sfs::copy_file(fixtures / p.cur, tmp / "cur.img", sfs::copy_options::overwrite_existing);
    auto cur = read_page_set(tmp, "cur.img");
    if (!cur) die(cur.error().message);
    std::optional<page_set> prev;
    if (p.prev) {
      sfs::copy_file(fixtures / p.prev, tmp / "prev.img", sfs::copy_options::overwrite_existing);
      auto s = read_page_set(tmp, "prev.img");
      if (!s) die(s.error().message);
      prev = std::move(*s);
    }
    if (cur->stored_pages > fuzz::max_fuzz_pages || (prev && prev->stored_pages > fuzz::max_fuzz_pages))
      die(std::string(p.name) + ": fixture larger than fuzz_delta takes");
    memfd prev_file, cur_file;
    page_hashes prev_hashes;
    previous_dump pd;
    if (prev) {
      put_file(prev_file.fd, pages_of(*prev));
      auto h = hash_pages_file(*prev, prev_file.fd);
      if (!h) die(h.error().message);
      prev_hashes = std::move(h->hashes);
      pd = {&*prev, &prev_hashes, prev_file.fd};
    }
    put_file(cur_file.fd, current_pages(*cur, prev ? &*prev : nullptr));
    bytes stream;
    auto enc = encode_delta(pd, *cur, cur_file.fd, 1 << 16, [&](std::span<const std::uint8_t> c) -> result<void> {
      stream.insert(stream.end(), c.begin(), c.end());
      return {};
    });
    if (!enc) die(enc.error().message);
    const bytes cur_map = read_file(fixtures / p.cur);
    const bytes prev_map = p.prev ? read_file(fixtures / p.prev) : bytes{};
    for (std::uint8_t flags : {std::uint8_t(0), std::uint8_t(1), std::uint8_t(2 * 5)}) {
      bytes seed;
      fuzz::put_delta_input(seed, cur_map, prev_map, flags, stream);
      write_seed(out / "delta", std::string(p.name) + "-" + std::to_string(flags), seed);
    }
    std::fprintf(stderr, "make_corpus: delta %s: %llu pages, %llu same, %llu zero, %llu ref, %llu xor, %llu full\n",
                 p.name, (unsigned long long)enc->stats.pages, (unsigned long long)enc->stats.same,
                 (unsigned long long)enc->stats.zero, (unsigned long long)enc->stats.ref,
                 (unsigned long long)enc->stats.xor_pages, (unsigned long long)enc->stats.full);
  }
  sfs::remove_all(tmp);
}

void criu_images(const sfs::path& out) {
  for (const auto& e : sfs::directory_iterator(fixtures)) {
    const std::string name = e.path().filename().string();
    if (name.find("pagemap") != std::string::npos) write_seed(out / "criu_image", name, read_file(e.path()));
  }
}

void tree(const sfs::path& out) {
  const sfs::path root = sfs::temp_directory_path() / ("make-corpus-tree-" + std::to_string(::getpid()));
  sfs::remove_all(root);
  sfs::create_directories(root / "rootfs/etc");
  sfs::create_directories(root / "rootfs/var/run");
  std::ofstream(root / "config.json") << "{\"ociVersion\":\"1.0.2\"}\n";
  std::ofstream(root / "rootfs/etc/hostname") << "edge\n";
  sfs::create_symlink("/proc/self/mounts", root / "rootfs/etc/mtab");
  sfs::create_symlink("../run", root / "rootfs/var/lock");
  if (::mkfifo((root / "rootfs/var/run/fifo").c_str(), 0600) != 0) die("mkfifo");
  auto entries = fs::scan(root);
  if (!entries) die(entries.error().message);
  pb::TreeManifest m;
  m.set_tree("bundle");
  m.set_last(true);
  for (auto& e : *entries) *m.add_entries() = e;
  write_seed(out / "tree", "bundle", m.SerializeAsString());
  pb::TreeManifest devices;
  auto* d = devices.add_entries();
  d->set_path("dev"), d->set_type(pb::ENTRY_DIR), d->set_mode(0755);
  d = devices.add_entries();
  d->set_path("dev/null"), d->set_type(pb::ENTRY_CHAR), d->set_mode(0666), d->set_rdev(0x103);
  write_seed(out / "tree", "devices", devices.SerializeAsString());
  sfs::remove_all(root);
}

void paths(const sfs::path& out) {
  const char* names[] = {"dir/sub/file", "up/etc/passwd", "dir-link", "dir-link/x", "file/x",
                         "rootfs/etc/hostname", "a/../b", "./a", "a//b"};
  int n = 0;
  for (const char* name : names) {
    for (char mode : {'\0', '\1'}) {
      write_seed(out / "path", "name-" + std::to_string(n++), std::string(1, mode) + name);
    }
  }
}

// Chunks as send_files compresses them: a text file, a page, and zeros.
void chunks(const sfs::path& out) {
  const bytes text = read_file(source / "config/migrated.yaml");
  bytes page(page_bytes);
  fuzz::previous_page(1, page.data());
  const bytes zeros(64 << 10);
  int n = 0;
  for (const bytes* raw : std::initializer_list<const bytes*>{&text, &page, &zeros}) {
    zstd_compressor z(3);
    bytes packed;
    if (!z.compress(*raw, packed)) die("zstd");
    const auto size = std::uint32_t(raw->size());
    bytes seed{std::uint8_t(size), std::uint8_t(size >> 8), std::uint8_t(size >> 16), std::uint8_t(size >> 24)};
    seed.insert(seed.end(), packed.begin(), packed.end());
    write_seed(out / "chunk", "chunk-" + std::to_string(n++), seed);
  }
}

void configs(const sfs::path& out) {
  write_seed(out / "config", "migrated.yaml", read_file(source / "config/migrated.yaml"));
  write_seed(out / "config", "small.yaml",
             "node: edge-a\nlisten:\n  tcp: 0.0.0.0:7450\npeers:\n  edge-b: 10.0.0.2:7450\n"
             "log:\n  sink: stderr\n  level: debug\n");
  write_seed(out / "config", "override", "peers.edge-c=[fd00::3]:7450\n");
}

// fuzz_tls: the first flight of a real client of the fleet (ctl-1), taken
// from OpenSSL through memory BIOs, whole, cut short, and followed by junk.
void tls_client_hello(const sfs::path& out) {
  auto ctx = transport::make_tls_context(fuzzing::fleet_member("ctl-1"));
  if (!ctx) die("make_tls_context: " + ctx.error().message);
  SSL* ssl = SSL_new((*ctx)->native_handle());
  BIO* in = BIO_new(BIO_s_mem());
  BIO* sent = BIO_new(BIO_s_mem());
  if (!ssl || !in || !sent) die("SSL_new");
  SSL_set_bio(ssl, in, sent);
  SSL_set_connect_state(ssl);
  if (SSL_do_handshake(ssl) == 1) die("a handshake completed with nobody");
  bytes flight(static_cast<std::size_t>(BIO_ctrl_pending(sent)));
  if (flight.empty() || BIO_read(sent, flight.data(), int(flight.size())) != int(flight.size())) die("no ClientHello");
  SSL_free(ssl);
  write_seed(out / "tls", "client-hello", flight);
  write_seed(out / "tls", "client-hello-cut", std::span(flight).first(flight.size() / 2));
  bytes junk = flight;
  junk.insert(junk.end(), {0x17, 0x03, 0x03, 0x00, 0x20});
  junk.resize(junk.size() + 0x20, 0xab);
  write_seed(out / "tls", "client-hello-then-record", junk);
}

// fuzz_page_request: a piece size, then what lazy-pages sends in a post-copy
// (GETs of one page and of a run, then the close), and the same with a
// request that no relay accepts in the middle.
void page_requests(const sfs::path& out) {
  const std::vector<pages::page_request> asked{{.pid = 1, .vaddr = 0x7f5a3c000000ull, .pages = 1},
                                               {.pid = 1, .vaddr = 0x400000, .pages = 256},
                                               {.pid = 12, .vaddr = 0x7ffd94000000ull, .pages = 2},
                                               {.close = true}};
  bytes stream{24};
  for (const auto& r : asked) {
    const auto b = pages::encode_request(r);
    stream.insert(stream.end(), b.begin(), b.end());
  }
  write_seed(out / "page_request", "get-get-get-close", stream);
  bytes odd = stream;
  odd[0] = 7;
  odd[1 + 24 + 8] = 0x01;  // the second GET's address, unaligned
  write_seed(out / "page_request", "unaligned-in-the-middle", odd);
  bytes answers{24};
  const auto a = pages::encode_answer({.pid = 1, .vaddr = 0x1000, .pages = 16}, 16);
  answers.insert(answers.end(), a.begin(), a.end());
  write_seed(out / "page_request", "answer", answers);
}

// fuzz_http: a piece size, then what a scraper or a curl sends: requests
// one after another on one connection, one with a body, one past the
// header limit's neighbourhood.
void http_requests(const sfs::path& out) {
  auto seed = [&](const char* name, char piece, const std::string& text) {
    bytes b{static_cast<std::uint8_t>(piece)};
    b.insert(b.end(), text.begin(), text.end());
    write_seed(out / "http", name, b);
  };
  seed("scrape-keep-alive", 63,
       "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:7452\r\nAccept: text/plain;version=0.0.4\r\n\r\n"
       "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
       "GET /v1/migrations?limit=2 HTTP/1.1\r\nHost: x\r\n\r\n"
       "GET /v1/migrations/m-000000000001 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  seed("write-with-body", 7,
       "POST /v1/migrations HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
  seed("http10-unknown", 11, "HEAD /v1/migrations/m-000000000003?x=1&limit=1 HTTP/1.0\r\n\r\nGET /nothing HTTP/1.0\r\n\r\n");
  seed("long-header", 40, "GET /healthz HTTP/1.1\r\nX-Pad: " + std::string(8000, 'p') + "\r\n\r\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) die("usage: make_corpus CORPUS_DIR");
  const sfs::path out = argv[1];
  wire_and_hello(out);
  datagrams(out);
  deltas(out);
  criu_images(out);
  tree(out);
  paths(out);
  chunks(out);
  configs(out);
  tls_client_hello(out);
  page_requests(out);
  http_requests(out);
  return 0;
}
