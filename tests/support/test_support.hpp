#pragma once
// Paths and helpers shared by maskgen's tests.

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <string_view>

#include <gtest/gtest.h>
#include <maskgen/padding.hpp>
#include <nlohmann/json.hpp>

namespace maskgen::test {

// Fixtures committed with the project.
inline std::filesystem::path data_dir() { return MASKGEN_TEST_DATA_DIR; }

// Read-only test material beside the checkout (a real model, the Llama 2 tokenizer). Tests that
// need it skip when it is absent.
inline std::filesystem::path shared_dir() { return MASKGEN_SHARED_DIR; }

// A fixture model's folder: the tiny oracle models live in tests/data/models, stories260K in ../shared.
inline std::filesystem::path model_dir(const std::string& name) {
  return name == "stories260K" ? shared_dir() / "models/stories260K" : data_dir() / "models" / name;
}

inline nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return nlohmann::json::parse(in);
}

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A JSON list of equal-length id lists as a TokenMatrix.  // [rows, cols]
inline TokenMatrix to_matrix(const nlohmann::json& rows) {
  TokenMatrix m(static_cast<Eigen::Index>(rows.size()), rows.empty() ? 0 : static_cast<Eigen::Index>(rows[0].size()));
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (std::size_t c = 0; c < rows[r].size(); ++c)
      m(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(c)) = rows[r][c].get<std::int32_t>();
  return m;
}

// Asserts that `f` throws E whose message contains every one of `words`.
template <class E, class F>
void expect_error(F&& f, std::initializer_list<std::string_view> words) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const E& e) {
    for (auto w : words) EXPECT_NE(std::string_view(e.what()).find(w), std::string_view::npos) << e.what();
  }
}

// A fresh temporary folder, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("maskgen-test-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
             std::to_string(counter()++) + "-" + std::to_string(reinterpret_cast<std::uintptr_t>(this)));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::filesystem::path path_;
};

}  // namespace maskgen::test

// Skips the current test when a file from ../shared is missing.
#define MASKGEN_REQUIRE_SHARED(path)                                                          \
  do {                                                                                        \
    if (!std::filesystem::exists(path)) {                                                     \
      GTEST_SKIP() << "needs " << (path) << " (the shared test material beside the checkout)"; \
    }                                                                                         \
  } while (0)
