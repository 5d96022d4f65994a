# FindPCRE2
# ---------
# Finds PCRE2's 8-bit library (the pre-tokenizer regexes of tokenizer.json). Debian ships
# pkg-config files for it and no CMake config, so this module asks pkg-config first and falls back
# to a plain search of the usual prefixes.
#
# Imported target:  PCRE2::PCRE2  (pcre2-8)
# Result variables: PCRE2_FOUND, PCRE2_INCLUDE_DIR, PCRE2_LIBRARY, PCRE2_VERSION

if(TARGET PCRE2::PCRE2)
  set(PCRE2_FOUND TRUE)
  return()
endif()

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_PCRE2 QUIET libpcre2-8)
endif()

find_path(PCRE2_INCLUDE_DIR pcre2.h HINTS ${PC_PCRE2_INCLUDEDIR} ${PC_PCRE2_INCLUDE_DIRS})
find_library(PCRE2_LIBRARY NAMES pcre2-8 HINTS ${PC_PCRE2_LIBDIR} ${PC_PCRE2_LIBRARY_DIRS})
set(PCRE2_VERSION "${PC_PCRE2_VERSION}")

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(PCRE2
  REQUIRED_VARS PCRE2_LIBRARY PCRE2_INCLUDE_DIR
  VERSION_VAR PCRE2_VERSION)

if(PCRE2_FOUND)
  add_library(PCRE2::PCRE2 UNKNOWN IMPORTED)
  set_target_properties(PCRE2::PCRE2 PROPERTIES
    IMPORTED_LOCATION "${PCRE2_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${PCRE2_INCLUDE_DIR}")
endif()
mark_as_advanced(PCRE2_INCLUDE_DIR PCRE2_LIBRARY)
