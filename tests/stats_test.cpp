// The capture rate /stats reports (issue 15, item 8), with frame times the test chooses.

#include <gtest/gtest.h>

#include <string>

#include "mjpeg/metrics.hpp"
#include "mjpeg/stats.hpp"
#include "mjpeg/version.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

const auto t0 = clock_type::time_point{} + 1h;

TEST(CaptureFps, JitterDoesNotInflateTheRate) {
  // 30 frames a second on average, alternating short and long intervals (a loaded machine): the
  // mean of the per-interval rates would say about 58; the frames published say 30.
  mjpeg::server_stats stats{"test"};
  stats.set_config(640, 480, 30);
  auto t = t0;
  for (int i = 0; i < 90; ++i) {
    t += i % 2 == 0 ? 10ms : 56'667us;
    stats.frame_captured(t);
  }
  EXPECT_NEAR(stats.capture_fps(t), 30.0, 1.0);
  EXPECT_NEAR(stats.capture_fps(t + 20ms), 30.0, 1.0) << "between two frames";
}

TEST(CaptureFps, CannotOvershootTheFramesPublished) {
  // Whatever the pattern of intervals, the rate never exceeds frames over the time they took.
  mjpeg::server_stats stats{"test"};
  stats.set_config(640, 480, 30);
  auto t = t0;
  for (int i = 0; i < 300; ++i) {
    t += std::chrono::microseconds{1000 + (i * 7919) % 60000};
    stats.frame_captured(t);
    const double rate = stats.capture_fps(t);
    EXPECT_LE(rate, static_cast<double>(i) / std::chrono::duration<double>(t - t0).count() * 1.6 + 1)
        << "frame " << i;
  }
}

TEST(CaptureFps, StallCountsDownToZero) {
  mjpeg::server_stats stats{"test"};
  stats.set_config(640, 480, 30);
  auto t = t0;
  for (int i = 0; i < 60; ++i)
    stats.frame_captured(t += 33'333us);
  EXPECT_NEAR(stats.capture_fps(t), 30.0, 0.3);
  EXPECT_LT(stats.capture_fps(t + 500ms), 25.0) << "half a second without a frame";
  EXPECT_EQ(stats.capture_fps(t + 3s), 0.0) << "nothing published in the window";
  EXPECT_EQ(mjpeg::server_stats{"empty"}.capture_fps(t0), 0.0);
}

TEST(CaptureFps, LowFrameRatesStillMeasure) {
  mjpeg::server_stats stats{"test"};
  stats.set_config(640, 480, 0.5);  // one frame every two seconds
  auto t = t0;
  for (int i = 0; i < 5; ++i)
    stats.frame_captured(t += 2s);
  EXPECT_NEAR(stats.capture_fps(t + 100ms), 0.5, 0.01);
}

TEST(CaptureFps, StatsJsonShowsTheWindowedRate) {
  mjpeg::server_stats stats{"test"};
  stats.set_config(640, 480, 30);
  const auto now = clock_type::now();
  for (int i = 60; i > 0; --i)
    stats.frame_captured(now - i * 20ms);  // 50 per second, the last one 20 ms ago
  const std::string json = mjpeg::render_json(stats.snapshot(0, 0));
  const auto at = json.find("\"fps_capture\":");
  ASSERT_NE(at, std::string::npos) << json;
  EXPECT_NEAR(std::stod(json.substr(at + 14)), 50.0, 2.0) << json;
}

}  // namespace

