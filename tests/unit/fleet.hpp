// Certificates for tests: a fleet CA in a temporary directory with node
// certificates made by scripts/migrated-ca (the operators' tool, so the
// tests check what operators get), plus odd certificates made with the
// openssl CLI for the refusals (no OU, two CNs, an invalid name, expired).
// The shared fleets are made once per run and only read by the tests.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/credentials.hpp"
#include "temp_dir.hpp"
#include "transport/tls.hpp"

namespace migrated::testing {

// The source tree, found from this file's place in it (tests/unit/).
std::filesystem::path source_dir();

// Runs a shell command; the test fails with its output when it fails.
void shell(const std::string& command);

class fleet {
 public:
  fleet();
  fleet(const fleet&) = delete;
  fleet& operator=(const fleet&) = delete;

  const std::filesystem::path& dir() const { return tmp_.path; }
  std::filesystem::path ca_cert() const { return tmp_.path / "ca" / "ca.crt"; }

  // A fresh key and certificate for `name` from scripts/migrated-ca, in a
  // directory of its own (each call makes a new one).
  tls_files issue(const std::string& name, node_role role = node_role::peer);
  // The same, loaded (the test fails if loading fails).
  credentials make(const std::string& name, node_role role = node_role::peer);
  // Credentials for `name`, made on first use and kept for the run.
  const credentials& node(const std::string& name, node_role role = node_role::peer);
  std::shared_ptr<transport::ssl::context> tls(const std::string& name, node_role role = node_role::peer);

  // A certificate with the subject `subject` ("/O=x/OU=peer/CN=n"), signed
  // by this fleet's CA with the openssl CLI; `expired` makes one valid only
  // in January 2020.
  tls_files issue_raw(const std::string& subject, bool expired = false);

 private:
  std::filesystem::path fresh_dir(const std::string& label);

  temp_dir tmp_;
  int serial_ = 0;
  std::map<std::string, credentials> nodes_;
};

// Two fleets, each with its own CA.
fleet& shared_fleet();
fleet& other_fleet();

// A certificate file read back, and its DER.
std::shared_ptr<X509> read_certificate(const std::filesystem::path& pem);
std::vector<std::uint8_t> der_of(const std::filesystem::path& pem);

}  // namespace migrated::testing
