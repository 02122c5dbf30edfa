# The layer DAG of README's "Layout" table, enforced by the build: a source
# file sees only its own layer and the layers below it, so a wrong-way
# include fails to compile instead of being noticed in review.
#
# Each layer gets a directory of symlinks in the build tree, named after the
# layer and every layer below it (build/layer_include/engine/{common,format,
# compress,engine}). coremlz_layer() makes that directory a target's include
# path; PUBLIC on libraries, so a target sees what its link closure sees.
# Generated protos come with their proto libraries (cmake/CoremlzProto.cmake):
# coreml/ through coremlz_format, coremlz/ through coremlz_api.
#
# Linking a higher layer would bring its directory along, so links are
# checked too (coremlz_check_layer_links). tests/, bench/ and the fuzz
# targets may include anything: their CMakeLists add the repository root.
# tests/layering checks the same rule against the README, file by file.

# In README order; each sees the ones before it.
set(COREMLZ_LAYERS common format compress engine execute plan api)
# Siblings on top: each sees all of COREMLZ_LAYERS, never another sibling.
set(COREMLZ_TOP_LAYERS service workers clients)

set(COREMLZ_LAYER_INCLUDE_DIR ${CMAKE_BINARY_DIR}/layer_include)
# Rebuilt on every configure so that a layer removed from the lists above
# loses its links.
file(REMOVE_RECURSE ${COREMLZ_LAYER_INCLUDE_DIR})

function(_coremlz_link_layers dir)
  file(MAKE_DIRECTORY ${dir})
  foreach(layer ${ARGN})
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/${layer} ${dir}/${layer} SYMBOLIC)
  endforeach()
endfunction()

set(_visible)
foreach(layer ${COREMLZ_LAYERS})
  list(APPEND _visible ${layer})
  _coremlz_link_layers(${COREMLZ_LAYER_INCLUDE_DIR}/${layer} ${_visible})
endforeach()
foreach(layer ${COREMLZ_TOP_LAYERS})
  _coremlz_link_layers(${COREMLZ_LAYER_INCLUDE_DIR}/${layer} ${_visible} ${layer})
endforeach()

# The rank used by the link check: position in COREMLZ_LAYERS; every top
# layer ranks above all of them and equal to its siblings.
function(_coremlz_layer_rank layer out)
  list(FIND COREMLZ_LAYERS ${layer} rank)
  if(rank EQUAL -1)
    list(FIND COREMLZ_TOP_LAYERS ${layer} top)
    if(top EQUAL -1)
      message(FATAL_ERROR "unknown layer '${layer}' (cmake/CoremlzLayers.cmake)")
    endif()
    list(LENGTH COREMLZ_LAYERS rank)
  endif()
  set(${out} ${rank} PARENT_SCOPE)
endfunction()

# coremlz_layer(<target> <layer>): <target>'s sources belong to <layer>.
function(coremlz_layer target layer)
  _coremlz_layer_rank(${layer} unused)
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "EXECUTABLE")
    target_include_directories(${target} PRIVATE ${COREMLZ_LAYER_INCLUDE_DIR}/${layer})
  else()
    target_include_directories(${target} PUBLIC ${COREMLZ_LAYER_INCLUDE_DIR}/${layer})
  endif()
  set_property(TARGET ${target} PROPERTY COREMLZ_LAYER ${layer})
  set_property(GLOBAL APPEND PROPERTY COREMLZ_LAYER_TARGETS ${target})
endfunction()

# coremlz_check_layer_links(EXCEPTIONS <from>:<to>...): fails the configure
# when a layer target links a target of a higher or sibling layer, unless the
# pair is listed. Called once every target exists (end of CMakeLists.txt).
function(coremlz_check_layer_links)
  cmake_parse_arguments(ARG "" "" "EXCEPTIONS" ${ARGN})
  set(used_exceptions)
  get_property(targets GLOBAL PROPERTY COREMLZ_LAYER_TARGETS)
  foreach(target ${targets})
    get_target_property(layer ${target} COREMLZ_LAYER)
    _coremlz_layer_rank(${layer} rank)
    get_target_property(deps ${target} LINK_LIBRARIES)
    foreach(dep ${deps})
      if(NOT TARGET ${dep})
        continue()
      endif()
      get_target_property(dep_layer ${dep} COREMLZ_LAYER)
      if(NOT dep_layer OR dep_layer STREQUAL layer)
        continue()
      endif()
      _coremlz_layer_rank(${dep_layer} dep_rank)
      if(dep_rank LESS rank)
        continue()
      endif()
      if("${target}:${dep}" IN_LIST ARG_EXCEPTIONS)
        list(APPEND used_exceptions "${target}:${dep}")
        continue()
      endif()
      message(SEND_ERROR "layering: ${target} (layer ${layer}) links ${dep} (layer ${dep_layer}); "
                         "see README \"Layout\" and cmake/CoremlzLayers.cmake")
    endforeach()
  endforeach()
  foreach(exception ${ARG_EXCEPTIONS})
    if(NOT exception IN_LIST used_exceptions)
      message(WARNING "layering: exception ${exception} is no longer needed; remove it from CMakeLists.txt")
    endif()
  endforeach()
endfunction()
