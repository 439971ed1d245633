//! The videos for sale: a built-in featured video whose bytes are compiled into
//! the binary, or a JSON list given by `--catalog FILE`.
//!
//! The catalog never reads video bytes itself: it says where they are
//! ([`VideoSource`]) and the HTTP layer streams them. It is immutable after
//! start-up, so it needs no lock and is not part of the log or snapshots (a
//! purchase records the price it was bought at).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The bytes of the built-in sample video (4 s, 640x360 H.264 baseline + AAC,
/// `+faststart`; see the README for the ffmpeg command that made it).
pub static SAMPLE_MP4: &[u8] = include_bytes!("../../assets/video/sample.mp4");

/// The id of the built-in featured video.
pub const FEATURED_ID: &str = "featured";

/// Longest accepted video id.
const MAX_ID_LEN: usize = 64;

/// One video for sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    /// Short stable id used in URLs (`/video/stream/{id}`): letters, digits, `_ . -`.
    pub id: String,
    /// Human-readable title shown in the purchase modal.
    pub title: String,
    /// Price in credits, which are cents of `currency`.
    pub price: u64,
    /// ISO 4217 code, three upper-case letters (e.g. `USD`).
    pub currency: String,
    /// Where the bytes are; `None` means the built-in sample.
    pub file: Option<PathBuf>,
}

/// Where a video's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoSource {
    /// Compiled into the binary.
    Static(&'static [u8]),
    /// A file on disk, to be opened (and its length read) by the caller.
    File(PathBuf),
}

impl Video {
    /// Where this video's bytes are.
    pub fn source(&self) -> VideoSource {
        match &self.file {
            Some(path) => VideoSource::File(path.clone()),
            None => VideoSource::Static(SAMPLE_MP4),
        }
    }

    /// The `Content-Type` to serve the bytes with, from the file's extension
    /// (the built-in sample is MP4).
    pub fn content_type(&self) -> &'static str {
        let ext = self
            .file
            .as_deref()
            .and_then(Path::extension)
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            None | Some("mp4") | Some("m4v") => "video/mp4",
            Some("webm") => "video/webm",
            Some("ogv") | Some("ogg") => "video/ogg",
            Some("mov") => "video/quicktime",
            Some(_) => "application/octet-stream",
        }
    }
}

/// Why a catalog file was refused. Every message names the file and, where it
/// can, the entry, so that an operator can fix it.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The catalog file could not be read.
    #[error("cannot read catalog {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The catalog is not a JSON list of videos.
    #[error("catalog {path} is not a JSON list of {{id, title, price, currency, file}}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The list is empty.
    #[error("catalog {path} lists no videos")]
    Empty { path: PathBuf },
    /// One entry is invalid.
    #[error("catalog {path}, entry {index} ({id:?}): {problem}")]
    Invalid {
        path: PathBuf,
        index: usize,
        id: String,
        problem: String,
    },
}

/// The videos for sale. The first one is the featured video that
/// `/video/info` answers about when no `video_id` is given.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// In catalog order; never empty.
    videos: Vec<Video>,
    /// id → index into `videos`.
    by_id: HashMap<String, usize>,
}

/// One entry of a catalog file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    title: String,
    price: u64,
    #[serde(default = "usd")]
    currency: String,
    #[serde(default)]
    file: Option<PathBuf>,
}

fn usd() -> String {
    "USD".to_owned()
}

impl Catalog {
    /// The built-in catalog: one featured video backed by the compiled-in sample.
    pub fn builtin() -> Self {
        Self::from_videos(vec![Video {
            id: FEATURED_ID.to_owned(),
            title: "Big Test Pattern: The Movie".to_owned(),
            price: 499,
            currency: "USD".to_owned(),
            file: None,
        }])
    }

