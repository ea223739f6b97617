# nephroseg_add_library(<area> SOURCES ... DEPS ...)
#   Creates the static library nephroseg_<area> from src/<area>, with the public
#   include/ folder and src/ (for internal module headers) on its include path.
function(nephroseg_add_library area)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  set(target nephroseg_${area})
  add_library(${target} STATIC ${ARG_SOURCES})
  target_include_directories(${target} PUBLIC
    ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${target} PUBLIC ${ARG_DEPS} PRIVATE nephroseg_warnings)
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  set_property(GLOBAL APPEND PROPERTY NEPHROSEG_AREAS ${target})
endfunction()

# nephroseg_add_test(<name> SOURCES ... DEPS ... [LABELS ...])
#   One GoogleTest executable per area; every TEST is registered with CTest.
function(nephroseg_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE nephroseg_test_support ${ARG_DEPS}
                        GTest::gtest GTest::gtest_main nephroseg_warnings)
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 900)
  endif()
  gtest_discover_tests(${name}
    WORKING_DIRECTORY ${PROJECT_BINARY_DIR}
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    DISCOVERY_TIMEOUT 120)
endfunction()
