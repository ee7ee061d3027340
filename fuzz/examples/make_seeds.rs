//! Writes the seed vault (`seeds/vault.bin`, which the `open_file` target mutates) and the
//! committed `seed-*` corpus files. Run from `fuzz/`: `cargo run --example make_seeds`.

use std::fs;
use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join(format!("seed-{}", name.trim_start_matches("seed-"))),
        bytes,
    )
    .unwrap();
}

fn main() {
    fs::create_dir_all("seeds").unwrap();
    fs::write("seeds/vault.bin", tresor_fuzz::make_seed_vault()).unwrap();

    // open_file: the seed vault as it is, plainly and with the integrity check; a few patches.
    write("open_file", "seed-as-is", &[1]);
    write("open_file", "seed-as-is-verified", &[3]);
    write(
        "open_file",
        "patched",
        &[1, 0x10, 0, 0, 0, 0x01, 0x00, 0x20, 0, 0, 0x80],
    );
    write("open_file", "raw-empty", &[0]);

    let records = tresor::fuzzing::sample_records().unwrap();
    for (name, bytes) in &records {
        write("decode_records", name, bytes);
        match *name {
            "slot" => {
                let mut input = vec![0];
                input.extend_from_slice(bytes);
                write("parse_slots", "opens", &input);
                input[0] = 1;
                write("parse_slots", "wrong-key", &input);
            }
            "backup" => {
                let mut input = vec![1];
                input.extend_from_slice(bytes);
                write("restore_backup", "payload", &input);
                let mut tagged = vec![2];
                tagged.extend_from_slice(&bytes[1..]);
                write("restore_backup", "payload-untagged", &tagged);
            }
            _ => {}
        }
    }
    let mut blob = b"TRESORBK\x01\x00".to_vec();
    blob.extend_from_slice(&[0; 16 + 40]);
    let mut raw = vec![0];
    raw.extend_from_slice(&blob);
    write("restore_backup", "raw-blob", &raw);

    // ops_model: byte strings that `arbitrary` turns into operation sequences.
    for (i, pattern) in [[0u8, 1, 2, 3], [7, 0, 3, 1], [4, 9, 14, 2]]
        .iter()
        .enumerate()
    {
        let bytes: Vec<u8> = pattern.iter().cycle().take(96).copied().collect();
        write("ops_model", &format!("pattern-{i}"), &bytes);
    }
}
