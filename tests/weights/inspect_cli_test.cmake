# ctest driver for `smolengine inspect --json` on the real model (cmake -P). Exits 77 (skip)
# with a loud message when the model file has not been fetched.
if(NOT EXISTS "${MODEL}")
  message("SKIPPED: ${MODEL} is absent; run scripts/fetch-model.sh to test inspect on it")
  cmake_language(EXIT 77)
endif()
execute_process(COMMAND "${SMOLENGINE}" inspect "${MODEL}" --json
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "smolengine inspect failed (${rc}): ${err}")
endif()
string(JSON params GET "${out}" num_parameters)
string(JSON hidden GET "${out}" architecture hidden_size)
string(JSON theta GET "${out}" architecture rope_theta)
string(JSON ntensors LENGTH "${out}" tensors)
string(JSON embd_dtype GET "${out}" tensors 0 dtype)
string(JSON merges GET "${out}" tokenizer merges)
if(NOT params EQUAL 134515008 OR NOT hidden EQUAL 576 OR NOT ntensors EQUAL 272
   OR NOT embd_dtype STREQUAL "Q8_0" OR NOT merges EQUAL 48900)
  message(FATAL_ERROR "unexpected inspect output: num_parameters=${params} hidden=${hidden} "
                      "tensors=${ntensors} embed dtype=${embd_dtype} merges=${merges}")
endif()
execute_process(COMMAND "${SMOLENGINE}" inspect "${MODEL}.does-not-exist"
                OUTPUT_VARIABLE out2 ERROR_VARIABLE err2 RESULT_VARIABLE rc2)
if(rc2 EQUAL 0 OR NOT err2 MATCHES "error: .*does-not-exist")
  message(FATAL_ERROR "inspect on a missing file: rc=${rc2} stderr=${err2}")
endif()
message("inspect OK: ${params} parameters, rope_theta ${theta}")
