"""Stage 3, data: MATH loaders (`mathdata`), the verifiable reward (`reward`) and the task a
run trains and evaluates on, testbed world or MATH (`tasks`)."""
