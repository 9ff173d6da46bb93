//! A signature file (`<version>.<signer>.sig`) checked against manifest
//! bytes: the first half of the input is the signature file, the rest the
//! manifest it claims to sign.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (sig, manifest) = data.split_at(data.len() / 2);
    if let Ok(file) = arw_registry::signature::SignatureFile::parse(sig) {
        let _ = file.verify(manifest);
    }
    let _ = std::str::from_utf8(data).ok().map(|t| t.parse::<arw_registry::PublicKey>());
});
