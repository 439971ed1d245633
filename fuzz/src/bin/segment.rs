//! Fuzz target `segment`: see `keypool::fuzzing::segment`.
fn main() {
    afl::fuzz!(|data: &[u8]| keypool::fuzzing::segment(data));
}
