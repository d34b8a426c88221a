// single_thread's lesson as an end-to-end test: while viewer one watches, viewer two is
// connected but gets nothing; once viewer one leaves, viewer two's stream starts. (Its other
// lessons, a slowloris or a stalled reader holding the only thread, are asserted by the
// cross-variant tests in slow_clients_test.cpp.)

#include <gtest/gtest.h>

#include <memory>

#include "client.hpp"
#include "server_process.hpp"

namespace {

using namespace mjpeg::test;

TEST(SingleThread, SecondViewerWaitsForTheFirst) {
  server_process server{variant_binary("mjpeg_single_thread"), small_frames()};
  auto first = std::make_unique<stream_reader>(server.port());
  ASSERT_EQ(first->open(), 200);
  ASSERT_TRUE(first->next());
  stream_reader second{server.port()};
  EXPECT_EQ(second.open(1s), 0) << "viewer two must receive nothing while viewer one is served";
  ASSERT_TRUE(first->next()) << "viewer one keeps receiving";
  first.reset();  // viewer one leaves
  ASSERT_EQ(second.open(5s), 200);
  EXPECT_TRUE(second.next());
}

}  // namespace
