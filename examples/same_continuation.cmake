# Runs two batch_generate command lines (FIRST and SECOND, ;-lists) and fails unless both exit 0
# and print the same continuation: the text after the last " -> " of each output.
#   cmake -DFIRST="..." -DSECOND="..." -P same_continuation.cmake
foreach(which FIRST SECOND)
  execute_process(COMMAND ${${which}} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${which} exited ${rc}: ${err}")
  endif()
  string(FIND "${out}" " -> " at REVERSE)
  if(at EQUAL -1)
    message(FATAL_ERROR "${which} printed no continuation: ${out}")
  endif()
  string(SUBSTRING "${out}" ${at} -1 continuation_${which})
endforeach()
if(NOT continuation_FIRST STREQUAL continuation_SECOND)
  message(FATAL_ERROR "different continuations:\n${continuation_FIRST}\n${continuation_SECOND}")
endif()
message(STATUS "same continuation:${continuation_FIRST}")
