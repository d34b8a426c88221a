#include "mjpeg/reply.hpp"

#include <chrono>
#include <string>

#include "mjpeg/json.hpp"
#include "mjpeg/metrics.hpp"
#include "mjpeg/page.hpp"
#include "mjpeg/source_factory.hpp"

namespace mjpeg {

std::array<boost::asio::const_buffer, 2> reply::buffers() const noexcept {
  if (!image) return {boost::asio::buffer(head), boost::asio::const_buffer{}};
  return {boost::asio::buffer(head), boost::asio::buffer(image->jpeg().data(), image->jpeg().size())};
}

namespace {

// The page's tiles: the grid of every named camera at "/", one camera at "/NAME/", or the one
// unnamed camera; URLs relative to the page, each tile shaped as its camera's frames.
std::vector<page_camera> tiles_for(const http::route_result& plan, const server_context& ctx) {
  const auto tile = [](const camera_feed& c, std::string prefix) {
    const stats_snapshot s = c.stats.snapshot(0, 0);
    return page_camera{c.name, prefix + "stream", prefix + "snapshot", s.width, s.height};
  };
  if (ctx.cameras.size() == 1 && ctx.cameras.front().name.empty())
    return {{"", "stream", "snapshot"}};  // the page's size
  if (plan.one_camera) return {tile(ctx.cameras.at(plan.camera), "")};
  std::vector<page_camera> tiles;
  for (const camera_feed& c : ctx.cameras)
    tiles.push_back(tile(c, c.name + "/"));
  return tiles;
}

// One camera's own counters, its latest frame and that frame's age.
camera_snapshot snapshot_of(const camera_feed& c, wall_clock::time_point now) {
  const frame_ptr latest = c.hub.latest();
  return {c.name, c.stats.snapshot(latest ? latest->seq() : 0, latest ? latest->jpeg().size() : 0),
          latest ? std::chrono::duration<double>(now - latest->captured()).count() : -1.0};
}

// /cameras: what the grid and an operator need to know of each camera.
std::string camera_list(const server_context& ctx) {
  const auto now = wall_clock::now();
  json_writer j;
  j.begin_array();
  for (const camera_feed& c : ctx.cameras) {
    const camera_snapshot seen = snapshot_of(c, now);
    const stats_snapshot& s = seen.snapshot;
    j.begin_object().string("name", c.name).string("source", source_kind(c.source));
    j.number("width", s.width).number("height", s.height).number("fps", s.fps_target);
    j.string("state", source_state_name(s.state));
    j.number("fps_capture", s.fps_capture).number("viewers", c.stats.viewers_now());
    if (seen.frame_age_s >= 0)
      j.number("frame_age_s", seen.frame_age_s);
    else
      j.null("frame_age_s");
    j.end_object();
  }
  j.end_array();
  return j.str();
}

// What /stats and /metrics show: the one camera's counters, or with named cameras one row each
// and their totals.
stats_snapshot server_snapshot(const server_context& ctx) {
  const auto now = wall_clock::now();
  std::vector<camera_snapshot> cameras;
  for (const camera_feed& c : ctx.cameras)
    cameras.push_back(snapshot_of(c, now));
  if (cameras.size() == 1 && cameras.front().name.empty()) return std::move(cameras.front().snapshot);
  return combine_cameras(std::move(cameras));
}

}  // namespace

reply make_reply(const http::route_result& plan, const server_context& ctx) {
  using http::resource;
  switch (plan.what) {
    case resource::page: {
      // One camera's page shows its own size and rate; the grid the first camera's.
      const stats_snapshot config = ctx.cameras.at(plan.camera).stats.snapshot(0, 0);
      return {http::document_response("text/html; charset=utf-8",
                                      viewer_page(ctx.variant, config.width, config.height, config.fps_target,
                                                  tiles_for(plan, ctx)),
                                      plan.head_only),
              nullptr};
    }
    case resource::cameras:
      return {http::document_response("application/json", camera_list(ctx), plan.head_only), nullptr};
    case resource::stats: {
      // /NAME/stats: that camera's own; /stats: the server's totals with a row per camera.
      const stats_snapshot s = plan.one_camera
                                   ? camera_view(snapshot_of(ctx.cameras.at(plan.camera), wall_clock::now()))
                                   : server_snapshot(ctx);
      return {http::document_response("application/json", render_json(s), plan.head_only), nullptr};
    }
    case resource::metrics:
      return {http::document_response("text/plain; version=0.0.4; charset=utf-8",
                                      render_prometheus(server_snapshot(ctx)), plan.head_only),
              nullptr};
    case resource::health: {
      // Down longer than --max-source-down: a load balancer should send viewers elsewhere.
      const double down =
          std::chrono::duration<double>(ctx.stats.source_down_for(std::chrono::steady_clock::now())).count();
      const bool healthy = ctx.opts.max_source_down <= 0 || down <= ctx.opts.max_source_down;
      return {http::health_response(healthy,
                                    "source down for " + std::to_string(static_cast<long long>(down)) + " s",
                                    plan.head_only),
              nullptr};
    }
    case resource::snapshot: {
      frame_ptr latest = ctx.cameras.at(plan.camera).hub.latest();
      if (!latest) return {http::error_response(http::status::service_unavailable), nullptr};
      std::string head = http::snapshot_head(*latest);
      if (plan.head_only) latest.reset();
      return {std::move(head), std::move(latest)};
    }
    case resource::stream:  // only HEAD gets here
      return {http::stream_head(plan.type), nullptr};
    case resource::error:
    case resource::none:
      break;
  }
  ctx.stats.bad_request(static_cast<unsigned>(plan.code));
  return {http::error_response(plan.code, plan.retry_after, plan.reason), nullptr};
}

}  // namespace mjpeg
