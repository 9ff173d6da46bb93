//! What a component really is, read from its bytes: the registry checks
//! exports against the manifest's worlds without trusting the manifest.

use arw_manifest::World;
use wasmparser::{Encoding, Parser, Payload};

/// The names a component exports at its top level, e.g.
/// `arw:host/tool-handler@0.2.0`. Errors say why the bytes are not a
/// component.
pub fn component_exports(wasm: &[u8]) -> Result<Vec<String>, String> {
    if !wasm.starts_with(b"\0asm") {
        return Err("not a WebAssembly file (no `\\0asm` header)".into());
    }
    let mut exports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| format!("invalid component: {e}"))? {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding == Encoding::Module {
                    return Err("this is a core WebAssembly module, not a component; build for \
                                `wasm32-wasip2` or wrap it with `wasm-tools component new`"
                        .into());
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(section) if depth == 1 => {
                for export in section {
                    let export = export.map_err(|e| format!("invalid component: {e}"))?;
                    exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(exports)
}

/// Check that `wasm` exports what each of `worlds` requires.
pub fn check_worlds(wasm: &[u8], worlds: &[World]) -> Result<(), String> {
    let exports = component_exports(wasm)?;
    for world in worlds {
        if let Some(required) = world.missing_export(exports.iter().map(String::as_str)) {
            let found = if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") };
            return Err(format!(
                "the manifest declares world `{world}` but the component does not export `{required}` (it exports: {found})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(name: &str) -> World {
        World::named(name).unwrap_or_else(|| panic!("{name}"))
    }

    #[test]
    fn reads_real_exports() {
        let exports = component_exports(arw_artifacts::EVENT_LOG.bytes).unwrap();
        assert!(exports.contains(&"arw:host/tool-handler@0.2.0".to_string()), "{exports:?}");
        assert!(exports.contains(&"arw:host/event-handler@0.2.0".to_string()), "{exports:?}");
        assert!(check_worlds(arw_artifacts::TEXT_STATS.bytes, &[world("tool")]).is_ok());
        let err = check_worlds(arw_artifacts::TEXT_STATS.bytes, &[world("subscriber")]).unwrap_err();
        assert!(err.contains("does not export `arw:host/event-handler@0.2.0`"), "{err}");
        assert!(component_exports(b"\0asm\x01\0\0\0").unwrap_err().contains("core WebAssembly module"));
        assert!(component_exports(b"nope").is_err());
        let half = &arw_artifacts::TEXT_STATS.bytes[..1000];
        assert!(component_exports(half).is_err());
    }
}
