//! Package references (`ns:name`, `ns:name@1.2.3`, `ns:name@^1.2`) and the
//! registry paths they map to. Ids and versions are validated before they
//! become paths, so no reference can name a file outside the registry.

use std::fmt;
use std::str::FromStr;

use arw_manifest::ComponentId;
use semver::{Version, VersionReq};

use crate::error::RegistryError;

/// Which version a reference asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSpec {
    /// The newest version that is not yanked.
    Latest,
    Exact(Version),
    Req(VersionReq),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRef {
    pub id: ComponentId,
    pub version: VersionSpec,
}

impl FromStr for PackageRef {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| RegistryError::InvalidReference { reference: s.chars().take(120).collect(), reason };
        let (id, version) = match s.split_once('@') {
            Some((id, version)) => (id, Some(version)),
            None => (s, None),
        };
        let id: ComponentId = id.parse().map_err(bad)?;
        let version = match version {
            None => VersionSpec::Latest,
            Some("") => return Err(bad("empty version after `@`".into())),
            Some(v) => match Version::parse(v) {
                Ok(exact) => VersionSpec::Exact(exact),
                Err(_) => VersionSpec::Req(
                    VersionReq::parse(v)
                        .map_err(|e| bad(format!("`{v}` is neither a version nor a version requirement: {e}")))?,
                ),
            },
        };
        Ok(PackageRef { id, version })
    }
}

impl fmt::Display for PackageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            VersionSpec::Latest => write!(f, "{}", self.id),
            VersionSpec::Exact(v) => write!(f, "{}@{v}", self.id),
            VersionSpec::Req(r) => write!(f, "{}@{r}", self.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let r: PackageRef = "arw:text-stats@0.1.0".parse().unwrap();
        assert_eq!(r.version, VersionSpec::Exact(Version::new(0, 1, 0)));
        let r: PackageRef = "arw:text-stats@^0.1".parse().unwrap();
        assert!(matches!(r.version, VersionSpec::Req(_)));
        assert_eq!("arw:x".parse::<PackageRef>().unwrap().version, VersionSpec::Latest);
        for bad in ["../x:y", "/abs:y", "a:b@", "a:b@not a version", "a:b/../../c", "a", "a:b@1.0.0/../x"] {
            assert!(bad.parse::<PackageRef>().is_err(), "{bad}");
        }
    }
}
