//! `arw new tool|gate --lang LANG NAME`: a project that builds out of the
//! box.
//!
//! The templates are the repository's examples (`components/examples/`),
//! compiled into `arw`: the example's name (`slugify-<lang>` for a tool,
//! `keyguard-<lang>` for a gate) becomes NAME and its namespace
//! (`examples`) becomes `--namespace`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::Lang;

/// What `arw new` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A tool (world `tool`), in every language.
    Tool,
    /// A gate (world `gate`), in C.
    Gate,
}

impl Kind {
    /// The example's name, before `-<lang>`.
    fn example(self) -> &'static str {
        match self {
            Kind::Tool => "slugify",
            Kind::Gate => "keyguard",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Tool => "tool",
            Kind::Gate => "gate",
        })
    }
}

/// (path in the project, text) of each template file, if there is a
/// template of `kind` in `lang`.
fn template(kind: Kind, lang: Lang) -> Option<Vec<(&'static str, &'static str)>> {
    macro_rules! files {
        ($dir:literal: $($file:literal),*) => {
            Some(vec![$(($file, include_str!(concat!("../../../../components/examples/", $dir, "/", $file)))),*])
        };
    }
    match (kind, lang) {
        (Kind::Tool, Lang::Rust) => {
            files!("rust": "Cargo.toml", "Cargo.lock", "src/lib.rs", "manifest.toml", ".gitignore")
        }
        (Kind::Tool, Lang::Python) => files!("python": "app.py", "manifest.toml", ".gitignore"),
        (Kind::Tool, Lang::Js) => files!("js": "app.js", "manifest.toml", ".gitignore"),
        (Kind::Tool, Lang::C) => files!("c": "app.c", "manifest.toml", ".gitignore"),
        (Kind::Gate, Lang::C) => files!("c-gate": "app.c", "manifest.toml", ".gitignore"),
        (Kind::Gate, Lang::Rust | Lang::Python | Lang::Js) => None,
    }
}

/// Is `name` usable as a tool name, a kv namespace and a crate name?
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-');
    if !ok {
        bail!("`{name}` is not a tool name: use 1-64 characters of a-z, 0-9 and `-`, starting with a letter");
    }
    Ok(())
}

fn readme(kind: Kind, lang: Lang, name: &str, namespace: &str) -> String {
    match kind {
        Kind::Tool => tool_readme(lang, name, namespace),
        Kind::Gate => gate_readme(lang, name, namespace),
    }
}

/// What building a project in `lang` needs.
fn needs(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "Rust with the `wasm32-wasip2` target (`rustup target add wasm32-wasip2`).",
        Lang::Python => "`componentize-py` 0.25 (`pip install 'componentize-py==0.25.*'`).",
        Lang::Js => {
            "Node.js and `componentize-js` 0.23, installed in this directory \
             (`npm install @bytecodealliance/componentize-js@0.23 @bytecodealliance/preview2-shim@0.17`)."
        }
        Lang::C => {
            "clang with the wasm32 target and wasi-libc (Debian: `apt-get install clang lld wasi-libc \
             libclang-rt-14-dev-wasm32`), and Rust's `wasm-component-ld` (any rustup toolchain has it)."
        }
    }
}

/// Build, sign, publish and install: the same for every project.
fn install_steps(name: &str, namespace: &str) -> String {
    format!(
        "arw build                      # writes wit/ (this host's WIT) and {name}.wasm\n\
         arw keys generate {namespace}       # once: a signing key\n\
         arw trust add {namespace} <the public key it printed>\n\
         arw publish {name}.wasm --manifest manifest.toml --key {namespace}\n\
         arw install {namespace}:{name} --yes\n"
    )
}

fn gate_readme(lang: Lang, name: &str, namespace: &str) -> String {
    format!(
        "# {name}\n\n\
         An ARW gate component in {lang}, scaffolded by `arw new gate --lang {lang} {name}`.\n\
         The host asks it before the effect at every entry point (HTTP and admin\n\
         routes, tool calls, outgoing HTTP, bus publish, calls between components);\n\
         it refuses the gating keys its configuration names (`deny PATTERN`,\n\
         `deny-anonymous PATTERN`, one a line; see app.c). Change it to decide\n\
         what you need: it only takes permissions away, Cedar still grants them.\n\n\
         Needs: {}\n\n\
         ```sh\n{}```\n\n\
         Then in the host's config.toml:\n\n\
         ```toml\n\
         [gating]\n\
         gates = [\"{namespace}:{name}\"]\n\
         [gating.files]\n\
         \"{namespace}:{name}\" = \"/etc/arw/{name}.conf\"   # e.g. `deny admin:*`\n\
         ```\n\n\
         `arw up` follows edits of that file; a refused edit keeps the rules in force\n\
         and is reported with its line. See the ARW docs, docs/gating.md.\n",
        needs(lang),
        install_steps(name, namespace)
    )
}

fn tool_readme(lang: Lang, name: &str, namespace: &str) -> String {
    format!(
        "# {name}\n\n\
         An ARW tool component in {lang}, scaffolded by `arw new tool --lang {lang} {name}`.\n\
         It turns text into a URL slug without the stop words of its `stop-words`\n\
         configuration, and counts its calls in its kv namespace `{name}`. Change it\n\
         to do what you need; keep `manifest.toml` in step with what it calls.\n\n\
         Needs: {}\n\n\
         ```sh\n{}\
         arw call {name} --input '{{\"text\": \"Hello, World\"}}'\n\
         ```\n\n\
         The component gets only what `manifest.toml` requests **and** a Cedar policy\n\
         grants (`config.read` on `stop-words`, `kv.read`/`kv.write` on `{name}`); see\n\
         the ARW docs, docs/authoring/ and docs/policy.md.\n",
        needs(lang),
        install_steps(name, namespace)
    )
}

/// Write the project; returns its directory.
pub fn new_project(kind: Kind, lang: Lang, name: &str, namespace: &str, dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    check_name(namespace).context("invalid --namespace")?;
    let Some(files) = template(kind, lang) else {
        bail!(
            "there is no {lang} template for a {kind}: `arw new {kind} --lang c` (docs/gating.md shows a gate in \
             Rust; any language that builds a component of the world `arw:host/{kind}` will do)"
        );
    };
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty: choose another name or --dir", dir.display());
    }
    let example = format!("{}-{lang}", kind.example());
    let crate_symbol = example.replace('-', "_");
    for (path, text) in files {
        let text = text
            .replace(&example, name)
            .replace(&crate_symbol, &name.replace('-', "_"))
            .replace("\"examples:", &format!("\"{namespace}:"));
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
    }
    std::fs::write(dir.join("README.md"), readme(kind, lang, name, namespace))?;
    super::build::export_wit(&dir)?;
    Ok(dir)
}
