// An OpenAI-style HTTP server on the engine (see openai_server.hpp for the endpoints).
//
//   server [--model DIR] [--host H] [--port P] [--threads N] [--max-running N]
//          [--max-cached-tokens N] [--prefill-chunk N] [--http-threads N]
//
//   curl http://127.0.0.1:8080/v1/completions -d '{"prompt": "sort 3 1 2 =", "max_tokens": 8, "temperature": 0}'

#include "openai_server.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"maskgen's OpenAI-style HTTP server: /v1/completions, /v1/chat/completions, /v1/models, /health"};
  std::string model = MASKGEN_DEMO_MODEL_DIR;
  std::string host = "127.0.0.1";
  int port = 8080;
  maskgen_server::ServerOptions options;
  app.add_option("--model", model, "model folder: config.json, *.safetensors, tokenizer.json or tokenizer.model")
      ->capture_default_str()
      ->check(CLI::ExistingDirectory);
  app.add_option("--host", host, "address to listen on")->capture_default_str();
  app.add_option("--port", port, "port to listen on (0: any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_option("--threads", options.engine.num_threads, "threads for the forward pass (0: every core)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-running", options.engine.max_running, "requests decoded together at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--max-cached-tokens", options.engine.max_cached_tokens,
                 "keys and values held for all requests, in tokens (0: 8 full contexts)")
      ->capture_default_str();
  app.add_option("--prefill-chunk", options.engine.prefill_chunk, "prompt tokens prefilled per step")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--http-threads", options.http_threads, "connections served at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.set_version_flag("--version",
                       "maskgen " + std::to_string(MASKGEN_VERSION_MAJOR) + "." + std::to_string(MASKGEN_VERSION_MINOR) + "." +
                           std::to_string(MASKGEN_VERSION_PATCH));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    maskgen_server::OpenAIServer server(model, options);
    std::cout << "maskgen server: " << server.model_name() << (server.has_chat_template() ? " (chat template)" : "")
              << " on http://" << host << ":" << port << std::endl;
    server.run(host, port);
  } catch (const std::exception& e) {
    std::cerr << "server: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
