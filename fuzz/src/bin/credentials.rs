//! Fuzz target `credentials`: see `keypool::fuzzing::credentials`.
fn main() {
    afl::fuzz!(|data: &[u8]| keypool::fuzzing::credentials(data));
}
