// An OpenAI-style HTTP server on the engine (see openai_server.hpp for the endpoints).
//
//   server [--model DIR] [--host ADDRESS] [--port N] [--threads N] [OPTIONS]   (server --help)
//
//   curl http://127.0.0.1:8080/v1/completions -d '{"prompt": "sort 3 1 2 =", "max_tokens": 8, "temperature": 0}'

#include "openai_server.hpp"

#include "support/cli.hpp"

#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"An OpenAI-style HTTP server on maskgen's engine (continuous batching):\nPOST /v1/completions, "
               "POST /v1/chat/completions (with a chat template), GET /v1/models, GET /health.", "server"};
  maskgen_cli::set_up(app,
                      "  server --port 8080\n"
                      "  server --model Qwen3-0.6B --host 0.0.0.0 --port 8000 --max-running 16\n"
                      "  curl http://127.0.0.1:8080/v1/completions -d '{\"prompt\": \"sort 3 1 2 =\", \"max_tokens\": 8, \"temperature\": 0}'");
  std::string model = MASKGEN_DEMO_MODEL_DIR;
  std::string host = "127.0.0.1";
  int port = 8080;
  maskgen_server::ServerOptions options;
  maskgen_cli::add_model_flag(app, model);
  app.add_option("--host", host, "Address to listen on")->type_name("ADDRESS");
  app.add_option("--port", port, "Port to listen on; 0: any free port")->type_name("N")->check(maskgen_cli::whole_number(0, 65535));
  maskgen_cli::add_threads_flag(app, options.engine.num_threads);
  const char* engine = "Engine";
  app.add_option("--max-running", options.engine.max_running, "Requests decoded together at most")
      ->type_name("N")
      ->check(maskgen_cli::whole_number<std::size_t>(1, 4096))
      ->group(engine);
  app.add_option("--max-cached-tokens", options.engine.max_cached_tokens,
                 "Keys and values held for all requests, in tokens; 0: 8 full contexts")
      ->type_name("N")
      ->check(maskgen_cli::whole_number<std::size_t>(0, std::size_t{1} << 40))
      ->group(engine);
  app.add_option("--prefill-chunk", options.engine.prefill_chunk, "Prompt tokens prefilled per step")
      ->type_name("N")
      ->check(maskgen_cli::whole_number<std::size_t>(1, 1 << 20))
      ->group(engine);
  app.add_flag_callback("--no-reuse-prefixes", [&] { options.engine.reuse_prefixes = false; },
                        "Do not copy a shared prompt prefix's keys and values from another request")
      ->group(engine);
  app.add_option("--http-threads", options.http_threads, "Connections served at once")
      ->type_name("N")
      ->check(maskgen_cli::whole_number(1, 4096));

  return maskgen_cli::run(app, argc, argv, [&] {
    maskgen_server::OpenAIServer server(model, options);
    server.run(host, port, [&](int bound) {
      std::cout << "maskgen server: " << server.model_name() << (server.has_chat_template() ? " (chat template)" : "")
                << " on http://" << host << ":" << bound << std::endl;
    });
    return 0;
  });
}
