//! C bindings for a world (`tool`, `gate`), generated with the
//! `wit-bindgen-c` library (what `wit-bindgen c` runs), so building a C
//! component needs no extra tool install: `<world>.h`, `<world>.c` and
//! `<world>_component_type.o`.

use std::path::Path;

use anyhow::{Context, anyhow};
use wit_bindgen_core::wit_parser::Resolve;

/// Write the bindings for world `arw:host/<world>` of the WIT in `wit_dir`
/// into `out_dir`.
pub fn generate(wit_dir: &Path, world: &str, out_dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut resolve = Resolve::default();
    let (package, _) =
        resolve.push_path(wit_dir).with_context(|| format!("reading the WIT in {}", wit_dir.display()))?;
    let world = resolve.select_world(&[package], Some(world)).map_err(|e| anyhow!("{e:#}"))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default().build().generate(&mut resolve, world, &mut files).map_err(|e| anyhow!("{e:#}"))?;
    std::fs::create_dir_all(out_dir)?;
    let mut written = Vec::new();
    for (name, bytes) in files.iter() {
        let path = out_dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        written.push(name.to_string());
    }
    Ok(written)
}
