# amld_library(NAME [INTERFACE] SOURCES a.cc ... [HEADERS x.h ...]
#              [DEPS lib ...] [PRIVATE_DEPS lib ...])
#
# One library of the layering table in docs/ARCHITECTURE.md. Its headers are
# the .h beside each source plus HEADERS (for header-only parts); they are
# linked (symlinks) into build/include/NAME/<path from the source root>/,
# and that folder is the library's only include directory. A file can
# include a header only when its library links (DEPS, PRIVATE_DEPS, or
# their public dependencies) the library that owns it: an include across a
# layer the target does not depend on fails to compile instead of working
# by accident. tests/layering_check.py checks the same edges at folder level
# against the table.
function(amld_library name)
  cmake_parse_arguments(L "INTERFACE" "" "SOURCES;HEADERS;DEPS;PRIVATE_DEPS" ${ARGN})
  set(stage ${PROJECT_BINARY_DIR}/include/${name})
  set(headers ${L_HEADERS})
  foreach(src ${L_SOURCES})
    string(REGEX REPLACE "\\.cc$" ".h" h ${src})
    if(NOT h STREQUAL src AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${h})
      list(APPEND headers ${h})
    endif()
  endforeach()
  file(REMOVE_RECURSE ${stage})
  foreach(h ${headers})
    file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/${h})
    get_filename_component(dir ${stage}/${rel} DIRECTORY)
    file(MAKE_DIRECTORY ${dir})
    file(CREATE_LINK ${CMAKE_CURRENT_SOURCE_DIR}/${h} ${stage}/${rel} SYMBOLIC)
  endforeach()
  if(L_INTERFACE)
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${stage})
    target_link_libraries(${name} INTERFACE ${L_DEPS})
  else()
    add_library(${name} STATIC ${L_SOURCES})
    target_include_directories(${name} PUBLIC ${stage})
    target_link_libraries(${name} PUBLIC ${L_DEPS} PRIVATE ${L_PRIVATE_DEPS})
  endif()
endfunction()

# Links `target` statically (the helper binaries that must start fast and
# run anywhere: amld-shim, amld-launch), except in a sanitizer build
# (presets asan, tsan, fuzz): the sanitizer runtimes exist only as shared
# libraries for a -static executable ("cannot specify -static with
# -fsanitize=address"), and a dynamic shim is the same code under test.
function(amld_link_static target)
  string(TOUPPER "${CMAKE_BUILD_TYPE}" config)
  if(NOT "${CMAKE_CXX_FLAGS} ${CMAKE_CXX_FLAGS_${config}}" MATCHES "-fsanitize=")
    target_link_options(${target} PRIVATE -static)
  endif()
endfunction()
