# amld_prefer_static_deps(): points the imported targets of gRPC, Protobuf,
# Abseil and c-ares at their static archives where Debian ships them (lib*.a
# beside lib*.so). OpenSSL and zlib stay shared: libgit2's dependencies load
# them anyway, and one copy of each is simpler to reason about.
#
# Why: `aml` starts for every command, and with ~70 shared libraries the
# dynamic loader's symbol lookups and relocations took half of its 8 ms
# start (perf: _dl_relocate_object, _dl_lookup_symbol_x). Linked statically
# it starts in about 4.5 ms, which every submit and every scripted call pays.
# The release preset turns this on (AMLD_STATIC_DEPS); the dev preset keeps
# shared libraries so that the tests link fast.
function(amld_prefer_static_deps)
  get_directory_property(imported IMPORTED_TARGETS)
  foreach(target IN LISTS imported)
    if(NOT target MATCHES "^(gRPC::(grpc\\+\\+|grpc|gpr|upb|address_sorting)|protobuf::libprotobuf|absl::.*|c-ares::cares)$")
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
endfunction()
