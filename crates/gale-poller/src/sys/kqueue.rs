//! Bindings to kqueue (the BSDs and Apple systems). Being written.
