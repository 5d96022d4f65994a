# The example programs' command lines as a new user meets them: each program's --help and
# --version, and bad command lines, each with the exit status and the words it must print.
#   cmake -DBIN=<folder of the built examples> -DWORK=<scratch folder> -DVERSION=<package version>
#         -DDEMO_MODEL=<the bundled model's folder> [-DTOOLS=<folder of make_random_model and
#         export_llama2c>] [-DSTORIES=<the stories260K model folder, a SentencePiece Llama>]
#         -P command_line_test.cmake
# Every failing case is listed, then the script fails.

set(failures 0)

# check(<status> <program> [argument...] SAYS <text>... [NEVER <text>...]): runs the program
# (standard input empty) and checks its exit status and that its output, standard output and
# error together, holds each SAYS text and none of the NEVER texts. An exit status of 2 must also
# come with "<program>: " and the pointer to --help; no output may show a C++ exception's bare name.
function(check status program)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "" "SAYS;NEVER")
  execute_process(COMMAND "${BIN}/${program}" ${arg_UNPARSED_ARGUMENTS}
                  INPUT_FILE /dev/null RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out TIMEOUT 120)
  string(REPLACE ";" " " command "${program} ${arg_UNPARSED_ARGUMENTS}")
  set(problems "")
  if(NOT rc STREQUAL "${status}")
    string(APPEND problems "\n  exit status ${rc}, expected ${status}")
  endif()
  set(expected "${arg_SAYS}")
  if(status EQUAL 2)
    list(APPEND expected "${program}: " "Run '${program} --help' for the options.")
  endif()
  foreach(text IN LISTS expected)
    string(FIND "${out}" "${text}" at)
    if(at EQUAL -1)
      string(APPEND problems "\n  does not say: ${text}")
    endif()
  endforeach()
  foreach(text IN LISTS arg_NEVER)
    string(FIND "${out}" "${text}" at)
    if(NOT at EQUAL -1)
      string(APPEND problems "\n  says what it must not: ${text}")
    endif()
  endforeach()
  if(out MATCHES "std::|terminate called|basic_string|stoi|stod|what\\(\\)")
    string(APPEND problems "\n  shows a C++ exception's name")
  endif()
  if(problems)
    message("FAILED: ${command}${problems}\n  output:\n${out}")
    math(EXPR count "${failures} + 1")
    set(failures ${count} PARENT_SCOPE)
  else()
    message("ok: ${command}")
  endif()
endfunction()

# --help (defaults and examples) and --version, of every program.
check(0 batch_generate --help SAYS "Usage: batch_generate [OPTIONS] [PROMPT...]" "--model DIR=" "--max-new-tokens N=32"
      "--min-new-tokens N=0" "--do-sample" "--temperature X=1" "--top-k N=50" "--top-p X=1" "--min-p X=0" "--seed N "
      "--repetition-penalty X=1" "--no-repeat-ngram-size N=0" "--num-beams N=1" "--num-return-sequences N=1"
      "--threads N=0" "--batch-size N=16" "--padding-side SIDE=left" "--stream" "--chat" "Examples:"
      "batch_generate --check --file examples/demo_prompts.txt")
check(0 mask_pitfall --help SAYS "Usage: mask_pitfall [OPTIONS]" "--model DIR=" "--prompts N=12" "--seed N=2026"
      "--threads N=0" "Examples:")
check(0 tokenize_batch --help SAYS "Usage: tokenize_batch [OPTIONS] [TEXT...]" "--tokenizer PATH=" "--padding-side SIDE=left"
      "--padding HOW=longest" "--max-length N" "--pad-to-multiple-of N" "--truncation" "--truncation-side SIDE=right"
      "--add-bos-token" "--pad-token-id N" "Examples:")
check(0 server --help SAYS "Usage: server [OPTIONS]" "--model DIR=" "--host ADDRESS=127.0.0.1" "--port N=8080"
      "--threads N=0" "--max-running N=32" "--prefill-chunk N=16" "Examples:")
check(0 make_scripted_model --help SAYS "Usage: make_scripted_model [OPTIONS]" "--tokenizer DIR (required)" "--out DIR (required)"
      "--scripts FILE (required)" "--hidden N" "--layers N" "--max-positions N" "trigger_id" "Examples:")
foreach(program batch_generate mask_pitfall tokenize_batch server make_scripted_model)
  check(0 ${program} --version SAYS "maskgen ${VERSION}")
endforeach()

