//! The Kubernetes version the stand-in claims to be: what `/version` reports and which CEL
//! environment CRD validation rules are compiled against (see [`super::cel_env`]).

use std::fmt;
use std::str::FromStr;

/// A Kubernetes minor release, `1.MINOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
}

/// The version claimed by default: the floor of the chart's `kubeVersion` (`>=1.29.0-0` in
/// charts/email-operator/Chart.yaml), so the stand-in refuses what the oldest supported
/// cluster refuses.
pub const DEFAULT_KUBE_VERSION: KubeVersion = KubeVersion::new(1, 29);

impl KubeVersion {
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// `v1.29.0-testbed`, the `gitVersion` of `/version`.
    pub fn git_version(&self) -> String {
        format!("v{}.{}.0-testbed", self.major, self.minor)
    }
}

impl Default for KubeVersion {
    fn default() -> Self {
        DEFAULT_KUBE_VERSION
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for KubeVersion {
    type Err = String;

    /// `1.31`, also `v1.31` and `1.31.0` (the patch level is ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a Kubernetes version 1.MINOR (e.g. 1.29)");
        let t = s.trim().trim_start_matches('v');
        let mut parts = t.splitn(3, '.');
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        if let Some(patch) = parts.next()
            && !patch.chars().next().is_some_and(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        if major != 1 {
            return Err(format!("{s:?}: only Kubernetes 1.x is served"));
        }
        Ok(Self::new(major, minor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minor_versions() {
        assert_eq!("1.31".parse(), Ok(KubeVersion::new(1, 31)));
        assert_eq!("v1.30.2".parse(), Ok(KubeVersion::new(1, 30)));
        assert!("2.0".parse::<KubeVersion>().is_err());
        assert!("1".parse::<KubeVersion>().is_err());
        assert!("1.x".parse::<KubeVersion>().is_err());
        assert_eq!(DEFAULT_KUBE_VERSION.to_string(), "1.29");
        assert_eq!(DEFAULT_KUBE_VERSION.git_version(), "v1.29.0-testbed");
    }
}