namespace {

// A snapshot with every part filled: two workers (one stale), a camera, a viewer, statuses, ages.
mjpeg::stats_snapshot full_snapshot() {
  mjpeg::stats_snapshot s;
  s.variant = "async";
  s.uptime_s = 12.34567;
  s.source = "camera /dev/video-test";
  s.state = mjpeg::source_state::up;
  mjpeg::camera_info camera;
  camera.device = "/dev/video-test";
  camera.pixel_format = "MJPG";
  camera.width = 640;
  camera.height = 480;
  camera.fps = 29.99991;
  camera.passthrough = true;
  camera.requested_width = 640;
  camera.requested_height = 480;
  camera.requested_fps = 30;
  s.camera = camera;
  s.bad_frames = 3;
  s.width = 640;
  s.height = 480;
  s.fps_target = 30;
  s.fps_capture = 29.5004;
  s.frame_seq = 370;
  s.frame_bytes = 41234;
  s.total = {2, 5, 900, 37000000, 4, 1, 2};
  s.frames_captured = 370;
  s.times_replaced = 2;
  s.accepted = 9;
  s.rejected_here = 1;
  s.publish = {"ipc:///tmp/mjpeg-workers-abc/bus"};
  s.workers = std::vector<mjpeg::worker_row>{{0, 101, 0, false, {2, 3, 600, 25000000, 4, 1, 0}},
                                             {1, 102, 2, true, {0, 2, 300, 12000000, 0, 0, 2}}};
  s.viewers = {{7, "127.0.0.1:5000", 1.23456, 369, 37, 4, 1500000}};
  s.ended = {3, 1, 0, 0};
  s.bad_by_status = {{404, 1}, {421, 1}};
  s.age_counts = {5, 10, 20, 0, 0, 0, 0, 0, 0, 0, 1};
  s.age_sum_s = 0.5;
  return s;
}

TEST(StatsRenderers, JsonByteForByte) {
  EXPECT_EQ(
      mjpeg::render_json(full_snapshot()),
      R"({"variant":"async","uptime_s":12.346,"source":"camera /dev/video-test","source_up":true,"source_state":"up","camera":{"device":"/dev/video-test","pixel_format":"MJPG","width":640,"height":480,"fps":30,"mode":"passthrough","why_encode":"","requested":{"width":640,"height":480,"fps":30},"bad_frames":3},"width":640,"height":480,"fps_target":30,"fps_capture":29.5,"frame_seq":370,"frame_bytes":41234,"viewers_now":2,"viewers_total":5,"frames_sent":900,"bytes_sent":37000000,"frames_skipped":4,"rejected":1,"bad_requests":2,"frames_captured":370,"times_replaced":2,"publish":["ipc:///tmp/mjpeg-workers-abc/bus"],"workers":[{"index":0,"pid":101,"restarts":0,"viewers_now":2,"viewers_total":3,"frames_sent":600,"bytes_sent":25000000,"frames_skipped":4,"rejected":1,"bad_requests":0,"stale":false},{"index":1,"pid":102,"restarts":2,"viewers_now":0,"viewers_total":2,"frames_sent":300,"bytes_sent":12000000,"frames_skipped":0,"rejected":0,"bad_requests":2,"stale":true}],"viewers":[{"id":7,"peer":"127.0.0.1:5000","seconds":1.235,"last_seq":369,"frames_sent":37,"frames_skipped":4,"bytes_sent":1500000}]})");
}

TEST(StatsRenderers, JsonWithoutCameraOrWorkers) {
  mjpeg::stats_snapshot s;
  s.variant = "thread_pool";
  s.source = "pattern";
  EXPECT_EQ(
      mjpeg::render_json(s),
      R"({"variant":"thread_pool","uptime_s":0,"source":"pattern","source_up":false,"source_state":"down","camera":null,"width":0,"height":0,"fps_target":0,"fps_capture":0,"frame_seq":0,"frame_bytes":0,"viewers_now":0,"viewers_total":0,"frames_sent":0,"bytes_sent":0,"frames_skipped":0,"rejected":0,"bad_requests":0,"frames_captured":0,"times_replaced":0,"publish":[],"viewers":[]})");
}

// Several cameras: one row each in /stats, their totals on top, and each camera's series labelled.
TEST(StatsRenderers, SeveralCamerasHaveARowAndALabelEach) {
  mjpeg::stats_snapshot front;
  front.variant = "async";
  front.source = "camera /dev/video0";
  front.state = mjpeg::source_state::up;
  front.fps_capture = 30;
  front.frames_captured = 300;
  front.frame_seq = 300;
  front.total = {2, 3, 500, 1000, 1, 1, 4};
  front.ended = {1, 0, 0, 0};
  front.age_counts = {1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  front.accepted = 9;
  front.width = 640;
  front.height = 480;
  front.fps_target = 30;
  mjpeg::stats_snapshot yard;
  yard.source = "relay http://10.0.0.2/stream";
  yard.state = mjpeg::source_state::down;
  yard.frames_captured = 7;
  yard.total = {1, 1, 40, 200, 0, 0, 0};
  yard.ended = {0, 2, 0, 0};
  yard.age_counts = {0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0};
  yard.width = 320;  // each camera's own size and rate (its config section)
  yard.height = 240;
  yard.fps_target = 5;
  const auto all = mjpeg::combine_cameras({{"front", front, 0.25}, {"yard", yard, -1}});
  EXPECT_EQ(all.total.viewers_now, 3u);
  EXPECT_EQ(all.total.frames_sent, 540u);
  EXPECT_EQ(all.total.bad_requests, 4u) << "counted by the server, not by a camera";
  EXPECT_EQ(all.frames_captured, 307u);
  EXPECT_EQ(all.ended[1], 2u);
  EXPECT_EQ(all.age_counts[2], 3u);
  EXPECT_EQ(all.accepted, 9u);
  const std::string json = mjpeg::render_json(all);
  EXPECT_NE(
      json.find(
          R"("cameras":[{"name":"front","source":"camera /dev/video0","source_state":"up","width":640,"height":480,"fps_target":30,"fps_capture":30,"frames_captured":300,"frame_seq":300,"frame_bytes":0,"frame_age_s":0.25,"viewers_now":2,"viewers_total":3,"frames_sent":500,"bytes_sent":1000,"frames_skipped":1,"rejected":1,"bad_requests":4},{"name":"yard","source":"relay http://10.0.0.2/stream","source_state":"down","width":320,"height":240,"fps_target":5,"fps_capture":0,"frames_captured":7,"frame_seq":0,"frame_bytes":0,"frame_age_s":null,"viewers_now":1,"viewers_total":1,"frames_sent":40,"bytes_sent":200,"frames_skipped":0,"rejected":0,"bad_requests":0}])"),
      std::string::npos)
      << json;
  const std::string page = mjpeg::render_prometheus(all);
  for (const char* line :
       {"\nmjpeg_source_up{camera=\"front\"} 1\n", "\nmjpeg_source_up{camera=\"yard\"} 0\n",
        "\nmjpeg_source_state{camera=\"yard\",state=\"down\"} 1\n",
        "\nmjpeg_frames_sent_total{camera=\"front\"} 500\n", "\nmjpeg_viewers{camera=\"yard\"} 1\n",
        "\nmjpeg_frames_captured_total{camera=\"yard\"} 7\n", "\nmjpeg_target_fps{camera=\"yard\"} 5\n",
        "\nmjpeg_frame_age_seconds_count 6\n", "\nmjpeg_connections_accepted_total 9\n"})
    EXPECT_NE(page.find(line), std::string::npos) << line << page;
  EXPECT_EQ(page.find("\nmjpeg_source_up "), std::string::npos) << "no unlabelled series beside the cameras'";
  EXPECT_EQ(page.find("\nmjpeg_viewers "), std::string::npos);
}

// /NAME/stats: one camera's own document, shaped as a one-camera server's /stats (the page reads
// both) with the camera's name and the age of its latest frame.
TEST(StatsRenderers, OneCamerasOwnStatsNameItAndItsFrameAge) {
  mjpeg::stats_snapshot yard;
  yard.variant = "async";
  yard.source = "pattern";
  yard.state = mjpeg::source_state::up;
  yard.width = 160;
  yard.height = 120;
  yard.fps_target = 5;
  yard.fps_capture = 4.9;
  yard.frame_seq = 12;
  yard.total = {1, 2, 30, 4000, 0, 0, 0};
  EXPECT_EQ(
      mjpeg::render_json(mjpeg::camera_view({"yard", yard, 0.125})),
      R"({"variant":"async","name":"yard","uptime_s":0,"source":"pattern","source_up":true,"source_state":"up","camera":null,"width":160,"height":120,"fps_target":5,"fps_capture":4.9,"frame_seq":12,"frame_bytes":0,"frame_age_s":0.125,"viewers_now":1,"viewers_total":2,"frames_sent":30,"bytes_sent":4000,"frames_skipped":0,"rejected":0,"bad_requests":0,"frames_captured":0,"times_replaced":0,"publish":[],"viewers":[]})");
  EXPECT_NE(mjpeg::render_json(mjpeg::camera_view({"yard", yard, -1})).find(R"("frame_age_s":null,)"),
            std::string::npos)
      << "no frame yet";
}

TEST(StatsRenderers, PrometheusByteForByte) {
  auto s = full_snapshot();
  s.variant = "as\"ync\\\n";  // label values are escaped
  EXPECT_EQ(mjpeg::render_prometheus(s),
            std::string{R"(# HELP mjpeg_build_info Always 1; the labels name the server variant and version.
# TYPE mjpeg_build_info gauge
mjpeg_build_info{variant="as\"ync\\\n",version=")" +
                        std::string{mjpeg::version} + R"("} 1
# HELP mjpeg_uptime_seconds Seconds since the server started.
# TYPE mjpeg_uptime_seconds gauge
mjpeg_uptime_seconds 12.3457
# HELP mjpeg_source_up 1 while the source delivers frames, 0 while it is down or idle.
# TYPE mjpeg_source_up gauge
mjpeg_source_up 1
# HELP mjpeg_source_state 1 for the source's current state (up, down, idle), 0 for the others.
# TYPE mjpeg_source_state gauge
mjpeg_source_state{state="up"} 1
mjpeg_source_state{state="down"} 0
mjpeg_source_state{state="idle"} 0
# HELP mjpeg_capture_fps Measured capture rate, frames per second.
# TYPE mjpeg_capture_fps gauge
mjpeg_capture_fps 29.5004
# HELP mjpeg_target_fps Configured frame rate (--fps).
# TYPE mjpeg_target_fps gauge
mjpeg_target_fps 30
# HELP mjpeg_frame_seq Sequence number of the latest frame.
# TYPE mjpeg_frame_seq gauge
mjpeg_frame_seq 370
# HELP mjpeg_frame_bytes JPEG size of the latest frame in bytes.
# TYPE mjpeg_frame_bytes gauge
mjpeg_frame_bytes 41234
# HELP mjpeg_frames_captured_total Frames captured and published.
# TYPE mjpeg_frames_captured_total counter
mjpeg_frames_captured_total 370
# HELP mjpeg_source_times_replaced_total Forwarded frames whose capture time was over an hour from now, replaced with the arrival time.
# TYPE mjpeg_source_times_replaced_total counter
mjpeg_source_times_replaced_total 2
# HELP mjpeg_frames_sent_total Frames written to viewers (one per viewer per frame).
# TYPE mjpeg_frames_sent_total counter
mjpeg_frames_sent_total 900
# HELP mjpeg_frames_skipped_total Frames a viewer missed because it was still taking an earlier one.
# TYPE mjpeg_frames_skipped_total counter
mjpeg_frames_skipped_total 4
# HELP mjpeg_sent_bytes_total Bytes written to viewers, part headers included.
# TYPE mjpeg_sent_bytes_total counter
mjpeg_sent_bytes_total 37000000
# HELP mjpeg_viewers Viewers streaming now.
# TYPE mjpeg_viewers gauge
mjpeg_viewers 2
# HELP mjpeg_viewers_total Viewers that started a stream.
# TYPE mjpeg_viewers_total counter
mjpeg_viewers_total 5
# HELP mjpeg_viewers_ended_total Streams that ended, by reason.
# TYPE mjpeg_viewers_ended_total counter
mjpeg_viewers_ended_total{reason="closed"} 3
mjpeg_viewers_ended_total{reason="send_timeout"} 1
mjpeg_viewers_ended_total{reason="shutdown"} 0
mjpeg_viewers_ended_total{reason="error"} 0
# HELP mjpeg_connections_accepted_total TCP connections accepted (including those then turned away).
# TYPE mjpeg_connections_accepted_total counter
mjpeg_connections_accepted_total 9
# HELP mjpeg_connections_rejected_total Connections turned away before they were served, by reason.
# TYPE mjpeg_connections_rejected_total counter
mjpeg_connections_rejected_total{reason="capacity"} 1
# HELP mjpeg_bad_requests_total Requests answered with an error status, by status.
# TYPE mjpeg_bad_requests_total counter
mjpeg_bad_requests_total{status="404"} 1
mjpeg_bad_requests_total{status="421"} 1
# HELP mjpeg_frame_age_seconds Age of each frame when it was written to a viewer (send time minus capture time).
# TYPE mjpeg_frame_age_seconds histogram
mjpeg_frame_age_seconds_bucket{le="0.005"} 5
mjpeg_frame_age_seconds_bucket{le="0.01"} 15
mjpeg_frame_age_seconds_bucket{le="0.025"} 35
mjpeg_frame_age_seconds_bucket{le="0.05"} 35
mjpeg_frame_age_seconds_bucket{le="0.1"} 35
mjpeg_frame_age_seconds_bucket{le="0.25"} 35
mjpeg_frame_age_seconds_bucket{le="0.5"} 35
mjpeg_frame_age_seconds_bucket{le="1"} 35
mjpeg_frame_age_seconds_bucket{le="2.5"} 35
mjpeg_frame_age_seconds_bucket{le="5"} 35
mjpeg_frame_age_seconds_bucket{le="+Inf"} 36
mjpeg_frame_age_seconds_sum 0.5
mjpeg_frame_age_seconds_count 36
# HELP mjpeg_worker_viewers Viewers streaming now, per worker process.
# TYPE mjpeg_worker_viewers gauge
mjpeg_worker_viewers{worker="0"} 2
mjpeg_worker_viewers{worker="1"} 0
# HELP mjpeg_worker_frames_sent_total Frames written to viewers, per worker process.
# TYPE mjpeg_worker_frames_sent_total counter
mjpeg_worker_frames_sent_total{worker="0"} 600
mjpeg_worker_frames_sent_total{worker="1"} 300
# HELP mjpeg_worker_sent_bytes_total Bytes written to viewers, per worker process.
# TYPE mjpeg_worker_sent_bytes_total counter
mjpeg_worker_sent_bytes_total{worker="0"} 25000000
mjpeg_worker_sent_bytes_total{worker="1"} 12000000
# HELP mjpeg_worker_restarts_total Times the parent restarted this worker process.
# TYPE mjpeg_worker_restarts_total counter
mjpeg_worker_restarts_total{worker="0"} 0
mjpeg_worker_restarts_total{worker="1"} 2
)"});
}

}  // namespace
