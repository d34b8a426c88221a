#include "mjpeg/reply.hpp"

#include <chrono>
#include <string>

#include "mjpeg/metrics.hpp"
#include "mjpeg/page.hpp"

namespace mjpeg {

std::array<boost::asio::const_buffer, 2> reply::buffers() const noexcept {
  if (!image) return {boost::asio::buffer(head), boost::asio::const_buffer{}};
  return {boost::asio::buffer(head), boost::asio::buffer(image->jpeg().data(), image->jpeg().size())};
}

reply make_reply(const http::route_result& plan, const server_context& ctx) {
  using http::resource;
  switch (plan.what) {
    case resource::page:
      return {http::document_response("text/html; charset=utf-8",
                                      viewer_page(ctx.variant, ctx.opts.width, ctx.opts.height, ctx.opts.fps),
                                      plan.head_only),
              nullptr};
    case resource::stats: {
      const frame_ptr latest = ctx.hub.latest();
      return {http::document_response("application/json",
                                      render_json(ctx.stats.snapshot(latest ? latest->seq() : 0,
                                                                     latest ? latest->jpeg().size() : 0)),
                                      plan.head_only),
              nullptr};
    }
    case resource::metrics: {
      const frame_ptr latest = ctx.hub.latest();
      return {http::document_response("text/plain; version=0.0.4; charset=utf-8",
                                      render_prometheus(ctx.stats.snapshot(
                                          latest ? latest->seq() : 0, latest ? latest->jpeg().size() : 0)),
                                      plan.head_only),
              nullptr};
    }
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
      frame_ptr latest = ctx.hub.latest();
      if (!latest) return {http::error_response(http::status::service_unavailable), nullptr};
      std::string head = http::snapshot_head(*latest);
      if (plan.head_only) latest.reset();
      return {std::move(head), std::move(latest)};
    }
    case resource::stream:  // only HEAD gets here
      return {http::stream_head(), nullptr};
    case resource::error:
    case resource::none:
      break;
  }
  ctx.stats.bad_request(static_cast<unsigned>(plan.code));
  return {http::error_response(plan.code, plan.retry_after, plan.reason), nullptr};
}

}  // namespace mjpeg
