// Exercise 4.2 (docs/04-async.md): /snapshot?next=1 answers with the next frame, captured after the
// request came, instead of the latest one. The handler waits for it the way the stream loop waits
// for each frame: suspended, so the one thread serves everyone else meanwhile.

#include <gtest/gtest.h>

#include <string>

#include "client.hpp"
#include "exercise.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

// X-Timestamp of a reply, in microseconds since the epoch (0 without one).
std::int64_t captured_us(const response& r) {
  const auto at = r.headers.find("x-timestamp");
  return at == r.headers.end() ? 0 : static_cast<std::int64_t>(std::stod(at->second) * 1e6);
}

TEST(SnapshotOfTheNextFrame, EachIsCapturedAfterItWasAskedForWhileTheStreamFlows) {
  // Two frames a second: the latest frame is, nearly always, up to half a second old.
  server_process server{exercise_binary("mjpeg_async"), {"--width", "320", "--height", "240", "--fps", "2"}};
  stream_reader viewer{server.port()};
  ASSERT_EQ(viewer.open(), 200);
  ASSERT_TRUE(viewer.next());
  for (int i = 0; i < 3; ++i) {
    const std::int64_t asked = now_us();
    const auto r = get(server.port(), "/snapshot?next=1");
    ASSERT_TRUE(good_snapshot(r)) << r.status;
    EXPECT_GT(captured_us(r), asked) << "request " << i << ": a frame captured "
                                     << (asked - captured_us(r)) / 1000 << " ms before it was asked for";
  }
  // Twenty at once, all waiting for the same next frame on the one thread: each gets it.
  const std::int64_t asked = now_us();
  const auto replies =
      burst(server.port(), 20, "GET /snapshot?next=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 10s);
  std::size_t good = 0;
  std::size_t fresh = 0;
  for (const response& r : replies.replies) {
    good += good_snapshot(r) ? 1 : 0;
    fresh += captured_us(r) > asked ? 1 : 0;
  }
  EXPECT_EQ(good, 20u) << "every request gets its snapshot";
  EXPECT_EQ(fresh, 20u) << "snapshots captured after they were asked for";
  EXPECT_TRUE(viewer.next()) << "the viewer's stream kept flowing";
}

}  // namespace
