"""The parts of StackStorm's ``st2reactor`` that pack sensors import, provided by st2-rs."""
