# Installation (`cmake --install build --prefix P`):
#   P/bin/nephroseg                         the CLI
#   P/<libdir>/libnephroseg_<area>.a        one static library per area (PIC)
#   P/include/nephroseg/...                 the public headers
#   P/<libdir>/cmake/nephroseg/             nephrosegConfig.cmake: find_package(nephroseg)
#                                           gives nephroseg::nephroseg (LibTorch, OpenCV,
#                                           nlohmann_json, libtiff, libpng, OpenSlide found)
#   P/${NEPHROSEG_PYTHON_INSTALL_DIR}/nephroseg/   the Python package (with .pyi stubs)
# and CPack: `cpack --config build/CPackConfig.cmake -G DEB` (see docs/python.md).
include(CMakePackageConfigHelpers)

set(NEPHROSEG_PYTHON_INSTALL_DIR "lib/python3/dist-packages" CACHE STRING
    "Where the Python package goes, relative to the install prefix (Debian's layout; put it on PYTHONPATH for other prefixes)")
set(NEPHROSEG_CMAKE_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/nephroseg")

get_property(_nephroseg_areas GLOBAL PROPERTY NEPHROSEG_AREAS)
install(TARGETS nephroseg ${_nephroseg_areas} nephroseg_warnings
        EXPORT nephrosegTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/nephroseg DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
install(EXPORT nephrosegTargets NAMESPACE nephroseg:: DESTINATION ${NEPHROSEG_CMAKE_INSTALL_DIR} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/nephrosegConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/nephrosegConfig.cmake
                              INSTALL_DESTINATION ${NEPHROSEG_CMAKE_INSTALL_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/nephrosegConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/nephrosegConfig.cmake ${PROJECT_BINARY_DIR}/nephrosegConfigVersion.cmake
        DESTINATION ${NEPHROSEG_CMAKE_INSTALL_DIR} COMPONENT dev)

if(TARGET nephroseg_cli)
  install(TARGETS nephroseg_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
  # The workbench page: served from inside the binary; installed too, for reading and
  # for adapting it (docs/workbench.md).
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/web/ DESTINATION ${CMAKE_INSTALL_DATADIR}/nephroseg/web COMPONENT runtime)
endif()
if(TARGET nephroseg_python)
  install(TARGETS nephroseg_python LIBRARY DESTINATION ${NEPHROSEG_PYTHON_INSTALL_DIR}/nephroseg COMPONENT python)
  install(FILES ${PROJECT_SOURCE_DIR}/python/nephroseg/__init__.py ${PROJECT_SOURCE_DIR}/python/nephroseg/__init__.pyi
                ${PROJECT_SOURCE_DIR}/python/nephroseg/py.typed
          DESTINATION ${NEPHROSEG_PYTHON_INSTALL_DIR}/nephroseg COMPONENT python)
endif()

# Debian package: one .deb with everything above, installed under /usr. Its Depends are
# the Debian packages whose shared libraries the CLI and the module load.
set(CPACK_PACKAGE_NAME "nephroseg")
set(CPACK_PACKAGE_VENDOR "nephroseg")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "GBMSeg and GlomSAM kidney-biopsy segmentation (CLI, C++ library, Python module)")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "nephroseg developers <nephroseg@localhost>")
set(CPACK_DEBIAN_PACKAGE_SECTION "science")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libtorch1.13, libopenblas0-openmp, libgloo0, libopencv-core406, libopencv-imgproc406, libopencv-imgcodecs406, libtiff6, libpng16-16, libopenslide0, python3 (>= 3.11), python3 (<< 3.12), python3-numpy")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libtorch-dev, libopencv-dev, nlohmann-json3-dev, libtiff-dev, libpng-dev, libopenslide-dev")
set(CPACK_GENERATOR "DEB")
include(CPack)
