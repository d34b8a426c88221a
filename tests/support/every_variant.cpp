#include "every_variant.hpp"

#include <map>
#include <mutex>

#include "server_process.hpp"

namespace mjpeg::test {

std::string EveryVariant::binary() const {
  return variant_binary(GetParam());
}

bool EveryVariant::has_option(const std::string& option) const {
  static std::mutex mutex;
  static std::map<std::string, std::string> help;
  std::lock_guard lock{mutex};
  auto it = help.find(GetParam());
  if (it == help.end()) it = help.emplace(GetParam(), run_command(binary(), {"--help"}, 20s).out).first;
  return it->second.find(option + " ") != std::string::npos;
}

bool EveryVariant::one_at_a_time() const {
  return !has_option("--threads") && !has_option("--max-clients");
}

// Once for every test program that uses the fixture: this file is linked in with its members.
INSTANTIATE_TEST_SUITE_P(Variants, EveryVariant, testing::ValuesIn(variant_keys()),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace mjpeg::test
