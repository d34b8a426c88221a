// The multipart reader (load generator, relay source): fed whole, split at every byte, with
// broken parts, keeping bodies, and starting from a boundary given by a Content-Type.

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "mjpeg/multipart.hpp"

namespace {

using mjpeg::http::multipart_parser;
using mjpeg::http::part_info;
using mjpeg::http::response_head;

// Records every event for comparison; kept bodies are copied, as they live only during on_part.
struct recorder : mjpeg::http::multipart_listener {
  std::vector<response_head> heads;
  std::vector<part_info> parts;
  std::vector<std::string> bodies;
  void on_response(const response_head& head) override { heads.push_back(head); }
  void on_part(const part_info& part) override {
    parts.push_back(part);
    parts.back().body = {};
    bodies.emplace_back(part.body);
  }
};

bool operator==(const part_info& a, const part_info& b) {
  return a.content_length == b.content_length && a.body_bytes == b.body_bytes &&
         a.timestamp_us == b.timestamp_us && a.seq == b.seq;
}

const std::string head =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: multipart/x-mixed-replace;boundary=frameboundary\r\n"
    "Cache-Control: no-store\r\n"
    "\r\n";

// One part the way this project's servers write it (the boundary line precedes it).
std::string part(const std::string& body, std::uint64_t seq, const std::string& ts) {
  return "--frameboundary\r\nContent-Type: image/jpeg\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nX-Timestamp: " + ts + "\r\nX-Frame-Seq: " + std::to_string(seq) + "\r\n\r\n" + body + "\r\n";
}

// A body with CR, LF and a boundary look-alike inside, which only Content-Length can skip safely.
std::string tricky_body(std::size_t n) {
  std::string body = "\xFF\xD8\r\n--frameboundary\r\n\n\r";
  while (body.size() < n - 2)
    body += static_cast<char>('a' + body.size() % 26);
  return body + "\xFF\xD9";
}

recorder feed_whole(const std::string& bytes, multipart_parser& parser) {
  recorder r;
  EXPECT_EQ(parser.feed(bytes, r), bytes.size());
  return r;
}

TEST(MultipartParser, ParsesResponseAndParts) {
  const std::string stream =
      head + part(tricky_body(100), 7, "1700000000.123456") + part(tricky_body(50), 9, "1700000001.000001");
  multipart_parser parser;
  const auto r = feed_whole(stream, parser);
  ASSERT_EQ(r.heads.size(), 1u);
  EXPECT_EQ(r.heads[0].status, 200);
  EXPECT_EQ(r.heads[0].boundary, "frameboundary");
  ASSERT_EQ(r.parts.size(), 2u);
  EXPECT_EQ(r.parts[0].content_length, 100u);
  EXPECT_EQ(r.parts[0].body_bytes, 100u);
  EXPECT_EQ(r.parts[0].seq, 7u);
  EXPECT_EQ(r.parts[0].timestamp_us, 1'700'000'000'123'456);
  EXPECT_EQ(r.parts[1].body_bytes, 50u);
  EXPECT_EQ(r.parts[1].seq, 9u);
  EXPECT_EQ(r.parts[1].timestamp_us, 1'700'000'001'000'001);
  EXPECT_EQ(parser.errors().length_mismatches, 0u);
  EXPECT_EQ(parser.errors().bad_headers, 0u);
  EXPECT_EQ(parser.errors().missing_length, 0u);
}

TEST(MultipartParser, SameEventsWhenSplitAtEveryByte) {
  // One part without Content-Length too, so the boundary search is split everywhere as well.
  const std::string unframed =
      "--frameboundary\r\nX-Frame-Seq: 3\r\nContent-Type: image/jpeg\r\n\r\n" + std::string(40, 'x') + "\r\n";
  const std::string stream = head + "preamble text\r\n" + part(tricky_body(64), 1, "1.5") + unframed +
                             part(tricky_body(30), 4, "2.25") + "--frameboundary--\r\n";
  multipart_parser whole_parser;
  const auto whole = feed_whole(stream, whole_parser);
  ASSERT_EQ(whole.parts.size(), 3u);
  EXPECT_EQ(whole.parts[1].body_bytes, 40u);
  EXPECT_EQ(whole_parser.current(), multipart_parser::state::done);

  for (std::size_t at = 0; at <= stream.size(); ++at) {
    multipart_parser parser;
    recorder r;
    parser.feed(std::string_view{stream}.substr(0, at), r);
    parser.feed(std::string_view{stream}.substr(at), r);
    ASSERT_EQ(r.parts.size(), whole.parts.size()) << "split at " << at;
    for (std::size_t i = 0; i < r.parts.size(); ++i)
      EXPECT_TRUE(r.parts[i] == whole.parts[i]) << "split at " << at << ", part " << i;
    ASSERT_EQ(r.heads.size(), 1u);
    EXPECT_EQ(r.heads[0].boundary, "frameboundary");
    EXPECT_EQ(parser.current(), multipart_parser::state::done) << "split at " << at;
  }

  // And one byte at a time.
  multipart_parser parser;
  recorder r;
  for (const char c : stream)
    parser.feed(std::string_view{&c, 1}, r);
  ASSERT_EQ(r.parts.size(), whole.parts.size());
  for (std::size_t i = 0; i < r.parts.size(); ++i)
    EXPECT_TRUE(r.parts[i] == whole.parts[i]);
}

TEST(MultipartParser, ChunkedResponseSplitAtEveryByte) {
  const std::string payload = part(tricky_body(64), 1, "1.5") + part(tricky_body(30), 2, "2.25");
  multipart_parser plain_parser;
  const auto plain = feed_whole(head + payload, plain_parser);
  ASSERT_EQ(plain.parts.size(), 2u);

  // Chunks of awkward sizes (one with an extension), cutting headers and bodies anywhere.
  std::string chunked =
      "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=frameboundary\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  std::size_t at = 0;
  for (const std::size_t size : {7u, 100u, 1u, 50u, 1000u}) {
    const auto piece = payload.substr(at, size);
    if (piece.empty()) break;
    char hex[32];
    std::snprintf(hex, sizeof hex, size == 1 ? "%zx;name=value\r\n" : "%zX\r\n", piece.size());
    chunked += hex + piece + "\r\n";
    at += piece.size();
  }
  chunked += "0\r\n\r\n";

  for (std::size_t split = 0; split <= chunked.size(); ++split) {
    multipart_parser parser;
    recorder r;
    parser.feed(std::string_view{chunked}.substr(0, split), r);
    parser.feed(std::string_view{chunked}.substr(split), r);
    ASSERT_EQ(r.parts.size(), plain.parts.size()) << "split at " << split;
    for (std::size_t i = 0; i < r.parts.size(); ++i)
      EXPECT_TRUE(r.parts[i] == plain.parts[i]) << "split at " << split << ", part " << i;
    EXPECT_EQ(parser.current(), multipart_parser::state::done) << "split at " << split;
    EXPECT_EQ(parser.errors().length_mismatches, 0u);
  }

  multipart_parser bad;
  recorder r;
  bad.feed(
      "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=b\r\n"
      "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
      r);
  EXPECT_EQ(bad.current(), multipart_parser::state::failed);
}

TEST(MultipartParser, HeadersInAnyOrderAndCase) {
  const std::string stream =
      "HTTP/1.0 200 OK\r\ncontent-type: Multipart/X-Mixed-Replace; Boundary=\"--peer\"\r\n\r\n"
      "--peer\r\nx-frame-seq: 12\r\nCONTENT-LENGTH:  5 \r\nx-timestamp: 10.5\r\n\r\nabcde\r\n";
  multipart_parser parser;
  const auto r = feed_whole(stream, parser);
  ASSERT_EQ(r.heads.size(), 1u);
  EXPECT_EQ(r.heads[0].boundary, "--peer");  // declared with its dashes, sent once: accepted
  ASSERT_EQ(r.parts.size(), 1u);
  EXPECT_EQ(r.parts[0].body_bytes, 5u);
  EXPECT_EQ(r.parts[0].seq, 12u);
  EXPECT_EQ(r.parts[0].timestamp_us, 10'500'000);
}

TEST(MultipartParser, UstreamerGrabTimeIsKeptBesideItsSendTime) {
  // ustreamer's X-Timestamp is its send time; its capture time comes as X-UStreamer-Grab-Time.
  const std::string stream = head +
                             "--frameboundary\r\nContent-Length: 2\r\nX-Timestamp: 1700000000.500000\r\n"
                             "X-UStreamer-Grab-Time: 1110.238000\r\n\r\nab\r\n";
  multipart_parser parser;
  const auto r = feed_whole(stream, parser);
  ASSERT_EQ(r.parts.size(), 1u);
  EXPECT_EQ(r.parts[0].timestamp_us, 1'700'000'000'500'000);
  EXPECT_EQ(r.parts[0].grab_raw_us, 1'110'238'000);
  EXPECT_EQ(parser.errors().bad_headers, 0u);
}

TEST(MultipartParser, MissingHeadersLeaveFieldsEmpty) {
  // No X-Timestamp, no X-Frame-Seq: still a part; no Content-Length: found by the boundary.
  const std::string stream = head + "--frameboundary\r\nContent-Length: 3\r\n\r\nabc\r\n" +
                             "--frameboundary\r\nContent-Type: image/jpeg\r\n\r\n0123456789\r\n" +
                             part("xyz", 5, "3");
  multipart_parser parser;
  const auto r = feed_whole(stream, parser);
  ASSERT_EQ(r.parts.size(), 3u);
  EXPECT_FALSE(r.parts[0].timestamp_us);
  EXPECT_FALSE(r.parts[0].seq);
  EXPECT_EQ(r.parts[0].body_bytes, 3u);
  EXPECT_FALSE(r.parts[1].content_length);
  EXPECT_EQ(r.parts[1].body_bytes, 10u);
  EXPECT_EQ(r.parts[2].seq, 5u);
  EXPECT_EQ(parser.errors().missing_length, 1u);
  EXPECT_EQ(parser.errors().length_mismatches, 0u);
}

TEST(MultipartParser, MalformedFieldsAreCounted) {
  const std::string stream = head +
                             "--frameboundary\r\nno colon here\r\nContent-Length: 2\r\nX-Frame-Seq: x\r\n\r\n"
                             "ab\r\n" +
                             "--frameboundary\r\nContent-Length: lots\r\n\r\nabcd\r\n" + part("ok", 2, "1");
  multipart_parser parser;
  const auto r = feed_whole(stream, parser);
  ASSERT_EQ(r.parts.size(), 3u);
  EXPECT_EQ(r.parts[0].body_bytes, 2u);
  EXPECT_FALSE(r.parts[0].seq);
  EXPECT_EQ(r.parts[1].body_bytes, 4u);  // a bad length falls back to the boundary
  EXPECT_EQ(r.parts[2].seq, 2u);
  EXPECT_EQ(parser.errors().bad_headers, 2u);
  EXPECT_EQ(parser.errors().missing_length, 1u);
}

TEST(MultipartParser, LengthTooShortIsAMismatchAndResyncs) {
  const std::string stream = head +
                             "--frameboundary\r\nContent-Length: 4\r\nX-Frame-Seq: 1\r\n\r\n0123456789\r\n" +
                             part("ok", 2, "1");
  multipart_parser parser;
  const auto r = feed_whole(stream, parser);
  ASSERT_EQ(r.parts.size(), 2u);
  EXPECT_EQ(r.parts[0].body_bytes, 4u);
  EXPECT_EQ(r.parts[1].seq, 2u);
  EXPECT_EQ(parser.errors().length_mismatches, 1u);
}

TEST(MultipartParser, LengthTooLongSwallowsTheNextPartAndResyncs) {
  // Part 1 claims 30 bytes: it eats its own 4, the CRLF and most of part 2. Part 3 is found again.
  const std::string stream = head +
                             "--frameboundary\r\nContent-Length: 30\r\nX-Frame-Seq: 1\r\n\r\nabcd\r\n" +
                             part("0123456789", 2, "1") + part("tail", 3, "1");
  multipart_parser parser;
  const auto r = feed_whole(stream, parser);
  ASSERT_EQ(r.parts.size(), 2u);
  EXPECT_EQ(r.parts[0].seq, 1u);
  EXPECT_EQ(r.parts[0].body_bytes, 30u);
  EXPECT_EQ(r.parts[1].seq, 3u);
  EXPECT_EQ(r.parts[1].body_bytes, 4u);
  EXPECT_EQ(parser.errors().length_mismatches, 1u);
}

TEST(MultipartParser, ErrorStatusEndsParsing) {
  const std::string stream =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 1\r\n\r\nbusy\n";
  multipart_parser parser;
  recorder r;
  const auto used = parser.feed(stream, r);
  ASSERT_EQ(r.heads.size(), 1u);
  EXPECT_EQ(r.heads[0].status, 503);
  EXPECT_TRUE(r.parts.empty());
  EXPECT_EQ(parser.current(), multipart_parser::state::done);
  EXPECT_EQ(used, stream.size() - 5);  // the body is not ours to parse
}

TEST(MultipartParser, GarbageIsAFailure) {
  multipart_parser parser;
  recorder r;
  parser.feed("SSH-2.0-OpenSSH\r\n\r\n", r);
  EXPECT_EQ(parser.current(), multipart_parser::state::failed);
  ASSERT_EQ(r.heads.size(), 1u);
  EXPECT_EQ(r.heads[0].status, 0);

  multipart_parser endless;
  recorder r2;
  endless.feed(std::string(multipart_parser::head_limit + 10, 'x'), r2);
  EXPECT_EQ(endless.current(), multipart_parser::state::failed);
}

TEST(MultipartParser, NonMultipartSuccessIsDone) {
  multipart_parser parser;
  recorder r;
  parser.feed("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>", r);
  EXPECT_EQ(parser.current(), multipart_parser::state::done);
  EXPECT_EQ(r.heads.at(0).boundary, "");
}

TEST(MultipartParser, OctetStreamWithABoundaryIsParts) {
  // What /stream?type=octet-stream sends: the same parts under another type.
  multipart_parser parser;
  std::string octet = head;
  octet.replace(octet.find("multipart/x-mixed-replace"), 25, "application/octet-stream");
  const auto r = feed_whole(octet + part("abc", 7, "1.5"), parser);
  ASSERT_EQ(r.bodies.size(), 1u);
  EXPECT_EQ(r.parts.at(0).seq, 7u);
  // Without a boundary it is a file, not a stream.
  multipart_parser plain;
  recorder file;
  plain.feed("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\nabc", file);
  EXPECT_EQ(plain.current(), multipart_parser::state::done);
}

TEST(MultipartParser, KeepsBodiesWhenSplitAtEveryByte) {
  // Framed, unframed (no Content-Length: the CRLF before the boundary is not body) and empty parts.
  const std::string framed = tricky_body(64);
  const std::string unframed = "ab\r\ncd\n" + std::string(300, 'x');  // longer than a boundary line
  const std::string stream = head + part(framed, 1, "1.5") + "--frameboundary\r\nX-Frame-Seq: 2\r\n\r\n" +
                             unframed + "\r\n" + part("", 3, "2") + "--frameboundary--\r\n";
  for (std::size_t at = 0; at <= stream.size(); ++at) {
    multipart_parser parser{multipart_parser::bodies::keep};
    recorder r;
    parser.feed(std::string_view{stream}.substr(0, at), r);
    parser.feed(std::string_view{stream}.substr(at), r);
    ASSERT_EQ(r.bodies.size(), 3u) << "split at " << at;
    EXPECT_EQ(r.bodies[0], framed) << "split at " << at;
    EXPECT_EQ(r.bodies[1], unframed) << "split at " << at;
    EXPECT_EQ(r.parts[1].body_bytes, unframed.size()) << "split at " << at;
    EXPECT_EQ(r.bodies[2], "") << "split at " << at;
    EXPECT_EQ(parser.current(), multipart_parser::state::done) << "split at " << at;
  }

  // Skipping parser: the same parts, no bodies.
  multipart_parser skipping;
  const auto r = feed_whole(stream, skipping);
  ASSERT_EQ(r.bodies.size(), 3u);
  EXPECT_EQ(r.bodies[0], "");
  EXPECT_EQ(r.parts[0].body_bytes, framed.size());
}

TEST(MultipartParser, KeptBodyOverTheLimitFails) {
  multipart_parser parser{multipart_parser::bodies::keep};
  recorder r;
  parser.feed(head + "--frameboundary\r\nContent-Length: " +
                  std::to_string(multipart_parser::body_limit + 1) + "\r\n\r\nabc",
              r);
  EXPECT_EQ(parser.current(), multipart_parser::state::failed);
  EXPECT_TRUE(r.parts.empty());

  // Without a length, the body grows until the limit, then the stream fails.
  multipart_parser unframed{multipart_parser::bodies::keep};
  recorder r2;
  unframed.feed(head + "--frameboundary\r\n\r\n", r2);
  const std::string mib(1024 * 1024, 'x');
  for (std::size_t i = 0; i <= multipart_parser::body_limit / mib.size() &&
                          unframed.current() != multipart_parser::state::failed;
       ++i)
    unframed.feed(mib, r2);
  EXPECT_EQ(unframed.current(), multipart_parser::state::failed);
  EXPECT_TRUE(r2.parts.empty());
}

TEST(MultipartParser, StartsFromTheBoundaryOfAContentType) {
  // The response head was read elsewhere (the relay source): only its Content-Type is given.
  const std::string payload = part(tricky_body(64), 1, "1.5") +
                              "--frameboundary\r\nX-Frame-Seq: 2\r\n\r\n0123456789\r\n--frameboundary--\r\n";
  multipart_parser parser{multipart_parser::bodies::keep};
  ASSERT_TRUE(parser.start_body("multipart/x-mixed-replace; boundary=\"frameboundary\""));
  const auto r = feed_whole(payload, parser);
  EXPECT_TRUE(r.heads.empty());
  ASSERT_EQ(r.parts.size(), 2u);
  EXPECT_EQ(r.bodies[0], tricky_body(64));
  EXPECT_EQ(r.bodies[1], "0123456789");
  EXPECT_EQ(parser.current(), multipart_parser::state::done);

  // The same payload chunked, in pieces of 5 bytes.
  std::string chunked;
  for (std::size_t at = 0; at < payload.size(); at += 5) {
    const auto piece = payload.substr(at, 5);
    char hex[16];
    std::snprintf(hex, sizeof hex, "%zx\r\n", piece.size());
    chunked += hex + piece + "\r\n";
  }
  chunked += "0\r\n\r\n";
  multipart_parser dechunking{multipart_parser::bodies::keep};
  ASSERT_TRUE(dechunking.start_body("multipart/x-mixed-replace;boundary=frameboundary", true));
  recorder c;
  dechunking.feed(chunked, c);  // stops at the closing boundary, before the last chunk
  ASSERT_EQ(c.bodies.size(), 2u);
  EXPECT_EQ(c.bodies[0], r.bodies[0]);
  EXPECT_EQ(c.bodies[1], r.bodies[1]);
  EXPECT_TRUE(c.parts[0] == r.parts[0]);
  EXPECT_EQ(dechunking.current(), multipart_parser::state::done);

  // Not multipart, or no boundary: refused at once.
  multipart_parser html;
  EXPECT_FALSE(html.start_body("text/html"));
  EXPECT_EQ(html.current(), multipart_parser::state::failed);
  multipart_parser unbounded;
  EXPECT_FALSE(unbounded.start_body("multipart/x-mixed-replace"));
  EXPECT_EQ(unbounded.current(), multipart_parser::state::failed);
}

TEST(BoundaryOf, ReadsTheParameter) {
  using mjpeg::http::boundary_of;
  EXPECT_EQ(boundary_of("multipart/x-mixed-replace;boundary=abc"), "abc");
  EXPECT_EQ(boundary_of("multipart/x-mixed-replace; charset=x; BOUNDARY = \"a b\" "), "a b");
  EXPECT_EQ(boundary_of("multipart/x-mixed-replace;boundary=--b"), "--b");
  EXPECT_EQ(boundary_of("multipart/x-mixed-replace"), "");
}

TEST(ParseTimestamp, SecondsAndFractions) {
  using mjpeg::http::parse_timestamp_us;
  EXPECT_EQ(parse_timestamp_us("1700000000.123456"), 1'700'000'000'123'456);
  EXPECT_EQ(parse_timestamp_us("12"), 12'000'000);
  EXPECT_EQ(parse_timestamp_us(" 1.5 "), 1'500'000);
  EXPECT_EQ(parse_timestamp_us("1.1234567"), 1'123'456);  // below a microsecond is dropped
  EXPECT_FALSE(parse_timestamp_us("1."));
  EXPECT_FALSE(parse_timestamp_us("abc"));
  EXPECT_FALSE(parse_timestamp_us("-1.5"));
  EXPECT_FALSE(parse_timestamp_us("1.5x"));
}

}  // namespace
