// libFuzzer harness: any bytes as a whole safetensors file. The header is parsed and validated
// (length, JSON, dtypes, shapes, offsets against the data that follows); when it passes, every
// tensor of up to 65,536 elements is converted to float. Parsing succeeds or throws a
// maskgen::error; anything else escaping, a sanitizer report, a leak or a hang is a finding; so is
// an allocation that follows what the header claims rather than what the file holds (libFuzzer's
// -rss_limit_mb and -malloc_limit_mb catch it). Built by tests/fuzz/run.sh.

#include <maskgen/safetensors.hpp>

#include <cstdint>
#include <span>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data), size);
  try {
    const auto header = maskgen::detail::parse_header(file, "fuzz.safetensors");
    for (const auto& [name, t] : header.tensors) {
      if (t.end < t.begin || t.end > size) __builtin_trap();  // offsets lie inside the file (absolute)
      if (t.numel() > 65536) continue;
      std::vector<float> out(static_cast<std::size_t>(t.numel()));
      maskgen::detail::decode(t.dtype, file.subspan(t.begin, t.end - t.begin), std::span<float>(out));
    }
  } catch (const maskgen::error&) {
  }
  return 0;
}