# Bad values name the flag, the value and what is expected.
check(2 batch_generate --max-new-tokens abc "sort 1 =" SAYS "--max-new-tokens: expected a whole number >= 0, got 'abc'")
check(2 batch_generate --max-new-tokens -3 "sort 1 =" SAYS "--max-new-tokens: expected a whole number >= 0, got '-3'")
check(2 batch_generate --max-new-tokens SAYS "--max-new-tokens: expected a value after it")
check(2 batch_generate --do-sample --temperature 0 "sort 1 =" SAYS "--temperature: expected a number > 0, got '0'")
check(2 batch_generate --do-sample --top-p 1.5 "sort 1 =" SAYS "--top-p: expected a number in (0, 1" "got '1.5'")
check(2 batch_generate --do-sample --top-p nan "sort 1 =" SAYS "--top-p: expected a number in (0, 1" "got 'nan'")
check(2 batch_generate --do-sample --seed 99999999999999999999 "sort 1 =" SAYS "--seed: expected a whole number >= 0")
check(2 batch_generate --threads 1.5 "sort 1 =" SAYS "--threads: expected a whole number from 0 to 4096, got '1.5'")
check(2 batch_generate --padding-side middle "sort 1 =" SAYS "--padding-side: expected one of left, right, got 'middle'")
check(2 batch_generate --batch-size 0 "sort 1 =" SAYS "--batch-size: expected a whole number from 1 to")
check(2 batch_generate --file "${WORK}/no-such-file" SAYS "--file: expected a file, got '${WORK}/no-such-file', which does not exist")
# Flags that do not go together, or that need another.
check(2 batch_generate --temperature 0.7 "sort 1 =" SAYS "--temperature requires --do-sample")
check(2 batch_generate --do-sample --num-beams 2 "sort 1 =" SAYS "--do-sample with --num-beams > 1")
check(2 batch_generate --num-beams 2 --stream "sort 1 =" SAYS "--stream cannot follow beam search (--num-beams 2)")
check(2 batch_generate --num-return-sequences 2 "sort 1 =" SAYS "--num-return-sequences is 2 (use --do-sample or --num-beams)")
check(2 batch_generate --system "Be brief." "sort 1 =" SAYS "--system requires --chat")
check(2 batch_generate --max-new-tokens 2 --max-new-tokens 3 "sort 1 =" SAYS "--max-new-tokens was given more than once")
check(2 batch_generate SAYS "no prompts: give them as arguments, with --file F, or one per line on standard input")
check(2 batch_generate --chat "sort 3 1 2 =" SAYS "--chat needs the model's chat template, but" "tokenizer_config.json does not exist")
# Unknown flags, with the flag meant.
check(2 batch_generate --temprature 0.7 "sort 1 =" SAYS "unknown option --temprature (did you mean --temperature?)")
check(2 batch_generate --sample "sort 1 =" SAYS "unknown option --sample (renamed: use --do-sample)")
check(2 batch_generate --right "sort 1 =" SAYS "unknown option --right (renamed: use --padding-side right)")

# A model folder that is missing or incomplete names what is missing.
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/empty")
file(WRITE "${WORK}/config-only/config.json" "{}")
file(WRITE "${WORK}/no-tokenizer/config.json" "{}")
file(WRITE "${WORK}/no-tokenizer/model.safetensors" "")
file(WRITE "${WORK}/broken-config/config.json" "{\"model_type\": ")
file(WRITE "${WORK}/broken-config/model.safetensors" "")
file(COPY "${DEMO_MODEL}/tokenizer.model" DESTINATION "${WORK}/broken-config")
check(2 batch_generate --model "${WORK}/missing" "sort 1 =" SAYS "--model: the model folder '${WORK}/missing' does not exist")
check(2 batch_generate --model "${WORK}/empty" "sort 1 =" SAYS "--model: the model folder '${WORK}/empty' has no config.json")
check(2 batch_generate --model "${WORK}/config-only" "sort 1 =" SAYS "has no model.safetensors")
check(2 batch_generate --model "${WORK}/no-tokenizer" "sort 1 =" SAYS "has no tokenizer.json (nor tokenizer.model)")
check(2 batch_generate --model "${WORK}/empty/../config-only/config.json" "sort 1 =" SAYS "is not a folder")
check(2 mask_pitfall --model "${WORK}/empty" SAYS "--model: the model folder '${WORK}/empty' has no config.json")
check(2 server --model "${WORK}/no-tokenizer" SAYS "--model: the model folder '${WORK}/no-tokenizer' has no tokenizer.json")
# A folder with every file, one of them broken, or a sharded checkpoint without a shard its index
# lists: the work fails (1) and the message names the file.
file(WRITE "${WORK}/missing-shard/model.safetensors.index.json"
     "{\"weight_map\": {\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\"}}")
