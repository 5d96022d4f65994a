// Peak memory and load time of one model folder, in a fresh process: loads it, prefills one prompt
// of 128 tokens and decodes 32 more, then prints the load time, the file size, the KV cache's size
// and the process's peak resident memory (VmHWM, which counts the mapped file's pages it touched),
// then the resident memory after the 160 tokens split into anonymous (what the process allocated:
// packed or converted copies of weights, the KV cache, activations; RssAnon) and the mapped
// file's pages (RssFile + RssShmem). A file in tmpfs stays in memory whether mapped or not, so
// there the machine holds the file plus the anonymous part.
//   build/bench/model_memory DIR [--int8 | --int4]

#include <maskgen/model.hpp>

#include <chrono>
#include <fstream>
#include <iostream>
#include <string>

namespace {

double status_mib(const std::string& key) {  // a "VmHWM:  1234 kB" line of /proc/self/status, in MiB
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::stod(line.substr(key.size() + 1)) / 1024.0;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::cerr << "usage: model_memory DIR [--int8 | --int4]\n";
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const std::string flag = argc > 2 ? argv[2] : "";
  const auto format = flag == "--int8"   ? maskgen::WeightFormat::Int8
                      : flag == "--int4" ? maskgen::WeightFormat::Int4
                                         : maskgen::WeightFormat::AsStored;
  const double before = status_mib("VmRSS");
  const auto start = std::chrono::steady_clock::now();
  const auto model = maskgen::Model<float>::load(dir, {.weights = format});
  const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const double after_load = status_mib("VmHWM");
  auto cache = model.make_cache(1);
  maskgen::TokenMatrix ids = maskgen::TokenMatrix::Constant(1, 128, 7);
  model.forward(ids, maskgen::TokenMatrix::Ones(1, 128), &cache);
  const maskgen::TokenMatrix one = maskgen::TokenMatrix::Constant(1, 1, 9), mask = maskgen::TokenMatrix::Ones(1, 1);
  for (int i = 0; i < 32; ++i) model.forward(one, mask, &cache);
  const auto& c = model.config();
  const double kv_mib = 2.0 * static_cast<double>(c.num_layers * c.kv_dim()) * 160 * sizeof(float) / (1024.0 * 1024.0);
  double file_mib = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".safetensors") file_mib += static_cast<double>(e.file_size()) / (1024.0 * 1024.0);
  }
  const double peak = status_mib("VmHWM");
  std::cout << "weights " << maskgen::ops::weight_type_name(model.weight_type()) << ", load " << load_ms << " ms, file "
            << file_mib << " MiB, KV cache (160 tokens) " << kv_mib << " MiB, RSS before load " << before
            << " MiB, peak after load " << after_load << " MiB, peak after 160 tokens " << peak << " MiB = "
            << peak / (file_mib + kv_mib) << "x (file + KV cache); after 160 tokens: anonymous " << status_mib("RssAnon")
            << " MiB, mapped file " << status_mib("RssFile") + status_mib("RssShmem") << " MiB\n";
  return 0;
} catch (const std::exception& e) {
  std::cerr << "model_memory: " << e.what() << "\n";
  return 1;
}
