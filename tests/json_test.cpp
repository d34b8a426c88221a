// The one JSON writer (/stats and mjpeg-load): nesting, commas, escapes, exact integers, null.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

#include "mjpeg/json.hpp"

namespace {

TEST(JsonWriter, NestsObjectsAndArraysWithCommas) {
  mjpeg::json_writer j;
  j.begin_object().string("a", "x").begin_array("list").number("", 1).begin_object().boolean("ok", true);
  j.end_object().number("", 2.5).end_array().begin_object("empty").end_object().end_object();
  EXPECT_EQ(j.str(), R"({"a":"x","list":[1,{"ok":true},2.5],"empty":{}})");
}

TEST(JsonWriter, EscapesStringsAndKeys) {
  mjpeg::json_writer j;
  j.begin_object().string("say \"hi\"", "back\\slash\nline\ttab\x01").end_object();
  EXPECT_EQ(j.str(), R"({"say \"hi\"":"back\\slash\nline\ttab\u0001"})");
}

TEST(JsonWriter, IntegersExactDoublesShortNonFiniteNull) {
  mjpeg::json_writer j;
  j.begin_array().number("", std::uint64_t{18'446'744'073'709'551'615u}).number("", -3);
  j.number("", 1.0 / 3).number("", std::nan("")).number("", HUGE_VAL).end_array();
  EXPECT_EQ(j.str(), "[18446744073709551615,-3,0.3333333333,null,null]");
}

}  // namespace
