//! Fuzz target `values`: see `keypool::fuzzing::values`.
fn main() {
    afl::fuzz!(|data: &[u8]| keypool::fuzzing::values(data));
}
