# Fails when a committed generated doc differs from the one just generated.
foreach(doc ${DOCS})
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files
                  ${GENERATED_DIR}/${doc} ${COMMITTED_DIR}/${doc}
                  RESULT_VARIABLE different)
  if(different)
    message(FATAL_ERROR "docs/${doc} is stale: run `ninja kvc-update-docs`")
  endif()
endforeach()
