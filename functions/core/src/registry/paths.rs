//! Routing of `/v2/...` paths by hand: repository names contain slashes,
//! so the endpoint is found from the end of the path. The raw (still
//! percent-encoded) path is used, so an encoded slash is never decoded
//! into a name.

use super::error::{ErrorCode, RegistryError};
use crate::name::validate_repository;

#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint<'a> {
    Base,
    Manifest { name: &'a str, reference: &'a str },
    Blob { name: &'a str, digest: &'a str },
    Tags { name: &'a str },
}

impl Endpoint<'_> {
    /// The repository a route is about (none for `/v2/`).
    pub fn repository(&self) -> Option<&str> {
        match self {
            Endpoint::Base => None,
            Endpoint::Manifest { name, .. }
            | Endpoint::Blob { name, .. }
            | Endpoint::Tags { name } => Some(name),
        }
    }
}

/// Parse the part of the path after `/v2/`.
pub fn parse(rest: &str) -> Result<Endpoint<'_>, RegistryError> {
    if rest.is_empty() {
        return Ok(Endpoint::Base);
    }
    let endpoint = if let Some(name) = rest.strip_suffix("/tags/list") {
        Endpoint::Tags { name }
    } else if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        Endpoint::Manifest { name, reference }
    } else if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        if name.ends_with("/blobs") || digest.starts_with("uploads") {
            return Err(RegistryError::new(
                ErrorCode::MethodNotAllowed,
                "this registry is pull-only: uploads are not supported",
            ));
        }
        Endpoint::Blob { name, digest }
    } else {
        return Err(RegistryError::new(
            ErrorCode::Unsupported,
            "unknown registry endpoint",
        ));
    };
    let name = match &endpoint {
        Endpoint::Tags { name } | Endpoint::Manifest { name, .. } | Endpoint::Blob { name, .. } => {
            *name
        }
        Endpoint::Base => "",
    };
    if name.contains('%') {
        return Err(RegistryError::new(
            ErrorCode::NameInvalid,
            "percent-encoded characters are not allowed in repository names",
        ));
    }
    validate_repository(name)
        .map_err(|e| RegistryError::new(ErrorCode::NameInvalid, e.to_string()))?;
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert!(matches!(parse(""), Ok(Endpoint::Base)));
        assert_eq!(
            parse("shell/git/manifests/latest").ok(),
            Some(Endpoint::Manifest {
                name: "shell/git",
                reference: "latest"
            })
        );
        assert_eq!(
            parse("a/b/blobs/sha256:x").ok(),
            Some(Endpoint::Blob {
                name: "a/b",
                digest: "sha256:x"
            })
        );
        assert_eq!(
            parse("git/tags/list").ok(),
            Some(Endpoint::Tags { name: "git" })
        );
        // A package may itself be called "manifests": the last marker wins.
        assert_eq!(
            parse("manifests/manifests/latest").ok(),
            Some(Endpoint::Manifest {
                name: "manifests",
                reference: "latest"
            })
        );
    }

    #[test]
    fn bad_paths() {
        let code = |p: &str| parse(p).err().map(|e| e.code);
        assert_eq!(code("a%2Fb/manifests/latest"), Some(ErrorCode::NameInvalid));
        assert_eq!(code("../manifests/latest"), Some(ErrorCode::NameInvalid));
        assert_eq!(code("/manifests/latest"), Some(ErrorCode::NameInvalid));
        assert_eq!(code("Git/manifests/latest"), Some(ErrorCode::NameInvalid));
        assert_eq!(
            code("git/blobs/uploads/"),
            Some(ErrorCode::MethodNotAllowed)
        );
        assert_eq!(code("git/other"), Some(ErrorCode::Unsupported));
        assert_eq!(
            code("/hello/manifests/latest"),
            Some(ErrorCode::NameInvalid)
        );
        // Percent signs outside the name are left to the tag and digest checks.
        assert!(parse("hello/manifests/bad%7Btag").is_ok());
    }
}
