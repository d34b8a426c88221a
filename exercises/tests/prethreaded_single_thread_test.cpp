// Exercise 1.1 (docs/01-single-thread.md): the single-thread server's accept-and-serve loop run
// by two threads at once, taking turns to accept from the one listening socket (UNP's
// prethreaded server). Two viewers are then served at once; a third still waits.

#include <gtest/gtest.h>

#include "client.hpp"
#include "exercise.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

TEST(PrethreadedSingleThread, TwoViewersAreServedAtOnceAndTheThirdWaits) {
  server_process server{exercise_binary("mjpeg_single_thread"), small_frames()};
  stream_reader one{server.port()};
  ASSERT_EQ(one.open(), 200);
  ASSERT_TRUE(one.next());
  stream_reader two{server.port()};
  ASSERT_EQ(two.open(2s), 200) << "viewer two must be served while viewer one watches";
  EXPECT_TRUE(two.next());
  EXPECT_TRUE(one.next()) << "viewer one keeps receiving";
  stream_reader three{server.port()};
  EXPECT_EQ(three.open(1s), 0) << "two loops serve two viewers: the third waits, as viewer two did before";
}

}  // namespace
