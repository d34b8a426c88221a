// Abrupt disconnects over every variant: resets mid-frame and half-closes leave no viewer, no
// descriptor and no dead server behind, and the server still exits cleanly.

#include <signal.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <thread>

#include "client.hpp"
#include "eventually.hpp"
#include "every_variant.hpp"
#include "mjpeg/process.hpp"
#include "server_process.hpp"
#include "stats.hpp"

namespace {

using namespace mjpeg::test;

TEST_P(EveryVariant, ResetsAndHalfClosesMidStreamLeaveNoTrace) {
  server_process server{binary(), large_frames()};
  ASSERT_TRUE(good_snapshot(get(server.port(), "/snapshot")));
  std::this_thread::sleep_for(300ms);
  const int baseline_fds = mjpeg::open_fds(server.pid());

  for (int round = 0; round < 10; ++round) {
    // RST mid-frame: take part of a frame, then close with SO_LINGER {1, 0}.
    {
      stream_reader viewer{server.port()};
      ASSERT_EQ(viewer.open(), 200) << "round " << round << ": " << server.error_output();
      ASSERT_FALSE(viewer.conn().receive(2s, 1000).empty());
      const linger reset{1, 0};
      ::setsockopt(viewer.conn().fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }
    // Half-close right after the request: the stream still flows (the server has nothing more
    // to read); then the client leaves mid-frame.
    {
      stream_reader viewer{server.port()};
      ::shutdown(viewer.conn().fd(), SHUT_WR);
      ASSERT_EQ(viewer.open(), 200) << "half-closed viewer, round " << round;
      ASSERT_TRUE(viewer.next()) << "half-closed viewer, round " << round;
      ASSERT_FALSE(viewer.conn().receive(2s, 1000).empty());
    }
    // Half-close after a snapshot request: the answer still arrives in full.
    {
      connection c{server.port()};
      ASSERT_TRUE(c.send("GET /snapshot HTTP/1.1\r\nHost: x\r\n\r\n"));
      ::shutdown(c.fd(), SHUT_WR);
      EXPECT_TRUE(good_snapshot(parse_response(c.read_all(5s)))) << "half-closed snapshot, round " << round;
    }
    // Half-close in the middle of the request head: nobody to answer, nothing to keep.
    {
      connection c{server.port()};
      ASSERT_TRUE(c.send("GET /str"));
      ::shutdown(c.fd(), SHUT_WR);
      c.read_all(5s);
      EXPECT_TRUE(c.closed());
    }
  }
  EXPECT_EQ(server.wait(0ms), -1) << "the server died (SIGPIPE?): " << server.error_output();
  EXPECT_TRUE(good_snapshot(get(server.port(), "/snapshot")));
  EXPECT_TRUE(eventually([&] { return viewers_now(server.port()) == 0; }, 10s));
  EXPECT_LE(fds_settled(server.pid(), baseline_fds), baseline_fds);
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(5s), 0) << server.error_output();
}

}  // namespace
