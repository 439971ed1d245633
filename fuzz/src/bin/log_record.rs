//! Fuzz target `log_record`: see `keypool::fuzzing::log_record`.
fn main() {
    afl::fuzz!(|data: &[u8]| keypool::fuzzing::log_record(data));
}
