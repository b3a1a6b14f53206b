#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shmstore::fuzzing::cli_inspect(data));
