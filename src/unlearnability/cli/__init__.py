"""Stage 11, the command line: `unlearn` (`main`) and its verl commands (`verl`)."""