file(COPY "${DEMO_MODEL}/config.json" "${DEMO_MODEL}/tokenizer.model" DESTINATION "${WORK}/missing-shard")
check(1 batch_generate --model "${WORK}/broken-config" "sort 1 =" SAYS "batch_generate: " "config.json")
check(1 batch_generate --model "${WORK}/missing-shard" "sort 1 =" SAYS "model-00001-of-00002.safetensors" "does not exist")

# The other programs.
check(2 mask_pitfall --prompts 0 SAYS "--prompts: expected a whole number from 1 to 4096, got '0'")
check(2 mask_pitfall --seed -1 SAYS "--seed: expected a whole number >= 0, got '-1'")
check(2 mask_pitfall extra SAYS "unexpected argument 'extra'")
check(2 tokenize_batch SAYS "no texts: give one or more TEXT arguments to tokenize")
check(2 tokenize_batch --padding max_length "sort 1 =" SAYS "--padding max_length needs --max-length")
check(2 tokenize_batch --padding longest_first "sort 1 =" SAYS "--padding: expected one of longest, max_length, do_not_pad, got 'longest_first'")
check(2 tokenize_batch --truncation-side left "sort 1 =" SAYS "--truncation-side requires --truncation")
check(2 tokenize_batch --truncation --max-length 5 --pad-to-multiple-of 4 "sort 1 ="
      SAYS "--max-length 5 must be a multiple of --pad-to-multiple-of 4 with --truncation")
check(2 tokenize_batch --pad-token-id 99999 "sort 1 =" SAYS "--pad-token-id: expected an id below the vocabulary size 48, got 99999")
check(2 tokenize_batch --add-bos-token --no-add-bos-token "sort 1 =" SAYS "--add-bos-token excludes --no-add-bos-token")
check(2 tokenize_batch --tokenizer "${WORK}/empty" "sort 1 =" SAYS "--tokenizer: the folder '${WORK}/empty' has no tokenizer.json")
check(2 tokenize_batch --pad-to max "sort 1 =" SAYS "unknown option --pad-to (renamed: use --padding max_length)")
check(2 server --port 70000 SAYS "--port: expected a whole number from 0 to 65535, got '70000'")
check(2 server --threads -1 SAYS "--threads: expected a whole number from 0 to 4096, got '-1'")
check(2 server --max-running 0 SAYS "--max-running: expected a whole number from 1 to 4096, got '0'")
check(2 server --prefill-chunk x SAYS "--prefill-chunk: expected a whole number from 1 to 1048576, got 'x'")
check(1 server --host 999.1.1.1 --port 0 SAYS "server: cannot listen on 999.1.1.1")
file(WRITE "${WORK}/scripts-not-a-list.json" "{\"trigger_id\": 1, \"text\": \"a\"}")
file(WRITE "${WORK}/scripts-no-trigger.json" "[{\"text\": \"a\"}]")
check(2 make_scripted_model --tokenizer "${WORK}/empty" --out "${WORK}/out" SAYS "--scripts is required")
check(2 make_scripted_model --tokenizer "${WORK}/empty" --out "${WORK}/out" --scripts "${WORK}/no-such-file"
      SAYS "--scripts: expected a file, got '${WORK}/no-such-file', which does not exist")
check(2 make_scripted_model --tokenizer "${WORK}/empty" --out "${WORK}/out" --scripts "${WORK}/scripts-not-a-list.json"
      SAYS "--tokenizer ${WORK}/empty has no tokenizer.json")
check(2 make_scripted_model --tokenizer "${WORK}/empty" --out "${WORK}/out" --scripts "${WORK}/scripts-no-trigger.json" --layers 0
      SAYS "--layers: expected a whole number from 1 to 64, got '0'")

# And good command lines still run: the last two are examples from the programs' --help.
check(0 tokenize_batch --padding-side right "sort 1 =" "reverse 1 2 3 =" SAYS "input_ids [2, 6]:" "attention_mask:\n1 1 1 1 0 0\n1 1 1 1 1 1")
check(0 tokenize_batch --truncation --max-length 4 --no-add-bos-token "sort 9 8 7 6 5 =" SAYS "input_ids [1, 4]:")
# The continuation is printed as it follows the prompt: " 1 2 3", its leading space kept.
check(0 batch_generate --check --do-sample --seed 1 --temperature 0.01 --num-return-sequences 2 "sort 3 1 2 ="
      SAYS "[0] sort 3 1 2 = ->  1 2 3  [right]" "right answers: 2 of 2" NEVER "seed: ")

