//! Fuzz target `snapshot`: see `keypool::fuzzing::snapshot`.
fn main() {
    afl::fuzz!(|data: &[u8]| keypool::fuzzing::snapshot(data));
}
