#include "fleet.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>
#include <openssl/pem.h>
#include <openssl/x509.h>

namespace migrated::testing {
namespace fs = std::filesystem;

namespace {

std::string sh_quote(const fs::path& p) {
  std::string out = "'";
  for (char c : p.string()) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string slurp(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

fs::path source_dir() { return fs::path(__FILE__).parent_path().parent_path().parent_path(); }

void shell(const std::string& command) {
  const fs::path log = fs::temp_directory_path() / ("migrated-test-shell-" + std::to_string(::getpid()) + ".log");
  const int status = std::system((command + " >" + sh_quote(log) + " 2>&1").c_str());
  const std::string output = slurp(log);
  std::error_code ec;
  fs::remove(log, ec);
  INFO("command: " << command);
  INFO("output: " << output);
  REQUIRE(status != -1);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}

fleet::fleet() {
  const fs::path tool = source_dir() / "scripts" / "migrated-ca";
  REQUIRE(fs::exists(tool));
  shell("bash " + sh_quote(tool) + " init " + sh_quote(tmp_.path / "ca"));
  REQUIRE(fs::exists(ca_cert()));
}

fs::path fleet::fresh_dir(const std::string& label) {
  const fs::path d = tmp_.path / (label + "-" + std::to_string(++serial_));
  fs::create_directories(d);
  return d;
}

tls_files fleet::issue(const std::string& name, node_role role) {
  const fs::path out = fresh_dir(name);
  const fs::path tool = source_dir() / "scripts" / "migrated-ca";
  shell("bash " + sh_quote(tool) + " issue " + sh_quote(tmp_.path / "ca") + " " + sh_quote(name) + " --role " +
        std::string(role_name(role)) + " --out " + sh_quote(out));
  return {out / "ca.crt", out / (name + ".crt"), out / (name + ".key")};
}

credentials fleet::make(const std::string& name, node_role role) {
  auto c = credentials::load(issue(name, role));
  INFO((c ? std::string() : c.error().message));
  REQUIRE(c);
  return std::move(*c);
}

const credentials& fleet::node(const std::string& name, node_role role) {
  const std::string key = name + "/" + std::string(role_name(role));
  auto it = nodes_.find(key);
  if (it == nodes_.end()) it = nodes_.emplace(key, make(name, role)).first;
  return it->second;
}

std::shared_ptr<transport::ssl::context> fleet::tls(const std::string& name, node_role role) {
  auto ctx = transport::make_tls_context(node(name, role));
  INFO((ctx ? std::string() : ctx.error().message));
  REQUIRE(ctx);
  return *ctx;
}

tls_files fleet::issue_raw(const std::string& subject, bool expired) {
  const fs::path out = fresh_dir("raw");
  const fs::path ca = tmp_.path / "ca";
  const fs::path key = out / "node.key", csr = out / "node.csr", crt = out / "node.crt", ext = out / "ext.cnf";
  std::ofstream(ext) << "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                        "extendedKeyUsage=serverAuth,clientAuth\n";
  shell("umask 077 && openssl genpkey -algorithm ed25519 -out " + sh_quote(key));
  shell("openssl req -new -key " + sh_quote(key) + " -out " + sh_quote(csr) + " -subj " + sh_quote(subject));
  if (!expired) {
    shell("openssl x509 -req -in " + sh_quote(csr) + " -CA " + sh_quote(ca / "ca.crt") + " -CAkey " +
          sh_quote(ca / "ca.key") + " -set_serial " + std::to_string(1000 + serial_) + " -days 30 -extfile " +
          sh_quote(ext) + " -out " + sh_quote(crt));
  } else {
    // `openssl x509` cannot date a certificate in the past; `openssl ca` can.
    const fs::path db = out / "db";
    fs::create_directories(db);
    std::ofstream(db / "index.txt");
    std::ofstream(db / "serial") << "01\n";
    std::ofstream(out / "ca.cnf") << "[ca]\ndefault_ca = fleet\n[fleet]\ndatabase = " << (db / "index.txt").string()
                                  << "\nnew_certs_dir = " << db.string() << "\nserial = " << (db / "serial").string()
                                  << "\ndefault_md = default\npolicy = any\nunique_subject = no\n"
                                     "[any]\ncommonName = optional\n";
    shell("openssl ca -batch -config " + sh_quote(out / "ca.cnf") + " -cert " + sh_quote(ca / "ca.crt") + " -keyfile " +
          sh_quote(ca / "ca.key") + " -in " + sh_quote(csr) + " -out " + sh_quote(crt) +
          " -startdate 20200101000000Z -enddate 20200102000000Z -preserveDN -notext -extfile " + sh_quote(ext));
  }
  fs::copy_file(ca / "ca.crt", out / "ca.crt");
  return {out / "ca.crt", crt, key};
}

fleet& shared_fleet() {
  static fleet f;
  return f;
}

fleet& other_fleet() {
  static fleet f;
  return f;
}

std::shared_ptr<X509> read_certificate(const fs::path& pem) {
  std::unique_ptr<FILE, decltype(&std::fclose)> file(std::fopen(pem.c_str(), "re"), std::fclose);
  REQUIRE(file);
  std::shared_ptr<X509> cert(PEM_read_X509(file.get(), nullptr, nullptr, nullptr), X509_free);
  REQUIRE(cert);
  return cert;
}

std::vector<std::uint8_t> der_of(const fs::path& pem) {
  auto cert = read_certificate(pem);
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert.get(), &der);
  REQUIRE(n > 0);
  std::vector<std::uint8_t> out(der, der + n);
  OPENSSL_free(der);
  return out;
}

}  // namespace migrated::testing
