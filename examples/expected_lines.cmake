# Runs a batch_generate command line (COMMAND, a ;-list) and fails unless it exits 0 and prints,
# each on a line of its own after its "[i] " index, every rows[i].line of the oracle file REFERENCE
# ("prompt -> text",
# made by tests/reference/make_family_folder_fixtures.py with transformers and the Hugging Face
# tokenizer).
#   cmake -DCOMMAND="..." -DREFERENCE=file.json -P expected_lines.cmake
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "exited ${rc}: ${err}")
endif()
file(READ "${REFERENCE}" reference)
string(JSON rows LENGTH "${reference}" rows)
math(EXPR last "${rows} - 1")
foreach(i RANGE ${last})
  string(JSON line GET "${reference}" rows ${i} line)
  string(FIND "\n${out}" "\n[${i}] ${line}\n" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "missing line:\n${line}\nin the output:\n${out}")
  endif()
endforeach()
message(STATUS "all ${rows} lines as the oracle:\n${out}")
