/// context_local<T>: Werkzeug's Local by hand, one value per thread in a map keyed by thread id.
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace mjpeg::lesson {

/// One T per thread, kept in a map keyed by std::this_thread::get_id() behind a lock (or one lock
/// per shard): what Werkzeug's Local does with a dict keyed by get_ident(), and what thread_local
/// gives for free. Every access looks the key up, as every Local.__getattr__ does.
template <class T, std::size_t Shards = 1>
class context_local {
  static_assert(Shards > 0);

 public:
  /// This thread's value, made on first use: Local.__getattr__ and __setattr__ in one.
  /// The reference stays valid until this thread calls release(): no other thread touches this
  /// entry, and unordered_map never moves its elements.
  T& get() {
    const auto id = std::this_thread::get_id();
    auto& s = shard_for(id);
    std::lock_guard lock{s.mutex};
    return s.values[id];
  }

  /// Forgets this thread's value: Local.__release_local__, what Flask does when a request ends.
  void release() {
    const auto id = std::this_thread::get_id();
    auto& s = shard_for(id);
    std::lock_guard lock{s.mutex};
    s.values.erase(id);
  }

  /// Whether this thread has a value now (without making one).
  bool has_value() const {
    const auto id = std::this_thread::get_id();
    const auto& s = shard_for(id);
    std::lock_guard lock{s.mutex};
    return s.values.contains(id);
  }

  /// How many threads' values are held: entries nobody released stay here.
  std::size_t size() const {
    std::size_t n = 0;
    for (const auto& s : shards_) {
      std::lock_guard lock{s.mutex};
      n += s.values.size();
    }
    return n;
  }

 private:
  // A cache line per shard, so threads on different shards do not contend on one line.
  struct alignas(64) shard {
    mutable std::mutex mutex;
    std::unordered_map<std::thread::id, T> values;
  };

  shard& shard_for(std::thread::id id) { return shards_[std::hash<std::thread::id>{}(id) % Shards]; }
  const shard& shard_for(std::thread::id id) const {
    return shards_[std::hash<std::thread::id>{}(id) % Shards];
  }

  std::array<shard, Shards> shards_;
};

/// werkzeug.local.release_local(local): forgets the calling thread's value.
template <class T, std::size_t Shards>
void release_local(context_local<T, Shards>& local) {
  local.release();
}

}  // namespace mjpeg::lesson
