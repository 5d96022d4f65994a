# FindSentencePiece
# -----------------
# Finds the SentencePiece C++ library. Debian ships only a pkg-config file for it, so this module
# asks pkg-config first and falls back to a plain search of the usual prefixes.
#
# Imported target:  SentencePiece::SentencePiece
# Result variables: SentencePiece_FOUND, SentencePiece_INCLUDE_DIR, SentencePiece_LIBRARY,
#                   SentencePiece_VERSION

if(TARGET SentencePiece::SentencePiece)
  set(SentencePiece_FOUND TRUE)
  return()
endif()

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_SentencePiece QUIET sentencepiece)
endif()

find_path(SentencePiece_INCLUDE_DIR sentencepiece_processor.h
  HINTS ${PC_SentencePiece_INCLUDEDIR} ${PC_SentencePiece_INCLUDE_DIRS})
find_library(SentencePiece_LIBRARY NAMES sentencepiece
  HINTS ${PC_SentencePiece_LIBDIR} ${PC_SentencePiece_LIBRARY_DIRS})
set(SentencePiece_VERSION "${PC_SentencePiece_VERSION}")

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(SentencePiece
  REQUIRED_VARS SentencePiece_LIBRARY SentencePiece_INCLUDE_DIR
  VERSION_VAR SentencePiece_VERSION)

if(SentencePiece_FOUND)
  add_library(SentencePiece::SentencePiece UNKNOWN IMPORTED)
  set_target_properties(SentencePiece::SentencePiece PROPERTIES
    IMPORTED_LOCATION "${SentencePiece_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${SentencePiece_INCLUDE_DIR}")
endif()
mark_as_advanced(SentencePiece_INCLUDE_DIR SentencePiece_LIBRARY)
