//! YAQL 3.x (placeholder module; the engine is being written).
