//! Maps on disk (`[[sourcemaps.local]]`): a script URL under a prefix is looked up under a
//! directory, and nothing outside that directory is ever read.
//!
//! The URL comes from a browser, so its path is hostile until proven otherwise: `..`
//! segments, encoded slashes or dots, backslashes and NUL are refused before any file system
//! call, and the file found is checked to lie under the directory after symlinks are resolved.

use std::path::{Component, Path, PathBuf};

use crate::config::sourcemaps::LocalMaps;

use super::Unresolved;

/// One `[[sourcemaps.local]]` entry.
#[derive(Debug, Clone)]
pub struct LocalDir {
    url_prefix: String,
    dir: PathBuf,
}

impl LocalDir {
    pub fn new(config: &LocalMaps) -> Self {
        Self {
            url_prefix: config.url_prefix.clone(),
            dir: config.dir.clone(),
        }
    }

    /// Whether this entry covers the script URL.
    pub fn covers(&self, script_url: &str) -> bool {
        script_url.starts_with(&self.url_prefix)
    }

    /// The map of `script_url`, read within `max_bytes`: `<rest>.map`, else the file the
    /// script's `sourceMappingURL` comment names (relative, under the same directory).
    pub async fn read(&self, script_url: &str, max_bytes: u64) -> Result<Vec<u8>, Unresolved> {
        let rest = script_url
            .strip_prefix(&self.url_prefix)
            .ok_or(Unresolved::NoSource)?;
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let script = safe_relative(rest).ok_or(Unresolved::Refused)?;
        let mut map_path = script.clone().into_os_string();
        map_path.push(".map");
        match self.read_under(Path::new(&map_path), max_bytes).await {
            Err(Unresolved::NotFound) => {}
            other => return other,
        }
        let source = self.read_under(&script, max_bytes).await?;
        let named = super::mapping_url(&source).ok_or(Unresolved::NotFound)?;
        let parent = script.parent().unwrap_or(Path::new(""));
        let relative = safe_relative(&named).ok_or(Unresolved::Refused)?;
        self.read_under(&parent.join(relative), max_bytes).await
    }

    async fn read_under(&self, relative: &Path, max_bytes: u64) -> Result<Vec<u8>, Unresolved> {
        let path = self.dir.join(relative);
        let (Ok(real), Ok(root)) = (
            tokio::fs::canonicalize(&path).await,
            tokio::fs::canonicalize(&self.dir).await,
        ) else {
            return Err(Unresolved::NotFound);
        };
        if !real.starts_with(&root) {
            return Err(Unresolved::Refused);
        }
        let meta = tokio::fs::metadata(&real)
            .await
            .map_err(|_| Unresolved::NotFound)?;
        if !meta.is_file() {
            return Err(Unresolved::NotFound);
        }
        if meta.len() > max_bytes {
            return Err(Unresolved::TooLarge);
        }
        tokio::fs::read(&real)
            .await
            .map_err(|_| Unresolved::NotFound)
    }
}

/// A URL path made into a relative path, or `None` when it could leave its directory or
/// hides a separator: `..`, `.`-only tricks, `%2e`/`%2f`/`%5c` encodings, backslashes, NUL,
/// absolute paths.
pub fn safe_relative(url_path: &str) -> Option<PathBuf> {
    let lower = url_path.to_ascii_lowercase();
    if url_path.is_empty()
        || url_path.contains(['\\', '\0'])
        || ["%2e", "%2f", "%5c", "%00", "%25"]
            .iter()
            .any(|e| lower.contains(e))
    {
        return None;
    }
    let path = PathBuf::from(url_path.trim_start_matches('/'));
    let normal = path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    (normal && path.components().next().is_some()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_encoded_separators_are_refused() {
        for bad in [
            "../etc/passwd",
            "js/../../etc/passwd",
            "js/%2e%2e/%2e%2e/etc/passwd",
            "js%2f..%2fsecret",
            "js%5C..%5Csecret",
            "js\\..\\secret",
            "js/%252e%252e/x",
            "a\0b",
            "",
        ] {
            assert_eq!(safe_relative(bad), None, "{bad:?}");
        }
        assert_eq!(
            safe_relative("/static/js/app.min.js"),
            Some(PathBuf::from("static/js/app.min.js"))
        );
    }

    #[tokio::test]
    async fn reads_the_map_beside_the_script_and_never_outside_the_dir() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("www");
        std::fs::create_dir_all(dir.join("js")).unwrap();
        std::fs::write(dir.join("js/app.js.map"), b"{}").unwrap();
        std::fs::write(root.path().join("secret.map"), b"secret").unwrap();
        std::fs::write(
            dir.join("js/other.js"),
            b"x()\n//# sourceMappingURL=other.map",
        )
        .unwrap();
        std::fs::write(dir.join("js/other.map"), b"{\"o\":1}").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret.map"), dir.join("js/link.js.map"))
            .unwrap();
        let local = LocalDir::new(&LocalMaps {
            url_prefix: "https://shop.example.com/static/".into(),
            dir,
        });
        let read = |u: &'static str| {
            let local = local.clone();
            async move { local.read(u, 1024).await }
        };
        assert_eq!(
            read("https://shop.example.com/static/js/app.js?v=2").await,
            Ok(b"{}".to_vec())
        );
        assert_eq!(
            read("https://shop.example.com/static/js/other.js").await,
            Ok(b"{\"o\":1}".to_vec())
        );
        assert_eq!(
            read("https://shop.example.com/static/../secret").await,
            Err(Unresolved::Refused)
        );
        assert_eq!(
            read("https://shop.example.com/static/js/link.js").await,
            Err(Unresolved::Refused)
        );
        assert_eq!(
            read("https://shop.example.com/static/js/none.js").await,
            Err(Unresolved::NotFound)
        );
        assert_eq!(
            local
                .read("https://shop.example.com/static/js/app.js", 1)
                .await,
            Err(Unresolved::TooLarge)
        );
    }
}
