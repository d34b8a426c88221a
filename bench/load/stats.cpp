#include "stats.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <sstream>
#include <string>

namespace mjpeg::bench {

double percentile(std::span<const double> sorted, double p) noexcept {
  if (sorted.empty()) return 0;
  // Rank ceil(p/100 · n), 1-based; the small epsilon keeps 99.9% of 1000 at rank 999, not 1000.
  const double exact = p / 100.0 * static_cast<double>(sorted.size());
  auto rank = static_cast<std::size_t>(std::ceil(exact - 1e-9));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

summary summarize(std::vector<double> values) {
  summary s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.count = values.size();
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  s.min = values.front();
  s.max = values.back();
  s.p5 = percentile(values, 5);
  s.p50 = percentile(values, 50);
  s.p90 = percentile(values, 90);
  s.p99 = percentile(values, 99);
  s.p999 = percentile(values, 99.9);
  return s;
}

double jain_index(std::span<const double> values) noexcept {
  double sum = 0;
  double squares = 0;
  for (const double x : values) {
    sum += x;
    squares += x * x;
  }
  if (values.empty() || squares == 0) return 0;
  return sum * sum / (static_cast<double>(values.size()) * squares);
}

std::optional<process_sample> sample_process(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  std::ifstream stat_file{dir + "/stat"};
  const std::string stat{std::istreambuf_iterator<char>{stat_file}, {}};
  // The command name may hold spaces and parentheses: fields are counted after the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields{stat.substr(close + 2)};
  std::string field;
  process_sample s;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  // After the name: state(3) ... utime(14) stime(15) ... num_threads(20), rss pages (24).
  for (int index = 3; fields >> field; ++index) {
    if (index == 3 && field == "Z") return std::nullopt;  // a zombie has exited
    if (index == 14) utime = std::stoull(field);
    if (index == 15) stime = std::stoull(field);
    if (index == 20) s.threads = std::stoi(field);
    if (index == 24) {
      s.rss_bytes = std::stoull(field) * static_cast<unsigned long long>(::sysconf(_SC_PAGESIZE));
      break;
    }
  }
  const auto ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  s.cpu_seconds = static_cast<double>(utime + stime) / ticks;
  if (s.threads == 0) return std::nullopt;
  return s;
}

std::map<int, double> thread_runtimes(pid_t pid) {
  std::map<int, double> runtimes;
  std::error_code ec;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (std::filesystem::directory_iterator it{tasks, ec}, end; !ec && it != end; it.increment(ec)) {
    std::ifstream sched{it->path() / "sched"};
    // "se.sum_exec_runtime   :   1234.567890" in milliseconds, a few lines down.
    for (std::string line; std::getline(sched, line);) {
      if (!line.starts_with("se.sum_exec_runtime")) continue;
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        try {
          runtimes[std::stoi(it->path().filename().string())] = std::stod(line.substr(colon + 1)) / 1000.0;
        } catch (const std::exception&) {
        }
      }
      break;
    }
  }
  return runtimes;
}

double cpu_between(const process_sample& before, const std::map<int, double>& threads_before,
                   const process_sample& after, const std::map<int, double>& threads_after) {
  const double ticks = after.cpu_seconds - before.cpu_seconds;
  if (threads_after.empty()) return ticks;
  // New threads count from zero; threads gone since `before` are lost here, so the tick counts
  // win when they exceed this by more than their own resolution (two ticks).
  double precise = 0;
  for (const auto& [tid, runtime] : threads_after) {
    const auto old = threads_before.find(tid);
    precise += runtime - (old == threads_before.end() ? 0.0 : old->second);
  }
  const double resolution = 2.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  return ticks - precise > resolution ? ticks : precise;
}

double own_cpu_seconds() noexcept {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace mjpeg::bench
