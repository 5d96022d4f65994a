# Installs the maskgen build at MASKGEN_BINARY_DIR into WORK_DIR/prefix, then configures, builds
# and runs the consumer project against that prefix. Exit code 77 means "skipped".
file(REMOVE_RECURSE "${WORK_DIR}")

function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(JOIN " " line ${ARGN})
    message(FATAL_ERROR "consumer test: '${line}' failed (${rc})")
  endif()
endfunction()

step("${CMAKE_COMMAND}" --install "${MASKGEN_BINARY_DIR}" --prefix "${WORK_DIR}/prefix")
step("${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}" -B "${WORK_DIR}/build"
     -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release)
step("${CMAKE_COMMAND}" --build "${WORK_DIR}/build")
execute_process(COMMAND "${WORK_DIR}/build/consumer" "${TOKENIZER_MODEL}" RESULT_VARIABLE rc)
if(rc EQUAL 77)
  # cmake -P cannot exit with a chosen code; ctest reads this line through SKIP_REGULAR_EXPRESSION.
  message("consumer test: SKIPPED (no tokenizer model)")
  return()
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer test: the consumer program failed (${rc})")
endif()
