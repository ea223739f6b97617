# GNUInstallDirs: CMAKE_INSTALL_{LIBDIR,INCLUDEDIR,BINDIR} for the install interface.
include(GNUInstallDirs)

# nephroseg_add_library(<area> SOURCES ... DEPS ...)
#   Creates the static library nephroseg_<area> from src/<area>. The public include/
#   folder is on its users' include path; src/ (internal module headers such as
#   models/sam/internal.h) only on its own. Tests and benchmarks that need internals
#   link nephroseg_internal (see nephroseg_add_internal_target).
function(nephroseg_add_library area)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  set(target nephroseg_${area})
  add_library(${target} STATIC ${ARG_SOURCES})
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
                             $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
                             PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${target} PUBLIC ${ARG_DEPS} PRIVATE nephroseg_warnings)
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  set_property(GLOBAL APPEND PROPERTY NEPHROSEG_AREAS ${target})
endfunction()

# nephroseg_add_test(<name> SOURCES ... DEPS ... [LABELS ...] [TIMEOUT s]
#                    [LABELS_BY_FILTER "<gtest filter>=<label>" ...] [PREFIX p])
#   One GoogleTest executable per area; every TEST is registered with CTest. LABELS
#   (default unit) label every test, except those that a LABELS_BY_FILTER entry
#   matches: they get that entry's label instead (e.g. "LossParity.*=parity"), so one
#   executable can hold unit and parity tests. PREFIX (e.g. "serve.") is put before
#   every CTest name, so `ctest -R serve` selects an area whose suites say otherwise.
function(nephroseg_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT;PREFIX" "SOURCES;DEPS;LABELS;LABELS_BY_FILTER" ${ARGN})
  set(prefix "")
  if(ARG_PREFIX)
    set(prefix TEST_PREFIX "${ARG_PREFIX}")
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE nephroseg_test_support ${ARG_DEPS}
                        GTest::gtest nephroseg_test_main nephroseg_warnings)
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 900)
  endif()
  set(others "")
  foreach(entry ${ARG_LABELS_BY_FILTER})
    # One label per entry: a list would not survive gtest_discover_tests' PROPERTIES.
    if(NOT entry MATCHES "^([^=]+)=([^=,;]+)$")
      message(FATAL_ERROR "nephroseg_add_test(${name}): LABELS_BY_FILTER entry '${entry}' is not <filter>=<label>")
    endif()
    set(filter "${CMAKE_MATCH_1}")
    set(labels "${CMAKE_MATCH_2}")
    gtest_discover_tests(${name}
      ${prefix}
      TEST_FILTER "${filter}"
      WORKING_DIRECTORY ${PROJECT_BINARY_DIR}
      PROPERTIES LABELS "${labels}" TIMEOUT ${ARG_TIMEOUT}
      DISCOVERY_TIMEOUT 120)
    if(others)
      set(others "${others}:${filter}")
    else()
      set(others "${filter}")
    endif()
  endforeach()
  set(rest "")
  if(others)
    set(rest TEST_FILTER "-${others}")
  endif()
  gtest_discover_tests(${name}
    ${prefix}
    ${rest}
    WORKING_DIRECTORY ${PROJECT_BINARY_DIR}
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    DISCOVERY_TIMEOUT 120)
endfunction()

# nephroseg_add_internal_target()
#   nephroseg_internal: an INTERFACE target that puts src/ on the include path, for
#   the tests and benchmarks that reach internal module headers (src/models/*/
#   internal.h and friends). The CLI never links it.
function(nephroseg_add_internal_target)
  add_library(nephroseg_internal INTERFACE)
  target_include_directories(nephroseg_internal INTERFACE ${PROJECT_SOURCE_DIR}/src)
endfunction()
