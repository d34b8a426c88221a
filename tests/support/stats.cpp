#include "stats.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "client.hpp"

namespace mjpeg::test {
namespace {

// The string after "name": in `json`, from `from`.
std::string text_field(const std::string& json, const std::string& name, std::size_t from) {
  const std::string key = "\"" + name + "\":\"";
  const auto at = json.find(key, from);
  if (at == std::string::npos) throw std::runtime_error("no " + name + " in " + json);
  return json.substr(at + key.size(), json.find('"', at + key.size()) - at - key.size());
}

}  // namespace

bool stats_snapshot::lists(const std::string& peer) const {
  for (const auto& v : viewers)
    if (v.peer == peer) return true;
  return false;
}

std::uint64_t stats_number(const std::string& json, const std::string& name, std::size_t from) {
  const std::string key = "\"" + name + "\":";
  const auto at = json.find(key, from);
  if (at == std::string::npos) throw std::runtime_error("no " + name + " in " + json);
  return std::stoull(json.substr(at + key.size()));
}

std::string stats_field(const std::string& json, const std::string& name) {
  const auto at = json.find("\"" + name + "\":");
  if (at == std::string::npos) return {};
  const auto begin = at + name.size() + 3;
  if (json[begin] == '"') return json.substr(begin + 1, json.find('"', begin + 1) - begin - 1);
  if (json[begin] == '[') return json.substr(begin, json.find(']', begin) - begin + 1);
  return json.substr(begin, json.find_first_of(",}", begin) - begin);
}

stats_snapshot read_stats(unsigned short port, const std::string& host) {
  const auto r = get(port, "/stats", 10s, host);
  stats_snapshot s;
  s.status = r.status;
  if (r.status != 200) return s;
  s.viewers_now = stats_number(r.body, "viewers_now");
  s.viewers_total = stats_number(r.body, "viewers_total");
  s.rejected = stats_number(r.body, "rejected");
  s.frames_captured = stats_number(r.body, "frames_captured");
  // The listed viewers: {"id":…,"peer":"…",…} after "viewers":[, one object each.
  for (auto at = r.body.find("{\"id\":", r.body.find("\"viewers\":[")); at != std::string::npos;
       at = r.body.find("{\"id\":", at + 1)) {
    s.viewers.push_back({stats_number(r.body, "id", at), text_field(r.body, "peer", at),
                         stats_number(r.body, "last_seq", at), stats_number(r.body, "frames_sent", at),
                         stats_number(r.body, "frames_skipped", at)});
  }
  return s;
}

int viewers_now(unsigned short port, const std::string& host) {
  const auto s = read_stats(port, host);
  return s.status == 200 ? static_cast<int>(s.viewers_now) : -1;
}

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(values.size())));
  return values[std::min(values.size() - 1, rank == 0 ? 0 : rank - 1)];
}

}  // namespace mjpeg::test
