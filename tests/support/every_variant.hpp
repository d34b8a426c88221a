/// The one fixture for cross-variant behaviour: each TEST_P(EveryVariant, …) runs over every
/// server binary the build produced (instantiated once, in every_variant.cpp).
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace mjpeg::test {

/// Parameterised by a variant key ("mjpeg_async"). The tests adapt to the options a model's
/// --help lists (--threads, --max-clients, --queue) instead of naming variants.
class EveryVariant : public testing::TestWithParam<std::string> {
 protected:
  /// Path of the variant's binary.
  std::string binary() const;
  /// True if the variant's --help lists `option` (read once per binary).
  bool has_option(const std::string& option) const;
  /// single_thread is the only model with neither workers nor a viewer limit: it serves one
  /// connection at a time, and everyone else waits in the listen backlog.
  bool one_at_a_time() const;
};

}  // namespace mjpeg::test
