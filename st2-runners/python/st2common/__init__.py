"""The parts of StackStorm's ``st2common`` that pack code imports, provided by st2-rs."""
