//! Fuzz target `request`: see `keypool::fuzzing::request`.
fn main() {
    afl::fuzz!(|data: &[u8]| keypool::fuzzing::request(data));
}
