//! Authoring components outside this repository: `arw new` scaffolds a
//! project from the examples in `components/examples/<lang>/` (the same
//! tool in each language), `arw build` turns a project into a component
//! with the language's own toolchain. See docs/authoring/.

pub mod build;
mod c_bindings;
pub mod scaffold;

use std::fmt;

/// The languages `arw new` and `arw build` know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
}

impl Lang {
    pub const ALL: [Lang; 4] = [Lang::Rust, Lang::Python, Lang::Js, Lang::C];

    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
        }
    }

    /// The file that tells a project's language.
    pub fn marker(self) -> &'static str {
        match self {
            Lang::Rust => "Cargo.toml",
            Lang::Python => "app.py",
            Lang::Js => "app.js",
            Lang::C => "app.c",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
