// The destination side of one migration, on the connection the source
// opened: accept the Pull (nothing of that name runs here), receive the
// bundle (tree sync, possibly twice), then after MigrateBegin receive rounds
// of images (each rebuilt from the previous round and page deltas, and
// verified); after the final round restore, report RestoreResult and Ready,
// and wait for Commit. Without Commit — Abort, a closed connection, a deadline — the
// restored copy is removed again: the source is restoring its own.
//
// With an image store (Docker) the Pull is followed by Provision: the image
// (present, pulled from a registry, or streamed from the source's engine
// into this one) and a container created from the source's configuration,
// whose writable layer then receives the tree. Filesystem methods end with
// RoundBegin.start_fresh instead of images: start, run the replay hook.
// Ready is sent once the container's readiness probe answers
// (destination_ready.cpp).
#pragma once

#include <filesystem>

#include "migration/context.hpp"
#include "migration/image_rounds.hpp"
#include "migration/phases.hpp"
#include "transport/channel.hpp"

namespace migrated::migration {

class destination_session {
 public:
  destination_session(node_context& ctx, transport::channel& ch);

  // `pull` is the first request on the connection, already read.
  awaitable<void> run(const pb::Envelope& pull);

 private:
  awaitable<result<void>> serve(const pb::Envelope& pull);
  awaitable<result<void>> accept_pull(const pb::Envelope& pull);
  awaitable<result<void>> receive_round(const pb::RoundBegin& round);
  awaitable<result<void>> provision(const pb::Envelope& env);
  awaitable<result<void>> provide_image(const pb::Provision& p);
  awaitable<result<void>> receive_image();
  awaitable<result<void>> receive_tree_for(const pb::TreeManifest& first);
  awaitable<result<void>> launch(bool fresh);
  awaitable<result<void>> become_ready(const stopwatch& since);
  awaitable<result<std::string>> wait_for_service();
  awaitable<result<void>> await_commit();
  awaitable<void> clean_up(bool success);
  void enter(std::string_view phase, std::string detail = {});

  node_context& ctx_;
  transport::channel& ch_;
  pb::Report report_;
  std::string id_;
  std::string container_;
  runtime::runtime* rt_ = nullptr;
  pb::Method method_ = pb::COLD;
  std::filesystem::path bundle_;    // where the container's tree goes (empty: not provisioned yet)
  std::vector<runtime::volume> volumes_;
  std::filesystem::path dir_;       // <storage>/incoming/<id>
  std::unique_ptr<round_receiver> rounds_;
  bool created_ = false;            // a container exists here for this migration
  bool restored_ = false;
  bool committed_ = false;
  stopwatch total_;
};

}  // namespace migrated::migration
