# coremlz_proto_library(<target> PROTOS <files relative to protos/> [GRPC] [DEPS <targets>])
#
# Runs protoc (and grpc_cpp_plugin with GRPC) on the given files and builds a
# static library of the generated code. Generated headers land under
# ${COREMLZ_GEN_DIR} mirroring protos/, e.g. coreml/mil.pb.h.
#
# A library's users see only its own top-level proto directory (coreml/ or
# coremlz/), so the layers below the API cannot include the API's protos
# (cmake/CoremlzLayers.cmake): ${COREMLZ_PROTO_INCLUDE_DIR}/coreml holds one
# symlink, coreml -> ${COREMLZ_GEN_DIR}/coreml.
set(COREMLZ_GEN_DIR ${CMAKE_BINARY_DIR}/gen)
file(MAKE_DIRECTORY ${COREMLZ_GEN_DIR})
set(COREMLZ_PROTO_INCLUDE_DIR ${CMAKE_BINARY_DIR}/proto_include)
file(REMOVE_RECURSE ${COREMLZ_PROTO_INCLUDE_DIR})
find_program(GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)

function(coremlz_proto_library target)
  cmake_parse_arguments(ARG "GRPC" "" "PROTOS;DEPS" ${ARGN})
  set(srcs)
  set(roots)
  foreach(proto ${ARG_PROTOS})
    get_filename_component(dir ${proto} DIRECTORY)
    string(REGEX REPLACE "/.*" "" root ${dir})
    list(APPEND roots ${root})
    get_filename_component(stem ${proto} NAME_WE)
    set(out ${COREMLZ_GEN_DIR}/${dir}/${stem})
    set(outputs ${out}.pb.cc ${out}.pb.h)
    set(plugin_args)
    if(ARG_GRPC)
      list(APPEND outputs ${out}.grpc.pb.cc ${out}.grpc.pb.h)
      set(plugin_args --grpc_out=${COREMLZ_GEN_DIR} --plugin=protoc-gen-grpc=${GRPC_CPP_PLUGIN})
    endif()
    add_custom_command(
      OUTPUT ${outputs}
      COMMAND protobuf::protoc
      ARGS -I ${PROJECT_SOURCE_DIR}/protos --cpp_out=${COREMLZ_GEN_DIR} ${plugin_args}
           ${PROJECT_SOURCE_DIR}/protos/${proto}
      DEPENDS ${PROJECT_SOURCE_DIR}/protos/${proto} protobuf::protoc
      COMMENT "protoc ${proto}"
      VERBATIM)
    list(APPEND srcs ${out}.pb.cc)
    if(ARG_GRPC)
      list(APPEND srcs ${out}.grpc.pb.cc)
    endif()
  endforeach()
  add_library(${target} STATIC ${srcs})
  # Generated code is not ours to lint.
  target_compile_options(${target} PRIVATE -w)
  target_include_directories(${target} PRIVATE ${COREMLZ_GEN_DIR})
  list(REMOVE_DUPLICATES roots)
  foreach(root ${roots})
    set(link ${COREMLZ_PROTO_INCLUDE_DIR}/${root}/${root})
    if(NOT IS_SYMLINK ${link})
      file(MAKE_DIRECTORY ${COREMLZ_PROTO_INCLUDE_DIR}/${root})
      file(CREATE_LINK ${COREMLZ_GEN_DIR}/${root} ${link} SYMBOLIC)
    endif()
    target_include_directories(${target} PUBLIC ${COREMLZ_PROTO_INCLUDE_DIR}/${root})
  endforeach()
  target_link_libraries(${target} PUBLIC protobuf::libprotobuf ${ARG_DEPS})
  if(ARG_GRPC)
    target_link_libraries(${target} PUBLIC gRPC::grpc++)
  endif()
endfunction()