# llama.cpp's short flags beside the long ones: -m, -p (repeatable, before the PROMPT arguments), -n, -t.
check(0 batch_generate --help SAYS "-m,--model DIR=" "-p,--prompt TEXT" "-n,--max-new-tokens N=32" "-t,--threads N=0")
check(0 server --help SAYS "-m,--model DIR=" "-t,--threads N=0")
check(0 batch_generate -m "${DEMO_MODEL}" -n 8 -t 1 -p "sort 3 1 2 =" -p "reverse 1 2 3 =" "sort 2 1 ="
      SAYS "[0] sort 3 1 2 = ->  1 2 3\n[1] reverse 1 2 3 = ->  3 2 1\n[2] sort 2 1 = ->  1 2\n")
check(2 batch_generate -n x "sort 1 =" SAYS "--max-new-tokens: expected a whole number >= 0, got 'x'")
# --stream with several prompts: each row's line whole when it is done, never pieces of rows mixed
# (the short answer first: rows leave when they end).
check(0 batch_generate --stream "reverse 1 2 3 4 5 6 =" "sort 2 1 ="
      SAYS "[1] sort 2 1 = ->  1 2\n[0] reverse 1 2 3 4 5 6 = ->  6 5 4 3 2 1\n" NEVER "step ")

# --do-sample without --seed draws a seed and says it; --seed with that number repeats the run.
set(sampling -n 12 --do-sample --temperature 3 --top-k 0 "sort 5 2 9 2 =" "reverse 1 2 3 =")
execute_process(COMMAND "${BIN}/batch_generate" ${sampling} INPUT_FILE /dev/null RESULT_VARIABLE rc
                OUTPUT_VARIABLE first ERROR_VARIABLE said TIMEOUT 120)
if(rc EQUAL 0 AND said MATCHES "seed: ([0-9]+)\n")
  set(seed "${CMAKE_MATCH_1}")
  execute_process(COMMAND "${BIN}/batch_generate" ${sampling} --seed ${seed} INPUT_FILE /dev/null RESULT_VARIABLE rc
                  OUTPUT_VARIABLE again ERROR_VARIABLE said_again TIMEOUT 120)
  if(rc EQUAL 0 AND again STREQUAL first AND NOT said_again MATCHES "seed: ")
    message("ok: batch_generate --do-sample says its seed (${seed}) and --seed ${seed} repeats the run")
  else()
    message("FAILED: batch_generate --seed ${seed} did not repeat the run (exit status ${rc}):\n${first}\n---\n${again}")
    math(EXPR failures "${failures} + 1")
  endif()
else()
  message("FAILED: batch_generate --do-sample without --seed (exit status ${rc}) did not say its seed:\n${said}")
  math(EXPR failures "${failures} + 1")
endif()

# A SentencePiece Llama: the continuation keeps its leading space, streamed or not, and a
# continuation without one ("," after "Once upon a time") gets none.
if(STORIES AND EXISTS "${STORIES}/config.json")
  check(0 batch_generate -m "${STORIES}" -n 4 "The dog" "Once upon a time"
        SAYS "[0] The dog ->  was a big" "[1] Once upon a time -> , there")
  check(0 batch_generate -m "${STORIES}" -n 4 --stream "Once upon a time" SAYS "Once upon a time, there" NEVER "time ,")
  check(0 batch_generate -m "${STORIES}" -n 4 --stream "The dog" SAYS "The dog was a big" NEVER "dogwas")
endif()

# The tools built with the benchmarks parse their command lines the same way.
if(TOOLS)
  set(BIN "${TOOLS}")
  check(0 make_random_model --help SAYS "Usage: make_random_model [OPTIONS]" "--out DIR (required)" "--qwen3-0.6b" "Examples:")
  check(0 export_llama2c --version SAYS "maskgen ${VERSION}")
  check(2 make_random_model --layers 4 SAYS "--out is required")
  check(2 make_random_model --out "${WORK}/random" --layers x SAYS "--layers: expected a whole number from 1 to 16777216, got 'x'")
  check(2 make_random_model --out "${WORK}/random" --dtype F64 SAYS "--dtype: expected one of F32, BF16, F16, got 'F64'")
  check(2 export_llama2c --model "${WORK}/missing" --out "${WORK}/x.bin" SAYS "--model: the model folder '${WORK}/missing' does not exist")
  check(0 make_random_model --out "${WORK}/random" --layers 1 --hidden 64 --heads 4 --kv-heads 4 --intermediate 128 --vocab 256
        SAYS "parameters")
  check(0 export_llama2c --model "${WORK}/random" --out "${WORK}/random.bin" SAYS "wrote ${WORK}/random.bin")
endif()

if(failures GREATER 0)
  message(FATAL_ERROR "${failures} command lines did not end as expected")
endif()