    /// Reads a JSON list of `{id, title, price, currency, file}`. `price` is in
    /// cents; `currency` defaults to `USD`; `file` is relative to the catalog
    /// file's directory and, when absent, means the built-in sample video.
    /// Every entry is validated and every file must exist.
    pub fn from_json_file(path: &Path) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::from_json(&text, path, base)
    }

    /// Parses catalog JSON; `path` is only used in error messages, `base` is
    /// the directory that relative `file` paths are relative to.
    pub fn from_json(text: &str, path: &Path, base: &Path) -> Result<Self, CatalogError> {
        let entries: Vec<Entry> =
            serde_json::from_str(text).map_err(|source| CatalogError::Json {
                path: path.to_owned(),
                source,
            })?;
        if entries.is_empty() {
            return Err(CatalogError::Empty {
                path: path.to_owned(),
            });
        }
        let mut videos = Vec::with_capacity(entries.len());
        let mut seen = HashMap::new();
        for (index, e) in entries.into_iter().enumerate() {
            let invalid = |problem: String| CatalogError::Invalid {
                path: path.to_owned(),
                index,
                id: e.id.clone(),
                problem,
            };
            if let Some(problem) = id_problem(&e.id) {
                return Err(invalid(problem));
            }
            if seen.insert(e.id.clone(), index).is_some() {
                return Err(invalid("the id is listed twice".to_owned()));
            }
            if e.title.trim().is_empty() {
                return Err(invalid("the title is empty".to_owned()));
            }
            if e.currency.len() != 3 || !e.currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(invalid(format!(
                    "currency {:?} is not a three-letter code such as USD",
                    e.currency
                )));
            }
            let file = match &e.file {
                None => None,
                Some(f) => {
                    let full = base.join(f);
                    if !full.is_file() {
                        return Err(invalid(format!(
                            "file {} does not exist or is not a file",
                            full.display()
                        )));
                    }
                    Some(full)
                }
            };
            videos.push(Video {
                id: e.id,
                title: e.title,
                price: e.price,
                currency: e.currency,
                file,
            });
        }
        Ok(Self::from_videos(videos))
    }

    fn from_videos(videos: Vec<Video>) -> Self {
        let by_id = videos
            .iter()
            .enumerate()
            .map(|(i, v)| (v.id.clone(), i))
            .collect();
        Self { videos, by_id }
    }

    /// The video with this id.
    pub fn get(&self, id: &str) -> Option<&Video> {
        self.by_id.get(id).map(|&i| &self.videos[i])
    }

    /// The featured video (the catalog's first).
    pub fn featured(&self) -> &Video {
        // Both constructors refuse an empty list.
        &self.videos[0]
    }

    /// Where the bytes of the video with this id are.
    pub fn source(&self, id: &str) -> Option<VideoSource> {
        self.get(id).map(Video::source)
    }

    /// All videos, in catalog order.
    pub fn videos(&self) -> &[Video] {
        &self.videos
    }
}

/// Why `id` cannot name a video, if it cannot.
fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Some(format!("the id must be 1 to {MAX_ID_LEN} characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Some("the id may hold only letters, digits and _ . -".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_features_the_compiled_in_sample() {
        let c = Catalog::builtin();
        let v = c.featured();
        assert_eq!(v.id, FEATURED_ID);
        assert_eq!((v.price, v.currency.as_str()), (499, "USD"));
        assert_eq!(c.get(FEATURED_ID), Some(v));
        assert_eq!(c.get("nope"), None);
        assert_eq!(v.content_type(), "video/mp4");
        match c.source(FEATURED_ID) {
            Some(VideoSource::Static(bytes)) => {
                // An MP4 starts with an `ftyp` box, and `+faststart` keeps it small.
                assert_eq!(&bytes[4..8], b"ftyp");
                assert!(bytes.len() < 1 << 20);
            }
            other => panic!("expected the static sample, got {other:?}"),
        }
    }

    #[test]
    fn reads_a_json_file_with_relative_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("media")).expect("mkdir");
        std::fs::write(dir.path().join("media/a.webm"), b"webm").expect("write");
        let json = r#"[
            {"id": "a", "title": "A", "price": 250, "currency": "EUR", "file": "media/a.webm"},
            {"id": "b-2", "title": "B", "price": 0}
        ]"#;
        let path = dir.path().join("catalog.json");
        std::fs::write(&path, json).expect("write");
        let c = Catalog::from_json_file(&path).expect("valid catalog");
        assert_eq!(c.featured().id, "a");
        assert_eq!(c.videos().len(), 2);
        assert_eq!(
            c.source("a"),
            Some(VideoSource::File(dir.path().join("media/a.webm")))
        );
        assert_eq!(c.get("a").map(Video::content_type), Some("video/webm"));
        let b = c.get("b-2").expect("b-2");
        assert_eq!((b.price, b.currency.as_str()), (0, "USD"));
        assert_eq!(b.source(), VideoSource::Static(SAMPLE_MP4));
    }

    #[test]
    fn refuses_bad_catalogs_with_a_clear_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.json");
        let cases = [
            ("{}", "not a JSON list"),
            ("[]", "lists no videos"),
            (r#"[{"id": "", "title": "t", "price": 1}]"#, "1 to 64"),
            (
                r#"[{"id": "a/b", "title": "t", "price": 1}]"#,
                "only letters",
            ),
            (
                r#"[{"id": "a", "title": " ", "price": 1}]"#,
                "title is empty",
            ),
            (
                r#"[{"id": "a", "title": "t", "price": -1}]"#,
                "not a JSON list",
            ),
            (
                r#"[{"id": "a", "title": "t", "price": 1, "currency": "usd"}]"#,
                "three-letter",
            ),
            (
                r#"[{"id": "a", "title": "t", "price": 1, "file": "missing.mp4"}]"#,
                "does not exist",
            ),
            (
                r#"[{"id": "a", "title": "t", "price": 1}, {"id": "a", "title": "u", "price": 2}]"#,
                "listed twice",
            ),
            (
                r#"[{"id": "a", "title": "t", "price": 1, "colour": "red"}]"#,
                "unknown field",
            ),
        ];
        for (json, want) in cases {
            std::fs::write(&p, json).expect("write");
            let err = Catalog::from_json_file(&p).expect_err(json).to_string();
            assert!(err.contains(want), "{json}: {err}");
            assert!(
                err.contains("c.json"),
                "{json}: error names the file: {err}"
            );
        }
        let err = Catalog::from_json_file(&dir.path().join("absent.json")).expect_err("absent");
        assert!(matches!(err, CatalogError::Read { .. }));
    }
}
