// TensorStore: single files, model.safetensors directories, and sharded checkpoints whose index must agree
// with the shards' contents in both directions.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/safetensors.h"
#include "io_test_helpers.h"
#include "test_util.h"

namespace gemma4::test {
namespace {

namespace fs = std::filesystem;

// A sharded checkpoint: three shards and an index; `weight_map` entries are JSON "name":"file" pairs.
class ShardedDir : public ::testing::Test {
 protected:
  std::string dir = temp_dir();
  Tensor a = random_tensor(DType::BF16, {4, 3}, 1), b = random_tensor(DType::F32, {5}, 2),
         c = random_tensor(DType::I64, {2, 2}, 3), d = random_tensor(DType::BOOL, {}, 4);
  const std::string s1 = "model-00001-of-00003.safetensors", s2 = "model-00002-of-00003.safetensors",
                    s3 = "model-00003-of-00003.safetensors";

  void SetUp() override {
    save_safetensors(dir + "/" + s1, {{"a", a}, {"b", b}});
    save_safetensors(dir + "/" + s2, {{"c", c}});
    save_safetensors(dir + "/" + s3, {{"d", d}});
  }
  void write_index(const std::string& weight_map) {
    write_file(dir + "/model.safetensors.index.json",
               R"({"metadata":{"total_size":123},"weight_map":{)" + weight_map + "}}");
  }
  std::string good_map() const {
    return fmt::format(R"("a":"{0}","b":"{0}","c":"{1}","d":"{2}")", s1, s2, s3);
  }
  std::string index() const { return dir + "/model.safetensors.index.json"; }
};

TEST_F(ShardedDir, OpensThroughTheIndex) {
  write_index(good_map());
  for (const std::string& where : {dir, index()}) {  // the directory, or the index file itself
    TensorStore st = TensorStore::open(where);
    EXPECT_EQ(st.size(), 4u);
    EXPECT_EQ(st.names(), (std::vector<std::string>{"a", "b", "c", "d"}));
    EXPECT_EQ(st.file_of("a"), dir + "/" + s1);
    EXPECT_EQ(st.file_of("c"), dir + "/" + s2);
    EXPECT_EQ(st.file_of("d"), dir + "/" + s3);
    EXPECT_EQ(tensor_bytes(st.get("a")), tensor_bytes(a));
    EXPECT_EQ(tensor_bytes(st.get("b")), tensor_bytes(b));
    EXPECT_EQ(tensor_bytes(st.get("c")), tensor_bytes(c));
    EXPECT_EQ(tensor_bytes(st.get("d")), tensor_bytes(d));
    EXPECT_EQ(st.info("c").shape, (Shape{2, 2}));
    EXPECT_EQ(st.info("c").dtype, DType::I64);
    EXPECT_FALSE(st.has("zz"));
    expect_error([&] { st.get("zz"); }, {"'zz'"});
    expect_error([&] { st.info("zz"); }, {"'zz'"});
    expect_error([&] { st.file_of("zz"); }, {"'zz'"});
  }
}

TEST_F(ShardedDir, MissingShard) {
  write_index(good_map());
  fs::remove(dir + "/" + s2);
  expect_error([&] { TensorStore::open(dir); }, {index(), s2, "missing"});
}

TEST_F(ShardedDir, CorruptShardNamesTheShard) {
  write_index(good_map());
  std::string bytes = read_file(dir + "/" + s1);
  write_file(dir + "/" + s1, bytes.substr(0, bytes.size() - 2));
  expect_error([&] { TensorStore::open(dir); }, {dir + "/" + s1, "tensor 'b'"});
}

TEST_F(ShardedDir, TensorInTwoShards) {
  save_safetensors(dir + "/" + s3, {{"d", d}, {"a", a}});
  write_index(good_map());
  expect_error([&] { TensorStore::open(dir); }, {"'a'", "two shards", s1, s3});
}

TEST_F(ShardedDir, IndexNamesTheWrongShard) {
  write_index(fmt::format(R"("a":"{0}","b":"{1}","c":"{1}","d":"{2}")", s1, s2, s3));
  expect_error([&] { TensorStore::open(dir); }, {index(), "'b'", s2, "not there"});
}

TEST_F(ShardedDir, IndexListsATensorNoShardHas) {
  write_index(good_map() + fmt::format(R"(,"ghost":"{}")", s2));
  expect_error([&] { TensorStore::open(dir); }, {index(), "'ghost'", s2});
}

TEST_F(ShardedDir, ShardHoldsATensorTheIndexOmits) {
  write_index(fmt::format(R"("a":"{0}","c":"{1}","d":"{2}")", s1, s2, s3));
  expect_error([&] { TensorStore::open(dir); }, {index(), "'b'", s1, "not in the index"});
}

TEST_F(ShardedDir, BadIndexFiles) {
  write_file(index(), "{\"weight_map\": {\"a\": ");
  expect_error([&] { TensorStore::open(dir); }, {index(), "not valid JSON"});
  write_file(index(), R"({"metadata":{}})");
  expect_error([&] { TensorStore::open(dir); }, {index(), "weight_map"});
  write_index(R"("a":5)");
  expect_error([&] { TensorStore::open(dir); }, {index(), "'a'"});
  write_index("");
  expect_error([&] { TensorStore::open(dir); }, {index(), "no tensors"});
}

TEST(TensorStore, SingleFileAndModelSafetensorsDir) {
  std::string dir = temp_dir();
  Tensor w = random_tensor(DType::F16, {3, 3}, 9);
  save_safetensors(dir + "/model.safetensors", {{"w", w}});
  for (const std::string& where : {dir, dir + "/model.safetensors"}) {
    TensorStore st = TensorStore::open(where);
    EXPECT_EQ(st.names(), std::vector<std::string>{"w"});
    EXPECT_EQ(st.file_of("w"), dir + "/model.safetensors");
    EXPECT_EQ(tensor_bytes(st.get("w")), tensor_bytes(w));
  }
  std::string other = temp_dir() + "/weights.safetensors";
  save_safetensors(other, {{"v", w}});
  EXPECT_TRUE(TensorStore::open(other).has("v"));
}

TEST(TensorStore, NothingToOpen) {
  std::string dir = temp_dir();
  expect_error([&] { TensorStore::open(dir); }, {dir, "no model.safetensors"});
  expect_error([&] { TensorStore::open(dir + "/absent"); }, {dir + "/absent", "no such file"});
  TensorStore empty;
  expect_error([&] { empty.get("x"); }, {"'x'"});
}

}  // namespace
}  // namespace gemma4::test
