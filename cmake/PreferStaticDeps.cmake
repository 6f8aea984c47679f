# amld_prefer_static_deps(): points the imported targets of gRPC, Protobuf,
# Abseil, c-ares, re2, OpenSSL, zlib and yaml-cpp at their static archives where Debian
# ships them (lib*.a beside lib*.so), and links libstdc++ and libgcc
# statically: the binaries then load only libc and libm. (libgit2, which
# client/git_info.cc dlopen()s with RTLD_LOCAL, brings its own shared
# libcrypto; the executable exports none of its static OpenSSL symbols, so
# the two copies never mix.)
#
# Why: `aml` starts for every command, and with ~70 shared libraries the
# dynamic loader's symbol lookups and relocations took half of its 8 ms
# start (perf: _dl_relocate_object, _dl_lookup_symbol_x). Linked statically
# `aml --version` takes 2.4 ms instead of 8, which every submit and every
# scripted call pays. yaml-cpp came later and was linked shared, which also
# loaded a second, shared libstdc++ with its own static initializers:
# archived, `aml --version` went from 11.6 to 9.5 ms (same day, same machine).
# The release preset turns this on (AMLD_STATIC_DEPS); the dev preset keeps
# shared libraries so that the tests link fast.
function(amld_prefer_static_deps)
  get_directory_property(imported IMPORTED_TARGETS)
  foreach(target IN LISTS imported)
    if(target STREQUAL "re2::re2")
      # An INTERFACE target made from pkg-config: "-lre2" becomes the archive.
      get_target_property(libs re2::re2 INTERFACE_LINK_LIBRARIES)
      find_library(AMLD_RE2_ARCHIVE NAMES libre2.a)
      if(libs AND AMLD_RE2_ARCHIVE)
        list(TRANSFORM libs REPLACE "^-lre2$" "${AMLD_RE2_ARCHIVE}")
        set_property(TARGET re2::re2 PROPERTY INTERFACE_LINK_LIBRARIES "${libs}")
      endif()
      continue()
    endif()
    if(NOT target MATCHES "^(gRPC::(grpc\\+\\+|grpc\\+\\+_reflection|grpc|gpr|upb|address_sorting)|protobuf::libprotobuf|absl::.*|c-ares::cares|OpenSSL::(SSL|Crypto)|ZLIB::ZLIB|yaml-cpp)$")
      continue()
    endif()
    get_target_property(type ${target} TYPE)
    if(NOT type STREQUAL "SHARED_LIBRARY" AND NOT type STREQUAL "UNKNOWN_LIBRARY")
      continue()
    endif()
    get_target_property(configs ${target} IMPORTED_CONFIGURATIONS)
    set(props IMPORTED_LOCATION)
    if(configs)
      foreach(config IN LISTS configs)
        string(TOUPPER "${config}" config)
        list(APPEND props IMPORTED_LOCATION_${config})
      endforeach()
    endif()
    foreach(prop IN LISTS props)
      get_target_property(location ${target} ${prop})
      if(NOT location OR NOT location MATCHES "\\.so")
        continue()
      endif()
      string(REGEX REPLACE "\\.so(\\.[0-9.]+)?$" ".a" archive "${location}")
      if(NOT EXISTS "${archive}")
        continue()
      endif()
      # The target stays "SHARED" to CMake; the linker sees an archive.
      set_target_properties(${target} PROPERTIES ${prop} "${archive}")
    endforeach()
  endforeach()
  add_link_options(-static-libstdc++ -static-libgcc)
endfunction()
