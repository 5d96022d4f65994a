# The tokenizers that ../shared keeps as tarballs (Gemma 3, gpt-oss, DeepSeek V3: their
# tokenizer.json files are large), extracted once into the build folder, never into the
# repository. Sets MASKGEN_EXTRACTED_TOKENIZERS_DIR: <dir>/<name>/tokenizer.json.
set(MASKGEN_EXTRACTED_TOKENIZERS_DIR "${CMAKE_BINARY_DIR}/shared-tokenizers")
foreach(name gemma3 gptoss deepseek_v3)
  set(tarball "${PROJECT_SOURCE_DIR}/../shared/tokenizers/${name}.tar.xz")
  set(dest "${MASKGEN_EXTRACTED_TOKENIZERS_DIR}/${name}")
  if(EXISTS "${tarball}" AND "${tarball}" IS_NEWER_THAN "${dest}/extracted.stamp")
    message(STATUS "Extracting ${tarball} into ${dest}")
    file(REMOVE_RECURSE "${dest}")
    file(MAKE_DIRECTORY "${dest}")
    execute_process(COMMAND "${CMAKE_COMMAND}" -E tar xJf "${tarball}" WORKING_DIRECTORY "${dest}" RESULT_VARIABLE rc)
    if(rc EQUAL 0)
      file(TOUCH "${dest}/extracted.stamp")
    else()
      message(WARNING "Could not extract ${tarball} (${rc}): its tests will be skipped")
    endif()
  endif()
endforeach()
