/// The server's one log: levels, a rate limit so a flood cannot fill the disk, journal-aware lines.
#pragma once

#include <optional>
#include <string_view>

/// Every line the servers write to stderr goes through here.
///
/// A line is "<time> <program>: <level>: <message>" on a terminal or in a file; when stderr is the
/// systemd journal (JOURNAL_STREAM names it) the journal adds time and program itself, so a line is
/// "<priority>message" in sd-daemon's prefix format. Lines beyond the rate limit are dropped and
/// counted, and the next line that passes says how many were dropped.
namespace mjpeg::log {

/// Severity, most severe first; --log-level names the least severe one written.
enum class level { error, warning, info, debug };

/// "error", "warning", "info" or "debug" to a level; nullopt for anything else.
std::optional<level> parse_level(std::string_view name);

/// Sets the program name that starts each line (the binary's name).
void set_program(std::string_view program);
/// Writes lines at `lowest` and more severe ones only.
void set_level(level lowest);
/// True if a line at `l` would be written (before the rate limit).
bool enabled(level l);
/// True when stderr is the systemd journal: no timestamps of our own.
bool to_journal();

/// Lines a burst may write before the rate limit applies.
inline constexpr double burst_lines = 100;
/// Lines per second written once a burst is spent.
inline constexpr double lines_per_second = 20;

/// Writes one line at `l` (printf-style), subject to the level and the rate limit.
void write(level l, const char* format, ...) __attribute__((format(printf, 2, 3)));

/// Writes the count of lines the rate limit dropped since the last line, if any (at exit).
void flush_dropped();

}  // namespace mjpeg::log
