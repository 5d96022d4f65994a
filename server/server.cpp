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
               "POST /v1/chat/completions (with a chat template), GET /v1/models, GET /metrics, GET /health.", "server"};
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
  const char* http = "HTTP";
  app.add_option("--io-threads", options.http.io_threads, "Threads that read and write connections (answers never wait on one)")
      ->type_name("N")
      ->check(maskgen_cli::whole_number(1, 64))
      ->group(http);
  app.add_option("--max-connections", options.http.max_connections, "Open connections at most; beyond, a 503 and close")
      ->type_name("N")
      ->check(maskgen_cli::whole_number<std::size_t>(1, 1 << 20))
      ->group(http);
  app.add_option("--max-body-bytes", options.http.max_body_bytes, "Larger request bodies get 413")
      ->type_name("N")
      ->check(maskgen_cli::whole_number<std::size_t>(1, std::size_t{1} << 32))
      ->group(http);
  app.add_option("--api-key", options.api_key,
                 "Require 'Authorization: Bearer KEY' on every endpoint but /health (default: $MASKGEN_API_KEY, if set)")
      ->type_name("KEY")
      ->envname("MASKGEN_API_KEY")
      ->group(http);
  app.add_flag_callback("--no-access-log", [&] { options.access_log = false; }, "Do not log a line per request")->group(http);
  std::string reasoning = "split";
  app.add_option("--reasoning-format", reasoning,
                 "A chat answer's <think>...</think> block: 'split' into reasoning_content, or 'inline' in content")
      ->type_name("split|inline")
      ->check(CLI::IsMember({"split", "inline"}));

  return maskgen_cli::run(app, argc, argv, [&] {
    options.reasoning = reasoning == "inline" ? maskgen_server::ReasoningFormat::Inline : maskgen_server::ReasoningFormat::Split;
    maskgen_server::OpenAIServer server(model, options);
    server.run(host, port, [&](int bound) {
      std::cout << "maskgen server: " << server.model_name() << (server.has_chat_template() ? " (chat template)" : "")
                << " on http://" << host << ":" << bound << std::endl;
    });
    return 0;
  });
}
